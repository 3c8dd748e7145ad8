"""Which images a run trains and validates on: fixed once, stored in the run folder."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from fakescope.config import DataConfig
from fakescope.data.multi_source import MultiSource, stratified_subsample
from fakescope.data.sources import CsvSource, Item, Source
from fakescope.data.split_assignment import kfold_items, split_items, write_manifest
from fakescope.errors import FakescopeError, SourceError


def exact_duplicate_groups(source: Source, items: list[Item]) -> dict[str, str]:
    """path -> group id for byte-identical files (cheap: hashing, no decoding)."""
    by_hash: dict[str, list[str]] = {}
    for item in items:
        try:
            digest = hashlib.sha256(source.read_bytes(item)).hexdigest()
        except FakescopeError:  # unreadable files are reported later, by decoding
            continue
        by_hash.setdefault(digest, []).append(item.path)
    return {p: f"dup-{h[:12]}" for h, paths in by_hash.items() if len(paths) > 1 for p in paths}


def duplicate_groups(
    source: Source, items: list[Item], mode: str, progress: bool
) -> dict[str, str]:
    if mode == "none":
        return {}
    if mode == "exact":
        return exact_duplicate_groups(source, items)
    from fakescope.data.audit import find_duplicate_groups

    return find_duplicate_groups(source, items=items, progress=progress)


def labelled_items(source: Source) -> list[Item]:
    items = [it for it in source.items if it.label is not None]
    counts = {label: sum(1 for it in items if it.label == label) for label in (0, 1)}
    if min(counts.values()) == 0:
        raise SourceError(
            f"{source.location}: training needs both classes; found {counts[0]} real and "
            f"{counts[1]} fake images"
        )
    return items


def prepare_split(
    source: Source,
    data: DataConfig,
    *,
    seed: int,
    manifest_path: Path,
    folds: int | None = None,
    progress: bool = True,
) -> list[Item]:
    """Assign train/val(/test) or fold splits once and store them as the run's manifest.

    A resumed run reads the manifest back, so it trains on exactly the same images.
    """
    if manifest_path.is_file():
        return list(CsvSource(manifest_path).items)
    items = stratified_subsample(labelled_items(source), data.max_items, seed)
    if isinstance(source, MultiSource) and not folds:  # each source split on its own
        items = [replace(it, split=None) for it in items]
        groups = duplicate_groups(source, items, data.group_duplicates, progress)
        items = [replace(it, group=groups.get(it.path, it.group)) for it in items]
        items = [
            item
            for name in source.sources
            for item in split_items(
                [it for it in items if it.source == name],
                val=data.val_fraction,
                test=data.test_fraction,
                seed=seed,
                groups=groups,
            )
        ]
    elif source.has_splits and not folds:
        if not any(it.split == "val" for it in items):
            raise SourceError(f"{source.location}: the split column has no 'val' rows")
    else:
        items = [replace(it, split=None) for it in items]
        groups = duplicate_groups(source, items, data.group_duplicates, progress)
        items = [replace(it, group=groups.get(it.path, it.group)) for it in items]
        if folds:
            items = kfold_items(items, folds, seed=seed, groups=groups)
        else:
            items = split_items(
                items, val=data.val_fraction, test=data.test_fraction, seed=seed, groups=groups
            )
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(items, manifest_path)
    return items
