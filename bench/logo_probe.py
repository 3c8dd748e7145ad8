"""Leave one generator family out, as a PROXY: a linear probe on the frozen features of the
shipped `general` detector, which never saw any of these generators.

That detector (general.yaml, then general_tune.yaml; its model card) was trained on the five
shared sets only: no image of the modern or real manifests' repositories; its only modern AI
images are the 216 diffusion-service photos of modern_photos.zip, another data set.

Issue 26 asks how the general detector does on the next generator: train without GPT-4o,
without Nano Banana, without Krea 2, ... and test on the family left out. Nine fine-tuning
runs of ~1 hour each do not fit on 2 shared CPU cores, so this is the cheap, honest
version. It says whether what the shipped `general` detector computes (its pooled
pre-logit features, frozen) carries, to a generator family no probe saw, what separates
its images from real photos; it does NOT say what a detector fine-tuned without that
family would score.

- the generator families exactly as the recipe (default `general_modern`) defines them:
  its `data.sources` with `generators` globs, selected from the modern manifest by
  `fakescope.data.source_selection` (the recipe's own `balance`: an equal quota per
  generator where it asks for one), up to --per-family AI images each (seeded);
- real photos from the real manifest, an equal quota per origin repository (the recipe's
  `balance: origin`), split ONCE (seeded, per origin) into a fitting and a test half: test
  reals are never fitted;
- optionally the recipe's other sources (the five shared sets, --per-shared per class);
- each image as the detector sees it (its recipe's Preprocessing: 4 native-resolution
  crops), its pooled pre-logit features averaged over the crops, and the detector's own
  p(fake);
- per left-out family F: standardise, then an L2 logistic regression on every other
  family + the fitting reals (+ the shared sets), each class weighing the same and, within
  a class, each source as the recipe weighs it (each family 0.45, the real photos 4.05,
  each shared set 1.0: the mix the new detector trains on; --weights equal: every source
  the same, which leaves the real photos 1/6 of the real class); ROC-AUC of F's images
  against the test reals, and the share of F's AI images called real (p < 0.5). `seen`:
  the same probe with half of F in its fitting data, tested on the other half (two-fold:
  both halves are tested, AUCs averaged), so the gap to the unseen figure is visible.
  `own score`: the detector's own p(fake), no probe.

With --bundle PATH a second bundle's features (e.g. the new general detector trained on
these families) get the same columns; that bundle was TRAINED on every family, so its
left-out column is not a leave-one-out figure and is labelled 'seen by training'.

    nice -n 5 python bench/logo_probe.py --per-family 150 --reals 600 [--bundle RUN/bundle]

Features are cached in runs/logo-probe/ (a rerun with other probe settings takes seconds).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import DATA, REPO, machine, peak_rss_mb, sample_items
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from fakescope.config import SourceConfig, load_recipe
from fakescope.data.multi_source import stratified_subsample
from fakescope.data.source_selection import Selection, balanced_subsample, select_generators
from fakescope.data.sources import CsvSource, Item
from fakescope.detectors import load_detector
from fakescope.evaluation.embeddings import embed_files

MANIFESTS = REPO.parent / "data" / "manifests"
REAL = "real_photos"


# -- the sample ----------------------------------------------------------------------------
def family_items(
    fakes: list[Item], spec: SourceConfig, where: str, n: int, seed: int
) -> list[Item]:
    """Up to n AI images of one generator family, selected and balanced as the recipe does."""
    selection = Selection(
        None if spec.generators is None else tuple(spec.generators),
        tuple(spec.exclude_generators),
        spec.balance,
    )
    own = select_generators(fakes, selection, where)
    if spec.balance != "none":
        return balanced_subsample(own, n, spec.balance, seed)
    return stratified_subsample(own, n, seed)


def draw_sample(
    args: argparse.Namespace,
) -> tuple[list[Item], list[str], list[str], dict[str, float]]:
    """(items, source of each, families, the recipe's weight of each source): the families'
    AI images, the reals (an equal quota per origin repository) and, with --per-shared, the
    recipe's other sources."""
    recipe = load_recipe(args.recipe)
    fakes = [it for it in CsvSource(args.modern).items if it.label == 1]
    items: list[Item] = []
    sources: list[str] = []
    families: list[str] = []
    weights: dict[str, float] = {}
    for i, spec in enumerate(recipe.data.sources):
        where = f"{recipe.name}.data.sources[{i}] ({spec.label})"
        if spec.generators is not None:
            picked = family_items(fakes, spec, where, args.per_family, args.seed)
            families.append(spec.label)
        elif spec.path.endswith(".csv"):
            weights[REAL] = spec.weight  # the real photos, drawn below from --real
            continue
        elif args.per_shared == 0:
            continue
        else:
            picked = sample_items(DATA / spec.path, args.per_shared, args.seed)
        items += picked
        sources += [spec.label] * len(picked)
        weights[spec.label] = spec.weight
    reals = [it for it in CsvSource(args.real).items if it.label == 0]
    picked = balanced_subsample(reals, args.reals, "origin", args.seed)
    items += picked
    sources += [REAL] * len(picked)
    if not families:
        sys.exit(f"recipe {recipe.name!r} lists no generator families (data.sources[].generators)")
    weights.setdefault(REAL, sum(weights[f] for f in families))
    return items, sources, families, weights


# -- features ------------------------------------------------------------------------------
def features_of(
    bundle: str, paths: list[str], out: Path
) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """(pooled pre-logit features averaged over the crops, own p(fake), paths kept, skipped)
    of a bundle, cached in `out` by bundle and sample."""
    digest = hashlib.sha256("\n".join([bundle, *paths]).encode()).hexdigest()[:16]
    cache = out / f"features-{Path(bundle).name}-{digest}.npz"
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        skipped = [tuple(s.split("\t", 1)) for s in stored["skipped"].tolist()]
        return stored["features"], stored["p_fake"], stored["paths"].tolist(), skipped  # type: ignore[return-value]
    detector = load_detector(bundle, runtime="torch", device="cpu")
    started = time.perf_counter()
    found = embed_files(detector, paths, batch_size=32, progress=True, scores=True)
    assert found.p_fake is not None
    print(
        f"{bundle}: features of {len(found.paths)} images in "
        f"{time.perf_counter() - started:.0f} s ({len(found.skipped)} unreadable)"
    )
    skipped = [f"{p}\t{why}" for p, why in found.skipped]
    np.savez(
        cache,
        features=found.features,
        p_fake=found.p_fake,
        paths=np.array(found.paths),
        skipped=np.array(skipped, dtype=str),
    )
    return found.features, found.p_fake, found.paths, list(found.skipped)


# -- probes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeSettings:
    c: float  # inverse L2 strength
    seed: int
    source_weights: dict[str, float] | None  # the recipe's; None: every source the same


def sample_weights(
    y: np.ndarray, sources: np.ndarray, source_weights: dict[str, float] | None
) -> np.ndarray:
    """Each class the same total weight; within a class, each source the recipe's weight
    (spread evenly over its images here), or with None each (source, class) the same."""
    weights = np.zeros(len(y))
    for label in (0, 1):
        in_class = y == label
        names = np.unique(sources[in_class])
        for name in names:
            group = in_class & (sources == name)
            share = (group.sum() / (sources == name).sum()) if source_weights else 1.0
            weights[group] = (source_weights or {}).get(name, 1.0) * share / group.sum()
        weights[in_class] /= weights[in_class].sum()
    return weights * len(y) / weights.sum()


def fitted(x: np.ndarray, y: np.ndarray, sources: np.ndarray, how: ProbeSettings) -> Pipeline:
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=how.c, max_iter=3000))
    weights = sample_weights(y, sources, how.source_weights)
    return probe.fit(x, y, logisticregression__sample_weight=weights)


def family_row(
    x: np.ndarray,
    y: np.ndarray,
    sources: np.ndarray,
    own: np.ndarray,
    fit_real: np.ndarray,
    test_real: np.ndarray,
    family: str,
    how: ProbeSettings,
) -> dict[str, float]:
    """Own-score, left-out and seen figures of one family (see the module docstring)."""
    in_f = sources == family
    others = ~in_f & ((sources != REAL) | fit_real)
    test_y = np.r_[np.ones(in_f.sum()), np.zeros(test_real.sum())]

    probe = fitted(x[others], y[others], sources[others], how)
    p_f = probe.predict_proba(x[in_f])[:, 1]
    p_r = probe.predict_proba(x[test_real])[:, 1]
    row = {
        "n": float(in_f.sum()),
        "own_auc": float(roc_auc_score(test_y, np.r_[own[in_f], own[test_real]])),
        "logo_auc": float(roc_auc_score(test_y, np.r_[p_f, p_r])),
        "logo_ai_called_real": float((p_f < 0.5).mean()),
        "logo_real_called_fake": float((p_r >= 0.5).mean()),
    }
    f_index = np.flatnonzero(in_f)
    halves = train_test_split(f_index, test_size=0.5, random_state=how.seed)
    aucs, missed = [], 0
    for held, fit_half in (halves, halves[::-1]):
        fit = others.copy()
        fit[fit_half] = True
        probe = fitted(x[fit], y[fit], sources[fit], how)
        p_f = probe.predict_proba(x[held])[:, 1]
        p_r = probe.predict_proba(x[test_real])[:, 1]
        y_half = np.r_[np.ones(len(held)), np.zeros(len(p_r))]
        aucs.append(float(roc_auc_score(y_half, np.r_[p_f, p_r])))
        missed += int((p_f < 0.5).sum())
    row["seen_auc"] = float(np.mean(aucs))
    row["seen_ai_called_real"] = missed / len(f_index)
    return row


def real_split(sources: np.ndarray, origins: list[str], seed: int) -> tuple[np.ndarray, ...]:
    """Masks of the fitting and the test half of the reals (split once, per origin)."""
    reals = np.flatnonzero(sources == REAL)
    strata = np.array([origins[i] for i in reals])
    _, counts = np.unique(strata, return_counts=True)
    fit, test = train_test_split(
        reals, test_size=0.5, random_state=seed, stratify=strata if counts.min() >= 2 else None
    )
    fit_mask = np.zeros(len(sources), bool)
    test_mask = np.zeros(len(sources), bool)
    fit_mask[fit] = True
    test_mask[test] = True
    return fit_mask, test_mask


# -- report --------------------------------------------------------------------------------
def _pct(v: float) -> str:
    return f"{v:.1%}"


def print_table(
    rows: dict[str, dict[str, dict[str, float]]],
    families: list[str],
    generators: dict[str, set[str]],
    bundle: str | None,
) -> None:
    base = rows["general"]
    head = (
        "| left-out family | generators | AI images | `general` own score | probe, family "
        "left out | probe, family seen | gap | AI called real, left out | AI called real, seen "
        "| test reals called fake, left out |"
    )
    sep = "|---" * 10 + "|"
    if bundle:
        head += " new: probe (seen by training) | new: own score (seen by training) |"
        sep += "---|---|"
    print(head)
    print(sep)
    keys = ("own_auc", "logo_auc", "seen_auc", "logo_ai_called_real", "seen_ai_called_real",
            "logo_real_called_fake")  # fmt: skip
    means = {k: float(np.mean([base[f][k] for f in families])) for k in keys}
    for f in [*families, "mean"]:
        r = means if f == "mean" else base[f]
        name = "**mean**" if f == "mean" else f
        gens = "" if f == "mean" else ", ".join(sorted(generators[f]))
        n = str(sum(int(base[g]["n"]) for g in families)) if f == "mean" else str(int(r["n"]))
        line = (
            f"| {name} | {gens} | {n} | {r['own_auc']:.3f} | **{r['logo_auc']:.3f}** "
            f"| {r['seen_auc']:.3f} | {r['seen_auc'] - r['logo_auc']:+.3f} "
            f"| {_pct(r['logo_ai_called_real'])} | {_pct(r['seen_ai_called_real'])} "
            f"| {_pct(r['logo_real_called_fake'])} |"
        )
        if bundle:
            new = rows["new"]
            if f == "mean":
                logo = np.mean([new[g]["logo_auc"] for g in families])
                own = np.mean([new[g]["own_auc"] for g in families])
            else:
                logo, own = new[f]["logo_auc"], new[f]["own_auc"]
            line += f" {logo:.3f} | {own:.3f} |"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modern", type=Path, default=MANIFESTS / "modern.csv")
    parser.add_argument("--real", type=Path, default=MANIFESTS / "real.csv")
    parser.add_argument("--recipe", default="general_modern", help="defines the families")
    parser.add_argument("--detector", default="general", help="whose frozen features")
    parser.add_argument("--bundle", help="a second bundle (trained on these families)")
    parser.add_argument("--per-family", type=int, default=150, help="AI images per family")
    parser.add_argument("--reals", type=int, default=600, help="real photos (half tested)")
    parser.add_argument(
        "--per-shared", type=int, default=100, help="per class and shared source; 0: none"
    )
    parser.add_argument("--c", type=float, default=0.05, help="inverse L2 strength of the probe")
    parser.add_argument(
        "--weights",
        choices=("recipe", "equal"),
        default="recipe",
        help="each source's weight within its class in the probe's fit: the recipe's "
        "(default), or every source the same",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "logo-probe")
    args = parser.parse_args()
    for path in (args.modern, args.real):
        if not path.is_file():
            sys.exit(f"{path}: manifest not found (build it with `fakescope data sources`)")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    started = time.perf_counter()

    items, sources_list, families, recipe_weights = draw_sample(args)
    bundles = {"general": args.detector} | ({"new": args.bundle} if args.bundle else {})
    feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    paths = [it.path for it in items]
    for key, bundle in bundles.items():
        x, own, kept, skipped = features_of(bundle, paths, args.out)
        if skipped:
            print(f"{bundle}: left out {len(skipped)} unreadable images, e.g. {skipped[0]}")
        if kept != paths:  # every bundle scores the same images (kept keeps their order)
            keep = set(kept)
            index = [i for i, p in enumerate(paths) if p in keep]
            items = [items[i] for i in index]
            sources_list = [sources_list[i] for i in index]
            paths = [paths[i] for i in index]
            feats = {k: (v[0][index], v[1][index]) for k, v in feats.items()}
        feats[key] = (x, own)
    print(f"features: {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB")

    y = np.array([it.label for it in items])
    sources = np.array(sources_list)
    origins = [it.source or "" for it in items]
    fit_real, test_real = real_split(sources, origins, args.seed)
    generators: dict[str, set[str]] = {f: set() for f in families}
    for it, name in zip(items, sources_list, strict=True):
        if name in generators:
            generators[name].add(it.generator or "?")
    how = ProbeSettings(args.c, args.seed, recipe_weights if args.weights == "recipe" else None)
    rows = {
        key: {f: family_row(x, y, sources, own, fit_real, test_real, f, how) for f in families}
        for key, (x, own) in feats.items()
    }
    shared = sorted(set(sources_list) - set(families) - {REAL})
    n_origins = len({o for o, s in zip(origins, sources_list, strict=True) if s == REAL})
    print(
        f"\n{len(y)} images: {int(np.isin(sources, families).sum())} AI images of "
        f"{len(families)} families, {int(fit_real.sum())} + {int(test_real.sum())} real photos "
        f"(fitted + tested, {n_origins} origins), shared sources fitted: "
        f"{', '.join(shared) or 'none'}; probe on the frozen pooled features of "
        f"`{args.detector}`, C={args.c}, {args.weights} source weights; ROC-AUC of the "
        "family's AI images against the test reals\n"
    )
    print_table(rows, families, generators, args.bundle)
    report = args.out / f"logo-probe-c{args.c}-{args.weights}-seed{args.seed}.json"
    report.write_text(json.dumps(rows, indent=1))
    print(f"\ntotal {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB")
    command = shlex.join(["python", "bench/logo_probe.py", *sys.argv[1:]])
    print(f"command: {command} (niceness {os.nice(0)})")


if __name__ == "__main__":
    main()
