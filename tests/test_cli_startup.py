"""The CLI's start-up and shut-down: imports and loading run with Python's garbage collector
paused and are frozen after (`cli.common.loading`), whatever is alive when a command ends is
frozen before the interpreter's shutdown collections (`cli.main.run`), and the modules that
load detectors leave timm (PyTorch models only) unimported until a PyTorch model is built."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fakescope.cli.common import loading
from fakescope.cli.main import run


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen and the collector on."""
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable()


def test_loading_pauses_the_collector_and_freezes_what_it_made() -> None:
    before = gc.get_freeze_count()
    with loading():
        assert not gc.isenabled()
        made = [[i] for i in range(1000)]  # 1,001 tracked containers
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + len(made)


def test_loading_leaves_a_disabled_collector_disabled_even_on_error() -> None:
    gc.disable()
    with pytest.raises(RuntimeError), loading():
        raise RuntimeError("a bundle that does not load")
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0  # frozen anyway: the process goes on without them


def test_run_freezes_everything_alive_before_the_interpreter_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["fakescope", "--version"])
    alive = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == 0
    with pytest.raises(SystemExit) as stopped:
        run()
    assert stopped.value.code in (0, None)
    assert gc.get_freeze_count() >= len(alive)


def test_detectors_and_bundles_import_without_timm() -> None:
    code = (
        "import sys, fakescope.bundle, fakescope.detectors, fakescope.verdict.pipeline; "
        "print('timm' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
