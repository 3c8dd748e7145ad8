"""``resnet_se``: a compact squeeze-and-excitation ResNet for small (32x32) images.

Trained from scratch; ~2.1M parameters with the default widths (56, 112, 224). The default
stem keeps full resolution because at 32 px a strided stem would throw away the high-frequency
traces that generated images leave behind; ``stem="unshuffle"`` keeps them too (space-to-depth)
at about a quarter of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from fakescope.errors import ConfigError
from fakescope.models.registry import load_weights, register_model

DEFAULT_WIDTHS: tuple[int, int, int] = (56, 112, 224)
CIFAR_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)


class SqueezeExcite(nn.Module):
    """Channel gating from global context (Hu et al., 2018)."""

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        # A floor on the bottleneck: 56 // 16 = 3 channels would gate too coarsely.
        hidden = max(channels // reduction, min_hidden)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class SEBasicBlock(nn.Module):
    """Two 3x3 convs with SE on the residual branch, then the identity/projection add."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, se_reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.se = SqueezeExcite(out_chs, se_reduction)
        self.act = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act(out + self.downsample(x))


class ResNetSE(nn.Module):
    """Stem (conv3x3-BN-ReLU), three stages of SE basic blocks, average pool, dropout, linear."""

    # added with add_module under these names (their state-dict keys)
    stage1: nn.Sequential
    stage2: nn.Sequential
    stage3: nn.Sequential

    def __init__(
        self,
        widths: Sequence[int] = DEFAULT_WIDTHS,
        blocks_per_stage: int = 2,
        num_classes: int = 1,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        se_reduction: int = 16,
        stem: str = "conv",
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ConfigError(f"resnet_se needs 3 stage widths, got {tuple(widths)}")
        self.drop_rate = drop_rate
        if stem not in ("conv", "unshuffle"):
            raise ConfigError(f"resnet_se stem must be 'conv' or 'unshuffle', got {stem!r}")
        self.stem = self._make_stem(stem, in_chans, widths[0])
        in_chs, reduction = widths[0], 2 if stem == "unshuffle" else 1
        self.feature_info: list[dict[str, Any]] = []
        for index, (width, stride) in enumerate(zip(widths, (1, 2, 2), strict=True), start=1):
            blocks = [SEBasicBlock(in_chs, width, stride, se_reduction)]
            blocks += [
                SEBasicBlock(width, width, 1, se_reduction) for _ in range(blocks_per_stage - 1)
            ]
            self.add_module(f"stage{index}", nn.Sequential(*blocks))
            in_chs, reduction = width, reduction * stride
            self.feature_info.append(
                {"num_chs": width, "reduction": reduction, "module": f"stage{index}"}
            )
        self.num_features = in_chs
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc: nn.Module = self._make_classifier(num_classes)
        self._init_weights()

    @staticmethod
    def _make_stem(kind: str, in_chans: int, width: int) -> nn.Sequential:
        """'conv': 3x3 conv at full resolution. 'unshuffle': space-to-depth (2x2 pixels become
        channels) then a 3x3 conv: every pixel still reaches the network, nothing is averaged
        away, but all later stages run at half the resolution: about 4x fewer FLOPs."""
        if kind == "conv":
            layers: list[nn.Module] = [nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)]
        else:
            layers = [nn.PixelUnshuffle(2), nn.Conv2d(4 * in_chans, width, 3, 1, 1, bias=False)]
        return nn.Sequential(*layers, nn.BatchNorm2d(width), nn.ReLU(inplace=True))

    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes <= 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes)
        # Small weights: the first logits sit near 0, i.e. p(fake) ~ 0.5, for a calm BCE start.
        nn.init.normal_(fc.weight, std=0.01)
        nn.init.zeros_(fc.bias)
        return fc

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Each block starts as the identity, which lets deep residual nets train stably
        # at large batch sizes (Goyal et al., 2017).
        for module in self.modules():
            if isinstance(module, SEBasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = self._make_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stage1(x)
        x = self.stage2(x)
        return self.stage3(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x).flatten(1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model(
    "resnet_se", default_input_size=32, mean=CIFAR_MEAN, std=CIFAR_STD, family="resnet_se"
)
def resnet_se(
    *, pretrained: bool, pretrained_path: str | None, drop_rate: float, **kwargs: Any
) -> ResNetSE:
    """The from-scratch 32 px baseline. ``kwargs`` go to :class:`ResNetSE` (e.g. ``widths``).

    ``drop_rate`` 0.3 before the classifier is what this model is meant to train with; the
    registry's default of 0 is left alone so that every model obeys the same argument.
    """
    kwargs.setdefault("num_classes", 1)
    model = ResNetSE(drop_rate=drop_rate, **kwargs)
    if pretrained_path is not None:
        load_weights(model, pretrained_path)
    elif pretrained:
        raise ConfigError(
            "resnet_se has no ImageNet weights (it is trained from scratch); "
            "pass pretrained_path=FILE to start from your own checkpoint"
        )
    return model
