"""Speed on the images people have: 1280x720 JPEG photos through `predict` and the HTTP API.

Makes N 1280x720 JPEGs (the shared modern photos, cropped and resized to 1280x720 so they
are real photographic content; or synthetic gradients without data), then measures
`Detector.predict` in images/s (with provenance, as `fakescope predict` runs, and pixels
only) and, against a real `fakescope serve` on 127.0.0.1, the latency of single-image
requests (p50 / p90 / p99). Peak RSS of this process is printed too.

    python bench/hd_photos.py [--bundle general] [--n 64] [--requests 60]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from _common import DATA, machine, peak_rss_mb
from PIL import Image
from serve_load import RawClient, free_port, multipart, start_server, wait_ready

from fakescope.detectors import load_detector

SIZE = (1280, 720)


def hd_photos(folder: Path, n: int) -> list[Path]:
    """n 1280x720 JPEGs (quality 90) made from the shared modern photos, or synthetic."""
    sources: list[Image.Image] = []
    archive = DATA / "modern_photos.zip"
    if archive.is_file():
        with zipfile.ZipFile(archive) as zf:
            names = [m for m in zf.namelist() if m.lower().endswith((".jpg", ".jpeg", ".png"))]
            for name in names[:n]:
                sources.append(Image.open(io.BytesIO(zf.read(name))).convert("RGB"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        if sources:
            img = sources[i % len(sources)].resize(SIZE, Image.Resampling.BICUBIC)
        else:
            y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]] / 720.0
            base = rng.uniform(0, 255, (3,))
            img = Image.fromarray(
                np.clip(base + 60 * np.stack([x, y, x * y], -1), 0, 255).astype(np.uint8)
            )
        path = folder / f"photo_{i:03d}.jpg"
        img.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def time_predict(bundle: str, paths: list[Path], provenance: bool) -> float:
    detector = load_detector(bundle, device="cpu")
    detector.predict(paths[:4], provenance=provenance)  # warm-up
    started = time.perf_counter()
    detector.predict(paths, provenance=provenance, batch_size=16)
    return len(paths) / (time.perf_counter() - started)


def api_latency(bundle: str, jpeg: bytes, requests: int, log: Path) -> list[float]:
    port = free_port()
    server = start_server(port, max_batch=32, bundle=bundle, log=log, threads=2)
    try:
        wait_ready(port, server)
        client = RawClient(port, multipart(jpeg))
        for _ in range(3):
            client.post()
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            status = client.post()
            times.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"/v1/predict answered {status}; see {log}")
        return times
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="default")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {machine()}; bundle {args.bundle}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = hd_photos(Path(tmp), args.n)
        for provenance in (True, False):
            rate = time_predict(args.bundle, paths, provenance)
            what = "with provenance" if provenance else "pixels only"
            print(f"predict, {args.n} 1280x720 JPEGs, {what}: {rate:.1f} images/s")
        times = api_latency(args.bundle, paths[0].read_bytes(), args.requests, Path(tmp) / "s")
    ms = sorted(t * 1000 for t in times)
    p90, p99 = ms[int(0.9 * (len(ms) - 1))], ms[int(0.99 * (len(ms) - 1))]
    print(
        f"API /v1/predict, one 1280x720 JPEG per request, {len(ms)} requests: "
        f"p50 {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, p99 {p99:.0f} ms"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
