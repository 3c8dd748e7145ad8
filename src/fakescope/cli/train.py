"""`fakescope models` and `fakescope train`: what can be trained, and training it."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fakescope.cli.common import console, out


def register(app: typer.Typer) -> None:
    """`fakescope models`, `fakescope train`."""
    app.command("models")(models)
    app.command("train")(train)


def models() -> None:
    """List the registered architectures and whether ImageNet weights are available offline."""
    # heavy: torch and timm
    from fakescope.models import list_models, model_defaults

    table = Table("name", "family", "input", "offline ImageNet weights")
    for name in list_models():
        d = model_defaults(name)
        table.add_row(
            name, d.family, str(d.default_input_size), "yes" if d.has_offline_weights else "-"
        )
    out.print(table)


def _command_line() -> str:
    return "fakescope " + " ".join(shlex.quote(a) for a in sys.argv[1:])


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
    # heavy: torch (training), pydantic and PyYAML (the recipe)
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
    # heavy: numpy
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
