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

One module per step: `sources_file` (the YAML and its checks), `clones` (finding and
verifying a clone), `selection` (an entry's files and generators), `build` (deduplicate
across entries, write the manifest), `result` and `card` (what was kept and removed, as a
dataset card).
"""

from __future__ import annotations

from fakescope.data.repo_sources.build import build_manifest
from fakescope.data.repo_sources.card import dataset_card
from fakescope.data.repo_sources.clones import CloneCheck, check_clone, find_clone
from fakescope.data.repo_sources.result import BuildResult, Removal
from fakescope.data.repo_sources.selection import Selection, read_index, select_files
from fakescope.data.repo_sources.sources_file import (
    SOURCES_DIR,
    GeneratorFromPath,
    IndexRule,
    LoadedSources,
    SourceEntry,
    SourcesFile,
    glob_regex,
    load_sources_file,
)

__all__ = [
    "SOURCES_DIR",
    "BuildResult",
    "CloneCheck",
    "GeneratorFromPath",
    "IndexRule",
    "LoadedSources",
    "Removal",
    "Selection",
    "SourceEntry",
    "SourcesFile",
    "build_manifest",
    "check_clone",
    "dataset_card",
    "find_clone",
    "glob_regex",
    "load_sources_file",
    "read_index",
    "select_files",
]
