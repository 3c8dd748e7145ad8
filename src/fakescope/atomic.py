"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Every file fakescope writes for later use (bundles, ONNX exports, manifests, checkpoints,
reports, Parquet scores) goes through here: written beside its target under a temporary
name, then renamed into place with `os.replace`, which is atomic on one file system. A crash
or Ctrl-C leaves at most a hidden temporary, which is removed when the write fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target` to write one file to; it replaces `target`
    when the block ends without an exception, and is removed otherwise."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it a normal file's permissions
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `target` atomically; returns the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically; returns the target path."""
    return atomic_write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; when the block ends without an
    exception it replaces `target` (an existing folder there is removed first), with the
    permissions of a normally created folder; otherwise it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        _normal_permissions(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _normal_permissions(folder: Path) -> None:
    """mkdtemp makes a folder private (0700) and mkstemp files 0600, which would hide a shared
    bundle from other users: give the tree the umask's permissions instead."""
    mask = _umask()
    folder.chmod(0o777 & ~mask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
