"""Training data from public repositories, rebuilt reproducibly from a sources file.

A sources file (YAML) lists, per entry, a repository (owner/name) at a commit, path rules
(globs) that select its images, their label (real/fake), generator and licence, and
optional exclusions, an index file that keeps only the files it lists (with a generator per
file), or a rule reading the generator from the path. :func:`load_sources_file` checks the
whole file before any work and names the line of every problem.

:func:`build_manifest` reads local clones of the repositories (a user clones them with git;
``DIR/owner+name`` or ``DIR/owner/name``), verifies the checked-out commit when the clone is
a git work tree, selects and labels the files, removes exact duplicates (same bytes) and
near duplicates (64-bit perceptual hash, as ``imagehash.phash``, within a Hamming distance)
across all entries, keeping the copy of the entry listed first, and writes a manifest CSV
(``path,label,split,group,generator,source``, read by :class:`CsvSource`) and a dataset card
(markdown) saying per source and generator what was kept, what was removed and why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fakescope.data.decode import IMAGE_EXTENSIONS
from fakescope.data.sources import Item, Source, read_item_bytes
from fakescope.errors import ConfigError, SourceError

SOURCES_DIR = Path(__file__).resolve().parent.parent / "recipes" / "sources"

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


# ---------------------------------------------------------------------------------------
# Globs
# ---------------------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository-relative glob as a regex: ``*`` and ``?`` stay within a folder, ``**/``
    matches any number of folders, ``[...]`` a character class; a pattern ending in ``/``
    matches everything below that folder. Raises ValueError on a bad pattern."""
    if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
        raise ValueError(f"glob {pattern!r} must be a relative path inside the repository")
    if pattern.endswith("/"):
        pattern += "**"
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError(f"glob {pattern!r}: unclosed '['")
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


# ---------------------------------------------------------------------------------------
# The sources file
# ---------------------------------------------------------------------------------------


def _regex_with_group(value: str, group: str, what: str) -> str:
    """`value` if it compiles as a regex with the named group `group`, else a ValueError."""
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"pattern {value!r} is not a regex ({exc})") from None
    if group not in compiled.groupindex:
        raise ValueError(f"{what} needs a named group {group!r}")
    return value


class IndexRule(BaseModel):
    """Keep only the files an index file in the repository lists, with their generator.

    ``format: json``: ``records`` is the dotted key of a list of records, ``files`` the
    record field holding a file or a list of files, ``generator`` the field naming the
    generator; records listing more than ``max_files`` files are skipped (an edit prompt's
    input photos beside its output). ``format: regex``: ``pattern`` is searched through the
    text file; its named groups ``file`` (and optionally ``generator``) give the entries.
    Listed names are joined to ``prefix`` (repository-relative). ``generators`` renames raw
    generator names ("" stands for a missing one); unlisted raw names are kept as they are.
    """

    model_config = ConfigDict(extra="forbid")

    file: str
    format: Literal["json", "regex"]
    records: str | None = None
    files: str | None = None
    generator: str | None = None
    max_files: int | None = Field(default=None, ge=1)
    pattern: str | None = None
    prefix: str = ""
    generators: dict[str, str] = {}

    @model_validator(mode="after")
    def _fields_for_format(self) -> IndexRule:
        if self.format == "json" and not (self.records and self.files):
            raise ValueError("a json index needs 'records' and 'files'")
        if self.format == "regex" and not self.pattern:
            raise ValueError("a regex index needs 'pattern'")
        return self

    @field_validator("pattern")
    @classmethod
    def _has_file_group(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _regex_with_group(value, "file", "the index pattern")


class GeneratorFromPath(BaseModel):
    """The generator read from the path: ``pattern``'s group ``key`` is looked up in
    ``names``; files whose key is not listed are left out (and counted on the card)."""

    model_config = ConfigDict(extra="forbid")

    pattern: str
    names: dict[str, str] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _has_key_group(cls, value: str) -> str:
        return _regex_with_group(value, "key", "the pattern")


class SourceEntry(BaseModel):
    """One repository's files with one label (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    repo: str
    commit: str
    label: Literal["real", "fake"]
    licence: str = Field(min_length=1)
    include: list[str] = Field(min_length=1)
    exclude: list[str] = []
    name: str | None = None  # the manifest's `source`; default: the repository
    generator: str | None = None
    generator_from_path: GeneratorFromPath | None = None
    index: IndexRule | None = None
    content: str | None = None  # what the images show, for the card (photos, art, ...)
    notes: str = ""
    # false: images of this entry are not removed as near duplicates of each other (a series
    # rendered from one seed in many styles, grids of one layout: distinct images with
    # similar perceptual hashes); exact copies, and near copies in other entries, still are
    near_duplicates: bool = True

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _REPO.match(value):
            raise ValueError(f"repo {value!r} is not owner/name")
        return value

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        if not _COMMIT.match(value):
            raise ValueError(f"commit {value!r} is not a full 40-hex-digit commit id")
        return value

    @field_validator("include", "exclude")
    @classmethod
    def _globs(cls, values: list[str]) -> list[str]:
        for value in values:
            glob_regex(value)  # ValueError names the pattern
        return values

    @model_validator(mode="after")
    def _generator_given(self) -> SourceEntry:
        rules = [self.generator_from_path is not None, bool(self.index and self.index.generator)]
        rules.append(bool(self.index and self.index.pattern and "generator" in self.index.pattern))
        if self.label == "fake" and not self.generator and not any(rules):
            raise ValueError("a fake entry needs 'generator' (or a rule that gives one)")
        if self.label == "real" and (self.generator_from_path or self.generator):
            raise ValueError("a real entry has no generator (describe it in 'content')")
        return self

    @property
    def source_name(self) -> str:
        return self.name or self.repo


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    sources: list[SourceEntry] = Field(min_length=1)


@dataclass
class LoadedSources:
    """A checked sources file: its entries and the line each starts on."""

    path: str
    spec: SourcesFile
    lines: list[int]  # per entry


def _node_at(node: yaml.Node, loc: Sequence[Any]) -> yaml.Node:
    """The deepest YAML node along a pydantic error location."""
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            found = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if found is None:
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            break
    return node


def load_sources_file(path: str | os.PathLike[str]) -> LoadedSources:
    """Read and check a sources file; ConfigError naming the file, line and problem (all
    problems at once) on anything wrong. A bare name is looked up in the shipped ones."""
    location = _resolve_sources_path(path)
    try:
        text = Path(location).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{location}: cannot read the sources file ({exc})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{location}{line}: not valid YAML ({exc})") from None
    if root is None or not isinstance(data, dict):
        raise ConfigError(f"{location}:1: expected a mapping with a 'sources' list")
    try:
        spec = SourcesFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            node = _node_at(root, error["loc"])
            where = ".".join(str(part) for part in error["loc"]) or "file"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{location}:{node.start_mark.line + 1}: {where}: {message}")
        raise ConfigError("invalid sources file:\n" + "\n".join(problems)) from None
    sequence = _node_at(root, ["sources"])
    lines = [node.start_mark.line + 1 for node in getattr(sequence, "value", [])]
    names = Counter((e.source_name, e.label) for e in spec.sources)
    repeated = [
        f"{location}:{lines[i]}: sources.{i}: source {e.source_name!r} ({e.label}) is listed "
        "twice; give one of them a distinct 'name'"
        for i, e in enumerate(spec.sources)
        if names[(e.source_name, e.label)] > 1
    ]
    if repeated:
        raise ConfigError("invalid sources file:\n" + "\n".join(repeated))
    return LoadedSources(location, spec, lines)


def _resolve_sources_path(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if os.path.exists(text):
        return os.path.abspath(text)
    for candidate in (SOURCES_DIR / text, SOURCES_DIR / f"{text}.yaml"):
        if candidate.is_file():
            return str(candidate)
    shipped = ", ".join(sorted(p.stem for p in SOURCES_DIR.glob("*.yaml")))
    raise ConfigError(f"{text}: no such sources file (shipped: {shipped})")


# ---------------------------------------------------------------------------------------
# Clones
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Selecting files
# ---------------------------------------------------------------------------------------


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


class _PathSource(Source):
    """Items with absolute paths, read from disk (for the duplicate scan)."""

    def __init__(self, items: list[Item]) -> None:
        super().__init__("sources")
        self.items = items

    def read_bytes(self, item: Item) -> bytes:
        return read_item_bytes(item.path)


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
    from fakescope.data.audit import _scan, analyse_duplicates
    from fakescope.data.split_assignment import write_manifest

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
    scans = _scan(_PathSource(items), items, workers=workers, progress=progress)
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
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "source", "generator", "reason", "kept"])
        for r in sorted(removed, key=lambda r: r.path):
            writer.writerow([r.path, r.source, r.generator or "", r.reason, r.kept or ""])


# ---------------------------------------------------------------------------------------
# The dataset card
# ---------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dataset_card(result: BuildResult, manifest_name: str = "manifest.csv") -> str:
    """Markdown: what the manifest holds per source and generator, licences, removals."""
    kept = Counter((it.source, it.generator or "") for it in result.items)
    labels = Counter(it.label for it in result.items)
    removed = Counter((r.source, r.reason.split(" (")[0].split(":")[0]) for r in result.removed)
    lines = [
        f"# Dataset card: {manifest_name}",
        "",
        "Built by `fakescope data sources` from "
        f"{', '.join(f'`{p}`' for p in result.sources_files)} "
        f"on local clones. {len(result.items)} images: {labels.get(0, 0)} real, "
        f"{labels.get(1, 0)} fake. The `split` column is empty: assign splits with "
        "`fakescope data split` (groups keep near copies together).",
        "",
        "## Sources",
        "",
        "| source | repository @ commit | label | content | licence | selected | kept | commit |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for s in result.selections:
        e = s.entry
        n_kept = sum(n for (src, _), n in kept.items() if src == e.source_name)
        status = "verified" if s.clone.verified else _md(s.clone.note)
        lines.append(
            f"| {_md(e.source_name)} | {e.repo} @ {e.commit[:12]} | {e.label} | "
            f"{_md(e.content or '')} | {_md(e.licence)} | {len(s.files)} | {n_kept} | {status} |"
        )
    lines += [
        "",
        "## Per source and generator",
        "",
        "| source | generator | images |",
        "|---|---|---:|",
    ]
    for (src, gen), n in sorted(kept.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        lines.append(f"| {_md(src or '')} | {_md(gen) or '(real)'} | {n} |")
    generators = Counter(it.generator for it in result.items if it.label == 1)
    lines += ["", "## Per generator (all sources)", "", "| generator | images |", "|---|---:|"]
    lines += [f"| {_md(str(g))} | {n} |" for g, n in generators.most_common()]
    lines += [
        "",
        "## Removed",
        "",
        f"Exact duplicates have identical bytes; near duplicates a 64-bit perceptual hash "
        f"within Hamming distance {result.near_threshold} of an image kept (the copy of the "
        "entry listed first is kept: mirrors lose to the repository they copy when it is "
        "listed first). A group with both real and fake images is removed whole. Every "
        "removed file is listed, with the copy kept, in the `.removed.csv` beside the manifest.",
        "",
        "| source | reason | images |",
        "|---|---|---:|",
    ]
    lines += [f"| {_md(s)} | {_md(r)} | {n} |" for (s, r), n in sorted(removed.items())]
    if not removed:
        lines.append("| - | none | 0 |")
    left = [
        (s.entry.source_name, why, n) for s in result.selections for why, n in s.left_out.items()
    ]
    lines += [
        "",
        "## Not selected by the rules",
        "",
        "| source | reason | files |",
        "|---|---|---:|",
    ]
    lines += [f"| {_md(s)} | {_md(w)} | {n} |" for s, w, n in left] or ["| - | none | 0 |"]
    notes = [s.entry for s in result.selections if s.entry.notes]
    if notes:
        lines += ["", "## Notes from the sources file", ""]
        lines += [f"- **{_md(e.source_name)}**: {_md(e.notes)}" for e in notes]
    if result.warnings:
        lines += ["", "## Warnings", ""] + [f"- {_md(w)}" for w in result.warnings]
    lines += [
        "",
        "## Licences",
        "",
        "Images stay under their repositories' terms (column licence above; 'none stated' "
        "means the repository states none: use for research only). Do not redistribute them "
        "with a model; the manifest lists paths into the clones only.",
        "",
    ]
    return "\n".join(lines)
