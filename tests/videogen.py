"""Write short test videos in-process with PyAV (no fixtures on disk, no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

# (container suffix, codec): what the video tests cover.
FORMATS: list[tuple[str, str]] = [
    (".mp4", "libx264"),
    (".mp4", "mpeg4"),
    (".webm", "libvpx"),
    (".webm", "libvpx-vp9"),
    (".mov", "libx264"),
    (".mov", "mpeg4"),
]


def write_video(
    path: str | Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    fps: int = 10,
) -> Path:
    """Encode HxWx3 uint8 frames (even H and W) as a video; the container follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        if codec in ("libvpx", "libvpx-vp9"):
            stream.options = {"deadline": "realtime", "cpu-used": "8", "b": "2M"}
        elif codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        else:
            stream.bit_rate = 4_000_000
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gradient_frames(n: int, size: tuple[int, int] = (96, 64), seed: int = 0) -> list[np.ndarray]:
    """n (height, width) frames of a colour gradient drifting over time: no face in them."""
    width, height = size
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 200, size=3)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    frames = []
    for index in range(n):
        shift = index / max(n, 1)
        channels = [base[c] * (1 - x - shift * y) + 60 * (x + y) for c in range(3)]
        frames.append(np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8))
    return frames


def cartoon_face(size: int = 240, offset: int = 0) -> np.ndarray:
    """A drawn frontal face (skin oval, brows, eyes, nose, mouth) that OpenCV's frontal-face
    Haar cascade detects; ``offset`` moves it sideways."""
    img = Image.new("RGB", (size, size), (90, 120, 160))
    draw = ImageDraw.Draw(img)
    s = size / 240

    def box(*coords: float) -> list[float]:
        return [c * s + (offset if i % 2 == 0 else 0) for i, c in enumerate(coords)]

    draw.ellipse(box(60, 40, 180, 200), fill=(225, 190, 160))
    draw.rectangle(box(80, 85, 110, 92), fill=(60, 40, 30))
    draw.rectangle(box(130, 85, 160, 92), fill=(60, 40, 30))
    draw.ellipse(box(85, 98, 105, 112), fill=(30, 30, 30))
    draw.ellipse(box(135, 98, 155, 112), fill=(30, 30, 30))
    draw.polygon(
        [tuple(box(120, 110)), tuple(box(110, 145)), tuple(box(130, 145))], fill=(200, 150, 120)
    )
    draw.rectangle(box(95, 160, 145, 170), fill=(120, 40, 40))
    return np.asarray(img)


def face_frames(n: int, size: int = 240) -> list[np.ndarray]:
    """n frames with a drawn face moving slowly from left to right."""
    return [cartoon_face(size, offset=(index * 4) % 24 - 12) for index in range(n)]
