"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder (`last/`) replaced atomically: written as `last.tmp/`, then swapped
in, so an interruption at any moment leaves a complete checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

import torch
from safetensors.torch import load_file, save_file

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
INFO_FILE = "state.json"


class OptimizerInfo(TypedDict):
    """The JSON-able part of an optimizer's state_dict (state.json's "optimizer")."""

    param_groups: list[dict[str, Any]]  # as torch keeps them, "params" included
    scalars: dict[str, dict[str, Any]]  # per parameter index: the non-tensor state ("step")


def flatten_optimizer(
    state_dict: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], OptimizerInfo]:
    """Split an optimizer state_dict into tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], info: OptimizerInfo) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in info["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for group in info["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    folder: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra_tensors: dict[str, torch.Tensor],
    info: Mapping[str, object],
) -> None:
    """Write model, optimizer, RNG tensors and JSON progress into `folder` atomically."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model_state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(model_state, str(tmp / MODEL_FILE))
    opt_tensors, opt_info = flatten_optimizer(optimizer.state_dict())
    extra = {f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra_tensors.items()}
    save_file({**opt_tensors, **extra}, str(tmp / STATE_FILE))
    (tmp / INFO_FILE).write_text(json.dumps({**info, "optimizer": opt_info}, indent=1))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The complete checkpoint folder, also when a swap was interrupted halfway."""
    folder = Path(folder)
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / INFO_FILE).is_file() and (candidate / STATE_FILE).is_file():
            return candidate
    return None


def load_checkpoint(
    folder: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model and optimizer; return the JSON progress and the extra tensors."""
    folder = Path(folder)
    model.load_state_dict(load_file(str(folder / MODEL_FILE)), strict=True)
    tensors = load_file(str(folder / STATE_FILE))
    info = json.loads((folder / INFO_FILE).read_text())
    optimizer.load_state_dict(unflatten_optimizer(tensors, info.pop("optimizer")))
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    return info, extra
