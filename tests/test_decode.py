from __future__ import annotations

import io
import warnings
import zlib

import numpy as np
import pytest
from imagegen import encode, png_header_only, png_one_colour, toy_array
from PIL import Image

from fakescope.data import decode
from fakescope.data.decode import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    MAX_RATIO,
    RATIO_FREE_PIXELS,
    VIDEO_EXTENSIONS,
    ImageInfo,
    decode_image,
    estimate_jpeg_quality,
    load_image,
    probe_image,
)
from fakescope.errors import ImageError


def _load(bad_files, name: str) -> Image.Image:
    return load_image(bad_files[name].read_bytes(), str(bad_files[name]))


def _reason(bad_files, name: str, func=load_image) -> str:
    with pytest.raises(ImageError) as caught:
        func(bad_files[name].read_bytes(), str(bad_files[name]))
    assert caught.value.path == str(bad_files[name])
    return caught.value.reason


def test_extension_sets():
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"} | {
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    } == IMAGE_EXTENSIONS
    assert {".mp4", ".webm", ".mov", ".avi", ".mkv"} == VIDEO_EXTENSIONS
    assert MAX_PIXELS == 300_000_000
    # Pillow's own guard must not refuse what ours reads, nor speak before ours does.
    assert Image.MAX_IMAGE_PIXELS > MAX_PIXELS


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("empty.jpg", "empty file (0 bytes)"),
        ("text.jpg", "not an image: file contains text"),
        ("unsupported.ppm", "unsupported format PPM"),
    ],
)
def test_exact_reasons(bad_files, name, expected):
    assert _reason(bad_files, name) == expected
    assert _reason(bad_files, name, probe_image) == expected


def test_html_saved_as_image(bad_files):
    assert _reason(bad_files, "html.png").startswith("not an image: file contains HTML")


def test_truncated_jpeg_fails_on_full_decode_only(bad_files):
    assert _reason(bad_files, "truncated.jpg").startswith("truncated or corrupt image data")
    assert "truncated" in _reason(bad_files, "truncated.jpg")
    # The header is intact, so the cheap probe still works.
    assert probe_image(bad_files["truncated.jpg"].read_bytes(), "t").width == 64


def test_cut_inside_header_is_corrupt_not_unknown():
    data = encode(toy_array("real", np.random.default_rng(1)), "JPEG")[:20]
    with pytest.raises(ImageError) as caught:
        load_image(data, "x.jpg")
    assert "JPEG" in caught.value.reason
    assert "not an image" not in caught.value.reason


@pytest.mark.parametrize("name", ["big.png", "bomb.png"])
def test_decompression_bomb_refused_before_decoding(bad_files, name):
    assert bad_files[name].stat().st_size < 200  # the file is tiny; only the header is big
    for func in (load_image, probe_image):
        assert "too large" in _reason(bad_files, name, func)


def test_bomb_messages_name_pixels_and_file_size(bad_files):
    reason = _reason(bad_files, "big.png")
    size = bad_files["big.png"].stat().st_size
    assert reason.startswith("image too large for its file size: 9000x8000 = 72,000,000 pixels")
    assert reason.endswith("(possible decompression bomb)")
    assert f"from a file of {size:,} bytes" in reason
    assert f"{72_000_000 * 3 / size:,.0f} decoded bytes per file byte" in reason
    reason = _reason(bad_files, "bomb.png")
    assert reason.startswith("image too large: 20000x20000 = 400,000,000 pixels")
    assert "exceeds the limit of 300,000,000 pixels" in reason
    assert f"from a file of {bad_files['bomb.png'].stat().st_size:,} bytes" in reason


@pytest.mark.parametrize(("side", "rule"), [(20000, "too large"), (12000, "decompression bomb")])
def test_one_colour_png_bomb_is_refused(side, rule):
    """A complete, decodable PNG of one colour: 400 MP (over the ceiling) and 144 MP (under
    it, but far more decoded bytes per file byte than any real picture)."""
    data = png_one_colour(side, side)
    assert len(data) < 100_000
    for func in (load_image, probe_image):
        with pytest.raises(ImageError) as caught:
            func(data, "bomb.png")
        assert rule in caught.value.reason
        assert f"{side}x{side} = {side * side:,} pixels" in caught.value.reason
        assert f"{len(data):,} bytes" in caught.value.reason


def test_size_rule_reads_large_pictures_and_small_flat_ones():
    # A 67 MP illustration (the 7,714 x 8,699 PNG) at the measured worst real ratio.
    pixels = 7714 * 8699
    assert decode.size_problem(7714, 8699, pixels * 3 // 500) is None
    assert "decompression bomb" in decode.size_problem(7714, 8699, pixels * 3 // 3000)
    # Small flat images compress without bound and are cheap: any ratio is fine.
    assert decode.size_problem(4000, 4000, 100) is None
    assert pixels > RATIO_FREE_PIXELS and MAX_RATIO >= 1000
    # A 200 MP phone photo (16,320 x 12,240) as a typical JPEG is read.
    assert decode.size_problem(16320, 12240, 40_000_000) is None


def test_max_pixels_kwarg_and_module_constant(monkeypatch):
    data = encode(toy_array("real", np.random.default_rng(0), 64))
    with pytest.raises(ImageError, match="too large"):
        load_image(data, "x.png", max_pixels=64 * 64 - 1)
    assert load_image(data, "x.png", max_pixels=64 * 64).size == (64, 64)
    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match="too large"):
        probe_image(data, "x.png")


def test_pil_bomb_warning_becomes_image_error():
    # Above PIL's warning threshold (twice MAX_PIXELS) and under the caller's raised limit,
    # in a file big enough for our ratio rule: PIL's warning, not our check, must stop it,
    # and must not leak out as a warning.
    width, height = 20000, 32000
    assert width * height > Image.MAX_IMAGE_PIXELS
    header = png_header_only(width, height)
    junk = b"\x00" * (width * height * 3 // MAX_RATIO)
    crc = zlib.crc32(b"jUnk" + junk).to_bytes(4, "big")
    chunk = len(junk).to_bytes(4, "big") + b"jUnk" + junk + crc
    data = header[:33] + chunk + header[33:]  # after the 8-byte signature and 25-byte IHDR
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="decompression bomb"):
            load_image(data, "x.png", max_pixels=700_000_000)


def test_one_pixel_image_is_valid(bad_files):
    img = _load(bad_files, "tiny.png")
    assert img.size == (1, 1)
    assert img.getpixel((0, 0)) == (10, 20, 30)


def test_sixteen_bit_is_scaled_not_clipped(bad_files):
    img = _load(bad_files, "gray16.png")
    assert img.mode == "RGB"
    assert all(abs(v - 128) <= 1 for v in img.getpixel((3, 3)))


def test_sixteen_bit_full_range():
    raw = np.array([[0, 65535, 257 * 200]], dtype=np.uint16)
    img16 = Image.fromarray(raw)  # mode I;16
    buffer = io.BytesIO()
    img16.save(buffer, "PNG")
    img = load_image(buffer.getvalue(), "x.png")
    assert [img.getpixel((x, 0))[0] for x in range(3)] == [0, 255, 200]


def test_float_image_in_unit_range(bad_files):
    assert _load(bad_files, "float.tif").getpixel((0, 0)) == (128, 128, 128)


def test_cmyk_colours_roughly_right(bad_files):
    red, green, blue = _load(bad_files, "cmyk.jpg").getpixel((8, 8))
    assert red > 220 and green < 40 and blue < 40


def test_transparency_composited_over_white(bad_files):
    img = _load(bad_files, "rgba.png")
    assert img.getpixel((0, 0)) == (255, 255, 255)  # transparent black becomes white
    assert img.getpixel((7, 0)) == (255, 0, 0)  # opaque red stays red
    assert _load(bad_files, "la.png").getpixel((0, 0)) == (255, 255, 255)
    palette = _load(bad_files, "palette_transparent.png")
    assert palette.getpixel((0, 0)) == (255, 255, 255)
    assert palette.getpixel((7, 7)) == (0, 255, 0)


def test_half_transparent_blends_with_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 128
    img = load_image(encode(rgba, "PNG"), "x.png")
    assert all(abs(v - 127) <= 1 for v in img.getpixel((0, 0)))


def test_grayscale_and_one_bit(bad_files):
    assert _load(bad_files, "gray.png").getpixel((0, 0)) == (100, 100, 100)
    assert _load(bad_files, "onebit.png").getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_first_frame(bad_files):
    img = _load(bad_files, "animated.gif")
    red, green, blue = img.getpixel((4, 4))
    assert red > 200 and blue < 50


def test_exif_rotation_swaps_width_and_height(bad_files):
    data = bad_files["rotated.jpg"].read_bytes()
    assert Image.open(io.BytesIO(data)).size == (40, 20)  # as stored
    assert load_image(data, "r.jpg").size == (20, 40)  # as displayed
    info = probe_image(data, "r.jpg")
    assert (info.width, info.height) == (20, 40)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_accepted_formats(fmt):
    data = encode(toy_array("real", np.random.default_rng(2), (12, 10)), fmt)
    img, info = decode_image(data, f"x.{fmt.lower()}")
    assert img.mode == "RGB" and img.size == (12, 10)
    assert (info.format, info.width, info.height) == (fmt, 12, 10)


@pytest.mark.parametrize("quality", [5, 10, 25, 50, 60, 75, 90, 95, 100])
def test_jpeg_quality_estimate(quality):
    data = encode(toy_array("noise", np.random.default_rng(3), 16), "JPEG", quality=quality)
    assert probe_image(data, "q.jpg").jpeg_quality == quality


def test_jpeg_quality_for_non_jpeg_and_bad_tables():
    data = encode(toy_array("real", np.random.default_rng(3)), "PNG")
    assert probe_image(data, "x.png") == ImageInfo(32, 32, "PNG", "RGB", None)
    assert estimate_jpeg_quality(None) is None
    assert estimate_jpeg_quality({0: [1, 2, 3]}) is None


def test_decode_image_matches_load_and_probe():
    data = encode(toy_array("fake", np.random.default_rng(4), (20, 12)), "JPEG", quality=80)
    img, info = decode_image(data, "x.jpg")
    assert info == probe_image(data, "x.jpg")
    assert np.array_equal(np.asarray(img), np.asarray(load_image(data, "x.jpg")))


def _smooth(size: tuple[int, int] = (48, 32)) -> np.ndarray:
    """A gradient: lossy encoders (HEVC, AV1) keep it within a few levels."""
    width, height = size
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return np.broadcast_to(
        np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2), (height, width, 3)
    ).astype(np.uint8)


@pytest.mark.parametrize(("fmt", "name"), [("HEIF", "photo.heic"), ("AVIF", "web.avif")])
def test_heic_and_avif_are_read(fmt, name):
    """iPhone photos (HEIC, through pillow-heif) and web images (AVIF, Pillow's own plugin),
    each made here by the same libraries' encoders."""
    array = _smooth()
    data = encode(array, fmt, quality=95)
    assert data[4:12] == (b"ftypheic" if fmt == "HEIF" else b"ftypavif")
    img, info = decode_image(data, name)
    assert img.mode == "RGB" and img.size == (48, 32)
    assert (info.format, info.width, info.height) == (fmt, 48, 32)
    assert np.abs(np.asarray(img, dtype=int) - array).mean() < 4
    assert probe_image(data, name) == info


def _left_red(width: int = 40, height: int = 20) -> Image.Image:
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (255, 0, 0)  # left half red, right half black
    return Image.fromarray(array)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "JPEG"])
def test_orientation_is_respected_in_every_format(fmt):
    """Stored 40x20 with "rotate 90 degrees clockwise" (EXIF 6; HEIF and AVIF carry it as an
    irot/imir box, which their encoders write from the EXIF tag): shown 20x40, red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    _left_red().save(buffer, fmt, exif=exif.tobytes(), quality=95)
    data = buffer.getvalue()
    if fmt != "JPEG":
        assert b"irot" in data  # the container's own rotation, as phones write it
    img = load_image(data, f"rotated.{fmt.lower()}")
    assert img.size == (20, 40)
    assert probe_image(data, "r").width == 20
    top, bottom = np.asarray(img)[5, 10], np.asarray(img)[35, 10]
    assert top[0] > 200 and top[1] < 60 and bottom.max() < 60  # rotated once, not twice


def test_a_cut_heic_is_corrupt_not_unknown():
    data = encode(_smooth(), "HEIF")[:40]
    with pytest.raises(ImageError) as caught:
        load_image(data, "cut.heic")
    assert "HEIC" in caught.value.reason and "not an image" not in caught.value.reason


@pytest.mark.slow
@pytest.mark.integration
def test_a_67_megapixel_picture_is_read_and_scored(shared_data, tmp_path):
    """The issue's 7,714 x 8,699 illustration size, refused by the old 64 MP limit: a real
    photo from the shared data, enlarged, as PNG (with flat line art drawn over it, the
    compressible kind) is decoded at full size and scored by `predict`."""
    import zipfile

    from PIL import ImageDraw

    from fakescope.detectors import Detector

    with zipfile.ZipFile(shared_data / "modern_photos.zip") as archive:
        name = next(n for n in archive.namelist() if n.lower().endswith((".jpg", ".jpeg")))
        photo = Image.open(io.BytesIO(archive.read(name))).convert("RGB")
    big = photo.resize((7714, 8699), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(big)
    draw.rectangle((0, 0, 7714, 3000), fill=(250, 250, 245))  # a flat poster-like band
    for x in range(0, 7714, 400):
        draw.line((x, 0, 7714 - x, 3000), fill=(20, 20, 20), width=4)
    path = tmp_path / "poster.png"
    big.save(path, compress_level=1)
    del big, draw
    data = path.read_bytes()
    info = probe_image(data, str(path))
    assert (info.width, info.height, info.format) == (7714, 8699, "PNG")
    assert load_image(data, str(path)).size == (7714, 8699)
    (result,) = Detector.load(device="cpu").predict([path], provenance=False)
    assert result.error is None and result.label in ("fake", "real")
