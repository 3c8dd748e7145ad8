"""A bundle's validation figures per training source, from `fakescope evaluate`'s output.

`fakescope evaluate RUN/manifest.csv --split val` reports per generator; a run that lists a
manifest once per generator family (configs/general_modern.yaml) has one source per family
and one of real photos. This joins the evaluation's predictions.csv with the run's manifest
and prints, per source: images, ROC-AUC (within the source; an all-fake family against the
all-real sources of the run, `--reals`), coverage (share not unsure), real images
confidently called fake and AI images confidently called real, each as a share of that
class in the source. Two evaluations of two bundles on the same manifest compare directly.

    python bench/val_by_source.py RUN/manifest.csv EVAL/predictions.csv [--reals real_photos]

--content-check: the same figures if images the content heuristic
(fakescope.data.content_type) calls graphic were answered unsure (what such a check costs
in coverage and saves in confident mistakes); it decodes every image once.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None


def _graphic(path: str) -> bool:
    from fakescope.data.content_type import content_stats
    from fakescope.data.decode import load_image
    from fakescope.data.sources import read_item_bytes

    return content_stats(load_image(read_item_bytes(path), path))["kind"] == "graphic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--reals", nargs="*", default=["real_photos"],
                        help="all-real sources an all-fake source is ranked against")  # fmt: skip
    parser.add_argument("--content-check", action="store_true")
    args = parser.parse_args()
    with args.manifest.open(newline="") as handle:
        source_of = {row["path"]: row["source"] for row in csv.DictReader(handle)}
    rows: dict[str, list[tuple[int, float, bool, bool]]] = defaultdict(list)
    with args.predictions.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["p_fake"] == "" or row["path"] not in source_of:
                continue
            unsure = row["unsure"] == "1" or (args.content_check and _graphic(row["path"]))
            rows[source_of[row["path"]]].append(
                (int(row["label"] == "fake"), float(row["p_fake"]),
                 row["predicted"] == "fake", unsure)
            )  # fmt: skip
    print(f"# {machine(torch_threads=False)}")
    check = " (graphic images answered unsure)" if args.content_check else ""
    print(f"{args.predictions} on {args.manifest} (validation rows){check}\n")
    print("| source | images | ROC-AUC | coverage | real called fake (sure) "
          "| AI called real (sure) |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
    real_pool = [r for name in args.reals for r in rows.get(name, [])]
    totals = {"n": 0, "sure": 0, "real": 0, "rcf": 0, "fake": 0, "fcr": 0}
    for name in sorted(rows):
        data = rows[name]
        y = np.array([r[0] for r in data])
        pool = data if 0 in y or name in args.reals else data + real_pool
        auc = _auc(np.array([r[0] for r in pool]), np.array([r[1] for r in pool]))
        sure = np.array([not r[3] for r in data])
        called_fake = np.array([r[2] for r in data])
        n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
        rcf = int(((y == 0) & sure & called_fake).sum())
        fcr = int(((y == 1) & sure & ~called_fake).sum())
        for key, value in (("n", len(y)), ("sure", int(sure.sum())), ("real", n_real),
                           ("rcf", rcf), ("fake", n_fake), ("fcr", fcr)):  # fmt: skip
            totals[key] += value
        print(
            f"| {name} | {len(y)} | {'-' if auc is None else f'{auc:.3f}'} | {sure.mean():.1%} "
            f"| {f'{rcf / n_real:.1%}' if n_real else '-'} "
            f"| {f'{fcr / n_fake:.1%}' if n_fake else '-'} |"
        )
    t = totals
    print(
        f"| all | {t['n']} | | {t['sure'] / t['n']:.1%} | {t['rcf'] / max(1, t['real']):.1%} "
        f"| {t['fcr'] / max(1, t['fake']):.1%} |"
    )


if __name__ == "__main__":
    main()
