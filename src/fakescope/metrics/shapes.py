"""The shapes of binary metrics: what `binary_metrics` and `oracle_metrics` return, and the
order people read the scalar metrics in. TypedDicts, written as JSON and read back as plain
dicts; undefined values (AUC with one class, any metric of an empty set) are None."""

from __future__ import annotations

from typing import TypedDict

# The scalar metrics of `BinaryMetrics`, in the order people read them: the one list that
# model cards, reports and tables take their rows from.
SCALAR_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "eer",
    "tpr_at_fpr_1pct",
    "tpr_at_fpr_5pct",
    "log_loss",
    "brier",
    "ece",
)
# The headline metrics a console table shows (and a k-fold summary averages).
HEADLINE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")


class ReliabilityBin(TypedDict):
    lo: float
    hi: float
    n: int
    mean_p_fake: float | None
    fraction_fake: float | None


class Reliability(TypedDict):
    n_bins: int
    bins: list[ReliabilityBin]


class ConfusionMatrix(TypedDict):
    labels: list[str]
    rows_true_cols_pred: list[list[int]]
    normalized: list[list[float | None]]


# Bootstrap 95% intervals, [lo, hi] per metric (None: not computed or undefined).
ConfidenceIntervals = dict[str, list[float] | None]


class BinaryMetrics(TypedDict):
    """`metrics.binary_metrics`: every metric of a detector at one threshold."""

    n: int
    threshold: float
    accuracy: float | None
    balanced_accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    average_precision: float | None
    eer: float | None
    tpr_at_fpr_1pct: float | None
    tpr_at_fpr_5pct: float | None
    log_loss: float | None
    brier: float | None
    ece: float | None
    reliability: Reliability
    ci95: ConfidenceIntervals
    classification_report: dict[str, object] | None  # scikit-learn's output_dict
    confusion_matrix: ConfusionMatrix


class OracleMetrics(TypedDict):
    """`metrics.oracle_metrics`: the threshold chosen on the test data (not an estimate)."""

    best_threshold_on_test: float | None
    accuracy: float | None
    f1: float | None
    note: str
