"""Copy a trained CIFAKE bundle into the package as the default detector, with its model card.

    python tools/ship_default_detector.py runs/default-cifake

The bundle is re-verified, its weights stored as float16 (half the size; they load into
the float32 model), its validation metrics measured again with those weights on the run's
own validation split, given the card text below, and signed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fakescope.bundle import default_bundle_path, load_bundle, save_bundle, update_meta
from fakescope.evaluation.evaluate import evaluate
from fakescope.inference import Detector

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
    model, meta = load_bundle(args.run / "bundle")  # refuses a damaged bundle
    target = default_bundle_path()
    if target.exists():
        shutil.rmtree(target)
    save_bundle(target, model.half(), meta)
    metrics = evaluate(
        Detector.load(target, device="cpu"),
        args.run / "manifest.csv",
        args.run / "shipped-eval",
        split="val",
    )
    numbers = {
        k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "temperature"
    }
    training = {**meta.training, "trained_metrics_fp32": meta.metrics}
    update_meta(target, card=CARD, metrics=numbers, training=training)
    print(f"shipped {args.run / 'bundle'} -> {target} (float16 weights)")
    before, after = meta.metrics["accuracy"], numbers["accuracy"]
    print(f"validation accuracy: float32 {before:.4f}, float16 {after:.4f}")
    print((target / "MODEL_CARD.md").read_text())


if __name__ == "__main__":
    main()
