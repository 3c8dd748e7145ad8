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
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fakescope.data.inputs import prepare_or_reason
from fakescope.data.sources import Item
from fakescope.data.transforms import Preprocessing
from fakescope.errors import ImageError

CacheMode = Literal["memory", "disk", "none"]
ReadBytes = Callable[[Item], bytes]


@dataclass
class DecodedSet:
    """Decoded images, labels and paths; `skipped` lists (path, reason) of unreadable items."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def decode_one(item: Item, read_bytes: ReadBytes, pre: Preprocessing) -> np.ndarray:
    """Read and decode one item; raises ImageError naming the file (as predict reports it)."""
    result = prepare_or_reason(lambda: read_bytes(item), item.path, pre.to_uint8)
    if isinstance(result, str):
        raise ImageError(item.path, result)
    return result


def _decode_chunk(
    items: Sequence[Item], read_bytes: ReadBytes, pre: Preprocessing
) -> list[np.ndarray | ImageError]:
    out: list[np.ndarray | ImageError] = []
    for item in items:
        result = prepare_or_reason(partial(read_bytes, item), item.path, pre.to_uint8)
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
) -> DecodedSet:
    """Decode items into one (N, 3, S, S) uint8 tensor; unreadable items are skipped."""
    buffer = np.empty((len(items), *pre.array_shape), dtype=np.uint8)
    keep: list[int] = []
    skipped: list[tuple[str, str]] = []
    chunk = 256
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    threads = threads or min(4, (os.cpu_count() or 1) + 1)
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False)
    with ThreadPoolExecutor(threads) as pool:
        offset = 0
        for results in pool.map(lambda c: _decode_chunk(c, read_bytes, pre), chunks):
            for j, res in enumerate(results):
                if isinstance(res, ImageError):
                    skipped.append((res.path, res.reason))
                else:
                    buffer[offset + j] = res
                    keep.append(offset + j)
            offset += len(results)
            bar.update(len(results))
    bar.close()
    index = np.asarray(keep, dtype=np.int64)
    images = buffer if len(keep) == len(items) else buffer[index]
    labels = torch.tensor([_label(items[i]) for i in keep], dtype=torch.float32)
    return DecodedSet(torch.from_numpy(images), labels, [items[i].path for i in keep], skipped)


def _label(item: Item) -> int:
    return -1 if item.label is None else int(item.label)


def cache_key(items: Sequence[Item], pre: Preprocessing, fingerprint: str) -> str:
    """Identifies a decoded set: the data (fingerprint + item list) and the preprocessing."""
    h = hashlib.sha256()
    h.update(fingerprint.encode())
    h.update(json.dumps(pre.to_dict(), sort_keys=True).encode())
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
) -> DecodedSet:
    """Decode items, or memory-map them from a previous run's disk cache."""
    if mode != "disk":
        return decode_items(items, read_bytes, pre, progress=progress, desc=desc)
    folder = Path(cache_dir or default_cache_dir()) / cache_key(items, pre, fingerprint)
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
        )
    decoded = decode_items(items, read_bytes, pre, progress=progress, desc=desc)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "images.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, decoded.images.numpy())
    os.replace(tmp, array_path)
    meta = {
        "labels": decoded.labels.tolist(),
        "paths": decoded.paths,
        "skipped": [list(s) for s in decoded.skipped],
    }
    meta_path.write_text(json.dumps(meta))
    return decoded


def default_cache_dir() -> Path:
    """$FAKESCOPE_CACHE, else $XDG_CACHE_HOME/fakescope, else ~/.cache/fakescope."""
    if env := os.environ.get("FAKESCOPE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fakescope"


class StreamingDataset(Dataset[tuple[torch.Tensor, float]]):
    """Decodes each image on every access: the uncached path, for data too big to cache.

    Unreadable images yield label -1 and a zero image; the trainer drops them from the batch.
    """

    def __init__(self, items: Sequence[Item], read_bytes: ReadBytes, pre: Preprocessing) -> None:
        self.items = list(items)
        self.read_bytes = read_bytes
        self.pre = pre

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float]:
        item = self.items[index]
        try:
            array = decode_one(item, self.read_bytes, self.pre)
        except ImageError:
            return torch.zeros(self.pre.array_shape, dtype=torch.uint8), -1.0
        return torch.from_numpy(array), float(_label(item))
