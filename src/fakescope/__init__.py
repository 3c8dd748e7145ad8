"""fakescope: detect deepfakes and AI-generated images."""

from __future__ import annotations

__version__ = "0.1.0"

LABEL_NAMES: tuple[str, str] = ("real", "fake")
"""Class index 0 is real, 1 is fake, everywhere in fakescope."""


def __getattr__(name: str):  # lazy: importing fakescope must not import torch
    if name in ("Detector", "load_detector"):
        from fakescope import detectors  # heavy: torch; only on first use of these names

        return getattr(detectors, name)
    raise AttributeError(name)
