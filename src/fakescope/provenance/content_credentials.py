"""C2PA Content Credentials, read offline with the official ``c2pa-python`` bindings.

Why the care below:

- The AI label is often not in the active manifest: ChatGPT signs an active manifest whose
  *parent* ingredient (``parentOf``) is the DALL·E manifest carrying ``c2pa.created`` with
  ``digitalSourceType = trainedAlgorithmicMedia``. So the ingredient chain is walked.
- A certificate problem (signer not on a trust list, expired, missing EKU) does not make an
  honest label false: Bing Image Creator's 2024 manifests lack an EKU but say truthfully
  that the image is AI-generated. An *integrity* failure (pixels or claim changed after
  signing) does: it becomes a ``tampered`` claim.
- ``algorithmicMedia`` (procedural, non-learned media) and training-and-mining permissions
  are not AI labels; legacy writers without ``digitalSourceType`` are recognised by an
  action description such as "AI Generated Image".
- Remote manifests are never fetched: an uploaded file must not make the server request a
  URL of the uploader's choosing. Their presence is reported as ``remote_manifest``.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fakescope.provenance.evidence import (
    AI_EDITED,
    AI_GENERATED,
    C2PA,
    CAPTURED,
    CERTIFICATE_PROBLEM,
    INTACT,
    INTEGRITY_FAILURE,
    REMOTE_MANIFEST,
    SIGNED,
    TAMPERED,
    TRUSTED,
    VALID,
    Evidence,
)
from fakescope.provenance.formats import c2pa_mime, sniff_mime

IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = "trainedAlgorithmicMedia"
COMPOSITE_TRAINED = "compositeWithTrainedAlgorithmicMedia"
# Source types that describe a capture of the physical world.
CAPTURE_TYPES = frozenset(
    {"digitalCapture", "negativeFilm", "positiveFilm", "print", "compositeCapture"}
)
# Legacy writers (Bing Image Creator 2024) put the label only in a description.
_LEGACY_AI_TEXT = re.compile(
    r"\bAI[- ]generated\b|\bgenerated (?:by|with) (?:an? )?AI\b|\bcreated (?:by|with) AI\b",
    re.IGNORECASE,
)
_REMOTE_URL = re.compile(r"https?://[^\s'\"<>]+")

# Validation codes that mean the signed content or claim changed after signing, or that
# parts it vouches for are gone. A "malformed" code (a writer that does not conform, such
# as a created action without digitalSourceType) is not tampering.
_INTEGRITY_MARKERS = (
    ".mismatch",
    ".missing",
    ".inaccessible",
    ".undeclared",
    ".outsideManifest",
    ".notRedacted",
    ".selfRedacted",
    ".multipleHardBindings",
)
# Codes about who signed and when; these never make the content itself untrue.
_CERTIFICATE_PREFIXES = (
    "signingCredential.",
    "timeStamp.",
    "claimSignature.outsideValidity",
    "cawg.",
)
_MAX_CHAIN_DEPTH = 32

_SHIPPED_LISTS = ("C2PA-TRUST-LIST.pem", "C2PA-TSA-TRUST-LIST.pem")


def shipped_trust_anchors() -> str:
    """The official C2PA trust lists (signers and time-stamp authorities) shipped with
    fakescope, as one PEM bundle (c2pa-org/conformance-public, CC BY 4.0)."""
    folder = resources.files("fakescope.provenance") / "trust"
    return "\n".join((folder / name).read_text(encoding="utf-8") for name in _SHIPPED_LISTS)


def _settings(extra_anchors: str | None) -> dict[str, Any]:
    trust: dict[str, Any] = {"trust_anchors": shipped_trust_anchors()}
    if extra_anchors:
        trust["user_anchors"] = extra_anchors
    return {
        "verify": {
            "verify_after_reading": True,
            "verify_trust": True,
            "remote_manifest_fetch": False,  # never fetch what an uploaded file names
            "ocsp_fetch": False,  # nor revocation responders: offline and deterministic
        },
        "trust": trust,
    }


_contexts: dict[str | None, Any] = {}
_contexts_lock = threading.Lock()


def _context(extra_anchors: str | None) -> Any:
    """One c2pa Context per set of anchors: parsing ~50 certificates costs more than
    reading a manifest, and a Context may be shared by many Readers."""
    import c2pa  # type: ignore[import-untyped]

    with _contexts_lock:
        ctx = _contexts.get(extra_anchors)
        if ctx is None:
            ctx = c2pa.Context.from_dict(_settings(extra_anchors))
            _contexts[extra_anchors] = ctx
        return ctx


def may_carry_c2pa(data: bytes) -> bool:
    """Cheap pre-check: a C2PA store lives in a JUMBF superbox (type ``jumb``); a remote
    manifest is named by XMP ``dcterms:provenance``. Files with neither skip the reader."""
    return b"jumb" in data or b"provenance" in data


@dataclass(frozen=True)
class _Label:
    """What one manifest (or its parent chain) says about the image's origin."""

    claim: str
    agent: str | None
    how: str  # e.g. "c2pa.created, digitalSourceType trainedAlgorithmicMedia"
    manifest: str  # the claim generator of the manifest holding it


def read_c2pa(data: bytes, *, trust_anchors: str | None = None) -> tuple[list[Evidence], list[str]]:
    """Evidence from the C2PA manifest store embedded in ``data``; never raises.

    Args:
        data: the file's bytes.
        trust_anchors: extra PEM anchors trusted besides the shipped C2PA lists.

    Returns:
        (evidence, notes): notes say why a store present in the file could not be read.
    """
    if not may_carry_c2pa(data):
        return [], []
    try:
        import c2pa  # optional: degrade when missing
    except ImportError:  # pragma: no cover - a core dependency, but degrade, never crash
        return [], ["c2pa-python is not installed: Content Credentials not read"]
    try:
        reader = c2pa.Reader(
            c2pa_mime(sniff_mime(data)), io.BytesIO(data), context=_context(trust_anchors)
        )
        try:
            store = json.loads(reader.json())
        finally:
            reader.close()
    except c2pa.C2paError as exc:
        return _from_error(str(exc))
    except (ValueError, TypeError, OSError) as exc:
        return [], [f"C2PA: unreadable manifest store ({exc})"]
    try:
        return _from_store(store), []
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [], [f"C2PA: malformed manifest store ({exc})"]


def _from_error(message: str) -> tuple[list[Evidence], list[str]]:
    if "ManifestNotFound" in message or "no JUMBF data found" in message:
        return [], []
    if message.startswith("Remote") or "remote manifest" in message.lower():
        match = _REMOTE_URL.search(message)
        url = match.group(0) if match else None
        detail = (
            f"the file names a remote C2PA manifest at {url}; not fetched (offline by design)"
            if url
            else "the file names a remote C2PA manifest; not fetched (offline by design)"
        )
        evidence = Evidence(
            C2PA, REMOTE_MANIFEST, None, None, detail, raw={"url": url, "error": message}
        )
        return [evidence], []
    return [], [f"C2PA: unreadable manifest store ({message})"]


def _from_store(store: dict[str, Any]) -> list[Evidence]:
    manifests: dict[str, Any] = store.get("manifests") or {}
    active = store.get("active_manifest")
    if not manifests or active not in manifests:
        return []
    trust, codes = _trust(store)
    manifest = manifests[active]
    signer = _signer(manifest)
    generator = _generator(manifest)
    label = _chain_label(manifests, active)
    raw = {
        "validation_state": store.get("validation_state"),
        "failure_codes": codes,
        "active_manifest": active,
        "claim_generator": generator,
        "signer": signer,
        "manifests": len(manifests),
        "claim_time": _claim_time(manifest),
    }
    evidence: list[Evidence] = []
    trust_text = _trust_text(trust, codes)
    if trust == INTEGRITY_FAILURE:
        evidence.append(
            Evidence(
                C2PA,
                TAMPERED,
                signer,
                trust,
                f"C2PA manifest from {generator or 'an unnamed tool'} no longer matches the "
                f"file: {', '.join(codes) or 'integrity check failed'}",
                raw=raw,
            )
        )
    if label is not None:
        intact = trust in INTACT
        who = label.agent or label.manifest or generator
        evidence.append(
            Evidence(
                C2PA,
                label.claim,
                who,
                trust,
                f"C2PA {label.how} in the manifest of {label.manifest or 'an unnamed tool'}, "
                f"signed by {signer or 'an unnamed signer'}; {trust_text}",
                decisive=intact and label.claim in (AI_GENERATED, AI_EDITED),
                raw={**raw, "agent": label.agent},
            )
        )
    elif trust != INTEGRITY_FAILURE:
        evidence.append(
            Evidence(
                C2PA,
                SIGNED,
                signer,
                trust,
                f"C2PA manifest from {generator or 'an unnamed tool'}, signed by "
                f"{signer or 'an unnamed signer'}, states no AI generation nor capture"
                f"{_source_types_text(manifests, active)}; {trust_text}",
                raw=raw,
            )
        )
    return evidence


def _trust(store: dict[str, Any]) -> tuple[str, list[str]]:
    """Trust of the whole store, and the failure codes behind it."""
    codes = _failure_codes(store)
    if any(_is_integrity(code) for code in codes):
        return INTEGRITY_FAILURE, codes
    state = store.get("validation_state")
    if state == "Trusted":
        return TRUSTED, codes
    # "untrusted" means only "not on a list we hold": the signature itself is intact.
    problems = [
        c for c in codes if c != "signingCredential.untrusted" and not c.startswith("cawg.")
    ]
    if state == "Invalid" or problems:
        return CERTIFICATE_PROBLEM, codes
    return VALID, codes


def _failure_codes(store: dict[str, Any]) -> list[str]:
    codes: list[str] = []
    for status in store.get("validation_status") or []:
        if isinstance(status, dict) and isinstance(status.get("code"), str):
            codes.append(status["code"])
    results = store.get("validation_results") or {}
    for status in (results.get("activeManifest") or {}).get("failure") or []:
        if isinstance(status, dict) and isinstance(status.get("code"), str):
            codes.append(status["code"])
    for delta in results.get("ingredientDeltas") or []:
        deltas = (delta or {}).get("validationDeltas") or {}
        for status in deltas.get("failure") or []:
            if isinstance(status, dict) and isinstance(status.get("code"), str):
                codes.append(status["code"])
    return sorted(set(codes))


def _is_integrity(code: str) -> bool:
    if code.startswith(_CERTIFICATE_PREFIXES):
        return False
    return any(marker in code for marker in _INTEGRITY_MARKERS)


def _trust_text(trust: str, codes: list[str]) -> str:
    if trust == TRUSTED:
        return "signer on a trust list"
    if trust == VALID:
        return "signature intact, signer not on the C2PA trust list"
    if trust == CERTIFICATE_PROBLEM:
        return f"signature intact, certificate or conformance problem ({', '.join(codes)})"
    return f"integrity failure ({', '.join(codes)})"


def _signer(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("signature_info") or {}
    issuer, name = info.get("issuer"), info.get("common_name")
    if issuer and name and name != issuer:
        return f"{issuer} ({name})"
    return issuer or name or None


def _claim_time(manifest: dict[str, Any]) -> str | None:
    """When the active claim was made (ISO 8601): the signature's time-stamp when it has
    one, else the latest ``when`` of its actions (the claim cannot predate them)."""
    stamp = (manifest.get("signature_info") or {}).get("time")
    if isinstance(stamp, str) and parse_timestamp(stamp) is not None:
        return stamp
    times = [(parse_timestamp(a.get("when")), a.get("when")) for a in _actions(manifest)]
    known = [(when, text) for when, text in times if when is not None]
    return str(max(known)[1]) if known else None


def parse_timestamp(value: Any) -> datetime.datetime | None:
    """An ISO 8601 date-time with a time zone (``Z`` or an offset), or None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info") or []
    if isinstance(infos, list):
        for info in infos:
            if isinstance(info, dict) and info.get("name"):
                return str(info["name"])
    generator = manifest.get("claim_generator")
    return str(generator) if generator else None


def _chain_label(manifests: dict[str, Any], active: str) -> _Label | None:
    """The strongest origin label along the active manifest and its parentOf chain: AI
    generation beats AI editing beats capture (an AI edit of a camera photo is AI-edited)."""
    best: _Label | None = None
    for depth, (_, manifest) in enumerate(_parent_chain(manifests, active)):
        found = _manifest_label(manifest)
        if found is None:
            continue
        if depth > 0:
            found = _Label(
                found.claim, found.agent, f"{found.how} (parent manifest)", found.manifest
            )
        if best is None or _stronger(found.claim, best.claim):
            best = found
    return best


def _parent_chain(manifests: dict[str, Any], active: str) -> Iterator[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    current: str | None = active
    while current and current in manifests and current not in seen and len(seen) < _MAX_CHAIN_DEPTH:
        seen.add(current)
        manifest = manifests[current]
        yield current, manifest
        current = None
        for ingredient in manifest.get("ingredients") or []:
            if isinstance(ingredient, dict) and ingredient.get("relationship") == "parentOf":
                parent = ingredient.get("active_manifest")
                if isinstance(parent, str):
                    current = parent
                break


def _manifest_label(manifest: dict[str, Any]) -> _Label | None:
    generator = _generator(manifest)
    label: _Label | None = None
    for action in _actions(manifest):
        name = str(action.get("action") or "")
        source = _source_type(action.get("digitalSourceType"))
        agent = _agent(action.get("softwareAgent"))
        if source == TRAINED:
            claim = AI_GENERATED if name == "c2pa.created" else AI_EDITED
            found = _Label(claim, agent, f"{name}, digitalSourceType {source}", generator or "")
        elif source == COMPOSITE_TRAINED:
            found = _Label(AI_EDITED, agent, f"{name}, digitalSourceType {source}", generator or "")
        elif source is None and _legacy_ai_text(action):
            claim = AI_GENERATED if name == "c2pa.created" else AI_EDITED
            text = _legacy_ai_text(action)
            found = _Label(claim, agent, f"{name}, description {text!r}", generator or "")
        elif source in CAPTURE_TYPES and name == "c2pa.created":
            found = _Label(CAPTURED, agent, f"{name}, digitalSourceType {source}", generator or "")
        else:
            continue
        if label is None or _stronger(found.claim, label.claim):
            label = found
    return label


_RANK = {AI_GENERATED: 3, AI_EDITED: 2, CAPTURED: 1}


def _stronger(a: str, b: str) -> bool:
    return _RANK[a] > _RANK[b]


def _actions(manifest: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict):
            continue
        if not str(assertion.get("label") or "").startswith("c2pa.actions"):
            continue
        data = assertion.get("data") or {}
        for action in data.get("actions") or [] if isinstance(data, dict) else []:
            if isinstance(action, dict):
                yield action


def _source_type(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = str(value).strip()
    return text.rsplit("/", 1)[-1] if "/" in text else text


def _agent(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def _legacy_ai_text(action: dict[str, Any]) -> str | None:
    params = action.get("parameters")
    texts = [action.get("description")]
    if isinstance(params, dict):
        texts.append(params.get("description"))
    for text in texts:
        if isinstance(text, str) and _LEGACY_AI_TEXT.search(text):
            return text
    return None


def _source_types_text(manifests: dict[str, Any], active: str) -> str:
    types = sorted(
        {
            source
            for _, manifest in _parent_chain(manifests, active)
            for action in _actions(manifest)
            if (source := _source_type(action.get("digitalSourceType")))
        }
    )
    return f" (digitalSourceType {', '.join(types)})" if types else ""
