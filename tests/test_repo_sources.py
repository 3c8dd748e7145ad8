"""Sources files: a labelled, de-duplicated manifest from local git clones."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from clirun import fakescope
from imagegen import texture_image
from PIL import Image

from fakescope.data.repo_sources import build_manifest, glob_regex, load_sources_file
from fakescope.data.sources import CsvSource
from fakescope.errors import ConfigError, SourceError


def _git(repo: Path, *args: str) -> str:
    env_args = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", "-C", str(repo), *env_args, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _save(path: Path, array: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kwargs)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _commit_all(repo: Path) -> str:
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "images")
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def clones(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two repositories: `a/gen` holds AI images of two models (named in an index) and an
    input photo the index leaves out; `b/mirror` copies one of them byte for byte, holds a
    re-encoded (near) copy of another, one new image and real photos in a folder layout."""
    root = tmp_path_factory.mktemp("clones")
    rng = np.random.default_rng(0)
    arrays = [texture_image(rng, 96) for _ in range(6)]
    a = root / "a+gen"
    _save(a / "out" / "m1-1.png", arrays[0])
    _save(a / "out" / "m1-2.png", arrays[1])
    _save(a / "out" / "m2-1.png", arrays[2])
    _save(a / "out" / "input-1.png", arrays[5])  # an edit prompt's input: not an output
    (a / "out" / "README.md").write_text("not an image")
    (a / "index.txt").write_text(
        "out/m1-1.png model=one\nout/m1-2.png model=one\nout/m2-1.png model=two\n"
    )
    b = root / "b" / "mirror"  # the DIR/owner/name layout
    (b / "copy").mkdir(parents=True)
    (b / "copy" / "same.png").write_bytes((a / "out" / "m1-1.png").read_bytes())
    _save(b / "copy" / "near.jpg", arrays[1], "JPEG", quality=90)
    _save(b / "copy" / "new.png", arrays[3])
    _save(b / "photos" / "p1.jpg", arrays[4], "JPEG", quality=90)
    _save(b / "photos" / "skip" / "p2.jpg", texture_image(rng, 96), "JPEG", quality=90)
    commits = {"a/gen": _commit_all(a), "b/mirror": _commit_all(b)}
    return root, commits


def _sources_yaml(commits: dict[str, str]) -> str:
    return f"""\
description: test
sources:
  - repo: a/gen
    commit: "{commits["a/gen"]}"
    label: fake
    licence: MIT
    include: ["out/*"]
    index:
      file: index.txt
      format: regex
      pattern: '(?P<file>\\S+) model=(?P<generator>\\w+)'
      generators: {{one: Model One}}
  - repo: b/mirror
    commit: "{commits["b/mirror"]}"
    name: mirror-fakes
    label: fake
    licence: none stated
    include: ["copy/*"]
    generator: Model One
  - repo: b/mirror
    commit: "{commits["b/mirror"]}"
    name: mirror-photos
    label: real
    licence: CC0
    include: ["photos/**"]
    exclude: ["photos/skip/**"]
"""


def test_builds_labelled_manifest_without_duplicates(clones, tmp_path):
    root, commits = clones
    spec = tmp_path / "sources.yaml"
    spec.write_text(_sources_yaml(commits))
    out = tmp_path / "m" / "manifest.csv"
    result = build_manifest([spec], root, out, progress=False)

    rows = {Path(r["path"]).relative_to(root).as_posix(): r for r in csv.DictReader(out.open())}
    assert set(rows) == {
        "a+gen/out/m1-1.png",
        "a+gen/out/m1-2.png",
        "a+gen/out/m2-1.png",
        "b/mirror/copy/new.png",
        "b/mirror/photos/p1.jpg",
    }
    assert rows["a+gen/out/m1-1.png"]["generator"] == "Model One"  # renamed by the index
    assert rows["a+gen/out/m2-1.png"]["generator"] == "two"  # kept as the index names it
    assert rows["b/mirror/copy/new.png"]["source"] == "mirror-fakes"
    assert rows["b/mirror/photos/p1.jpg"]["label"] == "real"
    assert rows["b/mirror/photos/p1.jpg"]["generator"] == ""
    assert {r["label"] for n, r in rows.items() if "photos" not in n} == {"fake"}

    reasons = {Path(r.path).name: (r.reason, Path(r.kept or "").name) for r in result.removed}
    assert reasons["same.png"] == ("exact duplicate", "m1-1.png")
    assert reasons["near.jpg"][0].startswith("near duplicate")
    assert reasons["near.jpg"][1] == "m1-2.png"  # the entry listed first keeps its copy

    assert len(CsvSource(out)) == 5  # the manifest reads back as a source
    card = out.with_suffix(".md").read_text()
    assert "| a/gen | Model One | 2 |" in card
    assert "| mirror-fakes | exact duplicate | 1 |" in card
    assert "not listed in index.txt" in card  # the input photo
    assert "verified" in card
    removed = list(csv.DictReader(out.with_name("manifest.removed.csv").open()))
    assert {Path(r["path"]).name for r in removed} == {"same.png", "near.jpg"}


def test_commit_mismatch_refused_or_warned(clones, tmp_path):
    root, commits = clones
    wrong = dict(commits, **{"b/mirror": "0" * 40})
    spec = tmp_path / "sources.yaml"
    spec.write_text(_sources_yaml(wrong))
    out = tmp_path / "manifest.csv"
    with pytest.raises(SourceError, match=r"b/mirror .*checked out [0-9a-f]{40}.* lists 0{40}"):
        build_manifest([spec], root, out, progress=False)
    assert not out.exists()
    result = build_manifest([spec], root, out, progress=False, allow_commit_mismatch=True)
    assert any("0" * 40 in w for w in result.warnings)
    assert "Warnings" in out.with_suffix(".md").read_text()


def test_clone_without_git_is_used_with_a_warning(clones, tmp_path):
    root, commits = clones
    plain = tmp_path / "clones" / "a+gen"
    shutil.copytree(root / "a+gen", plain, ignore=shutil.ignore_patterns(".git"))
    spec = tmp_path / "s.yaml"
    spec.write_text(_sources_yaml(commits).split("  - repo: b/mirror")[0])
    result = build_manifest([spec], plain.parent, tmp_path / "m.csv", progress=False)
    assert len(result.items) == 3
    assert any("not a git work tree" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (("label: fake\n    licence: MIT", "label: fakes\n    licence: MIT"), 5, "label"),
        (('commit: "', 'commit: "abc'), 4, "not a full 40-hex-digit commit"),
        (('include: ["out/*"]', 'include: ["../out/*"]'), 7, "relative path"),
        (("    generator: Model One\n", ""), 13, "needs 'generator'"),
        (("    licence: CC0\n", "    licence: CC0\n    colour: red\n"), 25, "colour"),
        (("pattern: '(?P<file>", "pattern: '(?P<name>"), 11, "needs a named group 'file'"),
    ],
)
def test_bad_sources_file_rejected_before_any_work(clones, tmp_path, edit, line, message):
    _, commits = clones
    text = _sources_yaml(commits)
    assert edit[0] in text
    spec = tmp_path / "bad.yaml"
    spec.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as caught:
        # a clones folder that does not exist: the file is refused before it is looked at
        build_manifest([spec], tmp_path / "no-clones", tmp_path / "m.csv", progress=False)
    assert f"{spec}:{line}:" in str(caught.value)
    assert message in str(caught.value)
    assert not (tmp_path / "m.csv").exists()


def test_yaml_syntax_error_names_the_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("sources:\n  - repo: a/b\n    commit: [\n")
    with pytest.raises(ConfigError, match=rf"{spec}:\d+: not valid YAML"):
        load_sources_file(spec)


def test_globs():
    assert glob_regex("img/*.webp").match("img/a.webp")
    assert not glob_regex("img/*.webp").match("img/sub/a.webp")
    assert glob_regex("data/**").match("data/a/b/c.png")
    assert glob_regex("**/x.png").match("x.png")
    assert glob_regex("case[0-9]/[!i]*").match("case1/output.jpg")
    assert not glob_regex("case[0-9]/[!i]*").match("case1/input.jpg")


@pytest.mark.parametrize("name", ["modern", "real"])
def test_shipped_sources_files_are_valid(name):
    loaded = load_sources_file(name)
    assert len(loaded.spec.sources) >= 10
    assert all(e.licence for e in loaded.spec.sources)


def test_cli_builds_manifest_and_names_bad_line(clones, tmp_path):
    root, commits = clones
    spec = tmp_path / "sources.yaml"
    spec.write_text(_sources_yaml(commits))
    out = tmp_path / "manifest.csv"
    proc = fakescope("data", "sources", spec, "--clones", root, "--out", out, "-q", columns=200)
    assert "Model One" in proc.stdout
    assert "removed 1: exact duplicate" in proc.stderr
    assert len(CsvSource(out)) == 5
    spec.write_text(_sources_yaml(commits).replace("label: real", "label: photo"))
    bad = fakescope("data", "sources", spec, "--clones", root, "--out", out, check=False)
    assert bad.returncode != 0
    assert f"{spec}:23:" in bad.stderr


@pytest.mark.parametrize(("near_duplicates", "kept"), [("true", 1), ("false", 2)])
def test_an_entry_can_keep_its_own_near_duplicates(tmp_path, near_duplicates, kept):
    """A series rendered from one seed hashes alike: `near_duplicates: false` keeps the
    entry's near copies of each other, and still removes its exact copies."""
    array = texture_image(np.random.default_rng(3), 96)
    repo = tmp_path / "clones" / "c+series"
    first = _save(repo / "s" / "a.png", array)
    _save(repo / "s" / "b.jpg", array, "JPEG", quality=90)
    (repo / "s" / "c.png").write_bytes(first)
    commit = _commit_all(repo)
    spec = tmp_path / "s.yaml"
    spec.write_text(
        f'sources:\n  - repo: c/series\n    commit: "{commit}"\n    label: fake\n'
        f'    licence: MIT\n    include: ["s/*"]\n    generator: G\n'
        f"    near_duplicates: {near_duplicates}\n"
    )
    result = build_manifest([spec], tmp_path / "clones", tmp_path / "m.csv", progress=False)
    assert len(result.items) == kept
    assert "exact duplicate" in {r.reason for r in result.removed}


def test_a_missing_clone_is_named_before_any_image_is_read(clones, tmp_path):
    root, commits = clones
    spec = tmp_path / "s.yaml"
    spec.write_text(_sources_yaml(commits).replace("repo: b/mirror", "repo: b/absent"))
    with pytest.raises(
        SourceError, match=r"b/absent: no clone at .*git clone https://github.com/b/absent"
    ):
        build_manifest([spec], root, tmp_path / "m.csv", progress=False)
    assert not (tmp_path / "m.csv").exists()


def test_copies_labelled_both_real_and_fake_are_removed_whole(clones, tmp_path):
    root, commits = clones
    spec = tmp_path / "s.yaml"
    spec.write_text(
        _sources_yaml(commits).split("  - repo: b/mirror")[0]
        + f'  - repo: b/mirror\n    commit: "{commits["b/mirror"]}"\n    label: real\n'
        '    licence: CC0\n    include: ["copy/same.png"]\n'
    )
    result = build_manifest([spec], root, tmp_path / "m.csv", progress=False)
    gone = {Path(r.path).name: r.reason for r in result.removed}
    assert gone == {"m1-1.png": "copies labelled both real and fake", "same.png": gone["m1-1.png"]}
    assert {Path(it.path).name for it in result.items} == {"m1-2.png", "m2-1.png"}
