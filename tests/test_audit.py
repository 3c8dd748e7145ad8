from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pytest
from imagegen import encode, save_image, toy_array
from PIL import Image

from fakescope.data.audit import (
    audit_source,
    find_duplicate_groups,
    format_audit,
    near_pairs,
    phash64,
)
from fakescope.data.sources import ArchiveSource, CsvSource, FolderSource, read_item_bytes

N_PER_CLASS = 16


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """Reals as PNG, fakes as JPEG (a format bias), plus planted duplicates and a broken file.

    Textures rather than the smooth toy images: their perceptual hashes survive re-encoding.

    real/r00_copy.png    exact copy of real/r00.png           (within class)
    fake/r01_in_fake.png exact copy of real/r01.png           (across classes)
    fake/f02_q60.jpg     fake/f02.jpg re-encoded at quality 60 (near duplicate)
    fake/broken.jpg      truncated JPEG                        (unreadable)
    """
    root = tmp_path_factory.mktemp("planted") / "data"
    rng = np.random.default_rng(5)
    for i in range(N_PER_CLASS):
        save_image(root / "real" / f"r{i:02d}.png", "texture", seed=int(rng.integers(1 << 30)))
        save_image(root / "fake" / f"f{i:02d}.jpg", "texture", seed=int(rng.integers(1 << 30)))
    shutil.copy(root / "real" / "r00.png", root / "real" / "r00_copy.png")
    shutil.copy(root / "real" / "r01.png", root / "fake" / "r01_in_fake.png")
    original = np.asarray(Image.open(root / "fake" / "f02.jpg").convert("RGB"))
    (root / "fake" / "f02_q60.jpg").write_bytes(encode(original, "JPEG", quality=60))
    jpeg = (root / "fake" / "f03.jpg").read_bytes()
    (root / "fake" / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return root


@pytest.fixture(scope="module")
def report(planted) -> dict:
    return audit_source(FolderSource(planted), progress=False, workers=1)


def _names(paths) -> set[str]:
    return {f"{Path(p).parent.name}/{Path(p).name}" for p in paths}


def test_report_is_json_and_has_all_keys(report, planted):
    json.dumps(report)
    assert {
        "source",
        "fingerprint",
        "counts",
        "total",
        "per_class",
        "bias_warnings",
        "duplicates",
        "leaks",
        "unreadable",
        "groups",
    } <= set(report)
    assert report["source"] == str(planted)
    assert report["counts"] == {"real": N_PER_CLASS + 1, "fake": N_PER_CLASS + 3}
    assert report["total"] == 2 * N_PER_CLASS + 4


def test_per_class_statistics(report):
    real, fake = report["per_class"]["real"], report["per_class"]["fake"]
    assert real["formats"] == {"PNG": N_PER_CLASS + 1}
    assert fake["formats"] == {"JPEG": N_PER_CLASS + 1, "PNG": 1}  # broken.jpg is unreadable
    assert real["sizes"] == {"32x32": N_PER_CLASS + 1}
    assert real["jpeg_quality"] == {}
    assert fake["jpeg_quality"] == {"75": N_PER_CLASS, "60": 1}
    assert fake["readable"] == fake["count"] - 1
    assert real["width"] == {"mean": 32.0, "median": 32.0}
    assert real["modes"] == {"RGB": N_PER_CLASS + 1}
    assert real["file_size"]["mean"] > 0


def test_exact_duplicates_within_and_across(report):
    duplicates = report["duplicates"]
    assert [_names(g) for g in duplicates["within_class"]] == [
        {"real/r00.png", "real/r00_copy.png"}
    ]
    assert [_names(g) for g in duplicates["across_classes"]] == [
        {"real/r01.png", "fake/r01_in_fake.png"}
    ]
    counts = duplicates["counts"]
    assert counts["within_class_groups"] == 1 and counts["within_class_images"] == 2
    assert counts["across_class_groups"] == 1 and counts["redundant_copies"] == 2


def test_near_duplicate_of_reencoded_jpeg(report):
    near = report["duplicates"]["near"]
    assert len(near) == 1
    assert _names(near[0]["paths"]) == {"fake/f02.jpg", "fake/f02_q60.jpg"}
    assert near[0]["classes"] == ["fake"]
    assert near[0]["max_distance"] <= 4
    assert report["duplicates"]["counts"]["near_groups"] == 1


def test_groups_keep_duplicates_together(report):
    groups = {f"{Path(p).parent.name}/{Path(p).name}": g for p, g in report["groups"].items()}
    assert groups["real/r00.png"] == groups["real/r00_copy.png"]
    assert groups["real/r01.png"] == groups["fake/r01_in_fake.png"]
    assert groups["fake/f02.jpg"] == groups["fake/f02_q60.jpg"]
    assert len(set(groups.values())) == 3 and len(groups) == 6  # singletons are omitted


def test_format_bias_warning(report):
    warnings = [w for w in report["bias_warnings"] if w.startswith("format")]
    assert len(warnings) == 1
    assert "real is PNG 100%" in warnings[0] and "fake is JPEG 94%" in warnings[0]


def test_no_bias_warning_for_balanced_toy_formats(toy_folder):
    report = audit_source(FolderSource(toy_folder), progress=False)
    assert not [w for w in report["bias_warnings"] if w.startswith(("format", "image size"))]


def test_unreadable_listed_with_reason(report):
    assert len(report["unreadable"]) == 1
    entry = report["unreadable"][0]
    assert entry["path"].endswith("broken.jpg") and "truncated" in entry["reason"]


def test_heic_and_avif_are_audited_and_listed_as_sources(tmp_path):
    """Phone photos (HEIC) and web images (AVIF) in a data set: found by their extensions,
    decoded, counted under their formats, and a format bias between classes is flagged."""
    rng = np.random.default_rng(9)
    for i in range(10):  # the fewest per class for a bias warning
        (tmp_path / "real").mkdir(exist_ok=True)
        (tmp_path / "fake").mkdir(exist_ok=True)
        photo = toy_array("real", rng, (48, 40))
        (tmp_path / "real" / f"IMG_{i:04d}.HEIC").write_bytes(encode(photo, "HEIF"))
        (tmp_path / "fake" / f"gen_{i}.avif").write_bytes(encode(photo, "AVIF"))
    source = FolderSource(tmp_path)
    assert len(source.items) == 20
    report = audit_source(source, progress=False, workers=1)
    assert report["unreadable"] == []
    assert report["per_class"]["real"]["formats"] == {"HEIF": 10}
    assert report["per_class"]["fake"]["formats"] == {"AVIF": 10}
    assert report["per_class"]["real"]["sizes"] == {"48x40": 10}
    (bias,) = [w for w in report["bias_warnings"] if w.startswith("format")]
    assert "real is HEIF 100%" in bias and "fake is AVIF 100%" in bias


def test_process_pool_gives_the_same_report(planted, report):
    pooled = audit_source(FolderSource(planted), progress=False, workers=2)
    assert pooled == report


def test_process_pool_reads_archives(toy_zip):
    source = ArchiveSource(toy_zip)
    source.read_bytes(source.items[0])  # parent handle open before the workers fork
    pooled = audit_source(source, progress=False, workers=2)
    assert pooled == audit_source(source, progress=False, workers=1)
    assert pooled["unreadable"] == []


def test_find_duplicate_groups_matches_audit(planted, report):
    assert find_duplicate_groups(FolderSource(planted), progress=False) == report["groups"]


def test_leaks_across_splits(planted, tmp_path):
    def row(name: str, split: str) -> list[str]:
        return [str(planted / name), name.split("/")[0], split]

    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerow(row("real/r00.png", "train"))
        writer.writerow(row("real/r00_copy.png", "val"))
        writer.writerow(row("fake/f02.jpg", "train"))
        writer.writerow(row("fake/f02_q60.jpg", "test"))
        writer.writerow(row("fake/f05.jpg", "train"))
        writer.writerow(row("fake/f06.jpg", "val"))
    report = audit_source(CsvSource(manifest), progress=False)
    leaks = {frozenset(_names(leak["paths"])): leak for leak in report["leaks"]}
    assert set(leaks) == {
        frozenset({"real/r00.png", "real/r00_copy.png"}),
        frozenset({"fake/f02.jpg", "fake/f02_q60.jpg"}),
    }
    exact = leaks[frozenset({"real/r00.png", "real/r00_copy.png"})]
    assert (exact["kind"], exact["splits"]) == ("exact", ["train", "val"])
    near = leaks[frozenset({"fake/f02.jpg", "fake/f02_q60.jpg"})]
    assert (near["kind"], near["splits"]) == ("near", ["test", "train"])


def test_format_audit_summary_truncates_unreadable(report):
    text = format_audit(report)
    assert "real" in text and "fake" in text
    assert "1 exact groups within a class" in text and "1 near-duplicate groups" in text
    assert "format differs" in text
    crowded = dict(report, unreadable=[{"path": f"x{i}.jpg", "reason": "bad"} for i in range(25)])
    text = format_audit(crowded)
    assert "x19.jpg: bad" in text and "x20.jpg" not in text
    assert "... and 5 more" in text


def test_phash64_is_imagehash_phash():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(toy_array(kind, rng, (40, 24))) for kind in ("real", "fake")]
    images += [Image.fromarray(toy_array("noise", rng, 64)), Image.new("RGB", (8, 8), "red")]
    images.append(Image.fromarray(toy_array("real", rng, 32)).convert("L"))
    for img in images:
        assert f"{phash64(img):016x}" == str(imagehash.phash(img))


def test_near_pairs_match_brute_force():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    flips = [np.uint64(1) << np.uint64(b) for b in range(64)]
    close = []
    for value in base[:100]:  # plant neighbours at distance 1..6
        for bit in rng.choice(64, size=int(rng.integers(1, 7)), replace=False):
            value ^= flips[bit]
        close.append(value)
    values = np.unique(np.concatenate([base, np.array(close, dtype=np.uint64)]))
    xor = values[:, None] ^ values[None, :]
    distance = np.array([[bin(int(x)).count("1") for x in row] for row in xor])
    for threshold in (0, 1, 3, 4, 6):
        i, j = np.nonzero(np.triu(distance <= threshold, k=1))
        expected = set(zip(i.tolist(), j.tolist(), strict=True))
        got = {tuple(pair) for pair in near_pairs(values, threshold).tolist()}
        assert got == expected, threshold


def test_near_pairs_in_blocks_for_crowded_buckets(monkeypatch):
    from fakescope.data.audit import phash

    monkeypatch.setattr(phash, "_MAX_PAIRWISE", 7)  # force many blocks per bucket
    rng = np.random.default_rng(0)
    values = np.unique(rng.integers(0, 2**16, size=200, dtype=np.uint64))  # few high bits
    distance = np.array([[bin(int(a ^ b)).count("1") for b in values] for a in values])
    for threshold in (1, 4):
        i, j = np.nonzero(np.triu(distance <= threshold, k=1))
        got = {tuple(pair) for pair in near_pairs(values, threshold).tolist()}
        assert got == set(zip(i.tolist(), j.tolist(), strict=True))


def test_unlabelled_and_empty_inputs(tmp_path):
    save_image(tmp_path / "a.png", "real")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{tmp_path / 'a.png'},\n")
    report = audit_source(CsvSource(manifest), progress=False)
    assert report["counts"] == {"unlabeled": 1}
    assert report["bias_warnings"] == []
    json.dumps(report)


@pytest.mark.integration
@pytest.mark.slow
def test_cifake_subset_finds_duplicates(shared_data):
    zip_path = shared_data / "cifake_train.zip"
    if not zip_path.is_file():
        pytest.skip("cifake_train.zip not available")
    source = ArchiveSource(zip_path)
    # CIFAKE's exact duplicates are fake pairs sharing a "(k)" suffix, so the subset takes
    # the first 2,500 "(6)" fakes and 2,500 reals spread over the whole class.
    fakes = [it for it in source.items if it.label == 1 and it.path.endswith(" (6).jpg")][:2500]
    reals = [it for it in source.items if it.label == 0][::20]
    report = audit_source(source, items=fakes + reals, progress=False, workers=2)
    assert report["total"] == 5000
    assert report["counts"] == {"real": 2500, "fake": 2500}
    counts = report["duplicates"]["counts"]
    assert counts["within_class_groups"] >= 20
    assert counts["across_class_groups"] == 0
    assert report["unreadable"] == []
    for group in report["duplicates"]["within_class"]:
        contents = {read_item_bytes(path) for path in group}
        assert len(contents) == 1
    json.dumps(report)
    print(format_audit(report))


def test_format_audit_is_plain_text(report):
    text = format_audit(report)
    assert "\x1b[" not in text
    assert isinstance(io.StringIO(text).read(), str)
