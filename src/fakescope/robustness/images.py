"""The images a robustness sweep measures: a stratified subsample of a split, decoded in
chunks at full resolution (or their largest face), corrupted at their own resolution, then
preprocessed and scored by a detector."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from fakescope.data.corruptions import apply_corruption
from fakescope.data.decode import load_image
from fakescope.data.multi_source import stratified_subsample
from fakescope.data.sources import Item, Source
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector
from fakescope.errors import ImageError
from fakescope.evaluation.evaluate import select_items
from fakescope.faces import FaceCropPolicy, FaceSelector

CHUNK = 256  # images decoded (at full resolution) and corrupted at a time


def select_subsample(
    source: Source, split: str | None, max_images: int | None, seed: int
) -> list[Item]:
    """Labelled items of `split`, stratified-subsampled to `max_images` under `seed`."""
    return stratified_subsample(select_items(source, split), max_images, seed)


def decode_chunk(
    source: Source, items: Sequence[Item], faces: FaceCropPolicy | None = None
) -> list[np.ndarray | str]:
    """Each item as an (H, W, 3) uint8 array at its own resolution, or the reason it failed.

    `faces`: each image's largest face cropped by that policy (found on the clean image, in
    one search per chunk; the whole image when it has none), so the corruptions hit the face
    crop at its own resolution, as they would hit a face in a degraded frame."""
    out: list[np.ndarray | str] = []
    images: list[Image.Image] = []
    for item in items:
        try:
            img = load_image(source.read_bytes(item), item.path).convert("RGB")
            out.append(np.asarray(img, dtype=np.uint8))
            images.append(img)
        except ImageError as exc:
            out.append(exc.reason)
        except OSError as exc:
            out.append(f"cannot read: {exc}")
    if faces is None:
        return out
    crops = iter(FaceSelector(faces).largest(images))
    return [a if isinstance(a, str) else np.asarray(next(crops).image, np.uint8) for a in out]


def corrupt_images(
    images: Sequence[np.ndarray], name: str, severity: float, *, seed: int
) -> list[np.ndarray]:
    """Corrupt (H, W, 3) uint8 images at their own resolution; same-sized ones as a batch."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, img in enumerate(images):
        by_size.setdefault(img.shape[:2], []).append(index)
    out: list[np.ndarray] = [images[0]] * len(images)
    for group, indices in enumerate(by_size.values()):
        batch = torch.from_numpy(np.stack([images[i] for i in indices])).permute(0, 3, 1, 2)
        corrupted = apply_corruption(batch.contiguous(), name, severity, seed=seed * 1009 + group)
        for i, arr in zip(indices, corrupted.permute(0, 2, 3, 1).numpy(), strict=True):
            out[i] = arr
    return out


def preprocess_images(pre: Preprocessing, images: Sequence[np.ndarray]) -> torch.Tensor:
    return pre.batch_from_images([Image.fromarray(img) for img in images])


def detector_probabilities(detector: Detector, batch: torch.Tensor, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [
            detector.probabilities(batch[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ]
    )


def in_chunks(seq: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
