"""One entry point: every provenance signal of one file, offline, never raising.

Order of work is chosen for cost: byte scans first (C2PA pre-check, XMP, PNG chunks,
EXIF headers, then the camera EXIF, checked against what the others found), then, only for
lossless files big enough to carry one, a single decode of the pixels shared by the
stealth-metadata and watermark readers.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fakescope.data.sources import collect_inputs, read_item_bytes
from fakescope.errors import ImageError
from fakescope.provenance.content_credentials import read_c2pa
from fakescope.provenance.evidence import Evidence, ProvenanceReport
from fakescope.provenance.exif import read_camera
from fakescope.provenance.formats import LOSSLESS_MIMES, png_text_chunks, sniff_mime
from fakescope.provenance.metadata import from_exif, from_png_text, read_stealth
from fakescope.provenance.watermark import MIN_SIDE_PIXELS, read_watermark
from fakescope.provenance.xmp import read_xmp

# Decoding more pixels than this for the watermark would break the cost budget and risk
# decompression bombs; larger lossless files are still read for everything else.
MAX_DECODE_PIXELS = 40_000_000
_T = TypeVar("_T")


def load_trust_anchors(paths: list[str | Path] | tuple[str | Path, ...]) -> str | None:
    """Concatenate user PEM files into one anchor bundle for `read_provenance`.

    Raises:
        OSError: a file cannot be read.
        ValueError: a file holds no PEM certificate.
    """
    texts: list[str] = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(f"{path}: no PEM certificate found")
        texts.append(text)
    return "\n".join(texts) if texts else None


def read_provenance(
    data: bytes,
    name: str = "",
    *,
    trust_anchors: str | None = None,
    watermark: bool = True,
) -> list[Evidence]:
    """Every piece of provenance evidence in one file's bytes; never raises.

    Args:
        data: the file's bytes (as read from disk, an archive or an upload).
        name: the file's name, for messages only: formats are sniffed from the bytes.
        trust_anchors: extra PEM trust anchors (see `load_trust_anchors`), trusted besides
            the official C2PA trust lists shipped with fakescope.
        watermark: look for the Stable Diffusion watermark (lossless files only).
    """
    return list(
        read_provenance_report(
            data, name, trust_anchors=trust_anchors, watermark=watermark
        ).evidence
    )


def read_provenance_report(
    data: bytes,
    name: str = "",
    *,
    trust_anchors: str | None = None,
    watermark: bool = True,
) -> ProvenanceReport:
    """Like `read_provenance`, plus notes on parts that were present but unreadable."""
    evidence: list[Evidence] = []
    notes: list[str] = []
    if not isinstance(data, bytes | bytearray | memoryview):
        return ProvenanceReport((), (f"{name or 'input'}: not bytes",))
    data = bytes(data)
    mime = sniff_mime(data)

    c2pa_result, c2pa_notes = _guard("C2PA", lambda: read_c2pa(data, trust_anchors=trust_anchors))
    if c2pa_result is not None:
        evidence += c2pa_result[0]
        notes += c2pa_result[1]
    notes += c2pa_notes
    for label, reader in (
        ("XMP", lambda: read_xmp(data)),
        ("PNG text", lambda: from_png_text(png_text_chunks(data))),
        ("EXIF", lambda: from_exif(data) if _may_carry_exif(data, mime) else []),
    ):
        found_items, reader_notes = _guard(label, reader)
        evidence += found_items or []
        notes += reader_notes
    if _may_carry_exif(data, mime):
        found_so_far = list(evidence)
        camera, camera_notes = _guard("EXIF camera", lambda: read_camera(data, found_so_far))
        evidence += camera or []
        notes += camera_notes
    if mime in LOSSLESS_MIMES:
        pixels, decode_note = _decode(data)
        if decode_note:
            notes.append(decode_note)
        if pixels is not None:
            stealth, stealth_notes = _guard("stealth metadata", lambda: read_stealth(pixels))
            evidence += stealth or []
            notes += stealth_notes
            if watermark and pixels.shape[0] * pixels.shape[1] >= MIN_SIDE_PIXELS:
                rgb = pixels[:, :, :3]
                marks, mark_notes = _guard("watermark", lambda: read_watermark(rgb))
                evidence += marks or []
                notes += mark_notes
    return ProvenanceReport(tuple(_unique(evidence)), tuple(notes))


_EXIF_MIMES = frozenset(
    {"image/jpeg", "image/webp", "image/webp;lossless", "image/tiff", "image/heic", "image/avif"}
)


def _may_carry_exif(data: bytes, mime: str | None) -> bool:
    # Pillow decodes a whole PNG to look for an eXIf chunk: only ask when there is one.
    return mime in _EXIF_MIMES or (mime == "image/png" and b"eXIf" in data)


def _guard(label: str, reader: Callable[[], _T]) -> tuple[_T | None, list[str]]:
    """Run one reader; a failure is a note, never an exception: malformed provenance is
    evidence of nothing."""
    try:
        return reader(), []
    except MemoryError:
        return None, [f"{label}: too large to read"]
    except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on garbage
        return None, [f"{label}: unreadable ({type(exc).__name__}: {exc})"]


def _decode(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """RGB or RGBA uint8 pixels of a lossless file, or why not."""
    from PIL import Image  # heavy: Pillow, only for the pixels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_DECODE_PIXELS:
                    return None, f"pixels: {width}x{height} too large for the watermark check"
                has_alpha = img.mode in ("RGBA", "LA", "PA") or (
                    img.mode == "P" and "transparency" in img.info
                )
                img.load()
                converted = img.convert("RGBA" if has_alpha else "RGB")
                return np.asarray(converted), None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on corrupt files
        return None, f"pixels: cannot decode ({type(exc).__name__}: {exc})"


def _unique(evidence: list[Evidence]) -> list[Evidence]:
    seen: set[tuple[str, str, str | None, str]] = set()
    out: list[Evidence] = []
    for item in evidence:
        key = (item.signal, item.claim, item.by, item.detail)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@dataclass(frozen=True)
class FileProvenance:
    """The provenance of one input file, or why it could not be read."""

    path: str
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "evidence": [e.to_dict() for e in self.evidence],
            "notes": list(self.notes),
            "error": self.error,
        }


def read_paths(
    paths: list[str], *, trust_anchors: str | None = None, watermark: bool = True
) -> list[FileProvenance]:
    """Provenance of files, folders (recursive), archives and CSV manifests, in input
    order; a missing or unreadable file gets an ``error``, never an exception."""
    items, problems = collect_inputs(paths)
    results = [FileProvenance(path, error=reason) for path, reason in problems]
    for item in items:
        try:
            data = read_item_bytes(item)
        except ImageError as exc:
            results.append(FileProvenance(item, error=exc.reason))
            continue
        if not data:
            results.append(FileProvenance(item, error="empty file"))
            continue
        report = read_provenance_report(
            data, item, trust_anchors=trust_anchors, watermark=watermark
        )
        error = None
        if sniff_mime(data) is None and not report.evidence:
            error = "not an image (unknown format)"
        results.append(FileProvenance(item, report.evidence, report.notes, error))
    return results
