"""The ensemble kind: several member detectors whose calibrated logits are combined.

An ensemble bundle (see `fakescope.kinds.ensemble.bundle`) holds copies of its members;
`fakescope.kinds.ensemble.build` fits one. Rules: `accuracy`, `auc` and `equal` take a
weighted mean of the members' calibrated p(fake); `stacking` applies logistic-regression
coefficients to their calibrated logits.

Members may differ in input size and preprocessing: each one preprocesses from the decoded
image itself. When their geometries differ, the ensemble's `preprocessing` packs every
member's input into one uint8 array (`PackedPreprocessing`), so the code paths that decode
once and then call `logits` (evaluate, compare, calibrate, serve) work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import nn

from fakescope import LABEL_NAMES
from fakescope.bundle import BundleMeta, read_meta
from fakescope.data.transforms import Preprocessing, PreprocessingDict
from fakescope.detectors.base import Capabilities, Detector
from fakescope.detectors.packing import pack_square, square_side
from fakescope.errors import ConfigError
from fakescope.kinds.ensemble.bundle import KIND
from fakescope.kinds.single.pytorch import TorchDetector

_EPS = 1e-7


# -- preprocessing -------------------------------------------------------------------------
def _geometry(pre: Preprocessing) -> tuple[int, str, str, int]:
    """What decides the pixels a model sees (mean/std are applied by each member itself)."""
    return (pre.input_size, pre.resize, pre.interpolation, pre.crops)


@dataclass(frozen=True)
class PackedPreprocessing(Preprocessing):
    """Several preprocessings' uint8 inputs packed into one (3, S, S) array, zero-padded.

    `to_uint8` runs each member preprocessing on the decoded image and packs the results;
    `unpack` recovers them from a batch. Not a model input itself (no `normalize`).
    """

    members: tuple[Preprocessing, ...] = ()

    @classmethod
    def of(cls, members: Sequence[Preprocessing]) -> PackedPreprocessing:
        total = sum(math.prod(p.array_shape) for p in members)
        return cls(input_size=square_side(total), members=tuple(members))

    def to_dict(self) -> PreprocessingDict:
        stored = {"input_size": self.input_size, "packed": [p.to_dict() for p in self.members]}
        return cast("PreprocessingDict", stored)

    def resize_image(self, img: Image.Image) -> Image.Image:
        raise ConfigError(
            "this ensemble's members see different input sizes: there is no single resized "
            "view (Grad-CAM and embeddings need a single-model bundle)"
        )

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        flat = np.concatenate([p.to_uint8(img).ravel() for p in self.members])
        return pack_square(flat, self.input_size)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        raise ConfigError(
            "a packed ensemble input is not a model input; use the ensemble's logits()"
        )

    def unpack(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) packed uint8 -> one batch per member preprocessing, each in its own
        array shape ((B, 3, s, s), or (B, K, 3, s, s) for native-resolution crops)."""
        flat = batch.reshape(batch.shape[0], -1)
        out, offset = [], 0
        for p in self.members:
            size = math.prod(p.array_shape)
            out.append(flat[:, offset : offset + size].reshape(-1, *p.array_shape))
            offset += size
        return out


# -- combining -----------------------------------------------------------------------------
@dataclass
class Combiner:
    """How member calibrated logits (B, k) become the ensemble's logit (B,)."""

    rule: str
    weights: list[float] | None = None
    coef: list[float] | None = None
    intercept: float | None = None

    def __call__(self, member_logits: torch.Tensor) -> torch.Tensor:
        z = member_logits.float()
        if self.rule == "stacking":
            coef = torch.tensor(self.coef, dtype=z.dtype, device=z.device)
            return z @ coef + float(self.intercept or 0.0)
        w = torch.tensor(self.weights, dtype=z.dtype, device=z.device)
        p = (torch.sigmoid(z) @ w).clamp(_EPS, 1 - _EPS)
        return torch.log(p) - torch.log1p(-p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "weights": self.weights,
            "stacking": None
            if self.rule != "stacking"
            else {"coef": self.coef, "intercept": self.intercept, "input": "member logits / T"},
        }


class _EnsembleModule(nn.Module):
    """[0, 1] images -> ensemble logit, differentiable through every member (for attacks)."""

    def __init__(self, members: Sequence[TorchDetector], combiner: Combiner) -> None:
        super().__init__()
        self.models = nn.ModuleList([m.model for m in members])
        self.pres = [m.preprocessing for m in members]
        self.temperatures = [m.meta.temperature for m in members]
        self.combiner = combiner

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        z = [
            model(pre.normalize(x01 * 255.0)).float().reshape(-1) / t
            for model, pre, t in zip(self.models, self.pres, self.temperatures, strict=True)
        ]
        return self.combiner(torch.stack(z, dim=1))


# -- the detector --------------------------------------------------------------------------
class EnsembleDetector(Detector):
    """A detector whose score combines member detectors (predict, verdict, info, ...)."""

    kind = KIND

    def __init__(
        self,
        members: Sequence[TorchDetector],
        member_names: Sequence[str],
        combiner: Combiner,
        meta: BundleMeta,
        *,
        bundle_path: Path | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(meta, bundle_path=bundle_path)
        self.members = list(members)
        self.member_names = list(member_names)
        self.combiner = combiner
        self.raw = raw or {}

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> EnsembleDetector:
        raw = read_meta(path)  # verifies the ensemble and every member
        members = [
            TorchDetector.from_bundle(path / e["path"], device=device) for e in raw["members"]
        ]
        combiner = Combiner(
            raw["rule"],
            weights=raw.get("weights"),
            coef=(raw.get("stacking") or {}).get("coef"),
            intercept=(raw.get("stacking") or {}).get("intercept"),
        )
        meta = ensemble_meta(raw, [m.preprocessing for m in members])
        return cls(
            members, [e["name"] for e in raw["members"]], combiner, meta, bundle_path=path, raw=raw
        )

    @property
    def capabilities(self) -> Capabilities:
        single = f"Grad-CAM needs a single-model bundle; this is an ensemble of {len(self.members)}"
        why_not: dict[Any, str] = {
            "explain": single + " (explain its members one by one)",
            "embed": f"embeddings need a single-model bundle; this is an ensemble of "
            f"{len(self.members)}",
        }
        if self.packed:
            why_not["gradients"] = (
                "attacks on an ensemble need members with the same input size and resize "
                "policy (this one mixes them); attack a single-model bundle"
            )
        return Capabilities(
            runtime="torch",
            can_explain=False,
            can_embed=False,
            has_gradients=not self.packed,
            why_not=why_not,
        )

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def packed(self) -> bool:
        return isinstance(self.preprocessing, PackedPreprocessing)

    def _member_inputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        if not self.packed:
            return [batch] * len(self.members)
        parts = self.preprocessing.unpack(batch)  # type: ignore[attr-defined]
        order = [_geometry(p) for p in self.preprocessing.members]  # type: ignore[attr-defined]
        return [parts[order.index(_geometry(m.preprocessing))] for m in self.members]

    @torch.no_grad()
    def member_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, k) calibrated member logits (raw logit / member temperature)."""
        inputs = self._member_inputs(batch)
        return torch.stack(
            [m.logits(x) / m.meta.temperature for m, x in zip(self.members, inputs, strict=True)],
            dim=1,
        )

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The ensemble's logit for a batch in its `preprocessing` (temperature is 1); each
        member averages its own crops."""
        return self.combiner(self.member_logits(batch)).float().view(-1).cpu()

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.logits(batch)

    def attack_target(
        self,
    ) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]:
        """For white-box attacks: gradients through every member (same resized image)."""
        self.require("gradients", "white-box attacks")
        module = _EnsembleModule(self.members, self.combiner).eval()
        return module, lambda x: x, self.members[0].preprocessing, self.meta.temperature

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "rule": self.combiner.rule,
            "members": self.raw.get("members", []),
        }


def shared_preprocessing(pres: Sequence[Preprocessing]) -> Preprocessing:
    """The members' preprocessing when they share one geometry, else all of them packed."""
    distinct: dict[tuple[int, str, str, int], Preprocessing] = {}
    for pre in pres:
        distinct.setdefault(_geometry(pre), pre)
    if len(distinct) == 1:
        return pres[0]
    return PackedPreprocessing.of(list(distinct.values()))


def ensemble_meta(raw: dict[str, Any], pres: Sequence[Preprocessing]) -> BundleMeta:
    """An ensemble's bundle.json as the metadata every detector has."""
    labels = raw.get("labels", LABEL_NAMES)
    return BundleMeta(
        architecture=KIND,
        preprocessing=shared_preprocessing(pres),
        model_kwargs={"rule": raw["rule"], "members": [e["name"] for e in raw["members"]]},
        labels=(str(labels[0]), str(labels[1])),
        threshold=float(raw["threshold"]),
        temperature=float(raw.get("temperature", 1.0)),
        unsure_margin=float(raw.get("unsure_margin", 0.1)),
        data_fingerprint=raw.get("validation", {}).get("fingerprint", ""),
        training={"rule": raw["rule"], "validation": raw.get("validation", {})},
        metrics=raw.get("metrics", {}),
        card=raw.get("card", {}),
        created=raw.get("created", ""),
        versions=raw.get("versions", {}),
    )
