"""What the server asks of a detector: p(fake) for a uint8 batch, and a Grad-CAM picture."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from fakescope.evaluation.explain import gradcam, overlay

if TYPE_CHECKING:
    from fakescope.detectors import Detector

OVERLAY_MIN_SIZE = 256


def score_batch(detector: Detector, batch: np.ndarray) -> np.ndarray:
    """Calibrated p(fake) for a (B, 3, S, S) uint8 array."""
    with torch.inference_mode():
        return np.asarray(detector.probabilities(torch.from_numpy(batch)), dtype=np.float64)


def explain_png(detector: Detector, image: Image.Image) -> tuple[bytes, float]:
    """The Grad-CAM overlay on the image as the model saw it (PNG), and its p(fake)."""
    view = detector.preprocessing.resize_image(image)
    (cam,) = gradcam(detector, [image])
    p_fake = float(detector.predict_images([image])[0])
    buffer = io.BytesIO()
    overlay(view, cam, min_size=OVERLAY_MIN_SIZE).save(buffer, format="PNG")
    return buffer.getvalue(), p_fake
