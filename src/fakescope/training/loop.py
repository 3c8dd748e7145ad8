"""The training loop: `Trainer` trains one detector on one train/val split, epoch by epoch
(mixed precision, adversarial batches, early stopping, a time budget), and writes a bundle.

Its other jobs live beside it, each a base class of `Trainer`: the images and batches
(training/batches.py), checkpoints and resume (training/resume.py), the per-epoch records
(training/epoch_metrics.py) and the end of the run (training/finish.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fakescope.bundle import resolve_bundle_path
from fakescope.config import Recipe
from fakescope.data.corruptions import RobustAugment
from fakescope.data.self_blend import SelfBlend
from fakescope.data.sources import Item, Source
from fakescope.data.transforms import Augmentation, Preprocessing, pick_crops
from fakescope.errors import ConfigError
from fakescope.faces import FaceCropPolicy, FaceSelector
from fakescope.models import create_model, model_defaults
from fakescope.models.attacks import attack
from fakescope.training import budget, distributed
from fakescope.training.batches import TrainingData
from fakescope.training.device import (
    autocast_context,
    denormals_flushed,
    resolve_device,
    resolve_precision,
)
from fakescope.training.epoch_metrics import EpochMetrics, ScalarWriter
from fakescope.training.finish import Finishing, TrainResult
from fakescope.training.resume import Checkpointing, interrupt_flag
from fakescope.training.schedule import (
    cosine_factor,
    epoch_generator,
    parameter_groups,
    schedule_position,
)
from fakescope.training.state import TrainState, initial_state


def build_preprocessing(recipe: Recipe) -> Preprocessing:
    defaults = model_defaults(recipe.model.name)
    data = recipe.data
    return Preprocessing(
        input_size=data.input_size or defaults.default_input_size,
        resize=data.resize,
        interpolation=data.interpolation,
        mean=tuple(data.mean or defaults.mean),  # type: ignore[arg-type]
        std=tuple(data.std or defaults.std),  # type: ignore[arg-type]
        crops=data.crops,
    )


def face_selector(recipe: Recipe) -> FaceSelector | None:
    """The face crops a recipe trains on (`data.faces`), or None: whole images."""
    faces = recipe.data.faces
    return None if faces is None else FaceSelector(FaceCropPolicy(**faces.model_dump()))


class Trainer(TrainingData, Checkpointing, EpochMetrics, Finishing):
    """Trains one detector on one train/val split and writes a bundle.

    `stop_after_steps` simulates an interruption (for tests and for time-boxed jobs).
    """

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | Path,
        *,
        source: Source,
        items: list[Item],
        val_split: str = "val",
        progress: bool = True,
        command: str = "",
        stop_after_steps: int | None = None,
    ) -> None:
        self.recipe = recipe
        self.cfg = recipe.train
        self.run_dir = Path(run_dir)
        self.source = source
        self.dist = distributed.current()  # one process, or this one's place under torchrun
        self.progress = progress and self.dist.is_main
        self.command = command
        self.stop_after_steps = stop_after_steps
        self.device = resolve_device(self.cfg.device)
        self.precision = resolve_precision(self.cfg.precision, self.device)
        self.pre = build_preprocessing(recipe)
        self.faces = face_selector(recipe)
        self.train_items = [it for it in items if it.split not in (val_split, "test")]
        if val_split.startswith("fold"):
            self.train_items = [it for it in items if it.split != val_split]
        self.val_items = [it for it in items if it.split == val_split]
        self.test_items = [it for it in items if it.split == "test"]
        if not self.val_items:
            raise ConfigError(f"no validation images (split {val_split!r}) in {source.location}")
        start = recipe.model.pretrained_path
        if start is not None and not resolve_bundle_path(start).exists():
            raise ConfigError(
                f"model.pretrained_path: {start} does not exist (a relative path is read from "
                f"{Path.cwd()}); train the run it names first, or choose other starting "
                "weights: --set model.pretrained_path=FILE|BUNDLE|general"
            )
        # the clock of this stage: max_minutes, or what train.total_minutes leaves after the
        # stages before it (as their bundle records them)
        self.earlier_seconds = budget.earlier_seconds(recipe.model)
        self.max_minutes = budget.stage_minutes(self.cfg, recipe.model, self.earlier_seconds)
        if self.dist.world_size > self.cfg.batch_size:
            raise ConfigError(
                f"train.batch_size {self.cfg.batch_size} is smaller than the number of "
                f"processes ({self.dist.world_size}); each needs at least one image a step"
            )
        aug = recipe.data.augment
        self.augment = Augmentation(
            hflip=aug.hflip,
            pad_crop=aug.pad_crop,
            degrade=RobustAugment(**aug.degrade.model_dump(exclude={"at"})),
        )
        self.degrade_native = aug.degrade.at == "native" and self.pre.multi_crop
        self.self_blend = SelfBlend(**aug.self_blend.model_dump())

    # -- model and optimisation -------------------------------------------------------
    def _build(self) -> None:
        m = self.recipe.model
        # A shipped detector's name ('default', 'scratch') starts from that detector's weights
        # (the robust fine-tuning recipes do); anything else is a file or bundle folder.
        start = m.pretrained_path
        if start is not None:
            start = str(resolve_bundle_path(start))
        self.model = create_model(
            m.name,
            pretrained=m.pretrained,
            pretrained_path=start,
            pretrained_url=m.pretrained_url,
            drop_rate=m.drop_rate,
            **m.kwargs,
        ).to(self.device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # under torchrun: DDP with batch norm over the global batch; else the model itself
        self.train_model = self.dist.wrap(
            self.model, self.device, find_unused=self.cfg.freeze_epochs > 0
        )
        groups = parameter_groups(self.model)
        param_groups: list[dict[str, Any]] = [
            {"params": groups["head"], "name": "head"},
            {"params": groups["head_nd"], "name": "head", "weight_decay": 0.0},
            {"params": groups["body"], "name": "body"},
            {"params": groups["body_nd"], "name": "body", "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            param_groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        self.body_params = groups["body"] + groups["body_nd"]
        n_real = int((self.train_labels == 0).sum())
        n_fake = int((self.train_labels == 1).sum())
        balance = self.cfg.class_balance
        pos_weight = None
        if balance == "loss_weight" or (
            balance == "auto" and max(n_real, n_fake) > 1.2 * min(n_real, n_fake)
        ):
            pos_weight = torch.tensor([n_real / max(1, n_fake)], device=self.device)
        self.class_counts = {"real": n_real, "fake": n_fake}
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        use_scaler = self.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def _set_lr(self, global_step: int, epoch: int, elapsed: float = 0.0) -> float:
        total = self.cfg.epochs * self._steps_per_epoch()
        warmup = round(self.cfg.warmup_epochs * self._steps_per_epoch())
        minutes = self.max_minutes if self.cfg.schedule_by_time else None
        seconds = minutes * 60 if minutes is not None else None
        step = schedule_position(global_step, total, elapsed, seconds)
        factor = cosine_factor(step, total, warmup, self.cfg.min_lr_ratio)
        lr = self.cfg.lr * factor
        finetuning = self.cfg.freeze_epochs > 0
        for group in self.optimizer.param_groups:
            scale = self.cfg.finetune_lr_scale if (group["name"] == "body" and finetuning) else 1.0
            group["lr"] = lr * scale
        frozen = epoch < self.cfg.freeze_epochs
        for param in self.body_params:
            param.requires_grad_(not frozen)
        return lr

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pre.normalize(images.to(self.device, non_blocking=True))
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _adversarial_inputs(
        self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """Replace the first `ratio` share of the (shuffled) batch by attacked copies."""
        adv_cfg = self.cfg.adversarial
        x = self._to_input(images)
        n_adv = round(adv_cfg.ratio * images.shape[0])
        if n_adv == 0:
            return x
        eps = adv_cfg.eps[int(torch.randint(len(adv_cfg.eps), (1,), generator=gen))]
        start = torch.Generator().manual_seed(int(torch.randint(2**31, (1,), generator=gen)))
        clean01 = images[:n_adv].to(self.device).float() / 255.0
        with autocast_context(self.device, self.precision):
            adv01 = attack(
                adv_cfg.attack,
                self.model,
                clean01,
                labels[:n_adv].to(self.device),
                eps,
                lambda z: self._to_input(z * 255.0),
                steps=adv_cfg.steps,
                step_size=adv_cfg.step_size,
                generator=start,
            )
        x = x.clone()
        x[:n_adv] = self._to_input(adv01 * 255.0)
        return x

    def _train_step(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        gen: torch.Generator | None = None,
        loss_weight: float = 1.0,
    ) -> float:
        if self.cfg.adversarial.ratio > 0 and gen is not None:
            x = self._adversarial_inputs(images, labels, gen)
        else:
            x = self._to_input(images)
        y = labels.to(self.device).view(-1, 1)
        smooth = self.cfg.label_smoothing
        target = y * (1 - smooth) + 0.5 * smooth
        with autocast_context(self.device, self.precision):
            logits = self.train_model(x)
        loss = self.loss_fn(logits.float(), target) * loss_weight
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    @torch.no_grad()
    def predict_logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.model.eval()
        out = []
        crops = images.shape[1] if images.ndim == 5 else 0  # native crops: mean crop logit
        step = max(1, batch_size // max(1, crops))
        for start in range(0, images.shape[0], step):
            chunk = images[start : start + step]
            x = self._to_input(chunk.flatten(0, 1) if crops else chunk)
            with autocast_context(self.device, self.precision):
                z = self.model(x).float().view(-1).cpu()
            out.append(z.view(-1, crops).mean(dim=1) if crops else z)
        return torch.cat(out) if out else torch.empty(0)

    # -- the loop ---------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed % (2**32))
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        if self.device.type == "cpu":
            # denormal floats (tiny gradients late in training) are very slow on x86 CPUs; the
            # setting is process-wide, so `fit` puts the caller's back when it ends
            flushed_before = denormals_flushed()
            torch.set_flush_denormal(True)
        else:
            flushed_before = None
        self._load_data()
        self._build()
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        state = initial_state()
        aug_gen = epoch_generator(self.cfg.seed, 0, 1)
        if resume:
            self._resume(state, aug_gen)
        # tensorboard (and protobuf) load only when a run starts, not on importing the trainer
        from torch.utils.tensorboard import SummaryWriter

        writer = (
            SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=state["global_step"])
            if self.dist.is_main
            else distributed.NullWriter()
        )
        try:
            try:
                with interrupt_flag() as flag:
                    self._loop(state, aug_gen, writer, flag)
            finally:
                writer.close()
            return self.dist.from_main(lambda: self._finish(state))
        finally:
            if flushed_before is not None:
                torch.set_flush_denormal(flushed_before)

    def _out_of_time(self, state: TrainState, started: float) -> bool:
        if self.max_minutes is None:
            return False
        return state["train_seconds"] + time.perf_counter() - started > self.max_minutes * 60

    def _loop(
        self,
        state: TrainState,
        aug_gen: torch.Generator,
        writer: ScalarWriter,
        flag: dict[str, bool],
    ) -> None:
        """Epochs until the recipe's count, early stopping or the time budget; each one
        trained, validated, compared with the best so far and checkpointed, so a resume
        starts from the epoch after the last one finished."""
        steps_done_here = 0
        while state["epoch"] < self.cfg.epochs and not state["stopped_early"]:
            epoch = state["epoch"]
            if state["step_in_epoch"] == 0:
                torch.manual_seed(self.cfg.seed * 7919 + epoch + 104_729 * self.dist.rank)
                aug_gen = epoch_generator(self.cfg.seed, epoch, 1)
            steps_done_here, epoch_seconds = self._train_epoch(
                state, epoch, aug_gen, writer, flag, steps_done_here
            )
            val = self.dist.from_main(self._validate)
            self._record_epoch(state, epoch, epoch_seconds, val, writer)
            self._track_best(state, epoch, val)
            state["epoch"], state["step_in_epoch"] = epoch + 1, 0
            state["epoch_loss_sum"], state["epoch_seconds"] = 0.0, 0.0
            self._save(state, aug_gen)

    def _train_epoch(
        self,
        state: TrainState,
        epoch: int,
        aug_gen: torch.Generator,
        writer: ScalarWriter,
        flag: dict[str, bool],
        steps_done_here: int,
    ) -> tuple[int, float]:
        """The rest of `epoch` from ``state["step_in_epoch"]`` (mid-epoch after a resume);
        returns the steps run in this process so far and the epoch's training seconds.
        Raises TrainingInterrupted, checkpoint saved, on Ctrl-C or ``stop_after_steps``."""
        self.model.train()
        started = time.perf_counter()
        per_step = min(self.cfg.batch_size, self.n_train)
        bar = tqdm(
            total=self._steps_per_epoch() * per_step,
            initial=state["step_in_epoch"] * per_step,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            unit="img",
            unit_scale=True,
            disable=not self.progress,
            leave=False,
        )
        for images, labels, sides in self._batches(epoch, state["step_in_epoch"]):
            elapsed = state["train_seconds"] + time.perf_counter() - started
            lr = self._set_lr(state["global_step"], epoch, self.dist.maximum(elapsed))
            # native-resolution crops: one random crop of each image, a new one every epoch
            batch = pick_crops(images, aug_gen)
            if self.self_blend.active:  # before the degradations, which then hit both alike
                batch, labels = self.self_blend(batch, labels, aug_gen)
            batch = self.augment(batch, aug_gen, sides)
            batch, labels, share = self.dist.shard(batch, labels)  # all of it, or a slice
            loss = self.dist.average(self._train_step(batch, labels, aug_gen, share))
            state["epoch_loss_sum"] += loss
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            steps_done_here += 1
            bar.update(len(images))
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if state["global_step"] % 20 == 0:
                writer.add_scalar("train/loss", loss, state["global_step"])
                writer.add_scalar("train/lr", lr, state["global_step"])
            interrupted = flag["stop"] or (
                self.stop_after_steps is not None and steps_done_here >= self.stop_after_steps
            )
            out_of_time = self._out_of_time(state, started)
            interrupted, out_of_time = self.dist.any(interrupted, out_of_time)
            self._checkpoint_mid_epoch(state, epoch, aug_gen, started, interrupted, bar)
            if out_of_time:
                state["stopped_early"] = True
                break
        bar.close()
        elapsed = time.perf_counter() - started
        state["train_seconds"] += elapsed
        return steps_done_here, state["epoch_seconds"] + elapsed
