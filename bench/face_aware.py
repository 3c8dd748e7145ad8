"""Benchmark: the face-aware detector (general + the face specialist's second look at
close-up faces) against the general detector alone, on images NEITHER was trained on.

The general detector's validation split and the face specialist's validation split were drawn
separately, so a face in one may be a training image of the other. This script scores only
images held out by both runs (their manifests say which): every general validation image of
the sources the specialist never saw (CIFAKE, modern photos) and the faces in BOTH validation
splits. Per source and overall: images, share where a face joined, ROC-AUC, accuracy at the
threshold, coverage (answers not unsure), confident-wrong and reals confidently called fake,
for each detector; and images/s of each on these images.

    cd bench && python face_aware.py --general-run ../runs/general-tune-bf16 \
        --faces-run ../runs/faces-lite2 --bundles general,general_faces
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from _common import REPO, machine, peak_rss_mb
from sklearn.metrics import roc_auc_score

from fakescope.detectors import load_detector
from fakescope.evaluation.selective import selective_risk
from fakescope.inference import predict_inputs


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def held_out_by_both(general_run: Path, faces_run: Path) -> list[dict[str, str]]:
    """General validation rows that the face specialist did not train on."""
    faces_train = {
        r["path"] for r in read_manifest(faces_run / "manifest.csv") if r["split"] == "train"
    }
    rows = read_manifest(general_run / "manifest.csv")
    return [r for r in rows if r["split"] == "val" and r["path"] not in faces_train]


def figures(y: np.ndarray, p: np.ndarray, threshold: float, unsure: np.ndarray) -> dict:
    """ROC-AUC, accuracy at the threshold, and the selective-risk figures evaluate reports."""
    risk = selective_risk(y, p, threshold, unsure)
    return {
        "n": len(y),
        "auc": roc_auc_score(y, p) if len(set(y)) == 2 else float("nan"),
        "acc": float(np.mean((p >= threshold).astype(int) == y)),
        "coverage": risk["coverage"],
        "confident_wrong": risk["confident_wrong"],
        "reals_conf_fake": risk["real_called_fake_confidently"] or 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--general-run", type=Path, default=REPO / "runs" / "general-tune-bf16")
    parser.add_argument("--faces-run", type=Path, default=REPO / "runs" / "faces-lite2")
    parser.add_argument("--bundles", default="general,general_faces")
    args = parser.parse_args()
    rows = held_out_by_both(args.general_run, args.faces_run)
    paths = [r["path"] for r in rows]
    y = np.array([1 if r["label"] == "fake" else 0 for r in rows])
    sources = np.array([r["source"] for r in rows])
    print(f"machine: {machine()}")
    print(f"{len(rows)} images held out by both runs")
    table: dict[str, dict[str, dict]] = {}
    for name in args.bundles.split(","):
        detector = load_detector(name)
        started = time.perf_counter()
        results = predict_inputs(detector, paths, provenance=False)
        seconds = time.perf_counter() - started
        p = np.array([r.p_fake for r in results], dtype=float)
        unsure = np.array([bool(r.unsure) for r in results])
        joined = np.array([r.face_box is not None for r in results])
        print(f"{name}: {len(paths) / seconds:.1f} images/s")
        table[name] = {}
        for source in [*sorted(set(sources)), "all"]:
            pick = np.ones(len(y), bool) if source == "all" else sources == source
            row = figures(y[pick], p[pick], detector.threshold, unsure[pick])
            row["joined"] = float(np.mean(joined[pick]))
            table[name][source] = row
    names = list(table)
    print(
        "\n| source | n | "
        + " | ".join(
            f"{n}: face joined | ROC-AUC | accuracy | coverage | confident-wrong | reals conf. fake"
            for n in names
        )
        + " |"
    )
    print("|---|---|" + "---|" * (6 * len(names)))
    for source in table[names[0]]:
        cells = []
        for n in names:
            r = table[n][source]
            cells.append(
                f"{r['joined']:.1%} | {r['auc']:.3f} | {r['acc']:.3f} | {r['coverage']:.1%} | "
                f"{r['confident_wrong']:.1%} | {r['reals_conf_fake']:.1%}"
            )
        print(f"| {source} | {table[names[0]][source]['n']} | " + " | ".join(cells) + " |")
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
