"""Metrics, bootstrap intervals, thresholds and temperature scaling, on fixed fixtures."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from fakescope.evaluation.calibration import (
    convert_threshold,
    fit_temperature,
    nll,
    probabilities,
)
from fakescope.metrics.binary import (
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


def noisy_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)


# -- every metric against scikit-learn -------------------------------------------------------
def test_binary_metrics_match_sklearn() -> None:
    y, p = noisy_scores(500)
    m = binary_metrics(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    report = skm.classification_report(
        y, pred, target_names=["real", "fake"], output_dict=True, zero_division=0
    )
    assert m["classification_report"] == report  # same computation, so exactly equal
    counts = skm.confusion_matrix(y, pred)
    assert m["confusion_matrix"]["rows_true_cols_pred"] == counts.tolist()
    normalized = skm.confusion_matrix(y, pred, normalize="true")
    assert np.allclose(m["confusion_matrix"]["normalized"], normalized)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert key in m  # the keys other code relies on
    assert m["n"] == 500 and m["threshold"] == 0.5


def test_ece_and_bin_table_match_calibration_curve_and_a_hand_value() -> None:
    y, p = noisy_scores(2000, seed=1)
    ece, bins = expected_calibration_error(y, p, 15)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    filled = [b for b in bins if b["n"]]
    assert len(bins) == 15 and sum(b["n"] for b in bins) == 2000
    assert np.allclose([b["fraction_fake"] for b in filled], prob_true)
    assert np.allclose([b["mean_p_fake"] for b in filled], prob_pred)
    weights = np.array([b["n"] for b in filled]) / 2000
    assert ece == pytest.approx(float(np.sum(weights * np.abs(prob_true - prob_pred))))
    # by hand: bin of 0.1 holds two reals (gap 0.1), bin of 0.9 one real one fake (gap 0.4)
    ece, _ = expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9])
    assert ece == pytest.approx((2 * 0.1 + 2 * 0.4) / 4)


def test_rank_auc_equals_sklearn_with_ties() -> None:
    y, p = noisy_scores(300, seed=2)
    assert rank_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    rounded = np.round(p, 1)  # many ties
    assert rank_auc(y, rounded) == pytest.approx(skm.roc_auc_score(y, rounded))
    assert rank_auc([1, 1], [0.2, 0.3]) is None


def test_eer_and_tpr_at_fpr_by_hand() -> None:
    # ROC points (fpr, tpr): (0,0) (0,.5)@0.8 (.5,1)@0.5 (1,1); FPR = FNR = 0.25 halfway
    # along the tied segment from (0, .5) to (.5, 1).
    assert equal_error_rate([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.8]) == pytest.approx(0.25)
    # (0,.75)@0.7 then (.25,.75)@0.6: FPR = FNR = 0.25 exactly at a ROC point.
    y8, p8 = [0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    assert equal_error_rate(y8, p8) == pytest.approx(0.25)
    # 100 reals: 98 at 0.1, one at 0.8, one at 0.95. 20 fakes: 5 at 0.99, 5 at 0.9, 10 at 0.5.
    y = np.r_[np.zeros(100), np.ones(20)]
    p = np.r_[np.full(98, 0.1), 0.8, 0.95, np.full(5, 0.99), np.full(5, 0.9), np.full(10, 0.5)]
    assert tpr_at_fpr(y, p, 0.005) == pytest.approx(0.25)  # only 0.99 passes, no real does
    assert tpr_at_fpr(y, p, 0.01) == pytest.approx(0.5)  # threshold 0.9: one real (1%)
    assert tpr_at_fpr(y, p, 0.05) == pytest.approx(1.0)  # threshold 0.5: two reals (2%)
    m = binary_metrics(y, p, 0.5)
    assert m["tpr_at_fpr_1pct"] == pytest.approx(0.5) and m["tpr_at_fpr_5pct"] == 1.0


def test_one_class_and_empty_inputs_do_not_crash() -> None:
    m = binary_metrics([1, 1, 1], [0.2, 0.6, 0.9], 0.5)
    assert m["accuracy"] == pytest.approx(2 / 3)
    for key in ("roc_auc", "average_precision", "eer", "tpr_at_fpr_1pct"):
        assert m[key] is None
    assert m["ci95"]["roc_auc"] is None and m["log_loss"] > 0
    assert m["confusion_matrix"]["normalized"][0] == [None, None]
    empty = binary_metrics([], [], 0.5)
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["ci95"]["f1"] is None
    assert choose_threshold([1, 1], [0.3, 0.9], "max_f1") == 0.5
    assert oracle_metrics([], [])["accuracy"] is None


# -- bootstrap -------------------------------------------------------------------------------
def test_bootstrap_cis_contain_the_estimate_and_shrink_with_more_data() -> None:
    widths = {}
    for n in (200, 5000):
        y, p = noisy_scores(n, seed=3)
        m = binary_metrics(y, p, 0.5)
        for key in ("accuracy", "f1", "roc_auc"):
            lo, hi = m["ci95"][key]
            assert lo <= m[key] <= hi, (n, key)
            widths[n, key] = hi - lo
    for key in ("accuracy", "f1", "roc_auc"):
        assert widths[5000, key] < widths[200, key] / 2, key  # ~ 1/sqrt(n): 5x narrower


def test_bootstrap_is_seeded_and_fast() -> None:
    y, p = noisy_scores(20_000, seed=4)
    started = time.process_time()
    bootstrap_ci(y, p, 0.5, n_resamples=1000, seed=7)
    assert time.process_time() - started < 2.0  # CPU time: immune to a busy machine
    y, p = y[:1000], p[:1000]
    ci = bootstrap_ci(y, p, 0.5, seed=7)
    assert ci == bootstrap_ci(y, p, 0.5, seed=7)
    assert ci != bootstrap_ci(y, p, 0.5, seed=8)


# -- thresholds ------------------------------------------------------------------------------
def test_threshold_policies() -> None:
    y, p = noisy_scores(300, seed=5)
    t_f1 = choose_threshold(y, p, "max_f1")
    best_f1 = max(skm.f1_score(y, p >= c) for c in np.unique(p))
    assert binary_metrics(y, p, t_f1, bootstrap=0)["f1"] == pytest.approx(best_f1)
    fpr, tpr, _ = skm.roc_curve(y, p)
    t_j = choose_threshold(y, p, "youden")
    pred = p >= t_j
    j = pred[y == 1].mean() - pred[y == 0].mean()
    assert j == pytest.approx(np.max(tpr - fpr))
    for target in (0.01, 0.05, 0.2):
        t = choose_threshold(y, p, "target_fpr", target_fpr=target)
        pred = p >= t
        assert pred[y == 0].mean() <= target
        assert pred[y == 1].mean() == pytest.approx(tpr_at_fpr(y, p, target))
    assert choose_threshold(y, p, "fixed", 0.3) == 0.3
    with pytest.raises(ValueError, match="unknown threshold policy"):
        choose_threshold(y, p, "best_on_test")  # type: ignore[arg-type]


def test_threshold_sweep_and_oracle() -> None:
    y, p = noisy_scores(400, seed=6)
    sweep = threshold_sweep(y, p, np.array([0.2, 0.5, 0.8]))
    for i, t in enumerate((0.2, 0.5, 0.8)):
        pred = p >= t
        assert sweep["accuracy"][i] == pytest.approx(skm.accuracy_score(y, pred))
        assert sweep["precision"][i] == pytest.approx(skm.precision_score(y, pred))
        assert sweep["recall"][i] == pytest.approx(skm.recall_score(y, pred))
        assert sweep["f1"][i] == pytest.approx(skm.f1_score(y, pred))
    oracle = oracle_metrics(y, p)
    best = max(skm.accuracy_score(y, p >= c) for c in np.unique(p))
    assert oracle["accuracy"] == pytest.approx(best)
    assert skm.accuracy_score(y, p >= oracle["best_threshold_on_test"]) == pytest.approx(best)
    assert "not a valid estimate" in oracle["note"]


# -- temperature scaling ---------------------------------------------------------------------
def overconfident(n: int = 4000, factor: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z) and logits factor * z: a model `factor` times too sure."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return (factor * z).astype(np.float32), y


def test_fit_temperature_recovers_the_overconfidence_and_lowers_ece() -> None:
    logits, y = overconfident()
    t = fit_temperature(logits, y)
    assert t == pytest.approx(5.0, rel=0.15)
    assert nll(logits, y, t) < nll(logits, y, 1.0)
    ece_before, _ = expected_calibration_error(y, probabilities(logits, 1.0))
    ece_after, _ = expected_calibration_error(y, probabilities(logits, t))
    assert ece_after < ece_before / 2
    assert fit_temperature(logits[y == 1], y[y == 1]) == 1.0  # one class: nothing to learn


def test_temperature_never_changes_decisions_at_the_converted_threshold() -> None:
    logits, y = overconfident()
    t = fit_temperature(logits, y)
    p_before = probabilities(logits, 1.0)
    for threshold in (0.3, 0.5, choose_threshold(y, p_before, "max_f1"), 0.97):
        converted = convert_threshold(threshold, 1.0, t)
        p_after = probabilities(logits, t)
        before = binary_metrics(y, p_before, threshold, bootstrap=0)
        after = binary_metrics(y, p_after, converted, bootstrap=0)
        assert after["accuracy"] == before["accuracy"]
        assert (
            after["confusion_matrix"]["rows_true_cols_pred"]
            == (before["confusion_matrix"]["rows_true_cols_pred"])
        )
        # float32 sigmoid saturates at T=1 for |logit| > ~17 (ties at 1.0), so AUC moves a hair
        assert after["roc_auc"] == pytest.approx(before["roc_auc"], abs=1e-3)
    assert convert_threshold(0.5, 1.0, 3.0) == pytest.approx(0.5)
    assert convert_threshold(convert_threshold(0.8, 1.0, 2.0), 2.0, 1.0) == pytest.approx(0.8)
