"""Fit an ensemble: several detector bundles combined into one bundle that behaves as a
detector (`detector` scores it; `bundle` stores it, with ``ensemble.json`` beside it: the
ensemble-versus-members table on the validation data). The threshold is the max-F1 one on
validation.

Rules: `accuracy` (weights proportional to each member's validation accuracy at its own
threshold), `auc` (proportional to validation ROC-AUC), `equal`, all combining the members'
calibrated p(fake) by a weighted mean; `stacking` fits scikit-learn's LogisticRegression on
the members' calibrated logits on the validation data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope import kinds
from fakescope.atomic import atomic_write_text
from fakescope.bundle import bundle_kind, resolve_bundle_path
from fakescope.data.cache import decode_items
from fakescope.data.sources import Source, open_source
from fakescope.detectors.base import load_detector
from fakescope.errors import BundleError, ConfigError
from fakescope.evaluation.evaluate import model_names, select_items, validation_split
from fakescope.evaluation.metrics import binary_metrics, choose_threshold
from fakescope.evaluation.results import BinaryMetrics
from fakescope.kinds.ensemble.bundle import (
    MemberSource,
    is_ensemble,
    read_ensemble_meta,
    save_ensemble_bundle,
)
from fakescope.kinds.ensemble.card import render_card
from fakescope.kinds.ensemble.detector import Combiner, EnsembleDetector
from fakescope.kinds.single.pytorch import TorchDetector

RULES = ("accuracy", "auc", "equal", "stacking")
TABLE_FILE = "ensemble.json"

__all__ = [
    "RULES",
    "Combiner",
    "EnsembleDetector",
    "build_ensemble",
    "is_ensemble",
    "load_ensemble",
    "read_ensemble_meta",
    "render_card",
    "rule_weights",
]


def load_ensemble(path: str | os.PathLike[str], *, device: str = "auto") -> EnsembleDetector:
    """Verify an ensemble bundle and load its members."""
    if not is_ensemble(path):
        raise BundleError(f"{path}: not a fakescope ensemble bundle")
    detector = load_detector(path, device=device, runtime="torch")
    assert isinstance(detector, EnsembleDetector)
    return detector


def rule_weights(rule: str, member_metrics: Sequence[Mapping[str, Any]]) -> list[float]:
    """Weights summing to 1: proportional to validation accuracy or ROC-AUC, or equal."""
    k = len(member_metrics)
    if rule == "equal":
        raw = [1.0] * k
    elif rule in ("accuracy", "auc"):
        key = "accuracy" if rule == "accuracy" else "roc_auc"
        values = [m.get(key) for m in member_metrics]
        if any(v is None for v in values):
            raise ConfigError(
                f"rule {rule!r} needs the member's {key} on the validation data, which needs "
                "both real and fake images there"
            )
        raw = [float(v) for v in values if v is not None]
    else:
        raise ConfigError(f"unknown ensemble rule {rule!r}; choose from {', '.join(RULES)}")
    total = float(sum(raw))
    if total <= 0:
        raise ConfigError(f"rule {rule!r}: the members' scores sum to 0; use --rule equal")
    return [float(v) / total for v in raw]


# -- building ------------------------------------------------------------------------------
@dataclass
class _Scores:
    labels: np.ndarray
    logits: np.ndarray  # (n, k) calibrated member logits
    p_fake: np.ndarray  # (n, k) member p(fake)
    n_skipped: int


def _score_members(
    members: Sequence[TorchDetector], items: list[Any], source: Source, progress: bool
) -> _Scores:
    """Every member's calibrated logits on the same validation images (decoded once per
    distinct preprocessing)."""
    decoded_by_pre: dict[str, Any] = {}
    logits, probs, paths = [], [], None
    for member in members:
        key = json.dumps(member.preprocessing.to_dict(), sort_keys=True)
        if key not in decoded_by_pre:
            decoded_by_pre[key] = decode_items(
                items, source.read_bytes, member.preprocessing, progress=progress, desc="decode val"
            )
        decoded = decoded_by_pre[key]
        if paths is not None and decoded.paths != paths:
            raise BundleError("members could not read the same validation images")
        paths = decoded.paths
        z = member.logits_in_batches(decoded.images, progress=progress)
        logits.append((z / member.meta.temperature).numpy())
        probs.append(member.calibrate(z))
    decoded = next(iter(decoded_by_pre.values()))
    return _Scores(
        decoded.labels.numpy().astype(int),
        np.stack(logits, axis=1),
        np.stack(probs, axis=1),
        len(decoded.skipped),
    )


def _fit_stacking(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Combiner, np.ndarray, str]:
    """Logistic regression on member logits; out-of-fold p(fake) on validation when possible."""
    # scikit-learn is slow to import and only the stacking rule needs it
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if len(np.unique(y)) < 2:
        raise ConfigError("stacking needs both real and fake images in the validation data")
    model = LogisticRegression(C=1.0, max_iter=1000)
    folds = min(5, int(np.bincount(y).min()))
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        p = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
        how = f"out-of-fold ({folds}-fold) stacked scores"
    else:
        p = None
        how = "in-sample stacked scores (too few images per class for cross-validation)"
    model.fit(x, y)
    combiner = Combiner(
        "stacking", coef=[float(c) for c in model.coef_[0]], intercept=float(model.intercept_[0])
    )
    if p is None:
        p = torch.sigmoid(combiner(torch.from_numpy(x))).numpy()
    return combiner, p, how


def _summary(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: m.get(k) for k in ("n", "threshold", "accuracy", "roc_auc", "f1", "average_precision")
    }


def _load_members(bundles: Sequence[str | os.PathLike[str]], device: str) -> list[TorchDetector]:
    """The member detectors (shipped names accepted), refused before any work if one is not a
    single-model bundle."""
    if not bundles:
        raise ConfigError("an ensemble needs at least one bundle")
    members = []
    for bundle in bundles:
        kind = bundle_kind(resolve_bundle_path(bundle))
        if kind != kinds.DEFAULT:
            raise ConfigError(
                f"{bundle}: is {kinds.get(kind).title}; list its members instead of nesting it"
            )
        detector = load_detector(bundle, device=device, runtime="torch")
        assert isinstance(detector, TorchDetector)  # single-model bundles load as this kind
        members.append(detector)
    return members


def _fit_combiner(
    rule: str, scores: _Scores, member_metrics: Sequence[Mapping[str, Any]], seed: int
) -> tuple[Combiner, np.ndarray, str]:
    """(combiner, ensemble p(fake) on validation, how those scores were made)."""
    if rule == "stacking":
        return _fit_stacking(scores.logits, scores.labels, seed)
    combiner = Combiner(rule, weights=rule_weights(rule, member_metrics))
    p_val = torch.sigmoid(combiner(torch.from_numpy(scores.logits))).numpy()
    return combiner, p_val, "weighted mean of the members' calibrated p(fake)"


def build_ensemble(
    bundles: Sequence[str | os.PathLike[str]],
    val_source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    rule: str = "accuracy",
    val_split: str | None = None,
    unsure_margin: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Combine bundles (folders or shipped names) by `rule`, fitted on `val_source`; write the
    ensemble bundle to `out` (members copied inside) and OUT/ensemble.json; return the
    ensemble-vs-members table."""
    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; choose from {', '.join(RULES)}")
    members = _load_members(bundles, device)
    folders = [resolve_bundle_path(b) for b in bundles]
    names = model_names(bundles)
    source = open_source(val_source)
    val_split = validation_split(source, val_split)
    items = select_items(source, val_split)
    scores = _score_members(members, items, source, progress)
    y = scores.labels
    member_metrics = [
        binary_metrics(y, scores.p_fake[:, i], m.threshold, bootstrap=0)
        for i, m in enumerate(members)
    ]
    combiner, p_val, how = _fit_combiner(rule, scores, member_metrics, seed)
    threshold = choose_threshold(y, p_val, "max_f1")
    ens_metrics = binary_metrics(y, p_val, threshold, seed=seed)
    validation = _validation(source, val_split, scores, how)
    folder = save_ensemble_bundle(
        out,
        [
            MemberSource(name, folder, _summary(m))
            for name, folder, m in zip(names, folders, member_metrics, strict=True)
        ],
        {
            **combiner.to_dict(),
            "threshold": threshold,
            "unsure_margin": unsure_margin,
            "validation": validation,
            "metrics": _summary(ens_metrics) | {"ci95": ens_metrics["ci95"]},
        },
        render_card,
    )
    table = _table(folder, rule, validation, threshold, combiner, ens_metrics)
    table["rows"] += _member_rows(names, bundles, member_metrics, combiner)
    atomic_write_text(folder / TABLE_FILE, json.dumps(table, indent=2))
    return table


def _validation(source: Source, split: str | None, scores: _Scores, how: str) -> dict[str, object]:
    """What the ensemble was fitted on, as the bundle and ensemble.json record it."""
    return {
        "source": str(source.location),
        "split": split,
        "n": int(len(scores.labels)),
        "skipped": scores.n_skipped,
        "fingerprint": source.fingerprint(),
        "scores": how,
        "threshold_policy": "max_f1",
    }


def _member_rows(
    names: Sequence[str],
    bundles: Sequence[str | os.PathLike[str]],
    member_metrics: Sequence[BinaryMetrics],
    combiner: Combiner,
) -> list[dict[str, object]]:
    """The table's row of each member: its weight (None for stacking, which has
    coefficients instead) and its validation metrics."""
    weights: list[float | None] = [None] * len(names)
    if combiner.weights is not None:
        weights = list(combiner.weights)
    return [
        {"model": name, "bundle": str(b), "weight": w, **_summary(m)}
        for name, b, m, w in zip(names, bundles, member_metrics, weights, strict=True)
    ]


def _table(
    folder: Path,
    rule: str,
    validation: dict[str, Any],
    threshold: float,
    combiner: Combiner,
    ens_metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The ensemble-versus-members table, with the ensemble's row (members are appended)."""
    where = validation["source"] + (
        f" (split {validation['split']})" if validation["split"] else ""
    )
    return {
        "ensemble": str(folder),
        "rule": rule,
        "validation": validation,
        "threshold": threshold,
        "weights": combiner.weights,
        "stacking": combiner.to_dict()["stacking"],
        "note": f"all rows on {where}; members at their own bundle thresholds, the ensemble at "
        "its threshold chosen there by max F1 (so the ensemble row is fitted on these images)",
        "rows": [{"model": "ensemble", **_summary(ens_metrics)}],
    }
