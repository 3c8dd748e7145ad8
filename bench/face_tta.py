"""Experiment: test-time changes to a face detector: mirror averaging, a larger input size.

Test-time flipping is the cheapest test-time augmentation: the detector was trained with
horizontal flips, so a face and its mirror are both in its domain, and averaging their logits
can smooth out noise of one view. It doubles the forward passes (not the face finding). This
script scores every face crop (`--faces`: the largest face, cropped by the bundle's own
policy) plainly, mirrored, and as the mean of both logits, and prints ROC-AUC per source for
each, with accuracy at the bundle's threshold.

`--input-size N` scores at N x N pixels instead of the bundle's own size (the face crop is
the same, only resized to N). Training on random crops shows objects larger than the
centred test view does, so testing a little larger than training can match the two again
("FixRes", Touvron et al. 2019); a convolutional network with global pooling accepts any
size. Accuracy at the bundle's threshold is then only indicative: a new size would need its
own threshold and unsure band.

    python bench/face_tta.py [--data runs/faces-tune30/manifest.csv] [--split val]
        [--bundle faces] [--input-size 224]
    python bench/face_tta.py --data runs/face-composites3 --split ''   # composites

`--data` is anything `fakescope evaluate` reads (a folder with real/ and fake/, an archive or
a manifest CSV); `--split` keeps only that split of a manifest ('' keeps every image).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch
from _common import machine, peak_rss_mb
from sklearn.metrics import roc_auc_score

from fakescope.data.cache import DecodedSet, decode_items
from fakescope.data.sources import Item, Source, open_source
from fakescope.detectors import Detector
from fakescope.faces import FaceSelector


def score(
    detector: Detector, source: Source, items: Sequence[Item]
) -> tuple[DecodedSet, torch.Tensor, torch.Tensor]:
    """Each item's largest face (whole image without one), decoded as training and evaluation
    decode it (unreadable items skipped), with its raw logits plain and mirrored."""
    decoded = decode_items(
        items, source.read_bytes, detector.preprocessing, faces=FaceSelector(detector.face_policy)
    )
    plain = detector.logits_in_batches(decoded.images, batch_size=32, progress=True)
    mirrored = detector.logits_in_batches(
        torch.flip(decoded.images, dims=[-1]), batch_size=32, progress=True, desc="mirrored"
    )
    return decoded, plain, mirrored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="runs/faces-tune30/manifest.csv")
    parser.add_argument("--split", default="val", help="keep this split of a manifest")
    parser.add_argument("--bundle", default="faces")
    parser.add_argument(
        "--input-size", type=int, default=None, help="score at N x N px (default: the bundle's)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {machine()}")
    detector = Detector.load(args.bundle)
    if args.input_size:
        pre = dataclasses.replace(detector.preprocessing, input_size=args.input_size)
        detector.meta = dataclasses.replace(detector.meta, preprocessing=pre)
    source = open_source(args.data)
    items = [
        item
        for item in source.items
        if item.label is not None and (not args.split or item.split == args.split)
    ]
    if not items:
        raise SystemExit(f"{args.data}: no labelled images in split {args.split!r}")
    started = time.perf_counter()
    decoded, plain_logits, mirrored_logits = score(detector, source, items)
    plain, mirrored = plain_logits.numpy(), mirrored_logits.numpy()
    seconds = time.perf_counter() - started
    for path, reason in decoded.skipped:
        print(f"skipped {path}: {reason}")
    labels = decoded.labels.numpy().astype(int)
    source_of = {item.path: item.source or "all" for item in items}
    names = np.array([source_of[path] for path in decoded.paths])
    size = detector.preprocessing.input_size
    print(f"{len(decoded)} images from {args.data}, bundle {args.bundle} at {size} px,", end=" ")
    print(f"{seconds:.0f} s")
    print(f"{'source':16} {'n':>5}  ROC-AUC plain / mirrored / mean    accuracy plain / mean")
    groups = sorted(set(names)) + (["all"] if len(set(names)) > 1 else [])
    for name in groups:
        m = np.ones(len(decoded), bool) if name == "all" else names == name
        y, z0, z1 = labels[m], plain[m], mirrored[m]
        mean = (z0 + z1) / 2
        if len(set(y.tolist())) < 2:
            print(f"{name:16} {m.sum():5d}  (one class only: no ROC-AUC)")
            continue
        # the verdict as the detector gives it: calibrated p(fake) against its threshold
        fake = [detector.calibrate(torch.from_numpy(z)) >= detector.threshold for z in (z0, mean)]
        aucs = " / ".join(f"{roc_auc_score(y, z):.4f}" for z in (z0, z1, mean))
        accs = " / ".join(f"{np.mean(f == y):.4f}" for f in fake)
        print(f"{name:16} {m.sum():5d}  {aucs}    {accs}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
