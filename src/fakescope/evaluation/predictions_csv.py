"""Per-image rows of an evaluation: predictions.csv (its columns derived from the
Prediction's declaration) and the rows of the report's tables."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fakescope.detectors import Detector, PixelScores
from fakescope.evaluation.scored import ScoredSet
from fakescope.verdict.prediction import CSV_FIELDS
from fakescope.verdict.rule import at_threshold, verdicts

PREDICTION_COLUMNS = ("path", "label", "p_fake", "predicted", "unsure", *CSV_FIELDS[5:])
"""predictions.csv: the first five columns as before, then the verdict's other fields."""


def write_predictions(
    path: Path, scored: ScoredSet, detector: Detector, *, threshold: float | None = None
) -> None:
    """One row per image: path, true label, p_fake, predicted label and unsure (0/1) at
    `threshold` (default: the bundle's), then p_fake_pixels, unsure_reason, domain_score,
    in_domain, max_crop_p_fake, evidence and disagreement (see `PREDICTION_COLUMNS`)."""
    names = detector.meta.labels
    t = detector.threshold if threshold is None else threshold
    predictions = scored.predictions
    if predictions is None:  # scores without verdicts: judge the pixels by the same rule
        predictions = verdicts(at_threshold(detector, t), scored.paths, PixelScores(scored.p_fake))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for y, prediction in zip(scored.labels, predictions, strict=True):
            row = prediction.to_row()
            extra = [_csv_value(row[key]) for key in PREDICTION_COLUMNS[5:]]
            writer.writerow(
                [
                    prediction.path,
                    names[int(y)],
                    f"{row['p_fake']:.6f}",
                    prediction.label,
                    row["unsure"],
                    *extra,
                ]
            )


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def image_rows(
    scored: ScoredSet, indices: Iterable[int], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Per image: path, true label, p_fake and (with verdicts) the verdict's other fields,
    for the report's per-image tables and metrics.json."""
    rows = []
    for i in indices:
        row: dict[str, Any] = {"path": scored.paths[i], "label": labels[int(scored.labels[i])]}
        if scored.predictions is not None:
            verdict = scored.predictions[i].to_dict()
            row.update({k: v for k, v in verdict.items() if k not in ("path", "label", "error")})
            row["predicted"] = verdict["label"]
        row["p_fake"] = float(scored.p_fake[i])
        rows.append(row)
    return rows
