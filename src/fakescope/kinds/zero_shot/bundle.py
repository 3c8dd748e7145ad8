"""The zero-shot bundle: the coder's weights, its fitted statistic and its card.

    model.safetensors   the coder (never a pickle)
    bundle.json         ``"kind": "zero_shot"``, the coder's shape, the crops it reads
                        (preprocessing), the fitted statistic, metrics, checksums
    MODEL_CARD.md       what real data it modelled and what it was never tested on

Signed and verified by the generic bundle format (`fakescope.bundle`), like every kind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from fakescope.atomic import atomic_folder
from fakescope.bundle import (
    CARD_FILE,
    WEIGHTS_FILE,
    BundleMeta,
    now_iso,
    package_versions,
    read_meta,
    sha256_file,
    write_meta,
)
from fakescope.data.transforms import Preprocessing
from fakescope.errors import BundleError
from fakescope.kinds.zero_shot.card import render_zero_shot_card
from fakescope.kinds.zero_shot.coder import MULTIPLE, Coder, CoderConfig
from fakescope.kinds.zero_shot.fit import GapStatistic

KIND = "zero_shot"
ARCHITECTURE = "zero_shot_coder"


def crop_preprocessing(side: int, crops: int) -> Preprocessing:
    """The crops the detector reads: `crops` crops of side x side at the image's own
    resolution (see `Preprocessing`'s ``native`` policy)."""
    if side % (4 * MULTIPLE):
        raise BundleError(
            f"the zero-shot crop side must be a multiple of {4 * MULTIPLE}, not {side}"
        )
    return Preprocessing(input_size=side, resize="native", interpolation="bicubic", crops=crops)


def save_zero_shot_bundle(
    out: str | os.PathLike[str],
    coder: Coder,
    statistic: GapStatistic,
    preprocessing: Preprocessing,
    *,
    unsure_margin: float = 0.1,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write a zero-shot bundle atomically (a temporary folder renamed into place)."""
    meta = BundleMeta(
        architecture=ARCHITECTURE,
        preprocessing=preprocessing,
        model_kwargs=coder.config.to_dict(),
        threshold=0.5,
        temperature=1.0,
        unsure_margin=unsure_margin,
        training=training or {},
        metrics=metrics or {},
        card=card or {},
        created=now_iso(),
        versions=package_versions(),
    )
    raw = {**meta.to_dict(), "kind": KIND, "statistic": statistic.to_dict()}
    state = {k: v.detach().cpu().contiguous() for k, v in coder.state_dict().items()}
    with atomic_folder(out) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE))
        write_meta(tmp, raw, weights_sha256=sha256_file(tmp / WEIGHTS_FILE))
        (tmp / CARD_FILE).write_text(render_zero_shot_card(read_meta(tmp)))
    return Path(out)


def load_zero_shot_bundle(
    path: str | os.PathLike[str],
) -> tuple[Coder, BundleMeta, GapStatistic, dict[str, Any]]:
    """(coder in eval mode, metadata, statistic, verified bundle.json) of a zero-shot bundle.

    Raises:
        BundleError: not a zero-shot bundle, damaged, or weights that do not fit.
    """
    raw = read_meta(path)
    if raw.get("kind") != KIND:
        raise BundleError(f"{path}: not a zero-shot bundle (kind {raw.get('kind', 'single')!r})")
    meta = BundleMeta.from_dict(raw)
    try:
        config = CoderConfig(**{k: int(v) for k, v in meta.model_kwargs.items()})
    except TypeError as exc:
        raise BundleError(
            f"{path}: the coder's shape in bundle.json is malformed ({exc})"
        ) from None
    coder = Coder(config)
    try:
        coder.load_state_dict(load_file(str(Path(path) / WEIGHTS_FILE)), strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{path}: the weights do not fit the coder {config}: {exc}") from None
    if "statistic" not in raw:
        raise BundleError(f"{path}: a zero-shot bundle without its fitted statistic")
    return coder.eval(), meta, GapStatistic.from_dict(raw["statistic"]), raw
