"""How far an image is from a detector's training data, in the detector's own feature space.

A detector is only trustworthy on images like the ones it was trained on. Each bundle may
carry a compact description of its training data: class-conditional Gaussians with one
shared covariance on the penultimate features, in a PCA space of a few dozen dimensions
(Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks", NeurIPS 2018). A detector trained on several sources gets one Gaussian
per source and class, so that a small source is described as well as a big one. An image's
distance is its Mahalanobis distance to the nearest mean; the threshold is chosen on
validation images (by default 95% of them are in-domain, each source weighing the same).
The domain *score* is distance / threshold: at most 1 in-domain, above 1 outside.

Stored in the bundle as ``domain.safetensors`` (float32 arrays) with its fields and checksum in
bundle.json under ``domain``, so it is verified like the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from fakescope import kind_registry
from fakescope.atomic import atomic_write_text
from fakescope.bundle import CARD_FILE, DOMAIN_FILE, read_meta, sha256_file, write_meta
from fakescope.errors import BundleError, ConfigError

DEFAULT_DIMS = 64
DEFAULT_QUANTILE = 0.95
SIZE_TOLERANCE = 2.0  # how far beyond the training images' size range an image may be
_RIDGE = 1e-3  # shrinkage towards the identity, relative to the mean variance


@dataclass(frozen=True)
class DomainModel:
    """Group-conditional Gaussians (shared covariance) on PCA-projected features; the groups
    are the classes, or (source, class) pairs for a multi-source detector."""

    center: np.ndarray  # (D,) feature mean
    components: np.ndarray  # (k, D) PCA directions
    class_means: np.ndarray  # (G, k) group means in PCA space
    precision: np.ndarray  # (k, k) inverse shared covariance
    threshold: float  # distance at the chosen validation quantile
    quantile: float  # share of validation images that count as in-domain
    n_fit: int  # images the Gaussians were fitted on
    # shorter sides (px) of the training images, 1st and 99th percentile: a detector that
    # resizes its input sees a much larger or smaller image only after resizing has
    # destroyed what it learned from, so such an image is outside its domain too
    short_side: tuple[float, float] | None = None
    groups: tuple[str, ...] | None = None  # the name of each mean, when they are not 0/1

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.components.shape[1])

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance (N,) of each feature row to the nearest group mean."""
        feats = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if feats.shape[1] != self.feature_dim:
            raise ConfigError(
                f"features have {feats.shape[1]} dimensions; this domain model was fitted on "
                f"{self.feature_dim}"
            )
        z = (feats - self.center) @ self.components.T
        best = np.full(len(z), np.inf)
        for mean in self.class_means:
            d = z - mean
            best = np.minimum(best, np.einsum("ij,jk,ik->i", d, self.precision, d))
        distances: np.ndarray = np.sqrt(np.maximum(best, 0.0))
        return distances

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Domain score (N,): distance / threshold; at most 1 means in-domain."""
        scores: np.ndarray = self.distances(features) / self.threshold
        return scores

    def size_scores(self, sizes: np.ndarray) -> np.ndarray:
        """How far each image's shorter side is outside SIZE_TOLERANCE times the training
        range: above 1 outside (e.g. 2.0 = twice as far as the tolerance allows)."""
        if self.short_side is None:
            return np.zeros(len(sizes))
        short = np.asarray(sizes, dtype=np.float64).reshape(-1, 2).min(axis=1)
        low, high = self.short_side
        too_big = short / (high * SIZE_TOLERANCE)
        too_small = (low / SIZE_TOLERANCE) / np.maximum(short, 1.0)
        result: np.ndarray = np.maximum(too_big, too_small)
        return result

    # -- storage -------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """What bundle.json records (the arrays live in DOMAIN_FILE)."""
        return {
            "method": "mahalanobis",
            "dims": self.dims,
            "feature_dim": self.feature_dim,
            "threshold": self.threshold,
            "quantile": self.quantile,
            "n_fit": self.n_fit,
            "short_side": None if self.short_side is None else list(self.short_side),
            "groups": None if self.groups is None else list(self.groups),
        }

    def save(self, folder: Path) -> dict[str, Any]:
        """Write DOMAIN_FILE into `folder`; returns the fields for bundle.json (with the
        file's checksum)."""
        path = folder / DOMAIN_FILE
        save_file(
            {
                "center": self.center.astype(np.float32),
                "components": self.components.astype(np.float32),
                "class_means": self.class_means.astype(np.float32),
                "precision": self.precision.astype(np.float32),
            },
            str(path),
        )
        return {**self.fields(), "sha256": sha256_file(path)}

    @classmethod
    def load(cls, folder: Path, fields: dict[str, Any]) -> DomainModel:
        path = folder / DOMAIN_FILE
        if not path.is_file():
            raise BundleError(f"{folder}: bundle.json describes a domain model but {path.name} "
                              "is missing")  # fmt: skip
        arrays = load_file(str(path))
        return cls(
            center=arrays["center"].astype(np.float64),
            components=arrays["components"].astype(np.float64),
            class_means=arrays["class_means"].astype(np.float64),
            precision=arrays["precision"].astype(np.float64),
            threshold=float(fields["threshold"]),
            quantile=float(fields["quantile"]),
            n_fit=int(fields.get("n_fit", 0)),
            short_side=_pair(fields.get("short_side")),
            groups=tuple(fields["groups"]) if fields.get("groups") else None,
        )


def _pair(value: Any) -> tuple[float, float] | None:
    if not value:
        return None
    low, high = value
    return float(low), float(high)


def weighted_quantile(values: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    """The `q` quantile of `values`, each counted with its weight (equal weights: the plain
    quantile's lower value)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != len(v) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError("quantile weights must be non-negative, one per value, not all zero")
    order = np.argsort(v)
    cumulative = np.cumsum(w[order]) / w.sum()
    return float(v[order][min(int(np.searchsorted(cumulative, q - 1e-12)), len(v) - 1)])


def fit_domain(
    features: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    *,
    dims: int = DEFAULT_DIMS,
    quantile: float = DEFAULT_QUANTILE,
    sizes: np.ndarray | None = None,
    group_names: tuple[str, ...] | None = None,
    val_weights: np.ndarray | None = None,
) -> DomainModel:
    """Fit the Gaussians on training features (N, D) with group labels (0/1 classes, or the
    index of each image's (source, class) pair in `group_names`), then choose the threshold so
    that `quantile` of the validation features count as in-domain (each counted with its
    `val_weights`, e.g. 1 / images of its source so that every source weighs the same). With
    the training images' (width, height) `sizes`, also record the range of their shorter sides
    (for detectors that resize their input: `fakescope.evaluation.domain` decides)."""
    feats = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(labels).astype(int).ravel()
    if len(feats) < 4 or len(val_features) < 2:
        raise ConfigError("a domain model needs at least 4 training and 2 validation images")
    if not 0.5 <= quantile < 1.0:
        raise ConfigError(f"the in-domain quantile must be in [0.5, 1), got {quantile}")
    groups = [int(g) for g in np.unique(y)]
    if group_names is not None and (min(groups) < 0 or max(groups) >= len(group_names)):
        raise ConfigError(f"group labels {groups} do not index the {len(group_names)} names")
    center = feats.mean(axis=0)
    centered = feats - center
    k = max(1, min(dims, feats.shape[1], len(feats) - 1))
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    components = vt[:k]
    z = centered @ components.T
    class_means = np.stack([z[y == g].mean(axis=0) for g in groups])
    residual = np.concatenate([z[y == g] - z[y == g].mean(axis=0) for g in groups])
    cov = residual.T @ residual / max(1, len(residual) - len(groups))
    cov += np.eye(k) * _RIDGE * max(float(np.trace(cov)) / k, 1e-12)
    model = DomainModel(
        center=center,
        components=components,
        class_means=class_means,
        precision=np.linalg.inv(cov),
        threshold=1.0,
        quantile=quantile,
        n_fit=len(feats),
        groups=None if group_names is None else tuple(group_names[g] for g in groups),
    )
    threshold = weighted_quantile(model.distances(val_features), quantile, val_weights)
    short_side = None
    if sizes is not None and len(sizes):
        short = np.asarray(sizes, dtype=np.float64).reshape(-1, 2).min(axis=1)
        short_side = (float(np.quantile(short, 0.01)), float(np.quantile(short, 0.99)))
    return replace(model, threshold=max(threshold, 1e-6), short_side=short_side)


def attach_domain(bundle: Path, model: DomainModel) -> dict[str, Any]:
    """Store `model` in a verified single-model bundle (re-signed, card re-rendered);
    returns the bundle's new metadata."""
    raw = read_meta(bundle)
    refusal = kind_registry.of_meta(raw).domain_refusal(bundle, raw)
    if refusal:
        raise ConfigError(refusal)
    raw["domain"] = model.save(bundle)
    write_meta(bundle, raw, weights_sha256=raw["weights_sha256"])
    atomic_write_text(bundle / CARD_FILE, kind_registry.of_meta(raw).render_card(raw))
    return raw
