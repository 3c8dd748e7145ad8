"""Ensembles: several detector bundles combined into one bundle that behaves as a Detector.

An ensemble bundle is a folder:

    bundle.json     kind "ensemble": the members (relative folder, sha256 of each member's
                    bundle.json), the rule and its weights or stacking coefficients, the
                    threshold (max F1 on validation), temperature 1, the unsure band, the
                    validation metrics; signed like every bundle (its own sha256)
    members/NN-name copies of the member bundles, each verified with its own checksums
    MODEL_CARD.md   the same, for people
    ensemble.json   the ensemble-versus-members table on the validation data

Rules: `accuracy` (weights proportional to each member's validation accuracy at its own
threshold), `auc` (proportional to validation ROC-AUC), `equal`, all combining the members'
calibrated p(fake) by a weighted mean; `stacking` fits scikit-learn's LogisticRegression on
the members' calibrated logits on the validation data.

Members may differ in input size and preprocessing: each one preprocesses from the decoded
image itself. When their geometries differ, the ensemble's `preprocessing` packs every
member's input into one uint8 array (`PackedPreprocessing`), so the code paths that decode
once and then call `logits` (evaluate, compare, calibrate, serve) work unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from fakescope import LABEL_NAMES, __version__
from fakescope.bundle import (
    CARD_FILE,
    FORMAT,
    FORMAT_VERSION,
    META_FILE,
    BundleMeta,
    _meta_digest,
    package_versions,
    read_meta,
)
from fakescope.data.cache import decode_items
from fakescope.data.sources import open_source
from fakescope.data.transforms import Preprocessing
from fakescope.errors import BundleError, ConfigError
from fakescope.evaluation.metrics import binary_metrics, choose_threshold
from fakescope.inference import Detector

KIND = "ensemble"
RULES = ("accuracy", "auc", "equal", "stacking")
MEMBERS_DIR = "members"
TABLE_FILE = "ensemble.json"
_EPS = 1e-7


# -- preprocessing -------------------------------------------------------------------------
def _geometry(pre: Preprocessing) -> tuple[int, str, str]:
    """What decides the pixels a model sees (mean/std are applied by each member itself)."""
    return (pre.input_size, pre.resize, pre.interpolation)


@dataclass(frozen=True)
class PackedPreprocessing(Preprocessing):
    """Several preprocessings' uint8 inputs packed into one (3, S, S) array, zero-padded.

    `to_uint8` runs each member preprocessing on the decoded image and packs the results;
    `unpack` recovers them from a batch. Not a model input itself (no `normalize`).
    """

    members: tuple[Preprocessing, ...] = ()

    @classmethod
    def of(cls, members: Sequence[Preprocessing]) -> PackedPreprocessing:
        total = sum(3 * p.input_size**2 for p in members)
        side = math.ceil(math.sqrt(total / 3))
        return cls(input_size=side, members=tuple(members))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "packed": [p.to_dict() for p in self.members],
        }

    def resize_image(self, img: Image.Image) -> Image.Image:
        raise ConfigError(
            "this ensemble's members see different input sizes: there is no single resized "
            "view (Grad-CAM and embeddings need a single-model bundle)"
        )

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        flat = np.concatenate([p.to_uint8(img).ravel() for p in self.members])
        out = np.zeros(3 * self.input_size**2, dtype=np.uint8)
        out[: flat.size] = flat
        return out.reshape(3, self.input_size, self.input_size)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        raise ConfigError(
            "a packed ensemble input is not a model input; use the ensemble's logits()"
        )

    def unpack(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) packed uint8 -> one (B, 3, s, s) batch per member preprocessing."""
        flat = batch.reshape(batch.shape[0], -1)
        out, offset = [], 0
        for p in self.members:
            size = 3 * p.input_size**2
            out.append(flat[:, offset : offset + size].reshape(-1, 3, p.input_size, p.input_size))
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


def rule_weights(rule: str, member_metrics: Sequence[dict[str, Any]]) -> list[float]:
    """Weights summing to 1: proportional to validation accuracy or ROC-AUC, or equal."""
    k = len(member_metrics)
    if rule == "equal":
        raw = [1.0] * k
    elif rule in ("accuracy", "auc"):
        key = "accuracy" if rule == "accuracy" else "roc_auc"
        raw = [m.get(key) for m in member_metrics]
        if any(v is None for v in raw):
            raise ConfigError(
                f"rule {rule!r} needs the member's {key} on the validation data, which needs "
                "both real and fake images there"
            )
    else:
        raise ConfigError(f"unknown ensemble rule {rule!r}; choose from {', '.join(RULES)}")
    total = float(sum(raw))
    if total <= 0:
        raise ConfigError(f"rule {rule!r}: the members' scores sum to 0; use --rule equal")
    return [float(v) / total for v in raw]


class _EnsembleModule(nn.Module):
    """[0, 1] images -> ensemble logit, differentiable through every member (for attacks)."""

    def __init__(self, members: Sequence[Detector], combiner: Combiner) -> None:
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
    """A Detector whose score combines member detectors (predict, verdict, info, ...)."""

    def __init__(
        self,
        members: Sequence[Detector],
        member_names: Sequence[str],
        combiner: Combiner,
        meta: BundleMeta,
        *,
        bundle_path: Path | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.members = list(members)
        self.member_names = list(member_names)
        self.combiner = combiner
        self.device = self.members[0].device
        self.model = nn.ModuleList([m.model for m in self.members])
        self.onnx = None  # members run on PyTorch
        self.meta = meta
        self.preprocessing = meta.preprocessing
        self.bundle_path = bundle_path
        self.raw = raw or {}

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
        """The ensemble's logit for a batch in its `preprocessing` (temperature is 1)."""
        return self.combiner(self.member_logits(batch)).float().view(-1).cpu()

    def attack_target(self) -> tuple[nn.Module, Any, Preprocessing, float]:
        """For white-box attacks: needs members that all see the same resized image."""
        if self.packed:
            raise ConfigError(
                f"{self.bundle_path}: attacks on an ensemble need members with the same input "
                "size and resize policy (this one mixes them); attack a single-model bundle"
            )
        module = _EnsembleModule(self.members, self.combiner).eval()
        return module, lambda x: x, self.members[0].preprocessing, self.meta.temperature

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "kind": KIND,
            "rule": self.combiner.rule,
            "members": self.raw.get("members", []),
        }


# -- files ---------------------------------------------------------------------------------
def is_ensemble(path: str | os.PathLike) -> bool:
    """Whether `path` holds an ensemble bundle (by its bundle.json; not yet verified)."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        return False
    try:
        return json.loads(meta_path.read_text()).get("kind") == KIND
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def read_ensemble_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and verify an ensemble's bundle.json and every member's checksums."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{folder}: not a fakescope bundle ({META_FILE} is missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("kind") != KIND:
        raise BundleError(f"{meta_path}: not a fakescope ensemble bundle")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{folder}: bundle format version {meta.get('format_version')} is not supported by "
            f"fakescope {__version__}; upgrade fakescope or rebuild the ensemble"
        )
    if meta.get("sha256") != _meta_digest(meta):
        raise BundleError(f"{meta_path}: checksum mismatch: the metadata was modified or damaged")
    root = folder.resolve()
    for entry in meta["members"]:
        member = (folder / entry["path"]).resolve()
        if root not in member.parents:
            raise BundleError(f"{meta_path}: member path {entry['path']!r} leaves the bundle")
        member_meta = read_meta(member)  # the member's own checksums
        if member_meta["sha256"] != entry["sha256"]:
            raise BundleError(
                f"{member}: this member is not the one the ensemble was built with (sha256 "
                "differs); rebuild the ensemble with fakescope ensemble"
            )
    return meta


def load_ensemble(path: str | os.PathLike, *, device: str = "auto") -> EnsembleDetector:
    """Verify an ensemble bundle and load its members."""
    folder = Path(path)
    raw = read_ensemble_meta(folder)
    members = [Detector.load(folder / e["path"], device=device) for e in raw["members"]]
    combiner = Combiner(
        raw["rule"],
        weights=raw.get("weights"),
        coef=(raw.get("stacking") or {}).get("coef"),
        intercept=(raw.get("stacking") or {}).get("intercept"),
    )
    meta = _ensemble_meta(raw, [m.preprocessing for m in members])
    return EnsembleDetector(
        members, [e["name"] for e in raw["members"]], combiner, meta, bundle_path=folder, raw=raw
    )


def _shared_preprocessing(pres: Sequence[Preprocessing]) -> Preprocessing:
    distinct: dict[tuple, Preprocessing] = {}
    for pre in pres:
        distinct.setdefault(_geometry(pre), pre)
    if len(distinct) == 1:
        return pres[0]
    return PackedPreprocessing.of(list(distinct.values()))


def _ensemble_meta(raw: dict[str, Any], pres: Sequence[Preprocessing]) -> BundleMeta:
    return BundleMeta(
        architecture=KIND,
        preprocessing=_shared_preprocessing(pres),
        model_kwargs={"rule": raw["rule"], "members": [e["name"] for e in raw["members"]]},
        labels=tuple(raw.get("labels", LABEL_NAMES)),
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


# -- building ------------------------------------------------------------------------------
@dataclass
class _Scores:
    labels: np.ndarray
    logits: np.ndarray  # (n, k) calibrated member logits
    p_fake: np.ndarray  # (n, k) member p(fake)
    n_skipped: int


def _score_members(
    members: Sequence[Detector], items: list, source: Any, progress: bool
) -> _Scores:
    from fakescope.evaluation.evaluate import score_decoded

    decoded_by_pre: dict[str, Any] = {}
    logits, probs, paths = [], [], None
    for member in members:
        key = json.dumps(member.preprocessing.to_dict(), sort_keys=True)
        if key not in decoded_by_pre:
            decoded_by_pre[key] = decode_items(
                items, source.read_bytes, member.preprocessing, progress=progress, desc="decode val"
            )
        decoded = decoded_by_pre[key]
        if paths is not None and decoded.paths != paths:
            raise BundleError("members could not read the same validation images")
        paths = decoded.paths
        z, p = score_decoded(member, decoded, progress=progress)
        logits.append(z / member.meta.temperature)
        probs.append(p)
    decoded = next(iter(decoded_by_pre.values()))
    return _Scores(
        decoded.labels.numpy().astype(int),
        np.stack(logits, axis=1),
        np.stack(probs, axis=1),
        len(decoded.skipped),
    )


def _fit_stacking(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[Combiner, np.ndarray, str]:
    """Logistic regression on member logits; out-of-fold p(fake) on validation when possible."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if len(np.unique(y)) < 2:
        raise ConfigError("stacking needs both real and fake images in the validation data")
    model = LogisticRegression(C=1.0, max_iter=1000)
    folds = min(5, int(np.bincount(y).min()))
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        p = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
        how = f"out-of-fold ({folds}-fold) stacked scores"
    else:
        p = None
        how = "in-sample stacked scores (too few images per class for cross-validation)"
    model.fit(x, y)
    combiner = Combiner(
        "stacking", coef=[float(c) for c in model.coef_[0]], intercept=float(model.intercept_[0])
    )
    if p is None:
        p = torch.sigmoid(combiner(torch.from_numpy(x))).numpy()
    return combiner, p, how


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {
        k: m.get(k) for k in ("n", "threshold", "accuracy", "roc_auc", "f1", "average_precision")
    }


def build_ensemble(
    bundles: Sequence[str | os.PathLike],
    val_source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    rule: str = "accuracy",
    val_split: str | None = None,
    unsure_margin: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Combine bundles by `rule`, fitted on `val_source`; write the ensemble bundle to `out`
    (members copied inside) and OUT/ensemble.json; return the ensemble-vs-members table."""
    from fakescope.evaluation.evaluate import model_names, select_items

    if rule not in RULES:
        raise ConfigError(f"unknown ensemble rule {rule!r}; choose from {', '.join(RULES)}")
    if not bundles:
        raise ConfigError("an ensemble needs at least one bundle")
    members = []
    for bundle in bundles:
        if is_ensemble(bundle):
            raise ConfigError(f"{bundle}: is an ensemble; list its members instead of nesting it")
        members.append(Detector.load(bundle, device=device))
    names = model_names(bundles)
    source = open_source(val_source)
    if val_split is None and any(it.split == "val" for it in source.items):
        val_split = "val"
    items = select_items(source, val_split)
    scores = _score_members(members, items, source, progress)
    y = scores.labels
    member_metrics = [
        binary_metrics(y, scores.p_fake[:, i], m.threshold, bootstrap=0)
        for i, m in enumerate(members)
    ]
    if rule == "stacking":
        combiner, p_val, how = _fit_stacking(scores.logits, y, seed)
    else:
        combiner = Combiner(rule, weights=rule_weights(rule, member_metrics))
        p_val = torch.sigmoid(combiner(torch.from_numpy(scores.logits))).numpy()
        how = "weighted mean of the members' calibrated p(fake)"
    threshold = choose_threshold(y, p_val, "max_f1")
    ens_metrics = binary_metrics(y, p_val, threshold, seed=seed)
    where = f"{source.location}" + (f" (split {val_split})" if val_split else "")
    validation = {
        "source": str(source.location),
        "split": val_split,
        "n": int(len(y)),
        "skipped": scores.n_skipped,
        "fingerprint": source.fingerprint(),
        "scores": how,
        "threshold_policy": "max_f1",
    }
    out = Path(out)
    folder = _write_bundle(
        out,
        bundles,
        names,
        combiner,
        threshold=threshold,
        unsure_margin=unsure_margin,
        validation=validation,
        metrics=_summary(ens_metrics) | {"ci95": ens_metrics["ci95"]},
        member_metrics=member_metrics,
    )
    table = {
        "ensemble": str(folder),
        "rule": rule,
        "validation": validation,
        "threshold": threshold,
        "weights": combiner.weights,
        "stacking": combiner.to_dict()["stacking"],
        "note": f"all rows on {where}; members at their own bundle thresholds, the ensemble at "
        "its threshold chosen there by max F1 (so the ensemble row is fitted on these images)",
        "rows": [{"model": "ensemble", **_summary(ens_metrics)}]
        + [
            {"model": name, "bundle": str(b), "weight": w, **_summary(m)}
            for name, b, m, w in zip(
                names,
                bundles,
                member_metrics,
                combiner.weights or [None] * len(names),
                strict=True,
            )
        ],
    }
    (folder / TABLE_FILE).write_text(json.dumps(table, indent=2))
    return table


def _write_bundle(
    out: Path,
    bundles: Sequence[str | os.PathLike],
    names: Sequence[str],
    combiner: Combiner,
    *,
    threshold: float,
    unsure_margin: float,
    validation: dict[str, Any],
    metrics: dict[str, Any],
    member_metrics: Sequence[dict[str, Any]],
) -> Path:
    """Copy members in, sign bundle.json, write the model card; atomic like save_bundle."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ensemble-", dir=out.parent))
    try:
        entries = []
        for index, (name, bundle) in enumerate(zip(names, bundles, strict=True)):
            rel = f"{MEMBERS_DIR}/{index:02d}-{_safe(name)}"
            shutil.copytree(bundle, tmp / rel)
            member = read_meta(tmp / rel)  # verifies the copy
            entries.append(
                {
                    "name": name,
                    "path": rel,
                    "source_bundle": str(bundle),
                    "sha256": member["sha256"],
                    "weights_sha256": member["weights_sha256"],
                    "architecture": member["architecture"],
                    "input_size": member["preprocessing"]["input_size"],
                    "threshold": member["threshold"],
                    "temperature": member.get("temperature", 1.0),
                    "validation": _summary(member_metrics[index]),
                }
            )
        low, high = max(0.0, threshold - unsure_margin), min(1.0, threshold + unsure_margin)
        meta: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "architecture": KIND,
            "members": entries,
            **combiner.to_dict(),
            "labels": list(LABEL_NAMES),
            "threshold": threshold,
            "temperature": 1.0,
            "unsure_margin": unsure_margin,
            "unsure_band": [low, high],
            "validation": validation,
            "metrics": metrics,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
        }
        meta["sha256"] = _meta_digest(meta)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
        (tmp / CARD_FILE).write_text(render_card(meta))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def render_card(meta: dict[str, Any]) -> str:
    """MODEL_CARD.md of an ensemble."""
    m, v = meta["metrics"], meta["validation"]
    lines = [
        "# fakescope ensemble",
        "",
        f"Rule: **{meta['rule']}** over {len(meta['members'])} members. Threshold "
        f"{meta['threshold']:.4f} (max F1 on validation), temperature 1, unsure band "
        f"[{meta['unsure_band'][0]:.4f}, {meta['unsure_band'][1]:.4f}].",
        "",
        f"Validation: {v['source']}"
        + (f" (split {v['split']})" if v.get("split") else "")
        + f", n = {v['n']}; {v['scores']}.",
        "",
        "| model | weight | accuracy | ROC-AUC | F1 |",
        "|---|---|---|---|---|",
        f"| ensemble | | {_f(m.get('accuracy'))} | {_f(m.get('roc_auc'))} | {_f(m.get('f1'))} |",
    ]
    weights = meta.get("weights") or [None] * len(meta["members"])
    for entry, w in zip(meta["members"], weights, strict=True):
        s = entry["validation"]
        lines.append(
            f"| {entry['name']} ({entry['architecture']}, {entry['input_size']}px) | {_f(w)} | "
            f"{_f(s.get('accuracy'))} | {_f(s.get('roc_auc'))} | {_f(s.get('f1'))} |"
        )
    if meta.get("stacking"):
        st = meta["stacking"]
        coef = ", ".join(f"{c:.4f}" for c in st["coef"])
        lines += ["", f"Stacking: logit = {st['intercept']:.4f} + [{coef}] · member logits."]
    lines += [
        "",
        "The ensemble row is measured on the validation data it was fitted on (optimistic); "
        "evaluate it on held-out data with `fakescope evaluate --bundle ENSEMBLE`.",
        "",
    ]
    return "\n".join(lines)


def _f(value: object) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
