"""Verdicts: the `Prediction` and its field declarations (`prediction`), the one rule that
judges a pixel score with its evidence and domain (`rule`), the pipeline from bytes to
verdicts that every caller runs (`pipeline`), and the Parquet and API schemas derived from
the declarations (`schemas`, imported by its users: it needs pyarrow and pydantic)."""

from fakescope.verdict.pipeline import (
    Prepared,
    ProvenanceReader,
    face_selector,
    judge,
    predict_inputs,
    prepare_image,
    provenance_of,
    read_item,
)
from fakescope.verdict.prediction import CSV_FIELDS, FACE_JOINED, Prediction, evidence_text
from fakescope.verdict.rule import (
    OUT_OF_DOMAIN,
    UNSURE_BAND,
    at_threshold,
    domain_score_of,
    report_joined_faces,
    verdict,
    verdicts,
)

__all__ = [
    "CSV_FIELDS",
    "FACE_JOINED",
    "OUT_OF_DOMAIN",
    "UNSURE_BAND",
    "Prediction",
    "Prepared",
    "ProvenanceReader",
    "at_threshold",
    "domain_score_of",
    "evidence_text",
    "face_selector",
    "judge",
    "predict_inputs",
    "prepare_image",
    "provenance_of",
    "read_item",
    "report_joined_faces",
    "verdict",
    "verdicts",
]
