"""Penultimate embeddings, t-SNE and its plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from imagegen import smooth_image
from PIL import Image
from tiny import tiny_model

from fakescope.bundle import BundleMeta
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, TorchDetector
from fakescope.errors import ConfigError
from fakescope.evaluation.embeddings import (
    embed_files,
    embed_images,
    has_opentsne,
    plot_tsne,
    plot_tsne_compare,
    tsne_2d,
)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return TorchDetector(
        tiny_model(), BundleMeta("resnet_se", Preprocessing(input_size=32)), device="cpu"
    )


def clusters(n: int = 60, dims: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    features = rng.normal(size=(n, dims)) + labels[:, None] * 6.0
    return features.astype(np.float32), labels


def test_embeddings_have_shape_n_by_d(detector: Detector, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(smooth_image(rng, 40)) for _ in range(5)]
    features = embed_images(detector, images, batch_size=2)
    assert features.shape == (5, 32) and features.dtype == np.float32
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        img.save(paths[-1])
    (tmp_path / "bad.png").write_bytes(b"nope")
    paths.insert(2, tmp_path / "bad.png")
    result = embed_files(detector, paths, batch_size=3, progress=False)
    assert result.features.shape == (5, 32)
    assert result.indices == [0, 1, 3, 4, 5]
    assert [p for p, _ in result.skipped] == [str(tmp_path / "bad.png")]
    np.testing.assert_allclose(result.features, features, atol=1e-5)
    # the same as the model's own pre-logits
    batch = detector.preprocessing.normalize(detector.preprocessing.batch_from_images(images))
    with torch.no_grad():
        expected = detector.model.forward_head(
            detector.model.forward_features(batch), pre_logits=True
        )
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "backend",
    [
        "sklearn",
        pytest.param(
            "opentsne",
            marks=pytest.mark.skipif(not has_opentsne(), reason="openTSNE not installed"),
        ),
    ],
)
def test_tsne_is_deterministic_under_a_seed(backend: str) -> None:
    features, labels = clusters()
    a = tsne_2d(features, seed=3, backend=backend)
    b = tsne_2d(features, seed=3, backend=backend)
    assert a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # the two clusters stay apart in the map
    gap = np.linalg.norm(a[labels == 0].mean(0) - a[labels == 1].mean(0))
    spread = a[labels == 0].std(0).mean()
    assert gap > 2 * spread


def test_tsne_handles_tiny_and_bad_input() -> None:
    assert tsne_2d(np.zeros((3, 5))).shape == (3, 2)
    assert tsne_2d(clusters(n=10)[0], backend="sklearn").shape == (10, 2)
    with pytest.raises(ConfigError, match="NaN"):
        tsne_2d(np.full((10, 3), np.nan))
    with pytest.raises(ConfigError, match="backend"):
        tsne_2d(np.zeros((10, 3)), backend="umap")


def test_plots_write_pngs_and_count_mistakes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 2))
    labels = np.arange(50) % 2
    predicted = labels.copy()
    predicted[[0, 2, 4]] = 1  # three reals called fake
    predicted[[1]] = 0  # one fake called real
    stats = plot_tsne(points, labels, predicted, tmp_path / "t" / "tsne.png", title="toy")
    assert stats["n"] == 50 and stats["misclassified"] == 4
    assert stats["per_label"] == {
        "real": {"n": 25, "misclassified": 3},
        "fake": {"n": 25, "misclassified": 1},
    }
    with Image.open(stats["path"]) as png:
        assert png.format == "PNG"
    both = plot_tsne_compare(
        points, points * 2, labels, predicted, labels, tmp_path / "compare.png", title="tuning"
    )
    assert both["a"]["misclassified"] == 4 and both["b"]["misclassified"] == 0
    with Image.open(both["path"]) as png:
        assert png.width > png.height
    assert plot_tsne(points, labels, None, tmp_path / "plain.png")["misclassified"] == 0
    with pytest.raises(ConfigError, match="predictions"):
        plot_tsne(points, labels, predicted[:10], tmp_path / "bad.png")
