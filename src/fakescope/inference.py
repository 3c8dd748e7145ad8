"""Images, files, folders and archives -> verdicts: the names `fakescope.inference` has
always offered, now at home in `fakescope.verdict` (the pipeline, the rule and the
`Prediction` with its field declarations). Kept so existing imports keep working."""

from __future__ import annotations

from fakescope.data.inputs import ImageInput
from fakescope.verdict.pipeline import face_selector, predict_inputs
from fakescope.verdict.prediction import CSV_FIELDS, FACE_JOINED, Prediction, evidence_text
from fakescope.verdict.rule import (
    OUT_OF_DOMAIN,
    UNSURE_BAND,
    report_joined_faces,
    verdict,
    verdicts,
)

__all__ = [
    "CSV_FIELDS",
    "FACE_JOINED",
    "OUT_OF_DOMAIN",
    "UNSURE_BAND",
    "ImageInput",
    "Prediction",
    "evidence_text",
    "face_selector",
    "predict_inputs",
    "report_joined_faces",
    "verdict",
    "verdicts",
]
