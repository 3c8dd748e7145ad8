"""Binary detection metrics, bootstrap intervals and threshold choice.

Fake (1) is the positive class and scores are p(fake). scikit-learn computes every metric it
has; what it lacks (EER, TPR at a fixed FPR, ECE, a fast bootstrap) is here, vectorised with
numpy. Undefined values (AUC with one class, ...) are None, never an exception.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from sklearn import metrics as skm

from fakescope.metrics.shapes import (
    BinaryMetrics,
    ConfidenceIntervals,
    OracleMetrics,
    ReliabilityBin,
)

ThresholdPolicy = Literal["max_f1", "youden", "target_fpr", "fixed"]
THRESHOLD_POLICIES: tuple[str, ...] = ("max_f1", "youden", "target_fpr", "fixed")
ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
_BOOTSTRAP_CHUNK = 64  # resamples per numpy pass: bounds memory to ~chunk * n * 8 bytes


def _arrays(y_true: np.ndarray, p_fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {p.shape[0]}")
    return y, p


def _both_classes(y: np.ndarray) -> bool:
    return bool(np.any(y == 1) and np.any(y == 0))


def binary_metrics(
    y_true: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    *,
    labels: tuple[str, str] = ("real", "fake"),
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    n_bins: int = ECE_BINS,
) -> BinaryMetrics:
    """Every metric of a detector at `threshold`, with 95% bootstrap CIs.

    Keys: n, threshold, accuracy, balanced_accuracy, precision, recall, f1, roc_auc,
    average_precision, eer, tpr_at_fpr_1pct, tpr_at_fpr_5pct, log_loss, brier, ece,
    reliability (the ECE bin table), ci95 {accuracy, f1, roc_auc: [lo, hi]},
    classification_report (sklearn's output_dict) and confusion_matrix (counts and
    row-normalized). `bootstrap=0` skips the intervals (ci95 values are None).
    """
    y, p = _arrays(y_true, p_fake)
    n = int(len(y))
    if n == 0:
        return _empty_metrics(threshold, labels, n_bins)
    y_pred = (p >= threshold).astype(int)
    both = _both_classes(y)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, y_pred, labels=[0, 1]).ravel())
    ece, bins = expected_calibration_error(y, p, n_bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on one-class input; we return None
        return {
            "n": n,
            "threshold": float(threshold),
            "accuracy": float(skm.accuracy_score(y, y_pred)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(y, y_pred)),
            "precision": float(skm.precision_score(y, y_pred, zero_division=0)),
            "recall": float(skm.recall_score(y, y_pred, zero_division=0)),
            "f1": float(skm.f1_score(y, y_pred, zero_division=0)),
            "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
            "average_precision": float(skm.average_precision_score(y, p)) if both else None,
            "eer": equal_error_rate(y, p),
            "tpr_at_fpr_1pct": tpr_at_fpr(y, p, 0.01),
            "tpr_at_fpr_5pct": tpr_at_fpr(y, p, 0.05),
            "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
            "brier": float(np.mean((p - y) ** 2)),
            "ece": ece,
            "reliability": {"n_bins": n_bins, "bins": bins},
            "ci95": bootstrap_ci(y, p, threshold, n_resamples=bootstrap, seed=seed),
            "classification_report": skm.classification_report(
                y,
                y_pred,
                labels=[0, 1],
                target_names=list(labels),
                output_dict=True,
                zero_division=0,
            ),
            "confusion_matrix": {
                "labels": list(labels),
                "rows_true_cols_pred": [[tn, fp], [fn, tp]],
                "normalized": _normalize_rows([[tn, fp], [fn, tp]]),
            },
        }


def _empty_metrics(threshold: float, labels: tuple[str, str], n_bins: int) -> BinaryMetrics:
    """The metrics of an empty set: every value undefined, the shape unchanged."""
    return {
        "n": 0,
        "threshold": float(threshold),
        "accuracy": None,
        "balanced_accuracy": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "roc_auc": None,
        "average_precision": None,
        "eer": None,
        "tpr_at_fpr_1pct": None,
        "tpr_at_fpr_5pct": None,
        "log_loss": None,
        "brier": None,
        "ece": None,
        "classification_report": None,
        "reliability": {
            "n_bins": n_bins,
            "bins": expected_calibration_error(np.array([]), np.array([]), n_bins)[1],
        },
        "ci95": {"accuracy": None, "f1": None, "roc_auc": None},
        "confusion_matrix": {
            "labels": list(labels),
            "rows_true_cols_pred": [[0, 0], [0, 0]],
            "normalized": [[None, None], [None, None]],
        },
    }


def _normalize_rows(matrix: list[list[int]]) -> list[list[float | None]]:
    """Each true-class row divided by its total (None when the class is absent)."""
    rows = []
    for row in matrix:
        total = sum(row)
        rows.append([v / total if total else None for v in row])
    return rows


# -- ranking metrics -----------------------------------------------------------------------
def equal_error_rate(y_true: np.ndarray, p_fake: np.ndarray) -> float | None:
    """The error rate where FPR equals FNR, linearly interpolated on the ROC curve."""
    y, p = _arrays(y_true, p_fake)
    if not _both_classes(y):
        return None
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    gap = fpr - (1.0 - tpr)  # non-decreasing along the curve: -1 at the start, +1 at the end
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0 or i == 0:
        return float(fpr[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(y_true: np.ndarray, p_fake: np.ndarray, max_fpr: float) -> float | None:
    """The highest TPR reached by a threshold whose FPR does not exceed `max_fpr`."""
    y, p = _arrays(y_true, p_fake)
    if not _both_classes(y):
        return None
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def rank_auc(y_true: np.ndarray, p_fake: np.ndarray) -> float | None:
    """ROC-AUC from ranks (ties count half), equal to sklearn's roc_auc_score."""
    y, p = _arrays(y_true, p_fake)
    if not _both_classes(y):
        return None
    y_sorted, starts, _ = _tie_groups(y, p)
    return float(_weighted_auc(np.ones((1, len(y))), y_sorted, starts)[0])


def _tie_groups(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels sorted by score and the start index of each run of tied scores."""
    order = np.argsort(p, kind="mergesort")
    s, ys = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return ys, starts, order


def _weighted_auc(weights: np.ndarray, y_sorted: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """AUC for each row of per-sample weights (counts of a bootstrap resample).

    With samples sorted by score and grouped by ties, AUC = sum over groups of
    pos_weight * (neg_weight strictly below + half the tied neg_weight) / (W+ * W-).
    """
    pos, neg = weights * y_sorted, weights * (1 - y_sorted)
    if len(starts) < weights.shape[1]:  # ties: pool each run of equal scores
        pos = np.add.reduceat(pos, starts, axis=1)
        neg = np.add.reduceat(neg, starts, axis=1)
    below = np.cumsum(neg, axis=1) - 0.5 * neg
    numerator = np.einsum("ij,ij->i", pos, below)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


# -- bootstrap -----------------------------------------------------------------------------
def bootstrap_ci(
    y_true: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals for accuracy, F1 and ROC-AUC (paired resamples).

    Each resample is a row of per-sample counts (a bincount of n indices drawn with
    replacement), so every metric is a weighted sum and one pass handles many resamples.
    Resamples holding one class are left out of the AUC interval.
    """
    y, p = _arrays(y_true, p_fake)
    keys = ("accuracy", "f1", "roc_auc")
    n = len(y)
    if n_resamples <= 0 or n == 0:
        return dict.fromkeys(keys)
    rng = np.random.default_rng(seed)
    y_sorted, starts, order = _tie_groups(y, p)
    pred_sorted = (p[order] >= threshold).astype(np.int64)
    correct = (pred_sorted == y_sorted).astype(np.int64)
    true_pos = pred_sorted & y_sorted
    stats: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for done in range(0, n_resamples, _BOOTSTRAP_CHUNK):
        rows = min(_BOOTSTRAP_CHUNK, n_resamples - done)
        draws = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
        stats["accuracy"].append((weights @ correct) / n)
        tp = weights @ true_pos
        predicted, actual = weights @ pred_sorted, weights @ y_sorted
        with np.errstate(invalid="ignore", divide="ignore"):
            stats["f1"].append(np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0))
        stats["roc_auc"].append(_weighted_auc(weights, y_sorted, starts))
    tail = (1 - level) / 2 * 100
    result: ConfidenceIntervals = {}
    for key in keys:
        values = np.concatenate(stats[key])
        values = values[np.isfinite(values)]
        if key == "roc_auc" and (not _both_classes(y) or len(values) < n_resamples / 2):
            result[key] = None
            continue
        lo, hi = np.percentile(values, [tail, 100 - tail])
        result[key] = [float(lo), float(hi)]
    return result


# -- calibration error ---------------------------------------------------------------------
def expected_calibration_error(
    y_true: np.ndarray, p_fake: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[float | None, list[ReliabilityBin]]:
    """ECE of p(fake) over `n_bins` equal-width bins, and the bin table behind it.

    Per bin: mean p(fake) against the observed fraction of fakes (the reliability diagram
    of sklearn's calibration_curve); ECE is their gap weighted by the bin's share of samples.
    """
    y, p = _arrays(y_true, p_fake)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.searchsorted(edges[1:-1], p)  # as sklearn's calibration_curve: (lo, hi]
    counts = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y, minlength=n_bins)
    bins: list[ReliabilityBin] = []
    for b in range(n_bins):
        filled = counts[b] > 0
        bins.append(
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "n": int(counts[b]),
                "mean_p_fake": float(sum_p[b] / counts[b]) if filled else None,
                "fraction_fake": float(sum_y[b] / counts[b]) if filled else None,
            }
        )
    if len(y) == 0:
        return None, bins
    gaps = np.abs(sum_p - sum_y)  # = count * |mean_p - fraction|
    return float(gaps.sum() / len(y)), bins


# -- thresholds ----------------------------------------------------------------------------
def choose_threshold(
    y_true: np.ndarray,
    p_fake: np.ndarray,
    policy: ThresholdPolicy = "max_f1",
    fixed: float = 0.5,
    *,
    target_fpr: float = 0.01,
) -> float:
    """Pick a decision threshold on validation data (never on test data).

    max_f1: the score maximising F1; youden: maximising TPR - FPR; target_fpr: the lowest
    threshold whose FPR stays within `target_fpr` (the highest TPR there); fixed: `fixed`.
    """
    y, p = _arrays(y_true, p_fake)
    if policy not in THRESHOLD_POLICIES:
        raise ValueError(f"unknown threshold policy {policy!r}; use one of {THRESHOLD_POLICIES}")
    if policy == "fixed" or not _both_classes(y):
        return float(fixed)
    if policy in ("youden", "target_fpr"):
        fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
        if policy == "youden":
            return _finite(thresholds[int(np.argmax(tpr - fpr))])
        allowed = np.flatnonzero(fpr <= target_fpr + 1e-12)
        return _finite(thresholds[allowed[int(np.argmax(tpr[allowed]))]])
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
    return _finite(thresholds[int(np.argmax(f1))])


def _finite(value: float) -> float:
    return float(min(max(value, 1e-6), 1.0 - 1e-6))


def threshold_sweep(
    y_true: np.ndarray, p_fake: np.ndarray, thresholds: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 at each threshold (predict fake when p >= t)."""
    y, p = _arrays(y_true, p_fake)
    t = np.linspace(0.0, 1.0, 201) if thresholds is None else np.asarray(thresholds, float)
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    fp = len(neg) - np.searchsorted(neg, t, side="left")
    fn, tn = len(pos) - tp, len(neg) - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(len(pos) > 0, tp / max(len(pos), 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    accuracy = (tp + tn) / max(len(y), 1)
    return {
        "threshold": t,
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def oracle_metrics(y_true: np.ndarray, p_fake: np.ndarray) -> OracleMetrics:
    """The accuracy an oracle would get by picking the threshold on the test data itself.

    An optimistic upper bound for comparison with published numbers that do this;
    NOT a valid estimate of accuracy on new data.
    """
    y, p = _arrays(y_true, p_fake)
    note = "threshold chosen on the test data itself: optimistic, not a valid estimate"
    if len(y) == 0:
        return {"best_threshold_on_test": None, "accuracy": None, "f1": None, "note": note}
    candidates = np.unique(np.r_[p, np.nextafter(p.max(), np.inf)])
    sweep = threshold_sweep(y, p, candidates)
    best = int(np.argmax(sweep["accuracy"]))
    return {
        "best_threshold_on_test": float(candidates[best]),
        "accuracy": float(sweep["accuracy"][best]),
        "f1": float(sweep["f1"][best]),
        "note": note,
    }
