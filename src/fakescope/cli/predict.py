"""`fakescope predict`: verdicts on images and videos, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from fakescope.atomic import atomic_write_text
from fakescope.cli.common import (
    BundleOpt,
    Runtime,
    RuntimeOpt,
    StrictOpt,
    console,
    exit_if_unread,
    face_bundle,
    loading,
    out,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fakescope.inference import Prediction
    from fakescope.video import VideoPrediction


def register(app: typer.Typer) -> None:
    """`fakescope predict`."""
    app.command("predict")(predict)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def predict(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or archives.")],
    bundle: BundleOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write results here.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    runtime: RuntimeOpt = Runtime.auto,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Score the largest face of each image (and of each video frame) instead of "
            "the whole picture; without --bundle, the shipped face specialist if installed.",
        ),
    ] = False,
    all_faces: Annotated[
        bool, typer.Option("--all-faces", help="Images: score every face, one row each.")
    ] = False,
    fps: Annotated[float, typer.Option(help="Videos: frames sampled per second.")] = 2.0,
    max_frames: Annotated[int, typer.Option(help="Videos: at most this many frames.")] = 64,
    timeline: Annotated[
        Path | None, typer.Option("--timeline", help="Videos: write per-frame plots (PNG) here.")
    ] = None,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance/--no-provenance",
            help="Read Content Credentials, metadata and watermarks and combine them with "
            "the pixel score (p_fake_pixels keeps the pixels' own).",
        ),
    ] = True,
    strict: StrictOpt = False,
) -> None:
    """p(fake), verdict and unsure flag per image or video; unreadable files get an error.

    A video (mp4, webm, mov, avi, mkv) gets the mean p(fake) of its sampled frames and the
    fraction of frames over the threshold; --timeline DIR plots them over time. Exit status
    1 when no input could be read (--strict: when any could not).
    """
    with loading():
        # heavy: torch
        from fakescope.detectors import load_detector
        from fakescope.video import VideoOptions, predict_videos, split_video_inputs

        faces = faces or all_faces
        options = VideoOptions(fps=fps, max_frames=max_frames, faces=faces)  # checked first
        detector = load_detector(face_bundle(bundle, faces), runtime=runtime.value)
    videos, images = split_video_inputs(paths)
    results: list[Prediction | VideoPrediction] = []
    if images:
        results += detector.predict(
            images,
            batch_size=batch_size,
            progress=len(images) > 1 or Path(images[0]).is_dir(),
            provenance=provenance,
            faces=faces,
            all_faces=all_faces,
        )
    results += predict_videos(
        detector, videos, options, timeline_dir=timeline, batch_size=batch_size
    )
    _write_predictions(results, fmt, out_file, with_video_fields=bool(videos))
    _print_prediction_notes(results)
    exit_if_unread([(r.path, r.error) for r in results if r.error], len(results), strict)


def _write_predictions(
    results: Sequence[Prediction | VideoPrediction],
    fmt: OutputFormat,
    out_file: Path | None,
    *,
    with_video_fields: bool,
) -> None:
    """Results as a table (JSON in a file), JSON or CSV, on stdout or in `out_file`."""
    rows = [r.to_dict() for r in results]
    if fmt is OutputFormat.table and not out_file:
        out.print(_prediction_table(results))
        return
    if fmt is OutputFormat.csv:
        # heavy: torch
        from fakescope.inference import CSV_FIELDS, Prediction
        from fakescope.video import VIDEO_CSV_FIELDS

        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer,
            fieldnames=list(CSV_FIELDS) + (list(VIDEO_CSV_FIELDS) if with_video_fields else []),
            extrasaction="ignore",
        )
        writer.writeheader()
        writer.writerows(
            r.to_row() if isinstance(r, Prediction) else {**r.to_dict(), "unsure": _int(r.unsure)}
            for r in results
        )
        text = buffer.getvalue()
    else:
        text = json.dumps(rows, indent=2)
    if out_file:
        atomic_write_text(out_file, text)
        console.print(f"wrote {len(rows)} results to {out_file}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _int(flag: bool | None) -> int | None:
    return None if flag is None else int(flag)


def _prediction_table(results: Sequence[Prediction | VideoPrediction]) -> Table:
    # heavy: torch
    from fakescope.inference import OUT_OF_DOMAIN, Prediction, evidence_text
    from fakescope.video import VideoPrediction

    table = Table("p_fake", "verdict", "evidence / error")
    table.add_column("path", overflow="fold")
    for r in results:
        p_text, notes = "-", r.error or ""
        if r.p_fake is not None:
            p_text = f"{r.p_fake:.4f}"
        out_of_domain = isinstance(r, Prediction) and r.unsure_reason == OUT_OF_DOMAIN
        verdict = _verdict_text(r.label, r.unsure, out_of_domain)
        if isinstance(r, Prediction) and r.error is None:
            if r.p_fake_pixels is not None and abs(r.p_fake_pixels - (r.p_fake or 0.0)) > 5e-5:
                p_text += f" (pixels {r.p_fake_pixels:.4f})"
            claims = [evidence_text(e) for e in r.evidence]
            notes = "; ".join(claims + ([r.disagreement] if r.disagreement else []))
        path = _video_path_text(r) if isinstance(r, VideoPrediction) and not r.error else r.path
        if isinstance(r, Prediction) and r.face_box is not None:
            box = r.face_box
            path += f" (face at x={box['x']} y={box['y']} {box['w']}x{box['h']})"
        elif isinstance(r, Prediction) and r.face_note:
            path += f" ({r.face_note})"
        table.add_row(p_text, verdict, notes, path)
    return table


def _verdict_text(label: str | None, unsure: bool | None, out_of_domain: bool) -> Text:
    """The verdict as a person should read it: "unsure" is the headline when the detector is
    unsure, with the side of the threshold it leans to (or "out of domain") in small print
    beneath; never "fake" or "real" with a caveat beside it."""
    if label is None:
        return Text("-")
    if not unsure:
        return Text(label, style="bold red" if label == "fake" else "bold green")
    small = "out of domain" if out_of_domain else f"leans {label}"
    return Text.assemble(("unsure", "bold yellow"), "\n", (small, "dim"))


def _print_prediction_notes(results: Sequence[Prediction | VideoPrediction]) -> None:
    """Video notes and timelines."""
    # heavy: torch
    from fakescope.video import VideoPrediction

    for r in results:
        if isinstance(r, VideoPrediction) and r.note:
            console.print(f"[yellow]{r.path}: {r.note}[/]", highlight=False, soft_wrap=True)
        if isinstance(r, VideoPrediction) and r.timeline:
            console.print(f"timeline: {r.timeline}", highlight=False, soft_wrap=True)


def _video_path_text(r: VideoPrediction) -> str:
    return (
        f"{r.path} (video: {r.frames_scored} frames, "
        f"{r.fraction_over_threshold:.0%} over threshold, max {r.max_p_fake:.4f})"
    )
