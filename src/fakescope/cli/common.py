"""What several commands share: the two consoles, common options, the unreadable-input exit,
the face-specialist fallback and the start-up with the garbage collector paused.

Imports here stay light (typer, rich, the standard library): every command module imports
this one, so whatever it loads, `fakescope --help` loads too.
"""

from __future__ import annotations

import contextlib
import gc
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from fakescope.consoles import messages_console, results_console

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

console = messages_console()
"""Messages, warnings and where things were written: stderr."""
out = results_console()
"""Results (tables, reports): stdout."""

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


def exit_if_unread(
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


def face_bundle(bundle: Path | None, faces: bool) -> Path | str | None:
    """The bundle to load: the one given; with --faces and none given, the shipped face
    specialist when it is installed, else the default detector (and a note saying so)."""
    if bundle is not None or not faces:
        return bundle
    # heavy: fakescope.bundle loads torch
    from fakescope.bundle import face_detector_or_default

    name, note = face_detector_or_default()
    if note:
        console.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)
    return name


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """A command's heavy imports and detector loading with Python's cyclic garbage collector
    paused, then everything they made frozen (`gc.freeze`: never scanned again) and the
    collector back on. Importing torch, torchvision (with torch._dynamo), timm and
    onnxruntime makes some 400,000 objects that live as long as the process; the collector
    rescanned them again and again while they were being made, and afterwards in every full
    collection (bench/predict_vs_seed.py, docs/NOTEBOOK.md)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
