"""`fakescope demo`: the main job on CIFAKE (audit, train the quick recipe, evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fakescope.cli.common import out
from fakescope.demo import run_demo


def register(app: typer.Typer) -> None:
    """`fakescope demo`."""
    app.command("demo")(demo)


def demo(
    data: Annotated[
        str | None,
        typer.Option(help="CIFAKE folder or zip (else $FAKESCOPE_DATA or ../shared/data)."),
    ] = None,
    run_dir: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/demo"),
) -> None:
    """The main job: audit, train the quick recipe, evaluate, on CIFAKE."""
    run_demo(data, run_dir, console=out)
