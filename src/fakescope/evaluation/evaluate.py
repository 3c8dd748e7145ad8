"""Evaluate detectors on labelled sources: metrics, plots and one HTML report, on disk.

The decision threshold comes from validation data, never from the test data: the bundle's
(chosen on validation at training time) or one chosen here on `val_source`. The threshold
that would be best on the test data is reported only as the labelled "oracle".

Each image gets the verdict `predict` would give it (`fakescope.inference.verdicts`): the
pixel score from `Detector.score_prepared` (with the domain score, for a detector that has a
domain model), combined with the file's provenance evidence, read from the same bytes the
pixels are decoded from; unsure inside the unsure band or outside the domain. The metrics
are computed on the final p(fake); coverage and risk (selective risk) on the unsure flags.

`faces=True` scores each image's largest face (cropped by the detector's face crop policy)
instead of the whole image, as `predict --faces` does; predictions.csv then says which face.
A folder of labelled videos (real/ and fake/ holding .mp4, .webm, ...) is evaluated one row
per video: each video's verdict is `fakescope.video.predict_video`'s (the mean p(fake) of its
sampled frames, or of its faces), and the metrics are over videos.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.cache import DecodedSet, ReadBytes, decode_items
from fakescope.data.sources import Item, Source, open_source
from fakescope.detectors import Detector, PixelScores, load_detector
from fakescope.errors import ConfigError, SourceError
from fakescope.evaluation.metrics import (
    BOOTSTRAP_RESAMPLES,
    THRESHOLD_POLICIES,
    ThresholdPolicy,
    binary_metrics,
    choose_threshold,
    oracle_metrics,
)
from fakescope.evaluation.results import (
    BinaryMetrics,
    EvaluationMetrics,
    GroupRow,
    GroupTable,
    ProvenanceSummary,
    SelectiveRow,
    SelectiveSummary,
    ThresholdSource,
)
from fakescope.evaluation.selective import MistakeRow, confident_mistakes, selective_risk
from fakescope.faces import FaceSelector
from fakescope.inference import (
    CSV_FIELDS,
    OUT_OF_DOMAIN,
    UNSURE_BAND,
    Prediction,
    report_joined_faces,
    verdicts,
)
from fakescope.provenance import Evidence, read_provenance
from fakescope.threads import decode_threads
from fakescope.video import VideoOptions, VideoPrediction, predict_video

SourceSpec = str | os.PathLike


@dataclass
class ScoredSet:
    """Labels and calibrated p(fake) for the readable images of a source; with `predictions`
    (from `evaluate`) each image's whole verdict, whose p_fake is `p_fake` (pixels and
    provenance combined). `logits` are the raw pixel logits, where they were kept."""

    paths: list[str]
    labels: np.ndarray
    p_fake: np.ndarray
    skipped: list[tuple[str, str]]
    logits: np.ndarray | None = None
    generators: list[str | None] | None = None
    predictions: list[Prediction] | None = None
    sources: list[str | None] | None = None  # the manifest's `source` column, per image
    videos: list[VideoPrediction] | None = None  # per video, when the items are videos
    # the explaining model's penultimate features, where scoring computed them (domain score)
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def unsure(self) -> np.ndarray | None:
        """Per image, whether the verdict is unsure (None without predictions)."""
        if self.predictions is None:
            return None
        return np.array([bool(p.unsure) for p in self.predictions], dtype=bool)

    def in_domain(self) -> np.ndarray | None:
        """Per image, whether it is inside the detector's domain; None when the detector has
        no domain model (or without predictions)."""
        if not self.predictions or any(p.in_domain is None for p in self.predictions):
            return None
        return np.array([bool(p.in_domain) for p in self.predictions], dtype=bool)


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


def score_decoded(
    detector: Detector, decoded: DecodedSet, *, batch_size: int = 256, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, p_fake) of decoded images; p_fake exactly as Detector.probabilities."""
    z = detector.logits_in_batches(decoded.images, batch_size=batch_size, progress=progress)
    return z.numpy(), detector.calibrate(z)


def score_items(
    detector: Detector,
    source: Source,
    items: list[Item],
    *,
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "decode",
    faces: FaceSelector | None = None,
) -> ScoredSet:
    """Decode (once) and score items (their largest faces, with `faces`); unreadable ones
    are listed in `skipped`."""
    decoded = decode_items(
        items, source.read_bytes, detector.preprocessing, progress=progress, desc=desc, faces=faces
    )
    return _scored(detector, decoded, items, batch_size=batch_size, progress=progress)


def _scored(
    detector: Detector,
    decoded: DecodedSet,
    items: Sequence[Item],
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> ScoredSet:
    logits, p_fake = score_decoded(detector, decoded, batch_size=batch_size, progress=progress)
    generator = {it.path: it.generator for it in items}
    source = {it.path: it.source for it in items}
    return ScoredSet(
        decoded.paths,
        decoded.labels.numpy().astype(int),
        p_fake,
        decoded.skipped,
        logits=logits,
        generators=[generator.get(p) for p in decoded.paths],
        sources=[source.get(p) for p in decoded.paths],
    )


# -- verdicts: pixels (and domain) + provenance, as predict gives them ---------------------
class ProvenanceReader:
    """A `read_bytes` for `decode_items` that also reads each file's provenance from the
    same bytes, so every file is read once. Thread-safe: decode_items reads in threads."""

    def __init__(self, read_bytes: ReadBytes, *, enabled: bool = True) -> None:
        self.read_bytes = read_bytes
        self.enabled = enabled
        self.evidence: dict[str, list[Evidence]] = {}
        self._lock = threading.Lock()

    def __call__(self, item: Item) -> bytes:
        data = self.read_bytes(item)
        if self.enabled:
            found = read_provenance(data, item.path)  # never raises
            with self._lock:
                self.evidence[item.path] = found
        return data


def at_threshold(detector: Detector, threshold: float) -> Detector:
    """`detector` deciding at `threshold` (its unsure band moved with it): a shallow copy,
    so verdicts at a threshold chosen on validation data follow the one rule in
    `fakescope.inference.verdict` without touching the caller's detector."""
    if threshold == detector.threshold:
        return detector
    view = copy.copy(detector)
    view.meta = dataclasses.replace(detector.meta, threshold=float(threshold))
    return view


def pixel_scores(
    detector: Detector,
    images: Sequence[np.ndarray] | Any,
    *,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "score",
) -> PixelScores:
    """`detector.score_prepared` over prepared images (N, 3, S, S) or native crops
    (N, K, 3, S, S), `batch_size` at a time with a progress bar."""
    parts: list[PixelScores] = []
    n = len(images)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            chunk = images[start : start + batch_size]
            parts.append(detector.score_prepared(chunk, batch_size=batch_size))
            bar.update(len(chunk))

    return PixelScores.concat(parts)


def judged(
    detector: Detector,
    decoded: DecodedSet,
    items: Sequence[Item],
    *,
    threshold: float,
    evidence: Mapping[str, Sequence[Evidence]] | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> ScoredSet:
    """Decoded images scored by `detector.score_prepared` and judged by
    `fakescope.inference.verdicts` at `threshold`, with each file's evidence (by path)."""
    scores = pixel_scores(detector, decoded.images, batch_size=batch_size, progress=progress)
    found = None if evidence is None else [list(evidence.get(p, ())) for p in decoded.paths]
    predictions = verdicts(
        at_threshold(detector, threshold), decoded.paths, scores, found, faces=decoded.faces
    )
    if decoded.faces is None and decoded.sizes is not None:  # a face-aware detector's faces
        report_joined_faces(predictions, scores, decoded.sizes)
    generator = {it.path: it.generator for it in items}
    source = {it.path: it.source for it in items}
    return ScoredSet(
        decoded.paths,
        decoded.labels.numpy().astype(int),
        np.array([p.p_fake for p in predictions], dtype=np.float64),
        decoded.skipped,
        generators=[generator.get(p) for p in decoded.paths],
        predictions=predictions,
        sources=[source.get(p) for p in decoded.paths],
        features=scores.features if decoded.faces is None else None,  # not of face crops
    )


def concat_scored(sets: Sequence[ScoredSet]) -> ScoredSet:
    def cat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        present = [a for a in arrays if a is not None]
        return np.concatenate(present) if len(present) == len(arrays) else None

    return ScoredSet(
        [p for s in sets for p in s.paths],
        np.concatenate([s.labels for s in sets]),
        np.concatenate([s.p_fake for s in sets]),
        [x for s in sets for x in s.skipped],
        logits=cat([s.logits for s in sets]),
        generators=[g for s in sets for g in (s.generators or [None] * len(s))],
        predictions=[p for s in sets for p in s.predictions or []]
        if all(s.predictions is not None for s in sets)
        else None,
        videos=[v for s in sets for v in s.videos or []] or None,
        sources=[x for s in sets for x in (s.sources or [None] * len(s))],
        features=cat([s.features for s in sets]),
    )


def validation_split(source: Source, split: str | None) -> str | None:
    """`split` when given; else 'val' when the source has a val split (a manifest from
    `fakescope data split` or `fakescope train`), else None: all labelled images."""
    if split is None and any(it.split == "val" for it in source.items):
        return "val"
    return split


def select_items(source: Source, split: str | None = None) -> list[Item]:
    items = [it for it in source.items if it.label is not None]
    if split is not None:
        items = [it for it in items if it.split == split]
    if not items:
        where = f" in split {split!r}" if split else ""
        raise SourceError(f"{source.location}: no labelled images{where} to evaluate")
    return items


# -- the threshold -------------------------------------------------------------------------
@dataclass
class ThresholdChoice:
    """The decision threshold and where it came from (never the test data)."""

    value: float
    kind: str  # "bundle" | "validation"
    description: str
    policy: str | None = None
    target_fpr: float | None = None
    val_source: str | None = None
    val_split: str | None = None
    val_n: int | None = None
    val_metrics: BinaryMetrics | None = None

    def to_dict(self) -> ThresholdSource:
        return cast(ThresholdSource, asdict(self))  # the same fields, as JSON-ready values


def _bundle_policy(detector: Detector) -> str:
    decision = detector.meta.training.get("recipe", {}).get("decision", {})
    policy = decision.get("threshold_policy", "max_f1")
    return policy if policy in THRESHOLD_POLICIES and policy != "fixed" else "max_f1"


def resolve_threshold(
    detector: Detector,
    *,
    val_source: SourceSpec | None = None,
    val_split: str | None = None,
    policy: str | None = None,
    target_fpr: float | None = None,
    test_paths: Iterable[str] = (),
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    faces: FaceSelector | None = None,
) -> ThresholdChoice:
    """The bundle's threshold, or one chosen with `policy` on `val_source`.

    Refuses a policy without validation data (that would tune on the test data) and
    validation data that shares images with the test data.
    """
    if policy not in (None, "bundle", *THRESHOLD_POLICIES):
        raise ConfigError(
            f"unknown threshold policy {policy!r}; use bundle, {', '.join(THRESHOLD_POLICIES)}"
        )
    if val_source is None:
        if policy not in (None, "bundle"):
            raise ConfigError(
                f"threshold policy {policy!r} needs validation data (--val SOURCE): thresholds "
                "are chosen on validation data, never on the test data"
            )
        return _bundle_threshold(detector)
    if policy == "bundle":
        raise ConfigError(
            "--threshold-policy bundle keeps the bundle's threshold: drop --val, "
            f"or choose one of {', '.join(p for p in THRESHOLD_POLICIES if p != 'fixed')}"
        )
    if policy == "fixed":
        raise ConfigError("threshold policy 'fixed' chooses nothing on validation data")
    policy = policy or _bundle_policy(detector)
    if policy == "target_fpr":
        target_fpr = 0.01 if target_fpr is None else float(target_fpr)
    source, val_split, items = _validation_items(val_source, val_split, test_paths)
    scored = score_items(detector, source, items, progress=progress, desc="decode val", faces=faces)
    chosen = cast(ThresholdPolicy, policy)  # checked against THRESHOLD_POLICIES above
    value = choose_threshold(scored.labels, scored.p_fake, chosen, target_fpr=target_fpr or 0.01)
    where = f"{source.location}" + (f" (split {val_split})" if val_split else "")
    detail = f"policy {policy}" + (f", target FPR {target_fpr}" if policy == "target_fpr" else "")
    return ThresholdChoice(
        value,
        "validation",
        f"validation data {where}, {detail}, n={len(scored)}",
        policy=policy,
        target_fpr=target_fpr,
        val_source=str(source.location),
        val_split=val_split,
        val_n=len(scored),
        val_metrics=binary_metrics(scored.labels, scored.p_fake, value, bootstrap=bootstrap),
    )


def _bundle_threshold(detector: Detector) -> ThresholdChoice:
    """The bundle's own threshold, with the policy it was chosen by at training time."""
    origin = detector.meta.training.get("recipe", {}).get("decision", {})
    how = origin.get("threshold_policy")
    return ThresholdChoice(
        detector.threshold,
        "bundle",
        "the bundle (chosen on validation data at training time"
        + (f", policy {how})" if how else ")"),
        policy=how,
    )


def _validation_items(
    val_source: SourceSpec, val_split: str | None, test_paths: Iterable[str]
) -> tuple[Source, str | None, list[Item]]:
    """The validation source, its split (the val split by default) and its items; refuses
    validation data that shares images with the test data."""
    source = open_source(val_source)
    val_split = validation_split(source, val_split)
    items = select_items(source, val_split)
    overlap = {it.path for it in items} & set(test_paths)
    if overlap:
        raise ConfigError(
            f"the validation data shares {len(overlap)} images with the test data (e.g. "
            f"{sorted(overlap)[0]}); choose the threshold on separate data (--split/--val-split)"
        )
    return source, val_split, items


# -- per data set / generator ----------------------------------------------------------------
GROUP_KEYS = ("accuracy", "real_accuracy", "fake_accuracy", "f1", "roc_auc", "average_precision")


def group_row(name: str, labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> GroupRow:
    m = binary_metrics(labels, p_fake, threshold, bootstrap=0)
    normalized = m["confusion_matrix"]["normalized"]
    return {
        "group": name,
        "n": m["n"],
        "n_real": int(np.sum(labels == 0)),
        "n_fake": int(np.sum(labels == 1)),
        "accuracy": m["accuracy"],
        "real_accuracy": normalized[0][0],
        "fake_accuracy": normalized[1][1],
        "f1": m["f1"],
        "roc_auc": m["roc_auc"],
        "average_precision": m["average_precision"],
        "eer": m["eer"],
    }


def per_group_table(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]], threshold: float, *, by: str
) -> GroupTable:
    """One row per (name, labels, p_fake) group plus the unweighted mean row."""
    rows = [group_row(name, y, p, threshold) for name, y, p in groups]
    mean: dict[str, float | int | str | None] = {"group": "mean", "n": sum(r["n"] for r in rows)}
    for key in (*GROUP_KEYS, "eer"):
        values = [v for r in rows if (v := r[key]) is not None]  # type: ignore[literal-required]
        mean[key] = float(np.mean(values)) if values else None
    return {"by": by, "rows": rows, "mean": mean}


def generator_masks(scored: ScoredSet) -> list[tuple[str, np.ndarray]] | None:
    """(generator, boolean mask) per generator; None when there are fewer than two.

    Reals without a generator are shared by every group (each row = all reals + that
    generator's fakes, so AUC is defined); reals with one belong to their generator's row.
    """
    gens = scored.generators or []
    names = sorted({g for g in gens if g})
    if len(names) < 2:
        return None
    gens_arr = np.array([g or "" for g in gens], dtype=object)
    shared_reals = (gens_arr == "") & (scored.labels == 0)
    return [(name, (gens_arr == name) | shared_reals) for name in names]


def generator_groups(scored: ScoredSet) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """(generator, labels, p_fake) per generator (see `generator_masks`), or None."""
    masks = generator_masks(scored)
    if masks is None:
        return None
    return [(name, scored.labels[mask], scored.p_fake[mask]) for name, mask in masks]


def subset(scored: ScoredSet, mask: np.ndarray) -> ScoredSet:
    """The images of `scored` where `mask` is true (everything per image kept)."""
    index = np.flatnonzero(mask)

    def pick(values: list[Any] | None) -> list[Any] | None:
        return None if values is None else [values[i] for i in index]

    return ScoredSet(
        [scored.paths[i] for i in index],
        scored.labels[index],
        scored.p_fake[index],
        [],
        logits=None if scored.logits is None else scored.logits[index],
        generators=pick(scored.generators),
        predictions=pick(scored.predictions),
        sources=pick(scored.sources),
        features=None if scored.features is None else scored.features[index],
    )


# -- selective risk and provenance -----------------------------------------------------------
SELECTIVE_KEYS = (
    "coverage",
    "risk",
    "confident_wrong",
    "real_called_fake_confidently",
    "fake_called_real_confidently",
    "aurc",
)


def selective_row(name: str, scored: ScoredSet, threshold: float) -> SelectiveRow:
    """Coverage, risk and the risk-coverage curve of judged images (`scored.predictions`):
    confident answers are the verdicts that are not unsure, for either reason."""
    unsure = scored.unsure()
    if unsure is None:
        raise ValueError("selective risk needs the verdicts (ScoredSet.predictions)")
    result = selective_risk(scored.labels, scored.p_fake, threshold, unsure, scored.in_domain())
    reasons = Counter(p.unsure_reason for p in scored.predictions or [])
    return {
        "group": name,
        "n": result["n"],
        "coverage": result["coverage"],
        "risk": result["risk"],
        "confident_wrong": result["confident_wrong"],
        "real_called_fake_confidently": result["real_called_fake_confidently"],
        "fake_called_real_confidently": result["fake_called_real_confidently"],
        "aurc": result["aurc"],
        "unsure": int(unsure.sum()),
        "unsure_band": reasons[UNSURE_BAND],
        "out_of_domain": reasons[OUT_OF_DOMAIN],
        "curve_coverage": result["curve_coverage"],
        "curve_risk": result["curve_risk"],
    }


def selective_summary(
    scored: ScoredSet,
    groups: Sequence[tuple[str, ScoredSet]],
    *,
    threshold: float,
    band: tuple[float, float],
    by: str | None,
) -> SelectiveSummary:
    """metrics.json["selective"]: overall and one row per group, and the confident
    mistakes in both directions per source and per generator."""
    return {
        "threshold": float(threshold),
        "unsure_band": [band[0], band[1]],
        "domain_model": scored.in_domain() is not None,
        "overall": selective_row("overall", scored, threshold),
        "by": by if groups else None,
        "per_group": [selective_row(name, part, threshold) for name, part in groups],
        "mistakes": mistakes_by(scored, threshold),
    }


def mistakes_by(scored: ScoredSet, threshold: float) -> dict[str, list[MistakeRow]]:
    """Reals confidently called fake and AI images confidently called real, per "source"
    and per "generator" named by the images (a column left empty gives no entry)."""
    unsure = scored.unsure()
    if unsure is None:
        raise ValueError("confident mistakes need the verdicts (ScoredSet.predictions)")
    out: dict[str, list[MistakeRow]] = {}
    for by, names in (("source", scored.sources), ("generator", scored.generators)):
        if names and any(names):
            groups = np.array([n or "" for n in names], dtype=object)
            out[by] = confident_mistakes(scored.labels, scored.p_fake, threshold, unsure, groups)
    return out


def provenance_summary(scored: ScoredSet, detector: Detector, *, read: bool) -> ProvenanceSummary:
    """How many images carried which signal/claim, and how many verdicts the evidence
    changed: the verdict from the pixels alone (same rule, no evidence) against the final."""
    predictions = scored.predictions or []
    counts: Counter[str] = Counter()
    changed = labels_changed = 0
    for p in predictions:
        counts.update({f"{e['signal']}/{e['claim']}" for e in p.evidence})  # once per image
        if not p.evidence or p.p_fake_pixels is None:
            continue
        alone = verdicts(
            detector,
            [p.path],
            PixelScores(
                np.array([p.p_fake_pixels]),
                None if p.domain_score is None else np.array([p.domain_score]),
            ),
        )[0]
        labels_changed += alone.label != p.label
        changed += (alone.label, alone.unsure) != (p.label, p.unsure)
    return {
        "read": read,
        "images": len(predictions),
        "images_with_evidence": sum(1 for p in predictions if p.evidence),
        "counts": dict(sorted(counts.items())),
        "verdicts_changed": changed,
        "labels_changed": labels_changed,
        "disagreements": sum(1 for p in predictions if p.disagreement),
    }


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
        folders: list[Source] = [_VideoFolder(str(spec)) for spec in specs]
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
            _add_selective_columns(per_group, selective)
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


def _add_selective_columns(per_group: GroupTable, selective: SelectiveSummary) -> None:
    """Coverage, risk and AURC in the per-group table, and their unweighted mean."""
    for row, sel in zip(per_group["rows"], selective["per_group"], strict=True):
        row["coverage"] = sel["coverage"]
        row["risk"] = sel["risk"]
        row["confident_wrong"] = sel["confident_wrong"]
        row["real_called_fake_confidently"] = sel["real_called_fake_confidently"]
        row["fake_called_real_confidently"] = sel["fake_called_real_confidently"]
        row["aurc"] = sel["aurc"]
    for key in SELECTIVE_KEYS:
        values = [v for sel in selective["per_group"] if (v := sel[key]) is not None]  # type: ignore[literal-required]
        per_group["mean"][key] = float(np.mean(values)) if values else None


def _band(threshold: float, margin: float) -> tuple[float, float]:
    return max(0.0, threshold - margin), min(1.0, threshold + margin)


def image_rows(
    scored: ScoredSet, indices: Iterable[int], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Per image: path, true label, p_fake and (with verdicts) the verdict's other fields,
    for the report's per-image tables and metrics.json."""
    rows = []
    for i in indices:
        row: dict[str, Any] = {"path": scored.paths[i], "label": labels[int(scored.labels[i])]}
        if scored.predictions is not None:
            verdict = scored.predictions[i].to_dict()
            row.update({k: v for k, v in verdict.items() if k not in ("path", "label", "error")})
            row["predicted"] = verdict["label"]
        row["p_fake"] = float(scored.p_fake[i])
        rows.append(row)
    return rows


def _build_report(
    metrics: Mapping[str, Any], plots: dict[str, Path], detector: Detector, scored: ScoredSet
) -> Any:
    from fakescope.evaluation.report import evaluation_report

    model = {"bundle": metrics.get("bundle"), "architecture": detector.meta.architecture}
    carrying = [i for i, p in enumerate(scored.predictions or []) if p.evidence]
    images = image_rows(scored, carrying, detector.meta.labels)
    return evaluation_report(metrics, plots, model=model, images=images)


def evaluation_plots(
    scored: ScoredSet, metrics: Mapping[str, Any], out: Path, *, labels: Sequence[str]
) -> dict[str, Path]:
    """The six standard PNG plots, named roc, pr, scores, reliability, thresholds, confusion,
    and with selective risk in `metrics`, risk_coverage (one curve per group and overall)."""
    from fakescope.evaluation import plots as P

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


PREDICTION_COLUMNS = ("path", "label", "p_fake", "predicted", "unsure", *CSV_FIELDS[5:])
"""predictions.csv: the first five columns as before, then the verdict's other fields."""


def write_predictions(
    path: Path, scored: ScoredSet, detector: Detector, *, threshold: float | None = None
) -> None:
    """One row per image: path, true label, p_fake, predicted label and unsure (0/1) at
    `threshold` (default: the bundle's), then p_fake_pixels, unsure_reason, domain_score,
    in_domain, max_crop_p_fake, evidence and disagreement (see `PREDICTION_COLUMNS`)."""
    names = detector.meta.labels
    t = detector.threshold if threshold is None else threshold
    predictions = scored.predictions
    if predictions is None:  # scores without verdicts: judge the pixels by the same rule
        predictions = verdicts(at_threshold(detector, t), scored.paths, PixelScores(scored.p_fake))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PREDICTION_COLUMNS)
        for y, prediction in zip(scored.labels, predictions, strict=True):
            row = prediction.to_row()
            extra = [_csv_value(row[key]) for key in PREDICTION_COLUMNS[5:]]
            writer.writerow(
                [
                    prediction.path,
                    names[int(y)],
                    f"{row['p_fake']:.6f}",
                    prediction.label,
                    row["unsure"],
                    *extra,
                ]
            )


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


# -- faces and videos -------------------------------------------------------------------------
def face_summary(scored: ScoredSet, faces: FaceSelector) -> dict[str, Any]:
    """metrics.json["faces"]: the crop policy and how many images had a face to score."""
    predictions = scored.predictions or []
    with_face = sum(1 for p in predictions if p.face_box is not None)
    return {
        "policy": faces.policy.to_dict(),
        "images": len(predictions),
        "with_face": with_face,
        "without_face": len(predictions) - with_face,
        "finder_note": faces.finder_note,
    }


def is_video_folder(spec: SourceSpec) -> bool:
    """A folder holding videos and no images: evaluated one row per video."""
    from fakescope.video import _folder_videos

    if not Path(spec).is_dir():
        return False
    videos, has_images = _folder_videos(os.fspath(spec))
    return bool(videos) and not has_images


class _VideoFolder(Source):
    """A folder of labelled videos, for the metrics' source fields (videos are not images:
    they are read by `fakescope.video`, never through `read_bytes`)."""

    def read_bytes(self, item: Item) -> bytes:
        raise SourceError(f"{item.path}: a video; read it with fakescope.video")


def labelled_videos(folder: SourceSpec) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(path, label) of each video under `folder`, labelled by the first folder on its way
    named like a class (real/, fake/, ...); (path, reason) for videos outside such folders."""
    from fakescope.data.sources import normalize_label
    from fakescope.video import _folder_videos

    root = Path(folder)
    found: list[tuple[str, int]] = []
    unlabelled: list[tuple[str, str]] = []
    for path in _folder_videos(os.fspath(folder))[0]:
        parts = Path(path).relative_to(root).parts[:-1]
        labels = [label for part in parts if (label := normalize_label(part)) is not None]
        if labels:
            found.append((path, labels[0]))
        else:
            unlabelled.append((path, "not inside a real/ or fake/ folder: no label"))
    if not found:
        raise SourceError(f"{folder}: no videos inside real/ and fake/ folders to evaluate")
    return found, unlabelled


def score_videos(
    detector: Detector, folder: SourceSpec, options: VideoOptions, *, progress: bool = True
) -> ScoredSet:
    """One verdict per labelled video (`predict_video`'s mean over its sampled frames or
    faces, judged by `fakescope.inference.verdict`); unreadable videos are skipped with the
    reason. Each prediction's face_note carries the video's note; `videos` its details."""
    from fakescope.errors import VideoError

    found, skipped = labelled_videos(folder)
    paths, labels, predictions, details = [], [], [], []
    for path, label in tqdm(found, desc="videos", unit="video", disable=not progress):
        try:
            video = predict_video(detector, path, options)
        except VideoError as exc:
            skipped.append((path, exc.reason))
            continue
        assert video.p_fake is not None  # a readable video always has a score
        prediction = verdicts(detector, [path], PixelScores(np.array([video.p_fake])))[0]
        prediction.face_note = video.note
        if options.faces:
            prediction.faces_found = sum(1 for f in video.frames if f.face is not None)
        paths.append(path)
        labels.append(label)
        predictions.append(prediction)
        details.append(video)
    return ScoredSet(
        paths,
        np.array(labels, dtype=int),
        np.array([p.p_fake for p in predictions], dtype=np.float64),
        skipped,
        predictions=predictions,
        videos=details,
    )


def video_summary(scored: ScoredSet, options: VideoOptions) -> dict[str, Any]:
    """metrics.json["videos"]: how videos were sampled and scored, and per-video details."""
    videos = scored.videos or []
    return {
        "n": len(videos),
        "fps": options.fps,
        "max_frames": options.max_frames,
        "faces": options.faces,
        "verdict": "mean p(fake) of each video's scored frames (faces, with faces)",
        "rows": [
            {
                "path": v.path,
                "frames_sampled": v.frames_sampled,
                "frames_scored": v.frames_scored,
                "fraction_over_threshold": v.fraction_over_threshold,
                "max_p_fake": v.max_p_fake,
                "note": v.note,
            }
            for v in videos
        ],
    }


# -- compare ---------------------------------------------------------------------------------
def model_names(bundles: Sequence[SourceSpec]) -> list[str]:
    """Short unique names: the bundle folder, or its run folder when it is called 'bundle'."""
    names: list[str] = []
    for bundle in bundles:
        path = Path(bundle).resolve()
        name = path.parent.name if path.name == "bundle" else path.name
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def compare_models(
    bundles: Sequence[SourceSpec],
    source_spec: SourceSpec,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    device: str = "auto",
) -> dict[str, Any]:
    """Score several bundles on the same images; write metrics.json, roc.png, pr.png and
    report.html (one table, overlaid curves). Each model keeps its own bundle threshold.
    Images are decoded once per distinct preprocessing."""
    from fakescope.evaluation import plots as P
    from fakescope.evaluation.report import comparison_report

    if not bundles:
        raise ConfigError("compare needs at least one bundle")
    source = open_source(source_spec)
    items = select_items(source, split)
    decoded_by_pre: dict[str, DecodedSet] = {}
    models, curves = [], {}
    names = model_names(bundles)
    for name, bundle in zip(names, bundles, strict=True):
        detector = load_detector(bundle, device=device)
        key = json.dumps(detector.preprocessing.to_dict(), sort_keys=True)
        if key not in decoded_by_pre:
            decoded_by_pre[key] = decode_items(
                items, source.read_bytes, detector.preprocessing, progress=progress
            )
        scored = _scored(detector, decoded_by_pre[key], items, progress=progress)
        metrics = binary_metrics(
            scored.labels, scored.p_fake, detector.threshold, bootstrap=bootstrap
        )
        models.append(
            {
                "name": name,
                "bundle": str(bundle),
                "architecture": detector.meta.architecture,
                "metrics": metrics,
            }
        )
        curves[name] = (scored.labels, scored.p_fake)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "roc": P.plot_roc_overlay(curves, out / "roc.png"),
        "pr": P.plot_pr_overlay(curves, out / "pr.png"),
    }
    result = {
        "source": str(source.location),
        "split": split,
        "models": models,
        "plots": {name: path.name for name, path in plots.items()},
        "report": "report.html",
    }
    comparison_report(result, plots).write(out / "report.html")
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
