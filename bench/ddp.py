"""Benchmark: DDP training with torchrun (2 processes) against one process, on CIFAKE.

Trains the quick recipe on a stratified CIFAKE subset twice, once as one process and once as
`torchrun --standalone --nproc_per_node 2`, and prints training images/s (last epoch), wall
time and validation accuracy of both. On a 2-core CPU the processes share the same cores:
expect no speed-up there; DDP pays off with one process per GPU or per machine.
    python bench/ddp.py [--items 8000] [--epochs 2] [--out /tmp/fakescope-bench-ddp]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import cifake, machine


def _children_cpu() -> float:
    """User + system CPU seconds of finished child processes: the work done, whatever the
    machine's load (wall-clock figures on a shared machine depend on the neighbours)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(label: str, launcher: list[str], args: argparse.Namespace, out: Path) -> dict:
    command = [
        sys.executable,
        *launcher,
        "-m",
        "fakescope",
        "train",
        str(cifake()),
        "--config",
        "quick",
        "--out",
        str(out),
        "-q",
        "--set",
        f"data.max_items={args.items}",
        "--set",
        f"train.epochs={args.epochs}",
        "--set",
        "train.max_minutes=null",
        "--set",
        "train.schedule_by_time=false",
        "--set",
        "data.test_fraction=0.0",
        "--set",
        "train.early_stopping_patience=null",
    ]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    metrics = json.loads((out / "metrics.json").read_text())
    last = metrics["history"][-1]
    result = {
        "label": label,
        "images_per_second": last["images_per_second"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "val_accuracy": metrics["val"]["accuracy"],
        "val_roc_auc": metrics["val"]["roc_auc"],
    }
    print(
        f"{label:<24} {result['images_per_second']:7.0f} img/s (last epoch)  "
        f"train {result['train_seconds']:6.1f} s  wall {wall:6.1f} s  CPU {cpu:6.1f} s  "
        f"val acc {result['val_accuracy']:.4f}  auc {result['val_roc_auc']:.4f}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fakescope-bench-ddp"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"machine: {machine()}")
    print(f"quick recipe, {args.items} CIFAKE images (90% train), {args.epochs} epochs")
    one = run("1 process", [], args, args.out / "one")
    two = run(
        "torchrun, 2 processes",
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        args,
        args.out / "two",
    )
    print(f"speed-up: {two['images_per_second'] / one['images_per_second']:.2f}x")
    print(f"CPU work, 2 processes / 1 process: {two['cpu_seconds'] / one['cpu_seconds']:.2f}x")


if __name__ == "__main__":
    main()
