"""The face-aware bundle: a whole-image detector and a face specialist, and when the second
joins (`FaceRoute`).

    bundle.json     ``"kind": "face_aware"``: the members (``whole``, ``faces``: a shipped
                    detector by name, or a copy under members/, with the sha256 of each
                    member's bundle.json), the route, the card's text and metrics
    members/ROLE    copies of the member bundles that are not shipped detectors
    MODEL_CARD.md   the same, for people

Signed and verified by the generic bundle format (`fakescope.bundle`), like every kind.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakescope import LABEL_NAMES
from fakescope.atomic import atomic_folder
from fakescope.bundle import (
    CARD_FILE,
    MEMBERS_DIR,
    META_FILE,
    SHIPPED_DETECTORS,
    member_folder,
    new_meta,
    read_meta,
    resolve_bundle_path,
    shipped_bundle_path,
    write_signed,
)
from fakescope.errors import BundleError, ConfigError
from fakescope.kinds.face_aware.card import render_face_aware_card

KIND = "face_aware"
FACE_AWARE_ROLES = ("whole", "faces")


@dataclass(frozen=True)
class FaceRoute:
    """When the face specialist joins (its largest face covers at least this share of the
    image) and how much its score weighs in the average."""

    min_face_fraction: float = 0.5
    face_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.min_face_fraction <= 1.0:
            raise ConfigError(f"min_face_fraction must be in (0, 1], got {self.min_face_fraction}")
        if not 0.0 < self.face_weight <= 1.0:
            raise ConfigError(f"face_weight must be in (0, 1], got {self.face_weight}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaceRoute:
        return cls(float(data["min_face_fraction"]), float(data["face_weight"]))

    def to_dict(self) -> dict[str, float]:
        return {"min_face_fraction": self.min_face_fraction, "face_weight": self.face_weight}


def face_aware_member_path(folder: Path, meta: dict[str, Any], role: str) -> Path:
    """The bundle folder of a face-aware bundle's `role` member ('whole' or 'faces'): a
    shipped detector by name, or a copy inside the bundle (not verified here)."""
    entry = (meta.get("members") or {}).get(role)
    if not isinstance(entry, dict) or not isinstance(entry.get("ref"), str):
        raise BundleError(f"{folder / META_FILE}: a face-aware bundle without its {role} member")
    ref: str = entry["ref"]
    if entry.get("shipped"):
        return shipped_bundle_path(ref)
    return member_folder(folder, ref)


def face_aware_member(folder: Path, meta: dict[str, Any], role: str) -> Path:
    """:func:`face_aware_member_path`, verified: the member's own checksums, and that it is
    the member the bundle was built with."""
    member = face_aware_member_path(folder, meta, role)
    entry = meta["members"][role]
    if read_meta(member)["sha256"] != entry.get("sha256"):
        raise BundleError(
            f"{member}: the {role} member is not the one {folder} was built with (sha256 "
            "differs); rebuild it: fakescope face-aware WHOLE FACES --out BUNDLE (the shipped "
            "one: python tools/ship_default_detector.py --name general_faces)"
        )
    return member


def verify_members(folder: Path, meta: dict[str, Any]) -> None:
    """Both members verified, and each the one the bundle was built with."""
    for role in FACE_AWARE_ROLES:
        face_aware_member(folder, meta, role)


def save_face_aware_bundle(
    out: str | os.PathLike[str],
    whole: str | os.PathLike[str],
    faces: str | os.PathLike[str],
    route: FaceRoute,
    *,
    card: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a face-aware bundle: `whole` scores every image, `faces` the largest face of
    the images a face fills (`route`: how large a face, how much it weighs). A shipped detector
    given by name is referenced by name (the bundle then holds no weights); any other bundle
    is copied in. Atomic; every member verified."""
    with atomic_folder(out) as tmp:
        members: dict[str, dict[str, Any]] = {}
        for role, given in (("whole", whole), ("faces", faces)):
            shipped = not Path(given).exists() and str(given) in SHIPPED_DETECTORS
            source = resolve_bundle_path(given)
            member_meta = read_meta(source)
            if member_meta.get("kind") is not None:
                raise BundleError(f"{given}: the {role} member must be a single-model bundle")
            ref = str(given) if shipped else f"{MEMBERS_DIR}/{role}"
            if not shipped:
                shutil.copytree(source, tmp / ref)
                member_meta = read_meta(tmp / ref)  # verifies the copy
            members[role] = {
                "ref": ref,
                "shipped": shipped,
                "source_bundle": str(given),
                "sha256": member_meta["sha256"],
            }
        meta = new_meta(
            KIND,
            {
                "architecture": KIND,
                "members": members,
                "route": route.to_dict(),
                "labels": list(LABEL_NAMES),
                "card": card or {},
                "metrics": metrics or {},
            },
        )
        signed = write_signed(tmp, meta)
        (tmp / CARD_FILE).write_text(render_face_aware_card(signed))
    return Path(out)
