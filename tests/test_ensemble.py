"""Ensemble bundles: rules, stacking, verification, and use as a Detector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_bundle

from fakescope.bundle import read_meta
from fakescope.detectors import Detector
from fakescope.errors import BundleError, ConfigError
from fakescope.evaluation.evaluate import evaluate
from fakescope.kinds.ensemble.build import build_ensemble, rule_weights
from fakescope.kinds.ensemble.detector import EnsembleDetector
from fakescope.robustness.attacked import attack_target
from fakescope.robustness.sweep import RobustnessConfig, robustness


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("members")
    return {
        "a": tiny_bundle(root / "a" / "bundle", seed=0, threshold=0.45),
        "b": tiny_bundle(root / "b" / "bundle", seed=1, threshold=0.55),
        "wide": tiny_bundle(root / "wide" / "bundle", seed=2, size=48),
    }


def _p(detector: Detector, folder: Path) -> np.ndarray:
    return np.array([r.p_fake for r in detector.predict([folder])])


@pytest.mark.parametrize("rule", ["accuracy", "auc", "equal"])
def test_weighted_rules_give_weights_summing_to_one(
    rule: str, members: dict[str, Path], toy_csv: Path, tmp_path: Path
) -> None:
    table = build_ensemble(
        [members["a"], members["b"]], toy_csv, tmp_path / "ens", rule=rule, progress=False
    )
    assert sum(table["weights"]) == pytest.approx(1.0) and len(table["weights"]) == 2
    rows = {r["model"]: r for r in table["rows"]}
    assert set(rows) == {"ensemble", "a", "b"}
    if rule == "equal":
        assert table["weights"] == [0.5, 0.5]
    else:
        key = "accuracy" if rule == "accuracy" else "roc_auc"
        total = rows["a"][key] + rows["b"][key]
        assert table["weights"][0] == pytest.approx(rows["a"][key] / total)
    saved = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert saved["rows"][0]["model"] == "ensemble" and saved["threshold"] == table["threshold"]
    meta = json.loads((tmp_path / "ens" / "bundle.json").read_text())
    assert meta["kind"] == "ensemble" and meta["temperature"] == 1.0
    assert meta["unsure_band"] == pytest.approx([meta["threshold"] - 0.1, meta["threshold"] + 0.1])
    for entry in meta["members"]:  # members are copied inside, with their checksums
        assert read_meta(tmp_path / "ens" / entry["path"])["sha256"] == entry["sha256"]


def test_one_member_ensemble_scores_like_its_member(
    members: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    build_ensemble([members["a"]], toy_folder, tmp_path / "one", progress=False)
    ensemble, member = Detector.load(tmp_path / "one"), Detector.load(members["a"])
    assert isinstance(ensemble, EnsembleDetector) and isinstance(ensemble, Detector)
    np.testing.assert_allclose(_p(ensemble, toy_folder), _p(member, toy_folder), atol=1e-6)
    info = ensemble.info()
    assert info["kind"] == "ensemble" and info["members"][0]["name"] == "a"
    label, unsure = ensemble.verdict(0.99)
    assert label == "fake" and unsure is False


def test_stacking_fits_saves_and_loads(
    members: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    table = build_ensemble(
        [members["a"], members["b"]],
        toy_folder,
        tmp_path / "stack",
        rule="stacking",
        progress=False,
    )
    st = table["stacking"]
    assert table["weights"] is None and len(st["coef"]) == 2
    assert "out-of-fold" in table["validation"]["scores"]
    ensemble = Detector.load(tmp_path / "stack", device="cpu")
    files = sorted((toy_folder / "fake").glob("*.png"))[:5]
    batch = ensemble.preprocessing.batch_from_images([Image.open(p).convert("RGB") for p in files])
    z = torch.stack(
        [m.logits(batch) / m.meta.temperature for m in ensemble.members], dim=1
    ).double()
    expected = torch.sigmoid(z @ torch.tensor(st["coef"]).double() + st["intercept"]).numpy()
    np.testing.assert_allclose(ensemble.probabilities(batch), expected, atol=1e-6)


def test_mixed_input_sizes_preprocess_each_member_from_the_decoded_image(
    members: dict[str, Path], toy_folder: Path, toy_csv: Path, tmp_path: Path
) -> None:
    table = build_ensemble(
        [members["a"], members["wide"]], toy_folder, tmp_path / "mix", rule="equal", progress=False
    )
    ensemble = Detector.load(tmp_path / "mix", device="cpu")
    p_a = _p(Detector.load(members["a"]), toy_folder)
    p_w = _p(Detector.load(members["wide"]), toy_folder)
    np.testing.assert_allclose(_p(ensemble, toy_folder), (p_a + p_w) / 2, atol=1e-6)
    metrics = evaluate(ensemble, toy_csv, tmp_path / "eval", progress=False, bootstrap=0)
    assert metrics["n"] == 40 and metrics["threshold"] == table["threshold"]
    with pytest.raises(ConfigError, match="single-model bundle"):
        attack_target(ensemble)


@pytest.mark.slow
def test_attacks_and_corruptions_run_on_an_ensemble(
    members: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    build_ensemble([members["a"], members["b"]], toy_folder, tmp_path / "e", progress=False)
    ensemble = Detector.load(tmp_path / "e", device="cpu")
    module, normalize, pre, _ = attack_target(ensemble)
    x = torch.rand(3, 3, 32, 32)
    batch = (x * 255).round().to(torch.uint8)
    with torch.no_grad():
        z = module(normalize(batch.float() / 255))
    np.testing.assert_allclose(z.numpy(), ensemble.logits(batch).numpy(), atol=1e-4)
    config = RobustnessConfig(
        severities={"jpeg": (50,)}, attacks=("fgsm",), eps=(4 / 255,), max_images=8, examples=0
    )
    result = robustness(ensemble, toy_folder, tmp_path / "rob", config, progress=False)
    assert len(result["rows"]) == 2 and len(result["attacks"]["rows"]) == 1


def test_tampered_or_swapped_ensembles_are_refused(
    members: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good"
    build_ensemble([members["a"], members["b"]], toy_folder, good, progress=False)
    meta = json.loads((good / "bundle.json").read_text())

    edited = tmp_path / "edited"
    shutil.copytree(good, edited)
    (edited / "bundle.json").write_text(json.dumps({**meta, "weights": [0.9, 0.1]}))
    with pytest.raises(BundleError, match="metadata was modified"):
        Detector.load(edited)

    damaged = tmp_path / "damaged"
    shutil.copytree(good, damaged)
    weights = damaged / meta["members"][0]["path"] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="weights were modified"):
        Detector.load(damaged)

    swapped = tmp_path / "swapped"
    shutil.copytree(good, swapped)
    target = swapped / meta["members"][0]["path"]
    shutil.rmtree(target)
    shutil.copytree(members["wide"], target)  # a valid bundle, but not the member
    with pytest.raises(BundleError, match="not the one the ensemble was built with"):
        Detector.load(swapped)


def test_bad_rules_and_nesting_are_refused(
    members: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="unknown ensemble rule"):
        build_ensemble([members["a"]], toy_folder, tmp_path / "x", rule="vote", progress=False)
    with pytest.raises(ConfigError, match="unknown ensemble rule"):
        rule_weights("vote", [{"accuracy": 1.0}])
    build_ensemble([members["a"]], toy_folder, tmp_path / "inner", progress=False)
    with pytest.raises(ConfigError, match="is an ensemble"):
        build_ensemble([tmp_path / "inner"], toy_folder, tmp_path / "outer", progress=False)
