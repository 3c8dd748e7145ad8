"""Benchmark: `fakescope predict` as a whole process (start-up, imports, loading, scoring) from
several source trees, interleaved (A B A B ...), each run's wall and CPU (user + system) time,
the median per tree; with the machine's CPU, load average and the date. For comparing a
change to fakescope's imports against the code before it:

    git -C REPO archive main src | tar -x -C /tmp/main_tree     # the code before
    python bench/predict_startup.py --tree main=/tmp/main_tree/src --tree new=src \
        --runs 5 -- IMAGE_OR_FOLDER [predict options]

Arguments after ``--`` go to `fakescope predict`. Each tree is put first on PYTHONPATH; the
ONNX export cache ($FAKESCOPE_CACHE) is the user's, so warm up once (a first run exports).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed_run(src: str, predict_args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s: user + system of the child) of one `fakescope predict` process."""
    env = {**os.environ, "PYTHONPATH": src}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fakescope", "predict", *predict_args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=SRC_DIR")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("predict_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    predict_args = [a for a in args.predict_args if a != "--"]
    trees = dict(t.split("=", 1) for t in args.tree)
    now = datetime.now(timezone.utc)
    print(f"# {now:%Y-%m-%d %H:%M} UTC, {cpu_name()}, {os.cpu_count()} cores")
    print(f"# load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"# fakescope predict {' '.join(predict_args)}")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for run in range(args.runs):
        for name, src in trees.items():
            wall, cpu = timed_run(src, predict_args)
            times[name].append((wall, cpu))
            print(f"run {run + 1} {name}: wall {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name}: median wall {wall:.2f} s, median CPU {cpu:.2f} s over {len(runs)} runs")


if __name__ == "__main__":
    main()
