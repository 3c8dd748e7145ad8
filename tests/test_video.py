"""Video scoring: frame sampling over containers and codecs, face crops, aggregation, timeline
plots, bad files, and `fakescope predict` on videos and images in one call."""

from __future__ import annotations

import csv
import io
import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from clirun import fakescope
from PIL import Image
from tiny import tiny_bundle
from videogen import FORMATS, face_frames, gradient_frames, write_video

from fakescope.detectors import Detector
from fakescope.errors import ConfigError, VideoError
from fakescope.faces import mtcnn_available
from fakescope.video import (
    FaceCropper,
    FrameSampler,
    VideoOptions,
    plot_timeline,
    predict_video,
    predict_videos,
    split_video_inputs,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    bundle = tiny_bundle(tmp_path_factory.mktemp("video") / "bundle")
    return Detector.load(bundle, device="cpu")


@pytest.mark.parametrize(("suffix", "codec"), FORMATS, ids=[f"{s[1:]}-{c}" for s, c in FORMATS])
def test_frames_are_sampled_by_time_in_every_container(
    suffix: str, codec: str, tmp_path: Path
) -> None:
    frames = gradient_frames(20)  # 2 s at 10 fps
    video = write_video(tmp_path / f"clip{suffix}", frames, codec=codec, fps=10)
    sampler = FrameSampler(video, fps=4, max_frames=64)
    sampled = list(sampler)
    assert [f.index for f in sampled] == [0, 3, 5, 8, 10, 13, 15, 18]
    assert [round(f.time, 2) for f in sampled] == [0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8]
    assert sampler.duration == pytest.approx(2.0, abs=0.11) and sampler.note is None
    first = np.asarray(sampled[0].image, dtype=np.int16)
    assert first.shape == (64, 96, 3)
    assert np.abs(first - frames[0]).mean() < 8  # the decoded frame is the frame encoded


def test_long_videos_are_sampled_evenly_up_to_max_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "long.mp4", gradient_frames(60), fps=10)  # 6 s
    sampled = list(FrameSampler(video, fps=10, max_frames=4))
    assert [f.index for f in sampled] == [0, 15, 30, 45]


def test_video_verdict_is_the_mean_of_frame_scores(detector: Detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.webm", gradient_frames(30), codec="libvpx-vp9")
    result = predict_video(detector, video, VideoOptions(fps=5))
    scores = np.array([f.p_fake for f in result.frames])
    assert result.frames_sampled == result.frames_scored == 15
    assert result.p_fake == pytest.approx(scores.mean())
    assert result.max_p_fake == pytest.approx(scores.max())
    assert result.fraction_over_threshold == pytest.approx(np.mean(scores >= 0.5))
    assert (result.label, result.unsure) == detector.verdict(result.p_fake)
    assert result.error is None and result.note is None and result.timeline is None

    # Each frame's score is the detector's score of that decoded frame as an image.
    frames = list(FrameSampler(video, fps=5))
    assert detector.predict_images([frames[3].image])[0] == pytest.approx(scores[3], abs=1e-6)


def test_faces_are_cropped_and_scored(detector: Detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "face.mov", face_frames(20), codec="libx264")
    result = predict_video(detector, video, VideoOptions(fps=5, faces=True))
    assert result.frames_scored == result.frames_sampled == 10 and result.note is None
    for frame in result.frames:
        offset = (frame.index * 4) % 24 - 12  # where face_frames drew the oval in this frame
        assert _iou(frame.face, (60 + offset, 40, 120, 160)) > 0.5  # the drawn oval's region

    cropper = FaceCropper(margin=0.25)
    image = Image.fromarray(face_frames(1)[0])
    box = cropper.find(image)
    crop = cropper.crop(image, box)
    assert crop.width == crop.height == min(round(max(box[2:]) * 1.5), 240)
    expected = detector.predict_images([crop])[0]
    frame0 = predict_video(detector, video, VideoOptions(fps=5, faces=True, max_frames=1))
    assert frame0.p_fake == pytest.approx(expected, abs=0.05)  # same crop, after h264


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return w * h / (a[2] * a[3] + b[2] * b[3] - w * h)


def test_frames_without_faces_are_left_out_and_reported(detector: Detector, tmp_path: Path) -> None:
    blank = [np.asarray(Image.fromarray(f).resize((240, 240))) for f in gradient_frames(10)]
    video = write_video(tmp_path / "mixed.mp4", face_frames(10) + blank, fps=10)
    result = predict_video(detector, video, VideoOptions(fps=5, faces=True))
    with_face = [f for f in result.frames if f.face is not None]
    assert result.frames_sampled == 10 and result.frames_scored == len(with_face) == 5
    assert all(f.p_fake is None for f in result.frames if f.face is None)
    assert result.note == "no face in 5 of 10 sampled frames; they are left out of the verdict"
    assert result.p_fake == pytest.approx(np.mean([f.p_fake for f in with_face]))


def test_no_face_anywhere_falls_back_to_whole_frames(detector: Detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "scenery.mp4", gradient_frames(10), fps=10)
    result = predict_video(detector, video, VideoOptions(fps=5, faces=True))
    plain = predict_video(detector, video, VideoOptions(fps=5))
    assert result.note == (
        "no face found in any of the 5 sampled frames; whole frames were scored instead"
    )
    assert result.frames_scored == 5 and result.p_fake == pytest.approx(plain.p_fake)


def test_timeline_plot_is_written(detector: Detector, tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", gradient_frames(20), codec="mpeg4")
    result = predict_video(detector, video, VideoOptions(fps=5), timeline=tmp_path / "t" / "c.png")
    assert result.timeline == str(tmp_path / "t" / "c.png")
    with Image.open(result.timeline) as png:
        assert png.format == "PNG" and png.width > 400
        pixels = np.asarray(png.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # something was drawn

    result.frames[2].p_fake = None  # a frame left out (no face) is drawn as a tick, no crash
    plot_timeline(result, tmp_path / "gap.png", 0.5, (0.4, 0.6))
    assert (tmp_path / "gap.png").stat().st_size > 5000


def _truncated_mp4(folder: Path) -> Path:
    data = write_video(folder / "full.mp4", gradient_frames(20)).read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    return folder / "cut.mp4"


def test_bad_video_files_raise_a_clear_error_naming_the_file(
    detector: Detector, tmp_path: Path
) -> None:
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    (tmp_path / "empty.webm").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(tmp_path / "still.mov", format="PNG")
    bad = [tmp_path / "text.mp4", tmp_path / "empty.webm", _truncated_mp4(tmp_path)]
    for path in bad:
        with pytest.raises(VideoError, match="cannot be opened as a video") as info:
            predict_video(detector, path)
        assert str(path) in str(info.value)
    with pytest.raises(VideoError, match="missing.mp4: does not exist"):
        predict_video(detector, tmp_path / "missing.mp4")

    # In a batch, a bad video becomes an error row and the others are still scored.
    good = write_video(tmp_path / "good.mp4", gradient_frames(10))
    rows = predict_videos(detector, [bad[0], good])
    assert rows[0].error is not None and "cannot be opened as a video" in rows[0].error
    assert rows[0].p_fake is None and rows[1].error is None and rows[1].p_fake is not None


def test_bad_sampling_options_are_rejected() -> None:
    with pytest.raises(ConfigError, match="fps > 0"):
        VideoOptions(fps=0)


def test_split_video_inputs_finds_videos_in_folders(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    write_video(clips / "a.mp4", gradient_frames(4))
    write_video(clips / "nested" / "b.webm", gradient_frames(4), codec="libvpx")
    mixed = tmp_path / "mixed"
    write_video(mixed / "c.mov", gradient_frames(4))
    Image.new("RGB", (8, 8)).save(mixed / "x.png")
    image = tmp_path / "y.png"
    Image.new("RGB", (8, 8)).save(image)
    videos, others = split_video_inputs(
        [str(clips), str(mixed), str(image), str(tmp_path / "gone.mp4")]
    )
    assert videos == [str(clips / "a.mp4"), str(clips / "nested" / "b.webm"), str(mixed / "c.mov")]
    assert others == [str(mixed), str(image), str(tmp_path / "gone.mp4")]


_fakescope = partial(fakescope, check=False)


@pytest.mark.slow
def test_cli_predicts_videos_and_images_in_one_call(
    detector: Detector, toy_folder: Path, tmp_path: Path
) -> None:
    video = write_video(tmp_path / "clip.webm", gradient_frames(20), codec="libvpx")
    faces = write_video(tmp_path / "face.mp4", face_frames(10))
    (tmp_path / "broken.mp4").write_text("nope")
    image = next((toy_folder / "fake").iterdir())
    bundle, timelines = detector.bundle_path, tmp_path / "timelines"
    common = ["--bundle", bundle, "--fps", 4]
    done = _fakescope("predict", image, video, faces, tmp_path / "broken.mp4", *common,
                      "--faces", "--timeline", timelines, "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [Path(r["path"]).name for r in rows] == [image.name, "clip.webm", "face.mp4",
                                                    "broken.mp4"]  # fmt: skip
    assert rows[0]["p_fake"] is not None and "kind" not in rows[0]
    clip, face, broken = rows[1:]
    assert clip["kind"] == "video" and clip["frames_scored"] == 8
    assert "whole frames were scored instead" in clip["note"]
    assert face["frames_scored"] == 4 and face["note"] is None  # 1 s at 4 fps
    assert all(f["face"] is not None for f in face["frames"])
    assert "cannot be opened as a video" in broken["error"] and broken["p_fake"] is None
    assert sorted(p.name for p in timelines.iterdir()) == [
        "clip.timeline.png",
        "face.timeline.png",
    ]
    assert "clip.webm: no face found in any of the 8 sampled frames" in done.stderr
    assert "1 of 4 inputs could not be read" in done.stderr

    done = _fakescope("predict", image, video, *common, "--format", "csv")
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert table[0]["frames_scored"] == "" and table[1]["frames_scored"] == "8"

    done = _fakescope("predict", video, *common)
    assert done.returncode == 0, done.stderr
    assert "(video:8frames" in re.sub(r"[\s│┃|]", "", done.stdout)  # the table folds the path


@pytest.mark.integration
def test_faces_are_found_in_a_video_of_real_face_photos(
    shared_data: Path, detector: Detector, tmp_path: Path
) -> None:
    from fakescope.data.sources import open_source

    source = open_source(shared_data / "faceswap_lfw.zip")
    arrays = [
        np.asarray(Image.open(io.BytesIO(source.read_bytes(it))).convert("RGB"))[:248, :248]
        for it in source.items[:8]
    ]
    video = write_video(tmp_path / "lfw.mp4", [a for a in arrays for _ in range(5)], fps=10)
    result = predict_video(detector, video, VideoOptions(fps=2, faces=True))
    assert result.frames_sampled == 8
    # MTCNN finds the face in all 8 frames; the Haar fallback (no facenet-pytorch) finds most
    # LFW faces, on these 8 frames 6 with OpenCV 4.14 (the others are frames without a face)
    assert result.frames_scored >= (8 if mtcnn_available() else 6)
    for frame in result.frames:
        if frame.face is not None:
            x, y, w, h = frame.face
            assert 50 <= w <= 200 and x >= 0 and x + w <= 248
