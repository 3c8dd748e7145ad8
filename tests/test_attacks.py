"""FGSM and PGD stay inside the eps-ball and [0, 1], and increase the loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fakescope.models.attacks import attack, attack_loss, fgsm, pgd


def _model_and_data(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 1),
    )
    images = torch.rand(16, 3, 16, 16)
    labels = torch.randint(0, 2, (16,))
    return model, images, labels


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.25


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
@pytest.mark.parametrize("eps", [0.5 / 255, 2 / 255, 0.08])
def test_attack_stays_in_the_eps_ball_and_raises_the_loss(name: str, eps: float) -> None:
    model, x, y = _model_and_data()
    adv = attack(name, model, x, y, eps, _norm, steps=5, generator=torch.Generator().manual_seed(0))
    assert adv.shape == x.shape
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    model.eval()
    with torch.no_grad():
        assert attack_loss(model, adv, y, _norm) > attack_loss(model, x, y, _norm)


def test_pgd_is_at_least_as_strong_as_fgsm_and_restores_train_mode() -> None:
    model, x, y = _model_and_data(1)
    model.train()
    eps = 4 / 255
    a_fgsm = fgsm(model, x, y, eps, _norm)
    a_pgd = pgd(model, x, y, eps, _norm, steps=10, generator=torch.Generator().manual_seed(0))
    assert model.training
    model.eval()
    with torch.no_grad():
        assert attack_loss(model, a_pgd, y, _norm) >= attack_loss(model, a_fgsm, y, _norm) - 1e-4


def test_zero_eps_changes_nothing_and_bad_arguments_are_rejected() -> None:
    model, x, y = _model_and_data()
    assert torch.equal(fgsm(model, x, y, 0.0, _norm), x)
    assert torch.equal(pgd(model, x, y, 0.0, _norm, steps=3), x)
    with pytest.raises(ValueError):
        pgd(model, x, y, 0.1, _norm, steps=0)
    with pytest.raises(ValueError, match="unknown attack"):
        attack("cw", model, x, y, 0.1, _norm)
