"""The learning-rate schedule (linear warmup, cosine decay; by steps or by the clock), the
parameter groups it sets (head and body, with and without weight decay) and the seeded
random stream of each epoch."""

from __future__ import annotations

import math

import torch
from torch import nn

from fakescope.models.registry import backbone_parameters, classifier_parameters


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


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + stream)


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
