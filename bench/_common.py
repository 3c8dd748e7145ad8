"""Shared bits of the benchmark scripts: where the data is, peak memory, machine line."""

from __future__ import annotations

import os
import platform
import resource
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

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


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{stamp}; {os.cpu_count()} cores ({cpu}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; python {platform.python_version()}"
    )
