"""What the server asks of a detector: the pixel scores of a batch of prepared inputs, and a
Grad-CAM picture."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from fakescope.detectors.base import PixelScores
from fakescope.threads import torch_loaded

if TYPE_CHECKING:
    from fakescope.detectors import Detector

OVERLAY_MIN_SIZE = 256


@dataclass(frozen=True)
class ImageScore:
    """One image's share of a batch's :class:`~fakescope.detectors.PixelScores`."""

    p_fake: float
    domain_score: float | None = None
    max_crop_p_fake: float | None = None
    face_box: dict[str, int] | None = None  # a face-aware detector: the face averaged in


def score_batch(detector: Detector, arrays: Sequence[np.ndarray]) -> PixelScores:
    """What the pixels say about prepared inputs ((3, S, S) or (K, 3, S, S) crops each, as
    `Detector.prepare` makes them), in one forward pass: `Detector.score_prepared`."""
    with _inference_mode():
        return detector.score_prepared(arrays, batch_size=max(1, len(arrays)))


def _inference_mode() -> AbstractContextManager[object]:
    """PyTorch's inference mode where PyTorch is loaded (a detector on it loads it); nothing
    to switch off on onnxruntime, which scores without it (and so never imports it)."""
    if not torch_loaded():
        return contextlib.nullcontext()
    import torch

    return torch.inference_mode()


def per_image(scores: PixelScores) -> list[ImageScore]:
    """A batch's scores split per image, in order."""

    def at(values: np.ndarray | None, i: int) -> float | None:
        return None if values is None else float(values[i])

    boxes = scores.face_boxes or [None] * len(scores.p_fake)
    return [
        ImageScore(float(p), at(scores.domain_score, i), at(scores.max_crop_p_fake, i), boxes[i])
        for i, p in enumerate(scores.p_fake)
    ]


def joined(scores: Sequence[ImageScore]) -> PixelScores:
    """Per-image scores (from the micro-batcher, whatever batches they came in) as one
    :class:`~fakescope.detectors.PixelScores`, in order, for the verdict pipeline."""

    def column(values: list[float | None]) -> np.ndarray | None:
        return None if any(v is None for v in values) else np.array(values, dtype=np.float64)

    boxes = [s.face_box for s in scores]
    return PixelScores(
        np.array([s.p_fake for s in scores], dtype=np.float64),
        column([s.domain_score for s in scores]),
        column([s.max_crop_p_fake for s in scores]),
        boxes if any(b is not None for b in boxes) else None,
    )


def explain_png(detector: Detector, image: Image.Image) -> tuple[bytes, float]:
    """The Grad-CAM overlay on the image as the model saw it (PNG), and the detector's
    p(fake) (a face-aware detector's map is its whole-image member's)."""
    from fakescope.evaluation.explain import gradcam, overlay  # heavy: torch

    view = detector.explained_by.preprocessing.resize_image(image)
    (cam,) = gradcam(detector.explained_by, [image])
    p_fake = float(detector.predict_images([image])[0])
    buffer = io.BytesIO()
    overlay(view, cam, min_size=OVERLAY_MIN_SIZE).save(buffer, format="PNG")
    return buffer.getvalue(), p_fake
