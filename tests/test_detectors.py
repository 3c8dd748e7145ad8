"""Detector kinds: one loader, explicit capabilities, clear refusals, shipped names everywhere."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import fakescope
from PIL import Image
from tiny import tiny_bundle

import fakescope as package
from fakescope import kinds
from fakescope.atomic import atomic_folder, atomic_write_text
from fakescope.bundle import BundleMeta, read_meta, shipped_bundle_path
from fakescope.data.inputs import expand_inputs, prepare_or_reason
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import (
    Capabilities,
    CapabilityError,
    Detector,
    EnsembleDetector,
    FaceAwareDetector,
    OnnxDetector,
    TorchDetector,
    load_detector,
)
from fakescope.errors import BundleError, ConfigError, ExportError
from fakescope.kinds.ensemble.build import build_ensemble
from fakescope.onnx_export import export_onnx


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("small") / "bundle")


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory, toy_folder: Path) -> Path:
    root = tmp_path_factory.mktemp("ens")
    a = tiny_bundle(root / "a", seed=0)
    b = tiny_bundle(root / "b", seed=1)
    build_ensemble([a, b], toy_folder, root / "ens", rule="equal", progress=False)
    return root / "ens"


def test_the_package_exports_the_base_and_the_loader() -> None:
    assert package.Detector is Detector and package.load_detector is load_detector


def test_each_kind_states_its_capabilities(small: Path, ensemble: Path) -> None:
    torch_kind = load_detector(small, device="cpu")
    assert isinstance(torch_kind, TorchDetector) and torch_kind.runtime == "torch"
    assert torch_kind.capabilities == Capabilities("torch", True, True, True)
    ens = load_detector(ensemble, device="cpu")
    assert isinstance(ens, EnsembleDetector) and isinstance(ens, Detector)
    caps = ens.capabilities
    assert (caps.can_explain, caps.can_embed, caps.has_gradients) == (False, False, True)
    assert "ensemble of 2" in caps.why_not["explain"]
    info = ens.info()
    assert info["kind"] == "ensemble" and info["capabilities"]["can_explain"] is False


def test_require_refuses_at_once_with_the_reason(ensemble: Path) -> None:
    ens = load_detector(ensemble, device="cpu")
    with pytest.raises(CapabilityError, match="Grad-CAM needs a single-model bundle; this is an "
                       "ensemble of 2"):  # fmt: skip
        ens.require("explain", "Grad-CAM")
    with pytest.raises(CapabilityError, match="embeddings need a single-model bundle"):
        ens.torch_model("t-SNE", needs="embed")
    ens.require("gradients", "PGD")  # same input size: attacks run through every member


def test_onnx_kind_cannot_explain_or_attack(small: Path, tmp_path: Path) -> None:
    onnx_file = export_onnx(small, tmp_path / "m.onnx").path
    detector = load_detector(onnx_file, runtime="onnx")
    assert isinstance(detector, OnnxDetector) and detector.runtime == "onnx"
    for capability in ("explain", "embed", "gradients"):
        with pytest.raises(CapabilityError, match="onnx runtime has no PyTorch model"):
            detector.require(capability, "this")  # type: ignore[arg-type]
    with pytest.raises(CapabilityError):
        detector.attack_target()
    torch_p = load_detector(small, device="cpu").predict_images([Image.new("RGB", (40, 30))])
    np.testing.assert_allclose(
        detector.predict_images([Image.new("RGB", (40, 30))]), torch_p, atol=1e-5
    )


def test_an_ensemble_refuses_onnx_and_export(ensemble: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ensembles run on the torch runtime only"):
        load_detector(ensemble, runtime="onnx")
    with pytest.raises(ExportError, match="is an ensemble of 2: export its members"):
        export_onnx(ensemble, tmp_path / "e.onnx")


def test_unknown_runtime_and_missing_bundle_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'"):
        load_detector("default", runtime="tensorrt")
    with pytest.raises(BundleError, match="no such bundle.*shipped detectors by name"):
        load_detector(tmp_path / "nope")


def test_shipped_names_load_as_their_kinds() -> None:
    for name in ("general", "scratch"):
        detector = load_detector(name, device="cpu")
        assert detector.bundle_path == shipped_bundle_path(name)
        assert isinstance(detector, TorchDetector)
    default = load_detector("default", device="cpu")
    assert isinstance(default, FaceAwareDetector)  # general, with the face specialist
    assert default.whole.bundle_path == shipped_bundle_path("general")


def test_a_new_kind_is_one_registered_class(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What DESIGN.md promises: a kind's detector is a subclass its registered kind names."""

    class Constant(Detector):
        kind = "constant"

        @classmethod
        def from_bundle(cls, path: Path, *, device: str) -> Constant:
            return cls(BundleMeta.from_dict(read_meta(path)), bundle_path=path)

        @property
        def capabilities(self) -> Capabilities:
            return Capabilities("torch", False, False, False, {"explain": "constant says no"})

        def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
            return torch.full((batch.shape[0],), 3.0)

    monkeypatch.setitem(kinds.get(kinds.DEFAULT).detectors, "torch", Constant)
    detector = load_detector(small, device="cpu")
    assert isinstance(detector, Constant)
    (result,) = detector.predict([Image.new("RGB", (8, 8))])
    assert result.p_fake == pytest.approx(float(torch.sigmoid(torch.tensor(3.0))))
    with pytest.raises(CapabilityError, match="constant says no"):
        detector.torch_model("Grad-CAM")


def test_batched_scoring_equals_one_batch(small: Path) -> None:
    detector = load_detector(small, device="cpu")
    arrays = [np.full((3, 32, 32), v, dtype=np.uint8) for v in range(0, 250, 10)]
    whole = detector.probabilities(torch.from_numpy(np.stack(arrays)))
    np.testing.assert_allclose(
        detector.probabilities_in_batches(arrays, batch_size=4), whole, atol=1e-6
    )
    assert detector.probabilities_in_batches([]).shape == (0,)


def test_one_decode_rule_gives_reasons(tmp_path: Path) -> None:
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "ok.png").write_bytes(b"")
    Image.new("RGB", (9, 9)).save(tmp_path / "good.png")
    pre = Preprocessing(input_size=8)
    ok = prepare_or_reason(str(tmp_path / "good.png"), "good.png", pre.to_uint8)
    assert isinstance(ok, np.ndarray) and ok.shape == (3, 8, 8)
    assert isinstance(prepare_or_reason(str(tmp_path / "text.jpg"), "t", pre.to_uint8), str)
    missing = prepare_or_reason(lambda: Path("/nonexistent").read_bytes(), "x", pre.to_uint8)
    assert str(missing).startswith("cannot read")

    def boom(_: Image.Image) -> np.ndarray:
        raise ValueError("exotic")

    assert prepare_or_reason(str(tmp_path / "good.png"), "g", boom) == (
        "cannot decode: ValueError: exotic"
    )
    entries, problems = expand_inputs([tmp_path, b"bytes", tmp_path / "missing.png"])
    assert {name for name, _ in entries} >= {str(tmp_path / "good.png"), "<bytes 1>"}
    assert problems and problems[0][0].endswith("missing.png")


def test_atomic_folder_replaces_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("two")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary left
    assert (target / "a.txt").read_text() == "one"
    atomic_write_text(tmp_path / "f.json", "{}")
    assert (tmp_path / "f.json").read_text() == "{}"


@pytest.mark.slow
def test_cli_ensemble_of_shipped_names_then_explain_refuses_it(
    toy_folder: Path, tmp_path: Path
) -> None:
    done = fakescope(
        "ensemble", "general", "scratch", "--val", toy_folder, "--out", tmp_path / "ens", "-q"
    )
    assert "ensemble bundle" in done.stderr
    assert len(read_meta(tmp_path / "ens")["members"]) == 2
    refused = fakescope(
        "explain", toy_folder, "--out", tmp_path / "cams", "--bundle", tmp_path / "ens",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Grad-CAM needs a single-model bundle" in errors[0]
    assert "Traceback" not in refused.stderr and not (tmp_path / "cams").exists()
    predicted = fakescope("predict", toy_folder, "--bundle", tmp_path / "ens", "-f", "json")
    assert '"label"' in predicted.stdout
