"""Exact duplicates (identical bytes) and near duplicates (close perceptual hashes): their
groups, as the split tool keeps together and the audit reports them, and split leaks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fakescope.data.audit.class_stats import class_name, class_order
from fakescope.data.audit.phash import near_pairs, popcount
from fakescope.data.audit.report import DuplicatesSection, NearGroup, SplitLeak
from fakescope.data.audit.scan import ImageScan, scan_items
from fakescope.data.sources import Item, Source


@dataclass
class DuplicateAnalysis:
    """Result of :func:`analyse_duplicates`, shared by the audit and the split tool."""

    items: list[Item]
    scans: list[ImageScan]
    component: np.ndarray  # per item: connected component id (exact + near duplicates)
    exact: list[list[int]]  # item indices with identical bytes, groups of >= 2
    near: list[list[int]]  # item indices per component with >= 2 distinct contents
    near_pair_count: int

    def groups(self) -> dict[str, str]:
        """path -> group id for every item that has a duplicate (exact or near)."""
        sizes = np.bincount(self.component) if len(self.component) else np.array([])
        members: dict[int, list[int]] = defaultdict(list)
        for index, comp in enumerate(self.component):
            if sizes[comp] > 1:
                members[int(comp)].append(index)
        # Number groups in order of their first path so ids are stable across runs.
        ordered = sorted(members.values(), key=lambda idx: self.items[idx[0]].path)
        return {
            self.items[i].path: f"dup{number:06d}"
            for number, indices in enumerate(ordered)
            for i in indices
        }


def _components(n: int, edges: list[np.ndarray]) -> np.ndarray:
    """Connected-component id per node (union-find; edges are few, one per duplicate)."""
    parent = list(range(n))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for block in edges:
        for a, b in block.tolist():
            root_a, root_b = find(a), find(b)
            if root_a != root_b:
                parent[max(root_a, root_b)] = min(root_a, root_b)
    return np.array([find(node) for node in range(n)], dtype=np.int64)


def analyse_duplicates(
    items: Sequence[Item], scans: Sequence[ImageScan], near_threshold: int
) -> DuplicateAnalysis:
    """Group items by identical bytes (sha256) and by near-identical phash."""
    items, scans = list(items), list(scans)
    n = len(items)
    by_digest: dict[str, list[int]] = defaultdict(list)
    for scan in scans:
        if scan.sha256 is not None:
            by_digest[scan.sha256].append(scan.position)
    exact = sorted((idx for idx in by_digest.values() if len(idx) > 1), key=lambda g: g[0])
    edges = [np.array([[g[0], other] for other in g[1:]], dtype=np.int64) for g in exact]

    # Near duplicates are searched among distinct hash values only, one item standing for
    # all items that share a value.
    hashed = [s for s in scans if s.phash is not None]
    values = np.array([s.phash for s in hashed], dtype=np.uint64)
    unique_values, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rep = np.array([hashed[i].position for i in first], dtype=np.int64)
    if len(hashed):
        holders = np.array([s.position for s in hashed], dtype=np.int64)
        same_hash = np.stack([rep[inverse.ravel()], holders], axis=1)
        edges.append(same_hash[same_hash[:, 0] != same_hash[:, 1]])
    pairs = near_pairs(unique_values, near_threshold)
    if len(pairs):
        edges.append(rep[pairs])
    component = _components(n, edges) if n else np.empty(0, dtype=np.int64)

    near = _near_groups(scans, component)
    return DuplicateAnalysis(items, scans, component, exact, near, int(len(pairs)))


def _near_groups(scans: list[ImageScan], component: np.ndarray) -> list[list[int]]:
    """Components with at least two different contents, one item index per content."""
    contents: dict[int, dict[str, int]] = defaultdict(dict)
    for scan in scans:
        key = scan.sha256 or f"unread-{scan.position}"
        contents[int(component[scan.position])].setdefault(key, scan.position)
    groups = [sorted(c.values()) for c in contents.values() if len(c) > 1]
    return sorted(groups, key=lambda g: g[0])


def find_duplicate_groups(
    source: Source,
    *,
    items: Sequence[Item] | None = None,
    near_threshold: int = 4,
    progress: bool = True,
    workers: int | None = None,
) -> dict[str, str]:
    """path -> group id for items with exact or near duplicates (singletons omitted).

    Used by the split tool so duplicates never straddle train/val/test.
    """
    chosen = list(source.items if items is None else items)
    scans = scan_items(source, chosen, workers=workers, progress=progress)
    return analyse_duplicates(chosen, scans, near_threshold).groups()


def _classes(items: list[Item], indices: list[int]) -> list[str]:
    labels = {items[i].label for i in indices}
    return sorted((class_name(label) for label in labels), key=class_order)


def _max_distance(scans: list[ImageScan], indices: list[int]) -> int | None:
    values = np.array([scans[i].phash for i in indices if scans[i].phash is not None], np.uint64)
    if len(values) < 2 or len(values) > 500:
        return None
    return int(popcount(values[:, None] ^ values[None, :]).max())


def duplicates_section(analysis: DuplicateAnalysis) -> DuplicatesSection:
    items, scans = analysis.items, analysis.scans
    within = [g for g in analysis.exact if len(_classes(items, g)) == 1]
    across = [g for g in analysis.exact if len(_classes(items, g)) > 1]
    near: list[NearGroup] = [
        {
            "paths": [items[i].path for i in group],
            "classes": _classes(items, group),
            "max_distance": _max_distance(scans, group),
        }
        for group in analysis.near
    ]
    unique_contents = len({s.sha256 for s in scans if s.sha256 is not None})
    readable = sum(1 for s in scans if s.sha256 is not None)
    return {
        "within_class": [[items[i].path for i in g] for g in within],
        "across_classes": [[items[i].path for i in g] for g in across],
        "near": near,
        "counts": {
            "within_class_groups": len(within),
            "within_class_images": sum(len(g) for g in within),
            "across_class_groups": len(across),
            "across_class_images": sum(len(g) for g in across),
            "near_groups": len(near),
            "near_across_class_groups": sum(1 for g in near if len(g["classes"]) > 1),
            "near_images": sum(len(g["paths"]) for g in near),
            "redundant_copies": readable - unique_contents,
        },
    }


def split_leaks(analysis: DuplicateAnalysis) -> list[SplitLeak]:
    members: dict[int, list[int]] = defaultdict(list)
    for index, comp in enumerate(analysis.component):
        members[int(comp)].append(index)
    leaks: list[SplitLeak] = []
    for indices in members.values():
        splits = {split for i in indices if (split := analysis.items[i].split) is not None}
        if len(indices) < 2 or len(splits) < 2:
            continue
        digests = {analysis.scans[i].sha256 for i in indices}
        leaks.append(
            {
                "paths": [analysis.items[i].path for i in indices],
                "splits": sorted(splits),
                "kind": "exact" if len(digests) == 1 else "near",
            }
        )
    return sorted(leaks, key=lambda leak: leak["paths"][0])
