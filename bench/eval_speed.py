"""Benchmark: the wall time of `fakescope evaluate` (full report: Grad-CAM gallery, t-SNE) on
2,000 CIFAKE thumbnails and of `fakescope robustness` (default corruptions) on 1,000, with
the default detector, each timed as a whole process (issue bars: 120 s and 5 minutes).

    python bench/eval_speed.py [--evaluate 2000] [--robustness 1000] [-- --runtime torch]

The images: a seeded sample, half real and half fake, of cifake_train.zip (a labels CSV in
runs/eval_speed/). Arguments after ``--`` go to both commands.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, cifake, sample_items, write_labels_csv
from predict_vs_seed import cpu_flags


def timed_process(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra, argv = argv[argv.index("--") + 1 :], argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluate", type=int, default=2000, help="images (0: skip)")
    parser.add_argument("--robustness", type=int, default=1000, help="images (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "eval_speed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_flags()}")
    fakescope = [sys.executable, "-m", "fakescope"]
    if args.evaluate:
        labels = write_labels_csv(
            args.out / f"cifake_{args.evaluate}.csv",
            sample_items(cifake(), args.evaluate // 2, seed=0),
        )
        out = args.out / "evaluate"
        command = [*fakescope, "evaluate", str(labels), "--out", str(out), "--quiet", *extra]
        wall, rss = timed_process(command)
        stages = json.loads((out / "metrics.json").read_text()).get("timings", {})
        print(f"evaluate {args.evaluate} CIFAKE, full report: {wall:.0f} s wall, peak RSS "
              f"{rss:.0f} MB (bar 120 s); stages (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))  # fmt: skip
    if args.robustness:
        labels = write_labels_csv(
            args.out / f"cifake_{args.robustness}.csv",
            sample_items(cifake(), args.robustness // 2, seed=1),
        )
        out = args.out / "robustness"
        command = [*fakescope, "robustness", str(labels), "--out", str(out), "--quiet", *extra]
        wall, rss = timed_process(command)
        print(f"robustness {args.robustness} CIFAKE, default corruptions: {wall:.0f} s wall, "
              f"peak RSS {rss:.0f} MB (bar 300 s)")  # fmt: skip


if __name__ == "__main__":
    main()
