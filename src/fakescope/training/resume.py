"""Checkpointing and exact resume of a run: when the loop saves (every N steps, each epoch,
before an interruption), the best epoch's weights, and Ctrl-C/SIGTERM turned into a
checkpoint; the checkpoint files themselves are training/checkpoint.py."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from fakescope.config import TrainConfig
from fakescope.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from fakescope.training.distributed import DistContext
from fakescope.training.state import CheckpointInfo, TrainState


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was saved because the run was interrupted."""


@contextmanager
def interrupt_flag() -> Iterator[dict[str, bool]]:
    """Turn SIGINT/SIGTERM into a flag so the loop can checkpoint before stopping."""
    flag = {"stop": False}

    def handler(signum, frame):  # noqa: ARG001
        if flag["stop"]:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Checkpointing:
    """The checkpoint half of `Trainer` (training/loop.py): RUN/checkpoints/last (exact
    resume) and RUN/checkpoints/best.safetensors (the best epoch's weights)."""

    run_dir: Path
    cfg: TrainConfig
    dist: DistContext
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _save(self, state: TrainState, aug_gen: torch.Generator) -> None:
        extra = {"rng_torch": torch.get_rng_state(), "rng_aug": aug_gen.get_state()}
        extra.update(self.dist.gather_rng_states())  # every process takes part; 0 writes
        if not self.dist.is_main:
            return
        save_checkpoint(
            self.ckpt_dir / "last",
            model=self.model,
            optimizer=self.optimizer,
            extra_tensors=extra,
            info=CheckpointInfo(**state, scaler=self.scaler.state_dict()),
        )

    def _save_best(self) -> None:
        if not self.dist.is_main:
            return
        tmp = self.ckpt_dir / "best.safetensors.tmp"
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(tmp))
        tmp.replace(self.ckpt_dir / "best.safetensors")

    def _resume(self, state: TrainState, aug_gen: torch.Generator) -> None:
        """Continue from RUN/checkpoints/last when there is one: weights, optimizer, scaler,
        progress, and mid-epoch the random streams of dropout and augmentation."""
        found = find_checkpoint(self.ckpt_dir / "last")
        if found is not None:
            info, extra = load_checkpoint(found, model=self.model, optimizer=self.optimizer)
            self.scaler.load_state_dict(info.pop("scaler"))
            state.update(cast(TrainState, info))
            if state["step_in_epoch"] > 0:
                own = f"rng_torch_rank{self.dist.rank}"  # other processes' dropout streams
                torch.set_rng_state(extra.get(own, extra["rng_torch"]))
                aug_gen.set_state(extra["rng_aug"])

    def _checkpoint_mid_epoch(
        self,
        state: TrainState,
        epoch: int,
        aug_gen: torch.Generator,
        started: float,
        interrupted: bool,
        bar: tqdm,
    ) -> None:
        """Every ``checkpoint_every_steps`` steps, and always before an interruption, save
        an exact-resume checkpoint (time spent so far included); then stop if interrupted."""
        if interrupted or (state["global_step"] % self.cfg.checkpoint_every_steps == 0):
            elapsed = time.perf_counter() - started
            snapshot = state.copy()
            snapshot["train_seconds"] += elapsed
            snapshot["epoch_seconds"] += elapsed
            self._save(snapshot, aug_gen)
        if interrupted:
            bar.close()
            raise TrainingInterrupted(
                f"interrupted at epoch {epoch + 1}, step {state['step_in_epoch']}; "
                f"checkpoint saved in {self.ckpt_dir / 'last'}"
            )

    def _load_best(self) -> None:
        best = self.ckpt_dir / "best.safetensors"
        if best.is_file():
            self.model.load_state_dict(load_file(str(best)))
