"""Shared fixtures. Data-layer fixtures first; add other areas' fixtures in their own block."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagegen import make_bad_files, make_dataset  # tests/ is on sys.path (rootdir conftest)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The suite's tests (and the CLI processes they start) load detectors on PyTorch, as they did
# before runtime "auto" (onnxruntime) became the default: each of their freshly made bundles
# would otherwise be exported to ONNX first. test_runtime_auto.py tests "auto" itself (it
# removes this setting); test_onnx.py the onnx runtime.
os.environ.setdefault("FAKESCOPE_RUNTIME", "torch")

# -- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def toy_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/real/*.png, root/fake/*.png: 20 learnable toy images per class."""
    return make_dataset(tmp_path_factory.mktemp("toy_folder"), layout="folder")


@pytest.fixture(scope="session")
def toy_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("toy_zip"), layout="zip")


@pytest.fixture(scope="session")
def toy_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("toy_tar"), layout="tar")


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """labels.csv with paths relative to the CSV's folder."""
    return make_dataset(tmp_path_factory.mktemp("toy_csv"), layout="csv")


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of each bad-input case (truncated, empty, CMYK, 16-bit, bomb...)."""
    return make_bad_files(tmp_path_factory.mktemp("bad_files"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data sets next to the repository (../shared/data), or in
    $FAKESCOPE_DATA_DIR (as for bench/) when the checkout lives elsewhere."""
    path = Path(os.environ.get("FAKESCOPE_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data not available at {path}")
    return path


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """torch on one thread for the test (modules opt in with `usefixtures("one_thread")`).

    Tiny tensors gain nothing from threads, and when another process is training on this
    2-core machine, two OpenMP threads spin against it and run ~50x slower than one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- provenance ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def provenance_fixtures() -> Path:
    """Real files carrying provenance signals (../shared/fixtures/provenance, SOURCES.md)."""
    path = REPO_ROOT.parent / "shared" / "fixtures" / "provenance"
    if not (path / "SOURCES.md").is_file():
        pytest.skip(f"provenance fixtures not available at {path}")
    return path


# -- serve ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def domain_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained bundle whose domain model is fitted on toy images (as in
    test_domain_bundle): a saturated solid colour (`out_of_domain_image`) is far outside it."""
    from tiny import tiny_bundle

    from fakescope.evaluation.domain import fit_bundle_domain

    root = tmp_path_factory.mktemp("serve_domain")
    data = make_dataset(root / "data", layout="folder", n_per_class=60)
    bundle = tiny_bundle(root / "bundle")
    fit_bundle_domain(bundle, data, progress=False, quantile=0.9)
    return bundle


# -- browser -------------------------------------------------------------------------------
# Debian's chromium (.ci/run installs it), or FAKESCOPE_CHROMIUM
CHROMIUM = Path(os.environ.get("FAKESCOPE_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium through Playwright, one per test module; skips without either."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()
