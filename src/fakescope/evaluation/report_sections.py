"""The evaluation report's Grad-CAM gallery and t-SNE map, as hooks for `evaluate`.

``evaluate(detector, source, out, report_hooks=report_hooks(gallery=4, tsne_points=3000))``
fills the report's ``explanations`` and ``embeddings`` sections, writes their PNGs to the
output folder too, and records what they show in metrics.json. With ``compare=BUNDLE`` the
t-SNE section shows that bundle's map and the evaluated one's side by side (before/after
fine-tuning, say) on the same images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.evaluation.embeddings import (
    FileEmbeddings,
    MapStats,
    embed_files,
    has_opentsne,
    plot_tsne,
    plot_tsne_compare,
    tsne_2d,
)
from fakescope.evaluation.evaluate import (
    ReportContext,
    ReportHook,
    ScoredSet,
    image_rows,
    model_names,
)
from fakescope.evaluation.explain import gallery_rows, resolve_layers
from fakescope.evaluation.report import (
    ReportBuilder,
    definition_list,
    figure_html,
    paragraph,
    per_image_table,
)
from fakescope.evaluation.results import (
    EmbeddingsSummary,
    GalleryShown,
    MapCounts,
    MapFound,
    SkippedSection,
)

DEFAULT_GALLERY = 4
DEFAULT_TSNE_POINTS = 3000
ROW_CAPTIONS = {
    "true positives": "True positives: fakes called fake, from the most to the least confident.",
    "false positives": "False positives: reals called fake (false alarms).",
    "true negatives": "True negatives: reals called real.",
    "false negatives": "False negatives: fakes called real (missed fakes).",
    "most confident mistakes": "The most confident mistakes: furthest from the threshold "
    "on the wrong side.",
}


def _no_single_model(detector: Detector) -> str | None:
    """Why Grad-CAM and penultimate features are unavailable for `detector`, or None (a
    face-aware detector has them through its whole-image member, `explained_by`)."""
    caps = detector.explained_by.capabilities
    if caps.can_explain and caps.can_embed:
        return None
    why = caps.why_not.get("explain") or caps.why_not.get("embed") or "not this detector"
    return f"Not available: {why}."


def _skipped(builder: ReportBuilder, title: str, section_id: str, why: str) -> SkippedSection:
    """A section that says why it is empty, and the metrics entry that records it."""
    builder.add_section(title, paragraph(why), id=section_id)
    return {"skipped": why}


@dataclass
class ExplanationSection:
    """Report hook: Grad-CAM overlays of up to ``k`` true/false positives/negatives each,
    and the ``k`` most confident mistakes (section ``explanations``, gradcam_*.png)."""

    k: int = DEFAULT_GALLERY
    layers: Sequence[str] | None = None
    stage: str = "gallery"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"the gallery needs at least 1 image per row, got {self.k}")

    def __call__(self, builder: ReportBuilder, context: ReportContext) -> None:
        detector = context.detector
        why = _no_single_model(detector)
        if why:
            title = "Explanations (Grad-CAM)"
            context.metrics["explanations"] = _skipped(builder, title, "explanations", why)
            return
        scored, metrics = context.scored, context.metrics
        threshold = float(metrics["threshold"])
        layers = resolve_layers(detector.explained_by.torch_model("Grad-CAM"), self.layers)
        rows = gallery_rows(
            detector,
            scored.paths,
            scored.labels,
            scored.p_fake,
            threshold,
            context.out_dir,
            self.k,
            layers=layers,
        )
        names = detector.meta.labels
        shown: dict[str, GalleryShown] = {}
        body = paragraph(
            f"Each tile: the image as the model saw it "
            f"({detector.explained_by.preprocessing.input_size} px) "
            "and its Grad-CAM overlay for the predicted class (red: where the evidence for "
            "that verdict lies), titled with the true label and p(fake); threshold "
            f"{threshold:.4f}. Grad-CAM of {', '.join(layers)}."
        )
        for row in rows:
            body += figure_html(row.png, ROW_CAPTIONS.get(row.name, row.name), alt=row.name)
            shown[row.name] = {
                "png": row.png.name,
                "images": image_rows(scored, row.indices, names),
            }
        missing = [name for name in ROW_CAPTIONS if name not in shown]
        if missing:
            body += paragraph(f"No cases to show for: {', '.join(missing)}.")
        worst = shown.get("most confident mistakes")
        mistakes = worst["images"] if worst else []
        if mistakes:
            body += "<h3>Most confident mistakes</h3>" + per_image_table(mistakes)
        builder.add_section("Explanations (Grad-CAM)", body, id="explanations")
        metrics["explanations"] = {"layers": layers, "k": self.k, "rows": shown}


@dataclass
class EmbeddingSection:
    """Report hook: t-SNE of the penultimate features of up to ``points`` images (a seeded
    random subsample), coloured by true label, mistakes marked (section ``embeddings``,
    tsne.png). With ``compare`` (a bundle or Detector) the two models' maps of the same
    images side by side (tsne_compare.png), each model's mistakes at its own threshold."""

    points: int = DEFAULT_TSNE_POINTS
    compare: Detector | None = None
    seed: int = 0
    stage: str = "t-SNE"

    def __post_init__(self) -> None:
        if self.points < 4:
            raise ConfigError(f"t-SNE needs at least 4 points, got --tsne-points {self.points}")

    def __call__(self, builder: ReportBuilder, context: ReportContext) -> None:
        detector = context.detector
        why = _no_single_model(detector) or (self.compare and _no_single_model(self.compare))
        if why:
            context.metrics["embeddings"] = _skipped(
                builder, "Embeddings (t-SNE)", "embeddings", why
            )
            return
        scored, metrics = context.scored, context.metrics
        out, progress = Path(context.out_dir), context.progress
        sample = _TsneSample.pick(scored, self.points, self.seed, float(metrics["threshold"]))
        if scored.features is not None and len(scored.features) == len(scored):
            # scoring computed them (for the domain score): the same model's features
            n = len(sample.paths)
            main = FileEmbeddings(scored.features[sample.picked], sample.paths, list(range(n)))
        else:
            main = embed_files(detector.explained_by, sample.paths, progress=progress)
        backend = "openTSNE" if has_opentsne() else "scikit-learn"
        if self.compare is None:
            found, caption = self._one_map(detector, main, sample, out, progress)
        else:
            found, caption = self._two_maps(detector, self.compare, main, sample, out, progress)
        compared = {"compare": found["compare"]} if "compare" in found else {}
        summary = cast(
            EmbeddingsSummary,
            {
                "n": found["n"],
                "of": len(scored),
                "seed": self.seed,
                "backend": backend,
                "plot": found["plot"],
                "model": found["model"],
                **compared,  # before "subsampled": metrics.json's key order
                "subsampled": len(scored) > self.points,
            },
        )
        builder.add_section(
            "Embeddings (t-SNE)", self._body(summary, caption, out), id="embeddings"
        )
        metrics["embeddings"] = summary

    def _one_map(
        self,
        detector: Detector,
        main: FileEmbeddings,
        sample: _TsneSample,
        out: Path,
        progress: bool,
    ) -> tuple[MapFound, str]:
        """tsne.png for the evaluated model alone: (summary entries, caption)."""
        points = tsne_2d(main.features, self.seed, progress=progress)
        keep = main.indices
        stats = plot_tsne(
            points,
            sample.labels[keep],
            sample.predicted[keep],
            out / "tsne.png",
            title=f"t-SNE of penultimate features ({len(keep)} images)",
            label_names=detector.meta.labels,
        )
        whose = "the detector's" if detector.explained_by is detector else "its whole-image model's"
        caption = (
            f"t-SNE of {whose} penultimate-layer features, coloured by true label; "
            f"x: misclassified at threshold {sample.threshold:.4f}."
        )
        return {"n": stats["n"], "plot": "tsne.png", "model": _stats(stats)}, caption

    def _two_maps(
        self,
        detector: Detector,
        other: Detector,
        main: FileEmbeddings,
        sample: _TsneSample,
        out: Path,
        progress: bool,
    ) -> tuple[MapFound, str]:
        """tsne_compare.png: the --compare model and the evaluated one on the images both
        could read, each model's mistakes at its own threshold: (summary entries, caption)."""
        theirs = embed_files(other.explained_by, sample.paths, progress=progress, scores=True)
        keep = sorted(set(main.indices) & set(theirs.indices))
        mine_rows = _rows(main.indices, keep)
        their_rows = _rows(theirs.indices, keep)
        assert theirs.p_fake is not None
        their_predicted = (theirs.p_fake[their_rows] >= other.threshold).astype(int)
        mine = tsne_2d(main.features[mine_rows], self.seed, progress=progress)
        their_points = tsne_2d(theirs.features[their_rows], self.seed, progress=progress)
        their_name, my_name = _names(other, detector)
        stats = plot_tsne_compare(
            their_points,
            mine,
            sample.labels[keep],
            their_predicted,
            sample.predicted[keep],
            out / "tsne_compare.png",
            titles=(f"{their_name} (--compare)", f"{my_name} (evaluated)"),
            title=f"t-SNE of penultimate features, the same {len(keep)} images",
            label_names=detector.meta.labels,
        )
        found: MapFound = {
            "n": len(keep),
            "plot": "tsne_compare.png",
            "model": _stats(stats["b"]),
            "compare": {
                "bundle": str(other.bundle_path) if other.bundle_path else None,
                "name": their_name,
                "threshold": other.threshold,
                **_stats(stats["a"]),
            },
        }
        caption = (
            f"Left: {their_name} (--compare), at its own threshold {other.threshold:.4f}; "
            f"right: {my_name}, the evaluated model, at {sample.threshold:.4f}. Same images; "
            "colour: true label; x: misclassified."
        )
        return found, caption

    def _body(self, summary: EmbeddingsSummary, caption: str, out: Path) -> str:
        """How to read the map (and how not to), what was mapped, and the figure."""
        body = paragraph(
            "Where the images sit in the detector's own feature space: separate clusters "
            "mean the features tell real from fake; mistakes show where they overlap. "
            "Distances between clusters in a t-SNE map mean little."
        )
        subsampled = f" (random subsample, seed {self.seed})" if summary["subsampled"] else ""
        body += definition_list(
            [
                ("images mapped", f"{summary['n']} of {summary['of']}" + subsampled),
                (
                    "method",
                    f"PCA to 50 dims, then t-SNE ({summary['backend']}, perplexity 30)",
                ),
                ("misclassified (x)", summary["model"]["misclassified"]),
            ]
        )
        return body + figure_html(out / summary["plot"], caption, alt="t-SNE")


@dataclass
class _TsneSample:
    """The images a t-SNE map shows (a seeded random subsample, so maps are reproducible and
    t-SNE stays affordable), with their true and predicted labels at the report's threshold."""

    paths: list[str]
    labels: np.ndarray
    predicted: np.ndarray
    threshold: float
    picked: np.ndarray  # their indices in the evaluated set

    @classmethod
    def pick(cls, scored: ScoredSet, points: int, seed: int, threshold: float) -> _TsneSample:
        picked = sample_indices(len(scored), points, seed)
        return cls(
            paths=[scored.paths[i] for i in picked],
            labels=scored.labels[picked],
            predicted=(scored.p_fake[picked] >= threshold).astype(int),
            threshold=threshold,
            picked=picked,
        )


def sample_indices(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random ``k`` of ``n`` (all of them when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _rows(indices: Sequence[int], keep: Sequence[int]) -> list[int]:
    position = {index: row for row, index in enumerate(indices)}
    return [position[i] for i in keep]


def _stats(stats: MapStats) -> MapCounts:
    return {"misclassified": stats["misclassified"], "per_label": stats["per_label"]}


def _names(other: Detector, evaluated: Detector) -> tuple[str, str]:
    if other.bundle_path and evaluated.bundle_path:
        first, second = model_names([other.bundle_path, evaluated.bundle_path])
        return first, second
    return (other.bundle_path.name if other.bundle_path else "compared model"), "evaluated model"


def report_hooks(
    *,
    gallery: int = DEFAULT_GALLERY,
    tsne_points: int = DEFAULT_TSNE_POINTS,
    compare: str | os.PathLike | Detector | None = None,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> list[ReportHook]:
    """The hooks for `evaluate`: the gallery (``gallery`` images per row; 0: none) and the
    t-SNE map (``tsne_points``; 0: none), optionally against the ``compare`` bundle, which
    is loaded (and verified) here, before any long work starts."""
    if gallery < 0 or tsne_points < 0:
        raise ConfigError("--gallery and --tsne-points must be 0 (off) or positive")
    if compare is not None and tsne_points == 0:
        raise ConfigError("--compare draws two t-SNE maps: it needs --tsne-points above 0")
    hooks: list[ReportHook] = []
    if gallery:
        hooks.append(ExplanationSection(gallery, layers))
    if tsne_points:
        other = Detector.load(compare) if isinstance(compare, str | os.PathLike) else compare
        hooks.append(EmbeddingSection(tsne_points, other, seed))
    return hooks
