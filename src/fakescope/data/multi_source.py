"""Several data sources as one, each image keeping its source's name.

A detector that must work on photos, faces and thumbnails alike trains on several sources at
once. Each is opened as usual (folder, archive, CSV), optionally capped at `max_items`
(a stratified, seeded subsample, so a 100,000-image set can join a 500-image one), and its
items carry ``source=name``; the trainer samples them by the sources' weights so a big set
cannot drown a small one, and validation metrics are broken down per source.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fakescope.data.source_selection import Selection, balanced_subsample, select_generators
from fakescope.data.sources import Item, Source, open_source
from fakescope.errors import SourceError


@dataclass(frozen=True)
class SourceSpec:
    """One source of a multi-source recipe."""

    path: str
    name: str
    weight: float = 1.0
    max_items: int | None = None
    selection: Selection = Selection()
    where: str = ""  # the recipe field, for errors (data.sources[2])


def stratified_subsample(items: Sequence[Item], max_items: int | None, seed: int) -> list[Item]:
    """A stratified (by label), seeded subsample of at most `max_items`, in path order."""
    if max_items is None or max_items >= len(items):
        return list(items)
    rng = np.random.default_rng(seed)
    chosen: list[Item] = []
    for label in sorted({it.label for it in items}, key=lambda v: -1 if v is None else v):
        pool = [it for it in items if it.label == label]
        take = round(max_items * len(pool) / len(items))
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=take, replace=False))]
    return sorted(chosen, key=lambda it: it.path)


class MultiSource(Source):
    """The labelled items of several sources, each tagged with its source's name."""

    def __init__(self, specs: Sequence[SourceSpec], *, data_dir: str | os.PathLike[str] = ".",
                 seed: int = 0) -> None:  # fmt: skip
        if not specs:
            raise SourceError("a multi-source recipe lists no sources")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise SourceError(f"source names must be unique, got {names}")
        self.specs = list(specs)
        self.sources: dict[str, Source] = {}
        items: list[Item] = []
        for spec in specs:
            path = Path(spec.path)
            if not path.is_absolute():
                path = Path(data_dir) / path
            source = open_source(path)
            self.sources[spec.name] = source
            own = [it for it in source.items if it.label is not None]
            own = select_generators(own, spec.selection, spec.where or spec.name)
            if spec.selection.balance != "none" and spec.max_items is not None:
                own = balanced_subsample(own, spec.max_items, spec.selection.balance, seed)
            else:
                own = stratified_subsample(own, spec.max_items, seed)
            items += [replace(it, source=spec.name) for it in own]
        super().__init__(" + ".join(f"{s.name}={self.sources[s.name].location}" for s in specs))
        self.items = sorted(items, key=lambda it: it.path)
        self._by_path = {it.path: it.source for it in self.items}
        self._seed = seed

    def read_bytes(self, item: Item) -> bytes:
        name = item.source or self._by_path.get(item.path)
        if name is None or name not in self.sources:
            raise SourceError(f"{item.path}: not an item of {self.location}")
        return self.sources[name].read_bytes(item)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for spec in self.specs:
            fingerprint = self.sources[spec.name].fingerprint()
            digest.update(f"{spec.name}|{fingerprint}|{spec.max_items}|{self._seed}\n".encode())
            if spec.selection != Selection():  # older caches keep their fingerprints
                digest.update(f"{spec.selection}\n".encode())
        return digest.hexdigest()

    def weights(self) -> dict[str, float]:
        return {s.name: s.weight for s in self.specs}

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


def sampling_weights(sources: Sequence[str | None], weights: dict[str, float]) -> np.ndarray:
    """Per-item sampling probabilities (summing to 1): each source gets its weight's share
    of every epoch, spread evenly over its items; items of unlisted sources weigh 1 each."""
    names = [s or "" for s in sources]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    raw = np.array([weights.get(n, 1.0) / counts[n] for n in names], dtype=np.float64)
    total = raw.sum()
    if total <= 0:
        raise SourceError("the sources' sampling weights sum to 0")
    probabilities: np.ndarray = raw / total
    return probabilities
