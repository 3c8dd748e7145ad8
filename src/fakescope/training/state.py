"""The training run's records, as written to JSON: the progress a checkpoint stores
(checkpoints/last/state.json), the per-epoch history and the run's metrics.json / k-fold
summary.json.

TypedDicts, not classes: they are serialised as they are, and a resumed run reads them back.
"""

from __future__ import annotations

from typing import Any, TypedDict

from fakescope.data.audit.report import PathReason
from fakescope.metrics.shapes import BinaryMetrics


class ValMetrics(TypedDict):
    """The validation metrics of one epoch (threshold 0.5, no confidence intervals)."""

    loss: float
    accuracy: float | None
    roc_auc: float | None
    f1: float | None


class EpochRecord(TypedDict):
    """One row of the history: the finished epoch's training loss, speed and validation."""

    epoch: int
    train_loss: float
    images_per_second: float
    val_loss: float
    val_accuracy: float | None
    val_roc_auc: float | None
    val_f1: float | None


class TrainState(TypedDict):
    """Where a run is: kept by the trainer as it goes and saved in every checkpoint, so a
    resumed run continues exactly (mid-epoch too)."""

    epoch: int
    step_in_epoch: int
    global_step: int
    best_score: list[float] | None  # [validation ROC-AUC, -validation loss]
    best_epoch: int
    epochs_since_best: int
    train_seconds: float
    history: list[EpochRecord]
    stopped_early: bool
    epoch_loss_sum: float  # kept in the checkpoint so a resumed epoch reports the same
    epoch_seconds: float


class CheckpointInfo(TrainState):
    """A checkpoint's state.json (less the optimizer, which `checkpoint` adds and removes)."""

    scaler: dict[str, Any]  # torch.amp.GradScaler.state_dict()


class SourceMetrics(TypedDict):
    """One source's validation metrics in a multi-source run."""

    n: int
    accuracy: float | None
    roc_auc: float | None
    f1: float | None


class TrainSummary(TypedDict):
    """RUN/metrics.json."""

    bundle: str
    val: BinaryMetrics
    val_by_source: dict[str, SourceMetrics]
    test: BinaryMetrics | None
    history: list[EpochRecord]
    skipped: list[PathReason]
    epochs_run: int
    stopped_early: bool
    train_seconds: float


class MeanStd(TypedDict):
    mean: float
    std: float


class FoldSummary(TypedDict):
    """RUN/summary.json of a k-fold run: each fold's validation metrics, and the mean and
    standard deviation of the headline ones over the folds."""

    folds: int
    per_fold: list[BinaryMetrics]
    accuracy: MeanStd
    precision: MeanStd
    recall: MeanStd
    f1: MeanStd
    roc_auc: MeanStd
    average_precision: MeanStd


def initial_state() -> TrainState:
    """A run that has not started."""
    return {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_score": None,
        "best_epoch": -1,
        "epochs_since_best": 0,
        "train_seconds": 0.0,
        "history": [],
        "stopped_early": False,
        "epoch_loss_sum": 0.0,
        "epoch_seconds": 0.0,
    }
