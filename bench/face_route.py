"""How the face-aware default's route was chosen: where faces fill the picture, and what
averaging the face specialist in does there.

Scores the face specialist's validation faces (its run's manifest: DFDC, LFW, StyleGAN) and
every modern photo with both shipped members: `general` on the whole image, `faces` on the
largest face (`predict --faces`), whose box also gives the share of the picture the face
covers. Prints, per source, the share of images whose face covers at least 0.3 ... 0.7 of
the picture, and on the images at or above a fraction, the ROC-AUC of `general`, of `faces`
and of their threshold-relative average at face weights 0.3, 0.5 and 0.7 (the rule of
`fakescope.kinds.face_aware.detector`).

`general` was trained on most of these faces and on the modern photos (its own validation
split is another draw), so its column is flattered here; `bench/face_aware.py` measures the
chosen route on images neither model trained on.

    cd bench && python face_route.py [--faces-run ../runs/faces-lite2]
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

import numpy as np
from _common import DATA, REPO, machine, peak_rss_mb
from PIL import Image
from sklearn.metrics import roc_auc_score

from fakescope.data.sources import open_source, read_item_bytes
from fakescope.detectors import load_detector
from fakescope.inference import predict_inputs

FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)
WEIGHTS = (0.3, 0.5, 0.7)


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q) - np.log1p(-q)


def items(faces_run: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(paths, labels, source names): the specialist's validation faces and every modern
    photo."""
    with (faces_run / "manifest.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "val"]
    paths = [r["path"] for r in rows]
    labels = [int(r["label"] == "fake") for r in rows]
    sources = [r["source"] for r in rows]
    for it in open_source(DATA / "modern_photos.zip").items:
        paths.append(it.path)
        labels.append(int(it.label == 1))
        sources.append("modern_photos")
    return paths, np.array(labels), np.array(sources)


def auc(y: np.ndarray, score: np.ndarray) -> str:
    return f"{roc_auc_score(y, score):.3f}" if len(set(y)) == 2 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faces-run", type=Path, default=REPO / "runs" / "faces-lite2")
    args = parser.parse_args()
    paths, y, sources = items(args.faces_run)
    print(f"machine: {machine()}\n{len(paths)} images")
    started = time.perf_counter()
    general, faces = load_detector("general"), load_detector("faces")
    whole = predict_inputs(general, paths, provenance=False)
    face = predict_inputs(faces, paths, provenance=False, faces=True)
    print(f"scored in {time.perf_counter() - started:.0f} s")
    p_whole = np.array([r.p_fake for r in whole], dtype=float)
    p_face = np.array([r.p_fake for r in face], dtype=float)
    z_whole = logit(p_whole) - logit(np.array(general.threshold))
    z_face = logit(p_face) - logit(np.array(faces.threshold))
    size = {}
    for r in face:
        if r.face_box is not None:
            with Image.open(io.BytesIO(read_item_bytes(r.path))) as img:
                size[r.path] = img.width * img.height
    share = np.array(
        [
            r.face_box["w"] * r.face_box["h"] / size[r.path] if r.face_box is not None else 0.0
            for r in face
        ]
    )
    names = sorted(set(sources))
    print("\nshare of images whose largest face covers at least a fraction of the picture")
    print("| source | n | " + " | ".join(f"≥ {f}" for f in FRACTIONS) + " |")
    print("|---|---|" + "---|" * len(FRACTIONS))
    for s in names:
        pick = sources == s
        cells = " | ".join(f"{np.mean(share[pick] >= f):.1%}" for f in FRACTIONS)
        print(f"| {s} | {pick.sum()} | {cells} |")
    print("\nROC-AUC on the images at or above the fraction: general | faces | averaged (w)")
    header = " | ".join(f"avg w={w}" for w in WEIGHTS)
    print(f"| fraction | source | n | general | faces | {header} |")
    print("|---|---|---|---|---|" + "---|" * len(WEIGHTS))
    for f in FRACTIONS:
        for s in names:
            pick = (sources == s) & (share >= f)
            if pick.sum() < 10:
                continue
            mixed = [auc(y[pick], ((1 - w) * z_whole + w * z_face)[pick]) for w in WEIGHTS]
            print(
                f"| {f} | {s} | {pick.sum()} | {auc(y[pick], z_whole[pick])} | "
                f"{auc(y[pick], z_face[pick])} | {' | '.join(mixed)} |"
            )
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
