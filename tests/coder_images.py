"""Photo-like toy images for the zero-shot coders' tests (the neural and the classical one)."""

from __future__ import annotations

import numpy as np
import torch


def smooth_image(rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """A photo-like toy: gradients and a soft blob, a little noise."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = np.empty((side, side, 3))
    for c in range(3):
        a, b, d = rng.uniform(-120, 120, 3)
        cy, cx = rng.uniform(0, 1, 2)
        out[..., c] = 128 + a * xx + b * yy + d * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) * 8)
    out += rng.normal(0, 2, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 arrays -> a (B, 3, H, W) float batch of pixel values 0-255."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
