"""The local clone of a sources file's repository: where it is (``DIR/owner+name`` or
``DIR/owner/name``) and whether it is checked out at the listed commit."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fakescope.data.repo_sources.sources_file import SourceEntry
from fakescope.errors import SourceError


@dataclass
class CloneCheck:
    root: str
    verified: bool  # the clone is a git work tree at the listed commit
    note: str = ""  # why it could not be verified, or the mismatch


def find_clone(clones: str | os.PathLike[str], repo: str) -> str | None:
    owner, name = repo.split("/")
    for candidate in (Path(clones) / f"{owner}+{name}", Path(clones) / owner / name):
        if candidate.is_dir():
            return str(candidate)
    return None


def _git_head(root: str) -> str | None:
    """HEAD of the git work tree whose top is exactly `root` (not of an enclosing repo)."""
    try:
        top = subprocess.run(
            ["git", "-C", root, "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(top) != 2 or os.path.realpath(top[0]) != os.path.realpath(root):
        return None
    return top[1]


def check_clone(clones: str | os.PathLike[str], entry: SourceEntry) -> CloneCheck:
    """Where the entry's clone is and whether it is at the listed commit. SourceError when
    it is missing."""
    root = find_clone(clones, entry.repo)
    if root is None:
        owner, name = entry.repo.split("/")
        raise SourceError(
            f"{entry.repo}: no clone at {Path(clones) / f'{owner}+{name}'} or "
            f"{Path(clones) / owner / name} (git clone https://github.com/{entry.repo} "
            f"{Path(clones) / f'{owner}+{name}'} && git -C ... checkout {entry.commit})"
        )
    head = _git_head(root)
    if head is None:
        return CloneCheck(root, False, "not a git work tree: commit not verified")
    if head != entry.commit:
        return CloneCheck(root, False, f"checked out {head}, the sources file lists {entry.commit}")
    return CloneCheck(root, True)
