"""Detector bundles: safetensors weights + JSON metadata + model card, verified on load.

A bundle is a folder:

    model.safetensors   the weights (never a pickle)
    bundle.json         architecture, preprocessing, threshold, temperature, unsure band,
                        labels, data fingerprint, metrics, versions, checksums
    MODEL_CARD.md       the same, for people

`bundle.json["sha256"]` covers the whole metadata (including the weights' sha256), so any
edit to either file is detected.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fakescope import LABEL_NAMES, __version__
from fakescope.data.transforms import Preprocessing
from fakescope.errors import BundleError

FORMAT = "fakescope-bundle"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "bundle.json"
CARD_FILE = "MODEL_CARD.md"


@dataclass
class BundleMeta:
    """Everything needed to use a set of weights correctly."""

    architecture: str
    preprocessing: Preprocessing
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, str] = LABEL_NAMES
    threshold: float = 0.5
    temperature: float = 1.0
    unsure_margin: float = 0.1
    data_fingerprint: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def unsure_band(self) -> tuple[float, float]:
        low = max(0.0, self.threshold - self.unsure_margin)
        high = min(1.0, self.threshold + self.unsure_margin)
        return (low, high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "model_kwargs": self.model_kwargs,
            "preprocessing": self.preprocessing.to_dict(),
            "labels": list(self.labels),
            "threshold": self.threshold,
            "temperature": self.temperature,
            "unsure_margin": self.unsure_margin,
            "unsure_band": list(self.unsure_band),
            "data_fingerprint": self.data_fingerprint,
            "training": self.training,
            "metrics": self.metrics,
            "card": self.card,
            "created": self.created,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleMeta:
        return cls(
            architecture=data["architecture"],
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            model_kwargs=dict(data.get("model_kwargs", {})),
            labels=tuple(data.get("labels", LABEL_NAMES)),
            threshold=float(data.get("threshold", 0.5)),
            temperature=float(data.get("temperature", 1.0)),
            unsure_margin=float(data.get("unsure_margin", 0.1)),
            data_fingerprint=data.get("data_fingerprint", ""),
            training=dict(data.get("training", {})),
            metrics=dict(data.get("metrics", {})),
            card=dict(data.get("card", {})),
            created=data.get("created", ""),
            versions=dict(data.get("versions", {})),
        )


def package_versions() -> dict[str, str]:
    import timm

    return {
        "fakescope": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _meta_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def save_bundle(
    out: str | os.PathLike, model: torch.nn.Module, meta: BundleMeta, *, card_text: str = ""
) -> Path:
    """Write a bundle atomically (a temporary folder renamed into place)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not meta.created:
        meta.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if not meta.versions:
        meta.versions = package_versions()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        save_file(state, str(tmp / WEIGHTS_FILE))
        write_meta(tmp, meta.to_dict(), weights_sha256=_sha256_file(tmp / WEIGHTS_FILE))
        from fakescope.model_card import render_model_card

        (tmp / CARD_FILE).write_text(card_text or render_model_card(meta))
        _umask_permissions(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _umask_permissions(folder: Path) -> None:
    """Give the bundle the permissions of a normally created folder: mkdtemp makes it private
    (0700) and the weights file comes out 0600, which would hide a shared bundle from others."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def write_meta(folder: Path, meta: dict[str, Any], *, weights_sha256: str) -> None:
    meta = dict(meta, weights_sha256=weights_sha256)
    meta["sha256"] = _meta_digest(meta)
    tmp = folder / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, folder / META_FILE)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and verify bundle.json and the weights' checksum; BundleError says what is wrong."""
    folder = Path(path)
    if not folder.exists():
        raise BundleError(
            f"{folder}: no such bundle (a bundle is a folder made by fakescope train)"
        )
    if folder.is_file():
        raise BundleError(f"{folder}: a bundle is a folder holding {META_FILE} and {WEIGHTS_FILE}")
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for needed in (meta_path, weights_path):
        if not needed.is_file():
            raise BundleError(f"{folder}: not a fakescope bundle ({needed.name} is missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a fakescope bundle (format is not {FORMAT!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{folder}: bundle format version {version} is not supported by fakescope "
            f"{__version__} (it reads version {FORMAT_VERSION}); upgrade fakescope or retrain"
        )
    if meta.get("sha256") != _meta_digest(meta):
        raise BundleError(f"{meta_path}: checksum mismatch: the metadata was modified or damaged")
    if meta.get("weights_sha256") != _sha256_file(weights_path):
        raise BundleError(
            f"{weights_path}: checksum mismatch: the weights were modified or damaged"
        )
    return meta


def load_bundle(path: str | os.PathLike) -> tuple[torch.nn.Module, BundleMeta]:
    """Verify a bundle and rebuild its model in eval mode."""
    from fakescope.models import create_model, list_models

    raw = read_meta(path)
    meta = BundleMeta.from_dict(raw)
    if meta.architecture not in list_models():
        raise BundleError(
            f"{path}: architecture {meta.architecture!r} is unknown to fakescope {__version__}; "
            "upgrade fakescope"
        )
    model = create_model(meta.architecture, pretrained=False, **meta.model_kwargs)
    state = load_file(str(Path(path) / WEIGHTS_FILE))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"{path}: weights do not fit architecture {meta.architecture!r}: {exc}"
        ) from exc
    model.eval()
    return model, meta


def update_meta(path: str | os.PathLike, **changes: Any) -> dict[str, Any]:
    """Change metadata fields of a verified bundle (e.g. temperature), re-sign it and
    re-render its model card."""
    from fakescope.model_card import render_model_card

    folder = Path(path)
    meta = read_meta(folder)
    meta.update(changes)
    meta["unsure_band"] = list(BundleMeta.from_dict(meta).unsure_band)
    write_meta(folder, meta, weights_sha256=meta["weights_sha256"])
    (folder / CARD_FILE).write_text(render_model_card(BundleMeta.from_dict(meta)))
    return meta


SHIPPED_DETECTORS: dict[str, str] = {
    "default": "default_detector",  # EfficientNet-Lite0 fine-tuned on CIFAKE at 64 px
    "scratch": "scratch_detector",  # resnet_se trained from scratch on CIFAKE at 32 px
}
"""Detectors inside the package, by the name that ``--bundle`` and ``pretrained_path`` accept."""


def shipped_bundle_path(name: str = "default") -> Path:
    """The folder of a detector shipped inside the package (see :data:`SHIPPED_DETECTORS`)."""
    if name not in SHIPPED_DETECTORS:
        known = ", ".join(sorted(SHIPPED_DETECTORS))
        raise BundleError(f"no shipped detector is called {name!r}; shipped: {known}")
    return Path(str(resources.files("fakescope") / "assets" / SHIPPED_DETECTORS[name]))


def default_bundle_path() -> Path:
    """The detector shipped inside the package and used when no bundle is given."""
    return shipped_bundle_path("default")


def resolve_bundle_path(path: str | os.PathLike[str] | None) -> Path:
    """A bundle folder from what a user typed: None is the default detector; an existing path
    is itself; otherwise the name of a shipped detector ('default', 'scratch') is its folder.
    Anything else is returned as a path, for the loader to report as missing."""
    if path is None:
        return default_bundle_path()
    candidate = Path(path)
    if not candidate.exists() and str(path) in SHIPPED_DETECTORS:
        return shipped_bundle_path(str(path))
    return candidate
