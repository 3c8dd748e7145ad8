"""The CLI's start-up and shut-down: imports and loading run with Python's garbage collector
paused and are frozen after (`cli.common.loading`), whatever is alive when a command ends is
frozen before the interpreter's shutdown collections (`cli.main.run`), the modules that
load detectors leave timm (PyTorch models only) unimported until a PyTorch model is built, and
predict on onnxruntime (library and CLI) imports neither PyTorch, torchvision nor timm once the
bundle's export is cached."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

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


# -- scoring on onnxruntime without PyTorch ----------------------------------------------------
HEAVY = ("torch", "torchvision", "timm")
# In a child process: predict with the library (what `fakescope predict` calls: load_detector,
# then Detector.predict) or the CLI itself, then print what was scored and which modules were
# imported, as JSON on the last line of stdout.
_PROBE = """
import json, sys
mode, bundle, runtime, folder = sys.argv[1:5]
if mode == "library":
    from fakescope.detectors import load_detector
    detector = load_detector(bundle, runtime=runtime)
    scored = [p.p_fake for p in detector.predict([folder], provenance=False)]
    used = detector.runtime
else:
    from fakescope.cli.main import run
    sys.argv = ["fakescope", "predict", folder, "--bundle", bundle, "--runtime", runtime,
                "--format", "json", "--no-provenance"]
    try:
        run()
    except SystemExit as stop:
        assert stop.code in (0, None), stop.code
    scored, used = None, None
print(json.dumps({"scored": scored, "runtime": used, "modules": sorted(sys.modules)}))
"""


def _probe(mode: str, bundle: Path, runtime: str, folder: Path, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "FAKESCOPE_CACHE": str(cache), "FAKESCOPE_RUNTIME": "auto"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, str(bundle), runtime, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    if mode == "cli":  # the CLI's own JSON output comes first
        result["scored"] = [row["p_fake"] for row in json.loads("\n".join(lines[:-1]))]
    return result


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small images: one smaller than a crop (its crops all alike), two larger."""
    folder = tmp_path_factory.mktemp("small_photos")
    rng = np.random.default_rng(0)
    for i, size in enumerate([(24, 24), (80, 60), (64, 96)]):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{i}.png")
    return folder


@pytest.fixture(scope="module", params=["domain", "crops"])
def small_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny single-model bundle: with a domain model (logits and features in one pass), or
    on native-resolution crops (the shipped general detector's preprocessing)."""
    if request.param == "domain":
        bundle: Path = request.getfixturevalue("domain_bundle")
        return bundle
    from tiny import tiny_bundle

    from fakescope.data.transforms import Preprocessing

    pre = Preprocessing(input_size=32, resize="native", crops=4)
    return tiny_bundle(tmp_path_factory.mktemp("crops") / "bundle", preprocessing=pre)


def test_predict_on_onnxruntime_imports_no_torch_once_the_export_is_cached(
    small_bundle: Path, small_photos: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # the first run exports the bundle into the cache and checks it against PyTorch
    warm = _probe("cli", small_bundle, "auto", small_photos, cache)
    assert "torch" in _heavy(warm["modules"])  # the export needs it, and the probe sees it
    assert list((cache / "onnx").glob("*.onnx"))
    for mode, runtime in [("library", "onnx"), ("library", "auto"), ("cli", "onnx")]:
        run = _probe(mode, small_bundle, runtime, small_photos, cache)
        assert len(run["scored"]) == 3 and all(0.0 <= p <= 1.0 for p in run["scored"])
        assert run["scored"] == pytest.approx(warm["scored"], abs=1e-6)
        assert run["runtime"] in (None, "onnx")
        assert "onnxruntime" in run["modules"], (mode, runtime)  # it scored on onnxruntime
        assert _heavy(run["modules"]) == [], (mode, runtime)
    # the same probe on the torch runtime sees PyTorch (it would see it above, too)
    on_torch = _probe("library", small_bundle, "torch", small_photos, cache)
    assert on_torch["runtime"] == "torch" and "torch" in _heavy(on_torch["modules"])
    assert on_torch["scored"] == pytest.approx(warm["scored"], abs=1e-4)
