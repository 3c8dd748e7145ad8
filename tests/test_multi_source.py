"""Several weighted sources in one run, native-resolution crop training, per-source metrics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from imagegen import make_dataset
from PIL import Image
from tiny import tiny_model_section

from fakescope.config import validate_recipe
from fakescope.data.multi_source import MultiSource, SourceSpec, sampling_weights
from fakescope.data.sources import CsvSource
from fakescope.detectors import load_detector
from fakescope.errors import ConfigError, SourceError
from fakescope.training.trainer import train


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sources")
    make_dataset(root / "big", n_per_class=30, layout="zip", seed=1)
    make_dataset(root / "small", n_per_class=10, layout="folder", size=48, seed=2)
    return root


def _recipe(**data: object) -> dict[str, object]:
    return {
        "name": "tiny-multi",
        "model": tiny_model_section(),
        "data": {"val_fraction": 0.25, **data},
        "train": {"epochs": 2, "batch_size": 8, "precision": "fp32", "threads": 1,
                  "warmup_epochs": 0.5},
    }  # fmt: skip


def test_sources_keep_their_names_and_caps(two_sources: Path) -> None:
    source = MultiSource(
        [SourceSpec("big/toy.zip", "big", 1.0, max_items=20), SourceSpec("small/toy", "small")],
        data_dir=two_sources,
    )
    counts = Counter(it.source for it in source.items)
    assert counts == {"big": 20, "small": 20}
    assert Counter((it.source, it.label) for it in source.items)[("big", 1)] == 10  # stratified
    item = next(it for it in source.items if it.source == "small")
    assert source.read_bytes(item)[:4] == b"\x89PNG"
    with pytest.raises(SourceError, match="unique"):
        MultiSource([SourceSpec("small/toy", "a"), SourceSpec("big/toy.zip", "a")],
                    data_dir=two_sources)  # fmt: skip


def test_a_big_source_cannot_drown_a_small_one() -> None:
    sources = ["big"] * 900 + ["small"] * 100
    p = sampling_weights(sources, {"big": 1.0, "small": 1.0})
    assert p.sum() == pytest.approx(1.0)
    assert p[900:].sum() == pytest.approx(0.5)  # equal weights: half of every epoch each
    p = sampling_weights(sources, {"big": 3.0, "small": 1.0})
    assert p[:900].sum() == pytest.approx(0.75)


def test_recipe_sources_and_source_argument_exclude_each_other(two_sources: Path) -> None:
    recipe = validate_recipe(_recipe(sources=[{"path": "small/toy"}]))
    with pytest.raises(ConfigError, match="drop SOURCE"):
        train(two_sources / "small" / "toy", recipe, two_sources / "r0", data_dir=two_sources)
    with pytest.raises(ConfigError, match="crops=4 needs resize 'native'"):
        validate_recipe(_recipe(crops=4))


@pytest.mark.slow
def test_multi_source_native_crop_run(two_sources: Path, tmp_path: Path) -> None:
    recipe = validate_recipe(
        _recipe(
            sources=[
                {"path": "big/toy.zip", "name": "big", "weight": 1.0},
                {"path": "small/toy", "name": "small", "weight": 2.0},
            ],
            input_size=24,
            resize="native",
            crops=2,
        )
    )
    torch.manual_seed(0)
    result = train(None, recipe, tmp_path / "run", progress=False, data_dir=two_sources)
    manifest = CsvSource(tmp_path / "run" / "manifest.csv")
    per_split = Counter((it.source, it.split) for it in manifest.items)
    assert per_split[("small", "val")] >= 4 and per_split[("big", "val")] >= 12  # each split
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["val_by_source"]) == {"big", "small"}
    card = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "### Per source" in card and "| small |" in card and "2 crops" in card
    detector = load_detector(result.bundle_dir, device="cpu")
    assert detector.preprocessing.crops == 2 and detector.preprocessing.resize == "native"
    (r,) = detector.predict([Image.fromarray(np.full((40, 64, 3), 128, np.uint8))])
    assert r.max_crop_p_fake is not None


def test_degradations_at_native_resolution_get_each_images_own_size(
    two_sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 32 px images, enlarged to 40, are degraded at 32; the 48 px ones are not enlarged."""
    from fakescope.data.transforms import Augmentation

    seen: list[torch.Tensor] = []
    real_call = Augmentation.__call__

    def spy(self: Augmentation, batch: torch.Tensor, generator: torch.Generator,
            native_sides: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        assert native_sides is not None and native_sides.shape == (batch.shape[0],)
        seen.append(native_sides)
        return real_call(self, batch, generator, native_sides)

    monkeypatch.setattr(Augmentation, "__call__", spy)
    recipe = _recipe(
        sources=[{"path": "big/toy.zip", "name": "big"}, {"path": "small/toy", "name": "small"}],
        input_size=40,
        resize="native",
        augment={"degrade": {"p_blur": 1.0, "blur_max": 1.0, "at": "native"}},
    )
    recipe["train"] = {**recipe["train"], "epochs": 1}  # type: ignore[dict-item]
    train(None, validate_recipe(recipe), tmp_path / "run", progress=False, data_dir=two_sources)
    assert seen and set(torch.cat(seen).tolist()) == {0, 32}
