"""Which images a run trains and validates on: fixed once, stored in the run folder."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from fakescope.config import DataConfig
from fakescope.data.audit import find_duplicate_groups
from fakescope.data.multi_source import MultiSource, stratified_subsample
from fakescope.data.sources import CsvSource, Item, Source
from fakescope.data.split_assignment import kfold_items, split_items, write_manifest
from fakescope.errors import ConfigError, FakescopeError, SourceError


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


def read_earlier_splits(run_or_manifest: str | Path) -> dict[str, str]:
    """path -> split of an earlier run (its folder or its manifest.csv), for
    `data.keep_splits_of`; a missing or empty manifest is refused with what to do."""
    target = Path(run_or_manifest)
    manifest = target / "manifest.csv" if target.is_dir() else target
    if not manifest.is_file():
        raise ConfigError(
            f"data.keep_splits_of: {run_or_manifest} is neither a run folder with a "
            f"manifest.csv nor a manifest (a relative path is read from {Path.cwd()}); train "
            "that run first, or drop data.keep_splits_of"
        )
    splits = {it.path: it.split for it in CsvSource(manifest).items if it.split}
    if not splits:
        raise ConfigError(f"data.keep_splits_of: {manifest} assigns no image a split")
    return splits


def keep_earlier_splits(items: list[Item], earlier: dict[str, str], origin: str) -> list[Item]:
    """Give every image an earlier run split its split again. An image new to this run that
    is grouped (a near-duplicate) with earlier ones follows them: held out if any of them was
    held out, so nothing the earlier run held out is trained on and nothing it trained on is
    held out. Other new images keep the split they were just given."""
    if not any(it.path in earlier for it in items):
        raise ConfigError(
            f"data.keep_splits_of: none of the {len(earlier)} images of {origin} is among this "
            "run's images (another --data-dir, or other sources?); paths must match its "
            "manifest.csv"
        )
    rank = {"train": 0, "val": 1, "test": 2}
    by_group: dict[str, str] = {}
    for item in items:
        old = earlier.get(item.path)
        key = item.group or item.path
        if old is not None and rank.get(old, 1) >= rank.get(by_group.get(key, "train"), 0):
            by_group[key] = old
    return [
        replace(it, split=earlier.get(it.path) or by_group.get(it.group or it.path, it.split))
        for it in items
    ]


def prepare_split(
    source: Source,
    data: DataConfig,
    *,
    seed: int,
    manifest_path: Path,
    folds: int | None = None,
    progress: bool = True,
    earlier: dict[str, str] | None = None,
) -> list[Item]:
    """Assign train/val(/test) or fold splits once and store them as the run's manifest.

    A resumed run reads the manifest back, so it trains on exactly the same images.
    `earlier` (path -> split, see :func:`read_earlier_splits`) overrides the fresh split for
    the images an earlier run already split.
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
    if earlier is not None:
        items = keep_earlier_splits(items, earlier, data.keep_splits_of or "the earlier run")
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(items, manifest_path)
    return items
