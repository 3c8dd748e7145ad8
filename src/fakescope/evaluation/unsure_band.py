"""The unsure band fitted to a false-accusation budget on validation data.

A fixed band (threshold +/- margin) says nothing about how often a confident "fake" is
wrong. The general detector, for instance, called 13% of its real validation images fake
*confidently* with the band 0.378 +/- 0.1, 25% of the real DFDC faces. Calling a real
photo fake is the worst thing a detector can do, so the band can instead be fitted to a
budget: its upper edge is the lowest p(fake) above which at most `max_real_called_fake` of
the real validation images of *every* source fall (the worst source decides; `by_source`),
its lower edge the highest p(fake) below which at most `max_fake_called_real` of the fakes
fall: of every source's fakes, or, with `by_generator`, of every generator's fakes (a miss
is a confident mistake too, and a generator the detector barely knows widens the band
downwards instead of hiding among the others). The band never gets narrower than
threshold +/- margin. Images inside it are reported 'unsure'; the threshold still decides
the label.

The figures a fit reports on the images it was fitted on flatter it, so it also reports a
two-fold cross-fit (fit on one half of the validation images, count on the other), an
honest estimate of the rates on new images from the same sources.
"""

from __future__ import annotations

import os
from typing import Any, TypedDict

import numpy as np

MIN_CLASS_IMAGES = 20  # a source with fewer reals (fakes) does not move that edge


class BandRates(TypedDict):
    """How a band decides on a set of images: shares of reals and fakes answered
    confidently wrong, and of all images answered confidently (coverage)."""

    n: int
    real_called_fake: float | None
    fake_called_real: float | None
    coverage: float


class BandFit(TypedDict):
    """A fitted band, the budget it was fitted to, and the rates it gives."""

    policy: str  # "risk": fitted to the budget below
    band: list[float]  # [low, high]: unsure when low < p(fake) < high
    threshold: float
    margin: float
    max_real_called_fake: float
    max_fake_called_real: float
    by: str  # "source" (the worst source decides) or "pooled"
    sources: dict[str, BandRates]  # per source, on the fitted images
    fakes_by: str  # whose fakes set the lower edge: "source", "generator" or "pooled"
    generators: dict[str, BandRates]  # per generator (its fakes), with by_generator
    fitted: BandRates  # all fitted images
    cross_fit: BandRates  # two-fold cross-fit: the honest estimate


def band_rates(labels: np.ndarray, p_fake: np.ndarray, threshold: float, band: Any) -> BandRates:
    """Shares of reals called fake and fakes called real confidently (outside the band),
    and the share of images answered confidently."""
    p = np.asarray(p_fake, dtype=np.float64)
    return _rates(labels, p, threshold, _confident(p, band))


def _confident(p: np.ndarray, band: Any) -> np.ndarray:
    """Per image, whether it is answered confidently: outside the band (low, high)."""
    return ~((p > float(band[0])) & (p < float(band[1])))


def _rates(labels: np.ndarray, p: np.ndarray, threshold: float, confident: np.ndarray) -> BandRates:
    y = np.asarray(labels).astype(int)
    fake = p >= threshold
    reals, fakes = y == 0, y == 1
    return {
        "n": len(y),
        "real_called_fake": float(np.mean(confident[reals] & fake[reals])) if reals.any() else None,
        "fake_called_real": float(np.mean(confident[fakes] & ~fake[fakes]))
        if fakes.any()
        else None,
        "coverage": float(np.mean(confident)) if len(y) else 0.0,
    }


def _high_edge(p_real: np.ndarray, budget: float) -> float | None:
    """An edge with at most `budget` of `p_real` at or above it (None: no limit), halfway
    between the highest real that must stay below it and the next, so that a rescored image
    does not cross it by a rounding error."""
    r = np.sort(np.asarray(p_real, dtype=np.float64))
    allowed = int(np.floor(budget * len(r)))
    if len(r) < MIN_CLASS_IMAGES or allowed >= len(r):
        return None
    below = r[len(r) - allowed - 1]
    above = r[len(r) - allowed] if allowed else below
    return float((below + above) / 2) if above > below else float(np.nextafter(below, 2.0))


def _low_edge(p_fake_imgs: np.ndarray, budget: float) -> float | None:
    """An edge with at most `budget` of `p_fake_imgs` at or below it, halfway between the
    lowest fake that must stay above it and the next."""
    edge = _high_edge(-np.asarray(p_fake_imgs, dtype=np.float64), budget)
    return None if edge is None else -edge


def _edges(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    threshold: float,
    margin: float,
    max_real_called_fake: float,
    max_fake_called_real: float,
    fake_groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """The band: every group's reals within the first budget, every group's fakes (of
    `fake_groups` when given, else of `groups`) within the second."""
    low, high = threshold - margin, threshold + margin
    fake_groups = groups if fake_groups is None else fake_groups
    for name in np.unique(groups):
        h = _high_edge(p[(groups == name) & (y == 0)], max_real_called_fake)
        high = max(high, h) if h is not None else high
    for name in np.unique(fake_groups):
        lo = _low_edge(p[(fake_groups == name) & (y == 1)], max_fake_called_real)
        low = min(low, lo) if lo is not None else low
    return max(0.0, low), min(1.0, high)


def check_budgets(max_real_called_fake: float, max_fake_called_real: float) -> None:
    """Refuse a budget outside (0, 0.5): ValueError naming it."""
    for name, value in (
        ("max_real_called_fake", max_real_called_fake),
        ("max_fake_called_real", max_fake_called_real),
    ):
        if not 0.0 < value < 0.5:
            raise ValueError(f"{name} must be in (0, 0.5), not {value}")


def fit_unsure_band(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    *,
    margin: float = 0.1,
    max_real_called_fake: float = 0.05,
    max_fake_called_real: float = 0.10,
    sources: np.ndarray | None = None,
    generators: np.ndarray | None = None,
    seed: int = 0,
) -> BandFit:
    """Fit the band to the budget on validation labels and calibrated p(fake).

    With `sources` naming two or more sources (one name per image), every source must keep
    within the budget (the widest edge wins); otherwise the images are pooled. Sources (or
    a pooled set) with fewer than MIN_CLASS_IMAGES reals (fakes) do not move the upper
    (lower) edge. With `generators` naming two or more generators (one name per image,
    "" for reals), the lower edge keeps every generator's fakes within
    `max_fake_called_real` instead of every source's.
    """
    check_budgets(max_real_called_fake, max_fake_called_real)
    y, p = np.asarray(labels).astype(int), np.asarray(p_fake, dtype=np.float64)
    if len(y) != len(p):
        raise ValueError(f"{len(y)} labels but {len(p)} probabilities")
    if sources is not None and len(set(np.asarray(sources).tolist())) < 2:
        sources = None  # one source: nothing to hold apart
    groups = np.asarray(sources, dtype=object) if sources is not None else np.zeros(len(y), int)
    gens = None if generators is None else np.asarray(generators, dtype=object)
    if gens is not None and len({g for g in gens[y == 1].tolist() if g}) < 2:
        gens = None  # one generator: its fakes are the pooled (or per source) fakes
    if gens is not None and len(gens) != len(y):
        raise ValueError(f"{len(y)} labels but {len(gens)} generator names")
    budget = (threshold, margin, max_real_called_fake, max_fake_called_real)
    band = _edges(y, p, groups, *budget, gens)

    # two-fold cross-fit: each half is decided by the band fitted on the other half
    halves = np.random.default_rng(seed).permutation(len(y)) % 2 == 0
    confident = np.zeros(len(y), dtype=bool)
    for held in (halves, ~halves):
        fit_gens = None if gens is None else gens[~held]
        edges = _edges(y[~held], p[~held], groups[~held], *budget, fit_gens)
        confident[held] = _confident(p[held], edges)
    cross = _rates(y, p, threshold, confident)
    per_source = (
        {
            str(g): band_rates(y[groups == g], p[groups == g], threshold, band)
            for g in np.unique(groups)
        }
        if sources is not None
        else {}
    )
    return {
        "policy": "risk",
        "band": [band[0], band[1]],
        "threshold": float(threshold),
        "margin": float(margin),
        "max_real_called_fake": float(max_real_called_fake),
        "max_fake_called_real": float(max_fake_called_real),
        "by": "source" if sources is not None else "pooled",
        "sources": per_source,
        "fakes_by": "generator"
        if gens is not None
        else ("source" if sources is not None else "pooled"),
        "generators": {
            str(g): band_rates(y[gens == g], p[gens == g], threshold, band)
            for g in sorted({g for g in gens[y == 1].tolist() if g})
        }
        if gens is not None
        else {},
        "fitted": band_rates(y, p, threshold, band),
        "cross_fit": cross,
    }


def fit_bundle_band(
    bundle_path: str | os.PathLike[str],
    val_source: str | os.PathLike[str],
    *,
    split: str | None = None,
    max_real_called_fake: float = 0.05,
    max_fake_called_real: float = 0.10,
    by_source: bool = True,
    by_generator: bool = False,
    progress: bool = True,
    device: str = "auto",
) -> BandFit:
    """Fit the bundle's unsure band on validation data (its calibrated p(fake), per source
    when the source names them; the largest faces for a detector trained on face crops) and
    store it in the bundle, re-signed.

    `split` defaults to "val" when the source has one. Shipped detectors and combined bundles are
    refused first (`check_rewritable`)."""
    # scoring pulls in the detectors; the fit itself (used by the trainer) needs numpy only
    from fakescope.bundle import read_meta, update_meta
    from fakescope.data.sources import open_source
    from fakescope.detectors import load_detector
    from fakescope.errors import SourceError
    from fakescope.evaluation.calibration import check_rewritable
    from fakescope.evaluation.evaluate import score_items, select_items, validation_split
    from fakescope.faces import FaceSelector

    check_rewritable(bundle_path, val_source, command="unsure-band")
    detector = load_detector(bundle_path, device=device, runtime="torch")
    source = open_source(val_source)
    split = validation_split(source, split)
    items = select_items(source, split)
    # a detector trained on face crops is scored on the faces, cropped as it was trained
    faces = FaceSelector(detector.face_policy) if detector.meta.faces else None
    scored = score_items(detector, source, items, progress=progress, faces=faces)
    y = scored.labels
    if not (np.any(y == 0) and np.any(y == 1)):
        raise SourceError(f"{source.location}: the band needs real and fake validation images")
    names = {it.path: it.source or "" for it in items}
    sources = np.array([names.get(p, "") for p in scored.paths], dtype=object)
    generator_of = {it.path: it.generator or "" for it in items}
    generators = np.array([generator_of.get(p, "") for p in scored.paths], dtype=object)
    fit = fit_unsure_band(
        y,
        scored.p_fake,
        detector.threshold,
        margin=detector.meta.unsure_margin,
        max_real_called_fake=max_real_called_fake,
        max_fake_called_real=max_fake_called_real,
        sources=sources if by_source else None,
        generators=generators if by_generator else None,
    )
    stored = read_meta(bundle_path).get("metrics", {})
    where = {"val_source": str(source.location), "val_split": split}
    update_meta(
        bundle_path,
        unsure_fit={**fit, **where},
        metrics={**stored, "unsure_band": {**where, "cross_fit": fit["cross_fit"]}},
    )
    return fit
