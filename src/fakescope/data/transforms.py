"""Preprocessing tied to a bundle, and batch augmentations on uint8 tensors.

Every image goes PIL -> `Preprocessing.to_uint8` -> (3, S, S) uint8 -> `normalize` on a batch.
Training, evaluation and serving all use the same object, rebuilt from the bundle's metadata,
so preprocessing can never drift between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np
from PIL import Image

from fakescope.errors import ConfigError

if TYPE_CHECKING:  # PyTorch only where a batch is normalised or augmented: scoring on
    import torch  # onnxruntime reads bundles and prepares uint8 arrays without it

    from fakescope.data.corruptions import RobustAugment

ResizePolicy = Literal["squash", "shorter_crop", "native"]
Interpolation = Literal["bilinear", "bicubic"]
_INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


class _OptionalPreprocessingKeys(TypedDict, total=False):
    # Older bundles may lack these; `Preprocessing.from_dict` fills in the defaults.
    resize: ResizePolicy
    interpolation: Interpolation
    mean: Sequence[float]
    std: Sequence[float]
    crops: int  # resize "native": crops of input_size per image, on a grid over the image


class PreprocessingDict(_OptionalPreprocessingKeys):
    """`Preprocessing` as stored in bundle.json."""

    input_size: int


def _rgb(values: Sequence[float]) -> tuple[float, float, float]:
    red, green, blue = values
    return float(red), float(green), float(blue)


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded RGB image becomes the model's input tensor.

    Resize policies: ``squash`` (the whole image resized to S x S), ``shorter_crop`` (shorter
    side to S, centre crop) and ``native``: ``crops`` crops of S x S at the image's own
    resolution, spread over it on a grid (an image smaller than S is first enlarged so its
    shorter side is S). Resizing destroys the traces generators leave, so ``native`` never
    shrinks an image; the detector scores every crop and averages their logits.
    """

    input_size: int
    resize: ResizePolicy = "squash"
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crops: int = 1

    def __post_init__(self) -> None:
        if self.crops < 1 or (self.crops > 1 and self.resize != "native"):
            raise ConfigError(
                f"crops={self.crops}: several crops need resize 'native', and at least one"
            )

    def to_dict(self) -> PreprocessingDict:
        stored: PreprocessingDict = {
            "input_size": self.input_size,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": self.mean,
            "std": self.std,
        }
        if self.resize == "native":  # older bundles' metadata stays exactly as it was
            stored["crops"] = self.crops
        return stored

    @classmethod
    def from_dict(cls, data: PreprocessingDict) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            resize=data.get("resize", "squash"),
            interpolation=data.get("interpolation", "bicubic"),
            mean=_rgb(data.get("mean", (0.5, 0.5, 0.5))),
            std=_rgb(data.get("std", (0.5, 0.5, 0.5))),
            crops=int(data.get("crops", 1)),
        )

    @property
    def multi_crop(self) -> bool:
        """Whether `to_uint8` gives (crops, 3, S, S) per image instead of (3, S, S)."""
        return self.resize == "native"

    @property
    def array_shape(self) -> tuple[int, ...]:
        """The shape of one image's `to_uint8` array."""
        size = self.input_size
        return (self.crops, 3, size, size) if self.multi_crop else (3, size, size)

    def native_view(self, img: Image.Image) -> Image.Image:
        """The image at its own resolution, enlarged only if its shorter side is below S."""
        w, h = img.size
        if min(w, h) >= self.input_size:
            return img
        scale = self.input_size / min(w, h)
        # a sliver (say 1 x 5000 px) would grow to 160 x 800,000: the long side is capped
        cap = max(self.input_size, w, h)
        size = (
            min(cap, max(self.input_size, round(w * scale))),
            min(cap, max(self.input_size, round(h * scale))),
        )
        return img.resize(size, _INTERPOLATION[self.interpolation], reducing_gap=3.0)

    def crop_boxes(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """(left, top, right, bottom) of each crop in a `native_view` of this size: a grid
        of rows x cols = crops shaped like the image, evenly spread from edge to edge."""
        rows, cols = grid_shape(self.crops, width, height)
        size = self.input_size
        lefts, tops = _spread(width - size, cols), _spread(height - size, rows)
        return [(x, y, x + size, y + size) for y in tops for x in lefts]

    def resize_image(self, img: Image.Image) -> Image.Image:
        """Resize (and crop, by policy) an RGB image to input_size x input_size; for 'native',
        the whole image as the crops see it (`native_view`)."""
        if self.multi_crop:
            return self.native_view(img)
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
        """RGB PIL image -> (3, S, S) uint8 array, or (crops, 3, S, S) for 'native'."""
        img = img if img.mode == "RGB" else img.convert("RGB")
        if self.multi_crop:
            # the crops cut in PIL, not from an array of the whole image: a 2,000 px photo
            # was copied twice (12 MB each) for 4 crops of 160 px
            view = self.native_view(img)
            crops = [
                np.asarray(view.crop(box), dtype=np.uint8) for box in self.crop_boxes(*view.size)
            ]
            return np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
        arr = np.asarray(self.resize_image(img), dtype=np.uint8)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 -> float32 normalised with the bundle's mean and std."""
        import torch

        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1) * 255.0
        return (batch.float() - mean) / std

    def batch_from_images(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> (B, 3, S, S) uint8 tensor."""
        import torch

        return torch.from_numpy(np.stack([self.to_uint8(img) for img in images]))


def _spread(room: int, n: int) -> list[int]:
    """n offsets from 0 to `room`, evenly spaced; a single one in the middle."""
    if n == 1:
        return [room // 2]
    return [int(v) for v in np.linspace(0, room, n).round()]


def grid_shape(crops: int, width: int, height: int) -> tuple[int, int]:
    """(rows, cols) with rows * cols == crops whose shape is closest to the image's."""
    pairs = [(r, crops // r) for r in range(1, crops + 1) if crops % r == 0]
    aspect = width / max(height, 1)
    return min(pairs, key=lambda rc: abs(np.log((rc[1] / rc[0]) / aspect)))


def native_sides(sizes: np.ndarray, input_size: int) -> torch.Tensor:
    """Per image (width, height) -> its shorter side where `native_view` enlarges it to
    `input_size`, else 0 (for `RobustAugment`'s native-resolution degradations)."""
    import torch

    shorter = np.asarray(sizes, dtype=np.int64).reshape(-1, 2).min(axis=1)
    return torch.from_numpy(np.where(shorter < input_size, shorter, 0))


def pick_crops(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, K, 3, S, S) -> (B, 3, S, S): one random crop per image (training on native-
    resolution crops sees a different part of each image every epoch)."""
    if batch.ndim != 5:
        return batch
    import torch

    index = torch.randint(0, batch.shape[1], (batch.shape[0],), generator=generator)
    return batch[torch.arange(batch.shape[0]), index]


@dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentations of a uint8 batch: optional degradations, flip, translate."""

    hflip: bool = True
    pad_crop: int = 0
    degrade: RobustAugment | None = None

    def __call__(
        self,
        batch: torch.Tensor,
        generator: torch.Generator,
        native_sides: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`native_sides`: see `RobustAugment` (degradations at each image's own resolution)."""
        import torch

        if self.degrade is not None and self.degrade.active:
            batch = self.degrade(batch, generator, native_sides)
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
    import torch

    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch.float(), (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.empty_like(batch)
    for i, (dy, dx) in enumerate(offsets.tolist()):
        out[i] = padded[i, :, dy : dy + h, dx : dx + w].to(batch.dtype)
    return out
