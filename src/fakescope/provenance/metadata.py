"""Generator metadata: the prompt and settings that local Stable Diffusion front-ends leave
in the file they write.

- PNG text chunks: AUTOMATIC1111/Forge ``parameters``, ComfyUI ``prompt``/``workflow``,
  InvokeAI ``invokeai_metadata``/``sd-metadata``/``Dream``, NovelAI (``Software`` =
  NovelAI), Fooocus (``parameters`` JSON + ``fooocus_scheme``);
- EXIF ``UserComment`` (A1111 saves its parameters there in JPEG and WebP, UTF-16);
- A1111 "stealth" metadata hidden in the low bits of the alpha (or RGB) channel, which
  survives tools that strip text chunks;
- EXIF/PNG ``Software`` naming a known generator.

None of this is signed, so the evidence has no trust level; it is still strong, because
these chunks are written by the generator itself and are absent from photographs.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from fakescope.provenance.evidence import AI_GENERATED, METADATA, Evidence
from fakescope.provenance.formats import MAX_TEXT
from fakescope.provenance.xmp import known_generator

_EXCERPT = 160
_A1111_SETTINGS = re.compile(r"\bSteps:\s*\d+.*\b(?:Sampler|CFG scale|Seed):", re.S)
_STEALTH_SIGNATURES = {
    "stealth_pnginfo": False,
    "stealth_pngcomp": True,  # gzip-compressed
}
_STEALTH_RGB_SIGNATURES = {"stealth_rgbinfo": False, "stealth_rgbcomp": True}
_SIG_BITS = len("stealth_pnginfo") * 8


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _json_dict(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _evidence(by: str, where: str, text: str, **raw: Any) -> Evidence:
    return Evidence(
        METADATA,
        AI_GENERATED,
        by,
        None,
        f"{where}: {by} generation settings ({_excerpt(text)})",
        raw={"where": where, "excerpt": _excerpt(text), **raw},
    )


def from_png_text(chunks: dict[str, str]) -> list[Evidence]:
    """Evidence from PNG text chunks (see `png_text_chunks`)."""
    found: list[Evidence] = []
    keys = sorted(chunks)
    params = chunks.get("parameters")
    if params is not None:
        parsed = _json_dict(params)
        if "fooocus_scheme" in chunks or (parsed is not None and _looks_fooocus(parsed)):
            found.append(_evidence("Fooocus", "PNG text 'parameters'", params, keys=keys))
        elif _A1111_SETTINGS.search(params):
            by = "Forge" if re.search(r"\bVersion:\s*f\d", params) else "AUTOMATIC1111"
            found.append(_evidence(by, "PNG text 'parameters'", params, keys=keys))
        elif parsed is not None or "Steps:" in params:
            found.append(_evidence("a Stable Diffusion front-end", "PNG text 'parameters'", params))
    prompt, workflow = chunks.get("prompt"), chunks.get("workflow")
    if (prompt is not None and _looks_comfy(prompt)) or (
        workflow is not None and _json_dict(workflow) is not None and '"nodes"' in workflow
    ):
        text = prompt if prompt is not None else workflow or ""
        found.append(_evidence("ComfyUI", "PNG text 'prompt'/'workflow'", text, keys=keys))
    for key in ("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream"):
        if key in chunks:
            found.append(_evidence("InvokeAI", f"PNG text {key!r}", chunks[key], keys=keys))
            break
    software = chunks.get("Software", "")
    if software.strip().lower() == "novelai" or (
        chunks.get("Title") == "AI generated image" and "Comment" in chunks
    ):
        text = chunks.get("Comment") or chunks.get("Description") or software
        found.append(_evidence("NovelAI", "PNG text 'Software'/'Comment'", text, keys=keys))
    elif software and (generator := known_generator(software)):
        found.append(_evidence(generator, "PNG text 'Software'", software, keys=keys))
    return found


def _looks_fooocus(parsed: dict[str, Any]) -> bool:
    text = json.dumps(parsed)[:4096].lower()
    return "fooocus" in text or ("base_model" in parsed and "adm_guidance" in parsed)


def _looks_comfy(prompt: str) -> bool:
    parsed = _json_dict(prompt)
    if parsed is None:
        return False
    return any(isinstance(node, dict) and "class_type" in node for node in parsed.values()) or (
        "class_type" in prompt or '"inputs"' in prompt
    )


def from_exif(data: bytes) -> list[Evidence]:
    """Evidence from EXIF UserComment (A1111) and Software; never raises."""
    from PIL import Image, UnidentifiedImageError  # heavy: Pillow, only for stealth reads

    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            software = exif.get(0x0131)
            comment = exif.get_ifd(0x8769).get(0x9286)
            description = exif.get(0x010E)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, KeyError, TypeError):
        return []
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many kinds on garbage
        return []
    found: list[Evidence] = []
    text = _user_comment(comment) if comment is not None else None
    if text and _A1111_SETTINGS.search(text):
        found.append(_evidence("AUTOMATIC1111", "EXIF UserComment", text))
    elif isinstance(description, str) and _A1111_SETTINGS.search(description):
        found.append(
            _evidence("a Stable Diffusion front-end", "EXIF ImageDescription", description)
        )
    if isinstance(software, str) and (generator := known_generator(software)):
        found.append(_evidence(generator, "EXIF Software", software))
    return found


def _user_comment(value: Any) -> str | None:
    """Decode an EXIF UserComment: an 8-byte character-code prefix, then the text. A1111
    writes ``UNICODE`` + UTF-16 (big-endian through piexif; little-endian from some tools,
    so the byte order is guessed from where the zero bytes of ASCII text fall)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes):
        return None
    prefix, body = value[:8], value[8:]
    if prefix.startswith(b"UNICODE"):
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        codec = "utf-16-be" if even_zeros >= odd_zeros else "utf-16-le"
        return body.decode(codec, errors="replace").rstrip("\x00")
    if prefix.startswith(b"ASCII") or prefix == b"\x00" * 8:
        return body.decode("utf-8", errors="replace").rstrip("\x00")
    return value.decode("utf-8", errors="replace").rstrip("\x00")


def read_stealth(pixels: np.ndarray) -> list[Evidence]:
    """A1111 stealth metadata from an (H, W, 3|4) uint8 array; never raises.

    The extension writes bits column by column (x outer, y inner): a 15-byte signature,
    a 32-bit length in bits, then the (optionally gzipped) parameters.
    """
    try:
        text = _stealth_text(pixels)
    except (ValueError, OSError, EOFError, zlib.error, UnicodeDecodeError):
        return []
    if not text:
        return []
    return [_evidence("AUTOMATIC1111", "stealth metadata in pixel low bits", text)]


def _stealth_text(pixels: np.ndarray) -> str | None:
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or pixels.dtype != np.uint8:
        return None
    if pixels.shape[2] == 4:
        text = _decode_bits(lambda n: _column_bits(pixels[:, :, 3:4], n), _STEALTH_SIGNATURES)
        if text:
            return text
    return _decode_bits(lambda n: _column_bits(pixels[:, :, :3], n), _STEALTH_RGB_SIGNATURES)


def _column_bits(channels: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` low bits in the extension's order (x outer, y inner, then
    channel), reading only the columns needed: the signature check stays cheap."""
    height, width, depth = channels.shape
    columns = min(width, -(-count // max(1, height * depth)))
    bits = np.ascontiguousarray(channels[:, :columns].transpose(1, 0, 2)) & 1
    return bits.ravel()[:count]


def _decode_bits(bits_of: Callable[[int], np.ndarray], signatures: dict[str, bool]) -> str | None:
    head = bits_of(_SIG_BITS + 32)
    if head.size < _SIG_BITS + 32:
        return None
    signature = np.packbits(head[:_SIG_BITS]).tobytes().decode("latin-1")
    if signature not in signatures:
        return None
    length = int("".join(str(int(b)) for b in head[_SIG_BITS:]), 2)
    start = _SIG_BITS + 32
    if length <= 0 or length % 8 or length > 8 * MAX_TEXT:
        return None
    bits = bits_of(start + length)
    if bits.size < start + length:
        return None
    payload = np.packbits(bits[start:]).tobytes()
    if signatures[signature]:
        with gzip.GzipFile(fileobj=io.BytesIO(payload)) as handle:
            payload = handle.read(MAX_TEXT)
    return payload.decode("utf-8", errors="replace")
