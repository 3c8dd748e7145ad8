"""What every detector is: a verified bundle that scores decoded images, and says what else it
can do.

A detector kind (one package each under `fakescope.kinds`) runs as subclasses of
:class:`Detector`, one per runtime, that its registered `fakescope.kinds.Kind` names. Callers
never probe a detector's attributes to find out what it is: they read
:attr:`Detector.capabilities`, or call :meth:`Detector.require`, which fails at once with a
message that says why and what to do.
:func:`load_detector` is the one way from a path or a shipped name to a detector.
"""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fakescope import kind_registry
from fakescope.bundle import BundleMeta, bundle_kind, resolve_bundle_path
from fakescope.data.transforms import Preprocessing
from fakescope.errors import BundleError, ConfigError, FakescopeError
from fakescope.faces import FaceCropPolicy
from fakescope.verdict.pipeline import predict_inputs

if TYPE_CHECKING:  # PyTorch is imported where a detector runs on it, never to score on
    import torch  # onnxruntime (a kind on onnxruntime works on numpy arrays)
    from torch import nn

    from fakescope.data.inputs import ImageInput
    from fakescope.detectors.domain import DomainModel
    from fakescope.verdict.prediction import Prediction

Runtime = Literal["torch", "onnx"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx")
RuntimeChoice = Literal["auto", "torch", "onnx"]
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = ("auto", "torch", "onnx")
logger = logging.getLogger("fakescope")
Capability = Literal["explain", "embed", "gradients"]


class CapabilityError(ConfigError):
    """A detector was asked for something its kind cannot do (e.g. Grad-CAM of a kind that
    combines several models)."""


@dataclass(frozen=True)
class Capabilities:
    """What a detector can do beyond scoring, and why not where it cannot.

    can_explain:   Grad-CAM maps (needs one PyTorch model with convolutional stages)
    can_embed:     penultimate features (t-SNE, domain statistics)
    has_gradients: differentiable end to end, so white-box attacks (FGSM, PGD) can run
    runtime:       what computes the logits: 'torch' or 'onnx'
    """

    runtime: Runtime
    can_explain: bool
    can_embed: bool
    has_gradients: bool
    why_not: dict[Capability, str] = field(default_factory=dict)

    def allows(self, capability: Capability) -> bool:
        return {
            "explain": self.can_explain,
            "embed": self.can_embed,
            "gradients": self.has_gradients,
        }[capability]


@dataclass(frozen=True)
class PixelScores:
    """Per image: calibrated p(fake), and where the detector provides them, its domain score
    (distance to the training data / threshold; above 1 is out of domain), the p(fake) of
    its most suspicious crop, and for a kind that reads faces on its own the
    face ({x, y, w, h} in the original image) whose score joined the image's, or None."""

    p_fake: np.ndarray
    domain_score: np.ndarray | None = None
    max_crop_p_fake: np.ndarray | None = None
    face_boxes: list[dict[str, int] | None] | None = None
    # the penultimate features the domain score was computed from (N, D), where it was:
    # the evaluation report's t-SNE map reuses them instead of running the model again
    features: np.ndarray | None = None

    @classmethod
    def concat(cls, parts: Sequence[PixelScores]) -> PixelScores:
        """The scores of consecutive batches as one (a field missing from one is None)."""

        def joined(values: list[np.ndarray | None]) -> np.ndarray | None:
            present = [v for v in values if v is not None]
            return np.concatenate(present) if present and len(present) == len(values) else None

        boxes = [p.face_boxes for p in parts]
        return cls(
            np.concatenate([p.p_fake for p in parts]) if parts else np.empty(0),
            joined([p.domain_score for p in parts]),
            joined([p.max_crop_p_fake for p in parts]),
            None if any(b is None for b in boxes) else [x for b in boxes for x in b or []],
            joined([p.features for p in parts]),
        )


class Detector(ABC):
    """A loaded bundle that scores images: preprocessing, temperature, threshold, unsure band.

    Subclasses implement :meth:`logits` and :attr:`capabilities`; everything else (calibrated
    probabilities, verdicts, batched scoring, predicting on files) is shared.
    """

    kind: ClassVar[str] = "detector"

    def __init__(self, meta: BundleMeta, *, bundle_path: Path | None = None) -> None:
        self.meta = meta
        self.bundle_path = bundle_path

    # -- what it is ------------------------------------------------------------------------
    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this detector can do beyond scoring (see :class:`Capabilities`)."""

    @property
    def runtime(self) -> Runtime:
        """'torch' or 'onnx': what computes the logits."""
        return self.capabilities.runtime

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def threshold(self) -> float:
        return self.meta.threshold

    @property
    def face_policy(self) -> FaceCropPolicy:
        """How `--faces` crops faces for this detector: the policy it was trained on (its
        bundle's ``faces``), else the default policy."""
        return FaceCropPolicy.from_dict(self.meta.faces) if self.meta.faces else FaceCropPolicy()

    @property
    def device(self) -> torch.device:
        """Where inputs go; CPU unless a kind runs on a GPU."""
        import torch

        return torch.device("cpu")

    @property
    def name(self) -> str:
        return str(self.bundle_path) if self.bundle_path else f"<{self.kind} detector>"

    @property
    def explained_by(self) -> Detector:
        """The detector whose Grad-CAM map explains this one's verdicts: itself, or for a
        kind that combines models around one whole-image model, that one."""
        return self

    def require(self, capability: Capability, purpose: str) -> None:
        """Raise :class:`CapabilityError` at once when this detector cannot do `capability`,
        naming `purpose` (e.g. 'Grad-CAM') and the reason."""
        caps = self.capabilities
        if not caps.allows(capability):
            reason = caps.why_not.get(capability, f"a {self.kind} detector cannot")
            raise CapabilityError(f"{purpose}: {reason} ({self.name})")

    def torch_model(self, purpose: str, needs: Capability = "explain") -> nn.Module:
        """The one PyTorch model behind this detector, for Grad-CAM ('explain') or features
        ('embed'); fails with the reason for kinds that have none."""
        self.require(needs, purpose)
        raise CapabilityError(f"{purpose}: {self.name} has no single PyTorch model")

    def attack_target(
        self,
    ) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor], Preprocessing, float]:
        """(module on [0, 1] images, input map, preprocessing, temperature) for white-box
        attacks; fails with the reason for kinds that are not differentiable."""
        self.require("gradients", "white-box attacks")
        raise CapabilityError(f"white-box attacks: {self.name} has no gradients")

    # -- scoring ---------------------------------------------------------------------------
    @abstractmethod
    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits (B,) on the CPU for a (B, 3, S, S) uint8 batch of model inputs."""

    def crop_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits (B, K) for a (B, K, 3, S, S) batch of native-resolution crops."""
        b, k = batch.shape[:2]
        return self.image_logits(batch.flatten(0, 1)).view(b, k)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits (B,) on the CPU for a uint8 batch in `preprocessing`: (B, 3, S, S), or
        (B, K, 3, S, S) crops whose logits are averaged (one image, one logit)."""
        if batch.ndim == 5:
            return self.crop_logits(batch).mean(dim=1)
        return self.image_logits(batch)

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Calibrated p(fake) for a (B, 3, S, S) uint8 batch."""
        return self.calibrate(self.logits(batch))

    def calibrate(self, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        """p(fake) from raw logits (a tensor, or an array from onnxruntime): sigmoid(logit /
        temperature), float32 like the models."""
        if isinstance(logits, np.ndarray):
            return sigmoid(logits.astype(np.float32) / np.float32(self.meta.temperature))
        import torch

        return torch.sigmoid(logits.float() / self.meta.temperature).numpy()

    def verdict(self, p_fake: float) -> tuple[str, bool]:
        """(label, unsure) for a probability, by the bundle's threshold and unsure band."""
        low, high = self.meta.unsure_band
        label = self.meta.labels[1] if p_fake >= self.meta.threshold else self.meta.labels[0]
        return label, bool(low < p_fake < high)

    def prepare(self, img: Image.Image) -> np.ndarray:
        """The (3, S, S) uint8 model input for one decoded image (thread-safe, so callers may
        prepare images in parallel)."""
        return self.preprocessing.to_uint8(img)

    def logits_in_batches(
        self,
        images: torch.Tensor | Sequence[np.ndarray],
        *,
        batch_size: int = 256,
        progress: bool = False,
        desc: str = "score",
    ) -> torch.Tensor:
        """Raw logits (N,) of prepared uint8 images, `batch_size` at a time: the one batched
        scoring loop that evaluate, robustness, video, batch scoring and predict share."""
        n = len(images)
        parts: list[torch.Tensor] = []
        with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, n, batch_size):
                chunk = images[start : start + batch_size]
                batch = stack_arrays(chunk)
                parts.append(self.logits(batch).float().reshape(-1))
                bar.update(len(batch))
        import torch

        return torch.cat(parts) if parts else torch.empty(0)

    def probabilities_in_batches(
        self,
        images: torch.Tensor | Sequence[np.ndarray],
        *,
        batch_size: int = 256,
        progress: bool = False,
        desc: str = "score",
    ) -> np.ndarray:
        """Calibrated p(fake) (N,) of prepared uint8 images, `batch_size` at a time."""
        return self.calibrate(
            self.logits_in_batches(images, batch_size=batch_size, progress=progress, desc=desc)
        )

    def score_prepared(
        self, arrays: Sequence[np.ndarray] | torch.Tensor, *, batch_size: int = 256
    ) -> PixelScores:
        """What the pixels say about prepared inputs: calibrated p(fake), and where a kind
        knows them, the domain score and the most suspicious crop's p(fake)."""
        if not self.preprocessing.multi_crop:
            return PixelScores(self.probabilities_in_batches(arrays, batch_size=batch_size))
        per_crop = [
            self.crop_logits(stack_arrays(arrays[start : start + batch_size]))
            for start in range(0, len(arrays), batch_size)
        ]
        if not per_crop:
            return PixelScores(np.empty(0), max_crop_p_fake=np.empty(0))
        import torch

        z = torch.cat(per_crop)
        return PixelScores(
            self.calibrate(z.mean(dim=1)), max_crop_p_fake=self.calibrate(z.max(dim=1).values)
        )

    def size_score(self, width: int, height: int) -> float | None:
        """How far an image's size lies outside what this detector was trained on (above 1:
        out of domain), where the detector knows; None otherwise."""
        return None

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """p(fake) for decoded PIL images."""
        if not images:
            return np.empty(0)
        return self.probabilities_in_batches([self.prepare(img) for img in images])

    def predict(
        self,
        inputs: ImageInput | Iterable[ImageInput],
        *,
        batch_size: int = 64,
        progress: bool = False,
        provenance: bool = True,
        faces: bool = False,
        all_faces: bool = False,
    ) -> list[Prediction]:
        """Verdicts for images, bytes, files, folders and archives; bad files get an `error`.
        With `provenance` (the default) each file's Content Credentials, metadata and
        watermarks join the pixel score (see `fakescope.verdict`). `faces`: score the
        largest face (by :attr:`face_policy`) instead of the whole image; `all_faces`: every
        face, one verdict each."""
        return predict_inputs(
            self,
            inputs,
            batch_size=batch_size,
            progress=progress,
            provenance=provenance,
            faces=faces or all_faces,
            all_faces=all_faces,
        )

    def info(self) -> dict[str, Any]:
        """The bundle's metadata and capabilities, for model cards and the HTTP API."""
        caps = self.capabilities
        return {
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "runtime": self.runtime,
            "kind": self.kind,
            "capabilities": {
                "can_explain": caps.can_explain,
                "can_embed": caps.can_embed,
                "has_gradients": caps.has_gradients,
            },
            **self.meta.to_dict(),
        }

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        runtime: str = "auto",
    ) -> Detector:
        """:func:`load_detector`: any kind, from a bundle folder, an ONNX file or a shipped name
        (runtime 'auto': onnxruntime where the bundle's export matches PyTorch)."""
        return load_detector(path, device=device, runtime=runtime)

    @classmethod
    @abstractmethod
    def from_bundle(cls, path: Path, *, device: str) -> Detector:
        """Load this kind from a verified bundle at `path` (already resolved)."""


def domain_scored(
    detector: Detector,
    domain: DomainModel,
    arrays: Sequence[np.ndarray] | torch.Tensor,
    batch_size: int,
    logits_and_features: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> PixelScores:
    """p(fake), the domain score and (for crops) the most suspicious crop's p(fake) of
    prepared inputs, from one pass that gives logits and penultimate features (either
    runtime's `logits_and_features`)."""
    logits, features = [], []
    for start in range(0, len(arrays), batch_size):
        z, f = logits_and_features(stack_arrays(arrays[start : start + batch_size]))
        logits.append(z)
        features.append(f.numpy())
    if not logits:
        return PixelScores(np.empty(0), np.empty(0))
    import torch

    z = torch.cat(logits)
    feats = np.concatenate(features)
    scores = domain.scores(feats)
    if z.ndim == 1:
        return PixelScores(detector.calibrate(z), scores, features=feats)
    return PixelScores(
        detector.calibrate(z.mean(dim=1)),
        scores,
        detector.calibrate(z.max(dim=1).values),
        features=feats,
    )


def stack_arrays(arrays: Sequence[np.ndarray] | torch.Tensor) -> torch.Tensor:
    """A batch tensor from prepared arrays (a tensor is returned as it is)."""
    import torch

    if isinstance(arrays, torch.Tensor):
        return arrays
    return torch.from_numpy(np.ascontiguousarray(stack_numpy(arrays)))


def stack_numpy(arrays: Sequence[np.ndarray] | torch.Tensor) -> np.ndarray:
    """A batch array from prepared arrays (an array is returned as it is, a CPU tensor as
    the array it holds): what scoring on onnxruntime works on, without PyTorch."""
    if isinstance(arrays, np.ndarray):
        return arrays
    if isinstance(arrays, Sequence):
        return np.stack(list(arrays))
    return np.asarray(arrays.numpy())  # a tensor (on the CPU)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function in `z`'s precision, without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    p: np.ndarray = np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)
    return p


def cuda_available() -> bool:
    """`torch.cuda.is_available()`, without importing PyTorch where no GPU driver is present
    (Linux without NVIDIA's, ROCm's or WSL's device files; macOS), so that scoring on
    onnxruntime on an ordinary CPU never loads it."""
    if sys.platform == "darwin":
        return False
    drivers = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
    if sys.platform.startswith("linux") and not any(os.path.exists(d) for d in drivers):
        return False
    import torch

    return torch.cuda.is_available()


# -- loading -------------------------------------------------------------------------------
def load_detector(
    path: str | os.PathLike[str] | None = None,
    *,
    runtime: str = "auto",
    device: str = "auto",
) -> Detector:
    """The detector for a bundle folder, an exported .onnx file or the name of a shipped
    detector ('default', 'scratch'); None is the default detector. Verified.

    `runtime`: 'torch', 'onnx', or 'auto' (the default): onnxruntime on the CPU wherever the
    bundle's ONNX export exists or can be made and passes its parity check against PyTorch
    (exported once into the cache, see `fakescope.kinds.single.onnx`), for the kinds that
    run there (`fakescope.kinds.Kind.auto_onnx`); PyTorch for the others, on a GPU, and
    wherever the export fails (the reason is logged). Grad-CAM and embeddings of an onnx
    detector loaded from a bundle folder use the same bundle on PyTorch
    (`Detector.explained_by`); white-box attacks and training need runtime 'torch'.
    FAKESCOPE_RUNTIME=torch|onnx sets what 'auto' means for a whole process."""
    if runtime not in RUNTIME_CHOICES:
        raise ConfigError(f"unknown runtime {runtime!r}: use 'auto', 'torch' or 'onnx'")
    if runtime == "auto":
        return _load_auto(path, device)
    bundle = resolve_bundle_path(path)
    if path is None and not bundle.is_dir():
        raise BundleError(
            "the default detector is not installed with this copy of fakescope; "
            "pass --bundle RUN/bundle from `fakescope train`"
        )
    if runtime == "torch" and bundle.suffix == ".onnx" and bundle.is_file():
        raise BundleError(f"{bundle} is an ONNX file: load it with runtime 'onnx'")
    cls = kind_registry.get(bundle_kind(bundle)).detector_class(bundle, runtime)
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    return cls.from_bundle(bundle, device=device)


def _load_auto(path: str | os.PathLike[str] | None, device: str) -> Detector:
    """Runtime 'auto' (see `load_detector`)."""
    chosen = os.environ.get("FAKESCOPE_RUNTIME", "auto")
    if chosen not in RUNTIME_CHOICES:
        raise ConfigError(f"FAKESCOPE_RUNTIME={chosen!r}: use 'auto', 'torch' or 'onnx'")
    if chosen != "auto":
        return load_detector(path, runtime=chosen, device=device)
    bundle = resolve_bundle_path(path)
    if bundle.suffix == ".onnx" and bundle.is_file():
        return load_detector(path, runtime="onnx", device=device)
    on_gpu = device == "cuda" or (device == "auto" and cuda_available())
    if on_gpu or (bundle.is_dir() and not kind_registry.get(bundle_kind(bundle)).auto_onnx):
        return load_detector(path, runtime="torch", device=device)
    try:
        import onnxruntime  # noqa: F401  # an optional speed-up: torch still works without it

        return load_detector(path, runtime="onnx", device=device)
    except FakescopeError as exc:  # no export, a failed parity check, an unusable file
        if not bundle.is_dir():  # a missing bundle: torch would say the same
            raise
        logger.warning("%s: scoring with PyTorch, not onnxruntime: %s", bundle, exc)
    except ImportError as exc:
        logger.warning("%s: scoring with PyTorch: onnxruntime is not installed (%s)", bundle, exc)
    return load_detector(path, runtime="torch", device=device)


class DomainScoringDetector(Detector):
    """A one-model detector (either runtime) whose bundle may carry a domain model: the
    domain score comes from the same pass as p(fake), the size score from the model."""

    domain: DomainModel | None

    def logits_and_features(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B,) and penultimate features (B, D) of a prepared batch."""
        raise NotImplementedError

    def score_prepared(
        self, arrays: Sequence[np.ndarray] | torch.Tensor, *, batch_size: int = 256
    ) -> PixelScores:
        """p(fake), and with a domain model the domain score from the same pass."""
        if self.domain is None:
            return super().score_prepared(arrays, batch_size=batch_size)
        return domain_scored(self, self.domain, arrays, batch_size, self.logits_and_features)

    def size_score(self, width: int, height: int) -> float | None:
        """How far an image's size is outside the sizes this detector was trained on (above 1:
        outside), for detectors that resize their input; None when it does not apply."""
        if self.domain is None or self.domain.short_side is None:
            return None
        return float(self.domain.size_scores(np.array([[width, height]]))[0])
