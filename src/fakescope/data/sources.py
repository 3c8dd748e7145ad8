"""Data sources: a folder, an archive or a CSV manifest, as a sorted list of labelled items.

Every :class:`Item` has a string ``path`` that can be re-opened anywhere with
:func:`read_item_bytes`: an absolute file path, or ``"<abs archive path>::<member name>"``.
Archives are read in place (never extracted) and are safe to use from several threads and
after ``fork`` (DataLoader workers): `fakescope.data.archives`.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import posixpath
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from fakescope import LABEL_NAMES
from fakescope.data import archives
from fakescope.data.archives import ArchiveReader, cached_reader, read_file, read_member
from fakescope.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fakescope.errors import SourceError

# the archive names this module has always offered; their home is `fakescope.data.archives`
ARCHIVE_SEP = archives.ARCHIVE_SEP
ARCHIVE_SUFFIXES = archives.ARCHIVE_SUFFIXES
is_archive = archives.is_archive
read_item_bytes = archives.read_item_bytes
split_item_path = archives.split_item_path

REAL_NAMES = ("real", "authentic", "human", "original", "genuine", "pristine", "true", "0")
FAKE_NAMES = (
    "fake",
    "ai",
    "generated",
    "synthetic",
    "deepfake",
    "deepfakes",
    "manipulated",
    "false",
    "1",
)
# Plurals and spelled-out forms seen in public data sets; not advertised in error messages.
_EXTRA_REAL = ("reals",)
_EXTRA_FAKE = ("fakes", "aigenerated")

_SEPARATORS = " _-."
_SEPARATOR_RUN = re.compile(r"[ _\-.]+")
_GENERATOR_PREFIX = re.compile(r"^(?:ai|fake)[ _\-.]+(.+)$")
# "0_real" / "1_fake" is the CNNDetection (Wang et al.) layout.
_NUMBERED = re.compile(r"^\d+[ _\-.]+(.+)$")

_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
_FOLD = re.compile(r"^fold\d+$")
_IGNORED_NAMES = frozenset({"__macosx", "thumbs.db", "desktop.ini"})
_MAX_WRAPPERS = 3


@dataclass(frozen=True)
class Item:
    """One image of a source. ``path`` is a stable id that :func:`read_item_bytes` opens."""

    path: str
    label: int | None
    split: str | None = None
    group: str | None = None
    generator: str | None = None
    source: str | None = None  # which data source it came from, when several are combined


# ---------------------------------------------------------------------------------------
# Names: labels, splits, hidden files
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # called per file with the few folder names
def _parse_class_name(name: str) -> tuple[int, str | None] | None:
    """(label, generator) for a class folder / label string, or None if not a class name."""
    text = name.strip().lower().strip(_SEPARATORS)
    if not text:
        return None
    compact = _SEPARATOR_RUN.sub("", text)
    if compact in REAL_NAMES or compact in _EXTRA_REAL:
        return 0, None
    if compact in FAKE_NAMES or compact in _EXTRA_FAKE:
        return 1, None
    match = _GENERATOR_PREFIX.match(text)
    if match:
        return 1, match.group(1)
    match = _NUMBERED.match(text)
    if match:
        return _parse_class_name(match.group(1))
    return None


def normalize_label(name: str) -> int | None:
    """Map a class name to 0 (real) / 1 (fake), or None if it is not a known name.

    Case-insensitive; separators are ignored ("Deep-Fake" is fake). Names starting with
    ``ai`` or ``fake`` followed by a separator (``ai-midjourney``, ``fake_stylegan``) are fake.
    """
    parsed = _parse_class_name(name)
    return None if parsed is None else parsed[0]


def normalize_split(name: str) -> str | None:
    """Map a split name to train/val/test (or keep foldN); None if not a split name."""
    text = name.strip().lower()
    if _FOLD.match(text):
        return text
    return _SPLIT_NAMES.get(text)


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part.lower() in _IGNORED_NAMES for part in name.split("/"))


def _suffix(name: str) -> str:
    # posixpath rather than PurePosixPath: this runs once per member of 100k-file archives.
    return posixpath.splitext(name)[1].lower()


#: Why a video is skipped where images are expected (data sets, explain, score, export
#: checks): videos are scored frame by frame by ``fakescope predict`` (fakescope.video).
VIDEO_PROBLEM = "a video, not an image: fakescope predict scores videos frame by frame"


def _extension_problem(name: str) -> str | None:
    suffix = _suffix(name)
    if suffix in IMAGE_EXTENSIONS:
        return None
    if suffix in VIDEO_EXTENSIONS:
        return VIDEO_PROBLEM
    return f"not an image file extension ({suffix or 'none'})"


def _accepted_names_text() -> str:
    return (
        f"real: {', '.join(REAL_NAMES)}; fake: {', '.join(FAKE_NAMES)} or a name starting "
        "with 'ai-' / 'fake-' (e.g. ai-midjourney); optionally inside split folders "
        "train/val/test"
    )


# ---------------------------------------------------------------------------------------
# Layout: from a list of relative file names to labelled entries
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str  # as stored
    key: str  # without wrapper folders: the same data wrapped or not fingerprints the same
    label: int
    split: str | None
    generator: str | None


def _strip_wrappers(parts: list[list[str]]) -> int:
    """How many leading single-folder levels ("dataset/real/...") to skip."""
    depth = 0
    while depth < _MAX_WRAPPERS:
        tops = {p[depth] for p in parts if len(p) > depth + 1}
        if len(tops) != 1:
            break
        (top,) = tops
        if _parse_class_name(top) is not None or normalize_split(top) is not None:
            break
        depth += 1
    return depth


def _layout_error(where: str, prefix: list[str], found: list[str]) -> SourceError:
    inside = f" inside '{'/'.join(prefix)}/'" if prefix else ""
    shown = ", ".join(repr(f) for f in found) if found else "none"
    return SourceError(
        f"{where}: expected one subfolder per class{inside}, found subfolders: {shown}. "
        f"Accepted class names: {_accepted_names_text()}."
    )


def _resolve_layout(names: Iterable[str], where: str) -> tuple[list[_Entry], list[tuple[str, str]]]:
    """Assign labels (and splits) to relative file names from their folder names."""
    visible = [n for n in names if not _is_hidden(n)]
    parts = [n.split("/") for n in visible]
    depth = _strip_wrappers(parts)
    level_dirs = sorted({p[depth] for p in parts if len(p) > depth + 1})
    is_split_layout = bool(level_dirs) and all(normalize_split(d) for d in level_dirs)
    class_depth = depth + 1 if is_split_layout else depth
    prefix = next((p[:depth] for p in parts if len(p) > depth + 1), [])
    _check_class_dirs(parts, depth, class_depth, level_dirs, is_split_layout, where, prefix)

    entries: list[_Entry] = []
    skipped: list[tuple[str, str]] = []
    for name, p in zip(visible, parts, strict=True):
        if len(p) <= class_depth + 1:
            skipped.append((name, "not inside a class folder"))
            continue
        problem = _extension_problem(name)
        if problem:
            skipped.append((name, problem))
            continue
        label, generator = _parse_class_name(p[class_depth])  # type: ignore[misc]
        split = normalize_split(p[depth]) if is_split_layout else None
        entries.append(_Entry(name, "/".join(p[depth:]), label, split, generator))
    return entries, skipped


def _check_class_dirs(
    parts: list[list[str]],
    depth: int,
    class_depth: int,
    level_dirs: list[str],
    is_split_layout: bool,
    where: str,
    prefix: list[str],
) -> None:
    if not level_dirs:
        raise SourceError(
            f"{where}: no class folders found. Expected one subfolder per class "
            f"({_accepted_names_text()})."
        )
    if not is_split_layout:
        if any(_parse_class_name(d) is None for d in level_dirs):
            raise _layout_error(where, prefix, level_dirs)
        return
    for split_dir in level_dirs:
        inner = sorted(
            {p[class_depth] for p in parts if len(p) > class_depth + 1 and p[depth] == split_dir}
        )
        if not inner or any(_parse_class_name(d) is None for d in inner):
            raise _layout_error(where, [*prefix, split_dir], inner)


# ---------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------


class Source(ABC):
    """A labelled collection of images. ``items`` are sorted by path."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.items: list[Item] = []
        self.skipped: list[tuple[str, str]] = []
        self._fingerprint_rows: list[str] = []

    @abstractmethod
    def read_bytes(self, item: Item) -> bytes:
        """Raw bytes of an item. Raises ImageError if it cannot be read."""

    def fingerprint(self) -> str:
        """sha256 over sorted (relative name, size, label[, ...]) rows; reads no content."""
        digest = hashlib.sha256()
        for row in sorted(self._fingerprint_rows):
            digest.update(row.encode("utf-8", "surrogateescape"))
            digest.update(b"\n")
        return digest.hexdigest()

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r}, items={len(self.items)})"

    def label_counts(self) -> dict[str, int]:
        counts = Counter(item.label for item in self.items)
        result = {name: counts.get(index, 0) for index, name in enumerate(LABEL_NAMES)}
        if counts.get(None):
            result["unlabeled"] = counts[None]
        return result

    @property
    def has_splits(self) -> bool:
        return any(item.split for item in self.items)

    def close(self) -> None:  # noqa: B027 - most sources hold no handles
        """Release open handles. The source stays usable; handles reopen on demand."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _set_items(self, items: list[Item], rows: list[str]) -> None:
        self.items = sorted(items, key=lambda item: item.path)
        self._fingerprint_rows = rows


def _fingerprint_row(*fields: object) -> str:
    return "\t".join("" if f is None else str(f) for f in fields)


def _walk_files(root: str) -> list[tuple[str, int]]:
    """(relative posix name, size) of files under root; hidden folders are not entered."""
    found: list[tuple[str, int]] = []
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            raise SourceError(f"{abs_dir}: cannot list folder ({exc.strerror})") from None
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if _is_hidden(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((rel, entry.path))
            elif entry.is_file():
                found.append((rel, entry.stat().st_size))
    found.sort()
    return found


class FolderSource(Source):
    """A folder with one subfolder per class (searched recursively).

    Also accepted: a single wrapper folder around the class folders, and split folders
    (``train/real``, ``val/fake``...), which set ``Item.split``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        root = os.path.abspath(os.fspath(path))
        super().__init__(root)
        if not os.path.isdir(root):
            raise SourceError(f"{root} is not a folder")
        files = _walk_files(root)
        sizes = dict(files)
        entries, skipped = _resolve_layout((name for name, _ in files), root)
        self.skipped = [(os.path.join(root, *name.split("/")), why) for name, why in skipped]
        if not entries:
            raise SourceError(f"{root}: no image files found in the class folders")
        items = [
            Item(os.path.join(root, *e.name.split("/")), e.label, e.split, None, e.generator)
            for e in entries
        ]
        rows = [_fingerprint_row(e.key, sizes[e.name], e.label, e.split) for e in entries]
        self._set_items(items, rows)

    def read_bytes(self, item: Item) -> bytes:
        return read_file(item.path)


class ArchiveSource(Source):
    """A .zip / .tar / .tar.gz / .tgz archive laid out like a FolderSource, read in place."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        location = os.path.abspath(os.fspath(path))
        super().__init__(location)
        if not os.path.isfile(location):
            raise SourceError(f"{location} does not exist")
        if not is_archive(location):
            suffixes = ", ".join(ARCHIVE_SUFFIXES)
            raise SourceError(f"{location}: not a supported archive ({suffixes})")
        self._reader = ArchiveReader(location)
        members = self._reader.members()
        entries, skipped = _resolve_layout(members, location)
        self.skipped = [(f"{location}{ARCHIVE_SEP}{name}", why) for name, why in skipped]
        if not entries:
            raise SourceError(f"{location}: no image files found in the class folders")
        prefix = location + ARCHIVE_SEP
        items = [Item(prefix + e.name, e.label, e.split, None, e.generator) for e in entries]
        rows = [
            _fingerprint_row(e.key, members[e.name][0], members[e.name][1], e.label, e.split)
            for e in entries
        ]
        self._set_items(items, rows)

    def read_bytes(self, item: Item) -> bytes:
        archive, member = split_item_path(item.path)
        if member is None or archive != self.location:
            return read_item_bytes(item.path)
        return read_member(self._reader, member, item.path)

    def close(self) -> None:
        self._reader.close()


_CSV_COLUMNS = ("path", "label", "split", "group", "generator", "source")


class CsvSource(Source):
    """A CSV manifest with a header: ``path,label[,split][,group][,generator][,source]``.

    Paths may be absolute, relative to the CSV's folder, or ``archive.zip::member``.
    Labels are class names (see :func:`normalize_label`) or 0/1; an empty label means
    unlabeled. Missing files stay as items (they fail when read) and are listed in
    ``missing``; a CSV in which every file is missing is an error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        location = os.path.abspath(os.fspath(path))
        super().__init__(location)
        self.missing: list[str] = []
        if not os.path.isfile(location):
            raise SourceError(f"{location} does not exist")
        base = os.path.dirname(location)
        items, rows = self._parse(base)
        if not items:
            raise SourceError(f"{location}: the CSV lists no images")
        self._set_items(items, self._check_existence(items, rows, base))

    def _parse(self, base: str) -> tuple[list[Item], list[str]]:
        items: list[Item] = []
        rows: list[str] = []
        first_line: dict[str, tuple[int, Item]] = {}
        try:
            with open(self.location, newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                columns = self._read_header(reader)
                for record in reader:
                    if not any(field.strip() for field in record):
                        continue
                    line = reader.line_num
                    item, raw = self._parse_row(record, columns, line, base)
                    if item.path in first_line:
                        self._handle_repeat(first_line[item.path], item, line)
                        continue
                    first_line[item.path] = (line, item)
                    items.append(item)
                    rows.append(_fingerprint_row(raw, item.label, item.split, item.group))
        except UnicodeDecodeError as exc:
            raise SourceError(f"{self.location}: not a UTF-8 text file ({exc})") from None
        except csv.Error as exc:
            raise SourceError(f"{self.location}: malformed CSV ({exc})") from None
        return items, rows

    def _read_header(self, reader: Iterable[list[str]]) -> dict[str, int]:
        header = next(iter(reader), None)
        if header is None:
            raise SourceError(f"{self.location}: empty CSV (expected a header row)")
        columns = {name.strip().lower(): index for index, name in enumerate(header)}
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise SourceError(
                f"{self.location}:1: header must name columns path,label[,split][,group]"
                f"[,generator]; missing {', '.join(missing)} (found: {', '.join(header)})"
            )
        return {c: columns[c] for c in _CSV_COLUMNS if c in columns}

    def _parse_row(
        self, record: list[str], columns: dict[str, int], line: int, base: str
    ) -> tuple[Item, str]:
        def field(name: str) -> str:
            index = columns.get(name)
            return record[index].strip() if index is not None and index < len(record) else ""

        where = f"{self.location}:{line}"
        raw = field("path")
        if not raw:
            raise SourceError(f"{where}: empty path")
        label_text = field("label")
        label = normalize_label(label_text) if label_text else None
        if label_text and label is None:
            raise SourceError(
                f"{where}: unknown label {label_text!r} (accepted: {_accepted_names_text()})"
            )
        split_text = field("split")
        split = normalize_split(split_text) if split_text else None
        if split_text and split is None:
            raise SourceError(f"{where}: unknown split {split_text!r} (train, val, test, foldN)")
        generator = field("generator") or None
        if generator is None and label_text:
            parsed = _parse_class_name(label_text)
            generator = parsed[1] if parsed else None
        item = Item(
            _resolve_csv_path(raw, base),
            label,
            split,
            field("group") or None,
            generator,
            field("source") or None,
        )
        return item, raw

    def _handle_repeat(self, first: tuple[int, Item], item: Item, line: int) -> None:
        first_line, first_item = first
        if first_item != item:
            raise SourceError(
                f"{self.location}:{line}: {item.path} is already listed on line {first_line} "
                "with a different label/split/group"
            )
        self.skipped.append((item.path, f"listed again on line {line} (first on {first_line})"))

    def _check_existence(self, items: list[Item], rows: list[str], base: str) -> list[str]:
        """Record missing files; returns the fingerprint rows with each file's size added."""
        sizes = [_item_size(item.path) for item in items]
        self.missing = [item.path for item, size in zip(items, sizes, strict=True) if size is None]
        if len(self.missing) == len(items):
            raise SourceError(
                f"{self.location}: none of the {len(items)} listed files exist (first: "
                f"{self.missing[0]}). Relative paths are resolved against the CSV's folder "
                f"{base}."
            )
        return [_fingerprint_row(row, size) for row, size in zip(rows, sizes, strict=True)]

    def read_bytes(self, item: Item) -> bytes:
        return read_item_bytes(item.path)


def _resolve_csv_path(raw: str, base: str) -> str:
    archive, member = split_item_path(raw)
    archive = os.path.abspath(os.path.join(base, os.path.expanduser(archive)))
    return archive if member is None else f"{archive}{ARCHIVE_SEP}{member}"


def _item_size(path: str) -> int | None:
    """Size in bytes of a file or archive member, None if it does not exist."""
    archive, member = split_item_path(path)
    if member is None:
        try:
            return os.stat(path).st_size if os.path.isfile(path) else None
        except OSError:
            return None
    if not os.path.isfile(archive) or not is_archive(archive):
        return None
    try:
        entry = cached_reader(archive).members().get(member)
    except SourceError:
        return None
    return None if entry is None else entry[0]


def open_source(spec: str | os.PathLike[str]) -> Source:
    """Open a folder, an archive (.zip/.tar/.tar.gz/.tgz) or a CSV manifest as a Source."""
    path = os.fspath(spec)
    if not os.path.exists(path):
        raise SourceError(f"{path} does not exist")
    if os.path.isdir(path):
        return FolderSource(path)
    if is_archive(path):
        return ArchiveSource(path)
    if path.lower().endswith(".csv"):
        return CsvSource(path)
    raise SourceError(
        f"{path}: cannot use as a data source (expected a folder, an archive "
        f"({', '.join(ARCHIVE_SUFFIXES)}) or a .csv manifest)"
    )


# ---------------------------------------------------------------------------------------
# Unlabelled inputs for prediction
# ---------------------------------------------------------------------------------------


def _archive_images(archive: str) -> list[str]:
    names = cached_reader(archive).members()
    return [
        f"{archive}{ARCHIVE_SEP}{name}"
        for name in sorted(names)
        if not _is_hidden(name) and _extension_problem(name) is None
    ]


def _folder_images(folder: str) -> list[str]:
    return [
        os.path.join(folder, *name.split("/"))
        for name, _ in _walk_files(folder)
        if _extension_problem(name) is None
    ]


def _expand_input(path: str) -> tuple[list[str], str | None]:
    """(image item paths, problem) for one user-given input."""
    archive, member = split_item_path(path)
    if member is not None:
        if not os.path.isfile(archive):
            return [], "archive does not exist"
        return [f"{os.path.abspath(archive)}{ARCHIVE_SEP}{member}"], None
    if not os.path.exists(path):
        return [], "does not exist"
    absolute = os.path.abspath(path)
    if os.path.isdir(absolute):
        images = _folder_images(absolute)
    elif is_archive(absolute):
        try:
            images = _archive_images(absolute)
        except SourceError as exc:
            return [], str(exc)
    elif _suffix(absolute) == ".csv":
        try:
            images = [item.path for item in CsvSource(absolute).items]
        except SourceError as exc:
            return [], str(exc)
    elif _suffix(absolute) in VIDEO_EXTENSIONS:
        return [], VIDEO_PROBLEM
    else:
        # An explicitly named file is kept whatever its extension: decoding will say
        # precisely why it is not an image if it is not one.
        return [absolute], None
    return images, None if images else "no image files found"


def collect_inputs(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand files, folders (recursive), archives and CSV manifests into image item paths.

    Returns (item paths in input order, without repeats; problems as (path, reason)).
    """
    images: list[str] = []
    seen: set[str] = set()
    problems: list[tuple[str, str]] = []
    for path in paths:
        found, problem = _expand_input(os.fspath(path))
        if problem:
            problems.append((os.fspath(path), problem))
        for image in found:
            if image not in seen:
                seen.add(image)
                images.append(image)
    return images, problems
