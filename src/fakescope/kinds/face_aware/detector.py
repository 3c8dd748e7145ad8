"""The face-aware kind: a whole-image detector, with a face specialist's second look at the
images a face fills.

A detector trained on photos, thumbnails and faces alike reads a close-up face less well than
a specialist trained on face crops (on DFDC faces neither model was trained on, 0.77 against
0.91 ROC-AUC; BENCHMARKS.md), and the specialist knows nothing else (on a modern diffusion
portrait it is at chance). So the whole-image detector (member ``whole``) scores every image,
as it would alone; when the largest face (looked for on a small copy of the image, see
ROUTE_SEARCH_SIZE) covers at least ``min_face_fraction`` of it, the specialist (member
``faces``) scores that face, cropped by its own face crop policy as ``predict --faces``
crops it, and the two scores are averaged:

    a_m = logit(p_m) - logit(threshold_m)           each member's score, its threshold at 0
    p   = sigmoid((1 - w) a_whole + w a_faces + logit(threshold_whole))

so the verdict keeps the whole-image detector's threshold, unsure band and domain score, and
an image without such a face gets exactly the whole-image detector's answer. The face that
joined is reported (``face_box``, and a note).

Routing happens where the pixels are prepared (:class:`FaceRoutedPreprocessing`), so every
path that prepares and scores images (predict, evaluate, robustness, video, the server,
Ray batch scoring) routes the same way. Grad-CAM explains the whole-image member
(:attr:`explained_by`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image

from fakescope.bundle import read_meta
from fakescope.data.transforms import Preprocessing, PreprocessingDict
from fakescope.detectors.base import (
    Capabilities,
    Detector,
    PixelScores,
    Runtime,
    load_detector,
    stack_arrays,
)
from fakescope.detectors.packing import pack_square, square_side
from fakescope.errors import ConfigError
from fakescope.faces import FaceCropPolicy, FaceFinder, FaceSelector, make_face_finder
from fakescope.kinds.face_aware.bundle import KIND, FaceRoute, face_aware_member_path

HEADER = 16  # bytes before the members' inputs: routed flag, then the face box as 4 x uint16
# Only a face that fills much of the image joins, and such a face is at least half the image's
# shorter side: the search runs on a 192 px copy for faces of 40 px and more, with one retry
# inside a mirrored border (for close-ups whose face overflows the frame) instead of three.
# On 1280x720 photos that is 10 ms where three retries take 35 (predict --faces searches a
# 640 px copy for faces from 20 px); on 400 DFDC crops it finds the same faces (98.8 % fill
# half the crop) as three retries (BENCHMARKS.md).
# A face that covers half the image has each side at least half the image's, so the first
# pass, too, looks only for faces of about half the copy's short side (MTCNN's pyramid less its
# smallest windows, MtcnnFaceFinder.min_face_share): the same routing and boxes on the shared
# sources, for less of the search's time (bench/route_speed.py, BENCHMARKS.md).
ROUTE_SEARCH_SIZE = 192
ROUTE_MIN_FACE = 40
ROUTE_MIN_FACE_SHARE = 0.5
ROUTE_BORDER_RETRIES = (0.25,)
_EPS = 1e-6
_SELECTOR_LOCK = threading.Lock()


@dataclass(frozen=True)
class FaceRoutedPreprocessing(Preprocessing):
    """One uint8 (3, S, S) array per image: a header (whether a face joined, and its box),
    the whole-image member's input, and the face crop's input (zeros when none joined).

    `to_uint8` looks for a large face (its own finder, see ROUTE_SEARCH_SIZE, made on first
    use) and crops it by the face member's policy; `unpack` recovers the three parts from a
    batch. Not a model input itself."""

    whole: Preprocessing = field(default_factory=lambda: Preprocessing(1))
    faces: Preprocessing = field(default_factory=lambda: Preprocessing(1))
    policy: FaceCropPolicy = field(default_factory=FaceCropPolicy)
    route: FaceRoute = field(default_factory=FaceRoute)
    selector: FaceSelector | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, whole: Preprocessing, faces: Preprocessing, policy: FaceCropPolicy, route: FaceRoute
    ) -> FaceRoutedPreprocessing:
        total = HEADER + math.prod(whole.array_shape) + math.prod(faces.array_shape)
        return cls(
            input_size=square_side(total),
            whole=whole,
            faces=faces,
            policy=policy,
            route=route,
        )

    def to_dict(self) -> PreprocessingDict:
        stored = {
            "input_size": self.input_size,
            KIND: {
                "whole": self.whole.to_dict(),
                "faces": self.faces.to_dict(),
                "policy": self.policy.to_dict(),
                "route": self.route.to_dict(),
                # how the face is looked for decides the arrays too (decode cache keys)
                "search": {
                    "size": ROUTE_SEARCH_SIZE,
                    "min_face": ROUTE_MIN_FACE,
                    "min_face_share": ROUTE_MIN_FACE_SHARE,
                    "border_retries": list(ROUTE_BORDER_RETRIES),
                },
            },
        }
        return cast("PreprocessingDict", stored)

    def resize_image(self, img: Image.Image) -> Image.Image:
        return self.whole.resize_image(img)  # the view Grad-CAM of the whole member shows

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        raise ConfigError("a face-aware input is not a model input; use the detector's logits()")

    def __getstate__(self) -> dict[str, Any]:
        # the selector holds a lock and a face finder: a copy (a Ray actor's, a worker
        # process's) makes its own on first use
        return {**self.__dict__, "selector": None}

    def _selector(self) -> FaceSelector:
        with _SELECTOR_LOCK:  # predict prepares images in several threads
            if self.selector is None:
                selector = FaceSelector(self.policy, finder=route_finder(self.policy))
                object.__setattr__(self, "selector", selector)  # a cache, not a field's value
        assert self.selector is not None
        return self.selector

    def to_uint8(self, img: Image.Image) -> np.ndarray:
        header = np.zeros(HEADER, dtype=np.uint8)
        face_input = np.zeros(math.prod(self.faces.array_shape), dtype=np.uint8)
        if not could_hold_route_face(img.size):  # a thumbnail: whole-image member alone
            flat = np.concatenate([header, self.whole.to_uint8(img).ravel(), face_input])
            return pack_square(flat, self.input_size)
        selection = self._selector().largest([img])[0]
        box = selection.face_box
        if box is not None and box.area / (img.width * img.height) >= self.route.min_face_fraction:
            header[0] = 1
            coords = np.array(box.xywh, dtype=np.int64).clip(0, 65535).astype("<u2")
            header[1:9] = coords.view(np.uint8)
            face_input = self.faces.to_uint8(selection.image).ravel()
        flat = np.concatenate([header, self.whole.to_uint8(img).ravel(), face_input])
        return pack_square(flat, self.input_size)

    def unpack(self, batch: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> (headers (B, HEADER) uint8, whole inputs, face inputs), the inputs
        in their own shapes."""
        flat = batch.reshape(batch.shape[0], -1)
        whole_size = math.prod(self.whole.array_shape)
        face_size = math.prod(self.faces.array_shape)
        whole = flat[:, HEADER : HEADER + whole_size].reshape(-1, *self.whole.array_shape)
        faces = flat[:, HEADER + whole_size : HEADER + whole_size + face_size]
        return flat[:, :HEADER].numpy(), whole, faces.reshape(-1, *self.faces.array_shape)

    @staticmethod
    def face_box(header: np.ndarray) -> dict[str, int] | None:
        """The face box a prepared array's header holds, or None when no face joined."""
        if header[0] != 1:
            return None
        x, y, w, h = (int(v) for v in header[1:9].copy().view("<u2"))
        return {"x": x, "y": y, "w": w, "h": h}


def could_hold_route_face(size: tuple[int, int]) -> bool:
    """Whether an image of this (width, height) is searched for a face at all: not when its
    shorter side is below ROUTE_MIN_FACE, the smallest face the route looks for (a CIFAKE
    thumbnail of 32 px; the search there cost 13 ms an image and routed none of 1,000
    CIFAKE thumbnails, BENCHMARKS.md)."""
    return min(size) >= ROUTE_MIN_FACE


def route_finder(policy: FaceCropPolicy, **mtcnn: Any) -> FaceFinder:
    """The finder that decides whether a face fills the image (the policy's kind, searching
    only for large faces on a small copy; see ROUTE_SEARCH_SIZE). ``mtcnn``: further MTCNN
    options (e.g. ``backend``; benchmarks)."""
    options: dict[str, Any] = {"min_face_size": ROUTE_MIN_FACE, "search_size": ROUTE_SEARCH_SIZE}
    if policy.finder != "haar":  # MTCNN's options (the Haar fallback of "auto" takes none)
        options["border_retries"] = ROUTE_BORDER_RETRIES
        options["min_face_share"] = ROUTE_MIN_FACE_SHARE
        options.update(mtcnn)
    return make_face_finder(policy.finder, **options)


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


class FaceAwareDetector(Detector):
    """The whole-image member's verdict, with the face member's score averaged in on images a
    face fills (see the module doc)."""

    kind = KIND
    member_runtime: Runtime = "torch"

    def __init__(
        self,
        whole: Detector,
        faces: Detector,
        route: FaceRoute,
        *,
        bundle_path: Path | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        pre = FaceRoutedPreprocessing.of(
            whole.preprocessing, faces.preprocessing, faces.face_policy, route
        )
        raw = raw or {}
        meta = replace(
            whole.meta,
            architecture=KIND,
            preprocessing=pre,
            temperature=1.0,  # logits() are the combined calibrated logits
            model_kwargs={"whole": whole.name, "faces": faces.name},
            card=raw.get("card") or whole.meta.card,
            metrics=raw.get("metrics") or whole.meta.metrics,
            created=raw.get("created", whole.meta.created),
        )
        super().__init__(meta, bundle_path=bundle_path)
        self.whole, self.faces, self.route, self.raw = whole, faces, route, raw

    @classmethod
    def from_bundle(cls, path: Path, *, device: str) -> FaceAwareDetector:
        raw = read_meta(path)  # verifies the bundle and both members' checksums
        runtime = cls.member_runtime
        whole, faces = (  # each member's own loader verifies its weights
            load_detector(face_aware_member_path(path, raw, r), runtime=runtime, device=device)
            for r in ("whole", "faces")
        )
        return cls(whole, faces, FaceRoute.from_dict(raw["route"]), bundle_path=path, raw=raw)

    # -- what it is ------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        whole = self.whole.capabilities
        two = "this detector combines two models; use its whole-image member (-b {}) for {}"
        name = (self.raw.get("members") or {}).get("whole", {}).get("source_bundle")
        name = name or self.whole.name
        return Capabilities(
            runtime=whole.runtime,
            can_explain=whole.can_explain,
            can_embed=False,
            has_gradients=False,
            why_not={
                "explain": whole.why_not.get("explain", ""),
                "embed": two.format(name, "embeddings and domain models"),
                "gradients": two.format(name, "white-box attacks"),
            },
        )

    @property
    def explained_by(self) -> Detector:
        return self.whole.explained_by

    @property
    def device(self) -> torch.device:
        return self.whole.device

    @property
    def face_policy(self) -> FaceCropPolicy:
        return self.faces.face_policy

    def size_score(self, width: int, height: int) -> float | None:
        return self.whole.size_score(width, height)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "members": {"whole": self.whole.info(), "faces": self.faces.info()},
            "route": self.route.to_dict(),
        }

    # -- scoring ---------------------------------------------------------------------------
    def score_prepared(
        self, arrays: Sequence[np.ndarray] | torch.Tensor, *, batch_size: int = 256
    ) -> PixelScores:
        return PixelScores.concat(
            [
                self._score_batch(stack_arrays(arrays[start : start + batch_size]))
                for start in range(0, len(arrays), batch_size)
            ]
        )

    def _score_batch(self, batch: torch.Tensor) -> PixelScores:
        pre = cast("FaceRoutedPreprocessing", self.preprocessing)
        headers, whole_in, face_in = pre.unpack(batch)
        scores = self.whole.score_prepared(whole_in, batch_size=max(1, len(batch)))
        p = scores.p_fake.astype(np.float64).copy()
        routed = headers[:, 0] == 1
        if routed.any():
            p_face = self.faces.score_prepared(
                face_in[torch.from_numpy(routed)], batch_size=max(1, len(batch))
            )
            p[routed] = self.combine(p[routed], p_face.p_fake)
        boxes = [FaceRoutedPreprocessing.face_box(h) for h in headers]
        return PixelScores(
            p.astype(np.float32),
            scores.domain_score,
            scores.max_crop_p_fake,
            boxes,
            scores.features,  # the whole-image member's: what explained_by embeds
        )

    def combine(self, p_whole: np.ndarray, p_face: np.ndarray) -> np.ndarray:
        """The averaged p(fake) on the whole member's scale (see the module doc)."""
        t_whole, t_face, w = self.whole.threshold, self.faces.threshold, self.route.face_weight
        a = (1 - w) * (_logit(p_whole) - _logit(t_whole)) + w * (_logit(p_face) - _logit(t_face))
        return np.asarray(1.0 / (1.0 + np.exp(-(a + _logit(t_whole)))))

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The combined calibrated logit (temperature 1) for a batch of prepared arrays."""
        p = self._score_batch(batch).p_fake
        return torch.from_numpy(_logit(p).astype(np.float32))

    def image_logits(self, batch: torch.Tensor) -> torch.Tensor:
        return self.logits(batch)


class OnnxFaceAwareDetector(FaceAwareDetector):
    """The face-aware kind with both members on onnxruntime."""

    member_runtime: Runtime = "onnx"
