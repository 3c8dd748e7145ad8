"""Shared bits of the benchmark scripts: where the data is, peak memory, machine line, timing,
label CSVs."""

from __future__ import annotations

import csv
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FAKESCOPE_DATA_DIR", REPO.parent / "shared" / "data"))


def cifake() -> Path:
    path = DATA / "cifake_train.zip"
    if not path.is_file():
        sys.exit(f"{path} not found: set FAKESCOPE_DATA_DIR to the folder holding cifake_train.zip")
    return path


def peak_rss_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def machine(torch_threads: bool = True) -> str:
    """When, how many cores of which CPU, and the versions (torch's and its thread count unless
    `torch_threads` is false, for scripts that do not use torch)."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if not torch_threads:
        return f"{stamp}; {os.cpu_count()} cores ({cpu}); python {platform.python_version()}"
    import torch

    return (
        f"{stamp}; {os.cpu_count()} cores ({cpu}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; python {platform.python_version()}"
    )


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Seconds per call of `fn`, averaged over `repeats` calls after one warm-up call."""
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def write_labels_csv(path: Path, items: Iterable[Any]) -> Path:
    """A path,label CSV (labels "real"/"fake") of manifest items with `.path` and `.label`."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        for item in items:
            writer.writerow([item.path, "fake" if item.label else "real"])
    return path


def sample_items(source: Path, n: int, seed: int) -> list[Any]:
    """Up to n real and n fake labelled items of a source (seeded; each class in archive
    order): the held-out images of the leave-one-source-out scripts."""
    import numpy as np

    from fakescope.data.sources import open_source

    items = [it for it in open_source(source).items if it.label is not None]
    rng = np.random.default_rng(seed)
    picked: list[Any] = []
    for label in (0, 1):
        pool = [it for it in items if it.label == label]
        picked += [pool[i] for i in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))]
    return picked
