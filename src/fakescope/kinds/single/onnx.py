"""The single kind on onnxruntime: scores from an exported .onnx file or a bundle folder.

`open_onnx` accepts
- a ``.onnx`` file made by `fakescope export`: its metadata holds the verified bundle.json;
- a bundle folder holding ``model.onnx``: used if it was exported from this very bundle
  (same bundle sha256), refused with the command to re-export if the bundle changed since
  (e.g. `fakescope calibrate` re-signed it);
- a bundle folder without one: exported once, parity-checked, into the cache
  ($FAKESCOPE_CACHE/onnx/<bundle sha256>.onnx) and reused from there.

Why the cache and not a file shipped in the asset bundles: the export is made by the torch
and onnx versions installed, from the verified weights, and parity-checked on this machine
before it is used (1-3 min on a 2-core CPU, once per bundle version, said on stderr when it
starts so that the first run does not look hung); shipping it would double the
assets (a float32 graph beside float16 weights) and carry a file checked elsewhere.

A bundle with a domain model gets its domain score on onnxruntime too: the graph also
returns the penultimate features (an older export without them is re-exported into the
cache, so no verdict loses its out-of-domain flag). For a bundle loaded from its folder,
Grad-CAM and embeddings come from the same bundle on PyTorch (`explained_by`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fakescope.bundle import BundleMeta, read_meta
from fakescope.cache_dir import default_cache_dir
from fakescope.detectors.base import (
    Capabilities,
    Capability,
    Detector,
    DomainScoringDetector,
    PixelScores,
    stack_numpy,
)
from fakescope.detectors.domain import DomainModel
from fakescope.errors import BundleError
from fakescope.onnx_model import ONNX_FILE, OnnxModel

if TYPE_CHECKING:  # scoring works on numpy arrays: PyTorch only for what needs the model
    import torch  # (Grad-CAM, attacks: `explained_by`), or callers that pass tensors
    from torch import nn

    from fakescope.data.transforms import Preprocessing

logger = logging.getLogger(__name__)

_NO_TORCH = "the onnx runtime has no PyTorch model; load the bundle with runtime 'torch'"


class OnnxDetector(DomainScoringDetector):
    """Scores with onnxruntime on the CPU: fast, but neither explainable nor differentiable."""

    kind = "onnx"

    def __init__(
        self,
        session: OnnxModel,
        meta: BundleMeta,
        *,
        bundle_path: Path | None,
        domain: DomainModel | None = None,
    ) -> None:
        super().__init__(meta, bundle_path=bundle_path)
        self.session = session
        self.domain = domain if session.has_features else None
        self._torch: Detector | None = None

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> OnnxDetector:
        session, raw = open_onnx(path)
        meta = BundleMeta.from_dict(raw)
        domain = DomainModel.load(path, meta.domain) if meta.domain and path.is_dir() else None
        return cls(session, meta, bundle_path=path, domain=domain)

    @property
    def explained_by(self) -> Detector:
        """Grad-CAM and embeddings need PyTorch: the same bundle on the torch runtime, loaded
        on first use (a bare .onnx file has none, and says so through its capabilities)."""
        if not self.has_torch_twin:
            return self
        assert self.bundle_path is not None
        if self._torch is None:
            from fakescope.kinds.single.pytorch import TorchDetector  # heavy: torch, timm

            self._torch = TorchDetector.from_bundle(self.bundle_path, device="cpu")
        return self._torch

    # -- scoring, on numpy arrays (PyTorch tensors only where a caller passes them) -----------
    def array_logits_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float32 logits (B,) and features (B, D) of a (B, 3, S, S) uint8 array; for
        (B, K, 3, S, S) crops, logits (B, K) and the crops' mean features, identical crops
        scored once (`unique_crops`)."""
        if batch.ndim == 5:
            k = batch.shape[1]
            flat, counts = unique_crops(batch)
            z, f = self.array_logits_and_features(flat)
            return repeat_crops(z, counts, k), repeat_crops(f, counts, k).mean(axis=1)
        logit, features = self.session.run_with_features(batch)
        return logit.astype(np.float32), features.astype(np.float32)

    def array_logits(self, batch: np.ndarray) -> np.ndarray:
        """Float32 logits (B,) of a (B, 3, S, S) uint8 array, or (B, K) of crops."""
        if batch.ndim == 5:
            flat, counts = unique_crops(batch)
            return repeat_crops(self.array_logits(flat), counts, batch.shape[1])
        return self.session.run(batch)[0].astype(np.float32)

    def score_prepared(
        self, arrays: Sequence[np.ndarray] | torch.Tensor, *, batch_size: int = 256
    ) -> PixelScores:
        """As `DomainScoringDetector.score_prepared`, on numpy arrays throughout: p(fake),
        for crops also the most suspicious crop's, and with a domain model the domain score
        from the same pass."""
        logits, features = [], []
        for start in range(0, len(arrays), batch_size):
            batch = stack_numpy(arrays[start : start + batch_size])
            if self.domain is None:
                logits.append(self.array_logits(batch))
            else:
                z, f = self.array_logits_and_features(batch)
                logits.append(z)
                features.append(f)
        if not logits:
            if self.domain is not None:
                return PixelScores(np.empty(0), np.empty(0))
            if self.preprocessing.multi_crop:
                return PixelScores(np.empty(0), max_crop_p_fake=np.empty(0))
            return PixelScores(self.calibrate(np.empty(0, dtype=np.float32)))
        z = np.concatenate(logits)
        feats = domain = None
        if self.domain is not None:
            feats = np.concatenate(features)
            domain = self.domain.scores(feats)
        if z.ndim == 1:
            return PixelScores(self.calibrate(z), domain, features=feats)
        return PixelScores(
            self.calibrate(z.mean(axis=1)), domain, self.calibrate(z.max(axis=1)), features=feats
        )

    def crop_logits(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.array_logits(batch.numpy()))

    def logits_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As `TorchDetector.logits_and_features`: logits (B,) and features (B, D); for
        (B, K, 3, S, S) crops, logits (B, K) and the crops' mean features."""
        import torch

        z, f = self.array_logits_and_features(stack_numpy(batch))
        return torch.from_numpy(z), torch.from_numpy(f)

    @property
    def capabilities(self) -> Capabilities:
        if self.has_torch_twin:  # Grad-CAM, embeddings and attacks run on the same bundle
            return Capabilities("onnx", can_explain=True, can_embed=True, has_gradients=True)
        return Capabilities(
            runtime="onnx",
            can_explain=False,
            can_embed=False,
            has_gradients=False,
            why_not={"explain": _NO_TORCH, "embed": _NO_TORCH, "gradients": _NO_TORCH},
        )

    @property
    def has_torch_twin(self) -> bool:
        """Whether the bundle's PyTorch model is at hand (loaded from a bundle folder, not a
        bare .onnx file)."""
        return self.bundle_path is not None and self.bundle_path.is_dir()

    def torch_model(self, purpose: str, needs: Capability = "explain") -> nn.Module:
        self.require(needs, purpose)
        return self.explained_by.torch_model(purpose, needs)

    def attack_target(
        self,
    ) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]:
        self.require("gradients", "white-box attacks")
        return self.explained_by.attack_target()

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.session.logits(batch)


def unique_crops(batch: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(B, K, 3, S, S) crops -> (M, 3, S, S) to score and how many rows each image has: an
    image no larger than one crop (a thumbnail enlarged to S) has K identical crops, and one
    is scored for the same numbers at a K-th of the work."""
    b, k = batch.shape[:2]
    same = (batch == batch[:, :1]).reshape(b, -1).all(axis=1).tolist()
    if not any(same):
        return batch.reshape(b * k, *batch.shape[2:]), [k] * b
    counts = [1 if s else k for s in same]
    return np.concatenate([batch[i, :n] for i, n in enumerate(counts)]), counts


def repeat_crops(values: np.ndarray, counts: list[int], k: int) -> np.ndarray:
    """Rows scored for `unique_crops` back to (B, K, ...), a lone crop repeated K times."""
    starts = np.cumsum([0, *counts[:-1]]).tolist()
    parts = [
        np.broadcast_to(values[s : s + n], (k, *values.shape[1:]))
        for s, n in zip(starts, counts, strict=True)
    ]
    return np.stack(parts)


def onnx_cache_path(bundle_sha256: str) -> Path:
    return default_cache_dir() / "onnx" / f"{bundle_sha256}.onnx"


def open_onnx(path: str | os.PathLike[str]) -> tuple[OnnxModel, dict[str, Any]]:
    """(session, verified bundle.json) for a .onnx file or a bundle folder (see module doc)."""
    path = Path(path)
    if path.is_file():
        model = OnnxModel(path)
        return model, model.bundle_meta()
    raw = read_meta(path)  # verifies the bundle, and says what is wrong with a bad path
    beside = path / ONNX_FILE
    if beside.is_file():
        model = OnnxModel(beside)
        if raw.get("domain") and not model.has_features:
            model = _cached(path, raw)  # an export without the domain score's features
            return model, raw
        made_from = model.bundle_meta()["sha256"]
        if made_from != raw["sha256"]:
            raise BundleError(
                f"{beside} was exported from another version of this bundle (bundle sha256 "
                f"{made_from[:12]}…, now {raw['sha256'][:12]}…); re-export it: "
                f"fakescope export --bundle {path} --out {beside}"
            )
        return model, raw
    return _cached(path, raw), raw


def _cached(path: Path, raw: dict[str, Any]) -> OnnxModel:
    """The bundle's export in the cache, exported (and parity-checked) first when missing,
    damaged, or without the features its domain model needs."""
    cached = onnx_cache_path(raw["sha256"])
    if cached.is_file():
        try:
            model = OnnxModel(cached)
            if model.has_features or not raw.get("domain"):
                return model
        except BundleError:
            pass  # a damaged cache entry: export it again
    # WARNING, not INFO: the CLI configures no logging, and Python's last-resort handler
    # prints warnings (only) on stderr; a silent minute-long first run looks hung
    logger.warning(
        "preparing the ONNX runtime for %s (once; cached in %s): exporting it and checking it "
        "against PyTorch takes ~1-3 min",
        path.name,
        cached.parent,
    )
    import fakescope.kinds.single.export as export  # heavy: torch; tests patch export_onnx

    export.export_onnx(path, cached)
    return OnnxModel(cached)
