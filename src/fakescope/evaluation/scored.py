"""Scored images: a `ScoredSet` (labels, p(fake) and, from `evaluate`, each image's whole
verdict) and the ways to get one: pixels alone (`score_items`, for calibration and threshold
choice) or judged by the verdict pipeline (`judged`: `fakescope.verdict.judge`'s rule on
decoded images and their evidence)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.cache import DecodedSet, decode_items
from fakescope.data.sources import Item, Source
from fakescope.detectors import Detector, PixelScores
from fakescope.errors import SourceError
from fakescope.faces import FaceSelector
from fakescope.provenance import Evidence
from fakescope.verdict.prediction import Prediction
from fakescope.verdict.rule import at_threshold, verdicts
from fakescope.video import VideoPrediction


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
    return scored_set(detector, decoded, items, batch_size=batch_size, progress=progress)


def scored_set(
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
    `fakescope.verdict.rule.verdicts` at `threshold`, with each file's evidence (by path)."""
    scores = pixel_scores(detector, decoded.images, batch_size=batch_size, progress=progress)
    found = None if evidence is None else [list(evidence.get(p, ())) for p in decoded.paths]
    # the sizes of what was scored: the size domain check, and a face-aware detector's faces
    predictions = verdicts(
        at_threshold(detector, threshold),
        decoded.paths,
        scores,
        found,
        decoded.sizes,
        faces=decoded.faces,
        contents=decoded.contents,
    )
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
