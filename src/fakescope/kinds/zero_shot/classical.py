"""A classical multi-resolution lossless coder of real photos (CALIC / LOCO-I style priors).

The same pyramid as the neural coder (:func:`~fakescope.kinds.zero_shot.coder.pyramid`): level
``l`` is coded given level ``l + 1``, its pixels in raster order, red then green then blue at
each pixel. Each sub-pixel's value is predicted by a linear form of what is already known:

* its own channel's causal neighbours at its level (W, N, NW, NE, WW, NN) and their median edge
  detector (MED, LOCO-I's predictor),
* the coarse pixel it lies under and that pixel's four neighbours (the coarse level is known
  in full), so the last sub-pixel of a 2x2 block is nearly fixed by the other three,
* for green and blue, the earlier channels' actual values at the pixel (and at W, N and in the
  coarse level): inter-channel prediction.

The residual is modelled by a discretised logistic over 0..255 centred on the prediction, its
log-scale a linear form of the local activity (log1p of neighbour gradients, of the coarse
level's gradient and of the residuals already coded at W, N, NW, NE and in the earlier
channels: CALIC's error energy). Every weight is separate per level, channel and position in
the 2x2 block: a few hundred parameters in all, fitted on real photos in seconds
(:func:`fit_classical`: least squares for the predictors, then maximum likelihood).

:meth:`ClassicalCoder.level_params` returns each level's distribution in the neural coder's
parameter layout (one mixture component, no channel coefficients), so the likelihoods,
entropies and gap features (:class:`~fakescope.kinds.zero_shot.statistic.GapFeatures`), and
their ONNX export, are shared with it. Plain shifts, products and sums: it exports to ONNX.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fakescope.kinds.zero_shot.coder import LEVELS, LN2, log_prob, pyramid, total_bits

PAD = 128.0  # value of the pixels outside the image (a constant: causal)
OWN = ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0))  # (rows up, columns left)
POSITIONS = 4  # sub-pixel positions in a 2x2 block: (row % 2) * 2 + column % 2
_LOG_UNIT = math.log(127.5)


@dataclass(frozen=True)
class ClassicalConfig:
    """The classical coder has no shape to choose; `mixtures` is 1 (one logistic) so that the
    shared likelihood code reads its parameters."""

    mixtures: int = 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def n_predictor_features(channel: int) -> int:
    return len(OWN) + 1 + 5 + 4 * channel + 1  # own, MED, coarse, earlier channels, bias


def n_scale_features(channel: int) -> int:
    return 5 + 1 + 4 + channel + 1  # gradients, coarse gradient, residuals, earlier, bias


def _pad(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (2, 1, 2, 0), value=PAD)


def _at(xp: torch.Tensor, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
    """The neighbour `dy` rows up and `dx` columns left of every pixel of a `_pad`-ed map."""
    return xp[:, :, 2 - dy : 2 - dy + h, 2 - dx : 2 - dx + w]


def _up(t: torch.Tensor) -> torch.Tensor:
    return t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


def _coarse_maps(coarse: torch.Tensor) -> list[torch.Tensor]:
    """The coarse pixel over every fine pixel and its N, S, W, E neighbours (edges repeated:
    the whole coarse level is known), at the fine resolution."""
    h, w = coarse.shape[-2:]
    cp = F.pad(coarse, (1, 1, 1, 1), mode="replicate")
    views = (
        cp[:, :, 1 : 1 + h, 1 : 1 + w],
        cp[:, :, 0:h, 1 : 1 + w],
        cp[:, :, 2 : 2 + h, 1 : 1 + w],
        cp[:, :, 1 : 1 + h, 0:w],
        cp[:, :, 1 : 1 + h, 2 : 2 + w],
    )
    return [_up(v) for v in views]


def _med(w: torch.Tensor, n: torch.Tensor, nw: torch.Tensor) -> torch.Tensor:
    lo, hi = torch.minimum(w, n), torch.maximum(w, n)
    return torch.where(nw >= hi, lo, torch.where(nw <= lo, hi, w + n - nw))


def position_masks(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(4, 1, 1, h, w) one-hot masks of the 2x2 block positions."""
    rows = torch.arange(h, device=like.device).remainder(2).view(h, 1)
    cols = torch.arange(w, device=like.device).remainder(2).view(1, w)
    pos = rows * 2 + cols
    masks = [(pos == p).to(like.dtype) for p in range(POSITIONS)]
    return torch.stack(masks).view(POSITIONS, 1, 1, h, w)


def predictor_features(x: torch.Tensor, coarse: list[torch.Tensor], c: int) -> torch.Tensor:
    """(B, n_predictor_features(c), H, W) for channel `c` of a level `x` (B, 3, H, W)."""
    h, w = x.shape[-2:]
    xp = _pad(x)
    own = [_at(xp[:, c : c + 1], dy, dx, h, w) for dy, dx in OWN]
    feats = [*own, _med(own[0], own[1], own[2])]
    feats += [m[:, c : c + 1] for m in coarse]
    for e in range(c):
        feats += [
            x[:, e : e + 1],
            _at(xp[:, e : e + 1], 0, 1, h, w),
            _at(xp[:, e : e + 1], 1, 0, h, w),
            coarse[0][:, e : e + 1],
        ]
    feats.append(torch.ones_like(own[0]))
    return torch.cat(feats, dim=1)


def scale_features(
    x: torch.Tensor, coarse: list[torch.Tensor], residual: torch.Tensor, c: int
) -> torch.Tensor:
    """(B, n_scale_features(c), H, W): log1p of the local activity around channel `c`."""
    h, w = x.shape[-2:]
    xp = _pad(x[:, c : c + 1])
    at = {(dy, dx): _at(xp, dy, dx, h, w) for dy, dx in OWN}
    grads = [
        at[0, 1] - at[1, 1],
        at[1, 0] - at[1, 1],
        at[1, 0] - at[1, -1],
        at[0, 1] - at[0, 2],
        at[1, 0] - at[2, 0],
        (coarse[1][:, c : c + 1] - coarse[2][:, c : c + 1]).abs()
        + (coarse[3][:, c : c + 1] - coarse[4][:, c : c + 1]).abs(),
    ]
    rp = F.pad(residual[:, c : c + 1], (2, 1, 2, 0), value=0.0)
    grads += [_at(rp, dy, dx, h, w) for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1))]
    grads += [residual[:, e : e + 1] for e in range(c)]
    feats = [torch.log1p(g.abs()) for g in grads]
    feats.append(torch.ones_like(feats[0]))
    return torch.cat(feats, dim=1)


def _apply(weights: torch.Tensor, feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-position linear forms: weights (4, F), feats (B, F, H, W) -> (B, 1, H, W)."""
    per_pos = torch.einsum("pf,bfhw->pbhw", weights, feats).unsqueeze(2)  # (4, B, 1, H, W)
    return (per_pos * masks).sum(dim=0)


class ClassicalCoder(nn.Module):
    """The classical coder. Parameters ``pred_{level}_{channel}`` (4, n_predictor_features)
    and ``scale_{level}_{channel}`` (4, n_scale_features); the same interface as
    :class:`~fakescope.kinds.zero_shot.coder.Coder` (`level_params`, `bits`,
    `total_bits_per_subpixel`)."""

    def __init__(self, config: ClassicalConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassicalConfig()
        if self.config.mixtures != 1:
            raise ValueError("the classical coder has one logistic per sub-pixel (mixtures=1)")
        self.pred = nn.ParameterDict()
        self.scale = nn.ParameterDict()
        for level in range(LEVELS):
            for c in range(3):
                pred = torch.zeros(POSITIONS, n_predictor_features(c))
                pred[:, len(OWN)] = 1.0  # start from MED
                scale = torch.zeros(POSITIONS, n_scale_features(c))
                scale[:, -1] = math.log(4.0)
                self.pred[f"{level}_{c}"] = nn.Parameter(pred)
                self.scale[f"{level}_{c}"] = nn.Parameter(scale)

    def predict(self, level: int, x: torch.Tensor, coarse_level: torch.Tensor) -> torch.Tensor:
        """Predicted values (B, 3, H, W) of level `level`'s pixels `x` (0..255) given the
        coarse level (B, 3, H/2, W/2) and the causal context."""
        coarse = _coarse_maps(coarse_level)
        masks = position_masks(x.shape[2], x.shape[3], x)
        preds = [
            _apply(self.pred[f"{level}_{c}"], predictor_features(x, coarse, c), masks)
            for c in range(3)
        ]
        return torch.clamp(torch.cat(preds, dim=1), -0.5, 255.5)

    def level_distribution(
        self, level: int, x: torch.Tensor, coarse_level: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, log-scales), both (B, 3, H, W) on the 0..255 scale."""
        coarse = _coarse_maps(coarse_level)
        masks = position_masks(x.shape[2], x.shape[3], x)
        means = self.predict(level, x, coarse_level)
        residual = x - means
        log_scales = [
            _apply(self.scale[f"{level}_{c}"], scale_features(x, coarse, residual, c), masks)
            for c in range(3)
        ]
        return means, torch.cat(log_scales, dim=1)

    def level_params(self, x0: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each level l: (its distribution in the neural coder's layout with one mixture
        component, (B, 10, H, W) on the [-1, 1] scale, its actual values x_l)."""
        pyr = pyramid(x0)
        out = []
        for level in range(LEVELS):
            x = pyr[level]
            means, log_scales = self.level_distribution(level, x, pyr[level + 1])
            zeros = torch.zeros_like(means[:, :1])
            params = torch.cat(
                [
                    zeros,
                    means / 127.5 - 1.0,
                    log_scales - _LOG_UNIT,
                    torch.zeros_like(means),
                ],
                dim=1,
            )
            out.append((params, x))
        return out

    def bits(self, x0: torch.Tensor) -> torch.Tensor:
        """Coding cost in bits per sub-pixel of each level, (B, LEVELS)."""
        out = []
        for params, x in self.level_params(x0):
            out.append((-log_prob(params, x, 1) / LN2).mean(dim=(1, 2, 3)))
        return torch.stack(out, dim=1)

    def total_bits_per_subpixel(self, x0: torch.Tensor) -> torch.Tensor:
        """Lossless cost of the whole image (every level, the coarsest at 8 bits) divided by
        its sub-pixels, (B,): comparable with PNG's and WebP's file sizes."""
        return total_bits(self.bits(x0))


def _least_squares(coder: ClassicalCoder, crops: torch.Tensor, ridge: float = 1e-3) -> None:
    """Each predictor's weights by (ridge-regularised) least squares on the crops' pixels."""
    pyr = pyramid(crops)
    for level in range(LEVELS):
        x = pyr[level]
        coarse = _coarse_maps(pyr[level + 1])
        masks = position_masks(x.shape[2], x.shape[3], x).flatten(1).squeeze(0)  # (4, H*W)
        for c in range(3):
            feats = predictor_features(x, coarse, c).double()  # (B, F, H, W)
            target = x[:, c].double()
            n_f = feats.shape[1]
            solved = []
            for p in range(POSITIONS):
                keep = masks[p].reshape(x.shape[2], x.shape[3]).bool()
                a = feats[:, :, keep].permute(0, 2, 1).reshape(-1, n_f)
                y = target[:, keep].reshape(-1)
                gram = a.T @ a + ridge * a.shape[0] * torch.eye(n_f, dtype=a.dtype)
                solved.append(torch.linalg.solve(gram, a.T @ y))
            with torch.no_grad():
                coder.pred[f"{level}_{c}"].copy_(torch.stack(solved).float())


def fit_classical(
    crops: torch.Tensor,
    *,
    steps: int = 300,
    batch: int = 64,
    lr: float = 0.02,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[ClassicalCoder, dict[str, float]]:
    """Fit a classical coder on real crops (N, 3, S, S), values 0..255, S a multiple of 8:
    least squares for the predictors, then Adam on the coding cost (all levels, every
    weight) for `steps` minibatches. Returns the coder (eval mode) and a summary."""
    started = time.time()
    coder = ClassicalCoder()
    _least_squares(coder, crops[: min(len(crops), 512)])
    ls_bits = float(_mean_total_bits(coder, crops[:batch]))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(
        [
            {"params": list(coder.scale.parameters()), "lr": lr},
            {"params": list(coder.pred.parameters()), "lr": lr * 0.02},
        ]
    )
    for step in range(steps):
        idx = torch.randint(0, len(crops), (min(batch, len(crops)),), generator=gen)
        per_level = coder.bits(crops[idx])
        loss = per_level.mean(dim=0).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None and (step + 1) % 25 == 0:
            progress(step + 1, float(loss.detach()))
    coder.eval()
    with torch.no_grad():
        total = float(_mean_total_bits(coder, crops[:256]))
    return coder, {
        "crops": float(len(crops)),
        "steps": float(steps),
        "seconds": time.time() - started,
        "train_bits_after_least_squares": ls_bits,
        "train_bits": total,
    }


def _mean_total_bits(coder: ClassicalCoder, crops: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return coder.total_bits_per_subpixel(crops).mean()


__all__ = [
    "ClassicalCoder",
    "ClassicalConfig",
    "fit_classical",
    "position_masks",
    "predictor_features",
    "scale_features",
]
