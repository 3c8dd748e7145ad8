"""The face-aware kind's entry in the registry (`fakescope.kinds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakescope import kinds
from fakescope.kinds.face_aware.bundle import KIND, verify_members
from fakescope.kinds.face_aware.card import render_face_aware_card
from fakescope.kinds.face_aware.detector import FaceAwareDetector, OnnxFaceAwareDetector


class FaceAwareKind(kinds.Kind):
    """Two members (shipped by name or copied in); either runtime; rebuilt, never refitted."""

    name = KIND
    title = "face-aware (two detectors)"
    holds = "combines other bundles and has no weights of its own"

    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        verify_members(folder, meta)

    def render_card(self, meta: dict[str, Any]) -> str:
        return render_face_aware_card(meta)

    def export_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        members = ", ".join(str(m["source_bundle"]) for m in meta["members"].values())
        return (
            f"ONNX export needs a single-model bundle; {bundle} is face-aware (a "
            f"whole-image detector and a face specialist): export its members ({members}) one "
            "by one; `--runtime onnx` runs the face-aware bundle on both"
        )


kinds.register(FaceAwareKind({"torch": FaceAwareDetector, "onnx": OnnxFaceAwareDetector}))
