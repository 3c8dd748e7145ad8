"""Does the zero-shot detector add to the pixel detector on a generator family neither has
seen? (issue 27, item 4: a second look in the default only if it helps, measured where
neither detector saw the images' generator.)

The pixel detector's answer on a family it never trained on comes from the runs of
bench/logo_train.py (stage 2 of `general` fine-tuned without one family); the zero-shot
detector never saw any AI image. Both score the same images: each left-out family's AI
images (the ones logo_train.py scored: its validation images and up to 200 of its training
images, all unseen by that run) and one pool of real photos that neither detector trained
on (held back by the coder's recipe as test photos, and not drawn for training by any of the
runs). Per left-out family:

- each detector alone: ROC-AUC of the family's AI images against the real photos;
- a stack: a logistic regression on the two logits, fitted on the *other* families (each
  scored by the run that left it out) and one half of the real photos, scored on this family
  and the other half (both halves in turn; the mean);
- the second look as it would ship, with no fitting: where the pixel detector answers
  "real" with confidence and the zero-shot detector "fake" with confidence, the answer
  becomes unsure (never fake). AI images confidently called real before and after; real
  photos moved from a confident "real" to unsure (its price); real photos confidently called
  fake do not change by construction.

The rule for shipping it, set before the figures were seen: the default gets the second
look if the stack's mean ROC-AUC gain is at least 0.01 with a gain on most families, or the
second look removes at least a quarter of the confidently-real AI images while moving at
most 5 % of the real photos to unsure.

    cd bench
    FAKESCOPE_DATA_DIR=../../shared/data python logo_train.py --start STAGE1 --minutes 7 \
        --out ../runs/logo --only gpt4o     # (one run per family; see BENCHMARKS.md)
    python second_look.py --logo ../runs/logo --reals 600 --out ../runs/second_look

Scores are cached in --out (per run and for the zero-shot bundle); the table is printed and
written to second_look.json there.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine
from logo_train import auc, score
from sklearn.linear_model import LogisticRegression
from zero_shot import SHARED, held_out_reals

EPS = 1e-6


def done_runs(logo: Path) -> list[str]:
    """The left-out families whose run finished and was scored by logo_train.py."""
    return sorted(
        p.name
        for p in logo.iterdir()
        if (p / "metrics.json").is_file() and (p / "scores" / "predictions.csv").is_file()
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def family_fakes(logo: Path, family: str) -> list[str]:
    """The left-out family's AI images that logo_train.py scored (none seen by its run)."""
    return [r["path"] for r in read_rows(logo / family / "scores.csv") if r["source"] == family]


def real_pool(logo: Path, families: list[str], n: int, seed: int) -> list[str]:
    """Up to n real photos held back by the coder (its test split) that no run trained on."""
    trained = {
        r["path"]
        for family in families
        for r in read_rows(logo / family / "manifest.csv")
        if r["split"] != "val"
    }
    tests = held_out_reals("test")
    pool = sorted(
        p
        for source, paths in tests.items()
        if source not in SHARED
        for p in paths
        if p not in trained
    )
    random.Random(seed).shuffle(pool)
    return sorted(pool[:n])


def scored(bundle: str | Path, paths: dict[str, str], out: Path) -> dict[str, dict[str, str]]:
    """The bundle's predictions.csv rows on `paths` ({path: label}), by path (cached)."""
    manifest = out / "manifest.csv"
    if not manifest.is_file():
        out.mkdir(parents=True, exist_ok=True)
        with manifest.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "split"])
            writer.writerows((path, label, "val") for path, label in sorted(paths.items()))
    return score(bundle, manifest, out)


def logit(rows: list[dict[str, str]]) -> np.ndarray:
    p = np.clip(np.array([float(r["p_fake"]) for r in rows]), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def confident(rows: list[dict[str, str]], label: str) -> np.ndarray:
    return np.array([r["predicted"] == label and r["unsure"] in ("0", "False") for r in rows])


def second_look(pixel: list[dict[str, str]], zs: list[dict[str, str]]) -> np.ndarray:
    """Which answers the second look turns from a confident "real" into unsure."""
    return confident(pixel, "real") & confident(zs, "fake")


def stack_auc(
    families: list[str],
    held: str,
    x: dict[str, dict[str, np.ndarray]],
    halves: tuple[np.ndarray, np.ndarray],
) -> float:
    """ROC-AUC on `held` of a logistic regression on (pixel logit, zero-shot logit) fitted
    on the other families and one half of the real photos; mean over the two halves."""
    out = []
    for fit_half, test_half in (halves, halves[::-1]):
        xs, ys = [], []
        for family in families:
            if family == held:
                continue
            xs += [x[family]["fake"], x[family]["real"][fit_half]]
            ys += [np.ones(len(x[family]["fake"])), np.zeros(fit_half.sum())]
        model = LogisticRegression(max_iter=1000).fit(np.concatenate(xs), np.concatenate(ys))
        fakes = model.decision_function(x[held]["fake"])
        reals = model.decision_function(x[held]["real"][test_half])
        out.append(auc(list(fakes), list(reals)))
    return float(np.mean(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logo", default="../runs/logo", help="bench/logo_train.py's --out")
    parser.add_argument("--zero-shot", default="zero_shot", help="the zero-shot bundle")
    parser.add_argument("--reals", type=int, default=600, help="real photos in the pool")
    parser.add_argument("--out", default="../runs/second_look")
    args = parser.parse_args()
    logo, out = Path(args.logo), Path(args.out)
    families = done_runs(logo)
    if len(families) < 2:
        raise SystemExit(f"{logo}: the stack needs at least two finished runs of logo_train.py")
    print(f"machine: {machine()}; left-out families: {', '.join(families)}")
    reals = real_pool(logo, families, args.reals, seed=0)
    fakes = {family: family_fakes(logo, family) for family in families}
    everything = {p: "real" for p in reals} | {p: "fake" for f in fakes.values() for p in f}
    zs = scored(args.zero_shot, everything, out / "zero_shot")
    pixel = {
        family: scored(
            logo / family / "bundle",
            {p: "real" for p in reals} | {p: "fake" for p in fakes[family]},
            out / family,
        )
        for family in families
    }
    reals = [p for p in reals if p in zs and all(p in pixel[f] for f in families)]  # decodable
    rng = np.random.default_rng(0)
    first = np.zeros(len(reals), bool)
    first[rng.permutation(len(reals))[: len(reals) // 2]] = True
    x: dict[str, dict[str, np.ndarray]] = {}
    table: list[dict[str, Any]] = []
    for family in families:
        f_paths = [p for p in fakes[family] if p in zs and p in pixel[family]]
        groups = {"fake": f_paths, "real": reals}
        px = {k: [pixel[family][p] for p in v] for k, v in groups.items()}
        z = {k: [zs[p] for p in v] for k, v in groups.items()}
        x[family] = {k: np.c_[logit(px[k]), logit(z[k])] for k in groups}
        looked = {k: second_look(px[k], z[k]) for k in groups}
        table.append(
            {
                "family": family,
                "n_fake": len(f_paths),
                "n_real": len(reals),
                "auc_pixel": auc(list(logit(px["fake"])), list(logit(px["real"]))),
                "auc_zero_shot": auc(list(logit(z["fake"])), list(logit(z["real"]))),
                "fake_conf_real": float(confident(px["fake"], "real").mean()),
                "fake_conf_real_after": float(
                    (confident(px["fake"], "real") & ~looked["fake"]).mean()
                ),
                "fake_zs_conf_fake": float(confident(z["fake"], "fake").mean()),
                "real_conf_real": float(confident(px["real"], "real").mean()),
                "real_to_unsure": float(looked["real"].mean()),
                "real_conf_fake": float(confident(px["real"], "fake").mean()),
                "real_zs_conf_fake": float(confident(z["real"], "fake").mean()),
            }
        )
    for row in table:
        row["auc_stack"] = stack_auc(families, row["family"], x, (first, ~first))
    print(
        "\n| family left out | AI images | ROC-AUC pixel | zero-shot | stack | AI confidently "
        "real: pixel | with the second look | real photos: confidently real -> unsure |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in table:
        print(
            f"| {r['family']} | {r['n_fake']} | {r['auc_pixel']:.3f} | {r['auc_zero_shot']:.3f} "
            f"| {r['auc_stack']:.3f} | {100 * r['fake_conf_real']:.1f}% "
            f"| {100 * r['fake_conf_real_after']:.1f}% | {100 * r['real_to_unsure']:.1f}% |"
        )
    keys = [k for k in table[0] if k not in ("family", "n_fake", "n_real")]
    mean = {k: float(np.mean([r[k] for r in table])) for k in keys}
    print(
        f"| **mean** | | {mean['auc_pixel']:.3f} | {mean['auc_zero_shot']:.3f} "
        f"| {mean['auc_stack']:.3f} | {100 * mean['fake_conf_real']:.1f}% "
        f"| {100 * mean['fake_conf_real_after']:.1f}% | {100 * mean['real_to_unsure']:.1f}% |"
    )
    gains = [r["auc_stack"] - r["auc_pixel"] for r in table]
    removed = 1 - mean["fake_conf_real_after"] / max(mean["fake_conf_real"], EPS)
    print(
        f"\n{len(reals)} real photos (held back by the coder, trained on by no run): pixel "
        f"confidently real {100 * mean['real_conf_real']:.1f}%, confidently fake "
        f"{100 * mean['real_conf_fake']:.1f}% (unchanged by the second look); zero-shot "
        f"confidently fake {100 * mean['real_zs_conf_fake']:.1f}%. Left-out AI images the "
        f"zero-shot detector calls fake with confidence: {100 * mean['fake_zs_conf_fake']:.1f}%."
    )
    stack_helps = np.mean(gains) >= 0.01 and sum(g > 0 for g in gains) > len(gains) / 2
    look_helps = removed >= 0.25 and mean["real_to_unsure"] <= 0.05
    print(
        f"stack gain {np.mean(gains):+.3f} (positive on {sum(g > 0 for g in gains)} of "
        f"{len(gains)}); the second look removes {100 * removed:.0f}% of the confidently-real "
        f"AI images, moves {100 * mean['real_to_unsure']:.1f}% of real photos to unsure. "
        f"Ship it: {'yes' if stack_helps or look_helps else 'no'} (rule in the docstring)."
    )
    (out / "second_look.json").write_text(
        json.dumps({"machine": machine(), "rows": table, "mean": mean}, indent=2)
    )


if __name__ == "__main__":
    main()
