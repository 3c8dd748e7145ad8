"""Leave one source out with FROZEN features: does anything an ImageNet backbone computes, at
any depth, or a classic artifact statistic, carry what separates real from fake to a source
it never saw?

The fine-tuned general recipe is at chance on a left-out source (BENCHMARKS.md, "Leave one
source out"). Fine-tuning adapts every layer to the sources it sees; frozen features cannot,
which is why frozen foundation-model features are what generalises in the literature
(UnivFD). We have no CLIP weights offline, but we have ImageNet EfficientNet-Lites, and a
linear probe trains in seconds, so every depth can be tried in every fold:

- for each source of the general recipe, up to N real and N fake images (seeded);
- each image as the general detector sees it: 4 crops of S px at its own resolution;
- features per crop, averaged over the crops: the mean and standard deviation over space of
  every stage of each backbone (shallow stages see texture, deep ones content), its pooled
  pre-logit features, and two artifact statistics that need no network: the azimuthally
  averaged log power spectrum (Durall et al., 2020) and the moments of the NPR residual
  (Tan et al., 2024) and of a Laplacian high-pass, per colour channel;
- per feature set and left-out source: standardise, then logistic regression on the other
  sources (each source weighted equally, each class too), ROC-AUC on the one left out.
  The `seen` column is the same probe's ROC-AUC on a held-out fifth of all five sources.

    cd bench && FAKESCOPE_DATA_DIR=../../shared/data python loso_probe.py --n 300

Features are cached in runs/loso-probe/ (a rerun with other probe settings takes seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import DATA, REPO, machine, peak_rss_mb, sample_items
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from fakescope.config import load_recipe
from fakescope.data.decode import load_image
from fakescope.data.sources import Item, read_item_bytes
from fakescope.data.transforms import Preprocessing
from fakescope.models.npr import npr_residual
from fakescope.models.registry import create_model, feature_module_names, model_defaults

FeatureSets = dict[str, np.ndarray]


def crops_of(items: list[Item], pre: Preprocessing) -> np.ndarray:
    """(N, K, 3, S, S) uint8: each image as a native-resolution detector sees it."""
    return np.stack(
        [pre.to_uint8(load_image(read_item_bytes(it.path), it.path)) for it in tqdm(items)]
    )


# -- artifact statistics (no network) ------------------------------------------------------
def _moments(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C): mean |x|, std, and the 4th standardised moment, per channel,
    plus the share of exact zeros (what a nearest-neighbour up-sampling leaves)."""
    flat = x.flatten(2)
    std = flat.std(dim=2)
    kurt = ((flat - flat.mean(dim=2, keepdim=True)) ** 4).mean(dim=2) / (std**4 + 1e-12)
    zeros = (flat.abs() < 1e-6).float().mean(dim=2)
    return torch.cat([flat.abs().mean(dim=2), std, kurt.clamp(max=1e3).log1p(), zeros], dim=1)


def _spectrum(gray: torch.Tensor, bins: int = 32) -> torch.Tensor:
    """(B, S, S) -> (B, bins): azimuthally averaged log power spectrum, mean removed."""
    size = gray.shape[-1]
    power = torch.fft.fftshift(torch.fft.fft2(gray - gray.mean(dim=(1, 2), keepdim=True)))
    logp = (power.abs() ** 2 + 1e-8).log()
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt() / (size / 2)
    index = (radius.clamp(max=1.0) * (bins - 1)).round().long().flatten()
    sums = torch.zeros(gray.shape[0], bins).index_add_(1, index, logp.flatten(1))
    counts = torch.bincount(index, minlength=bins).clamp(min=1)
    profile = sums / counts
    return profile - profile.mean(dim=1, keepdim=True)


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def artifact_features(arrays: np.ndarray) -> FeatureSets:
    """Spectrum, NPR-residual and Laplacian statistics, averaged over each image's crops."""
    n, k = arrays.shape[:2]
    out: dict[str, list[np.ndarray]] = {"spectrum": [], "npr_stats": [], "highpass_stats": []}
    for start in range(0, n, 64):
        x = torch.from_numpy(arrays[start : start + 64]).flatten(0, 1).float() / 255.0
        gray = x.mean(dim=1)
        lap = F.conv2d(x, LAPLACIAN.view(1, 1, 3, 3).repeat(3, 1, 1, 1), groups=3, padding=1)
        feats = {
            "spectrum": _spectrum(gray),
            "npr_stats": _moments(npr_residual(x)),
            "highpass_stats": _moments(lap[..., 1:-1, 1:-1]),
        }
        for name, f in feats.items():
            out[name].append(f.view(-1, k, f.shape[1]).mean(dim=1).numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


# -- frozen backbone features --------------------------------------------------------------
@torch.inference_mode()
def backbone_features(name: str, arrays: np.ndarray, batch: int = 64) -> FeatureSets:
    """Per stage of a frozen ImageNet backbone: spatial mean and std (2C), and the pooled
    pre-logit features, averaged over each image's crops."""
    defaults = model_defaults(name)
    pre = Preprocessing(arrays.shape[-1], "native", mean=defaults.mean, std=defaults.std)
    model = create_model(name, pretrained=True).eval()
    stages = feature_module_names(model)
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}

    def hook(stage: str) -> Callable[..., None]:
        def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured[stage] = output

        return keep

    handles = [modules[s].register_forward_hook(hook(s)) for s in stages]
    n, k = arrays.shape[:2]
    out: dict[str, list[np.ndarray]] = {}
    try:
        for start in tqdm(range(0, n, batch), desc=name):
            x = torch.from_numpy(arrays[start : start + batch]).flatten(0, 1)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                features = model.forward_features(pre.normalize(x))
                pooled = model.forward_head(features, pre_logits=True)
            feats = {f"{name}:{s}": _mean_std(captured[s]) for s in stages}
            feats[f"{name}:pre_logits"] = pooled.float()
            for key, f in feats.items():
                out.setdefault(key, []).append(f.view(-1, k, f.shape[1]).mean(dim=1).numpy())
    finally:
        for handle in handles:
            handle.remove()
    return {key: np.concatenate(parts) for key, parts in out.items()}


def _mean_std(t: torch.Tensor) -> torch.Tensor:
    flat = t.float().flatten(2)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


# -- probes --------------------------------------------------------------------------------
def _fitted(x: np.ndarray, y: np.ndarray, sources: np.ndarray, c: float) -> Pipeline:
    """Standardise, then an L2 logistic regression, each source weighing the same."""
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    )
    return probe.fit(x, y, logisticregression__sample_weight=_equal_weights(sources))


def _equal_weights(sources: np.ndarray) -> np.ndarray:
    """Sample weights that give each source the same total weight."""
    names, counts = np.unique(sources, return_counts=True)
    per = dict(zip(names, 1.0 / counts, strict=True))
    return np.array([per[s] for s in sources]) * len(sources) / len(names)


def loso_row(x: np.ndarray, y: np.ndarray, sources: np.ndarray, c: float, seed: int) -> dict:
    """ROC-AUC on each left-out source, their mean, and the seen-sources figure."""
    row: dict[str, float] = {}
    for left in np.unique(sources):
        train = sources != left
        probe = _fitted(x[train], y[train], sources[train], c)
        row[left] = float(roc_auc_score(y[~train], probe.predict_proba(x[~train])[:, 1]))
    row["mean"] = float(np.mean([row[s] for s in np.unique(sources)]))
    strata = np.char.add(sources.astype(str), y.astype(str))
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=strata)
    probe = _fitted(x[tr], y[tr], sources[tr], c)
    row["seen"] = float(roc_auc_score(y[te], probe.predict_proba(x[te])[:, 1]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="images per class and source")
    parser.add_argument(
        "--backbone", action="append", help="frozen ImageNet backbone(s); default Lite0 and Lite2"
    )
    parser.add_argument("--crop", type=int, default=160, help="native-resolution crop size")
    parser.add_argument("--crops", type=int, default=4, help="crops per image (a grid)")
    parser.add_argument("--c", type=float, default=0.05, help="inverse L2 strength of the probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "runs" / "loso-probe"))
    args = parser.parse_args()
    backbones = args.backbone or ["tf_efficientnet_lite0", "tf_efficientnet_lite2"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    started = time.perf_counter()

    cache = out / f"features-n{args.n}-s{args.crop}x{args.crops}-seed{args.seed}.npz"
    stored: dict[str, np.ndarray] = dict(np.load(cache)) if cache.is_file() else {}
    if "labels" not in stored:
        pre = Preprocessing(args.crop, "native", crops=args.crops)
        labels, names, arrays = [], [], []
        for spec in load_recipe("general").data.sources:
            items = sample_items(DATA / spec.path, args.n, args.seed)
            arrays.append(crops_of(items, pre))
            labels += [it.label for it in items]
            names += [spec.label] * len(items)
        stored["crops"] = np.concatenate(arrays)
        stored |= {"labels": np.array(labels), "sources": np.array(names)}
        stored |= artifact_features(stored["crops"])
    for name in backbones:
        if not any(key.startswith(f"{name}:") for key in stored):
            stored |= backbone_features(name, stored["crops"])
    np.savez(cache, **stored)
    print(f"features: {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB")

    y, sources = stored["labels"], stored["sources"]
    names = [k for k in stored if k not in ("crops", "labels", "sources")]
    rows = {k: loso_row(stored[k], y, sources, args.c, args.seed) for k in tqdm(names)}
    order = sorted(np.unique(sources))
    print(f"\n{len(y)} images; linear probe C={args.c}; ROC-AUC on the source left out")
    print("| features | dims | " + " | ".join(order) + " | **mean** | seen |")
    print("|---" * (len(order) + 4) + "|")
    for k in names:
        r = rows[k]
        cells = " | ".join(f"{r[s]:.3f}" for s in order)
        print(f"| {k} | {stored[k].shape[1]} | {cells} | **{r['mean']:.3f}** | {r['seen']:.3f} |")
    (out / f"loso-probe-c{args.c}.json").write_text(json.dumps(rows, indent=1))
    print(f"\ntotal {time.perf_counter() - started:.0f} s, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
