"""`fakescope.onnx_export`, the name the ONNX exporter has always had: the exporter itself is
the single kind's (`fakescope.kinds.single.export`), re-exported here so existing imports keep
working."""

from fakescope.errors import ExportError
from fakescope.kinds.single.export import (
    CANNOT_EXPORT,
    FEATURES_TOLERANCE,
    OPSET,
    PARITY_TOLERANCE,
    ExportResult,
    OnnxGraph,
    ParityReport,
    check_parity,
    export_onnx,
    onnx_model_proto,
    synthetic_batch,
)

__all__ = [
    "CANNOT_EXPORT",
    "FEATURES_TOLERANCE",
    "OPSET",
    "PARITY_TOLERANCE",
    "ExportError",
    "ExportResult",
    "OnnxGraph",
    "ParityReport",
    "check_parity",
    "export_onnx",
    "onnx_model_proto",
    "synthetic_batch",
]
