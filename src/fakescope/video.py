"""Videos: sample frames (PyAV), optionally crop faces (`fakescope.faces`), score every
sampled frame with a Detector and aggregate one verdict, with a per-frame timeline plot.

Sampling: frames are decoded in order and one is kept every ``1 / fps`` seconds of video
(its presentation time); a video longer than ``max_frames / fps`` seconds is sampled more
sparsely, evenly over its whole duration, so that at most ``max_frames`` frames are scored.

Verdict: ``p_fake`` is the MEAN p(fake) of the scored frames, judged by the one verdict rule
(`fakescope.verdict.rule.verdict`) exactly as one image is: the bundle's threshold and unsure
band, and out of domain when the mean domain score of the scored frames (features and frame
size) is over 1; for a detector made for photographs, unsure as not a photograph when most
scored frames (or face crops) are drawn or graphic (`content`). A video's file provenance
is not read (its frames carry none), so ``p_fake`` is the pixels' own (``p_fake_pixels``).
Reported
beside it: the fraction of scored frames at or over the threshold and the highest frame score,
because a video that is fake in only a few seconds shows up there first.

Faces (``faces=True``): the largest face in each sampled frame is cropped (a square with a
margin around the detection, `fakescope.faces.FaceCropPolicy`) and scored instead of the
whole frame. Faces are found by MTCNN (facenet-pytorch), in batches of frames, including
close-ups where the face fills the frame; OpenCV's Haar cascade is only the fallback when
facenet-pytorch is not installed (``face_finder`` picks one explicitly). Frames without a
face are left out of the verdict (they appear in the timeline as grey ticks) and the
result's ``note`` says how many. If no sampled frame has a face, the whole frames are scored
instead and the note says so: the verdict is then about the scene, not about a face.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from fakescope.data.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fakescope.errors import ConfigError, VideoError
from fakescope.faces import (
    FINDER_KINDS,
    Box,
    FaceCropPolicy,
    FaceFinder,
    FaceSelector,
    crop_face,
    make_face_finder,
    usable_faces,
)
from fakescope.verdict.pipeline import content_of
from fakescope.verdict.prediction import CSV_FIELDS, Prediction, declare, field_specs
from fakescope.verdict.rule import domain_score_of, verdict

if TYPE_CHECKING:
    from fakescope.detectors import Detector

# Frames are searched for faces this many at a time (MTCNN batches frames of one size);
# small enough that the buffered full-size frames stay a few hundred MB at most.
FACE_BATCH = 8


@dataclass(frozen=True)
class VideoOptions:
    """How to sample and what to score."""

    fps: float = 2.0
    max_frames: int = 64
    faces: bool = False
    face_margin: float = 0.25
    face_finder: str = "auto"

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_frames < 1:
            raise ConfigError(f"video sampling needs fps > 0 and max_frames >= 1, got {self}")
        if self.face_finder not in FINDER_KINDS:
            raise ConfigError(
                f"face_finder must be one of {', '.join(FINDER_KINDS)}, got {self.face_finder!r}"
            )


@dataclass
class FrameScore:
    """One sampled frame: its index in the stream, time (s), score and face box (x, y, w, h)."""

    index: int
    time: float
    p_fake: float | None
    face: tuple[int, int, int, int] | None = None


@dataclass
class VideoPrediction(Prediction):
    """The verdict for one video: a `Prediction` (judged by the one rule,
    `fakescope.verdict.rule.verdict`, from the mean p(fake) and the mean domain score of its
    scored frames; a video's file provenance is not read) and how its frames were sampled
    and scored. `error` is set (and the scores None) when it is unreadable."""

    frames_sampled: int = declare("frames sampled from the video", default=0)
    frames_scored: int = declare(
        "frames scored (with faces: the frames that had a face)", default=0
    )
    fraction_over_threshold: float | None = declare(
        "fraction of the scored frames at or over the threshold"
    )
    max_p_fake: float | None = declare("the highest frame p(fake)")
    duration: float | None = declare("the video's duration in seconds", csv=None)
    note: str | None = declare("what was left out and why (frames without a face, ...)")
    timeline: str | None = declare("the per-frame plot (PNG), when asked for")
    frames: list[FrameScore] = declare("every sampled frame's score", csv=None, factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": "video"}

    def verdict(self) -> Prediction:
        """The video's verdict alone (a plain Prediction, without the frames)."""
        return Prediction(**{f.name: getattr(self, f.name) for f in fields(Prediction)})


VIDEO_CSV_FIELDS = tuple(
    spec.name for spec in field_specs(VideoPrediction) if spec.csv and spec.name not in CSV_FIELDS
)
"""The CSV columns a video adds after the Prediction's."""


@dataclass
class SampledFrame:
    index: int
    time: float
    image: Image.Image


class FrameSampler:
    """Iterates over the sampled frames of a video; afterwards `duration`, `decoded` and
    `note` (set when decoding stopped early on damaged data) describe what was read."""

    def __init__(self, path: str | os.PathLike, fps: float = 2.0, max_frames: int = 64) -> None:
        self.path = os.fspath(path)
        self.fps = fps
        self.max_frames = max_frames
        self.duration: float | None = None
        self.decoded = 0
        self.note: str | None = None

    def __iter__(self) -> Iterator[SampledFrame]:
        import av  # PyAV (FFmpeg): loaded only when a video is read

        if not os.path.isfile(self.path):
            raise VideoError(self.path, "does not exist")
        try:
            container = av.open(self.path)
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise VideoError(
                self.path,
                f"cannot be opened as a video ({_reason(exc)}); is it a complete "
                "mp4, webm or mov file?",
            ) from exc
        with container:
            if not container.streams.video:
                raise VideoError(self.path, "has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            self.duration = _duration(container, stream)
            step = 1.0 / self.fps
            if self.duration and self.duration * self.fps > self.max_frames:
                step = self.duration / self.max_frames
            rate = float(stream.average_rate or 25)
            next_time, kept = 0.0, 0
            frames = container.decode(stream)
            while kept < self.max_frames:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    if kept == 0:
                        raise VideoError(
                            self.path, f"its frames cannot be decoded ({_reason(exc)})"
                        ) from exc
                    self.note = f"decoding stopped after {self.decoded} frames ({_reason(exc)})"
                    break
                time = float(frame.time) if frame.time is not None else self.decoded / rate
                self.decoded += 1
                if time + 1e-6 < next_time:
                    continue
                kept += 1
                next_time = (math.floor(time / step + 1e-6) + 1) * step
                yield SampledFrame(self.decoded - 1, time, frame.to_image())
        if kept == 0:
            raise VideoError(self.path, "contains no decodable video frames")


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        import av  # PyAV (FFmpeg): loaded only when a video is read

        return container.duration / av.time_base
    return None


class FaceCropper:
    """The largest face of a frame and the square crop around it that the video path scores:
    a `FaceFinder` (MTCNN unless told otherwise) with a square `FaceCropPolicy`."""

    def __init__(self, margin: float = 0.25, finder: FaceFinder | str = "auto") -> None:
        kind = finder if isinstance(finder, str) else finder.kind
        self.policy = FaceCropPolicy(margin=margin, square=True, finder=kind)
        self.finder = make_face_finder(finder) if isinstance(finder, str) else finder
        self.margin = margin

    def find_all(self, images: Sequence[Image.Image]) -> list[Box | None]:
        """(x, y, w, h) of the largest face in each image (None: no face), in one batch."""
        largest = [usable_faces(boxes, self.policy) for boxes in self.finder.find(images)]
        return [faces[0].xywh if faces else None for faces in largest]

    def find(self, image: Image.Image) -> Box | None:
        """(x, y, w, h) of the largest face in an RGB image, or None."""
        return self.find_all([image])[0]

    def crop(self, image: Image.Image, box: Box) -> Image.Image:
        """A square of side max(w, h) * (1 + 2 * margin) centred on the face, inside the image."""
        return crop_face(image, box, self.policy).image


def video_face_policy(detector: Detector, options: VideoOptions) -> FaceCropPolicy:
    """The face crop policy for a video: the one the detector was trained on (its bundle's),
    else a square crop with the options' margin and finder."""
    if detector.meta.faces:
        return detector.face_policy
    return FaceCropPolicy(margin=options.face_margin, square=True, finder=options.face_finder)


def predict_video(
    detector: Detector,
    path: str | os.PathLike,
    options: VideoOptions | None = None,
    *,
    timeline: str | os.PathLike | None = None,
    batch_size: int = 64,
) -> VideoPrediction:
    """Score the sampled frames of one video; VideoError (naming the file) if it is unreadable.

    ``timeline``: a PNG path for the per-frame plot (see `plot_timeline`).
    """
    options = options or VideoOptions()
    sampler = FrameSampler(path, options.fps, options.max_frames)
    selector = FaceSelector(video_face_policy(detector, options)) if options.faces else None
    frames: list[FrameScore] = []
    whole_sizes: list[tuple[int, int]] = []
    sizes: dict[int, tuple[int, int]] = {}  # position in `frames` -> its face crop's size
    whole: list[np.ndarray] = []  # every frame, preprocessed: small, and the no-face fallback
    crops: dict[int, np.ndarray] = {}  # position in `frames` -> preprocessed face crop
    # what each frame (or its face crop) shows, for a detector made for photographs
    whole_contents: list[str | None] = []
    crop_contents: dict[int, str | None] = {}
    pending: list[SampledFrame] = []  # frames waiting for one batched face search

    def flush() -> None:
        images = [sampled.image for sampled in pending]
        chosen = selector.largest(images) if selector else [None] * len(pending)
        for sampled, selection in zip(pending, chosen, strict=True):
            box = None
            if selection is not None and selection.face_box is not None:
                box = selection.face_box.xywh
                crops[len(frames)] = detector.prepare(selection.image)
                sizes[len(frames)] = selection.image.size
                crop_contents[len(frames)] = content_of(detector, selection.image)
            whole.append(detector.prepare(sampled.image))
            whole_contents.append(content_of(detector, sampled.image))
            whole_sizes.append(sampled.image.size)
            frames.append(FrameScore(sampled.index, round(sampled.time, 3), None, box))
        pending.clear()

    for sampled in sampler:
        pending.append(sampled)
        if len(pending) >= (FACE_BATCH if selector else 1):
            flush()
    flush()

    notes = [sampler.note] if sampler.note else []
    contents: list[str | None] = whole_contents
    if selector and crops:
        chosen = sorted(crops)
        inputs = [crops[i] for i in chosen]
        contents = [crop_contents[i] for i in chosen]
        if len(chosen) < len(frames):
            notes.append(
                f"no face in {len(frames) - len(chosen)} of {len(frames)} sampled frames; "
                "they are left out of the verdict"
            )
    else:
        chosen, inputs, sizes = list(range(len(frames))), whole, {}
        if selector:
            notes.append(
                f"no face found in any of the {len(frames)} sampled frames; "
                "whole frames were scored instead"
            )
    pixels = detector.score_prepared(inputs, batch_size=batch_size)
    scores, max_crop = pixels.p_fake, pixels.max_crop_p_fake
    for position, p in zip(chosen, scores, strict=True):
        frames[position].p_fake = float(p)

    judged = verdict(
        detector,
        os.fspath(path),
        float(np.mean(scores)),
        domain_score=_mean_domain(
            detector, pixels.domain_score, [sizes.get(i, whole_sizes[i]) for i in chosen]
        ),
        max_crop_p_fake=None if max_crop is None else float(max_crop.max()),
        content=_video_content(contents),
    )
    result = VideoPrediction(
        **{f.name: getattr(judged, f.name) for f in fields(Prediction)},
        frames_sampled=len(frames),
        frames_scored=len(chosen),
        fraction_over_threshold=float(np.mean(scores >= detector.threshold)),
        max_p_fake=float(scores.max()),
        duration=None if sampler.duration is None else round(sampler.duration, 3),
        note="; ".join(notes) or None,
        frames=frames,
    )
    if timeline is not None:
        band = detector.meta.unsure_band
        result.timeline = str(plot_timeline(result, timeline, detector.threshold, band))
    return result


def _video_content(contents: Sequence[str | None]) -> str | None:
    """What a video shows: 'graphic' when most of its scored frames (or their face crops)
    are (a screen recording, an animation), else 'photo'; None when not looked at."""
    if not contents or contents[0] is None:
        return None
    graphic = sum(c == "graphic" for c in contents)
    return "graphic" if graphic * 2 > len(contents) else "photo"


def _mean_domain(
    detector: Detector, domain: np.ndarray | None, sizes: Sequence[tuple[int, int]]
) -> float | None:
    """The video's domain score: the mean over its scored frames of each frame's (features
    and size, `fakescope.verdict.rule.domain_score_of`); None when the detector has none."""
    per_frame = [
        domain_score_of(detector, None if domain is None else float(domain[i]), size)
        for i, size in enumerate(sizes)
    ]
    known = [d for d in per_frame if d is not None]
    return float(np.mean(known)) if known and len(known) == len(per_frame) else None


def predict_videos(
    detector: Detector,
    paths: Iterable[str | os.PathLike],
    options: VideoOptions | None = None,
    *,
    timeline_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
) -> list[VideoPrediction]:
    """One result per video; an unreadable video gets an `error` row instead of stopping."""
    results = []
    used: set[str] = set()
    for path in paths:
        timeline = None
        if timeline_dir is not None:
            timeline = Path(timeline_dir) / _unique_name(Path(path).stem, used)
        try:
            results.append(
                predict_video(detector, path, options, timeline=timeline, batch_size=batch_size)
            )
        except VideoError as exc:
            results.append(VideoPrediction(os.fspath(path), None, None, None, error=exc.reason))
    return results


def _unique_name(stem: str, used: set[str]) -> str:
    name, number = f"{stem}.timeline.png", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.timeline.png"
    used.add(name)
    return name


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def split_video_inputs(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """(video files, everything else) from predict's inputs. Video files inside folders count
    too; a folder holding only videos is not passed on (it has no images to report missing)."""
    videos: list[str] = []
    others: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found, has_images = folder_videos(path)
            videos += [v for v in found if v not in videos]
            if has_images or not found:
                others.append(path)
        elif os.path.isfile(path) and is_video(path):
            if path not in videos:
                videos.append(path)
        else:
            others.append(path)
    return videos, others


def folder_videos(folder: str) -> tuple[list[str], bool]:
    videos, has_images = [], False
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith("."):
                continue
            if suffix in VIDEO_EXTENSIONS:
                videos.append(os.path.join(root, name))
            has_images = has_images or suffix in IMAGE_EXTENSIONS
    return videos, has_images


def plot_timeline(
    result: VideoPrediction,
    path: str | os.PathLike,
    threshold: float,
    unsure_band: tuple[float, float] | None = None,
) -> Path:
    """p(fake) per sampled frame over time, with the threshold, the unsure band, the mean
    (the verdict) and grey ticks for frames left out (no face)."""
    # heavy: matplotlib, loaded only when a timeline is drawn
    from matplotlib.figure import Figure

    from fakescope.figures import save_figure  # heavy: imports matplotlib

    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot()
    skipped = [f for f in result.frames if f.p_fake is None]
    times = [f.time for f in result.frames]
    # NaN for a frame left out breaks the line there instead of bridging the gap.
    values = [math.nan if f.p_fake is None else f.p_fake for f in result.frames]
    if unsure_band is not None:
        ax.axhspan(*unsure_band, color="#f2c14e", alpha=0.25, label="unsure band")
    ax.axhline(threshold, color="#c0392b", linestyle="--", linewidth=1, label="threshold")
    ax.plot(times, values, "-o", color="#2c3e50", markersize=3, linewidth=1, label="frame p(fake)")
    if result.p_fake is not None:
        ax.axhline(result.p_fake, color="#2980b9", linewidth=1.5, label="mean (verdict)")
    if skipped:
        ax.plot(
            [f.time for f in skipped],
            [0.02] * len(skipped),
            "|",
            color="grey",
            markersize=10,
            label="no face (left out)",
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("p(fake)")
    over = result.fraction_over_threshold
    ax.set_title(
        f"{Path(result.path).name}: {result.label or 'no verdict'}"
        + ("" if over is None else f", {over:.0%} of {result.frames_scored} frames over threshold"),
        fontsize=10,
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=5, frameon=False)
    return save_figure(fig, path)
