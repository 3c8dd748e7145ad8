"""Tiny models, bundles and training recipes shared by the tests: seconds to build or train.

`tiny_bundle` saves an untrained small resnet_se (widths 8, 16, 32) as a bundle; `tiny_recipe`
is the seconds-long recipe on the toy data (`tiny_recipe_data` as a dict, `tiny_recipe_file`
as YAML for the CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from fakescope.bundle import BundleMeta, save_bundle
from fakescope.config import Recipe, validate_recipe
from fakescope.data.transforms import Preprocessing
from fakescope.models import create_model

WIDTHS = [8, 16, 32]


def tiny_model(seed: int | None = 0) -> nn.Module:
    """An untrained resnet_se of widths 8, 16, 32, seeded first unless `seed` is None."""
    if seed is not None:
        torch.manual_seed(seed)
    return create_model("resnet_se", widths=WIDTHS)


def tiny_bundle(
    folder: Path,
    seed: int = 0,
    *,
    size: int = 32,
    preprocessing: Preprocessing | None = None,
    **meta: Any,
) -> Path:
    """Save `tiny_model(seed)` as a bundle in `folder`: input `size` (or `preprocessing`),
    any other `BundleMeta` fields (threshold, unsure_margin...) as keywords."""
    model = tiny_model(seed)
    bundle_meta = BundleMeta(
        architecture="resnet_se",
        model_kwargs={"widths": WIDTHS},
        preprocessing=preprocessing or Preprocessing(input_size=size),
        **meta,
    )
    return save_bundle(folder, model, bundle_meta)


def report_bundle(folder: Path, seed: int = 0, **meta: Any) -> Path:
    """`tiny_bundle` normalising with mean 0.5 and std 0.25, as the report tests' bundles do."""
    pre = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return tiny_bundle(folder, seed, preprocessing=pre, **meta)


def tiny_model_section() -> dict[str, Any]:
    """The recipe's `model` section for the tiny resnet_se."""
    return {"name": "resnet_se", "drop_rate": 0.0, "kwargs": {"widths": list(WIDTHS)}}


def tiny_recipe_data(**train_overrides: object) -> dict[str, Any]:
    """The tiny recipe as a dict: small resnet_se, fp32, one thread, 3 steps an epoch on the
    toy data, a checkpoint every 2 steps; `train_overrides` replace `train` fields."""
    return {
        "name": "tiny",
        "model": tiny_model_section(),
        "data": {"val_fraction": 0.25, "augment": {"hflip": True, "pad_crop": 2}},
        "train": {
            "epochs": 2,
            "batch_size": 8,
            "lr": 0.003,
            "warmup_epochs": 0.5,
            "precision": "fp32",
            "threads": 1,
            "checkpoint_every_steps": 2,
            **train_overrides,
        },
    }


def tiny_recipe(**train_overrides: object) -> Recipe:
    """A seconds-long recipe on the toy data: small resnet_se, fp32, one thread."""
    return validate_recipe(tiny_recipe_data(**train_overrides))


def tiny_recipe_file(folder: Path, **train_overrides: object) -> Path:
    """The tiny recipe written to folder/tiny.yaml, for the CLI."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_data(**train_overrides)))
    return path
