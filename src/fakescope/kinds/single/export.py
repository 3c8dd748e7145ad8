"""Export a single-model bundle to one ONNX file, checked against PyTorch before it is written
(`fakescope export`; the single kind's onnxruntime detector exports its bundle through this on
first use; other kinds refuse through their `Kind.export_refusal`). `fakescope.onnx_export`
re-exports it under its old name.

The graph takes what `Preprocessing.to_uint8` makes, a ``(batch, 3, S, S)`` uint8 tensor with a
dynamic batch axis, and returns ``logit`` and ``p_fake = sigmoid(logit / temperature)``, both
of shape ``(batch,)``, and ``features`` ``(batch, D)``, the penultimate features (what the
bundle's domain model reads, so the ONNX runtime gives the same domain score): the bundle's
normalisation and temperature are inside the graph, so a deployment that only has the .onnx
file scores images exactly as fakescope does. The whole bundle.json (threshold, unsure band,
labels, preprocessing, metrics, checksums) travels in the model's ``metadata_props`` under
``fakescope.bundle_json``, with ``fakescope.bundle_sha256``, so `fakescope.onnx_runtime` can
verify it and tell a stale export from a current one.

Exporter: torch's dynamo-based exporter (``torch.export`` + onnxscript; the default of
``torch.onnx.export`` since torch 2.9) is tried first; if it raises, the TorchScript exporter
(deprecated by torch, still present in 2.14) is used. Both export every registered
architecture; which one made a file is recorded in ``fakescope.exporter``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from fakescope import __version__, kind_registry
from fakescope.atomic import atomic_write_bytes
from fakescope.bundle import BundleMeta, load_bundle, read_meta, resolve_bundle_path
from fakescope.data.inputs import prepare_or_reason
from fakescope.data.sources import collect_inputs
from fakescope.errors import ExportError
from fakescope.kinds.single.pytorch import TorchDetector
from fakescope.onnx_model import (
    FEATURES_NAME,
    INPUT_NAME,
    KEY_BUNDLE_JSON,
    KEY_BUNDLE_SHA256,
    KEY_EXPORTER,
    KEY_FORMAT,
    KEY_PARITY,
    KEY_VERSION,
    ONNX_FORMAT,
    OUTPUT_NAMES,
    OnnxModel,
)

OPSET = 18
PARITY_TOLERANCE = 1e-4
# features feed the domain score (a Mahalanobis distance over ~1,000 of them): float32 sums
# in another order differ by ~1e-5 on features of magnitude ~1-10, and in proportion on larger
# ones (an untrained efficientnet_b0's reach ~10^3), so the difference is measured relative to
# the largest feature's magnitude (at least 1)
FEATURES_TOLERANCE = 1e-3

Exporter = Literal["auto", "dynamo", "torchscript"]
EXPORTERS: tuple[str, ...] = ("auto", "dynamo", "torchscript")

# Registered architectures that cannot be exported, each with the reason. Empty because every
# architecture in the registry exports with both exporters and passes the parity check
# (tests/test_onnx.py runs each one); add an entry here, with its reason, when one stops.
CANNOT_EXPORT: dict[str, str] = {}


class OnnxGraph(nn.Module):
    """uint8 images -> (logit, p_fake): the bundle's normalisation, model and temperature."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, meta: BundleMeta) -> None:
        super().__init__()
        self.model = model.eval()
        pre = meta.preprocessing
        # The same arithmetic as Preprocessing.normalize, so both runtimes see equal inputs.
        self.register_buffer("mean", torch.tensor(pre.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(pre.std).view(1, 3, 1, 1) * 255.0)
        self.temperature = float(meta.temperature)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (image.float() - self.mean) / self.std
        model: Any = self.model
        if not self.with_features:
            logit = model(x).float().reshape(-1)
            return logit, torch.sigmoid(logit / self.temperature)
        stem = model.forward_features(x)
        features = model.forward_head(stem, pre_logits=True).float().flatten(1)
        logit = model.forward_head(stem).float().reshape(-1)
        return logit, torch.sigmoid(logit / self.temperature), features

    @property
    def with_features(self) -> bool:
        """Whether the model exposes its penultimate features (timm's forward_head)."""
        return hasattr(self.model, "forward_features") and hasattr(self.model, "forward_head")

    @property
    def output_names(self) -> list[str]:
        return [*OUTPUT_NAMES, FEATURES_NAME] if self.with_features else list(OUTPUT_NAMES)


@dataclass
class ParityReport:
    """How far the ONNX scores are from PyTorch's on the same uint8 inputs."""

    n: int
    source: str
    max_abs_diff_p: float
    max_abs_diff_logit: float
    tolerance: float
    # max |Δfeatures| / max(1, max |features|); None: a graph without features
    max_rel_diff_features: float | None = None

    @property
    def passed(self) -> bool:
        features_ok = (
            self.max_rel_diff_features is None or self.max_rel_diff_features <= FEATURES_TOLERANCE
        )
        return self.max_abs_diff_p <= self.tolerance and features_ok

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class ExportResult:
    path: Path
    exporter: str
    opset: int
    parity: ParityReport
    seconds: float
    bundle_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exporter": self.exporter,
            "opset": self.opset,
            "parity": self.parity.to_dict(),
            "seconds": round(self.seconds, 2),
            "bundle_sha256": self.bundle_sha256,
        }


def export_onnx(
    bundle: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    exporter: Exporter = "auto",
    check_images: Sequence[str] | None = None,
    check_n: int = 128,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export a bundle (None: the shipped detector) to ``out``, after a parity check.

    The check scores the same inputs with PyTorch and onnxruntime, at batch 1 and at larger
    batches: up to ``check_n`` images from ``check_images`` (files, folders, archives) when
    given, else a fixed set of synthetic images. If max |p_torch - p_onnx| exceeds
    ``tolerance`` nothing is written and ExportError says by how much it failed.
    """
    started = time.perf_counter()
    bundle_path = resolve_bundle_path(bundle)
    raw = read_meta(bundle_path)
    refusal = kind_registry.of_meta(raw).export_refusal(bundle_path, raw)
    if refusal:
        raise ExportError(refusal)
    model, meta = load_bundle(bundle_path)
    model = model.float().cpu().eval()
    if check_images:
        batch, source = _images_for_check(check_images, meta, check_n), "given"
    else:
        batch, source = synthetic_batch(check_n, meta.preprocessing.input_size), "synthetic"
    proto, used = onnx_model_proto(OnnxGraph(model, meta), meta.preprocessing.input_size, exporter)
    parity = check_parity(model, meta, proto.SerializeToString(), batch, source, tolerance)
    if not parity.passed:
        raise ExportError(
            f"ONNX export of {bundle_path} failed its parity check: max |Δp| "
            f"{parity.max_abs_diff_p:.2e} (tolerance {tolerance:.0e}), relative |Δfeatures| "
            f"{parity.max_rel_diff_features} (tolerance {FEATURES_TOLERANCE:.0e}) on "
            f"{parity.n} {source} images "
            f"(exporter {used}); try --exporter "
            f"{'torchscript' if used == 'dynamo' else 'dynamo'}"
        )
    _set_metadata(proto, raw, used, parity)
    path = atomic_write_bytes(out, proto.SerializeToString())
    return ExportResult(
        path, used, OPSET, parity, time.perf_counter() - started, bundle_sha256=raw["sha256"]
    )


def onnx_model_proto(graph: OnnxGraph, input_size: int, exporter: Exporter = "auto") -> Any:
    """(onnx.ModelProto, exporter used) for a module taking (B, 3, S, S) uint8."""
    import onnx  # heavy: onnx, only when exporting

    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    example = synthetic_batch(2, input_size)  # batch 2: torch.export specialises a batch of 1
    errors: list[str] = []
    for name in ("dynamo", "torchscript") if exporter == "auto" else (exporter,):
        try:
            with torch.no_grad():
                proto = _EXPORT[name](graph, example)
            onnx.checker.check_model(proto)
            return proto, name
        except Exception as exc:  # exporters raise many unrelated types; report them all
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    raise ExportError(f"{type(graph.model).__name__} cannot be exported: " + "; ".join(errors))


def _export_dynamo(graph: OnnxGraph, example: torch.Tensor) -> Any:
    # The dynamo exporter prints its progress on stdout; keep fakescope's output clean.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (example,),
            None,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=graph.output_names,
            opset_version=OPSET,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            verbose=False,
        )
    if program is None:  # only None when exporting to a file, which we do not
        raise ExportError("the dynamo exporter returned no program")
    return program.model_proto


def _export_torchscript(graph: OnnxGraph, example: torch.Tensor) -> Any:
    import onnx  # heavy: onnx, only when exporting

    buffer = io.BytesIO()
    batch_axis = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its DeprecationWarning is about torch's roadmap
        torch.onnx.export(
            graph,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works; the stubs say path only
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=graph.output_names,
            opset_version=OPSET,
            dynamic_axes={name: batch_axis for name in (INPUT_NAME, *graph.output_names)},
        )
    return onnx.load_from_string(buffer.getvalue())


_EXPORT = {"dynamo": _export_dynamo, "torchscript": _export_torchscript}


def check_parity(
    model: nn.Module,
    meta: BundleMeta,
    onnx_bytes: bytes,
    batch: torch.Tensor,
    source: str = "synthetic",
    tolerance: float = PARITY_TOLERANCE,
) -> ParityReport:
    """Score a uint8 batch with PyTorch and onnxruntime: the first image alone, then the rest
    in batches of 64 (the batch axis is dynamic); both of the graph's outputs are checked."""

    session = OnnxModel(onnx_bytes, name="exported model")
    reference = TorchDetector(model, meta, device="cpu")  # the PyTorch runtime, as predict runs it
    diff_p = diff_logit = diff_features = 0.0
    chunks = [batch[:1]] + [batch[i : i + 64] for i in range(1, len(batch), 64)]
    for chunk in chunks:
        logit_t, p_t = reference.logits(chunk).numpy(), reference.probabilities(chunk)
        logit_o, p_o = session.run(chunk.numpy())
        if session.has_features:
            features_t = reference.logits_and_features(chunk)[1].numpy()
            features_o = session.run_with_features(chunk.numpy())[1]
            scale = max(1.0, float(np.abs(features_t).max()))
            diff_features = max(diff_features, float(np.abs(features_o - features_t).max()) / scale)
        p_from_logit = 1.0 / (1.0 + np.exp(-logit_o.astype(np.float64) / meta.temperature))
        diff_logit = max(diff_logit, float(np.abs(logit_o - logit_t).max()))
        diff_p = max(
            diff_p, float(np.abs(p_o - p_t).max()), float(np.abs(p_from_logit - p_t).max())
        )
    features = diff_features if session.has_features else None
    return ParityReport(len(batch), source, diff_p, diff_logit, tolerance, features)


def synthetic_batch(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """A fixed (n, 3, size, size) uint8 batch: half smooth colour gradients, half noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    images = []
    for index in range(n):
        if index % 2:
            images.append(rng.integers(0, 256, (3, size, size), dtype=np.uint8))
            continue
        a, b, c = rng.uniform(0, 255, (3, 3, 1, 1))
        images.append(np.clip(a * x + b * y + c * x * y, 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(images))


def _images_for_check(paths: Sequence[str], meta: BundleMeta, n: int) -> torch.Tensor:
    found, problems = collect_inputs(list(paths))
    if not found:
        detail = "; ".join(f"{p}: {why}" for p, why in problems) or "no images"
        raise ExportError(f"no images to check the ONNX export on ({detail})")
    picked = found[:: max(1, len(found) // n)][:n]
    prepared = [prepare_or_reason(path, path, meta.preprocessing.to_uint8) for path in picked]
    arrays = [a for a in prepared if not isinstance(a, str)]  # unreadable ones are not ours
    if not arrays:
        raise ExportError(f"none of the {len(picked)} images picked from {paths} could be read")
    batch = torch.from_numpy(np.stack(arrays))
    # native-resolution crops: the graph scores one crop at a time, so it is checked on crops
    return batch.flatten(0, 1) if batch.ndim == 5 else batch


def _set_metadata(
    proto: Any, raw_meta: dict[str, Any], exporter: str, parity: ParityReport
) -> None:
    proto.producer_name = "fakescope"
    proto.producer_version = __version__
    proto.doc_string = (
        "fakescope detector. Input 'image': (batch, 3, S, S) uint8 RGB, resized as "
        "bundle_json.preprocessing says. Outputs: 'logit' and 'p_fake' = "
        "sigmoid(logit / temperature); compare p_fake with bundle_json.threshold. "
        "'features' (when present): the penultimate features, for the domain score."
    )
    values = {
        KEY_FORMAT: ONNX_FORMAT,
        KEY_VERSION: __version__,
        KEY_BUNDLE_JSON: json.dumps(raw_meta, sort_keys=True),
        KEY_BUNDLE_SHA256: raw_meta["sha256"],
        KEY_EXPORTER: exporter,
        KEY_PARITY: json.dumps(parity.to_dict()),
    }
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
