"""The `fakescope` command run in a child process, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys


def fakescope(
    *args: object, check: bool = True, timeout: float = 300, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m fakescope ARGS`; with `check`, a non-zero exit fails the test with
    both outputs. `columns` sets the terminal width rich renders tables for."""
    env = None if columns is None else {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.run(
        [sys.executable, "-m", "fakescope", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc
