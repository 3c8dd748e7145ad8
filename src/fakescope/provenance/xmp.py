"""XMP/IPTC labels: ``Iptc4xmpExt:DigitalSourceType``, ``photoshop:Credit`` and
``xmp:CreatorTool``.

Google and Midjourney write the IPTC digital-source-type term into XMP even where no C2PA
manifest is signed; Google also writes the credit line "Made with Google AI". XMP is
unsigned, so these claims carry no trust level; they are still strong evidence, because
nobody has a reason to label a real photograph "AI".

The packet is found by scanning the bytes for ``<x:xmpmeta`` (JPEG APP1, PNG iTXt, WebP
XMP chunk and TIFF tag 700 all store it verbatim) and read with regular expressions rather
than an XML parser: a malformed or hostile packet (entity bombs) then costs nothing.
"""

from __future__ import annotations

import re

from fakescope.provenance.content_credentials import (
    CAPTURE_TYPES,
    COMPOSITE_TRAINED,
    TRAINED,
)
from fakescope.provenance.evidence import AI_EDITED, AI_GENERATED, CAPTURED, XMP, Evidence
from fakescope.provenance.formats import png_text_chunks

_MAX_PACKET = 4 * 1024 * 1024
# Generators known to write their name into xmp:CreatorTool or EXIF/PNG Software. Word
# boundaries keep "Adobe Photoshop" or "GIMP" from ever matching.
KNOWN_GENERATORS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Midjourney", r"\bmidjourney\b"),
        ("DALL·E", r"\bdall[-·.\s]?e\b"),
        ("Adobe Firefly", r"\bfirefly\b"),
        ("Stable Diffusion", r"\bstable[-\s]?diffusion\b|\bSDXL\b"),
        ("NovelAI", r"\bnovel\s?ai\b"),
        ("ComfyUI", r"\bcomfy\s?ui\b"),
        ("AUTOMATIC1111", r"\bautomatic1111\b|\bstable-diffusion-webui\b"),
        ("InvokeAI", r"\binvoke\s?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("Draw Things", r"\bdraw things\b"),
        ("Leonardo.Ai", r"\bleonardo\.?ai\b"),
        ("Ideogram", r"\bideogram\b"),
        ("FLUX", r"\bflux(?:\.1)?[-\s](?:dev|schnell|pro)\b"),
        ("Google Gemini", r"\bgemini\b"),
        ("Bing Image Creator", r"\bbing image creator\b|\bimage creator from designer\b"),
        ("Runway", r"\brunway(?:ml)?\b"),
        ("NightCafe", r"\bnightcafe\b"),
        ("DreamStudio", r"\bdreamstudio\b"),
    )
)
_CREDIT_GENERATED = re.compile(
    r"\b(?:made|created|generated)\s+(?:with|by|using)\s+(?:[\w.-]+\s+){0,3}AI\b", re.IGNORECASE
)
_CREDIT_EDITED = re.compile(r"\bedited\s+(?:with|by|using)\s+(?:[\w.-]+\s+){0,3}AI\b", re.I)


def known_generator(text: str) -> str | None:
    """The name of a known AI generator mentioned in a tool/software string, if any."""
    for name, pattern in KNOWN_GENERATORS:
        if pattern.search(text):
            return name
    return None


def find_xmp_packets(data: bytes) -> list[str]:
    """Every XMP packet stored verbatim in ``data``, plus compressed PNG iTXt packets."""
    packets: list[str] = []
    start = data.find(b"<x:xmpmeta")
    while start != -1 and len(packets) < 8:
        end = data.find(b"</x:xmpmeta>", start)
        if end == -1 or end - start > _MAX_PACKET:
            break
        packets.append(data[start : end + 12].decode("utf-8", errors="replace"))
        start = data.find(b"<x:xmpmeta", end)
    if data.startswith(b"\x89PNG") and not packets:
        packets += _compressed_png_xmp(data)
    return packets


def _compressed_png_xmp(data: bytes) -> list[str]:
    # A zlib-compressed iTXt "XML:com.adobe.xmp" chunk is not visible to a byte scan.
    if b"XML:com.adobe.xmp" not in data:
        return []
    packet = png_text_chunks(data).get("XML:com.adobe.xmp")
    return [packet[:_MAX_PACKET]] if packet else []


def _values(packet: str, prop: str) -> list[str]:
    """Values of an XMP property in attribute, element, rdf:li and rdf:resource forms."""
    name = rf"(?:[\w-]+:)?{prop}"
    values = re.findall(rf"\b{name}\s*=\s*\"([^\"]*)\"", packet)
    values += re.findall(rf"\b{name}\s*=\s*'([^']*)'", packet)
    for body in re.findall(rf"<{name}\b[^>]*?(?:/>|>(.*?)</{name}>)", packet, re.S):
        values += re.findall(r"<rdf:li[^>]*>(.*?)</rdf:li>", body, re.S) or [body]
    values += re.findall(rf"<{name}\b[^>]*rdf:resource\s*=\s*\"([^\"]*)\"", packet)
    return [re.sub(r"<[^>]+>", "", v).strip() for v in values if v and v.strip()]


def read_xmp(data: bytes) -> list[Evidence]:
    """Evidence from the XMP packets in ``data``; never raises."""
    evidence: list[Evidence] = []
    for packet in find_xmp_packets(data):
        evidence += _from_packet(packet)
    # One piece per (claim, by): a packet repeated in two containers is one statement.
    unique: dict[tuple[str, str | None, str], Evidence] = {}
    for item in evidence:
        unique.setdefault((item.claim, item.by, item.detail), item)
    return list(unique.values())


def _from_packet(packet: str) -> list[Evidence]:
    found: list[Evidence] = []
    for value in _values(packet, "DigitalSourceType"):
        term = value.rsplit("/", 1)[-1].strip()
        claim = {TRAINED: AI_GENERATED, COMPOSITE_TRAINED: AI_EDITED}.get(term)
        if claim is None and term in CAPTURE_TYPES:
            claim = CAPTURED
        if claim is not None:
            found.append(
                Evidence(
                    XMP,
                    claim,
                    None,
                    None,
                    f"XMP Iptc4xmpExt:DigitalSourceType = {term} (unsigned)",
                    raw={"property": "Iptc4xmpExt:DigitalSourceType", "value": value},
                )
            )
    for value in _values(packet, "Credit"):
        claim = (
            AI_EDITED
            if _CREDIT_EDITED.search(value)
            else AI_GENERATED
            if _CREDIT_GENERATED.search(value)
            else None
        )
        if claim is not None:
            found.append(
                Evidence(
                    XMP,
                    claim,
                    value,
                    None,
                    f"XMP photoshop:Credit = {value!r} (unsigned)",
                    raw={"property": "photoshop:Credit", "value": value},
                )
            )
    for value in _values(packet, "CreatorTool"):
        generator = known_generator(value)
        if generator is not None:
            found.append(
                Evidence(
                    XMP,
                    AI_GENERATED,
                    generator,
                    None,
                    f"XMP xmp:CreatorTool = {value!r}, a known AI generator (unsigned)",
                    raw={"property": "xmp:CreatorTool", "value": value},
                )
            )
    return found
