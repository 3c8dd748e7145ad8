"""Provenance of files made at test time: signed by a throwaway CA through c2pa.Builder,
re-encoded, tampered; watermarked with every Stable Diffusion variant; clean; malformed."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from provenance_make import (
    IPTC,
    ThrowawayCA,
    encode,
    flip_scan_byte,
    make_ca,
    manifest,
    natural_rgb,
    sign,
    warm_rgb,
    watermark,
)

from fakescope.provenance import read_provenance, read_provenance_report
from fakescope.provenance.watermark import (
    FALSE_ALARM_RATE,
    P_VALUE_THRESHOLD,
    PATHS,
    PAYLOADS,
    Payload,
    block_scores,
    fold,
    match_variants,
)


@pytest.fixture(scope="module")
def ca() -> ThrowawayCA:
    return make_ca()


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    return encode(natural_rgb(96, 128, seed=3), "JPEG", quality=90)


# -- C2PA signed at test time -----------------------------------------------------------------
def test_signed_ai_image_is_decisive_and_trusted_with_our_anchor(
    ca: ThrowawayCA, photo_jpeg: bytes
) -> None:
    signed = sign(photo_jpeg, "image/jpeg", manifest("trainedAlgorithmicMedia"), ca)
    (item,) = read_provenance(signed, "signed.jpg")
    assert (item.signal, item.claim, item.trust, item.decisive) == (
        "c2pa",
        "ai_generated",
        "valid",
        True,
    )
    assert item.by == "fakescope test generator"
    (trusted,) = read_provenance(signed, "signed.jpg", trust_anchors=ca.root_pem)
    assert trusted.trust == "trusted"


def test_signed_capture_is_captured_and_composite_is_ai_edited(
    ca: ThrowawayCA, photo_jpeg: bytes
) -> None:
    captured = sign(photo_jpeg, "image/jpeg", manifest("digitalCapture"), ca)
    assert [e.claim for e in read_provenance(captured, "c.jpg")] == ["captured"]
    # A generative fill on a captured photo: AI-edited beats captured.
    fill = {"action": "c2pa.edited", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}
    edited = sign(photo_jpeg, "image/jpeg", manifest("digitalCapture", fill), ca)
    assert [e.claim for e in read_provenance(edited, "e.jpg")] == ["ai_edited"]
    composite = {
        "action": "c2pa.edited",
        "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia",
    }
    edited = sign(photo_jpeg, "image/jpeg", manifest("digitalCapture", composite), ca)
    assert [e.claim for e in read_provenance(edited, "e.jpg")] == ["ai_edited"]


def test_legacy_description_is_an_ai_label_and_algorithmic_media_is_not(
    ca: ThrowawayCA, photo_jpeg: bytes
) -> None:
    definition = manifest(None, description="AI Generated Image")
    legacy = sign(photo_jpeg, "image/jpeg", definition, ca, verify=False)
    (item,) = read_provenance(legacy, "l.jpg")
    assert item.claim == "ai_generated"
    # Today's validator calls the action malformed; that is non-conformance, not tampering.
    assert item.trust == "certificate_problem"
    assert "assertion.action.malformed" in item.raw["failure_codes"]
    procedural = sign(photo_jpeg, "image/jpeg", manifest("algorithmicMedia"), ca)
    assert [e.claim for e in read_provenance(procedural, "p.jpg")] == ["signed"]


def test_signed_png_is_read(ca: ThrowawayCA) -> None:
    png = encode(natural_rgb(64, 64), "PNG")
    signed = sign(png, "image/png", manifest("trainedAlgorithmicMedia"), ca)
    assert [e.claim for e in read_provenance(signed, "s.png")] == ["ai_generated"]


def test_reencoded_file_loses_the_manifest(ca: ThrowawayCA, photo_jpeg: bytes) -> None:
    signed = sign(photo_jpeg, "image/jpeg", manifest("trainedAlgorithmicMedia"), ca)
    reencoded = encode(np.asarray(Image.open(io.BytesIO(signed))), "JPEG", quality=85)
    assert read_provenance(reencoded, "re.jpg") == []


def test_pixels_changed_after_signing_are_tampered(ca: ThrowawayCA, photo_jpeg: bytes) -> None:
    signed = sign(photo_jpeg, "image/jpeg", manifest("trainedAlgorithmicMedia"), ca)
    evidence = read_provenance(flip_scan_byte(signed), "t.jpg")
    claims = {e.claim: e for e in evidence}
    assert claims["tampered"].trust == "integrity_failure"
    assert "assertion.dataHash.mismatch" in claims["tampered"].raw["failure_codes"]
    # The AI label is still reported, but no longer decisive.
    assert claims["ai_generated"].trust == "integrity_failure"
    assert not any(e.decisive for e in evidence)


def test_clean_images_carry_no_evidence(photo_jpeg: bytes) -> None:
    assert read_provenance(photo_jpeg, "clean.jpg") == []
    for seed in range(6):
        png = encode(natural_rgb(300, 320, seed=seed), "PNG")
        assert read_provenance(png, "clean.png") == [], seed


# -- Stable Diffusion watermarks --------------------------------------------------------------
def test_decoder_is_bit_identical_to_imwatermark() -> None:
    from imwatermark import WatermarkDecoder

    rgb = natural_rgb(256, 260, seed=7)  # the library's decoder is slow: keep it small
    # Block scores do not depend on the payload length: one length per colour order.
    for order, payload in (("bgr", PAYLOADS[0]), ("rgb", PAYLOADS[2])):
        array = np.ascontiguousarray(rgb[:, :, ::-1] if order == "bgr" else rgb)
        expected = WatermarkDecoder("bits", len(payload.bits)).decode(array, "dwtDct")
        decoded = fold(block_scores(rgb, order), len(payload.bits))
        assert (decoded == np.asarray(expected, int)).all()
        # The float path: what the library's decoder reads from a float32 array.
        expected = WatermarkDecoder("bits", len(payload.bits)).decode(
            array.astype(np.float32), "dwtDct"
        )
        decoded = fold(block_scores(rgb, order, "float"), len(payload.bits))
        assert (decoded == np.asarray(expected, int)).all()


# Each pipeline's output size: SD 1.x 512, SDXL 1024 (its float path flips more bits on
# small images; at its real size it is clear).
SIZES = {"sd1": 512, "sd2": 768, "sdxl": 1024}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["uint8", "float"])
@pytest.mark.parametrize("order", ["bgr", "rgb"])
@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.name != "sd2"], ids=lambda p: p.name)
def test_each_watermark_variant_is_detected(payload: Payload, order: str, dtype: str) -> None:
    size = SIZES[payload.name]
    marked = watermark(natural_rgb(size, size, seed=11), payload.bits, order, dtype)
    (item,) = read_provenance(encode(marked, "PNG"), "wm.png")
    assert (item.signal, item.claim, item.decisive) == ("watermark", "ai_generated", True)
    assert item.raw["variant"] == payload.name
    assert item.raw["order"] == order
    assert item.raw["p_value"] < 1e-6


SDXL = next(p for p in PAYLOADS if p.name == "sdxl")


@pytest.mark.slow
@pytest.mark.parametrize(("order", "dtype"), PATHS)
def test_each_encoder_path_is_found_in_warm_tones(order: str, dtype: str) -> None:
    """SDXL marks along each path the reference encoders take, in the warm tones where
    OpenCV's uint8 and float conversions part ways: each is found, and found on its own
    path (a uint8-only reader misses the float BGR one)."""
    marked = watermark(warm_rgb(768, 768, seed=3), SDXL.bits, order, dtype)
    (item,) = read_provenance(encode(marked, "PNG"), "wm.png")
    assert (item.signal, item.claim, item.decisive) == ("watermark", "ai_generated", True)
    assert (item.raw["variant"], item.raw["order"]) == ("sdxl", order)
    assert item.raw["matching_bits"] >= 46
    assert item.raw["p_value"] < P_VALUE_THRESHOLD
    assert item.raw["variants_tested"] == 12
    if dtype == "float":
        assert item.raw["input"] == "float"
    if (order, dtype) == ("bgr", "float"):
        uint8_only = match_variants(marked, paths=(("bgr", "uint8"), ("rgb", "uint8")))
        assert uint8_only[0].p_value > 1e-3, uint8_only[0]


@pytest.mark.slow
def test_generative_models_float_bgr_saved_by_truncation_is_found() -> None:
    """Stability's generative-models: float BGR in 0..255, back to 0..1, cut to uint8."""
    marked = watermark(warm_rgb(1024, 1024, seed=8), SDXL.bits, "bgr", "float", truncate=True)
    (item,) = read_provenance(encode(marked, "PNG"), "wm.png")
    assert (item.raw["variant"], item.raw["order"], item.raw["input"]) == ("sdxl", "bgr", "float")


def test_false_alarm_rate_is_shared_by_every_variant_tested() -> None:
    """Reading four paths instead of two must not raise the false-alarm rate per image:
    the per-test threshold is the rate divided by the number of tests (Bonferroni)."""
    assert len(PATHS) == 4
    assert P_VALUE_THRESHOLD * len(PATHS) * len(PAYLOADS) == pytest.approx(FALSE_ALARM_RATE)
    assert abs(FALSE_ALARM_RATE - 6 * 1e-6) < 1e-12  # the rate of the uint8-only reader


def test_small_uint8_watermarks_are_detected() -> None:
    for payload in PAYLOADS:
        marked = watermark(natural_rgb(320, 320, seed=4), payload.bits, "bgr", "uint8")
        (item,) = read_provenance(encode(marked, "PNG"), "wm.png")
        assert item.raw["variant"] == payload.name


def test_sd2_watermark_is_detected() -> None:
    sd2 = next(p for p in PAYLOADS if p.name == "sd2")
    marked = watermark(natural_rgb(320, 320, seed=5), sd2.bits, "bgr", "uint8")
    (item,) = read_provenance(encode(marked, "PNG"), "wm.png")
    assert item.raw["variant"] == "sd2"


def test_watermark_is_read_from_lossless_webp_not_from_jpeg() -> None:
    sdxl = next(p for p in PAYLOADS if p.name == "sdxl")
    marked = watermark(natural_rgb(320, 320, seed=2), sdxl.bits, "bgr", "uint8")
    assert [e.signal for e in read_provenance(encode(marked, "WEBP", lossless=True), "w")] == [
        "watermark"
    ]
    # Not looked for in JPEG: it does not survive compression, and the check costs time.
    assert read_provenance(encode(marked, "JPEG", quality=95), "w.jpg") == []


def test_unmarked_images_are_far_from_the_threshold() -> None:
    for seed in range(5):
        best = match_variants(natural_rgb(320, 320, seed=100 + seed))[0]
        assert best.p_value > 1e-4, best
        best = match_variants(warm_rgb(320, 320, seed=200 + seed))[0]
        assert best.p_value > 1e-4, best
        assert len(match_variants(warm_rgb(320, 320, seed=200 + seed))) == 12


# -- malformed input --------------------------------------------------------------------------
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]  # after IHDR


def _jpeg_with_app11(jpeg: bytes, body: bytes) -> bytes:
    segment = b"\xff\xeb" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + segment + jpeg[2:]


MALFORMED = {
    "random": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "empty": b"",
    "jpeg-magic-only": b"\xff\xd8\xff",
    "png-magic-only": b"\x89PNG\r\n\x1a\n",
    "garbage-jumbf-in-jpeg": "jpeg-jumbf",
    "garbage-cabx-in-png": "png-cabx",
    "bomb-ztxt": "png-bomb",
    "stealth-bad-length": "stealth",
    "xmp-unterminated": b"\xff\xd8\xff\xe1\x00\x20http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta",
    "xmp-hostile": b'<x:xmpmeta><!DOCTYPE a [<!ENTITY a "aaaa">]><Iptc4xmpExt:DigitalSource'
    b"Type>&a;&a;</Iptc4xmpExt:DigitalSourceType></x:xmpmeta>",
}


def _malformed(kind: str | bytes, photo_jpeg: bytes) -> bytes:
    if isinstance(kind, bytes):
        return kind
    png = encode(natural_rgb(32, 32), "PNG")
    if kind == "jpeg-jumbf":
        body = b"JP\x00\x01\x00\x00\x00\x01" + b"\x00\x00\x00\x40jumb" + b"\xaa" * 56
        return _jpeg_with_app11(photo_jpeg, body)
    if kind == "png-cabx":
        return _with_chunk(png, _png_chunk(b"caBX", b"\x00\x00\x00\x30jumb" + b"\x13" * 40))
    if kind == "png-bomb":
        bomb = zlib.compress(b"a" * 50_000_000, 9)
        return _with_chunk(png, _png_chunk(b"zTXt", b"parameters\x00\x00" + bomb))
    if kind == "stealth":
        rgba = np.zeros((300, 300, 4), np.uint8)
        bits = np.unpackbits(np.frombuffer(b"stealth_pngcomp" + b"\xff" * 4, np.uint8))
        column = rgba[:, :, 3].T.ravel().copy()
        column[: len(bits)] = bits
        rgba[:, :, 3] = column.reshape(300, 300).T
        return encode(rgba, "PNG")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_input_never_raises(kind: str, photo_jpeg: bytes) -> None:
    data = _malformed(MALFORMED[kind], photo_jpeg)
    report = read_provenance_report(data, kind)
    assert not any(e.is_ai for e in report.evidence), report
    assert read_provenance(data[: len(data) // 2], kind) is not None


def test_truncated_signed_jpeg_is_not_a_label(ca: ThrowawayCA, photo_jpeg: bytes) -> None:
    signed = sign(photo_jpeg, "image/jpeg", manifest("trainedAlgorithmicMedia"), ca)
    for cut in (4, 64, 512, len(signed) // 2, len(signed) - 3):
        assert not any(e.decisive for e in read_provenance(signed[:cut], "cut.jpg"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(
        [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"]
    ),
    body=st.binary(max_size=2048),
    marker=st.sampled_from(
        [b"", b"jumb", b"c2pa", b"<x:xmpmeta", b"provenance", b"tEXtparameters"]
    ),
)
def test_fuzzed_bytes_never_raise(prefix: bytes, body: bytes, marker: bytes) -> None:
    half = len(body) // 2
    report = read_provenance_report(prefix + body[:half] + marker + body[half:], "fuzz")
    assert isinstance(report.evidence, tuple)


# -- XMP and EXIF written at test time ---------------------------------------------------------
def _xmp(body: str) -> str:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" {body}</rdf:Description></rdf:RDF></x:xmpmeta>'
    )


GOOGLE_XMP = _xmp(
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
    'trainedAlgorithmicMedia" photoshop:Credit="Made with Google AI">'
)
MIDJOURNEY_XMP = _xmp(
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
    "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/"
    "trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
)
EDITED_XMP = _xmp(
    'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">'
    "<photoshop:Credit>Edited with Google AI</photoshop:Credit>"
)
CREATOR_XMP = _xmp('xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Midjourney v6">')
PHOTOSHOP_XMP = _xmp(
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Photoshop 26.9 (Macintosh)">'
)
ALGORITHMIC_XMP = _xmp(
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/'
    'algorithmicMedia">'
)


def _jpeg_with_xmp(jpeg: bytes, packet: str) -> bytes:
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (GOOGLE_XMP, {("ai_generated", None), ("ai_generated", "Made with Google AI")}),
        (MIDJOURNEY_XMP, {("ai_generated", None)}),
        (EDITED_XMP, {("ai_edited", "Edited with Google AI")}),
        (CREATOR_XMP, {("ai_generated", "Midjourney")}),
        (PHOTOSHOP_XMP, set()),
        (ALGORITHMIC_XMP, set()),
    ],
    ids=["google", "midjourney", "google-edit", "creator-tool", "photoshop", "algorithmic"],
)
def test_xmp_labels(photo_jpeg: bytes, packet: str, expected: set[tuple[str, str | None]]) -> None:
    evidence = read_provenance(_jpeg_with_xmp(photo_jpeg, packet), "x.jpg")
    assert {(e.claim, e.by) for e in evidence} == expected
    assert all(e.signal == "xmp" and e.trust is None for e in evidence)


def test_xmp_in_png_itxt_plain_and_compressed() -> None:
    from PIL import PngImagePlugin

    for compressed in (False, True):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", MIDJOURNEY_XMP, zip=compressed)
        buffer = io.BytesIO()
        Image.fromarray(natural_rgb(40, 40)).save(buffer, "PNG", pnginfo=info)
        evidence = read_provenance(buffer.getvalue(), "x.png")
        assert [(e.signal, e.claim) for e in evidence] == [("xmp", "ai_generated")], compressed


def test_exif_software_of_a_known_generator() -> None:
    exif = Image.Exif()
    exif[0x0131] = "NovelAI"
    jpeg = encode(natural_rgb(40, 40), "JPEG", exif=exif.tobytes())
    assert [(e.signal, e.by) for e in read_provenance(jpeg, "x.jpg")] == [("metadata", "NovelAI")]
    exif[0x0131] = "Adobe Photoshop 26.9"
    assert read_provenance(encode(natural_rgb(40, 40), "JPEG", exif=exif.tobytes()), "y") == []
