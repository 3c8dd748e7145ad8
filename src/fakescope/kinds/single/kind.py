"""The single kind's entry in the registry (`fakescope.kinds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.bundle import BundleMeta, verify_weights
from fakescope.kinds.single.onnx import OnnxDetector
from fakescope.model_card import render_model_card


class SingleKind(kinds.Kind):
    """One model's weights: every runtime, every refit, ONNX export."""

    name = kinds.DEFAULT
    title = "a single-model bundle"

    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        verify_weights(folder, meta)

    def render_card(self, meta: dict[str, Any]) -> str:
        return render_model_card(BundleMeta.from_dict(meta))

    @property
    def fields_fitted(self) -> bool:
        return False

    def domain_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        return None

    def export_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        return None


# PyTorch (and timm) load only when a detector runs there
TORCH = "fakescope.kinds.single.pytorch:TorchDetector"
kinds.register(SingleKind({"torch": TORCH, "onnx": OnnxDetector}))
