"""Leave-one-source-out: the honest estimate of how a multi-source recipe does on a source it
never saw.

For each source of the recipe (configs/general.yaml by default): train the recipe on all the
other sources (same settings, a shorter time budget by default), then evaluate the bundle on
up to N real and N fake images of the source left out, at the threshold it chose on its own
validation data. One row per left-out source, plus the mean; and for comparison the same
run's validation ROC-AUC on the sources it did see.

Each run's bundle also gets its domain model (`fakescope domain`, fitted on the sources it
saw), so the row says too whether the detector *knew* it was looking at something new: the
share of the left-out images it called in-domain, its coverage (confident answers), the
confidently wrong share and the real images it confidently called fake, which are the
figures of the issue's in-the-wild bars.

    FAKESCOPE_DATA_DIR=../shared/data python bench/loso.py --minutes 10 --n 300
    python bench/loso.py --only modern_photos --minutes 20      # one row
    python bench/loso.py --set data.augment.degrade.at=native   # a recipe value changed

Runs go to runs/loso/<source>/ (resumable: a finished run is reused, and scored again).
The rows go to runs/loso/loso.json; a run with `--only` keeps the rows already there for the
other sources when they were made with the same settings, and the table shows them all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import DATA, machine, peak_rss_mb, sample_items, write_labels_csv

from fakescope.bundle import read_meta
from fakescope.config import load_recipe, validate_recipe
from fakescope.detectors import load_detector
from fakescope.evaluation.domain import fit_bundle_domain
from fakescope.evaluation.evaluate import evaluate
from fakescope.training.trainer import train


def held_out_manifest(path: Path, source: Path, n: int, seed: int) -> Path:
    """Up to n real and n fake images of `source`, as a CSV manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_labels_csv(path, sample_items(source, n, seed))


def run_without(recipe_data: dict, left_out: str, out: Path, minutes: float | None) -> Path:
    """Train the recipe without one source (or reuse a finished run); its bundle folder."""
    bundle = out / "bundle"
    if (out / "metrics.json").is_file() and bundle.is_dir():
        return bundle
    data = json.loads(json.dumps(recipe_data))
    data["name"] = f"{data.get('name', 'recipe')}-without-{left_out}"
    data["data"]["sources"] = [
        s for s in data["data"]["sources"] if (s.get("name") or Path(s["path"]).stem) != left_out
    ]
    if minutes:
        data["train"]["max_minutes"] = minutes
    resume = (out / "recipe.yaml").is_file()
    train(
        None,
        None if resume else validate_recipe(data),
        out,
        resume=resume,
        data_dir=DATA,
        command=f"bench/loso.py (without {left_out})",
    )
    return bundle


def merged_rows(path: Path, rows: list[dict], settings: dict) -> list[dict]:
    """This run's rows plus those already in `path` for other sources with the same settings."""
    if not path.is_file():
        return rows
    done = {r["left_out"] for r in rows}
    kept = []
    for old in json.loads(path.read_text()):
        if old.get("left_out") in done:
            continue
        if old.get("settings") == settings:
            kept.append(old)
        else:
            print(f"dropped the earlier {old.get('left_out')} row of {path}: other settings")
    return kept + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="general", help="a multi-source recipe")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    parser.add_argument("--n", type=int, default=300, help="held-out images per class")
    parser.add_argument("--only", action="append", help="left-out source(s) to run")
    parser.add_argument("--out", default="runs/loso")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, as `fakescope train --set` does",
    )
    parser.add_argument(
        "--domain-images", type=int, default=2000, help="training images for each domain model"
    )
    args = parser.parse_args()
    recipe = load_recipe(args.config, args.overrides)
    if not recipe.data.sources:
        raise SystemExit(f"recipe {args.config} lists no data.sources")
    recipe_data = recipe.model_dump(mode="json")
    settings = {
        "config": args.config,
        "overrides": args.overrides,
        "minutes": args.minutes,
        "n": args.n,
        "seed": args.seed,
        "domain_images": args.domain_images,
    }
    print(f"machine: {machine()}")
    rows = []
    for spec in recipe.data.sources:
        name = spec.label
        if args.only and name not in args.only:
            continue
        out = Path(args.out) / name
        bundle = run_without(recipe_data, name, out, args.minutes)
        seen = json.loads((out / "metrics.json").read_text())["val"]
        if not read_meta(bundle).get("domain"):
            fit = fit_bundle_domain(
                bundle, out / "manifest.csv", max_images=args.domain_images, progress=False
            )
            print(f"{name}: domain model on {fit.n_train} images, {fit.n_val} for its threshold")
        manifest = held_out_manifest(out / "held_out.csv", DATA / spec.path, args.n, args.seed)
        metrics = evaluate(
            load_detector(bundle, device="cpu"),
            manifest,
            out / "held_out_eval",
            report=False,
            progress=False,
            bootstrap=200,
            provenance=False,
        )
        sel = metrics["selective"]["overall"]
        in_domain = 1.0 - sel["out_of_domain"] / max(1, sel["n"])
        rows.append(
            {
                "left_out": name,
                "n": metrics["n"],
                "roc_auc": metrics["roc_auc"],
                "accuracy": metrics["accuracy"],
                "in_domain": in_domain,
                "coverage": sel["coverage"],
                "confident_wrong": sel["confident_wrong"],
                "real_called_fake_confidently": sel["real_called_fake_confidently"],
                "seen_val_roc_auc": seen["roc_auc"],
                "minutes": args.minutes,
                "settings": settings,
            }
        )
        print(f"{name}: ROC-AUC {metrics['roc_auc']:.3f}, accuracy {metrics['accuracy']:.3f}")
    results = Path(args.out) / "loso.json"
    rows = merged_rows(results, rows, settings)
    order = [spec.label for spec in recipe.data.sources]
    rows.sort(key=lambda r: order.index(r["left_out"]) if r["left_out"] in order else len(order))
    print()
    print(
        "| left out | n | ROC-AUC on it | accuracy on it | in-domain | coverage "
        "| confident-wrong | reals confidently called fake | val ROC-AUC on the others |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    pct = ("in_domain", "coverage", "confident_wrong", "real_called_fake_confidently")
    for r in rows:
        print(
            f"| {r['left_out']} | {r['n']} | {r['roc_auc']:.3f} | {r['accuracy']:.3f} | "
            + " | ".join(f"{100 * r[k]:.1f}%" for k in pct)
            + f" | {r['seen_val_roc_auc']:.3f} |"
        )
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("roc_auc", "accuracy", *pct)}
        print(
            f"| **mean** | | {mean['roc_auc']:.3f} | {mean['accuracy']:.3f} | "
            + " | ".join(f"{100 * mean[k]:.1f}%" for k in pct)
            + " | |"
        )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(rows, indent=2))
    print(f"\npeak RSS {peak_rss_mb():.0f} MB; rows in {results}")


if __name__ == "__main__":
    main()
