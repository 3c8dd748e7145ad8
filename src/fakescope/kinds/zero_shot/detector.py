"""The zero-shot kind: a real-image coder's coding-gap statistic as a detector, on PyTorch or
onnxruntime (the coder and the gap are exported as one graph)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope.bundle import BundleMeta
from fakescope.detectors.base import (
    Capabilities,
    Detector,
    PixelScores,
    stack_arrays,
)
from fakescope.kinds.zero_shot.bundle import KIND, load_zero_shot_bundle
from fakescope.kinds.zero_shot.fit import GapStatistic
from fakescope.kinds.zero_shot.onnx_graph import open_zero_shot_onnx
from fakescope.kinds.zero_shot.statistic import GapFeatures, crop_features, image_statistics

FeatureFn = Callable[[torch.Tensor], np.ndarray]  # crops (N, 3, S, S) -> (N, 6)

_WHY = "a zero-shot detector scores a coding statistic, not a classifier's logit"


class ZeroShotDetector(Detector):
    """p(fake) from the coding gap of an image's crops under a model of real photos."""

    kind = KIND

    def __init__(
        self,
        meta: BundleMeta,
        statistic: GapStatistic,
        features: FeatureFn,
        *,
        runtime: str = "torch",
        bundle_path: Path | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(meta, bundle_path=bundle_path)
        self.statistic = statistic
        self.features = features
        self._runtime = runtime
        self._raw = raw or {}

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> ZeroShotDetector:
        coder, meta, statistic, raw = load_zero_shot_bundle(path)
        graph = GapFeatures(coder).eval()

        def features(crops: torch.Tensor) -> np.ndarray:
            return crop_features(graph, crops).numpy()

        return cls(meta, statistic, features, bundle_path=path, raw=raw)

    @property
    def capabilities(self) -> Capabilities:
        why = {"explain": _WHY, "embed": _WHY, "gradients": _WHY}
        return Capabilities(
            runtime="onnx" if self._runtime == "onnx" else "torch",
            can_explain=False,
            can_embed=False,
            has_gradients=False,
            why_not=why,  # type: ignore[arg-type]
        )

    # -- scoring ---------------------------------------------------------------------------
    def image_statistics(self, batch: torch.Tensor) -> list[dict[str, float]]:
        """Per image, the coding-gap statistics of its crops: (B, K, 3, S, S) uint8 crops,
        or (B, 3, S, S) for one crop per image."""
        if batch.ndim == 4:
            batch = batch.unsqueeze(1)
        b, k = batch.shape[:2]
        per_crop = self.features(batch.flatten(0, 1).float()).reshape(b, k, -1)
        return [image_statistics(per_crop[i]) for i in range(b)]

    def _logits_and_readability(self, batch: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        stats = self.image_statistics(batch)
        logits = torch.tensor([self.statistic.logit(s) for s in stats], dtype=torch.float32)
        return logits, np.array([self.statistic.readability(s) for s in stats])

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self._logits_and_readability(batch)[0]

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """One logit per image from all its crops' statistics (not an average of crop logits)."""
        return self._logits_and_readability(batch)[0]

    def crop_logits(self, batch: torch.Tensor) -> torch.Tensor:
        b, k = batch.shape[:2]
        return self._logits_and_readability(batch.flatten(0, 1))[0].view(b, k)

    def score_prepared(
        self, arrays: Sequence[np.ndarray] | torch.Tensor, *, batch_size: int = 256
    ) -> PixelScores:
        """p(fake), and as the domain score how unreadable each image is (above 1: its finest
        level is smoother than nearly every real photo's: up-scaled, blurred or heavily
        compressed; the verdict is then unsure)."""
        logits, readable = [], []
        for start in range(0, len(arrays), batch_size):
            z, r = self._logits_and_readability(stack_arrays(arrays[start : start + batch_size]))
            logits.append(z)
            readable.append(r)
        if not logits:
            return PixelScores(np.empty(0), np.empty(0))
        return PixelScores(self.calibrate(torch.cat(logits)), np.concatenate(readable))

    def size_score(self, width: int, height: int) -> float | None:
        """Above 1 when the image is smaller than one crop (it would have to be enlarged, and
        enlarged pixels are not the camera's): 'unsure'."""
        side = self.preprocessing.input_size
        return float(side / max(1, min(width, height)))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "statistic": self.statistic.to_dict()}


class ZeroShotOnnxDetector(ZeroShotDetector):
    """The zero-shot kind on onnxruntime: the coder and the gap statistic exported as one
    graph (cached per bundle checksum), the threshold applied in Python."""

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> ZeroShotDetector:
        session, meta, statistic, raw = open_zero_shot_onnx(path)
        return cls(meta, statistic, session, runtime="onnx", bundle_path=path, raw=raw)
