"""`fakescope ensemble`: combine bundles into one ensemble bundle. Thin: it parses the options
and calls `build.build_ensemble`. Registered by the kinds registry (`kinds.COMMANDS`); light
to import (`fakescope --help` imports it)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakescope.consoles import messages_console, results_console
from fakescope.evaluation.tables import fmt

console = messages_console()
out = results_console()


def register(app: typer.Typer) -> None:
    """`fakescope ensemble`."""
    app.command("ensemble")(ensemble)


class EnsembleRule(str, Enum):
    accuracy = "accuracy"
    auc = "auc"
    equal = "equal"
    stacking = "stacking"


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
    # heavy: torch
    from fakescope.kinds.ensemble.build import build_ensemble

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
