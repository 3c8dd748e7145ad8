"""Recipe sources by generator (names, globs, balanced quotas) and format neutralisation."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.config import validate_recipe
from fakescope.data.decode import probe_image
from fakescope.data.format_neutral import JpegReencoder, is_jpeg, real_jpeg_qualities
from fakescope.data.multi_source import MultiSource, SourceSpec
from fakescope.data.source_selection import Selection, quotas
from fakescope.data.sources import Item
from fakescope.errors import ConfigError, SourceError
from fakescope.training.trainer import open_training_source

# generator -> (images, origin repository)
GENERATORS = {"Krea 2 turbo": (60, "a/krea"), "GPT-4o": (12, "b/gpt"),
              "GPT-4o / gpt-image-1": (8, "c/gpt"), "DALL-E 2": (5, "d/dalle")}  # fmt: skip


def _image(seed: int, fmt: str, quality: int = 90) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    kwargs = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(out, format=fmt, **kwargs)
    return out.getvalue()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest like `fakescope data sources` writes: AI PNGs of four generators and real
    JPEGs of two origins, 30 and 6 of them."""
    root = tmp_path_factory.mktemp("manifest")
    rows = ["path,label,split,group,generator,source"]
    index = 0
    for generator, (count, origin) in GENERATORS.items():
        for _ in range(count):
            (root / f"f{index}.png").write_bytes(_image(index, "PNG"))
            rows.append(f"f{index}.png,fake,,,{generator},{origin}")
            index += 1
    for origin, count, quality in (("e/photos", 30, 80), ("f/photos", 6, 92)):
        for _ in range(count):
            (root / f"r{index}.jpg").write_bytes(_image(index, "JPEG", quality))
            rows.append(f"r{index}.jpg,real,,,,{origin}")
            index += 1
    (root / "corpus.csv").write_text("\n".join(rows) + "\n")
    return root


def _recipe(sources: list[dict[str, object]]) -> dict[str, object]:
    return {"name": "pick", "data": {"sources": sources}}


def test_generators_are_chosen_by_name_and_glob(manifest: Path) -> None:
    recipe = validate_recipe(_recipe([
        {"path": "corpus.csv", "name": "gpt", "generators": ["GPT-4o*"]},
        {"path": "corpus.csv", "name": "others", "exclude_generators": ["GPT-4o*", "Krea*"]},
        {"path": "corpus.csv", "name": "krea", "generators": ["Krea 2 turbo"]},
    ]))  # fmt: skip
    source = open_training_source(None, recipe, manifest)
    by = Counter((it.source, it.generator) for it in source.items)
    assert by == {("gpt", "GPT-4o"): 12, ("gpt", "GPT-4o / gpt-image-1"): 8,
                  ("others", "DALL-E 2"): 5, ("others", None): 36,
                  ("krea", "Krea 2 turbo"): 60}  # fmt: skip


def test_a_pattern_that_matches_nothing_is_refused_naming_the_field(manifest: Path) -> None:
    recipe = validate_recipe(_recipe([
        {"path": "corpus.csv", "name": "ok"},
        {"path": "corpus.csv", "name": "typo", "generators": ["GPT-4o*", "Krea 3*"]},
    ]))  # fmt: skip
    with pytest.raises(SourceError) as caught:
        open_training_source(None, recipe, manifest)
    text = str(caught.value)
    assert "data.sources[1] (typo).generators: 'Krea 3*' matches no generator" in text
    assert "'Krea 2 turbo'" in text  # the generators there are, to pick from
    recipe = validate_recipe(_recipe([
        {"path": "corpus.csv", "name": "bad", "exclude_generators": ["Midjourney"]},
    ]))  # fmt: skip
    with pytest.raises(SourceError, match=r"data.sources\[0\] \(bad\).exclude_generators"):
        open_training_source(None, recipe, manifest)


def test_balance_needs_a_cap_and_patterns_must_not_be_empty() -> None:
    with pytest.raises(ConfigError, match="balance 'generator' needs max_items"):
        validate_recipe(_recipe([{"path": "x.csv", "balance": "generator"}]))
    with pytest.raises(ConfigError, match="must not be empty"):
        validate_recipe(_recipe([{"path": "x.csv", "generators": [" "]}]))
    with pytest.raises(ConfigError, match="balance"):
        validate_recipe(_recipe([{"path": "x.csv", "balance": "size", "max_items": 20}]))


def test_quotas_share_equally_and_small_groups_give_all_they_have() -> None:
    assert quotas([60, 12, 8, 5], 40) == [15, 12, 8, 5]
    assert sum(quotas([60, 12, 8, 5], 40)) == 40
    assert quotas([60, 12, 8, 5], 1000) == [60, 12, 8, 5]
    assert quotas([10, 10], 7) in ([4, 3], [3, 4])
    assert quotas([0, 5], 3) == [0, 3]


def test_balanced_subsample_no_generator_or_origin_dominates(manifest: Path) -> None:
    source = MultiSource(
        [SourceSpec("corpus.csv", "fakes", max_items=24,
                    selection=Selection(("*",), balance="generator")),
         SourceSpec("corpus.csv", "reals", max_items=12,
                    selection=Selection(None, ("*",), balance="origin"))],
        data_dir=manifest,
    )  # fmt: skip
    fakes = Counter(it.generator for it in source.items if it.source == "fakes")
    assert fakes == {"Krea 2 turbo": 6, "GPT-4o": 6, "GPT-4o / gpt-image-1": 7, "DALL-E 2": 5}
    reals = [it for it in source.items if it.source == "reals"]
    assert len(reals) == 12 and all(it.label == 0 for it in reals)
    again = MultiSource(
        [SourceSpec("corpus.csv", "fakes", max_items=24,
                    selection=Selection(("*",), balance="generator"))], data_dir=manifest,
    )  # fmt: skip
    assert [it.path for it in again.items] == sorted(
        it.path for it in source.items if it.source == "fakes"
    )  # seeded


def test_a_selection_changes_the_cache_fingerprint(manifest: Path) -> None:
    plain = MultiSource([SourceSpec("corpus.csv", "x")], data_dir=manifest)
    picked = MultiSource(
        [SourceSpec("corpus.csv", "x", selection=Selection(("GPT*",)))], data_dir=manifest
    )
    assert plain.fingerprint() != picked.fingerprint()


def test_reencoding_gives_non_jpeg_files_the_reals_qualities(manifest: Path) -> None:
    source = MultiSource([SourceSpec("corpus.csv", "all")], data_dir=manifest)
    qualities = real_jpeg_qualities(source.items, source.read_bytes, limit=20)
    assert set(qualities) == {80, 92}  # the reals of both origins
    reencode = JpegReencoder(source.read_bytes, qualities, seed=3)
    png = next(it for it in source.items if it.label == 1)
    jpeg = next(it for it in source.items if it.label == 0)
    data = reencode(png)
    assert is_jpeg(data) and not is_jpeg(source.read_bytes(png))
    assert probe_image(data, png.path).jpeg_quality == reencode.quality_for(png.path)
    assert reencode(png) == data  # the same quality for a path at every call
    assert reencode(jpeg) == source.read_bytes(jpeg)  # JPEG files are left as they are
    drawn = Counter(reencode.quality_for(it.path) for it in source.items if it.label == 1)
    assert set(drawn) == {80, 92}


def test_reals_qualities_fall_back_when_no_real_is_a_jpeg() -> None:
    items = [Item("x.png", 0), Item("y.png", 1)]
    png = _image(0, "PNG")
    assert real_jpeg_qualities(items, lambda it: png) == list(range(75, 96))
    with pytest.raises(ValueError, match="1-100"):
        JpegReencoder(lambda it: png, [0, 50])


def test_reencode_option_in_recipes() -> None:
    recipe = validate_recipe({"name": "r", "data": {"augment": {"reencode": "non_jpeg"}}})
    assert recipe.data.augment.reencode == "non_jpeg"
    with pytest.raises(ConfigError, match="reencode"):
        validate_recipe({"name": "r", "data": {"augment": {"reencode": "always"}}})


def test_the_shipped_modern_recipe_validates() -> None:
    from fakescope.config import load_recipe

    recipe = load_recipe("general_modern")
    families = [s for s in recipe.data.sources if s.generators]
    assert len(families) == 9 and recipe.data.augment.reencode == "non_jpeg"
    assert recipe.decision.max_real_called_fake == 0.05
    assert recipe.decision.max_fake_called_real == 0.10


def test_the_shipped_general_is_a_90_minute_chain_of_its_recipes() -> None:
    """`general` (the default's whole-image member) is stage 1 (`general`, from ImageNet
    weights) then `general_modern` for what is left of the chain's 90 minutes (issue 26's
    budget), and the recipe says so: it starts from stage 1's bundle with total_minutes 90."""
    from fakescope.bundle import read_meta, resolve_bundle_path
    from fakescope.config import load_recipe

    recipe = load_recipe("general_modern")
    assert recipe.train.total_minutes == 90 and recipe.train.max_minutes is None
    assert recipe.model.pretrained_path == "runs/general/bundle"
    assert load_recipe("general").model.pretrained and load_recipe("general").train.max_minutes
    training = read_meta(resolve_bundle_path("general"))["training"]
    assert training["recipe"]["name"] == "general_modern"
    assert training["chain_train_seconds"] <= 90 * 60 + 5  # the clock stops on a step
    assert training["train_seconds"] < training["chain_train_seconds"]  # a later stage


def test_training_decodes_non_jpeg_files_re_encoded(manifest: Path, tmp_path: Path) -> None:
    """With augment.reencode the trainer's training images of PNG files carry JPEG
    compression (they differ from the PNG's pixels); its validation images do not."""
    from tiny import tiny_recipe_data

    from fakescope.data.cache import decode_one
    from fakescope.training.run_manifest import prepare_split
    from fakescope.training.trainer import Trainer

    data = tiny_recipe_data(epochs=1)
    data["data"] |= {"input_size": 32, "sources": [{"path": "corpus.csv", "name": "all"}]}
    for reencode in ("none", "non_jpeg"):
        data["data"]["augment"] = {"reencode": reencode}
        recipe = validate_recipe(data)
        source = open_training_source(None, recipe, manifest)
        split_file = tmp_path / f"{reencode}.csv"
        items = prepare_split(source, recipe.data, seed=0, manifest_path=split_file, progress=False)
        trainer = Trainer(recipe, tmp_path / reencode, source=source, items=items, progress=False)
        trainer._load_data()
        pngs = [i for i, p in enumerate(trainer.train_set.paths) if p.endswith(".png")]
        plain = [decode_one(Item(trainer.train_set.paths[i], 1), source.read_bytes, trainer.pre)
                 for i in pngs]  # fmt: skip
        same = [np.array_equal(trainer.train_set.images[i].numpy(), want)
                for i, want in zip(pngs, plain, strict=True)]  # fmt: skip
        if reencode == "none":
            assert all(same) and trainer.reencoder is None
        else:
            assert not any(same)  # JPEG blocks in every PNG's training pixels
            assert set(trainer.reencoder.qualities) == {80, 92}
        val_png = next(it for it in trainer.val_items if it.path.endswith(".png"))
        index = trainer.val_set.paths.index(val_png.path)
        want = decode_one(val_png, source.read_bytes, trainer.pre)
        assert np.array_equal(trainer.val_set.images[index].numpy(), want)
