"""Training the real-image coder: random crops of real photos at their own resolution, a
wall-clock budget, checkpoints that a resumed run continues from, and the held-out test
photos' bits per sub-pixel at the end."""

from __future__ import annotations

import io
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from fakescope.atomic import atomic_write_text
from fakescope.data.sources import read_item_bytes
from fakescope.errors import ConfigError, ImageError
from fakescope.kinds.zero_shot.coder import Coder, CoderConfig
from fakescope.kinds.zero_shot.crops import degraded_crops, random_crops
from fakescope.kinds.zero_shot.data import RealImage, recipe_real_images
from fakescope.kinds.zero_shot.recipe import ZeroShotRecipe

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "coder.safetensors"
SUMMARY = "summary.json"
DROP_AFTER = 20  # photos too small (or broken) before any usable one: the source is dropped


def load_rgb(path: str) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB. Raises ImageError when it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(read_item_bytes(path))) as img:
            return np.asarray(img.convert("RGB"))
    except ImageError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ImageError(path, f"cannot decode ({exc})") from None


def to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


class CropStream:
    """Endless batches of crops from the training photos: a source first (each equally
    likely), then a photo of it, then `crops_per_image` crops of that photo (of a degraded
    copy of it for a `train.degrade` share of photos)."""

    def __init__(self, images: list[RealImage], recipe: ZeroShotRecipe, rng: random.Random) -> None:
        self.by_source: dict[str, list[str]] = {}
        for image in images:
            self.by_source.setdefault(image.source, []).append(image.path)
        if not self.by_source:
            raise ConfigError("no training photos found: check data.clones and data.shared")
        self.sources = sorted(self.by_source)
        self.recipe = recipe
        self.rng = rng
        self.pending: list[np.ndarray] = []
        self.too_small: set[str] = set()
        self.useful: set[str] = set()  # sources that gave at least one crop
        self.misses: dict[str, int] = {}  # photos too small or broken, per source

    def _drop_if_useless(self, source: str) -> None:
        """A source whose first DROP_AFTER photos were all too small (CIFAKE's 32 px) is
        dropped: drawing from it again only decodes photos that give nothing."""
        self.misses[source] = self.misses.get(source, 0) + 1
        if source not in self.useful and self.misses[source] >= DROP_AFTER:
            self.sources.remove(source)
            log.warning(
                "%s: its first %d photos were all smaller than the %d px crop; not drawn again",
                source,
                DROP_AFTER,
                self.recipe.train.crop,
            )
            if not self.sources:
                raise ConfigError(
                    f"no training photo is as large as the crop ({self.recipe.train.crop} px)"
                )

    def batch(self) -> torch.Tensor:
        loop = self.recipe.train
        while len(self.pending) < loop.batch_size:
            source = self.rng.choice(self.sources)
            path = self.rng.choice(self.by_source[source])
            if path in self.too_small:
                continue
            try:
                pixels = load_rgb(path)
            except ImageError as exc:
                log.warning("skipped: %s", exc)
                self.too_small.add(path)
                self._drop_if_useless(source)
                continue
            crops: list[np.ndarray] = []
            if loop.degrade > 0 and self.rng.random() < loop.degrade:
                crops = degraded_crops(pixels, loop.crop, loop.crops_per_image, self.rng)
            if not crops:  # not drawn for degrading, or too small for its margin
                crops = random_crops(pixels, loop.crop, loop.crops_per_image, self.rng)
            if crops:
                self.useful.add(source)
            else:
                self.too_small.add(path)
                self._drop_if_useless(source)
            self.pending.extend(crops)
        out, self.pending = self.pending[: loop.batch_size], self.pending[loop.batch_size :]
        return to_tensor(out)


def test_crops(images: list[RealImage], side: int, limit: int, seed: int) -> torch.Tensor:
    """One centre crop of each of up to `limit` held-out test photos (a seeded, source-
    stratified choice: the same number from each source where it has them)."""
    rng = random.Random(seed)
    by_source: dict[str, list[str]] = {}
    for image in images:
        if image.split == "test":
            by_source.setdefault(image.source, []).append(image.path)
    for paths in by_source.values():
        rng.shuffle(paths)
    crops: list[np.ndarray] = []
    rank = 0
    while len(crops) < limit and any(rank < len(p) for p in by_source.values()):
        for source in sorted(by_source):
            if rank < len(by_source[source]) and len(crops) < limit:
                pixels = load_rgb(by_source[source][rank])
                h, w = pixels.shape[:2]
                if h >= side and w >= side:
                    y, x = (h - side) // 2, (w - side) // 2
                    crops.append(pixels[y : y + side, x : x + side])
        rank += 1
    return to_tensor(crops)


@torch.no_grad()
def bits_per_subpixel(coder: Coder, crops: torch.Tensor, batch: int = 16) -> float:
    """The coder's lossless cost of the crops (all levels), bits per sub-pixel."""
    coder.eval()
    costs = [
        coder.total_bits_per_subpixel(crops[i : i + batch]) for i in range(0, len(crops), batch)
    ]
    return float(torch.cat(costs).mean())


def _identity(recipe: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint: all but the budget (read through
    the recipe model, so a key added since the checkpoint was written takes its default)."""
    full = ZeroShotRecipe.model_validate(recipe).model_dump()
    train = {k: v for k, v in full["train"].items() if k not in ("minutes", "max_steps")}
    return {**full, "train": train}


@dataclass
class TrainResult:
    coder: Coder
    steps: int
    seconds: float
    test_bits: float | None
    train_bits: float


def train_coder(
    recipe: ZeroShotRecipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train (or continue) the coder in `run_dir`: a checkpoint every
    ``train.checkpoint_every`` steps (model, optimiser, step, seconds used, random states),
    then the weights and a summary. A run folder with a checkpoint is only continued with
    `resume`.

    Raises:
        ConfigError: the run folder holds a checkpoint and `resume` is false, or no photos.
    """
    run = Path(run_dir)
    checkpoint = run / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise ConfigError(f"{run}: holds a checkpoint; continue it with --resume or choose --out")
    run.mkdir(parents=True, exist_ok=True)
    loop = recipe.train
    torch.set_num_threads(loop.threads)
    torch.manual_seed(loop.seed)
    rng = random.Random(loop.seed)
    data = recipe.data
    images = recipe_real_images(data)
    stream = CropStream([i for i in images if i.split == "train"], recipe, rng)
    coder = Coder(CoderConfig(**recipe.coder.model_dump()))
    opt = torch.optim.AdamW(coder.parameters(), lr=loop.lr, weight_decay=loop.weight_decay)
    step, used = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if _identity(state["recipe"]) != _identity(recipe.model_dump()):
            raise ConfigError(
                f"{checkpoint}: written by another recipe; resume with the same one (only "
                "train.minutes and train.max_steps may change)"
            )
        coder.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, used = int(state["step"]), float(state["seconds"])
        rng.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at step %d after %.0f s", step, used)
    (run / "recipe.json").write_text(json.dumps(recipe.model_dump(), indent=2))
    budget = loop.minutes * 60.0
    started = time.monotonic() - used
    recent: list[float] = []

    def save_checkpoint() -> None:
        state = {
            "recipe": recipe.model_dump(),
            "model": coder.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "seconds": time.monotonic() - started,
            "python_rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(checkpoint)

    coder.train()
    while step < loop.max_steps and time.monotonic() - started < budget:
        frac = min(1.0, (time.monotonic() - started) / budget)
        lr = loop.lr * (
            min(1.0, (step + 1) / 50) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        )
        for group in opt.param_groups:
            group["lr"] = lr
        batch = stream.batch()
        loss = coder.bits(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(coder.parameters(), 1.0)
        opt.step()
        step += 1
        recent = (recent + [loss.item()])[-50:]
        if progress is not None:
            progress(step, recent[-1], time.monotonic() - started)
        if step % loop.checkpoint_every == 0:
            save_checkpoint()
            log.info("step %d: %.3f bits/sub-pixel (last 50 steps)", step, np.mean(recent))
    save_checkpoint()
    seconds = time.monotonic() - started
    save_file({k: v.contiguous() for k, v in coder.state_dict().items()}, str(run / WEIGHTS))
    test_bits = None
    crops = test_crops(images, loop.crop, loop.test_images, data.seed)
    if len(crops):
        test_bits = bits_per_subpixel(coder, crops)
    summary: dict[str, Any] = {
        "steps": step,
        "seconds": round(seconds, 1),
        "train_bits_last50": float(np.mean(recent)) if recent else None,
        "test_bits_per_subpixel": test_bits,
        "test_crops": len(crops),
        "coder": recipe.coder.model_dump(),
        "parameters": sum(p.numel() for p in coder.parameters()),
        "skipped_small_or_broken": len(stream.too_small),
    }
    atomic_write_text(run / SUMMARY, json.dumps(summary, indent=2))
    return TrainResult(
        coder, step, seconds, test_bits, summary["train_bits_last50"] or float("nan")
    )
