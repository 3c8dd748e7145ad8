"""Several bundles scored on the same images: one table and overlaid ROC and PR curves."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fakescope.data.cache import DecodedSet, decode_items
from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.errors import ConfigError
from fakescope.evaluation.metrics import BOOTSTRAP_RESAMPLES, binary_metrics
from fakescope.evaluation.report import comparison_report
from fakescope.evaluation.scored import scored_set, select_items

SourceSpec = str | os.PathLike


def model_names(bundles: Sequence[SourceSpec]) -> list[str]:
    """Short unique names: the bundle folder, or its run folder when it is called 'bundle'."""
    names: list[str] = []
    for bundle in bundles:
        path = Path(bundle).resolve()
        name = path.parent.name if path.name == "bundle" else path.name
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def compare_models(
    bundles: Sequence[SourceSpec],
    source_spec: SourceSpec,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    device: str = "auto",
) -> dict[str, Any]:
    """Score several bundles on the same images; write metrics.json, roc.png, pr.png and
    report.html (one table, overlaid curves). Each model keeps its own bundle threshold.
    Images are decoded once per distinct preprocessing."""
    from fakescope.evaluation import plots as P  # matplotlib: only when plots are drawn

    if not bundles:
        raise ConfigError("compare needs at least one bundle")
    source = open_source(source_spec)
    items = select_items(source, split)
    decoded_by_pre: dict[str, DecodedSet] = {}
    models, curves = [], {}
    names = model_names(bundles)
    for name, bundle in zip(names, bundles, strict=True):
        detector = load_detector(bundle, device=device)
        key = json.dumps(detector.preprocessing.to_dict(), sort_keys=True)
        if key not in decoded_by_pre:
            decoded_by_pre[key] = decode_items(
                items, source.read_bytes, detector.preprocessing, progress=progress
            )
        scored = scored_set(detector, decoded_by_pre[key], items, progress=progress)
        metrics = binary_metrics(
            scored.labels, scored.p_fake, detector.threshold, bootstrap=bootstrap
        )
        models.append(
            {
                "name": name,
                "bundle": str(bundle),
                "architecture": detector.meta.architecture,
                "metrics": metrics,
            }
        )
        curves[name] = (scored.labels, scored.p_fake)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "roc": P.plot_roc_overlay(curves, out / "roc.png"),
        "pr": P.plot_pr_overlay(curves, out / "pr.png"),
    }
    result = {
        "source": str(source.location),
        "split": split,
        "models": models,
        "plots": {name: path.name for name, path in plots.items()},
        "report": "report.html",
    }
    comparison_report(result, plots).write(out / "report.html")
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
