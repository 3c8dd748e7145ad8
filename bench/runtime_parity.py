"""Benchmark: the default detector on onnxruntime (runtime auto) against PyTorch fp32, on a
seeded sample of every shared source: per source ROC-AUC on each runtime, max |Δp|, and how
many verdicts (label, unsure) differ. Each image is decoded and prepared once (face route
included), then scored by both runtimes, so only the runtime differs.

    python bench/runtime_parity.py [--per-class 100] [--bundle default]

The sample (seeded, `_common.sample_items`) is not the bundles' held-out validation split,
whose manifests live in the training runs; the runtimes are compared on the same images.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import DATA, sample_items
from predict_vs_seed import cpu_flags
from sklearn.metrics import roc_auc_score

from fakescope.data.cache import decode_items
from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.evaluation.evaluate import pixel_scores
from fakescope.inference import verdicts

SOURCES = ("cifake_train", "stylegan_faces", "faceswap_lfw", "dfdc_faces", "modern_photos")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--bundle", default=None)
    args = parser.parse_args()
    fast = load_detector(args.bundle, runtime="onnx")
    slow = load_detector(args.bundle, runtime="torch")
    print(f"machine: {cpu_flags()}")
    print(f"{'source':16s} {'n':>5s} {'AUC torch':>9s} {'AUC onnx':>9s} {'|ΔAUC|':>8s} "
          f"{'max|Δp|':>8s} {'flips':>5s} {'routed':>6s}")  # fmt: skip
    worst = 0.0
    for name in SOURCES:
        path = DATA / f"{name}.zip"
        if not path.is_file():
            print(f"{name}: {path} not found, skipped")
            continue
        source = open_source(path)
        items = sample_items(path, args.per_class, seed=0)
        decoded = decode_items(items, source.read_bytes, slow.preprocessing, progress=False)
        y = decoded.labels.numpy().astype(int)
        scores = {d.runtime: pixel_scores(d, decoded.images) for d in (fast, slow)}
        judged = {
            d.runtime: verdicts(d, decoded.paths, scores[d.runtime], sizes=decoded.sizes)
            for d in (fast, slow)
        }
        auc = {k: roc_auc_score(y, s.p_fake) for k, s in scores.items()}
        dp = float(np.abs(scores["onnx"].p_fake - scores["torch"].p_fake).max())
        flips = sum(
            (a.label, a.unsure) != (b.label, b.unsure)
            for a, b in zip(judged["onnx"], judged["torch"], strict=True)
        )
        routed = sum(p.face_box is not None for p in judged["torch"])
        worst = max(worst, abs(auc["onnx"] - auc["torch"]))
        gap = abs(auc["onnx"] - auc["torch"])
        print(f"{name:16s} {len(y):5d} {auc['torch']:9.4f} {auc['onnx']:9.4f} "
              f"{gap:8.1e} {dp:8.1e} {flips:5d} {routed:6d}")  # fmt: skip
    print(f"largest |ΔAUC| {worst:.1e} (bar 0.002)")


if __name__ == "__main__":
    main()
