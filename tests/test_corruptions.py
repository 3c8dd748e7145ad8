"""Corruptions: deterministic under a seed, and each changes the image by the expected amount."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fakescope.data.corruptions import (
    CORRUPTIONS,
    DEFAULT_SEVERITIES,
    RobustAugment,
    apply_corruption,
    gaussian_blur,
    gaussian_noise,
    jpeg,
    rescale,
    web,
)
from fakescope.errors import ConfigError


def _photo_like(n: int = 4, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random images with some texture, values away from 0 and 255."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 8, 8), generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    x = x + 0.05 * torch.rand((n, 3, size, size), generator=g)
    return (40 + 170 * x.clamp(0, 1)).round().to(torch.uint8)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_is_deterministic_and_keeps_shape(name: str) -> None:
    x = _photo_like()
    for severity in DEFAULT_SEVERITIES[name]:
        a = apply_corruption(x, name, severity, seed=7)
        b = apply_corruption(x, name, severity, seed=7)
        assert a.shape == x.shape and a.dtype == torch.uint8
        assert torch.equal(a, b)
        assert not torch.equal(a, x), f"{name} at {severity} left the image unchanged"


def test_noise_has_the_requested_sigma_and_depends_on_the_seed() -> None:
    x = torch.full((8, 3, 64, 64), 128, dtype=torch.uint8)
    for sigma in (0.02, 0.05, 0.1):
        y = apply_corruption(x, "gaussian_noise", sigma, seed=1)
        diff = (y.float() - x.float()) / 255.0
        assert diff.std().item() == pytest.approx(sigma, rel=0.03)
        assert abs(diff.mean().item()) < 0.002
    assert not torch.equal(
        apply_corruption(x, "gaussian_noise", 0.05, seed=1),
        apply_corruption(x, "gaussian_noise", 0.05, seed=2),
    )
    assert torch.equal(gaussian_noise(x, 0.0), x)


def test_blur_matches_the_gaussian_edge_profile() -> None:
    # A vertical step edge blurred with sigma s becomes 0.5 * (1 + erf(d / (s * sqrt 2))).
    x = torch.zeros((1, 3, 32, 64), dtype=torch.uint8)
    x[..., 32:] = 200
    for sigma in (1.0, 2.0):
        y = gaussian_blur(x, sigma)[0, 0, 16].float().numpy()
        d = np.arange(64) - 31.5
        expected = 200 * 0.5 * (1 + np.array([math.erf(v / (sigma * math.sqrt(2))) for v in d]))
        assert np.abs(y[16:48] - expected[16:48]).max() <= 2.0
    flat = torch.full((1, 3, 16, 16), 90, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 1.5), flat)


def test_jpeg_loses_more_at_lower_quality() -> None:
    x = _photo_like(size=64)
    psnrs = [_psnr(jpeg(x, q), x) for q in (95, 75, 50, 30)]
    assert psnrs == sorted(psnrs, reverse=True)
    assert psnrs[0] > 35 and psnrs[-1] < psnrs[0] - 3
    with pytest.raises(ValueError):
        jpeg(x, 0)


def test_rescale_removes_detail_finer_than_the_new_resolution() -> None:
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 200).to(torch.uint8)
    x = checker.expand(1, 3, 32, 32).contiguous()
    y = rescale(x, 0.5)
    # one-pixel detail averages out to the mean grey
    assert (y.float() - 100).abs().mean().item() < 15
    assert torch.equal(rescale(x, 1.0), x)
    flat = torch.full((2, 3, 20, 20), 77, dtype=torch.uint8)
    assert torch.equal(rescale(flat, 0.75), flat)


def test_web_chain_is_rescale_then_jpeg() -> None:
    x = _photo_like()
    assert torch.equal(web(x, 75), jpeg(rescale(x, 0.75), 75))


def test_unknown_corruption_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown corruption 'snow'"):
        apply_corruption(_photo_like(), "snow", 1.0)


def test_robust_augment_is_reproducible_and_off_when_probabilities_are_zero() -> None:
    x = _photo_like(n=16, size=32)
    assert not RobustAugment().active
    aug = RobustAugment(p_rescale=0.5, p_blur=0.5, p_jpeg=0.5, p_noise=0.5)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x).flatten(1).any(1)
    assert 0 < changed.sum().item() < 16 or changed.all()
    everything = RobustAugment(p_jpeg=1.0, jpeg_min=30, jpeg_max=30)
    assert torch.equal(everything(x, torch.Generator().manual_seed(0)), jpeg(x, 30))


def test_batched_per_image_degradations_match_the_single_image_functions() -> None:
    from fakescope.data.corruptions import _blur_each, _jpeg_each, _rescale_each

    x = _photo_like(n=6, size=32, seed=5)
    sigmas = [0.0, 0.3, 0.8, 1.0, 1.5, 2.0]
    blurred = _blur_each(x, sigmas)
    for i, s in enumerate(sigmas):
        reference = gaussian_blur(x[i : i + 1], s)
        assert (blurred[i : i + 1].int() - reference.int()).abs().max().item() <= 1, s
    factors = [0.5, 0.55, 0.75, 0.9, 1.0, 0.5]
    rescaled = _rescale_each(x, factors)
    for i, f in enumerate(factors):
        assert torch.equal(rescaled[i : i + 1], rescale(x[i : i + 1], f))
    qualities = [30, 50, 75, 90, 95, 100]
    compressed = _jpeg_each(x, qualities)
    for i, q in enumerate(qualities):
        assert torch.equal(compressed[i : i + 1], jpeg(x[i : i + 1], q))


def test_jpeg_matches_pillow_round_trip() -> None:
    import io

    from PIL import Image

    x = _photo_like(n=2, size=48, seed=9)
    y = jpeg(x, 60)
    for i in range(2):
        buf = io.BytesIO()
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=60)
        buf.seek(0)
        reference = np.asarray(Image.open(buf).convert("RGB"))
        assert np.abs(y[i].permute(1, 2, 0).numpy().astype(int) - reference).max() <= 1


def _enlarged(x: torch.Tensor, size: int) -> torch.Tensor:
    """What native-resolution preprocessing makes of small images: enlarged to `size`."""
    from PIL import Image

    from fakescope.data.transforms import Preprocessing

    pre = Preprocessing(input_size=size, resize="native", crops=1)
    arrays = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in x]
    return pre.batch_from_images(arrays)[:, 0]


@pytest.mark.parametrize(
    ("aug", "min_psnr"),
    [
        (RobustAugment(p_blur=1.0, blur_max=1e-9), 42),  # the shrink-enlarge round trip alone
        (RobustAugment(p_blur=1.0, blur_max=2.0), 42),
        (RobustAugment(p_jpeg=1.0, jpeg_min=40, jpeg_max=40), 32),  # JPEG magnifies rounding
    ],
)
def test_native_degradation_is_the_enlarged_degraded_picture(
    aug: RobustAugment, min_psnr: float
) -> None:
    """A 32 px picture seen at 160 px is degraded at 32 px, then enlarged: what a file
    degraded in the world (and by `fakescope robustness`) looks like to the detector."""
    small = _photo_like(n=4, size=32, seed=2)
    view = _enlarged(small, 160)
    native = aug(view, torch.Generator().manual_seed(0), torch.full((4,), 32))
    at_input = aug(view, torch.Generator().manual_seed(0))
    expected = _enlarged(aug(small, torch.Generator().manual_seed(0)), 160)
    assert native.shape == view.shape and native.dtype == torch.uint8
    assert _psnr(native, expected) > min_psnr
    if aug.blur_max > 1 or aug.p_jpeg:  # degrading the enlargement is something else
        assert _psnr(native, expected) > _psnr(at_input, expected) + 8


def test_native_blur_is_the_pictures_blur_not_the_enlargements() -> None:
    small = _photo_like(n=2, size=32, seed=4)
    view = _enlarged(small, 160)
    aug = RobustAugment(p_blur=1.0, blur_max=2.0)
    native = aug(view, torch.Generator().manual_seed(1), torch.tensor([32, 32]))
    at_input = aug(view, torch.Generator().manual_seed(1))
    # the same sigma, 5x larger in the enlargement's pixels: far more detail is lost
    assert _psnr(native, view) < _psnr(at_input, view) - 3


def test_images_not_enlarged_are_degraded_at_input_size_as_before() -> None:
    x = _photo_like(n=6, size=48, seed=6)
    aug = RobustAugment(p_rescale=0.5, p_blur=0.5, p_jpeg=0.5, p_noise=0.5)
    plain = aug(x, torch.Generator().manual_seed(9))
    zeros = aug(x, torch.Generator().manual_seed(9), torch.zeros(6, dtype=torch.long))
    larger = aug(x, torch.Generator().manual_seed(9), torch.full((6,), 300))
    assert torch.equal(plain, zeros) and torch.equal(plain, larger)
    mixed = aug(x, torch.Generator().manual_seed(9), torch.tensor([0, 24, 0, 24, 0, 0]))
    untouched = [0, 2, 4, 5]
    assert torch.equal(mixed[untouched], plain[untouched])
    with pytest.raises(ValueError, match="one value per image"):
        aug(x, torch.Generator().manual_seed(9), torch.zeros(5, dtype=torch.long))


def test_native_sides_are_the_shorter_sides_of_enlarged_images_only() -> None:
    from fakescope.data.transforms import native_sides

    sizes = np.array([[32, 32], [100, 150], [224, 224], [1280, 720], [160, 90]])
    assert native_sides(sizes, 160).tolist() == [32, 100, 0, 0, 90]


def test_degrading_at_native_resolution_needs_native_crops_and_a_cache() -> None:
    from pydantic import ValidationError

    from fakescope.config import DataConfig

    degrade = {"p_blur": 0.5, "at": "native"}
    DataConfig(resize="native", augment={"degrade": degrade})
    with pytest.raises(ValidationError, match="needs resize 'native'"):
        DataConfig(resize="squash", augment={"degrade": degrade})
    with pytest.raises(ValidationError, match="needs the images' sizes"):
        DataConfig(resize="native", cache="none", augment={"degrade": degrade})
