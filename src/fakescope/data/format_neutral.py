"""Format neutralisation: training images that are not JPEG files are re-encoded as JPEG.

Most AI images in public collections are PNG or WebP files, most photos JPEG: the JPEG
quality of a file alone separates the classes of the modern sources at 0.90 balanced
accuracy (`fakescope data audit`). A detector trained on those files can learn "no JPEG
blocks, so AI". Re-encoding every non-JPEG training image once, at a quality drawn from the
training reals' own JPEG qualities, gives both classes the same compression history, so the
format cannot decide. Validation images stay as they are (they measure the files users have).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence

import numpy as np

from fakescope.data.decode import load_image, probe_image
from fakescope.data.sources import Item
from fakescope.errors import ImageError

ReadBytes = Callable[[Item], bytes]
JPEG_MAGIC = b"\xff\xd8\xff"
FALLBACK_QUALITIES = tuple(range(75, 96))  # when no real training image is a JPEG


def is_jpeg(data: bytes) -> bool:
    return data.startswith(JPEG_MAGIC)


def real_jpeg_qualities(
    items: Sequence[Item], read_bytes: ReadBytes, *, limit: int = 400, seed: int = 0
) -> list[int]:
    """The estimated JPEG qualities of a seeded sample of real (label 0) items that are JPEG
    files, up to `limit` in all and the same number from each source (so one big source's
    encoder does not set everyone's quality); the fallback range 75-95 when there are none."""
    by_source: dict[str, list[Item]] = {}
    for item in items:
        if item.label == 0:
            by_source.setdefault(item.source or "", []).append(item)
    rng = np.random.default_rng(seed)
    per_source = max(1, limit // max(1, len(by_source)))
    found: list[int] = []
    for name in sorted(by_source):
        reals = by_source[name]
        for index in rng.permutation(len(reals))[:per_source]:
            item = reals[int(index)]
            try:
                data = read_bytes(item)
                quality = probe_image(data, item.path).jpeg_quality if is_jpeg(data) else None
            except (ImageError, OSError):
                continue
            if quality is not None:
                found.append(quality)
    return sorted(found) if found else list(FALLBACK_QUALITIES)


class JpegReencoder:
    """A `read_bytes` that returns JPEG files unchanged and re-encodes any other image as a
    JPEG at a quality drawn from `qualities`, the same for a path at every call (seeded by
    the path, so a cache rebuilt later holds the same pixels)."""

    def __init__(self, read_bytes: ReadBytes, qualities: Sequence[int], seed: int = 0) -> None:
        if not qualities or not all(1 <= q <= 100 for q in qualities):
            raise ValueError(f"JPEG qualities must be 1-100, got {list(qualities)[:5]}")
        self.read_bytes = read_bytes
        self.qualities = tuple(int(q) for q in qualities)
        self.seed = seed

    def quality_for(self, path: str) -> int:
        digest = hashlib.sha256(f"{self.seed}|{path}".encode()).digest()
        return self.qualities[int.from_bytes(digest[:8], "little") % len(self.qualities)]

    def __call__(self, item: Item) -> bytes:
        data = self.read_bytes(item)
        if is_jpeg(data):
            return data
        img = load_image(data, item.path)  # RGB, EXIF rotation applied; ImageError if bad
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=self.quality_for(item.path))
        return out.getvalue()

    def describe(self) -> str:
        """For cache fingerprints: what this re-encoding does."""
        digest = hashlib.sha256(repr(self.qualities).encode()).hexdigest()[:12]
        return f"jpeg-reencode|{self.seed}|{digest}"
