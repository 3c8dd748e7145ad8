"""The one bundle format, for every detector kind: signed, verified, written atomically.

A bundle is a folder:

    bundle.json         format, version, ``kind`` (absent for one model's weights), the
                        metadata the kind needs, checksums; signed (its own sha256)
    model.safetensors   weights (never a pickle), for the kinds that have their own
    members/            other bundles, for the kinds that combine them
    MODEL_CARD.md       the same, for people

`bundle.json["sha256"]` covers the whole metadata (including the weights' sha256, or each
member's sha256), so any edit to any file is detected. This module signs, verifies, reads and
writes bundles and never names a kind: what a kind's bundle.json covers beyond itself (its
weights, its members) and how its card reads are the kind's own (`fakescope.kinds`, looked up
by the ``kind`` field); `fakescope.detectors.load_detector` turns a verified bundle into a
detector.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakescope import LABEL_NAMES, __version__, kind_registry
from fakescope.atomic import atomic_folder, atomic_write_text
from fakescope.data.transforms import Preprocessing
from fakescope.errors import BundleError

if TYPE_CHECKING:  # PyTorch only to read or write weights: scoring on onnxruntime has none
    import torch

FORMAT = "fakescope-bundle"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
DOMAIN_FILE = "domain.safetensors"  # optional: the training data's description (domain score)
META_FILE = "bundle.json"
CARD_FILE = "MODEL_CARD.md"
MEMBERS_DIR = "members"  # where a bundle that combines other bundles keeps their copies
CONTENTS = ("any", "photo")
"""What a detector is for (bundle.json ``content``, the recipe's ``decision.content``): any
image, or photographs only: then a drawn or graphic image (a plot, a screenshot, an
illustration; `fakescope.data.content_type`) is answered unsure (`fakescope.verdict.rule`)."""


def unsure_band(threshold: float, margin: float) -> tuple[float, float]:
    """The probabilities around the threshold that are reported as 'unsure'."""
    return (max(0.0, threshold - margin), min(1.0, threshold + margin))


@dataclass
class BundleMeta:
    """Everything needed to use a set of weights correctly (or, for a kind that combines
    bundles, what its members make of an image)."""

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
    domain: dict[str, Any] | None = None  # the domain model's fields (see detectors.domain)
    faces: dict[str, Any] | None = None  # the face crop policy it was trained on (faces.py)
    # the band fitted to a false-accusation budget (evaluation.unsure_band); None: the margin
    unsure_fit: dict[str, Any] | None = None
    content: str = "any"  # what it is for: any image, or photographs only (CONTENTS)

    def __post_init__(self) -> None:
        if self.content not in CONTENTS:
            raise BundleError(
                f"content {self.content!r} is not one of {', '.join(CONTENTS)} (what the "
                "detector is for: any image, or photographs only)"
            )
        if self.unsure_fit is not None:
            low, high = self.unsure_fit["band"]
            if not 0.0 <= low <= self.threshold <= high <= 1.0:
                raise BundleError(
                    f"the fitted unsure band [{low}, {high}] must hold the threshold "
                    f"{self.threshold}; refit it: fakescope unsure-band BUNDLE VAL"
                )

    @property
    def unsure_band(self) -> tuple[float, float]:
        """unsure when low < p(fake) < high: the fitted band, else threshold +/- margin."""
        if self.unsure_fit is not None:
            low, high = self.unsure_fit["band"]
            return float(low), float(high)
        return unsure_band(self.threshold, self.unsure_margin)

    def to_dict(self) -> dict[str, Any]:
        optional: dict[str, Any] = {"domain": self.domain} if self.domain is not None else {}
        if self.faces is not None:
            optional["faces"] = self.faces
        if self.unsure_fit is not None:
            optional["unsure_fit"] = self.unsure_fit
        if self.content != "any":  # absent: any image, as in bundles made before the field
            optional["content"] = self.content
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
            **optional,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, preprocessing: Preprocessing | None = None
    ) -> BundleMeta:
        """The metadata of a bundle.json; `preprocessing` replaces the stored one (a kind
        that combines bundles derives its own from its members')."""
        labels = tuple(data.get("labels", LABEL_NAMES))
        if len(labels) != 2:
            raise BundleError(f"a bundle has two labels (real, fake), not {list(labels)}")
        return cls(
            architecture=str(data["architecture"]),
            preprocessing=preprocessing or Preprocessing.from_dict(data["preprocessing"]),
            model_kwargs=dict(data.get("model_kwargs", {})),
            labels=(str(labels[0]), str(labels[1])),
            threshold=float(data.get("threshold", 0.5)),
            temperature=float(data.get("temperature", 1.0)),
            unsure_margin=float(data.get("unsure_margin", 0.1)),
            data_fingerprint=str(data.get("data_fingerprint", "")),
            training=dict(data.get("training", {})),
            metrics=dict(data.get("metrics", {})),
            card=dict(data.get("card", {})),
            created=str(data.get("created", "")),
            versions=dict(data.get("versions", {})),
            domain=dict(data["domain"]) if data.get("domain") else None,
            faces=dict(data["faces"]) if data.get("faces") else None,
            unsure_fit=dict(data["unsure_fit"]) if data.get("unsure_fit") else None,
            content=str(data.get("content", "any")),
        )

    @property
    def photos_only(self) -> bool:
        """Whether the detector is for photographs only (drawn or graphic images unsure)."""
        return self.content == "photo"


def package_versions() -> dict[str, str]:
    import timm  # heavy: only a written bundle records its version
    import torch

    return {
        "fakescope": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- signing -------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def meta_digest(meta: dict[str, Any]) -> str:
    """The checksum of a bundle.json: every field but the checksum itself."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sign(meta: dict[str, Any]) -> dict[str, Any]:
    """A copy of `meta` with its checksum set."""
    return {**meta, "sha256": meta_digest(meta)}


def is_signed(meta: dict[str, Any]) -> bool:
    """Whether `meta` carries the checksum of its own content."""
    return isinstance(meta.get("sha256"), str) and meta["sha256"] == meta_digest(meta)


def write_meta(folder: Path, meta: dict[str, Any], *, weights_sha256: str) -> None:
    """Sign and write the bundle.json of a bundle with weights (their checksum included)."""
    write_signed(folder, dict(meta, weights_sha256=weights_sha256))


def write_signed(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Sign `meta` and write it as `folder`'s bundle.json; returns what was written."""
    signed = sign(meta)
    atomic_write_text(folder / META_FILE, json.dumps(signed, indent=2, sort_keys=True))
    return signed


def new_meta(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The bundle.json of a `kind` bundle, unsigned: the format, `fields`, when and by what."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        **fields,
        "created": fields.get("created") or now_iso(),
        "versions": fields.get("versions") or package_versions(),
    }


# -- reading -------------------------------------------------------------------------------
def bundle_kind(path: str | os.PathLike[str]) -> str:
    """The kind `path`'s bundle.json declares (`fakescope.kinds`; not verified here: every
    reader verifies with :func:`read_meta`); the default kind where there is none to read."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        return kind_registry.DEFAULT
    try:
        data = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return kind_registry.DEFAULT
    return kind_registry.name_of(data) if isinstance(data, dict) else kind_registry.DEFAULT


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a bundle.json with every checksum it covers (its kind says which: the
    weights, each member's bundle); BundleError says what is wrong."""
    folder = Path(path)
    if not folder.exists():
        raise BundleError(
            f"{folder}: no such bundle (a bundle is a folder made by fakescope train; "
            f"shipped detectors by name: {', '.join(sorted(SHIPPED_DETECTORS))})"
        )
    if folder.is_file():
        raise BundleError(f"{folder}: a bundle is a folder holding {META_FILE} and {WEIGHTS_FILE}")
    meta = _read_signed_json(folder)
    kind_registry.of_meta(meta).verify(folder, meta)
    return meta


def verify_weights(folder: Path, meta: dict[str, Any]) -> None:
    """The weights (and the domain model, if any) a bundle.json covers are the ones signed."""
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise BundleError(f"{folder}: not a fakescope bundle ({WEIGHTS_FILE} is missing)")
    if meta.get("weights_sha256") != sha256_file(weights_path):
        raise BundleError(
            f"{weights_path}: checksum mismatch: the weights were modified or damaged"
        )
    domain = meta.get("domain")
    if domain:
        domain_path = folder / DOMAIN_FILE
        if not domain_path.is_file() or domain.get("sha256") != sha256_file(domain_path):
            raise BundleError(
                f"{domain_path}: missing, modified or damaged (its checksum is in {META_FILE})"
            )


def member_folder(folder: Path, ref: str) -> Path:
    """The folder of a member bundle kept inside `folder` at `ref`; refused if it leaves it."""
    member = (folder / ref).resolve()
    if folder.resolve() not in member.parents:
        raise BundleError(f"{folder / META_FILE}: member path {ref!r} leaves the bundle")
    return member


def _read_signed_json(folder: Path) -> dict[str, Any]:
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{folder}: not a fakescope bundle ({META_FILE} is missing)")
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
    if not is_signed(meta):
        raise BundleError(f"{meta_path}: checksum mismatch: the metadata was modified or damaged")
    return meta


def load_bundle(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, BundleMeta]:
    """Verify a single-model bundle and rebuild its model in eval mode."""
    raw = read_meta(path)
    if kind_registry.name_of(raw) != kind_registry.DEFAULT:
        raise BundleError(
            f"{path}: a {raw['kind']} bundle {kind_registry.of_meta(raw).holds}; load it with "
            "fakescope.detectors.load_detector"
        )
    from safetensors.torch import load_file

    from fakescope.models import create_model, list_models  # heavy: timm; not on onnxruntime

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


# -- writing -------------------------------------------------------------------------------
def save_bundle(
    out: str | os.PathLike[str],
    model: torch.nn.Module,
    meta: BundleMeta,
    *,
    card_text: str = "",
    extra_files: Sequence[Path] = (),
) -> Path:
    """Write a single-model bundle atomically (a temporary folder renamed into place);
    `extra_files` (e.g. the DOMAIN_FILE that `meta.domain` describes) are copied in."""
    if not meta.created:
        meta.created = now_iso()
    if not meta.versions:
        meta.versions = package_versions()
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_folder(out) as tmp:
        for extra in extra_files:
            shutil.copyfile(extra, tmp / extra.name)
        save_file(state, str(tmp / WEIGHTS_FILE))
        write_meta(tmp, meta.to_dict(), weights_sha256=sha256_file(tmp / WEIGHTS_FILE))
        raw = meta.to_dict()
        (tmp / CARD_FILE).write_text(card_text or kind_registry.of_meta(raw).render_card(raw))
    return Path(out)


def update_meta(path: str | os.PathLike[str], **changes: Any) -> dict[str, Any]:
    """Change metadata fields of a verified single-model bundle (e.g. temperature), re-sign
    it and re-render its model card (refused for a kind whose fields its builder fits)."""
    folder = Path(path)
    meta = read_meta(folder)
    kind = kind_registry.of_meta(meta)
    if kind.fields_fitted:
        raise BundleError(f"{folder}: a {meta['kind']} bundle's fields are fitted; rebuild it")
    meta.update(changes)
    updated = BundleMeta.from_dict(meta)
    meta["unsure_band"] = list(updated.unsure_band)
    write_meta(folder, meta, weights_sha256=meta["weights_sha256"])
    atomic_write_text(folder / CARD_FILE, kind.render_card(meta))
    return meta


def set_content(path: str | os.PathLike[str], content: str = "photo") -> dict[str, Any]:
    """Say what a single-model bundle's detector is for (`CONTENTS`): 'photo' answers drawn
    or graphic images (plots, screenshots, illustrations) unsure, 'any' judges every image;
    re-signed, its card re-rendered (:func:`update_meta`). A face-aware bundle follows its
    whole-image member: set it there and rebuild the face-aware bundle. An unknown `content`
    is refused by `BundleMeta` before anything is written."""
    kind = kind_registry.name_of(read_meta(path))
    if kind != kind_registry.DEFAULT:
        raise BundleError(
            f"{path}: a {kind} bundle is for what its members are for: set the content of its "
            "whole-image member (fakescope.bundle.set_content) and rebuild it"
        )
    return update_meta(path, content=content)


# -- shipped detectors and names -----------------------------------------------------------
SHIPPED_DETECTORS: dict[str, str] = {
    # used when no bundle is given: general, with the face specialist on close-up faces
    "default": "general_faces_detector",
    "general": "general_detector",  # Lite0, shared sources + 12 generators, native crops
    "cifake": "cifake_detector",  # EfficientNet-Lite0 fine-tuned on CIFAKE at 64 px
    "scratch": "scratch_detector",  # resnet_se trained from scratch on CIFAKE at 32 px
    "faces": "faces_detector",  # the face specialist (configs/faces_lite2.yaml), for --faces
    # general, with the face specialist's score averaged in where a face fills the image
    "general_faces": "general_faces_detector",  # tools/ship_default_detector.py builds it
    # a model of real photos only; p(fake) from its coding-cost gap (fakescope.kinds.zero_shot)
    "zero_shot": "zero_shot_detector",
}
"""Detectors inside the package, by the name that ``--bundle`` and ``pretrained_path`` accept.
A name whose folder is not installed (a slimmed-down copy) is refused with a message saying so."""

FACE_DETECTOR = "faces"


def shipped_available(name: str) -> bool:
    """Whether the shipped detector `name` is installed with this copy of fakescope."""
    return name in SHIPPED_DETECTORS and (shipped_bundle_path(name) / META_FILE).is_file()


def face_detector_or_default() -> tuple[str, str | None]:
    """The detector `--faces` uses when no bundle is given: the shipped face specialist when
    it is installed, else the default detector and a note saying it never saw a face."""
    if shipped_available(FACE_DETECTOR):
        return FACE_DETECTOR, None
    return "default", (
        "the face specialist is not installed with this copy of fakescope; the default "
        "detector scored the faces (it was not trained on faces: pass --bundle)"
    )


def shipped_bundle_path(name: str = "default") -> Path:
    """The folder of a detector shipped inside the package (see :data:`SHIPPED_DETECTORS`)."""
    if name not in SHIPPED_DETECTORS:
        known = ", ".join(sorted(SHIPPED_DETECTORS))
        raise BundleError(f"no shipped detector is called {name!r}; shipped: {known}")
    return Path(str(resources.files("fakescope") / "assets" / SHIPPED_DETECTORS[name]))


def default_bundle_path() -> Path:
    """The detector shipped inside the package and used when no bundle is given."""
    return shipped_bundle_path("default")


def is_shipped(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is (or names) a detector shipped inside the package."""
    resolved = resolve_bundle_path(path).resolve()
    return any(resolved == shipped_bundle_path(name).resolve() for name in SHIPPED_DETECTORS)


def resolve_bundle_path(path: str | os.PathLike[str] | None) -> Path:
    """A bundle folder from what a user typed: None is the default detector; an existing path
    is itself; otherwise the name of a shipped detector ('default', 'scratch') is its folder.
    Anything else is returned as a path, for the loader to report as missing."""
    if path is None:
        return default_bundle_path()
    candidate = Path(path)
    if not candidate.exists() and str(path) in SHIPPED_DETECTORS:
        if not shipped_available(str(path)):
            raise BundleError(
                f"the shipped detector {str(path)!r} is not installed with this copy of "
                "fakescope; pass --bundle RUN/bundle"
            )
        return shipped_bundle_path(str(path))
    return candidate
