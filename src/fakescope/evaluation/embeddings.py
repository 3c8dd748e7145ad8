"""Penultimate-layer embeddings, their 2-D t-SNE map, and plots of it.

The map shows whether real and fake images form separate clusters in the detector's own
feature space, and where the misclassified ones sit. Two maps side by side (e.g. before and
after fine-tuning) show what training changed.

t-SNE uses openTSNE (FFT-accelerated, much faster on thousands of points) when it is
installed, else scikit-learn's Barnes-Hut TSNE with PCA initialisation; both are
deterministic under a seed with the default ``n_jobs=1``.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from tqdm.auto import tqdm

from fakescope import LABEL_NAMES
from fakescope.data.decode import load_image
from fakescope.data.sources import read_item_bytes
from fakescope.errors import ConfigError, ImageError
from fakescope.evaluation.results import LabelCount
from fakescope.figures import save_figure
from fakescope.models.registry import embed

if TYPE_CHECKING:
    from fakescope.detectors import Detector

DEFAULT_BATCH_SIZE = 64
PCA_DIMS = 50  # t-SNE on the top principal components: faster, and less noise in neighbours
COLOURS = ("tab:blue", "tab:orange")  # real, fake
EXACT_NEIGHBOURS_MAX = 5000
OPENTSNE_ITERATIONS = 750  # openTSNE's 250 early-exaggeration + 500 normal iterations


# -- features ------------------------------------------------------------------------------
@torch.inference_mode()
def _forward(
    detector: Detector,
    images: torch.Tensor | np.ndarray,
    *,
    batch_size: int,
    progress: bool,
    with_scores: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (N, D) and, `with_scores`, calibrated p(fake) (N,) of a uint8 batch:
    (N, 3, S, S) images, or (N, K, 3, S, S) native crops, where one image is the mean of
    its crops' features and logits (as `Detector.logits` averages them)."""
    batch = torch.as_tensor(images)
    if batch.ndim not in (4, 5) or batch.dtype != torch.uint8:
        raise ConfigError(
            f"expected a (N, 3, S, S) or (N, K, 3, S, S) uint8 batch, got {tuple(batch.shape)}"
        )
    n, k = len(batch), (batch.shape[1] if batch.ndim == 5 else 1)
    features, logits = _forward_crops(
        detector,
        batch.flatten(0, 1) if batch.ndim == 5 else batch,
        batch_size=batch_size * k,
        progress=progress,
        with_scores=with_scores,
    )
    if k > 1:
        features = features.reshape(n, k, -1).mean(axis=1)
        logits = None if logits is None else logits.view(n, k).mean(dim=1)
    p_fake = None
    if logits is not None:
        p_fake = torch.sigmoid(logits / detector.meta.temperature).numpy()
    return features, p_fake


def _forward_crops(
    detector: Detector,
    batch: torch.Tensor,
    *,
    batch_size: int,
    progress: bool,
    with_scores: bool,
) -> tuple[np.ndarray, torch.Tensor | None]:
    """Features (M, D) and raw logits (M,) (or None) of an (M, 3, S, S) uint8 batch."""
    model: Any = detector.torch_model("embeddings", needs="embed")  # timm's forward_* API
    was_training = model.training
    model.eval()
    chunks: list[np.ndarray] = []
    logits: list[torch.Tensor] = []
    try:
        with tqdm(total=len(batch), desc="embed", unit="img", disable=not progress) as bar:
            for start in range(0, len(batch), batch_size):
                part = batch[start : start + batch_size].to(detector.device)
                x = detector.preprocessing.normalize(part)
                if with_scores:  # one backbone pass gives both: what model(x) computes
                    stem = model.forward_features(x)
                    features = model.forward_head(stem, pre_logits=True)
                    logits.append(model.forward_head(stem).float().view(-1).cpu())
                else:
                    features = embed(model, x)
                chunks.append(features.float().reshape(len(part), -1).cpu().numpy())
                bar.update(len(part))
    finally:
        model.train(was_training)
    if not chunks:
        empty = np.empty((0, _feature_dim(detector)), dtype=np.float32)
        return empty, (torch.empty(0) if with_scores else None)
    return np.concatenate(chunks), (torch.cat(logits) if with_scores else None)


def embed_uint8(
    detector: Detector,
    images: torch.Tensor | np.ndarray,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Penultimate features ``[N, D]`` (float32) for a (N, 3, S, S) uint8 batch."""
    features, _ = _forward(
        detector, images, batch_size=batch_size, progress=progress, with_scores=False
    )
    return features


def _feature_dim(detector: Detector) -> int:
    model: Any = detector.torch_model("embeddings", needs="embed")
    return int(model.num_features)  # every registered model has timm's num_features


def embed_images(
    detector: Detector,
    images: Sequence[Image.Image],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Penultimate features ``[N, D]`` for decoded PIL images (the bundle's preprocessing)."""
    if not images:
        return np.empty((0, _feature_dim(detector)), dtype=np.float32)
    chunks = []
    with tqdm(total=len(images), desc="embed", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            part = list(images[start : start + batch_size])
            batch = detector.preprocessing.batch_from_images(part)
            chunks.append(embed_uint8(detector, batch, batch_size=batch_size))
            bar.update(len(part))
    return np.concatenate(chunks)


@dataclass
class FileEmbeddings:
    """Features of the readable files; ``indices`` point back into the input list."""

    features: np.ndarray
    paths: list[str]
    indices: list[int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    p_fake: np.ndarray | None = None  # with ``scores=True``: the detector's p(fake)


def embed_files(
    detector: Detector,
    paths: Sequence[str | os.PathLike],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    scores: bool = False,
) -> FileEmbeddings:
    """Penultimate features for image files (or ``archive::member`` items), in batches;
    with ``scores`` also each image's p(fake), from the same forward pass.

    Unreadable files are left out and listed in ``skipped`` as (path, reason).
    """
    items = [str(p) for p in paths]
    pre = detector.preprocessing

    def decode(path: str) -> np.ndarray | str:
        try:
            return pre.to_uint8(load_image(read_item_bytes(path), path))
        except ImageError as exc:
            return exc.reason
        except OSError as exc:
            return f"cannot read: {exc}"

    chunks: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    workers = min(4, (os.cpu_count() or 1) + 1)
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(items), desc="embed", unit="img", disable=not progress) as bar,
    ):
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            decoded = list(pool.map(decode, chunk))
            good = []
            for offset, (path, arr) in enumerate(zip(chunk, decoded, strict=True)):
                if isinstance(arr, str):
                    skipped.append((path, arr))
                else:
                    good.append(arr)
                    kept.append(start + offset)
            if good:
                batch = torch.from_numpy(np.stack(good))
                features, p_fake = _forward(
                    detector, batch, batch_size=batch_size, progress=False, with_scores=scores
                )
                chunks.append(features)
                if p_fake is not None:
                    probabilities.append(p_fake)
            bar.update(len(chunk))
    features = (
        np.concatenate(chunks) if chunks else np.empty((0, _feature_dim(detector)), np.float32)
    )
    p_all = None
    if scores:
        p_all = np.concatenate(probabilities) if probabilities else np.empty(0)
    return FileEmbeddings(features, [items[i] for i in kept], kept, skipped, p_fake=p_all)


# -- t-SNE ---------------------------------------------------------------------------------
def has_opentsne() -> bool:
    return importlib.util.find_spec("openTSNE") is not None


def _reduce(features: np.ndarray, seed: int) -> np.ndarray:
    """Centre, and project onto the top principal components when there are many dims."""
    from sklearn.decomposition import PCA  # heavy: only when PCA is drawn

    x = features - features.mean(axis=0, keepdims=True)
    dims = min(PCA_DIMS, x.shape[0], x.shape[1])
    if x.shape[1] <= PCA_DIMS or dims < 2:
        return x
    return PCA(n_components=dims, random_state=seed).fit_transform(x).astype(np.float32)


def tsne_2d(
    features: np.ndarray,
    seed: int = 0,
    *,
    perplexity: float = 30.0,
    backend: str = "auto",
    n_jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """A 2-D t-SNE map ``[N, 2]`` (float32) of ``[N, D]`` features, reproducible by ``seed``.

    ``backend``: "auto" (openTSNE if installed, else scikit-learn), "opentsne" or "sklearn".
    The perplexity is lowered for small N, as t-SNE needs N > 3 * perplexity. ``progress``
    shows the optimisation's iterations (openTSNE).
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ConfigError(f"t-SNE needs [N, D] features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError("t-SNE features contain NaN or infinity")
    if backend not in ("auto", "opentsne", "sklearn"):
        raise ConfigError(f"backend must be auto, opentsne or sklearn, got {backend!r}")
    n = x.shape[0]
    if n < 4:  # too few points for a neighbourhood: lay them on a line, in order
        return np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    x = _reduce(x, seed)
    perplexity = float(min(perplexity, (n - 1) / 3))
    use_opentsne = backend == "opentsne" or (backend == "auto" and has_opentsne())
    if use_opentsne:
        return _opentsne(x, seed, perplexity=perplexity, n_jobs=n_jobs, progress=progress)
    from sklearn.manifold import TSNE as SkTSNE  # heavy: only without openTSNE

    if n > 2000:
        warnings.warn(
            f"t-SNE of {n} points with scikit-learn takes a minute or more; "
            "`pip install openTSNE` makes it about twice as fast",
            stacklevel=2,
        )

    model = SkTSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
        n_jobs=n_jobs,
    )
    return model.fit_transform(x).astype(np.float32)


def _opentsne(
    x: np.ndarray, seed: int, *, perplexity: float, n_jobs: int, progress: bool
) -> np.ndarray:
    from openTSNE import TSNE  # optional: openTSNE

    every = 10
    with tqdm(
        total=OPENTSNE_ITERATIONS, desc="t-SNE", unit="it", disable=not progress, leave=False
    ) as bar:

        def tick(iteration: int, error: float, embedding: np.ndarray) -> None:
            bar.update(every)

        embedding = TSNE(
            n_components=2,
            perplexity=perplexity,
            initialization="pca",
            # exact neighbours (scikit-learn's, in blocks) are ~5x faster than building
            # Annoy's index for a few thousand points
            neighbors="exact" if len(x) <= EXACT_NEIGHBOURS_MAX else "auto",
            random_state=seed,
            n_jobs=n_jobs,
            verbose=False,
            callbacks=tick if progress else None,
            callbacks_every_iters=every,
        ).fit(x)
    return np.array(embedding, dtype=np.float32)


# -- plots ---------------------------------------------------------------------------------
def _misclassified(labels: np.ndarray, predicted: np.ndarray | None) -> np.ndarray:
    if predicted is None:
        return np.zeros(len(labels), dtype=bool)
    predicted = np.asarray(predicted).astype(int)
    if predicted.shape != labels.shape:
        raise ConfigError(f"{len(labels)} labels but {len(predicted)} predictions")
    return predicted != labels


class MapStats(TypedDict):
    """What `_draw` drew: images, mistakes, and both per true label."""

    n: int
    misclassified: int
    per_label: dict[str, LabelCount]


class TsnePlot(MapStats):
    path: Path


class TsneComparePlot(TypedDict):
    path: Path
    a: MapStats
    b: MapStats


def _draw(
    ax: Any,
    points: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray | None,
    names: Sequence[str],
) -> MapStats:
    """Scatter the map on ``ax``; returns what was drawn (counts per class)."""
    points = np.asarray(points, dtype=float)
    y = np.asarray(labels).astype(int)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(y):
        raise ConfigError(f"need [N, 2] points for {len(y)} labels, got shape {points.shape}")
    wrong = _misclassified(y, None if predicted is None else np.asarray(predicted))
    stats: MapStats = {"n": len(y), "misclassified": int(wrong.sum()), "per_label": {}}
    small = max(2.0, min(12.0, 3000.0 / max(len(y), 1)))
    for value, (name, colour) in enumerate(zip(names, COLOURS, strict=True)):
        right = (y == value) & ~wrong
        bad = (y == value) & wrong
        ax.scatter(
            *points[right].T, s=small, c=colour, alpha=0.6, lw=0, label=f"{name} ({right.sum()})"
        )
        if bad.any():
            ax.scatter(
                *points[bad].T,
                s=small * 3 + 10,
                c=colour,
                marker="x",
                lw=1.2,
                label=f"{name}, misclassified ({bad.sum()})",
            )
        stats["per_label"][name] = {"n": int((y == value).sum()), "misclassified": int(bad.sum())}
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", markerscale=1.5, framealpha=0.8)
    return stats


def plot_tsne(
    points: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted: Sequence[int] | np.ndarray | None,
    out_png: str | os.PathLike,
    title: str = "t-SNE of penultimate features",
    *,
    label_names: Sequence[str] = LABEL_NAMES,
) -> TsnePlot:
    """Scatter a 2-D map coloured by true label (0 real, 1 fake); misclassified points (where
    ``predicted`` differs) are drawn as x markers. Returns ``{"path", "n", "misclassified",
    "per_label": {name: {"n", "misclassified"}}}``."""
    fig = Figure(figsize=(6.0, 5.2))
    ax = fig.subplots()
    stats = _draw(ax, points, labels, predicted, label_names)
    ax.set_title(title, fontsize=10)
    return TsnePlot(path=save_figure(fig, out_png), **stats)


def plot_tsne_compare(
    points_a: np.ndarray,
    points_b: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    predicted_a: Sequence[int] | np.ndarray | None,
    predicted_b: Sequence[int] | np.ndarray | None,
    out_png: str | os.PathLike,
    *,
    titles: tuple[str, str] = ("before tuning", "after tuning"),
    title: str = "",
    label_names: Sequence[str] = LABEL_NAMES,
) -> TsneComparePlot:
    """Two maps of the same images side by side (e.g. before and after fine-tuning).
    Returns ``{"path", "a": stats, "b": stats}`` with stats as in :func:`plot_tsne`."""
    fig = Figure(figsize=(11.0, 5.2))
    left, right = fig.subplots(1, 2)
    stats_a = _draw(left, points_a, labels, predicted_a, label_names)
    stats_b = _draw(right, points_b, labels, predicted_b, label_names)
    left.set_title(titles[0], fontsize=10)
    right.set_title(titles[1], fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return {"path": save_figure(fig, out_png), "a": stats_a, "b": stats_b}
