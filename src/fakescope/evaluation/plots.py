"""Evaluation plots as PNG files: ROC, PR, score distributions, reliability, thresholds, CM.

Figures are drawn on matplotlib's Agg canvas through `Figure` directly (no pyplot), so
nothing here touches the global backend or leaks figures in long-running processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn import metrics as skm

from fakescope.evaluation.metrics import threshold_sweep
from fakescope.figures import save_figure

Curve = tuple[np.ndarray, np.ndarray]  # (labels, p_fake)


def _both(y: np.ndarray) -> bool:
    y = np.asarray(y)
    return bool(np.any(y == 1) and np.any(y == 0))


def _no_data(ax: Any, text: str = "undefined: only one class present") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


# -- ROC and PR ----------------------------------------------------------------------------
def plot_roc(y_true: np.ndarray, p_fake: np.ndarray, path: str | os.PathLike) -> Path:
    """ROC curve with its AUC in the legend."""
    return plot_roc_overlay({"model": (y_true, p_fake)}, path)


def plot_roc_overlay(curves: Mapping[str, Curve], path: str | os.PathLike) -> Path:
    """Several models' ROC curves on one set of axes (legend: name and AUC)."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance")
    drawn = 0
    for name, (y, p) in curves.items():
        if not _both(y):
            continue
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {skm.auc(fpr, tpr):.3f})")
        drawn += 1
    if not drawn:
        _no_data(ax)
    ax.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), title="ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_pr(y_true: np.ndarray, p_fake: np.ndarray, path: str | os.PathLike) -> Path:
    """Precision-recall curve (fake is positive) with its average precision."""
    return plot_pr_overlay({"model": (y_true, p_fake)}, path)


def plot_pr_overlay(curves: Mapping[str, Curve], path: str | os.PathLike) -> Path:
    """Several models' precision-recall curves on one set of axes (legend: name and AP)."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for name, (y, p) in curves.items():
        if not _both(y):
            continue
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ap = skm.average_precision_score(y, p)
        line = ax.step(recall, precision, where="post", lw=1.6, label=f"{name} (AP {ap:.3f})")
        ax.axhline(float(np.mean(y)), ls=":", lw=0.8, color=line[0].get_color())
        drawn += 1
    if not drawn:
        _no_data(ax)
    ax.set(xlabel="recall (fakes caught)", ylabel="precision", title="Precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# -- scores and thresholds -----------------------------------------------------------------
def plot_score_distributions(
    y_true: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    path: str | os.PathLike,
    *,
    unsure_band: tuple[float, float] | None = None,
    labels: Sequence[str] = ("real", "fake"),
) -> Path:
    """Histograms of p(fake) per true class, the threshold and the unsure band."""
    y, p = np.asarray(y_true), np.asarray(p_fake, dtype=float)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41).tolist()
    for cls, colour in ((0, "tab:blue"), (1, "tab:red")):
        ax.hist(p[y == cls], bins=bins, alpha=0.55, color=colour, label=f"true {labels[cls]}")
    if unsure_band is not None:
        ax.axvspan(*unsure_band, color="gold", alpha=0.25, label="unsure band")
    ax.axvline(threshold, color="black", lw=1.5, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="p(fake)", ylabel="images", title="Score distributions", xlim=(0, 1))
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_metrics_vs_threshold(
    y_true: np.ndarray, p_fake: np.ndarray, threshold: float, path: str | os.PathLike
) -> Path:
    """Accuracy, precision, recall and F1 as the threshold moves; the chosen one marked."""
    sweep = threshold_sweep(y_true, p_fake)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for key in ("accuracy", "precision", "recall", "f1"):
        ax.plot(sweep["threshold"], sweep[key], lw=1.4, label=key)
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"chosen {threshold:.3f}")
    ax.set(xlabel="threshold on p(fake)", ylabel="value", title="Metrics versus threshold")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="lower center", ncol=3)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# -- calibration and confusion ---------------------------------------------------------------
def plot_reliability(
    bins: Sequence[Mapping[str, Any]], ece: float | None, path: str | os.PathLike
) -> Path:
    """Reliability diagram from the ECE bin table: observed fraction of fakes per bin."""
    fig = Figure(figsize=(5, 5))
    ax, counts = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    lo = np.array([b["lo"] for b in bins])
    width = np.array([b["hi"] - b["lo"] for b in bins])
    frac = np.array([np.nan if b["fraction_fake"] is None else b["fraction_fake"] for b in bins])
    mean = np.array([np.nan if b["mean_p_fake"] is None else b["mean_p_fake"] for b in bins])
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    ax.bar(
        lo,
        np.nan_to_num(frac),
        width=width,
        align="edge",
        alpha=0.6,
        edgecolor="k",
        label="observed fraction fake",
    )
    ax.plot(mean, frac, "o", color="tab:red", ms=4, label="bin mean p(fake)")
    ece_text = "undefined" if ece is None else f"{ece:.4f}"
    ax.set(ylabel="fraction fake", title=f"Reliability diagram (ECE {ece_text})")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    counts.bar(lo, [b["n"] for b in bins], width=width, align="edge", color="grey")
    counts.set(xlabel="p(fake)", ylabel="images")
    return save_figure(fig, path)


def plot_confusion_matrix(
    counts: Sequence[Sequence[int]],
    normalized: Sequence[Sequence[float | None]],
    path: str | os.PathLike,
    *,
    labels: Sequence[str] = ("real", "fake"),
) -> Path:
    """Heat maps of the confusion matrix: counts and row-normalized (rows = true class)."""
    fig = Figure(figsize=(8, 3.6))
    axes = fig.subplots(1, 2)
    norm = np.array([[np.nan if v is None else v for v in row] for row in normalized], float)
    for ax, matrix, title, fmt in (
        (axes[0], np.asarray(counts, float), "counts", "{:.0f}"),
        (axes[1], norm, "normalized by true class", "{:.3f}"),
    ):
        ax.imshow(np.nan_to_num(matrix), cmap="Blues", vmin=0)
        top = np.nanmax(matrix) if np.isfinite(matrix).any() else 1
        for (i, j), value in np.ndenumerate(matrix):
            text = "-" if np.isnan(value) else fmt.format(value)
            colour = "white" if np.isfinite(value) and value > top / 2 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour)
        ax.set_xticks(range(len(labels)), [f"pred {n}" for n in labels])
        ax.set_yticks(range(len(labels)), [f"true {n}" for n in labels])
        ax.set_title(title)
    return save_figure(fig, path)


# -- selective risk ----------------------------------------------------------------------------
def plot_risk_coverage(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Risk-coverage curves (one per row of metrics["selective"]: `group`, `curve_coverage`,
    `curve_risk`, `coverage`, `risk`, `aurc`), each with its operating point marked: the
    coverage and risk of the verdicts that were not unsure."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for row in rows:
        if not row["curve_coverage"]:
            continue
        overall = row["group"] == "overall"
        aurc = "-" if row["aurc"] is None else f"{row['aurc']:.3f}"
        (line,) = ax.plot(
            row["curve_coverage"],
            row["curve_risk"],
            lw=2.2 if overall else 1.3,
            color="black" if overall else None,
            label=f"{row['group']} (AURC {aurc})",
        )
        if row["risk"] is not None and row["coverage"] > 0:
            ax.plot(
                row["coverage"],
                row["risk"],
                marker="o",
                ms=8 if overall else 6,
                mfc="white",
                mec=line.get_color(),
                mew=2,
                ls="none",
            )
        drawn += 1
    if not drawn:
        _no_data(ax, "no images")
    else:  # one legend entry for every operating point
        ax.plot(
            [], [], marker="o", mfc="white", mec="grey", mew=2, ls="none", label="operating point"
        )
        ax.legend(fontsize=8, loc="upper left")
    ax.set(xlabel="coverage (share of images answered)", ylabel="risk (error rate of answers)")
    ax.set(xlim=(0, 1.01), ylim=(0, None), title="Risk-coverage curve")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
