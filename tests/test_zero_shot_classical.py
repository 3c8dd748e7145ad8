"""The classical (CALIC / LOCO-I style) coder of the zero-shot kind: a valid lossless coder
(normalised, causal), fitted in seconds, its gap features the same in torch and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from coder_images import batch, smooth_image

from fakescope.kinds.zero_shot.classical import ClassicalCoder, fit_classical
from fakescope.kinds.zero_shot.coder import log_pmf, log_prob, pyramid
from fakescope.kinds.zero_shot.onnx_graph import FeatureSession, export_features
from fakescope.kinds.zero_shot.statistic import GapFeatures, crop_features, entropy_bits


@pytest.fixture(scope="module")
def fitted() -> ClassicalCoder:
    rng = np.random.default_rng(0)
    crops = batch([smooth_image(rng, 32) for _ in range(24)])
    coder, summary = fit_classical(crops, steps=40, batch=8)
    assert summary["train_bits"] < summary["train_bits_after_least_squares"] + 0.05
    return coder


def test_each_sub_pixel_distribution_sums_to_one_over_256_values(fitted: ClassicalCoder) -> None:
    rng = np.random.default_rng(1)
    x0 = batch([smooth_image(rng, 32), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)])
    with torch.no_grad():
        for params, x in fitted.level_params(x0):
            logp = log_pmf(params, x, 1)
            assert logp.shape[2] == 256
            assert torch.allclose(logp.exp().sum(dim=2), torch.ones(1), atol=1e-5)
            picked = logp.gather(2, x.long().unsqueeze(2)).squeeze(2)
            assert torch.allclose(picked, log_prob(params, x, 1), atol=1e-4)
            entropy = -(logp.exp() * logp).sum(dim=2) / np.log(2)
            assert torch.allclose(entropy, entropy_bits(params, x, 1), atol=1e-3)


def test_each_prediction_reads_only_what_is_already_decoded(fitted: ClassicalCoder) -> None:
    """Changing one sub-pixel of a level changes no distribution before it in the coding
    order (raster order, red then green then blue), so a decoder can follow the coder."""
    rng = np.random.default_rng(2)
    pyr = pyramid(batch([smooth_image(rng, 32)]))
    x, coarse = pyr[0], pyr[1]
    with torch.no_grad():
        means, scales = fitted.level_distribution(0, x, coarse)
        for i, j, c in ((5, 7, 0), (10, 3, 1), (20, 30, 2), (0, 0, 1)):
            changed = x.clone()
            changed[0, c, i, j] = 255.0 - changed[0, c, i, j]
            m2, s2 = fitted.level_distribution(0, changed, coarse)
            order = torch.arange(32 * 32 * 3).view(32, 32, 3).permute(2, 0, 1)
            before = order <= (i * 32 + j) * 3 + c  # this sub-pixel and everything before it
            assert torch.equal(m2[0][before], means[0][before])
            assert torch.equal(s2[0][before], scales[0][before])
            assert not torch.equal(m2, means)  # and it is read by what comes after


def test_a_constant_image_costs_far_less_than_noise(fitted: ClassicalCoder) -> None:
    rng = np.random.default_rng(5)
    constant = np.full((32, 32, 3), 90, dtype=np.uint8)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    smooth = smooth_image(rng, 32)
    with torch.no_grad():
        cost = fitted.total_bits_per_subpixel(batch([constant, noise, smooth]))
        untrained = ClassicalCoder().total_bits_per_subpixel(batch([smooth]))
    assert cost[1] > 7.0
    assert cost[0] < 0.4 * cost[1]
    assert cost[2] < untrained[0] - 0.5  # fitting helps on what it was fitted on


def test_gap_statistic_is_the_same_in_torch_and_onnx(fitted: ClassicalCoder) -> None:
    rng = np.random.default_rng(6)
    crops = batch(
        [smooth_image(rng), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), smooth_image(rng)]
    )
    expected = crop_features(GapFeatures(fitted).eval(), crops).numpy()
    got = FeatureSession(export_features(fitted, 64))(crops)
    assert got.shape == expected.shape == (3, 6)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert expected[1, 0] > expected[0, 0] + 3  # noise costs more than a smooth image
