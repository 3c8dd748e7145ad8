"""The commands that combine bundles into one: `ensemble` and `face-aware`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakescope.cli.common import console, out
from fakescope.evaluation.tables import fmt


def register(app: typer.Typer) -> None:
    """`fakescope ensemble`, `fakescope face-aware`."""
    app.command("ensemble")(ensemble)
    app.command("face-aware")(face_aware)


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
    from fakescope.ensemble import build_ensemble

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
    # heavy: torch
    from fakescope.bundle import FaceRoute, save_face_aware_bundle

    route = FaceRoute(min_face_fraction, face_weight)  # refused before anything is written
    path = save_face_aware_bundle(out_dir, whole, faces, route)
    console.print(
        f"face-aware bundle: {path} ({whole} on every image; {faces} on faces covering "
        f"{route.min_face_fraction:.0%} of it or more, weight {route.face_weight:.0%})"
    )
