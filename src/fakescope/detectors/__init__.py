"""Detector kinds behind one interface: :class:`Detector` and :func:`load_detector`.

    from fakescope.detectors import load_detector
    detector = load_detector("default")           # a shipped name, a bundle folder or .onnx
    detector.predict(["photo.jpg", "folder/"])    # verdicts
    detector.capabilities.can_explain             # ask, don't probe

One module per kind, each registered with :func:`register_kind`: ``pytorch`` (one model),
``onnx`` (onnxruntime), ``ensemble`` (a bundle of bundles) and ``face_aware`` (a whole-image
detector with a face specialist's second look at close-up faces). A new kind is a new module
here, imported below.
"""

from fakescope.detectors.base import (
    RUNTIMES,
    Capabilities,
    CapabilityError,
    Detector,
    PixelScores,
    Runtime,
    load_detector,
    register_kind,
)
from fakescope.detectors.ensemble import EnsembleDetector
from fakescope.detectors.face_aware import FaceAwareDetector
from fakescope.detectors.onnx import OnnxDetector
from fakescope.detectors.pytorch import TorchDetector

__all__ = [
    "RUNTIMES",
    "Capabilities",
    "CapabilityError",
    "Detector",
    "EnsembleDetector",
    "FaceAwareDetector",
    "OnnxDetector",
    "PixelScores",
    "Runtime",
    "TorchDetector",
    "load_detector",
    "register_kind",
]
