"""Self-blended fakes: real face crops turned into training fakes by blending each face with a
slightly altered copy of itself (after Shiohara & Yamasaki, "Detecting Deepfakes with
Self-Blended Images", CVPR 2022).

A face swap, a re-enactment or a hand-made composite all paste a face region into a frame it
did not come from, and leave the same traces: a blending boundary, a colour or sharpness step
at it, a region a few pixels off. A detector trained on one method's fakes learns that
method's fingerprints instead; one trained on self-blended images learns the traces shared by
all of them. Here a share of the real faces of each training batch becomes such a fake: the
same image, recoloured (gain, offset, contrast per channel), slightly scaled and shifted,
blurred or sharpened, pasted back through a soft, irregular ellipse over the face's centre
(face crops are centred on the face), at a random opacity. Its label becomes fake.

It works on the uint8 batches the trainer feeds (N, 3, H, W) and draws every random number
from the training's augmentation generator, so a resumed run blends the same images the same
way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

OPACITIES = (0.5, 0.75, 1.0, 1.0, 1.0)  # as in the paper: mostly opaque, sometimes see-through


@dataclass(frozen=True)
class SelfBlend:
    """Turns each real image of a batch, with probability ``p``, into a self-blended fake.

    ``max_shift`` (share of the side) and ``max_scale`` (relative) bound the misalignment of
    the pasted copy; ``max_color`` bounds the per-channel gain change (offsets are a quarter
    of it, on the 0-255 scale x 255). The mask is an ellipse of 40-70 % of the width and
    50-80 % of the height around the centre, its outline rippled, feathered by a Gaussian of
    2-8 % of the side.
    """

    p: float = 0.0
    max_shift: float = 0.03
    max_scale: float = 0.05
    max_color: float = 0.12

    @property
    def active(self) -> bool:
        return self.p > 0

    def __call__(
        self, batch: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with the chosen reals blended and their labels set to fake (1)."""
        draws = torch.rand(batch.shape[0], generator=generator)
        chosen = ((labels == 0) & (draws < self.p)).nonzero().flatten().tolist()
        if not chosen:
            return batch, labels
        batch, labels = batch.clone(), labels.clone()
        for index in chosen:
            batch[index] = self.blend(batch[index], generator)
            labels[index] = 1
        return batch, labels

    def blend(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One self-blended copy of a (3, H, W) uint8 image."""
        original = image.float()
        source = self._altered(original, generator)
        mask = face_mask(image.shape[-2:], generator)
        opacity = OPACITIES[int(torch.randint(len(OPACITIES), (1,), generator=generator))]
        blended = original * (1 - opacity * mask) + source * (opacity * mask)
        return blended.round().clamp(0, 255).to(image.dtype)

    def _altered(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The copy to paste: recoloured, scaled and shifted a little, blurred or sharpened."""

        def uniform(low: float, high: float, size: tuple[int, ...] = (1,)) -> torch.Tensor:
            return _uniform(generator, low, high, size)

        c = self.max_color
        gain = uniform(1 - c, 1 + c, (3, 1, 1))
        offset = uniform(-c, c, (3, 1, 1)) * 255 / 4
        mean = image.mean(dim=(1, 2), keepdim=True)
        contrast = uniform(1 - c / 2, 1 + c / 2)
        out = ((image - mean) * contrast + mean) * gain + offset
        scale = float(uniform(1 - self.max_scale, 1 + self.max_scale))
        dx, dy = (float(v) for v in uniform(-self.max_shift, self.max_shift, (2,)) * 2)
        theta = torch.tensor([[[1 / scale, 0.0, dx], [0.0, 1 / scale, dy]]])
        grid = F.affine_grid(theta, [1, *out.shape], align_corners=False)
        out = F.grid_sample(
            out[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )[0]
        choice = float(uniform(0, 1))
        if choice < 0.35:  # softer than the frame around it
            sigma = float(uniform(0.5, 1.5))
            out = TF.gaussian_blur(out, [2 * math.ceil(2 * sigma) + 1] * 2, [sigma, sigma])
        elif choice < 0.6:  # crisper than the frame around it
            out = TF.adjust_sharpness(out.clamp(0, 255) / 255, float(uniform(1.5, 3.0))) * 255
        return out.clamp(0, 255)


def _uniform(
    generator: torch.Generator, low: float, high: float, size: tuple[int, ...] = (1,)
) -> torch.Tensor:
    """Uniform draws in [low, high) from the augmentation generator."""
    return low + (high - low) * torch.rand(size, generator=generator)


def face_mask(size: torch.Size | tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A soft (H, W) mask in [0, 1]: a rippled ellipse around the centre of a face crop,
    feathered at its edge. Drawn and feathered at most 64 px on the short side, then enlarged
    (the feathered edge is smooth), which keeps it a millisecond at any input size."""
    height, width = int(size[0]), int(size[1])
    scale = min(1.0, 64 / min(height, width))
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))

    def uniform(low: float, high: float) -> float:
        return float(_uniform(generator, low, high))

    cy, cx = uniform(0.46, 0.58) * small_h, uniform(0.44, 0.56) * small_w
    ry, rx = uniform(0.25, 0.40) * small_h, uniform(0.20, 0.35) * small_w
    ys = torch.arange(small_h, dtype=torch.float32)[:, None] + 0.5 - cy
    xs = torch.arange(small_w, dtype=torch.float32)[None, :] + 0.5 - cx
    radius = torch.sqrt((ys / ry) ** 2 + (xs / rx) ** 2)
    angle = torch.atan2(ys / ry, xs / rx)
    ripple = 1 + sum(
        uniform(-0.12, 0.12) * torch.cos(k * angle + uniform(0, 2 * math.pi)) for k in (2, 3, 5)
    )
    mask = separable_blur((radius <= ripple).float(), uniform(0.02, 0.08) * min(small_h, small_w))
    if scale < 1.0:
        mask = F.interpolate(mask[None, None], (height, width), mode="bilinear")[0, 0]
    return mask.clamp(0, 1)


def separable_blur(plane: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur of an (H, W) plane as two 1-D passes, zero beyond the edges, where a
    mask is zero."""
    half = math.ceil(2.5 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-half, half + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    out = F.conv2d(plane[None, None], taps.view(1, 1, 1, -1), padding=(0, half))
    return F.conv2d(out, taps.view(1, 1, -1, 1), padding=(half, 0))[0, 0]
