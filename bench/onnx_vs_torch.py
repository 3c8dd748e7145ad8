"""Benchmark: ONNX Runtime vs PyTorch for a bundle (default: the shipped detector).

Exports the bundle (parity-checked on CIFAKE images), then times the model alone on decoded
CIFAKE images at batch 1 and batch 256 with both runtimes, using the same thread count, and
reports max |Δp| between them on all the images timed.
    python bench/onnx_vs_torch.py [--bundle PATH] [--n 1024]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import cifake, machine, peak_rss_mb, timed

from fakescope.data.cache import decode_items
from fakescope.data.sources import open_source
from fakescope.detectors import Detector
from fakescope.onnx_export import export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--n", type=int, default=1024)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    source = open_source(cifake())
    items = source.items[:: max(1, len(source.items) // args.n)][: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        result = export_onnx(
            args.bundle, out, check_images=[it.path for it in items], check_n=args.n
        )
        print(
            f"export: {result.exporter} exporter, {result.seconds:.1f} s, "
            f"{out.stat().st_size / 1e6:.1f} MB; parity on {result.parity.n} CIFAKE images: "
            f"max |Δp| {result.parity.max_abs_diff_p:.2e}"
        )
        detectors = {
            "torch": Detector.load(args.bundle, device="cpu"),
            "onnx": Detector.load(out, runtime="onnx"),
        }
        images = decode_items(
            items, source.read_bytes, detectors["torch"].preprocessing, progress=False
        ).images
        p = {name: d.probabilities(images) for name, d in detectors.items()}
        diff = np.abs(p["torch"] - p["onnx"]).max()
        print(f"max |Δp| torch vs onnx on {len(images)} images: {diff:.2e}")
        for name, detector in detectors.items():
            with torch.inference_mode():
                one = timed(lambda d=detector: d.probabilities(images[:1]), 300)
                big = timed(lambda d=detector: d.probabilities(images[:256]), 10)
            print(
                f"{name:5s} batch 1: {1 / one:7.0f} images/s ({one * 1000:.2f} ms)   "
                f"batch 256: {256 / big:7.0f} images/s ({big * 1000 / 256:.3f} ms/image)"
            )
    print(f"threads: torch {torch.get_num_threads()}, onnxruntime intra-op the same")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
