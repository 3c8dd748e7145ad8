"""`python -m fakescope` runs the command line."""

from fakescope.cli import run

run()
