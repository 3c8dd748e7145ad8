"""The single kind: one classifier's weights (a bundle.json without a ``kind`` field), scored
with PyTorch (`pytorch`) or onnxruntime (`onnx`, exported from the same weights and
parity-checked). Its bundle is what `fakescope train` writes (`fakescope.bundle.save_bundle`),
its card `fakescope.model_card`; calibrate, unsure-band and domain rewrite it in place, and
`fakescope export` exports it. `kind` registers it."""

from fakescope.kinds.single.kind import SingleKind
from fakescope.kinds.single.onnx import OnnxDetector
from fakescope.kinds.single.pytorch import TorchDetector

__all__ = ["OnnxDetector", "SingleKind", "TorchDetector"]
