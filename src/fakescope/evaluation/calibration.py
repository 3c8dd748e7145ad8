"""Temperature scaling: fit T on validation logits, store it in the bundle.

p(fake) = sigmoid(logit / T). Dividing by T > 0 is monotone, so ranking metrics (AUC, AP)
and every decision made at a threshold stay the same once the threshold is moved with it:
t' = sigmoid(logit(t) * T_old / T_new). Only the probabilities change (ECE, log-loss).
"""

from __future__ import annotations

import math
import os
import shlex
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from fakescope import kind_registry
from fakescope.bundle import (
    SHIPPED_DETECTORS,
    bundle_kind,
    read_meta,
    resolve_bundle_path,
    shipped_bundle_path,
    update_meta,
)
from fakescope.data.sources import open_source
from fakescope.detectors import load_detector
from fakescope.errors import BundleError, SourceError
from fakescope.evaluation.evaluate import score_items, select_items, validation_split
from fakescope.evaluation.metrics import expected_calibration_error

LOG_T_BOUNDS = (math.log(0.02), math.log(50.0))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy of sigmoid(logits / temperature), computed stably."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of sigmoid(logits / T) (bounded 1-D search over log T).

    The NLL is convex in 1/T, hence unimodal in log T. Returns 1.0 when the labels hold one
    class only (no calibration can be learned from them).
    """
    z = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(int).ravel()
    if len(z) == 0 or not (np.any(y == 0) and np.any(y == 1)):
        return 1.0
    result = minimize_scalar(
        lambda log_t: nll(z, y, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(math.exp(result.x))


def probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    """p(fake) exactly as Detector.probabilities computes it (float32 torch)."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return torch.sigmoid(z / temperature).numpy()


def convert_threshold(threshold: float, old_temperature: float, new_temperature: float) -> float:
    """The probability threshold that makes the same decisions at the new temperature."""
    t = min(max(threshold, 1e-12), 1 - 1e-12)
    raw = math.log(t / (1 - t)) * old_temperature  # the threshold on the raw logit
    return 1.0 / (1.0 + math.exp(-raw / new_temperature))


def _same_decisions_threshold(
    t_new: float, p_old: np.ndarray, t_old: float, p_new: np.ndarray
) -> float:
    """`t_new`, nudged if float rounding would flip a decision at the boundary."""
    fake_before = p_old >= t_old
    if np.array_equal(fake_before, p_new >= t_new):
        return t_new
    if fake_before.any() and (~fake_before).any():
        lowest_fake, highest_real = p_new[fake_before].min(), p_new[~fake_before].max()
        if lowest_fake > highest_real:
            return float(lowest_fake)
    return t_new


def calibration_summary(
    logits: np.ndarray, labels: np.ndarray, temperature: float, threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import log_loss  # heavy: sklearn.metrics, only for the fitted log loss

    p = probabilities(logits, temperature)
    ece, _ = expected_calibration_error(labels, p)
    return {
        "temperature": float(temperature),
        "threshold": float(threshold),
        "ece": ece,
        "log_loss": float(log_loss(labels, p, labels=[0, 1])),
        "accuracy": float(np.mean((p >= threshold).astype(int) == labels)),
    }


def check_rewritable(
    bundle: str | os.PathLike, val_source: str | os.PathLike, *, command: str = "calibrate"
) -> None:
    """Refuse, before a single image is decoded, a bundle that `command` (calibrate,
    unsure-band) cannot rewrite in place: a shipped detector (read-only, part of the
    package), a kind whose fields are fitted from its members (`Kind.refit_refusal`) or a
    folder that is not a valid bundle. Each message says what to do."""
    folder = resolve_bundle_path(bundle)
    val = shlex.quote(str(val_source))
    for name in SHIPPED_DETECTORS:
        shipped = shipped_bundle_path(name)
        if folder.resolve() == shipped.resolve():
            copy = f"my-{name}-detector"
            raise BundleError(
                f"{bundle}: the shipped '{name}' detector is read-only ({command} rewrites a "
                f"bundle in place); use a copy instead: cp -r {shlex.quote(str(shipped))} "
                f"{copy} && fakescope {command} {copy} {val}"
            )
    refusal = kind_registry.get(bundle_kind(folder)).refit_refusal(str(bundle), command, val)
    if refusal:
        raise BundleError(refusal)
    read_meta(folder)  # missing, not a bundle, or tampered: BundleError says which


def calibrate_bundle(
    bundle_path: str | os.PathLike,
    val_source: str | os.PathLike,
    *,
    split: str | None = None,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Fit the temperature on validation data and store it (and the matching threshold) in
    the bundle, re-signed. Returns ECE, log-loss and accuracy before and after.

    `split` defaults to "val" when the source has a val split, else all labelled images.
    Shipped detectors and bundles of combined members are refused first
    (`check_rewritable`). A fitted unsure band moves with the threshold (same decisions, same
    unsure images).
    """
    check_rewritable(bundle_path, val_source)
    detector = load_detector(bundle_path, device=device, runtime="torch")
    source = open_source(val_source)
    split = validation_split(source, split)
    scored = score_items(detector, source, select_items(source, split), progress=progress)
    z, y = scored.logits, scored.labels
    assert z is not None, "score_items keeps the logits"
    if not (np.any(y == 0) and np.any(y == 1)):
        raise SourceError(
            f"{source.location}: calibration needs both real and fake validation images"
        )
    old_t, old_threshold = detector.meta.temperature, detector.threshold
    new_t = fit_temperature(z, y)
    p_old, p_new = probabilities(z, old_t), probabilities(z, new_t)
    new_threshold = _same_decisions_threshold(
        convert_threshold(old_threshold, old_t, new_t), p_old, old_threshold, p_new
    )
    result = {
        "bundle": str(bundle_path),
        "val_source": str(source.location),
        "val_split": split,
        "n": int(len(y)),
        "before": calibration_summary(z, y, old_t, old_threshold),
        "after": calibration_summary(z, y, new_t, new_threshold),
        "unreadable": [{"path": p, "reason": r} for p, r in scored.skipped],
    }
    meta = read_meta(bundle_path)
    calibration = {k: result[k] for k in ("val_source", "val_split", "n", "before", "after")}
    changes: dict[str, Any] = {}
    if fit := meta.get("unsure_fit"):
        low, high = fit["band"]  # confident real at p <= low, confident fake at p >= high
        new_low = -_same_decisions_threshold(
            -convert_threshold(low, old_t, new_t), -p_old, -low, -p_new
        )
        new_high = _same_decisions_threshold(
            convert_threshold(high, old_t, new_t), p_old, high, p_new
        )
        band = [min(new_low, new_threshold), max(new_high, new_threshold)]
        changes["unsure_fit"] = {**fit, "band": band, "threshold": new_threshold}
    update_meta(
        bundle_path,
        temperature=new_t,
        threshold=new_threshold,
        metrics={**meta.get("metrics", {}), "calibration": calibration},
        **changes,
    )
    return result
