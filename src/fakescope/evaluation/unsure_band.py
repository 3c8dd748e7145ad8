"""Fit a bundle's unsure band to a false-accusation budget on validation data and store it
in the bundle, re-signed (`fakescope unsure-band`). The fit itself, numbers in and band out,
is `fakescope.metrics.unsure_band`, which the trainer uses too."""

from __future__ import annotations

import os

import numpy as np

from fakescope.bundle import read_meta, update_meta
from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.errors import SourceError
from fakescope.evaluation.calibration import check_rewritable
from fakescope.evaluation.evaluate import score_items, select_items, validation_split
from fakescope.faces import FaceSelector
from fakescope.metrics.unsure_band import BandFit, check_budgets, fit_unsure_band

__all__ = ["BandFit", "check_budgets", "fit_bundle_band", "fit_unsure_band"]


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
