"""The robustness sweep: accuracy and ROC-AUC of detectors under corruptions and white-box attacks.

Corruptions act on the decoded image at its original resolution, and the bundle's own
preprocessing follows, so each condition is what a user's degraded image goes through (for
32x32 CIFAKE the two resolutions coincide). Attacks act in the model's input space (the
preprocessed image, in [0, 1]), where the gradient is. Accuracy always uses the bundle's
decision threshold: it is never re-tuned on corrupted data. Several bundles are measured on
the same (corrupted) images, giving one table with a column block per bundle.

A bundle with native-resolution crops is corrupted the same way (the whole decoded image,
then its crops are cut); attacks on it perturb each of its K crops in the model's input
space (the B x K crops flattened into one batch) and its logit per image is the mean of its
crops' logits, as when it scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from fakescope.data.corruptions import (
    CORRUPTIONS,
    DEFAULT_SEVERITIES,
    SEVERITY_UNITS,
    apply_corruption,
)
from fakescope.data.decode import load_image
from fakescope.data.multi_source import stratified_subsample
from fakescope.data.sources import Item, Source, open_source
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector
from fakescope.errors import ConfigError, FakescopeError, ImageError
from fakescope.evaluation.evaluate import group_row, model_names, select_items
from fakescope.faces import FaceCropPolicy, FaceSelector
from fakescope.models.attacks import attack
from fakescope.robustness.plots import (
    plot_attacks,
    plot_corruption_examples,
    plot_robustness,
    save_attack_examples,
)
from fakescope.robustness.report import robustness_report
from fakescope.robustness.results import (
    AttackExamples,
    RobustnessResult,
    RobustnessRow,
    RowKind,
    RowResult,
)

ATTACKS = ("fgsm", "pgd")
#: The attack budgets measured by default (L-infinity, on the [0, 1] scale).
DEFAULT_EPS: tuple[float, ...] = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 0.08)
#: Corruptions whose severity grows as the value falls (JPEG quality, rescale factor).
DECREASING_SEVERITY = frozenset({"jpeg", "rescale", "web"})
CHUNK = 256  # images decoded (at full resolution) and corrupted at a time


@dataclass
class RobustnessConfig:
    """What to measure. `severities` maps corruption name -> values (units: SEVERITY_UNITS)."""

    severities: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES)
    )
    attacks: tuple[str, ...] = ()
    eps: tuple[float, ...] = DEFAULT_EPS
    steps: int = 10
    step_size: float | None = None
    max_images: int | None = None
    seed: int = 0
    split: str | None = None
    batch_size: int = 128
    examples: int = 4
    faces: FaceCropPolicy | None = None  # score each image's largest face by this policy

    def __post_init__(self) -> None:
        unknown = [name for name in self.severities if name not in CORRUPTIONS]
        if unknown:
            raise ConfigError(
                f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}"
            )
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ConfigError(f"unknown attack {bad[0]!r}; choose from {', '.join(ATTACKS)}")
        if self.attacks and (not self.eps or min(self.eps) < 0):
            raise ConfigError("attacks need at least one eps >= 0 (e.g. --eps 1/255,4/255)")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.max_images is not None and self.max_images < 2:
            raise ConfigError(f"--max-images must be >= 2, got {self.max_images}")

    def conditions(self) -> list[tuple[str, float]]:
        """(corruption, severity) pairs, each corruption from mild to severe."""
        return [
            (name, value)
            for name in self.severities
            for value in ordered(name, self.severities[name])
        ]


def ordered(name: str, values: Sequence[float]) -> list[float]:
    """Severities of corruption `name` from the mildest to the most severe."""
    return sorted(set(values), reverse=name in DECREASING_SEVERITY)


# -- option parsing (shared by the CLI and scripts) -------------------------------------------
def parse_number(text: str) -> float:
    """'0.08', '2/255' or '8/255' -> float; ConfigError names the bad text."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"not a number: {text!r} (write e.g. 0.08 or 2/255)") from None


def parse_list(text: str | Sequence[str] | None) -> list[str]:
    """'a,b' or ['a', 'b,c'] -> ['a', 'b', 'c'] (blanks dropped)."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]


def parse_severities(
    corruptions: str | Sequence[str] | None, severities: Sequence[str] | None
) -> dict[str, tuple[float, ...]]:
    """`--corruptions jpeg,web` (or 'all' / 'none') and `--severities jpeg=90,50` -> mapping."""
    names = parse_list(corruptions)
    if not names or names == ["all"]:
        chosen = dict(DEFAULT_SEVERITIES)
    elif names == ["none"]:
        chosen = {}
    else:
        unknown = [n for n in names if n not in CORRUPTIONS]
        if unknown:
            raise ConfigError(
                f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}"
            )
        chosen = {n: DEFAULT_SEVERITIES[n] for n in names}
    for spec in severities or []:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or name not in CORRUPTIONS:
            raise ConfigError(
                f"--severities {spec!r}: write NAME=V1,V2 with NAME one of {', '.join(CORRUPTIONS)}"
            )
        chosen[name] = tuple(parse_number(v) for v in parse_list(values))
    return chosen


# -- data ------------------------------------------------------------------------------------
def select_subsample(
    source: Source, split: str | None, max_images: int | None, seed: int
) -> list[Item]:
    """Labelled items of `split`, stratified-subsampled to `max_images` under `seed`."""
    return stratified_subsample(select_items(source, split), max_images, seed)


def _decode_chunk(
    source: Source, items: Sequence[Item], faces: FaceCropPolicy | None = None
) -> list[np.ndarray | str]:
    """Each item as an (H, W, 3) uint8 array at its own resolution, or the reason it failed.

    `faces`: each image's largest face cropped by that policy (found on the clean image, in
    one search per chunk; the whole image when it has none), so the corruptions hit the face
    crop at its own resolution, as they would hit a face in a degraded frame."""
    out: list[np.ndarray | str] = []
    images: list[Image.Image] = []
    for item in items:
        try:
            img = load_image(source.read_bytes(item), item.path).convert("RGB")
            out.append(np.asarray(img, dtype=np.uint8))
            images.append(img)
        except ImageError as exc:
            out.append(exc.reason)
        except OSError as exc:
            out.append(f"cannot read: {exc}")
    if faces is None:
        return out
    crops = iter(FaceSelector(faces).largest(images))
    return [a if isinstance(a, str) else np.asarray(next(crops).image, np.uint8) for a in out]


def corrupt_images(
    images: Sequence[np.ndarray], name: str, severity: float, *, seed: int
) -> list[np.ndarray]:
    """Corrupt (H, W, 3) uint8 images at their own resolution; same-sized ones as a batch."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, img in enumerate(images):
        by_size.setdefault(img.shape[:2], []).append(index)
    out: list[np.ndarray] = [images[0]] * len(images)
    for group, indices in enumerate(by_size.values()):
        batch = torch.from_numpy(np.stack([images[i] for i in indices])).permute(0, 3, 1, 2)
        corrupted = apply_corruption(batch.contiguous(), name, severity, seed=seed * 1009 + group)
        for i, arr in zip(indices, corrupted.permute(0, 2, 3, 1).numpy(), strict=True):
            out[i] = arr
    return out


def _preprocess(pre: Preprocessing, images: Sequence[np.ndarray]) -> torch.Tensor:
    return pre.batch_from_images([Image.fromarray(img) for img in images])


def _probabilities(detector: Detector, batch: torch.Tensor, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [
            detector.probabilities(batch[i : i + batch_size])
            for i in range(0, len(batch), batch_size)
        ]
    )


# -- attacks ---------------------------------------------------------------------------------
AttackTarget = tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]


class CropMean(torch.nn.Module):
    """A one-logit model on (B, K, 3, S, S) crops: the model on the B*K crops flattened, its
    logits averaged per image (what `Detector.logits` does with native crops)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]
        logits: torch.Tensor = self.model(x.flatten(0, 1))
        return logits.reshape(b, k).mean(dim=1, keepdim=True)


def attack_target(detector: Detector) -> AttackTarget:
    """(module, normalize, preprocessing, temperature) for white-box attacks on `detector`.

    `module(normalize(x01))` is the detector's fake-logit for images `x01` in [0, 1] at the
    preprocessing's input size, or for (B, K, 3, S, S) native crops (their mean logit);
    ensembles give gradients through all members, and kinds without gradients
    (onnxruntime) refuse with the reason.
    """
    model, normalize, pre, temperature = detector.attack_target()
    if pre.multi_crop:
        return CropMean(model), normalize, pre, temperature
    return model, normalize, pre, temperature


def _attacked_probabilities(
    target: AttackTarget,
    images01: torch.Tensor,
    labels: torch.Tensor,
    name: str,
    eps: float,
    *,
    steps: int,
    step_size: float | None,
    seed: int,
    batch_size: int,
    keep: int = 0,
) -> tuple[np.ndarray, torch.Tensor]:
    """p(fake) of adversarial images, and the first `keep` adversarial images."""
    model, normalize, _, temperature = target
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    probs: list[np.ndarray] = []
    kept: list[torch.Tensor] = []
    for start in range(0, len(images01), batch_size):
        x = images01[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        adv = attack(
            name, model, x, y, eps, normalize, steps=steps, step_size=step_size, generator=generator
        )
        with torch.no_grad():
            z = model(normalize(adv)).float().reshape(-1)
        probs.append(torch.sigmoid(z / temperature).cpu().numpy())
        if sum(len(k) for k in kept) < keep:
            kept.append(adv.cpu())
    examples = torch.cat(kept)[:keep] if kept else images01[:0]
    return np.concatenate(probs), examples


# -- the sweep -------------------------------------------------------------------------------
def _chunks(seq: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _row(kind: RowKind, name: str, severity: float | None, unit: str | None) -> RobustnessRow:
    return {"kind": kind, "name": name, "severity": severity, "unit": unit, "results": {}}


def _drop(clean: float | None, now: float | None) -> float | None:
    return None if clean is None or now is None else clean - now


def _result(
    labels: np.ndarray,
    p_fake: np.ndarray,
    threshold: float,
    clean: RowResult | None,
    groups: Mapping[str, np.ndarray] | None = None,
) -> RowResult:
    """One detector's cell of a row (accuracies, F1, ROC-AUC); drops against `clean` (none
    given: this is the clean row, drops 0); with `groups`, the same per source."""
    row = group_row("", labels, p_fake, threshold)
    result: RowResult = {
        "n": row["n"],
        "accuracy": row["accuracy"],
        "real_accuracy": row["real_accuracy"],
        "fake_accuracy": row["fake_accuracy"],
        "f1": row["f1"],
        "roc_auc": row["roc_auc"],
        "accuracy_drop": 0.0,
        "roc_auc_drop": 0.0,
    }
    if clean is not None:
        result["accuracy_drop"] = _drop(clean["accuracy"], result["accuracy"])
        result["roc_auc_drop"] = _drop(clean["roc_auc"], result["roc_auc"])
    if groups:
        result["by_source"] = {}
        for source, index in groups.items():
            part = group_row(source, labels[index], p_fake[index], threshold)
            before = None if clean is None else clean.get("by_source", {}).get(source)
            drop = 0.0 if before is None else _drop(before["accuracy"], part["accuracy"])
            result["by_source"][source] = {
                "n": part["n"],
                "accuracy": part["accuracy"],
                "roc_auc": part["roc_auc"],
                "accuracy_drop": drop,
            }
    return result


@dataclass
class _CleanAndCorruptedScores:
    """What one pass over the images yields: p(fake) per (condition, detector), and which
    images were read. Condition -1 is the clean images."""

    scores: dict[tuple[int, int], list[np.ndarray]] = field(default_factory=dict)
    labels_parts: list[np.ndarray] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)  # each read image's source name
    skipped: list[tuple[str, str]] = field(default_factory=list)
    example_rows: list[list[np.ndarray]] = field(default_factory=list)

    def p_fake(self, cond_index: int, det_index: int) -> np.ndarray:
        return np.concatenate(self.scores[(cond_index, det_index)])


def robustness(
    detectors: Detector | Sequence[Detector],
    source_spec: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: RobustnessConfig | None = None,
    *,
    names: Sequence[str] | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Measure detectors under corruptions (and attacks); write DIR/robustness.json, the
    plots, example images and report.html; return the result.

    Rows: the clean images, one per corruption and severity, one per attack and eps; each row
    has, per detector, accuracy at the bundle's threshold, per-class accuracy, F1, ROC-AUC
    and the drop from clean.
    """
    config = config or RobustnessConfig()
    detectors, names = _named_detectors(detectors, names)
    # before any decoding: a detector that cannot be attacked says so at once
    targets = [attack_target(d) for d in detectors] if config.attacks else []
    source = open_source(source_spec)
    items = select_subsample(source, config.split, config.max_images, config.seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    conditions = config.conditions()
    scored = _score_clean_and_corrupted(detectors, source, items, conditions, config, progress)
    labels = np.concatenate(scored.labels_parts)
    rows = _corruption_rows(detectors, names, scored, labels, conditions)
    clean_results = [rows[0]["results"][name] for name in names]

    attack_rows: list[RobustnessRow] = []
    attack_examples: dict[str, dict[str, AttackExamples]] = {}
    if config.attacks:
        attack_rows, attack_examples = _run_attacks(
            detectors,
            names,
            targets,
            source,
            scored.paths,
            labels,
            clean_results,
            config,
            out,
            progress,
        )
    result = _result_document(detectors, names, source, labels, config, rows, scored.skipped)
    result["attacks"]["rows"] = attack_rows
    result["attacks"]["examples"] = attack_examples
    _write_outputs(result, scored.example_rows, conditions, out)
    return result


def _named_detectors(
    detectors: Detector | Sequence[Detector], names: Sequence[str] | None
) -> tuple[list[Detector], list[str]]:
    """One detector or several, each with its column name in the tables (from its bundle
    path unless given), so a single bundle and a comparison go through the same code."""
    detectors = [detectors] if isinstance(detectors, Detector) else list(detectors)
    if not detectors:
        raise ConfigError("robustness needs at least one detector")
    if names is None:
        names = model_names([d.bundle_path or f"model{i}" for i, d in enumerate(detectors)])
    return detectors, list(names)


def _score_clean_and_corrupted(
    detectors: Sequence[Detector],
    source: Source,
    items: Sequence[Item],
    conditions: Sequence[tuple[str, float]],
    config: RobustnessConfig,
    progress: bool,
) -> _CleanAndCorruptedScores:
    """Decode the images once per chunk, at full resolution, and score every detector on
    the clean chunk and on each corruption of it: memory stays bounded by CHUNK images and
    each image is decoded once however many conditions and detectors there are."""
    scored = _CleanAndCorruptedScores()
    bar = tqdm(
        total=len(items) * (1 + len(conditions)),
        desc="corrupt+score",
        unit="img",
        disable=not progress,
    )
    for chunk_index, chunk in enumerate(_chunks(items, CHUNK)):
        images = _decode_good(source, chunk, scored, config.faces)
        if not images:
            bar.update(len(chunk) * (1 + len(conditions)))
            continue
        for cond_index in range(-1, len(conditions)):
            variant = _variant(images, conditions, cond_index, config.seed, chunk_index)
            if chunk_index == 0:
                scored.example_rows.append(variant[:1])
            for det_index, detector in enumerate(detectors):
                batch = _preprocess(detector.preprocessing, variant)
                p = _probabilities(detector, batch, config.batch_size)
                scored.scores.setdefault((cond_index, det_index), []).append(p)
            bar.update(len(chunk))
    bar.close()
    if not scored.paths:
        raise FakescopeError(
            f"{source.location}: none of the {len(items)} selected images could be read"
        )
    return scored


def _decode_good(
    source: Source,
    chunk: Sequence[Item],
    scored: _CleanAndCorruptedScores,
    faces: FaceCropPolicy | None = None,
) -> list[np.ndarray]:
    """The chunk's readable images; their labels and paths, and the reasons the others
    could not be read, are recorded in `scored` (a bad file never stops the sweep)."""
    decoded = _decode_chunk(source, chunk, faces)
    good = [(it, arr) for it, arr in zip(chunk, decoded, strict=True) if not isinstance(arr, str)]
    scored.skipped += [
        (it.path, arr) for it, arr in zip(chunk, decoded, strict=True) if isinstance(arr, str)
    ]
    chunk_labels = [it.label for it, _ in good]  # None (unlabelled) fails here
    scored.labels_parts.append(np.array(chunk_labels, dtype=int))
    scored.paths += [it.path for it, _ in good]
    scored.sources += [it.source for it, _ in good]
    return [arr for _, arr in good]


def _variant(
    images: list[np.ndarray],
    conditions: Sequence[tuple[str, float]],
    cond_index: int,
    seed: int,
    chunk_index: int,
) -> list[np.ndarray]:
    """The chunk under condition `cond_index` (-1: clean). The seed depends on the chunk and
    the condition, so noise differs between chunks yet a rerun reproduces it exactly."""
    if cond_index < 0:
        return images
    name, severity = conditions[cond_index]
    return corrupt_images(images, name, severity, seed=seed + 7919 * chunk_index + cond_index)


def _corruption_rows(
    detectors: Sequence[Detector],
    names: Sequence[str],
    scored: _CleanAndCorruptedScores,
    labels: np.ndarray,
    conditions: Sequence[tuple[str, float]],
) -> list[RobustnessRow]:
    """The clean row first, then one row per corruption and severity, whose drops are
    measured against that detector's clean row (always at the bundle's own threshold)."""
    clean = _row("clean", "clean", None, None)
    groups = _source_groups(scored.sources)
    for det_index, (name, detector) in enumerate(zip(names, detectors, strict=True)):
        p = scored.p_fake(-1, det_index)
        clean["results"][name] = _result(labels, p, detector.threshold, None, groups)
    rows = [clean]
    for cond_index, (corruption, severity) in enumerate(conditions):
        row = _row("corruption", corruption, severity, SEVERITY_UNITS.get(corruption))
        for det_index, (name, detector) in enumerate(zip(names, detectors, strict=True)):
            p = scored.p_fake(cond_index, det_index)
            row["results"][name] = _result(
                labels, p, detector.threshold, clean["results"][name], groups
            )
        rows.append(row)
    return rows


def _source_groups(sources: Sequence[str | None]) -> dict[str, np.ndarray]:
    """{source name: indices of its images} when the images come from several named
    sources (a multi-source manifest), else {} (no per-source breakdown)."""
    names = sorted({s for s in sources if s})
    if len(names) < 2:
        return {}
    column = np.array([s or "" for s in sources])
    return {name: np.flatnonzero(column == name) for name in names}


def _result_document(
    detectors: Sequence[Detector],
    names: Sequence[str],
    source: Source,
    labels: np.ndarray,
    config: RobustnessConfig,
    rows: list[RobustnessRow],
    skipped: Sequence[tuple[str, str]],
) -> RobustnessResult:
    """robustness.json's content: the tables plus everything needed to read them later
    (data, models and their thresholds, the conditions' units, the attack space)."""
    return {
        "source": str(source.location),
        "split": config.split,
        "n": int(len(labels)),
        "n_real": int(np.sum(labels == 0)),
        "n_fake": int(np.sum(labels == 1)),
        "max_images": config.max_images,
        "seed": config.seed,
        "models": [
            {
                "name": name,
                "bundle": str(d.bundle_path) if d.bundle_path else None,
                "architecture": d.meta.architecture,
                "threshold": d.threshold,
                "threshold_source": "the bundle (chosen on validation data; not re-tuned here)",
                "input_size": d.preprocessing.input_size,
            }
            for name, d in zip(names, detectors, strict=True)
        ],
        "corruptions": {k: ordered(k, v) for k, v in config.severities.items()},
        "severity_units": {k: SEVERITY_UNITS[k] for k in config.severities},
        "rows": rows,
        "attacks": {
            "names": list(config.attacks),
            "eps": list(config.eps),
            "steps": config.steps,
            "step_size": config.step_size,
            "space": "the model's input image in [0, 1] (after the bundle's resize; for "
            "native-crop bundles each crop, attacked together, logits averaged per image), "
            "float; eps is L-infinity on that scale",
            "rows": [],
            "examples": {},
        },
        "unreadable": [{"path": p, "reason": r} for p, r in skipped],
        "faces": None
        if config.faces is None
        else {
            "policy": config.faces.to_dict(),
            "how": "each image's largest face, found on the clean image and cropped by the "
            "policy (the whole image when it has none); corruptions and attacks act on the crop",
        },
    }


def _write_outputs(
    result: RobustnessResult,
    example_rows: Sequence[Sequence[np.ndarray]],
    conditions: Sequence[tuple[str, float]],
    out: Path,
) -> None:
    """Plots, report.html and robustness.json; the JSON is written last, so its presence
    means the run finished. `result` gains the plots' and report's file names."""
    plots = {"robustness": plot_robustness(result, out / "robustness.png")}
    if example_rows and conditions:
        labels_text = ["clean"] + [f"{c} {s:g}" for c, s in conditions]
        plots["corruption_examples"] = plot_corruption_examples(
            [r[0] for r in example_rows], labels_text, out / "corruption_examples.png"
        )
    if result["attacks"]["rows"]:
        plots["attacks"] = plot_attacks(result, out / "attacks.png")
    result["plots"] = {k: v.name for k, v in plots.items()}
    result["report"] = "report.html"
    robustness_report(result, dict(plots), out).write(out / "report.html")
    (out / "robustness.json").write_text(json.dumps(result, indent=2))


def _run_attacks(
    detectors: Sequence[Detector],
    names: Sequence[str],
    targets: Sequence[AttackTarget],
    source: Source,
    paths: Sequence[str],
    labels: np.ndarray,
    clean_results: Sequence[RowResult],
    config: RobustnessConfig,
    out: Path,
    progress: bool,
) -> tuple[list[RobustnessRow], dict[str, dict[str, AttackExamples]]]:
    """One row per (attack, eps), each model attacked white-box through its own gradient."""
    by_path = {it.path: it for it in source.items}
    items = [by_path[p] for p in paths]
    rows = {(a, e): _row("attack", a, e, "eps") for a in config.attacks for e in config.eps}
    examples: dict[str, dict[str, AttackExamples]] = {}
    total = len(items) * len(rows) * len(detectors)
    bar = tqdm(total=total, desc="attack", unit="img", disable=not progress)
    # example images (both classes, alternating) go first, so they are among the kept
    keep = min(config.examples, len(items))
    order = _example_order(labels, keep)
    y_ordered = torch.from_numpy(labels).float()[order]
    for det_index, (name, detector, target) in enumerate(
        zip(names, detectors, targets, strict=True)
    ):
        x01 = _attack_inputs(source, items, target[2], order, config.faces)
        for (attack_name, eps), row in rows.items():
            p, adv = _attacked_probabilities(
                target,
                x01,
                y_ordered,
                attack_name,
                eps,
                steps=config.steps,
                step_size=config.step_size,
                seed=config.seed,
                batch_size=config.batch_size,
                keep=keep,
            )
            p = p[np.argsort(order)]  # back to the images' order
            row["results"][name] = _result(labels, p, detector.threshold, clean_results[det_index])
            bar.update(len(items))
            if keep and eps == max(config.eps):
                # native crops: the examples show each image's first crop
                first = (lambda t: t[:, 0]) if x01.ndim == 5 else (lambda t: t)
                examples.setdefault(name, {})[attack_name] = save_attack_examples(
                    first(x01[:keep]),
                    first(adv),
                    eps,
                    out / "examples",
                    prefix=f"{_safe(name)}_{attack_name}",
                    labels=labels[order[:keep]],
                    p_clean=detector.probabilities((x01[:keep] * 255).round().to(torch.uint8)),
                    p_adv=p[order[:keep]],
                )
    bar.close()
    return list(rows.values()), examples


def _attack_inputs(
    source: Source,
    items: Sequence[Item],
    pre: Preprocessing,
    order: np.ndarray,
    faces: FaceCropPolicy | None = None,
) -> torch.Tensor:
    """The readable images in the attacked model's input space ([0, 1], its input size), in
    `order`. Decoded again per model: models may differ in input size, and keeping every
    full-resolution image from the corruption pass would not bound memory."""
    arrays = []
    for chunk in _chunks(items, CHUNK):
        decoded = _decode_chunk(source, chunk, faces)
        arrays.append(_preprocess(pre, [a for a in decoded if not isinstance(a, str)]))
    return torch.cat(arrays)[order].float() / 255.0


def _example_order(labels: np.ndarray, keep: int) -> np.ndarray:
    """A permutation of the images whose first `keep` alternate real and fake."""
    pools = [list(np.flatnonzero(labels == c)) for c in (0, 1)]
    first: list[int] = []
    while len(first) < keep and (pools[0] or pools[1]):
        for pool in pools:
            if pool and len(first) < keep:
                first.append(int(pool.pop(0)))
    chosen = set(first)
    rest = [i for i in range(len(labels)) if i not in chosen]
    return np.asarray(first + rest, dtype=np.int64)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
