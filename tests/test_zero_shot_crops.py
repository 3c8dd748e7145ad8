"""The zero-shot coder's training crops: every degradation gives clean crops of the right
size and changes them the way its name says, and the crop stream uses them for the recipe's
share of photos."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.kinds.zero_shot.crops import DEGRADATIONS, degraded_crops, random_crops
from fakescope.kinds.zero_shot.data import RealImage
from fakescope.kinds.zero_shot.recipe import load_recipe
from fakescope.kinds.zero_shot.train import CropStream


def noise(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def roughness(crops: list[np.ndarray]) -> float:
    """Mean absolute difference of horizontal neighbours."""
    return float(np.mean([np.abs(np.diff(c.astype(int), axis=1)).mean() for c in crops]))


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_every_degradation_gives_crops_of_the_crop_size(kind: str) -> None:
    crops = degraded_crops(noise(300), 32, 5, random.Random(1), kind)
    assert len(crops) == 5
    assert all(c.shape == (32, 32, 3) and c.dtype == np.uint8 for c in crops)
    assert all(c.flags["C_CONTIGUOUS"] for c in crops)


@pytest.mark.parametrize("kind", ["blur", "upscale", "jpeg"])
def test_blur_upscaling_and_jpeg_smooth_noise(kind: str) -> None:
    rng = random.Random(2)
    plain = roughness(random_crops(noise(300), 32, 8, rng))
    changed = roughness(degraded_crops(noise(300), 32, 8, rng, kind))
    assert changed < 0.8 * plain


def test_downscaling_steepens_a_ramp() -> None:
    ramp = np.repeat(np.repeat((np.arange(400) // 4).astype(np.uint8)[None, :, None], 400, 0), 3, 2)
    plain = roughness(random_crops(ramp, 32, 8, random.Random(3)))
    changed = roughness(degraded_crops(ramp, 32, 8, random.Random(3), "downscale"))
    assert plain == pytest.approx(0.25, abs=0.05)
    assert changed > 1.2 * plain  # a 0.3-0.8 reduction: 1.25-3.3x steeper


def test_a_photo_too_small_for_the_margin_gives_no_crops() -> None:
    # blur of sigma >= 0.4 needs at least 2 px of margin on each side
    assert degraded_crops(noise(32), 32, 3, random.Random(0), "blur") == []
    with pytest.raises(ValueError, match="unknown degradation"):
        degraded_crops(noise(64), 32, 1, random.Random(0), "sharpen")


def test_the_stream_degrades_the_recipes_share_of_photos(tmp_path: Path) -> None:
    images = []
    for i in range(6):
        path = tmp_path / f"n{i}.png"
        Image.fromarray(noise(160, seed=i)).save(path)
        images.append(RealImage(str(path), "noise", "train"))

    def stream_roughness(share: float) -> float:
        keys = ["train.crop=32", "train.batch_size=8", f"train.degrade={share}"]
        recipe = load_recipe(None, keys)
        stream = CropStream(images, recipe, random.Random(0))
        crops = [c.permute(1, 2, 0).numpy() for _ in range(12) for c in stream.batch()]
        return roughness(crops)

    plain, degraded = stream_roughness(0.0), stream_roughness(1.0)
    assert degraded < 0.85 * plain
    assert stream_roughness(0.5) == pytest.approx((plain + degraded) / 2, rel=0.15)
