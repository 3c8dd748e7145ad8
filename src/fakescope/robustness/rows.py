"""A row of the robustness tables: per detector, accuracy at the bundle's threshold,
per-class accuracy, F1, ROC-AUC and the drops from the clean row, overall and per source."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fakescope.evaluation.evaluate import group_row
from fakescope.robustness.results import RobustnessRow, RowKind, RowResult


def empty_row(kind: RowKind, name: str, severity: float | None, unit: str | None) -> RobustnessRow:
    return {"kind": kind, "name": name, "severity": severity, "unit": unit, "results": {}}


def _drop(clean: float | None, now: float | None) -> float | None:
    return None if clean is None or now is None else clean - now


def row_result(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    clean: RowResult | None,
    groups: Mapping[str, np.ndarray] | None = None,
) -> RowResult:
    """One detector's cell of a row (accuracies, F1, ROC-AUC); drops against `clean` (none
    given: this is the clean row, drops 0); with `groups`, the same per source."""
    row = group_row("", labels, p_fake, threshold)
    result: RowResult = {
        "n": row["n"],
        "accuracy": row["accuracy"],
        "real_accuracy": row["real_accuracy"],
        "fake_accuracy": row["fake_accuracy"],
        "f1": row["f1"],
        "roc_auc": row["roc_auc"],
        "accuracy_drop": 0.0,
        "roc_auc_drop": 0.0,
    }
    if clean is not None:
        result["accuracy_drop"] = _drop(clean["accuracy"], result["accuracy"])
        result["roc_auc_drop"] = _drop(clean["roc_auc"], result["roc_auc"])
    if groups:
        result["by_source"] = {}
        for source, index in groups.items():
            part = group_row(source, labels[index], p_fake[index], threshold)
            before = None if clean is None else clean.get("by_source", {}).get(source)
            drop = 0.0 if before is None else _drop(before["accuracy"], part["accuracy"])
            result["by_source"][source] = {
                "n": part["n"],
                "accuracy": part["accuracy"],
                "roc_auc": part["roc_auc"],
                "accuracy_drop": drop,
            }
    return result
