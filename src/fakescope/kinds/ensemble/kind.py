"""The ensemble kind's entry in the registry (`fakescope.kinds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.kinds.ensemble.bundle import KIND, verify_members
from fakescope.kinds.ensemble.card import render_card
from fakescope.kinds.ensemble.detector import EnsembleDetector


class EnsembleKind(kinds.Kind):
    """Members copied in; PyTorch only; nothing to refit in place (rebuild it instead)."""

    name = KIND
    title = "an ensemble"
    holds = "combines other bundles and has no weights of its own"
    auto_onnx = False

    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        verify_members(folder, meta)

    def render_card(self, meta: dict[str, Any]) -> str:
        return render_card(meta)

    def runtime_refusal(self, bundle: Path, runtime: str) -> str:
        return (
            f"{bundle} is an ensemble; ensembles run on the torch runtime only "
            "(export its members to ONNX one by one)"
        )

    def refit_refusal(self, bundle: str, command: str, val: str) -> str | None:
        return (
            f"{bundle}: an ensemble bundle has no temperature or band of its own (its "
            f"members' calibrated probabilities are combined); run {command} on each member "
            f"bundle, then rebuild the ensemble: fakescope ensemble MEMBER... --val {val} "
            f"--out {bundle}"
        )

    def domain_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        return f"{bundle}: an ensemble takes no domain model; give one to each member"

    def export_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        return (
            f"ONNX export needs a single-model bundle; {bundle} is an ensemble of "
            f"{len(meta['members'])}: export its members one by one"
        )


kinds.register(EnsembleKind({"torch": EnsembleDetector}))
