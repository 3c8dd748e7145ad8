"""The command line's registry: every module of `fakescope.cli` registers its commands, the
app holds exactly those, `fakescope --help` lists them all, and loading the command line
loads no heavy library (so `--help` stays fast)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from types import ModuleType

import typer
from clirun import fakescope
from typer.main import get_group

from fakescope import cli, kinds
from fakescope.cli.main import COMMAND_MODULES, app

NOT_COMMAND_MODULES = {"__main__", "common", "main"}
# the generic commands, then the detector kinds' own; groups (data, zero-shot) after commands
COMMANDS = [
    "models", "train", "predict", "provenance", "evaluate", "calibrate", "unsure-band",
    "domain", "compare", "explain", "export", "info", "serve", "demo", "robustness",
    "score", "ensemble", "face-aware", "data", "zero-shot",
]  # fmt: skip


def _registers(module: ModuleType) -> list[str]:
    """The names `module.register` adds to an app of its own."""
    fresh = typer.Typer()
    module.register(fresh)
    commands = [info.name for info in fresh.registered_commands]
    groups = [info.name for info in fresh.registered_groups]
    return [name for name in [*commands, *groups] if isinstance(name, str)]


def test_every_module_of_the_package_is_registered() -> None:
    found = {
        info.name
        for info in pkgutil.iter_modules(cli.__path__)
        if info.name not in NOT_COMMAND_MODULES
    }
    registered = {module.__name__.removeprefix("fakescope.cli.") for module in COMMAND_MODULES}
    assert found == registered
    for name in found:
        module = importlib.import_module(f"fakescope.cli.{name}")
        assert callable(getattr(module, "register", None)), f"{name} has no register(app)"


def test_each_module_registers_its_commands_and_the_app_holds_exactly_those() -> None:
    modules = (*COMMAND_MODULES, *kinds.command_modules())
    per_module = {module.__name__: _registers(module) for module in modules}
    for name, commands in per_module.items():
        assert commands, f"{name} registers no command"
    root = list(get_group(app).commands)
    assert sorted(root) == sorted(name for names in per_module.values() for name in names)
    assert root == COMMANDS  # every command kept, generic ones first, then the kinds' own


def test_help_lists_every_command() -> None:
    help_text = fakescope("--help", columns=200).stdout
    listed = re.findall(r"^│ ([a-z][a-z-]*) {2,}", help_text, flags=re.MULTILINE)
    assert listed == COMMANDS, help_text


def test_loading_the_command_line_loads_no_heavy_library() -> None:
    heavy = ("torch", "numpy", "PIL", "pydantic", "yaml", "fastapi", "ray", "onnxruntime")
    code = f"import sys, fakescope.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "", f"importing fakescope.cli loads {proc.stdout.strip()}"
