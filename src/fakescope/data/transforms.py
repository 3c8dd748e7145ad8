"""Preprocessing tied to a bundle, and batch augmentations on uint8 tensors.

Every image goes PIL -> `Preprocessing.to_uint8` -> (3, S, S) uint8 -> `normalize` on a batch.
Training, evaluation and serving all use the same object, rebuilt from the bundle's metadata,
so preprocessing can never drift between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
import torch
from PIL import Image

from fakescope.robustness.corruptions import RobustAugment

ResizePolicy = Literal["squash", "shorter_crop"]
Interpolation = Literal["bilinear", "bicubic"]
_INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class _OptionalPreprocessingKeys(TypedDict, total=False):
    # Older bundles may lack these; `Preprocessing.from_dict` fills in the defaults.
    resize: ResizePolicy
    interpolation: Interpolation
    mean: Sequence[float]
    std: Sequence[float]
    # an ensemble whose members see different input geometries reports all of them
    packed: list[PreprocessingDict]


class PreprocessingDict(_OptionalPreprocessingKeys):
    """`Preprocessing` as stored in bundle.json."""

    input_size: int


def _rgb(values: Sequence[float]) -> tuple[float, float, float]:
    red, green, blue = values
    return float(red), float(green), float(blue)


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded RGB image becomes the model's input tensor."""

    input_size: int
    resize: ResizePolicy = "squash"
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def to_dict(self) -> PreprocessingDict:
        return {
            "input_size": self.input_size,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_dict(cls, data: PreprocessingDict) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            resize=data.get("resize", "squash"),
            interpolation=data.get("interpolation", "bicubic"),
            mean=_rgb(data.get("mean", (0.5, 0.5, 0.5))),
            std=_rgb(data.get("std", (0.5, 0.5, 0.5))),
        )

    def resize_image(self, img: Image.Image) -> Image.Image:
        """Resize (and crop, by policy) an RGB image to input_size x input_size."""
        size = self.input_size
        if img.size == (size, size):
            return img
        resample = _INTERPOLATION[self.interpolation]
        if self.resize == "squash":
            return img.resize((size, size), resample, reducing_gap=3.0)
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), resample, reducing_gap=3.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return img.crop((left, top, left + size, top + size))

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        """RGB PIL image -> (3, S, S) uint8 array."""
        arr = np.asarray(self.resize_image(img.convert("RGB")), dtype=np.uint8)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> float32 normalised with the bundle's mean and std."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1) * 255.0
        return (batch.float() - mean) / std

    def batch_from_images(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) uint8 tensor."""
        return torch.from_numpy(np.stack([self.to_uint8(img) for img in images]))


@dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentations of a uint8 batch: optional degradations, flip, translate."""

    hflip: bool = True
    pad_crop: int = 0
    degrade: RobustAugment | None = None

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.degrade is not None and self.degrade.active:
            batch = self.degrade(batch, generator)
        if self.hflip:
            flip = torch.rand(batch.shape[0], generator=generator) < 0.5
            if flip.any():
                batch = batch.clone()
                batch[flip] = batch[flip].flip(-1)
        if self.pad_crop > 0:
            batch = random_translate(batch, self.pad_crop, generator)
        return batch


def random_translate(batch: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Reflect-pad by `pad` and crop back at a random offset per sample."""
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch.float(), (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.empty_like(batch)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w].to(batch.dtype)
    return out
