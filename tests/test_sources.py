from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import shutil
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from imagegen import make_dataset, save_image

from fakescope.data.sources import (
    VIDEO_PROBLEM,
    ArchiveSource,
    CsvSource,
    FolderSource,
    Item,
    collect_inputs,
    normalize_label,
    open_source,
    read_item_bytes,
)
from fakescope.errors import ImageError, SourceError


def _member_bytes(source) -> dict[str, bytes]:
    """Relative "class/file" name -> bytes, to compare sources of different kinds."""
    out = {}
    for item in source.items:
        tail = item.path.split("::")[-1].replace(os.sep, "/")
        out["/".join(tail.split("/")[-2:])] = source.read_bytes(item)
    return out


# -- labels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["real", "Real", "REAL ", "authentic", "human", "original", "genuine", "pristine", "true"]
    + ["0", "0_real", "_real_"],
)
def test_real_synonyms(name):
    assert normalize_label(name) == 0


@pytest.mark.parametrize(
    "name",
    ["fake", "FAKE", "ai", "AI", "generated", "synthetic", "deepfake", "Deep-Fake", "deepfakes"]
    + ["manipulated", "false", "1", "ai-midjourney", "ai_sd", "fake-stylegan", "1_fake"]
    + ["AI Generated"],
)
def test_fake_synonyms(name):
    assert normalize_label(name) == 1


@pytest.mark.parametrize("name", ["", "cats", "aircraft", "fakeish", "realistic", "2", "images"])
def test_unknown_labels(name):
    assert normalize_label(name) is None


# -- folders -----------------------------------------------------------------------------


def test_folder_source(toy_folder):
    source = FolderSource(toy_folder)
    assert len(source) == 40
    assert source.label_counts() == {"real": 20, "fake": 20}
    assert [it.path for it in source.items] == sorted(it.path for it in source.items)
    assert all(os.path.isabs(it.path) for it in source.items)
    item = next(it for it in source.items if it.path.endswith(os.path.join("real", "0003.png")))
    assert item.label == 0 and item.split is None
    assert source.read_bytes(item) == Path(item.path).read_bytes() == read_item_bytes(item.path)
    assert not source.has_splits
    assert source.skipped == []


def test_folder_fingerprint_is_stable_and_content_free(toy_folder, tmp_path):
    copy = shutil.copytree(toy_folder, tmp_path / "elsewhere")
    assert FolderSource(copy).fingerprint() == FolderSource(toy_folder).fingerprint()
    save_image(copy / "fake" / "extra.png", "fake", seed=99)
    assert FolderSource(copy).fingerprint() != FolderSource(toy_folder).fingerprint()


def test_folder_skips_hidden_and_non_images(toy_folder, tmp_path):
    root = shutil.copytree(toy_folder, tmp_path / "data")
    (root / "README.txt").write_text("about")
    (root / "real" / "notes.txt").write_text("x")
    (root / "real" / "clip.mp4").write_bytes(b"\0")
    (root / "real" / ".DS_Store").write_bytes(b"\0")
    (root / "__MACOSX" / "real").mkdir(parents=True)
    (root / "__MACOSX" / "real" / "._0001.png").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / "fake" / "sub" / "deeper").mkdir(parents=True)
    save_image(root / "fake" / "sub" / "deeper" / "x.jpg", "fake")
    source = FolderSource(root)
    assert source.label_counts() == {"real": 20, "fake": 21}  # recursive within a class
    assert all(os.path.isfile(path) for path, _ in source.skipped)
    reasons = {Path(path).name: reason for path, reason in source.skipped}
    assert reasons == {
        "README.txt": "not inside a class folder",
        "notes.txt": "not an image file extension (.txt)",
        "clip.mp4": VIDEO_PROBLEM,
    }


def test_folder_with_synonyms_and_generators(tmp_path):
    make_dataset(tmp_path, n_per_class=3, real_name="Authentic", fake_name="ai-midjourney")
    save_image(tmp_path / "toy" / "AI_SD" / "a.png", "fake")
    source = FolderSource(tmp_path / "toy")
    assert source.label_counts() == {"real": 3, "fake": 4}
    generators = {it.generator for it in source.items if it.label == 1}
    assert generators == {"midjourney", "sd"}


def test_wrong_folder_names_list_what_was_found(tmp_path):
    for name in ("cats", "dogs"):
        save_image(tmp_path / "pets" / name / "a.png", "real")
    with pytest.raises(SourceError) as caught:
        FolderSource(tmp_path / "pets")
    message = str(caught.value)
    assert "'cats', 'dogs'" in message
    assert "real" in message and "fake" in message and "ai-" in message


def test_partly_wrong_folder_names_are_an_error(tmp_path):
    for name in ("real", "fake", "misc"):
        save_image(tmp_path / "d" / name / "a.png", "real")
    with pytest.raises(SourceError, match="'misc'"):
        FolderSource(tmp_path / "d")


def test_single_wrapper_folder(toy_folder, tmp_path):
    shutil.copytree(toy_folder, tmp_path / "outer" / "dataset-v2")
    source = FolderSource(tmp_path / "outer")
    assert source.label_counts() == {"real": 20, "fake": 20}
    assert source.fingerprint() == FolderSource(toy_folder).fingerprint()


def test_wrapper_without_class_folders_names_the_wrapper(tmp_path):
    (tmp_path / "outer").mkdir()
    (tmp_path / "outer" / "LICENSE").write_text("loose file next to the wrapper")
    save_image(tmp_path / "outer" / "wrap" / "cats" / "a.png", "real")
    save_image(tmp_path / "outer" / "wrap" / "dogs" / "a.png", "real")
    with pytest.raises(SourceError, match=r"inside 'wrap/'.*'cats', 'dogs'"):
        FolderSource(tmp_path / "outer")


def test_split_folders(tmp_path):
    for split in ("train", "Validation", "test"):
        for label in ("real", "fake"):
            save_image(tmp_path / "d" / split / label / "a.png", label)
    source = FolderSource(tmp_path / "d")
    assert source.has_splits
    assert {(it.split, it.label) for it in source.items} == {
        (s, lab) for s in ("train", "val", "test") for lab in (0, 1)
    }


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no class folders"):
        FolderSource(tmp_path / "empty")
    with pytest.raises(SourceError, match="does not exist"):
        open_source(tmp_path / "missing")


# -- archives ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["zip", "tar", "tgz"])
def test_archives_match_folder(toy_folder, tmp_path, layout):
    archive = make_dataset(tmp_path, layout=layout)
    with open_source(archive) as source:
        assert isinstance(source, ArchiveSource)
        assert source.items[0].path.startswith(str(archive) + "::")
        assert source.label_counts() == {"real": 20, "fake": 20}
        assert _member_bytes(source) == _member_bytes(FolderSource(toy_folder))
        assert read_item_bytes(source.items[3].path) == source.read_bytes(source.items[3])
        fingerprint = source.fingerprint()
    assert ArchiveSource(archive).fingerprint() == fingerprint


def test_zip_with_wrapper_macosx_and_directories(toy_folder, tmp_path):
    target = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("dataset/", b"")
        for path in sorted(toy_folder.rglob("*.png")):
            name = f"dataset/{path.parent.name}/{path.name}"
            archive.writestr(name, path.read_bytes())
            archive.writestr(f"__MACOSX/dataset/{path.parent.name}/._{path.name}", b"junk")
        archive.writestr("dataset/labels.txt", b"x")
    source = ArchiveSource(target)
    assert source.label_counts() == {"real": 20, "fake": 20}
    assert source.skipped == [(f"{target}::dataset/labels.txt", "not inside a class folder")]


def test_archive_reads_from_threads(toy_zip):
    source = ArchiveSource(toy_zip)
    expected = [source.read_bytes(it) for it in source.items]
    source.close()  # handles reopen lazily
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(source.read_bytes, source.items * 5))
    assert got == expected * 5


def _child_read(source, queue) -> None:
    queue.put([len(source.read_bytes(it)) for it in source.items])


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_archive_usable_in_worker_processes(toy_tar, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} not available")
    source = ArchiveSource(toy_tar)
    expected = [len(source.read_bytes(it)) for it in source.items]  # parent handle is open
    context = multiprocessing.get_context(method)
    queue = context.Queue()
    process = context.Process(target=_child_read, args=(source, queue))
    process.start()
    got = queue.get(timeout=60)
    process.join(timeout=60)
    assert got == expected
    assert [len(source.read_bytes(it)) for it in source.items] == expected


def test_archive_pickles_without_handles(toy_zip):
    source = ArchiveSource(toy_zip)
    source.read_bytes(source.items[0])
    clone = pickle.loads(pickle.dumps(source))
    assert clone.read_bytes(clone.items[5]) == source.read_bytes(source.items[5])


def test_compressed_tar_cache_is_removed_on_close(tmp_path):
    archive = make_dataset(tmp_path, n_per_class=2, layout="tgz")
    source = ArchiveSource(archive)
    cache = source._reader._tar_path
    assert cache and os.path.exists(cache)
    source.close()
    assert not os.path.exists(cache)
    assert len(source.read_bytes(source.items[0])) > 0  # rebuilt on demand
    source.close()


def test_tar_skips_links(tmp_path):
    target = tmp_path / "links.tar"
    with tarfile.open(target, "w") as archive:
        data = (make_dataset(tmp_path / "src", n_per_class=1) / "real" / "0000.png").read_bytes()
        for name in ("real/a.png", "fake/b.png"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("fake/link.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "b.png"
        archive.addfile(link)
    assert [it.path.split("::")[1] for it in ArchiveSource(target).items] == [
        "fake/b.png",
        "real/a.png",
    ]


def test_missing_member_and_corrupt_archive(toy_zip, tmp_path):
    with pytest.raises(ImageError, match="not found in archive"):
        read_item_bytes(f"{toy_zip}::real/nope.png")
    with pytest.raises(ImageError, match="archive not found"):
        read_item_bytes(f"{tmp_path}/nope.zip::real/a.png")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SourceError, match="cannot read zip"):
        open_source(broken)


# -- CSV ---------------------------------------------------------------------------------


def test_csv_source_relative_paths(toy_csv):
    source = open_source(toy_csv)
    assert isinstance(source, CsvSource)
    assert source.label_counts() == {"real": 20, "fake": 20}
    assert all(it.path.startswith(str(toy_csv.parent / "images")) for it in source.items)
    assert source.read_bytes(source.items[0]) == Path(source.items[0].path).read_bytes()
    assert source.fingerprint() == CsvSource(toy_csv).fingerprint()


def test_csv_fingerprint_follows_file_sizes(toy_csv, tmp_path):
    copy = shutil.copytree(toy_csv.parent, tmp_path / "copy")
    before = CsvSource(copy / "labels.csv").fingerprint()
    save_image(copy / "images" / "img_00000.png", "noise", size=40)
    assert CsvSource(copy / "labels.csv").fingerprint() != before


def test_csv_all_columns_and_path_kinds(toy_folder, toy_zip, tmp_path):
    absolute = toy_folder / "real" / "0000.png"
    (tmp_path / "sub").mkdir()
    shutil.copy(toy_zip, tmp_path / "sub" / "data.zip")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(
        "Path,Label,Split,Group,Generator\n"
        f"{absolute},authentic,train,g1,\n"
        "sub/data.zip::fake/0001.png,ai-midjourney,valid,,\n"
        "sub/data.zip::real/0002.png,0,test,g1,\n"
        "\n"
        "missing.png,1,train,,sdxl\n"
    )
    source = CsvSource(csv_path)
    by_name = {Path(it.path.split("::")[-1]).name: it for it in source.items}
    assert by_name["0000.png"] == Item(str(absolute), 0, "train", "g1", None)
    zipped = by_name["0001.png"]
    assert zipped.path == f"{tmp_path / 'sub' / 'data.zip'}::fake/0001.png"
    assert (zipped.label, zipped.split, zipped.generator) == (1, "val", "midjourney")
    assert by_name["missing.png"].generator == "sdxl"
    assert source.has_splits
    assert source.missing == [str(tmp_path / "missing.png")]
    assert len(source.read_bytes(zipped)) > 0
    with pytest.raises(ImageError, match="file not found"):
        source.read_bytes(by_name["missing.png"])


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("path,label\na.png,cat\n", r"m\.csv:2: unknown label 'cat'"),
        ("path,label\na.png,real\nb.png,real,\n,fake\n", r"m\.csv:4: empty path"),
        ("path,label,split\na.png,real,holdout\n", r"m\.csv:2: unknown split 'holdout'"),
        ("file,label\na.png,real\n", r"missing path"),
        ("", r"empty CSV"),
        ("path,label\na.png,real\na.png,fake\n", r"m\.csv:3: .*already listed on line 2"),
    ],
)
def test_csv_errors_name_the_line(tmp_path, body, pattern):
    save_image(tmp_path / "a.png")
    save_image(tmp_path / "b.png")
    (tmp_path / "m.csv").write_text(body)
    with pytest.raises(SourceError, match=pattern):
        CsvSource(tmp_path / "m.csv")


def test_csv_with_every_file_missing(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\nx.png,real\ny.png,fake\n")
    with pytest.raises(SourceError, match="none of the 2 listed files exist"):
        CsvSource(tmp_path / "m.csv")


def test_open_source_rejects_other_files(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(SourceError, match="cannot use as a data source"):
        open_source(tmp_path / "x.txt")


# -- prediction inputs -------------------------------------------------------------------


def test_collect_inputs(toy_folder, toy_zip, tmp_path):
    single = save_image(tmp_path / "one.jpg", "real")
    (tmp_path / "clip.mp4").write_bytes(b"\0")
    member = f"{toy_zip}::real/0001.png"
    paths, problems = collect_inputs(
        [str(single), str(toy_folder), str(toy_zip), member, str(tmp_path / "nope.png")]
        + [str(tmp_path / "clip.mp4"), str(single)]
    )
    assert paths[0] == str(single)
    assert len(paths) == 1 + 40 + 40  # the repeated single file and member appear once
    assert sum(p.startswith(f"{toy_zip}::") for p in paths) == 40
    assert problems == [
        (str(tmp_path / "nope.png"), "does not exist"),
        (str(tmp_path / "clip.mp4"), VIDEO_PROBLEM),
    ]
    assert "fakescope predict" in VIDEO_PROBLEM  # says where videos are supported
    assert all(len(read_item_bytes(p)) > 0 for p in paths)
