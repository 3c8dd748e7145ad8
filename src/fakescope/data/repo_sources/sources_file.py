"""The sources file (YAML): its entries (a repository at a commit, path globs, label,
generator, licence, exclusions, an index file or a path rule for the generator), checked as a
whole before any work, each problem named with its line."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fakescope.errors import ConfigError

SOURCES_DIR = Path(__file__).resolve().parents[2] / "recipes" / "sources"

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


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
