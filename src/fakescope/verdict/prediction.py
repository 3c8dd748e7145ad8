"""The `Prediction`: one verdict's fields, declared once.

Each field of the dataclass carries its declaration in `metadata` (`spec`): a description
and how it is written in CSV (`fakescope predict --format csv`, evaluate's predictions.csv),
Parquet (`fakescope score`) and the HTTP API (`/v1/predict`). `CSV_FIELDS` here and the
Arrow schema and pydantic response model in `fakescope.verdict.schemas` are derived from it,
so a field added here appears in every output.

How each format writes a field (`csv`, `parquet`, `api` in the declaration):
- csv: "value" as is; "flag" 0/1; "evidence_text" the evidence as "; "-joined readable
  claims; "json" compact JSON (`face_box`). A spreadsheet reads text, so the evidence is
  words there and a list of objects in JSON, Parquet and the API.
- parquet: the Arrow type ("string", "float64", "bool", "int64") or "json" (a JSON string).
- api: "required" (never null in a result: failures are HTTP errors), "nullable" (present,
  possibly null), "optional" (null unless asked for, e.g. with faces=true) or None (left out).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from fakescope.face_box import face_box_dict
from fakescope.provenance.evidence import CAPTURE_METADATA

if TYPE_CHECKING:  # the face finders need torch; a Prediction does not
    from fakescope.faces import FaceSelection

__all__ = [
    "CSV_FIELDS",
    "FACE_JOINED",
    "FieldSpec",
    "declare",
    "Prediction",
    "evidence_text",
    "field_specs",
]

CsvWay = Literal["value", "flag", "evidence_text", "json"]
ParquetWay = Literal["string", "float64", "bool", "int64", "json"]
ApiWay = Literal["required", "nullable", "optional"] | None

FACE_JOINED = (
    "a face fills {share:.0%} of the image: the face specialist's score of it is averaged in"
)


@dataclass(frozen=True)
class FieldSpec:
    """How one Prediction field is described and written in each output format."""

    name: str
    description: str
    csv: CsvWay | None = "value"  # None: not a CSV column
    parquet: ParquetWay | None = None  # None: not a Parquet column
    api: ApiWay = "nullable"


def declare(
    description: str,
    *,
    csv: CsvWay | None = "value",
    parquet: ParquetWay | None = None,
    api: ApiWay = "nullable",
    default: Any = None,
    factory: Any = None,
    required: bool = False,
) -> Any:
    """A dataclass field carrying its `FieldSpec` parts in metadata."""
    meta = {"spec": {"description": description, "csv": csv, "parquet": parquet, "api": api}}
    if required:
        return dataclasses.field(metadata=meta)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class Prediction:
    """One verdict. `error` is set (and the scores None) when the input could not be read.

    p_fake, label and unsure are the final verdict (pixels and provenance combined);
    p_fake_pixels is the detector's own score; unsure_reason says why the verdict is unsure
    (the unsure band, an input outside the detector's domain, or a drawn or graphic image
    judged by a detector made for photographs: content says which); evidence lists what the
    file's provenance says (dicts with signal, claim, by, trust, detail); disagreement is
    set when the pixels and the provenance point different ways. With faces: face_box is
    the face scored ({x, y, w, h} in the original image; None when none was found),
    faces_found how many usable faces the image holds, face_note what was scored instead.
    From a face-aware detector without faces: face_box is the face whose score was averaged
    in (None: the whole image alone) and face_note says so.
    """

    path: str = declare(
        "the input: a file path, an archive member (archive::member) or an upload's name",
        parquet="string",
        api=None,  # the API names it `filename`
        required=True,
    )
    p_fake: float | None = declare(
        "final calibrated probability that the image is fake: the pixel score combined "
        "with the file's provenance evidence",
        parquet="float64",
        api="required",
        required=True,
    )
    label: str | None = declare(
        "the bundle's label for p_fake at its decision threshold",
        parquet="string",
        api="required",
        required=True,
    )
    unsure: bool | None = declare(
        "the verdict is not to be relied on: see unsure_reason (inside the unsure band, "
        "unlike the detector's training data, or not a photograph)",
        csv="flag",
        parquet="bool",
        api="required",
        required=True,
    )
    error: str | None = declare(
        "why the input could not be read (then the scores are null)",
        parquet="string",
        api=None,  # the API answers an unreadable upload with an HTTP error
    )
    p_fake_pixels: float | None = declare(
        "the detector's own score from the pixels alone", parquet="float64", api="required"
    )
    unsure_reason: str | None = declare(
        "why the verdict is unsure; null if it is not", parquet="string"
    )
    domain_score: float | None = declare(
        "distance to the detector's training data / its threshold: at most 1 is in-domain; "
        "null when the bundle has no domain model",
        parquet="float64",
    )
    in_domain: bool | None = declare(
        "domain_score <= 1; null when the bundle has no domain model",
        csv="flag",
        parquet="bool",
    )
    max_crop_p_fake: float | None = declare(
        "p(fake) of the most suspicious crop, for detectors that score several "
        "native-resolution crops; null otherwise",
        parquet="float64",
    )
    evidence: list[dict[str, Any]] = declare(
        "the file's provenance (C2PA Content Credentials, XMP/IPTC, generator metadata, "
        "watermarks, camera EXIF); empty when it carries none, which is evidence of nothing",
        csv="evidence_text",
        parquet="json",
        factory=list,
    )
    disagreement: str | None = declare(
        "set when the pixels and the provenance point different ways", parquet="string"
    )
    content: str | None = declare(
        "what the scored image shows, for a detector made for photographs: 'photo', or "
        "'graphic' (drawn: plots, screenshots, illustrations; then the verdict is unsure); "
        "null when the detector judges any image",
        parquet="string",
    )
    face_box: dict[str, int] | None = declare(
        "with faces=true: the face that was scored, in the original image's pixels; null "
        "when no face was found (then the whole image was scored)",
        csv="json",
        parquet="json",
        api="optional",
    )
    faces_found: int | None = declare(
        "with faces=true: how many faces the image holds (0: none)",
        parquet="int64",
        api="optional",
    )
    face_note: str | None = declare(
        "with faces=true: what was scored instead when no face was found",
        parquet="string",
        api="optional",
    )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`predict --format json`, the Python API): every field as is."""
        return asdict(self)

    def to_row(self) -> dict[str, Any]:
        """A flat row for CSV: flags as 0/1, the evidence as one readable string, the face
        box as compact JSON (see each field's `csv` declaration)."""
        return {
            spec.name: _csv_value(spec.csv, getattr(self, spec.name))
            for spec in field_specs(type(self))
            if spec.csv is not None
        }

    def with_face(self, selection: FaceSelection) -> Prediction:
        """This verdict reporting the face it scored (or that none was found)."""
        self.face_box = face_box_dict(selection.face_box)
        self.faces_found = selection.faces_found
        self.face_note = selection.note
        return self

    def with_joined_face(self, box: dict[str, int] | None, size: tuple[int, int]) -> Prediction:
        """This verdict reporting the face a face-aware detector averaged in, if any."""
        if box is not None:
            self.face_box = box
            self.face_note = FACE_JOINED.format(share=box["w"] * box["h"] / (size[0] * size[1]))
        return self

    @classmethod
    def failed(cls, path: str, reason: str) -> Prediction:
        return cls(path, None, None, None, error=reason)


def field_specs(cls: type[Prediction] = Prediction) -> tuple[FieldSpec, ...]:
    """The declaration of every field of `cls` (a Prediction or a subclass), in order."""
    return tuple(
        FieldSpec(f.name, **f.metadata["spec"])
        for f in dataclasses.fields(cls)
        if "spec" in f.metadata
    )


def _csv_value(way: CsvWay | None, value: Any) -> Any:
    if value is None:
        return None
    if way == "flag":
        return int(value)
    if way == "evidence_text":
        return "; ".join(evidence_text(e) for e in value) or None
    if way == "json":
        return json.dumps(value, separators=(",", ":"))
    return value


def evidence_text(e: dict[str, Any]) -> str:
    """One piece of evidence in a few words: 'c2pa: ai_generated by OpenAI (trusted)',
    'exif: capture_metadata by Apple iPhone 5 (not counted)'."""
    by = f" by {e['by']}" if e.get("by") else ""
    trust = f" ({e['trust']})" if e.get("trust") else ""
    weight = " (not counted)" if e["claim"] == CAPTURE_METADATA else ""
    return f"{e['signal']}: {e['claim']}{by}{trust}{weight}"


CSV_FIELDS = tuple(spec.name for spec in field_specs() if spec.csv is not None)
"""Prediction columns in CSV: the first five as before, new ones after them."""
