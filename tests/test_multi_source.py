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
from fakescope.data.sources import CsvSource, Item
from fakescope.detectors import load_detector
from fakescope.errors import ConfigError, SourceError
from fakescope.training.run_manifest import (
    keep_earlier_splits,
    prepare_split,
    read_earlier_splits,
)
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


def test_a_source_of_weight_zero_is_validated_but_never_drawn() -> None:
    sources = ["big"] * 900 + ["left_out"] * 100
    p = sampling_weights(sources, {"big": 1.0, "left_out": 0.0})
    assert p[900:].sum() == 0.0 and p.sum() == pytest.approx(1.0)
    drawn = torch.multinomial(torch.from_numpy(p), 5000, replacement=True)
    assert int(drawn.max()) < 900
    recipe = validate_recipe(
        _recipe(sources=[{"path": "a", "weight": 1.0}, {"path": "b", "weight": 0.0}])
    )
    assert [s.weight for s in recipe.data.sources] == [1.0, 0.0]
    with pytest.raises(ConfigError, match="every source has weight 0"):
        validate_recipe(_recipe(sources=[{"path": "a", "weight": 0.0}]))


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


def test_keep_splits_of_holds_out_what_the_earlier_run_held_out() -> None:
    earlier = {"a": "train", "b": "val", "c": "train", "t": "test"}
    fresh = [
        Item("a", 0, "val"), Item("b", 1, "train"), Item("c", 0, "val", group="g1"),
        Item("t", 1, "train"),
        Item("n1", 0, "train", group="g1"),  # grouped with c, which was trained on: train
        Item("n2", 1, "train", group="g2"), Item("b2", 1, "train", group="g2"),
        Item("n3", 0, "val"),  # new and alone: keeps its fresh split
    ]  # fmt: skip
    earlier["b2"] = "val"  # n2 is a near-duplicate of a held-out image: held out too
    kept = {it.path: it.split for it in keep_earlier_splits(fresh, earlier, "run0")}
    assert kept == {"a": "train", "b": "val", "c": "train", "t": "test", "n1": "train",
                    "n2": "val", "b2": "val", "n3": "val"}  # fmt: skip
    # a group holding both an earlier training and an earlier held-out image keeps each
    mixed = [Item("a", 0, "val", group="g"), Item("b", 1, "train", group="g"),
             Item("n", 0, "train", group="g")]  # fmt: skip
    kept = {it.path: it.split for it in keep_earlier_splits(mixed, earlier, "run0")}
    assert kept == {"a": "train", "b": "val", "n": "val"}
    with pytest.raises(ConfigError, match="none of the 5 images of run0"):
        keep_earlier_splits([Item("x", 0, "val")], earlier, "run0")


def test_a_stage_two_run_keeps_stage_ones_splits(two_sources: Path, tmp_path: Path) -> None:
    specs = [SourceSpec("big/toy.zip", "big", 1.0, max_items=20), SourceSpec("small/toy", "small")]
    recipe = validate_recipe(_recipe(val_fraction=0.3))
    first = prepare_split(
        MultiSource(specs, data_dir=two_sources),
        recipe.data,
        seed=0,
        manifest_path=tmp_path / "run1" / "manifest.csv",
        progress=False,
    )
    earlier = read_earlier_splits(tmp_path / "run1")  # a run folder or its manifest
    assert earlier == read_earlier_splits(tmp_path / "run1" / "manifest.csv")
    specs[0] = SourceSpec("big/toy.zip", "big", 2.0)  # all 60 images now, weighted
    second = prepare_split(
        MultiSource(specs, data_dir=two_sources),
        recipe.data,
        seed=1,
        manifest_path=tmp_path / "run2" / "manifest.csv",
        progress=False,
        earlier=earlier,
    )
    assert len(first) == 40 and len(second) == 80
    assert all(it.split == earlier[it.path] for it in second if it.path in earlier)
    new = [it for it in second if it.path not in earlier]
    assert len(new) == 40 and {it.split for it in new} == {"train", "val"}  # split as usual
    assert CsvSource(tmp_path / "run2" / "manifest.csv").items == second


def test_keep_splits_of_is_refused_before_the_run_starts(two_sources: Path, tmp_path: Path) -> None:
    data = _recipe(sources=[{"path": "small/toy"}], keep_splits_of=str(tmp_path / "stage1"))
    with pytest.raises(ConfigError, match=r"keep_splits_of: .*stage1 is neither a run folder"):
        train(None, validate_recipe(data), tmp_path / "run", progress=False, data_dir=two_sources)
    assert not (tmp_path / "run").exists()  # no half-made run folder to clear away
