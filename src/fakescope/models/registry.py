"""Name -> model builder registry, weight loading, and helpers shared by every model.

Every model here outputs ONE logit per image (shape ``[B, 1]``; ``sigmoid`` = p(fake)) and
follows timm's interface: ``forward_features``, ``forward_head(x, pre_logits=False)``,
``get_classifier()``, ``reset_classifier(num_classes)`` and a ``feature_info`` list.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import torch
from torch import nn

from fakescope.errors import ConfigError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Below this share of matching backbone tensors a weights file is for another model.
_MIN_MATCH_FRACTION = 0.5
_MAX_KEYS_SHOWN = 8


class ModelBuilder(Protocol):
    def __call__(
        self, *, pretrained: bool, pretrained_path: str | None, drop_rate: float, **kwargs: Any
    ) -> nn.Module: ...


@dataclass(frozen=True)
class ModelDefaults:
    """What a data pipeline needs to feed a model: input size and normalisation."""

    name: str
    default_input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    family: str
    has_offline_weights: bool


@dataclass(frozen=True)
class _Entry:
    builder: ModelBuilder
    default_input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    family: str
    offline_weights: Callable[[], bool]


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    default_input_size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    family: str,
    offline_weights: Callable[[], bool] | None = None,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``fn(*, pretrained, pretrained_path, drop_rate, **kwargs)``.

    ``offline_weights`` is a probe telling whether ImageNet weights can be had without a
    network (e.g. an optional pip package is installed); it is called lazily because the
    answer depends on the environment, not on import order.
    """

    def decorator(fn: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = _Entry(
            builder=fn,
            default_input_size=default_input_size,
            mean=tuple(mean),  # type: ignore[arg-type]
            std=tuple(std),  # type: ignore[arg-type]
            family=family,
            offline_weights=offline_weights or (lambda: False),
        )
        return fn

    return decorator


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}"
        ) from None


def model_defaults(name: str) -> ModelDefaults:
    entry = _entry(name)
    return ModelDefaults(
        name=name,
        default_input_size=entry.default_input_size,
        mean=entry.mean,
        std=entry.std,
        family=entry.family,
        has_offline_weights=bool(entry.offline_weights()),
    )


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    pretrained_url: str | None = None,
    drop_rate: float = 0.0,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model that outputs one logit per image.

    Weights, first that applies: ``pretrained_path`` (a local .safetensors/.pth file),
    ``pretrained_url`` (downloaded once into ``$TORCH_HOME/hub/checkpoints``), then with
    ``pretrained=True`` the model's offline weights package or timm's hub download.
    A classifier whose shape differs from the file's is left freshly initialised.
    """
    entry = _entry(name)
    if pretrained_path is not None and pretrained_url is not None:
        raise ConfigError("give pretrained_path or pretrained_url, not both")
    if not 0.0 <= drop_rate < 1.0:
        raise ConfigError(f"drop_rate must be in [0, 1), got {drop_rate}")
    if pretrained_url is not None:
        pretrained_path = str(download_weights(pretrained_url))
    if pretrained_path is not None and (Path(pretrained_path) / "model.safetensors").is_file():
        # a detector bundle folder: start from its weights (fine-tuning a trained detector)
        pretrained_path = str(Path(pretrained_path) / "model.safetensors")
    return entry.builder(
        pretrained=pretrained, pretrained_path=pretrained_path, drop_rate=drop_rate, **kwargs
    )


def download_weights(url: str) -> Path:
    """Fetch a weights file once into ``$TORCH_HOME/hub/checkpoints`` and return its path.

    Unlike ``torch.hub.load_state_dict_from_url`` this also serves .safetensors files, and the
    builder then reads the file like any ``pretrained_path`` (including layout conversion).
    """
    # The URL's hash in the file name keeps two URLs ending in the same name apart.
    base = os.path.basename(urlparse(url).path) or "weights.pth"
    path = Path(torch.hub.get_dir()) / "checkpoints" / f"{_short_hash(url)}-{base}"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Downloads to a temporary name and renames, so an interrupted fetch leaves no file.
        torch.hub.download_url_to_file(url, str(path), hash_prefix=None)
    except Exception as exc:  # urllib, socket and filesystem errors share no base class
        raise ConfigError(f"could not fetch weights from {url}: {exc}") from exc
    return path


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------- weights


@dataclass
class LoadReport:
    """What :func:`load_weights` did; kept on the model as ``model.pretrained_report``."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # backbone tensors left as initialised
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # same name, other shape (backbone)
    skipped_classifier: list[str] = field(default_factory=list)  # head of another shape

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.source}"]
        for label, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape mismatch", self.mismatched),
            ("classifier re-initialised", self.skipped_classifier),
        ):
            if keys:
                shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
                more = (
                    f" (+{len(keys) - _MAX_KEYS_SHOWN} more)" if len(keys) > _MAX_KEYS_SHOWN else ""
                )
                parts.append(f"{label}: {len(keys)} [{shown}{more}]")
        return "; ".join(parts)


def read_weights_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a .safetensors or torch checkpoint without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # only for .safetensors files

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip errors share no base class
        raise ConfigError(f"cannot read weights file {path}: {exc}") from exc
    return _as_state_dict(obj, source=str(path))


def _as_state_dict(obj: Any, *, source: str) -> dict[str, torch.Tensor]:
    # Training checkpoints wrap the weights; accept the common wrappers.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{source} holds a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ConfigError(f"{source} holds no tensors")
    # DistributedDataParallel and torch.compile prefix every key.
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _classifier_prefix(model: nn.Module) -> str | None:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None  # type: ignore[operator]  # timm API via Module.__getattr__
    if head is None:
        return None
    for module_name, module in model.named_modules():
        if module is head:
            return module_name + "."
    return None


def load_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    source: str | None = None,
    require_all: bool = False,
) -> LoadReport:
    """Load a state dict or weights file into ``model`` leniently but loudly.

    Classifier tensors of another shape (e.g. a 1000-class ImageNet head) are skipped. Other
    differences are warned about, or raise :class:`ConfigError` when ``require_all`` is set or
    when fewer than half of the model's backbone tensors match (the file is for another model).
    """
    if isinstance(weights, Mapping):
        state = _as_state_dict(weights, source=source or "state dict")
    else:
        state = read_weights_file(weights)
    report = LoadReport(source=source or str(weights))
    target = model.state_dict()
    head = _classifier_prefix(model)

    def is_head(key: str) -> bool:
        return head is not None and key.startswith(head)

    usable: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif target[key].shape != tensor.shape:
            (report.skipped_classifier if is_head(key) else report.mismatched).append(key)
        else:
            usable[key] = tensor
    # BatchNorm step counters carry no learned information and many files omit them.
    report.missing = [
        k
        for k in target
        if k not in state and not is_head(k) and not k.endswith("num_batches_tracked")
    ]
    report.loaded = sorted(usable)
    for keys in (report.unexpected, report.mismatched, report.skipped_classifier):
        keys.sort()

    backbone = [k for k in target if not is_head(k) and not k.endswith("num_batches_tracked")]
    matched = sum(1 for k in backbone if k in usable)
    if backbone and matched < _MIN_MATCH_FRACTION * len(backbone):
        raise ConfigError(
            f"weights from {report.source} do not fit {type(model).__name__}: only "
            f"{matched}/{len(backbone)} backbone tensors match. {report.summary()}"
        )
    if require_all and not report.ok:
        raise ConfigError(f"incomplete weights for {type(model).__name__}: {report.summary()}")

    model.load_state_dict(usable, strict=False)
    if not report.ok:
        warnings.warn(f"partial weights: {report.summary()}", stacklevel=2)
    # a plain attribute, which nn.Module's stubs type as Tensor | Module
    model.pretrained_report = report  # type: ignore[assignment]
    return report


# ----------------------------------------------------------------------------- helpers


def _classifier_ids(model: nn.Module) -> set[int]:
    return {id(p) for p in model.get_classifier().parameters()}  # type: ignore[operator]  # timm API via Module.__getattr__


def classifier_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the final classifier: the only ones trained in a linear-probe phase."""
    return list(model.get_classifier().parameters())  # type: ignore[operator]  # timm API via Module.__getattr__


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that is not the classifier's (frozen, then fine-tuned at a lower LR)."""
    head = _classifier_ids(model)
    return [p for p in model.parameters() if id(p) not in head]


def feature_module_names(model: nn.Module) -> list[str]:
    """Names (as in ``named_modules``) of the conv stages, shallow to deep, for Grad-CAM."""
    info = getattr(model, "feature_info", None)
    if info is None:
        raise ConfigError(f"{type(model).__name__} does not describe its stages (feature_info)")
    if hasattr(info, "module_name"):  # timm's FeatureInfo object (features_only models)
        return [info.module_name(i) for i in range(len(info))]
    return [stage["module"] for stage in info]


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate (pooled, pre-classifier) features, shape ``[B, D]``."""
    head = model.forward_head  # timm API, typed Tensor | Module through Module.__getattr__
    return head(model.forward_features(x), pre_logits=True)  # type: ignore[operator]
