"""The domain model (Mahalanobis on penultimate features) and selective-risk figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fakescope.data.sources import Item
from fakescope.detectors.domain import DomainModel, fit_domain, weighted_quantile
from fakescope.errors import ConfigError
from fakescope.evaluation.domain import _even_sample, _groups
from fakescope.evaluation.selective import selective_risk


def _features(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    base = rng.normal(size=(n, 32))
    base[:, :4] *= 5.0  # a few strong directions, as real features have
    return base + shift


def test_domain_score_separates_in_from_out_of_domain() -> None:
    rng = np.random.default_rng(0)
    train, val = _features(rng, 400), _features(rng, 200)
    labels = np.repeat([0, 1], 200)
    train[labels == 1, 0] += 6.0  # two classes
    model = fit_domain(train, labels, val, dims=16, quantile=0.95)
    inside = model.scores(_features(rng, 300))
    outside = model.scores(_features(rng, 300, shift=4.0))
    assert np.mean(model.scores(val) <= 1.0) == pytest.approx(0.95, abs=0.01)
    assert np.mean(inside <= 1.0) > 0.85 and np.mean(outside > 1.0) > 0.99
    assert outside.min() > np.median(inside)


def test_domain_model_round_trips_through_its_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model = fit_domain(_features(rng, 100), rng.integers(0, 2, 100), _features(rng, 50), dims=8)
    model.save(tmp_path)
    again = DomainModel.load(tmp_path, model.fields())
    probe = _features(rng, 20, shift=1.0)
    np.testing.assert_allclose(again.scores(probe), model.scores(probe), rtol=1e-4)
    assert again.fields() == model.fields()
    with pytest.raises(ConfigError, match="fitted on 32"):
        model.scores(np.zeros((2, 5)))


def test_a_small_source_gets_its_own_gaussian_and_an_equal_say_in_the_threshold(
    tmp_path: Path,
) -> None:
    """2,000 images of a big source and 60 of a small one far from it: with one Gaussian per
    class and an image-weighted threshold, the small source's unseen images fall outside;
    with one per (source, class) and every source weighing the same, they are in-domain,
    while images unlike either source stay outside."""
    rng = np.random.default_rng(2)
    big, small = _features(rng, 2000), _features(rng, 60, shift=3.0)
    train = np.concatenate([big, small])
    labels = np.concatenate([np.repeat([0, 1], 1000), np.repeat([0, 1], 30)])
    groups = np.concatenate([np.repeat([0, 1], 1000), np.repeat([2, 3], 30)])
    val_big, val_small = _features(rng, 400), _features(rng, 40, shift=3.0)
    val = np.concatenate([val_big, val_small])
    weights = np.concatenate([np.full(400, 1 / 400), np.full(40, 1 / 40)])
    names = ("big/real", "big/fake", "small/real", "small/fake")
    unseen_small, foreign = _features(rng, 200, shift=3.0), _features(rng, 200, shift=-5.0)

    plain = fit_domain(train, labels, val, dims=16)
    grouped = fit_domain(train, groups, val, dims=16, group_names=names, val_weights=weights)
    assert np.mean(plain.scores(unseen_small) <= 1.0) < 0.5
    assert np.mean(grouped.scores(unseen_small) <= 1.0) > 0.85
    assert np.mean(grouped.scores(foreign) > 1.0) > 0.99
    assert np.mean(grouped.scores(val_small) <= 1.0) >= 0.9
    assert grouped.groups == names and grouped.class_means.shape == (4, 16)
    grouped.save(tmp_path)
    assert DomainModel.load(tmp_path, grouped.fields()).groups == names
    with pytest.raises(ConfigError, match="do not index"):
        fit_domain(train, groups, val, group_names=names[:2])


def test_weighted_quantile() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    assert weighted_quantile(values, 0.5) == 2.0 and weighted_quantile(values, 0.95) == 4.0
    assert weighted_quantile(values, 0.5, np.array([0.0, 0.0, 1.0, 1.0])) == 3.0
    with pytest.raises(ConfigError):
        weighted_quantile(values, 0.5, np.zeros(4))


def test_domain_images_are_drawn_evenly_from_each_source_and_class() -> None:
    items = [Item(f"big/{i}", i % 2, "train", source="big") for i in range(1000)]
    items += [Item(f"small/{i}", i % 2, "train", source="small") for i in range(40)]
    chosen = _even_sample(items, 400, np.random.default_rng(0))
    counts = {(s, lab): 0 for s in ("big", "small") for lab in (0, 1)}
    for it in chosen:
        counts[(it.source or "", int(it.label or 0))] += 1
    # the small source gives all it has (20 + 20); the big one shares the rest evenly
    assert counts == {("big", 0): 180, ("big", 1): 180, ("small", 0): 20, ("small", 1): 20}
    names, index, weights = _groups(chosen, chosen)
    assert names == ("big/real", "big/fake", "small/real", "small/fake")
    assert weights is not None and weights.sum() == pytest.approx(2.0)  # one per source
    assert {names[i] for i in index} == set(names)
    single = [Item(f"x/{i}", i % 2, "train") for i in range(10)]
    assert _groups(single, single)[0] is None


def test_selective_risk_counts_coverage_risk_and_aurc() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.55, 0.9, 0.2, 0.8, 0.95])  # wrong: 0.9 (real), 0.2 (fake)
    unsure = np.array([False, True, False, False, False, False])
    r = selective_risk(y, p, 0.5, unsure)
    assert r["coverage"] == pytest.approx(5 / 6)
    assert r["risk"] == pytest.approx(2 / 5)
    assert r["confident_wrong"] == pytest.approx(2 / 6)
    assert r["real_called_fake_confidently"] == pytest.approx(1 / 3)
    # answering everything, the unsure 0.55 (a real) is a third mistake
    assert r["curve_coverage"][-1] == 1.0 and r["curve_risk"][-1] == pytest.approx(3 / 6)
    # a detector whose confidence ranks its mistakes last has a lower AURC
    ranked = np.array([0.01, 0.02, 0.55, 0.45, 0.98, 0.99])
    better = selective_risk(y, ranked, 0.5, np.zeros(6, bool))
    assert better["aurc"] is not None and r["aurc"] is not None
    assert better["aurc"] < r["aurc"]


def test_out_of_domain_images_rank_last() -> None:
    y = np.array([0, 1, 0])
    p = np.array([0.99, 0.9, 0.01])  # the first is confidently wrong, but out of domain
    in_domain = np.array([False, True, True])
    r = selective_risk(y, p, 0.5, ~in_domain, in_domain)
    assert r["risk"] == 0.0 and r["curve_risk"][:2] == [0.0, 0.0]
