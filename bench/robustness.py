"""Robustness of the shipped detector on held-out CIFAKE: corruptions and FGSM/PGD-10.

Held-out = the validation split of the run that trained the shipped detector (its manifest,
runs/default-cifake/manifest.csv; rebuilt with the same recipe and seed when missing), then a
stratified, seeded subsample of 2,000 images. Prints the table and the wall time.

    python bench/robustness.py [--manifest M] [--max-images 2000] [--out runs/bench-robustness]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, cifake, machine, peak_rss_mb

EPS = "0.5/255,1/255,2/255,4/255,8/255,0.08"


def held_out_manifest(path: Path) -> Path:
    """The shipped detector's training manifest (its 'val' rows were never trained on)."""
    if path.is_file():
        return path
    from fakescope.config import load_recipe
    from fakescope.data.sources import open_source
    from fakescope.training.run_manifest import prepare_split

    recipe = load_recipe("default")
    prepare_split(open_source(cifake()), recipe.data, seed=recipe.train.seed, manifest_path=path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "runs/default-cifake/manifest.csv")
    parser.add_argument("--max-images", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "runs/bench-robustness")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    manifest = held_out_manifest(args.manifest)
    command = [
        sys.executable, "-m", "fakescope", "robustness", str(manifest), "--split", "val",
        "--max-images", str(args.max_images), "--attacks", "fgsm,pgd", "--eps", EPS,
        "--steps", str(args.steps), "--out", str(args.out), "--quiet",
    ]  # fmt: skip
    print("machine:", machine())
    print("command:", " ".join(command[2:]).replace("-m fakescope", "fakescope"))
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"wall time {time.perf_counter() - start:.0f} s; peak RSS {peak_rss_mb(True):.0f} MB")
    result = json.loads((args.out / "robustness.json").read_text())
    name = result["models"][0]["name"]
    print(f"n = {result['n']} ({result['n_real']} real, {result['n_fake']} fake)")
    for row in [*result["rows"], *result["attacks"]["rows"]]:
        r = row["results"][name]
        print(
            f"{row['name']:15s} {row['severity'] if row['severity'] is not None else '':>10} "
            f"acc {r['accuracy']:.4f} (real {r['real_accuracy']:.3f} fake {r['fake_accuracy']:.3f})"
            f" AUC {r['roc_auc']:.4f} drop {r['accuracy_drop']:+.4f}"
        )


if __name__ == "__main__":
    main()
