"""Benchmark: where `fakescope predict`'s CPU time goes on the web photos of
bench/predict_vs_seed.py, stage by stage, in one process; and what decoding large JPEGs in
draft mode (`PIL.Image.draft`: libjpeg's DCT scaling, 1/2 to 1/8) would save.

    python bench/predict_stages.py                  # runs/web_photos, built once
    python bench/predict_stages.py --folder PHOTOS
    python bench/predict_stages.py --backend torch onnx   # MTCNN's backends, image by image

Stages are timed in CPU seconds of this process (`time.process_time`), one image at a time
with PyTorch on one thread, as predict's decode workers run them: reading the file,
provenance, decoding, the face route's search (MTCNN on a 192 px copy; with several
``--backend``, each backend's search of the same image in turn, and whether their boxes are
identical), the whole-image
member's native crops, then scoring the prepared arrays in batches of 64 (onnxruntime).

Draft decoding: the default's whole-image member scores 160 px crops at the image's own
resolution, so every image is decoded whole anyway; the parts that downscale (the face
search's 192 px copy) could come from a second, draft-mode decode instead of from the full
one. The script times both on the JPEGs whose longer side is 1,280 px or more.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from _common import REPO
from predict_vs_seed import SUFFIXES, build_folder, cpu_flags

T = TypeVar("T")
DRAFT_MIN_SIDE = 1280


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=None, help="default: runs/web_photos")
    parser.add_argument(
        "--backend", nargs="+", default=["onnx"], choices=["onnx", "torch"], help="MTCNN's"
    )
    args = parser.parse_args()
    folder = args.folder or build_folder(REPO / "runs" / "web_photos")

    import torch
    from PIL import Image

    from fakescope.data.decode import decode_image
    from fakescope.detectors import load_detector
    from fakescope.faces import FaceSelector, _search_copy
    from fakescope.kinds.face_aware.detector import (
        ROUTE_SEARCH_SIZE,
        FaceRoutedPreprocessing,
        route_finder,
    )
    from fakescope.verdict.pipeline import provenance_of

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    print(f"machine: {cpu_flags()}")
    print(f"folder: {folder} ({len(files)} images)")
    detector = load_detector(None, runtime="auto")
    pre = detector.preprocessing
    assert isinstance(pre, FaceRoutedPreprocessing), "the default detector is face-aware"
    torch.set_num_threads(1)
    selectors = {}
    for backend in args.backend:
        finder = route_finder(pre.policy, backend=backend)
        assert getattr(finder, "backend", backend) == backend, f"{backend}: {finder}"
        selectors[backend] = FaceSelector(pre.policy, finder=finder)
    differ = 0
    cpu: dict[str, float] = {}

    def timed(stage: str, fn: Callable[..., T], *args: object) -> T:
        start = time.process_time()
        result = fn(*args)
        cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - start
        return result

    arrays = []
    for path in files:
        data = timed("read", path.read_bytes)
        timed("provenance", provenance_of, data, path.name)
        image, _ = timed("decode", decode_image, data, path.name)
        found = [
            timed(f"face route search ({backend})", selector.largest, [image])[0].face_box
            for backend, selector in selectors.items()
        ]
        boxes = [None if f is None else f.xywh for f in found]  # pixels (not the floats)
        differ += any(b != boxes[0] for b in boxes)
        timed("whole member crops", pre.whole.to_uint8, image)
        arrays.append(pre.to_uint8(image))  # the packed input (searches again: not timed)
    for start in range(0, len(arrays), 64):
        timed("scoring (onnxruntime)", detector.score_prepared, arrays[start : start + 64])
    total = sum(cpu.values())
    print(f"\nCPU per stage, {len(files)} images (runtime {detector.runtime}):")
    for stage, seconds in cpu.items():
        print(
            f"  {stage:24s} {seconds:6.2f} s  {1000 * seconds / len(files):6.1f} ms/image  "
            f"{100 * seconds / total:5.1f} %"
        )
    if len(selectors) > 1:
        print(f"  images whose largest face differs between the backends: {differ}")

    large = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    large = [p for p in large if max(Image.open(p).size) >= DRAFT_MIN_SIDE]
    blobs = [p.read_bytes() for p in large]
    full = [decode_image(b, p.name)[0] for b, p in zip(blobs, large, strict=True)]

    def draft(data: bytes) -> Image.Image:
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", (2 * ROUTE_SEARCH_SIZE, 2 * ROUTE_SEARCH_SIZE))
        img.load()
        return img

    ways: dict[str, Callable[[int], object]] = {
        "full decode": lambda i: decode_image(blobs[i], large[i].name),
        f"draft decode (>= {2 * ROUTE_SEARCH_SIZE} px)": lambda i: draft(blobs[i]),
        "search copy from the full decode": lambda i: _search_copy(full[i], ROUTE_SEARCH_SIZE),
    }
    print(f"\n{len(large)} JPEGs of {DRAFT_MIN_SIDE} px or more, CPU ms per image (best of 3):")
    for name, fn in ways.items():
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for i in range(len(large)):
                fn(i)
            best = min(best, time.process_time() - start)
        print(f"  {name:34s} {1000 * best / max(len(large), 1):6.2f}")


if __name__ == "__main__":
    main()
