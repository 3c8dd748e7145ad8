"""From a trained coder to a shipped bundle: the statistics of the held-back real photos
(``calib`` split), the threshold fitted on them, and the bundle written."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from fakescope.data.sources import read_item_bytes
from fakescope.data.transforms import Preprocessing
from fakescope.errors import ConfigError, ImageError
from fakescope.kinds.zero_shot.bundle import crop_preprocessing, save_zero_shot_bundle
from fakescope.kinds.zero_shot.coder import Coder, CoderConfig
from fakescope.kinds.zero_shot.data import RealImage, recipe_real_images
from fakescope.kinds.zero_shot.fit import check_fit_options, fit_statistic
from fakescope.kinds.zero_shot.onnx_graph import FeatureSession, export_features
from fakescope.kinds.zero_shot.recipe import ZeroShotRecipe
from fakescope.kinds.zero_shot.statistic import GapFeatures, crop_features, image_statistics
from fakescope.kinds.zero_shot.train import SUMMARY, WEIGHTS

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = {"d0": -1.0}  # ZED: generated images are coded more cheaply than expected


def load_coder(run_dir: str | os.PathLike[str], recipe: ZeroShotRecipe) -> Coder:
    """The trained coder of a run folder. Raises ConfigError when it has no weights."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{path}: not found; train first: fakescope zero-shot train")
    coder = Coder(CoderConfig(**recipe.coder.model_dump()))
    coder.load_state_dict(load_file(str(path)))
    return coder.eval()


def decode(path: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(read_item_bytes(path))) as img:
            return img.convert("RGB")
    except ImageError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ImageError(path, f"cannot decode ({exc})") from None


def statistics_of_images(
    graph: GapFeatures | Callable[[torch.Tensor], Any],
    preprocessing: Preprocessing,
    images: Sequence[Image.Image],
) -> list[dict[str, float]]:
    """The coding-gap statistics of decoded images (their native crops)."""
    out = []
    for img in images:
        crops = torch.from_numpy(preprocessing.to_uint8(img)).float()
        if isinstance(graph, GapFeatures):
            feats = crop_features(graph, crops).numpy()
        else:
            feats = np.asarray(graph(crops))
        out.append(image_statistics(feats))
    return out


def calib_images(recipe: ZeroShotRecipe) -> list[RealImage]:
    data = recipe.data
    images = recipe_real_images(data)
    return [i for i in images if i.split == "calib"]


def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Measured figures for the bundle's card: a JSON object.

    Raises:
        ConfigError: the file cannot be read or does not hold a JSON object.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the metrics ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: the metrics are not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the metrics must be a JSON object of named figures")
    return data


def build_bundle(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    recipe: ZeroShotRecipe,
    *,
    side: int = 64,
    crops: int = 8,
    fpr: float = 0.05,
    per_source: int = 60,
    two_sided: bool = True,
    readability: tuple[str, float, float] = ("nll_ratio", 0.02, 1.0),
    weights: dict[str, float] | None = None,
    metrics: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fit the threshold on up to `per_source` held-back real photos of each source (the
    ``calib`` split; photos smaller than a crop are left out; `two_sided` and the
    `readability` feature, quantile and factor: see :func:`fit_statistic`) and write the
    bundle."""
    check_fit_options(fpr, *readability)
    coder = load_coder(run_dir, recipe)
    pre = crop_preprocessing(side, crops)
    # onnxruntime computes the same features (parity-checked on export) many times faster
    graph = FeatureSession(export_features(coder, side))
    rng = np.random.default_rng(recipe.data.seed)
    by_source: dict[str, list[RealImage]] = {}
    for image in calib_images(recipe):
        by_source.setdefault(image.source, []).append(image)
    chosen: list[RealImage] = []
    for source in sorted(by_source):
        items = by_source[source]
        order = rng.permutation(len(items))
        chosen.extend(items[i] for i in order[: per_source * 2])
    stats: list[dict[str, float]] = []
    used: dict[str, int] = {}
    for n, image in enumerate(chosen):
        if used.get(image.source, 0) >= per_source:
            continue
        try:
            img = decode(image.path)
        except ImageError as exc:
            log.warning("skipped: %s", exc)
            continue
        if min(img.size) < side:
            continue
        stats.extend(statistics_of_images(graph, pre, [img]))
        used[image.source] = used.get(image.source, 0) + 1
        if progress is not None:
            progress(n + 1, len(chosen))
    statistic = fit_statistic(
        stats,
        weights or DEFAULT_WEIGHTS,
        fpr=fpr,
        two_sided=two_sided,
        readability_feature=readability[0],
        readability_quantile=readability[1],
        readability_factor=readability[2],
        fitted_on={"split": "calib", "per_source": used, "seed": recipe.data.seed},
    )
    summary_path = Path(run_dir) / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    training = {
        "recipe": recipe.model_dump(),
        "steps": summary.get("steps"),
        "seconds": summary.get("seconds"),
        "parameters": sum(p.numel() for p in coder.parameters()),
        "test_bits_per_subpixel": summary.get("test_bits_per_subpixel"),
        "test_crops": summary.get("test_crops"),
    }
    card = {
        "title": "fakescope zero_shot detector (a model of real photos, never a fake)",
        "data": (
            "Real photos only: the repositories of shared/data/real_sources.tsv (ImageNet "
            "samples, ImageNet detection photos, the NeurIPS-17 dev set, BSDS500, grocery, "
            "clothing, cats and dogs, hard hats, ants and bees, COCO val) and the real halves "
            "of the shared archives (CIFAKE, StyleGAN faces' FFHQ, LFW, DFDC, modern photos); "
            "crops too small for training (CIFAKE's 32 px) were never seen. Almost all of it "
            "is JPEG (quality 70-96): the coder models JPEG-compressed photos. A seeded, "
            "source-stratified share of every source was held back (calib: the threshold; "
            "test: bits per sub-pixel and the figures)."
            + (
                f" A {recipe.train.degrade:g} share of the training photos was blurred, up- "
                "or down-scaled or JPEG re-compressed before cropping, so that a smooth real "
                "photo is not surprising."
                if recipe.train.degrade > 0
                else ""
            )
        ),
        "limits": (
            "A statistical test against a model of real photos. On our sets the coding gap "
            "points one way for some generators (coded more cheaply than real photos: Krea, "
            "SD 1.5 fine-tunes, Midjourney) and the other way for others (more expensively: "
            "GPT-image-1, SDXL, latent diffusion), which is why the test is two-sided; that "
            "choice and the readability floor were made after looking at the same sets the "
            "figures come from, so they are not held-out figures. Faces, CIFAKE and the "
            "shared modern photos stay near chance. Treat the probability as evidence, not "
            "proof, and route 'unsure' verdicts to a person."
        ),
        "never_tested_on": (
            "raw or lossless camera photos, phone photos with modern processing (HDR, "
            "night modes), screenshots, scans, drawings and art; video frames; generators "
            "not listed in BENCHMARKS.md."
        ),
    }
    return save_zero_shot_bundle(
        out, coder, statistic, pre, training=training, metrics=metrics or {}, card=card
    )
