"""Real data from ../shared/data: brief training on CIFAKE, the shipped detector, real faces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakescope.config import load_recipe
from fakescope.data.sources import open_source
from fakescope.detectors import Detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.training.trainer import train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_brief_training_on_a_cifake_subset_reaches_85_percent(
    shared_data: Path, tmp_path: Path
) -> None:
    recipe = load_recipe(
        "quick",
        [
            "data.max_items=12000",
            "data.test_fraction=0.0",
            "train.epochs=3",
            "train.checkpoint_every_steps=1000",
        ],
    )
    result = train(shared_data / "cifake_train.zip", recipe, tmp_path / "run", progress=False)
    assert result.val_metrics["n"] == pytest.approx(1200, abs=30)
    assert result.val_metrics["accuracy"] >= 0.85, result.val_metrics
    # the validation images were never trained on
    manifest = (tmp_path / "run" / "manifest.csv").read_text().splitlines()
    assert sum(line.endswith(",val,") or ",val," in line for line in manifest) > 1000


def test_shipped_detector_on_real_cifake_images(shared_data: Path, tmp_path: Path) -> None:
    detector = Detector.load("cifake")
    assert detector.meta.training["n_train"] > 50_000
    source = open_source(shared_data / "cifake_train.zip")
    items = source.items[::50]  # 2,000 images across both classes
    csv = tmp_path / "sample.csv"
    csv.write_text(
        "path,label\n" + "".join(f"{it.path},{'fake' if it.label else 'real'}\n" for it in items)
    )
    metrics = evaluate(detector, csv, tmp_path / "eval", progress=False)
    # these were mostly training images: this checks the bundle loads and works end to end
    assert metrics["accuracy"] > 0.95
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == len(items)


def test_predict_on_real_face_images(shared_data: Path) -> None:
    source = open_source(shared_data / "stylegan_faces.zip")
    detector = Detector.load()
    results = detector.predict([it.path for it in source.items[:16]])
    assert all(r.error is None and 0.0 <= r.p_fake <= 1.0 for r in results)


def test_robustness_of_the_shipped_detector_on_cifake(shared_data: Path, tmp_path: Path) -> None:
    from fakescope.robustness.sweep import RobustnessConfig, robustness

    config = RobustnessConfig(
        attacks=("fgsm", "pgd"), eps=(2 / 255,), steps=3, max_images=200, examples=2
    )
    result = robustness(
        Detector.load("cifake"), shared_data / "cifake_train.zip", tmp_path, config, progress=False
    )
    clean = result["rows"][0]["results"]["cifake_detector"]
    assert result["n"] == 200 and clean["accuracy"] > 0.9
    assert len(result["rows"]) == 14  # clean + 13 corruption/severity rows
    assert all(0 <= r["results"]["cifake_detector"]["accuracy"] <= 1 for r in result["rows"])
    pgd = next(r for r in result["attacks"]["rows"] if r["name"] == "pgd")
    assert pgd["results"]["cifake_detector"]["accuracy"] < clean["accuracy"]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "robustness.png").is_file()
