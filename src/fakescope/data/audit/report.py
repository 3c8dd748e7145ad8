"""The audit report's shape: `AuditReport` and its sections, as written to audit.json and
read back as plain JSON."""

from __future__ import annotations

from typing import Literal, TypedDict

from fakescope.data.shortcuts import GroupStats, Shortcut


class NumberSummary(TypedDict):
    mean: float
    median: float


class ClassStats(TypedDict):
    count: int
    readable: int
    sizes: dict[str, int]  # "WxH" -> images, the most common first
    formats: dict[str, int]
    modes: dict[str, int]
    jpeg_quality: dict[str, int]
    width: NumberSummary
    height: NumberSummary
    file_size: NumberSummary


class NearGroup(TypedDict):
    paths: list[str]
    classes: list[str]
    max_distance: int | None  # None when the group is too big to compare every pair


class DuplicateCounts(TypedDict):
    within_class_groups: int
    within_class_images: int
    across_class_groups: int
    across_class_images: int
    near_groups: int
    near_across_class_groups: int
    near_images: int
    redundant_copies: int


class DuplicatesSection(TypedDict):
    within_class: list[list[str]]
    across_classes: list[list[str]]
    near: list[NearGroup]
    counts: DuplicateCounts


class SplitLeak(TypedDict):
    paths: list[str]
    splits: list[str]
    kind: Literal["exact", "near"]


class PathReason(TypedDict):
    path: str
    reason: str


class _OptionalReportKeys(TypedDict, total=False):
    # Reports written before these were recorded lack them.
    near_threshold: int
    skipped: list[PathReason]
    # per source / per generator, class name -> stats; properties that could decide verdicts
    per_source: dict[str, dict[str, GroupStats]]
    per_generator: dict[str, dict[str, GroupStats]]
    shortcuts: list[Shortcut]


class AuditReport(_OptionalReportKeys):
    source: str
    fingerprint: str
    counts: dict[str, int]  # class name -> images
    total: int
    per_class: dict[str, ClassStats]
    bias_warnings: list[str]
    duplicates: DuplicatesSection
    has_splits: bool
    leaks: list[SplitLeak]
    unreadable: list[PathReason]
    groups: dict[str, str]  # path -> duplicate group name
