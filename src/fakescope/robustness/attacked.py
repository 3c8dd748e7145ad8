"""The attack pass of a sweep: each detector attacked white-box (FGSM, PGD) through its own
gradient in its input space, one row per attack and budget, and example images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fakescope.data.sources import Item, Source
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector
from fakescope.faces import FaceCropPolicy
from fakescope.models.attacks import attack
from fakescope.robustness.conditions import RobustnessConfig
from fakescope.robustness.images import CHUNK, decode_chunk, in_chunks, preprocess_images
from fakescope.robustness.plots import save_attack_examples
from fakescope.robustness.results import AttackExamples, RobustnessRow, RowResult
from fakescope.robustness.rows import empty_row, row_result

AttackTarget = tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]


class CropMean(torch.nn.Module):
    """A one-logit model on (B, K, 3, S, S) crops: the model on the B*K crops flattened, its
    logits averaged per image (what `Detector.logits` does with native crops)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]
        logits: torch.Tensor = self.model(x.flatten(0, 1))
        return logits.reshape(b, k).mean(dim=1, keepdim=True)


def attack_target(detector: Detector) -> AttackTarget:
    """(module, normalize, preprocessing, temperature) for white-box attacks on `detector`.

    `module(normalize(x01))` is the detector's fake-logit for images `x01` in [0, 1] at the
    preprocessing's input size, or for (B, K, 3, S, S) native crops (their mean logit);
    detectors of several members give gradients through all of them, and runtimes without gradients
    (onnxruntime) refuse with the reason.
    """
    model, normalize, pre, temperature = detector.attack_target()
    if pre.multi_crop:
        return CropMean(model), normalize, pre, temperature
    return model, normalize, pre, temperature


def _attacked_probabilities(
    target: AttackTarget,
    images01: torch.Tensor,
    labels: torch.Tensor,
    name: str,
    eps: float,
    *,
    steps: int,
    step_size: float | None,
    seed: int,
    batch_size: int,
    keep: int = 0,
) -> tuple[np.ndarray, torch.Tensor]:
    """p(fake) of adversarial images, and the first `keep` adversarial images."""
    model, normalize, _, temperature = target
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    probs: list[np.ndarray] = []
    kept: list[torch.Tensor] = []
    for start in range(0, len(images01), batch_size):
        x = images01[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        adv = attack(
            name, model, x, y, eps, normalize, steps=steps, step_size=step_size, generator=generator
        )
        with torch.no_grad():
            z = model(normalize(adv)).float().reshape(-1)
        probs.append(torch.sigmoid(z / temperature).cpu().numpy())
        if sum(len(k) for k in kept) < keep:
            kept.append(adv.cpu())
    examples = torch.cat(kept)[:keep] if kept else images01[:0]
    return np.concatenate(probs), examples


def run_attacks(
    detectors: Sequence[Detector],
    names: Sequence[str],
    targets: Sequence[AttackTarget],
    source: Source,
    paths: Sequence[str],
    labels: np.ndarray,
    clean_results: Sequence[RowResult],
    config: RobustnessConfig,
    out: Path,
    progress: bool,
) -> tuple[list[RobustnessRow], dict[str, dict[str, AttackExamples]]]:
    """One row per (attack, eps), each model attacked white-box through its own gradient."""
    by_path = {it.path: it for it in source.items}
    items = [by_path[p] for p in paths]
    rows = {(a, e): empty_row("attack", a, e, "eps") for a in config.attacks for e in config.eps}
    examples: dict[str, dict[str, AttackExamples]] = {}
    total = len(items) * len(rows) * len(detectors)
    bar = tqdm(total=total, desc="attack", unit="img", disable=not progress)
    # example images (both classes, alternating) go first, so they are among the kept
    keep = min(config.examples, len(items))
    order = _example_order(labels, keep)
    y_ordered = torch.from_numpy(labels).float()[order]
    for det_index, (name, detector, target) in enumerate(
        zip(names, detectors, targets, strict=True)
    ):
        x01 = _attack_inputs(source, items, target[2], order, config.faces)
        for (attack_name, eps), row in rows.items():
            p, adv = _attacked_probabilities(
                target,
                x01,
                y_ordered,
                attack_name,
                eps,
                steps=config.steps,
                step_size=config.step_size,
                seed=config.seed,
                batch_size=config.batch_size,
                keep=keep,
            )
            p = p[np.argsort(order)]  # back to the images' order
            row["results"][name] = row_result(
                labels, p, detector.threshold, clean_results[det_index]
            )
            bar.update(len(items))
            if keep and eps == max(config.eps):
                # native crops: the examples show each image's first crop
                first = (lambda t: t[:, 0]) if x01.ndim == 5 else (lambda t: t)
                examples.setdefault(name, {})[attack_name] = save_attack_examples(
                    first(x01[:keep]),
                    first(adv),
                    eps,
                    out / "examples",
                    prefix=f"{_safe(name)}_{attack_name}",
                    labels=labels[order[:keep]],
                    p_clean=detector.probabilities((x01[:keep] * 255).round().to(torch.uint8)),
                    p_adv=p[order[:keep]],
                )
    bar.close()
    return list(rows.values()), examples


def _attack_inputs(
    source: Source,
    items: Sequence[Item],
    pre: Preprocessing,
    order: np.ndarray,
    faces: FaceCropPolicy | None = None,
) -> torch.Tensor:
    """The readable images in the attacked model's input space ([0, 1], its input size), in
    `order`. Decoded again per model: models may differ in input size, and keeping every
    full-resolution image from the corruption pass would not bound memory."""
    arrays = []
    for chunk in in_chunks(items, CHUNK):
        decoded = decode_chunk(source, chunk, faces)
        arrays.append(preprocess_images(pre, [a for a in decoded if not isinstance(a, str)]))
    return torch.cat(arrays)[order].float() / 255.0


def _example_order(labels: np.ndarray, keep: int) -> np.ndarray:
    """A permutation of the images whose first `keep` alternate real and fake."""
    pools = [list(np.flatnonzero(labels == c)) for c in (0, 1)]
    first: list[int] = []
    while len(first) < keep and (pools[0] or pools[1]):
        for pool in pools:
            if pool and len(first) < keep:
                first.append(int(pool.pop(0)))
    chosen = set(first)
    rest = [i for i in range(len(labels)) if i not in chosen]
    return np.asarray(first + rest, dtype=np.int64)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
