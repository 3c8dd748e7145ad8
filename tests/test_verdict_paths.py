"""One verdict, whichever way an image comes in: `fakescope predict` (the CLI, CSV), the
Python API, `evaluate` (predictions.csv), the HTTP API (a real server) and video (a
lossless clip of the still image) give the same row for the same image, with the shipped
default detector on real images: a face close-up its face route scores, a StyleGAN face, a
modern photo outside its domain, a CIFAKE thumbnail, a DALL-E 3 image carrying C2PA
Content Credentials and a flat drawing made here (a plot: the default detector is made for
photographs, so every path answers it unsure, not a photograph).

Where video legitimately differs, and what this test holds it to instead: a video's file
provenance is not read (its frames carry none), so its row is the image's verdict from the
pixels alone (`provenance=False`); and a face-aware detector's joined face is per frame
(`frames[].face` with --faces), not one box, so face_box and face_note are empty.
"""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from clirun import fakescope
from imagegen import flat_drawing
from liveserver import thread_server

from fakescope.bundle import shipped_available
from fakescope.data.inputs import read_input
from fakescope.detectors import Detector, load_detector
from fakescope.evaluation.evaluate import PREDICTION_COLUMNS, evaluate
from fakescope.serve import ServeSettings, create_app
from fakescope.verdict.prediction import CSV_FIELDS, Prediction
from fakescope.verdict.rule import NOT_A_PHOTO
from fakescope.video import VIDEO_CSV_FIELDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not shipped_available("default"), reason="default detector not shipped"),
]

# test file name -> (where it comes from, member inside a zip or None, its true label)
IMAGES = {
    "face_closeup.jpg": ("data/stylegan_faces.zip", "real/real_1.jpg", "real"),
    "stylegan_fake.jpg": ("data/stylegan_faces.zip", "fake/fake_1.jpg", "fake"),
    "nature_generated.jpg": ("data/modern_photos.zip", "fake/nature_10.jpg", "fake"),
    "cifake_thumbnail.jpg": ("data/cifake_train.zip", "real/0000 (6).jpg", "real"),
    "c2pa_dalle3.webp": ("fixtures/provenance/c2pa_openai_dalle3_2024.webp", None, "fake"),
    "plot_drawing.png": ("made here: tests/imagegen.flat_drawing", None, "real"),
}
FLOATS = {"p_fake", "p_fake_pixels", "domain_score", "max_crop_p_fake"}


@pytest.fixture(scope="module")
def detector() -> Detector:
    return load_detector("default")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The images' own bytes (provenance intact) in real/ and fake/ folders."""
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    if not (shared / "data").is_dir():
        pytest.skip(f"real data not available at {shared / 'data'}")
    root = tmp_path_factory.mktemp("same_row")
    for name, (source, member, label) in IMAGES.items():
        (root / label).mkdir(exist_ok=True)
        if source.startswith("made here"):
            flat_drawing().save(root / label / name)
        elif member is None:
            shutil.copyfile(shared / source, root / label / name)
        else:
            with zipfile.ZipFile(shared / source) as archive:
                (root / label / name).write_bytes(archive.read(member))
    return root


def image_paths(folder: Path) -> list[Path]:
    return [folder / label / name for name, (_, _, label) in IMAGES.items()]


def still_clip(image: Path, out: Path) -> Path:
    """Two frames of the image as predict decodes it, in a lossless (FFV1) video."""
    pixels = np.asarray(read_input(str(image), str(image)))
    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("ffv1", rate=2)
        stream.width, stream.height, stream.pix_fmt = pixels.shape[1], pixels.shape[0], "bgr0"
        stream.time_base = Fraction(1, 2)
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    return {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(text))}


def as_text(row: dict[str, Any]) -> dict[str, str]:
    """A `Prediction.to_row` as a CSV reader gives it back."""
    return {k: "" if v is None else str(v) for k, v in row.items()}


def assert_same(got: dict[str, str], want: dict[str, str], fields: tuple[str, ...], where: str):
    for key in fields:
        a, b = got[key], want[key]
        if key in FLOATS and a and b:
            assert float(a) == pytest.approx(float(b), abs=2e-5), f"{where}: {key} {a} != {b}"
        else:
            assert a == b, f"{where}: {key} {a!r} != {b!r}"


def test_predict_evaluate_serve_and_video_give_the_same_row(
    detector: Detector, folder: Path, tmp_path: Path
) -> None:
    images = image_paths(folder)
    clips = [still_clip(path, tmp_path / f"{path.stem}.mkv") for path in images]
    # the Python API: the rows every other way is held to
    api = {Path(p.path).name: as_text(p.to_row()) for p in detector.predict(images)}
    pixels_alone = {
        Path(p.path).name: as_text(p.to_row()) for p in detector.predict(images, provenance=False)
    }
    assert api["face_closeup.jpg"]["face_box"], "the face route did not take the close-up"
    assert "c2pa: ai_generated" in api["c2pa_dalle3.webp"]["evidence"]
    assert api["nature_generated.jpg"]["in_domain"] == "0"
    assert detector.meta.photos_only, "the default detector is made for photographs"
    assert api["plot_drawing.png"]["content"] == "graphic"
    assert api["plot_drawing.png"]["unsure"] == "1"
    assert api["plot_drawing.png"]["unsure_reason"] == NOT_A_PHOTO
    assert api["face_closeup.jpg"]["content"] == "photo"
    fields = CSV_FIELDS[1:]

    # fakescope predict, images and clips in one CSV
    out = tmp_path / "predict.csv"
    fakescope("predict", *images, *clips, "--format", "csv", "--out", out)
    text = out.read_text()
    assert next(csv.reader(io.StringIO(text))) == [*CSV_FIELDS, *VIDEO_CSV_FIELDS]
    cli = csv_rows(text)
    for name in IMAGES:
        assert_same(cli[name], api[name], fields, f"predict {name}")

    # evaluate: predictions.csv (true label, then the verdict's columns)
    evaluate(detector, folder, tmp_path / "eval", progress=False, report=False, bootstrap=0)
    evaluated = csv_rows((tmp_path / "eval" / "predictions.csv").read_text())
    assert set(evaluated) == set(IMAGES)
    for name, (_, _, label) in IMAGES.items():
        row = evaluated[name]
        assert row["label"] == label
        assert row["predicted"] == api[name]["label"]
        assert_same(row, api[name], ("p_fake", "unsure", *PREDICTION_COLUMNS[5:]), name)

    # the HTTP API, a real server
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        uploads = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in images]
        response = httpx.post(f"{url}/v1/predict", files=uploads, timeout=120)
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
        served = Prediction(path=result.pop("filename"), **result)
        assert_same(as_text(served.to_row()), api[served.path], fields, f"serve {served.path}")

    # video: the still's clip is judged like the image's pixels alone
    for path in images:
        row = cli[f"{path.stem}.mkv"]
        assert row["frames_scored"] == "2" and row["error"] == ""
        assert row["face_box"] == row["face_note"] == row["evidence"] == ""
        same = tuple(f for f in fields if f not in ("face_box", "face_note"))
        assert_same(row, pixels_alone[path.name], same, f"video {path.name}")
