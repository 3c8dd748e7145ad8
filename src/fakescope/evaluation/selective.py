"""Selective risk: how often a detector answers confidently, and how often it is then wrong.

A detector that may say "unsure" is judged by two numbers at its operating point: coverage
(the share of images it answers confidently) and risk (the error rate among those answers),
and by the whole risk-coverage curve, obtained by answering the most confident images first.
Its area (AURC; lower is better) summarises how well confidence ranks mistakes last
(Geifman & El-Yaniv, "Selective Classification for Deep Neural Networks", NeurIPS 2017).

Confidence here is the distance of the calibrated logit from the threshold's logit; images
outside the detector's domain rank below every in-domain image, since the detector knows
least about them.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

_EPS = 1e-7


class SelectiveRisk(TypedDict):
    """Coverage and risk at the operating point, and the risk-coverage curve."""

    n: int
    coverage: float  # share of images answered confidently (not unsure)
    risk: float | None  # error rate among confident answers (None without any)
    confident_wrong: float  # share of ALL images answered confidently and wrongly
    real_called_fake_confidently: float | None  # share of real images
    fake_called_real_confidently: float | None  # share of fake images: confident misses
    aurc: float | None
    curve_coverage: list[float]
    curve_risk: list[float]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def confidence(p_fake: np.ndarray, threshold: float, in_domain: np.ndarray | None) -> np.ndarray:
    """Higher is more confident: |logit(p) - logit(threshold)|, out-of-domain ranked last."""
    conf = np.abs(_logit(p_fake) - float(_logit(np.array([threshold]))[0]))
    if in_domain is not None:
        conf = np.where(np.asarray(in_domain, dtype=bool), conf, conf - (conf.max() + 1.0))
    return conf


class MistakeRow(TypedDict):
    """Confident mistakes of one group (a source or a generator), in both directions."""

    group: str
    n_real: int
    real_called_fake: int  # reals answered "fake" confidently (not unsure)
    n_fake: int
    fake_called_real: int  # AI images answered "real" confidently: misses are errors too
    real_called_fake_share: float | None  # of the group's reals
    fake_called_real_share: float | None  # of the group's fakes


def confident_mistakes(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    unsure: np.ndarray,
    groups: np.ndarray,
) -> list[MistakeRow]:
    """Per group name (one per image; "" is skipped): how many reals were confidently
    called fake and how many fakes confidently called real."""
    y = np.asarray(labels).astype(int).ravel()
    said_fake = np.asarray(p_fake, dtype=np.float64).ravel() >= threshold
    sure = ~np.asarray(unsure, dtype=bool).ravel()
    names = np.asarray(groups, dtype=object).ravel()
    rows: list[MistakeRow] = []
    for name in sorted({str(g) for g in names.tolist() if g}):
        mask = names == name
        reals, fakes = mask & (y == 0), mask & (y == 1)
        accused = int((reals & sure & said_fake).sum())
        missed = int((fakes & sure & ~said_fake).sum())
        rows.append(
            {
                "group": name,
                "n_real": int(reals.sum()),
                "real_called_fake": accused,
                "n_fake": int(fakes.sum()),
                "fake_called_real": missed,
                "real_called_fake_share": accused / int(reals.sum()) if reals.any() else None,
                "fake_called_real_share": missed / int(fakes.sum()) if fakes.any() else None,
            }
        )
    return rows


def selective_risk(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    unsure: np.ndarray,
    in_domain: np.ndarray | None = None,
    *,
    curve_points: int = 101,
) -> SelectiveRisk:
    """Coverage, risk and the risk-coverage curve (at most `curve_points` points) for
    binary labels (1 = fake), calibrated p(fake), the threshold and the unsure flags."""
    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    sure = ~np.asarray(unsure, dtype=bool).ravel()
    wrong = (p >= threshold).astype(int) != y
    n = len(y)
    real = y == 0
    result: SelectiveRisk = {
        "n": n,
        "coverage": float(sure.mean()) if n else 0.0,
        "risk": float(wrong[sure].mean()) if sure.any() else None,
        "confident_wrong": float((wrong & sure).mean()) if n else 0.0,
        "real_called_fake_confidently": float((wrong & sure & real).sum() / real.sum())
        if real.any()
        else None,
        "fake_called_real_confidently": float((wrong & sure & ~real).sum() / (~real).sum())
        if (~real).any()
        else None,
        "aurc": None,
        "curve_coverage": [],
        "curve_risk": [],
    }
    if n == 0:
        return result
    order = np.argsort(-confidence(p, threshold, in_domain), kind="stable")
    cumulative_risk = np.cumsum(wrong[order]) / np.arange(1, n + 1)
    coverage = np.arange(1, n + 1) / n
    result["aurc"] = float(cumulative_risk.mean())
    keep = np.unique(np.linspace(0, n - 1, min(curve_points, n)).round().astype(int))
    result["curve_coverage"] = [float(c) for c in coverage[keep]]
    result["curve_risk"] = [float(r) for r in cumulative_risk[keep]]
    return result
