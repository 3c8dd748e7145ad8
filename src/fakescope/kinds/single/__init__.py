"""The single kind: one classifier's weights (a bundle.json without a ``kind`` field), scored
with PyTorch (`pytorch`) or onnxruntime (`onnx`, exported from the same weights and
parity-checked). Its bundle is what `fakescope train` writes (`fakescope.bundle.save_bundle`),
its card `fakescope.model_card`; calibrate, unsure-band and domain rewrite it in place, and
`fakescope export` exports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.bundle import BundleMeta, verify_weights
from fakescope.kinds.single.onnx import OnnxDetector
from fakescope.kinds.single.pytorch import TorchDetector
from fakescope.model_card import render_model_card

__all__ = ["OnnxDetector", "SingleKind", "TorchDetector"]


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


kinds.register(SingleKind({"torch": TorchDetector, "onnx": OnnxDetector}))
