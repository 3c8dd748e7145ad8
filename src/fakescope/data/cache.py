"""Decode a data set once into a uint8 tensor, kept in memory or memory-mapped on disk.

Small images (CIFAKE is 32x32) cost far more to decode than to train on, so an epoch reads
from this cache instead of JPEG files. Unreadable images are reported and skipped here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fakescope.cache_dir import default_cache_dir
from fakescope.data.content_type import content_stats
from fakescope.data.inputs import prepare_or_reason
from fakescope.data.sources import Item
from fakescope.data.transforms import Preprocessing
from fakescope.errors import ImageError
from fakescope.faces import FaceSelection, FaceSelector
from fakescope.threads import worker_count

CacheMode = Literal["memory", "disk", "none"]
ReadBytes = Callable[[Item], bytes]


@dataclass
class DecodedSet:
    """Decoded images, labels and paths; `skipped` lists (path, reason) of unreadable items."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sizes: np.ndarray | None = None  # (N, 2) width, height of the images as decoded
    faces: list[FaceSelection] | None = None  # with a face selector: what each one shows
    # with content=True: what each scored image shows, 'photo' or 'graphic' (content_type)
    contents: list[str] | None = None

    def __len__(self) -> int:
        return len(self.paths)


def decode_one(item: Item, read_bytes: ReadBytes, pre: Preprocessing) -> np.ndarray:
    """Read and decode one item; raises ImageError naming the file (as predict reports it)."""
    result = prepare_or_reason(lambda: read_bytes(item), item.path, pre.to_uint8)
    if isinstance(result, str):
        raise ImageError(item.path, result)
    return result


Prepped = tuple[np.ndarray, tuple[int, int], str | None]
"""One decoded image: its model input, its (width, height) and, where asked, its content."""
Decoded = Prepped | tuple[np.ndarray, tuple[int, int], str | None, FaceSelection]


def _with_size(pre: Preprocessing, content: bool, img: Image.Image) -> Prepped:
    return pre.to_uint8(img), img.size, content_stats(img)["kind"] if content else None


def _decode_face_chunk(
    items: Sequence[Item],
    read_bytes: ReadBytes,
    pre: Preprocessing,
    faces: FaceSelector,
    content: bool = False,
) -> list[Decoded | ImageError]:
    """Each item's largest face (one face search for the chunk), cropped by the policy and
    prepared, with the crop's size, what it shows (with `content`) and the selection; or why
    the item cannot be read. The size is the crop's: what the detector sees, and what its
    domain is measured on."""
    decoded = [prepare_or_reason(partial(read_bytes, it), it.path, lambda i: i) for it in items]
    images = [d for d in decoded if not isinstance(d, str)]
    chosen = iter(faces.largest(images))
    out: list[Decoded | ImageError] = []
    for item, result in zip(items, decoded, strict=True):
        if isinstance(result, str):
            out.append(ImageError(item.path, result))
            continue
        selection = next(chosen)
        prepared = prepare_or_reason(selection.image, item.path, partial(_with_size, pre, content))
        if isinstance(prepared, str):
            out.append(ImageError(item.path, prepared))
        else:
            out.append((*prepared, selection))
    return out


def _decode_chunk(
    items: Sequence[Item], read_bytes: ReadBytes, pre: Preprocessing, content: bool = False
) -> list[Prepped | ImageError]:
    """Each item's model input, original (width, height) and (with `content`) what it
    shows, or why it cannot be read."""
    out: list[Prepped | ImageError] = []
    prepare = partial(_with_size, pre, content)
    for item in items:
        result = prepare_or_reason(partial(read_bytes, item), item.path, prepare)
        out.append(ImageError(item.path, result) if isinstance(result, str) else result)
    return out


def decode_items(
    items: Sequence[Item],
    read_bytes: ReadBytes,
    pre: Preprocessing,
    *,
    progress: bool = True,
    desc: str = "decode",
    threads: int | None = None,
    faces: FaceSelector | None = None,
    content: bool = False,
) -> DecodedSet:
    """Decode items into one (N, 3, S, S) uint8 tensor; unreadable items are skipped.

    `faces`: each image's largest face (cropped by the selector's policy) instead of the
    whole image, or the whole image when it has none; `DecodedSet.faces` says which.
    `content`: what each image scored shows ('photo' or 'graphic', from the decoded image:
    `fakescope.data.content_type`) in `DecodedSet.contents`, as the verdict pipeline's
    `content_of` says it."""
    buffer = np.empty((len(items), *pre.array_shape), dtype=np.uint8)
    sizes = np.zeros((len(items), 2), dtype=np.int32)
    selections: dict[int, FaceSelection] = {}
    kinds: dict[int, str | None] = {}
    keep: list[int] = []
    skipped: list[tuple[str, str]] = []
    chunk = 256 if faces is None else 32  # full-size images wait for one face search
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    threads = threads or worker_count()
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False)

    def decode_chunk(c: Sequence[Item]) -> Sequence[Decoded | ImageError]:
        if faces is None:
            return _decode_chunk(c, read_bytes, pre, content)
        return _decode_face_chunk(c, read_bytes, pre, faces, content)

    with ThreadPoolExecutor(threads) as pool:
        offset = 0
        for results in pool.map(decode_chunk, chunks):
            for j, res in enumerate(results):
                if isinstance(res, ImageError):
                    skipped.append((res.path, res.reason))
                else:
                    buffer[offset + j], sizes[offset + j] = res[0], res[1]
                    kinds[offset + j] = res[2]
                    if len(res) == 4:
                        selections[offset + j] = res[3]
                    keep.append(offset + j)
            offset += len(results)
            bar.update(len(results))
    bar.close()
    index = np.asarray(keep, dtype=np.int64)
    images = buffer if len(keep) == len(items) else buffer[index]
    labels = torch.tensor([_label(items[i]) for i in keep], dtype=torch.float32)
    paths = [items[i].path for i in keep]
    chosen = None if faces is None else [selections[i] for i in keep]
    contents = [str(kinds[i]) for i in keep] if content else None
    return DecodedSet(
        torch.from_numpy(images), labels, paths, skipped, sizes[index], chosen, contents
    )


def _label(item: Item) -> int:
    return -1 if item.label is None else int(item.label)


def cache_key(
    items: Sequence[Item], pre: Preprocessing, fingerprint: str, faces: FaceSelector | None = None
) -> str:
    """Identifies a decoded set: the data (fingerprint + item list), the preprocessing and,
    for face crops, the crop policy (sets decoded without faces keep their old keys)."""
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update(json.dumps(pre.to_dict(), sort_keys=True).encode())
    if faces is not None:
        h.update(json.dumps({"faces": faces.policy.cache_identity()}, sort_keys=True).encode())
    for item in items:
        h.update(f"{item.path}\t{item.label}\n".encode())
    return h.hexdigest()[:24]


def load_or_decode(
    items: Sequence[Item],
    read_bytes: ReadBytes,
    pre: Preprocessing,
    *,
    fingerprint: str,
    mode: CacheMode = "memory",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    desc: str = "decode",
    faces: FaceSelector | None = None,
) -> DecodedSet:
    """Decode items (their largest faces, with `faces`), or memory-map them from a previous
    run's disk cache (which keeps the pixels, not the face selections)."""
    if mode != "disk":
        return decode_items(items, read_bytes, pre, progress=progress, desc=desc, faces=faces)
    folder = Path(cache_dir or default_cache_dir()) / cache_key(items, pre, fingerprint, faces)
    meta_path, array_path = folder / "meta.json", folder / "images.npy"
    if meta_path.exists() and array_path.exists():
        meta = json.loads(meta_path.read_text())
        # copy-on-write map: pages load lazily and the tensor stays writable for torch
        array = np.load(array_path, mmap_mode="c")
        return DecodedSet(
            torch.from_numpy(array),
            torch.tensor(meta["labels"], dtype=torch.float32),
            meta["paths"],
            [(path, reason) for path, reason in meta["skipped"]],
            np.asarray(meta["sizes"], dtype=np.int32) if meta.get("sizes") else None,
        )
    decoded = decode_items(items, read_bytes, pre, progress=progress, desc=desc, faces=faces)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "images.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, decoded.images.numpy())
    os.replace(tmp, array_path)
    meta = {
        "labels": decoded.labels.tolist(),
        "paths": decoded.paths,
        "skipped": [list(s) for s in decoded.skipped],
        "sizes": None if decoded.sizes is None else decoded.sizes.tolist(),
    }
    meta_path.write_text(json.dumps(meta))
    return decoded


class StreamingDataset(Dataset[tuple[torch.Tensor, float]]):
    """Decodes each image on every access: the uncached path, for data too big to cache.

    Unreadable images yield label -1 and a zero image; the trainer drops them from the batch.
    """

    def __init__(
        self,
        items: Sequence[Item],
        read_bytes: ReadBytes,
        pre: Preprocessing,
        faces: FaceSelector | None = None,
    ) -> None:
        self.items = list(items)
        self.read_bytes = read_bytes
        self.pre = pre
        self.faces = faces  # each worker process finds faces with its own finder

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        item = self.items[index]
        try:
            if self.faces is None:
                array = decode_one(item, self.read_bytes, self.pre)
            else:
                result = _decode_face_chunk([item], self.read_bytes, self.pre, self.faces)[0]
                if isinstance(result, ImageError):
                    raise result
                array = result[0]
        except ImageError:
            return torch.zeros(self.pre.array_shape, dtype=torch.uint8), -1.0
        return torch.from_numpy(array), float(_label(item))
