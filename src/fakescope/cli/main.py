"""The `fakescope` app: its root options, the command modules it registers, the entry point."""

from __future__ import annotations

import gc
import sys
from types import ModuleType
from typing import Annotated

import typer
from rich.text import Text

import fakescope.cli.bundle_ops as bundle_ops
import fakescope.cli.data as data
import fakescope.cli.demo as demo
import fakescope.cli.evaluate as evaluate
import fakescope.cli.predict as predict
import fakescope.cli.provenance as provenance
import fakescope.cli.robustness as robustness
import fakescope.cli.score as score
import fakescope.cli.serve as serve
import fakescope.cli.train as train
from fakescope import __version__, kinds
from fakescope.cli.common import console, out
from fakescope.errors import FakescopeError

app = typer.Typer(
    help="Detect deepfakes and AI-generated images: audit data, train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES: tuple[ModuleType, ...] = (
    train,
    predict,
    provenance,
    evaluate,
    bundle_ops,
    serve,
    demo,
    robustness,
    score,
    data,
)
"""Every module of `fakescope.cli` that holds commands, in the order `fakescope --help` lists
them (groups of subcommands, such as `data`, after the commands). Each has `register(app)`.
The detector kinds' own commands (`fakescope.kinds.COMMANDS`) follow them."""


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


for _module in (*COMMAND_MODULES, *kinds.command_modules()):
    _module.register(app)


def run() -> None:
    """Entry point that turns fakescope errors into one clear line and exit code 2.

    Whatever is alive when the command ends is frozen (`gc.freeze`) before the interpreter
    shuts down: its shutdown runs full garbage collections over every object torch and
    onnxruntime made, which took 2 s of a 20 s `fakescope predict`, after its output was
    written (docs/NOTEBOOK.md)."""
    try:
        app()
    except FakescopeError as exc:
        # Text, not markup: a path like "photos[1].jpg" must print as it is; soft_wrap: no
        # line breaks inside a path, whatever the width of the terminal or of the log.
        message = Text.assemble(("error: ", "bold red"), str(exc))
        console.print(message, highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        gc.freeze()
