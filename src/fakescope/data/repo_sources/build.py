"""`build_manifest`: every entry's selected files, exact and near duplicates removed across
entries (the copy of the entry listed first is kept), written as a manifest CSV, a
``.removed.csv`` of what was removed and why, and a dataset card."""

from __future__ import annotations

import csv
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from fakescope.data.audit.duplicates import analyse_duplicates
from fakescope.data.audit.scan import scan_items
from fakescope.data.repo_sources.card import dataset_card
from fakescope.data.repo_sources.clones import check_clone
from fakescope.data.repo_sources.result import BuildResult, Removal
from fakescope.data.repo_sources.selection import select_files
from fakescope.data.repo_sources.sources_file import load_sources_file
from fakescope.data.sources import Item, Source, read_item_bytes
from fakescope.data.split_assignment import write_manifest
from fakescope.errors import ConfigError, SourceError


class _PathSource(Source):
    """Items with absolute paths, read from disk (for the duplicate scan)."""

    def __init__(self, items: list[Item]) -> None:
        super().__init__("sources")
        self.items = items

    def read_bytes(self, item: Item) -> bytes:
        return read_item_bytes(item.path)


def build_manifest(
    sources_files: Sequence[str | os.PathLike[str]],
    clones: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    card: str | os.PathLike[str] | None = None,
    near_threshold: int = 4,
    allow_commit_mismatch: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> BuildResult:
    """Build the manifest (and card, default beside it as ``.md``) from the sources files.

    Every file is checked, and every clone found and its commit compared, before any image
    is read. A clone at another commit is refused unless `allow_commit_mismatch` (then a
    warning on the card). Duplicates: among items with identical bytes or phash within
    `near_threshold`, the one of the earliest entry (then the first path) is kept; a group
    holding both real and fake images is removed whole.
    """
    loaded = [load_sources_file(p) for p in sources_files]
    entries = [
        (ls, e, line) for ls in loaded for e, line in zip(ls.spec.sources, ls.lines, strict=True)
    ]
    names = Counter((e.source_name, e.label) for _, e, _ in entries)
    clash = [
        f"{e.source_name} ({e.label})" for _, e, _ in entries if names[(e.source_name, e.label)] > 1
    ]
    if clash:
        raise ConfigError(f"sources listed in more than one file: {', '.join(sorted(set(clash)))}")
    checks = [check_clone(clones, e) for _, e, _ in entries]
    warnings = []
    mismatched = []
    for (ls, e, line), check in zip(entries, checks, strict=True):
        if not check.verified:
            message = f"{e.repo} ({ls.path}:{line}): {check.note}"
            if check.note.startswith("checked out"):
                mismatched.append(message)
            warnings.append(message)
    if mismatched and not allow_commit_mismatch:
        raise SourceError(
            "clones at other commits than the sources file lists (check out the listed commit, "
            "or pass --allow-commit-mismatch):\n" + "\n".join(mismatched)
        )
    selections = [select_files(e, c, line) for (_, e, line), c in zip(entries, checks, strict=True)]

    items: list[Item] = []
    order: list[int] = []
    for rank, selection in enumerate(selections):
        label = 0 if selection.entry.label == "real" else 1
        for name, generator in selection.files:
            path = os.path.abspath(os.path.join(selection.clone.root, *name.split("/")))
            items.append(Item(path, label, None, None, generator, selection.entry.source_name))
            order.append(rank)
    scans = scan_items(_PathSource(items), items, workers=workers, progress=progress)
    analysis = analyse_duplicates(items, scans, near_threshold)
    removed: list[Removal] = []
    drop: set[int] = set()
    for index, scan in enumerate(scans):
        if scan.error is not None:
            drop.add(index)
            removed.append(_removal(items[index], f"unreadable: {scan.error}"))
    members: dict[int, list[int]] = defaultdict(list)
    for index, comp in enumerate(analysis.component.tolist()):
        if index not in drop:
            members[comp].append(index)
    for group in members.values():
        if len(group) < 2:
            continue
        if len({items[i].label for i in group}) > 1:
            for i in group:
                drop.add(i)
                removed.append(_removal(items[i], "copies labelled both real and fake"))
            continue
        ranked = sorted(group, key=lambda i: (order[i], items[i].path))
        keep, one_entry = ranked[0], len({order[i] for i in group}) == 1
        kept_digests = {scans[keep].sha256}
        for i in ranked[1:]:
            same = scans[i].sha256 in kept_digests
            if not same and one_entry and not selections[order[i]].entry.near_duplicates:
                kept_digests.add(scans[i].sha256)  # a series of one entry: distinct images
                continue
            drop.add(i)
            reason = "exact duplicate" if same else f"near duplicate (phash <= {near_threshold})"
            removed.append(_removal(items[i], reason, items[keep].path))
    kept = [item for index, item in enumerate(items) if index not in drop]
    write_manifest(kept, out)
    result = BuildResult(
        kept, selections, removed, near_threshold, [ls.path for ls in loaded], warnings
    )
    card_path = Path(card) if card is not None else Path(out).with_suffix(".md")
    card_path.write_text(dataset_card(result, Path(out).name), encoding="utf-8")
    removed_csv = Path(out).with_name(Path(out).stem + ".removed.csv")
    _write_removed(result.removed, removed_csv)
    return result


def _removal(item: Item, reason: str, kept: str | None = None) -> Removal:
    return Removal(item.path, item.source or "", item.generator, reason, kept)


def _write_removed(removed: list[Removal], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "source", "generator", "reason", "kept"])
        for r in sorted(removed, key=lambda r: r.path):
            writer.writerow([r.path, r.source, r.generator or "", r.reason, r.kept or ""])


# ---------------------------------------------------------------------------------------
# The dataset card
# ---------------------------------------------------------------------------------------
