"""A detector made for photographs (bundle.json ``content: photo``) answers a drawn or graphic
image unsure with its own reason and reports what each image shows; a photo-like image and
every image on a bundle without the setting are judged as before; decisive provenance still
decides; the recipe's ``decision.content`` reaches the bundle; evaluate's own decoder says
the same as predict."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from imagegen import flat_drawing, photo_like
from tiny import tiny_bundle, tiny_recipe_data

from fakescope.bundle import CARD_FILE, read_meta, set_content
from fakescope.config import validate_recipe
from fakescope.data.content_type import content_stats
from fakescope.detectors import PixelScores, load_detector
from fakescope.errors import BundleError, ConfigError
from fakescope.evaluation.evaluate import evaluate
from fakescope.provenance.evidence import AI_GENERATED, C2PA, TRUSTED, Evidence
from fakescope.training.trainer import train
from fakescope.verdict.rule import NOT_A_PHOTO, OUT_OF_DOMAIN, UNSURE_BAND, verdicts


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A drawing (a real, by its label) and a photo-like image (a fake) as PNG files."""
    root = tmp_path_factory.mktemp("content")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    flat_drawing().save(root / "real" / "plot.png")
    photo_like().save(root / "fake" / "photo.png")
    return root


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same tiny model twice: without the setting, and made for photographs."""
    root = tmp_path_factory.mktemp("bundles")
    plain = tiny_bundle(root / "plain")
    photos = tiny_bundle(root / "photos")
    set_content(photos, "photo")
    return plain, photos


def test_the_test_images_are_what_they_claim() -> None:
    assert content_stats(flat_drawing())["kind"] == "graphic"
    assert content_stats(photo_like())["kind"] == "photo"


def test_a_black_and_white_photo_is_a_photo_and_a_grey_drawing_is_not() -> None:
    """Greyscale has few quantised colours whatever it shows: the photo is judged by its
    texture, the drawing (a grey plot) by its flat paper-and-ink areas."""
    assert content_stats(photo_like().convert("L").convert("RGB"))["kind"] == "photo"
    assert content_stats(flat_drawing().convert("L").convert("RGB"))["kind"] == "graphic"


def test_a_drawing_is_unsure_on_a_photo_detector_and_a_photo_is_not(
    images: Path, bundles: tuple[Path, Path]
) -> None:
    plain, photos = bundles
    paths = [images / "real" / "plot.png", images / "fake" / "photo.png"]
    before = {Path(p.path).name: p for p in load_detector(plain).predict(paths)}
    after = {Path(p.path).name: p for p in load_detector(photos).predict(paths)}

    plot = after["plot.png"]
    assert plot.unsure is True
    assert plot.unsure_reason == NOT_A_PHOTO
    assert plot.content == "graphic"
    assert plot.p_fake == pytest.approx(before["plot.png"].p_fake)  # still reported
    assert plot.label == before["plot.png"].label

    photo = after["photo.png"]
    assert photo.content == "photo"
    assert photo.unsure_reason != NOT_A_PHOTO
    for key in ("p_fake", "label", "unsure", "unsure_reason"):
        assert getattr(photo, key) == getattr(before["photo.png"], key)

    # without the setting nothing is looked at: the verdict is the one from before
    for name in ("plot.png", "photo.png"):
        assert before[name].content is None
        assert before[name].unsure_reason in (None, UNSURE_BAND, OUT_OF_DOMAIN)
    assert plot.to_row()["content"] == "graphic"


def test_decisive_provenance_still_decides_a_drawing(bundles: tuple[Path, Path]) -> None:
    detector = load_detector(bundles[1])
    c2pa = Evidence(C2PA, AI_GENERATED, "OpenAI", TRUSTED, "signed: made by AI", decisive=True)
    scores = PixelScores(np.array([0.3, 0.3]))
    with_manifest, alone = verdicts(
        detector, ["a.png", "b.png"], scores, [[c2pa], []], contents=["graphic", "graphic"]
    )
    assert with_manifest.unsure is False and with_manifest.unsure_reason is None
    assert with_manifest.label == detector.meta.labels[1]
    assert with_manifest.content == "graphic"
    assert alone.unsure is True and alone.unsure_reason == NOT_A_PHOTO


def test_a_graphic_content_on_a_detector_for_any_image_changes_nothing(
    bundles: tuple[Path, Path],
) -> None:
    detector = load_detector(bundles[0])
    scores = PixelScores(np.array([0.05]))
    (judged,) = verdicts(detector, ["a.png"], scores, contents=["graphic"])
    assert judged.unsure is False and judged.unsure_reason is None


def test_evaluate_judges_content_as_predict_does(
    images: Path, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    detector = load_detector(bundles[1])
    want = {Path(p.path).name: p for p in detector.predict(sorted(images.rglob("*.png")))}
    evaluate(detector, images, tmp_path / "eval", progress=False, report=False, bootstrap=0)
    with open(tmp_path / "eval" / "predictions.csv", newline="") as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert rows["plot.png"]["content"] == "graphic"
    assert rows["plot.png"]["unsure_reason"] == NOT_A_PHOTO
    for name, prediction in want.items():
        assert rows[name]["content"] == prediction.content
        assert rows[name]["unsure"] == str(int(bool(prediction.unsure)))


def test_set_content_signs_the_bundle_and_says_it_on_the_card(
    bundles: tuple[Path, Path],
) -> None:
    photos = bundles[1]
    meta = read_meta(photos)  # verifies the checksum
    assert meta["content"] == "photo"
    assert "content: photographs" in (photos / CARD_FILE).read_text()
    assert "content" not in read_meta(bundles[0])  # older bundles: absent, any image
    with pytest.raises(BundleError, match="not one of any, photo"):
        set_content(photos, "drawings")


def test_a_face_aware_bundle_follows_its_whole_image_member(tmp_path: Path) -> None:
    from fakescope.kinds.face_aware.bundle import FaceRoute, save_face_aware_bundle

    whole = tiny_bundle(tmp_path / "whole")
    set_content(whole, "photo")
    faces = tiny_bundle(tmp_path / "faces", seed=1)
    combined = save_face_aware_bundle(tmp_path / "fa", whole, faces, FaceRoute())
    assert load_detector(combined, runtime="torch").meta.photos_only
    with pytest.raises(BundleError, match="whole-image member"):
        set_content(combined, "photo")


def test_a_bad_content_is_refused_by_the_recipe() -> None:
    data = tiny_recipe_data()
    data["decision"] = {"content": "drawings"}
    with pytest.raises(ConfigError, match="content"):
        validate_recipe(data)


def test_the_recipe_key_reaches_the_bundle(toy_folder: Path, tmp_path: Path) -> None:
    data = tiny_recipe_data(epochs=1)
    data["decision"] = {"content": "photo"}
    result = train(toy_folder, validate_recipe(data), tmp_path / "run", progress=False)
    meta = read_meta(result.bundle_dir)
    assert meta["content"] == "photo"
    assert meta["training"]["recipe"]["decision"]["content"] == "photo"
    assert load_detector(result.bundle_dir).meta.photos_only
