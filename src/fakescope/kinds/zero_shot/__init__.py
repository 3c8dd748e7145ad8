"""The zero-shot detector kind: a model of real photographs only (a small multi-resolution
lossless coder), and p(fake) from how an image's actual coding cost under it compares with
the cost it expected (ZED, Cozzolino et al., ECCV 2024).

One package owns the kind: the coder (`coder`), the statistic (`statistic`), the real data
and its hold-out (`data`), the recipe and trainer (`recipe`, `train`), the threshold fit
(`fit`), the bundle and its card (`bundle`, `card`), the detector (`detector`) and its ONNX
graph (`onnx_graph`). `fakescope zero-shot ...` are its commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.bundle import verify_weights
from fakescope.kinds.zero_shot.bundle import KIND, load_zero_shot_bundle, save_zero_shot_bundle
from fakescope.kinds.zero_shot.card import render_zero_shot_card
from fakescope.kinds.zero_shot.detector import ZeroShotDetector, ZeroShotOnnxDetector

__all__ = [
    "KIND",
    "ZeroShotDetector",
    "ZeroShotKind",
    "ZeroShotOnnxDetector",
    "load_zero_shot_bundle",
    "save_zero_shot_bundle",
]


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
