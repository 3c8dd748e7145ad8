"""The single kind: one classifier's weights (a bundle.json without a ``kind`` field), scored
with PyTorch (`pytorch`) or onnxruntime (`onnx`, exported from the same weights and
parity-checked). Its bundle is what `fakescope train` writes (`fakescope.bundle.save_bundle`),
its card `fakescope.model_card`; calibrate, unsure-band and domain rewrite it in place, and
`fakescope export` exports it. `kind` registers it."""

from typing import TYPE_CHECKING, Any

from fakescope.kinds.single.kind import SingleKind
from fakescope.kinds.single.onnx import OnnxDetector

if TYPE_CHECKING:
    from fakescope.kinds.single.pytorch import TorchDetector

__all__ = ["OnnxDetector", "SingleKind", "TorchDetector"]


def __getattr__(name: str) -> Any:
    """`TorchDetector` on first use: scoring on onnxruntime imports no PyTorch."""
    if name == "TorchDetector":
        from fakescope.kinds.single.pytorch import TorchDetector

        return TorchDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
