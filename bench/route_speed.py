"""Benchmark: the face-aware default's route search at its former settings (faces from 40 px
on the 192 px search copy) against searches that look only for faces of a share of the copy's
short side (`MtcnnFaceFinder(min_face_share=...)`: the pyramid's small-window levels dropped).

A face that covers at least half the image (the route's min_face_fraction) has each side at
least half the image's, so it is large on the search copy. Per source (a seeded sample of
each shared source) and setting: how many images are routed (the specialist joins), how many
routing decisions differ from the former settings, the IoU of the routed boxes where both
route, and the CPU ms an image of the search alone (the search thread's CPU time, one image a
call as the route calls it; the settings alternate image by image, so the machine's load
falls on each alike). Where a setting changes any decision, the default detector scores the
source under both searches and its ROC-AUC under each is printed.

With ``--backends torch onnx`` every setting runs on both of MTCNN's backends (facenet-pytorch,
and its nets on onnxruntime: `MtcnnFaceFinder(backend=...)`), alternating image by image, and
each setting on the second backend is compared with the same setting on the first: the
routing decisions that differ, and the routed boxes that are not identical ("boxes").

    python bench/route_speed.py [--per-class 500] [--shares 0.5 0.7] [--sources modern_photos]
    python bench/route_speed.py --per-class 200 --shares 0.5 --backends torch onnx
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np
from _common import DATA, machine, sample_items
from PIL import Image
from predict_vs_seed import cpu_flags
from sklearn.metrics import roc_auc_score

from fakescope.data.inputs import prepare_or_reason
from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.faces import FaceBox, FaceFinder, FaceSelector, make_face_finder, usable_faces
from fakescope.kinds.face_aware import detector as face_aware

# (source, images per class): DFDC and StyleGAN faces are what the route is for; modern photos
# hold portraits and scenes; LFW face swaps are small faces in a frame; CIFAKE thumbnails are
# too small to be searched at all (could_hold_route_face) and are kept as a check of that.
SOURCES = {
    "dfdc_faces": 1.0,
    "stylegan_faces": 1.0,
    "modern_photos": 1.0,
    "faceswap_lfw": 0.3,
    "cifake_train": 0.3,
}


def iou(a: FaceBox, b: FaceBox) -> float:
    ax2, ay2, bx2, by2 = a.x + a.w, a.y + a.h, b.x + b.w, b.y + b.h
    w = max(0, min(ax2, bx2) - max(a.x, b.x))
    h = max(0, min(ay2, by2) - max(a.y, b.y))
    inter = w * h
    return inter / (a.area + b.area - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument(
        "--backends", nargs="+", default=["onnx"], choices=["onnx", "torch"], help="MTCNN's"
    )
    args = parser.parse_args()
    detector: Any = load_detector(None, runtime="torch")
    pre = detector.preprocessing
    policy, fraction = pre.policy, pre.route.min_face_fraction
    base = {
        "min_face_size": face_aware.ROUTE_MIN_FACE,
        "search_size": face_aware.ROUTE_SEARCH_SIZE,
        "border_retries": (0.25,),
    }
    named = {"former (40 px)": base}
    for share in args.shares:
        named[f"share {share:g}"] = {**base, "min_face_share": share}
    settings: dict[str, FaceFinder] = {}
    reference: dict[str, str] = {}  # what each setting's routing is compared with
    for name, options in named.items():
        for backend in args.backends:
            label = name if len(args.backends) == 1 else f"{name} {backend}"
            finder = make_face_finder(policy.finder, **options, backend=backend)
            assert getattr(finder, "backend", backend) == backend, finder
            settings[label] = finder
            first = name if len(args.backends) == 1 else f"{name} {args.backends[0]}"
            reference[label] = "former (40 px)" if len(args.backends) == 1 else first
    retried: dict[str, int] = {}
    for s, finder in settings.items():
        count_retries(finder, retried, s)
    print(f"machine: {machine()}; {cpu_flags()}")
    print(f"route: faces covering >= {fraction:.0%} of the image; finder {policy.finder}")
    print("changed / boxes: against " + ("the same setting on " + args.backends[0] if
          len(args.backends) > 1 else "the former settings"))  # fmt: skip
    header = f"{'source':15s} {'n':>5s} {'setting':20s} {'routed':>6s} {'changed':>7s} "
    print(header + f"{'boxes':>5s} {'min IoU':>7s} {'mean IoU':>8s} {'ms/img':>7s} {'retried':>7s}")
    for name in args.sources:
        share_of_n = SOURCES[name]
        path = DATA / f"{name}.zip"
        if not path.is_file():
            print(f"{name}: {path} not found, skipped")
            continue
        source = open_source(path)
        items = sample_items(path, max(1, round(args.per_class * share_of_n)), seed=0)
        boxes: dict[str, list[FaceBox | None]] = {s: [] for s in settings}
        cpu: dict[str, float] = {s: 0.0 for s in settings}
        retried.update({s: 0 for s in settings})
        searched = 0
        for item in items:
            read = source.read_bytes
            img = prepare_or_reason(lambda it=item, r=read: r(it), item.path, lambda i: i)
            if isinstance(img, str):  # unreadable: neither searched nor routed
                for s in settings:
                    boxes[s].append(None)
                continue
            assert isinstance(img, Image.Image)
            if not face_aware.could_hold_route_face(img.size):
                for s in settings:
                    boxes[s].append(None)
                continue
            searched += 1
            for s, finder in settings.items():
                started = time.thread_time()
                found = finder.find([img])[0]
                cpu[s] += time.thread_time() - started
                faces = usable_faces(found, policy)
                box = faces[0] if faces else None
                routed = box is not None and box.area / (img.width * img.height) >= fraction
                boxes[s].append(box if routed else None)
        for s in settings:
            former, now = boxes[reference[s]], boxes[s]
            changed = sum((a is None) != (b is None) for a, b in zip(former, now, strict=True))
            both = [iou(a, b) for a, b in zip(former, now, strict=True) if a and b]
            routed = sum(b is not None for b in now)
            differ = sum(a.xywh != b.xywh for a, b in zip(former, now, strict=True) if a and b)
            ms = 1000 * cpu[s] / max(1, searched)
            lo = f"{min(both):7.3f}" if both else f"{'-':>7s}"
            mean = f"{np.mean(both):8.4f}" if both else f"{'-':>8s}"
            print(f"{name:15s} {len(now):5d} {s:20s} {routed:6d} {changed:7d} {differ:5d} "
                  f"{lo} {mean} {ms:7.1f} {retried[s]:7d}")  # fmt: skip
            for item, a, b in zip(items, former, now, strict=True):
                if (a is None) != (b is None):
                    print(f"    changed: {item.path}: former {a}, now {b}")
            if changed:
                p_former = scores(detector, source, items, settings[reference[s]])
                p_now = scores(detector, source, items, settings[s])
                y = [it.label for it in items]
                dp = np.abs(np.array(p_former) - np.array(p_now)).max()
                print(f"    ROC-AUC of the default on {name}: {reference[s]} "
                      f"{roc_auc_score(y, p_former):.4f}, {s} {roc_auc_score(y, p_now):.4f}; "
                      f"max |dp| {dp:.3f}")  # fmt: skip


def scores(detector: Any, source: Any, items: list[Any], finder: FaceFinder) -> list[float]:
    """The default's p(fake) for each item, its face route searching with `finder`."""
    pre = replace(detector.preprocessing)
    object.__setattr__(pre, "selector", FaceSelector(pre.policy, finder=finder))
    p: list[float] = []
    for start in range(0, len(items), 32):
        arrays = []
        for item in items[start : start + 32]:
            read = source.read_bytes
            array = prepare_or_reason(lambda it=item, r=read: r(it), item.path, pre.to_uint8)
            assert not isinstance(array, str), array
            arrays.append(array)
        p += detector.score_prepared(arrays).p_fake.tolist()
    return p


def count_retries(finder: Any, counts: dict[str, int], setting: str) -> None:
    """Count the images the finder searches again inside a mirrored border (its first pass
    found no face)."""
    detect = finder._detect

    def counted(copies: Any, indices: list[int], border: float) -> Any:
        if border:
            counts[setting] += len(indices)
        return detect(copies, indices, border)

    finder._detect = counted


if __name__ == "__main__":
    main()
