"""Benchmark: what reading provenance costs per file (`read_provenance`, watermark included).

Issue 11's budget: <= 15 ms median per JPEG and <= 250 ms per one-megapixel lossless PNG
on 2 cores. Measured on
- JPEGs carrying C2PA manifests (the shared fixtures: Bing, Photoshop/Firefly, c2pa-rs test
  files) and plain 1-MP photo-like JPEGs without provenance (most real uploads);
- 1-MP PNGs without provenance (the watermark check runs in full, along its four paths:
  nothing stops it early) and with an SDXL watermark, embedded from uint8 BGR and, as
  generative-models does, from float BGR in warm tones (found only on the float path).
The first call, which builds the c2pa context (parses the shipped trust lists), is timed
apart.
    python bench/provenance.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

from _common import machine
from PIL import Image

from fakescope.provenance import read_provenance

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(
    os.environ.get(
        "FAKESCOPE_PROVENANCE_FIXTURES", REPO.parent / "shared" / "fixtures" / "provenance"
    )
)


def median_ms(files: list[bytes], repeat: int) -> tuple[float, float, int]:
    """(median, max) ms per file over every file x repeat, and the evidence count."""
    times: list[float] = []
    found = 0
    for _ in range(repeat):
        for data in files:
            started = time.perf_counter()
            found += len(read_provenance(data, "bench"))
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), found // repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if not FIXTURES.is_dir():
        sys.exit(f"{FIXTURES} not found: set FAKESCOPE_PROVENANCE_FIXTURES")
    sys.path.insert(0, str(REPO / "tests"))  # the test suite's image makers
    from provenance_make import encode, natural_rgb, warm_rgb, watermark

    c2pa_jpegs = [p.read_bytes() for p in sorted(FIXTURES.glob("c2pa_*.jpg"))]
    started = time.perf_counter()
    read_provenance(c2pa_jpegs[0], "warm-up")
    first_ms = (time.perf_counter() - started) * 1000

    plain_jpegs = [encode(natural_rgb(1000, 1000, s), "JPEG", quality=90) for s in range(8)]
    plain_pngs = [encode(natural_rgb(1000, 1000, s), "PNG") for s in range(8)]
    sizes = [Image.open(io.BytesIO(d)).size for d in plain_pngs[:1]]

    print(f"machine: {machine(torch_threads=False)}")
    print(f"first call (builds the c2pa context, parses the trust lists): {first_ms:.1f} ms")
    rows = [
        (f"JPEG with C2PA ({len(c2pa_jpegs)} fixtures)", c2pa_jpegs),
        (f"JPEG 1 MP, no provenance ({len(plain_jpegs)})", plain_jpegs),
        ("all JPEGs above", c2pa_jpegs + plain_jpegs),
        (f"PNG {sizes[0][0]}x{sizes[0][1]}, no provenance ({len(plain_pngs)})", plain_pngs),
    ]
    try:
        from fakescope.provenance.watermark import PAYLOADS

        sdxl = next(p for p in PAYLOADS if p.name == "sdxl")
        marked = [
            encode(watermark(natural_rgb(1000, 1000, s), sdxl.bits, "bgr", "uint8"), "PNG")
            for s in range(4)
        ]
        rows.append((f"PNG 1000x1000, SDXL watermark ({len(marked)})", marked))
        floats = [
            encode(watermark(warm_rgb(1000, 1000, s), sdxl.bits, "bgr", "float"), "PNG")
            for s in range(4)
        ]
        rows.append((f"PNG 1000x1000, SDXL float BGR watermark ({len(floats)})", floats))
    except ImportError:
        print("(invisible-watermark not installed: no watermarked PNG row)")
    print(f"{'files':48} {'median ms':>10} {'max ms':>8} {'evidence/pass':>14}")
    for label, files in rows:
        median, worst, found = median_ms(files, args.repeat)
        print(f"{label:48} {median:10.1f} {worst:8.1f} {found:14d}")


if __name__ == "__main__":
    main()
