"""The ONNX kind: scores with onnxruntime, from an exported .onnx file or a bundle folder.

`open_onnx` accepts
- a ``.onnx`` file made by `fakescope export`: its metadata holds the verified bundle.json;
- a bundle folder holding ``model.onnx``: used if it was exported from this very bundle
  (same bundle sha256), refused with the command to re-export if the bundle changed since
  (e.g. `fakescope calibrate` re-signed it);
- a bundle folder without one: exported once, parity-checked, into the cache
  ($FAKESCOPE_CACHE/onnx/<bundle sha256>.onnx) and reused from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fakescope.bundle import BundleMeta, read_meta
from fakescope.data.cache import default_cache_dir
from fakescope.detectors.base import Capabilities, Detector, register_kind
from fakescope.errors import BundleError
from fakescope.onnx_model import ONNX_FILE, OnnxModel

_NO_TORCH = "the onnx runtime has no PyTorch model; load the bundle with runtime 'torch'"


@register_kind("onnx", "single")
class OnnxDetector(Detector):
    """Scores with onnxruntime on the CPU: fast, but neither explainable nor differentiable."""

    kind = "onnx"

    def __init__(self, session: OnnxModel, meta: BundleMeta, *, bundle_path: Path | None) -> None:
        super().__init__(meta, bundle_path=bundle_path)
        self.session = session

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> OnnxDetector:
        session, raw = open_onnx(path)
        return cls(session, BundleMeta.from_dict(raw), bundle_path=path)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            runtime="onnx",
            can_explain=False,
            can_embed=False,
            has_gradients=False,
            why_not={"explain": _NO_TORCH, "embed": _NO_TORCH, "gradients": _NO_TORCH},
        )

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.session.logits(batch)


def onnx_cache_path(bundle_sha256: str) -> Path:
    return default_cache_dir() / "onnx" / f"{bundle_sha256}.onnx"


def open_onnx(path: str | os.PathLike[str]) -> tuple[OnnxModel, dict[str, Any]]:
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
    # imported here: the exporter checks its graph against this package's torch kind, so a
    # module-level import would run this package's __init__ before the exporter is defined
    from fakescope.onnx_export import export_onnx

    cached = onnx_cache_path(raw["sha256"])
    if cached.is_file():
        try:
            return OnnxModel(cached), raw
        except BundleError:
            pass  # a damaged cache entry: export it again
    export_onnx(path, cached)
    return OnnxModel(cached), raw
