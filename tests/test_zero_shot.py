"""The zero-shot kind: the coder's distributions, its coding costs, the gap statistic in torch
and ONNX, the recipe and trainer, and a bundle through info, predict and the HTTP API."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from coder_images import batch, smooth_image
from imagegen import encode
from liveserver import thread_server
from PIL import Image
from typer.testing import CliRunner

from fakescope import cli
from fakescope.bundle import WEIGHTS_FILE, read_meta
from fakescope.detectors import ZeroShotDetector, load_detector
from fakescope.errors import BundleError, ConfigError
from fakescope.kinds.zero_shot.build import read_metrics
from fakescope.kinds.zero_shot.bundle import crop_preprocessing, save_zero_shot_bundle
from fakescope.kinds.zero_shot.card import render_zero_shot_card
from fakescope.kinds.zero_shot.coder import Coder, CoderConfig, log_pmf, log_prob, pyramid
from fakescope.kinds.zero_shot.data import REAL_PHOTO_FOLDERS, RealImage, assign_split
from fakescope.kinds.zero_shot.fit import GapStatistic, check_fit_options, fit_statistic
from fakescope.kinds.zero_shot.onnx_graph import FeatureSession, export_features
from fakescope.kinds.zero_shot.recipe import load_recipe
from fakescope.kinds.zero_shot.statistic import (
    GapFeatures,
    crop_features,
    entropy_bits,
    image_statistics,
)
from fakescope.kinds.zero_shot.train import DROP_AFTER, CropStream, train_coder
from fakescope.serve import ServeSettings, create_app

TINY = CoderConfig(width=8, blocks=1, mixtures=3, residual=1)
# the same with a causal context over the level's own coded pixels
TINY_CONTEXT = CoderConfig(width=8, blocks=1, mixtures=3, residual=1, context=3)
CONFIGS, CONFIG_IDS = [TINY, TINY_CONTEXT], ["coarse", "context"]
SHAPES = pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)


@pytest.fixture(scope="module", params=CONFIGS, ids=CONFIG_IDS)
def trained(request: pytest.FixtureRequest) -> Coder:
    """A tiny coder (each shape) trained for a few seconds on smooth toy images."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    coder = Coder(request.param)
    opt = torch.optim.Adam(coder.parameters(), lr=1e-2)
    for _ in range(60):
        loss = coder.bits(batch([smooth_image(rng, 32) for _ in range(8)])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return coder.eval()


@SHAPES
def test_each_sub_pixel_distribution_sums_to_one_over_256_values(config: CoderConfig) -> None:
    torch.manual_seed(1)
    coder = Coder(config).eval()
    x0 = batch([np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)])
    with torch.no_grad():
        for params, x in coder.level_params(x0):
            logp = log_pmf(params, x, config.mixtures)
            assert logp.shape[2] == 256
            assert torch.allclose(logp.exp().sum(dim=2), torch.ones(1), atol=1e-5)
            picked = logp.gather(2, x.long().unsqueeze(2)).squeeze(2)
            # the cost of the actual values and the entropy agree with the whole distribution
            assert torch.allclose(picked, log_prob(params, x, config.mixtures), atol=1e-4)
            entropy = -(logp.exp() * logp).sum(dim=2) / np.log(2)
            assert torch.allclose(entropy, entropy_bits(params, x, config.mixtures), atol=1e-3)


def test_the_context_never_sees_the_pixel_it_predicts_or_a_later_one() -> None:
    """Changing one pixel of a level changes the predictions of the pixels after it in raster
    order (the context reads it) and of none before it or at it: a coder that peeked would
    code an image cheaper than it can decode it."""
    torch.manual_seed(2)
    net = Coder(CoderConfig(width=8, blocks=1, mixtures=2, context=5)).levels[0].eval()
    coarse = torch.rand(1, 3, 8, 8) * 2 - 1
    fine = torch.rand(1, 3, 16, 16) * 2 - 1
    row, col = 7, 9
    changed = fine.clone()
    changed[0, :, row, col] += 0.5
    with torch.no_grad():
        moved = (net(coarse, fine) - net(coarse, changed)).abs().amax(dim=(0, 1)) > 1e-6
    order = torch.arange(16 * 16).reshape(16, 16)
    assert not moved[order <= row * 16 + col].any()
    assert moved[row, col + 1] and moved[row + 1, col]  # its east and south neighbours read it
    with pytest.raises(ValueError, match="needs the level's own pixels"):
        net(coarse)


def test_pyramid_levels_are_rounded_means() -> None:
    x0 = torch.tensor([[[[0.0, 1.0], [2.0, 2.0]]]]).expand(1, 3, 2, 2)
    assert pyramid(x0, 1)[1].flatten().tolist() == [1.0, 1.0, 1.0]  # 1.25 -> 1


def test_a_constant_image_costs_far_less_than_noise(trained: Coder) -> None:
    rng = np.random.default_rng(5)
    constant = np.full((32, 32, 3), 90, dtype=np.uint8)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        cost = trained.total_bits_per_subpixel(batch([constant, noise]))
    assert cost[1] > 8.0  # worse than storing the bytes: noise is what it never saw
    assert cost[0] < 0.4 * cost[1]


def test_gap_statistic_is_the_same_in_torch_and_onnx(trained: Coder) -> None:
    rng = np.random.default_rng(6)
    crops = batch(
        [smooth_image(rng), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), smooth_image(rng)]
    )
    graph = GapFeatures(trained).eval()
    expected = crop_features(graph, crops).numpy()
    got = FeatureSession(export_features(trained, 64))(crops)
    assert got.shape == expected.shape == (3, 6)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    a, b = image_statistics(expected), image_statistics(got)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-3 for k in a)
    assert expected[1, 0] > expected[0, 0] + 3  # noise costs more than a smooth image


def test_recipe_is_strict() -> None:
    recipe = load_recipe(None)
    assert recipe.train.crop % 8 == 0 and recipe.train.minutes <= 90
    with pytest.raises(ConfigError, match=r"train: .*crop \(60\) must be a multiple of 8"):
        load_recipe(None, ["train.crop=60"])
    with pytest.raises(ConfigError, match="coder.depth"):
        load_recipe(None, ["coder.depth=3"])
    with pytest.raises(ConfigError, match="context must be 0"):
        load_recipe(None, ["coder.context=1"])


def test_splits_are_fixed_and_stratified() -> None:
    splits = [assign_split(0, "src", f"{i}.jpg", 0.1, 0.1) for i in range(4000)]
    assert splits == [assign_split(0, "src", f"{i}.jpg", 0.1, 0.1) for i in range(4000)]
    assert 0.08 < splits.count("test") / 4000 < 0.12
    assert 0.08 < splits.count("calib") / 4000 < 0.12


def fake_clones(root: Path) -> None:
    """Every listed repository folder with two small smooth photos."""
    rng = np.random.default_rng(7)
    for _, repo, folders, _ in REAL_PHOTO_FOLDERS:
        for folder in folders:
            target = root / repo / folder
            target.mkdir(parents=True, exist_ok=True)
            for i in range(2):
                Image.fromarray(smooth_image(rng, 48)).save(target / f"p{i}.png")


def test_training_stops_drawing_from_a_source_whose_photos_are_all_too_small(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    images = []
    for i in range(DROP_AFTER + 5):
        tiny = tmp_path / f"tiny{i}.png"
        Image.fromarray(smooth_image(rng, 16)).save(tiny)
        images.append(RealImage(str(tiny), "tiny", "train"))
    big = tmp_path / "big.png"
    Image.fromarray(smooth_image(rng, 64)).save(big)
    images.append(RealImage(str(big), "big", "train"))
    recipe = load_recipe(None, ["train.crop=32", "train.batch_size=4"])
    stream = CropStream(images, recipe, random.Random(0))
    for _ in range(60):
        assert stream.batch().shape == (4, 3, 32, 32)
    assert stream.sources == ["big"]
    assert stream.misses["tiny"] == DROP_AFTER

    alone = CropStream(images[:DROP_AFTER], recipe, random.Random(0))
    with pytest.raises(ConfigError, match="no training photo is as large as the crop"):
        alone.batch()


def test_training_checkpoints_and_resumes(tmp_path: Path) -> None:
    fake_clones(tmp_path / "clones")
    keys = [
        f"data.clones={tmp_path / 'clones'}",
        "data.shared=null",
        "data.test=0.3",
        "coder.width=4",
        "coder.blocks=1",
        "coder.mixtures=2",
        "train.crop=32",
        "train.batch_size=2",
        "train.checkpoint_every=1",
        "train.test_images=4",
        "train.threads=1",
        "train.degrade=0",  # what a checkpoint from before the key existed meant
    ]
    run = tmp_path / "run"
    first = train_coder(load_recipe(None, [*keys, "train.max_steps=2"]), run)
    assert first.steps == 2 and (run / "checkpoint.pt").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        train_coder(load_recipe(None, [*keys, "train.max_steps=2"]), run)
    with pytest.raises(ConfigError, match="another recipe"):
        train_coder(
            load_recipe(None, [*keys, "coder.width=5", "train.max_steps=4"]), run, resume=True
        )
    # a checkpoint written before train.degrade existed resumes (the key takes its default)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    del state["recipe"]["train"]["degrade"]
    torch.save(state, run / "checkpoint.pt")
    again = train_coder(load_recipe(None, [*keys, "train.max_steps=4"]), run, resume=True)
    assert again.steps == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["test_bits_per_subpixel"] > 0


@pytest.fixture(scope="module")
def bundle(trained: Coder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(8)
    graph = GapFeatures(trained).eval()
    pre = crop_preprocessing(64, 2)
    stats = [
        image_statistics(
            crop_features(
                graph,
                torch.from_numpy(pre.to_uint8(Image.fromarray(smooth_image(rng, 80)))).float(),
            ).numpy()
        )
        for _ in range(24)
    ]
    out = tmp_path_factory.mktemp("zs") / "bundle"
    return save_zero_shot_bundle(out, trained, fit_statistic(stats, {"d0": -1.0}), pre)


def test_bundle_info_and_predict_on_the_cli(bundle: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    Image.fromarray(smooth_image(rng, 96)).save(tmp_path / "a.png")
    Image.fromarray(smooth_image(rng, 40)).save(tmp_path / "tiny.png")
    runner = CliRunner()
    info = runner.invoke(cli.app, ["info", "--bundle", str(bundle)])
    assert info.exit_code == 0, info.output
    assert "zero_shot" in info.output and "Real data modelled" in info.output
    out = tmp_path / "out.json"
    result = runner.invoke(
        cli.app,
        ["predict", str(tmp_path / "a.png"), str(tmp_path / "tiny.png"), "--bundle", str(bundle)]
        + ["--format", "json", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert 0.0 <= rows["a.png"]["p_fake"] <= 1.0 and rows["a.png"]["error"] is None
    assert rows["tiny.png"]["unsure"] and rows["tiny.png"]["in_domain"] is False  # enlarged
    detector = load_detector(bundle)
    assert isinstance(detector, ZeroShotDetector) and not detector.capabilities.can_explain
    on_onnx = load_detector(bundle, runtime="onnx").predict([tmp_path / "a.png"])[0]
    assert on_onnx.p_fake == pytest.approx(rows["a.png"]["p_fake"], abs=1e-3)


def test_bundle_tampering_is_refused(bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    assert read_meta(copy)["kind"] == "zero_shot"
    with open(copy / WEIGHTS_FILE, "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="checksum"):
        load_detector(copy)


def test_bundle_behind_the_http_api(bundle: Path) -> None:
    detector = load_detector(bundle)
    rng = np.random.default_rng(10)
    data = encode(smooth_image(rng, 96), "PNG")
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        response = httpx.post(
            f"{url}/v1/predict",
            files=[("files", ("a.png", data, "application/octet-stream"))],
            timeout=60,
        )
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        expected = detector.predict([data])[0]
        assert result["p_fake"] == pytest.approx(expected.p_fake, abs=1e-5)
        assert result["label"] == expected.label
        card = httpx.get(f"{url}/v1/model", timeout=30).json()
        assert card["model_card_markdown"].startswith("# Model card")
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (96, 96)


def test_the_card_says_whether_the_coder_reads_a_causal_context() -> None:
    shape = {"width": 48, "blocks": 4, "mixtures": 4, "residual": 1}
    with_context = render_zero_shot_card({"model_kwargs": {**shape, "context": 5}})
    assert "own already-coded pixels (5x5 causal context)" in with_context
    assert "no causal context" in render_zero_shot_card({"model_kwargs": shape})


def gap_stats(d0: np.ndarray) -> list[dict[str, float]]:
    return [{"d0": float(v), "h0": 3.0} for v in d0]


def test_the_threshold_lets_the_chosen_share_of_real_photos_through() -> None:
    reals = np.random.default_rng(11).normal(0.2, 0.05, 400)
    stat = fit_statistic(gap_stats(reals), {"d0": -1.0}, fpr=0.05)
    assert stat.reference is None and not stat.two_sided
    flagged = [stat.logit(s) > 0 for s in gap_stats(reals)]
    assert np.mean(flagged) == pytest.approx(0.05, abs=0.01)
    # one-sided: coded much more cheaply than expected is fake, more expensively is not
    assert stat.logit({"d0": 0.0}) > 2 and stat.logit({"d0": 0.4}) < -5
    assert GapStatistic.from_dict(stat.to_dict()) == stat
    with pytest.raises(ConfigError, match="at least 20 real photos"):
        fit_statistic(gap_stats(reals[:10]), {"d0": -1.0})


def test_a_two_sided_statistic_flags_both_tails_at_the_same_total_rate() -> None:
    reals = np.random.default_rng(12).normal(0.2, 0.05, 400)
    stat = fit_statistic(gap_stats(reals), {"d0": -1.0}, fpr=0.05, two_sided=True)
    assert stat.two_sided and stat.reference == pytest.approx(-0.2, abs=0.01)
    flagged = [stat.logit(s) > 0 for s in gap_stats(reals)]
    assert np.mean(flagged) == pytest.approx(0.05, abs=0.01)
    assert stat.logit({"d0": 0.0}) > 2 and stat.logit({"d0": 0.4}) > 2
    assert stat.logit({"d0": 0.2}) < -1
    again = GapStatistic.from_dict(json.loads(json.dumps(stat.to_dict())))
    assert again == stat and again.score({"d0": 0.4}) == pytest.approx(0.2, abs=0.01)
    card = render_zero_shot_card({"statistic": stat.to_dict()})
    assert "two-sided: its distance from the real photos' median -0.2" in card
    assert "two-sided" not in render_zero_shot_card(
        {"statistic": fit_statistic(gap_stats(reals), {"d0": -1.0}).to_dict()}
    )


def test_measured_figures_for_the_card_must_be_a_json_object(tmp_path: Path) -> None:
    good = tmp_path / "m.json"
    good.write_text('{"roc_auc_mean_modern_families": 0.61}')
    assert read_metrics(good) == {"roc_auc_mean_modern_families": 0.61}
    (tmp_path / "list.json").write_text("[0.61]")
    (tmp_path / "bad.json").write_text("{0.61")
    with pytest.raises(ConfigError, match="list.json: the metrics must be a JSON object"):
        read_metrics(tmp_path / "list.json")
    with pytest.raises(ConfigError, match="bad.json: the metrics are not valid JSON"):
        read_metrics(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="missing.json: cannot read the metrics"):
        read_metrics(tmp_path / "missing.json")


def test_an_up_scaled_image_is_unreadable_by_the_cost_ratio_not_by_the_expected_cost() -> None:
    rng = np.random.default_rng(13)
    reals = [
        {"d0": float(d), "h0": float(h), "nll0": float(n0), "nll1": float(n1)}
        for d, h, n0, n1 in zip(
            rng.normal(0.2, 0.05, 300),
            rng.uniform(2.0, 4.0, 300),
            rng.uniform(2.0, 4.0, 300),
            rng.uniform(2.5, 4.5, 300),
            strict=True,
        )
    ]
    stat = fit_statistic(
        reals,
        {"d0": -1.0},
        readability_feature="nll_ratio",
        readability_quantile=0.02,
        readability_factor=1.0,
    )
    assert np.mean([stat.readability(s) > 1 for s in reals]) == pytest.approx(0.02, abs=0.01)
    # an enlarged photo: the finest level costs far less than the next, its entropy looks normal
    enlarged = {"d0": -0.6, "h0": 3.0, "nll0": 0.9, "nll1": 3.5}
    assert stat.readability(enlarged) > 1
    assert fit_statistic(reals, {"d0": -1.0}).readability(enlarged) < 1  # h0, the old floor
    assert GapStatistic.from_dict(stat.to_dict()) == stat
    assert "actual cost over the next level's" in render_zero_shot_card(
        {"statistic": stat.to_dict()}
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ((0.6, "h0", 0.01, 0.5), "false-positive rate"),
        ((0.05, "sharpness", 0.01, 0.5), "unknown readability feature 'sharpness'"),
        ((0.05, "h0", 0.7, 0.5), "readability quantile"),
        ((0.05, "h0", 0.01, 2.0), "readability factor"),
    ],
)
def test_fitting_options_are_checked_before_any_photo_is_scored(
    options: tuple[float, str, float, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_fit_options(*options)
    data = fit_statistic(gap_stats(np.linspace(0, 1, 40)), {"d0": -1.0}).to_dict()
    with pytest.raises(BundleError, match="unknown readability feature"):
        GapStatistic.from_dict({**data, "readability_feature": "sharpness"})
