"""How many decoded bytes real images hold per byte of file, to set the decompression-bomb rule.

Prints, for every image of the shared data sets (header only), and for large pictures made
here at 7,714 x 8,699 (the 67-megapixel illustration of issue 30): a photo upscaled (smoother,
so more compressible, than a real photo of that size), flat-colour poster art, sparse line art
in RGB, grayscale and 1-bit, and a crafted bomb (one colour). The ratio is decoded RGB bytes
(width x height x 3) over file bytes, the quantity `fakescope.data.decode` bounds.

    python bench/decode_ratio.py            # a few minutes on 2 cores
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, machine  # noqa: E402

from fakescope.data.decode import MAX_PIXELS, MAX_RATIO, RATIO_FREE_PIXELS  # noqa: E402

SIZE = (7714, 8699)
Image.MAX_IMAGE_PIXELS = None  # this script makes and measures large images on purpose


def _ratio(width: int, height: int, n_bytes: int) -> float:
    return width * height * 3 / max(n_bytes, 1)


def shared_ratios() -> None:
    print("| data set | images | format | median | p99.9 | max |")
    print("|---|---:|---|---:|---:|---:|")
    for archive in sorted(DATA.glob("*.zip")):
        by_format: dict[str, list[float]] = {}
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.file_size == 0:
                    continue
                data = zf.read(info)
                try:
                    with Image.open(io.BytesIO(data)) as img:
                        fmt = str(img.format)
                        ratio = _ratio(*img.size, len(data))
                except Exception:  # noqa: BLE001 - not an image (CSV, text): not measured
                    continue
                by_format.setdefault(fmt, []).append(ratio)
        for fmt, values in sorted(by_format.items()):
            arr = np.asarray(values)
            print(
                f"| {archive.name} | {arr.size} | {fmt} | {np.median(arr):.1f} | "
                f"{np.quantile(arr, 0.999):.1f} | {arr.max():.1f} |"
            )


def _photo() -> Image.Image:
    with zipfile.ZipFile(DATA / "modern_photos.zip") as zf:
        names = [n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png"))]
        best = max(names, key=lambda n: zf.getinfo(n).file_size)  # the most detailed photo
        photo = Image.open(io.BytesIO(zf.read(best))).convert("RGB")
    return photo.resize(SIZE, Image.Resampling.LANCZOS)


def _poster(rng: np.random.Generator) -> Image.Image:
    img = Image.new("RGB", SIZE, (240, 235, 220))
    draw = ImageDraw.Draw(img)
    for _ in range(400):
        x, y = rng.integers(0, SIZE[0]), rng.integers(0, SIZE[1])
        w, h = rng.integers(200, 2500, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=colour, outline=(0, 0, 0), width=6)
    return img


def _line_art(rng: np.random.Generator) -> Image.Image:
    img = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for _ in range(1500):  # strokes of a drawing: short polylines, 3-px pen
        points = np.cumsum(rng.normal(0, 40, size=(12, 2)), axis=0) + rng.integers(0, SIZE)
        draw.line([tuple(p) for p in points.tolist()], fill=(20, 20, 20), width=3)
    return img


def _encoded(img: Image.Image, fmt: str, **kwargs: object) -> int:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.tell()


def made_ratios() -> None:
    rng = np.random.default_rng(0)
    photo, poster, line_art = _photo(), _poster(rng), _line_art(rng)
    cases = [
        ("photo (upscaled) PNG", photo, "PNG", {}),
        ("photo (upscaled) JPEG q95", photo, "JPEG", {"quality": 95}),
        ("photo (upscaled) JPEG q50", photo, "JPEG", {"quality": 50}),
        ("poster (flat colours) PNG", poster, "PNG", {"optimize": True}),
        ("poster (flat colours) JPEG q90", poster, "JPEG", {"quality": 90}),
        ("line art RGB PNG", line_art, "PNG", {"optimize": True}),
        ("line art grayscale PNG", line_art.convert("L"), "PNG", {"optimize": True}),
        ("line art 1-bit PNG", line_art.convert("1"), "PNG", {"optimize": True}),
        (
            "line art 1-bit TIFF (CCITT G4)",
            line_art.convert("1"),
            "TIFF",
            {"compression": "group4"},
        ),
        ("bomb: one colour RGB PNG", Image.new("RGB", SIZE, (200, 30, 30)), "PNG", {}),
        ("bomb: one colour 1-bit PNG", Image.new("1", SIZE, 1), "PNG", {"optimize": True}),
    ]
    print(f"\n{SIZE[0]} x {SIZE[1]} = {SIZE[0] * SIZE[1]:,} pixels")
    print("| picture | file bytes | decoded RGB bytes / file byte |")
    print("|---|---:|---:|")
    for name, img, fmt, kwargs in cases:
        n_bytes = _encoded(img, fmt, **kwargs)
        print(f"| {name} | {n_bytes:,} | {_ratio(*SIZE, n_bytes):.1f} |")


def main() -> None:
    print(f"# decoded bytes per file byte; {machine(torch_threads=False)}")
    print(
        f"rule in force: over {RATIO_FREE_PIXELS:,} pixels at most {MAX_RATIO:,} decoded RGB "
        f"bytes per file byte; never over {MAX_PIXELS:,} pixels\n"
    )
    shared_ratios()
    made_ratios()


if __name__ == "__main__":
    main()
