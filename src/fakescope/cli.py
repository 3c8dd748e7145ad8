"""The `fakescope` command: parses options, calls library functions, prints results."""

from __future__ import annotations

import csv
import io
import json
import shlex
import sys
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fakescope import __version__
from fakescope.atomic import atomic_write_text
from fakescope.errors import FakescopeError
from fakescope.kinds.zero_shot.cli import app as zero_shot_app

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fakescope.inference import Prediction
    from fakescope.video import VideoPrediction

app = typer.Typer(
    help="Detect deepfakes and AI-generated images: audit data, train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and split data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(zero_shot_app, name="zero-shot")
console = Console(stderr=True)
out = Console()

BundleOpt = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        "-b",
        help="Detector bundle folder, or a shipped detector by name (default, scratch); "
        "default: the shipped default detector.",
    ),
]


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Exit with status 1 when any input could not be read (default: only when none could).",
    ),
]
FIRST_REASONS = 3
"""How many unreadable inputs are named on stderr before the exit."""


def _exit_if_unread(
    failures: Sequence[tuple[str, str]], total: int, strict: bool, *, unnamed: int = 0
) -> None:
    """Print how many inputs could not be read and the first reasons on stderr; exit 1 when
    none could be read (or, with --strict, when any could not), so a script can tell.
    `unnamed`: more unreadable inputs whose reasons were already printed."""
    n_failed = len(failures) + unnamed
    if n_failed:
        console.print(
            f"[yellow]{n_failed} of {total} inputs could not be read (see 'error')[/]",
            highlight=False,
        )
        for path, reason in failures[:FIRST_REASONS]:
            console.print(Text(f"  {path}: {reason}"), highlight=False, soft_wrap=True)
        if len(failures) > FIRST_REASONS:
            console.print(f"  ... and {len(failures) - FIRST_REASONS} more", highlight=False)
    if total == 0 or n_failed == total or (strict and n_failed):
        if total == 0:
            console.print("[red]no input found[/]", highlight=False)
        raise typer.Exit(1)


class Runtime(str, Enum):
    auto = "auto"
    torch = "torch"
    onnx = "onnx"


RUNTIME_HELP = (
    "auto (default): onnxruntime where the bundle's ONNX export matches PyTorch (exported "
    "once to the cache), else torch; or torch, or onnx."
)
RuntimeOpt = Annotated[Runtime, typer.Option(help=RUNTIME_HELP)]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _command_line() -> str:
    return "fakescope " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _version(value: bool) -> None:
    if value:
        out.print(f"fakescope {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """fakescope command line."""


# -- data ----------------------------------------------------------------------------------
@data_app.command("audit")
def data_audit(
    source: Annotated[str, typer.Argument(help="Folder, .zip/.tar archive or CSV manifest.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report here.")
    ] = None,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Counts, sizes, formats, JPEG qualities, duplicates, leaks and unreadable files."""
    from fakescope.data.audit import audit_source, print_audit
    from fakescope.data.sources import open_source

    report = audit_source(open_source(source), near_threshold=near_threshold, progress=not quiet)
    print_audit(report, out)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
        console.print(f"full report: {json_out}")


@data_app.command("split")
def data_split(
    source: Annotated[str, typer.Argument(help="Folder, archive or CSV to split.")],
    out_path: Annotated[Path, typer.Option("--out", help="Manifest CSV to write.")],
    val: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    folds: Annotated[int | None, typer.Option(help="K-fold instead of train/val/test.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Stratified, group-aware train/val/test (or k-fold) manifest; duplicates stay together."""
    from collections import Counter

    from fakescope.data.sources import open_source
    from fakescope.data.split_assignment import split_source

    items = split_source(
        open_source(source),
        out=out_path,
        val=val,
        test=test,
        folds=folds,
        seed=seed,
        near_threshold=near_threshold,
        progress=not quiet,
    )
    table = Table("split", "real", "fake", "total")
    counts = Counter((it.split, it.label) for it in items)
    for split in sorted({it.split for it in items}, key=str):
        real, fake = counts[(split, 0)], counts[(split, 1)]
        table.add_row(str(split), str(real), str(fake), str(real + fake))
    out.print(table)
    console.print(f"manifest: {out_path}")


@data_app.command("sources")
def data_sources(
    sources_files: Annotated[
        list[str],
        typer.Argument(help="Sources files (YAML), or shipped ones by name: modern, real."),
    ],
    clones: Annotated[
        Path, typer.Option("--clones", help="Folder of clones: DIR/owner+name or DIR/owner/name.")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Manifest CSV to write.")],
    card: Annotated[
        Path | None, typer.Option(help="Dataset card (markdown); default: beside --out, .md.")
    ] = None,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    allow_commit_mismatch: Annotated[
        bool, typer.Option(help="Build from clones at other commits (a warning on the card).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Labelled manifest from local clones of the repositories a sources file lists, without
    exact or near duplicates, and its dataset card."""
    from collections import Counter

    from fakescope.data.repo_sources import build_manifest

    result = build_manifest(
        sources_files,
        clones,
        out_path,
        card=card,
        near_threshold=near_threshold,
        allow_commit_mismatch=allow_commit_mismatch,
        progress=not quiet,
    )
    for warning in result.warnings:
        console.print(f"[yellow]{warning}[/]", highlight=False, soft_wrap=True)
    table = Table("source", "generator", "images", "removed")
    kept = Counter((it.source or "", it.generator or "") for it in result.items)
    removed = Counter((r.source, r.generator or "") for r in result.removed)
    for key in sorted(set(kept) | set(removed)):
        table.add_row(key[0], key[1] or "(real)", str(kept[key]), str(removed[key]))
    out.print(table)
    for reason, n in Counter(r.reason for r in result.removed).most_common():
        console.print(f"removed {n}: {reason}", highlight=False)
    console.print(f"manifest: {out_path} ({len(result.items)} images)", highlight=False)


# -- models --------------------------------------------------------------------------------
@app.command("models")
def models() -> None:
    """List the registered architectures and whether ImageNet weights are available offline."""
    from fakescope.models import list_models, model_defaults

    table = Table("name", "family", "input", "offline ImageNet weights")
    for name in list_models():
        d = model_defaults(name)
        table.add_row(
            name, d.family, str(d.default_input_size), "yes" if d.has_offline_weights else "-"
        )
    out.print(table)


# -- train ---------------------------------------------------------------------------------
@app.command("train")
def train(
    run_dir: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    source: Annotated[
        str | None,
        typer.Argument(
            help="Folder, archive or CSV (a split column is used); none when the recipe "
            "lists data.sources."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML recipe.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key: train.epochs=3")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    folds: Annotated[int | None, typer.Option(help="Train one bundle per fold.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where a multi-source recipe's relative paths start (default: "
            "$FAKESCOPE_DATA_DIR, else the current folder)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a detector and write RUN/bundle, RUN/metrics.json, checkpoints and TensorBoard logs."""
    from fakescope.config import load_recipe
    from fakescope.training.distributed import is_main_process
    from fakescope.training.trainer import TrainingInterrupted, train_folds
    from fakescope.training.trainer import train as run_training

    recipe = (
        None if (resume and config is None and not overrides) else load_recipe(config, overrides)
    )
    try:
        if folds:
            summary = train_folds(
                source,
                recipe,
                run_dir,
                folds,
                resume=resume,
                progress=not quiet,
                command=_command_line(),
                data_dir=data_dir,
            )
            if not is_main_process():  # under torchrun, process 0 reports
                return
            table = Table("metric", "mean", "std")
            for key in ("accuracy", "f1", "roc_auc", "average_precision"):
                table.add_row(key, f"{summary[key]['mean']:.4f}", f"{summary[key]['std']:.4f}")
            out.print(table)
            console.print(f"fold bundles and summary.json in {run_dir}")
            return
        result = run_training(
            source,
            recipe,
            run_dir,
            resume=resume,
            progress=not quiet,
            command=_command_line(),
            data_dir=data_dir,
        )
    except TrainingInterrupted as exc:
        if not is_main_process():
            raise typer.Exit(130) from None
        again = " ".join(
            [*([source] if source else []), "--out", str(run_dir), "--resume"]
            + (["--data-dir", str(data_dir)] if data_dir else [])
        )
        console.print(f"[yellow]{exc}[/]\nresume with: fakescope train {again}")
        raise typer.Exit(130) from None
    if not is_main_process():
        return
    _print_metrics(result.val_metrics, title="validation")
    if result.test_metrics:
        _print_metrics(result.test_metrics, title="test")
    console.print(
        f"bundle: {result.bundle_dir}\nmetrics: {run_dir / 'metrics.json'}\n"
        f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
    )


def _print_metrics(metrics: Mapping[str, Any], title: str) -> None:
    table = Table("metric", "value", title=title)
    from fakescope.evaluation.results import HEADLINE_METRICS

    for key in ("n", "threshold", *HEADLINE_METRICS):
        value = metrics.get(key)
        table.add_row(
            key,
            "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value)),
        )
    cm = metrics.get("confusion_matrix", {}).get("rows_true_cols_pred")
    if cm:
        table.add_row("confusion (true real)", f"pred real {cm[0][0]} / pred fake {cm[0][1]}")
        table.add_row("confusion (true fake)", f"pred real {cm[1][0]} / pred fake {cm[1][1]}")
    out.print(table)


# -- predict / evaluate --------------------------------------------------------------------
@app.command("predict")
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
    from fakescope.detectors import load_detector
    from fakescope.video import VideoOptions, predict_videos, split_video_inputs

    faces = faces or all_faces
    options = VideoOptions(fps=fps, max_frames=max_frames, faces=faces)  # checked before loading
    detector = load_detector(_face_bundle(bundle, faces), runtime=runtime.value)
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
    _exit_if_unread([(r.path, r.error) for r in results if r.error], len(results), strict)


def _face_bundle(bundle: Path | None, faces: bool) -> Path | str | None:
    """The bundle to load: the one given; with --faces and none given, the shipped face
    specialist when it is installed, else the default detector (and a note saying so)."""
    if bundle is not None or not faces:
        return bundle
    from fakescope.bundle import face_detector_or_default

    name, note = face_detector_or_default()
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)
    return name


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
    from fakescope.video import VideoPrediction

    for r in results:
        if isinstance(r, VideoPrediction) and r.note:
            console.print(f"[yellow]{r.path}: {r.note}[/]", highlight=False, soft_wrap=True)
        if isinstance(r, VideoPrediction) and r.timeline:
            console.print(f"timeline: {r.timeline}", highlight=False, soft_wrap=True)


class ProvenanceFormat(str, Enum):
    table = "table"
    json = "json"


@app.command("provenance")
def provenance(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or archives.")],
    fmt: Annotated[ProvenanceFormat, typer.Option("--format", "-f")] = ProvenanceFormat.table,
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust",
            help="PEM file of extra C2PA trust anchors (repeatable); the official C2PA "
            "trust lists are always used.",
        ),
    ] = None,
    watermark: Annotated[
        bool, typer.Option(help="Look for the Stable Diffusion watermark (lossless files).")
    ] = True,
    strict: StrictOpt = False,
) -> None:
    """Content Credentials (C2PA), XMP/IPTC labels, generator metadata, watermarks and
    camera EXIF per file: what each says and how far it can be trusted. Offline: remote
    manifests are reported, never fetched. Files without provenance are listed with none
    (most real images carry none: that is no evidence of anything). Exit status 1 when no
    file could be read (--strict: when any could not)."""
    from fakescope.provenance import load_trust_anchors, read_paths

    try:
        anchors = load_trust_anchors(list(trust or []))
    except (OSError, ValueError) as exc:
        raise FakescopeError(f"--trust: {exc}") from None
    results = read_paths(paths, trust_anchors=anchors, watermark=watermark)
    if fmt is ProvenanceFormat.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        table = Table()
        table.add_column("path", overflow="fold", ratio=2)
        for name in ("signal", "claim", "trust"):
            table.add_column(name, no_wrap=True)
        table.add_column("by", ratio=1)
        table.add_column("detail", ratio=3)
        for r in results:
            if r.error:
                table.add_row(r.path, "-", "-", "-", "-", f"error: {r.error}")
            elif not r.evidence:
                note = "; ".join(r.notes) or "no provenance found"
                table.add_row(r.path, "-", "-", "-", "-", note)
            for e in r.evidence:
                table.add_row(r.path, e.signal, e.claim, e.trust or "-", e.by or "-", e.detail)
        out.print(table)
    _exit_if_unread([(r.path, r.error) for r in results if r.error], len(results), strict)


def _video_path_text(r: VideoPrediction) -> str:
    return (
        f"{r.path} (video: {r.frames_scored} frames, "
        f"{r.fraction_over_threshold:.0%} over threshold, max {r.max_p_fake:.4f})"
    )


class ThresholdPolicyOpt(str, Enum):
    bundle = "bundle"
    max_f1 = "max_f1"
    youden = "youden"
    target_fpr = "target_fpr"


@app.command("evaluate")
def evaluate(
    sources: Annotated[
        list[str],
        typer.Argument(metavar="SOURCE", help="Labelled folders, archives or CSVs (one row each)."),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json, predictions.csv, report.html.")
    ],
    bundle: BundleOpt = None,
    split: Annotated[
        str | None, typer.Option(help="Only rows of this split (CSV manifests).")
    ] = None,
    val: Annotated[
        str | None,
        typer.Option("--val", help="Validation source: choose the threshold there, not on test."),
    ] = None,
    val_split: Annotated[
        str | None, typer.Option(help="Split of --val to use (default: 'val' if it has one).")
    ] = None,
    threshold_policy: Annotated[
        ThresholdPolicyOpt | None,
        typer.Option(help="bundle (default without --val) or how to choose it on --val."),
    ] = None,
    target_fpr: Annotated[
        float | None, typer.Option(help="FPR for --threshold-policy target_fpr (0.01).")
    ] = None,
    gallery: Annotated[
        int, typer.Option(help="Grad-CAM gallery: images per row (TP, FP, TN, FN, mistakes).")
    ] = 4,
    no_explain: Annotated[
        bool, typer.Option("--no-explain", help="No Grad-CAM gallery in the report.")
    ] = False,
    tsne_points: Annotated[
        int, typer.Option(help="t-SNE map of this many images (a random subsample).")
    ] = 3000,
    no_tsne: Annotated[bool, typer.Option("--no-tsne", help="No t-SNE map in the report.")] = False,
    compare_bundle: Annotated[
        Path | None,
        typer.Option("--compare", help="A second bundle: its t-SNE map beside this one's."),
    ] = None,
    no_provenance: Annotated[
        bool,
        typer.Option(
            "--no-provenance",
            help="Judge the pixels alone: ignore Content Credentials, metadata, watermarks.",
        ),
    ] = False,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Score each image's (or video frame's) largest face, cropped by the "
            "bundle's face crop policy; without --bundle, the face specialist if installed.",
        ),
    ] = False,
    fps: Annotated[float, typer.Option(help="Videos: frames sampled per second.")] = 2.0,
    max_frames: Annotated[int, typer.Option(help="Videos: at most this many frames.")] = 64,
    runtime: RuntimeOpt = Runtime.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Metrics with 95% CIs, coverage and risk, plots, Grad-CAM gallery, t-SNE map and
    report.html. Verdicts are predict's: pixels, domain and provenance.

    A folder of labelled videos (real/ and fake/ holding mp4, webm, mov...) is evaluated one
    row per video: its verdict is the mean p(fake) of its sampled frames (faces with --faces).
    """
    from fakescope.detectors import load_detector
    from fakescope.evaluation.evaluate import evaluate as run_evaluation
    from fakescope.evaluation.report_sections import report_hooks
    from fakescope.video import VideoOptions

    video_options = VideoOptions(fps=fps, max_frames=max_frames, faces=faces)
    detector = load_detector(_face_bundle(bundle, faces), runtime=runtime.value)
    hooks = report_hooks(
        gallery=0 if no_explain else gallery,
        tsne_points=0 if no_tsne else tsne_points,
        compare=compare_bundle,
    )
    metrics = run_evaluation(
        detector,
        sources,
        out_dir,
        split=split,
        progress=not quiet,
        val_source=val,
        val_split=val_split,
        threshold_policy=threshold_policy.value if threshold_policy else None,
        target_fpr=target_fpr,
        report_hooks=hooks,
        provenance=not no_provenance,
        faces=faces,
        video_options=video_options,
    )
    _print_evaluation(metrics, title=f"evaluation of {', '.join(sources)}")
    if metrics.get("faces"):
        found = metrics["faces"]
        console.print(
            f"faces: {found['with_face']} of {found['images']} images had a face to score; "
            "the others were scored whole",
            highlight=False,
        )
    if metrics.get("videos"):
        console.print(f"{metrics['videos']['n']} videos, one verdict each", highlight=False)
    if metrics["unreadable"]:
        console.print(f"[yellow]{len(metrics['unreadable'])} unreadable images skipped[/]")
    description = metrics["threshold_source"]["description"]
    console.print(f"threshold {metrics['threshold']:.4f} from {description}")
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.html'}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in metrics["timings"].items())
    console.print(f"[dim]seconds per stage: {stages}[/]", highlight=False)


def _print_evaluation(metrics: Mapping[str, Any], title: str) -> None:
    from fakescope.evaluation.report import GROUP_COLUMNS, fmt, metrics_table_rows

    table = Table("metric", "value", "95% CI", title=title)
    table.add_row("n", str(metrics["n"]), "")
    table.add_row("threshold", fmt(metrics["threshold"]), "")
    for label, value, interval in metrics_table_rows(metrics):
        table.add_row(label, fmt(value), interval)
    cm = metrics["confusion_matrix"]["rows_true_cols_pred"]
    table.add_row("confusion (true real)", f"pred real {cm[0][0]} / pred fake {cm[0][1]}", "")
    table.add_row("confusion (true fake)", f"pred real {cm[1][0]} / pred fake {cm[1][1]}", "")
    out.print(table)
    per_group = metrics.get("per_group")
    if per_group:
        groups = Table(per_group["by"], *(label for _, label in GROUP_COLUMNS))
        for row in [*per_group["rows"], per_group["mean"]]:
            groups.add_row(row["group"], *(fmt(row.get(k)) for k, _ in GROUP_COLUMNS))
        out.print(groups)
    _print_selective(metrics)
    oracle = metrics.get("oracle") or {}
    if oracle.get("accuracy") is not None:
        console.print(
            f"[dim]oracle (threshold tuned on this test data, not a valid estimate): "
            f"accuracy {oracle['accuracy']:.4f} at {oracle['best_threshold_on_test']:.4f}[/]"
        )


def _mistakes_table(by: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    """Confident mistakes in both directions, one row per source or generator."""
    table = Table(by, "reals", "called fake (sure)", "fakes", "called real (sure)")
    table.title = f"confident mistakes by {by}"
    for r in rows:
        accused = (
            f"{r['real_called_fake']} ({r['real_called_fake_share']:.1%})" if r["n_real"] else "-"
        )
        missed = (
            f"{r['fake_called_real']} ({r['fake_called_real_share']:.1%})" if r["n_fake"] else "-"
        )
        table.add_row(r["group"], str(r["n_real"]), accused, str(r["n_fake"]), missed)
    return table


def _print_selective(metrics: Mapping[str, Any]) -> None:
    """Coverage, risk and AURC overall; the provenance evidence when there was any."""
    from fakescope.evaluation.report import fmt

    selective = metrics.get("selective")
    if selective:
        o = selective["overall"]
        why = f"{o['unsure_band']} in the unsure band"
        if selective["domain_model"]:
            why += f", {o['out_of_domain']} out of domain"
        console.print(
            f"coverage {fmt(o['coverage'])} (answered confidently; {o['unsure']} of {o['n']} "
            f"unsure: {why})\n"
            f"risk     {fmt(o['risk'])} (errors among confident answers); confident wrong "
            f"{fmt(o['confident_wrong'])} of all images, reals called fake confidently "
            f"{fmt(o['real_called_fake_confidently'])} of reals, fakes called real "
            f"confidently {fmt(o.get('fake_called_real_confidently'))} of fakes\n"
            f"AURC     {fmt(o['aurc'])} (area under the risk-coverage curve; lower is better)",
            highlight=False,
        )
        for by, rows in selective.get("mistakes", {}).items():
            out.print(_mistakes_table(by, rows))
    provenance = metrics.get("provenance")
    if provenance and provenance["images_with_evidence"]:
        counts = ", ".join(f"{k} {v}" for k, v in provenance["counts"].items())
        console.print(
            f"provenance: {provenance['images_with_evidence']} images with evidence ({counts}); "
            f"{provenance['verdicts_changed']} verdicts changed by it",
            highlight=False,
        )


@app.command("calibrate")
def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to calibrate (updated in place).")],
    val_source: Annotated[str, typer.Argument(help="Labelled validation folder, archive or CSV.")],
    split: Annotated[
        str | None, typer.Option(help="Split of VAL_SOURCE (default: 'val' if it has one).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Fit the temperature on validation data and store it in the bundle (re-signed)."""
    from fakescope.evaluation.calibration import calibrate_bundle, check_rewritable

    check_rewritable(bundle, val_source)  # the library's refusal, before anything loads
    from fakescope.evaluation.report import fmt

    result = calibrate_bundle(bundle, val_source, split=split, progress=not quiet)
    table = Table("", "before", "after", title=f"calibration on {result['n']} images")
    for key in ("temperature", "threshold", "ece", "log_loss", "accuracy"):
        table.add_row(key, fmt(result["before"][key]), fmt(result["after"][key]))
    out.print(table)
    console.print(f"bundle updated: {bundle} (decisions unchanged; probabilities recalibrated)")


@app.command("unsure-band")
def unsure_band(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (updated in place).")],
    val_source: Annotated[
        str, typer.Argument(help="Labelled validation data: folder, archive, CSV or manifest.")
    ],
    max_real_called_fake: Annotated[
        float, typer.Option(help="Share of real images that may be confidently called fake.")
    ] = 0.05,
    max_fake_called_real: Annotated[
        float, typer.Option(help="Share of fakes that may be confidently called real.")
    ] = 0.10,
    pooled: Annotated[
        bool, typer.Option("--pooled", help="Pool the sources instead of holding each to it.")
    ] = False,
    by_generator: Annotated[
        bool,
        typer.Option(
            "--by-generator",
            help="Hold every generator's fakes (the manifest's generator column) to the "
            "fakes' budget, instead of every source's.",
        ),
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="Split of VAL_SOURCE (default: 'val' if it has one).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Widen the unsure band until, on validation data, each source stays within a budget of
    confident mistakes (real images called fake above all); store it in the bundle."""
    from fakescope.evaluation.calibration import check_rewritable
    from fakescope.evaluation.report import fmt
    from fakescope.evaluation.unsure_band import check_budgets, fit_bundle_band

    try:
        check_budgets(max_real_called_fake, max_fake_called_real)
    except ValueError as exc:
        raise typer.BadParameter(f"--{str(exc).replace('_', '-')}") from exc
    check_rewritable(bundle, val_source, command="unsure-band")
    fit = fit_bundle_band(
        bundle,
        val_source,
        split=split,
        max_real_called_fake=max_real_called_fake,
        max_fake_called_real=max_fake_called_real,
        by_source=not pooled,
        by_generator=by_generator,
        progress=not quiet,
    )
    table = Table(
        "images",
        "n",
        "reals called fake",
        "fakes called real",
        "answered confidently",
        title=f"unsure band [{fit['band'][0]:.3f}, {fit['band'][1]:.3f}], threshold "
        f"{fit['threshold']:.3f}",
    )
    rows = [
        *fit["sources"].items(),
        *((f"generator {name}", r) for name, r in fit.get("generators", {}).items()),
        ("all (fitted)", fit["fitted"]),
        ("all (cross-fit estimate)", fit["cross_fit"]),
    ]
    for name, r in rows:
        table.add_row(
            name,
            str(r["n"]),
            fmt(r["real_called_fake"]),
            fmt(r["fake_called_real"]),
            fmt(r["coverage"]),
        )
    out.print(table)
    console.print(
        f"bundle updated: {bundle} (labels unchanged; p(fake) in the band is now 'unsure')"
    )


@app.command("domain")
def domain(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (updated in place).")],
    source: Annotated[
        str, typer.Argument(help="Its training data: folder, archive, CSV or RUN/manifest.csv.")
    ],
    max_images: Annotated[int, typer.Option(help="At most this many training images.")] = 6000,
    quantile: Annotated[
        float, typer.Option(help="Share of validation images that count as in-domain.")
    ] = 0.95,
    dims: Annotated[int, typer.Option(help="PCA dimensions of the feature space.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Describe the bundle's training data in its feature space, so that predictions say
    'unsure: out of domain' for images unlike anything it was trained on."""
    from fakescope.evaluation.domain import fit_bundle_domain

    if not 0.5 <= quantile < 1.0:
        raise typer.BadParameter("--quantile must be in [0.5, 1)")
    fit = fit_bundle_domain(
        bundle, source, max_images=max_images, quantile=quantile, dims=dims, progress=not quiet
    )
    console.print(
        f"domain model: {fit.dims} dimensions, fitted on {fit.n_train} images; threshold "
        f"{fit.threshold:.3f} keeps {fit.in_domain_val:.1%} of {fit.n_val} validation images "
        f"in-domain\nbundle updated: {fit.bundle}"
    )
    for name, share in fit.in_domain_by_source.items():
        console.print(f"  {name}: {share:.1%} of its validation images in-domain")


@app.command("compare")
def compare(
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH", help="BUNDLE... SOURCE: bundles, then one labelled source."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for metrics.json, report.html.")],
    split: Annotated[
        str | None, typer.Option(help="Only rows of this split (CSV manifests).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Compare bundles on the same data: one metrics table, overlaid ROC and PR curves."""
    from fakescope.evaluation.evaluate import compare_models
    from fakescope.evaluation.report import fmt

    if len(paths) < 2:
        raise typer.BadParameter("give at least one BUNDLE and then the SOURCE")
    result = compare_models(paths[:-1], paths[-1], out_dir, split=split, progress=not quiet)
    keys = ("n", "threshold", "accuracy", "f1", "roc_auc", "average_precision", "eer", "ece")
    table = Table("model", *keys, title=f"comparison on {paths[-1]}")
    for model in result["models"]:
        table.add_row(model["name"], *(fmt(model["metrics"][k]) for k in keys))
    out.print(table)
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.html'}")


@app.command("explain")
def explain(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or archives.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Grad-CAM PNGs.")],
    bundle: BundleOpt = None,
    layers: Annotated[
        list[str] | None, typer.Option("--layers", help="Layer(s) for (multi-layer) Grad-CAM.")
    ] = None,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Explain the largest face of each image (the crop `predict --faces` scores); "
            "without --bundle, the shipped face specialist if installed.",
        ),
    ] = False,
    strict: StrictOpt = False,
) -> None:
    """Grad-CAM overlays: where in each image the detector found evidence of 'fake'. Exit
    status 1 when no image could be read (--strict: when any could not)."""
    from fakescope.data.sources import collect_inputs
    from fakescope.detectors import load_detector
    from fakescope.evaluation.explain import explain_files
    from fakescope.faces import FaceSelector

    detector = load_detector(_face_bundle(bundle, faces), runtime="torch")
    detector.require("explain", "Grad-CAM")  # before any image is read
    images, problems = collect_inputs(paths)
    selector = FaceSelector(detector.face_policy) if faces else None
    written = explain_files(detector, images, out_dir, layers or None, faces=selector)
    console.print(f"wrote {len(written)} Grad-CAM overlays to {out_dir}")
    # explain_files warns with the reason for each image it skips; count them here.
    skipped = len(images) - len(written)
    _exit_if_unread(problems, len(images) + len(problems), strict, unnamed=skipped)


class ExporterOpt(str, Enum):
    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


@app.command("export")
def export(
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The .onnx file to write (BUNDLE/model.onnx: used by "
            "--runtime onnx with that bundle).",
        ),
    ],
    bundle: BundleOpt = None,
    check_images: Annotated[
        list[str] | None,
        typer.Option(
            "--check-images",
            help="Images, folders or archives for the parity check (default: synthetic images).",
        ),
    ] = None,
    check_n: Annotated[int, typer.Option(help="Images used by the parity check.")] = 128,
    tolerance: Annotated[float, typer.Option(help="Max |p_torch - p_onnx| allowed.")] = 1e-4,
    exporter: Annotated[
        ExporterOpt, typer.Option(help="auto: torch's dynamo exporter, else TorchScript.")
    ] = ExporterOpt.auto,
) -> None:
    """Export a detector to ONNX (dynamic batch, bundle metadata inside), parity-checked."""
    from fakescope.onnx_export import export_onnx

    result = export_onnx(
        bundle,
        out_path,
        exporter=exporter.value,
        check_images=check_images,
        check_n=check_n,
        tolerance=tolerance,
    )
    parity = result.parity
    console.print(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB, {result.exporter} "
        f"exporter, opset {result.opset}) in {result.seconds:.1f} s\n"
        f"parity on {parity.n} {parity.source} images: max |Δp| {parity.max_abs_diff_p:.2e}, "
        f"max |Δlogit| {parity.max_abs_diff_logit:.2e} (tolerance {parity.tolerance:.0e})",
        soft_wrap=True,
    )


@app.command("info")
def info(bundle: BundleOpt = None) -> None:
    """Verify a bundle and print its model card."""
    from rich.markdown import Markdown

    from fakescope.bundle import CARD_FILE, read_meta, resolve_bundle_path

    path = resolve_bundle_path(bundle)
    read_meta(path)  # verifies a single or an ensemble bundle
    out.print(Markdown((Path(path) / CARD_FILE).read_text()))


@app.command("serve")
def serve(
    bundle: BundleOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="FAKESCOPE_API_KEY", help="Require this key on /v1/* (X-API-Key)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Allow this browser origin.")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Micro-batch size; 1 disables batching.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits for images other requests decode.")
    ] = 2.0,
    max_bytes: Annotated[int, typer.Option(help="Largest accepted image file, bytes.")] = 10
    * 1024
    * 1024,
    max_files: Annotated[int, typer.Option(help="Most images per request.")] = 16,
    max_pixels: Annotated[int, typer.Option(help="Largest accepted image, pixels.")] = 25_000_000,
    threads: Annotated[int, typer.Option(help="Torch intra-op threads.")] = 1,
    access_log: Annotated[bool, typer.Option(help="JSON access log on stderr.")] = True,
    runtime: RuntimeOpt = Runtime.auto,
    faces_bundle: Annotated[
        str | None,
        typer.Option(
            help="Detector for faces=true requests (a bundle or shipped name; 'same': the "
            "served one). Default: the face specialist when serving the default detector, "
            "else the served one."
        ),
    ] = None,
) -> None:
    """Serve the detector over HTTP (FastAPI + uvicorn): API, docs at /docs, web page at /."""
    from fakescope.serve.server import run_server
    from fakescope.serve.settings import ServeSettings

    settings = ServeSettings(
        max_file_bytes=max_bytes,
        max_request_bytes=max_bytes * max_files + 1024 * 1024,
        max_files=max_files,
        max_pixels=max_pixels,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        api_key=api_key,
        cors_origins=tuple(cors_origin or ()),
    )
    run_server(
        bundle,
        settings,
        host=host,
        port=port,
        threads=threads,
        access_log=access_log,
        runtime=runtime.value,
        faces_bundle=faces_bundle,
    )


@app.command("demo")
def demo(
    data: Annotated[
        str | None,
        typer.Option(help="CIFAKE folder or zip (else $FAKESCOPE_DATA or ../shared/data)."),
    ] = None,
    run_dir: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/demo"),
) -> None:
    """The main job: audit, train the quick recipe, evaluate, on CIFAKE."""
    from fakescope.demo import run_demo

    run_demo(data, run_dir, console=out)


# -- robustness / ensemble -----------------------------------------------------------------
@app.command("robustness")
def robustness(
    source: Annotated[str, typer.Argument(help="Labelled folder, archive or CSV.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for robustness.json, plots, report.html.")
    ],
    bundles: Annotated[
        list[Path] | None,
        typer.Option("--bundle", "-b", help="Bundle (repeat to compare; default: shipped)."),
    ] = None,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", help="More bundles for a before/after table.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only rows of this split (CSVs).")] = None,
    max_images: Annotated[
        int | None, typer.Option(help="Stratified, seeded subsample of this many images.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsample, noise and PGD.")] = 0,
    corruptions: Annotated[
        str | None, typer.Option(help="Comma list, 'all' (default) or 'none'.")
    ] = None,
    severities: Annotated[
        list[str] | None, typer.Option(help="NAME=V1,V2 (repeatable), e.g. jpeg=90,50.")
    ] = None,
    attacks: Annotated[str | None, typer.Option(help="fgsm,pgd (default: none).")] = None,
    eps: Annotated[str | None, typer.Option(help="L-inf budgets, e.g. 0.5/255,2/255,0.08.")] = None,
    steps: Annotated[int, typer.Option(help="PGD steps.")] = 10,
    step_size: Annotated[
        str | None, typer.Option(help="PGD step (default 2.5*eps/steps), e.g. 0.5/255.")
    ] = None,
    examples: Annotated[int, typer.Option(help="Attack example images per attack.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 128,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Corrupt and score each image's largest face (the first bundle's face crop "
            "policy) instead of the whole image.",
        ),
    ] = False,
    runtime: RuntimeOpt = Runtime.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Accuracy and ROC-AUC under corruptions (and FGSM/PGD attacks); table, plots, report."""
    from fakescope.detectors import load_detector
    from fakescope.evaluation.evaluate import model_names
    from fakescope.robustness.report import source_table_rows, table_rows
    from fakescope.robustness.sweep import (
        DEFAULT_EPS,
        RobustnessConfig,
        parse_list,
        parse_number,
        parse_severities,
    )
    from fakescope.robustness.sweep import robustness as run_robustness

    paths: list[Path | str] = [*(bundles or []), *(compare or [])]
    if faces and not paths:
        paths = [str(_face_bundle(None, faces))]
    detectors = [load_detector(p, runtime=runtime.value) for p in paths]
    config = RobustnessConfig(
        severities=parse_severities(corruptions, severities),
        attacks=tuple(parse_list(attacks)),
        eps=tuple(parse_number(e) for e in parse_list(eps)) if eps else DEFAULT_EPS,
        steps=steps,
        step_size=parse_number(step_size) if step_size else None,
        max_images=max_images,
        seed=seed,
        split=split,
        batch_size=batch_size,
        examples=examples,
        faces=detectors[0].face_policy if faces and detectors else None,
    )
    detectors = detectors or [load_detector(runtime=runtime.value)]
    names = model_names(paths) if paths else ["default"]
    result = run_robustness(detectors, source, out_dir, config, names=names, progress=not quiet)
    from fakescope.evaluation.report import fmt

    all_rows = [*result["rows"], *result["attacks"]["rows"]]
    headers, body = table_rows(result, all_rows)
    table = Table(*headers, title=f"robustness on {result['n']} images of {source}")
    for row in body:
        table.add_row(*(fmt(v) for v in row))
    out.print(table)
    for model in result["models"]:
        by_source = source_table_rows(result, model["name"])
        if by_source is not None:
            per_source = Table(*by_source[0], title=f"{model['name']}: accuracy by source")
            for row in by_source[1]:
                per_source.add_row(*(fmt(v) for v in row))
            out.print(per_source)
    console.print(f"results: {out_dir / 'robustness.json'}\nreport:  {out_dir / 'report.html'}")


class EnsembleRule(str, Enum):
    accuracy = "accuracy"
    auc = "auc"
    equal = "equal"
    stacking = "stacking"


@app.command("ensemble")
def ensemble(
    bundles: Annotated[
        list[str],
        typer.Argument(metavar="BUNDLE", help="Member bundles: folders or shipped names."),
    ],
    val: Annotated[str, typer.Option("--val", help="Labelled validation source.")],
    out_dir: Annotated[Path, typer.Option("--out", help="The ensemble bundle folder to write.")],
    rule: Annotated[
        EnsembleRule, typer.Option(help="Weights from val accuracy, ROC-AUC, equal, or stacking.")
    ] = EnsembleRule.accuracy,
    val_split: Annotated[
        str | None, typer.Option(help="Split of --val (default: 'val' if it has one).")
    ] = None,
    unsure_margin: Annotated[float, typer.Option(help="Half-width of the unsure band.")] = 0.1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Combine bundles into one ensemble bundle (predict, evaluate, robustness, serve take it)."""
    from fakescope.evaluation.report import fmt
    from fakescope.kinds.ensemble import build_ensemble

    result = build_ensemble(
        bundles,
        val,
        out_dir,
        rule=rule.value,
        val_split=val_split,
        unsure_margin=unsure_margin,
        progress=not quiet,
    )
    keys = ("weight", "threshold", "accuracy", "roc_auc", "f1")
    table = Table("model", *keys, title=f"ensemble ({rule.value}) vs members on validation")
    for row in result["rows"]:
        table.add_row(row["model"], *(fmt(row.get(k)) for k in keys))
    out.print(table)
    if result["stacking"]:
        console.print(
            f"stacking: intercept {result['stacking']['intercept']:.4f}, "
            f"coefficients {', '.join(f'{c:.4f}' for c in result['stacking']['coef'])}"
        )
    console.print(f"[dim]{result['note']}[/]")
    console.print(f"ensemble bundle: {out_dir}\ntable: {out_dir / 'ensemble.json'}")


@app.command("face-aware")
def face_aware(
    whole: Annotated[
        str, typer.Argument(help="The whole-image detector: a bundle folder or shipped name.")
    ],
    faces: Annotated[
        str, typer.Argument(help="The face specialist: a bundle folder or shipped name.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="The face-aware bundle folder to write.")],
    min_face_fraction: Annotated[
        float,
        typer.Option(help="The specialist joins when the largest face covers this share."),
    ] = 0.5,
    face_weight: Annotated[
        float, typer.Option(help="The specialist's share of the averaged logit.")
    ] = 0.5,
) -> None:
    """Combine a whole-image detector and a face specialist into one face-aware bundle: the
    first scores every image; where a face fills the picture the second scores that face and
    the two are averaged (predict, evaluate, robustness, serve and videos take it)."""
    from fakescope.kinds.face_aware import FaceRoute, save_face_aware_bundle

    route = FaceRoute(min_face_fraction, face_weight)  # refused before anything is written
    path = save_face_aware_bundle(out_dir, whole, faces, route)
    console.print(
        f"face-aware bundle: {path} ({whole} on every image; {faces} on faces covering "
        f"{route.min_face_fraction:.0%} of it or more, weight {route.face_weight:.0%})"
    )


@app.command("score")
def score(
    sources: Annotated[
        list[str],
        typer.Argument(metavar="SOURCE", help="Image files, folders, archives or CSV manifests."),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    bundle: BundleOpt = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster: 'auto' or HOST:PORT; default: a local Ray instance."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch and actor call.")] = 256,
    workers: Annotated[
        int | None, typer.Option(help="Scoring actors (default: one per CPU of the cluster).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score very large image collections on Ray into Parquet (path, p_fake, label, unsure,
    error)."""
    from fakescope.batch_score import score_to_parquet

    summary = score_to_parquet(
        sources,
        out_file,
        bundle=bundle,
        ray_address=ray_address,
        batch_size=batch_size,
        workers=workers,
        progress=not quiet,
    )
    console.print(
        f"scored {summary.n} images in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.0f} img/s): {summary.out}"
    )
    if summary.n_errors:
        console.print(f"[yellow]{summary.n_errors} inputs could not be read (see 'error')[/]")


def run() -> None:
    """Entry point that turns fakescope errors into one clear line and exit code 2."""
    try:
        app()
    except FakescopeError as exc:
        # Text, not markup: a path like "photos[1].jpg" must print as it is; soft_wrap: no
        # line breaks inside a path, whatever the width of the terminal or of the log.
        message = Text.assemble(("error: ", "bold red"), str(exc))
        console.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
