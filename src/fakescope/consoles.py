"""The consoles commands print on: messages on stderr, results on stdout at a width that
suits where stdout goes. Every command line (`fakescope.cli` and the kinds' own commands)
takes its consoles from here, so a results table is as wide in `fakescope evaluate`'s log
as in `fakescope ensemble build`'s."""

from __future__ import annotations

import os
import sys

from rich.console import Console

FILE_WIDTH = 160
"""Columns a results table gets when stdout is a file or a pipe and COLUMNS is not set:
rich's 80 crush a table of 15 sources or 11 metrics into '0.8…' cells in a log."""


def results_console() -> Console:
    """A console for results on stdout: the terminal's width, COLUMNS where set, else
    FILE_WIDTH (output to a file or a pipe is read later, not wrapped by a terminal)."""
    to_file = not os.environ.get("COLUMNS") and not sys.stdout.isatty()
    return Console(width=FILE_WIDTH if to_file else None)


def messages_console() -> Console:
    """A console for messages, warnings and where things were written: stderr."""
    return Console(stderr=True)
