"""The `fakescope` command line, one module per command group.

`main` builds the app and registers the commands of every module in `main.COMMAND_MODULES`;
`common` holds what several commands share (consoles, options, the unreadable-input exit).
Each command parses its options, calls library functions and prints: adding a command is
adding a module with a `register(app)` function and naming it in `COMMAND_MODULES`.
"""

from fakescope.cli.main import app, run

__all__ = ["app", "run"]
