"""The numbers of the metrics tables, as the terminal and the report show them: which
metrics, in which order, with what label, and how a value is written. Light (no numpy): the
command line imports it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def fmt(value: object, digits: int = 4) -> str:
    """A number for a table: floats to `digits` places, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


METRIC_ROWS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("precision", "precision (fake)"),
    ("recall", "recall (fake)"),
    ("f1", "F1 (fake)"),
    ("roc_auc", "ROC-AUC"),
    ("average_precision", "average precision"),
    ("eer", "equal error rate"),
    ("tpr_at_fpr_1pct", "TPR at 1% FPR"),
    ("tpr_at_fpr_5pct", "TPR at 5% FPR"),
    ("log_loss", "log-loss"),
    ("brier", "Brier score"),
    ("ece", "ECE (15 bins)"),
)
GROUP_COLUMNS = (
    ("n", "n"),
    ("accuracy", "acc"),
    ("real_accuracy", "real acc"),
    ("fake_accuracy", "fake acc"),
    ("f1", "F1"),
    ("roc_auc", "AUC"),
    ("average_precision", "AP"),
    ("coverage", "coverage"),
    ("risk", "risk"),
    ("aurc", "AURC"),
)


def _interval(pair: Sequence[float] | None, digits: int = 4) -> str:
    return "-" if not pair else f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def metrics_table_rows(metrics: Mapping[str, Any]) -> list[tuple[str, float | None, str]]:
    """(label, value, "[lo, hi]" or "-") for each headline metric."""
    ci = metrics.get("ci95") or {}
    return [(label, metrics.get(key), _interval(ci.get(key))) for key, label in METRIC_ROWS]
