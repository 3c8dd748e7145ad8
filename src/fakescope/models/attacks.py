"""White-box L-infinity attacks (FGSM, PGD) on a detector, in pixel space.

Images are float tensors in [0, 1] (B, 3, H, W); `normalize` maps them to the model's input
(the bundle's mean/std), so epsilon is in the units people quote (e.g. 2/255). The loss is
binary cross-entropy of the single "fake" logit against the true label, which is what the
detector was trained on. The model is put in eval mode for the attack and restored after.

Own code rather than torchattacks: it is twenty lines, it works on the one-logit heads every
fakescope model has, and torchattacks pins an old `requests`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

Normalize = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def attack_loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalize
) -> torch.Tensor:
    """Mean BCE of the model's fake-logit on `images` (in [0, 1]) against 0/1 `labels`."""
    logits = model(normalize(images)).reshape(-1).float()
    return F.binary_cross_entropy_with_logits(logits, labels.float().reshape(-1))


def _input_gradient(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize: Normalize
) -> torch.Tensor:
    x = images.detach().clone().requires_grad_(True)
    loss = attack_loss(model, x, labels, normalize)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    normalize: Normalize,
) -> torch.Tensor:
    """Fast gradient sign method: one step of size `eps` up the loss gradient's sign."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    with _eval_mode(model):
        grad = _input_gradient(model, images, labels, normalize)
    return (images.detach() + eps * grad.sign()).clamp_(0.0, 1.0)


def pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    normalize: Normalize,
    *,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al.): `steps` signed steps, projected on the
    eps-ball around `images` and on [0, 1]. `step_size` defaults to 2.5 * eps / steps."""
    if eps < 0 or steps < 1:
        raise ValueError(f"need eps >= 0 and steps >= 1, got eps={eps}, steps={steps}")
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    clean = images.detach()
    adv = clean.clone()
    if random_start and eps > 0:
        noise = torch.rand(clean.shape, generator=generator, dtype=clean.dtype)
        adv = (adv + (2 * noise.to(clean.device) - 1) * eps).clamp_(0.0, 1.0)
    with _eval_mode(model):
        for _ in range(steps):
            grad = _input_gradient(model, adv, labels, normalize)
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.min(torch.max(adv, clean - eps), clean + eps).clamp_(0.0, 1.0)
    return adv.detach()


def attack(
    name: str,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float,
    normalize: Normalize,
    *,
    steps: int = 10,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dispatch by name: "fgsm" or "pgd"."""
    if name == "fgsm":
        return fgsm(model, images, labels, eps, normalize)
    if name == "pgd":
        return pgd(
            model,
            images,
            labels,
            eps,
            normalize,
            steps=steps,
            step_size=step_size,
            generator=generator,
        )
    raise ValueError(f"unknown attack {name!r}; choose fgsm or pgd")


def eps_label(eps: float) -> str:
    """eps as people quote it: '2/255' when it is a whole or half multiple of 1/255."""
    k = eps * 255
    if math.isclose(k, round(k * 2) / 2, abs_tol=1e-6) and k < 64:
        k = round(k * 2) / 2
        return f"{k:g}/255"
    return f"{eps:g}"
