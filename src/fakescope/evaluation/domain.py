"""Fit a bundle's domain model from labelled data: `fakescope domain BUNDLE DATA`.

The Gaussians are fitted on training images and the in-domain threshold is chosen on other
images (validation), so that the chosen share of unseen in-domain images counts as in-domain.
With a manifest from `fakescope train` or `fakescope data split`, its train and val splits
are used; otherwise a seeded random fifth of the source is held out for the threshold.

Images are drawn evenly from each (source, class) pair, so that a small source (a few hundred
modern photos beside 10,000 CIFAKE thumbnails) gets a Gaussian of its own and counts as much
as a big one when the threshold is chosen. A single-source manifest has one pair per class.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fakescope.bundle import is_shipped, resolve_bundle_path
from fakescope.data.cache import ReadBytes, decode_items
from fakescope.data.sources import Item, open_source
from fakescope.detectors.base import DomainScoringDetector, load_detector
from fakescope.detectors.domain import DEFAULT_DIMS, DEFAULT_QUANTILE, attach_domain, fit_domain
from fakescope.errors import ConfigError, SourceError
from fakescope.faces import FaceSelector


@dataclass(frozen=True)
class DomainFit:
    """What `fit_bundle_domain` stored and how it was chosen."""

    bundle: Path
    n_train: int
    n_val: int
    threshold: float
    quantile: float
    dims: int
    in_domain_val: float  # share of validation images in-domain (≈ quantile; sources equal)
    in_domain_by_source: dict[str, float]  # the same per source (multi-source data only)


def _features(
    detector: DomainScoringDetector, items: list[Item], read_bytes: ReadBytes, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Penultimate features of the readable items, their indices in `items` and their original
    (width, height); of their largest faces for a detector trained on face crops (what it is
    asked about). Unreadable items are skipped (decode_items reports them)."""
    faces = FaceSelector(detector.face_policy) if detector.meta.faces else None
    decoded = decode_items(
        items, read_bytes, detector.preprocessing, progress=progress, faces=faces
    )
    feats = []
    bar = tqdm(total=len(decoded), desc="features", unit="img", disable=not progress, leave=False)
    for start in range(0, len(decoded), 256):
        _, f = detector.logits_and_features(decoded.images[start : start + 256])
        feats.append(f.numpy())
        bar.update(len(f))
    bar.close()
    position = {it.path: i for i, it in enumerate(items)}
    kept = np.array([position[path] for path in decoded.paths], dtype=int)
    return np.concatenate(feats), kept, decoded.sizes


def _group_key(item: Item) -> tuple[str, int]:
    return (item.source or "", int(item.label or 0))


def _even_sample(items: list[Item], budget: int, rng: np.random.Generator) -> list[Item]:
    """At most `budget` items, split evenly over the (source, class) pairs; a pair with fewer
    items than its share gives the rest to the others."""
    by_group: dict[tuple[str, int], list[Item]] = {}
    for it in items:
        by_group.setdefault(_group_key(it), []).append(it)
    chosen: list[Item] = []
    left = budget
    for n_left, key in enumerate(sorted(by_group, key=lambda k: len(by_group[k]))):
        pool = by_group[key]
        take = min(len(pool), left // (len(by_group) - n_left))
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), take, replace=False))]
        left -= take
    return sorted(chosen, key=lambda it: it.path)


def _train_val(items: list[Item], max_images: int, seed: int) -> tuple[list[Item], list[Item]]:
    rng = np.random.default_rng(seed)
    train = [it for it in items if it.split == "train"]
    val = [it for it in items if it.split == "val"]
    if not train or not val:
        order = rng.permutation(len(items))
        cut = max(2, len(items) // 5)
        val, train = [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]
    return _even_sample(train, max_images, rng), _even_sample(val, max_images // 2, rng)


def _groups(train: list[Item], val: list[Item]) -> tuple[tuple[str, ...] | None, np.ndarray,
                                                         np.ndarray | None]:  # fmt: skip
    """Group names (None for a single source: the classes), each training item's group
    index, and the validation weights that make every source weigh the same."""
    sources = sorted({it.source or "" for it in train})
    if len(sources) < 2:
        return None, np.array([int(it.label or 0) for it in train]), None
    keys = sorted({_group_key(it) for it in train})
    index = {key: i for i, key in enumerate(keys)}
    names = tuple(f"{src}/{'fake' if label else 'real'}" for src, label in keys)
    per_source = Counter(it.source or "" for it in val)
    weights = np.array([1.0 / per_source[it.source or ""] for it in val])
    return names, np.array([index[_group_key(it)] for it in train]), weights


def fit_bundle_domain(
    bundle: str | os.PathLike[str],
    source: str | os.PathLike[str],
    *,
    max_images: int = 6000,
    quantile: float = DEFAULT_QUANTILE,
    dims: int = DEFAULT_DIMS,
    seed: int = 0,
    progress: bool = True,
    allow_shipped: bool = False,
) -> DomainFit:
    """Fit the domain model of a single-model bundle on `source` and store it in the bundle
    (re-signed). Refused before any work for shipped detectors (unless `allow_shipped`, for
    the maintainers' shipping script) and for every bundle but one model's weights."""
    path = resolve_bundle_path(bundle)
    if is_shipped(path) and not allow_shipped:
        raise ConfigError(
            f"{bundle}: shipped detectors are read-only; copy the folder and fit that copy "
            f"(cp -r {path} mydetector && fakescope domain mydetector DATA)"
        )
    detector = load_detector(path, device="cpu", runtime="torch")
    if not isinstance(detector, DomainScoringDetector):
        raise ConfigError(f"{bundle}: a domain model needs a single-model bundle")
    data = open_source(source)
    items = [it for it in data.items if it.label is not None]
    if len(items) < 10:
        raise SourceError(f"{data.location}: a domain model needs at least 10 labelled images")
    train, val = _train_val(items, max_images, seed)
    train_f, train_idx, sizes = _features(detector, train, data.read_bytes, progress)
    val_f, val_idx, _ = _features(detector, val, data.read_bytes, progress)
    # unreadable images are skipped: keep the readable ones' groups and weights
    names, groups, weights = _groups(train, val)
    groups, weights = groups[train_idx], None if weights is None else weights[val_idx]
    # a detector that resizes its input also knows only the image sizes it was trained on;
    # one that reads native-resolution crops sees the same pixels whatever the image size
    resizes = not detector.preprocessing.multi_crop
    model = fit_domain(
        train_f,
        groups,
        val_f,
        dims=dims,
        quantile=quantile,
        sizes=sizes if resizes else None,
        group_names=names,
        val_weights=weights,
    )
    attach_domain(path, model)
    inside = model.scores(val_f) <= 1.0
    val_sources = np.array([val[i].source or "" for i in val_idx])
    by_source: dict[str, float] = {}
    if names is not None:  # several sources: how each fares at the shared threshold
        by_source = {str(n): float(inside[val_sources == n].mean()) for n in np.unique(val_sources)}
    return DomainFit(
        bundle=path,
        n_train=len(train_f),
        n_val=len(val_f),
        threshold=model.threshold,
        quantile=quantile,
        dims=model.dims,
        in_domain_val=float(np.average(inside, weights=weights)),
        in_domain_by_source=by_source,
    )
