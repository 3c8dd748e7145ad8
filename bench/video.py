"""Benchmark: video scoring speed, with and without --faces, with PyTorch and ONNX Runtime.

Builds a 10 s, 25 fps, 640x360 H.264 clip from LFW face photos (from faceswap_lfw.zip, each
shown for one second, drifting across a grey background), then scores EVERY frame
(fps=25, so decoding, face detection and the model all run 250 times) and reports frames/s,
plus the wall time at the default sampling (2 frames per second of video). Faces are found
by MTCNN (``--face-finder auto``) or, for comparison, OpenCV's Haar cascade (``haar``).
As `fakescope predict VIDEO` does, whole frames are scored by the default detector and faces
by the shipped face specialist, unless ``--bundle`` names one detector for both.
    python bench/video.py [--seconds 10] [--face-finder auto|mtcnn|haar] [--bundle NAME]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import DATA, machine, peak_rss_mb
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from videogen import write_video  # noqa: E402  (the tests' PyAV encoder)

from fakescope.bundle import face_detector_or_default  # noqa: E402
from fakescope.data.sources import open_source  # noqa: E402
from fakescope.detectors import Detector  # noqa: E402
from fakescope.video import VideoOptions, predict_video  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 25


def face_clip(path: Path, seconds: int) -> Path:
    lfw = DATA / "faceswap_lfw.zip"
    if not lfw.is_file():
        sys.exit(f"{lfw} not found: set FAKESCOPE_DATA_DIR to the folder holding it")
    source = open_source(lfw)
    faces = [
        Image.open(io.BytesIO(source.read_bytes(it))).convert("RGB")
        for it in source.items[:: len(source.items) // seconds][:seconds]
    ]
    frames = []
    for index in range(seconds * FPS):
        canvas = Image.new("RGB", (WIDTH, HEIGHT), (110, 110, 110))
        x = 40 + (index % FPS) * 12  # the face drifts right during its second
        canvas.paste(faces[index // FPS], (x, (HEIGHT - 250) // 2))
        frames.append(np.asarray(canvas))
    return write_video(path, frames, codec="libx264", fps=FPS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--face-finder", default="auto", choices=["auto", "mtcnn", "haar"])
    parser.add_argument("--bundle", help="one detector for every row (default: as the CLI)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = face_clip(Path(tmp) / "faces.mp4", args.seconds)
        total = args.seconds * FPS
        print(f"clip: {args.seconds} s, {FPS} fps, {WIDTH}x{HEIGHT} H.264 ({total} frames); "
              f"face finder: {args.face_finder}")  # fmt: skip
        for runtime in ("torch", "onnx"):
            for faces in (False, True):
                name = args.bundle or (face_detector_or_default()[0] if faces else "default")
                detector = Detector.load(name, device="cpu", runtime=runtime)
                predict_video(detector, clip, VideoOptions(fps=2, max_frames=2))  # warm-up
                finder = args.face_finder
                every = VideoOptions(fps=FPS, max_frames=total, faces=faces, face_finder=finder)
                started = time.perf_counter()
                result = predict_video(detector, clip, every)
                elapsed = time.perf_counter() - started
                default = VideoOptions(fps=2, faces=faces, face_finder=finder)
                started = time.perf_counter()
                sampled = predict_video(detector, clip, default)
                sampled_s = time.perf_counter() - started
                found = sum(f.face is not None for f in result.frames)
                with_face = f", {found} with a face" if faces else ""
                print(
                    f"{runtime:5s} {name:8s} faces={'on ' if faces else 'off'}  every frame: "
                    f"{result.frames_sampled / elapsed:6.1f} frames/s "
                    f"({result.frames_scored} scored{with_face})   default 2 fps: "
                    f"{sampled.frames_sampled} frames in {sampled_s:.2f} s "
                    f"({args.seconds / sampled_s:.1f}x real time)"
                )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
