"""Copy a trained bundle into the package as a shipped detector, with its model card.

    python tools/ship_default_detector.py runs/default --name cifake    # recipe `default`
    python tools/ship_default_detector.py runs/scratch --name scratch   # recipe `scratch`
    python tools/ship_default_detector.py runs/general-modern --name general  # `general_modern`
    python tools/ship_default_detector.py runs/faces-lite2 --name faces  # `faces_lite2`
    python tools/ship_default_detector.py --name general_faces   # shipped general + faces

`general_faces` (the default) is no trained run: it is a face-aware bundle that names the
shipped `general` and `faces` by their checksums. Shipping either of them rebuilds it, so it
keeps loading; its card's figures then describe the members it had, so re-measure them
(`cd bench && python face_aware.py`) and update CARDS["general_faces"].

`general` is made for photographs: shipping it switches its content check on
(`fakescope.bundle.set_content(bundle, "photo")`, see PHOTOS_ONLY), so drawn or graphic
images (plots, screenshots, illustrations) are answered unsure; `general_faces` follows its
whole-image member, so it has the check too.

A detector trained on face crops (its bundle records a face crop policy) is measured on the
faces of its validation images, cropped the way `--faces` crops them; a recipe with its own
`card:` (configs/faces.yaml) keeps that text.

The bundle is re-verified, its weights stored as float16 (half the size; they load into
the float32 model), its validation metrics measured again with those weights on the run's
own validation split, given the card text below, and signed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from fakescope.bundle import (
    DOMAIN_FILE,
    SHIPPED_DETECTORS,
    load_bundle,
    save_bundle,
    set_content,
    shipped_bundle_path,
    update_meta,
)
from fakescope.detectors import Detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.kinds.face_aware.bundle import FaceRoute, save_face_aware_bundle

LIMITS = (
    "Trained on one generator (Stable Diffusion 1.4) and one real-image source (CIFAR-10) "
    "at 32x32. Expect much lower accuracy on other generators (GANs, Midjourney, DALL-E, "
    "newer diffusion models), on face swaps, on large photos and after heavy "
    "re-compression or resizing; evaluate on your own data before relying on it. The "
    "validation metrics in this card come from a held-out 10% of cifake_train with exact "
    "and near duplicates kept on one side of the split; they are not a measure of "
    "generalization. Never use a single score as proof that an image is fake."
)
SUMMARY = (
    "Scores how likely an image is to be AI-generated, trained on CIFAKE: 50,000 CIFAR-10 "
    "photos versus 50,000 Stable Diffusion 1.4 images, all 32x32 JPEG (Bird & Lotfi, 2023)."
)
CARDS = {
    "cifake": {
        "title": "fakescope cifake detector (CIFAKE, EfficientNet-Lite0)",
        "summary": SUMMARY,
        "intended_use": (
            "`--bundle cifake` (the default detector until 2026-12-01): screening small "
            "or downscaled images for Stable-Diffusion-style generation, and a reference point "
            "for detectors you train on your own data. EfficientNet-Lite0 from ImageNet weights, "
            "fine-tuned at 64x64: images are resized to 64x64 first (CIFAKE's 32x32 images are "
            "upsampled), so fine detail in large images is not seen."
        ),
        "limits": LIMITS
        + (
            " It is fragile to additive noise and to small white-box perturbations: on 2,000 "
            "held-out images, accuracy falls from 98% to 55% under Gaussian noise of sigma 0.1 "
            "and to 25% under PGD-10 at 1/255 (the scratch detector keeps 85% and 82%); see "
            "BENCHMARKS.md. Fine-tune it with the robust or adversarial recipes' settings "
            "where noise or an adaptive adversary is expected."
        ),
    },
    "scratch": {
        "title": "fakescope scratch detector (CIFAKE, resnet_se)",
        "summary": SUMMARY,
        "intended_use": (
            "A small convolutional network trained from scratch (no ImageNet weights), kept "
            "as a second, independent CIFAKE detector (`--bundle scratch`): the starting point "
            "of the robust and adversarial recipes, an ensemble member, and a baseline. Images "
            "are resized to 32x32 first, so fine detail in large images is not seen."
        ),
        "limits": LIMITS,
    },
    "general": {
        "title": "fakescope general detector (shared sources + 12 generators, Lite0, native crops)",
        "summary": (
            "Scores how likely an image is to be AI-generated or manipulated. Trained on "
            "CIFAKE thumbnails (Stable Diffusion 1.4 vs CIFAR-10), StyleGAN2 faces vs real "
            "portraits, classic LFW face swaps, DFDC deepfake face crops, photos from modern "
            "diffusion services, AI images of a dozen current generators (GPT-4o / "
            "gpt-image-1, Nano Banana, Krea 2, Stable Diffusion 1.x, SD 1.5 fine-tunes, SDXL, "
            "Midjourney v3/v4, DALL-E 2, older latent-diffusion models) and real photos of ten "
            "public repositories (the sources listed in ../shared/data/*_sources.tsv), "
            "generator families and repositories sampled equally, every non-JPEG training "
            "file re-encoded as a JPEG so that format cannot decide; 160 px crops at each "
            "image's own resolution. Two stages, 90 minutes on 2 CPU cores: 60 from ImageNet "
            "weights on the five shared sources (recipes/general.yaml), then 30 on all "
            "sources (general_modern.yaml)."
        ),
        "intended_use": (
            "The detector fakescope uses when no bundle is given: a first screen of photos, "
            "faces and AI images, with an 'unsure' answer where an image is unlike its "
            "training data (domain score) or near the threshold. Four crops on a grid are "
            "scored at the image's own resolution and their logits averaged, so large photos "
            "are not squashed into thumbnails; Content Credentials, metadata and watermarks, "
            "where present, outweigh the pixels. It is for photographs: a drawn or graphic "
            "image (plots, graphs, screenshots, diagrams, illustrations, flat artwork) is "
            "answered 'unsure: not a photograph', its p(fake) still reported."
        ),
        "limits": (
            "A dozen generators are still few: generators, cameras and editing tools it never "
            "saw (Flux, Ideogram, newer GPT and Midjourney versions, Photoshop composites, "
            "heavy filters) may be scored much lower, and the leave-one-generator-family-out "
            "figures in BENCHMARKS.md are the honest estimate of that, not the validation "
            "metrics below, which come from held-out images of the same sources and "
            "generators. It saw JPEG re-compression, rescaling, blur and noise on both "
            "classes, at each picture's own resolution. "
            "What counts as drawn is a simple statistic (flat areas, few colours: "
            "fakescope.data.content_type): it misses painted or rendered art with texture "
            "everywhere, which is judged as a photograph, and calls about 2% of real photos "
            "graphic (plain low-quality JPEGs, products on white), which are then unsure. "
            "Route 'unsure' verdicts to a person, "
            "and never use a single score as proof that an image is fake."
        ),
    },
    "general_faces": {
        "title": "fakescope general_faces detector (general, and the face specialist on close-ups)",
        "summary": (
            "The detector fakescope uses when no bundle is given. The shipped `general` "
            "detector scores every image (four 160 px crops at the image's own resolution); "
            "where the largest face covers at least half of the image, the shipped face "
            "specialist `faces` (EfficientNet-Lite2 on 224 px face crops) scores that face "
            "too and the two scores are averaged. On the 3,858 validation images of the "
            "general_modern run (fakescope evaluate RUN/manifest.csv --split val --bundle "
            "default, then bench/val_by_source.py; 2026-12-06): ROC-AUC 0.974, 62 % answered, "
            "real images confidently called fake 1.1 %, AI images confidently called real "
            "1.4 %; DFDC faces ROC-AUC 0.968 against 0.752 for `general` alone (the face "
            "specialist trained on DFDC with its own split, so some of these faces may be "
            "its training images); on images of the twelve generators' repositories that "
            "training never used (bench/modern_sources.py --exclude-trained) mean ROC-AUC "
            "0.939 over 22 generator labels, 4.1 % of AI images confidently called real, "
            "0.8 % of real photos confidently called fake."
        ),
        "intended_use": (
            "A first screen of photos, faces and AI images, with an 'unsure' answer where an "
            "image is unlike the whole-image detector's training data or near its threshold. "
            "A picture that is mostly one face (a face crop, a portrait close-up, a video "
            "frame of a talking head) gets the face specialist's second look; Content "
            "Credentials, metadata and watermarks, where present, outweigh the pixels. Like "
            "its whole-image member it is for photographs: a drawn or graphic image (plots, "
            "graphs, screenshots, diagrams, illustrations, flat artwork) is answered 'unsure: "
            "not a photograph', its p(fake) still reported; with --faces the face crop "
            "scored is what is looked at (a photographed face in a screenshot is judged)."
        ),
        "limits": (
            "The whole-image member saw five shared sources and a dozen current generators; "
            "generators, cameras and editing tools it never saw may be scored much lower "
            "(BENCHMARKS.md, leave one generator family out). The face specialist never saw "
            "diffusion-made faces or Photoshop composites: on a modern AI portrait that "
            "fills the frame its half of the "
            "average is near chance and the whole-image detector's half carries the verdict. "
            "Faces are looked for on a 192 px copy and join only when they cover half the "
            "picture. On 1280x720 photos it runs at about four fifths of `general`'s speed. "
            "Drawn or graphic is a simple statistic (flat areas, few colours): painted or "
            "rendered art with texture everywhere is judged as a photograph, and about 2% of "
            "real photos (plain low-quality JPEGs) are called graphic and answered unsure. "
            "Route 'unsure' verdicts to a person, and never use a single score as proof that "
            "an image is fake."
        ),
    },
}
FACE_AWARE = {
    "general_faces": ("general", "faces", FaceRoute(min_face_fraction=0.5, face_weight=0.5))
}
"""Shipped face-aware bundles: (whole-image member, face member, route) by shipped name. A
face-aware bundle is for what its whole-image member is for (its `content`)."""
PHOTOS_ONLY = {"general"}
"""Shipped detectors made for photographs: `set_content(bundle, "photo")` on every shipping."""


def ship_face_aware(name: str) -> None:
    """(Re)build the shipped face-aware bundle `name` from the shipped members it names."""
    whole, faces, route = FACE_AWARE[name]
    target = shipped_bundle_path(name)
    if target.exists():
        shutil.rmtree(target)
    save_face_aware_bundle(target, whole, faces, route, card=CARDS[name])
    print(f"built {target} as {name!r}: {whole} + {faces}, route {route}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "run", type=Path, nargs="?", help="run folder of `fakescope train` (holds bundle/)"
    )
    names = sorted(set(SHIPPED_DETECTORS) - {"default"})
    parser.add_argument("--name", choices=names, default="general", help="shipped detector")
    args = parser.parse_args()
    if args.name in FACE_AWARE:
        ship_face_aware(args.name)
        return
    if args.run is None:
        parser.error(f"--name {args.name} ships a trained run: give its folder")
    model, meta = load_bundle(args.run / "bundle")  # refuses a damaged bundle
    target = shipped_bundle_path(args.name)
    if target.exists():
        shutil.rmtree(target)
    domain = args.run / "bundle" / DOMAIN_FILE
    save_bundle(target, model.half(), meta, extra_files=[domain] if meta.domain else [])
    metrics = evaluate(
        Detector.load(target, device="cpu"),
        args.run / "manifest.csv",
        args.run / "shipped-eval",
        split="val",
        faces=bool(meta.faces),
    )
    numbers = {
        k: v for k, v in metrics.items() if isinstance(v, float | int) and k != "temperature"
    }
    training = {**meta.training, "trained_metrics_fp32": meta.metrics}
    if meta.metrics.get("by_source"):  # per source, as measured at training time (float32)
        numbers["by_source"] = meta.metrics["by_source"]
    card = CARDS.get(args.name) or meta.card
    if not card:
        raise SystemExit(f"no model card text for {args.name!r}: add one to CARDS or the recipe")
    update_meta(target, card=card, metrics=numbers, training=training)
    if args.name in PHOTOS_ONLY:  # drawn or graphic images answered unsure
        set_content(target, "photo")
    print(f"shipped {args.run / 'bundle'} -> {target} as {args.name!r} (float16 weights)")
    before, after = meta.metrics["accuracy"], numbers["accuracy"]
    print(f"validation accuracy: float32 {before:.4f}, float16 {after:.4f}")
    print((target / "MODEL_CARD.md").read_text())
    for combined, (whole, faces, _) in FACE_AWARE.items():
        if args.name in (whole, faces):
            ship_face_aware(combined)
            print(f"re-measure {combined} (cd bench && python face_aware.py) and update its card")


if __name__ == "__main__":
    main()
