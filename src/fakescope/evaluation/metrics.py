"""The metrics evaluation reports, as `fakescope.metrics.binary` computes them (they live
below evaluation so that training and the bundles use them without importing evaluation);
this module keeps `fakescope.evaluation.metrics` importable, the name the evaluation API and
its callers use."""

from __future__ import annotations

from fakescope.metrics.binary import (
    BOOTSTRAP_RESAMPLES,
    ECE_BINS,
    THRESHOLD_POLICIES,
    ThresholdPolicy,
    binary_metrics,
    bootstrap_ci,
    choose_threshold,
    equal_error_rate,
    expected_calibration_error,
    oracle_metrics,
    rank_auc,
    threshold_sweep,
    tpr_at_fpr,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "ECE_BINS",
    "THRESHOLD_POLICIES",
    "ThresholdPolicy",
    "binary_metrics",
    "bootstrap_ci",
    "choose_threshold",
    "equal_error_rate",
    "expected_calibration_error",
    "oracle_metrics",
    "rank_auc",
    "threshold_sweep",
    "tpr_at_fpr",
]
