"""Copy a trained CIFAKE bundle into the package as the default detector, with its model card.

    python tools/ship_default_detector.py runs/default-cifake

The bundle is re-verified, given the card text below (intended use, limits, the exact
command) and re-signed; weights are not touched.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fakescope.bundle import default_bundle_path, read_meta, update_meta

CARD = {
    "title": "fakescope default detector (CIFAKE, resnet_se)",
    "summary": (
        "Scores how likely an image is to be AI-generated, trained on CIFAKE: 50,000 CIFAR-10 "
        "photos versus 50,000 Stable Diffusion 1.4 images, all 32x32 JPEG (Bird & Lotfi, 2023)."
    ),
    "intended_use": (
        "A small, fast baseline and the detector `fakescope predict` uses when no bundle is "
        "given: screening small or downscaled images for Stable-Diffusion-style generation, "
        "and a reference point for detectors you train on your own data. Images are resized "
        "to 32x32 first, so fine detail in large images is not seen."
    ),
    "limits": (
        "Trained on one generator (Stable Diffusion 1.4) and one real-image source (CIFAR-10) "
        "at 32x32. Expect much lower accuracy on other generators (GANs, Midjourney, DALL-E, "
        "newer diffusion models), on face swaps, on large photos and after heavy "
        "re-compression or resizing; evaluate on your own data before relying on it. The "
        "validation metrics below come from a held-out 10% of cifake_train with exact and "
        "near duplicates kept on one side of the split; they are not a measure of "
        "generalization. Never use a single score as proof that an image is fake."
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="run folder of `fakescope train` (holds bundle/)")
    args = parser.parse_args()
    source = args.run / "bundle"
    read_meta(source)  # refuse a damaged bundle before copying it
    target = default_bundle_path()
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    update_meta(target, card=CARD)
    print(f"shipped {source} -> {target}")
    print((target / "MODEL_CARD.md").read_text())


if __name__ == "__main__":
    main()
