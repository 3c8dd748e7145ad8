"""A small multi-resolution lossless image coder (SReC / ZED style), trained on real photos.

The image ``x0`` (uint8 RGB) is reduced to a pyramid by rounded 2x2 averages: ``x1``, ``x2``,
``x3``. Level ``l`` (0, 1, 2) is coded given level ``l + 1``: one small convolutional network
per level reads the coarse image at its own resolution and predicts, for each of the four
sub-pixels under every coarse pixel, a mixture of discretised logistics over the 256 values of
each colour channel (PixelCNN++: green's and blue's means shift with the actual red and
green). The coarsest level is coded at a flat 8 bits.

With ``context`` > 0 each level also reads its own pixels that are already coded (raster
order: the rows above, the pixels to the left), through a masked convolution of that size
followed by pointwise layers only, so no prediction ever sees the pixel it predicts or one
after it. This is what the classical coders (CALIC, LOCO-I) and PixelCNN have and SReC lacks:
the west and north neighbours, and the three other sub-pixels of a 2x2 block, which with the
coarse pixel nearly fix the fourth. The likelihood is still one parallel pass (the actual
values are known when an image is scored).

Everything here is plain convolutions and elementwise ops so that the same computation
exports to ONNX (see :mod:`fakescope.kinds.zero_shot.onnx_graph`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 3  # predicted levels: x0 | x1, x1 | x2, x2 | x3
MULTIPLE = 2**LEVELS  # image sides are cropped to a multiple of this
LN2 = math.log(2.0)


def total_bits(per_level: torch.Tensor) -> torch.Tensor:
    """(B, LEVELS) bits per sub-pixel of each level -> (B,) lossless cost of the whole image
    (every level, the coarsest at 8 bits) per sub-pixel: level i has 4**-i of the sub-pixels."""
    weights = torch.tensor([4.0**-i for i in range(LEVELS)], dtype=per_level.dtype)
    return (per_level * weights).sum(dim=1) + 8.0 * 4.0**-LEVELS


_EDGE = 1.0 / 255.0  # half a bin on the [-1, 1] scale


@dataclass(frozen=True)
class CoderConfig:
    """The coder's shape: `width` channels, `blocks` residual blocks per level, `mixtures`
    logistics per sub-pixel."""

    width: int = 64
    blocks: int = 5
    mixtures: int = 5
    # 1: the predicted means are offsets from the coarse pixel's value (learns faster); the
    # shipped coder was trained without (0)
    residual: int = 0
    # > 0: side of the masked (causal) convolution over the level's already-coded pixels;
    # 0: the level is predicted from the coarse level alone (the first shipped coder)
    context: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def params_per_subpixel(self) -> int:
        return 10 * self.mixtures  # weight, 3 means, 3 log-scales, 3 channel coefficients


class _Block(nn.Module):
    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class CausalConv(nn.Conv2d):
    """A k x k convolution that reads only the pixels before the centre in raster order (the
    rows above, and the pixels to the left in the centre row): PixelCNN's mask A."""

    mask: torch.Tensor

    def __init__(self, channels_in: int, channels_out: int, kernel: int) -> None:
        if kernel < 2:
            raise ValueError(f"a causal context needs a kernel of 2 or more, not {kernel}")
        super().__init__(channels_in, channels_out, kernel, padding=kernel // 2)
        mask = torch.zeros(1, 1, kernel, kernel)
        centre = kernel // 2
        mask[..., :centre, :] = 1.0
        mask[..., centre, :centre] = 1.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)
        h, w = x.shape[-2:]
        return out[..., :h, :w]  # even kernels pad one more than they need


class LevelNet(nn.Module):
    """Coarse level (B, 3, h, w) in [-1, 1] (and, with a context, the level itself,
    (B, 3, 2h, 2w) in [-1, 1]) -> mixture parameters (B, 10K, 2h, 2w)."""

    def __init__(self, config: CoderConfig) -> None:
        super().__init__()
        width = config.width
        out = config.params_per_subpixel
        self.context = config.context
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[_Block(width, 1 + (i % 2)) for i in range(config.blocks)])
        self.shuffle = nn.PixelShuffle(2)
        if self.context:
            # coarse features for each of the 4 sub-pixels, joined at the fine level with
            # the causal context, then pointwise layers (which cannot look ahead)
            self.head = nn.Conv2d(width, 4 * width, 1)
            self.causal = CausalConv(3, width, config.context)
            self.mix = nn.Sequential(
                nn.SiLU(), nn.Conv2d(width, width, 1), nn.SiLU(), nn.Conv2d(width, width, 1)
            )
            self.out = nn.Conv2d(width, out, 1)
            scales = slice(4 * config.mixtures, 7 * config.mixtures)
        else:
            self.head = nn.Conv2d(width, 4 * out, 1)
            scales = slice(4 * 4 * config.mixtures, 4 * 7 * config.mixtures)  # shuffle order
        with torch.no_grad():  # start with narrow logistics (about 6 grey levels wide)
            last = self.out if self.context else self.head
            assert last.bias is not None
            last.bias[scales] = -3.0

        self.residual = bool(config.residual)
        self.mixtures = config.mixtures

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor | None = None) -> torch.Tensor:
        features = self.shuffle(self.head(F.silu(self.body(self.stem(coarse)))))
        if self.context:
            if fine is None:
                raise ValueError("a coder with a causal context needs the level's own pixels")
            hidden = features + self.causal(fine)
            params = self.out(F.silu(hidden + self.mix(hidden)))
        else:
            params = features
        if not self.residual:
            return params
        k = self.mixtures
        up = F.interpolate(coarse, scale_factor=2.0, mode="nearest")  # (B, 3, H, W)
        offset = (
            up.unsqueeze(1).expand(-1, k, -1, -1, -1).reshape(up.shape[0], 3 * k, *up.shape[2:])
        )
        # means are stored per component then channel: (K, 3) -> channel index k * 3 + c
        return torch.cat([params[:, :k], params[:, k : 4 * k] + offset, params[:, 4 * k :]], dim=1)


def pyramid(x0: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """[x0, x1, ..., x_levels]: float tensors of integer values 0..255 (rounded 2x2 means)."""
    out = [x0]
    for _ in range(levels):
        out.append(torch.floor(F.avg_pool2d(out[-1], 2) + 0.5))
    return out


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """0..255 -> [-1, 1]."""
    return x / 127.5 - 1.0


def _split(params: torch.Tensor, mixtures: int, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mixture logits (B,K,1,H,W), means and log-scales (B,K,3,H,W) with the channel coupling
    applied to the actual values `x` ([-1, 1], (B,3,H,W))."""
    b, _, h, w = params.shape
    k = mixtures
    logits = params[:, :k].reshape(b, k, 1, h, w)
    means = params[:, k : 4 * k].reshape(b, k, 3, h, w)
    log_scales = torch.clamp(params[:, 4 * k : 7 * k].reshape(b, k, 3, h, w), min=-7.0)
    coeffs = torch.tanh(params[:, 7 * k : 10 * k].reshape(b, k, 3, h, w))
    r = x[:, 0:1].unsqueeze(1)
    g = x[:, 1:2].unsqueeze(1)
    m_r = means[:, :, 0:1]
    m_g = means[:, :, 1:2] + coeffs[:, :, 0:1] * r
    m_b = means[:, :, 2:3] + coeffs[:, :, 1:2] * r + coeffs[:, :, 2:3] * g
    means = torch.cat([m_r, m_g, m_b], dim=2)
    return F.log_softmax(logits, dim=1), means, log_scales


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-d)) for d > 0 without expm1 (which ONNX lacks): a series where d is small."""
    series = d - d * d / 2 + d * d * d / 6  # positive for every d > 0
    direct = torch.clamp(1.0 - torch.exp(-d), min=1e-30)
    return torch.where(d < 1e-3, torch.log(series), torch.log(direct))


def _logsigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)), stable for large |x| in ONNX too (its LogSigmoid is log(Sigmoid(x)),
    -inf below about -88)."""
    return torch.clamp(x, max=0.0) - torch.log(1.0 + torch.exp(-torch.abs(x)))


def _log_bin(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(hi) - sigmoid(lo)) for hi > lo, computed stably:
    sigmoid(hi) - sigmoid(lo) = sigmoid(hi) * sigmoid(-lo) * (1 - exp(lo - hi))."""
    return _logsigmoid(hi) + _logsigmoid(-lo) + _log1mexp(hi - lo)


def log_prob(params: torch.Tensor, x: torch.Tensor, mixtures: int) -> torch.Tensor:
    """Natural-log probability of the actual values `x` (B,3,H,W, 0..255): (B,3,H,W)."""
    xu = to_unit(x)
    log_w, means, log_scales = _split(params, mixtures, xu)
    inv = torch.exp(-log_scales)
    v = xu.unsqueeze(1)
    lo = torch.where(v < -0.999, torch.full_like(v, -1e4), (v - _EDGE - means) * inv)
    hi = torch.where(v > 0.999, torch.full_like(v, 1e4), (v + _EDGE - means) * inv)
    return torch.logsumexp(log_w + _log_bin(lo, hi), dim=1)


def log_pmf(params: torch.Tensor, x: torch.Tensor, mixtures: int) -> torch.Tensor:
    """The whole predicted distribution: natural-log probabilities of the 256 values for each
    sub-pixel, (B,3,256,H,W), normalised to sum to one (green and blue conditioned on the
    actual red and green, as they are coded)."""
    xu = to_unit(x)
    log_w, means, log_scales = _split(params, mixtures, xu)
    inv = torch.exp(-log_scales).unsqueeze(3)  # (B,K,3,1,H,W)
    mu = means.unsqueeze(3)
    values = torch.arange(256, dtype=x.dtype, device=x.device) / 127.5 - 1.0
    edges_lo = (values - _EDGE).clone()
    edges_hi = (values + _EDGE).clone()
    edges_lo[0] = -1e4
    edges_hi[-1] = 1e4
    shape = (1, 1, 1, 256, 1, 1)
    lo = (edges_lo.reshape(shape) - mu) * inv
    hi = (edges_hi.reshape(shape) - mu) * inv
    logp = torch.logsumexp(log_w.unsqueeze(3) + _log_bin(lo, hi), dim=1)  # (B,3,256,H,W)
    return logp - torch.logsumexp(logp, dim=2, keepdim=True)


class Coder(nn.Module):
    """Three level networks; :meth:`level_params` gives each level's mixture parameters."""

    def __init__(self, config: CoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or CoderConfig()
        self.levels = nn.ModuleList([LevelNet(self.config) for _ in range(LEVELS)])

    def level_params(self, x0: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each level l: (its mixture parameters, its actual values x_l)."""
        pyr = pyramid(x0)
        return [
            (net(to_unit(pyr[i + 1]), to_unit(pyr[i])), pyr[i]) for i, net in enumerate(self.levels)
        ]

    def bits(self, x0: torch.Tensor) -> torch.Tensor:
        """Coding cost in bits per sub-pixel of each level, (B, LEVELS): the training loss."""
        out = []
        for params, x in self.level_params(x0):
            nll = -log_prob(params, x, self.config.mixtures) / LN2
            out.append(nll.mean(dim=(1, 2, 3)))
        return torch.stack(out, dim=1)

    def total_bits_per_subpixel(self, x0: torch.Tensor) -> torch.Tensor:
        """Lossless cost of the whole image (every level, the coarsest at 8 bits) divided by
        its sub-pixels, (B,): comparable with PNG's and WebP's file sizes."""
        return total_bits(self.bits(x0))
