"""Exceptions with messages a user can act on."""

from __future__ import annotations


class FakescopeError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ImageError(FakescopeError):
    """An image could not be read. Carries the path and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class SourceError(FakescopeError):
    """A data source (folder, archive, CSV) is missing or has the wrong layout."""


class ConfigError(FakescopeError):
    """A training recipe or an option is invalid; raised before any work starts."""


class BundleError(FakescopeError):
    """A detector bundle is missing, tampered with or incompatible."""


class ExportError(FakescopeError):
    """A detector could not be exported (e.g. to ONNX), or the export failed its parity check."""


class VideoError(FakescopeError):
    """A video file could not be opened or decoded. Carries the path and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class DistributedError(FakescopeError):
    """A multi-process run cannot start or one of its processes stopped it."""


class ScoringError(FakescopeError):
    """Batch scoring cannot start (no inputs, no Ray cluster, unwritable output)."""
