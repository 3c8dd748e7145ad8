"""Folders of labelled videos evaluated one row per video (`fakescope.video.predict_video`'s
verdict of each), and the faces and videos sections of metrics.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.sources import Item, Source, normalize_label
from fakescope.detectors import Detector
from fakescope.errors import SourceError, VideoError
from fakescope.evaluation.scored import ScoredSet
from fakescope.faces import FaceSelector
from fakescope.video import VideoOptions, folder_videos, predict_video

SourceSpec = str | os.PathLike


def face_summary(scored: ScoredSet, faces: FaceSelector) -> dict[str, Any]:
    """metrics.json["faces"]: the crop policy and how many images had a face to score."""
    predictions = scored.predictions or []
    with_face = sum(1 for p in predictions if p.face_box is not None)
    return {
        "policy": faces.policy.to_dict(),
        "images": len(predictions),
        "with_face": with_face,
        "without_face": len(predictions) - with_face,
        "finder_note": faces.finder_note,
    }


def is_video_folder(spec: SourceSpec) -> bool:
    """A folder holding videos and no images: evaluated one row per video."""

    if not Path(spec).is_dir():
        return False
    videos, has_images = folder_videos(os.fspath(spec))
    return bool(videos) and not has_images


class VideoFolder(Source):
    """A folder of labelled videos, for the metrics' source fields (videos are not images:
    they are read by `fakescope.video`, never through `read_bytes`)."""

    def read_bytes(self, item: Item) -> bytes:
        raise SourceError(f"{item.path}: a video; read it with fakescope.video")


def labelled_videos(folder: SourceSpec) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(path, label) of each video under `folder`, labelled by the first folder on its way
    named like a class (real/, fake/, ...); (path, reason) for videos outside such folders."""

    root = Path(folder)
    found: list[tuple[str, int]] = []
    unlabelled: list[tuple[str, str]] = []
    for path in folder_videos(os.fspath(folder))[0]:
        parts = Path(path).relative_to(root).parts[:-1]
        labels = [label for part in parts if (label := normalize_label(part)) is not None]
        if labels:
            found.append((path, labels[0]))
        else:
            unlabelled.append((path, "not inside a real/ or fake/ folder: no label"))
    if not found:
        raise SourceError(f"{folder}: no videos inside real/ and fake/ folders to evaluate")
    return found, unlabelled


def score_videos(
    detector: Detector, folder: SourceSpec, options: VideoOptions, *, progress: bool = True
) -> ScoredSet:
    """One verdict per labelled video (`predict_video`'s mean over its sampled frames or
    faces, judged by `fakescope.verdict.rule.verdict`); unreadable videos are skipped with the
    reason. Each prediction's face_note carries the video's note; `videos` its details."""
    found, skipped = labelled_videos(folder)
    paths, labels, predictions, details = [], [], [], []
    for path, label in tqdm(found, desc="videos", unit="video", disable=not progress):
        try:
            video = predict_video(detector, path, options)
        except VideoError as exc:
            skipped.append((path, exc.reason))
            continue
        assert video.p_fake is not None  # a readable video always has a score
        prediction = video.verdict()  # judged by the one rule; without the frames
        prediction.face_note = video.note
        if options.faces:
            prediction.faces_found = sum(1 for f in video.frames if f.face is not None)
        paths.append(path)
        labels.append(label)
        predictions.append(prediction)
        details.append(video)
    return ScoredSet(
        paths,
        np.array(labels, dtype=int),
        np.array([p.p_fake for p in predictions], dtype=np.float64),
        skipped,
        predictions=predictions,
        videos=details,
    )


def video_summary(scored: ScoredSet, options: VideoOptions) -> dict[str, Any]:
    """metrics.json["videos"]: how videos were sampled and scored, and per-video details."""
    videos = scored.videos or []
    return {
        "n": len(videos),
        "fps": options.fps,
        "max_frames": options.max_frames,
        "faces": options.faces,
        "verdict": "mean p(fake) of each video's scored frames (faces, with faces)",
        "rows": [
            {
                "path": v.path,
                "frames_sampled": v.frames_sampled,
                "frames_scored": v.frames_scored,
                "fraction_over_threshold": v.fraction_over_threshold,
                "max_p_fake": v.max_p_fake,
                "note": v.note,
            }
            for v in videos
        ],
    }
