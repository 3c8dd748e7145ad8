"""Evaluate a detector on a labelled source: metrics at the bundle's threshold, on disk."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.cache import decode_items
from fakescope.data.sources import Item, Source, open_source
from fakescope.errors import SourceError
from fakescope.evaluation.metrics import binary_metrics
from fakescope.inference import Detector


@dataclass
class ScoredSet:
    """Labels and calibrated p(fake) for the readable images of a source."""

    paths: list[str]
    labels: np.ndarray
    p_fake: np.ndarray
    skipped: list[tuple[str, str]]


def score_items(
    detector: Detector,
    source: Source,
    items: list[Item],
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> ScoredSet:
    """Decode and score items; unreadable ones are listed in `skipped`."""
    decoded = decode_items(
        items, source.read_bytes, detector.preprocessing, progress=progress, desc="decode"
    )
    probs = []
    bar = tqdm(total=len(decoded), desc="score", unit="img", disable=not progress, leave=False)
    for start in range(0, len(decoded), batch_size):
        batch = decoded.images[start : start + batch_size]
        probs.append(detector.probabilities(batch))
        bar.update(batch.shape[0])
    bar.close()
    p_fake = np.concatenate(probs) if probs else np.empty(0)
    return ScoredSet(decoded.paths, decoded.labels.numpy().astype(int), p_fake, decoded.skipped)


def select_items(source: Source, split: str | None = None) -> list[Item]:
    items = [it for it in source.items if it.label is not None]
    if split is not None:
        items = [it for it in items if it.split == split]
    if not items:
        where = f" in split {split!r}" if split else ""
        raise SourceError(f"{source.location}: no labelled images{where} to evaluate")
    return items


def evaluate(
    detector: Detector,
    source_spec: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write OUT/metrics.json and OUT/predictions.csv; return the metrics."""
    source = open_source(source_spec)
    scored = score_items(detector, source, select_items(source, split), progress=progress)
    metrics = binary_metrics(scored.labels, scored.p_fake, detector.threshold)
    metrics.update(
        source=str(source.location),
        split=split,
        bundle=str(detector.bundle_path) if detector.bundle_path else None,
        temperature=detector.meta.temperature,
        unreadable=[{"path": p, "reason": r} for p, r in scored.skipped],
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_predictions(out / "predictions.csv", scored, detector)
    return metrics


def write_predictions(path: Path, scored: ScoredSet, detector: Detector) -> None:
    names = detector.meta.labels
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "p_fake", "predicted", "unsure"])
        for p, y, prob in zip(scored.paths, scored.labels, scored.p_fake, strict=True):
            predicted, unsure = detector.verdict(float(prob))
            writer.writerow([p, names[int(y)], f"{prob:.6f}", predicted, int(unsure)])
