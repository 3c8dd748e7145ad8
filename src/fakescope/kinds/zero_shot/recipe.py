"""The zero-shot coder's training recipe: a YAML file plus ``--set`` overrides, validated
strictly (unknown keys and out-of-range values fail before anything runs)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fakescope.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class CoderShape(_Strict):
    width: int = Field(32, ge=4, le=512)
    blocks: int = Field(5, ge=1, le=32)
    mixtures: int = Field(5, ge=1, le=16)
    residual: int = Field(0, ge=0, le=1, description="1: means are offsets from the coarse pixel")
    context: int = Field(
        0,
        ge=0,
        le=9,
        description="side of the causal convolution over the level's coded pixels (0: none)",
    )

    @model_validator(mode="after")
    def _context_side(self) -> CoderShape:
        if self.context == 1:
            raise ValueError("context must be 0 (none) or a kernel side of 2 or more")
        return self


class RealData(_Strict):
    clones: str = Field(
        "../data/clones",
        description="folder holding the real_sources.tsv repositories as <owner>+<name>/",
    )
    shared: str | None = Field(
        "../shared/data", description="folder of the shared archives (their real/ halves)"
    )
    seed: int = 0
    calib: float = Field(0.05, ge=0.0, lt=0.5, description="repositories: threshold share")
    test: float = Field(0.05, ge=0.0, lt=0.5, description="repositories: test share")
    archive_calib: float = Field(0.25, ge=0.0, lt=0.5)
    archive_test: float = Field(0.25, ge=0.0, lt=0.5)


class TrainLoop(_Strict):
    crop: int = Field(64, ge=16, le=512, description="training crop side, a multiple of 8")
    batch_size: int = Field(16, ge=1, le=1024)
    crops_per_image: int = Field(4, ge=1, le=64, description="crops taken from each decode")
    lr: float = Field(2e-3, gt=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0)
    minutes: float = Field(90.0, gt=0.0, le=24 * 60, description="wall-clock budget")
    max_steps: int = Field(1_000_000, ge=1)
    degrade: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of photos whose crops are blurred, re-scaled or re-compressed first",
    )
    checkpoint_every: int = Field(50, ge=1, description="steps between checkpoints")
    threads: int = Field(2, ge=1, le=256)
    seed: int = 0
    test_images: int = Field(400, ge=1, description="held-out test photos for bits/sub-pixel")

    @model_validator(mode="after")
    def _crop_multiple(self) -> TrainLoop:
        if self.crop % 8:
            raise ValueError(f"crop ({self.crop}) must be a multiple of 8")
        return self


class ZeroShotRecipe(_Strict):
    description: str = ""
    coder: CoderShape = Field(default_factory=CoderShape)
    data: RealData = Field(default_factory=RealData)
    train: TrainLoop = Field(default_factory=TrainLoop)


def _set_key(data: dict[str, Any], key: str, raw: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def load_recipe(
    path: str | os.PathLike[str] | None, overrides: list[str] | None = None
) -> ZeroShotRecipe:
    """A recipe file (None: the shipped ``zero_shot/recipe.yaml``) with ``key=value`` overrides.

    Raises:
        ConfigError: the file is missing or not YAML, or a key or value is invalid.
    """
    if path is None:
        text = resources.files("fakescope.kinds.zero_shot").joinpath("recipe.yaml").read_text()
        where = "fakescope/kinds/zero_shot/recipe.yaml (shipped)"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read recipe ({exc.strerror or exc})") from None
        where = str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a recipe is a mapping of sections")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item}: expected key=value")
        _set_key(data, key.strip(), raw)
    try:
        return ZeroShotRecipe.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None
