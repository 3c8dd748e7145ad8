"""The training-time budget of a chain of stages.

A detector trained in stages (stage 1 from ImageNet weights, stage 2 from stage 1's bundle,
...) has one budget for the whole chain (`train.total_minutes`, e.g. the 90 minutes on 2 CPU
cores an issue allows). Each bundle records how long its chain trained
(``training.chain_train_seconds``), so the next stage knows how much of the budget is left on
the machine it runs on, instead of a fixed ``max_minutes`` that only fits one machine.
"""

from __future__ import annotations

from typing import Any

from fakescope.bundle import META_FILE, read_meta, resolve_bundle_path
from fakescope.config import ModelConfig, TrainConfig
from fakescope.errors import ConfigError


def chain_seconds_of(training: dict[str, Any]) -> float | None:
    """Seconds of training a bundle's chain took, from its ``training`` metadata: the total it
    records, else its own training when it started from ImageNet weights or from scratch;
    None when unknown (a later stage made before chains were recorded)."""
    if training.get("chain_train_seconds") is not None:
        return float(training["chain_train_seconds"])
    model = (training.get("recipe") or {}).get("model") or {}
    started_fresh = model.get("pretrained_path") is None and model.get("pretrained_url") is None
    if started_fresh and training.get("train_seconds") is not None:
        return float(training["train_seconds"])
    return None


def earlier_seconds(model: ModelConfig) -> float | None:
    """Seconds of training the starting weights already had: 0 for ImageNet weights or none;
    the chain a bundle records; None when unknown (a bare weights file, a download)."""
    if model.pretrained_url is not None:
        return None
    if model.pretrained_path is None:
        return 0.0
    folder = resolve_bundle_path(model.pretrained_path)
    if not (folder / META_FILE).is_file():
        return None
    return chain_seconds_of(read_meta(folder).get("training") or {})


def stage_minutes(train: TrainConfig, model: ModelConfig, earlier: float | None) -> float | None:
    """This stage's clock: ``max_minutes``, cut to what ``total_minutes`` leaves after the
    `earlier` seconds of the stages before it. A budget that cannot be checked or is spent
    is a ConfigError, before any work starts."""
    if train.total_minutes is None:
        return train.max_minutes
    start = model.pretrained_path or model.pretrained_url
    if earlier is None:
        raise ConfigError(
            f"train.total_minutes: the starting weights {start} do not record how long they "
            "were trained (only bundles made by fakescope train do, since chain totals were "
            "recorded); set train.max_minutes for this stage instead "
            "(--set train.total_minutes=null --set train.max_minutes=M)"
        )
    left = train.total_minutes - earlier / 60
    if left <= 0:
        raise ConfigError(
            f"train.total_minutes {train.total_minutes:g}: the stages before this one ({start}) "
            f"already trained {earlier / 60:.1f} minutes; nothing of the budget is left"
        )
    return left if train.max_minutes is None else min(train.max_minutes, left)
