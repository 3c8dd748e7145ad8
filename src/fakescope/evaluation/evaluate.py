"""Evaluate detectors on labelled sources: metrics, plots and one HTML report, on disk.

The decision threshold comes from validation data, never from the test data: the bundle's
(chosen on validation at training time) or one chosen here on `val_source`. The threshold
that would be best on the test data is reported only as the labelled "oracle".
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from fakescope.data.cache import DecodedSet, decode_items
from fakescope.data.sources import Item, Source, open_source
from fakescope.detectors import Detector, load_detector
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
    ThresholdSource,
)

SourceSpec = str | os.PathLike
ReportHook = Callable[[Any, dict[str, Any]], None]
"""Called as hook(report_builder, context) before report.html is written; context holds
the detector, the pooled ScoredSet, the metrics, out_dir and `progress`. Its time is
recorded in metrics["timings"] under the hook's `stage` attribute (else its name)."""


@dataclass
class ScoredSet:
    """Labels, raw logits and calibrated p(fake) for the readable images of a source."""

    paths: list[str]
    labels: np.ndarray
    p_fake: np.ndarray
    skipped: list[tuple[str, str]]
    logits: np.ndarray | None = None
    generators: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.paths)


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
) -> ScoredSet:
    """Decode (once) and score items; unreadable ones are listed in `skipped`."""
    decoded = decode_items(
        items, source.read_bytes, detector.preprocessing, progress=progress, desc=desc
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
    return ScoredSet(
        decoded.paths,
        decoded.labels.numpy().astype(int),
        p_fake,
        decoded.skipped,
        logits=logits,
        generators=[generator.get(p) for p in decoded.paths],
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
        origin = detector.meta.training.get("recipe", {}).get("decision", {})
        how = origin.get("threshold_policy")
        return ThresholdChoice(
            detector.threshold,
            "bundle",
            "the bundle (chosen on validation data at training time"
            + (f", policy {how})" if how else ")"),
            policy=how,
        )
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
    source = open_source(val_source)
    val_split = validation_split(source, val_split)
    items = select_items(source, val_split)
    overlap = {it.path for it in items} & set(test_paths)
    if overlap:
        raise ConfigError(
            f"the validation data shares {len(overlap)} images with the test data (e.g. "
            f"{sorted(overlap)[0]}); choose the threshold on separate data (--split/--val-split)"
        )
    scored = score_items(detector, source, items, progress=progress, desc="decode val")
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


def generator_groups(scored: ScoredSet) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """Groups by the generator column; None when there are fewer than two generators.

    Reals without a generator are shared by every group (each row = all reals + that
    generator's fakes, so AUC is defined); reals with one belong to their generator's row.
    """
    gens = scored.generators or []
    names = sorted({g for g in gens if g})
    if len(names) < 2:
        return None
    gens_arr = np.array([g or "" for g in gens], dtype=object)
    shared_reals = (gens_arr == "") & (scored.labels == 0)
    groups = []
    for name in names:
        mask = (gens_arr == name) | shared_reals
        groups.append((name, scored.labels[mask], scored.p_fake[mask]))
    return groups


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
) -> EvaluationMetrics:
    """Evaluate on one or more sources; write OUT/metrics.json, predictions.csv, the PNG
    plots and report.html; return the metrics.

    Top-level metrics are pooled over all sources; with several sources (or a manifest
    with a generator column) `per_group` holds one row per source (generator) + the mean.
    `report_hooks` add sections to the report (see fakescope.evaluation.report_sections);
    `metrics["timings"]` holds the seconds spent per stage.
    """
    specs = [source_spec] if isinstance(source_spec, str | os.PathLike) else list(source_spec)
    if not specs:
        raise SourceError("no source to evaluate")
    timings: dict[str, float] = {}
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
        )
    names = _source_names(specs)
    parts = []
    for source, items, name in zip(sources, selected, names, strict=True):
        with _timed(timings, "decode"):
            decoded = decode_items(
                items,
                source.read_bytes,
                detector.preprocessing,
                progress=progress,
                desc=f"decode {name}" if len(specs) > 1 else "decode",
            )
        with _timed(timings, "score"):
            parts.append(_scored(detector, decoded, items, progress=progress))
        del decoded
    with _timed(timings, "metrics"):
        scored, metrics = _pooled_metrics(
            detector, sources, names, parts, choice, split=split, bootstrap=bootstrap, seed=seed
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", scored, detector, threshold=choice.value)
    if report:
        with _timed(timings, "plots"):
            plots = evaluation_plots(scored, metrics, out, labels=detector.meta.labels)
            metrics["plots"] = {name: path.name for name, path in plots.items()}
            metrics["report"] = "report.html"
            builder = _build_report(metrics, plots, detector)
        context = {
            "detector": detector,
            "scored": scored,
            "metrics": metrics,
            "out_dir": out,
            "progress": progress,
        }
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
    per_group: GroupTable | None
    if len(parts) > 1:
        per_group = per_group_table(
            [(n, s.labels, s.p_fake) for n, s in zip(names, parts, strict=True)],
            threshold,
            by="data set",
        )
    else:
        groups = generator_groups(scored)
        per_group = per_group_table(groups, threshold, by="generator") if groups else None
        if per_group:
            per_group["note"] = "Reals without a generator are counted in every row."
    low, high = _band(threshold, detector.meta.unsure_margin)
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
    return scored, metrics


def _band(threshold: float, margin: float) -> tuple[float, float]:
    return max(0.0, threshold - margin), min(1.0, threshold + margin)


def _build_report(metrics: Mapping[str, Any], plots: dict[str, Path], detector: Detector) -> Any:
    from fakescope.evaluation.report import evaluation_report

    model = {"bundle": metrics.get("bundle"), "architecture": detector.meta.architecture}
    return evaluation_report(metrics, plots, model=model)


def evaluation_plots(
    scored: ScoredSet, metrics: Mapping[str, Any], out: Path, *, labels: Sequence[str]
) -> dict[str, Path]:
    """The six standard PNG plots, named roc, pr, scores, reliability, thresholds, confusion."""
    from fakescope.evaluation import plots as P

    y, p, t = scored.labels, scored.p_fake, metrics["threshold"]
    cm = metrics["confusion_matrix"]
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
    }


def write_predictions(
    path: Path, scored: ScoredSet, detector: Detector, *, threshold: float | None = None
) -> None:
    """path, label, p_fake, predicted, unsure per image, at `threshold` (default: bundle's)."""
    names = detector.meta.labels
    t = detector.threshold if threshold is None else threshold
    low, high = _band(t, detector.meta.unsure_margin)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "p_fake", "predicted", "unsure"])
        for p, y, prob in zip(scored.paths, scored.labels, scored.p_fake, strict=True):
            predicted = names[1] if prob >= t else names[0]
            writer.writerow([p, names[int(y)], f"{prob:.6f}", predicted, int(low < prob < high)])


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
