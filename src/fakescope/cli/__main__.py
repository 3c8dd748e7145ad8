"""`python -m fakescope.cli` runs the command line, as `python -m fakescope` does."""

from fakescope.cli import run

run()
