"""--faces for still images and videos: predict, the Python API, evaluate (images and
labelled videos), robustness, the bundle's face crop policy, training on face crops, and the
shipped face specialist's name. Faces are the tests' drawn faces (tests/videogen.py), which
MTCNN finds; a real-photo video is in the integration test at the end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from videogen import cartoon_face, write_video

from fakescope.bundle import (
    BundleError,
    BundleMeta,
    face_detector_or_default,
    read_meta,
    resolve_bundle_path,
    save_bundle,
    shipped_available,
    update_meta,
)
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, load_detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.faces import (
    NO_FACE_NOTE,
    FaceCropPolicy,
    crop_face,
    face_box_dict,
    mtcnn_available,
)
from fakescope.inference import CSV_FIELDS, predict_inputs
from fakescope.models import create_model
from fakescope.video import VideoOptions, predict_video

pytestmark = pytest.mark.skipif(not mtcnn_available(), reason="facenet-pytorch is not installed")


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (the shared `one_thread` fixture)."""


def tiny_bundle(folder: Path, faces: dict | None = None, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    meta = BundleMeta(
        architecture="resnet_se",
        model_kwargs={"widths": [8, 16, 32]},
        preprocessing=Preprocessing(input_size=32),
        threshold=0.5,
        faces=faces,
    )
    return save_bundle(folder, create_model("resnet_se", widths=[8, 16, 32]), meta)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    return load_detector(tiny_bundle(tmp_path_factory.mktemp("faces") / "bundle"), device="cpu")


def face_photo(size: int = 240, offset: int = 0) -> Image.Image:
    """A drawn face on a wider canvas, so the face box is well inside the image."""
    canvas = Image.new("RGB", (size + 120, size + 40), (70, 90, 120))
    canvas.paste(Image.fromarray(cartoon_face(size, offset)), (60, 20))
    return canvas


def swapped(size: int = 240, offset: int = 0) -> np.ndarray:
    """A 'face swap' of the drawn face: its inner face (eyes, nose, mouth) replaced by another
    face's, with a different skin tone and a visible seam."""
    frame = Image.fromarray(cartoon_face(size, offset))
    donor = np.asarray(cartoon_face(size, offset)).astype(np.int16)
    donor = Image.fromarray(np.clip(donor * [0.85, 0.95, 1.1], 0, 255).astype(np.uint8))
    s = size / 240
    box = tuple(
        round(v * s) + (offset if i % 2 == 0 else 0) for i, v in enumerate((75, 80, 165, 175))
    )
    frame.paste(donor.crop(box), box[:2])
    return np.asarray(frame)


def no_face() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (180, 260, 3), dtype=np.uint8))


def inside(box: dict, image: Image.Image) -> bool:
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["w"] > 0
        and box["h"] > 0
        and box["x"] + box["w"] <= image.width
        and box["y"] + box["h"] <= image.height
    )


# -- still images ------------------------------------------------------------------------------
def test_the_face_is_scored_its_box_is_inside_the_image_and_the_crop_matches(
    detector: Detector,
) -> None:
    image = face_photo()
    (face,) = predict_inputs(detector, [image], faces=True, provenance=False)
    assert face.error is None and face.face_note is None
    assert face.faces_found == 1
    assert inside(face.face_box, image)
    # the drawn face's skin oval spans x 120..240, y 60..220 of the canvas
    box = face.face_box
    assert abs(box["x"] + box["w"] / 2 - 180) < 25 and abs(box["y"] + box["h"] / 2 - 140) < 30
    # what was scored is the policy's crop of that box, nothing else
    crop = crop_face(image, tuple(box.values()), detector.face_policy).image
    expected = float(detector.predict_images([crop])[0])
    assert face.p_fake_pixels == pytest.approx(expected, abs=1e-6)
    whole = float(detector.predict_images([image])[0])
    assert abs(whole - expected) > 1e-6  # the whole image would have scored differently


def test_an_image_without_a_face_is_scored_whole_with_a_note(detector: Detector) -> None:
    image = no_face()
    (result,) = detector.predict([image], faces=True, provenance=False)
    assert result.face_box is None and result.faces_found == 0
    assert result.face_note == NO_FACE_NOTE
    assert result.p_fake_pixels == pytest.approx(
        float(detector.predict_images([image])[0]), abs=1e-6
    )


def test_without_faces_nothing_changes(detector: Detector) -> None:
    (result,) = detector.predict([face_photo()], provenance=False)
    assert (result.face_box, result.faces_found, result.face_note) == (None, None, None)
    assert CSV_FIELDS[:5] == ("path", "p_fake", "label", "unsure", "error")
    assert CSV_FIELDS[-3:] == ("face_box", "faces_found", "face_note")


def test_all_faces_gives_one_row_per_face_largest_first(detector: Detector) -> None:
    small = Image.fromarray(cartoon_face(160)).resize((160, 160))
    canvas = Image.new("RGB", (520, 280), (70, 90, 120))
    canvas.paste(Image.fromarray(cartoon_face(240)), (10, 20))
    canvas.paste(small, (330, 60))
    rows = detector.predict([canvas, no_face()], all_faces=True, provenance=False)
    faces = [r for r in rows if r.face_box is not None]
    assert len(faces) == 2 and all(r.faces_found == 2 for r in faces)
    assert faces[0].face_box["w"] > faces[1].face_box["w"]  # largest first
    assert faces[0].face_box["x"] < 250 < faces[1].face_box["x"]
    assert [r.face_note for r in rows if r.face_box is None] == [NO_FACE_NOTE]
    row = faces[0].to_row()
    assert json.loads(row["face_box"]) == faces[0].face_box


def test_the_bundles_face_crop_policy_is_used(tmp_path: Path) -> None:
    policy = {"margin": 0.0, "square": False, "min_size": 24, "finder": "mtcnn"}
    detector = load_detector(tiny_bundle(tmp_path / "b", faces=policy), device="cpu")
    assert detector.face_policy == FaceCropPolicy(**policy)
    assert read_meta(tmp_path / "b")["faces"] == policy
    image = face_photo()
    (result,) = detector.predict([image], faces=True, provenance=False)
    box = result.face_box
    tight = image.crop((box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"]))
    assert result.p_fake_pixels == pytest.approx(
        float(detector.predict_images([tight])[0]), abs=1e-6
    )
    # a policy no finder can satisfy: every face is too small, so the whole image is scored
    big = {**policy, "min_size": 1000}
    strict = load_detector(tiny_bundle(tmp_path / "c", faces=big), device="cpu")
    assert strict.predict([image], faces=True, provenance=False)[0].face_note == NO_FACE_NOTE


def test_a_bundle_that_aligns_scores_the_levelled_crop_of_a_tilted_face(tmp_path: Path) -> None:
    from fakescope.faces import MtcnnFaceFinder

    policy = {"margin": 0.25, "square": True, "min_size": 24, "finder": "mtcnn", "align": True}
    detector = load_detector(tiny_bundle(tmp_path / "b", faces=policy), device="cpu")
    assert detector.face_policy.align
    tilted = face_photo().rotate(30, resample=Image.BICUBIC, fillcolor=(70, 90, 120))
    (result,) = detector.predict([tilted], faces=True, provenance=False)
    (face,) = MtcnnFaceFinder().find_one(tilted)
    levelled = crop_face(tilted, face, detector.face_policy)
    unturned = crop_face(tilted, face, FaceCropPolicy(**{**policy, "align": False}))
    assert levelled.angle < -20 and result.face_box == face_box_dict(face)
    p_levelled, p_unturned = detector.predict_images([levelled.image, unturned.image])
    assert result.p_fake_pixels == pytest.approx(float(p_levelled), abs=1e-6)
    assert abs(float(p_levelled) - float(p_unturned)) > 1e-6  # so the turn is what was scored


def test_bundles_without_a_face_policy_write_no_faces_key(tmp_path: Path) -> None:
    assert "faces" not in BundleMeta("resnet_se", Preprocessing(input_size=32)).to_dict()
    assert "faces" not in read_meta(tiny_bundle(tmp_path / "old"))


# -- the shipped face specialist ---------------------------------------------------------------
def test_the_face_specialist_is_used_only_when_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import fakescope.bundle as bundle_module

    assert shipped_available("faces")  # it ships with the package
    assert read_meta(resolve_bundle_path("faces"))["faces"]["margin"] == 0.25
    # a copy of fakescope without it (a slimmed-down install) falls back with a note
    monkeypatch.setattr(bundle_module, "shipped_bundle_path", lambda name="default": tmp_path)
    with pytest.raises(BundleError, match="'faces' is not installed"):
        resolve_bundle_path("faces")
    name, note = face_detector_or_default()
    assert name == "default" and note is not None and "not installed" in note
    installed = tiny_bundle(tmp_path / "faces_detector")
    monkeypatch.setattr(bundle_module, "shipped_bundle_path", lambda name="default": installed)
    assert face_detector_or_default() == ("faces", None)
    assert resolve_bundle_path("faces") == installed


# -- videos ------------------------------------------------------------------------------------
def real_and_swapped_video(path: Path, n_real: int = 3, n_swapped: int = 3) -> Path:
    frames = [cartoon_face(240, offset=4 * i) for i in range(n_real)]
    frames += [swapped(240, offset=4 * i) for i in range(n_swapped)]
    return write_video(path, frames, fps=2)


def test_a_video_of_real_and_swapped_face_frames_is_scored_per_frame_and_aggregated(
    detector: Detector, tmp_path: Path
) -> None:
    video = real_and_swapped_video(tmp_path / "clip.mp4")
    result = predict_video(detector, video, VideoOptions(fps=2, faces=True))
    assert result.frames_sampled == 6 and result.frames_scored == 6 and result.note is None
    scores = np.array([f.p_fake for f in result.frames])
    assert all(f.face is not None for f in result.frames)
    assert result.p_fake == pytest.approx(float(scores.mean()))
    assert result.max_p_fake == pytest.approx(float(scores.max()))
    over = float(np.mean(scores >= detector.threshold))
    assert result.fraction_over_threshold == pytest.approx(over)
    assert (result.label, result.unsure) == detector.verdict(result.p_fake)
    # each frame's score is the face crop's, cropped by the detector's policy
    import av

    with av.open(str(video)) as container:
        first = next(container.decode(video=0)).to_image()
    crop = crop_face(first, result.frames[0].face, detector.face_policy).image
    expected = float(detector.predict_images([crop])[0])
    assert result.frames[0].p_fake == pytest.approx(expected, abs=0.02)  # codec noise


def test_videos_use_the_bundles_face_policy(tmp_path: Path) -> None:
    policy = {"margin": 0.0, "square": False, "min_size": 1000, "finder": "auto"}
    detector = load_detector(tiny_bundle(tmp_path / "b", faces=policy), device="cpu")
    video = real_and_swapped_video(tmp_path / "clip.mp4", 2, 2)
    result = predict_video(detector, video, VideoOptions(fps=2, faces=True))
    assert result.frames_scored == 4 and "no face found in any" in result.note


def make_video_folder(root: Path) -> Path:
    for i in range(3):
        real_frames = [cartoon_face(240, offset=4 * (i + k)) for k in range(3)]
        write_video(root / "real" / f"real_{i}.mp4", real_frames, fps=2)
        real_and_swapped_video(root / "fake" / f"swap_{i}.mp4", 1, 2)
    (root / "fake" / "broken.mp4").write_text("not a video")
    return root


def test_evaluate_on_a_folder_of_labelled_videos_gives_one_row_per_video(
    detector: Detector, tmp_path: Path
) -> None:
    folder = make_video_folder(tmp_path / "videos")
    metrics = evaluate(
        detector, folder, tmp_path / "out", progress=False, bootstrap=0, faces=True,
        video_options=VideoOptions(fps=2),
    )  # fmt: skip
    assert metrics["n"] == 6 and metrics["videos"]["n"] == 6 and metrics["videos"]["faces"]
    assert [u["path"] for u in metrics["unreadable"]] == [str(folder / "fake" / "broken.mp4")]
    with open(tmp_path / "out" / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert {r["label"] for r in rows} == {"real", "fake"}
    by_path = {r["path"]: r for r in rows}
    one = predict_video(detector, folder / "real" / "real_0.mp4", VideoOptions(fps=2, faces=True))
    assert float(by_path[str(folder / "real" / "real_0.mp4")]["p_fake"]) == pytest.approx(
        one.p_fake, abs=1e-5
    )
    assert all(r["faces_found"] == "3" for r in rows)  # every sampled frame had its face
    assert (tmp_path / "out" / "report.html").is_file()


def test_evaluate_faces_on_images_reports_each_face(detector: Detector, tmp_path: Path) -> None:
    for label in ("real", "fake"):
        for i in range(3):
            folder = tmp_path / "data" / label
            folder.mkdir(parents=True, exist_ok=True)
            face_photo(offset=6 * i).save(folder / f"{i}.png")
        no_face().save(tmp_path / "data" / label / "noise.png")
    metrics = evaluate(
        detector, tmp_path / "data", tmp_path / "out", progress=False, bootstrap=0, faces=True
    )
    assert metrics["faces"]["with_face"] == 6 and metrics["faces"]["without_face"] == 2
    with open(tmp_path / "out" / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    noise = [r for r in rows if r["path"].endswith("noise.png")]
    assert all(r["face_note"] == NO_FACE_NOTE and r["face_box"] == "" for r in noise)
    faces = [r for r in rows if not r["path"].endswith("noise.png")]
    assert all(inside(json.loads(r["face_box"]), face_photo()) for r in faces)


def test_robustness_with_faces_corrupts_the_face_crop(detector: Detector, tmp_path: Path) -> None:
    from fakescope.robustness.sweep import RobustnessConfig, robustness

    for label in ("real", "fake"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            face_photo(offset=6 * i).save(tmp_path / "data" / label / f"{i}.png")
    config = RobustnessConfig(severities={"jpeg": (50.0,)}, faces=detector.face_policy)
    result = robustness(detector, tmp_path / "data", tmp_path / "out", config, progress=False)
    assert result["faces"]["policy"] == detector.face_policy.to_dict()
    assert result["n"] == 4
    assert [r["name"] for r in result["rows"]][:1] and len(result["rows"]) == 2
    plain = robustness(
        detector, tmp_path / "data", tmp_path / "plain",
        RobustnessConfig(severities={"jpeg": (50.0,)}), progress=False,
    )  # fmt: skip
    assert plain["faces"] is None


# -- the CLI -------------------------------------------------------------------------------------
def _fakescope(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fakescope", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_predict_faces_on_images(detector: Detector, tmp_path: Path) -> None:
    face_photo().save(tmp_path / "face.png")
    no_face().save(tmp_path / "noise.png")
    done = _fakescope(
        "predict", tmp_path / "face.png", tmp_path / "noise.png", "--bundle",
        detector.bundle_path, "--faces", "--format", "csv", "--no-provenance",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert json.loads(by_name["face.png"]["face_box"])["w"] > 50
    assert by_name["noise.png"]["face_note"] == NO_FACE_NOTE
    table = _fakescope("predict", tmp_path / "face.png", "--bundle", detector.bundle_path,
                       "--all-faces", "--no-provenance")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "face at x=" in table.stdout


def test_cli_faces_without_a_bundle_uses_the_face_specialist(tmp_path: Path) -> None:
    """--faces with no --bundle: the shipped face specialist scores the face (same p(fake) as
    --bundle faces), without the fallback note."""
    face_photo().save(tmp_path / "face.png")
    args = ("predict", tmp_path / "face.png", "--faces", "--format", "json", "--no-provenance")
    done = _fakescope(*args)
    assert done.returncode == 0, done.stderr
    assert "face specialist is not installed" not in done.stderr
    named = _fakescope(*args, "--bundle", "faces")
    row, same = json.loads(done.stdout)[0], json.loads(named.stdout)[0]
    assert row["face_box"] is not None and row["p_fake"] == same["p_fake"]
    general = json.loads(_fakescope(*args, "--bundle", "general").stdout)[0]
    assert general["p_fake"] != row["p_fake"]


# -- real photos -------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_video_of_real_and_swapped_lfw_faces(
    detector: Detector, shared_data: Path, tmp_path: Path
) -> None:
    from fakescope.data.sources import open_source

    source = open_source(shared_data / "faceswap_lfw.zip")
    reals = [it for it in source.items if it.label == 0][:3]
    fakes = [it for it in source.items if it.label == 1][:3]
    frames = []
    for item in reals + fakes:
        image = Image.open(__import__("io").BytesIO(source.read_bytes(item))).convert("RGB")
        frames.append(np.asarray(image.resize((250, 250))))
    video = write_video(tmp_path / "lfw.mp4", [f[:248, :248] for f in frames], fps=2)
    result = predict_video(detector, video, VideoOptions(fps=2, faces=True))
    assert result.frames_sampled == 6
    assert sum(f.face is not None for f in result.frames) >= 5
    scored = [f.p_fake for f in result.frames if f.p_fake is not None]
    assert result.p_fake == pytest.approx(float(np.mean(scored)))


# -- training on face crops --------------------------------------------------------------------
def test_a_recipe_with_data_faces_trains_on_face_crops_and_records_the_policy(
    tmp_path: Path,
) -> None:
    from fakescope.config import load_recipe, validate_recipe
    from fakescope.training.trainer import train

    for i in range(10):
        (tmp_path / "data" / "real").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "fake").mkdir(parents=True, exist_ok=True)
        face_photo(offset=3 * i).save(tmp_path / "data" / "real" / f"{i}.png")
        canvas = face_photo(offset=3 * i)
        canvas.paste(Image.fromarray(swapped(240, 3 * i)), (60, 20))
        canvas.save(tmp_path / "data" / "fake" / f"{i}.png")
    policy = {"margin": 0.1, "square": True, "min_size": 30, "finder": "auto", "align": True}
    card = {"title": "toy faces", "limits": "Never saw a diffusion face."}
    recipe = validate_recipe(
        {
            "name": "tiny-faces",
            "card": card,
            "model": {"name": "resnet_se", "drop_rate": 0.0, "kwargs": {"widths": [8, 16, 32]}},
            "data": {
                "input_size": 32,
                "val_fraction": 0.3,
                "faces": policy,
                "augment": {"hflip": True, "pad_crop": 0},
            },  # fmt: skip
            "train": {"epochs": 1, "batch_size": 8, "precision": "fp32", "threads": 1},
        }
    )
    result = train(tmp_path / "data", recipe, tmp_path / "run", progress=False)
    meta = read_meta(result.bundle_dir)
    assert meta["faces"] == policy
    assert meta["card"] == card
    text = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "# Model card: toy faces" in text and "Never saw a diffusion face." in text
    assert "trained on face crops" in text and "turned to level the eyes" in text
    detector = load_detector(result.bundle_dir, device="cpu")
    assert detector.face_policy == FaceCropPolicy(**policy)
    # a recipe without data.faces trains on whole images and writes no policy
    assert validate_recipe({"name": "x"}).data.faces is None
    shipped = load_recipe("faces")
    assert shipped.data.faces is not None and shipped.train.max_minutes <= 85
    assert shipped.model.name == "tf_efficientnet_lite0" and shipped.model.pretrained
    assert 160 <= (shipped.data.input_size or 0) <= 224
    limits = shipped.card.limits if shipped.card else ""
    for seen in ("face swaps", "GAN-generated faces", "DFDC deepfakes"):
        assert seen in limits
    for unseen in ("Photoshop face composites", "diffusion models"):
        assert unseen in limits and unseen in shipped.description
    # the Lite0 specialist is a stage 2 (faces_tune, faces_blend) on top of stage 1: 90 minutes
    tune = load_recipe("faces_tune")
    assert tune.model.pretrained_path == "runs/faces/bundle"
    assert tune.data.keep_splits_of == "runs/faces" and tune.data.faces == shipped.data.faces
    assert tune.train.max_minutes is not None  # no cap would be no budget
    assert shipped.train.max_minutes + tune.train.max_minutes <= 90
    assert tune.card == shipped.card and tune.data.input_size == shipped.data.input_size
    # ... with self-blended fakes (faces_blend, the same split and budget as faces_tune)
    blend = load_recipe("faces_blend")
    assert blend.model.pretrained_path == tune.model.pretrained_path
    assert blend.data.keep_splits_of == tune.data.keep_splits_of
    assert blend.train.max_minutes == tune.train.max_minutes
    assert 0 < blend.data.augment.self_blend.p < 0.5  # most real faces stay real
    assert blend.card and "self-blended" in blend.card.limits and "composite" in blend.card.limits
    # stage 3 (an experiment) starts from stage 2, keeps its split, and gets what is left of 90
    polish = load_recipe("faces_polish")
    assert polish.model.pretrained_path == "runs/faces-blend/bundle"
    assert polish.data.keep_splits_of == "runs/faces-blend" and polish.train.total_minutes == 90
    assert polish.data.augment.self_blend == blend.data.augment.self_blend
    # the shipped `faces`: one stage on a larger model from ImageNet weights, same split, 90 min
    lite2 = load_recipe("faces_lite2")
    assert lite2.model.name == "tf_efficientnet_lite2" and lite2.model.pretrained
    assert lite2.model.pretrained_path is None and lite2.data.keep_splits_of == "runs/faces"
    assert lite2.train.max_minutes == 90 and lite2.data.input_size == 224
    assert lite2.data.faces == shipped.data.faces and lite2.data.sources == blend.data.sources
    assert lite2.data.augment.self_blend == blend.data.augment.self_blend
    shipped_meta = read_meta(resolve_bundle_path("faces"))
    trained_by = shipped_meta["training"]["recipe"]
    assert trained_by["name"] == "faces_lite2"
    assert trained_by["model"]["name"] == lite2.model.name
    assert trained_by["data"]["augment"]["self_blend"]["p"] == lite2.data.augment.self_blend.p
    assert trained_by["train"]["epochs"] == lite2.train.epochs  # the recipe as it ran
    assert shipped_meta["training"]["chain_train_seconds"] <= 90 * 60  # the budget
    # its card is the recipe's, with what it has and has not seen
    assert lite2.card and shipped_meta["card"]["limits"] == lite2.card.limits
    for named in ("face swaps", "DFDC deepfakes", "Photoshop face composites", "diffusion"):
        assert named in lite2.card.limits


# -- the HTTP API and the web page ---------------------------------------------------------
def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_api_faces_true_reports_the_face_box_or_the_note(detector: Detector) -> None:
    from fastapi.testclient import TestClient

    from fakescope.serve import create_app

    face, noise = _png(face_photo()), _png(no_face())
    uploads = [("files", ("face.png", face, "image/png")), ("files", ("n.png", noise, "image/png"))]
    expected = predict_inputs(detector, [face_photo(), no_face()], faces=True, provenance=False)
    with TestClient(create_app(detector)) as client:
        by_form = client.post("/v1/predict", files=uploads, data={"faces": "true"})
        by_query = client.post("/v1/predict?faces=true", files=uploads)
        plain = client.post("/v1/predict", files=uploads)
        bad = client.post("/v1/predict?faces=perhaps", files=uploads)
    for response in (by_form, by_query):
        assert response.status_code == 200, response.text
        got_face, got_noise = response.json()["results"]
        assert got_face["face_box"] == expected[0].face_box
        assert got_face["faces_found"] == 1
        assert got_face["p_fake_pixels"] == pytest.approx(expected[0].p_fake_pixels, abs=1e-5)
        assert got_noise["face_box"] is None and got_noise["face_note"] == NO_FACE_NOTE
    assert plain.json()["results"][0]["face_box"] is None
    assert plain.json()["results"][0]["faces_found"] is None
    assert bad.status_code == 400 and "faces must be true or false" in bad.text


def test_api_faces_true_goes_to_the_face_detector_when_the_server_has_one(
    detector: Detector, tmp_path: Path
) -> None:
    """A server of the default detector hands faces=true requests to the face specialist
    (its own model thread, its own face crop policy); other requests stay with its own."""
    from fastapi.testclient import TestClient

    from fakescope.serve import create_app
    from fakescope.serve.app import model_summary

    policy = {"margin": 0.5, "square": True, "min_size": 24}
    specialist = load_detector(tiny_bundle(tmp_path / "faces", faces=policy, seed=7), device="cpu")
    images = [face_photo(), no_face()]
    uploads = [
        ("files", ("face.png", _png(images[0]), "image/png")),
        ("files", ("n.png", _png(images[1]), "image/png")),
    ]
    by_specialist = predict_inputs(specialist, images, faces=True, provenance=False)
    by_server = predict_inputs(detector, images, provenance=False)
    with TestClient(create_app(detector, face_detector=specialist)) as client:
        # ready once both model threads have warmed up
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/readyz").json() == {"status": "ready"}
        faces = client.post("/v1/predict?faces=true", files=uploads).json()
        plain = client.post("/v1/predict", files=uploads).json()
        card = client.get("/v1/model").json()
    for got, want in zip(faces["results"], by_specialist, strict=True):
        assert got["p_fake_pixels"] == pytest.approx(want.p_fake_pixels, abs=1e-5)
        assert got["face_box"] == want.face_box  # cropped by the specialist's own policy
    assert faces["results"][1]["face_note"] == NO_FACE_NOTE
    assert faces["model"] == model_summary(specialist)
    for got, want in zip(plain["results"], by_server, strict=True):
        assert got["p_fake_pixels"] == pytest.approx(want.p_fake_pixels, abs=1e-5)
    assert plain["model"] == model_summary(detector)
    assert card["faces_model"] == model_summary(specialist)
    with TestClient(create_app(detector)) as client:
        assert client.get("/v1/model").json()["faces_model"] is None


def test_serve_picks_the_face_specialist_only_for_the_default_detector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fakescope.bundle
    from fakescope.serve.server import faces_detector_name

    monkeypatch.setattr(fakescope.bundle, "shipped_available", lambda name: name == "faces")
    assert faces_detector_name(None, None) == "faces"  # `fakescope serve`, no bundle
    assert faces_detector_name("cifake", None) is None  # the given bundle scores faces too
    assert faces_detector_name("cifake", "faces") == "faces"
    assert faces_detector_name(None, "same") is None
    monkeypatch.setattr(fakescope.bundle, "shipped_available", lambda name: False)
    assert faces_detector_name(None, None) is None  # not installed: the default, with a warning


@pytest.mark.integration
@pytest.mark.browser
def test_page_draws_the_face_box_when_asked_to_score_the_face(
    detector: Detector, browser: Any, tmp_path: Path
) -> None:
    from liveserver import thread_server

    from fakescope.serve import ServeSettings, create_app

    image = face_photo()
    path = tmp_path / "face.png"
    image.save(path)
    # the server hands faces to its face detector, as `fakescope serve` does with the specialist
    specialist_path = tiny_bundle(tmp_path / "specialist", seed=5)
    update_meta(specialist_path, card={"title": "tiny face specialist"})
    specialist = load_detector(specialist_path, device="cpu")
    box = predict_inputs(specialist, [image], faces=True, provenance=False)[0].face_box
    app = create_app(detector, ServeSettings(max_wait_ms=5), face_detector=specialist)
    with thread_server(app) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.includes('loading')"
        )
        assert "faces scored by tiny face specialist" in page.locator("#model-info").inner_text()
        page.check("[data-testid=faces-checkbox]")
        page.set_input_files("#file-input", str(path))
        card = page.locator("[data-testid=result]").first
        drawn = card.locator("[data-testid=face-box]")
        drawn.wait_for(state="visible")
        shown = card.locator(".original").evaluate(
            "img => { const r = img.getBoundingClientRect();"
            " return {x: r.x, y: r.y, w: r.width, h: r.height,"
            " cw: img.clientWidth, ch: img.clientHeight, b: img.clientLeft}; }"
        )
        rect = drawn.evaluate(
            "e => { const r = e.getBoundingClientRect();"
            " return {x: r.x, y: r.y, w: r.width, h: r.height}; }"
        )
        # the picture is shown scaled to fit its square: the box is scaled and shifted alike
        scale = min(shown["cw"] / image.width, shown["ch"] / image.height)
        left = shown["x"] + shown["b"] + (shown["cw"] - image.width * scale) / 2
        top = shown["y"] + shown["b"] + (shown["ch"] - image.height * scale) / 2
        assert rect["x"] == pytest.approx(left + box["x"] * scale, abs=1.5)
        assert rect["y"] == pytest.approx(top + box["y"] * scale, abs=1.5)
        assert rect["w"] == pytest.approx(box["w"] * scale, abs=1.5)
        assert rect["h"] == pytest.approx(box["h"] * scale, abs=1.5)
        # inside the picture
        assert rect["x"] >= shown["x"] and rect["x"] + rect["w"] <= shown["x"] + shown["w"]
        assert rect["y"] >= shown["y"] and rect["y"] + rect["h"] <= shown["y"] + shown["h"]
        note = card.locator("[data-testid=face-note]").inner_text()
        assert "Scored the face in the box" in note
        page.screenshot(path=str(tmp_path / "face.png.page.png"), full_page=True)

        page.uncheck("[data-testid=faces-checkbox]")
        page.set_input_files("#file-input", str(path))
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=result][data-status]').length == 2"
        )
        newest = page.locator("[data-testid=result]").first
        assert not newest.locator("[data-testid=face-box]").is_visible()
        page.close()


def test_face_crops_have_their_own_cache_key() -> None:
    from fakescope.data.cache import cache_key
    from fakescope.data.sources import Item
    from fakescope.faces import FaceSelector

    items = [Item("a.png", 0), Item("b.png", 1)]
    pre = Preprocessing(input_size=32)
    whole = cache_key(items, pre, "fp")
    crops = cache_key(items, pre, "fp", FaceSelector(FaceCropPolicy()))
    other = cache_key(items, pre, "fp", FaceSelector(FaceCropPolicy(margin=0.5)))
    assert len({whole, crops, other}) == 3
    assert whole == cache_key(items, pre, "fp", None)  # decoded sets without faces keep theirs
