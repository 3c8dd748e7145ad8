"""Benchmark (a): the default recipe on CIFAKE, as `fakescope train` runs it.

Prints validation accuracy / F1 / ROC-AUC, wall time, training images/s and peak RSS.
    python bench/train_default.py [--recipe default] [--out runs/bench-default]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, cifake, machine, peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-default")
    parser.add_argument("--set", action="append", default=[], help="recipe overrides")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    cmd = [sys.executable, "-m", "fakescope", "train", str(cifake()), "--config", args.recipe,
           "--out", str(args.out), "--quiet"]  # fmt: skip
    for item in args.set:
        cmd += ["--set", item]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - started
    metrics = json.loads((args.out / "metrics.json").read_text())
    val, history = metrics["val"], metrics["history"]
    ips = [h["images_per_second"] for h in history]
    print(f"machine: {machine()}")
    print(f"command: {' '.join(cmd)}")
    print(f"recipe {args.recipe}: {metrics['epochs_run']} epochs, n_val {val['n']}")
    print(f"val accuracy {val['accuracy']:.4f}  F1 {val['f1']:.4f}  ROC-AUC {val['roc_auc']:.5f}")
    print(f"training time {metrics['train_seconds'] / 60:.1f} min, wall time {wall / 60:.1f} min")
    print(
        f"training images/s: mean {sum(ips) / len(ips):.0f} (per epoch {[round(i) for i in ips]})"
    )
    print(f"peak RSS {peak_rss_mb(children=True):.0f} MB")


if __name__ == "__main__":
    main()
