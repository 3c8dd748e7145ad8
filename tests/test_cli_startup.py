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

from fakescope.bundle import shipped_available
from fakescope.cli.common import loading
from fakescope.cli.main import run
from fakescope.faces import mtcnn_available


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
    scored = [[p.p_fake, p.face_box] for p in detector.predict([folder], provenance=False)]
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


def _probe(
    mode: str, bundle: Path | str, runtime: str, folder: Path, cache: Path | None
) -> dict[str, Any]:
    """`_PROBE` in a child process; `cache`: its $FAKESCOPE_CACHE (None: the user's)."""
    env = {**os.environ, "FAKESCOPE_RUNTIME": "auto"}
    if cache is not None:
        env["FAKESCOPE_CACHE"] = str(cache)
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
        rows = json.loads("\n".join(lines[:-1]))
        result["scored"] = [[row["p_fake"], row["face_box"]] for row in rows]
    return result


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small images: one smaller than a crop (its crops all alike), two larger, and a
    drawn face that fills a third of its picture (a face-aware detector's route joins it)."""
    from videogen import cartoon_face

    folder = tmp_path_factory.mktemp("small_photos")
    rng = np.random.default_rng(0)
    for i, size in enumerate([(24, 24), (80, 60), (64, 96)]):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{i}.png")
    Image.fromarray(cartoon_face(240)).save(folder / "photo_3_face.png")
    return folder


@pytest.fixture(scope="module", params=["domain", "crops", "face_aware"])
def small_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle: one model with a domain model (logits and features in one pass), one
    on native-resolution crops (the shipped general detector's preprocessing), or the
    default detector's kind, face-aware (a whole-image model, a face specialist, and the
    face search deciding where the specialist looks)."""
    from tiny import tiny_bundle

    from fakescope.data.transforms import Preprocessing

    if request.param == "domain":
        bundle: Path = request.getfixturevalue("domain_bundle")
        return bundle
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "crops":
        pre = Preprocessing(input_size=32, resize="native", crops=4)
        return tiny_bundle(root / "bundle", preprocessing=pre)
    from fakescope.kinds.face_aware.bundle import FaceRoute, save_face_aware_bundle

    whole, faces = tiny_bundle(root / "whole"), tiny_bundle(root / "faces", seed=1, size=48)
    route = FaceRoute(min_face_fraction=0.25, face_weight=0.5)
    return save_face_aware_bundle(root / "bundle", whole, faces, route, card={"limits": "test"})


def test_predict_on_onnxruntime_imports_no_torch_once_the_export_is_cached(
    small_bundle: Path, small_photos: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    # the first run exports the bundle into the cache and checks it against PyTorch
    warm = _probe("cli", small_bundle, "auto", small_photos, cache)
    assert "torch" in _heavy(warm["modules"])  # the export needs it, and the probe sees it
    assert list((cache / "onnx").glob("*.onnx"))
    if (small_bundle / "members").is_dir() and mtcnn_available():
        assert warm["scored"][3][1] is not None  # the face joined: the face search ran
    _assert_no_torch_on_onnxruntime(small_bundle, small_photos, cache, warm)
    # the same probe on the torch runtime sees PyTorch (it would see it above, too)
    on_torch = _probe("library", small_bundle, "torch", small_photos, cache)
    assert on_torch["runtime"] == "torch" and "torch" in _heavy(on_torch["modules"])
    _assert_same_scores(on_torch["scored"], warm["scored"], abs_tol=1e-4)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not shipped_available("default"), reason="the default detector is not shipped")
def test_the_default_detector_on_onnxruntime_imports_no_torch(small_photos: Path) -> None:
    """The shipped default detector (face-aware: general, the face specialist, the face
    search on every image but the 24 px one), its exports in the user's cache as `fakescope
    predict` keeps them. (The drawn face fills a third of its picture: under the shipped
    route's half, so the specialist does not join; the search runs all the same.)"""
    warm = _probe("cli", "default", "auto", small_photos, None)
    _assert_no_torch_on_onnxruntime("default", small_photos, None, warm)


def _assert_no_torch_on_onnxruntime(
    bundle: Path | str, folder: Path, cache: Path | None, warm: dict[str, Any]
) -> None:
    """After `warm` (a first run), predict on runtime onnx and auto (the library) and onnx
    (the CLI) gives the same scores on onnxruntime without importing PyTorch and co."""
    for mode, runtime in [("library", "onnx"), ("library", "auto"), ("cli", "onnx")]:
        run = _probe(mode, bundle, runtime, folder, cache)
        assert run["runtime"] in (None, "onnx")
        assert "onnxruntime" in run["modules"], (mode, runtime)  # it scored on onnxruntime
        assert _heavy(run["modules"]) == [], (mode, runtime)
        _assert_same_scores(run["scored"], warm["scored"], abs_tol=1e-6)


def _assert_same_scores(got: list[list[Any]], want: list[list[Any]], abs_tol: float) -> None:
    assert len(got) == len(want) == 4
    assert all(0.0 <= p <= 1.0 for p, _ in got)
    assert [p for p, _ in got] == pytest.approx([p for p, _ in want], abs=abs_tol)
    assert [box for _, box in got] == [box for _, box in want]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")
def test_serve_on_onnxruntime_never_loads_torch(
    small_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fakescope serve` (a real server process) scores uploads on onnxruntime, its export
    cached, without PyTorch's libraries ever mapped into the process."""
    import httpx
    from liveserver import cli_server
    from tiny import tiny_bundle

    from fakescope.data.transforms import Preprocessing

    cache = tmp_path / "cache"
    pre = Preprocessing(input_size=32, resize="native", crops=4)
    bundle = tiny_bundle(tmp_path / "bundle", preprocessing=pre)
    _probe("cli", bundle, "auto", small_photos, cache)  # exports it into the cache
    monkeypatch.setenv("FAKESCOPE_CACHE", str(cache))
    photos = sorted(small_photos.iterdir())[:3]
    args = ("--bundle", str(bundle), "--runtime", "onnx")
    with cli_server(*args, log_path=tmp_path / "server.log") as (url, pid):
        uploads = [("files", (p.name, p.read_bytes(), "image/png")) for p in photos]
        response = httpx.post(f"{url}/v1/predict", files=uploads, timeout=120)
        assert response.status_code == 200, response.text
        maps = Path(f"/proc/{pid}/maps").read_text()
    assert len(response.json()["results"]) == 3
    assert "onnxruntime" in maps  # it scored there, and the maps show what is loaded
    assert not [line for line in maps.splitlines() if "/torch/" in line or "libtorch" in line]
