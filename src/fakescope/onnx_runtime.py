"""Score images with onnxruntime: open fakescope ONNX files and find (or make) one for a bundle.

`open_onnx` accepts
- a ``.onnx`` file made by `fakescope export`: its metadata holds the verified bundle.json;
- a bundle folder holding ``model.onnx``: used if it was exported from this very bundle
  (same bundle sha256), refused with the command to re-export if the bundle changed since
  (e.g. `fakescope calibrate` re-signed it);
- a bundle folder without one: exported once, parity-checked, into the cache
  ($FAKESCOPE_CACHE/onnx/<bundle sha256>.onnx) and reused from there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope.bundle import _meta_digest, read_meta
from fakescope.data.cache import default_cache_dir
from fakescope.errors import BundleError
from fakescope.onnx_export import (
    INPUT_NAME,
    KEY_BUNDLE_JSON,
    KEY_BUNDLE_SHA256,
    KEY_EXPORTER,
    KEY_FORMAT,
    ONNX_FILE,
    ONNX_FORMAT,
    OUTPUT_NAMES,
    export_onnx,
)


class OnnxModel:
    """An onnxruntime session over a fakescope ONNX graph (uint8 in, logit and p_fake out)."""

    def __init__(
        self, model: str | os.PathLike | bytes, *, threads: int | None = None, name: str = ""
    ) -> None:
        import onnxruntime as ort

        self.name = name or (str(model) if not isinstance(model, bytes) else "<onnx bytes>")
        options = ort.SessionOptions()
        # The same thread budget as PyTorch, so the runtimes compare (and share cores) fairly.
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
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
        if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
            raise BundleError(
                f"{self.name}: not a fakescope detector graph (inputs {inputs}, outputs "
                f"{outputs}); make one with `fakescope export`"
            )

    @property
    def exporter(self) -> str | None:
        return self.metadata.get(KEY_EXPORTER)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logit, p_fake) arrays of shape (B,) for a (B, 3, S, S) uint8 array."""
        logit, p_fake = self.session.run(
            list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.uint8)}
        )
        return logit, p_fake

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for a (B, 3, S, S) uint8 tensor, as `Detector.logits` returns them."""
        return torch.from_numpy(self.run(batch.cpu().numpy())[0]).float()

    def bundle_meta(self) -> dict[str, Any]:
        """The bundle.json carried in the model's metadata, checksum-verified."""
        if self.metadata.get(KEY_FORMAT) != ONNX_FORMAT or KEY_BUNDLE_JSON not in self.metadata:
            raise BundleError(
                f"{self.name}: an ONNX model without fakescope metadata (threshold, "
                "preprocessing); export it with `fakescope export`"
            )
        try:
            meta = json.loads(self.metadata[KEY_BUNDLE_JSON])
        except json.JSONDecodeError as exc:
            raise BundleError(f"{self.name}: its bundle metadata is not valid JSON") from exc
        if meta.get("sha256") != _meta_digest(meta) or meta.get("sha256") != self.metadata.get(
            KEY_BUNDLE_SHA256
        ):
            raise BundleError(
                f"{self.name}: checksum mismatch in its bundle metadata (modified or damaged); "
                "export it again with `fakescope export`"
            )
        return meta


def onnx_cache_path(bundle_sha256: str) -> Path:
    return default_cache_dir() / "onnx" / f"{bundle_sha256}.onnx"


def open_onnx(path: str | os.PathLike) -> tuple[OnnxModel, dict[str, Any]]:
    """(session, verified bundle.json) for a .onnx file or a bundle folder (see module doc)."""
    path = Path(path)
    if path.is_file():
        model = OnnxModel(path)
        return model, model.bundle_meta()
    raw = read_meta(path)  # verifies the bundle, and says what is wrong with a bad path
    beside = path / ONNX_FILE
    if beside.is_file():
        model = OnnxModel(beside)
        made_from = model.bundle_meta()["sha256"]
        if made_from != raw["sha256"]:
            raise BundleError(
                f"{beside} was exported from another version of this bundle (bundle sha256 "
                f"{made_from[:12]}…, now {raw['sha256'][:12]}…); re-export it: "
                f"fakescope export --bundle {path} --out {beside}"
            )
        return model, raw
    cached = onnx_cache_path(raw["sha256"])
    if cached.is_file():
        try:
            return OnnxModel(cached), raw
        except BundleError:
            pass  # a damaged cache entry: export it again
    export_onnx(path, cached)
    return OnnxModel(cached), raw
