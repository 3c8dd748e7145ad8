"""`fakescope face-aware`: combine a whole-image detector and a face specialist into one
bundle. Thin: it parses the options and calls `bundle.save_face_aware_bundle`. Registered by
the kinds registry (`kinds.COMMANDS`); light to import (`fakescope --help` imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fakescope.consoles import messages_console

console = messages_console()


def register(app: typer.Typer) -> None:
    """`fakescope face-aware`."""
    app.command("face-aware")(face_aware)


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
    from fakescope.kinds.face_aware.bundle import FaceRoute, save_face_aware_bundle

    route = FaceRoute(min_face_fraction, face_weight)  # refused before anything is written
    path = save_face_aware_bundle(out_dir, whole, faces, route)
    console.print(
        f"face-aware bundle: {path} ({whole} on every image; {faces} on faces covering "
        f"{route.min_face_fraction:.0%} of it or more, weight {route.face_weight:.0%})"
    )
