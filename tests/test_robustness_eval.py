"""fakescope robustness: rows, the bundle's threshold, files written, comparisons, ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from imagegen import make_dataset, toy_array
from PIL import Image
from tiny import tiny_bundle

from fakescope.bundle import update_meta
from fakescope.data.corruptions import DEFAULT_SEVERITIES
from fakescope.data.decode import load_image
from fakescope.data.sources import open_source
from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.evaluation.metrics import binary_metrics
from fakescope.models.attacks import eps_label
from fakescope.robustness.images import corrupt_images, select_subsample
from fakescope.robustness.report import table_rows
from fakescope.robustness.sweep import (
    RobustnessConfig,
    parse_number,
    parse_severities,
    robustness,
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, toy_folder: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rob_bundles")
    a = tiny_bundle(root / "a", seed=0)
    # a threshold inside the untrained model's narrow score range, so it splits the images
    p = Detector.load(a, device="cpu").predict([toy_folder])
    update_meta(a, threshold=float(np.median([r.p_fake for r in p])))
    return {
        "a": a,
        "b": tiny_bundle(root / "b", seed=1, threshold=0.6),
        "wide": tiny_bundle(root / "wide", seed=2, size=48),
    }


@pytest.mark.slow
def test_sweep_writes_every_row_file_and_uses_the_bundle_threshold(
    bundles: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    detector = Detector.load(bundles["a"], device="cpu")
    config = RobustnessConfig(
        attacks=("fgsm", "pgd"), eps=(1 / 255, 4 / 255), steps=2, max_images=30, examples=2
    )
    result = robustness(detector, toy_folder, tmp_path / "rob", config, progress=False)

    saved = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert saved["n"] == 30 and saved["n_real"] == saved["n_fake"] == 15  # stratified
    expected = [("clean", None)] + [(c, s) for c, v in DEFAULT_SEVERITIES.items() for s in v]
    got = [(r["name"], r["severity"]) for r in saved["rows"]]
    assert sorted(got, key=str) == sorted(expected, key=str) and got[0] == ("clean", None)
    assert [r["severity"] for r in saved["rows"] if r["name"] == "jpeg"] == [95, 75, 50, 30]
    assert len(saved["attacks"]["rows"]) == 4
    name = saved["models"][0]["name"]
    for row in saved["rows"] + saved["attacks"]["rows"]:
        res = row["results"][name]
        assert {"accuracy", "roc_auc", "accuracy_drop", "roc_auc_drop"} <= set(res)
        assert res["accuracy_drop"] == pytest.approx(
            saved["rows"][0]["results"][name]["accuracy"] - res["accuracy"]
        )
    for file in ("robustness.png", "attacks.png", "corruption_examples.png", "report.html"):
        assert (tmp_path / "rob" / file).stat().st_size > 1000, file
    examples = saved["attacks"]["examples"][name]["pgd"]
    assert len(examples["images"]) == 2
    for kinds in examples["images"]:
        for kind in ("clean", "adversarial", "perturbation"):
            assert (tmp_path / "rob" / kinds[kind]).is_file()
    page = (tmp_path / "rob" / "report.html").read_text()
    assert 'id="corruptions"' in page and 'id="attacks"' in page and "jpeg" in page

    # the clean accuracy is the bundle's threshold applied to the detector's own scores
    threshold = detector.threshold
    assert saved["models"][0]["threshold"] == threshold
    source = open_source(toy_folder)
    items = select_subsample(source, None, 30, 0)
    images = [load_image(source.read_bytes(it), it.path) for it in items]
    p = detector.predict_images(images)
    y = np.array([it.label for it in items])
    clean = result["rows"][0]["results"][name]
    m = binary_metrics(y, p, threshold, bootstrap=0)
    assert clean["accuracy"] == pytest.approx(m["accuracy"])
    assert clean["real_accuracy"] == pytest.approx(m["confusion_matrix"]["normalized"][0][0])
    assert 0 < clean["real_accuracy"] < 1  # the threshold splits the images: it is the bundle's


def test_corruptions_act_at_the_original_resolution() -> None:
    rng = np.random.default_rng(0)
    images = [toy_array("real", rng, (64, 48)), toy_array("fake", rng, 32), toy_array("real", rng)]
    out = corrupt_images(images, "rescale", 0.5, seed=0)
    assert [o.shape for o in out] == [i.shape for i in images]
    assert not np.array_equal(out[0], images[0])
    noisy_a = corrupt_images(images, "gaussian_noise", 0.05, seed=3)
    noisy_b = corrupt_images(images, "gaussian_noise", 0.05, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(noisy_a, noisy_b, strict=True))


def test_large_images_are_corrupted_before_the_bundle_resize(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    data = make_dataset(tmp_path, n_per_class=4, size=96)
    detector = Detector.load(bundles["a"], device="cpu")
    config = RobustnessConfig(severities={"jpeg": (30,)})
    result = robustness(detector, data, tmp_path / "out", config, progress=False)
    source = open_source(data)
    decoded = [np.asarray(load_image(source.read_bytes(it), it.path)) for it in source.items]
    corrupted = corrupt_images(decoded, "jpeg", 30, seed=0)
    p = detector.predict_images([Image.fromarray(a) for a in corrupted])
    y = np.array([it.label for it in source.items])
    row = result["rows"][1]["results"][result["models"][0]["name"]]
    expected = binary_metrics(y, p, detector.threshold, bootstrap=0)
    assert row["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert row["accuracy"] == pytest.approx(expected["accuracy"])


@pytest.mark.slow
def test_several_bundles_give_one_table_with_a_block_each(
    bundles: dict[str, Path], toy_folder: Path, tmp_path: Path
) -> None:
    detectors = [Detector.load(bundles[k], device="cpu") for k in ("a", "b", "wide")]
    config = RobustnessConfig(severities={"web": (75,)}, max_images=10)
    result = robustness(
        detectors, toy_folder, tmp_path / "cmp", config, names=["a", "b", "w"], progress=False
    )
    assert [m["threshold"] for m in result["models"]] == [d.threshold for d in detectors]
    assert result["models"][1]["threshold"] == 0.6
    headers, body = table_rows(result, result["rows"])
    assert headers[:2] == ["condition", "severity"] and len(headers) == 2 + 3 * 4
    assert "b acc" in headers and "w ΔAUC" in headers and len(body) == 2


def test_options_parse_and_bad_ones_are_refused() -> None:
    assert parse_number("2/255") == pytest.approx(2 / 255) and parse_number("0.08") == 0.08
    assert eps_label(0.5 / 255) == "0.5/255" and eps_label(0.08) == "0.08"
    chosen = parse_severities("jpeg,web", ["jpeg=90, 40", "gaussian_blur=1"])
    assert chosen == {"jpeg": (90.0, 40.0), "web": (75,), "gaussian_blur": (1.0,)}
    assert parse_severities("none", None) == {} and parse_severities(None, None) == dict(
        DEFAULT_SEVERITIES
    )
    with pytest.raises(ConfigError, match="unknown corruption 'snow'"):
        parse_severities("snow", None)
    with pytest.raises(ConfigError, match="NAME=V1,V2"):
        parse_severities(None, ["jpeg:50"])
    with pytest.raises(ConfigError, match="not a number"):
        parse_number("two/255")
    with pytest.raises(ConfigError, match="unknown attack"):
        RobustnessConfig(attacks=("cw",))


@pytest.mark.slow
def test_images_from_several_sources_get_a_per_source_table(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """A multi-source manifest (its source column): each row also breaks accuracy and its
    drop down by source, in robustness.json, the report and the CLI's table."""
    from fakescope.robustness.report import source_table_rows

    rows = ["path,label,source"]
    for name, size, seed in (("thumbs", 32, 3), ("photos", 48, 4)):
        folder = make_dataset(tmp_path / name, n_per_class=6, size=size, seed=seed)
        rows += [f"{p},{p.parent.name},{name}" for p in sorted(Path(folder).rglob("*.png"))]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    detector = Detector.load(bundles["a"], device="cpu")
    config = RobustnessConfig(severities={"gaussian_blur": (2.0,)})
    result = robustness(detector, manifest, tmp_path / "rob", config, progress=False)

    clean, blurred = (row["results"]["a"] for row in result["rows"])
    for row in (clean, blurred):
        cells = row["by_source"]
        assert set(cells) == {"thumbs", "photos"}
        assert cells["thumbs"]["n"] == cells["photos"]["n"] == 12
        overall = sum(c["accuracy"] * c["n"] for c in cells.values()) / 24
        assert overall == pytest.approx(row["accuracy"])
    for source, cell in blurred["by_source"].items():
        before = clean["by_source"][source]["accuracy"]
        assert cell["accuracy_drop"] == pytest.approx(before - cell["accuracy"])
    assert clean["by_source"]["thumbs"]["accuracy_drop"] == 0.0
    headers, body = source_table_rows(result, "a") or ([], [])
    assert headers == ["condition", "severity", "photos acc", "photos Δacc", "thumbs acc",
                       "thumbs Δacc"]  # fmt: skip
    assert [r[0] for r in body] == ["clean", "gaussian_blur"]
    assert "By source" in (tmp_path / "rob" / "report.html").read_text()

    single = robustness(detector, tmp_path / "thumbs", tmp_path / "one", config, progress=False)
    assert "by_source" not in single["rows"][0]["results"]["a"]
    assert source_table_rows(single, "a") is None
