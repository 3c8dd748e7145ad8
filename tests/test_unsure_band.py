"""The unsure band fitted to a false-accusation budget: the fit keeps every source within
the budget, never narrows the margin band, is stored in the bundle and decides verdicts,
moves with the threshold under calibration, and is fitted by training and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from clirun import fakescope
from tiny import tiny_bundle, tiny_recipe_data

from fakescope.bundle import BundleMeta, read_meta
from fakescope.config import validate_recipe
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import load_detector
from fakescope.errors import BundleError
from fakescope.evaluation.unsure_band import fit_bundle_band
from fakescope.metrics.unsure_band import band_rates, fit_unsure_band


def two_sources(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'easy': classes far apart; 'hard': many reals scored high (p ~ U(0.2, 0.9))."""
    rng = np.random.default_rng(seed)
    n = 400
    easy_real, easy_fake = rng.uniform(0.0, 0.3, n), rng.uniform(0.7, 1.0, n)
    hard_real, hard_fake = rng.uniform(0.2, 0.9, n), rng.uniform(0.4, 1.0, n)
    p = np.concatenate([easy_real, easy_fake, hard_real, hard_fake])
    y = np.array([0] * n + [1] * n + [0] * n + [1] * n)
    sources = np.array(["easy"] * 2 * n + ["hard"] * 2 * n, dtype=object)
    return y, p, sources


def test_every_source_keeps_within_the_budget_and_the_band_holds_the_margin() -> None:
    y, p, sources = two_sources()
    fit = fit_unsure_band(
        y,
        p,
        0.5,
        margin=0.1,
        max_real_called_fake=0.05,
        max_fake_called_real=0.1,
        sources=sources,
    )
    low, high = fit["band"]
    assert low <= 0.4 and high >= 0.6  # never narrower than threshold +/- margin
    for name in ("easy", "hard"):
        rates = fit["sources"][name]
        assert rates["real_called_fake"] is not None and rates["real_called_fake"] <= 0.05
        assert rates["fake_called_real"] is not None and rates["fake_called_real"] <= 0.10
    # the hard source's reals decide the upper edge: their 95th percentile
    hard_reals = p[(sources == "hard") & (y == 0)]
    assert high == pytest.approx(np.quantile(hard_reals, 0.95), abs=0.005)
    assert fit["sources"]["hard"]["real_called_fake"] == pytest.approx(0.05, abs=0.003)
    # with the margin band alone, the hard source's reals are called fake far more often
    assert (band_rates(y[sources == "hard"], p[sources == "hard"], 0.5, (0.4, 0.6)))[
        "real_called_fake"
    ] > 0.3
    assert fit["by"] == "source" and fit["fitted"]["n"] == len(y)


def test_pooling_lets_an_easy_source_hide_a_hard_one() -> None:
    y, p, sources = two_sources()
    by_source = fit_unsure_band(y, p, 0.5, sources=sources)
    pooled = fit_unsure_band(y, p, 0.5)
    assert pooled["by"] == "pooled" and pooled["sources"] == {}
    assert pooled["band"][1] < by_source["band"][1]
    hard = sources == "hard"
    assert band_rates(y[hard], p[hard], 0.5, pooled["band"])["real_called_fake"] > 0.05


def test_the_cross_fit_estimate_is_computed_on_images_the_band_was_not_fitted_on() -> None:
    y, p, sources = two_sources(seed=3)
    fit = fit_unsure_band(y, p, 0.5, sources=sources)
    cross = fit["cross_fit"]
    assert cross["n"] == len(y)
    assert cross["real_called_fake"] is not None and 0.0 <= cross["real_called_fake"] <= 1.0
    # an honest estimate is no rosier than the rate on the fitted images themselves
    assert cross["real_called_fake"] >= fit["fitted"]["real_called_fake"] - 0.01  # type: ignore[operator]
    assert 0.0 < cross["coverage"] <= 1.0


def test_small_sources_do_not_move_the_edges_and_bad_budgets_are_refused() -> None:
    y = np.array([0] * 10 + [1] * 10)
    p = np.linspace(0.0, 1.0, 20)  # reals reach 0.47, fakes start at 0.53
    fit = fit_unsure_band(y, p, 0.5, margin=0.05, sources=np.array(["tiny"] * 20, dtype=object))
    assert fit["band"] == pytest.approx([0.45, 0.55])  # too few to estimate: the margin band
    assert fit["by"] == "pooled" and fit["sources"] == {}  # one source: nothing to hold apart
    for bad in (0.0, 0.5, 1.2):
        with pytest.raises(ValueError, match="max_real_called_fake must be in"):
            fit_unsure_band(y, p, 0.5, max_real_called_fake=bad)


def test_a_fitted_band_is_stored_and_decides_verdicts(tmp_path: Path) -> None:
    fit = {"policy": "risk", "band": [0.2, 0.9], "threshold": 0.5}
    bundle = tiny_bundle(tmp_path / "b", threshold=0.5, unsure_margin=0.1, unsure_fit=fit)
    stored = read_meta(bundle)
    assert stored["unsure_band"] == [0.2, 0.9] and stored["unsure_fit"]["band"] == [0.2, 0.9]
    detector = load_detector(bundle)
    assert detector.verdict(0.8) == ("fake", True)  # inside the fitted band, outside 0.5+/-0.1
    assert detector.verdict(0.95) == ("fake", False)
    assert detector.verdict(0.25) == ("real", True)
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "unsure band: p(fake) in [0.200, 0.900], fitted on validation data" in card
    plain = load_detector(tiny_bundle(tmp_path / "plain", threshold=0.5, unsure_margin=0.1))
    assert plain.meta.unsure_band == pytest.approx((0.4, 0.6))  # no fit: the margin band
    assert "(threshold +/- 0.1)" in (tmp_path / "plain" / "MODEL_CARD.md").read_text()


def test_a_band_that_does_not_hold_the_threshold_is_refused() -> None:
    with pytest.raises(BundleError, match="must hold the threshold"):
        BundleMeta(
            architecture="resnet_se",
            preprocessing=Preprocessing(input_size=32),
            threshold=0.5,
            unsure_fit={"band": [0.6, 0.9]},
        )


def test_fit_bundle_band_and_calibration_keep_the_same_unsure_images(
    toy_folder: Path, tmp_path: Path
) -> None:
    from fakescope.data.sources import open_source
    from fakescope.evaluation.calibration import calibrate_bundle
    from fakescope.evaluation.evaluate import score_items, select_items

    bundle = tiny_bundle(tmp_path / "b", threshold=0.5, unsure_margin=0.0)
    fit = fit_bundle_band(bundle, toy_folder, max_real_called_fake=0.2, progress=False)
    meta = read_meta(bundle)
    assert meta["unsure_fit"]["band"] == fit["band"]
    assert meta["unsure_fit"]["val_source"] == str(toy_folder)
    assert meta["metrics"]["unsure_band"]["cross_fit"] == fit["cross_fit"]

    source = open_source(toy_folder)
    items = select_items(source)

    def unsure_and_labels() -> list[tuple[str, bool]]:
        detector = load_detector(bundle)
        scored = score_items(detector, source, items, progress=False)
        return [detector.verdict(float(p)) for p in scored.p_fake]

    before = unsure_and_labels()
    calibrate_bundle(bundle, toy_folder, progress=False)
    after_meta = read_meta(bundle)
    assert after_meta["temperature"] != 1.0
    low, high = after_meta["unsure_band"]
    assert low <= after_meta["threshold"] <= high
    assert unsure_and_labels() == before  # same labels, same unsure images


def test_training_with_the_risk_policy_stores_the_fitted_band(
    toy_folder: Path, tmp_path: Path
) -> None:
    from fakescope.training.trainer import train

    data = tiny_recipe_data(epochs=1)
    data["decision"] = {"unsure_policy": "risk", "max_real_called_fake": 0.02}
    result = train(toy_folder, validate_recipe(data), tmp_path / "run", progress=False)
    meta = read_meta(result.bundle_dir)
    fit = meta["unsure_fit"]
    assert fit["policy"] == "risk" and fit["max_real_called_fake"] == 0.02
    assert fit["threshold"] == meta["threshold"] and meta["unsure_band"] == fit["band"]
    assert fit["band"][0] <= meta["threshold"] - 0.1 + 1e-9
    plain = train(
        toy_folder, validate_recipe(tiny_recipe_data(epochs=1)), tmp_path / "p", progress=False
    )
    assert "unsure_fit" not in read_meta(plain.bundle_dir)


def test_the_cli_fits_a_copy_and_refuses_the_shipped_detector(
    toy_folder: Path, tmp_path: Path
) -> None:
    refused = fakescope("unsure-band", "default", str(toy_folder), check=False)
    assert refused.returncode != 0
    assert "the shipped 'default' detector is read-only" in refused.stderr
    assert "fakescope unsure-band my-default-detector" in refused.stderr
    bad = fakescope(
        "unsure-band", "x", str(toy_folder), "--max-real-called-fake", "0.7", check=False
    )
    assert bad.returncode != 0 and "must be in (0, 0.5)" in bad.stderr
    bundle = tiny_bundle(tmp_path / "b", threshold=0.5)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    done = fakescope(
        "unsure-band", str(copy), str(toy_folder), "--max-real-called-fake", "0.1", columns=200
    )
    assert "cross-fit estimate" in done.stdout and "bundle updated" in done.stderr
    stored = json.loads((copy / "bundle.json").read_text())
    assert stored["unsure_fit"]["max_real_called_fake"] == 0.1
    assert "unsure_fit" not in read_meta(bundle)  # the original is untouched


def test_a_face_detector_is_scored_on_faces_cropped_as_it_was_trained(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakescope.evaluation import unsure_band as band_module
    from fakescope.faces import FaceCropPolicy, FaceSelector

    policy = FaceCropPolicy(margin=0.4)
    bundle = tiny_bundle(tmp_path / "faces", threshold=0.5, faces=policy.to_dict())
    real_score_items = band_module.score_items
    seen: list[object] = []

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("faces"))
        return real_score_items(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(band_module, "score_items", spy)
    fit_bundle_band(bundle, toy_folder, progress=False)
    assert isinstance(seen[0], FaceSelector) and seen[0].policy.margin == 0.4
    fit_bundle_band(tiny_bundle(tmp_path / "whole", threshold=0.5), toy_folder, progress=False)
    assert seen[1] is None  # a whole-image detector is scored on whole images


def test_by_generator_a_generator_the_detector_misses_widens_the_lower_edge() -> None:
    """Two generators in one source: 'known' fakes score high, 'new' fakes mostly low. Per
    source the many 'known' fakes hide the 'new' ones' misses; per generator they do not."""
    rng = np.random.default_rng(5)
    n = 400
    reals = rng.uniform(0.0, 0.45, n)
    known, new = rng.uniform(0.6, 1.0, n), rng.uniform(0.05, 0.7, n // 4)
    p = np.concatenate([reals, known, new])
    y = np.array([0] * n + [1] * (n + n // 4))
    generators = np.array([""] * n + ["known"] * n + ["new"] * (n // 4), dtype=object)
    sources = np.array(["one"] * len(y), dtype=object)
    per_source = fit_unsure_band(y, p, 0.5, sources=sources)
    per_generator = fit_unsure_band(y, p, 0.5, sources=sources, generators=generators)
    assert per_source["fakes_by"] == "pooled" and per_source["generators"] == {}
    assert per_generator["fakes_by"] == "generator"
    assert per_generator["band"][0] < per_source["band"][0]  # wider downwards
    assert per_generator["band"][1] == per_source["band"][1]  # the reals' edge is unchanged
    missed = per_generator["generators"]["new"]["fake_called_real"]
    assert missed is not None and missed <= 0.10
    new = generators == "new"
    assert band_rates(y[new], p[new], 0.5, per_source["band"])["fake_called_real"] > 0.10
    assert set(per_generator["generators"]) == {"known", "new"}
