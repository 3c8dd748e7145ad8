"""Files with provenance made at test time: C2PA manifests signed by a throwaway CA,
Stable Diffusion watermarks embedded with invisible-watermark, and clean images."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass(frozen=True)
class ThrowawayCA:
    """A throwaway root CA and an ES256 signing certificate it issued."""

    root_pem: str
    chain_pem: str  # signer first, then root
    key_pem: str


def make_ca() -> ThrowawayCA:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakescope tests"),
            ]
        )

    def usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca,
            crl_sign=ca,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("fakescope Test Root"))
        .issuer_name(name("fakescope Test Root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("fakescope Test Signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return ThrowawayCA(pem(root), pem(leaf) + pem(root), key_pem)


def manifest(source_type: str | None, *more: dict[str, Any], **extra: Any) -> dict:
    """A minimal manifest definition: one ``c2pa.created`` action (with ``extra``
    fields), then the ``more`` actions as given."""
    act: dict[str, Any] = {"action": "c2pa.created", "softwareAgent": "fakescope test generator"}
    if source_type:
        act["digitalSourceType"] = IPTC + source_type
    act.update(extra)
    return {
        "claim_generator_info": [{"name": "fakescope-tests", "version": "1.0"}],
        "title": "test image",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [act, *more]}}],
    }


def sign(
    data: bytes, mime: str, definition: dict, ca: ThrowawayCA, *, verify: bool = True
) -> bytes:
    """``data`` with a C2PA manifest signed by ``ca`` embedded (no time-stamp, offline).
    ``verify=False`` lets a non-conforming manifest (a legacy writer's) be written."""
    import c2pa

    info = c2pa.C2paSignerInfo(b"es256", ca.chain_pem.encode(), ca.key_pem.encode(), None)
    signer = c2pa.Signer.from_info(info)
    context = c2pa.Context.from_dict(
        {"builder": {"thumbnail": {"enabled": False}}, "verify": {"verify_after_sign": verify}}
    )
    builder = c2pa.Builder(definition, context=context)
    dest = io.BytesIO()
    try:
        builder.sign(signer, mime, io.BytesIO(data), dest)
    finally:
        signer.close()
    return dest.getvalue()


def natural_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB image: closer to a photograph than white noise."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 24), max(2, width // 24), 3), dtype=np.uint8)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(int)
    return np.clip(smooth + rng.integers(-12, 13, (height, width, 3)), 0, 255).astype(np.uint8)


def warm_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """`natural_rgb` in warm tones (more red, less blue: skin, sunsets, interiors): in BGR
    order its U channel lies below OpenCV's centre, where the uint8 and float conversion
    paths of the watermark encoder part ways."""
    rgb = natural_rgb(height, width, seed).astype(np.float64)
    rgb[:, :, 0] = rgb[:, :, 0] * 0.6 + 100
    rgb[:, :, 2] *= 0.5
    return np.clip(rgb, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, fmt, **options)
    return buffer.getvalue()


def watermark(
    rgb: np.ndarray, bits: tuple[int, ...], order: str, dtype: str, *, truncate: bool = False
) -> np.ndarray:
    """Embed ``bits`` as the reference pipelines do: invisible-watermark ``dwtDct`` given a
    BGR (documented) or RGB (diffusers' old SDXL watermarker) array, uint8 or float32 in
    0..255. A float result is rounded to uint8 (diffusers' ``numpy_to_pil``), or with
    ``truncate`` brought back to 0..1 and cut to uint8 as generative-models' sampling
    scripts save it (``(255 * x).astype(np.uint8)``)."""
    from imwatermark import WatermarkEncoder

    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", list(bits))
    array = np.ascontiguousarray(rgb[:, :, ::-1] if order == "bgr" else rgb)
    if dtype == "float":
        marked = encoder.encode(array.astype(np.float32), "dwtDct")
        if truncate:
            unit = np.clip(marked / np.float32(255), 0, 1)
            marked = (np.float32(255) * unit).astype(np.uint8)
        else:
            marked = np.clip(np.round(marked), 0, 255).astype(np.uint8)
    else:
        marked = encoder.encode(array, "dwtDct")
    return np.ascontiguousarray(marked[:, :, ::-1] if order == "bgr" else marked)


def flip_scan_byte(jpeg: bytes) -> bytes:
    """Change one byte of a JPEG's entropy-coded image data (pixels changed, markers and
    any embedded manifest intact)."""
    sos = jpeg.rfind(b"\xff\xda")
    eoi = jpeg.rfind(b"\xff\xd9")
    assert 0 < sos < eoi
    data = bytearray(jpeg)
    for index in range((sos + eoi) // 2, eoi):
        if data[index] not in (0xFF, 0xFE) and data[index - 1] != 0xFF:
            data[index] ^= 0x01
            return bytes(data)
    raise AssertionError("no byte to flip")


def camera_exif(
    *,
    make: str = "Apple",
    model: str = "iPhone 5",
    software: str | None = "6.0",
    captured: str | None = "2012:09:29 10:15:30",
    gps: bool = True,
    exif_size: tuple[int, int] | None = None,
) -> bytes:
    """The EXIF block of an iPhone 5 photo (Make, Model, Software, DateTimeOriginal,
    exposure, focal length, lens, a GPS position), as ``Image.save(exif=...)`` takes it."""
    from PIL.TiffImagePlugin import IFDRational

    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if software is not None:
        exif[0x0131] = software
    sub = exif.get_ifd(0x8769)
    sub[0x829A] = IFDRational(1, 120)  # ExposureTime
    sub[0x829D] = IFDRational(12, 5)  # FNumber 2.4
    sub[0x8827] = 50  # ISO
    sub[0x920A] = IFDRational(413, 100)  # FocalLength 4.13 mm
    sub[0xA433] = make  # LensMake
    sub[0xA434] = f"{model} back camera 4.13mm f/2.4"  # LensModel
    if captured is not None:
        sub[0x9003] = captured  # DateTimeOriginal
        exif[0x0132] = captured  # DateTime
    if exif_size is not None:
        sub[0xA002], sub[0xA003] = exif_size
    if gps:
        where = exif.get_ifd(0x8825)
        where[1], where[3] = "N", "W"
        where[2] = (IFDRational(37, 1), IFDRational(46, 1), IFDRational(3012, 100))
        where[4] = (IFDRational(122, 1), IFDRational(25, 1), IFDRational(0, 1))
    return exif.tobytes()


def camera_jpeg(width: int = 320, height: int = 240, seed: int = 0, **exif: Any) -> bytes:
    """A photo-like JPEG carrying `camera_exif` (iPhone 5 unless told otherwise)."""
    return encode(natural_rgb(height, width, seed), "JPEG", quality=90, exif=camera_exif(**exif))
