"""The coder's training crops: random crops of a real photo, plain or after a degradation
(blurred, up-scaled, down-scaled or re-compressed), so that a smooth or blocky *real* image is
not surprising to the coder (a coder that only saw sharp photos codes a blurred one far more
cheaply than it expects, and the coding gap then reads it as generated).

A degraded photo gets one degradation with one strength; its crops are cut from patches with
enough margin that every pixel of a crop went through the whole change (no border effects).
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image

from fakescope.data.corruptions import gaussian_blur, jpeg

#: name -> (low, high) of the strength drawn uniformly per photo: blur sigma in pixels, the
#: up- or down-scaling factor, JPEG quality.
DEGRADATIONS: dict[str, tuple[float, float]] = {
    "blur": (0.4, 2.0),
    "upscale": (1.25, 3.0),
    "downscale": (0.3, 0.8),
    "jpeg": (60.0, 98.0),
}
_FILTERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)


def _patch_side(kind: str, strength: float, side: int) -> int:
    """Side of the patch cut from the photo so the degraded patch still holds a clean crop."""
    if kind == "blur":
        return side + 2 * math.ceil(3.0 * strength)
    if kind in ("upscale", "downscale"):
        return math.ceil(side / strength) + 4
    return side


def _degrade(patch: np.ndarray, kind: str, strength: float, rng: random.Random) -> np.ndarray:
    if kind == "blur":
        batch = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None]
        return gaussian_blur(batch, strength)[0].permute(1, 2, 0).numpy()
    if kind == "jpeg":
        batch = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None]
        return jpeg(batch, round(strength))[0].permute(1, 2, 0).numpy()
    h, w = patch.shape[:2]
    size = (max(1, round(w * strength)), max(1, round(h * strength)))
    resample = rng.choice(_FILTERS)
    return np.asarray(Image.fromarray(patch).resize(size, resample, reducing_gap=None))


def random_crops(pixels: np.ndarray, side: int, count: int, rng: random.Random) -> list[np.ndarray]:
    """`count` random side x side crops (none when the image is smaller)."""
    h, w = pixels.shape[:2]
    if h < side or w < side:
        return []
    out = []
    for _ in range(count):
        y, x = rng.randrange(h - side + 1), rng.randrange(w - side + 1)
        out.append(pixels[y : y + side, x : x + side])
    return out


def degraded_crops(
    pixels: np.ndarray, side: int, count: int, rng: random.Random, kind: str | None = None
) -> list[np.ndarray]:
    """`count` side x side crops of the photo after one degradation (`kind`, or one drawn at
    random) of a random strength; none when the photo is too small for the patch it needs."""
    if kind is None:
        kind = rng.choice(sorted(DEGRADATIONS))
    elif kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {sorted(DEGRADATIONS)}")
    low, high = DEGRADATIONS[kind]
    strength = rng.uniform(low, high)
    out = []
    for patch in random_crops(pixels, _patch_side(kind, strength, side), count, rng):
        changed = _degrade(patch, kind, strength, rng)
        ch, cw = changed.shape[:2]
        top, left = (ch - side) // 2, (cw - side) // 2
        out.append(np.ascontiguousarray(changed[top : top + side, left : left + side]))
    return out
