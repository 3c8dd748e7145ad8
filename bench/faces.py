"""Benchmark: how often each face finder finds a face, and how fast, on the shared face data.

Detection rate = share of images with at least one face box (every image here holds a face,
except the last set, where a box is a false alarm or a bystander). Sets:
  dfdc          224x224 DFDC face crops, the face fills the frame (real and fake, sampled)
  dfdc-zoom65   the same crops zoomed in to their central 65 % (faces overflowing the frame
                further, as in tighter close-ups than ours)
  stylegan      300x300 StyleGAN/FFHQ-style portraits
  stylegan-600  the same resized to 600x600 (approximates the 600x600 portrait bar)
  lfw           250x250 LFW photos and their face swaps (sampled)
  no-face       modern_photos.zip nature/city/interior photos (should get no box)
Each finder runs with one torch thread, on the CPU, in batches of 16 where sizes match.
A second table gives, per set, how far the largest face is rolled (its eye line from level,
from the first MTCNN finder's landmarks): what levelling the eyes (face crop policy
``align``) would change.
    python bench/faces.py [--sample 1000] [--finders mtcnn,mtcnn-plain,mtcnn-gray,haar] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import DATA, machine, peak_rss_mb
from PIL import Image

from fakescope.data.sources import open_source
from fakescope.faces import FaceFinder, HaarFaceFinder, MtcnnFaceFinder

FINDERS: dict[str, Callable[[], FaceFinder]] = {
    "mtcnn": MtcnnFaceFinder,  # as shipped: plain pass, then mirrored-border retries
    "mtcnn-plain": lambda: MtcnnFaceFinder(border_retries=()),  # facenet-pytorch defaults
    "mtcnn-gray": lambda: MtcnnFaceFinder(gray_retry=True),  # plus a last pass in grey
    "haar": HaarFaceFinder,
}


def load(
    archive: str, sample: int | None, seed: int, keep: Callable[[str], bool] = lambda _: True
) -> list[Image.Image]:
    source = open_source(DATA / archive)
    items = [it for it in source.items if keep(it.path)]
    if sample is not None and sample < len(items):
        items = random.Random(seed).sample(items, sample)
    return [Image.open(io.BytesIO(source.read_bytes(it))).convert("RGB") for it in items]


def zoom(image: Image.Image, fraction: float) -> Image.Image:
    side = round(min(image.size) * fraction)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize(image.size, Image.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=1000, help="images per large set")
    parser.add_argument("--finders", default="mtcnn,mtcnn-plain,haar")
    parser.add_argument("--sets", default="dfdc,dfdc-zoom65,stylegan,stylegan-600,lfw,no-face")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}")

    def no_face(path: str) -> bool:
        return "people_" not in path

    loaders: dict[str, Callable[[], list[Image.Image]]] = {
        "dfdc": lambda: load("dfdc_faces.zip", args.sample, args.seed),
        "dfdc-zoom65": lambda: [
            zoom(i, 0.65) for i in load("dfdc_faces.zip", args.sample, args.seed)
        ],
        "stylegan": lambda: load("stylegan_faces.zip", None, args.seed),
        "stylegan-600": lambda: [
            i.resize((600, 600), Image.BICUBIC) for i in load("stylegan_faces.zip", None, 0)
        ],
        "lfw": lambda: load("faceswap_lfw.zip", args.sample, args.seed),
        "no-face": lambda: load("modern_photos.zip", None, args.seed, no_face),
    }
    finders = {name: FINDERS[name]() for name in args.finders.split(",")}
    with_eyes = next((n for n, f in finders.items() if isinstance(f, MtcnnFaceFinder)), None)
    rolls: dict[str, list[float]] = {}
    print(f"{'set':13s} {'images':>6s}  " + "  ".join(f"{n:>22s}" for n in finders))
    for set_name in args.sets.split(","):
        images = loaders[set_name]()
        cells = []
        for name, finder in finders.items():
            started = time.perf_counter()
            found = [b for start in range(0, len(images), 16)
                     for b in finder.find(images[start : start + 16])]  # fmt: skip
            elapsed = time.perf_counter() - started
            rate = sum(bool(b) for b in found) / len(images)
            cells.append(f"{100 * rate:6.1f} % {len(images) / elapsed:6.1f} img/s")
            if name == with_eyes:
                rolls[set_name] = [abs(b[0].roll) for b in found if b]
        size = "x".join(map(str, images[0].size))
        print(f"{set_name:13s} {len(images):6d}  " + "  ".join(cells) + f"   ({size})", flush=True)
    if rolls:
        print(f"\nroll of the largest face (degrees from level, {with_eyes} landmarks)")
        head = ("set", "faces", "median", "p90", "> 5 deg", "> 10 deg")
        print("{:13s} {:>6s} {:>7s} {:>6s} {:>8s} {:>9s}".format(*head))
        for set_name, values in rolls.items():
            if not values:
                continue
            v = np.asarray(values)
            print(
                f"{set_name:13s} {len(v):6d} {np.median(v):7.1f} {np.percentile(v, 90):6.1f} "
                f"{100 * np.mean(v > 5):7.1f}% {100 * np.mean(v > 10):8.1f}%"
            )
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
