"""Which feature-space distance tells a detector's training data from other data sets?

Penultimate features of a shipped detector on 4,000 CIFAKE training images (the fit), 1,000
other CIFAKE images (the in-domain reference, threshold at their 95th percentile) and 400
images of each other shared data set. For each distance: the ROC-AUC of telling those
images from held-out CIFAKE, and the share flagged out of domain at the threshold.

    FAKESCOPE_DATA_DIR=../shared/data python bench/domain_methods.py [--bundle default]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from _common import DATA, machine
from sklearn.metrics import roc_auc_score

from fakescope.data.cache import decode_items
from fakescope.data.sources import open_source
from fakescope.detectors import TorchDetector, load_detector

Score = Callable[[np.ndarray], np.ndarray]
OTHERS = ("stylegan_faces", "faceswap_lfw", "dfdc_faces", "modern_photos")


def features(
    detector: TorchDetector, name: str, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    source = open_source(DATA / f"{name}.zip")
    items = [it for it in source.items if it.label is not None]
    pick = np.random.default_rng(seed).choice(len(items), min(n, len(items)), replace=False)
    decoded = decode_items([items[i] for i in pick], source.read_bytes, detector.preprocessing,
                           progress=False)  # fmt: skip
    feats = [
        detector.logits_and_features(decoded.images[s : s + 256])[1].numpy()
        for s in range(0, len(decoded), 256)
    ]
    return np.concatenate(feats), decoded.labels.numpy().astype(int)


def mahalanobis(train: np.ndarray, y: np.ndarray, dims: int, residual: bool = False) -> Score:
    center = train.mean(0)
    x = train - center
    basis = np.linalg.svd(x, full_matrices=False)[2][:dims]
    z = x @ basis.T
    means = [z[y == k].mean(0) for k in (0, 1)]
    r = np.concatenate([z[y == k] - means[k] for k in (0, 1)])
    cov = r.T @ r / len(r)
    precision = np.linalg.inv(cov + np.eye(dims) * 1e-3 * np.trace(cov) / dims)
    scale = np.linalg.norm(x - z @ basis, axis=1).std()

    def score(f: np.ndarray) -> np.ndarray:
        xf = f - center
        zf = xf @ basis.T
        d = np.min([np.einsum("ij,jk,ik->i", zf - m, precision, zf - m) for m in means], axis=0)
        if residual:
            d = d + (np.linalg.norm(xf - zf @ basis, axis=1) / scale) ** 2
        return d

    return score


def knn(train: np.ndarray, k: int = 10) -> Score:
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)

    def score(f: np.ndarray) -> np.ndarray:
        sims = (f / np.linalg.norm(f, axis=1, keepdims=True)) @ unit.T
        return -np.sort(sims, axis=1)[:, -k]

    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default="default")
    args = parser.parse_args()
    detector = load_detector(args.bundle, device="cpu")
    assert isinstance(detector, TorchDetector)
    print(f"machine: {machine()}; detector {args.bundle}")
    train, y = features(detector, "cifake_train", 4000, 0)
    reference, _ = features(detector, "cifake_train", 1000, 5)
    others = {name: features(detector, name, 400, 1)[0] for name in OTHERS}
    dims = train.shape[1] - 1
    methods = {
        "Mahalanobis, PCA 64": mahalanobis(train, y, 64),
        "Mahalanobis, PCA 256": mahalanobis(train, y, min(256, dims)),
        "Mahalanobis, all dims": mahalanobis(train, y, dims),
        "Mahalanobis, PCA 64 + residual": mahalanobis(train, y, 64, residual=True),
        "kNN cosine, k=10": knn(train),
    }
    print("| distance | " + " | ".join(OTHERS) + " |")
    print("|---|" + "---|" * len(OTHERS))
    for label, score in methods.items():
        ref = score(reference)
        threshold = np.quantile(ref, 0.95)
        cells = []
        for f in others.values():
            s = score(f)
            auc = roc_auc_score(np.r_[np.zeros(len(ref)), np.ones(len(s))], np.r_[ref, s])
            cells.append(f"AUC {auc:.2f}, {np.mean(s > threshold):.0%} flagged")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
