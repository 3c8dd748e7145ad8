"""ONNX export (parity with PyTorch for every registered architecture, metadata, dynamic batch)
and the onnxruntime-backed Detector (bundle folders, .onnx files, the export cache)."""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from clirun import fakescope as run_fakescope
from torch import nn

from fakescope.bundle import BundleMeta, read_meta, save_bundle, update_meta
from fakescope.data.decode import load_image
from fakescope.data.sources import collect_inputs, read_item_bytes
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector
from fakescope.errors import BundleError, ConfigError, ExportError
from fakescope.kinds.single import export as onnx_exporter  # the exporter's home
from fakescope.kinds.single.onnx import onnx_cache_path
from fakescope.models import create_model, list_models, model_defaults
from fakescope.onnx_export import CANNOT_EXPORT, export_onnx
from fakescope.onnx_model import KEY_BUNDLE_JSON, KEY_BUNDLE_SHA256, KEY_EXPORTER, ONNX_FILE

TOLERANCE = 1e-4
# Exported in the fast suite; every other architecture is exported under the `slow` marker
# (5-25 s each with the dynamo exporter on this 2-core machine).
FAST_ARCHITECTURES = {"resnet_se"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _exercise(model: nn.Module, images: torch.Tensor, mean: tuple, std: tuple) -> nn.Module:
    """Random-init models score everything ~0.5 (zero-init residual norms, tiny heads, signal
    that fades with depth), which would make any parity check pass. Randomise every norm
    layer's affine parameters, set BatchNorm statistics from `images` (as training would, so
    the signal survives every layer), and scale the head so that logits on `images` spread
    with std 1 around 0: p(fake) then spreads over about 0.1-0.9."""
    generator = torch.Generator().manual_seed(0)
    norms = nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm
    x = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, norms) and getattr(module, "weight", None) is not None:
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a cumulative average over the one batch below
        model.train()
        model(x)
        model.eval()
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # 40 images leave some channels nearly constant; dividing by their tiny
                # variance would amplify float32 rounding 300x, in any runtime.
                module.running_var.clamp_(min=0.05 * float(module.running_var.mean()))
        logits = model(x).view(-1)
        scale = 1.0 / max(float(logits.std()), 1e-6)
        head = model.get_classifier()
        head.weight.mul_(scale)
        head.bias.copy_((head.bias - logits.mean()) * scale)
    return model


def _uint8_images(paths: list[str], size: int) -> torch.Tensor:
    pre = Preprocessing(input_size=size)
    arrays = [pre.to_uint8(load_image(read_item_bytes(p), p)) for p in paths]
    return torch.from_numpy(np.stack(arrays))


def _bundle_for(name: str, folder: Path, images: list[str], **model_kwargs: object) -> Path:
    defaults = model_defaults(name)
    torch.manual_seed(0)
    model = create_model(name, pretrained=False, **model_kwargs)
    _exercise(model, _uint8_images(images, 32), defaults.mean, defaults.std)
    meta = BundleMeta(
        architecture=name,
        model_kwargs=dict(model_kwargs),
        preprocessing=Preprocessing(input_size=32, mean=defaults.mean, std=defaults.std),
        threshold=0.45,
        temperature=1.3,
    )
    return save_bundle(folder / name, model, meta)


@pytest.fixture(scope="module")
def toy_images(toy_folder: Path) -> list[str]:
    return collect_inputs([str(toy_folder)])[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, toy_images: list[str]) -> tuple[Path, Path]:
    """(a small resnet_se bundle, its ONNX export with the default exporter), made once."""
    folder = tmp_path_factory.mktemp("exported")
    bundle = _bundle_for("resnet_se", folder, toy_images, widths=[8, 16, 32])
    return bundle, export_onnx(bundle, folder / "small.onnx").path


@pytest.fixture()
def small_bundle(exported: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the small bundle (tests may add files or re-sign it)."""
    return Path(shutil.copytree(exported[0], tmp_path / "bundle"))


def _architectures() -> list:
    params = []
    for name in list_models():
        marks = [] if name in FAST_ARCHITECTURES else [pytest.mark.slow]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _architectures())
def test_every_registered_architecture_exports_with_parity(
    name: str, tmp_path: Path, toy_images: list[str]
) -> None:
    """Only the documented CANNOT_EXPORT list may skip (empty today: all of them export)."""
    if name in CANNOT_EXPORT:
        pytest.skip(f"{name} cannot be exported to ONNX: {CANNOT_EXPORT[name]}")
    bundle = _bundle_for(name, tmp_path, toy_images)
    out = tmp_path / f"{name}.onnx"
    result = export_onnx(bundle, out, check_images=toy_images, tolerance=TOLERANCE)
    assert result.parity.source == "given" and result.parity.n == len(toy_images)
    assert result.parity.max_abs_diff_p <= TOLERANCE

    # The same through the public API, at another batch size, on scores that are spread out.
    torch_p = np.array([r.p_fake for r in Detector.load(bundle, device="cpu").predict(toy_images)])
    onnx_detector = Detector.load(out, runtime="onnx")
    onnx_p = np.array([r.p_fake for r in onnx_detector.predict(toy_images, batch_size=16)])
    assert torch_p.std() > 0.05, "weights too bland for a meaningful parity check"
    assert np.abs(torch_p - onnx_p).max() <= TOLERANCE

    graph = onnx.load(str(out)).graph
    for value in (graph.input[0], *graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param, f"{value.name}: batch is fixed"


def test_cannot_export_list_is_explicit() -> None:
    for name, reason in CANNOT_EXPORT.items():
        assert name in list_models() and len(reason) > 20, (name, reason)


def test_torchscript_exporter_passes_parity_too(small_bundle: Path, tmp_path: Path) -> None:
    result = export_onnx(small_bundle, tmp_path / "ts.onnx", exporter="torchscript")
    assert result.exporter == "torchscript" and result.parity.passed
    assert result.parity.source == "synthetic" and result.parity.n == 128
    loaded = Detector.load(tmp_path / "ts.onnx", runtime="onnx")
    assert loaded.session.exporter == "torchscript"


def test_onnx_file_carries_the_bundle_metadata(exported: tuple[Path, Path]) -> None:
    bundle, out = exported
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    raw = read_meta(bundle)
    assert json.loads(props[KEY_BUNDLE_JSON]) == raw
    assert props[KEY_BUNDLE_SHA256] == raw["sha256"]
    assert props[KEY_EXPORTER] == "dynamo"  # the default exporter worked

    detector = Detector.load(out, runtime="onnx")  # no bundle folder needed
    assert detector.runtime == "onnx" and not detector.capabilities.can_explain
    assert detector.threshold == pytest.approx(0.45)
    assert detector.meta.temperature == pytest.approx(1.3)
    assert detector.info()["runtime"] == "onnx"


def test_onnx_detector_matches_torch_on_files_and_bad_inputs(
    exported: tuple[Path, Path], small_bundle: Path, toy_folder: Path, bad_files: dict[str, Path]
) -> None:
    shutil.copy(exported[1], small_bundle / ONNX_FILE)
    inputs = [str(toy_folder), str(bad_files["truncated.jpg"]), str(bad_files["text.jpg"])]
    torch_results = Detector.load(small_bundle, device="cpu").predict(inputs, batch_size=7)
    onnx_results = Detector.load(small_bundle, runtime="onnx").predict(inputs, batch_size=7)
    assert [r.path for r in onnx_results] == [r.path for r in torch_results]
    assert [r.error for r in onnx_results] == [r.error for r in torch_results]
    assert sum(r.error is not None for r in onnx_results) == 2
    for a, b in zip(torch_results, onnx_results, strict=True):
        if a.error is None:
            assert abs(a.p_fake - b.p_fake) <= TOLERANCE
            assert a.label == b.label and a.unsure == b.unsure


def test_bundle_without_model_onnx_is_exported_once_to_the_cache(
    small_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKESCOPE_CACHE", str(tmp_path / "cache"))
    # The caching is under test here, not the exporter: the TorchScript one is ~10x quicker.
    exports: list[Path] = []

    def quick_export(bundle: Path, out: Path) -> object:
        exports.append(out)
        return export_onnx(bundle, out, exporter="torchscript")

    monkeypatch.setattr(onnx_exporter, "export_onnx", quick_export)
    cached = onnx_cache_path(read_meta(small_bundle)["sha256"])
    assert not cached.exists()
    Detector.load(small_bundle, runtime="onnx")
    assert cached.is_file()
    stamp = cached.stat().st_mtime_ns
    again = Detector.load(small_bundle, runtime="onnx")
    assert cached.stat().st_mtime_ns == stamp and exports == [cached]  # reused
    assert again.session.name == str(cached)

    cached.write_bytes(b"damaged")  # a broken cache entry is rebuilt, not fatal
    Detector.load(small_bundle, runtime="onnx")
    assert cached.stat().st_size > 1000 and exports == [cached, cached]


def test_stale_model_onnx_is_refused_with_the_fix(
    exported: tuple[Path, Path], small_bundle: Path
) -> None:
    shutil.copy(exported[1], small_bundle / ONNX_FILE)
    assert Detector.load(small_bundle, runtime="onnx").session.name == str(small_bundle / ONNX_FILE)
    update_meta(small_bundle, temperature=2.0)  # what `fakescope calibrate` does
    with pytest.raises(BundleError, match="re-export") as info:
        Detector.load(small_bundle, runtime="onnx")
    assert str(small_bundle / ONNX_FILE) in str(info.value)
    assert "fakescope export" in str(info.value)


def test_tampered_or_foreign_onnx_files_are_refused(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    proto = onnx.load(str(exported[1]))
    for prop in proto.metadata_props:
        if prop.key == KEY_BUNDLE_JSON:
            meta = json.loads(prop.value)
            meta["threshold"] = 0.01
            prop.value = json.dumps(meta)
    onnx.save(proto, str(tmp_path / "tampered.onnx"))
    with pytest.raises(BundleError, match="checksum mismatch"):
        Detector.load(tmp_path / "tampered.onnx", runtime="onnx")

    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(BundleError, match="without fakescope metadata"):
        Detector.load(tmp_path / "bare.onnx", runtime="onnx")

    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(BundleError, match="junk.onnx: not a usable ONNX model"):
        Detector.load(tmp_path / "junk.onnx", runtime="onnx")


def test_wrong_runtime_choices_say_what_to_do(exported: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, out = exported
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'"):
        Detector.load(bundle, runtime="tensorrt")
    with pytest.raises(BundleError, match="is an ONNX file: load it with runtime 'onnx'"):
        Detector.load(out)
    with pytest.raises(BundleError, match="no such bundle"):
        Detector.load(tmp_path / "missing", runtime="onnx")


def test_failed_parity_writes_nothing(small_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.onnx"
    with pytest.raises(ExportError, match="failed its parity check"):
        export_onnx(small_bundle, out, exporter="torchscript", tolerance=-1.0)
    assert not out.exists() and list(tmp_path.glob(".onnx-*")) == []


def test_check_images_that_do_not_exist_are_an_export_error(
    small_bundle: Path, tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="nowhere: does not exist"):
        export_onnx(small_bundle, tmp_path / "m.onnx", check_images=[str(tmp_path / "nowhere")])


@pytest.mark.slow
def test_cli_export_then_predict_with_the_onnx_runtime(
    small_bundle: Path, toy_folder: Path, tmp_path: Path
) -> None:
    fakescope = partial(run_fakescope, check=False)
    bundle = tmp_path / "b"
    shutil.copytree(small_bundle, bundle)
    done = fakescope("export", "--bundle", bundle, "--out", bundle / ONNX_FILE,
                     "--check-images", toy_folder)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "parity on 40 given images: max |Δp|" in done.stderr
    rows = {}
    for runtime in ("torch", "onnx"):
        done = fakescope("predict", toy_folder, "--bundle", bundle, "--runtime", runtime,
                         "--format", "json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows[runtime] = json.loads(done.stdout)
    assert len(rows["onnx"]) == 40
    for a, b in zip(rows["torch"], rows["onnx"], strict=True):
        assert a["path"] == b["path"] and abs(a["p_fake"] - b["p_fake"]) <= TOLERANCE

    update_meta(bundle, temperature=3.0)
    done = fakescope("predict", toy_folder, "--bundle", bundle, "--runtime", "onnx")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "re-export it: fakescope export --bundle" in " ".join(done.stderr.split())


@pytest.mark.integration
def test_default_detector_onnx_parity_on_real_cifake_images(
    shared_data: Path, tmp_path: Path
) -> None:
    cifake = shared_data / "cifake_train.zip"
    result = export_onnx(
        "cifake", tmp_path / "default.onnx", check_images=[str(cifake)], check_n=512
    )
    assert result.parity.source == "given" and result.parity.n == 512
    assert result.parity.max_abs_diff_p <= TOLERANCE

    paths = collect_inputs([str(cifake)])[0][::400]  # 250 real and fake CIFAKE images
    torch_detector = Detector.load("cifake", device="cpu")
    onnx_detector = Detector.load(tmp_path / "default.onnx", runtime="onnx")
    torch_results = torch_detector.predict(paths)
    onnx_results = onnx_detector.predict(paths, batch_size=33)
    diffs = [abs(a.p_fake - b.p_fake) for a, b in zip(torch_results, onnx_results, strict=True)]
    assert len(diffs) == 250 and max(diffs) <= TOLERANCE
    near_threshold = [abs(a.p_fake - torch_detector.threshold) < TOLERANCE for a in torch_results]
    assert all(
        a.label == b.label or near
        for a, b, near in zip(torch_results, onnx_results, near_threshold, strict=True)
    )
