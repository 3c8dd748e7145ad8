"""The Parquet (Arrow) schema and the HTTP API's response model of a `Prediction`, derived
from its field declarations (`fakescope.verdict.prediction`): nothing here names a field
except the API's `filename` (the upload's name, in place of `path`)."""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field, create_model

from fakescope.verdict.prediction import FieldSpec, Prediction, field_specs

__all__ = ["EvidenceItem", "FaceBoxModel", "arrow_rows", "arrow_schema", "verdict_model"]

_ARROW = {
    "string": pa.string(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "json": pa.string(),  # JSON text: a list of {signal, claim, by, trust, ...}, {x, y, w, h}
}


def arrow_schema(cls: type[Prediction] = Prediction) -> pa.Schema:
    """The Parquet columns of `fakescope score`: every field declared with a `parquet`
    type, in declaration order; `path` is never null."""
    return pa.schema(
        [
            pa.field(spec.name, _ARROW[spec.parquet], nullable=spec.name != "path")
            for spec in field_specs(cls)
            if spec.parquet is not None
        ]
    )


def arrow_rows(predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """Predictions as Parquet rows (`arrow_schema`): "json" fields as JSON text (None when
    empty), the others as they are."""
    specs = [spec for spec in field_specs() if spec.parquet is not None]
    return [
        {spec.name: _arrow_value(spec, getattr(p, spec.name)) for spec in specs}
        for p in predictions
    ]


def _arrow_value(spec: FieldSpec, value: Any) -> Any:
    if spec.parquet == "json":
        return json.dumps(value) if value else None
    return value


class EvidenceItem(BaseModel):
    """One thing the file says about its origin (``fakescope.provenance.Evidence``)."""

    signal: str = Field(
        description="where it was read: c2pa, xmp, metadata, watermark or exif (camera "
        "and editing metadata)"
    )
    claim: str = Field(
        description="what it says: ai_generated, ai_edited, captured, tampered, "
        "remote_manifest, signed (a manifest stating neither AI nor capture), "
        "capture_metadata (camera EXIF: make, model, lens, exposure, capture date, GPS "
        "present or not, software in raw; shown, not counted in p_fake) or "
        "inconsistent_metadata (EXIF contradicting itself or the file)"
    )
    by: str | None = Field(description="the generator, signer or tool it names, if any")
    trust: str | None = Field(
        description="signed evidence: trusted, valid, certificate_problem or "
        "integrity_failure; null for unsigned metadata and watermarks"
    )
    detail: str = Field(description="one human-readable sentence for analysts")
    decisive: bool = Field(description="strong enough to override the pixel score")
    raw: dict[str, Any] = Field(description="reader-specific facts (validation codes, ...)")


class FaceBoxModel(BaseModel):
    """A face box: its top-left corner and size in the original image's pixels."""

    x: int
    y: int
    w: int
    h: int


_API_TYPES: dict[str, Any] = {"evidence": list[EvidenceItem], "face_box": FaceBoxModel | None}


def verdict_model() -> type[BaseModel]:
    """The API's `Verdict`: `filename`, then every field declared with an `api` way, typed
    from the dataclass (never null when "required"), described by its declaration."""
    hints = typing.get_type_hints(Prediction)
    fields: dict[str, Any] = {"filename": (str, ...)}
    for spec in field_specs():
        if spec.api is None:
            continue
        kind = _API_TYPES.get(spec.name, hints[spec.name])
        if spec.api == "required":
            kind = _not_none(kind)
        default = None if spec.api == "optional" else ...
        fields[spec.name] = (kind, Field(default, description=spec.description))
    return create_model("Verdict", **fields)


def _not_none(kind: Any) -> Any:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if len(args) == 1 else kind
