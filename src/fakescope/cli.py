"""The `fakescope` command: parses options, calls library functions, prints results."""

from __future__ import annotations

import csv
import io
import json
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fakescope import __version__
from fakescope.errors import FakescopeError

app = typer.Typer(
    help="Detect deepfakes and AI-generated images: audit data, train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and split data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)
out = Console()

BundleOpt = Annotated[
    Path | None,
    typer.Option("--bundle", "-b", help="Detector bundle folder; default: the shipped detector."),
]


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
    from fakescope.data.split import split_source

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
    for split in sorted({it.split for it in items}):
        real, fake = counts[(split, 0)], counts[(split, 1)]
        table.add_row(str(split), str(real), str(fake), str(real + fake))
    out.print(table)
    console.print(f"manifest: {out_path}")


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
    source: Annotated[str, typer.Argument(help="Folder, archive or CSV (a split column is used).")],
    run_dir: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML recipe.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key: train.epochs=3")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    folds: Annotated[int | None, typer.Option(help="Train one bundle per fold.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a detector and write RUN/bundle, RUN/metrics.json, checkpoints and TensorBoard logs."""
    from fakescope.config import load_recipe
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
            )
            table = Table("metric", "mean", "std")
            for key in ("accuracy", "f1", "roc_auc", "average_precision"):
                table.add_row(key, f"{summary[key]['mean']:.4f}", f"{summary[key]['std']:.4f}")
            out.print(table)
            console.print(f"fold bundles and summary.json in {run_dir}")
            return
        result = run_training(
            source, recipe, run_dir, resume=resume, progress=not quiet, command=_command_line()
        )
    except TrainingInterrupted as exc:
        console.print(
            f"[yellow]{exc}[/]\nresume with: fakescope train {source} --out {run_dir} --resume"
        )
        raise typer.Exit(130) from None
    _print_metrics(result.val_metrics, title="validation")
    if result.test_metrics:
        _print_metrics(result.test_metrics, title="test")
    console.print(
        f"bundle: {result.bundle_dir}\nmetrics: {run_dir / 'metrics.json'}\n"
        f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}"
    )


def _print_metrics(metrics: dict, title: str) -> None:
    table = Table("metric", "value", title=title)
    for key in (
        "n",
        "threshold",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
    ):
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
) -> None:
    """p(fake), verdict and unsure flag per image; unreadable files get an error, not a crash."""
    from fakescope.inference import Detector

    detector = Detector.load(bundle)
    results = detector.predict(
        paths, batch_size=batch_size, progress=len(paths) > 1 or Path(paths[0]).is_dir()
    )
    rows = [r.to_dict() for r in results]
    if fmt is OutputFormat.json:
        text = json.dumps(rows, indent=2)
    elif fmt is OutputFormat.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["path", "p_fake", "label", "unsure", "error"])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        text = ""
        table = Table("p_fake", "label", "unsure", "error")
        table.add_column("path", overflow="fold")
        for r in results:
            table.add_row(
                "-" if r.p_fake is None else f"{r.p_fake:.4f}",
                r.label or "-",
                "-" if r.unsure is None else ("yes" if r.unsure else "no"),
                r.error or "",
                r.path,
            )
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text if fmt is not OutputFormat.table else json.dumps(rows, indent=2))
        console.print(f"wrote {len(rows)} results to {out_file}")
    elif fmt is OutputFormat.table:
        out.print(table)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    errors = sum(1 for r in results if r.error)
    if errors:
        console.print(
            f"[yellow]{errors} of {len(results)} inputs could not be read (see 'error')[/]"
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Metrics with 95% CIs, plots, Grad-CAM gallery, t-SNE map and report.html."""
    from fakescope.evaluation.evaluate import evaluate as run_evaluation
    from fakescope.evaluation.report_sections import report_hooks
    from fakescope.inference import Detector

    detector = Detector.load(bundle)
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
    )
    _print_evaluation(metrics, title=f"evaluation of {', '.join(sources)}")
    if metrics["unreadable"]:
        console.print(f"[yellow]{len(metrics['unreadable'])} unreadable images skipped[/]")
    description = metrics["threshold_source"]["description"]
    console.print(f"threshold {metrics['threshold']:.4f} from {description}")
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.html'}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in metrics["timings"].items())
    console.print(f"[dim]seconds per stage: {stages}[/]", highlight=False)


def _print_evaluation(metrics: dict, title: str) -> None:
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
    oracle = metrics.get("oracle") or {}
    if oracle.get("accuracy") is not None:
        console.print(
            f"[dim]oracle (threshold tuned on this test data, not a valid estimate): "
            f"accuracy {oracle['accuracy']:.4f} at {oracle['best_threshold_on_test']:.4f}[/]"
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
    from fakescope.evaluation.calibration import calibrate_bundle
    from fakescope.evaluation.report import fmt

    result = calibrate_bundle(bundle, val_source, split=split, progress=not quiet)
    table = Table("", "before", "after", title=f"calibration on {result['n']} images")
    for key in ("temperature", "threshold", "ece", "log_loss", "accuracy"):
        table.add_row(key, fmt(result["before"][key]), fmt(result["after"][key]))
    out.print(table)
    console.print(f"bundle updated: {bundle} (decisions unchanged; probabilities recalibrated)")


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
) -> None:
    """Grad-CAM overlays: where in each image the detector found evidence of 'fake'."""
    from fakescope.data.sources import collect_inputs
    from fakescope.evaluation.explain import explain_files
    from fakescope.inference import Detector

    images, problems = collect_inputs(paths)
    for path, reason in problems:
        console.print(f"[yellow]{path}: {reason}[/]")
    written = explain_files(Detector.load(bundle), images, out_dir, layers or None)
    console.print(f"wrote {len(written)} Grad-CAM overlays to {out_dir}")


@app.command("info")
def info(bundle: BundleOpt = None) -> None:
    """Verify a bundle and print its model card."""
    from rich.markdown import Markdown

    from fakescope.bundle import CARD_FILE, default_bundle_path, read_meta

    path = bundle or default_bundle_path()
    read_meta(path)
    out.print(Markdown((Path(path) / CARD_FILE).read_text()))


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


def run() -> None:
    """Entry point that turns fakescope errors into one clear line and exit code 2."""
    try:
        app()
    except FakescopeError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    run()
