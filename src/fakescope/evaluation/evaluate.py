"""Evaluate detectors on labelled sources: metrics, plots and one HTML report, on disk.

The decision threshold comes from validation data, never from the test data: the bundle's
(chosen on validation at training time) or one chosen here on `val_source`. The threshold
that would be best on the test data is reported only as the labelled "oracle".

Each image gets the verdict `predict` would give it (`fakescope.verdict.rule.verdicts`): the
pixel score from `Detector.score_prepared` (with the domain score, for a detector that has a
domain model), combined with the file's provenance evidence, read from the same bytes the
pixels are decoded from; unsure inside the unsure band or outside the domain. The metrics
are computed on the final p(fake); coverage and risk (selective risk) on the unsure flags.

`faces=True` scores each image's largest face (cropped by the detector's face crop policy)
instead of the whole image, as `predict --faces` does; predictions.csv then says which face.
A folder of labelled videos (real/ and fake/ holding .mp4, .webm, ...) is evaluated one row
per video: each video's verdict is `fakescope.video.predict_video`'s (the mean p(fake) of its
sampled frames, or of its faces), and the metrics are over videos.

This module runs an evaluation from end to end; its parts live beside it, one job each:
`scored` (scored and judged images), `threshold_choice` (the threshold and its origin),
`groups` (per data set / generator rows, selective risk, provenance summary), `videos`
(folders of labelled videos), `predictions_csv` (predictions.csv and per-image rows) and
`compare` (several bundles on the same images). Their public names are importable from here
too, as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakescope.data.cache import decode_items
from fakescope.data.sources import Source, open_source
from fakescope.detectors import Detector
from fakescope.errors import ConfigError, SourceError
from fakescope.evaluation.compare import compare_models, model_names
from fakescope.evaluation.groups import (
    add_selective_columns,
    generator_groups,
    generator_masks,
    group_row,
    per_group_table,
    provenance_summary,
    selective_summary,
)
from fakescope.evaluation.metrics import BOOTSTRAP_RESAMPLES, binary_metrics, oracle_metrics
from fakescope.evaluation.predictions_csv import PREDICTION_COLUMNS, image_rows, write_predictions
from fakescope.evaluation.report import evaluation_report
from fakescope.evaluation.results import EvaluationMetrics, GroupTable, SelectiveSummary
from fakescope.evaluation.scored import (
    ScoredSet,
    concat_scored,
    judged,
    pixel_scores,
    score_decoded,
    score_items,
    select_items,
    subset,
    validation_split,
)
from fakescope.evaluation.threshold_choice import ThresholdChoice, resolve_threshold
from fakescope.evaluation.videos import (
    VideoFolder,
    face_summary,
    is_video_folder,
    score_videos,
    video_summary,
)
from fakescope.faces import FaceSelector
from fakescope.threads import decode_threads
from fakescope.verdict.pipeline import ProvenanceReader
from fakescope.verdict.rule import at_threshold
from fakescope.video import VideoOptions

__all__ = [  # the evaluation's public names, wherever in evaluation/ they now live
    "PREDICTION_COLUMNS",
    "ProvenanceReader",
    "ReportContext",
    "ReportHook",
    "ScoredSet",
    "ThresholdChoice",
    "at_threshold",
    "compare_models",
    "evaluate",
    "evaluation_plots",
    "generator_groups",
    "group_row",
    "image_rows",
    "model_names",
    "per_group_table",
    "pixel_scores",
    "resolve_threshold",
    "score_decoded",
    "score_items",
    "select_items",
    "subset",
    "validation_split",
    "write_predictions",
]
SourceSpec = str | os.PathLike


@dataclass
class ReportContext:
    """What a report hook is given besides the report builder: the evaluated detector, the
    pooled ScoredSet, the metrics (the hook adds its own entry, written to metrics.json),
    the output folder for its files, and whether to show progress bars."""

    detector: Detector
    scored: ScoredSet
    metrics: EvaluationMetrics
    out_dir: Path
    progress: bool = False


ReportHook = Callable[[Any, ReportContext], None]
"""Called as hook(report_builder, context) before report.html is written. Its time is
recorded in metrics["timings"] under the hook's `stage` attribute (else its name)."""


def _source_names(specs: Sequence[SourceSpec]) -> list[str]:
    names: list[str] = []
    for spec in specs:
        path = Path(spec)
        name = path.name if path.name not in ("labels.csv", "manifest.csv") else str(path)
        while name in names:
            name = f"{name}#{len(names) + 1}"
        names.append(name)
    return names


# -- evaluate --------------------------------------------------------------------------------
@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block to timings[stage] (seconds)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - started, 3)


def evaluate(
    detector: Detector,
    source_spec: SourceSpec | Sequence[SourceSpec],
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    progress: bool = True,
    val_source: SourceSpec | None = None,
    val_split: str | None = None,
    threshold_policy: str | None = None,
    target_fpr: float | None = None,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    report: bool = True,
    report_hooks: Sequence[ReportHook] = (),
    provenance: bool = True,
    faces: bool = False,
    video_options: VideoOptions | None = None,
) -> EvaluationMetrics:
    """Evaluate on one or more sources; write OUT/metrics.json, predictions.csv, the PNG
    plots and report.html; return the metrics.

    Top-level metrics are pooled over all sources; with several sources (or a manifest
    with a generator column) `per_group` holds one row per source (generator) + the mean.
    `report_hooks` add sections to the report (see fakescope.evaluation.report_sections);
    `metrics["timings"]` holds the seconds spent per stage. Verdicts are `predict`'s: pixels
    (domain score included) and each file's provenance; `provenance=False` judges the pixels
    alone. `metrics["selective"]` holds coverage, risk and AURC, overall and per group;
    `metrics["provenance"]` what the files' provenance said and how many verdicts it changed.
    `faces`: score each image's largest face (see the module's docstring). Folders of
    labelled videos are evaluated per video (`video_options`: sampling; `faces` crops the
    frames' faces); `metrics["videos"]` then says how.
    """
    specs = [source_spec] if isinstance(source_spec, str | os.PathLike) else list(source_spec)
    if not specs:
        raise SourceError("no source to evaluate")
    selector = FaceSelector(detector.face_policy) if faces else None
    timings: dict[str, float] = {}
    video_specs = [spec for spec in specs if is_video_folder(spec)]
    if video_specs:
        if len(video_specs) != len(specs) or val_source is not None or split is not None:
            raise ConfigError(
                "videos are evaluated on their own: give only folders of labelled videos "
                "(real/ and fake/), without --val or --split"
            )
        options = dataclasses.replace(video_options or VideoOptions(), faces=faces)
        with _timed(timings, "score"):
            parts = [score_videos(detector, spec, options, progress=progress) for spec in specs]
        folders: list[Source] = [VideoFolder(str(spec)) for spec in specs]
        choice = resolve_threshold(detector)
        return _finish_evaluation(
            detector, folders, _source_names(specs), parts, choice, out_dir, timings,
            split=None, bootstrap=bootstrap, seed=seed, report=report, report_hooks=(),
            progress=progress, provenance=False, videos=options,
        )  # fmt: skip
    with _timed(timings, "open"):
        sources = [open_source(spec) for spec in specs]
        selected = [select_items(source, split) for source in sources]
    with _timed(timings, "threshold"):
        choice = resolve_threshold(
            detector,
            val_source=val_source,
            val_split=val_split,
            policy=threshold_policy,
            target_fpr=target_fpr,
            test_paths=[it.path for items in selected for it in items],
            progress=progress,
            bootstrap=bootstrap,
            faces=selector,
        )
    names = _source_names(specs)
    parts = []
    with decode_threads(detector.runtime):  # the face search beside onnxruntime
        for source, items, name in zip(sources, selected, names, strict=True):
            reader = ProvenanceReader(source.read_bytes, enabled=provenance)
            with _timed(timings, "decode"):  # provenance is read here, from the same bytes
                decoded = decode_items(
                    items,
                    reader,
                    detector.preprocessing,
                    progress=progress,
                    desc=f"decode {name}" if len(specs) > 1 else "decode",
                    faces=selector,
                    content=detector.meta.photos_only,  # as the verdict pipeline's content_of
                )
            with _timed(timings, "score"):
                parts.append(
                    judged(
                        detector,
                        decoded,
                        items,
                        threshold=choice.value,
                        evidence=reader.evidence if provenance else None,
                        progress=progress,
                    )
                )
            del decoded
    return _finish_evaluation(
        detector, sources, names, parts, choice, out_dir, timings, split=split,
        bootstrap=bootstrap, seed=seed, report=report, report_hooks=report_hooks,
        progress=progress, provenance=provenance, faces=selector,
    )  # fmt: skip


def _finish_evaluation(
    detector: Detector,
    sources: Sequence[Source],
    names: Sequence[str],
    parts: Sequence[ScoredSet],
    choice: ThresholdChoice,
    out_dir: str | os.PathLike,
    timings: dict[str, float],
    *,
    split: str | None,
    bootstrap: int,
    seed: int,
    report: bool,
    report_hooks: Sequence[ReportHook],
    progress: bool,
    provenance: bool,
    faces: FaceSelector | None = None,
    videos: VideoOptions | None = None,
) -> EvaluationMetrics:
    """Pooled metrics, predictions.csv, plots, report.html and metrics.json."""
    with _timed(timings, "metrics"):
        scored, metrics = _pooled_metrics(
            detector, sources, names, parts, choice, split=split, bootstrap=bootstrap, seed=seed
        )
        metrics["provenance"] = provenance_summary(
            scored, at_threshold(detector, choice.value), read=provenance
        )
        if faces is not None:
            metrics["faces"] = face_summary(scored, faces)
        if videos is not None:
            metrics["videos"] = video_summary(scored, videos)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", scored, detector, threshold=choice.value)
    if report:
        with _timed(timings, "plots"):
            plots = evaluation_plots(scored, metrics, out, labels=detector.meta.labels)
            metrics["plots"] = {name: path.name for name, path in plots.items()}
            metrics["report"] = "report.html"
            builder = _build_report(metrics, plots, detector, scored)
        context = ReportContext(detector, scored, metrics, out, progress)
        for hook in report_hooks:
            with _timed(timings, getattr(hook, "stage", getattr(hook, "__name__", "hook"))):
                hook(builder, context)
        with _timed(timings, "report"):
            builder.write(out / "report.html")
    metrics["timings"] = timings
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _pooled_metrics(
    detector: Detector,
    sources: Sequence[Source],
    names: Sequence[str],
    parts: Sequence[ScoredSet],
    choice: ThresholdChoice,
    *,
    split: str | None,
    bootstrap: int,
    seed: int,
) -> tuple[ScoredSet, EvaluationMetrics]:
    """The pooled ScoredSet and its metrics (with per-group rows, oracle, threshold source)."""
    scored = concat_scored(parts)
    threshold = choice.value
    metrics: EvaluationMetrics = {
        **binary_metrics(
            scored.labels,
            scored.p_fake,
            threshold,
            labels=detector.meta.labels,
            bootstrap=bootstrap,
            seed=seed,
        )
    }
    per_group: GroupTable | None = None
    groups: list[tuple[str, ScoredSet]] = []
    by = "data set"
    if len(parts) > 1:
        groups = list(zip(names, parts, strict=True))
    elif (masks := generator_masks(scored)) is not None:
        groups, by = [(name, subset(scored, mask)) for name, mask in masks], "generator"
    if groups:
        per_group = per_group_table([(n, s.labels, s.p_fake) for n, s in groups], threshold, by=by)
        if by == "generator":
            per_group["note"] = "Reals without a generator are counted in every row."
    low, high = (
        detector.meta.unsure_band  # fitted or not, the band the verdicts were decided with
        if threshold == detector.threshold
        else _band(threshold, detector.meta.unsure_margin)
    )
    selective: SelectiveSummary | None = None
    if scored.predictions is not None:
        selective = selective_summary(scored, groups, threshold=threshold, band=(low, high), by=by)
        if per_group is not None:
            add_selective_columns(per_group, selective)
    metrics.update(
        {
            "source": str(sources[0].location)
            if len(sources) == 1
            else [s.location for s in sources],
            "sources": [str(s.location) for s in sources],
            "split": split,
            "bundle": str(detector.bundle_path) if detector.bundle_path else None,
            "temperature": detector.meta.temperature,
            "unsure_band": [low, high],
            "threshold_source": choice.to_dict(),
            "oracle": oracle_metrics(scored.labels, scored.p_fake),
            "per_group": per_group,
            "unreadable": [{"path": p, "reason": r} for p, r in scored.skipped],
        }
    )
    if selective is not None:
        metrics["selective"] = selective
    return scored, metrics


def _band(threshold: float, margin: float) -> tuple[float, float]:
    return max(0.0, threshold - margin), min(1.0, threshold + margin)


def _build_report(
    metrics: Mapping[str, Any], plots: dict[str, Path], detector: Detector, scored: ScoredSet
) -> Any:
    model = {"bundle": metrics.get("bundle"), "architecture": detector.meta.architecture}
    carrying = [i for i, p in enumerate(scored.predictions or []) if p.evidence]
    images = image_rows(scored, carrying, detector.meta.labels)
    return evaluation_report(metrics, plots, model=model, images=images)


def evaluation_plots(
    scored: ScoredSet, metrics: Mapping[str, Any], out: Path, *, labels: Sequence[str]
) -> dict[str, Path]:
    """The six standard PNG plots, named roc, pr, scores, reliability, thresholds, confusion,
    and with selective risk in `metrics`, risk_coverage (one curve per group and overall)."""
    from fakescope.evaluation import plots as P  # matplotlib: only when plots are drawn

    y, p, t = scored.labels, scored.p_fake, metrics["threshold"]
    cm = metrics["confusion_matrix"]
    extra: dict[str, Path] = {}
    selective = metrics.get("selective")
    if selective:
        rows = [*selective["per_group"], selective["overall"]]
        extra["risk_coverage"] = P.plot_risk_coverage(rows, out / "risk_coverage.png")
    return {
        "roc": P.plot_roc(y, p, out / "roc.png"),
        "pr": P.plot_pr(y, p, out / "pr.png"),
        "scores": P.plot_score_distributions(
            y, p, t, out / "scores.png", unsure_band=tuple(metrics["unsure_band"]), labels=labels
        ),
        "reliability": P.plot_reliability(
            metrics["reliability"]["bins"], metrics["ece"], out / "reliability.png"
        ),
        "thresholds": P.plot_metrics_vs_threshold(y, p, t, out / "thresholds.png"),
        "confusion": P.plot_confusion_matrix(
            cm["rows_true_cols_pred"], cm["normalized"], out / "confusion.png", labels=labels
        ),
        **extra,
    }
