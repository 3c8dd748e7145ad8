"""Face finding and face crops: boxes inside the image, crops that match their box and policy,
the whole-image fallback with a note, MTCNN's retry for faces that overflow the frame, the
Haar fallback without facenet-pytorch, and MTCNN on real face photos."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from videogen import cartoon_face

from fakescope.errors import ConfigError
from fakescope.faces import (
    NO_FACE_NOTE,
    FaceBox,
    FaceCropPolicy,
    HaarFaceFinder,
    MtcnnFaceFinder,
    crop_face,
    crop_region,
    make_face_finder,
    mtcnn_available,
    select_largest_face,
    select_largest_faces,
)
from fakescope.video import FaceCropper, VideoOptions

needs_mtcnn = pytest.mark.skipif(not mtcnn_available(), reason="facenet-pytorch is not installed")


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """Every test here on one torch thread (the shared `one_thread` fixture)."""


@pytest.fixture(scope="module")
def mtcnn() -> MtcnnFaceFinder:
    pytest.importorskip("facenet_pytorch")
    return MtcnnFaceFinder()


def face_image(size: int = 240) -> Image.Image:
    """The tests' drawn frontal face (skin oval at x 60..180, y 40..200 of 240)."""
    return Image.fromarray(cartoon_face(size))


def zoomed(image: Image.Image, fraction: float) -> Image.Image:
    """The central ``fraction`` of a square image blown up to its size: a closer close-up."""
    side = round(image.width * fraction)
    left = (image.width - side) // 2
    return image.crop((left, left, left + side, left + side)).resize(image.size, Image.BILINEAR)


def no_face_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8))
    return [noise, Image.new("RGB", (200, 150), (128, 128, 128))]


def inside(box: FaceBox | tuple[int, int, int, int], image: Image.Image) -> bool:
    x, y, w, h = box.xywh if isinstance(box, FaceBox) else box
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= image.width and y + h <= image.height


# -- the MTCNN finder -------------------------------------------------------------------------


def test_mtcnn_finds_the_drawn_face_inside_the_image(mtcnn: MtcnnFaceFinder) -> None:
    image = face_image()
    boxes = mtcnn.find_one(image)
    assert len(boxes) == 1
    box = boxes[0]
    assert inside(box, image) and 0.7 <= box.confidence <= 1  # over the O-net threshold
    # It covers the drawn oval (60..180 x 40..200).
    assert 45 <= box.x <= 75 and 25 <= box.y <= 55 and 90 <= box.w <= 140 and 130 <= box.h <= 180


def test_boxes_are_in_original_pixels_of_a_large_frame(mtcnn: MtcnnFaceFinder) -> None:
    frame = Image.new("RGB", (1280, 720), (90, 90, 90))
    frame.paste(face_image(), (700, 300))  # searched at 640x360, reported at 1280x720
    (box,) = mtcnn.find_one(frame)
    assert inside(box, frame)
    assert 740 <= box.x <= 790 and 320 <= box.y <= 360 and 90 <= box.w <= 140


def test_a_face_overflowing_the_frame_is_found_by_the_border_retry(
    mtcnn: MtcnnFaceFinder,
) -> None:
    close_up = zoomed(face_image(), 0.45)  # the oval is ~2x larger than the image
    assert MtcnnFaceFinder(border_retries=()).find_one(close_up) == []
    (box,) = mtcnn.find_one(close_up)
    assert inside(box, close_up) and box.w > 150 and box.h > 150


@needs_mtcnn
def test_a_search_for_large_faces_drops_the_pyramids_smallest_windows_only() -> None:
    """min_face_share: the first pass starts at the level of a min_face_size search whose
    window fits the share of the short side, so the levels it keeps are that search's own, and
    a face that fills the image is found as before (the face route's search)."""
    full = MtcnnFaceFinder(min_face_size=40, search_size=192, border_retries=(0.25,))
    large = MtcnnFaceFinder(
        min_face_size=40, search_size=192, border_retries=(0.25,), min_face_share=0.5
    )
    assert full.first_min_face(192) == 40
    assert large.first_min_face(60) == 40  # a share under min_face_size drops nothing
    assert large.first_min_face(144) == pytest.approx(40 / 0.709)  # 72 px: one level less
    assert large.first_min_face(192) == pytest.approx(40 / 0.709**2)  # 96 px: two
    image = face_image(240)
    assert large.find_one(image) == full.find_one(image)
    assert large.find_one(image)[0].area >= 0.3 * 240 * 240


def test_a_batch_of_mixed_sizes_keeps_each_image_in_its_place(mtcnn: MtcnnFaceFinder) -> None:
    noise, flat = no_face_images()
    images = [face_image(), noise, face_image(200), flat, zoomed(face_image(), 0.45)]
    found = mtcnn.find(images)
    assert [len(b) for b in found] == [1, 0, 1, 0, 1]
    alone = [mtcnn.find_one(image) for image in images]
    # the same boxes; floats (confidence, eye centres) to float32 precision, since a batched
    # convolution may sum in another order than a single image's on some CPUs
    assert [[(b.x, b.y, b.w, b.h) for b in boxes] for boxes in found] == [
        [(b.x, b.y, b.w, b.h) for b in boxes] for boxes in alone
    ]
    for boxes, boxes_alone in zip(found, alone, strict=True):
        for box, box_alone in zip(boxes, boxes_alone, strict=True):
            assert box.confidence == pytest.approx(box_alone.confidence, abs=1e-5)
            assert box.eyes is not None and box_alone.eyes is not None
            assert np.allclose(np.array(box.eyes), np.array(box_alone.eyes), atol=1e-3)


def test_images_without_a_face_get_no_box(mtcnn: MtcnnFaceFinder) -> None:
    tiny = Image.new("RGB", (10, 8))  # under MTCNN's minimum face size: no crash, no box
    assert mtcnn.find([*no_face_images(), tiny]) == [[], [], []]
    assert MtcnnFaceFinder(gray_retry=True).find([*no_face_images(), tiny]) == [[], [], []]


def test_several_faces_come_largest_first(mtcnn: MtcnnFaceFinder) -> None:
    canvas = Image.new("RGB", (640, 320), (90, 120, 160))
    canvas.paste(face_image(160), (20, 80))
    canvas.paste(face_image(280), (340, 20))
    boxes = mtcnn.find_one(canvas)
    assert len(boxes) == 2 and boxes[0].area > boxes[1].area and boxes[0].x > 340


def test_detection_runs_on_one_thread_and_restores_the_callers(mtcnn: MtcnnFaceFinder) -> None:
    torch.set_num_threads(2)  # the autouse fixture restores the session's count afterwards
    assert len(mtcnn.find_one(face_image())) == 1
    assert torch.get_num_threads() == 2
    # the torch backend sets one thread while it detects, and gives the caller's back
    on_torch = MtcnnFaceFinder(backend="torch")
    seen: list[int] = []
    detect = on_torch._detect_batch

    def counted(batch: np.ndarray, min_face: float) -> object:
        seen.append(torch.get_num_threads())
        return detect(batch, min_face)

    on_torch._detect_batch = counted  # type: ignore[method-assign]
    assert len(on_torch.find_one(face_image())) == 1
    assert seen == [1] and torch.get_num_threads() == 2


def test_the_default_backend_is_onnx_on_the_cpu(mtcnn: MtcnnFaceFinder) -> None:
    assert mtcnn.backend == "onnx" and mtcnn.backend_note is None


# -- crops and the policy ---------------------------------------------------------------------


@pytest.mark.parametrize("square", [True, False])
def test_the_crop_matches_its_box_and_the_margin_policy(square: bool) -> None:
    image = face_image()
    policy = FaceCropPolicy(margin=0.25, square=square)
    face = FaceBox(70, 50, 100, 140, 0.99)
    crop = crop_face(image, face, policy)
    x, y, w, h = crop.crop_box
    assert crop.face_box == face and crop.image.size == (w, h) and inside(crop.crop_box, image)
    assert np.array_equal(np.asarray(crop.image), np.asarray(image)[y : y + h, x : x + w])
    if square:
        assert w == h == round(140 * 1.5)  # the longer side plus 25 % on each side
    else:
        assert (x, y, w, h) == (45, 15, 150, 210)
    # The face lies inside its crop.
    assert x <= face.x and y <= face.y and face.x + face.w <= x + w and face.y + face.h <= y + h


def test_crops_near_the_border_stay_inside_the_image() -> None:
    image = Image.new("RGB", (300, 200))
    rng = np.random.default_rng(1)
    for _ in range(200):
        w, h = (int(v) for v in rng.integers(5, 200, size=2))
        x, y = int(rng.integers(0, 300 - min(w, 299))), int(rng.integers(0, 200 - min(h, 199)))
        box = (x, y, min(w, 300 - x), min(h, 200 - y))
        for policy in (FaceCropPolicy(margin=0.4), FaceCropPolicy(margin=0.4, square=False)):
            region = crop_region(box, image.size, policy)
            assert inside(region, image), (box, policy, region)
            if policy.square:
                assert region[2] == region[3] == min(round(max(box[2:]) * 1.8), 200)
            else:  # clamped, never shifted: the face box stays inside its crop
                assert region[0] <= box[0] and region[0] + region[2] >= box[0] + box[2]


def test_the_largest_face_is_selected_and_reported(mtcnn: MtcnnFaceFinder) -> None:
    image = face_image()
    selection = select_largest_face(image, mtcnn, FaceCropPolicy(margin=0.25))
    assert selection.face_box == mtcnn.find_one(image)[0] and selection.note is None
    assert selection.image.size == selection.crop_box[2:] and inside(selection.crop_box, image)
    assert selection.report() == {
        "face_box": list(selection.face_box.xywh),
        "faces_found": 1,
        "note": None,
    }


def test_no_face_falls_back_to_the_whole_image_with_a_note(mtcnn: MtcnnFaceFinder) -> None:
    images = no_face_images()
    for image, selection in zip(images, select_largest_faces(images, mtcnn), strict=True):
        assert selection.image is image and selection.face_box is None
        assert selection.crop_box == (0, 0, image.width, image.height)
        assert selection.note == NO_FACE_NOTE and selection.faces_found == 0
        assert selection.report()["face_box"] is None


def test_faces_under_the_policy_minimum_size_are_ignored(mtcnn: MtcnnFaceFinder) -> None:
    image = face_image()
    selection = select_largest_face(image, mtcnn, FaceCropPolicy(min_size=400))
    assert selection.face_box is None and selection.note == NO_FACE_NOTE


def test_the_policy_round_trips_through_json_and_refuses_what_it_cannot_do() -> None:
    policy = FaceCropPolicy(margin=0.3, square=False, min_size=40, finder="mtcnn")
    assert FaceCropPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert FaceCropPolicy.from_dict({"margin": 0.1}) == FaceCropPolicy(margin=0.1)
    aligned = FaceCropPolicy(align=True)
    assert FaceCropPolicy.from_dict(json.loads(json.dumps(aligned.to_dict()))) == aligned
    assert FaceCropPolicy.from_dict({"margin": 0.1}).align is False  # bundles from before it
    with pytest.raises(ConfigError, match="unknown face crop setting.*landmarks"):
        FaceCropPolicy.from_dict({"margin": 0.1, "landmarks": True})
    with pytest.raises(ConfigError, match="margin"):
        FaceCropPolicy(margin=-0.1)
    with pytest.raises(ConfigError, match="min_size"):
        FaceCropPolicy(min_size=0)
    with pytest.raises(ConfigError, match="finder"):
        FaceCropPolicy(finder="retinaface")


# -- levelling the eyes (policy align) -------------------------------------------------------


def two_eyes(roll: float, size: int = 200, spread: float = 40.0) -> tuple[Image.Image, FaceBox]:
    """A grey picture with two dark round "eyes" on a line turned ``roll`` degrees (clockwise
    on screen) about the centre, and the face box around them that says where they are."""
    from PIL import ImageDraw

    image = Image.new("RGB", (size, size), (200, 180, 160))
    draw = ImageDraw.Draw(image)
    c = size / 2
    dx, dy = spread * np.cos(np.radians(roll)), spread * np.sin(np.radians(roll))
    eyes = ((c - dx, c - dy), (c + dx, c + dy))
    for x, y in eyes:
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(20, 20, 20))
    return image, FaceBox(50, 50, 100, 100, 0.99, eyes)


def eye_centres(crop: Image.Image) -> list[tuple[float, float]]:
    """(x, y) of the dark blob in the crop's left half and in its right half."""
    dark = np.asarray(crop.convert("L")) < 90
    half = dark.shape[1] // 2
    centres = []
    for part, shift in ((dark[:, :half], 0), (dark[:, half:], half)):
        ys, xs = np.nonzero(part)
        centres.append((float(xs.mean()) + shift, float(ys.mean())))
    return centres


@pytest.mark.parametrize("roll", [-30.0, -8.0, 12.0, 35.0])
def test_an_aligned_crop_levels_the_eyes_and_keeps_its_region(roll: float) -> None:
    image, face = two_eyes(roll)
    assert face.roll == pytest.approx(roll)
    plain = crop_face(image, face, FaceCropPolicy())
    aligned = crop_face(image, face, FaceCropPolicy(align=True))
    assert plain.angle == 0 and aligned.angle == pytest.approx(roll)
    assert aligned.crop_box == plain.crop_box and aligned.image.size == plain.image.size
    (lx, ly), (rx, ry) = eye_centres(plain.image)
    assert abs(ry - ly) > 10  # turned before
    (lx, ly), (rx, ry) = eye_centres(aligned.image)
    assert abs(ry - ly) < 1.5 and rx - lx == pytest.approx(80, abs=2)  # level after, same gap
    centre = aligned.image.width / 2
    assert (lx + rx) / 2 == pytest.approx(centre, abs=1.5)  # turned about the crop's centre


def test_alignment_leaves_level_faces_haar_boxes_and_unaligned_policies_untouched() -> None:
    image, face = two_eyes(20.0)
    plain = np.asarray(crop_face(image, face, FaceCropPolicy()).image)
    for box, policy in (
        (face, FaceCropPolicy()),  # not asked to align
        (FaceBox(face.x, face.y, face.w, face.h), FaceCropPolicy(align=True)),  # no eyes (Haar)
        (two_eyes(0.6)[1], FaceCropPolicy(align=True)),  # under a degree: not resampled
    ):
        crop = crop_face(image, box, policy)
        assert crop.angle == 0 and np.array_equal(np.asarray(crop.image), plain)


def test_an_aligned_crop_at_the_border_mirrors_the_image_instead_of_black_corners() -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(60, 250, (120, 160, 3), dtype=np.uint8)  # nothing dark anywhere
    image = Image.fromarray(pixels)
    face = FaceBox(0, 0, 70, 70, 0.99, ((10.0, 10.0), (60.0, 40.0)))  # rolled ~31 degrees
    crop = crop_face(image, face, FaceCropPolicy(margin=0.25, align=True))
    assert crop.angle == pytest.approx(30.96, abs=0.01) and inside(crop.crop_box, image)
    assert np.asarray(crop.image).min() >= 60  # corners from beyond the image are mirrored


def test_aligned_crops_get_their_own_cache_key_and_old_keys_stay() -> None:
    assert "align" not in FaceCropPolicy().cache_identity()  # caches made before align existed
    assert FaceCropPolicy(align=True).cache_identity()["align"] is True


@needs_mtcnn
def test_mtcnn_finds_the_eyes_and_an_aligned_crop_of_a_tilted_face_is_level(
    mtcnn: MtcnnFaceFinder,
) -> None:
    (upright,) = mtcnn.find_one(face_image())
    assert upright.eyes is not None and abs(upright.roll) < 3
    (left, _), (right, _) = upright.eyes
    assert 85 <= left <= 105 and 135 <= right <= 155  # the drawn eyes (x 85..105, 135..155)
    tilted = face_image().rotate(30, resample=Image.BICUBIC, fillcolor=(90, 120, 160))
    (face,) = mtcnn.find_one(tilted)
    assert face.roll == pytest.approx(-30, abs=6)  # turned anticlockwise: right eye higher
    selection = select_largest_face(tilted, mtcnn, FaceCropPolicy(align=True))
    assert selection.angle == pytest.approx(face.roll)
    (levelled,) = mtcnn.find_one(selection.image)
    assert abs(levelled.roll) < 4


# -- choosing a finder, and the Haar fallback -------------------------------------------------


def test_make_face_finder_by_kind() -> None:
    assert isinstance(make_face_finder("haar"), HaarFaceFinder)
    with pytest.raises(ConfigError, match="face finder must be one of"):
        make_face_finder("dlib")
    with pytest.raises(ConfigError, match="face_finder"):
        VideoOptions(faces=True, face_finder="dlib")


@needs_mtcnn
def test_auto_is_mtcnn_when_facenet_pytorch_is_installed() -> None:
    finder = make_face_finder()
    assert isinstance(finder, MtcnnFaceFinder) and finder.note is None


def test_haar_is_the_fallback_when_mtcnn_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # `import` raises ImportError
    monkeypatch.setattr("fakescope.faces._warned_fallback", False)
    with caplog.at_level("WARNING", logger="fakescope.faces"):
        finder = make_face_finder("auto")
    assert isinstance(finder, HaarFaceFinder)
    assert finder.note is not None and "facenet-pytorch is not installed" in finder.note
    assert finder.note in caplog.text
    with pytest.raises(ConfigError, match="pip install --no-deps facenet-pytorch"):
        make_face_finder("mtcnn")

    image = face_image()
    (box,) = finder.find_one(image)
    assert inside(box, image) and box.confidence is None and 20 <= box.x <= 70
    assert finder.find(no_face_images()) == [[], []]
    cropper = FaceCropper(margin=0.25)  # the video path falls back the same way
    assert isinstance(cropper.finder, HaarFaceFinder) and cropper.find(image) == box.xywh


# -- real faces (../shared/data) --------------------------------------------------------------


def _real_images(archive: Path, count: int) -> list[Image.Image]:
    from fakescope.data.sources import open_source

    source = open_source(archive)
    items = source.items[:: len(source.items) // count][:count]  # both classes
    return [Image.open(io.BytesIO(source.read_bytes(it))).convert("RGB") for it in items]


@pytest.mark.integration
@pytest.mark.parametrize("archive", ["dfdc_faces.zip", "stylegan_faces.zip", "faceswap_lfw.zip"])
def test_mtcnn_finds_faces_in_real_photos(
    shared_data: Path, mtcnn: MtcnnFaceFinder, archive: str
) -> None:
    images = _real_images(shared_data / archive, 6)
    for image, boxes in zip(images, mtcnn.find(images), strict=True):
        assert boxes, f"no face in an image of {archive}"
        assert all(inside(b, image) for b in boxes)
        assert boxes[0].w >= image.width // 4 and boxes[0].confidence > 0.9  # the portrait
        crop = select_largest_face(image, mtcnn).image
        assert min(crop.size) >= boxes[0].w  # face plus margin (shifted to stay inside)


@pytest.mark.integration
def test_mtcnn_finds_dfdc_faces_zoomed_beyond_the_frame(
    shared_data: Path, mtcnn: MtcnnFaceFinder
) -> None:
    close_ups = [zoomed(image, 0.65) for image in _real_images(shared_data / "dfdc_faces.zip", 8)]
    plain = sum(bool(b) for b in MtcnnFaceFinder(border_retries=()).find(close_ups))
    tuned = sum(bool(b) for b in mtcnn.find(close_ups))
    assert tuned >= 6 and tuned > plain
