"""What a server accepts and how it batches: limits, batching, auth and CORS options."""

from __future__ import annotations

from dataclasses import dataclass, fields

from fakescope.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """Options of :func:`fakescope.serve.create_app`; the CLI maps its flags onto these.

    ``max_batch`` 1 disables micro-batching: each image then runs through the model alone.
    """

    max_file_bytes: int = 10 * MIB
    """Largest accepted image file."""
    max_request_bytes: int = 50 * MIB
    """Largest accepted request body (all files together, multipart overhead included)."""
    max_files: int = 16
    """Most images in one /v1/predict request."""
    max_pixels: int = 25_000_000
    """Images with more pixels are refused before their pixels are decoded."""
    max_batch: int = 32
    """Most images the model scores in one forward pass."""
    max_wait_ms: float = 2.0
    """How long the first image of a batch waits for images that other requests have announced
    (they are still being decoded) to join it; with none on their way it is scored at once."""
    queue_size: int = 256
    """Images waiting for the model beyond this are refused with 503 (server overloaded)."""
    decode_workers: int = 4
    """Uploads decoded at the same time (bounds memory: each may be up to max_pixels)."""
    api_key: str | None = None
    """When set, /v1/* requires it in the X-API-Key header (or Authorization: Bearer)."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty = CORS off."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"serve option {f.name} must not be negative, got {value}")
        for name in ("max_file_bytes", "max_request_bytes", "max_files", "max_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve option {name} must be at least 1")
        for name in ("max_batch", "queue_size", "decode_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve option {name} must be at least 1")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty: pass a non-empty --api-key or unset it")


def check_port(port: int) -> int:
    """`port` if a TCP port can be it; else a ConfigError at once, before the bundle loads
    (uvicorn itself would print "running on :99999" and fail only when binding)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port must be a whole number from 1 to 65535, got {port!r}")
    return port
