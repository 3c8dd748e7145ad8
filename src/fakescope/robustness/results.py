"""What `fakescope robustness` writes to robustness.json (and returns): typed rows and tables.

TypedDicts, not classes: the result is written as JSON as it is, and the report, the plots
and the CLI read the same dictionaries.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from fakescope.evaluation.results import PathReason

RowKind = Literal["clean", "corruption", "attack"]


class SourceCell(TypedDict):
    """One detector under one condition on the images of one source (a multi-source
    manifest's `source` column): where a corruption hurts."""

    n: int
    accuracy: float | None
    roc_auc: float | None
    accuracy_drop: float | None


class _BySource(TypedDict, total=False):
    by_source: dict[str, SourceCell]  # only when the images come from several named sources


class RowResult(_BySource):
    """One detector under one condition, at its bundle's threshold; drops against its clean
    row (0 on the clean row itself)."""

    n: int
    accuracy: float | None
    real_accuracy: float | None
    fake_accuracy: float | None
    f1: float | None
    roc_auc: float | None
    accuracy_drop: float | None
    roc_auc_drop: float | None


class RobustnessRow(TypedDict):
    """One condition: clean, a corruption at a severity or an attack at an eps."""

    kind: RowKind
    name: str
    severity: float | None
    unit: str | None
    results: dict[str, RowResult]  # per model name


class ModelEntry(TypedDict):
    name: str
    bundle: str | None
    architecture: str
    threshold: float
    threshold_source: str
    input_size: int


class ExampleImages(TypedDict):
    """The file names of one attacked image (relative to the output folder)."""

    clean: str
    adversarial: str
    perturbation: str


class AttackExamples(TypedDict):
    """`plots.save_attack_examples`: one attack's example images at its largest eps."""

    eps: float
    images: list[ExampleImages]
    grid: str


class AttackTable(TypedDict):
    names: list[str]
    eps: list[float]
    steps: int
    step_size: float | None
    space: str
    rows: list[RobustnessRow]
    examples: dict[str, dict[str, AttackExamples]]  # model name -> attack name -> files


class _WrittenFiles(TypedDict, total=False):
    """Added once the plots and the report are written."""

    plots: dict[str, str]
    report: str
    faces: dict[str, Any] | None  # with --faces: the crop policy and faces found


class RobustnessResult(_WrittenFiles):
    """robustness.json."""

    source: str
    split: str | None
    n: int
    n_real: int
    n_fake: int
    max_images: int | None
    seed: int
    models: list[ModelEntry]
    corruptions: dict[str, list[float]]
    severity_units: dict[str, str]
    rows: list[RobustnessRow]
    attacks: AttackTable
    unreadable: list[PathReason]
