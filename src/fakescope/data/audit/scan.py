"""Reading each audited image once: its bytes' sha256, size, format, mode, JPEG quality,
perceptual hash and content kind, in a process pool over chunks of items for large sources."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import NamedTuple

from tqdm.auto import tqdm

from fakescope.data.audit.phash import phash64
from fakescope.data.content_type import content_stats
from fakescope.data.decode import decode_image
from fakescope.data.sources import Item, Source
from fakescope.errors import ImageError

# Below this many items a process pool costs more (start-up, pickling) than it saves.
_POOL_MIN_ITEMS = 2000


class ImageScan(NamedTuple):
    position: int  # in the audited item list (not "index": that would shadow tuple.index)
    sha256: str | None = None
    file_size: int = 0
    format: str | None = None
    width: int = 0
    height: int = 0
    mode: str | None = None
    jpeg_quality: int | None = None
    phash: int | None = None
    error: str | None = None
    content: str | None = None  # "photo" or "graphic" (fakescope.data.content_type)


def _scan_item(source: Source, index: int, item: Item) -> ImageScan:
    try:
        data = source.read_bytes(item)
    except ImageError as exc:
        return ImageScan(index, error=exc.reason)
    digest = hashlib.sha256(data).hexdigest()
    try:
        img, info = decode_image(data, item.path)
        phash = phash64(img)
        content = content_stats(img)["kind"]
    except ImageError as exc:
        # Byte-identical broken files are still duplicates, so keep the digest.
        return ImageScan(index, digest, len(data), error=exc.reason)
    return ImageScan(
        index,
        digest,
        len(data),
        info.format,
        info.width,
        info.height,
        info.mode,
        info.jpeg_quality,
        phash,
        content=content,
    )


_WORKER_SOURCE: Source | None = None


def _init_worker(source: Source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source


def _scan_chunk(chunk: list[tuple[int, Item]]) -> list[ImageScan]:
    assert _WORKER_SOURCE is not None, "worker initializer did not run"
    return [_scan_item(_WORKER_SOURCE, index, item) for index, item in chunk]


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def scan_items(
    source: Source, items: Sequence[Item], *, workers: int | None, progress: bool
) -> list[ImageScan]:
    if workers is None:
        workers = 1 if len(items) < _POOL_MIN_ITEMS else min(_available_cpus(), 8)
    bar = tqdm(
        total=len(items),
        desc="audit",
        unit="img",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
        dynamic_ncols=True,
    )
    try:
        if workers <= 1:
            results = []
            for index, item in enumerate(items):
                results.append(_scan_item(source, index, item))
                bar.update(1)
            return results
        return _scan_in_pool(source, items, workers, bar)
    finally:
        bar.close()


def _scan_in_pool(
    source: Source, items: Sequence[Item], workers: int, bar: tqdm
) -> list[ImageScan]:
    # Many small chunks keep the progress bar smooth and the load balanced; each chunk
    # carries its items, the source itself is sent once per worker.
    chunk_size = max(50, min(1000, len(items) // (workers * 16) or 1))
    indexed = list(enumerate(items))
    chunks = [indexed[i : i + chunk_size] for i in range(0, len(indexed), chunk_size)]
    results: list[ImageScan] = []
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(source,)
    ) as pool:
        pending = {pool.submit(_scan_chunk, chunk) for chunk in chunks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                chunk_results = future.result()
                results.extend(chunk_results)
                bar.update(len(chunk_results))
    results.sort(key=lambda scan: scan.position)
    return results
