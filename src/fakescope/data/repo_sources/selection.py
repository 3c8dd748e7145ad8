"""The files one entry selects in its clone: include/exclude globs, image files only, an
index file's list, and each file's generator (fixed, from the index, or from the path)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakescope.data.decode import IMAGE_EXTENSIONS
from fakescope.data.repo_sources.clones import CloneCheck
from fakescope.data.repo_sources.sources_file import IndexRule, SourceEntry, glob_regex
from fakescope.errors import SourceError


def _repo_files(root: str) -> list[str]:
    """Repository-relative posix names of files, without .git and hidden folders."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(folder, root)
        for name in files:
            if not name.startswith("."):
                found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return sorted(found)


def _dig(data: Any, dotted: str, where: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            raise SourceError(f"{where}: no key {dotted!r}")
        data = data[key]
    return data


def _join(prefix: str, name: str) -> str:
    joined = f"{prefix.rstrip('/')}/{name}" if prefix else name
    return os.path.normpath(joined.removeprefix("./")).replace(os.sep, "/")


def read_index(root: str, rule: IndexRule) -> tuple[dict[str, str | None], int]:
    """file -> raw generator name (None: not given) from the index; and how many files
    were skipped because their record lists more than ``max_files``."""
    where = os.path.join(root, rule.file)
    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{where}: cannot read the index file ({exc})") from None
    listed: dict[str, str | None] = {}
    skipped = 0
    if rule.format == "regex":
        assert rule.pattern is not None
        for match in re.finditer(rule.pattern, text):
            groups = match.groupdict()
            listed[_join(rule.prefix, groups["file"])] = groups.get("generator")
        return listed, skipped
    try:
        records = _dig(json.loads(text), rule.records or "", where)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: not JSON ({exc})") from None
    if not isinstance(records, list):
        raise SourceError(f"{where}: {rule.records!r} is not a list")
    for record in records:
        files = record.get(rule.files) if isinstance(record, dict) else None
        names = [files] if isinstance(files, str) else list(files or [])
        if rule.max_files is not None and len(names) > rule.max_files:
            skipped += len(names)
            continue
        raw = record.get(rule.generator) if rule.generator else None
        for name in names:
            listed[_join(rule.prefix, str(name))] = None if raw is None else str(raw)
    return listed, skipped


@dataclass
class Selection:
    """One entry's chosen files and why others were left out."""

    entry: SourceEntry
    line: int
    clone: CloneCheck
    files: list[tuple[str, str | None]]  # (repository-relative name, generator)
    left_out: Counter[str] = field(default_factory=Counter)  # reason -> files


def select_files(entry: SourceEntry, clone: CloneCheck, line: int = 0) -> Selection:
    """The entry's image files in its clone, with their generators."""
    include = [glob_regex(g) for g in entry.include]
    exclude = [glob_regex(g) for g in entry.exclude]
    selection = Selection(entry, line, clone, [])
    index: dict[str, str | None] | None = None
    renames: dict[str, str] = {}
    unlisted = ""
    if entry.index is not None:
        index, skipped = read_index(clone.root, entry.index)
        renames, unlisted = entry.index.generators, f"not listed in {entry.index.file}"
        if skipped:
            reason = f"listed by a record with more than {entry.index.max_files} files"
            selection.left_out[reason] += skipped
    from_path = entry.generator_from_path
    key_pattern = re.compile(from_path.pattern) if from_path else None
    for name in _repo_files(clone.root):
        if not any(p.match(name) for p in include):
            continue
        if any(p.match(name) for p in exclude):
            selection.left_out["excluded by a rule"] += 1
            continue
        if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
            selection.left_out["not an image file"] += 1
            continue
        generator: str | None = entry.generator
        if index is not None:
            if name not in index:
                selection.left_out[unlisted] += 1
                continue
            raw = index[name]
            generator = renames.get(raw or "", raw) or generator
        if key_pattern is not None and from_path is not None:
            match = key_pattern.search(name)
            key = match.group("key") if match else None
            if key is None or key not in from_path.names:
                selection.left_out[f"generator not mapped ({key or 'no match'})"] += 1
                continue
            generator = from_path.names[key]
        if entry.label == "fake" and not generator:
            selection.left_out["no generator known"] += 1
            continue
        selection.files.append((name, generator if entry.label == "fake" else None))
    return selection


# ---------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------
