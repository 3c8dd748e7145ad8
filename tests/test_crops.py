"""Native-resolution crops: they cover the image, their logits are averaged, old bundles
are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_bundle

from fakescope.data.transforms import Preprocessing, grid_shape, pick_crops
from fakescope.detectors import load_detector
from fakescope.errors import ConfigError


@pytest.mark.parametrize(
    ("crops", "size", "whole"),
    [(1, (300, 200), False), (4, (1280, 720), False), (6, (90, 400), False),
     (4, (120, 100), True), (6, (180, 110), True), (9, (40, 30), True)],
)  # fmt: skip
def test_crops_span_the_image_edge_to_edge(crops: int, size: tuple[int, int], whole: bool) -> None:
    pre = Preprocessing(input_size=64, resize="native", crops=crops)
    view = pre.native_view(Image.new("RGB", size))
    covered = np.zeros((view.height, view.width), bool)
    boxes = pre.crop_boxes(view.width, view.height)
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= view.width and 0 <= top < bottom <= view.height
        assert (right - left, bottom - top) == (64, 64)
        covered[top:bottom, left:right] = True
    assert len(boxes) == crops
    rows, cols = np.nonzero(covered)
    n_rows, n_cols = len({b[1] for b in boxes}), len({b[0] for b in boxes})
    if n_rows > 1:  # from the top edge to the bottom one, else centred
        assert (rows.min(), rows.max()) == (0, view.height - 1)
    else:
        assert abs(rows.min() - (view.height - 1 - rows.max())) <= 1
    if n_cols > 1:
        assert (cols.min(), cols.max()) == (0, view.width - 1)
    else:
        assert abs(cols.min() - (view.width - 1 - cols.max())) <= 1
    assert covered.all() == whole or crops == 1  # where the grid can cover it, it does
    assert min(view.size) >= 64 and (view.size == size or min(size) < 64)


def test_grid_follows_the_aspect_ratio() -> None:
    assert grid_shape(4, 1280, 720) == (2, 2)
    assert grid_shape(6, 1280, 720) == (2, 3) and grid_shape(6, 720, 1280) == (3, 2)
    assert grid_shape(3, 1000, 200) == (1, 3)


def test_native_crops_keep_the_pixels_and_enlarge_small_images() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    pre = Preprocessing(input_size=64, resize="native", crops=4)
    crops = pre.to_uint8(Image.fromarray(array))
    assert crops.shape == (4, 3, 64, 64) == pre.array_shape
    np.testing.assert_array_equal(crops[0], array[:64, :64].transpose(2, 0, 1))  # not resized
    np.testing.assert_array_equal(crops[-1], array[-64:, -64:].transpose(2, 0, 1))
    small = pre.to_uint8(Image.fromarray(array[:32, :48]))
    assert small.shape == (4, 3, 64, 64)


def test_several_crops_need_the_native_policy() -> None:
    with pytest.raises(ConfigError, match="need resize 'native'"):
        Preprocessing(input_size=32, crops=4)


def test_old_bundles_metadata_is_unchanged() -> None:
    old = {"input_size": 32, "resize": "squash", "interpolation": "bicubic",
           "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # fmt: skip
    assert Preprocessing.from_dict(old).to_dict() == old  # type: ignore[arg-type]
    native = Preprocessing(input_size=32, resize="native", crops=4).to_dict()
    assert native["crops"] == 4 and Preprocessing.from_dict(native).crops == 4


def test_the_aggregate_is_the_mean_of_the_crop_logits(tmp_path: Path) -> None:
    pre = Preprocessing(input_size=32, resize="native", crops=4)
    detector = load_detector(tiny_bundle(tmp_path / "b", preprocessing=pre), device="cpu")
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    crops = torch.from_numpy(pre.to_uint8(image))
    per_crop = detector.image_logits(crops)
    aggregate = detector.logits(crops[None])
    assert aggregate.shape == (1,)
    assert float(aggregate[0]) == pytest.approx(float(per_crop.mean()), abs=1e-5)
    (result,) = detector.predict([image])
    assert result.p_fake == pytest.approx(float(torch.sigmoid(per_crop.mean())), abs=1e-5)
    assert result.max_crop_p_fake == pytest.approx(float(torch.sigmoid(per_crop.max())), abs=1e-5)


def test_pick_crops_takes_one_crop_per_image() -> None:
    batch = torch.arange(2 * 3).view(2, 3, 1, 1, 1).expand(2, 3, 3, 4, 4)
    picked = pick_crops(batch, torch.Generator().manual_seed(0))
    assert picked.shape == (2, 3, 4, 4)
    assert int(picked[0, 0, 0, 0]) in (0, 1, 2) and int(picked[1, 0, 0, 0]) in (3, 4, 5)


def test_grad_cam_covers_the_whole_image_at_its_aspect_ratio(tmp_path: Path) -> None:
    from fakescope.evaluation.explain import explain_files, gradcam

    pre = Preprocessing(input_size=32, resize="native", crops=6)
    detector = load_detector(tiny_bundle(tmp_path / "b", preprocessing=pre), device="cpu")
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, (60, 100, 3), dtype=np.uint8))
    (cam,) = gradcam(detector, [image])
    assert cam.shape == (60, 100) and cam.min() >= 0.0 and cam.max() <= 1.0
    image.save(tmp_path / "wide.png")
    (written,) = explain_files(detector, [str(tmp_path / "wide.png")], tmp_path / "cams")
    with Image.open(written) as picture:
        # two 5:3 tiles side by side (a squashed square pair would be under 2:1)
        assert picture.width / picture.height > 2.5


def test_a_native_crop_bundle_exports_to_onnx_with_parity(tmp_path: Path) -> None:
    from fakescope.onnx_export import export_onnx

    pre = Preprocessing(input_size=32, resize="native", crops=4)
    bundle = tiny_bundle(tmp_path / "b", preprocessing=pre)
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    files = [str(tmp_path / f"{i}.png") for i in range(3)]
    result = export_onnx(bundle, tmp_path / "m.onnx", check_images=files, exporter="torchscript")
    assert result.parity.passed and result.parity.n == 12  # 3 images x 4 crops
    on_torch = load_detector(bundle, device="cpu").predict(files)
    on_onnx = load_detector(tmp_path / "m.onnx", runtime="onnx").predict(files)
    for a, b in zip(on_torch, on_onnx, strict=True):
        assert a.p_fake == pytest.approx(b.p_fake, abs=1e-4)
        assert a.max_crop_p_fake == pytest.approx(b.max_crop_p_fake, abs=1e-4)
