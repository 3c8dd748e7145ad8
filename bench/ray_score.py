"""Benchmark: `fakescope score` on a local Ray instance against plain `Detector.predict`.

Scores the same N CIFAKE JPEGs (read in place from the zip through a CSV manifest) with the
shipped detector, first with `Detector.predict` (what `fakescope predict` runs), then with
`score_to_parquet` on a local Ray instance, and prints images/s of both: Ray's with and
without its start-up.
    python bench/ray_score.py [--n 4000] [--workers 2] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import cifake, machine, peak_rss_mb

from fakescope.batch_score import connect, score_to_parquet
from fakescope.data.sources import open_source
from fakescope.detectors import Detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    source = open_source(cifake())
    items = source.items[:: max(1, len(source.items) // args.n)][: args.n]
    detector = Detector.load(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "subset.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label"])
            writer.writerows([item.path, "fake" if item.label else "real"] for item in items)

        started = time.perf_counter()
        predictions = detector.predict([str(manifest)], batch_size=args.batch_size)
        plain = time.perf_counter() - started
        rate = len(predictions) / plain
        print(f"Detector.predict:          {rate:6.0f} images/s ({plain:.1f} s)")

        started = time.perf_counter()
        connect(None, num_cpus=args.workers)
        startup = time.perf_counter() - started
        print(f"Ray local instance start:  {startup:.1f} s")
        out = Path(tmp) / "scores.parquet"
        for run in ("1st run", "2nd run"):  # each run starts its actors; the 2nd, warm caches
            summary = score_to_parquet(
                [str(manifest)],
                out,
                detector=detector,
                batch_size=args.batch_size,
                workers=args.workers,
                progress=False,
            )
            print(
                f"score_to_parquet, {run}: {summary.images_per_second:6.0f} images/s "
                f"({summary.seconds:.1f} s, {args.workers} actors)"
            )
        rows = {row["path"]: row["p_fake"] for row in pq.read_table(out).to_pylist()}
        worst = max(abs(rows[p.path] - p.p_fake) for p in predictions if p.p_fake is not None)
        print(f"max |p_fake(Ray) - p_fake(predict)| = {worst:.2e} over {len(rows)} images")
    print(f"driver peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
