"""`fakescope provenance` end to end, as a user runs it: a real process."""

from __future__ import annotations

import json
import zipfile
from functools import partial
from pathlib import Path

import pytest
from clirun import fakescope as run_fakescope

pytestmark = pytest.mark.slow


# a wide table (200 columns): words are not cut
fakescope = partial(run_fakescope, check=False, timeout=120, columns=200)


def test_provenance_json_per_file_with_errors_and_archives(
    provenance_fixtures: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(provenance_fixtures / "novelai.png", "fake/novelai.png")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00not an image" * 10)
    proc = fakescope(
        "provenance",
        provenance_fixtures / "c2pa_bing_image_creator_2024.jpg",
        provenance_fixtures / "c2pa_test_XCA_tampered.jpg",
        archive,
        garbage,
        tmp_path / "missing.png",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"].split("::")[-1]).name: r for r in json.loads(proc.stdout)}
    assert rows["c2pa_bing_image_creator_2024.jpg"]["evidence"][0]["claim"] == "ai_generated"
    assert rows["c2pa_test_XCA_tampered.jpg"]["evidence"][0]["claim"] == "tampered"
    assert rows["novelai.png"]["evidence"][0]["by"] == "NovelAI"
    assert rows["garbage.jpg"]["error"] == "not an image (unknown format)"
    assert rows["missing.png"]["error"] == "does not exist"
    assert "2 of 5 inputs could not be read" in proc.stderr


def test_provenance_exit_status(provenance_fixtures: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    proc = fakescope("provenance", empty)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 1 inputs could not be read" in proc.stderr
    assert f"{empty}: empty file" in proc.stderr
    # /dev/null is empty on most machines and not a regular file on some sandboxes: either
    # way nothing is read, and the exit status says so
    assert fakescope("provenance", "/dev/null").returncode == 1
    image = provenance_fixtures / "c2pa_test_C.jpg"
    assert fakescope("provenance", image, tmp_path / "missing.png").returncode == 0
    strict = fakescope("provenance", image, tmp_path / "missing.png", "--strict")
    assert strict.returncode == 1 and "missing.png: does not exist" in strict.stderr
    assert fakescope("provenance", image, "--strict").returncode == 0


def test_provenance_table_and_trust_option(provenance_fixtures: Path, tmp_path: Path) -> None:
    image = provenance_fixtures / "c2pa_test_C.jpg"
    proc = fakescope("provenance", image)
    assert proc.returncode == 0, proc.stderr
    assert "signed" in proc.stdout and "valid" in proc.stdout
    anchors = provenance_fixtures / "c2pa_test_cert_root_bundle.pem"
    proc = fakescope("provenance", image, "--trust", anchors)
    assert "trusted" in proc.stdout
    not_pem = tmp_path / "x.pem"
    not_pem.write_text("nothing")
    proc = fakescope("provenance", image, "--trust", not_pem)
    assert proc.returncode == 2
    assert "--trust" in proc.stderr and "no PEM certificate" in proc.stderr
