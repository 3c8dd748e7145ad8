"""The zero-shot kind's entry in the registry (`fakescope.kinds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.bundle import verify_weights
from fakescope.kinds.zero_shot.bundle import KIND
from fakescope.kinds.zero_shot.card import render_zero_shot_card
from fakescope.kinds.zero_shot.detector import ZeroShotDetector, ZeroShotOnnxDetector


class ZeroShotKind(kinds.Kind):
    """The coder's weights and its fitted statistic; either runtime (its own ONNX graph)."""

    name = KIND
    title = "a zero-shot detector (a real-image coder)"
    holds = "holds a real-image coder, not a classifier"

    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        verify_weights(folder, meta)

    def render_card(self, meta: dict[str, Any]) -> str:
        return render_zero_shot_card(meta)

    def export_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        return (
            f"{bundle} is a zero-shot bundle: its coder and coding-gap features export "
            f"with `fakescope zero-shot export --bundle {bundle} --out FILE.onnx`, and "
            "`--runtime onnx` runs it on onnxruntime directly"
        )


kinds.register(ZeroShotKind({"torch": ZeroShotDetector, "onnx": ZeroShotOnnxDetector}))
