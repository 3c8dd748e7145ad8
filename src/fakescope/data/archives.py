"""Archives read in place: a zip or tar (plain or compressed) as random access to its members,
safe across threads and after ``fork`` (DataLoader workers), and the bytes of any item path,
a plain file or ``"<abs archive path>::<member name>"`` (`fakescope.data.sources` builds its
sources on these; it re-exports :func:`read_item_bytes`, :func:`split_item_path`,
:data:`ARCHIVE_SEP` and the rest under their old names).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import tempfile
import threading
import weakref
import zipfile
from typing import BinaryIO

from fakescope.errors import ImageError, SourceError

ARCHIVE_SEP = "::"
"""Separates the archive path from the member name in an item path."""

_ZIP_SUFFIXES = (".zip",)
_PLAIN_TAR_SUFFIXES = (".tar",)
_COMPRESSED_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ARCHIVE_SUFFIXES = _ZIP_SUFFIXES + _PLAIN_TAR_SUFFIXES + _COMPRESSED_TAR_SUFFIXES

_LIVE_READERS: weakref.WeakSet[ArchiveReader] = weakref.WeakSet()
_DECOMPRESSORS = (
    ((".tar.gz", ".tgz"), gzip.open),
    ((".tar.bz2", ".tbz2"), bz2.open),
    ((".tar.xz", ".txz"), lzma.open),
)


def is_archive(path: str | os.PathLike[str]) -> bool:
    """True if the name ends in an archive suffix we can read in place."""
    return os.fspath(path).lower().endswith(ARCHIVE_SUFFIXES)


def _tar_cache_path(archive: str) -> str:
    stat = os.stat(archive)
    key = f"{archive}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    folder = os.path.join(tempfile.gettempdir(), "fakescope-archive-cache")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, hashlib.sha256(key).hexdigest()[:24] + ".tar")


def _remove_if_owner(path: str, owner_pid: int) -> None:
    # Forked workers inherit the finalizer; only the process that built the file removes it.
    if os.getpid() == owner_pid:
        with contextlib.suppress(OSError):
            os.remove(path)


class ArchiveReader:
    """Random access to the regular-file members of a zip or tar archive.

    The OS-level handle is opened lazily per process (tracked with ``os.getpid()`` and an
    at-fork hook) and reads are serialised with a lock, so one reader can be shared by
    threads and inherited by forked or spawned DataLoader workers.

    Compressed tars cannot seek backwards cheaply (each backwards seek re-decompresses
    from the start), so they are decompressed once into a temporary plain tar that all
    processes share and which is removed again by ``close()`` / at exit.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._zip = path.lower().endswith(_ZIP_SUFFIXES)
        self._compressed = path.lower().endswith(_COMPRESSED_TAR_SUFFIXES)
        self._members: dict[str, tuple[int, int, int]] | None = None  # name -> (size, key, off)
        self._tar_path: str | None = None
        self._finalizer: weakref.finalize[[str, int], ArchiveReader] | None = None
        self._reset_process_state()
        _LIVE_READERS.add(self)

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._handle: zipfile.ZipFile | BinaryIO | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        for key in ("_lock", "_handle", "_pid", "_finalizer"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._finalizer = None
        self._reset_process_state()
        _LIVE_READERS.add(self)

    # -- listing -------------------------------------------------------------------------

    def members(self) -> dict[str, tuple[int, int, int]]:
        """Regular-file members: name -> (size, CRC or mtime, data offset for tars)."""
        if self._members is None:
            with self._lock:
                if self._members is None:
                    self._members = self._list_zip() if self._zip else self._list_tar()
        return self._members

    def _list_zip(self) -> dict[str, tuple[int, int, int]]:
        try:
            with zipfile.ZipFile(self.path) as archive:
                return {
                    info.filename: (info.file_size, info.CRC, 0)
                    for info in archive.infolist()
                    if not info.is_dir()
                }
        except (OSError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{self.path}: cannot read zip archive ({exc})") from None

    def _list_tar(self) -> dict[str, tuple[int, int, int]]:
        try:
            tar_path = self._plain_tar_path()
            members: dict[str, tuple[int, int, int]] = {}
            with tarfile.open(tar_path, mode="r:") as archive:
                for info in archive:
                    # Links, devices and sparse files cannot be read by offset; image data
                    # sets do not use them.
                    if info.isreg() and not info.issparse():
                        members[info.name] = (info.size, int(info.mtime), info.offset_data)
            return members
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise SourceError(f"{self.path}: cannot read tar archive ({exc})") from None

    def _plain_tar_path(self) -> str:
        if not self._compressed:
            return self.path
        if self._tar_path and os.path.exists(self._tar_path):
            return self._tar_path
        cache = _tar_cache_path(self.path)
        if not os.path.exists(cache):
            self._decompress_to(cache)
        self._tar_path = cache
        return cache

    def _decompress_to(self, cache: str) -> None:
        partial = f"{cache}.{os.getpid()}.{threading.get_ident()}.part"
        lower = self.path.lower()
        opener = next(op for suffixes, op in _DECOMPRESSORS if lower.endswith(suffixes))
        try:
            with opener(self.path, "rb") as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            os.replace(partial, cache)  # atomic: concurrent builders never see a half file
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        self._finalizer = weakref.finalize(self, _remove_if_owner, cache, os.getpid())

    # -- reading -------------------------------------------------------------------------

    def _open_handle(self) -> zipfile.ZipFile | BinaryIO:
        if self._zip:
            return zipfile.ZipFile(self.path)
        return open(self._plain_tar_path(), "rb")  # noqa: SIM115 - kept open on purpose

    def read(self, member: str) -> bytes:
        """Bytes of one member. Raises KeyError if absent, OSError/BadZipFile if broken."""
        if self._pid != os.getpid():  # belt and braces; the at-fork hook normally did this
            self._reset_process_state()
        entry = self.members()[member]
        with self._lock:
            if self._handle is None:
                self._handle = self._open_handle()
            if isinstance(self._handle, zipfile.ZipFile):
                return self._handle.read(member)
            self._handle.seek(entry[2])
            return self._handle.read(entry[0])

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and self._pid == os.getpid():
                self._handle.close()
            self._handle = None
        if self._finalizer is not None:
            # Removes the decompressed tar if this process built it; member offsets stay
            # valid because decompressing again gives the identical byte stream.
            self._finalizer()
            self._finalizer = None
            self._tar_path = None


def _reset_readers_after_fork() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    for reader in list(_LIVE_READERS):
        reader._reset_process_state()
    global _CACHE_LOCK
    _CACHE_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_readers_after_fork)

_CACHE_LOCK = threading.Lock()
_READER_CACHE: dict[str, ArchiveReader] = {}


def cached_reader(archive: str) -> ArchiveReader:
    with _CACHE_LOCK:
        reader = _READER_CACHE.get(archive)
        if reader is None:
            reader = _READER_CACHE[archive] = ArchiveReader(archive)
        return reader


def read_member(reader: ArchiveReader, member: str, item_path: str) -> bytes:
    try:
        return reader.read(member)
    except KeyError:
        raise ImageError(item_path, "not found in archive") from None
    except SourceError as exc:
        raise ImageError(item_path, str(exc)) from None
    except FileNotFoundError:
        raise ImageError(item_path, "archive not found") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ImageError(item_path, f"corrupt archive member ({exc})") from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted / exotic compression
        raise ImageError(item_path, f"cannot extract member ({exc})") from None


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read file ({exc.strerror or exc})") from None


def split_item_path(path: str) -> tuple[str, str | None]:
    """Split ``"archive::member"`` into its parts; plain paths give ``(path, None)``."""
    archive, sep, member = path.partition(ARCHIVE_SEP)
    return (archive, member) if sep else (path, None)


def read_item_bytes(path: str) -> bytes:
    """Bytes of any ``Item.path``: a plain file or ``archive::member`` (archives cached).

    Raises:
        ImageError: the file or member is missing or cannot be read.
    """
    archive, member = split_item_path(path)
    if member is None:
        return read_file(path)
    if not os.path.isfile(archive):
        raise ImageError(path, "archive not found")
    return read_member(cached_reader(archive), member, path)
