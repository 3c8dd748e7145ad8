"""``npr``: an artifact-focused detector on neighbouring-pixel relationships (NPR).

Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for
Generalizable Deepfake Detection" (CVPR 2024): generators up-sample, and up-sampling leaves a
fixed relation between the pixels of each 2x2 cell. NPR exposes it as the residual between the
image and the nearest-neighbour up-sampling of its own down-sampling, and trains a small
residual network on that residual alone, so the network cannot fall back on image content.
Here the network is the SE-ResNet of ``resnet_se`` with a full-resolution stem (the residual
lives at single-pixel scale, which a strided or space-to-depth stem would blur into channels).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fakescope.errors import ConfigError
from fakescope.models.registry import load_weights, register_model
from fakescope.models.resnet_se import CIFAR_MEAN, CIFAR_STD, ResNetSE

DEFAULT_NPR_WIDTHS: tuple[int, int, int] = (32, 64, 128)


def npr_residual(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """x minus the nearest-neighbour up-sampling of its `factor`-times down-sampling.

    Within each factor x factor cell the result is each pixel minus the cell's top-left
    pixel, so it is zero on constant regions and on the cell anchors. H and W must be
    multiples of `factor`.
    """
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ConfigError(f"npr needs an input size divisible by {factor}, got {h}x{w}")
    down = F.interpolate(x, scale_factor=1.0 / factor, mode="nearest")
    return x - F.interpolate(down, scale_factor=float(factor), mode="nearest")


class NPRNet(ResNetSE):
    """NPR residual (scaled by 2/3 as in the paper's code) -> SE-ResNet -> one logit."""

    def __init__(self, factor: int = 2, **kwargs: Any) -> None:
        if kwargs.get("stem", "conv") != "conv":
            raise ConfigError("npr keeps a full-resolution 'conv' stem; do not set stem")
        kwargs.setdefault("widths", DEFAULT_NPR_WIDTHS)
        super().__init__(**kwargs)
        if factor < 2:
            raise ConfigError(f"npr factor must be >= 2, got {factor}")
        self.factor = factor

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward_features(npr_residual(x, self.factor) * (2.0 / 3.0))


@register_model("npr", default_input_size=32, mean=CIFAR_MEAN, std=CIFAR_STD, family="npr")
def npr(
    *, pretrained: bool, pretrained_path: str | None, drop_rate: float, **kwargs: Any
) -> NPRNet:
    """The NPR detector, trained from scratch. ``kwargs`` go to :class:`NPRNet`
    (``factor``, ``widths``, ``blocks_per_stage``)."""
    kwargs.setdefault("num_classes", 1)
    model = NPRNet(drop_rate=drop_rate, **kwargs)
    if pretrained_path is not None:
        load_weights(model, pretrained_path)
    elif pretrained:
        raise ConfigError(
            "npr has no ImageNet weights (it is trained from scratch on the NPR residual); "
            "pass pretrained_path=FILE to start from your own checkpoint"
        )
    return model
