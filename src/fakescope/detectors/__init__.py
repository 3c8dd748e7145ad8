"""Detector kinds behind one interface: :class:`Detector` and :func:`load_detector`.

    from fakescope.detectors import load_detector
    detector = load_detector("default")           # a shipped name, a bundle folder or .onnx
    detector.predict(["photo.jpg", "folder/"])    # verdicts
    detector.capabilities.can_explain             # ask, don't probe

One module per kind, each registered with :func:`register_kind`: ``pytorch`` (one model),
``onnx`` (onnxruntime), ``ensemble`` (a bundle of bundles), ``face_aware`` (a whole-image
detector with a face specialist's second look at close-up faces) and ``zero_shot`` (a model of
real photos and its coding-gap statistic; its own package, `fakescope.zero_shot`). A new kind
is a new module here (or a package of its own), imported below.
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
from fakescope.zero_shot.detector import ZeroShotDetector, ZeroShotOnnxDetector

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
    "ZeroShotDetector",
    "ZeroShotOnnxDetector",
    "load_detector",
    "register_kind",
]
