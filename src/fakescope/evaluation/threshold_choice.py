"""The decision threshold of an evaluation and where it came from: the bundle's (chosen on
validation data at training time) or one chosen with a policy on validation data here, never
on the test data."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import cast

from fakescope.data.sources import Item, Source, open_source
from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.evaluation.metrics import (
    BOOTSTRAP_RESAMPLES,
    THRESHOLD_POLICIES,
    ThresholdPolicy,
    binary_metrics,
    choose_threshold,
)
from fakescope.evaluation.results import BinaryMetrics, ThresholdSource
from fakescope.evaluation.scored import score_items, select_items, validation_split
from fakescope.faces import FaceSelector

SourceSpec = str | os.PathLike


@dataclass
class ThresholdChoice:
    """The decision threshold and where it came from (never the test data)."""

    value: float
    kind: str  # "bundle" | "validation"
    description: str
    policy: str | None = None
    target_fpr: float | None = None
    val_source: str | None = None
    val_split: str | None = None
    val_n: int | None = None
    val_metrics: BinaryMetrics | None = None

    def to_dict(self) -> ThresholdSource:
        return cast(ThresholdSource, asdict(self))  # the same fields, as JSON-ready values


def _bundle_policy(detector: Detector) -> str:
    decision = detector.meta.training.get("recipe", {}).get("decision", {})
    policy = decision.get("threshold_policy", "max_f1")
    return policy if policy in THRESHOLD_POLICIES and policy != "fixed" else "max_f1"


def resolve_threshold(
    detector: Detector,
    *,
    val_source: SourceSpec | None = None,
    val_split: str | None = None,
    policy: str | None = None,
    target_fpr: float | None = None,
    test_paths: Iterable[str] = (),
    progress: bool = True,
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    faces: FaceSelector | None = None,
) -> ThresholdChoice:
    """The bundle's threshold, or one chosen with `policy` on `val_source`.

    Refuses a policy without validation data (that would tune on the test data) and
    validation data that shares images with the test data.
    """
    if policy not in (None, "bundle", *THRESHOLD_POLICIES):
        raise ConfigError(
            f"unknown threshold policy {policy!r}; use bundle, {', '.join(THRESHOLD_POLICIES)}"
        )
    if val_source is None:
        if policy not in (None, "bundle"):
            raise ConfigError(
                f"threshold policy {policy!r} needs validation data (--val SOURCE): thresholds "
                "are chosen on validation data, never on the test data"
            )
        return _bundle_threshold(detector)
    if policy == "bundle":
        raise ConfigError(
            "--threshold-policy bundle keeps the bundle's threshold: drop --val, "
            f"or choose one of {', '.join(p for p in THRESHOLD_POLICIES if p != 'fixed')}"
        )
    if policy == "fixed":
        raise ConfigError("threshold policy 'fixed' chooses nothing on validation data")
    policy = policy or _bundle_policy(detector)
    if policy == "target_fpr":
        target_fpr = 0.01 if target_fpr is None else float(target_fpr)
    source, val_split, items = _validation_items(val_source, val_split, test_paths)
    scored = score_items(detector, source, items, progress=progress, desc="decode val", faces=faces)
    chosen = cast(ThresholdPolicy, policy)  # checked against THRESHOLD_POLICIES above
    value = choose_threshold(scored.labels, scored.p_fake, chosen, target_fpr=target_fpr or 0.01)
    where = f"{source.location}" + (f" (split {val_split})" if val_split else "")
    detail = f"policy {policy}" + (f", target FPR {target_fpr}" if policy == "target_fpr" else "")
    return ThresholdChoice(
        value,
        "validation",
        f"validation data {where}, {detail}, n={len(scored)}",
        policy=policy,
        target_fpr=target_fpr,
        val_source=str(source.location),
        val_split=val_split,
        val_n=len(scored),
        val_metrics=binary_metrics(scored.labels, scored.p_fake, value, bootstrap=bootstrap),
    )


def _bundle_threshold(detector: Detector) -> ThresholdChoice:
    """The bundle's own threshold, with the policy it was chosen by at training time."""
    origin = detector.meta.training.get("recipe", {}).get("decision", {})
    how = origin.get("threshold_policy")
    return ThresholdChoice(
        detector.threshold,
        "bundle",
        "the bundle (chosen on validation data at training time"
        + (f", policy {how})" if how else ")"),
        policy=how,
    )


def _validation_items(
    val_source: SourceSpec, val_split: str | None, test_paths: Iterable[str]
) -> tuple[Source, str | None, list[Item]]:
    """The validation source, its split (the val split by default) and its items; refuses
    validation data that shares images with the test data."""
    source = open_source(val_source)
    val_split = validation_split(source, val_split)
    items = select_items(source, val_split)
    overlap = {it.path for it in items} & set(test_paths)
    if overlap:
        raise ConfigError(
            f"the validation data shares {len(overlap)} images with the test data (e.g. "
            f"{sorted(overlap)[0]}); choose the threshold on separate data (--split/--val-split)"
        )
    return source, val_split, items
