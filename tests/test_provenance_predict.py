"""Provenance joins the pixel score in every prediction: Python, CLI JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from clirun import fakescope

from fakescope.detectors import load_detector
from fakescope.inference import CSV_FIELDS


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    return load_detector("scratch", device="cpu")


@pytest.mark.integration
def test_an_ai_labelled_file_is_fake_whatever_the_pixels_say(
    detector, provenance_fixtures: Path
) -> None:  # type: ignore[no-untyped-def]
    path = provenance_fixtures / "c2pa_openai_dalle3_2024.webp"
    (with_evidence,) = detector.predict([path])
    (pixels_only,) = detector.predict([path], provenance=False)
    assert with_evidence.label == "fake" and with_evidence.unsure is False
    assert with_evidence.p_fake >= 0.99  # decisive: an intact AI-labelled manifest
    assert with_evidence.p_fake_pixels == pytest.approx(pixels_only.p_fake)
    assert pixels_only.evidence == [] and pixels_only.p_fake == pixels_only.p_fake_pixels
    claims = {(e["signal"], e["claim"]) for e in with_evidence.evidence}
    assert ("c2pa", "ai_generated") in claims


@pytest.mark.integration
def test_a_tampered_file_says_so(detector, provenance_fixtures: Path) -> None:  # type: ignore[no-untyped-def]
    (result,) = detector.predict([provenance_fixtures / "c2pa_test_XCA_tampered.jpg"])
    assert any(e["claim"] == "tampered" for e in result.evidence)
    assert all(not e["claim"].startswith("ai_") for e in result.evidence)


@pytest.mark.integration
def test_files_without_provenance_keep_the_pixel_score(detector, toy_folder: Path) -> None:  # type: ignore[no-untyped-def]
    for result in detector.predict([toy_folder]):
        assert result.evidence == [] and result.p_fake == result.p_fake_pixels
        assert result.disagreement is None


@pytest.mark.slow
@pytest.mark.integration
def test_cli_json_and_csv_carry_the_evidence(provenance_fixtures: Path, tmp_path: Path) -> None:
    files = [provenance_fixtures / "a1111_parameters.png", provenance_fixtures / "novelai.png"]
    rows = json.loads(fakescope("predict", *files, "--bundle", "scratch", "-f", "json").stdout)
    for row in rows:
        assert row["label"] == "fake" and row["evidence"][0]["signal"] == "metadata"
        assert row["p_fake_pixels"] is not None
    text = fakescope("predict", *files, "--bundle", "scratch", "-f", "csv").stdout
    table = list(csv.DictReader(io.StringIO(text)))
    assert tuple(table[0]) == CSV_FIELDS and list(table[0])[:5] == [
        "path", "p_fake", "label", "unsure", "error"
    ]  # fmt: skip
    assert table[0]["unsure"] in ("0", "1") and "metadata: ai_generated" in table[0]["evidence"]
    shown = fakescope("predict", *files, "--bundle", "scratch").stdout  # a wrapped table
    assert "ai_generated" in shown and "pixels" in shown


@pytest.mark.integration
def test_score_rows_carry_the_evidence(detector, provenance_fixtures: Path) -> None:  # type: ignore[no-untyped-def]
    from fakescope.batch_score import SCHEMA, score_paths

    path = str(provenance_fixtures / "comfyui_prompt_workflow.png")
    (row,) = score_paths(detector, [path]).to_pylist()
    assert list(row)[:5] == SCHEMA.names[:5] == ["path", "p_fake", "label", "unsure", "error"]
    claims = {(e["signal"], e["claim"]) for e in json.loads(row["evidence"])}
    assert ("metadata", "ai_generated") in claims and row["label"] == "fake"
    assert row["p_fake_pixels"] is not None and row["p_fake"] >= row["p_fake_pixels"]
