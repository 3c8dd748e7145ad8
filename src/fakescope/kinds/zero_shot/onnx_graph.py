"""The zero-shot kind on onnxruntime: the coder and its coding-gap features as one ONNX graph.

The graph takes crops (B, 3, S, S) as uint8 and returns, per crop, the mean actual cost (NLL)
and expected cost (entropy) of each level in bits per sub-pixel, exactly what
:class:`~fakescope.kinds.zero_shot.statistic.GapFeatures` computes in PyTorch; the threshold is
applied in Python. Exports are checked against PyTorch before they are written, and cached by
the bundle's checksum ($FAKESCOPE_CACHE/onnx/<sha256>.zero_shot.onnx).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fakescope.atomic import atomic_write_bytes
from fakescope.bundle import BundleMeta
from fakescope.cache_dir import default_cache_dir
from fakescope.errors import BundleError, ExportError
from fakescope.kinds.zero_shot.bundle import load_zero_shot_bundle
from fakescope.kinds.zero_shot.fit import GapStatistic
from fakescope.kinds.zero_shot.statistic import AnyCoder, GapFeatures, crop_features

INPUT = "crops"
OUTPUT = "gap_features"
OPSET = 17
KEY_BUNDLE = "fakescope_bundle_sha256"
PARITY_TOLERANCE = 1e-3  # bits per sub-pixel


class _Uint8Features(nn.Module):
    def __init__(self, coder: AnyCoder) -> None:
        super().__init__()
        self.features = GapFeatures(coder)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.features(crops.float())
        return out


def export_features(coder: AnyCoder, side: int, bundle_sha256: str = "") -> bytes:
    """The serialised ONNX graph of the coder's gap features for side x side crops, after a
    parity check against PyTorch on synthetic crops (ExportError when it fails)."""
    import onnx  # heavy, and needed only to export

    graph = _Uint8Features(coder).eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, 3, side, side), generator=gen, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works; the stubs say path only
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = KEY_BUNDLE, bundle_sha256
    data: bytes = proto.SerializeToString()
    smooth = torch.nn.functional.avg_pool2d(example.float(), 3, 1, 1).round().to(torch.uint8)
    check = torch.cat([example, smooth])
    expected = crop_features(graph.features, check.float()).numpy()
    got = FeatureSession(data).__call__(check)
    diff = float(np.abs(expected - got).max())
    if diff > PARITY_TOLERANCE:
        raise ExportError(
            f"the zero-shot graph's ONNX features differ from PyTorch's by {diff:.2e} bits "
            f"(> {PARITY_TOLERANCE:.0e}); not exported"
        )
    return data


class FeatureSession:
    """onnxruntime over the exported graph: crops (N, 3, S, S) -> features (N, 6)."""

    def __init__(self, model: str | os.PathLike[str] | bytes, chunk: int = 4) -> None:
        import onnxruntime as ort  # optional: only the onnx runtime needs it

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors share no base class
            raise BundleError(f"not a usable zero-shot ONNX graph ({str(exc)[:200]})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.chunk = chunk

    def __call__(self, crops: torch.Tensor) -> np.ndarray:
        arr = crops.clamp(0, 255).to(torch.uint8).numpy()
        parts = [
            self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(arr[i : i + self.chunk])})[0]
            for i in range(0, len(arr), self.chunk)
        ]
        return np.concatenate(parts) if parts else np.empty((0, 6), dtype=np.float32)


def zero_shot_onnx_path(bundle_sha256: str) -> Path:
    return default_cache_dir() / "onnx" / f"{bundle_sha256}.zero_shot.onnx"


def export_zero_shot(bundle: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Export a zero-shot bundle's gap-feature graph to `out` (parity-checked)."""
    coder, meta, _, raw = load_zero_shot_bundle(bundle)
    data = export_features(coder, meta.preprocessing.input_size, raw["sha256"])
    return atomic_write_bytes(out, data)


def open_zero_shot_onnx(
    path: str | os.PathLike[str],
) -> tuple[FeatureSession, BundleMeta, GapStatistic, dict[str, Any]]:
    """(feature session, metadata, statistic, bundle.json) of a zero-shot bundle on
    onnxruntime: its graph from the cache, exported once if missing (or from another
    version of the bundle)."""
    coder, meta, statistic, raw = load_zero_shot_bundle(path)
    cached = zero_shot_onnx_path(raw["sha256"])
    if cached.is_file():
        try:
            session = FeatureSession(cached)
            if session.metadata.get(KEY_BUNDLE) == raw["sha256"]:
                return session, meta, statistic, raw
        except BundleError:
            pass  # a damaged cache entry: export it again
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cached, export_features(coder, meta.preprocessing.input_size, raw["sha256"]))
    return FeatureSession(cached), meta, statistic, raw
