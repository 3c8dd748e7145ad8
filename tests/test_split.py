from __future__ import annotations

import shutil
from collections import Counter, defaultdict

import numpy as np
import pytest
from imagegen import save_image

from fakescope.data.sources import CsvSource, FolderSource, Item
from fakescope.data.split_assignment import (
    kfold_items,
    read_manifest,
    split_items,
    split_source,
    write_manifest,
)
from fakescope.errors import ConfigError


def _items(n: int = 1000, fake_share: float = 0.3, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < fake_share
    return [Item(f"/data/img{i:05d}.png", int(labels[i])) for i in range(n)]


def _random_groups(items: list[Item], seed: int = 0) -> dict[str, str]:
    """Groups of 2-6 items (same label, like exact duplicates) covering ~40% of items."""
    rng = np.random.default_rng(seed)
    groups: dict[str, str] = {}
    by_label = defaultdict(list)
    for item in items:
        by_label[item.label].append(item.path)
    for label, paths in by_label.items():
        position = 0
        while position < len(paths) * 0.4:
            size = int(rng.integers(2, 7))
            for path in paths[position : position + size]:
                groups[path] = f"g{label}-{position}"
            position += size
    return groups


def _splits_of_groups(items: list[Item], groups: dict[str, str]) -> dict[str, set[str]]:
    split_by_path = {it.path: it.split for it in items}
    found: dict[str, set[str]] = defaultdict(set)
    for path, group in groups.items():
        found[group].add(split_by_path[path])
    return found


def test_split_sizes_and_stratification():
    items = _items(2000, fake_share=0.3)
    result = split_items(items, val=0.1, test=0.2, seed=1)
    assert [it.path for it in result] == [it.path for it in items]  # order kept
    sizes = Counter(it.split for it in result)
    assert sizes["train"] == pytest.approx(1400, abs=2)
    assert sizes["val"] == pytest.approx(200, abs=2)
    assert sizes["test"] == pytest.approx(400, abs=2)
    overall = np.mean([it.label for it in items])
    for split in ("train", "val", "test"):
        share = np.mean([it.label for it in result if it.split == split])
        assert share == pytest.approx(overall, abs=0.01)


def test_groups_stay_together_and_stratification_holds():
    items = _items(1500)
    groups = _random_groups(items)
    result = split_items(items, val=0.15, test=0.15, seed=3, groups=groups)
    assert all(len(splits) == 1 for splits in _splits_of_groups(result, groups).values())
    overall = np.mean([it.label for it in items])
    for split in ("train", "val", "test"):
        labels = [it.label for it in result if it.split == split]
        assert len(labels) == pytest.approx(
            len(items) * (0.7 if split == "train" else 0.15), rel=0.05
        )
        assert np.mean(labels) == pytest.approx(overall, abs=0.03)
    # Duplicate groups are recorded in the manifest's group column.
    assert all(it.group == groups[it.path] for it in result if it.path in groups)


def test_item_group_column_is_respected_and_merged_with_duplicate_groups():
    items = [Item(f"/d/{i}.png", i % 2, group=f"person{i // 10}") for i in range(200)]
    # A duplicate pair spanning two persons merges both persons into one group.
    groups = {"/d/5.png": "dup1", "/d/15.png": "dup1"}
    result = split_items(items, val=0.2, test=0.2, seed=0, groups=groups)
    split_of = {it.path: it.split for it in result}
    for person in range(20):
        assert len({split_of[f"/d/{i}.png"] for i in range(person * 10, person * 10 + 10)}) == 1
    assert split_of["/d/0.png"] == split_of["/d/10.png"]  # person0 and person1 merged
    merged = {it.group for it in result if it.path in {f"/d/{i}.png" for i in range(20)}}
    assert len(merged) == 1  # one name for the merged group, so a re-read keeps it


def test_determinism_under_seed():
    items = _items(500)
    groups = _random_groups(items)
    first = split_items(items, seed=7, groups=groups)
    assert split_items(items, seed=7, groups=groups) == first
    assert split_items(items, seed=8, groups=groups) != first
    assert kfold_items(items, 5, seed=7, groups=groups) == kfold_items(
        items, 5, seed=7, groups=groups
    )


def test_test_zero_gives_train_and_val_only():
    result = split_items(_items(300), val=0.2, test=0)
    assert set(Counter(it.split for it in result)) == {"train", "val"}


def test_tiny_sets_and_unlabelled_items():
    items = [Item(f"/x/{i}.png", None if i == 0 else i % 2) for i in range(5)]
    result = split_items(items, val=0.2, test=0.2)
    assert {it.split for it in result} <= {"train", "val", "test"}
    assert split_items([], val=0.1, test=0.1) == []


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5), (1.0, 0.0)])
def test_bad_fractions(val, test):
    with pytest.raises(ConfigError):
        split_items(_items(10), val=val, test=test)


def test_kfold_balanced_stratified_grouped():
    items = _items(1000, fake_share=0.4)
    groups = _random_groups(items, seed=2)
    result = kfold_items(items, 5, seed=0, groups=groups)
    sizes = Counter(it.split for it in result)
    assert set(sizes) == {f"fold{i}" for i in range(5)}
    assert all(abs(n - 200) <= 6 for n in sizes.values())
    for fold in sizes:
        assert np.mean([it.label for it in result if it.split == fold]) == pytest.approx(
            0.4, abs=0.03
        )
    assert all(len(splits) == 1 for splits in _splits_of_groups(result, groups).values())
    with pytest.raises(ConfigError):
        kfold_items(items, 1)


def test_manifest_round_trip(toy_folder, tmp_path):
    items = [
        Item(it.path, it.label, split, group, generator)
        for it, split, group, generator in zip(
            FolderSource(toy_folder).items,
            ["train", "val", "test", "fold3"] * 10,
            ["g1", None, "g2", None] * 10,
            [None, "sdxl"] * 20,
            strict=True,
        )
    ]
    manifest = tmp_path / "out" / "manifest.csv"
    write_manifest(items, manifest)
    assert manifest.read_text().splitlines()[0] == "path,label,split,group,generator,source"
    assert "real" in manifest.read_text() and "fake" in manifest.read_text()
    source = read_manifest(manifest)
    assert isinstance(source, CsvSource)
    assert source.items == sorted(items, key=lambda it: it.path)
    assert not list(manifest.parent.glob(".*tmp"))  # no leftover temporary file


def test_split_source_keeps_duplicates_together(toy_folder, tmp_path):
    root = shutil.copytree(toy_folder, tmp_path / "data")
    for i in range(0, 20, 2):  # ten real duplicates
        shutil.copy(root / "real" / f"{i:04d}.png", root / "real" / f"{i:04d}_copy.png")
    save_image(root / "fake" / "extra.png", "fake", seed=5)
    shutil.copy(root / "fake" / "extra.png", root / "fake" / "extra_copy.png")
    source = FolderSource(root)
    out = tmp_path / "manifest.csv"
    items = split_source(source, out=out, val=0.2, test=0.2, seed=0, progress=False)
    split_of = {it.path: it.split for it in items}
    for i in range(0, 20, 2):
        original = str(root / "real" / f"{i:04d}.png")
        assert split_of[original] == split_of[original.replace(".png", "_copy.png")]
    assert read_manifest(out).items == items
    counts = Counter(it.split for it in items)
    assert counts["val"] > 0 and counts["test"] > 0

    folds = split_source(source, out=tmp_path / "folds.csv", folds=3, progress=False)
    assert {it.split for it in folds} == {"fold0", "fold1", "fold2"}
    fold_of = {it.path: it.split for it in folds}
    assert (
        fold_of[str(root / "fake" / "extra.png")] == fold_of[str(root / "fake" / "extra_copy.png")]
    )
