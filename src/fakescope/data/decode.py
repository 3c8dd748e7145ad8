"""Decode untrusted image bytes into RGB PIL images, or read just their header.

Every failure becomes an :class:`~fakescope.errors.ImageError` whose reason a user can act
on, so callers (training, audit, prediction) can report bad files instead of crashing.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError, features

from fakescope.errors import ImageError

# HEIC/HEIF (iPhone photos) through pillow-heif; AVIF through Pillow's own plugin (built
# into Pillow's wheels since 11.3). Registered once, here, for every reader of images.
pillow_heif.register_heif_opener()

MAX_PIXELS = 300_000_000
"""Images with more pixels are refused before decoding: beyond any camera (the largest
phone sensors are 200 MP), so only a decompression bomb or a stitched giant gets there."""
MAX_RATIO = 2_000
"""Decoded RGB bytes per file byte above which an image over :data:`RATIO_FREE_PIXELS` is
refused as a decompression bomb. Measured by ``bench/decode_ratio.py``: photos stay under
110 (the shared data sets) and 70 (a 67 MP JPEG at quality 50); flat poster art and sparse
line art at 67 MP reach 440 (PNG) and 490 (1-bit TIFF, CCITT G4); a one-colour 1-bit PNG
reaches 11,000. An RGB PNG cannot exceed ~1,030 (deflate's limit), so such bombs are bounded by
:data:`MAX_PIXELS` instead."""
RATIO_FREE_PIXELS = 25_000_000
"""Images up to this many pixels (75 MB decoded) are decoded whatever their compression
ratio: they are cheap, and small flat images (a white PNG) compress without bound."""

# Pillow's own guard warns above MAX_IMAGE_PIXELS (made an error here) and raises above
# twice that, when a file is opened. Its 89 MP default would refuse large pictures our rule
# reads, and ours, which names the file size too, is checked right after opening: Pillow's
# is set just above it, a backstop for explicit `max_pixels` above MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = 2 * MAX_PIXELS

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
    | {".heic", ".heif", ".hif", ".avif"}
)
VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv"})

# PIL format names we accept. MPO is what PIL calls JPEGs from cameras that embed a
# second (preview / stereo) picture; the first frame is an ordinary JPEG. HEIF is
# pillow-heif's name for HEIC/HEIF files.
_ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF", "HEIF", "AVIF"})

_WHITE = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112

# Magic numbers used only to word the error for a file that PIL cannot identify: a JPEG cut
# off inside its header is "corrupt", not "not an image".
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})

# IJG (libjpeg) standard luminance quantization table, natural (row-major) order, which is
# also the order PIL uses for ``Image.quantization``.
_STD_LUMINANCE = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.int64,
)  # fmt: skip


def _ijg_tables() -> np.ndarray:
    """Luminance tables libjpeg writes for quality 1..100 (row q-1), baseline-clamped."""
    quality = np.arange(1, 101, dtype=np.int64)
    scale = np.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    tables = (_STD_LUMINANCE[None, :] * scale[:, None] + 50) // 100
    return np.clip(tables, 1, 255)


_IJG_TABLES = _ijg_tables()


@dataclass(frozen=True)
class ImageInfo:
    """Header facts about an image. Width/height are as displayed (EXIF rotation applied)."""

    width: int
    height: int
    format: str
    mode: str
    jpeg_quality: int | None = None


def estimate_jpeg_quality(quantization: dict[int, list[int]] | None) -> int | None:
    """Estimate the IJG quality (1-100) that produced a JPEG's quantization tables.

    Compares table 0 with the tables libjpeg generates for every quality and returns the
    closest. Encoders with their own tables (Photoshop, phone cameras) get the nearest IJG
    equivalent, which is what matters for spotting a quality bias between classes.
    """
    if not quantization or 0 not in quantization:
        return None
    table = np.asarray(list(quantization[0]), dtype=np.int64)
    if table.shape != (64,):
        return None
    errors = np.abs(_IJG_TABLES - table[None, :]).sum(axis=1)
    # Ties happen at the top end (several qualities give all-ones); argmin of the reversed
    # array picks the highest tied quality, which is what the encoder most likely used.
    best_from_top = int(np.argmin(errors[::-1]))
    return 100 - best_from_top


def _describe_unknown(data: bytes) -> str:
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return f"truncated or corrupt {fmt} header"
    if data[4:8] == b"ftyp":  # ISO base media: HEIC, AVIF (or a video)
        brand = data[8:12]
        if brand in (b"avif", b"avis") and not features.check("avif"):
            return "AVIF is not supported by this Pillow build (install Pillow 11.3 or later)"
        if brand in _HEIF_BRANDS or brand in (b"avif", b"avis"):
            kind = "AVIF" if brand in (b"avif", b"avis") else "HEIC"
            return f"truncated or corrupt {kind} header"
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image: unrecognised file content"
    if text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return "not an image: file contains HTML (a web page saved instead of the image?)"
    return "not an image: file contains text"


def _open_checked(data: bytes, path: str, max_pixels: int | None) -> Image.Image:
    """Open (header only), check format and pixel count. Pixels are not decoded yet."""
    if len(data) == 0:
        raise ImageError(path, "empty file (0 bytes)")
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(path, _describe_unknown(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            path, f"image too large (decompression bomb?): {exc} (file of {len(data):,} bytes)"
        ) from None
    except Exception as exc:  # any parser failure on untrusted bytes means a broken header
        raise ImageError(path, f"truncated or corrupt image header ({exc})") from None
    fmt = img.format or "unknown"
    if fmt not in _ACCEPTED_FORMATS:
        raise ImageError(path, f"unsupported format {fmt}")
    problem = size_problem(*img.size, len(data), max_pixels=limit)
    if problem:
        raise ImageError(path, problem)
    return img


def size_problem(
    width: int, height: int, file_bytes: int, *, max_pixels: int | None = None
) -> str | None:
    """Why an image of this size, stored in this many bytes, is refused before decoding; None
    when it may be decoded.

    Two rules: never more than `max_pixels` (default :data:`MAX_PIXELS`, beyond any camera),
    and above :data:`RATIO_FREE_PIXELS` no more than :data:`MAX_RATIO` decoded RGB bytes per
    byte of file. A bomb is a file whose decoded size is out of proportion to it; a large
    poster, scan or panorama is not, and is read.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    pixels = width * height
    decoded = pixels * 3
    size = f"{width}x{height} = {pixels:,} pixels ({decoded / 1e6:,.0f} MB decoded)"
    if pixels > limit:
        return (
            f"image too large: {size} from a file of {file_bytes:,} bytes exceeds the limit "
            f"of {limit:,} pixels (beyond any camera; possible decompression bomb)"
        )
    ratio = decoded / max(file_bytes, 1)
    if pixels > RATIO_FREE_PIXELS and ratio > MAX_RATIO:
        return (
            f"image too large for its file size: {size} from a file of {file_bytes:,} bytes, "
            f"{ratio:,.0f} decoded bytes per file byte; real images of over "
            f"{RATIO_FREE_PIXELS:,} pixels stay under {MAX_RATIO:,} (possible decompression bomb)"
        )
    return None


class _BombWarningsAsErrors(warnings.catch_warnings):
    """Turn PIL's DecompressionBombWarning into an exception we convert to ImageError.

    Only matters when ``max_pixels`` is above PIL's own limit; our check comes first
    otherwise. Like any ``catch_warnings`` it swaps the process-wide filter list, which is
    harmless here: the only filter it adds makes a bomb an error, which we want anyway.
    """

    def __enter__(self) -> None:  # record=False: nothing to hand back
        super().__enter__()
        warnings.simplefilter("error", Image.DecompressionBombWarning)


def _decode_pixels(img: Image.Image, path: str) -> None:
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # animated GIF/WEBP/TIFF: the first frame stands for the file
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"image too large (decompression bomb?): {exc}") from None
    except Exception as exc:  # truncated streams raise OSError, broken ones anything
        raise ImageError(path, f"truncated or corrupt image data ({exc})") from None


def _over_white(img: Image.Image) -> Image.Image:
    # Transparent areas are usually black in the colour channels; compositing over black
    # would invent dark borders, so use white like browsers and viewers do.
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _to_8bit(array: np.ndarray, scale: float) -> Image.Image:
    scaled = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled).convert("RGB")  # 2-D uint8 is mode L


def _integer_to_rgb(img: Image.Image) -> Image.Image:
    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        return _to_8bit(array, 255.0 / 65535.0)
    # Mode "I" (32-bit) almost always carries 16-bit data (TIFF, older PIL PNG decoding);
    # anything outside that range is stretched to its own min..max instead of clipped.
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if low >= 0 and high <= 65535:
        return _to_8bit(array, 255.0 / 65535.0)
    return _to_8bit(array - low, 255.0 / max(high - low, 1))


def _float_to_rgb(img: Image.Image) -> Image.Image:
    array = np.nan_to_num(np.asarray(img, dtype=np.float64))
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if low >= 0.0 and high <= 1.0:  # the usual convention for float images
        return _to_8bit(array, 255.0)
    if low >= 0.0 and high <= 255.0:
        return _to_8bit(array, 1.0)
    return _to_8bit(array - low, 255.0 / max(high - low, 1e-12))


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        return _over_white(img)
    if mode == "P":
        return _over_white(img) if "transparency" in img.info else img.convert("RGB")
    if mode.startswith("I"):
        return _integer_to_rgb(img)
    if mode == "F":
        return _float_to_rgb(img)
    # L, 1, CMYK (PIL already undoes Adobe's inverted CMYK), YCbCr, LAB, HSV, RGBX.
    return img.convert("RGB")


def _info(img: Image.Image, orientation: int) -> ImageInfo:
    width, height = img.size
    if orientation in (5, 6, 7, 8):  # these orientations rotate by 90 degrees
        width, height = height, width
    fmt = "JPEG" if img.format == "MPO" else str(img.format)
    quality = estimate_jpeg_quality(getattr(img, "quantization", None)) if fmt == "JPEG" else None
    return ImageInfo(width=width, height=height, format=fmt, mode=img.mode, jpeg_quality=quality)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not make a decodable image unusable
        return 1


def _finish(img: Image.Image, orientation: int, path: str) -> Image.Image:
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        # Same reasoning as in _orientation: on a broken EXIF block keep the pixels as stored.
        with contextlib.suppress(Exception):
            img = ImageOps.exif_transpose(img)
    try:
        rgb = _to_rgb(img)
    except Exception as exc:  # conversion of exotic modes; report instead of crashing
        raise ImageError(path, f"cannot convert mode {img.mode} to RGB ({exc})") from None
    return rgb if rgb.mode == "RGB" else rgb.convert("RGB")


def decode_image(
    data: bytes, path: str, *, max_pixels: int | None = None
) -> tuple[Image.Image, ImageInfo]:
    """:func:`load_image` and :func:`probe_image` in one pass (the header is parsed once)."""
    with _BombWarningsAsErrors():
        img = _open_checked(data, path, max_pixels)
        orientation = _orientation(img)
        info = _info(img, orientation)
        _decode_pixels(img, path)
    return _finish(img, orientation, path), info


def load_image(data: bytes, path: str, *, max_pixels: int | None = None) -> Image.Image:
    """Decode image bytes into an RGB image, EXIF rotation applied.

    ``path`` is only used in error messages. Images with more than ``max_pixels`` pixels
    (default :data:`MAX_PIXELS`) are refused before any pixel is decoded.

    Raises:
        ImageError: empty, not an image, unsupported format, too large, truncated/corrupt.
    """
    with _BombWarningsAsErrors():
        img = _open_checked(data, path, max_pixels)
        orientation = _orientation(img)
        _decode_pixels(img, path)
    return _finish(img, orientation, path)


def probe_image(data: bytes, path: str, *, max_pixels: int | None = None) -> ImageInfo:
    """Read an image's header: size as displayed, format, mode and JPEG quality estimate.

    Does not decode pixels, so a truncated file may probe fine and still fail in
    :func:`load_image`. Raises :class:`ImageError` for the same header problems.
    """
    with _BombWarningsAsErrors():
        img = _open_checked(data, path, max_pixels)
    return _info(img, _orientation(img))
