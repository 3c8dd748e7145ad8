"""Image corruptions (noise, blur, JPEG, rescaling, a web chain) on uint8 image batches.

Every function takes a (B, 3, H, W) uint8 tensor and returns one of the same shape and dtype.
Randomness comes only from the `generator` argument, so a corruption is reproducible under a
seed. Severities use the units people quote: noise and blur sigma on the [0, 1] intensity
scale and in pixels, JPEG quality 1-100, rescale factor (0, 1].

The same functions serve `fakescope robustness` (fixed severities) and robust training
augmentation (`RobustAugment`, severities sampled per image).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from fakescope.errors import ConfigError


def _check(batch: torch.Tensor) -> None:
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(
            f"expected a (B, 3, H, W) uint8 batch, got {tuple(batch.shape)} {batch.dtype}"
        )


def gaussian_noise(
    batch: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Additive Gaussian noise with standard deviation `sigma` on the [0, 1] scale."""
    _check(batch)
    if sigma <= 0:
        return batch.clone()
    noise = torch.randn(batch.shape, generator=generator) * (sigma * 255.0)
    return (batch.float() + noise).round_().clamp_(0, 255).to(torch.uint8)


def gaussian_blur(
    batch: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (kernel covers +-3 sigma)."""
    _check(batch)
    if sigma <= 0:
        return batch.clone()
    radius = max(1, math.ceil(3.0 * sigma))
    size = 2 * radius + 1
    blurred: torch.Tensor = TF.gaussian_blur(
        batch.float(), kernel_size=[size, size], sigma=[sigma, sigma]
    )
    return blurred.round_().clamp_(0, 255).to(torch.uint8)


def jpeg(
    batch: torch.Tensor, quality: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Re-compress every image as a JPEG at `quality` (1-100, libjpeg's scale; 4:2:0 chroma)."""
    _check(batch)
    q = int(round(quality))
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return _jpeg_each(batch, [q] * batch.shape[0])


def rescale(
    batch: torch.Tensor, factor: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Down-scale by `factor` (antialiased bilinear) and scale back up to the original size."""
    _check(batch)
    if not 0 < factor <= 1:
        raise ValueError(f"rescale factor must be in (0, 1], got {factor}")
    if factor == 1:
        return batch.clone()
    h, w = batch.shape[-2:]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    x = F.interpolate(
        batch.float(), size=small, mode="bilinear", antialias=True, align_corners=False
    )
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def web(
    batch: torch.Tensor, quality: float = 75, generator: torch.Generator | None = None
) -> torch.Tensor:
    """What a photo goes through when shared online: a 0.75 rescale, then JPEG at `quality`."""
    return jpeg(rescale(batch, 0.75), quality)


Corruption = Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]

CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "jpeg": jpeg,
    "rescale": rescale,
    "web": web,
}

#: The severities `fakescope robustness` measures by default (units as in each function).
DEFAULT_SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.02, 0.05, 0.1),
    "gaussian_blur": (0.5, 1.0, 2.0),
    "jpeg": (95, 75, 50, 30),
    "rescale": (0.75, 0.5),
    "web": (75,),
}

#: How each severity is written in tables and plots.
SEVERITY_UNITS: dict[str, str] = {
    "gaussian_noise": "sigma",
    "gaussian_blur": "sigma px",
    "jpeg": "quality",
    "rescale": "factor",
    "web": "quality",
}


def apply_corruption(
    batch: torch.Tensor, name: str, severity: float, *, seed: int | None = None
) -> torch.Tensor:
    """Apply corruption `name` at `severity`; `seed` fixes the randomness (noise)."""
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    return CORRUPTIONS[name](batch, severity, generator)


@dataclass(frozen=True)
class RobustAugment:
    """Training-time degradations in the style of CNNDetection's blur + JPEG augmentation.

    Each image independently gets, in this order and each with its own probability: a rescale
    by a factor in [rescale_min, 1], a Gaussian blur with sigma in [0, blur_max], a JPEG
    re-compression with quality in [jpeg_min, jpeg_max] and Gaussian noise with sigma in
    [0, noise_max]. All draws come from `generator`, so a resumed run repeats them exactly.

    `native_sides` (one int per image, 0 for none) says which images are crops of a picture
    that preprocessing enlarged from a shorter side of that many pixels (a 32 px CIFAKE
    thumbnail is seen at 160 px). Those are shrunk back to their own resolution, degraded
    there and enlarged again, so a blur of sigma 1 is a blur of 1 pixel of the picture, as
    when a file is degraded in the world (and as `fakescope robustness` degrades it), not of
    one pixel of its enlargement.
    """

    p_rescale: float = 0.0
    rescale_min: float = 0.5
    p_blur: float = 0.0
    blur_max: float = 2.0
    p_jpeg: float = 0.0
    jpeg_min: int = 30
    jpeg_max: int = 100
    p_noise: float = 0.0
    noise_max: float = 0.1

    @property
    def active(self) -> bool:
        return max(self.p_rescale, self.p_blur, self.p_jpeg, self.p_noise) > 0

    def __call__(
        self,
        batch: torch.Tensor,
        generator: torch.Generator,
        native_sides: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check(batch)
        n = batch.shape[0]
        # Draw every random number up front, in a fixed order, whatever the batch content.
        u = torch.rand((n, 8), generator=generator, dtype=torch.float64)
        noise = torch.randn(batch.shape, generator=generator) if self.p_noise > 0 else None
        h, w = batch.shape[-2:]
        sides = _enlarged_sides(native_sides, n, min(h, w))
        if not sides:
            return self._degrade(batch, u, noise)
        out = batch.clone()
        at_input = [i for i in range(n) if i not in sides]
        if at_input:
            rows = torch.tensor(at_input)
            out[rows] = self._degrade(batch[rows], u[rows], None if noise is None else noise[rows])
        for side in sorted(set(sides.values())):
            rows = torch.tensor([i for i, s in sides.items() if s == side])
            small = (max(1, round(h * side / min(h, w))), max(1, round(w * side / min(h, w))))
            own = _resize_uint8(batch[rows], small, antialias=True)
            part = None if noise is None else noise[rows][..., : small[0], : small[1]]
            degraded = self._degrade(own, u[rows], part)
            out[rows] = _resize_uint8(degraded, (h, w), antialias=False)
        return out

    def _degrade(
        self, batch: torch.Tensor, u: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """The degradations on `batch` with its images' draws `u` (n, 8) and `noise`."""
        out = batch.clone()
        # Each step works on the subset of images it applies to, batched: per-image Python
        # loops cost more than the training step itself at 32 px.
        idx = torch.nonzero(u[:, 0] < self.p_rescale).flatten()
        if len(idx):
            factors = self.rescale_min + (1.0 - self.rescale_min) * u[idx, 1]
            out[idx] = _rescale_each(out[idx], factors.tolist())
        idx = torch.nonzero(u[:, 2] < self.p_blur).flatten()
        if len(idx):
            out[idx] = _blur_each(out[idx], (self.blur_max * u[idx, 3]).tolist())
        idx = torch.nonzero(u[:, 4] < self.p_jpeg).flatten()
        if len(idx):
            qualities = self.jpeg_min + (self.jpeg_max - self.jpeg_min) * u[idx, 5]
            out[idx] = _jpeg_each(out[idx], [int(round(q)) for q in qualities.tolist()])
        idx = torch.nonzero(u[:, 6] < self.p_noise).flatten()
        if noise is not None and len(idx):
            sigma = (self.noise_max * 255.0 * u[idx, 7]).float().view(-1, 1, 1, 1)
            noisy = out[idx].float() + noise[idx] * sigma
            out[idx] = noisy.round_().clamp_(0, 255).to(torch.uint8)
        return out


def _enlarged_sides(native_sides: torch.Tensor | None, n: int, side: int) -> dict[int, int]:
    """{image index: its own shorter side} for the images enlarged to `side` pixels."""
    if native_sides is None:
        return {}
    if native_sides.shape != (n,):
        raise ValueError(
            f"native_sides must hold one value per image ({n}), got {tuple(native_sides.shape)}"
        )
    return {i: int(s) for i, s in enumerate(native_sides.tolist()) if 0 < int(s) < side}


def _resize_uint8(batch: torch.Tensor, size: tuple[int, int], *, antialias: bool) -> torch.Tensor:
    """Bicubic resize of a uint8 batch (antialiased when shrinking), rounded and clamped."""
    x = F.interpolate(
        batch.float(), size=size, mode="bicubic", antialias=antialias, align_corners=False
    )
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _rescale_each(batch: torch.Tensor, factors: list[float]) -> torch.Tensor:
    """`rescale` with one factor per image, batched over images that share a target size."""
    h, w = batch.shape[-2:]
    out = batch.clone()
    sizes = [(max(1, round(h * f)), max(1, round(w * f))) for f in factors]
    for size in set(sizes):
        if size == (h, w):
            continue
        members = [i for i, s in enumerate(sizes) if s == size]
        x = F.interpolate(
            batch[members].float(), size=size, mode="bilinear", antialias=True, align_corners=False
        )
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        out[members] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _blur_each(batch: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """`gaussian_blur` with one sigma per image, as one separable depthwise convolution.

    Kernels share the radius of the largest sigma (reflect padding, like `gaussian_blur`);
    the extra taps of the smaller kernels carry < 0.3% of their weight."""
    n, c, h, w = batch.shape
    top = max(sigmas)
    if top <= 0:
        return batch.clone()
    radius = min(max(1, math.ceil(3.0 * top)), min(h, w) - 1)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    sig = torch.tensor(sigmas, dtype=torch.float32).clamp_min(1e-3).view(-1, 1)
    kernels = torch.exp(-0.5 * (taps.view(1, -1) / sig) ** 2)
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, dim=0)
    x = batch.float().reshape(1, n * c, h, w)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernels.view(n * c, 1, 1, -1), groups=n * c)
    x = F.conv2d(x, kernels.view(n * c, 1, -1, 1), groups=n * c)
    return x.reshape(n, c, h, w).round_().clamp_(0, 255).to(torch.uint8)


def _jpeg_each(batch: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """`jpeg` with one quality per image. OpenCV's libjpeg-turbo round trip gives the same
    pixels as Pillow's at a third of the per-image overhead, which dominates at 32 px."""
    arrays = batch.permute(0, 2, 3, 1).contiguous().numpy()
    out = np.empty_like(arrays)
    for i, (img, q) in enumerate(zip(arrays, qualities, strict=True)):
        ok, encoded = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:  # pragma: no cover - libjpeg refuses only impossible sizes
            raise ValueError(f"JPEG encoding failed for an image of shape {img.shape}")
        # imdecode is None only for bytes it cannot read; these are its own encoding
        out[i] = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]  # type: ignore[index]
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
