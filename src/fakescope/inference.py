"""Detector: a loaded bundle that turns images, files, folders and archives into verdicts."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from fakescope.bundle import BundleMeta, load_bundle, resolve_bundle_path
from fakescope.data.decode import load_image
from fakescope.data.sources import collect_inputs, read_item_bytes
from fakescope.errors import BundleError, ConfigError, ImageError

if TYPE_CHECKING:
    from fakescope.onnx_runtime import OnnxModel

ImageInput = str | os.PathLike | Image.Image | bytes


@dataclass
class Prediction:
    """One verdict. `error` is set (and the rest None) when the input could not be read."""

    path: str
    p_fake: float | None
    label: str | None
    unsure: bool | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Detector:
    """Scores images with a bundle's model, preprocessing, temperature and threshold."""

    def __init__(
        self,
        model: torch.nn.Module | None,
        meta: BundleMeta,
        *,
        device: str | torch.device = "cpu",
        bundle_path: Path | None = None,
        onnx: OnnxModel | None = None,
    ) -> None:
        """`model` scores with PyTorch; or pass model=None and an `onnx` session instead."""
        if (model is None) == (onnx is None):
            raise ValueError("a Detector needs exactly one of a torch model and an ONNX session")
        self.device = torch.device(device if onnx is None else "cpu")
        # channels_last: oneDNN's (and cuDNN's) fast layout for convolutions, and the one the
        # trainer uses. On this CPU it makes EfficientNet-Lite0 1.1x faster at batch 1 and 1.7x
        # faster at batch 32 (fp32), with the same scores to ~1e-7.
        self.model = (
            model.to(self.device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]  # torch stubs lack it
            if model is not None
            else None
        )
        self.onnx = onnx
        self.meta = meta
        self.preprocessing = meta.preprocessing
        self.bundle_path = bundle_path

    @property
    def runtime(self) -> str:
        """'torch' or 'onnx': what computes the logits."""
        return "onnx" if self.onnx is not None else "torch"

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        runtime: str = "torch",
    ) -> Detector:
        """Load a bundle (verified); None loads the default detector shipped with fakescope,
        and the name of a shipped detector ('default', 'scratch') loads that one.

        runtime="onnx" scores with onnxruntime instead of PyTorch: `path` may then also be a
        .onnx file from `fakescope export`; a bundle folder uses its model.onnx, or an export
        made once into the cache (see fakescope.onnx_runtime).
        """
        bundle = resolve_bundle_path(path)
        if path is None and not bundle.is_dir():
            raise BundleError(
                "the default detector is not installed with this copy of fakescope; "
                "pass --bundle RUN/bundle from `fakescope train`"
            )
        if runtime not in ("torch", "onnx"):
            raise ConfigError(f"unknown runtime {runtime!r}: use 'torch' or 'onnx'")
        from fakescope.ensemble import is_ensemble, load_ensemble

        if is_ensemble(bundle):  # a bundle of bundles: an EnsembleDetector (a Detector)
            if runtime == "onnx":
                raise ConfigError(
                    f"{bundle} is an ensemble; ensembles run on the torch runtime only "
                    "(export its members to ONNX one by one)"
                )
            return load_ensemble(bundle, device=device)
        if runtime == "onnx":
            from fakescope.onnx_runtime import open_onnx

            session, raw = open_onnx(bundle)
            return cls(None, BundleMeta.from_dict(raw), bundle_path=bundle, onnx=session)
        if bundle.suffix == ".onnx" and bundle.is_file():
            raise BundleError(f"{bundle} is an ONNX file: load it with runtime 'onnx'")
        model, meta = load_bundle(bundle)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(model, meta, device=device, bundle_path=bundle)

    @property
    def threshold(self) -> float:
        return self.meta.threshold

    def verdict(self, p_fake: float) -> tuple[str, bool]:
        """(label, unsure) for a probability, by the bundle's threshold and unsure band."""
        low, high = self.meta.unsure_band
        label = self.meta.labels[1] if p_fake >= self.meta.threshold else self.meta.labels[0]
        return label, bool(low < p_fake < high)

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits for a (B, 3, S, S) uint8 batch."""
        if self.onnx is not None:
            return self.onnx.logits(batch)
        x = self.preprocessing.normalize(batch.to(self.device))
        x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float().view(-1).cpu()

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Calibrated p(fake) for a (B, 3, S, S) uint8 batch."""
        return torch.sigmoid(self.logits(batch) / self.meta.temperature).numpy()

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """p(fake) for decoded PIL images."""
        if not images:
            return np.empty(0)
        return self.probabilities(self.preprocessing.batch_from_images(list(images)))

    def _decode(self, entry: tuple[str, ImageInput]) -> np.ndarray | str:
        name, value = entry
        try:
            if isinstance(value, Image.Image):
                img = value
            elif isinstance(value, bytes):
                img = load_image(value, name)
            else:
                img = load_image(read_item_bytes(str(value)), name)
            return self.preprocessing.to_uint8(img)
        except ImageError as exc:
            return exc.reason
        except OSError as exc:
            return f"cannot read: {exc}"

    def predict(
        self,
        inputs: ImageInput | Iterable[ImageInput],
        *,
        batch_size: int = 64,
        progress: bool = False,
    ) -> list[Prediction]:
        """Verdicts for images, files, folders and archives; bad files get an `error`."""
        entries, problems = _expand(inputs)
        results: dict[int, Prediction] = {}
        bar = tqdm(total=len(entries), desc="predict", unit="img", disable=not progress)
        with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
            for chunk in _chunks(list(enumerate(entries)), batch_size):
                decoded = list(pool.map(self._decode, [entry for _, entry in chunk]))
                good = [
                    (i, arr)
                    for (i, _), arr in zip(chunk, decoded, strict=True)
                    if not isinstance(arr, str)
                ]
                for (i, (name, _)), arr in zip(chunk, decoded, strict=True):
                    if isinstance(arr, str):
                        results[i] = Prediction(name, None, None, None, error=arr)
                if good:
                    batch = torch.from_numpy(np.stack([arr for _, arr in good]))
                    for (i, _), p in zip(good, self.probabilities(batch), strict=True):
                        label, unsure = self.verdict(float(p))
                        results[i] = Prediction(entries[i][0], float(p), label, unsure)
                bar.update(len(chunk))
        bar.close()
        ordered = [results[i] for i in range(len(entries))]
        return [
            Prediction(path, None, None, None, error=reason) for path, reason in problems
        ] + ordered

    def info(self) -> dict[str, Any]:
        """The bundle's metadata, for model cards and the HTTP API."""
        return {
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "runtime": self.runtime,
            **self.meta.to_dict(),
        }


def _expand(inputs: ImageInput | Iterable[ImageInput]) -> tuple[list[tuple[str, ImageInput]], list]:
    """Normalise inputs to (name, value) pairs; folders and archives become their images."""
    if isinstance(inputs, str | os.PathLike | Image.Image | bytes):
        inputs = [inputs]
    entries: list[tuple[str, ImageInput]] = []
    problems: list[tuple[str, str]] = []
    for index, value in enumerate(inputs):
        if isinstance(value, Image.Image):
            entries.append((getattr(value, "filename", "") or f"<image {index}>", value))
        elif isinstance(value, bytes):
            entries.append((f"<bytes {index}>", value))
        else:
            paths, missing = collect_inputs([str(value)])
            entries += [(p, p) for p in paths]
            problems += missing
    return entries, problems


def _chunks(seq: list, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
