"""The zero-shot statistic: how an image's actual coding cost under the real-image coder
compares with the cost the coder expected (ZED, Cozzolino et al., ECCV 2024).

For each level l and each sub-pixel, the actual cost is ``-log2 p(x)`` (NLL) and the expected
cost is the entropy ``H`` of the predicted distribution. Real photos are coded about as
expected (NLL - H near its usual value); generated images tend to be coded more cheaply than
expected. :class:`GapFeatures` gives, per crop, the mean NLL and H of each level in bits per
sub-pixel; :func:`gap_features` turns the crops of an image into its features.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fakescope.kinds.zero_shot.classical import ClassicalCoder
from fakescope.kinds.zero_shot.coder import _EDGE, LEVELS, LN2, Coder, _split, log_prob, to_unit

AnyCoder = Coder | ClassicalCoder  # both give each level's distribution in the same layout

FEATURES = tuple(f"{what}{level}" for level in range(LEVELS) for what in ("nll", "h"))


def entropy_bits(params: torch.Tensor, x: torch.Tensor, mixtures: int) -> torch.Tensor:
    """Entropy in bits of each sub-pixel's predicted distribution over 0..255, (B,3,H,W)
    (green and blue given the actual red and green, as they are coded). The mixture's CDF is
    evaluated at the 255 inner bin edges once per component; bins are CDF differences."""
    xu = to_unit(x)
    log_w, means, log_scales = _split(params, mixtures, xu)
    inv = torch.exp(-log_scales).unsqueeze(3)  # (B,K,3,1,H,W)
    edges = (torch.arange(1, 256, dtype=x.dtype, device=x.device) / 127.5 - 1.0) - _EDGE
    cdf = torch.sigmoid((edges.reshape(1, 1, 1, 255, 1, 1) - means.unsqueeze(3)) * inv)
    cdf = (torch.exp(log_w).unsqueeze(3) * cdf).sum(dim=1)  # mixture CDF (B,3,255,H,W)
    zeros = torch.zeros_like(cdf[:, :, :1])
    ones = torch.ones_like(cdf[:, :, :1])
    full = torch.cat([zeros, cdf, ones], dim=2)
    pmf = torch.clamp(full[:, :, 1:] - full[:, :, :-1], min=1e-12)
    pmf = pmf / pmf.sum(dim=2, keepdim=True)
    return -(pmf * torch.log(pmf)).sum(dim=2) / LN2


# sample the sub-pixels of level 0 in one 2x2 block per 8x8 block, the coarser levels in one
# per 4x4: the entropy costs 256 values per sub-pixel, and a mean over hundreds is enough
SAMPLE_STRIDE = (8, 4, 4)


def sample_blocks(t: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """The top-left 2x2 block of every stride x stride block of (B, C, H, W) (H and W
    multiples of `stride`): each of the four sub-pixel positions a coarse pixel predicts is
    sampled equally."""
    b, c, h, w = t.shape
    t = t.reshape(b, c, h // stride, stride, w // stride, stride)[:, :, :, :2, :, :2]
    return t.reshape(b, c, 2 * (h // stride), 2 * (w // stride))


class GapFeatures(nn.Module):
    """Crops (B, 3, S, S) with values 0..255 (float), S a multiple of 32 -> (B, 2 * LEVELS):
    for each level, the mean actual cost (NLL) and the mean expected cost (entropy) in bits
    per sub-pixel, over the same sample of its sub-pixels (:func:`sample_blocks`). Plain
    tensor ops, so it exports to ONNX as it is."""

    def __init__(self, coder: AnyCoder) -> None:
        super().__init__()
        self.coder = coder

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        k = self.coder.config.mixtures
        out = []
        for level, (full_params, full_x) in enumerate(self.coder.level_params(crops)):
            stride = SAMPLE_STRIDE[level]
            params, x = sample_blocks(full_params, stride), sample_blocks(full_x, stride)
            nll = -log_prob(params, x, k) / LN2
            out.append(nll.mean(dim=(1, 2, 3)))
            out.append(entropy_bits(params, x, k).mean(dim=(1, 2, 3)))
        return torch.stack(out, dim=1)


def crop_features(graph: nn.Module, crops: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """GapFeatures of many crops, `chunk` at a time (the entropy holds 256 values per
    sub-pixel: small chunks keep memory flat)."""
    with torch.no_grad():
        parts = [graph(crops[i : i + chunk].float()) for i in range(0, len(crops), chunk)]
    return torch.cat(parts) if parts else torch.empty(0, 2 * LEVELS)


def image_statistics(per_crop: np.ndarray) -> dict[str, float]:
    """One image's statistics from its crops' features (K, 2 * LEVELS): the mean NLL and H
    of each level, the gap D_l = NLL_l - H_l, and the gap's slope across levels (D0 - D2)/2."""
    mean = per_crop.mean(axis=0)
    stats = {name: float(v) for name, v in zip(FEATURES, mean, strict=True)}
    for level in range(LEVELS):
        stats[f"d{level}"] = stats[f"nll{level}"] - stats[f"h{level}"]
    stats["slope"] = (stats["d0"] - stats[f"d{LEVELS - 1}"]) / (LEVELS - 1)
    return stats


__all__ = [
    "FEATURES",
    "AnyCoder",
    "GapFeatures",
    "crop_features",
    "entropy_bits",
    "image_statistics",
    "sample_blocks",
]
