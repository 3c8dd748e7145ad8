"""The training loop: phases, AMP, early stopping, checkpoints, exact resume, bundle output."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from fakescope.bundle import BundleMeta, resolve_bundle_path, save_bundle
from fakescope.config import Recipe, validate_recipe
from fakescope.data.cache import DecodedSet, StreamingDataset, load_or_decode
from fakescope.data.format_neutral import JpegReencoder, real_jpeg_qualities
from fakescope.data.multi_source import MultiSource, SourceSpec, sampling_weights
from fakescope.data.self_blend import SelfBlend
from fakescope.data.source_selection import Selection
from fakescope.data.sources import Item, Source, open_source
from fakescope.data.transforms import Augmentation, Preprocessing, native_sides, pick_crops
from fakescope.errors import ConfigError
from fakescope.evaluation.metrics import binary_metrics, choose_threshold
from fakescope.evaluation.results import BinaryMetrics
from fakescope.evaluation.unsure_band import BandFit, fit_unsure_band
from fakescope.faces import FaceCropPolicy, FaceSelector
from fakescope.models import create_model, model_defaults
from fakescope.models.registry import backbone_parameters, classifier_parameters
from fakescope.robustness.attacks import attack
from fakescope.robustness.corruptions import RobustAugment
from fakescope.training import budget, distributed
from fakescope.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from fakescope.training.run_manifest import prepare_split, read_earlier_splits
from fakescope.training.state import (
    CheckpointInfo,
    EpochRecord,
    FoldSummary,
    MeanStd,
    SourceMetrics,
    TrainState,
    TrainSummary,
    ValMetrics,
    initial_state,
)


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was saved because the run was interrupted."""


@dataclass
class TrainResult:
    run_dir: Path
    bundle_dir: Path
    val_metrics: BinaryMetrics
    test_metrics: BinaryMetrics | None
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto': bf16 where the hardware does it natively, else fp16 on CUDA, else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 itself (AVX512_BF16 or AMX). torch's capability
    string says "AVX512" on any AVX-512 CPU, and bf16 emulated on one without AVX512_BF16
    trains 1.7x SLOWER than fp32 (Xeon 2.80GHz, avx512f without avx512_bf16)."""
    cpu = getattr(torch, "cpu", None)
    native = getattr(cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(cpu, "_is_amx_tile_supported", None)
    if native is None or amx is None:  # older torch: no way to ask, so no bf16 by default
        return False
    return bool(native() or amx())


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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


def cosine_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warmup then cosine decay to min_ratio, as a multiple of the base lr."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def schedule_position(step: int, total: int, elapsed: float, budget: float | None) -> int:
    """Where in the schedule we are: by steps, or by the clock when that is further along,
    so that a slower machine still reaches the end of the schedule when the time is up."""
    if not budget:
        return step
    return max(step, min(total, int(elapsed / budget * total)))


def _denormals_flushed() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero now (no getter in torch)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)


def _epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


@contextmanager
def _interrupt_flag() -> Iterator[dict[str, bool]]:
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


class ScalarWriter(Protocol):
    """TensorBoard's SummaryWriter, or distributed.NullWriter off the main process."""

    def add_scalar(self, tag: str, value: float, step: int) -> None: ...


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The classifier ("head") and the backbone ("body") as the model registry defines them,
    each split into weights that decay and biases and norms (1-D) that do not ("_nd").

    The head trains alone during the frozen epochs and the body at its own learning rate
    after, so the split must be exactly the registry's; parameter order within each group
    stays the model's, which keeps optimizer state in checkpoints loadable.
    """
    names = {param: name for name, param in model.named_parameters()}

    def decays(param: nn.Parameter) -> bool:
        return not (param.ndim <= 1 or names[param].endswith(".bias"))

    groups: dict[str, list[nn.Parameter]] = {}
    for part, params in (
        ("head", classifier_parameters(model)),
        ("body", backbone_parameters(model)),
    ):
        groups[part] = [p for p in params if decays(p)]
        groups[part + "_nd"] = [p for p in params if not decays(p)]
    return groups


class Trainer:
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

    # -- data -------------------------------------------------------------------------
    def _decode(self, items: list[Item], desc: str) -> DecodedSet:
        if self.recipe.data.cache == "disk":  # process 0 fills the shared cache, others map it
            return self.dist.main_first(lambda: self._load_or_decode(items, desc))
        return self._load_or_decode(items, desc)

    def _load_or_decode(self, items: list[Item], desc: str) -> DecodedSet:
        read_bytes: Callable[[Item], bytes] = self.source.read_bytes
        fingerprint = self.source.fingerprint()
        if desc == "decode train" and self.reencoder is not None:
            read_bytes = self.reencoder
            fingerprint += "|" + self.reencoder.describe()
        return load_or_decode(
            items,
            read_bytes,
            self.pre,
            fingerprint=fingerprint,
            mode="disk" if self.recipe.data.cache == "disk" else "memory",
            cache_dir=self.recipe.data.cache_dir,
            progress=self.progress,
            desc=desc,
            faces=self.faces,
        )

    def _train_reencoder(self) -> JpegReencoder | None:
        """Format neutralisation (`augment.reencode`): the training images' reader that
        re-encodes non-JPEG files at the training reals' JPEG qualities."""
        if self.recipe.data.augment.reencode == "none":
            return None
        read = self.source.read_bytes
        qualities = real_jpeg_qualities(self.train_items, read, seed=self.cfg.seed)
        return JpegReencoder(read, qualities, seed=self.cfg.seed)

    def _load_data(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.reencoder = self._train_reencoder()
        if self.recipe.data.cache == "none":
            self.train_set = None
            self.stream = StreamingDataset(
                self.train_items, self.reencoder or self.source.read_bytes, self.pre, self.faces
            )
            self.n_train = len(self.train_items)
            labels = [it.label for it in self.train_items]  # None (unlabelled) fails here
            self.train_labels = torch.tensor(labels, dtype=torch.float32)
        else:
            self.train_set = self._decode(self.train_items, "decode train")
            self.skipped += self.train_set.skipped
            self.n_train = len(self.train_set)
            self.train_labels = self.train_set.labels
        self.train_sides = self._native_sides()  # before any training step: may refuse
        self.val_set = self._decode(self.val_items, "decode val")
        self.skipped += self.val_set.skipped
        if self.n_train == 0 or len(self.val_set) == 0:
            raise ConfigError("no readable training or validation images left")
        self.sample_probabilities = self._sample_probabilities()

    def _sample_probabilities(self) -> torch.Tensor | None:
        """Per training image, the chance to be drawn, when several weighted sources are
        combined (None: every image once per epoch, in a shuffled order)."""
        if not isinstance(self.source, MultiSource):
            return None
        by_path = {it.path: it.source for it in self.train_items}
        paths = (
            self.train_set.paths
            if self.train_set is not None
            else [it.path for it in self.train_items]
        )
        weights = sampling_weights([by_path.get(p) for p in paths], self.source.weights())
        return torch.from_numpy(weights)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The images of epoch `epoch`, in order: a permutation, or with weighted sources as
        many draws (with replacement) by the sources' weights."""
        generator = _epoch_generator(self.cfg.seed, epoch, 0)
        if self.sample_probabilities is None:
            return torch.randperm(self.n_train, generator=generator)
        return torch.multinomial(
            self.sample_probabilities, self.n_train, replacement=True, generator=generator
        )

    def _steps_per_epoch(self) -> int:
        bs = self.cfg.batch_size
        return max(1, self.n_train // bs) if self.n_train > bs else 1

    def _native_sides(self) -> torch.Tensor | None:
        """Per training image, its own shorter side where preprocessing enlarges it (else 0),
        for degradations at native resolution; None when the recipe degrades at input size."""
        if not self.degrade_native or self.train_set is None:
            return None
        if self.train_set.sizes is None:
            raise ConfigError(
                "augment.degrade.at 'native' needs the images' sizes, which this disk cache "
                "predates: delete it (data.cache_dir, or ~/.cache/fakescope) to decode again"
            )
        return native_sides(self.train_set.sizes, self.pre.input_size)

    def _batches(
        self, epoch: int, start: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Training batches of epoch `epoch` from step `start`, in a seeded order, each with
        its images' native shorter sides (`train_sides`) or None."""
        bs = min(self.cfg.batch_size, self.n_train)
        order = self._epoch_order(epoch)
        steps = self._steps_per_epoch()
        if self.train_set is not None:
            sides = self.train_sides
            for step in range(start, steps):
                index = order[step * bs : (step + 1) * bs]
                yield (
                    self.train_set.images[index],
                    self.train_set.labels[index],
                    None if sides is None else sides[index],
                )
            return
        subset = Subset(self.stream, order[start * bs : steps * bs].tolist())
        loader = DataLoader(subset, batch_size=bs, num_workers=self.recipe.data.workers)
        for images, labels in loader:
            keep = labels >= 0
            yield images[keep], labels[keep].float(), None

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

    def _validate(self) -> ValMetrics:
        logits = self.predict_logits(self.val_set.images)
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

    # -- checkpoints ------------------------------------------------------------------
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
        from safetensors.torch import save_file

        if not self.dist.is_main:
            return
        tmp = self.ckpt_dir / "best.safetensors.tmp"
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(tmp))
        tmp.replace(self.ckpt_dir / "best.safetensors")

    # -- the loop ---------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed % (2**32))
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        if self.device.type == "cpu":
            # denormal floats (tiny gradients late in training) are very slow on x86 CPUs; the
            # setting is process-wide, so `fit` puts the caller's back when it ends
            flushed_before = _denormals_flushed()
            torch.set_flush_denormal(True)
        else:
            flushed_before = None
        self._load_data()
        self._build()
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        state = initial_state()
        aug_gen = _epoch_generator(self.cfg.seed, 0, 1)
        found = find_checkpoint(self.ckpt_dir / "last") if resume else None
        if found is not None:
            info, extra = load_checkpoint(found, model=self.model, optimizer=self.optimizer)
            self.scaler.load_state_dict(info.pop("scaler"))
            state.update(cast(TrainState, info))
            if state["step_in_epoch"] > 0:
                own = f"rng_torch_rank{self.dist.rank}"  # other processes' dropout streams
                torch.set_rng_state(extra.get(own, extra["rng_torch"]))
                aug_gen.set_state(extra["rng_aug"])
        from torch.utils.tensorboard import SummaryWriter

        writer = (
            SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=state["global_step"])
            if self.dist.is_main
            else distributed.NullWriter()
        )
        try:
            try:
                with _interrupt_flag() as flag:
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
                aug_gen = _epoch_generator(self.cfg.seed, epoch, 1)
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
        else:
            state["epochs_since_best"] += 1
            patience = self.cfg.early_stopping_patience
            if patience is not None and state["epochs_since_best"] >= patience:
                state["stopped_early"] = True

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

    def _load_best(self) -> None:
        from safetensors.torch import load_file

        best = self.ckpt_dir / "best.safetensors"
        if best.is_file():
            self.model.load_state_dict(load_file(str(best)))

    def _final_metrics(self) -> _FinalMetrics:
        """The threshold (the recipe's policy on the validation scores), and the validation
        (overall and per source) and test metrics at it."""
        decision = self.recipe.decision
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


@dataclass
class _FinalMetrics:
    """The end of a run: the chosen threshold and the metrics at it."""

    threshold: float
    val: BinaryMetrics
    by_source: dict[str, SourceMetrics]
    test: BinaryMetrics | None
    band: BandFit | None = None  # the unsure band fitted to the recipe's budget


def face_selector(recipe: Recipe) -> FaceSelector | None:
    """The face crops a recipe trains on (`data.faces`), or None: whole images."""
    faces = recipe.data.faces
    return None if faces is None else FaceSelector(FaceCropPolicy(**faces.model_dump()))


def _prepare_run(run_dir: Path, recipe: Recipe | None, resume: bool) -> Recipe:
    """Create the run folder, or check a resumed one was made with the same recipe.

    On resume, `recipe=None` means "the recipe the run started with".
    """
    stored = run_dir / "recipe.yaml"
    if resume:
        if not stored.is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no recipe.yaml); drop --resume")
        previous = validate_recipe(yaml.safe_load(stored.read_text()), origin=str(stored))
        if recipe is not None and previous != recipe:
            raise ConfigError(
                f"{run_dir}: --resume with a recipe different from the one the run started with; "
                f"resume without --config/--set, or start a new --out"
            )
        return previous
    if recipe is None:
        raise ConfigError("a recipe is needed to start a run")
    if stored.exists():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    return recipe


def open_training_source(
    source_spec: str | Path | None, recipe: Recipe, data_dir: str | Path | None = None
) -> Source:
    """The SOURCE given on the command line, or the recipe's `data.sources` combined (their
    relative paths under `data_dir`: --data-dir, else $FAKESCOPE_DATA_DIR, else here)."""
    listed = recipe.data.sources
    if listed and source_spec is not None:
        raise ConfigError(
            f"recipe {recipe.name!r} lists its sources ({', '.join(s.label for s in listed)}); "
            "drop SOURCE, or use a recipe without data.sources"
        )
    if not listed:
        if source_spec is None:
            raise ConfigError("give a SOURCE to train on, or a recipe that lists data.sources")
        return open_source(source_spec)
    root = data_dir or os.environ.get("FAKESCOPE_DATA_DIR") or "."
    specs = [
        SourceSpec(
            s.path,
            s.label,
            s.weight,
            s.max_items,
            Selection(
                None if s.generators is None else tuple(s.generators),
                tuple(s.exclude_generators),
                s.balance,
            ),
            f"data.sources[{i}] ({s.label})",
        )
        for i, s in enumerate(listed)
    ]
    return MultiSource(specs, data_dir=root, seed=recipe.train.seed)


def _earlier_splits(recipe: Recipe, run_dir: Path, folds: int | None) -> dict[str, str] | None:
    """The splits `data.keep_splits_of` names, while the run has no manifest of its own."""
    keep = recipe.data.keep_splits_of
    if keep is None or (run_dir / "manifest.csv").is_file():
        return None
    if folds:
        raise ConfigError("data.keep_splits_of and --folds exclude each other")
    return read_earlier_splits(keep)


def _open_run(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: Path,
    resume: bool,
    folds: int | None,
    progress: bool,
    data_dir: str | Path | None = None,
) -> tuple[Source, Recipe, list[Item]]:
    """Open the source, create (or check) the run folder and fix the split in its manifest.

    Under torchrun process 0 does this first; the others then find the run it created.
    """
    main = distributed.current().is_main

    def open_run() -> tuple[Source, Recipe, list[Item]]:
        # a bad data.keep_splits_of is refused before the run starts; a run resumed without a
        # recipe takes the one stored in its folder
        earlier = None if recipe is None else _earlier_splits(recipe, run_dir, folds)
        run_recipe = _prepare_run(run_dir, recipe, resume or not main)
        if recipe is None:
            earlier = _earlier_splits(run_recipe, run_dir, folds)
        source = open_training_source(source_spec, run_recipe, data_dir)
        items = prepare_split(
            source,
            run_recipe.data,
            seed=run_recipe.train.seed,
            manifest_path=run_dir / "manifest.csv",
            folds=folds,
            progress=progress,
            earlier=earlier,
        )
        return source, run_recipe, items

    return distributed.current().main_first(open_run)


@distributed.in_session  # launched by torchrun: the processes train one model together
def train(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str = "",
    stop_after_steps: int | None = None,
    data_dir: str | Path | None = None,
) -> TrainResult:
    """Train a detector on a source (None: the recipe's data.sources, under `data_dir`) and
    write RUN/bundle, RUN/metrics.json, checkpoints, logs."""
    run_dir = Path(run_dir)
    source, recipe, items = _open_run(
        source_spec, recipe, run_dir, resume, None, progress, data_dir
    )
    trainer = Trainer(
        recipe,
        run_dir,
        source=source,
        items=items,
        progress=progress,
        command=command,
        stop_after_steps=stop_after_steps,
    )
    return trainer.fit(resume=resume)


@distributed.in_session
def train_folds(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: str | Path,
    folds: int,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str = "",
    data_dir: str | Path | None = None,
) -> FoldSummary:
    """K-fold: one bundle per fold in RUN/fold{i}/bundle and a mean ± std summary."""
    if folds < 2:
        raise ConfigError("--folds must be at least 2")
    run_dir = Path(run_dir)
    source, recipe, items = _open_run(
        source_spec, recipe, run_dir, resume, folds, progress, data_dir
    )
    results: list[BinaryMetrics] = []
    for k in range(folds):
        fold_dir = run_dir / f"fold{k}"
        if (fold_dir / "metrics.json").is_file() and resume:
            results.append(json.loads((fold_dir / "metrics.json").read_text())["val"])
            continue
        trainer = Trainer(
            recipe,
            fold_dir,
            source=source,
            items=items,
            val_split=f"fold{k}",
            progress=progress,
            command=command,
        )
        results.append(trainer.fit(resume=resume).val_metrics)

    def over_folds(key: str) -> MeanStd:
        found = [r.get(key) for r in results]
        values = np.array([v for v in found if v is not None], dtype=float)
        return {"mean": float(values.mean()), "std": float(values.std(ddof=1))}

    summary: FoldSummary = {
        "folds": folds,
        "per_fold": results,
        "accuracy": over_folds("accuracy"),
        "precision": over_folds("precision"),
        "recall": over_folds("recall"),
        "f1": over_folds("f1"),
        "roc_auc": over_folds("roc_auc"),
        "average_precision": over_folds("average_precision"),
    }
    if distributed.current().is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
