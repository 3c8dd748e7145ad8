"""Cross-data-set protocol: detectors trained on CIFAKE, evaluated on every data set.

One row per (detector, data set) plus the mean, in the style of the NPR / UniversalFakeDetect
generalization tables. CIFAKE is scored on the held-out validation split the recipes carve
out (seed 0, 10%, near-duplicates grouped; recreated here without training); the face data
sets are scored whole. Each detector keeps its own threshold, chosen on CIFAKE validation:
nothing is tuned on the target data, so accuracy shows how the decision transfers and
ROC-AUC how the ranking does.

    python bench/cross_dataset.py --bundle resnet_se=src/fakescope/assets/scratch_detector \
        --bundle lite0=runs/lite0/bundle --bundle npr=runs/npr/bundle [--max-images 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import DATA, cifake, machine, peak_rss_mb, write_labels_csv

from fakescope.config import load_recipe
from fakescope.data.sources import open_source
from fakescope.detectors import Detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.training.run_manifest import prepare_split


def cifake_val_manifest(folder: Path, max_images: int | None, seed: int) -> Path:
    """The default recipe's CIFAKE validation split as a CSV manifest (optionally subsampled)."""
    recipe = load_recipe("default")
    items = prepare_split(
        open_source(cifake()),
        recipe.data,
        seed=recipe.train.seed,
        manifest_path=folder / "split.csv",
        progress=False,
    )
    val = [it for it in items if it.split == "val"]
    if max_images and len(val) > max_images:
        pick = np.random.default_rng(seed).choice(len(val), max_images, replace=False)
        val = [val[i] for i in sorted(pick)]
    return write_labels_csv(folder / "cifake_val.csv", val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--max-images", type=int, default=None, help="CIFAKE val subsample")
    parser.add_argument("--out", default="runs/cross-dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        val_csv = cifake_val_manifest(Path(tmp), args.max_images, args.seed)
        datasets = {
            "CIFAKE (val)": val_csv,
            "StyleGAN faces": DATA / "stylegan_faces.zip",
            "face swaps (LFW)": DATA / "faceswap_lfw.zip",
        }
        rows = []
        for spec in args.bundle:
            name, path = spec.split("=", 1)
            detector = Detector.load(path, device="cpu")
            for dataset, source in datasets.items():
                metrics = evaluate(
                    detector,
                    source,
                    out / name / dataset.split()[0],
                    report=False,
                    progress=False,
                    bootstrap=200,
                )
                rows.append(
                    {
                        "detector": name,
                        "dataset": dataset,
                        "n": metrics["n"],
                        "accuracy": metrics["accuracy"],
                        "accuracy_ci95": metrics["ci95"]["accuracy"],
                        "roc_auc": metrics["roc_auc"],
                        "average_precision": metrics["average_precision"],
                    }
                )
    print()
    print("| detector | data set | n | accuracy (95% CI) | ROC-AUC | AP |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["detector"] for r in rows):
        mine = [r for r in rows if r["detector"] == name]
        for r in mine:
            lo, hi = r["accuracy_ci95"]
            print(
                f"| {name} | {r['dataset']} | {r['n']} | {r['accuracy']:.3f} ({lo:.3f}-{hi:.3f}) "
                f"| {r['roc_auc']:.3f} | {r['average_precision']:.3f} |"
            )
        mean = {
            k: float(np.mean([r[k] for r in mine]))
            for k in ("accuracy", "roc_auc", "average_precision")
        }
        print(
            f"| {name} | **mean** | | {mean['accuracy']:.3f} | {mean['roc_auc']:.3f} "
            f"| {mean['average_precision']:.3f} |"
        )
    (out / "cross_dataset.json").write_text(json.dumps(rows, indent=2))
    print(f"\npeak RSS {peak_rss_mb():.0f} MB; rows in {out / 'cross_dataset.json'}")


if __name__ == "__main__":
    main()
