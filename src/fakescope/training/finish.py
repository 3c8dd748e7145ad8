"""The end of a run: the best epoch's weights, the threshold chosen on validation (and the
unsure band fitted to the recipe's error budget), validation metrics overall and per
source, test metrics, then the bundle and RUN/metrics.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fakescope.bundle import BundleMeta, save_bundle
from fakescope.config import Recipe, TrainConfig
from fakescope.data.cache import DecodedSet
from fakescope.data.sources import Item, Source
from fakescope.data.transforms import Preprocessing
from fakescope.faces import FaceSelector
from fakescope.metrics.binary import binary_metrics, choose_threshold
from fakescope.metrics.shapes import BinaryMetrics
from fakescope.metrics.unsure_band import BandFit, fit_unsure_band
from fakescope.training.state import EpochRecord, SourceMetrics, TrainState, TrainSummary


@dataclass
class TrainResult:
    run_dir: Path
    bundle_dir: Path
    val_metrics: BinaryMetrics
    test_metrics: BinaryMetrics | None
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord] = field(default_factory=list)


@dataclass
class _FinalMetrics:
    """The end of a run: the chosen threshold and the metrics at it."""

    threshold: float
    val: BinaryMetrics
    by_source: dict[str, SourceMetrics]
    test: BinaryMetrics | None
    band: BandFit | None = None  # the unsure band fitted to the recipe's budget


class Finishing:
    """The end of `Trainer` (training/loop.py)'s run: `_finish`."""

    recipe: Recipe
    cfg: TrainConfig
    run_dir: Path
    source: Source
    command: str
    pre: Preprocessing
    faces: FaceSelector | None
    device: torch.device
    precision: str
    model: nn.Module
    val_items: list[Item]
    test_items: list[Item]
    val_set: DecodedSet
    n_train: int
    skipped: list[tuple[str, str]]
    class_counts: dict[str, int]
    earlier_seconds: float | None
    max_minutes: float | None
    best_val_logits: torch.Tensor | None  # EpochMetrics: the best epoch's, when known

    if TYPE_CHECKING:  # defined by Trainer, TrainingData and Checkpointing

        def predict_logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor: ...

        def _decode(
            self, items: list[Item], desc: str, *, reencode: bool = False
        ) -> DecodedSet: ...

        def _load_best(self) -> None: ...

    # -- the bundle -------------------------------------------------------------------
    def _val_sources(self) -> np.ndarray:
        """The source name of each validation image ("" where it has none)."""
        by_path = {it.path: it.source for it in self.val_items}
        return np.array([by_path.get(p) or "" for p in self.val_set.paths])

    def _metrics_by_source(
        self, labels: np.ndarray, probs: np.ndarray, threshold: float, sources: np.ndarray
    ) -> dict[str, SourceMetrics]:
        """Validation metrics of each source (multi-source runs), at the run's threshold;
        `sources` names each validation image's source (`_val_sources`)."""
        if len(set(sources.tolist()) - {""}) < 2:
            return {}
        table: dict[str, SourceMetrics] = {}
        for name in sorted(set(sources.tolist())):
            mask = sources == name
            m = binary_metrics(labels[mask], probs[mask], threshold, bootstrap=0)
            table[name or "(none)"] = {
                "n": int(mask.sum()),
                "accuracy": m["accuracy"],
                "roc_auc": m["roc_auc"],
                "f1": m["f1"],
            }
        return table

    def _finish(self, state: TrainState) -> TrainResult:
        """The run's end: the best epoch's weights, the threshold chosen on validation, the
        bundle and metrics.json."""
        self._load_best()
        final = self._final_metrics()
        # torch's stubs lack Module.to(device, memory_format=...), which it accepts
        self.model.to("cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        bundle_dir = save_bundle(
            self.run_dir / "bundle", self.model, self._bundle_meta(state, final)
        )
        self._write_summary(state, bundle_dir, final)
        return TrainResult(
            run_dir=self.run_dir,
            bundle_dir=bundle_dir,
            val_metrics=final.val,
            test_metrics=final.test,
            epochs_run=state["epoch"],
            stopped_early=state["stopped_early"],
            history=state["history"],
        )

    def _final_metrics(self) -> _FinalMetrics:
        """The threshold (the recipe's policy on the validation scores), and the validation
        (overall and per source) and test metrics at it."""
        decision = self.recipe.decision
        # the best epoch's own validation logits when this process validated it (the same
        # weights `_load_best` restored); after a resume, scored again
        logits = self.best_val_logits
        if logits is None:
            logits = self.predict_logits(self.val_set.images)
        probs = torch.sigmoid(logits).numpy()
        y_val = self.val_set.labels.numpy()
        threshold = choose_threshold(
            y_val, probs, decision.threshold_policy, decision.fixed_threshold
        )
        val_metrics = binary_metrics(y_val, probs, threshold)
        sources = self._val_sources()
        by_source = self._metrics_by_source(y_val, probs, threshold, sources)
        band = None
        if decision.unsure_policy == "risk":
            band = fit_unsure_band(
                y_val,
                probs,
                threshold,
                margin=decision.unsure_margin,
                max_real_called_fake=decision.max_real_called_fake,
                max_fake_called_real=decision.max_fake_called_real,
                sources=sources,
            )
        test_metrics = None
        if self.test_items:
            test_set = self._decode(self.test_items, "decode test")
            self.skipped += test_set.skipped
            test_probs = torch.sigmoid(self.predict_logits(test_set.images)).numpy()
            test_metrics = binary_metrics(test_set.labels.numpy(), test_probs, threshold)
        return _FinalMetrics(threshold, val_metrics, by_source, test_metrics, band)

    def _bundle_meta(self, state: TrainState, final: _FinalMetrics) -> BundleMeta:
        """The bundle's metadata: preprocessing, threshold, how it was trained, on what."""
        decision = self.recipe.decision
        return BundleMeta(
            architecture=self.recipe.model.name,
            preprocessing=self.pre,
            model_kwargs={"drop_rate": self.recipe.model.drop_rate, **self.recipe.model.kwargs},
            threshold=final.threshold,
            unsure_margin=decision.unsure_margin,
            unsure_fit=dict(final.band) if final.band else None,
            data_fingerprint=self.source.fingerprint(),
            training={
                "source": self.source.location,
                "recipe_name": self.recipe.name,
                "recipe": self.recipe.model_dump(mode="json"),
                "command": self.command,
                "n_train": self.n_train,
                "n_val": len(self.val_set),
                "n_skipped": len(self.skipped),
                "class_counts_train": self.class_counts,
                "epochs_run": state["epoch"],
                "best_epoch": state["best_epoch"],
                "train_seconds": round(state["train_seconds"], 1),
                # this stage and the ones before it, for train.total_minutes of the next
                "chain_train_seconds": (
                    None
                    if self.earlier_seconds is None
                    else round(self.earlier_seconds + state["train_seconds"], 1)
                ),
                "max_minutes": self.max_minutes,
                "device": (
                    f"{self.device.type} ({torch.get_num_threads()} threads, {self.precision})"
                ),
                "threshold_policy": decision.threshold_policy,
                "seed": self.cfg.seed,
            },
            metrics={k: v for k, v in final.val.items() if not isinstance(v, dict)}
            | ({"by_source": final.by_source} if final.by_source else {}),
            card=self.recipe.card.model_dump(exclude_none=True) if self.recipe.card else {},
            faces=self.faces.policy.to_dict() if self.faces else None,
            content=decision.content,
        )

    def _write_summary(self, state: TrainState, bundle_dir: Path, final: _FinalMetrics) -> None:
        summary: TrainSummary = {
            "bundle": str(bundle_dir),
            "val": final.val,
            "val_by_source": final.by_source,
            "test": final.test,
            "history": state["history"],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "epochs_run": state["epoch"],
            "stopped_early": state["stopped_early"],
            "train_seconds": state["train_seconds"],
        }
        (self.run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
