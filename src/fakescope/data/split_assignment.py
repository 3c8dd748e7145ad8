"""Stratified, group-aware train/val/test and k-fold splits, and CSV manifests.

Groups (duplicates found by the audit, or a ``group`` column such as a person's identity)
always land in one split, so a model is never validated on a copy of a training image.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from fakescope import LABEL_NAMES
from fakescope.data.sources import CsvSource, Item, Source
from fakescope.errors import ConfigError

MANIFEST_COLUMNS = ("path", "label", "split", "group", "generator", "source")


def _components(
    items: Sequence[Item], groups: dict[str, str] | None
) -> tuple[np.ndarray, dict[int, str]]:
    """Component id per item: union of ``groups[path]`` and ``Item.group`` memberships.

    Returns (component per item, component -> canonical group name for multi-item ones).
    """
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with_key: dict[str, int] = {}
    for index, item in enumerate(items):
        keys = [("d:" + groups[item.path]) if groups and item.path in groups else None]
        keys.append(("g:" + item.group) if item.group is not None else None)
        for key in filter(None, keys):
            other = first_with_key.setdefault(key, index)
            parent[find(index)] = find(other)
    roots = np.array([find(i) for i in range(len(items))], dtype=np.int64)
    return roots, _canonical_names(items, groups or {}, roots)


def _canonical_names(
    items: Sequence[Item], groups: dict[str, str], roots: np.ndarray
) -> dict[int, str]:
    # One name per merged group so the manifest alone keeps the group intact when re-read;
    # the smallest member key is deterministic.
    names: dict[int, str] = {}
    sizes = np.bincount(roots) if len(roots) else np.array([], dtype=np.int64)
    for index, item in enumerate(items):
        root = int(roots[index])
        if sizes[root] < 2:
            continue
        for key in (groups.get(item.path), item.group, f"group-{root}"):
            if key is not None:
                if root not in names or key < names[root]:
                    names[root] = key
                break
    return names


def _class_index(label: int | None) -> int:
    return len(LABEL_NAMES) if label is None else label  # unlabeled is its own stratum


def _assign(counts: np.ndarray, fractions: np.ndarray, seed: int) -> np.ndarray:
    """Greedy stratified assignment of groups (rows of per-class counts) to splits.

    Groups are visited largest first (random order among equal sizes) and each goes to the
    split whose per-class shortfall against its target it reduces most, measured relative
    to the target so a 10% split is filled as accurately as the 80% one.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(counts))
    sizes = counts.sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]
    target = fractions[:, None] * counts.sum(axis=0)[None, :]
    weight = 1.0 / np.maximum(target, 1.0)
    assigned = np.zeros_like(target)
    result = np.empty(len(counts), dtype=np.int64)
    for group in order:
        add = counts[group]
        # Change in sum((assigned - target)^2 / target) if this group went to each split.
        delta = ((2 * (assigned - target) + add) * add * weight).sum(axis=1)
        delta[fractions == 0] = np.inf  # a split with no share never receives anything
        split = int(np.argmin(delta))
        result[group] = split
        assigned[split] += add
    return result


def _split_by_fraction(
    items: Sequence[Item],
    names: list[str],
    fractions: list[float],
    seed: int,
    groups: dict[str, str] | None,
) -> list[Item]:
    roots, canonical = _components(items, groups)
    unique_roots, component = np.unique(roots, return_inverse=True)
    component = component.ravel()
    counts = np.zeros((len(unique_roots), len(LABEL_NAMES) + 1), dtype=np.float64)
    classes = np.array([_class_index(it.label) for it in items], dtype=np.int64)
    np.add.at(counts, (component, classes), 1)
    chosen = _assign(counts, np.asarray(fractions, dtype=np.float64), seed)
    return [
        replace(
            item,
            split=names[chosen[component[index]]],
            group=canonical.get(int(roots[index]), item.group),
        )
        for index, item in enumerate(items)
    ]


def split_items(
    items: Sequence[Item],
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    groups: dict[str, str] | None = None,
) -> list[Item]:
    """Assign ``split`` = train/val/test, stratified by label, keeping groups together.

    ``groups`` maps path -> group id (e.g. from ``audit.find_duplicate_groups``); items
    sharing an ``Item.group`` are kept together too. ``test=0`` gives train/val only.
    Deterministic for a given seed and item list.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"val ({val}) and test ({test}) must be >= 0 and sum to less than 1")
    names, fractions = ["train", "val", "test"], [1.0 - val - test, val, test]
    return _split_by_fraction(items, names, fractions, seed, groups)


def kfold_items(
    items: Sequence[Item],
    k: int,
    *,
    seed: int = 0,
    groups: dict[str, str] | None = None,
) -> list[Item]:
    """Assign ``split`` = fold0..fold{k-1}: equal-sized, stratified, groups kept together."""
    if k < 2:
        raise ConfigError(f"k-fold needs k >= 2 folds, got {k}")
    return _split_by_fraction(items, [f"fold{i}" for i in range(k)], [1.0 / k] * k, seed, groups)


def write_manifest(items: Sequence[Item], path: str | os.PathLike[str]) -> None:
    """Write ``path,label,split,group,generator,source`` (labels as real/fake); CsvSource
    reads it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for item in items:
            label = "" if item.label is None else LABEL_NAMES[item.label]
            writer.writerow(
                [
                    item.path,
                    label,
                    item.split or "",
                    item.group or "",
                    item.generator or "",
                    item.source or "",
                ]
            )
    os.replace(partial, target)  # a crash never leaves a half-written manifest


def read_manifest(path: str | os.PathLike[str]) -> CsvSource:
    """Read a manifest written by :func:`write_manifest` (any CSV source works)."""
    return CsvSource(path)


def split_source(
    source: Source,
    *,
    out: str | os.PathLike[str],
    val: float = 0.1,
    test: float = 0.1,
    folds: int | None = None,
    seed: int = 0,
    near_threshold: int = 4,
    progress: bool = True,
    workers: int | None = None,
) -> list[Item]:
    """Find duplicate groups, split (or k-fold) the source's items and write the manifest."""
    from fakescope.data.audit import find_duplicate_groups  # heavy imports only when needed

    if folds is not None and folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    if folds is None and not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"val ({val}) and test ({test}) must be >= 0 and sum to less than 1")
    groups = find_duplicate_groups(
        source, near_threshold=near_threshold, progress=progress, workers=workers
    )
    if folds:
        items = kfold_items(source.items, folds, seed=seed, groups=groups)
    else:
        items = split_items(source.items, val=val, test=test, seed=seed, groups=groups)
    write_manifest(items, out)
    return items
