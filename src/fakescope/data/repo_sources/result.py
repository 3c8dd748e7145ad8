"""What building a manifest kept and removed (`BuildResult`), as the card and the
``.removed.csv`` report it."""

from __future__ import annotations

from dataclasses import dataclass

from fakescope.data.repo_sources.selection import Selection
from fakescope.data.sources import Item


@dataclass
class Removal:
    path: str
    source: str
    generator: str | None
    reason: str  # exact duplicate / near duplicate / unreadable / duplicate across classes
    kept: str | None = None  # the copy that was kept


@dataclass
class BuildResult:
    items: list[Item]
    selections: list[Selection]
    removed: list[Removal]
    near_threshold: int
    sources_files: list[str]
    warnings: list[str]
