"""The registry of detector kinds (`fakescope.kinds` re-exports it for the kind packages):
one :class:`Kind` object per kind, looked up by the name a bundle.json gives in its ``kind``
field (a bundle without one is of :data:`DEFAULT`).

Each kind is a package under this one that owns its bundle layout, its loader (the detector
classes it runs on each runtime), its model card, its fitting and the library functions its
CLI commands call; its ``kind`` module builds its :class:`Kind` and passes it to
:func:`register` (the way a timm model file registers itself). Generic code never names a
kind: the bundle format (`fakescope.bundle`) asks :func:`of_meta` how to verify a bundle's
contents and render its card, `fakescope.detectors.load_detector` which detector class loads
it, the exporter and the refitting commands whether it can be exported or rewritten.

The kinds that ship are listed in :data:`BUILTIN` by the module that registers each; that
module is imported the first time its kind is looked up, so this module imports no kind (and
no kind imports run before the generic modules they build on are loaded). It lives below the
bundle format (which asks it how to verify a bundle) and the kind packages live above
everything they build on: ``make lint`` (import-linter) checks that order.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fakescope.errors import BundleError, ConfigError

if TYPE_CHECKING:
    from fakescope.detectors.base import Detector

DEFAULT = "single"  # the kind of a bundle.json without a "kind" field: one model's weights
BUILTIN: dict[str, str] = {
    "single": "fakescope.kinds.single.kind",  # one model: PyTorch or onnxruntime
    "ensemble": "fakescope.kinds.ensemble.kind",  # member bundles, scores combined by a rule
    "face_aware": "fakescope.kinds.face_aware.kind",  # a whole-image model + a face specialist
    "zero_shot": "fakescope.kinds.zero_shot.kind",  # a real-image coder's coding-gap statistic
}
"""Kind name -> the module that registers it (imported on first look-up)."""
COMMANDS: dict[str, str] = {
    "ensemble": "fakescope.kinds.ensemble.cli",  # fakescope ensemble
    "face_aware": "fakescope.kinds.face_aware.cli",  # fakescope face-aware
    "zero_shot": "fakescope.kinds.zero_shot.cli",  # fakescope zero-shot train|build|export
}
"""Kind name -> the module of its CLI commands (light: `fakescope --help` imports them), each
with `register(app)`; `fakescope.cli.main` adds them after the generic commands."""

_REGISTRY: dict[str, Kind] = {}


class DetectorClasses(MutableMapping[str, "type[Detector]"]):
    """Runtime -> the detector class that loads a kind there. A class may be registered as
    ``"module:Class"``, imported the first time it is asked for: a runtime's heavy imports
    (PyTorch, timm) then load only when a detector runs on it, never to score on
    onnxruntime."""

    def __init__(self, classes: Mapping[str, type[Detector] | str]) -> None:
        self._classes: dict[str, type[Detector] | str] = dict(classes)

    def __getitem__(self, runtime: str) -> type[Detector]:
        cls = self._classes[runtime]
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            cls = getattr(importlib.import_module(module), name)
            self._classes[runtime] = cls
        assert not isinstance(cls, str)
        return cls

    def __contains__(self, runtime: object) -> bool:  # without importing the class
        return runtime in self._classes

    def __setitem__(self, runtime: str, cls: type[Detector]) -> None:
        self._classes[runtime] = cls

    def __delitem__(self, runtime: str) -> None:
        del self._classes[runtime]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)


class Kind:
    """What generic code may ask of a detector kind. A kind package subclasses it, overriding
    what its bundles do differently, and registers one instance.

    name:       the bundle.json ``kind`` value (:data:`DEFAULT` for bundles without one)
    title:      what such a bundle is, for messages ("is <title>")
    holds:      what it holds instead of one classifier's weights, for messages
    detectors:  runtime ('torch', 'onnx') -> the detector class that loads the kind there
                (given as a class, or as "module:Class" to import on first use)
    auto_onnx:  whether runtime 'auto' tries onnxruntime first (else PyTorch)
    """

    name: str = ""
    title: str = ""
    holds: str = ""
    auto_onnx: bool = True

    def __init__(self, detectors: Mapping[str, type[Detector] | str]) -> None:
        self.detectors = DetectorClasses(detectors)

    # -- the bundle ------------------------------------------------------------------------
    def verify(self, folder: Path, meta: dict[str, Any]) -> None:
        """Check what the signed bundle.json `meta` covers beyond itself (weights, members);
        BundleError says what is wrong."""
        raise NotImplementedError

    def render_card(self, meta: dict[str, Any]) -> str:
        """MODEL_CARD.md of a bundle.json."""
        raise NotImplementedError

    # -- loading ---------------------------------------------------------------------------
    def detector_class(self, bundle: Path, runtime: str) -> type[Detector]:
        """The class that loads `bundle` on `runtime`; ConfigError when the kind cannot run
        there (see :meth:`runtime_refusal`)."""

        if runtime not in self.detectors:
            raise ConfigError(self.runtime_refusal(bundle, runtime))
        return self.detectors[runtime]

    def runtime_refusal(self, bundle: Path, runtime: str) -> str:
        """Why this kind does not run on `runtime`."""
        return f"{bundle}: a {self.name} bundle does not run on the {runtime} runtime"

    # -- what may be done to its bundles ---------------------------------------------------
    def refit_refusal(self, bundle: str, command: str, val: str) -> str | None:
        """Why `command` (calibrate, unsure-band) cannot rewrite this bundle in place, before
        any image is read; None to let it start (`fakescope.bundle.update_meta` has the last
        word: :attr:`fields_fitted`)."""
        return None

    @property
    def fields_fitted(self) -> bool:
        """Whether the threshold, temperature and band are fitted by the kind's own builder
        (so calibrate and unsure-band cannot rewrite them)."""
        return True

    def domain_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        """Why `fakescope domain` cannot attach a domain model to this bundle; None if it can."""
        return f"{bundle}: a {self.name} bundle takes no domain model"

    def export_refusal(self, bundle: Path, meta: dict[str, Any]) -> str | None:
        """Why `fakescope export` cannot export this bundle to ONNX; None if it can."""
        return f"ONNX export needs a single-model bundle; {bundle} is a {self.name} bundle"


def register(kind: Kind) -> Kind:
    """Make `kind` the one that loads bundles whose ``kind`` is `kind.name`."""
    _REGISTRY[kind.name] = kind
    return kind


def get(name: str) -> Kind:
    """The registered kind called `name` (its package imported on first use)."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])  # the package registers its kind
    if name not in _REGISTRY:
        raise BundleError(
            f"unknown detector kind {name!r} (this fakescope knows: {', '.join(names())}); "
            "upgrade fakescope"
        )
    return _REGISTRY[name]


def names() -> list[str]:
    """Every kind this fakescope knows: the built-in ones and any registered since."""
    return sorted(set(BUILTIN) | set(_REGISTRY))


def name_of(meta: Mapping[str, Any]) -> str:
    """The kind a bundle.json (as a dict) declares: its ``kind`` field, else :data:`DEFAULT`."""
    kind = meta.get("kind")
    return kind if isinstance(kind, str) else DEFAULT


def of_meta(meta: Mapping[str, Any]) -> Kind:
    """The kind of a bundle.json (as a dict)."""
    return get(name_of(meta))


def command_modules() -> list[ModuleType]:
    """The kinds' command modules (:data:`COMMANDS`), imported, in registry order."""
    return [importlib.import_module(module) for module in COMMANDS.values()]
