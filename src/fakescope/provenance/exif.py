"""Camera and editing metadata (EXIF): the make, model, lens, exposure, capture date, GPS
and software a file says it came from, and where that contradicts itself or the file.

It is the first thing a person checks, and weak evidence: anyone can write EXIF (one
command copies a whole camera's set onto any image), and most AI images and most re-shared
photos carry none. So `capture_metadata` is shown and never counted: its weight in the
verdict is nil (`combine.py`), and a camera's EXIF can never move a verdict towards "real".

Metadata that contradicts itself or the file is worth more, and is reported as its own
evidence, `inconsistent_metadata` (a small weight towards "fake"). Only clear cases:

- a camera make or model together with a ``Software`` tag naming a known AI generator;
- a capture date more than a day after the file's C2PA claim was made (after allowing for
  an unknown time zone): a photograph cannot be taken after its manifest was signed;
- a camera's full EXIF (make, model, capture date, exposure) on an image of exactly a
  generator's output size (squares of 512 to 2048 pixels, SDXL's buckets, DALL-E 3's
  1792x1024) that no camera writes, unless an editor named in ``Software`` explains a crop
  or the EXIF's own pixel dimensions say the camera wrote another size.
"""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fakescope.provenance.content_credentials import parse_timestamp
from fakescope.provenance.evidence import (
    C2PA,
    CAPTURE_METADATA,
    EXIF,
    INCONSISTENT_METADATA,
    Evidence,
)
from fakescope.provenance.xmp import known_generator

# IFD0, Exif IFD and GPS IFD tags (EXIF 2.32).
_MAKE, _MODEL, _SOFTWARE = 0x010F, 0x0110, 0x0131
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_EXPOSURE_TIME, _F_NUMBER, _ISO = 0x829A, 0x829D, 0x8827
_DATE_ORIGINAL, _OFFSET_ORIGINAL = 0x9003, 0x9011
_FOCAL_LENGTH, _LENS_MAKE, _LENS_MODEL = 0x920A, 0xA433, 0xA434
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_MAX_TEXT = 64  # characters kept of one EXIF string

# Output sizes of generators that no camera writes: squares (SD 1.x 512, SD 2.x 768,
# SDXL/DALL-E/Midjourney 1024, upscalers 2048), SDXL's training buckets, DALL-E 3's wide
# and tall sizes. 3:2 and 4:3 sizes are left out: a photo downscaled keeps those ratios.
_SQUARES = (512, 768, 1024, 2048)
_GENERATOR_SIZES = frozenset(
    {(s, s) for s in _SQUARES}
    | {
        size
        for w, h in ((1152, 896), (1216, 832), (1344, 768), (1536, 640), (1792, 1024))
        for size in ((w, h), (h, w))
    }
)
# Editors that crop and resize while keeping the camera's EXIF: their name in Software
# explains an odd size.
_EDITORS = re.compile(
    r"\b(?:photoshop|lightroom|gimp|snapseed|affinity|pixelmator|capture one|darktable|"
    r"rawtherapee|paint\.net|picasa|acd ?systems|photoscape|luminar|canva|windows photo|"
    r"photos|preview|shotwell|digikam|irfanview|xnview|faststone|dxo|on1|corel)\b",
    re.IGNORECASE,
)
# A camera's clock is often hours off (time zones, daylight saving): one day of slack.
_CLOCK_SLACK = datetime.timedelta(days=1)
_MAX_UTC_OFFSET = datetime.timedelta(hours=14)
_WEIGHT_NOTE = "not counted in the verdict: anyone can write EXIF, and most photos carry none"


@dataclass(frozen=True)
class CaptureMetadata:
    """The camera fields of one file's EXIF (None where absent or unreadable).

    Attributes:
        captured_at: DateTimeOriginal as ISO 8601 (local time; with its offset when
            OffsetTimeOriginal is given).
        gps: a GPS IFD with a position is present (the position itself is not kept).
        width, height: the image's actual size in pixels.
        exif_width, exif_height: the size the EXIF says (PixelX/YDimension).
    """

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length_mm: float | None = None
    captured_at: str | None = None
    gps: bool = False
    software: str | None = None
    width: int | None = None
    height: int | None = None
    exif_width: int | None = None
    exif_height: int | None = None

    @property
    def camera(self) -> str | None:
        """Make and model in a few words: 'Apple iPhone 5', 'Canon EOS 10D'."""
        make, model = self.make, self.model
        if make and model:
            return model if model.lower().startswith(make.split()[0].lower()) else f"{make} {model}"
        return model or make

    @property
    def exposure_fields(self) -> int:
        """How many of exposure time, f-number, ISO and focal length are present."""
        fields = (self.exposure_time, self.f_number, self.iso, self.focal_length_mm)
        return sum(value is not None for value in fields)

    @property
    def has_capture_fields(self) -> bool:
        """Anything a camera writes; a Software tag alone is what every editor writes."""
        return bool(self.make or self.model or self.lens or self.captured_at or self.gps) or bool(
            self.exposure_fields
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_capture(data: bytes) -> CaptureMetadata | None:
    """The camera fields of a file's EXIF, or None when it has none (or no EXIF at all).

    A format Pillow cannot open (HEIC without its plugin registered) is None; anything
    else Pillow's parser raises on garbage is raised: `read.py` runs it guarded.
    """
    from PIL import Image, UnidentifiedImageError  # heavy: Pillow, only when EXIF is read

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return None
    with img:
        exif = img.getexif()
        width, height = img.size
    if not exif:
        return None
    sub = exif.get_ifd(_EXIF_IFD)
    gps = exif.get_ifd(_GPS_IFD)
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    lens = _text(sub.get(_LENS_MODEL))
    lens_make = _text(sub.get(_LENS_MAKE))
    if lens and lens_make and not lens.lower().startswith(lens_make.lower()):
        lens = f"{lens_make} {lens}"
    meta = CaptureMetadata(
        make=make,
        model=model,
        lens=lens,
        exposure_time=_number(sub.get(_EXPOSURE_TIME)),
        f_number=_number(sub.get(_F_NUMBER)),
        iso=_integer(sub.get(_ISO)),
        focal_length_mm=_number(sub.get(_FOCAL_LENGTH)),
        captured_at=_capture_time(sub.get(_DATE_ORIGINAL), sub.get(_OFFSET_ORIGINAL)),
        gps=any(tag in gps for tag in (2, 4)),  # GPSLatitude, GPSLongitude
        software=_text(exif.get(_SOFTWARE)),
        width=width,
        height=height,
        exif_width=_integer(sub.get(_PIXEL_X)),
        exif_height=_integer(sub.get(_PIXEL_Y)),
    )
    return meta if meta.has_capture_fields else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    return text[:_MAX_TEXT] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple):  # some writers store one value as a 1-tuple
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 and number == number and number != float("inf") else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _capture_time(value: Any, offset: Any) -> str | None:
    text = _text(value)
    if not text:
        return None
    try:
        taken = datetime.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders
    offset_text = _text(offset)
    if offset_text and re.fullmatch(r"[+-]\d\d:\d\d", offset_text):
        return taken.isoformat() + offset_text
    return taken.isoformat()


def capture_evidence(meta: CaptureMetadata) -> Evidence:
    """The camera metadata as one piece of evidence, weighing nothing."""
    parts: list[str] = []
    if meta.camera:
        parts.append(meta.camera)
    if meta.lens:
        parts.append(f"lens {meta.lens}")
    exposure = _exposure_text(meta)
    if exposure:
        parts.append(exposure)
    if meta.captured_at:
        parts.append(f"taken {meta.captured_at.replace('T', ' ')}")
    parts.append("GPS position present" if meta.gps else "no GPS position")
    if meta.software:
        parts.append(f"software {meta.software}")
    return Evidence(
        EXIF,
        CAPTURE_METADATA,
        meta.camera,
        None,
        f"EXIF camera metadata: {'; '.join(parts)}. Weak evidence, {_WEIGHT_NOTE}.",
        raw={**meta.to_dict(), "weight": 0.0},
    )


def _exposure_text(meta: CaptureMetadata) -> str:
    parts: list[str] = []
    if meta.exposure_time is not None:
        t = meta.exposure_time
        parts.append(f"1/{round(1 / t)} s" if t < 0.5 else f"{t:g} s")
    if meta.f_number is not None:
        parts.append(f"f/{meta.f_number:.1f}")
    if meta.iso is not None:
        parts.append(f"ISO {meta.iso}")
    if meta.focal_length_mm is not None:
        parts.append(f"{meta.focal_length_mm:.3g} mm")
    return ", ".join(parts)


def inconsistencies(meta: CaptureMetadata, found: Sequence[Evidence]) -> list[Evidence]:
    """Where the camera metadata contradicts itself or the rest of the file's evidence."""
    out: list[Evidence] = []
    camera = meta.camera
    generator = known_generator(meta.software) if meta.software else None
    if camera and generator:
        out.append(
            _inconsistent(
                "generator_software",
                camera,
                f"EXIF names a camera ({camera}) and a generator in Software "
                f"({meta.software}): the camera fields were copied or forged",
                generator=generator,
            )
        )
    late = _capture_after_claim(meta, found)
    if late is not None:
        out.append(late)
    if camera and _generator_size(meta):
        out.append(
            _inconsistent(
                "generator_size",
                camera,
                f"a camera's full EXIF ({camera}) on an image of exactly {meta.width}x"
                f"{meta.height}, a generator's output size that no camera writes",
                size=[meta.width, meta.height],
            )
        )
    return out


def _inconsistent(check: str, by: str | None, text: str, **raw: Any) -> Evidence:
    return Evidence(
        EXIF,
        INCONSISTENT_METADATA,
        by,
        None,
        f"Inconsistent metadata: {text}. Counts a little towards fake.",
        raw={"check": check, **raw},
    )


def _capture_after_claim(meta: CaptureMetadata, found: Sequence[Evidence]) -> Evidence | None:
    if not meta.captured_at:
        return None
    taken = datetime.datetime.fromisoformat(meta.captured_at)
    claims = [
        (when, e.raw["claim_time"])
        for e in found
        if e.signal == C2PA and (when := parse_timestamp(e.raw.get("claim_time"))) is not None
    ]
    if not claims:
        return None
    claimed, claim_text = min(claims)
    if taken.tzinfo is None:  # local time, zone unknown: the earliest instant it can be
        earliest = taken.replace(tzinfo=datetime.timezone.utc) - _MAX_UTC_OFFSET
    else:
        earliest = taken
    if earliest <= claimed + _CLOCK_SLACK:
        return None
    days = (earliest - claimed).total_seconds() / 86400
    return _inconsistent(
        "capture_after_c2pa",
        meta.camera,
        f"EXIF says the photo was taken {meta.captured_at.replace('T', ' ')}, at least "
        f"{days:.1f} days after its C2PA claim was made ({claim_text}): a photograph cannot "
        "be taken after its manifest was signed",
        captured_at=meta.captured_at,
        claim_time=claim_text,
    )


def _generator_size(meta: CaptureMetadata) -> bool:
    """A camera's full EXIF on a generator's exact output size, with nothing to explain it."""
    full = bool(meta.make and meta.model and meta.captured_at) and meta.exposure_fields >= 2
    if not full or (meta.width, meta.height) not in _GENERATOR_SIZES:
        return False
    if meta.software and _EDITORS.search(meta.software):
        return False  # an editor that keeps EXIF may have cropped and resized it
    exif_size = (meta.exif_width, meta.exif_height)
    # The camera said it wrote another size: a crop kept the EXIF. Absent, or the same
    # size as the image: the EXIF claims the camera wrote a generator's size.
    return None in exif_size or exif_size in ((meta.width, meta.height), (meta.height, meta.width))


def read_camera(data: bytes, found: Sequence[Evidence]) -> list[Evidence]:
    """The file's camera metadata and its inconsistencies with ``found`` (the evidence of
    the other readers); empty when its EXIF has no camera fields."""
    meta = read_capture(data)
    if meta is None:
        return []
    return [capture_evidence(meta), *inconsistencies(meta, found)]
