"""The registry of detector kinds: generic code looks a bundle's kind up and never names one,
so a new kind is one registered object, and the bundle format, the loader, the exporter and the
refitting commands take it without a change."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tiny import tiny_bundle

from fakescope import kinds
from fakescope.bundle import (
    CARD_FILE,
    META_FILE,
    BundleMeta,
    bundle_kind,
    load_bundle,
    new_meta,
    read_meta,
    update_meta,
    write_signed,
)
from fakescope.detectors import Capabilities, Detector, load_detector
from fakescope.errors import BundleError, ConfigError, ExportError
from fakescope.evaluation.calibration import check_rewritable
from fakescope.onnx_export import export_onnx

SRC = Path(__file__).resolve().parents[1] / "src" / "fakescope"
GENERIC = ("bundle.py", "detectors/base.py", "detectors/__init__.py", "onnx_export.py")


@pytest.mark.parametrize("module", GENERIC)
def test_generic_modules_name_no_kind(module: str) -> None:
    text = (SRC / module).read_text()
    for name in ("ensemble", "face_aware"):  # ("zero_shot" is also a shipped detector's name)
        assert name in kinds.BUILTIN
        assert not re.search(rf"\b{name}\b", text), f"{module} names the {name} kind"


def test_every_builtin_kind_registers_itself_with_its_detectors() -> None:
    for name in kinds.BUILTIN:
        kind = kinds.get(name)
        assert kind.name == name and kind.title and "torch" in kind.detectors
        assert all(issubclass(cls, Detector) for cls in kind.detectors.values())


def test_an_unknown_kind_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    write_signed(folder, new_meta("hologram", {"architecture": "hologram"}))
    assert bundle_kind(folder) == "hologram"
    with pytest.raises(BundleError, match=r"unknown detector kind 'hologram'.*ensemble"):
        read_meta(folder)


class _Constant(Detector):
    kind = "constant"

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> _Constant:
        raw = read_meta(path)
        return cls(BundleMeta.from_dict(raw), bundle_path=path)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities("torch", False, False, False, {"explain": "a constant has no map"})

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.full((batch.shape[0],), float(self.meta.model_kwargs["logit"]))


class _ConstantKind(kinds.Kind):
    name = "constant"
    title = "a constant"
    holds = "holds one number"

    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        if "logit" not in meta.get("model_kwargs", {}):
            raise BundleError(f"{folder}: a constant bundle without its logit")

    def render_card(self, meta: dict[str, Any]) -> str:
        return f"# constant {meta['model_kwargs']['logit']}\n"


def test_a_new_kind_is_one_registered_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(kinds._REGISTRY, "constant", _ConstantKind({"torch": _Constant}))
    weights = tiny_bundle(tmp_path / "weights")
    pre = json.loads((weights / META_FILE).read_text())["preprocessing"]
    folder = tmp_path / "constant"
    folder.mkdir()
    meta = new_meta(
        "constant", {"architecture": "constant", "preprocessing": pre, "model_kwargs": {"logit": 2}}
    )
    write_signed(folder, meta)
    (folder / CARD_FILE).write_text(kinds.of_meta(meta).render_card(meta))

    detector = load_detector(folder, runtime="torch", device="cpu")
    assert isinstance(detector, _Constant)
    (result,) = detector.predict([Image.new("RGB", (8, 8))], provenance=False)
    assert result.p_fake == pytest.approx(float(torch.sigmoid(torch.tensor(2.0))))
    # the defaults of a kind that is not one classifier's weights, each saying why
    with pytest.raises(ConfigError, match="constant bundle does not run on the onnx runtime"):
        load_detector(folder, runtime="onnx", device="cpu")
    with pytest.raises(BundleError, match="constant bundle holds one number"):
        load_bundle(folder)
    with pytest.raises(BundleError, match="fields are fitted"):
        update_meta(folder, threshold=0.3)
    with pytest.raises(ExportError, match="is a constant bundle"):
        export_onnx(folder, tmp_path / "x.onnx")
    check_rewritable(folder, tmp_path)  # nothing refused before the work starts
    meta["model_kwargs"] = {}
    write_signed(folder, meta)
    with pytest.raises(BundleError, match="without its logit"):
        read_meta(folder)
