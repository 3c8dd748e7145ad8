"""An onnxruntime session over a fakescope ONNX graph, and the names such graphs carry.

`fakescope.onnx_export` writes these graphs; `fakescope.kinds.single.onnx` scores with them.
The graph takes a ``(batch, 3, S, S)`` uint8 tensor named ``image`` and returns ``logit`` and
``p_fake`` (and, in graphs exported since the ONNX runtime became the default, ``features``:
the penultimate features the bundle's domain model reads); its metadata holds the signed
bundle.json it was exported from.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from fakescope.bundle import is_signed
from fakescope.errors import BundleError
from fakescope.threads import cores

ONNX_FILE = "model.onnx"
INPUT_NAME = "image"
OUTPUT_NAMES = ("logit", "p_fake")
FEATURES_NAME = "features"  # optional third output: (batch, D) penultimate features
ONNX_FORMAT = "fakescope-onnx"

RUN_BATCH = 32  # images per onnxruntime run (see OnnxModel._run)

KEY_FORMAT = "fakescope.format"
KEY_VERSION = "fakescope.version"
KEY_BUNDLE_JSON = "fakescope.bundle_json"
KEY_BUNDLE_SHA256 = "fakescope.bundle_sha256"
KEY_EXPORTER = "fakescope.exporter"
KEY_PARITY = "fakescope.parity"

if TYPE_CHECKING:  # scoring runs on numpy arrays; tensors only from callers on PyTorch
    import torch


class OnnxModel:
    """An onnxruntime session over a fakescope ONNX graph (uint8 in, logit and p_fake out)."""

    def __init__(
        self, model: str | os.PathLike[str] | bytes, *, threads: int | None = None, name: str = ""
    ) -> None:
        import onnxruntime as ort  # heavy: onnxruntime, only for the ONNX runtime

        self.name = name or (str(model) if not isinstance(model, bytes) else "<onnx bytes>")
        options = ort.SessionOptions()
        # One intra-op thread per core (PyTorch's own default), whatever PyTorch is set to
        # while onnxruntime scores (see fakescope.threads).
        options.intra_op_num_threads = threads or cores()
        options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: the cores they would burn decode
        # and search faces for the next batch meanwhile.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors (Fail, InvalidProtobuf...) share no base
            raise BundleError(
                f"{self.name}: not a usable ONNX model ({str(exc).splitlines()[0][:200]}); "
                "make one with `fakescope export`"
            ) from exc
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.has_features = outputs == [*OUTPUT_NAMES, FEATURES_NAME]
        if inputs != [INPUT_NAME] or (outputs != list(OUTPUT_NAMES) and not self.has_features):
            raise BundleError(
                f"{self.name}: not a fakescope detector graph (inputs {inputs}, outputs "
                f"{outputs}); make one with `fakescope export`"
            )

    @property
    def exporter(self) -> str | None:
        return self.metadata.get(KEY_EXPORTER)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logit, p_fake) arrays of shape (B,) for a (B, 3, S, S) uint8 array."""
        logit, p_fake = self._run(list(OUTPUT_NAMES), batch)
        return logit, p_fake

    def run_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logit (B,), features (B, D)) for a (B, 3, S, S) uint8 array, in one pass."""
        logit, features = self._run(["logit", FEATURES_NAME], batch)
        return logit, features

    def _run(self, outputs: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The outputs for a batch, RUN_BATCH images per session run: onnxruntime keeps the
        largest activations it has allocated for the life of the session (256 crops of 160
        px at once held 1 GB), and runs of 32 are as fast per image."""
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        parts = [
            self.session.run(outputs, {INPUT_NAME: batch[start : start + RUN_BATCH]})
            for start in range(0, len(batch), RUN_BATCH)
        ]
        if len(parts) == 1:
            return list(parts[0])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for a (B, 3, S, S) uint8 tensor, as `Detector.logits` returns them."""
        import torch

        return torch.from_numpy(self.run(batch.cpu().numpy())[0]).float()

    def bundle_meta(self) -> dict[str, Any]:
        """The bundle.json carried in the model's metadata, checksum-verified."""
        if self.metadata.get(KEY_FORMAT) != ONNX_FORMAT or KEY_BUNDLE_JSON not in self.metadata:
            raise BundleError(
                f"{self.name}: an ONNX model without fakescope metadata (threshold, "
                "preprocessing); export it with `fakescope export`"
            )
        try:
            meta: dict[str, Any] = json.loads(self.metadata[KEY_BUNDLE_JSON])
        except json.JSONDecodeError as exc:
            raise BundleError(f"{self.name}: its bundle metadata is not valid JSON") from exc
        if not is_signed(meta) or meta["sha256"] != self.metadata.get(KEY_BUNDLE_SHA256):
            raise BundleError(
                f"{self.name}: checksum mismatch in its bundle metadata (modified or damaged); "
                "export it again with `fakescope export`"
            )
        return meta
