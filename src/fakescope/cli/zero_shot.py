"""`fakescope zero-shot ...`: the zero-shot kind's commands, which its package owns."""

from __future__ import annotations

import typer

from fakescope.zero_shot.cli import app as zero_shot_app


def register(app: typer.Typer) -> None:
    """`fakescope zero-shot ...`."""
    app.add_typer(zero_shot_app, name="zero-shot")
