"""Grad-CAM: it points at a planted artefact, works for every architecture family, and
leaves the model as it found it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from imagegen import smooth_image
from PIL import Image

from fakescope.bundle import BundleMeta
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, TorchDetector
from fakescope.errors import ConfigError
from fakescope.evaluation.explain import (
    explain_files,
    gallery,
    gradcam,
    overlay,
    resolve_layers,
    select_gallery,
)
from fakescope.faces import FaceBox, FaceCropPolicy, FaceFinder, FaceSelector
from fakescope.models import create_model
from fakescope.models.registry import feature_module_names

SIZE = 32
PATCH = 6  # the planted artefact: a 6x6 black/white checkerboard in the top-left corner
QUADRANT = 12  # 12x12 px = 14% of a 32x32 image


def with_corner_patch(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    y, x = np.mgrid[0:PATCH, 0:PATCH]
    out[:PATCH, :PATCH] = np.where((x + y) % 2 == 0, 255, 0)[..., None]
    return out


def detector_for(model: torch.nn.Module, name: str, size: int = SIZE) -> Detector:
    meta = BundleMeta(architecture=name, preprocessing=Preprocessing(input_size=size))
    return TorchDetector(model, meta, device="cpu")


def tiny_resnet_se() -> Detector:
    torch.manual_seed(0)
    return detector_for(create_model("resnet_se", widths=[8, 16, 32]), "resnet_se")


def hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def random_images(n: int, seed: int = 0, size: int = SIZE) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(smooth_image(rng, size)) for _ in range(n)]


@pytest.fixture(scope="module")
def corner_detector() -> Detector:
    """resnet_se (widths 8/16/32) trained ~4 s to tell images with the corner patch apart."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 64
    reals = [smooth_image(rng, SIZE) for _ in range(n)]
    fakes = [with_corner_patch(smooth_image(rng, SIZE)) for _ in range(n)]
    images = torch.from_numpy(np.stack(reals + fakes).transpose(0, 3, 1, 2).copy())
    targets = torch.tensor([0.0] * n + [1.0] * n)
    detector = tiny_resnet_se()
    model, pre = detector.model, detector.preprocessing
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        index = torch.randint(0, 2 * n, (32,), generator=generator)
        logits = model(pre.normalize(images[index])).view(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return detector


# -- the bar: Grad-CAM finds the planted artefact ------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("layers", [["stage2"], ["stage3"], ["stage2", "stage3"]])
def test_gradcam_mass_sits_on_the_planted_corner(corner_detector: Detector, layers) -> None:
    rng = np.random.default_rng(1)
    fakes = [Image.fromarray(with_corner_patch(smooth_image(rng, SIZE))) for _ in range(16)]
    reals = [Image.fromarray(smooth_image(rng, SIZE)) for _ in range(16)]
    # the model did learn the artefact
    assert (
        corner_detector.predict_images(fakes).mean()
        > corner_detector.predict_images(reals).mean() + 0.3
    )
    cams = gradcam(corner_detector, fakes, layers)
    shares = [cam[:QUADRANT, :QUADRANT].sum() / cam.sum() for cam in cams if cam.sum() > 0]
    assert len(shares) >= 14
    # 12x12 is 14% of the image; the CAM puts most of its mass there
    assert np.mean(shares) > 0.5, shares
    # and it is the artefact, not a bias for that corner: reals' maps are elsewhere
    real_cams = gradcam(corner_detector, reals, layers)
    real_shares = [c[:QUADRANT, :QUADRANT].sum() / c.sum() for c in real_cams if c.sum() > 0]
    assert not real_shares or np.mean(real_shares) < 0.3, real_shares


# -- shapes, layers, hygiene ---------------------------------------------------------------
def test_multi_layer_cam_has_the_input_shape_and_differs_from_single() -> None:
    detector = tiny_resnet_se()
    images = random_images(3)
    single = gradcam(detector, images, ["stage3"])
    multi = gradcam(detector, images, ["stage1", "stage2", "stage3"])
    default = gradcam(detector, images)
    assert len(multi) == 3
    for s, m, d in zip(single, multi, default, strict=True):
        assert m.shape == s.shape == (SIZE, SIZE) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() <= 1.0
        np.testing.assert_array_equal(s, d)  # default = the deepest stage
    assert any(not np.allclose(s, m) for s, m in zip(single, multi, strict=True))
    assert gradcam(detector, []) == []


def test_gradcam_restores_the_model_and_removes_hooks() -> None:
    detector = tiny_resnet_se()
    model = detector.model
    model.train()
    before = hook_count(model)
    with torch.no_grad():  # an outer no_grad must not stop the CAM
        cams = gradcam(detector, random_images(2), ["stage2"])
    with torch.inference_mode():  # nor inference mode
        assert gradcam(detector, random_images(1), ["stage2"])[0].max() > 0
    assert all(np.isfinite(c).all() for c in cams)
    assert model.training
    assert hook_count(model) == before == 0
    assert all(p.grad is None for p in model.parameters())
    # a module without a (B, C, H, W) output fails cleanly and leaves no hook behind
    with pytest.raises(ConfigError, match="feature map"):
        gradcam(detector, random_images(1), ["fc"])
    with pytest.raises(ConfigError, match="stage1, stage2, stage3"):
        resolve_layers(model, ["stage9"])
    assert hook_count(model) == 0 and model.training


@pytest.mark.parametrize(
    "name",
    [
        "resnet_se",
        "resnet18",
        "efficientnet_b0",
        "tf_efficientnet_lite0",
        "mobilenetv2_100",
        "convnextv2_atto",
    ],
)
def test_gradcam_works_for_every_architecture_family(name: str) -> None:
    torch.manual_seed(0)
    size = 64
    model = create_model(name)
    detector = detector_for(model, name, size)
    stages = feature_module_names(model)
    images = random_images(2, size=size)
    for layers in (None, stages[-2:]):
        cams = gradcam(detector, images, layers)
        assert [c.shape for c in cams] == [(size, size)] * 2
        assert all(np.isfinite(c).all() and c.min() >= 0 and c.max() <= 1 for c in cams)
    assert hook_count(model) == 0 and not model.training


# -- pictures ------------------------------------------------------------------------------
def test_overlay_is_upscaled_and_coloured() -> None:
    img = random_images(1)[0]
    cam = np.zeros((SIZE, SIZE), np.float32)
    cam[:8, :8] = 1.0
    out = overlay(img, cam)
    assert out.size == (128, 128) and out.mode == "RGB"
    arr = np.asarray(out).astype(int)
    hot, cold = arr[:16, :16].mean((0, 1)), arr[-16:, -16:].mean((0, 1))
    assert hot[0] > cold[0] and cold[2] > hot[2]  # jet: red where hot, blue where cold
    # a map of another size is resized to the image
    assert overlay(Image.new("RGB", (200, 150)), cam).size == (200, 150)


def test_explain_files_writes_captioned_pngs(tmp_path: Path) -> None:
    detector = tiny_resnet_se()
    folder = tmp_path / "in"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    paths = []
    for i, img in enumerate(random_images(3)):
        path = folder / ("a" if i < 2 else "b") / f"img{i % 2}.png"
        img.save(path)
        paths.append(path)
    (folder / "broken.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.png"):
        written = explain_files(detector, [*paths, folder / "broken.png"], tmp_path / "out")
    # b/img0.png shares a stem with a/img0.png and gets its own name
    assert [p.name for p in written] == [
        "img0_gradcam.png",
        "img1_gradcam.png",
        "img0_2_gradcam.png",
    ]
    p_fake = detector.predict_images([Image.open(p).convert("RGB") for p in paths])
    for path, p in zip(written, p_fake, strict=True):
        with Image.open(path) as png:
            assert png.width >= 2 * 128 and png.height > 128
            assert float(png.text["p_fake"]) == pytest.approx(float(p), abs=1e-5)
            assert png.text["layers"] == "stage3"


def test_select_gallery_picks_each_kind() -> None:
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    p = np.array([0.99, 0.8, 0.2, 0.1, 0.6, 0.95, 0.45, 0.3])
    rows = select_gallery(labels, p, 0.5, k=2)
    assert rows["true positives"] == [0, 1]
    assert rows["false positives"] == [5, 4]
    assert rows["true negatives"] == [3, 7]
    assert rows["false negatives"] == [2, 6]
    assert rows["most confident mistakes"] == [5, 2]  # |p - t| 0.45 and 0.3
    assert select_gallery(labels, p, 0.5, k=1)["true negatives"] == [3]


def test_gallery_draws_a_png(tmp_path: Path) -> None:
    detector = tiny_resnet_se()
    paths = []
    for i, img in enumerate(random_images(6)):
        paths.append(tmp_path / f"{i}.png")
        img.save(paths[-1])
    labels = ["real", "fake", "real", "fake", "real", "fake"]
    p = [0.1, 0.9, 0.7, 0.3, 0.2, 0.6]
    out = gallery(detector, paths, labels, p, 0.5, tmp_path / "g" / "gallery.png", k=2)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.width > 300
    with pytest.raises(ConfigError, match="unknown labels"):
        gallery(detector, paths, ["x"] * 6, p, 0.5, tmp_path / "bad.png")


class _OneBoxFinder(FaceFinder):
    """Finds one face at a fixed box in images wider than 50 px, none in smaller ones."""

    kind = "stub"

    def find(self, images):  # type: ignore[no-untyped-def]
        return [[FaceBox(20, 10, 40, 40)] if img.width > 50 else [] for img in images]


def test_explain_faces_maps_the_face_crop_predict_faces_scores(tmp_path: Path) -> None:
    """`explain --faces`: the map is of the crop `predict --faces` scores (same p(fake)); the
    PNG says where the face was; an image without a face is explained whole, saying so."""
    detector = tiny_resnet_se()
    rng = np.random.default_rng(3)
    big = Image.fromarray(rng.integers(0, 256, (90, 100, 3), dtype=np.uint8))
    small = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    big.save(tmp_path / "face.png")
    small.save(tmp_path / "none.png")
    policy = FaceCropPolicy(margin=0.0, square=True, min_size=10)
    selector = FaceSelector(policy, finder=_OneBoxFinder())
    written = explain_files(
        detector, [tmp_path / "face.png", tmp_path / "none.png"], tmp_path / "out", faces=selector
    )
    crop = big.crop((20, 10, 60, 50))
    p_crop, p_small, p_whole = detector.predict_images([crop, small, big])
    with Image.open(written[0]) as png:
        assert png.text["face_box"] == "20,10,40,40"
        assert float(png.text["p_fake"]) == pytest.approx(float(p_crop), abs=1e-5)
        assert abs(float(p_whole) - float(p_crop)) > 1e-6  # the crop, not the whole image
    with Image.open(written[1]) as png:
        assert png.text["face_box"] == "none"
        assert float(png.text["p_fake"]) == pytest.approx(float(p_small), abs=1e-5)
