"""Benchmark (b): inference speed of a bundle (default: the shipped detector).

Images/s and ms/image at batch 1 and batch 256 on decoded CIFAKE images (model time only,
decoding excluded), plus end-to-end `Detector.predict` on JPEG files from the archive.
    python bench/inference.py [--bundle PATH] [--n 2048]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import cifake, machine, peak_rss_mb, timed

from fakescope.data.cache import decode_items
from fakescope.data.sources import open_source
from fakescope.detectors import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--n", type=int, default=2048)
    args = parser.parse_args()
    detector = Detector.load(args.bundle, device="cpu")
    source = open_source(cifake())
    items = source.items[:: max(1, len(source.items) // args.n)][: args.n]
    images = decode_items(items, source.read_bytes, detector.preprocessing, progress=False).images
    print(f"machine: {machine()}")
    print(f"bundle: {detector.bundle_path} ({detector.meta.architecture})")
    with torch.inference_mode():
        one = timed(lambda: detector.probabilities(images[:1]), 200)
        print(f"batch 1:   {1 / one:8.0f} images/s  {one * 1000:.2f} ms/image")
        big = timed(lambda: detector.probabilities(images[:256]), 10)
        print(f"batch 256: {256 / big:8.0f} images/s  {big * 1000 / 256:.3f} ms/image")
    paths = [it.path for it in items]
    started = time.perf_counter()
    detector.predict(paths, batch_size=256)
    e2e = time.perf_counter() - started
    print(
        f"predict() on {len(paths)} JPEGs in a zip (decode included): "
        f"{len(paths) / e2e:.0f} images/s"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
