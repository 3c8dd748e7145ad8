"""Leave one generator family out, with real training: how the modern-generators recipe does
on a generator family it never trained on.

For each generator family of the recipe (configs/general_modern.yaml: a family is a source
that selects generators of the modern manifest), fine-tune the same starting weights for the
same time budget on everything else: the family keeps its place in the recipe with weight 0
(its images are split and validated as in every run, never drawn for training; so every run
decodes the same images and reuses one cache) and its weight goes to the other families, so
the share of AI images in each epoch does not change. Then score every run on the same images:
the validation images of every family and of the real photos, plus up to --max-train of the
left-out family's training images (unseen by that run). Per family, ROC-AUC of its AI images
against the real photos' validation images:

- left out: in the run that never trained on it (validation images only, and all its images);
- seen: the mean over the runs that trained on it (its validation images);
- start: the starting weights, which saw no modern generator at all;

and, in the run that left it out, the share of its AI images called fake at the run's
threshold and the share confidently called real (the unsure band was fitted on the run's
validation images, which include the left-out family's: a slightly optimistic band).

    FAKESCOPE_DATA_DIR=../shared/data python bench/logo_train.py \
        --start runs/general-tune/bundle --minutes 7
    python bench/logo_train.py --start ... --only gpt4o --only krea2   # some families
    python bench/logo_train.py --start ... --table                     # the table only

Runs go to runs/logo/<family>/ (resumable: a finished run is reused); the scores to
runs/logo/<family>/scores/predictions.csv, the rows to runs/logo/logo.json.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _common import DATA, machine, peak_rss_mb
from sklearn.metrics import roc_auc_score

from fakescope.config import load_recipe, validate_recipe
from fakescope.detectors import load_detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.training.trainer import train


def families_of(recipe_data: dict) -> list[str]:
    """The recipe's generator families: the sources that select generators of a manifest."""
    return [s["name"] for s in recipe_data["data"]["sources"] if s.get("generators")]


def without_family(recipe_data: dict, family: str, start: str, minutes: float) -> dict:
    """The recipe with `family` at weight 0 and its weight spread over the other families."""
    data = json.loads(json.dumps(recipe_data))
    data["name"] = f"{data.get('name', 'recipe')}-without-{family}"
    data["model"]["pretrained"] = False
    data["model"]["pretrained_path"] = start
    data["train"]["max_minutes"] = minutes
    data["train"]["total_minutes"] = None  # a probe of its own length, not a stage of a chain
    sources = data["data"]["sources"]
    fams = [s for s in sources if s.get("generators")]
    total = sum(s["weight"] for s in fams)
    left = next(s for s in fams if s["name"] == family)
    rest = total - left["weight"]
    for s in fams:
        s["weight"] = 0.0 if s is left else s["weight"] * total / rest
    return data


def train_without(recipe_data: dict, family: str, out: Path, start: str, minutes: float) -> Path:
    """Train without one family (or reuse the finished run); the run's bundle folder."""
    bundle = out / "bundle"
    if (out / "metrics.json").is_file() and bundle.is_dir():
        return bundle
    resume = (out / "recipe.yaml").is_file()
    recipe = (
        None if resume else validate_recipe(without_family(recipe_data, family, start, minutes))
    )
    train(
        None,
        recipe,
        out,
        resume=resume,
        data_dir=DATA,
        command=f"bench/logo_train.py (without {family}, {minutes:g} min)",
    )
    return bundle


def scoring_manifest(
    run_manifest: Path, out: Path, families: list[str], reals: str, family: str, max_train: int
) -> Path:
    """The images every run is scored on (the validation images of the families and of the
    real photos) plus up to `max_train` of `family`'s training images (seeded), as one
    manifest with split 'val'."""
    with run_manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if r["split"] == "val" and r["source"] in (*families, reals)]
    unseen = [r for r in rows if r["split"] != "val" and r["source"] == family]
    picked = np.random.default_rng(0).permutation(len(unseen))[:max_train]
    keep += [unseen[i] for i in sorted(picked)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in keep:
            writer.writerow({**r, "split": "val"})
    return out


def score(bundle: Path | str, manifest: Path, out: Path) -> dict[str, dict[str, str]]:
    """p(fake) and verdicts of `bundle` on `manifest`, by path (cached in out)."""
    predictions = out / "predictions.csv"
    if not predictions.is_file():
        evaluate(
            load_detector(bundle, runtime="torch", device="cpu"),  # no export per run
            manifest,
            out,
            split="val",
            report=False,
            progress=True,
            bootstrap=0,
            provenance=False,
        )
    with predictions.open(newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def auc(fakes: list[float], reals: list[float]) -> float:
    y = np.r_[np.zeros(len(reals)), np.ones(len(fakes))]
    return float(roc_auc_score(y, np.r_[reals, fakes]))


def family_rows(
    manifest: Path, scores: dict[str, dict[str, str]], families: list[str], reals: str
) -> dict[str, dict[str, list]]:
    """Per family: its val and train predictions; 'reals': the real photos' val ones."""
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, dict[str, list]] = {name: {"val": [], "train": []} for name in families}
    groups[reals] = {"val": [], "train": []}
    for r in rows:
        if r["path"] in scores and r["source"] in groups:
            groups[r["source"]].setdefault(r["split"], []).append(scores[r["path"]])
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="general_modern", help="the modern recipe")
    parser.add_argument("--start", required=True, help="starting weights (bundle or name)")
    parser.add_argument("--minutes", type=float, default=7.0, help="training budget per run")
    parser.add_argument("--reals", default="real_photos", help="the recipe's real-photo source")
    parser.add_argument("--only", action="append", help="left-out family (families) to run")
    parser.add_argument(
        "--max-train", type=int, default=200, help="left-out family's training images scored"
    )
    parser.add_argument("--out", default="runs/logo")
    parser.add_argument("--table", action="store_true", help="only print the finished runs")
    args = parser.parse_args()
    recipe_data = load_recipe(args.config).model_dump(mode="json")
    families = families_of(recipe_data)
    if not families:
        raise SystemExit(
            f"recipe {args.config} has no generator families (sources with generators)"
        )
    out = Path(args.out)
    print(f"machine: {machine()}")
    todo = [f for f in families if not args.only or f in args.only]
    for family in [] if args.table else todo:
        run = out / family
        train_without(recipe_data, family, run, args.start, args.minutes)
    done = [f for f in families if (out / f / "metrics.json").is_file()]
    if not done:
        raise SystemExit(f"no finished run in {out}")
    # every run scores the same validation images (each family is split on its own, seeded)
    per_run: dict[str, dict[str, dict[str, list]]] = {}
    for family in done:
        run = out / family
        manifest = scoring_manifest(
            run / "manifest.csv", run / "scores.csv", families, args.reals, family, args.max_train
        )
        scores = score(run / "bundle", manifest, run / "scores")
        # the true splits are the run's own manifest's (the scoring manifest says 'val')
        per_run[family] = family_rows(run / "manifest.csv", scores, families, args.reals)
    # the starting weights on the validation images alone (no family's training images)
    start_manifest = scoring_manifest(
        out / done[0] / "manifest.csv", out / "start.csv", families, args.reals, done[0], 0
    )
    start_scores = score(args.start, start_manifest, out / "start_scores")
    start_rows = family_rows(out / done[0] / "manifest.csv", start_scores, families, args.reals)

    def p(rows: list[dict[str, str]]) -> list[float]:
        return [float(r["p_fake"]) for r in rows]

    table = []
    for family in done:
        g = per_run[family]
        reals = p(g[args.reals]["val"])
        left_val = g[family]["val"]
        left_all = left_val + g[family]["train"]
        seen = [
            auc(p(per_run[other][family]["val"]), p(per_run[other][args.reals]["val"]))
            for other in done
            if other != family
        ]
        called_fake = np.mean([r["predicted"] == "fake" for r in left_all])
        conf_real = np.mean(
            [r["predicted"] == "real" and r["unsure"] in ("0", "False") for r in left_all]
        )
        metrics = json.loads((out / family / "metrics.json").read_text())
        table.append(
            {
                "left_out": family,
                "n_val": len(left_val),
                "n_all": len(left_all),
                "auc_left_out_val": auc(p(left_val), reals),
                "auc_left_out_all": auc(p(left_all), reals),
                "auc_seen_mean": float(np.mean(seen)) if seen else None,
                "n_seen_runs": len(seen),
                "auc_start": auc(p(start_rows[family]["val"]), p(start_rows[args.reals]["val"])),
                "called_fake": float(called_fake),
                "confidently_real": float(conf_real),
                "other_families_auc": float(
                    np.mean([auc(p(g[o]["val"]), reals) for o in families if o != family])
                ),
                "train_seconds": metrics.get("train_seconds"),
                "minutes": args.minutes,
            }
        )
    print(
        "\n| left out | AI images (val / all) | ROC-AUC left out (val) | left out (all) "
        "| seen (mean of the other runs) | start (no modern family) | called fake "
        "| confidently called real | the other families in that run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        seen = (
            "" if r["auc_seen_mean"] is None else f"{r['auc_seen_mean']:.3f} ({r['n_seen_runs']})"
        )
        print(
            f"| {r['left_out']} | {r['n_val']} / {r['n_all']} | {r['auc_left_out_val']:.3f} "
            f"| {r['auc_left_out_all']:.3f} | {seen} | {r['auc_start']:.3f} "
            f"| {100 * r['called_fake']:.1f}% | {100 * r['confidently_real']:.1f}% "
            f"| {r['other_families_auc']:.3f} |"
        )
    keys = ("auc_left_out_val", "auc_left_out_all", "auc_start", "called_fake", "confidently_real")
    mean = {k: float(np.mean([r[k] for r in table])) for k in keys}
    seen_all = [r["auc_seen_mean"] for r in table if r["auc_seen_mean"] is not None]
    print(
        f"| **mean** | | {mean['auc_left_out_val']:.3f} | {mean['auc_left_out_all']:.3f} "
        f"| {np.mean(seen_all) if seen_all else float('nan'):.3f} | {mean['auc_start']:.3f} "
        f"| {100 * mean['called_fake']:.1f}% | {100 * mean['confidently_real']:.1f}% | |"
    )
    (out / "logo.json").write_text(json.dumps(table, indent=2))
    print(f"\npeak RSS {peak_rss_mb():.0f} MB; rows in {out / 'logo.json'}")


if __name__ == "__main__":
    main()
