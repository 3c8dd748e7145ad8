"""What a run records after each epoch: the validation metrics, a history row (loss, speed,
validation), TensorBoard scalars and a console line, and which epoch is the best so far
(early stopping)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

import torch
from torch import nn
from tqdm.auto import tqdm

from fakescope.config import TrainConfig
from fakescope.data.cache import DecodedSet
from fakescope.metrics.binary import binary_metrics
from fakescope.training.state import EpochRecord, TrainState, ValMetrics


class ScalarWriter(Protocol):
    """TensorBoard's SummaryWriter, or distributed.NullWriter off the main process."""

    def add_scalar(self, tag: str, value: float, step: int) -> None: ...


class EpochMetrics:
    """The per-epoch records of `Trainer` (training/loop.py)."""

    cfg: TrainConfig
    progress: bool
    n_train: int
    val_set: DecodedSet
    # the validation logits of the epoch just validated, and of the best epoch while its
    # weights are the ones `_load_best` brings back (this process validated it): the end of
    # the run reuses them instead of scoring every validation image a second time
    _last_val_logits: torch.Tensor | None = None
    best_val_logits: torch.Tensor | None = None

    if TYPE_CHECKING:  # defined by Trainer and Checkpointing

        def predict_logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor: ...

        def _save_best(self) -> None: ...

    def _validate(self) -> ValMetrics:
        logits = self.predict_logits(self.val_set.images)
        self._last_val_logits = logits
        labels = self.val_set.labels
        loss = float(nn.functional.binary_cross_entropy_with_logits(logits, labels))
        probs = torch.sigmoid(logits).numpy()
        metrics = binary_metrics(labels.numpy(), probs, 0.5, bootstrap=0)  # CIs only at the end
        return {
            "loss": loss,
            "accuracy": metrics["accuracy"],
            "roc_auc": metrics["roc_auc"],
            "f1": metrics["f1"],
        }

    def _record_epoch(
        self,
        state: TrainState,
        epoch: int,
        epoch_seconds: float,
        val: ValMetrics,
        writer: ScalarWriter,
    ) -> None:
        """One history row (it ends up in metrics.json), TensorBoard scalars and a console
        line: loss, speed and validation metrics of the finished epoch."""
        steps_run = max(1, state["step_in_epoch"])
        record: EpochRecord = {
            "epoch": epoch + 1,
            "train_loss": state["epoch_loss_sum"] / steps_run,
            "images_per_second": steps_run
            * min(self.cfg.batch_size, self.n_train)
            / max(epoch_seconds, 1e-9),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_roc_auc": val["roc_auc"],
            "val_f1": val["f1"],
        }
        state["history"].append(record)
        for key, value in record.items():
            if key != "epoch" and value is not None:
                writer.add_scalar(f"epoch/{key}", cast(float, value), epoch + 1)
        if self.progress:
            tqdm.write(
                f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}  "
                f"val loss {val['loss']:.4f}  acc {val['accuracy']:.4f}  "
                f"auc {val['roc_auc']:.5f}  ({record['images_per_second']:.0f} img/s)"
            )

    def _track_best(self, state: TrainState, epoch: int, val: ValMetrics) -> None:
        """Keep the weights of the best epoch so far (validation ROC-AUC, then loss), and
        stop early after ``early_stopping_patience`` epochs without a better one."""
        score = [val["roc_auc"] or 0.0, -val["loss"]]
        if state["best_score"] is None or score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch + 1
            state["epochs_since_best"] = 0
            self._save_best()
            self.best_val_logits = self._last_val_logits
        else:
            state["epochs_since_best"] += 1
            patience = self.cfg.early_stopping_patience
            if patience is not None and state["epochs_since_best"] >= patience:
                state["stopped_early"] = True
