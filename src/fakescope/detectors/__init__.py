"""Detectors behind one interface: :class:`Detector` and :func:`load_detector`.

    from fakescope.detectors import load_detector
    detector = load_detector("default")           # a shipped name, a bundle folder or .onnx
    detector.predict(["photo.jpg", "folder/"])    # verdicts
    detector.capabilities.can_explain             # ask, don't probe

Each detector kind is a package under `fakescope.kinds`, registered there, that names the
:class:`Detector` subclass it runs on each runtime; :func:`load_detector` looks the kind of a
bundle up and never names one. A new kind is a new package (docs/EXTENDING.md).

The kinds' detector classes can be imported from here too (``from fakescope.detectors import
TorchDetector``); each is looked up in the registry on first use, so importing this package
loads no kind.
"""

from typing import Any

from fakescope import kind_registry
from fakescope.detectors.base import (
    RUNTIMES,
    Capabilities,
    CapabilityError,
    Detector,
    PixelScores,
    Runtime,
    load_detector,
)

_KIND_CLASSES = (
    "EnsembleDetector",
    "FaceAwareDetector",
    "OnnxDetector",
    "TorchDetector",
    "ZeroShotDetector",
    "ZeroShotOnnxDetector",
)

__all__ = [
    "RUNTIMES",
    "Capabilities",
    "CapabilityError",
    "Detector",
    "PixelScores",
    "Runtime",
    "load_detector",
    *_KIND_CLASSES,
]


def __getattr__(name: str) -> Any:
    """A kind's detector class by its name, from the kinds registered."""
    if name in _KIND_CLASSES:
        for kind_name in kind_registry.names():
            for cls in kind_registry.get(kind_name).detectors.values():
                for klass in cls.__mro__:
                    if klass.__name__ == name:
                        return klass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
