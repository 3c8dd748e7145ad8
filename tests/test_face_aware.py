"""The face-aware kind: a whole-image detector whose verdict averages in a face specialist's
score where a face fills the image. Routing and the average, the same answer from every path
(predict, prepared batches, the HTTP API, onnxruntime), Grad-CAM of the whole-image member,
what it refuses and why, bundle verification, and the shipped `general_faces`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from videogen import cartoon_face

from fakescope.bundle import (
    BundleError,
    BundleMeta,
    load_bundle,
    read_meta,
    save_bundle,
    shipped_available,
    sign,
    update_meta,
)
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import CapabilityError, Detector, FaceAwareDetector, load_detector
from fakescope.errors import ConfigError
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.explain import gradcam
from fakescope.faces import FaceCropPolicy, FaceSelector, mtcnn_available
from fakescope.kinds.ensemble.build import build_ensemble
from fakescope.kinds.face_aware.bundle import FaceRoute, save_face_aware_bundle
from fakescope.kinds.face_aware.detector import route_finder
from fakescope.models import create_model
from fakescope.onnx_export import ExportError, export_onnx

pytestmark = pytest.mark.skipif(not mtcnn_available(), reason="facenet-pytorch is not installed")
ROUTE = FaceRoute(min_face_fraction=0.25, face_weight=0.5)


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (the shared `one_thread` fixture)."""


def _bundle(folder: Path, seed: int, size: int, threshold: float) -> Path:
    torch.manual_seed(seed)
    meta = BundleMeta(
        architecture="resnet_se",
        model_kwargs={"widths": [8, 16, 32]},
        preprocessing=Preprocessing(input_size=size),
        threshold=threshold,
    )
    return save_bundle(folder, create_model("resnet_se", widths=[8, 16, 32]), meta)


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("face_aware")
    return _bundle(root / "whole", 0, 32, 0.5), _bundle(root / "faces", 1, 48, 0.3)


@pytest.fixture(scope="module")
def bundle(members: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("face_aware_bundle") / "bundle"
    return save_face_aware_bundle(out, *members, ROUTE, card={"limits": "test"})


@pytest.fixture(scope="module")
def detector(bundle: Path) -> Detector:
    return load_detector(bundle, device="cpu")


def close_up() -> Image.Image:
    """A drawn face that fills about a third of the picture (routed at 0.25)."""
    return Image.fromarray(cartoon_face(240))


def wide_shot() -> Image.Image:
    """The same face small on a wide canvas (under 0.25 of it: not routed)."""
    canvas = Image.new("RGB", (560, 420), (70, 90, 120))
    canvas.paste(close_up().resize((160, 160)), (200, 130))
    return canvas


def no_face() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8))


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def expected_average(whole: Detector, faces: Detector, image: Image.Image) -> tuple[float, dict]:
    """What the module doc promises: each member's logit less its threshold's, averaged,
    on the whole member's scale; the face crop is the face member's policy's."""
    selection = FaceSelector(faces.face_policy, finder=route_finder(faces.face_policy)).largest(
        [image]
    )[0]
    assert selection.face_box is not None
    p_whole = float(whole.predict_images([image])[0])
    p_face = float(faces.predict_images([selection.image])[0])
    a = 0.5 * (logit(p_whole) - logit(whole.threshold)) + 0.5 * (
        logit(p_face) - logit(faces.threshold)
    )
    box = selection.face_box
    return 1 / (1 + np.exp(-(a + logit(whole.threshold)))), {
        "x": box.x,
        "y": box.y,
        "w": box.w,
        "h": box.h,
    }


def test_an_image_a_face_fills_averages_in_the_face_members_score(
    detector: Detector, members: tuple[Path, Path]
) -> None:
    whole, faces = (load_detector(m, device="cpu") for m in members)
    (result,) = detector.predict([close_up()], provenance=False)
    p, box = expected_average(whole, faces, close_up())
    assert result.p_fake_pixels == pytest.approx(p, abs=1e-5)
    assert result.face_box == box
    assert result.face_note is not None and "averaged in" in result.face_note
    assert f"{box['w'] * box['h'] / 240**2:.0%}" in result.face_note
    assert abs(result.p_fake_pixels - float(whole.predict_images([close_up()])[0])) > 1e-4


@pytest.mark.parametrize("image", [wide_shot, no_face], ids=["small face", "no face"])
def test_other_images_get_exactly_the_whole_members_answer(
    detector: Detector, members: tuple[Path, Path], image
) -> None:
    whole = load_detector(members[0], device="cpu")
    (got,) = detector.predict([image()], provenance=False)
    (alone,) = whole.predict([image()], provenance=False)
    assert got.p_fake_pixels == pytest.approx(alone.p_fake_pixels, abs=1e-6)
    assert (got.label, got.unsure) == (alone.label, alone.unsure)
    assert got.face_box is None and got.face_note is None


def test_prepared_batches_score_as_predict_does(detector: Detector) -> None:
    """evaluate, robustness, video and the server prepare then score: the same numbers."""
    images = [close_up(), wide_shot(), no_face()]
    predicted = [r.p_fake_pixels for r in detector.predict(images, provenance=False)]
    prepared = [detector.prepare(img) for img in images]
    assert detector.probabilities_in_batches(prepared, batch_size=2) == pytest.approx(
        predicted, abs=1e-5
    )
    scores = detector.score_prepared(prepared)
    assert scores.p_fake == pytest.approx(predicted, abs=1e-5)
    assert scores.face_boxes is not None
    assert [b is not None for b in scores.face_boxes] == [True, False, False]


def test_a_pickled_copy_scores_the_same(detector: Detector) -> None:
    """Ray actors and worker processes get the detector pickled; the face finder (with its
    lock) is not copied but made again on first use."""
    import pickle

    detector.prepare(close_up())  # the original has its finder now
    copy = pickle.loads(pickle.dumps(detector))
    images = [close_up(), no_face()]
    assert [r.p_fake for r in copy.predict(images, provenance=False)] == pytest.approx(
        [r.p_fake for r in detector.predict(images, provenance=False)], abs=1e-6
    )


def test_decoded_sets_are_cached_under_the_route_and_its_search(
    detector: Detector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate caches prepared arrays by the preprocessing: a change of route or of how the
    face is looked for must not reuse arrays routed the old way."""
    from fakescope.data.cache import cache_key
    from fakescope.data.sources import Item
    from fakescope.kinds.face_aware import detector as face_aware

    items = [Item("a.png", 0)]
    pre = detector.preprocessing
    key = cache_key(items, pre, "fp")
    assert key != cache_key(items, replace(pre, route=FaceRoute(0.3, 0.5)), "fp")
    monkeypatch.setattr(face_aware, "ROUTE_SEARCH_SIZE", 256)
    assert key != cache_key(items, pre, "fp")
    monkeypatch.undo()
    assert key == cache_key(items, pre, "fp")
    monkeypatch.setattr(face_aware, "ROUTE_MIN_FACE_SHARE", 0.0)  # the former, deeper search
    assert key != cache_key(items, pre, "fp")


def test_the_verdict_keeps_the_whole_members_threshold_and_band(
    detector: Detector, members: tuple[Path, Path]
) -> None:
    whole = load_detector(members[0], device="cpu")
    assert detector.threshold == whole.threshold
    assert detector.meta.unsure_band == whole.meta.unsure_band
    assert detector.meta.temperature == 1.0


def test_the_api_reports_the_face_that_joined(detector: Detector) -> None:
    from fastapi.testclient import TestClient

    from fakescope.serve import create_app

    def png(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    uploads = [
        ("files", ("close.png", png(close_up()), "image/png")),
        ("files", ("none.png", png(no_face()), "image/png")),
    ]
    expected = detector.predict([close_up(), no_face()], provenance=False)
    with TestClient(create_app(detector)) as client:
        response = client.post("/v1/predict", files=uploads)
        explained = client.post("/v1/explain", files=[uploads[0]])
    assert response.status_code == 200, response.text
    close, none = response.json()["results"]
    assert close["face_box"] == expected[0].face_box and "averaged in" in close["face_note"]
    assert close["p_fake_pixels"] == pytest.approx(expected[0].p_fake_pixels, abs=1e-5)
    assert none["face_box"] is None and none["face_note"] is None
    assert explained.status_code == 200 and explained.content.startswith(b"\x89PNG")
    assert float(explained.headers["X-P-Fake"]) == pytest.approx(
        expected[0].p_fake_pixels, abs=1e-5
    )


def test_grad_cam_is_the_whole_members(detector: Detector, members: tuple[Path, Path]) -> None:
    whole = load_detector(members[0], device="cpu")
    assert detector.capabilities.can_explain and detector.explained_by is detector.whole  # type: ignore[attr-defined]
    (ours,) = gradcam(detector, [close_up()])
    (theirs,) = gradcam(whole, [close_up()])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_it_refuses_what_needs_one_model_and_says_what_to_use(
    detector: Detector, bundle: Path, tmp_path: Path
) -> None:
    for capability, purpose in (("embed", "embeddings"), ("gradients", "attacks")):
        with pytest.raises(CapabilityError, match="whole-image member"):
            detector.require(capability, purpose)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is face-aware"):
        build_ensemble([bundle, bundle], tmp_path / "toy", tmp_path / "ens")
    with pytest.raises(ExportError, match="export its members"):
        export_onnx(bundle, tmp_path / "x.onnx")
    with pytest.raises(BundleError, match="no weights of its own"):
        load_bundle(bundle)
    with pytest.raises(BundleError, match="rebuild"):
        update_meta(bundle, threshold=0.4)
    with pytest.raises(ConfigError, match="min_face_fraction"):
        FaceRoute(min_face_fraction=0.0)


def test_a_member_that_changed_or_leaves_the_bundle_is_refused(
    bundle: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    assert read_meta(copy)["kind"] == "face_aware"
    assert (copy / "members" / "whole" / "model.safetensors").is_file()  # self-contained
    meta = json.loads((copy / "bundle.json").read_text())
    meta["members"]["faces"]["sha256"] = "0" * 64
    (copy / "bundle.json").write_text(json.dumps(sign(meta)))
    with pytest.raises(BundleError, match="faces member is not the one.*fakescope face-aware"):
        load_detector(copy)
    meta["members"]["faces"]["ref"] = "../../elsewhere"
    (copy / "bundle.json").write_text(json.dumps(sign(meta)))
    with pytest.raises(BundleError, match="leaves the bundle"):
        load_detector(copy)
    with pytest.raises(BundleError, match="single-model bundle"):
        save_face_aware_bundle(tmp_path / "nested", bundle, bundle, ROUTE)


def test_on_onnxruntime_it_gives_the_torch_answer(bundle: Path, detector: Detector) -> None:
    onnx = load_detector(bundle, runtime="onnx")
    assert isinstance(onnx, FaceAwareDetector) and onnx.runtime == "onnx"
    images = [close_up(), no_face()]
    got = [r.p_fake_pixels for r in onnx.predict(images, provenance=False)]
    want = [r.p_fake_pixels for r in detector.predict(images, provenance=False)]
    assert got == pytest.approx(want, abs=1e-4)


@pytest.mark.skipif(not shipped_available("general_faces"), reason="not installed")
def test_the_shipped_general_faces_is_general_with_the_face_specialist() -> None:
    shipped = load_detector("general_faces", device="cpu")
    general = load_detector("general", device="cpu")
    assert isinstance(shipped, FaceAwareDetector)
    assert shipped.whole.bundle_path == general.bundle_path
    assert shipped.faces.bundle_path == load_detector("faces").bundle_path
    raw = read_meta(shipped.bundle_path)  # type: ignore[arg-type]
    assert raw["route"] == {"min_face_fraction": 0.5, "face_weight": 0.5}
    assert all(m["shipped"] for m in raw["members"].values())  # no weights copied
    (got,) = shipped.predict([no_face()], provenance=False)
    (alone,) = general.predict([no_face()], provenance=False)
    assert got.p_fake == pytest.approx(alone.p_fake, abs=1e-6)


@pytest.mark.slow
def test_evaluate_routes_like_predict_and_its_report_explains_the_whole_member(
    detector: Detector, tmp_path: Path
) -> None:
    from fakescope.evaluation.report_sections import EmbeddingSection, ExplanationSection

    data = tmp_path / "data"
    images = {"real": [no_face(), wide_shot(), close_up()], "fake": [close_up(), no_face()]}
    for label, pictures in images.items():
        (data / label).mkdir(parents=True)
        for i, picture in enumerate(pictures):
            picture.save(data / label / f"{i}.png")
    metrics = evaluate(
        detector,
        data,
        tmp_path / "ev",
        progress=False,
        provenance=False,
        bootstrap=0,
        report_hooks=[ExplanationSection(k=2), EmbeddingSection(points=4)],
    )
    with (tmp_path / "ev" / "predictions.csv").open() as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    assert len(rows) == 5
    for path, row in rows.items():
        (alone,) = detector.predict([path], provenance=False)
        assert float(row["p_fake_pixels"]) == pytest.approx(alone.p_fake_pixels, abs=1e-5)
        assert bool(row["face_box"]) == (alone.face_box is not None)
    assert sum(bool(row["face_box"]) for row in rows.values()) == 2  # the two close-ups
    assert "skipped" not in metrics["explanations"]  # Grad-CAM of the whole-image member
    assert "skipped" not in metrics["embeddings"]


@pytest.mark.browser
def test_the_page_draws_the_face_that_joined_and_says_so(
    detector: Detector, browser: Any, tmp_path: Path
) -> None:
    from liveserver import thread_server

    from fakescope.serve import ServeSettings, create_app

    close, none = tmp_path / "close.png", tmp_path / "none.png"
    close_up().save(close)
    no_face().save(none)
    (expected,) = detector.predict([close], provenance=False)
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.includes('loading')"
        )
        page.set_input_files("#file-input", str(close))
        card = page.locator("[data-testid=result]").first
        drawn = card.locator("[data-testid=face-box]")
        drawn.wait_for(state="visible")
        width = drawn.evaluate("e => e.getBoundingClientRect().width")
        scale = float(drawn.evaluate("e => e.dataset.scale"))
        assert width == pytest.approx(expected.face_box["w"] * scale, abs=1.5)
        note = card.locator("[data-testid=face-note]").inner_text()
        assert "The face in the box" in note and "averaged in" in note
        assert "Scored the face" not in note
        page.set_input_files("#file-input", str(none))
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=result][data-status]').length == 2"
        )
        newest = page.locator("[data-testid=result]").first
        assert not newest.locator("[data-testid=face-box]").is_visible()
        assert not newest.locator("[data-testid=face-note]").is_visible()
        page.close()


def test_batch_scoring_rows_carry_the_face_that_joined(detector: Detector, tmp_path: Path) -> None:
    from fakescope.batch_score import score_paths

    close, none = tmp_path / "close.png", tmp_path / "none.png"
    close_up().save(close)
    no_face().save(none)
    (expected,) = detector.predict([close], provenance=False)
    rows = score_paths(detector, [str(close), str(none)]).to_pylist()
    assert json.loads(rows[0]["face_box"]) == expected.face_box
    assert "averaged in" in rows[0]["face_note"]
    assert rows[1]["face_box"] is None and rows[1]["face_note"] is None


def test_cli_face_aware_builds_a_bundle_and_refuses_a_bad_route_before_writing(
    members: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from fakescope.cli import app

    whole, faces = (str(m) for m in members)
    bad = CliRunner().invoke(
        app, ["face-aware", whole, faces, "--out", str(tmp_path / "bad"), "--face-weight", "0"]
    )
    assert bad.exit_code != 0 and "face_weight must be in (0, 1]" in str(bad.exception)
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "fa"
    made = CliRunner().invoke(
        app, ["face-aware", whole, faces, "--out", str(out), "--min-face-fraction", "0.25"]
    )
    assert made.exit_code == 0, made.output
    assert read_meta(out)["route"] == {"min_face_fraction": 0.25, "face_weight": 0.5}
    assert "MODEL_CARD.md" in {p.name for p in out.iterdir()}
    (result,) = load_detector(out, device="cpu").predict([close_up()], provenance=False)
    assert result.face_box is not None


def test_the_route_finder_works_with_either_face_finder() -> None:
    """The Haar cascade takes none of MTCNN's retry options, and still finds the close-up."""
    for kind in ("mtcnn", "haar"):
        finder = route_finder(FaceCropPolicy(finder=kind))
        assert finder.kind == kind
        (boxes,) = finder.find([close_up()])
        assert boxes and boxes[0].w * boxes[0].h / 240**2 > 0.25, kind
    assert not route_finder(FaceCropPolicy()).find([no_face()])[0]
