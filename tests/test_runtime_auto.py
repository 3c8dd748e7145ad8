"""Runtime "auto", the default: onnxruntime where the bundle's export passes its parity check
(with the domain score's features in the graph), PyTorch where it cannot, and the same
verdicts either way; the face route's skipped search on thumbnails."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.data.sources import collect_inputs
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import OnnxDetector, TorchDetector, load_detector
from fakescope.errors import ConfigError, ExportError
from fakescope.faces import FaceCropPolicy
from fakescope.kinds.face_aware.bundle import FaceRoute
from fakescope.kinds.face_aware.detector import (
    ROUTE_MIN_FACE,
    FaceRoutedPreprocessing,
    could_hold_route_face,
)
from fakescope.kinds.single import export as onnx_exporter  # the exporter's home
from fakescope.onnx_export import export_onnx
from fakescope.onnx_model import OnnxModel

TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runtime "auto" as a user gets it (conftest pins the rest of the suite to torch), with
    an empty export cache."""
    monkeypatch.delenv("FAKESCOPE_RUNTIME", raising=False)
    monkeypatch.setenv("FAKESCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_auto_scores_on_onnx_with_the_same_domain_scores_and_verdicts(
    auto: Path, domain_bundle: Path, toy_folder: Path
) -> None:
    detector = load_detector(domain_bundle)
    assert isinstance(detector, OnnxDetector) and detector.runtime == "onnx"
    assert detector.session.has_features and detector.domain is not None
    assert list(auto.glob("onnx/*.onnx")) == [Path(detector.session.name)]  # cached export
    reference = load_detector(domain_bundle, runtime="torch")
    assert isinstance(reference, TorchDetector)
    inputs = [str(toy_folder)]
    fast, slow = detector.predict(inputs, batch_size=9), reference.predict(inputs, batch_size=9)
    assert len(fast) == len(slow) > 20
    for a, b in zip(fast, slow, strict=True):
        assert a.path == b.path and a.p_fake is not None and b.p_fake is not None
        assert abs(a.p_fake - b.p_fake) <= TOLERANCE
        assert a.domain_score is not None and b.domain_score is not None
        assert abs(a.domain_score - b.domain_score) <= 1e-3 * max(1.0, b.domain_score)
        assert (a.label, a.unsure, a.in_domain) == (b.label, b.unsure, b.in_domain)
    # Grad-CAM, embeddings and attacks run on the same bundle's PyTorch model
    assert detector.capabilities.can_explain and detector.capabilities.has_gradients
    assert isinstance(detector.explained_by, TorchDetector)
    assert detector.torch_model("Grad-CAM") is detector.explained_by.torch_model("Grad-CAM")


def test_the_first_export_says_what_it_does_once_and_the_cached_one_says_nothing(
    auto: Path, domain_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first use exports and parity-checks for a minute or more: it says so (a WARNING,
    which the CLI shows on stderr) instead of looking hung; later uses read the cache."""
    with caplog.at_level(logging.INFO, logger="fakescope"):
        load_detector(domain_bundle)
    said = [r for r in caplog.records if "preparing the ONNX runtime" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert domain_bundle.name in said[0].getMessage()
    assert str(auto / "onnx") in said[0].getMessage() and "1-3 min" in said[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fakescope"):
        assert isinstance(load_detector(domain_bundle), OnnxDetector)
    assert "preparing the ONNX runtime" not in caplog.text


def test_auto_falls_back_to_torch_and_logs_why(
    auto: Path,
    domain_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing_export(bundle: Path, out: Path) -> object:
        raise ExportError(f"ONNX export of {bundle} failed its parity check: max |Δp| 3.1e-02")

    monkeypatch.setattr(onnx_exporter, "export_onnx", failing_export)
    with caplog.at_level(logging.WARNING, logger="fakescope"):
        detector = load_detector(domain_bundle)
    assert isinstance(detector, TorchDetector)
    assert "scoring with PyTorch" in caplog.text and "failed its parity check" in caplog.text
    assert not list(auto.glob("onnx/*"))


def test_an_export_without_features_is_replaced_for_a_bundle_with_a_domain(
    auto: Path, domain_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = Path(load_detector(domain_bundle).session.name)
    with monkeypatch.context() as patch:  # an export made before the graph had features
        patch.setattr(onnx_exporter.OnnxGraph, "with_features", property(lambda self: False))
        export_onnx(domain_bundle, cached, exporter="torchscript")
    assert not OnnxModel(cached).has_features
    again = load_detector(domain_bundle)
    assert isinstance(again, OnnxDetector) and again.session.has_features
    assert again.domain is not None and OnnxModel(cached).has_features


def test_runtime_choices_are_checked(auto: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="'auto', 'torch' or 'onnx'"):
        load_detector("default", runtime="fast")
    monkeypatch.setenv("FAKESCOPE_RUNTIME", "gpu")
    with pytest.raises(ConfigError, match="FAKESCOPE_RUNTIME='gpu'"):
        load_detector("default")


class _NoSearch:
    """A face selector that must not be asked."""

    def largest(self, images: list[Image.Image]) -> list[object]:
        raise AssertionError(f"searched {images[0].size} for a face")


def test_face_route_skips_the_search_where_no_face_of_the_route_fits() -> None:
    pre = FaceRoutedPreprocessing.of(
        Preprocessing(input_size=32), Preprocessing(input_size=32), FaceCropPolicy(), FaceRoute()
    )
    object.__setattr__(pre, "selector", _NoSearch())
    thumb = Image.new("RGB", (32, 32), (120, 90, 60))
    packed = pre.to_uint8(thumb)
    headers, whole, faces = pre.unpack(torch.from_numpy(packed[None]))
    assert headers[0, 0] == 0 and not faces.any()
    assert np.array_equal(whole[0].numpy(), Preprocessing(input_size=32).to_uint8(thumb))
    assert not could_hold_route_face((ROUTE_MIN_FACE - 1, 500))
    assert could_hold_route_face((ROUTE_MIN_FACE, ROUTE_MIN_FACE))
    with pytest.raises(AssertionError, match="searched"):
        pre.to_uint8(Image.new("RGB", (ROUTE_MIN_FACE, 60)))


@pytest.mark.slow
@pytest.mark.integration
def test_default_detector_gives_the_same_verdicts_on_both_runtimes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real photos, AI images and close-up faces (the face route): the default detector on
    onnxruntime (as `auto` picks it) and on PyTorch agree on every verdict."""
    monkeypatch.delenv("FAKESCOPE_RUNTIME", raising=False)
    files: list[str] = []
    for name, step in (("modern_photos.zip", 40), ("dfdc_faces.zip", 400)):
        with zipfile.ZipFile(shared_data / name) as zf:
            members = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[::step]
            for member in members:
                out = tmp_path / name.split(".")[0] / member
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(member))
                files.append(str(out))
    assert len(collect_inputs(files)[0]) >= 10
    fast = load_detector()
    slow = load_detector(runtime="torch")
    assert fast.runtime == "onnx" and slow.runtime == "torch"
    a, b = fast.predict(files), slow.predict(files)
    assert any(p.face_box for p in b)  # the face route joined on some
    for x, y in zip(a, b, strict=True):
        assert x.error is None and x.p_fake is not None and y.p_fake is not None
        assert abs(x.p_fake - y.p_fake) <= TOLERANCE
        assert (x.label, x.unsure, x.face_box) == (y.label, y.unsure, y.face_box)


def test_thumbnails_identical_crops_are_scored_once_with_the_same_results(
    auto: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiny import tiny_bundle

    pre = Preprocessing(input_size=32, resize="native", crops=4)
    bundle = tiny_bundle(tmp_path / "crops", preprocessing=pre)
    fast, slow = load_detector(bundle), load_detector(bundle, runtime="torch")
    assert isinstance(fast, OnnxDetector)
    rng = np.random.default_rng(0)
    sizes = [(20, 20), (48, 80), (32, 32), (64, 40), (12, 30)]  # thumbnails and larger ones
    arrays = [
        pre.to_uint8(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
        for w, h in sizes
    ]
    runs: list[int] = []
    real_run = fast.session.run

    def counted(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        runs.append(len(batch))
        return real_run(batch)

    monkeypatch.setattr(fast.session, "run", counted)
    a, b = fast.score_prepared(arrays), slow.score_prepared(arrays)
    assert runs == [1 + 4 + 1 + 4 + 1]  # one crop of each thumbnail, four of the others
    assert a.max_crop_p_fake is not None and b.max_crop_p_fake is not None
    assert np.abs(a.p_fake - b.p_fake).max() <= TOLERANCE
    assert np.abs(a.max_crop_p_fake - b.max_crop_p_fake).max() <= TOLERANCE
