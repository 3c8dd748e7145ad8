"""The real photographs the coder models, and a fixed, seeded hold-out of them.

Only the folders that ``shared/data/real_sources.tsv`` (and the real half of the DHANUSH7140
source of ``modern_sources.tsv``) list, extracted as work trees under one clones folder
(``<owner>+<name>/``), and the ``real/`` halves of the shared archives. Every image belongs to
one split by a hash of (seed, source, path): ``train``, ``calib`` (fits the threshold) or
``test`` (bits per sub-pixel, figures), the same fractions in every source (stratified by
source, grouped by it: a source's images are never re-labelled).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fakescope.data.sources import ARCHIVE_SEP
from fakescope.errors import SourceError
from fakescope.kinds.zero_shot.recipe import RealData

Split = Literal["train", "calib", "test"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

# (source name, repository work tree, folders inside it, folders to leave out), as listed by
# shared/data/real_sources.tsv ("paths" column; "" is the repository's root, not recursive)
REAL_PHOTO_FOLDERS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("imagenet_sample", "EliSchwartz+imagenet-sample-images", ("",), ()),
    ("imagen_det", "ajschumacher+imagen", ("imagen",), ()),
    ("nips17_dev", "dongyp13+Translation-Invariant-Attacks", ("dataset/images",), ()),
    ("bsds500", "BIDS+BSDS500", ("BSDS500/data/images",), ()),
    (
        "grocery",
        "marcusklasson+GroceryStoreDataset",
        ("dataset/train", "dataset/val", "dataset/test"),
        ("dataset/iconic-images-and-descriptions",),
    ),
    ("clothing", "alexeygrigorev+clothing-dataset", ("images",), ()),
    (
        "cats_dogs",
        "chanakya2734+Image-classification-using-CNN",
        ("dataset/training_set", "dataset/test_set", "dataset/breed_dataset"),
        (),
    ),
    ("hardhats", "TigerandRosa+paper_code", ("VOCdevkit/VOC2007/JPEGImages",), ()),
    ("ants_bees", "zhangtao7750+syn", ("hymenoptera_data/train", "hymenoptera_data/val"), ()),
    (
        "coco_val",
        "DHANUSH7140+REAL-VS-AI-IMAGE-DETECTION-AND-SIMILAR-OBJECT-DETECTION",
        ("visionprobe/backend/data/real",),
        (),
    ),
)
SHARED_ARCHIVES = ("cifake_train", "stylegan_faces", "faceswap_lfw", "dfdc_faces", "modern_photos")


@dataclass(frozen=True)
class RealImage:
    """One real photo: its readable path (a file or ``archive::member``) and where from."""

    path: str
    source: str
    split: Split


def assign_split(seed: int, source: str, key: str, calib: float, test: float) -> Split:
    """The split of one image: a fixed function of (seed, source, key)."""
    digest = hashlib.sha256(f"{seed}\0{source}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + calib:
        return "calib"
    return "train"


def _folder_images(root: Path, folder: str, leave_out: Sequence[str]) -> list[Path]:
    base = root / folder if folder else root
    if not base.is_dir():
        raise SourceError(f"{base}: folder listed in real_sources.tsv not found")
    if not folder:  # the repository's root: its files only
        files = [p for p in base.iterdir() if p.is_file()]
    else:
        files = [p for p in base.rglob("*") if p.is_file()]
    out = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() in IMAGE_SUFFIXES and not any(
            rel.startswith(skip + "/") for skip in leave_out
        ):
            out.append(path)
    return sorted(out)


def real_images(
    clones: str | os.PathLike[str],
    shared: str | os.PathLike[str] | None,
    *,
    seed: int,
    calib: float,
    test: float,
    archive_calib: float,
    archive_test: float,
) -> list[RealImage]:
    """Every real photo of the listed repositories (and the shared archives' real halves when
    `shared` is given), each with its split. Raises SourceError for a missing folder."""
    clones = Path(clones)
    out: list[RealImage] = []
    for name, repo, folders, leave_out in REAL_PHOTO_FOLDERS:
        root = clones / repo
        for folder in folders:
            for path in _folder_images(root, folder, leave_out):
                key = path.relative_to(root).as_posix()
                split = assign_split(seed, name, key, calib, test)
                out.append(RealImage(str(path), name, split))
    if shared is not None:
        for name in SHARED_ARCHIVES:
            archive = Path(shared) / f"{name}.zip"
            if not archive.is_file():
                raise SourceError(f"{archive}: shared archive not found")
            with zipfile.ZipFile(archive) as zf:
                members = sorted(
                    m
                    for m in zf.namelist()
                    if m.startswith("real/") and m.lower().endswith(IMAGE_SUFFIXES)
                )
            for member in members:
                split = assign_split(seed, name, member, archive_calib, archive_test)
                out.append(RealImage(f"{archive}{ARCHIVE_SEP}{member}", name, split))
    return out


def archive_items(archive: str | os.PathLike[str], half: str) -> list[str]:
    """The ``archive::member`` paths of one half (``real`` or ``fake``) of a shared archive."""
    with zipfile.ZipFile(archive) as zf:
        return sorted(
            f"{archive}{ARCHIVE_SEP}{m}"
            for m in zf.namelist()
            if m.startswith(f"{half}/") and m.lower().endswith(IMAGE_SUFFIXES)
        )


def recipe_real_images(data: RealData) -> list[RealImage]:
    """`real_images` with the folders, seed and split shares a recipe's ``data`` names."""
    return real_images(
        data.clones,
        data.shared,
        seed=data.seed,
        calib=data.calib,
        test=data.test,
        archive_calib=data.archive_calib,
        archive_test=data.archive_test,
    )
