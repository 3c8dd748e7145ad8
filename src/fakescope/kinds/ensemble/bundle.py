"""The ensemble bundle: copies of its member bundles instead of weights.

    bundle.json     ``"kind": "ensemble"``: the members (relative folder, sha256 of each
                    member's bundle.json), the rule and its weights or stacking coefficients,
                    the threshold, temperature 1, the unsure band, the validation metrics
    members/NN-name copies of the member bundles, each verified with its own checksums
    MODEL_CARD.md   the same, for people

Signed and verified by the generic bundle format (`fakescope.bundle`), like every kind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakescope import LABEL_NAMES
from fakescope.atomic import atomic_folder
from fakescope.bundle import (
    CARD_FILE,
    MEMBERS_DIR,
    META_FILE,
    bundle_kind,
    member_folder,
    new_meta,
    read_meta,
    unsure_band,
    write_signed,
)
from fakescope.errors import BundleError

KIND = "ensemble"


def is_ensemble(path: str | os.PathLike[str]) -> bool:
    """Whether `path` holds an ensemble bundle (by its bundle.json; not yet verified)."""
    return bundle_kind(path) == KIND


def read_ensemble_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify an ensemble's bundle.json and every member's checksums."""
    if not is_ensemble(path):
        raise BundleError(f"{Path(path) / META_FILE}: not a fakescope ensemble bundle")
    return read_meta(path)


def verify_members(folder: Path, meta: dict[str, Any]) -> None:
    """Every member is inside the bundle, verified, and the one the ensemble was built with."""
    members = meta.get("members")
    if not isinstance(members, list) or not members:
        raise BundleError(f"{folder / META_FILE}: an ensemble bundle without members")
    for entry in members:
        member = member_folder(folder, entry["path"])
        if read_meta(member)["sha256"] != entry["sha256"]:  # the member's own checksums
            raise BundleError(
                f"{member}: this member is not the one the ensemble was built with (sha256 "
                "differs); rebuild the ensemble with fakescope ensemble"
            )


@dataclass(frozen=True)
class MemberSource:
    """A bundle to copy into an ensemble, under `name`, with what the ensemble card shows."""

    name: str
    bundle: Path
    validation: dict[str, Any]


def save_ensemble_bundle(
    out: str | os.PathLike[str],
    members: Sequence[MemberSource],
    fields: dict[str, Any],
    render_card: Callable[[dict[str, Any]], str],
) -> Path:
    """Copy `members` into `out/members/`, verify each copy, then sign and write the
    ensemble's bundle.json (`fields` + the member list) and its card (`render_card(meta)`),
    atomically."""
    with atomic_folder(out) as tmp:
        entries = []
        for index, member in enumerate(members):
            rel = f"{MEMBERS_DIR}/{index:02d}-{_safe(member.name)}"
            shutil.copytree(member.bundle, tmp / rel)
            copied = read_meta(tmp / rel)  # verifies the copy
            entries.append(
                {
                    "name": member.name,
                    "path": rel,
                    "source_bundle": str(member.bundle),
                    "sha256": copied["sha256"],
                    "weights_sha256": copied["weights_sha256"],
                    "architecture": copied["architecture"],
                    "input_size": copied["preprocessing"]["input_size"],
                    "threshold": copied["threshold"],
                    "temperature": copied.get("temperature", 1.0),
                    "validation": member.validation,
                }
            )
        threshold, margin = float(fields["threshold"]), float(fields["unsure_margin"])
        meta = new_meta(
            KIND,
            {
                "architecture": KIND,
                "members": entries,
                "labels": list(LABEL_NAMES),
                "temperature": 1.0,
                **fields,
                "unsure_band": list(unsure_band(threshold, margin)),
            },
        )
        signed = write_signed(tmp, meta)
        (tmp / CARD_FILE).write_text(render_card(signed))
    return Path(out)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
