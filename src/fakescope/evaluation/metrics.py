"""Binary detection metrics and threshold choice (scikit-learn underneath)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

ThresholdPolicy = Literal["max_f1", "youden", "fixed"]


def binary_metrics(y_true: np.ndarray, p_fake: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC, AP and the confusion matrix at `threshold`.

    Fake (1) is the positive class. AUC and AP are None when only one class is present.
    """
    y_true = np.asarray(y_true).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    y_pred = (p_fake >= threshold).astype(int)
    both = len(np.unique(y_true)) == 2
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "n": int(len(y_true)),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, p_fake)) if both else None,
        "average_precision": float(skm.average_precision_score(y_true, p_fake)) if both else None,
        "confusion_matrix": {
            "labels": ["real", "fake"],
            "rows_true_cols_pred": [[int(tn), int(fp)], [int(fn), int(tp)]],
        },
    }


def choose_threshold(
    y_true: np.ndarray, p_fake: np.ndarray, policy: ThresholdPolicy = "max_f1", fixed: float = 0.5
) -> float:
    """Pick a decision threshold on validation data (never on test data)."""
    y_true = np.asarray(y_true).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    if policy == "fixed" or len(np.unique(y_true)) < 2:
        return float(fixed)
    if policy == "youden":
        fpr, tpr, thresholds = skm.roc_curve(y_true, p_fake)
        best = int(np.argmax(tpr - fpr))
        return _finite(thresholds[best])
    precision, recall, thresholds = skm.precision_recall_curve(y_true, p_fake)
    f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
    return _finite(thresholds[int(np.argmax(f1))])


def _finite(value: float) -> float:
    return float(min(max(value, 1e-6), 1.0 - 1e-6))
