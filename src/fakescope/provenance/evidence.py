"""The one shape every provenance reader returns: a piece of `Evidence`.

Each reader (C2PA, XMP, generator metadata, watermark, camera EXIF) says *what* a file claims about
itself and *how far the claim can be trusted*, in the same words, so that the CLI, the
API and the verdict combination (`combine.py`) never need to know which reader spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

# -- signals: where the evidence was read ----------------------------------------------------
C2PA: Final = "c2pa"
XMP: Final = "xmp"
METADATA: Final = "metadata"
WATERMARK: Final = "watermark"
EXIF: Final = "exif"  # camera and editing metadata
SIGNALS: Final = (C2PA, XMP, METADATA, WATERMARK, EXIF)

# -- claims: what the file says about itself --------------------------------------------------
AI_GENERATED: Final = "ai_generated"
AI_EDITED: Final = "ai_edited"
CAPTURED: Final = "captured"
TAMPERED: Final = "tampered"
REMOTE_MANIFEST: Final = "remote_manifest"
# A readable manifest that states neither AI nor capture (e.g. a Photoshop edit without
# generative tools, or `algorithmicMedia`, which is not generative AI).
SIGNED: Final = "signed"
# Camera EXIF (make, model, lens, exposure, capture date, GPS, software): shown to people,
# never counted for "real" (anyone can write EXIF).
CAPTURE_METADATA: Final = "capture_metadata"
# Metadata that contradicts itself or the file (a camera with a generator's software tag,
# a capture after the C2PA claim, a generator's image size under a camera's EXIF).
INCONSISTENT_METADATA: Final = "inconsistent_metadata"
AI_CLAIMS: Final = frozenset({AI_GENERATED, AI_EDITED})

# -- trust: how far the claim can be believed -------------------------------------------------
TRUSTED: Final = "trusted"  # signature intact, signer chains to a trust anchor
VALID: Final = "valid"  # signature intact, signer not on any trust list we hold
CERTIFICATE_PROBLEM: Final = "certificate_problem"  # intact, but expired/bad EKU/...
INTEGRITY_FAILURE: Final = "integrity_failure"  # pixels or claim changed after signing
# Intact signatures: a certificate problem does not make an honest label false.
INTACT: Final = frozenset({TRUSTED, VALID, CERTIFICATE_PROBLEM})


@dataclass(frozen=True)
class Evidence:
    """One thing a file says about its origin, and how far that can be trusted.

    Attributes:
        signal: where it was read: ``c2pa``, ``xmp``, ``metadata``, ``watermark`` or
            ``exif``.
        claim: what it says: ``ai_generated``, ``ai_edited``, ``captured``, ``tampered``,
            ``remote_manifest``, ``signed`` (a manifest that states neither AI nor capture),
            ``capture_metadata`` (camera EXIF) or ``inconsistent_metadata``.
        by: the generator, signer or tool named by the evidence, when there is one.
        trust: ``trusted``, ``valid``, ``certificate_problem``, ``integrity_failure`` for
            signed evidence; ``None`` for unsigned metadata, EXIF and watermarks.
        detail: one human-readable sentence for analysts.
        decisive: strong enough to override the pixel score (an intact AI-labelled C2PA
            manifest, an AI watermark).
        raw: reader-specific facts (validation codes, p-value, chunk names...), JSON-safe.
    """

    signal: str
    claim: str
    by: str | None
    trust: str | None
    detail: str
    decisive: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_ai(self) -> bool:
        """True when the evidence labels the image as generated or edited by AI."""
        return self.claim in AI_CLAIMS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the same in CLI output, API responses and reports."""
        return {
            "signal": self.signal,
            "claim": self.claim,
            "by": self.by,
            "trust": self.trust,
            "detail": self.detail,
            "decisive": self.decisive,
            "raw": dict(self.raw),
        }


@dataclass(frozen=True)
class ProvenanceReport:
    """Everything read from one file: the evidence, plus notes on parts that could not be
    read (a malformed manifest is evidence of nothing, but an analyst may want to know)."""

    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence": [e.to_dict() for e in self.evidence],
            "notes": list(self.notes),
        }
