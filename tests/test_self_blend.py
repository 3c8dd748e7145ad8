"""Self-blended fakes: real faces pasted onto themselves, altered, and labelled fake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny import tiny_recipe

from fakescope.config import validate_recipe
from fakescope.data.self_blend import SelfBlend, face_mask
from fakescope.errors import ConfigError
from fakescope.training.trainer import TrainingInterrupted, train


def _faces(n: int = 12, size: int = 64) -> torch.Tensor:
    """Smooth, face-sized gradients with a little texture, as uint8 (N, 3, H, W)."""
    g = torch.Generator().manual_seed(5)
    ramp = torch.linspace(40, 200, size)
    base = (ramp[None, :] + ramp[:, None]) / 2
    noise = torch.randint(-20, 21, (n, 3, size, size), generator=g)
    return (base + noise).clamp(0, 255).to(torch.uint8)


def test_only_real_faces_become_blended_fakes_and_only_in_the_face() -> None:
    batch = _faces()
    labels = torch.tensor([0.0, 1.0] * 6)
    out, new = SelfBlend(p=1.0)(batch, labels, torch.Generator().manual_seed(0))
    assert torch.equal(new, torch.ones(12))  # every real became a fake
    assert torch.equal(out[1::2], batch[1::2])  # the fakes are untouched
    assert torch.equal(labels, torch.tensor([0.0, 1.0] * 6))  # the caller's labels are kept
    changed = (out.float() - batch.float()).abs().mean(1)  # (N, H, W)
    for i in range(0, 12, 2):
        assert changed[i, :4, :4].max() == 0 and changed[i, -4:, -4:].max() == 0  # corners
        assert changed[i, 28:36, 28:36].mean() > 1  # the face's centre was replaced


def test_self_blending_is_seeded_and_off_by_default() -> None:
    batch, labels = _faces(), torch.zeros(12)
    a = SelfBlend(p=0.5)(batch, labels, torch.Generator().manual_seed(3))
    b = SelfBlend(p=0.5)(batch, labels, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert 0 < int(a[1].sum()) < 12  # about half the reals
    blended = a[1] == 1
    assert not torch.equal(a[0][blended], batch[blended])
    assert torch.equal(a[0][~blended], batch[~blended])
    off = SelfBlend()
    assert not off.active
    assert off(batch, labels, torch.Generator())[0] is batch


@pytest.mark.parametrize("size", [(16, 16), (64, 48), (300, 200)])
def test_the_mask_covers_the_centre_and_fades_out(size: tuple[int, int]) -> None:
    for seed in range(5):
        mask = face_mask(size, torch.Generator().manual_seed(seed))
        h, w = size
        assert mask.shape == size and mask.min() >= 0 and mask.max() <= 1
        assert mask[h // 2, w // 2] > 0.8 and mask[0, 0] < 0.05 and mask[-1, -1] < 0.05
        soft = ((mask > 0.05) & (mask < 0.95)).float().mean()
        assert soft > 0  # a feathered edge, not a hard cut


@pytest.mark.slow
def test_training_blends_real_faces_and_resumes_exactly(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[float, float]] = []
    original = SelfBlend.__call__

    def spy(
        self: SelfBlend, batch: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, new = original(self, batch, labels, gen)
        seen.append((float(labels.sum()), float(new.sum())))
        return out, new

    monkeypatch.setattr(SelfBlend, "__call__", spy)
    recipe = tiny_recipe(epochs=2)
    recipe.data.augment.self_blend.p = 0.5
    straight = train(toy_folder, recipe, tmp_path / "straight", progress=False)
    assert seen and any(after > before for before, after in seen)  # fakes were made
    with pytest.raises(TrainingInterrupted):
        train(toy_folder, recipe, tmp_path / "resumed", progress=False, stop_after_steps=3)
    resumed = train(toy_folder, None, tmp_path / "resumed", resume=True, progress=False)
    assert resumed.val_metrics == straight.val_metrics


def test_self_blend_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="self_blend"):
        validate_recipe({"data": {"augment": {"self_blend": {"p": 1.5}}}})
