"""The single kind on PyTorch: one model from a single-model bundle, on the CPU or a GPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakescope.bundle import BundleMeta, load_bundle
from fakescope.data.transforms import Preprocessing
from fakescope.detectors.base import Capabilities, Capability, DomainScoringDetector
from fakescope.detectors.domain import DomainModel


class TorchDetector(DomainScoringDetector):
    """Scores with one PyTorch model: explainable, embeddable and differentiable."""

    kind = "torch"

    def __init__(
        self,
        model: nn.Module,
        meta: BundleMeta,
        *,
        device: str | torch.device = "cpu",
        bundle_path: Path | None = None,
        domain: DomainModel | None = None,
    ) -> None:
        super().__init__(meta, bundle_path=bundle_path)
        self.domain = domain
        self._device = torch.device(device)
        # channels_last: oneDNN's (and cuDNN's) fast layout for convolutions, and the one the
        # trainer uses. On this CPU it makes EfficientNet-Lite0 1.1x faster at batch 1 and 1.7x
        # faster at batch 32 (fp32), with the same scores to ~1e-7.
        self.model: nn.Module = model.to(self._device).to(memory_format=torch.channels_last).eval()

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> TorchDetector:
        model, meta = load_bundle(path)
        domain = DomainModel.load(path, meta.domain) if meta.domain else None
        return cls(model, meta, device=device, bundle_path=path, domain=domain)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(runtime="torch", can_explain=True, can_embed=True, has_gradients=True)

    @property
    def device(self) -> torch.device:
        return self._device

    @torch.no_grad()
    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.preprocessing.normalize(batch.to(self._device))
        x = x.contiguous(memory_format=torch.channels_last)
        logits: torch.Tensor = self.model(x)
        return logits.float().view(-1).cpu()

    @torch.no_grad()
    def logits_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (B,) and penultimate features (B, D) on the CPU, in one forward pass;
        for (B, K, 3, S, S) crops, logits (B, K) and the crops' mean features (B, D)."""
        if batch.ndim == 5:
            b, k = batch.shape[:2]
            z, f = self.logits_and_features(batch.flatten(0, 1))
            return z.view(b, k), f.view(b, k, -1).mean(dim=1)
        x = self.preprocessing.normalize(batch.to(self._device))
        x = x.contiguous(memory_format=torch.channels_last)
        model: Any = self.model  # every registered model has timm's forward_features/_head
        stem = model.forward_features(x)
        features: torch.Tensor = model.forward_head(stem, pre_logits=True)
        logits: torch.Tensor = model.forward_head(stem)
        return logits.float().view(-1).cpu(), features.float().reshape(len(x), -1).cpu()

    def torch_model(self, purpose: str, needs: Capability = "explain") -> nn.Module:
        return self.model

    def attack_target(
        self,
    ) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]:
        pre = self.preprocessing
        return self.model, lambda x01: pre.normalize(x01 * 255.0), pre, self.meta.temperature
