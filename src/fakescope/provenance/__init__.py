"""Provenance evidence: C2PA Content Credentials, XMP/IPTC labels, generator metadata and
the Stable Diffusion invisible watermark, read offline from a file's bytes.

Where such a signal exists it is far stronger evidence than any pixel classifier, and its
absence is no evidence at all. `read_provenance` says what a file claims and how far each
claim can be trusted; `combine` folds that into the detector's p(fake).

    from fakescope.provenance import read_provenance, combine
    evidence = read_provenance(data, "photo.jpg")
    verdict = combine(p_fake_pixels, evidence, threshold=detector.meta.threshold)
"""

from fakescope.provenance.combine import Combined, combine, evidence_weight
from fakescope.provenance.content_credentials import shipped_trust_anchors
from fakescope.provenance.evidence import (
    AI_CLAIMS,
    SIGNALS,
    Evidence,
    ProvenanceReport,
)
from fakescope.provenance.read import (
    FileProvenance,
    load_trust_anchors,
    read_paths,
    read_provenance,
    read_provenance_report,
)

__all__ = [
    "AI_CLAIMS",
    "SIGNALS",
    "Combined",
    "Evidence",
    "FileProvenance",
    "ProvenanceReport",
    "combine",
    "evidence_weight",
    "load_trust_anchors",
    "read_provenance",
    "read_paths",
    "read_provenance_report",
    "shipped_trust_anchors",
]
