"""Generate small test images and data sets in-process (no downloads, no fixtures on disk).

The toy data set is learnable on purpose: real images are smooth (gradients and blobs),
fake images are drawn from the same distribution plus a visible checkerboard, so a tiny
CNN separates them in a few epochs while nothing else (format, size) gives them away.
"""

from __future__ import annotations

import csv
import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CHECKER_AMPLITUDE = 40  # +-40 grey levels: a tiny CNN learns it from 40 images in <10 epochs


def smooth_image(rng: np.random.Generator, size: int | tuple[int, int] = 32) -> np.ndarray:
    """HxWx3 uint8: a random two-colour gradient plus a few soft blobs of random colour."""
    width, height = (size, size) if isinstance(size, int) else size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * x / max(width - 1, 1) + np.sin(angle) * y / max(height - 1, 1)) / 2 + 0.5
    start, end = rng.uniform(30, 225, size=(2, 3))
    img = start[None, None, :] * (1 - t[..., None]) + end[None, None, :] * t[..., None]
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.15, 0.35) * max(width, height)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
        colour = rng.uniform(-80, 80, size=3)
        img += blob[..., None] * colour[None, None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def add_checkerboard(img: np.ndarray, amplitude: int = CHECKER_AMPLITUDE) -> np.ndarray:
    """The "generator artefact": a 1-pixel checkerboard added to every channel."""
    height, width = img.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    pattern = np.where((x + y) % 2 == 0, amplitude, -amplitude)[..., None]
    return np.clip(img.astype(np.int16) + pattern, 0, 255).astype(np.uint8)


def texture_image(rng: np.random.Generator, size: int | tuple[int, int] = 32) -> np.ndarray:
    """Bicubic-upsampled 8x8 colour noise: strong low frequencies, so its perceptual hash
    is stable under re-encoding (smooth gradients' is not) and unlike other textures'."""
    width, height = (size, size) if isinstance(size, int) else size
    cells = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC))


def toy_array(kind: str, rng: np.random.Generator, size: int | tuple[int, int] = 32) -> np.ndarray:
    """A real (smooth) or fake (smooth + checkerboard) image, uniform noise or a texture."""
    if kind == "noise":
        width, height = (size, size) if isinstance(size, int) else size
        return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    if kind == "texture":
        return texture_image(rng, size)
    img = smooth_image(rng, size)
    if kind == "fake":
        return add_checkerboard(img)
    if kind != "real":
        raise ValueError(f"unknown kind {kind!r}")
    return img


def flat_drawing(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A drawn, non-photographic image like a matplotlib plot: white ground, axes, a line
    and bars (`fakescope.data.content_type` calls it graphic)."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.line([(30, h - 30), (w - 10, h - 30)], fill="black", width=2)
    draw.line([(30, 10), (30, h - 30)], fill="black", width=2)
    xs = np.linspace(30, w - 10, 40)
    ys = (h - 30) - (h - 60) * (0.5 + 0.4 * np.sin(xs / 25))
    draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill="#1f77b4", width=2)
    for i, top in enumerate((60, 110, 90)):
        draw.rectangle([60 + 50 * i, top, 90 + 50 * i, h - 31], fill="#ff7f0e")
    return img


def photo_like(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """Texture and noise everywhere, as a photograph has (content_type: photo)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC), np.int16)
    noisy = base + rng.normal(0, 12, size=base.shape).round().astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(array: np.ndarray, fmt: str = "PNG", **save_kwargs: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def _format_for(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), path.suffix.lstrip(".").upper() or "PNG"
    )


def save_image(
    path: str | Path,
    kind: str = "real",
    size: int | tuple[int, int] = 32,
    fmt: str | None = None,
    *,
    seed: int = 0,
    **save_kwargs: object,
) -> Path:
    """Write one toy image (kind real/fake/noise/texture); format from ``fmt`` or extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = toy_array(kind, np.random.default_rng(seed), size)
    path.write_bytes(encode(array, fmt or _format_for(path), **save_kwargs))
    return path


def _toy_members(
    n_per_class: int, size: int, seed: int, real_name: str, fake_name: str
) -> Iterator[tuple[str, str, bytes]]:
    """(class folder, file name, PNG bytes); PNG keeps the checkerboard intact."""
    rng = np.random.default_rng(seed)
    for index in range(n_per_class):
        for kind, folder in (("real", real_name), ("fake", fake_name)):
            yield folder, f"{index:04d}.png", encode(toy_array(kind, rng, size))


def make_dataset(
    root: str | Path,
    n_per_class: int = 20,
    size: int = 32,
    layout: str = "folder",
    seed: int = 0,
    real_name: str = "real",
    fake_name: str = "fake",
) -> Path:
    """Write a toy data set under ``root`` and return its path.

    Layouts: ``folder`` (root/toy/<class>/NNNN.png), ``zip``, ``tar``, ``tgz`` (one archive
    with <class>/NNNN.png members) and ``csv`` (root/toy_csv/labels.csv with paths relative
    to it, images named without their class).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    members = list(_toy_members(n_per_class, size, seed, real_name, fake_name))
    if layout == "folder":
        target = root / "toy"
        for folder, name, data in members:
            (target / folder).mkdir(parents=True, exist_ok=True)
            (target / folder / name).write_bytes(data)
        return target
    if layout == "zip":
        target = root / "toy.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
            for folder, name, data in members:
                archive.writestr(f"{folder}/{name}", data)
        return target
    if layout in ("tar", "tgz"):
        target = root / ("toy.tar" if layout == "tar" else "toy.tar.gz")
        with tarfile.open(target, "w" if layout == "tar" else "w:gz") as archive:
            for folder, name, data in members:
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return target
    if layout == "csv":
        folder_path = root / "toy_csv"
        (folder_path / "images").mkdir(parents=True, exist_ok=True)
        target = folder_path / "labels.csv"
        with open(target, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label"])
            for number, (folder, _name, data) in enumerate(members):
                relative = f"images/img_{number:05d}.png"
                (folder_path / relative).write_bytes(data)
                writer.writerow([relative, folder])
        return target
    raise ValueError(f"unknown layout {layout!r}")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` (pixel data absent).

    Enough for a decompression-bomb test: the size is in the IHDR chunk, which is all a
    decoder reads before deciding whether to allocate.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_one_colour(width: int, height: int) -> bytes:
    """A complete, decodable 1-bit PNG of one colour: a real decompression bomb, a few
    kilobytes on disk for hundreds of megapixels (compressed row by row, never held whole)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then black pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _bad_file_bytes() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    noise = _save(Image.fromarray(toy_array("noise", rng, 64)), "JPEG", quality=90)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, 4:] = (255, 0, 0, 255)  # right half opaque red, left half transparent black
    rotated_exif = Image.Exif()
    rotated_exif[0x0112] = 6  # "rotate 90 CW to display"
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (4, 0, 8, 8))  # right half green, left half index 0 = transparent
    return {
        "truncated.jpg": noise[: len(noise) * 6 // 10],
        "empty.jpg": b"",
        "text.jpg": b"this is not an image, just some text\n",
        "html.png": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "gray16.png": _save(Image.new("I;16", (8, 8), 32768), "PNG"),
        "cmyk.jpg": _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),
        "rgba.png": _save(Image.fromarray(rgba, "RGBA"), "PNG"),
        "la.png": _save(Image.new("LA", (4, 4), (0, 0)), "PNG"),
        "palette_transparent.png": _save(palette, "PNG", transparency=0),
        "animated.gif": _save(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0
        ),
        "rotated.jpg": _save(Image.new("RGB", (40, 20), (200, 100, 50)), "JPEG", exif=rotated_exif),
        "tiny.png": _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"),
        "gray.png": _save(Image.new("L", (4, 4), 100), "PNG"),
        "onebit.png": _save(Image.new("1", (4, 4), 1), "PNG"),
        "float.tif": _save(Image.new("F", (4, 4), 0.5), "TIFF"),
        "unsupported.ppm": _save(Image.new("RGB", (4, 4)), "PPM"),
        # 72 MP declared in a file of a few bytes: refused for its decoded size per file byte.
        "big.png": png_header_only(9000, 8000),
        # 400 MP: over MAX_PIXELS (300M), beyond any camera.
        "bomb.png": png_header_only(20000, 20000),
    }


def make_bad_files(folder: str | Path) -> dict[str, Path]:
    """Write one file per bad-input case into ``folder``; returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, data in _bad_file_bytes().items():
        (folder / name).write_bytes(data)
        written[name] = folder / name
    return written
