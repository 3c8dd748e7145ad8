"""Container formats from magic bytes: which reader applies is decided by what a file is,
not by its name (uploads and archive members are often misnamed)."""

from __future__ import annotations

import zlib

# Importing the decoder registers the HEIC/HEIF opener with Pillow, so that every reader of
# provenance that opens a file through Pillow (EXIF, pixels) reads iPhone photos too.
import fakescope.data.decode  # noqa: F401

MAX_TEXT = 1024 * 1024  # bytes of one decompressed text chunk we are willing to read
_MAX_CHUNKS = 4096

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)

# Formats in which the pixels reach us exactly as the generator wrote them, so that a
# fragile watermark can survive; JPEG and lossy WebP destroy it.
LOSSLESS_MIMES = frozenset({"image/png", "image/tiff", "image/bmp", "image/webp;lossless"})


def sniff_mime(data: bytes) -> str | None:
    """The MIME type of an image from its first bytes; ``None`` when unknown.

    WebP is reported as ``image/webp`` (lossy or with alpha) or ``image/webp;lossless``
    (a VP8L bitstream); use `c2pa_mime` for the plain type.
    """
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp;lossless" if _webp_is_lossless(data) else "image/webp"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis") or (brand in (b"mif1", b"msf1") and _compatible_avif(data)):
            return "image/avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "image/heic"
    return None


def _compatible_avif(data: bytes) -> bool:
    """Whether an ISO base media file with a generic major brand (mif1) lists AVIF among
    its compatible brands (after the major brand and the minor version)."""
    size = int.from_bytes(data[:4], "big")
    compatible = data[16 : min(size, 256)]
    return any(compatible[i : i + 4] in (b"avif", b"avis") for i in range(0, len(compatible), 4))


def c2pa_mime(mime: str | None) -> str | None:
    """The MIME type as c2pa-python expects it (no lossless marker)."""
    return mime.split(";", 1)[0] if mime else None


def _webp_is_lossless(data: bytes) -> bool:
    # Simple format: first chunk VP8L. Extended format (VP8X): look for a VP8L chunk
    # among the first chunks rather than parsing all of them.
    chunk = data[12:16]
    if chunk == b"VP8L":
        return True
    return chunk == b"VP8X" and b"VP8L" in data[:4096] and b"VP8 " not in data[:4096]


def png_text_chunks(data: bytes) -> dict[str, str]:
    """Keyword -> text of every tEXt, zTXt and iTXt chunk of a PNG; never raises.

    Read from the raw chunks rather than through Pillow because Pillow only sees chunks
    before the image data until the whole image is decoded, and some tools write theirs
    after it.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return {}
    chunks: dict[str, str] = {}
    pos = 8
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(data):
            break
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        try:
            parsed = _text_chunk(kind, body)
        except (ValueError, zlib.error, UnicodeDecodeError):
            continue
        if parsed is not None:
            chunks.setdefault(parsed[0], parsed[1])
    return chunks


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj()
    return inflater.decompress(raw, MAX_TEXT)


def _text_chunk(kind: bytes, body: bytes) -> tuple[str, str] | None:
    if kind == b"tEXt":
        key, _, text = body.partition(b"\x00")
        return key.decode("latin-1"), text.decode("latin-1")
    if kind == b"zTXt":
        key, _, rest = body.partition(b"\x00")
        return key.decode("latin-1"), _inflate(rest[1:]).decode("latin-1")
    if kind == b"iTXt":
        key, _, rest = body.partition(b"\x00")
        compressed, rest = rest[:1] == b"\x01", rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _translated, _, text = rest.partition(b"\x00")
        raw = _inflate(text) if compressed else text
        return key.decode("latin-1"), raw.decode("utf-8", errors="replace")
    return None
