"""Camera and editing metadata (EXIF) as evidence: read from files made in the test, shown
in predict's JSON, CSV and table, never counted for "real"; its inconsistencies reported."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from clirun import fakescope
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from provenance_make import (
    camera_exif,
    camera_jpeg,
    encode,
    make_ca,
    manifest,
    natural_rgb,
    sign,
)

from fakescope.provenance import combine, evidence_weight, read_provenance
from fakescope.provenance.exif import read_capture

IPHONE = "Apple iPhone 5"
CAMERA_JPEG = camera_jpeg()
SQUARE_JPEG = camera_jpeg(1024, 1024)  # a generator's size under an iPhone's full EXIF


def _kinds(evidence) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(e.signal, e.claim) for e in evidence]


def _only(evidence, claim: str):  # type: ignore[no-untyped-def]
    (item,) = [e for e in evidence if e.claim == claim]
    return item


# -- what is read ---------------------------------------------------------------------------
def test_an_iphone_photo_shows_make_model_exposure_date_gps_and_software() -> None:
    (item,) = read_provenance(camera_jpeg(), "iphone.jpg")
    assert (item.signal, item.claim, item.by, item.trust, item.decisive) == (
        "exif",
        "capture_metadata",
        IPHONE,
        None,
        False,
    )
    raw = item.raw
    assert (raw["make"], raw["model"], raw["software"]) == ("Apple", "iPhone 5", "6.0")
    assert raw["exposure_time"] == pytest.approx(1 / 120)
    assert (raw["f_number"], raw["iso"], raw["focal_length_mm"]) == (2.4, 50, 4.13)
    assert raw["lens"] == "Apple iPhone 5 back camera 4.13mm f/2.4"
    assert raw["captured_at"] == "2012-09-29T10:15:30" and raw["gps"] is True
    assert (raw["width"], raw["height"], raw["weight"]) == (320, 240, 0.0)
    for text in (IPHONE, "1/120 s", "f/2.4", "ISO 50", "2012-09-29 10:15:30", "GPS position"):
        assert text in item.detail
    assert "not counted in the verdict" in item.detail


def test_gps_absent_placeholder_dates_and_png_exif() -> None:
    jpeg = camera_jpeg(gps=False, captured="0000:00:00 00:00:00", software=None)
    (item,) = read_provenance(jpeg, "x.jpg")
    assert item.raw["gps"] is False and item.raw["captured_at"] is None
    assert item.raw["software"] is None and "no GPS position" in item.detail
    png = encode(natural_rgb(64, 64), "PNG", exif=camera_exif(model="Pixel 8", make="Google"))
    assert [(e.claim, e.by) for e in read_provenance(png, "x.png")] == [
        ("capture_metadata", "Google Pixel 8")
    ]


def test_camera_exif_is_read_from_avif() -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    exif = camera_exif(make="Apple", model="iPhone 15 Pro")
    avif = encode(natural_rgb(64, 64), "AVIF", exif=exif)
    (item,) = read_provenance(avif, "photo.avif")
    assert (item.claim, item.by, item.raw["gps"]) == (
        "capture_metadata",
        "Apple iPhone 15 Pro",
        True,
    )


def test_no_camera_fields_no_evidence() -> None:
    """No EXIF, or only an editor's Software tag (every editor writes one), says nothing."""
    assert read_provenance(encode(natural_rgb(64, 64), "JPEG"), "plain.jpg") == []
    exif = Image.Exif()
    exif[0x0131] = "GIMP 2.10"
    assert read_capture(encode(natural_rgb(64, 64), "JPEG", exif=exif.tobytes())) is None


def test_hostile_exif_values_never_raise_and_are_bounded() -> None:
    exif = Image.Exif()
    exif[0x010F] = "A" * 10_000
    exif[0x0110] = b"\x00\xff\xfe model \x00"
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = "not a number"
    sub[0x9003] = "2012:13:45 99:99:99"
    (item,) = read_provenance(encode(natural_rgb(64, 64), "JPEG", exif=exif.tobytes()), "x")
    assert len(item.raw["make"]) == 64 and item.raw["exposure_time"] is None
    assert item.raw["captured_at"] is None


# -- weight: shown, never counted ------------------------------------------------------------
@given(st.floats(min_value=0.0, max_value=1.0))
def test_camera_exif_never_moves_the_verdict(p_pixels: float) -> None:
    (item,) = read_provenance(CAMERA_JPEG, "iphone.jpg")
    assert evidence_weight(item) == 0.0
    combined = combine(p_pixels, [item])
    assert combined.p_fake == p_pixels and not combined.overridden


@given(st.floats(min_value=0.0, max_value=1.0))
def test_inconsistent_metadata_only_raises_p_fake_a_little(p_pixels: float) -> None:
    evidence = read_provenance(SQUARE_JPEG, "square.jpg")
    inconsistent = _only(evidence, "inconsistent_metadata")
    assert 0.0 < evidence_weight(inconsistent) <= 0.5
    p_fake = combine(p_pixels, evidence).p_fake
    assert p_pixels <= p_fake <= p_pixels + 0.13  # at most 0.5 log-odds


# -- inconsistencies -------------------------------------------------------------------------
def test_a_camera_with_a_generators_software_tag_is_inconsistent() -> None:
    evidence = read_provenance(camera_jpeg(software="Midjourney v6"), "mj.jpg")
    assert ("metadata", "ai_generated") in _kinds(evidence)
    item = _only(evidence, "inconsistent_metadata")
    assert item.raw == {"check": "generator_software", "generator": "Midjourney"}
    assert IPHONE in item.detail and "Midjourney" in item.detail


@pytest.mark.parametrize(
    ("size", "options", "flagged"),
    [
        ((1024, 1024), {}, True),
        ((512, 512), {}, True),
        ((832, 1216), {}, True),  # an SDXL bucket
        ((1024, 1024), {"exif_size": (1024, 1024)}, True),  # the EXIF claims that size
        ((1024, 1024), {"software": "Adobe Photoshop 25.0 (Macintosh)"}, False),  # a crop
        ((1024, 1024), {"exif_size": (3264, 2448)}, False),  # the camera wrote another size
        ((1024, 1024), {"captured": None}, False),  # not a camera's full EXIF
        ((1024, 768), {}, False),  # a photo's 4:3, downscaled
        ((768, 512), {}, False),  # a photo's 3:2, downscaled
    ],
)
def test_a_generators_exact_size_under_full_camera_exif(
    size: tuple[int, int], options: dict, flagged: bool
) -> None:
    evidence = read_provenance(camera_jpeg(*size, **options), "x.jpg")
    found = [e for e in evidence if e.claim == "inconsistent_metadata"]
    assert [e.raw["check"] for e in found] == (["generator_size"] if flagged else [])
    assert ("exif", "capture_metadata") in _kinds(evidence)


def test_a_capture_after_the_c2pa_claim_is_inconsistent() -> None:
    ca = make_ca()
    photo = camera_jpeg()  # taken 2012-09-29 10:15:30 (local time, zone unknown)
    early = sign(photo, "image/jpeg", manifest("digitalCapture", when="2011-06-01T00:00:00Z"), ca)
    evidence = read_provenance(early, "early.jpg")
    c2pa = next(e for e in evidence if e.signal == "c2pa")
    assert c2pa.raw["claim_time"] == "2011-06-01T00:00:00Z"
    item = _only(evidence, "inconsistent_metadata")
    assert item.raw["check"] == "capture_after_c2pa"
    assert "2012-09-29 10:15:30" in item.detail and "2011-06-01" in item.detail
    # The same day in another time zone, or a claim made later, is consistent.
    for when in ("2012-09-29T00:00:00Z", "2013-01-01T00:00:00Z"):
        later = sign(photo, "image/jpeg", manifest("digitalCapture", when=when), ca)
        assert "inconsistent_metadata" not in {e.claim for e in read_provenance(later, "x")}


@pytest.mark.integration
def test_real_photos_raise_no_inconsistency(shared_data: Path) -> None:
    """The real halves of the shared data sets (200 of each): no false alarm, no AI claim."""
    seen = 0
    for archive in sorted(shared_data.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if "real/" in n.lower() and not n.endswith("/")]
            for name in names[:200]:
                evidence = read_provenance(zf.read(name), name)
                assert all(e.claim != "inconsistent_metadata" for e in evidence), name
                assert all(not e.is_ai for e in evidence), name
                seen += 1
    assert seen >= 800


# -- shown everywhere predict answers --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_predict_json_csv_and_table_show_make_and_model(tmp_path: Path) -> None:
    photo = tmp_path / "iphone.jpg"
    photo.write_bytes(CAMERA_JPEG)
    (row,) = json.loads(fakescope("predict", photo, "--bundle", "scratch", "-f", "json").stdout)
    (item,) = [e for e in row["evidence"] if e["signal"] == "exif"]
    assert item["claim"] == "capture_metadata" and item["by"] == IPHONE
    assert (item["raw"]["make"], item["raw"]["model"]) == ("Apple", "iPhone 5")
    assert row["p_fake"] == row["p_fake_pixels"]  # shown, not counted
    text = fakescope("predict", photo, "--bundle", "scratch", "-f", "csv").stdout
    (line,) = csv.DictReader(io.StringIO(text))
    assert line["evidence"] == f"exif: capture_metadata by {IPHONE} (not counted)"
    table = fakescope("predict", photo, "--bundle", "scratch", columns=200).stdout
    assert IPHONE in table and "not counted" in table


@pytest.mark.integration
def test_exif_alone_never_turns_a_verdict_real() -> None:
    from fakescope.detectors import load_detector

    detector = load_detector("scratch", device="cpu")
    photos = [camera_jpeg(seed=seed) for seed in range(4)]
    with_exif = detector.predict(photos)
    pixels_only = detector.predict(photos, provenance=False)
    for ours, alone in zip(with_exif, pixels_only, strict=True):
        assert [e["claim"] for e in ours.evidence] == ["capture_metadata"]
        assert ours.p_fake == alone.p_fake and ours.label == alone.label
        assert ours.unsure == alone.unsure


def test_the_evaluation_report_lists_camera_metadata_without_counting_it(tmp_path: Path) -> None:
    from imagegen import toy_array
    from test_report import parse_page
    from tiny import tiny_bundle

    from fakescope.detectors import load_detector
    from fakescope.evaluation.evaluate import evaluate

    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    for folder in ("real", "fake"):
        (data / folder).mkdir(parents=True)
        for i in range(4):
            array = toy_array(folder, rng, 32)
            exif = camera_exif() if (folder, i) in (("real", 0), ("real", 1)) else b""
            Image.fromarray(array).save(data / folder / f"{i}.jpg", quality=95, exif=exif)
    detector = load_detector(tiny_bundle(tmp_path / "bundle"), device="cpu")
    summary = evaluate(detector, data, tmp_path / "ev", progress=False, bootstrap=0)["provenance"]
    assert summary["counts"] == {"exif/capture_metadata": 2}
    assert summary["images_with_evidence"] == 2
    assert summary["verdicts_changed"] == summary["labels_changed"] == 0
    section = parse_page(tmp_path / "ev" / "report.html").sections["provenance"]
    assert f"exif: capture_metadata by {IPHONE} (not counted)" in section
    assert "never moves a verdict towards real" in section
