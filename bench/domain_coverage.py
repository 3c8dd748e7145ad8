"""How the shipped detectors answer on every shared data set once they know their domain.

For each detector and data set: the share of images it calls in-domain, coverage (share of
confident answers), risk (error rate among them), confident-wrong (share of ALL images
answered confidently and wrongly), real images confidently called fake, and ROC-AUC of the
pixel score. Up to N real and N fake images per set, sampled with a seed. The CIFAKE sample
may overlap the 9,000 images the domain model was fitted on (about 9%).

`--held-out RUN/manifest.csv` samples only images that run did not train on: its validation
split, and for CIFAKE also the ~90,000 images the general recipe never listed (our stand-in
for the CIFAKE test set). Rebuild a shipped detector's manifest with
`tools/rebuild_manifest.py`.

    FAKESCOPE_DATA_DIR=../shared/data python bench/domain_coverage.py [--n 300]
    FAKESCOPE_DATA_DIR=../shared/data python bench/domain_coverage.py --bundle general \
        --held-out runs/general/manifest.csv
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from _common import DATA, machine, peak_rss_mb
from sklearn.metrics import roc_auc_score

from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.evaluation.selective import selective_risk

SETS = ("cifake_train", "stylegan_faces", "faceswap_lfw", "dfdc_faces", "modern_photos")


def _key(path: str) -> tuple[str, str]:
    """(archive file name, member) of a 'folder/x.zip::member' path, whatever the folder."""
    archive, _, member = path.partition("::")
    return Path(archive).name, member


def trained_on(manifest: Path | None) -> set[tuple[str, str]]:
    """The images a run trained on (its manifest's train split), by `_key`."""
    if manifest is None:
        return set()
    with open(manifest, newline="") as fh:
        return {_key(row["path"]) for row in csv.DictReader(fh) if row["split"] == "train"}


def sample(
    name: str, n: int, seed: int, exclude: AbstractSet[tuple[str, str]] = frozenset()
) -> tuple[list[str], np.ndarray]:
    items = [
        it
        for it in open_source(DATA / f"{name}.zip").items
        if it.label is not None and _key(it.path) not in exclude
    ]
    rng = np.random.default_rng(seed)
    picked = []
    for label in (0, 1):
        pool = [it for it in items if it.label == label]
        picked += [pool[i] for i in rng.choice(len(pool), min(n, len(pool)), replace=False)]
    return [it.path for it in picked], np.array([it.label for it in picked])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", action="append", help="shipped name or folder")
    parser.add_argument("--n", type=int, default=300, help="images per class and set")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--held-out", type=Path, help="a run's manifest.csv: leave out the images it trained on"
    )
    args = parser.parse_args()
    exclude = trained_on(args.held_out)
    if args.held_out:
        print(f"left out: the {len(exclude):,} training images of {args.held_out}")
    print(f"machine: {machine()}")
    print("| detector | data set | n | in-domain | coverage | risk | confident-wrong "
          "| real called fake (confident) | ROC-AUC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for bundle in args.bundle or ["default", "scratch"]:
        detector = load_detector(bundle, device="cpu")
        for name in SETS:
            paths, y = sample(name, args.n, args.seed, exclude)
            results = detector.predict(paths, provenance=False, batch_size=128)
            ok = [i for i, r in enumerate(results) if r.error is None]
            p = np.array([results[i].p_fake for i in ok], dtype=float)
            unsure = np.array([bool(results[i].unsure) for i in ok])
            inside = np.array([bool(results[i].in_domain) for i in ok])
            risk = selective_risk(y[ok], p, detector.threshold, unsure, inside)
            auc = roc_auc_score(y[ok], p) if len(set(y[ok])) == 2 else float("nan")
            print(
                f"| {bundle} | {name} | {len(ok)} | {inside.mean():.1%} | {risk['coverage']:.1%} "
                f"| {risk['risk'] if risk['risk'] is None else format(risk['risk'], '.1%')} "
                f"| {risk['confident_wrong']:.1%} | {risk['real_called_fake_confidently']:.1%} "
                f"| {auc:.3f} |"
            )
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
