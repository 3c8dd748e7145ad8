"""The ensemble kind: several single-model bundles whose calibrated scores are combined by a
rule fitted on validation data. It owns its bundle layout (`bundle`), its detector
(`detector`), its fitting (`build`, the library side of `fakescope ensemble`), its card
(`card`) and its entry in the registry (`kind`). It runs on PyTorch only; its members export
to ONNX one by one."""

from fakescope.kinds.ensemble.build import RULES, build_ensemble, load_ensemble, rule_weights
from fakescope.kinds.ensemble.bundle import (
    KIND,
    MemberSource,
    is_ensemble,
    read_ensemble_meta,
    save_ensemble_bundle,
)
from fakescope.kinds.ensemble.card import render_card
from fakescope.kinds.ensemble.detector import Combiner, EnsembleDetector
from fakescope.kinds.ensemble.kind import EnsembleKind

__all__ = [
    "KIND",
    "RULES",
    "Combiner",
    "EnsembleDetector",
    "EnsembleKind",
    "MemberSource",
    "build_ensemble",
    "is_ensemble",
    "load_ensemble",
    "read_ensemble_meta",
    "render_card",
    "rule_weights",
    "save_ensemble_bundle",
]
