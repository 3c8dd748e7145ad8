"""One verdict from the pixel score and the provenance evidence.

The rule works in log-odds, because evidence from independent sources adds there:

    logit(p_fake) = clip(logit(p_fake_pixels), ±PIXEL_LOGIT_LIMIT) + Σ_kinds weight(kind)

(never moving p_fake against the evidence's direction, and not at all without evidence)

- Each *kind* of evidence (signal, claim) counts once, with the largest weight among its
  pieces: three text chunks written by one A1111 run are one statement, not three.
- Absent evidence adds nothing: most real images carry no provenance at all, so missing
  provenance is never evidence of "real".
- AI labels add large positive weights; an unsigned label (XMP, generator metadata) is
  strong enough on its own to turn any pixel score into "fake" (+9 against a pixel logit
  clipped to ±6 gives p_fake >= 0.95), because nobody labels a photograph "AI" by accident.
- *Decisive* evidence (an intact AI-labelled C2PA manifest, an AI watermark) overrides
  the pixels: p_fake becomes at least `DECISIVE_P_FAKE`.
- Capture evidence (a valid C2PA manifest from a camera or capture app, without AI
  actions) counts mildly for "real": a signature proves who signed, not that the signer's
  camera saw a real scene. Unsigned capture claims count for nothing: anyone can write XMP.
- A broken signature (``tampered``) raises suspicion a little; a remote manifest that was
  not fetched says nothing.
- Camera EXIF (``capture_metadata``) counts for nothing: anyone can write it, so it can
  never move a verdict towards "real"; it is shown, not weighed. EXIF that contradicts
  itself or the file (``inconsistent_metadata``) raises suspicion a little, as a broken
  signature does.

The rule is monotone: every AI claim has a weight >= 0 and the override only raises
p_fake, so more AI evidence never lowers p_fake (tested with hypothesis).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fakescope.provenance.evidence import (
    AI_EDITED,
    AI_GENERATED,
    C2PA,
    CAPTURE_METADATA,
    CAPTURED,
    CERTIFICATE_PROBLEM,
    INCONSISTENT_METADATA,
    INTEGRITY_FAILURE,
    METADATA,
    TAMPERED,
    TRUSTED,
    VALID,
    WATERMARK,
    XMP,
    Evidence,
)

PIXEL_LOGIT_LIMIT = 6.0  # p in [0.0025, 0.9975]: no detector is surer than that off-domain
DECISIVE_P_FAKE = 0.99
# Log-odds added by one kind of evidence, by (signal, claim, trust). Missing entries: 0.
_AI_WEIGHTS: dict[str, float] = {
    C2PA: 9.0,  # intact AI-labelled manifest (also decisive)
    WATERMARK: 9.0,  # also decisive
    XMP: 9.0,
    METADATA: 9.0,
}
_AI_WEIGHT_BROKEN_SIGNATURE = 2.0  # the label was there, but the file changed since
_TAMPERED_WEIGHT = 0.5
CAPTURE_METADATA_WEIGHT = 0.0  # camera EXIF: shown, never counted (anyone can write it)
INCONSISTENT_METADATA_WEIGHT = 0.5  # like a broken signature: a little towards fake
_CAPTURE_WEIGHTS: dict[str | None, float] = {
    TRUSTED: -1.5,
    VALID: -0.75,
    CERTIFICATE_PROBLEM: -0.5,
}


def evidence_weight(item: Evidence) -> float:
    """Log-odds one piece of evidence adds to logit(p_fake)."""
    if item.claim in (AI_GENERATED, AI_EDITED):
        if item.trust == INTEGRITY_FAILURE:
            return _AI_WEIGHT_BROKEN_SIGNATURE
        return _AI_WEIGHTS.get(item.signal, 0.0)
    if item.claim == TAMPERED:
        return _TAMPERED_WEIGHT
    if item.claim == CAPTURE_METADATA:
        return CAPTURE_METADATA_WEIGHT
    if item.claim == INCONSISTENT_METADATA:
        return INCONSISTENT_METADATA_WEIGHT
    if item.claim == CAPTURED and item.signal == C2PA:
        return _CAPTURE_WEIGHTS.get(item.trust, 0.0)
    return 0.0


@dataclass(frozen=True)
class Combined:
    """The verdict from pixels and provenance.

    Attributes:
        p_fake: the final probability that the image is AI-generated or manipulated.
        p_fake_pixels: the detector's score alone, unchanged.
        overridden: decisive evidence was present: p_fake is at least `DECISIVE_P_FAKE`
            whatever the pixels said.
        log_odds: what the evidence added to logit(p_fake) (before any override).
        disagreement: text when pixels and provenance point different ways, else None.
        weights: the log-odds counted per evidence kind ("signal/claim").
    """

    p_fake: float
    p_fake_pixels: float
    overridden: bool
    log_odds: float
    disagreement: str | None
    weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_fake": self.p_fake,
            "p_fake_pixels": self.p_fake_pixels,
            "overridden": self.overridden,
            "log_odds": self.log_odds,
            "disagreement": self.disagreement,
            "weights": dict(self.weights),
        }


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    z = math.exp(x)
    return z / (1 + z)


def combine(
    p_fake_pixels: float, evidence: Iterable[Evidence], *, threshold: float = 0.5
) -> Combined:
    """Combine the pixel score with provenance evidence into one p_fake.

    Args:
        p_fake_pixels: the detector's calibrated p(fake) for the image.
        evidence: what `read_provenance` found (may be empty).
        threshold: the detector's decision threshold, used only to phrase disagreements.
            The caller applies its own threshold and unsure band to the returned p_fake.
    """
    if not 0.0 <= p_fake_pixels <= 1.0 or math.isnan(p_fake_pixels):
        raise ValueError(f"p_fake_pixels must be in [0, 1], got {p_fake_pixels}")
    items = list(evidence)
    weights: dict[str, float] = {}
    for item in items:
        kind = f"{item.signal}/{item.claim}"
        weight = evidence_weight(item)
        if kind not in weights or abs(weight) > abs(weights[kind]):
            weights[kind] = weight
    log_odds = sum(weights.values())
    pixel_logit = max(-PIXEL_LOGIT_LIMIT, min(PIXEL_LOGIT_LIMIT, _logit(p_fake_pixels)))
    shifted = _sigmoid(pixel_logit + log_odds)
    # Evidence only ever moves p_fake in its own direction, and no evidence leaves the
    # pixel score exactly as it was (the clip must not move a p of 0.9999 down).
    if log_odds > 0:
        p_fake = max(p_fake_pixels, shifted)
    elif log_odds < 0:
        p_fake = min(p_fake_pixels, shifted)
    else:
        p_fake = p_fake_pixels
    decisive = [e for e in items if e.decisive and e.is_ai]
    overridden = bool(decisive)
    if decisive:
        p_fake = max(p_fake, DECISIVE_P_FAKE)
    return Combined(
        p_fake=p_fake,
        p_fake_pixels=p_fake_pixels,
        overridden=overridden,
        log_odds=log_odds,
        disagreement=_disagreement(p_fake_pixels, items, threshold),
        weights=weights,
    )


def _disagreement(p_pixels: float, items: list[Evidence], threshold: float) -> str | None:
    ai = [e for e in items if e.is_ai and e.trust != INTEGRITY_FAILURE]
    captured = [e for e in items if e.claim == CAPTURED and e.signal == C2PA]
    if ai and p_pixels < threshold:
        first = ai[0]
        return (
            f"pixels say real (p_fake {p_pixels:.3f}) but {first.signal} evidence says "
            f"{first.claim.replace('_', '-')}" + (f" by {first.by}" if first.by else "")
        )
    if captured and not ai and p_pixels >= threshold:
        return f"pixels say fake (p_fake {p_pixels:.3f}) but a C2PA manifest says captured" + (
            f" by {captured[0].by}" if captured[0].by else ""
        )
    return None
