"""How a bundle does on the modern AI sources, per source and per generator.

Reads the manifests `fakescope data sources modern` and `... real` built (see
src/fakescope/recipes/sources/), draws a seeded sample (at most --per-generator fakes of
each generator and --per-real-source reals of each real source), scores it with the bundle
and prints, per generator and per source, ROC-AUC against the whole real sample, the share
of AI images confidently called real (label real, not unsure) and, for the reals, the share
confidently called fake.

    python bench/modern_sources.py --modern modern.csv --real real.csv [--bundle default]

With --exclude-trained RUN/manifest.csv the images that run trained on (its `train` split)
are left out before sampling, so a detector trained on these sources is measured on its
validation images and on the images its recipe never drew; two bundles compared with the
same seed and the same run see the same images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def _sample(items: list, key, n: int, rng: np.random.Generator) -> list:
    groups: dict[str, list] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    picked = []
    for name in sorted(groups):
        members = groups[name]
        order = rng.permutation(len(members))[:n]
        picked += [members[i] for i in sorted(order)]
    return picked


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modern", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--bundle", default="default")
    parser.add_argument("--per-generator", type=int, default=60)
    parser.add_argument("--per-real-source", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--exclude-trained", type=Path, help="a run's manifest.csv")
    args = parser.parse_args()

    from fakescope.data.sources import CsvSource
    from fakescope.detectors import load_detector

    rng = np.random.default_rng(args.seed)
    fakes = [it for it in CsvSource(args.modern).items if it.label == 1]
    reals = [it for it in CsvSource(args.real).items if it.label == 0]
    trained: set[str] = set()
    if args.exclude_trained:
        trained = {it.path for it in CsvSource(args.exclude_trained).items if it.split == "train"}
        fakes = [it for it in fakes if it.path not in trained]
        reals = [it for it in reals if it.path not in trained]
    fakes = _sample(fakes, lambda it: it.generator or "", args.per_generator, rng)
    reals = _sample(reals, lambda it: it.source or "", args.per_real_source, rng)
    items = reals + fakes
    detector = load_detector(args.bundle, device="cpu")
    started = time.perf_counter()
    preds = detector.predict([it.path for it in items], batch_size=16, progress=False)
    seconds = time.perf_counter() - started
    ok = [i for i, p in enumerate(preds) if p.error is None]
    y = np.array([items[i].label for i in ok])
    p = np.array([preds[i].p_fake for i in ok], dtype=np.float64)
    label_fake = np.array([preds[i].label == "fake" for i in ok])
    sure = np.array([not preds[i].unsure for i in ok])
    real_mask = y == 0
    attrs = {
        "generator": np.array([items[i].generator or "" for i in ok], dtype=object),
        "source": np.array([items[i].source or "" for i in ok], dtype=object),
    }

    print(f"# {machine()}")
    print(
        f"bundle {args.bundle}: {len(ok)} images scored in {seconds:.0f} s "
        f"({len(reals)} reals of {len({it.source for it in reals})} sources, {len(fakes)} fakes "
        f"of {len({it.generator for it in fakes})} generators; seed {args.seed})"
    )
    if args.exclude_trained:
        print(f"left out: the {len(trained)} training images of {args.exclude_trained}")
    rows = []

    def row(name: str, fake_mask: np.ndarray) -> dict:
        mask = real_mask | fake_mask
        auc = _auc(y[mask], p[mask])
        n_fake = int(fake_mask.sum())
        missed = int((fake_mask & sure & ~label_fake).sum())
        caught = int((fake_mask & sure & label_fake).sum())
        return {
            "group": name,
            "n_fake": n_fake,
            "roc_auc": auc,
            "fake_called_real_confidently": missed / n_fake if n_fake else None,
            "fake_called_fake_confidently": caught / n_fake if n_fake else None,
        }

    def show(r: dict) -> None:
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
        print(
            f"| {r['group']} | {r['n_fake']} | {auc} | {r['fake_called_real_confidently']:.1%} "
            f"| {r['fake_called_fake_confidently']:.1%} |"
        )

    header = "| {} | fakes | ROC-AUC vs reals | AI called real (sure) | AI called fake (sure) |"
    for by, key in (("generator", "generator"), ("source", "source")):
        print(f"\nper {by} (reals: the whole real sample)\n")
        print(header.format(by))
        print("|---|---:|---:|---:|---:|")
        for name in sorted(set(attrs[key][y == 1].tolist())):
            fake_mask = (attrs[key] == name) & (y == 1)
            r = row(name, fake_mask) | {"by": by}
            rows.append(r)
            show(r)
    overall = row("all modern AI images", y == 1)
    show(overall)
    aucs = [r["roc_auc"] for r in rows if r["by"] == "generator" and r["roc_auc"] is not None]
    print(f"\nmean ROC-AUC over generators: {np.mean(aucs):.3f}")
    print("\nreals confidently called fake, per real source\n")
    print("| real source | reals | called fake (sure) |\n|---|---:|---:|")
    real_rows = []
    for name in sorted(set(attrs["source"][real_mask].tolist())):
        mask = (attrs["source"] == name) & real_mask
        share = float((mask & sure & label_fake).sum() / mask.sum())
        real_rows.append({"source": name, "n_real": int(mask.sum()), "real_called_fake": share})
        print(f"| {name} | {int(mask.sum())} | {share:.1%} |")
    all_real = float((real_mask & sure & label_fake).sum() / real_mask.sum())
    print(f"| all reals | {int(real_mask.sum())} | {all_real:.1%} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "bundle": args.bundle,
                    "rows": rows,
                    "overall": overall,
                    "reals": real_rows,
                    "real_called_fake": all_real,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
