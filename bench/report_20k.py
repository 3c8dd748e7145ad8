"""Benchmark: the full evaluation report (metrics with CIs, plots, Grad-CAM gallery, t-SNE)
for 20,000 CIFAKE images with the shipped detector, as `fakescope evaluate` makes it.

Prints the seconds per stage (metrics.json "timings"), the total wall and CPU time, the
load average and the peak RSS.
    python bench/report_20k.py [--n 20000] [--tsne-points 3000] [--gallery 4] [--out DIR]

The images are a seeded random half real, half fake sample of cifake_train.zip, so most of
them were training images of the shipped detector: the metrics are optimistic; the point
here is the time.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from _common import cifake, machine, peak_rss_mb, write_labels_csv

from fakescope.data.sources import open_source
from fakescope.detectors import Detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.report_sections import report_hooks


def sample_manifest(n: int, path: Path, seed: int = 0) -> Path:
    """A CSV of n/2 real and n/2 fake archive members, chosen at random."""
    source = open_source(cifake())
    rng = random.Random(seed)
    rows = []
    for label in (0, 1):
        members = [it for it in source.items if it.label == label]
        rows += rng.sample(members, n // 2)
    return write_labels_csv(path, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tsne-points", type=int, default=3000)
    parser.add_argument("--gallery", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="keep the report here")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = sample_manifest(args.n, Path(tmp) / "sample.csv")
        out = args.out or Path(tmp) / "report"
        detector = Detector.load(device="cpu")
        hooks = report_hooks(gallery=args.gallery, tsne_points=args.tsne_points)
        load_before = os.getloadavg()[0]
        wall, cpu = time.perf_counter(), time.process_time()
        metrics = evaluate(detector, manifest, out, progress=True, report_hooks=hooks)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = (out / "report.html").stat().st_size / 1e6
    print(f"images: {metrics['n']}; accuracy {metrics['accuracy']:.4f}; report {size:.1f} MB")
    print(f"t-SNE points: {metrics['embeddings']['n']}; gallery: {args.gallery} per row")
    print("seconds per stage:")
    for stage, seconds in metrics["timings"].items():
        print(f"  {stage:10s} {seconds:7.1f}")
    print(f"total wall {wall:.1f} s, CPU {cpu:.1f} s (all threads)")
    print(f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
