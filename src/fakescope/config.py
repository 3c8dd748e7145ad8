"""Typed training recipes: YAML files plus `--set key=value` overrides, validated up front."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fakescope.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(_Strict):
    name: str = "resnet_se"
    pretrained: bool = False
    pretrained_path: str | None = Field(
        None,
        description="weights file, bundle folder, or a shipped detector's name "
        "('default', 'scratch')",
    )
    pretrained_url: str | None = None
    drop_rate: float = Field(0.2, ge=0.0, lt=1.0)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DegradeConfig(_Strict):
    """Robust-training degradations (see fakescope.robustness.corruptions.RobustAugment)."""

    p_rescale: float = Field(0.0, ge=0.0, le=1.0)
    rescale_min: float = Field(0.5, gt=0.0, le=1.0)
    p_blur: float = Field(0.0, ge=0.0, le=1.0)
    blur_max: float = Field(2.0, ge=0.0, le=10.0, description="max blur sigma, pixels")
    p_jpeg: float = Field(0.0, ge=0.0, le=1.0)
    jpeg_min: int = Field(30, ge=1, le=100)
    jpeg_max: int = Field(100, ge=1, le=100)
    p_noise: float = Field(0.0, ge=0.0, le=1.0)
    noise_max: float = Field(0.1, ge=0.0, le=1.0, description="max noise sigma, [0, 1] scale")
    at: Literal["input", "native"] = Field(
        "input",
        description="'native' (resize 'native' only): an image that preprocessing enlarged "
        "(a 32 px thumbnail seen at 160 px) is degraded at its own resolution, as files are "
        "degraded in the world; 'input': every image at the model's input size",
    )

    @model_validator(mode="after")
    def _jpeg_range(self) -> DegradeConfig:
        if self.jpeg_min > self.jpeg_max:
            raise ValueError(
                f"jpeg_min ({self.jpeg_min}) must not exceed jpeg_max ({self.jpeg_max})"
            )
        return self


class SelfBlendConfig(_Strict):
    """Self-blended fakes for face detectors (see fakescope.data.self_blend): a share of the
    real faces of every batch pasted onto themselves, altered a little, and labelled fake."""

    p: float = Field(0.0, ge=0.0, le=1.0, description="chance for each real training face")
    max_shift: float = Field(0.03, ge=0.0, le=0.2, description="share of the side")
    max_scale: float = Field(0.05, ge=0.0, le=0.3)
    max_color: float = Field(0.12, ge=0.0, le=0.5, description="per-channel gain change")


class AugmentConfig(_Strict):
    hflip: bool = True
    pad_crop: int = Field(0, ge=0, le=64)
    degrade: DegradeConfig = Field(default_factory=DegradeConfig)
    self_blend: SelfBlendConfig = Field(
        default_factory=SelfBlendConfig,
        description="face crops only: blend real faces with altered copies of themselves, "
        "labelled fake, applied before the degradations",
    )
    reencode: Literal["none", "non_jpeg"] = Field(
        "none",
        description="'non_jpeg': every training image that is not a JPEG file is re-encoded as "
        "one, once, at a quality drawn from the training reals' JPEG qualities, so file format "
        "and compression cannot tell the classes apart (fakescope.data.format_neutral)",
    )


class SourceConfig(_Strict):
    """One of several training sources: a folder, archive or CSV, relative to --data-dir."""

    path: str
    name: str | None = Field(None, description="default: the file or folder name")
    weight: float = Field(
        1.0,
        ge=0.0,
        description="share of each epoch, relative to others; 0 keeps the source for validation "
        "only (its images are split and validated, never drawn for training: leave-one-out runs)",
    )
    max_items: int | None = Field(None, ge=10, description="stratified subsample of this one")
    generators: list[str] | None = Field(
        None,
        min_length=1,
        description="a CSV manifest's generators to keep, by name or shell glob ('GPT-4o*'); "
        "a pattern that matches none is an error",
    )
    exclude_generators: list[str] = Field(
        default_factory=list, description="generators to leave out, by name or glob"
    )
    balance: Literal["none", "generator", "origin"] = Field(
        "none",
        description="with max_items: an equal quota per generator (or per origin, the "
        "manifest's `source` column) instead of a stratified one; small ones give all they have",
    )

    @model_validator(mode="after")
    def _balance_needs_cap(self) -> SourceConfig:
        if self.balance != "none" and self.max_items is None:
            raise ValueError(f"balance {self.balance!r} needs max_items (the total to share)")
        bad = [p for p in (self.generators or []) + self.exclude_generators if not p.strip()]
        if bad:
            raise ValueError("generator patterns must not be empty")
        return self

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


class FacesConfig(_Strict):
    """Train on face crops: each image's largest face, cut by this policy (the bundle records
    it, so `--faces` at prediction crops the same way); images without a face are kept whole.
    See `fakescope.faces.FaceCropPolicy`."""

    margin: float = Field(0.25, ge=0.0, le=2.0, description="added on each side, x box side")
    square: bool = True
    min_size: int = Field(24, ge=1, description="ignore faces smaller than this (px)")
    finder: Literal["auto", "mtcnn", "haar"] = "auto"
    align: bool = Field(
        False, description="turn each crop so the eyes are level (MTCNN's eye landmarks)"
    )


class DataConfig(_Strict):
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="several sources sampled by weight; then `fakescope train` takes no SOURCE",
    )
    input_size: int | None = Field(None, ge=8, le=1024, description="None: the model's default")
    resize: Literal["squash", "shorter_crop", "native"] = "squash"
    crops: int = Field(
        1, ge=1, le=64, description="resize 'native': crops per image at inference and in val"
    )
    interpolation: Literal["bilinear", "bicubic"] = "bicubic"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.0, ge=0.0, lt=0.5)
    max_items: int | None = Field(None, ge=10, description="stratified subsample, for quick runs")
    cache: Literal["memory", "disk", "none"] = "memory"
    cache_dir: str | None = None
    group_duplicates: Literal["none", "exact", "near"] = "exact"
    keep_splits_of: str | None = Field(
        None,
        description="an earlier run (folder or its manifest.csv): its validation images stay "
        "held out and its training images stay in training; images new to this run are split "
        "as usual (for a stage-2 run that starts from that run's weights)",
    )
    workers: int = Field(2, ge=0, description="DataLoader workers when cache is 'none'")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    faces: FacesConfig | None = Field(
        None, description="crop each image's largest face before preprocessing (null: whole)"
    )

    @model_validator(mode="after")
    def _crops_need_native(self) -> DataConfig:
        if self.crops > 1 and self.resize != "native":
            raise ValueError(f"crops={self.crops} needs resize 'native'")
        if self.augment.degrade.at == "native" and self.resize != "native":
            raise ValueError("augment.degrade.at 'native' needs resize 'native'")
        if self.augment.degrade.at == "native" and self.cache == "none":
            raise ValueError(
                "augment.degrade.at 'native' needs the images' sizes: set cache 'memory' or 'disk'"
            )
        names = [s.label for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if self.sources and not any(s.weight > 0 for s in self.sources):
            raise ValueError("every source has weight 0: at least one must be trained on")
        return self


class AdversarialConfig(_Strict):
    """Adversarial training: a share of every batch replaced by attacked copies."""

    ratio: float = Field(0.0, ge=0.0, le=1.0, description="adversarial share of each batch")
    attack: Literal["fgsm", "pgd"] = "pgd"
    eps: list[float] = Field(
        default_factory=lambda: [1 / 255, 2 / 255, 4 / 255],
        min_length=1,
        description="L-inf radii on the [0, 1] scale, one drawn per batch",
    )
    steps: int = Field(3, ge=1, le=100, description="PGD steps")
    step_size: float | None = Field(None, gt=0.0, description="PGD step; None: 2.5 * eps / steps")

    @model_validator(mode="after")
    def _eps_range(self) -> AdversarialConfig:
        bad = [e for e in self.eps if not 0.0 < e <= 0.5]
        if bad:
            raise ValueError(f"eps values must be in (0, 0.5] on the [0, 1] scale, got {bad}")
        return self


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)
    warmup_epochs: float = Field(1.0, ge=0.0)
    min_lr_ratio: float = Field(0.01, ge=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    grad_clip: float | None = Field(1.0, gt=0.0)
    class_balance: Literal["auto", "none", "loss_weight"] = "auto"
    freeze_epochs: int = Field(0, ge=0, description="phase 1: train only the head")
    finetune_lr_scale: float = Field(1.0, gt=0.0, le=1.0, description="backbone lr in phase 2")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    early_stopping_patience: int | None = Field(5, ge=1)
    checkpoint_every_steps: int = Field(200, ge=1)
    max_minutes: float | None = Field(None, gt=0.0, description="stop after this much training")
    total_minutes: float | None = Field(
        None,
        gt=0.0,
        description="budget of the whole chain of stages: a run that starts from a bundle "
        "(model.pretrained_path) stops when its training plus the training that bundle "
        "records for itself and the stages before it reaches this (and at max_minutes)",
    )
    schedule_by_time: bool = Field(
        False,
        description="with max_minutes or total_minutes: the cosine schedule follows the clock "
        "as well as the steps, so it ends on time on a slow machine (not bit-reproducible)",
    )
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    device: str = "auto"

    @model_validator(mode="after")
    def _phases_fit(self) -> TrainConfig:
        if self.freeze_epochs >= self.epochs:
            raise ValueError(
                f"freeze_epochs ({self.freeze_epochs}) must be smaller than epochs ({self.epochs})"
            )
        return self


class DecisionConfig(_Strict):
    threshold_policy: Literal["max_f1", "youden", "fixed"] = "max_f1"
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    unsure_margin: float = Field(0.1, ge=0.0, lt=0.5, description="unsure if |p - t| < margin")
    unsure_policy: Literal["margin", "risk"] = Field(
        "margin",
        description="margin: the band is threshold +/- margin; risk: the band is widened on "
        "validation data until every source keeps within the budgets below",
    )
    max_real_called_fake: float = Field(
        0.05, gt=0.0, lt=0.5, description="risk: share of reals confidently called fake"
    )
    max_fake_called_real: float = Field(
        0.10, gt=0.0, lt=0.5, description="risk: share of fakes confidently called real"
    )
    content: Literal["any", "photo"] = Field(
        "any",
        description="what the detector is for, written into the bundle (bundle.json "
        "`content`): any image, or photo: photographs only, so drawn or graphic images "
        "(plots, screenshots, illustrations) are answered unsure",
    )


class CardConfig(_Strict):
    """Text the trainer copies into the bundle's model card (what people read about it)."""

    title: str | None = None
    summary: str | None = None
    intended_use: str | None = None
    limits: str | None = None


class Recipe(_Strict):
    """A whole training recipe."""

    name: str = "custom"
    description: str = ""
    card: CardConfig | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy)."""
    import copy

    result = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def merge_recipes(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` laid over `base`: sections merge key by key, any other value (lists too) replaces."""
    import copy

    result = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_recipes(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _parent_recipe_path(parent: str, child: Path) -> Path:
    """`extends: NAME` looks beside the child first (NAME or NAME.yaml), then as usual."""
    for candidate in (child.parent / parent, child.parent / f"{parent}.yaml"):
        if candidate.is_file():
            return candidate
    try:
        return resolve_recipe_path(parent)
    except ConfigError as exc:
        raise ConfigError(f"{child}: extends {parent!r}, which is not found: {exc}") from None


def read_recipe_file(file: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe file as a plain mapping, with the recipe it `extends:` (if any) laid under it."""
    try:
        loaded = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the recipe: {exc}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{file}: a recipe must be a mapping, found {type(loaded).__name__}")
    data: dict[str, Any] = dict(loaded or {})
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{file}: `extends` must be the name or path of one recipe")
    parent_file = _parent_recipe_path(parent, file)
    chain = (*_chain, file.resolve())
    if parent_file.resolve() in chain:
        loop = " -> ".join(str(p) for p in (*chain, parent_file.resolve()))
        raise ConfigError(f"{file}: `extends` goes round in a circle: {loop}")
    return merge_recipes(read_recipe_file(parent_file, chain), data)


def load_recipe(path: str | os.PathLike | None, overrides: list[str] | None = None) -> Recipe:
    """Load and validate a recipe; any problem is a ConfigError before work starts.

    A recipe may start with `extends: NAME` (a recipe beside it, a path, or a shipped recipe's
    name): it then holds only what differs from that one; sections merge key by key and any
    other value, lists such as `data.sources` included, replaces the inherited one.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = read_recipe_file(resolve_recipe_path(path))
    data = apply_overrides(data, overrides or [])
    return validate_recipe(data, origin=str(path) if path else "recipe")


def shipped_recipes() -> dict[str, Path]:
    """Recipes that come with fakescope (the repository's configs/), by name."""
    from importlib import resources

    folder = Path(str(resources.files("fakescope") / "recipes"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_recipe_path(path: str | os.PathLike) -> Path:
    """A recipe file, or the name of a shipped recipe ('default', 'quick')."""
    file = Path(path)
    if file.is_file():
        return file
    shipped = shipped_recipes()
    if str(path) in shipped:
        return shipped[str(path)]
    raise ConfigError(
        f"{file}: recipe file not found; give a YAML file or one of the shipped recipes: "
        f"{', '.join(shipped)}"
    )


def validate_recipe(data: dict[str, Any], origin: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(f"{origin}: invalid recipe:\n" + "\n".join(lines)) from None
    from fakescope.models import list_models  # heavy: torch, timm, for this check only

    if recipe.model.name not in list_models():
        import difflib

        close = difflib.get_close_matches(recipe.model.name, list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"{origin}: model.name {recipe.model.name!r} is not a registered model.{hint} "
            "Run `fakescope models` for the list."
        )
    return recipe
