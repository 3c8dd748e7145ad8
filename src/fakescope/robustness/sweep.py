"""The robustness sweep: accuracy and ROC-AUC of detectors under corruptions and white-box attacks.

Corruptions act on the decoded image at its original resolution, and the bundle's own
preprocessing follows, so each condition is what a user's degraded image goes through (for
32x32 CIFAKE the two resolutions coincide). Attacks act in the model's input space (the
preprocessed image, in [0, 1]), where the gradient is. Accuracy always uses the bundle's
decision threshold: it is never re-tuned on corrupted data. Several bundles are measured on
the same (corrupted) images, giving one table with a column block per bundle.

A bundle with native-resolution crops is corrupted the same way (the whole decoded image,
then its crops are cut); attacks on it perturb each of its K crops in the model's input
space (the B x K crops flattened into one batch) and its logit per image is the mean of its
crops' logits, as when it scores.

The sweep's parts: what it measures (robustness/conditions.py), the images
(robustness/images.py), the corruption pass (robustness/corrupted.py), the attack pass
(robustness/attacked.py) and the table rows (robustness/rows.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fakescope.data.corruptions import SEVERITY_UNITS
from fakescope.data.sources import Source, open_source
from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.evaluation.evaluate import model_names
from fakescope.robustness.attacked import attack_target, run_attacks
from fakescope.robustness.conditions import (
    DEFAULT_EPS,
    RobustnessConfig,
    ordered,
    parse_list,
    parse_number,
    parse_severities,
)
from fakescope.robustness.corrupted import corruption_rows, score_clean_and_corrupted
from fakescope.robustness.images import select_subsample
from fakescope.robustness.plots import plot_attacks, plot_corruption_examples, plot_robustness
from fakescope.robustness.report import robustness_report
from fakescope.robustness.results import AttackExamples, RobustnessResult, RobustnessRow

__all__ = [
    "DEFAULT_EPS",
    "RobustnessConfig",
    "parse_list",
    "parse_number",
    "parse_severities",
    "robustness",
]


def robustness(
    detectors: Detector | Sequence[Detector],
    source_spec: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: RobustnessConfig | None = None,
    *,
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Measure detectors under corruptions (and attacks); write DIR/robustness.json, the
    plots, example images and report.html; return the result.

    Rows: the clean images, one per corruption and severity, one per attack and eps; each row
    has, per detector, accuracy at the bundle's threshold, per-class accuracy, F1, ROC-AUC
    and the drop from clean.
    """
    config = config or RobustnessConfig()
    detectors, names = _named_detectors(detectors, names)
    # before any decoding: a detector that cannot be attacked says so at once
    targets = [attack_target(d) for d in detectors] if config.attacks else []
    source = open_source(source_spec)
    items = select_subsample(source, config.split, config.max_images, config.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    conditions = config.conditions()
    scored = score_clean_and_corrupted(detectors, source, items, conditions, config, progress)
    labels = np.concatenate(scored.labels_parts)
    rows = corruption_rows(detectors, names, scored, labels, conditions)
    clean_results = [rows[0]["results"][name] for name in names]

    attack_rows: list[RobustnessRow] = []
    attack_examples: dict[str, dict[str, AttackExamples]] = {}
    if config.attacks:
        attack_rows, attack_examples = run_attacks(
            detectors,
            names,
            targets,
            source,
            scored.paths,
            labels,
            clean_results,
            config,
            out,
            progress,
        )
    result = _result_document(detectors, names, source, labels, config, rows, scored.skipped)
    result["attacks"]["rows"] = attack_rows
    result["attacks"]["examples"] = attack_examples
    _write_outputs(result, scored.example_rows, conditions, out)
    return result


def _named_detectors(
    detectors: Detector | Sequence[Detector], names: Sequence[str] | None
) -> tuple[list[Detector], list[str]]:
    """One detector or several, each with its column name in the tables (from its bundle
    path unless given), so a single bundle and a comparison go through the same code."""
    detectors = [detectors] if isinstance(detectors, Detector) else list(detectors)
    if not detectors:
        raise ConfigError("robustness needs at least one detector")
    if names is None:
        names = model_names([d.bundle_path or f"model{i}" for i, d in enumerate(detectors)])
    return detectors, list(names)


def _result_document(
    detectors: Sequence[Detector],
    names: Sequence[str],
    source: Source,
    labels: np.ndarray,
    config: RobustnessConfig,
    rows: list[RobustnessRow],
    skipped: Sequence[tuple[str, str]],
) -> RobustnessResult:
    """robustness.json's content: the tables plus everything needed to read them later
    (data, models and their thresholds, the conditions' units, the attack space)."""
    return {
        "source": str(source.location),
        "split": config.split,
        "n": int(len(labels)),
        "n_real": int(np.sum(labels == 0)),
        "n_fake": int(np.sum(labels == 1)),
        "max_images": config.max_images,
        "seed": config.seed,
        "models": [
            {
                "name": name,
                "bundle": str(d.bundle_path) if d.bundle_path else None,
                "architecture": d.meta.architecture,
                "threshold": d.threshold,
                "threshold_source": "the bundle (chosen on validation data; not re-tuned here)",
                "input_size": d.preprocessing.input_size,
            }
            for name, d in zip(names, detectors, strict=True)
        ],
        "corruptions": {k: ordered(k, v) for k, v in config.severities.items()},
        "severity_units": {k: SEVERITY_UNITS[k] for k in config.severities},
        "rows": rows,
        "attacks": {
            "names": list(config.attacks),
            "eps": list(config.eps),
            "steps": config.steps,
            "step_size": config.step_size,
            "space": "the model's input image in [0, 1] (after the bundle's resize; for "
            "native-crop bundles each crop, attacked together, logits averaged per image), "
            "float; eps is L-infinity on that scale",
            "rows": [],
            "examples": {},
        },
        "unreadable": [{"path": p, "reason": r} for p, r in skipped],
        "faces": None
        if config.faces is None
        else {
            "policy": config.faces.to_dict(),
            "how": "each image's largest face, found on the clean image and cropped by the "
            "policy (the whole image when it has none); corruptions and attacks act on the crop",
        },
    }


def _write_outputs(
    result: RobustnessResult,
    example_rows: Sequence[Sequence[np.ndarray]],
    conditions: Sequence[tuple[str, float]],
    out: Path,
) -> None:
    """Plots, report.html and robustness.json; the JSON is written last, so its presence
    means the run finished. `result` gains the plots' and report's file names."""
    plots = {"robustness": plot_robustness(result, out / "robustness.png")}
    if example_rows and conditions:
        labels_text = ["clean"] + [f"{c} {s:g}" for c, s in conditions]
        plots["corruption_examples"] = plot_corruption_examples(
            [r[0] for r in example_rows], labels_text, out / "corruption_examples.png"
        )
    if result["attacks"]["rows"]:
        plots["attacks"] = plot_attacks(result, out / "attacks.png")
    result["plots"] = {k: v.name for k, v in plots.items()}
    result["report"] = "report.html"
    robustness_report(result, dict(plots), out).write(out / "report.html")
    (out / "robustness.json").write_text(json.dumps(result, indent=2))
