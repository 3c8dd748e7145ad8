"""The shapes of evaluation results: what metrics.json holds and the report reads.

They are TypedDicts, not classes, because the results are written as JSON and read back as
plain dicts (by the report, the CLI, the model card and the tests): the types describe the
files without changing them. Undefined values (AUC with one class, any metric of an empty
set) are None.
"""

from __future__ import annotations

from typing import Any, TypedDict

from fakescope.evaluation.selective import MistakeRow

# The metrics' own shapes live below evaluation (training and the bundles use them too);
# the scalar-metric lists stay importable from here, where the report and the CLI read them.
from fakescope.metrics.shapes import HEADLINE_METRICS as HEADLINE_METRICS
from fakescope.metrics.shapes import SCALAR_METRICS as SCALAR_METRICS
from fakescope.metrics.shapes import BinaryMetrics, OracleMetrics


class _SelectiveColumns(TypedDict, total=False):
    """Selective risk at the operating point (evaluate adds them; robustness rows have none)."""

    coverage: float
    risk: float | None
    confident_wrong: float
    real_called_fake_confidently: float | None
    fake_called_real_confidently: float | None
    aurc: float | None


class GroupRow(_SelectiveColumns):
    """One data set or generator in the per-group table."""

    group: str
    n: int
    n_real: int
    n_fake: int
    accuracy: float | None
    real_accuracy: float | None
    fake_accuracy: float | None
    f1: float | None
    roc_auc: float | None
    average_precision: float | None
    eer: float | None


class _GroupTableNote(TypedDict, total=False):
    note: str


class GroupTable(_GroupTableNote):
    """`evaluate.per_group_table`: one row per group plus their unweighted mean."""

    by: str
    rows: list[GroupRow]
    mean: dict[str, float | int | str | None]


class ThresholdSource(TypedDict):
    """`evaluate.ThresholdChoice.to_dict`: where the decision threshold came from."""

    value: float
    kind: str  # "bundle" | "validation"
    description: str
    policy: str | None
    target_fpr: float | None
    val_source: str | None
    val_split: str | None
    val_n: int | None
    val_metrics: BinaryMetrics | None


class PathReason(TypedDict):
    path: str
    reason: str


class SelectiveRow(TypedDict):
    """Selective risk of one group (or of all images) at the operating point, and its
    risk-coverage curve (see `fakescope.evaluation.selective`)."""

    group: str
    n: int
    coverage: float
    risk: float | None
    confident_wrong: float
    real_called_fake_confidently: float | None
    fake_called_real_confidently: float | None  # AI images confidently called real
    aurc: float | None
    unsure: int  # images answered "unsure", for either reason
    unsure_band: int  # unsure because p(fake) is inside the band around the threshold
    out_of_domain: int  # unsure because the image is outside the detector's domain
    curve_coverage: list[float]
    curve_risk: list[float]


class SelectiveSummary(TypedDict):
    """metrics.json["selective"]: coverage, risk and AURC overall and per group."""

    threshold: float
    unsure_band: list[float]
    domain_model: bool  # whether out-of-domain images were marked unsure too
    overall: SelectiveRow
    by: str | None  # "data set", "generator" or None (no groups)
    per_group: list[SelectiveRow]
    # confident mistakes in both directions per "source" and per "generator" (from the
    # manifest's columns; absent when the images name none)
    mistakes: dict[str, list[MistakeRow]]


class ProvenanceSummary(TypedDict):
    """metrics.json["provenance"]: what the evaluated files' provenance said, and what it did
    to the verdicts."""

    read: bool  # False with provenance=False (pixels only)
    images: int
    images_with_evidence: int
    counts: dict[str, int]  # "signal/claim" -> images carrying it
    verdicts_changed: int  # label or unsure differs from the pixels' verdict alone
    labels_changed: int
    disagreements: int  # pixels and provenance point different ways


class SkippedSection(TypedDict):
    """A report section that could not be made, and why (e.g. Grad-CAM of a detector that
    combines several models)."""

    skipped: str


class GalleryShown(TypedDict):
    """One row of the Grad-CAM gallery: its PNG and the images in it."""

    png: str
    images: list[dict[str, Any]]  # evaluate.image_rows: the verdict's fields per image


class ExplanationsSummary(TypedDict):
    """metrics.json's "explanations" (the Grad-CAM gallery section)."""

    layers: list[str]
    k: int
    rows: dict[str, GalleryShown]


class LabelCount(TypedDict):
    n: int
    misclassified: int


class MapCounts(TypedDict):
    """What a t-SNE map shows of one model: its mistakes, overall and per true label."""

    misclassified: int
    per_label: dict[str, LabelCount]


class ComparedMap(MapCounts):
    """The --compare model's map, at its own threshold."""

    bundle: str | None
    name: str
    threshold: float


class _Compared(TypedDict, total=False):
    compare: ComparedMap


class MapFound(_Compared):
    """The map (or the two maps) drawn: images on it, its file, the model's counts."""

    n: int
    plot: str
    model: MapCounts


class EmbeddingsSummary(_Compared):
    """metrics.json's "embeddings" (the t-SNE section)."""

    n: int
    of: int
    seed: int
    backend: str
    plot: str
    model: MapCounts
    subsampled: bool


class EvaluationMetrics(BinaryMetrics, total=False):
    """What `evaluate` writes to metrics.json: the pooled metrics and their context.

    `evaluate` and the report hooks add keys as they go (plots, timings, the gallery and
    t-SNE sections), so only the metrics themselves are always present.
    """

    source: str | list[str]
    sources: list[str]
    split: str | None
    bundle: str | None
    temperature: float
    unsure_band: list[float]
    threshold_source: ThresholdSource
    oracle: OracleMetrics
    per_group: GroupTable | None
    unreadable: list[PathReason]
    selective: SelectiveSummary
    provenance: ProvenanceSummary
    faces: dict[str, Any]  # with --faces: the crop policy and how many images had a face
    videos: dict[str, Any]  # videos evaluated one row each: sampling and per-video details
    plots: dict[str, str]
    report: str
    timings: dict[str, float]
    explanations: ExplanationsSummary | SkippedSection  # added by the Grad-CAM gallery section
    embeddings: EmbeddingsSummary | SkippedSection  # added by the t-SNE section
