"""The corruption pass of a sweep: each chunk of images decoded once, scored clean and under
every corruption by every detector, then the clean row and one row per corruption and
severity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.corruptions import SEVERITY_UNITS
from fakescope.data.sources import Item, Source
from fakescope.detectors import Detector
from fakescope.errors import FakescopeError
from fakescope.faces import FaceCropPolicy
from fakescope.robustness.conditions import RobustnessConfig
from fakescope.robustness.images import (
    CHUNK,
    corrupt_images,
    decode_chunk,
    detector_probabilities,
    in_chunks,
    preprocess_images,
)
from fakescope.robustness.results import RobustnessRow
from fakescope.robustness.rows import empty_row, row_result


@dataclass
class CleanAndCorruptedScores:
    """What one pass over the images yields: p(fake) per (condition, detector), and which
    images were read. Condition -1 is the clean images."""

    scores: dict[tuple[int, int], list[np.ndarray]] = field(default_factory=dict)
    labels_parts: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)  # each read image's source name
    skipped: list[tuple[str, str]] = field(default_factory=list)
    example_rows: list[list[np.ndarray]] = field(default_factory=list)

    def p_fake(self, cond_index: int, det_index: int) -> np.ndarray:
        return np.concatenate(self.scores[(cond_index, det_index)])


def score_clean_and_corrupted(
    detectors: Sequence[Detector],
    source: Source,
    items: Sequence[Item],
    conditions: Sequence[tuple[str, float]],
    config: RobustnessConfig,
    progress: bool,
) -> CleanAndCorruptedScores:
    """Decode the images once per chunk, at full resolution, and score every detector on
    the clean chunk and on each corruption of it: memory stays bounded by CHUNK images and
    each image is decoded once however many conditions and detectors there are."""
    scored = CleanAndCorruptedScores()
    bar = tqdm(
        total=len(items) * (1 + len(conditions)),
        desc="corrupt+score",
        unit="img",
        disable=not progress,
    )
    for chunk_index, chunk in enumerate(in_chunks(items, CHUNK)):
        images = _decode_good(source, chunk, scored, config.faces)
        if not images:
            bar.update(len(chunk) * (1 + len(conditions)))
            continue
        for cond_index in range(-1, len(conditions)):
            variant = _variant(images, conditions, cond_index, config.seed, chunk_index)
            if chunk_index == 0:
                scored.example_rows.append(variant[:1])
            for det_index, detector in enumerate(detectors):
                batch = preprocess_images(detector.preprocessing, variant)
                p = detector_probabilities(detector, batch, config.batch_size)
                scored.scores.setdefault((cond_index, det_index), []).append(p)
            bar.update(len(chunk))
    bar.close()
    if not scored.paths:
        raise FakescopeError(
            f"{source.location}: none of the {len(items)} selected images could be read"
        )
    return scored


def _decode_good(
    source: Source,
    chunk: Sequence[Item],
    scored: CleanAndCorruptedScores,
    faces: FaceCropPolicy | None = None,
) -> list[np.ndarray]:
    """The chunk's readable images; their labels and paths, and the reasons the others
    could not be read, are recorded in `scored` (a bad file never stops the sweep)."""
    decoded = decode_chunk(source, chunk, faces)
    good = [(it, arr) for it, arr in zip(chunk, decoded, strict=True) if not isinstance(arr, str)]
    scored.skipped += [
        (it.path, arr) for it, arr in zip(chunk, decoded, strict=True) if isinstance(arr, str)
    ]
    chunk_labels = [it.label for it, _ in good]  # None (unlabelled) fails here
    scored.labels_parts.append(np.array(chunk_labels, dtype=int))
    scored.paths += [it.path for it, _ in good]
    scored.sources += [it.source for it, _ in good]
    return [arr for _, arr in good]


def _variant(
    images: list[np.ndarray],
    conditions: Sequence[tuple[str, float]],
    cond_index: int,
    seed: int,
    chunk_index: int,
) -> list[np.ndarray]:
    """The chunk under condition `cond_index` (-1: clean). The seed depends on the chunk and
    the condition, so noise differs between chunks yet a rerun reproduces it exactly."""
    if cond_index < 0:
        return images
    name, severity = conditions[cond_index]
    return corrupt_images(images, name, severity, seed=seed + 7919 * chunk_index + cond_index)


def corruption_rows(
    detectors: Sequence[Detector],
    names: Sequence[str],
    scored: CleanAndCorruptedScores,
    labels: np.ndarray,
    conditions: Sequence[tuple[str, float]],
) -> list[RobustnessRow]:
    """The clean row first, then one row per corruption and severity, whose drops are
    measured against that detector's clean row (always at the bundle's own threshold)."""
    clean = empty_row("clean", "clean", None, None)
    groups = _source_groups(scored.sources)
    for det_index, (name, detector) in enumerate(zip(names, detectors, strict=True)):
        p = scored.p_fake(-1, det_index)
        clean["results"][name] = row_result(labels, p, detector.threshold, None, groups)
    rows = [clean]
    for cond_index, (corruption, severity) in enumerate(conditions):
        row = empty_row("corruption", corruption, severity, SEVERITY_UNITS.get(corruption))
        for det_index, (name, detector) in enumerate(zip(names, detectors, strict=True)):
            p = scored.p_fake(cond_index, det_index)
            row["results"][name] = row_result(
                labels, p, detector.threshold, clean["results"][name], groups
            )
        rows.append(row)
    return rows


def _source_groups(sources: Sequence[str | None]) -> dict[str, np.ndarray]:
    """{source name: indices of its images} when the images come from several named
    sources (a multi-source manifest), else {} (no per-source breakdown)."""
    names = sorted({s for s in sources if s})
    if len(names) < 2:
        return {}
    column = np.array([s or "" for s in sources])
    return {name: np.flatnonzero(column == name) for name in names}
