"""Robustness plots (accuracy versus severity, versus attack budget) and example images.

Drawn like fakescope.evaluation.plots: matplotlib `Figure` on the Agg canvas, no pyplot,
written through `save_figure`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from fakescope.figures import save_figure
from fakescope.robustness.results import AttackExamples, ExampleImages, RobustnessResult

Metric = Literal["accuracy", "roc_auc"]
_METRICS: tuple[tuple[Metric, str], ...] = (
    ("accuracy", "accuracy (bundle threshold)"),
    ("roc_auc", "ROC-AUC"),
)


def _model_names(result: RobustnessResult) -> list[str]:
    return [m["name"] for m in result["models"]]


def _lowest(result: RobustnessResult, names: Sequence[str], key: Metric) -> float:
    values: list[float] = [
        value for r in result["rows"] for n in names if (value := r["results"][n][key]) is not None
    ]
    return min([0.45, *values]) - 0.03


def plot_robustness(result: RobustnessResult, path: str | os.PathLike) -> Path:
    """Accuracy (top) and ROC-AUC (bottom) versus severity level, a line per corruption and a
    column per model; level 0 is the clean images, also drawn as a dashed reference line."""
    names = _model_names(result)
    clean = result["rows"][0]["results"]
    corruptions = result["corruptions"]
    fig = Figure(figsize=(5.2 * len(names) + 1.5, 7.5))
    axes = np.asarray(fig.subplots(2, len(names), squeeze=False, sharey="row"))
    for col, name in enumerate(names):
        for row_index, (key, label) in enumerate(_METRICS):
            ax = axes[row_index, col]
            base = clean[name][key]
            if base is not None:
                ax.axhline(base, color="black", ls="--", lw=1, label=f"clean {base:.3f}")
            for corruption, severities in corruptions.items():
                rows = {
                    r["severity"]: r["results"][name]
                    for r in result["rows"]
                    if r["kind"] == "corruption" and r["name"] == corruption
                }
                xs = [0, *range(1, len(severities) + 1)]
                ys = [base, *(rows[s][key] for s in severities)]
                ys = [np.nan if v is None else v for v in ys]
                (line,) = ax.plot(xs, ys, "o-", lw=1.5, ms=4, label=corruption)
                for x, s, y in zip(xs[1:], severities, ys[1:], strict=True):
                    ax.annotate(
                        f"{s:g}",
                        (x, y),
                        textcoords="offset points",
                        xytext=(3, 3),
                        fontsize=7,
                        color=line.get_color(),
                    )
            ax.set(ylabel=label, ylim=(_lowest(result, names, key), 1.01))
            ax.grid(alpha=0.3)
            if row_index == 0:
                ax.set_title(name)
            else:
                ax.set_xlabel("severity level (0 = clean; labels: the corruption's value)")
            ax.set_xticks(range(0, 1 + max((len(v) for v in corruptions.values()), default=0)))
        axes[0, col].legend(fontsize=7, loc="lower left")
    fig.suptitle("Robustness to corruptions")
    return save_figure(fig, path)


def plot_attacks(result: RobustnessResult, path: str | os.PathLike) -> Path:
    """Accuracy and ROC-AUC versus the L-infinity budget eps (x 255, log scale), a line per
    attack and model; each model's clean value as a dashed line."""
    names = _model_names(result)
    clean = result["rows"][0]["results"]
    rows = result["attacks"]["rows"]
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    colours = [f"C{i}" for i in range(10)]
    for ax, (key, label) in zip(axes, _METRICS, strict=True):
        for m_index, name in enumerate(names):
            colour = colours[m_index % len(colours)]
            if clean[name][key] is not None:
                ax.axhline(clean[name][key], color=colour, ls="--", lw=0.9)
            for a_index, attack_name in enumerate(result["attacks"]["names"]):
                points = sorted(
                    (eps, r["results"][name][key])
                    for r in rows
                    if r["name"] == attack_name and (eps := r["severity"] or 0.0) > 0
                )
                if not points:
                    continue
                xs = [e * 255 for e, _ in points]
                ys = [np.nan if v is None else v for _, v in points]
                marker, style = ("o", "-") if a_index == 0 else ("s", ":")
                tag = f"{name} {attack_name}" if len(names) > 1 else attack_name
                ax.plot(xs, ys, marker=marker, ls=style, color=colour, lw=1.5, ms=4, label=tag)
        ax.set_xscale("log")
        ticks = sorted({e * 255 for e in result["attacks"]["eps"] if e > 0})
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        ax.minorticks_off()
        ax.set(xlabel="eps x 255 (L-infinity, log scale)", ylabel=label, ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    steps = result["attacks"]["steps"]
    fig.suptitle(f"White-box attacks (PGD: {steps} steps); dashed: clean")
    return save_figure(fig, path)


def plot_corruption_examples(
    images: Sequence[np.ndarray], titles: Sequence[str], path: str | os.PathLike
) -> Path:
    """One image under every condition, side by side (nearest-neighbour enlarged)."""
    cols = min(6, len(images))
    rows = -(-len(images) // cols)
    fig = Figure(figsize=(2.0 * cols, 2.2 * rows))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, title in zip(axes, images, titles, strict=False):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_attack_examples(
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    eps: float,
    folder: str | os.PathLike,
    *,
    prefix: str,
    labels: Sequence[int] | np.ndarray,
    p_clean: Sequence[float] | np.ndarray,
    p_adv: Sequence[float] | np.ndarray,
    label_names: Sequence[str] = ("real", "fake"),
) -> AttackExamples:
    """Write clean / adversarial / amplified-perturbation PNGs per image and one grid figure.

    The perturbation is shown as 0.5 + delta / (2 eps): grey is no change, black and white
    are -eps and +eps. Returns the file names (relative to `folder`'s parent).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scale = 2 * eps if eps > 0 else 1.0
    delta = ((adversarial - clean) / scale + 0.5).clamp(0, 1)
    files: list[ExampleImages] = []
    fig = Figure(figsize=(6.6, 2.3 * len(clean)))
    axes = np.asarray(fig.subplots(len(clean), 3, squeeze=False))
    for i in range(len(clean)):
        names: dict[str, str] = {}
        for kind, tensor in (
            ("clean", clean[i]),
            ("adversarial", adversarial[i]),
            ("perturbation", delta[i]),
        ):
            file = folder / f"{prefix}_{i}_{kind}.png"
            Image.fromarray(_to_hwc(tensor)).save(file)
            names[kind] = f"{folder.name}/{file.name}"
        files.append(cast(ExampleImages, names))
        truth = label_names[int(labels[i])]
        for ax, img, title in (
            (axes[i, 0], clean[i], f"clean ({truth}) p={float(p_clean[i]):.3f}"),
            (axes[i, 1], adversarial[i], f"adversarial p={float(p_adv[i]):.3f}"),
            (axes[i, 2], delta[i], f"perturbation x{0.5 / eps if eps else 1:.0f}"),
        ):
            ax.imshow(_to_hwc(img), interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    grid = save_figure(fig, folder / f"{prefix}_grid.png")
    return {"eps": eps, "images": files, "grid": f"{folder.name}/{grid.name}"}
