"""Faces: find them (MTCNN, or OpenCV's Haar cascade as a fallback) and crop them by a policy.

Deepfakes are mostly faces, and a detector trained on face crops must see the same kind of
crop at training, evaluation and prediction time. This module is that one place:

- :class:`FaceFinder` finds faces: ``find(images) -> list[list[FaceBox]]``, one list per
  image, boxes in the ORIGINAL image's pixels, clamped inside it, largest first.
  :func:`make_face_finder` builds one by kind: ``"mtcnn"`` (facenet-pytorch's nets, whose
  weights ship inside its wheel, so it works offline; on the CPU run on onnxruntime with the
  same answers, :mod:`fakescope.mtcnn_onnx`), ``"haar"`` (OpenCV, always installed) or
  ``"auto"`` (MTCNN when facenet-pytorch is importable, else Haar with a note saying why).
- :class:`FaceCropPolicy` says how a box becomes a crop (margin, square, minimum face size,
  which finder, whether to level the eyes); it round-trips through a bundle's JSON with
  ``to_dict``/``from_dict``.
- :func:`crop_face` cuts one box with a policy; :func:`select_largest_faces` picks the
  largest face of each image or falls back to the whole image with a note, which is what a
  per-image or per-frame verdict needs.

Why MTCNN is tuned the way it is: its first stage scans a 12x12 window over an image
pyramid, so a face LARGER than the image (a close-up crop where forehead and chin are cut
off) is never seen whole and MTCNN finds nothing. Images with no face at the first pass are
therefore searched again with a mirrored border around them (the face then fits inside the
padded image), only for faces at least half the image's size, which keeps the retry cheap.
On 1,000 DFDC close-ups zoomed in to 65 % this lifts the detection rate from 19 % to 89 %,
on the crops as they are from 98.9 % to 99.7 % (BENCHMARKS.md, "Face finder").
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps

from fakescope.errors import ConfigError
from fakescope.face_box import Box, Eyes, FaceBox
from fakescope.face_box import Point as Point
from fakescope.face_box import face_box_dict as face_box_dict

logger = logging.getLogger(__name__)

FINDER_KINDS = ("auto", "mtcnn", "haar")
MTCNN_BACKENDS = ("onnx", "torch")
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# Detection runs on a copy no larger than this (long side, px): big frames only cost time,
# and a face under ~20 px at this size is too small for a detector to judge anyway.
SEARCH_SIZE = 640
HAAR_FALLBACK_NOTE = (
    "facenet-pytorch is not installed, so faces are found by OpenCV's Haar cascade, which "
    "misses faces that fill the frame (pip install --no-deps facenet-pytorch)"
)


class FaceFinder(ABC):
    """Finds faces; one small interface so callers never care which detector runs."""

    kind: ClassVar[str]
    note: str | None = None
    """Set when this finder stands in for a better one (the one-line reason why)."""

    @abstractmethod
    def find(self, images: Sequence[Image.Image]) -> list[list[FaceBox]]:
        """One list per image of the faces in it, largest first (empty: no face)."""

    def find_one(self, image: Image.Image) -> list[FaceBox]:
        return self.find([image])[0]


def _search_copy(image: Image.Image, search_size: int) -> tuple[np.ndarray, float]:
    """An RGB uint8 array no larger than ``search_size`` and the scale applied to get it."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    scale = min(1.0, search_size / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        scale = rgb.width / image.width
    return np.asarray(rgb), scale


def _to_original(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    scale: float,
    size: tuple[int, int],
    confidence: float | None,
    eyes: Eyes | None = None,
) -> FaceBox | None:
    """A box found on the search copy, in original pixels and clamped inside the image; None
    when its centre lies outside the image (a mirrored copy of a face in the added border).
    ``eyes`` (on the search copy too) are scaled alike but not clamped: an eye of a face that
    overflows the frame may lie outside it, and the eye line is still right."""
    width, height = size
    x1, y1, x2, y2 = (v / scale for v in (x1, y1, x2, y2))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if not (0 <= cx < width and 0 <= cy < height):
        return None
    left, top = max(0, round(x1)), max(0, round(y1))
    right, bottom = min(width, round(x2)), min(height, round(y2))
    if right - left < 1 or bottom - top < 1:
        return None
    if eyes is not None:
        eyes = ((eyes[0][0] / scale, eyes[0][1] / scale), (eyes[1][0] / scale, eyes[1][1] / scale))
    return FaceBox(left, top, right - left, bottom - top, confidence, eyes)


def _equalized_gray(copy: tuple[np.ndarray, float]) -> tuple[np.ndarray, float]:
    """The search copy as histogram-equalized grey in three channels (what MTCNN takes)."""
    gray = ImageOps.equalize(Image.fromarray(copy[0]).convert("L"))
    return np.repeat(np.asarray(gray)[..., None], 3, axis=2), copy[1]


def _largest_first(boxes: list[FaceBox]) -> list[FaceBox]:
    return sorted(boxes, key=lambda b: (-b.area, -(b.confidence or 0.0), b.x, b.y))


class MtcnnFaceFinder(FaceFinder):
    """MTCNN (facenet-pytorch's nets and weights) on the CPU, batched over images of the same
    size.

    ``backend``: "onnx" (the default on the CPU) runs the three nets on onnxruntime and the
    pipeline in numpy (:mod:`fakescope.mtcnn_onnx`: the same boxes, probabilities and
    landmarks, without importing torch once the nets are exported to the cache); "torch"
    runs facenet-pytorch itself (the default on a CUDA ``device``, and the reference). When
    the ONNX nets cannot be exported or opened, the finder falls back to "torch" and logs why
    (``backend`` then says "torch", ``backend_note`` the reason).

    ``min_face_size`` (px on the search copy), ``thresholds`` (P-, R-, O-net) and ``factor``
    (pyramid step) are MTCNN's own. ``border_retries``: for images where nothing was found,
    search again with a mirrored border of each ratio of the image's long side added on every
    side, for faces of at least ``retry_min_face`` times the image's short side (a face that
    overflows the frame is large, so the small scales of the pyramid are skipped).
    ``min_face_share``: the first pass, too, looks only for faces of about this share of the
    search copy's short side or more (0: down to ``min_face_size`` whatever the image); the
    pyramid's levels for smaller windows are dropped whole, so the levels kept are exactly
    those of a ``min_face_size`` search (see :meth:`first_min_face`).
    ``gray_retry``: last, search images still without a face once more in histogram-
    equalized grey. It recovers strongly colour-graded or dim portraits (a blue-lit face, a
    red light projection: 3 of the 8 StyleGAN-set portraits the other passes miss, 99.4 ->
    99.6 %) but adds false boxes on photos without faces (5.8 -> 7.5 %), so it is off.
    ``threads``: with the torch backend, torch intra-op threads while detecting (restored
    afterwards; None leaves them alone). MTCNN runs many tiny convolutions that gain nothing
    from several threads and lose badly when the cores are busy: on the shared 2-core VM,
    640x360 frames went from 19 frames/s with one thread to 2-3 with two. (The ONNX
    backend's sessions run on one intra-op thread for the same reason.)
    Not thread-safe (the retries change the MTCNN's minimum face size): one per thread.
    """

    kind = "mtcnn"

    def __init__(
        self,
        *,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        border_retries: tuple[float, ...] = (0.25, 0.5, 0.75),
        retry_min_face: float = 0.5,
        min_face_share: float = 0.0,
        search_size: int = SEARCH_SIZE,
        batch_size: int = 16,
        device: str = "cpu",
        threads: int | None = 1,
        gray_retry: bool = False,
        backend: str | None = None,
    ) -> None:
        backend = backend or ("onnx" if device == "cpu" else "torch")
        if backend not in MTCNN_BACKENDS:
            raise ConfigError(
                f"MTCNN backend must be one of {', '.join(MTCNN_BACKENDS)}, got {backend!r}"
            )
        if backend == "onnx" and device != "cpu":
            raise ConfigError(f"the MTCNN onnx backend runs on the CPU only, not on {device!r}")
        self.backend = backend
        self.backend_note: str | None = None
        self.threads = threads
        self.gray_retry = gray_retry
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.border_retries = border_retries
        self.retry_min_face = retry_min_face
        self.min_face_share = min_face_share
        self.factor = factor
        self.search_size = search_size
        self.batch_size = batch_size
        self._nets: Any = None
        self._mtcnn: Any = None
        if backend == "onnx":
            try:
                from fakescope.mtcnn_onnx import shared_mtcnn_nets

                self._nets = shared_mtcnn_nets()
            except Exception as exc:  # onnxruntime, the export or the cache: any failure
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                self.backend_note = (
                    f"MTCNN runs on facenet-pytorch: its ONNX nets failed ({reason})"
                )
                logger.warning(self.backend_note)
                self.backend = "torch"
        if self.backend == "torch":
            from facenet_pytorch import MTCNN  # lazy: torch-heavy, and optional

            self._mtcnn = MTCNN(
                min_face_size=min_face_size,
                thresholds=list(thresholds),
                factor=factor,
                select_largest=True,
                keep_all=True,
                device=device,
            )

    def find(self, images: Sequence[Image.Image]) -> list[list[FaceBox]]:
        if self.backend == "onnx":
            return self._find(images)
        import torch  # the torch backend only

        if self.threads is None or self.threads == torch.get_num_threads():
            return self._find(images)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._find(images)
        finally:
            torch.set_num_threads(previous)

    def _find(self, images: Sequence[Image.Image]) -> list[list[FaceBox]]:
        copies = [_search_copy(image, self.search_size) for image in images]
        found: list[list[FaceBox]] = [[] for _ in images]
        pending = list(range(len(images)))
        passes: list[tuple[bool, float]] = [(False, b) for b in (0.0, *self.border_retries)]
        if self.gray_retry:
            passes.append((True, 0.0))
        for gray, border in passes:
            if not pending:
                break
            if gray:
                copies = [_equalized_gray(c) if i in pending else c for i, c in enumerate(copies)]
            for index, boxes in self._detect(copies, pending, border).items():
                scale, size = copies[index][1], images[index].size
                mapped = [_to_original(*b[:4], scale, size, b[4], b[5]) for b in boxes]
                found[index] = _largest_first([b for b in mapped if b is not None])
            pending = [i for i in pending if not found[i]]
        return found

    def _detect(
        self, copies: list[tuple[np.ndarray, float]], indices: list[int], border: float
    ) -> dict[int, list[tuple[float, float, float, float, float, Eyes]]]:
        """Raw boxes (x1, y1, x2, y2 on the unpadded search copy, p, eyes) per image index."""
        groups: dict[tuple[int, int], list[int]] = {}
        for index in indices:
            groups.setdefault(copies[index][0].shape[:2], []).append(index)
        out: dict[int, list[tuple[float, float, float, float, float, Eyes]]] = {}
        for (height, width), members in groups.items():
            pad = round(border * max(height, width))
            min_face: float = self.min_face_size
            if border:
                min_face = max(min_face, round(self.retry_min_face * min(height, width)))
            else:
                min_face = self.first_min_face(min(height, width))
            # facenet-pytorch's pyramid is empty (and it fails) below the minimum face size.
            if min(height, width) + 2 * pad < min_face:
                continue
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                batch = np.stack([copies[i][0] for i in chunk])
                if pad:
                    batch = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "reflect")
                boxes, probs, points = self._detect_batch(batch, min_face)
                for index, image_boxes, image_probs, image_points in zip(
                    chunk, boxes, probs, points, strict=True
                ):
                    if image_boxes is None or not len(image_boxes):
                        continue
                    out[index] = [
                        (x1 - pad, y1 - pad, x2 - pad, y2 - pad, float(p), _eyes(marks, pad))
                        for (x1, y1, x2, y2), p, marks in zip(
                            image_boxes, image_probs, image_points, strict=True
                        )
                    ]
        return out

    def _detect_batch(self, batch: np.ndarray, min_face: float) -> tuple[Any, Any, Any]:
        """MTCNN's boxes (x1, y1, x2, y2), probabilities and landmarks per image of a (N, H,
        W, 3) uint8 batch, largest first (None or empty: no face)."""
        if self._nets is not None:
            from fakescope.mtcnn_onnx import detect_faces

            found = detect_faces(self._nets, batch, min_face, self.thresholds, self.factor)
            return (
                [b[:, :4] for b, _ in found],
                [b[:, 4] for b, _ in found],
                [p for _, p in found],
            )
        self._mtcnn.min_face_size = min_face
        try:
            return self._mtcnn.detect(batch, landmarks=True)
        finally:
            self._mtcnn.min_face_size = self.min_face_size

    def first_min_face(self, short_side: int) -> float:
        """The first pass's minimum face (px) on a search copy of this short side:
        ``min_face_size / factor**k`` for the largest k that stays within
        ``min_face_share * short_side``. MTCNN's pyramid scales are then ``12 / min_face_size
        * factor**(k + i)``: the levels of a ``min_face_size`` search less its first k."""
        target = self.min_face_share * short_side
        if target <= self.min_face_size:
            return self.min_face_size
        k = math.floor(math.log(target / self.min_face_size) / -math.log(self.factor))
        return self.min_face_size / self.factor**k


def _eyes(landmarks: np.ndarray, pad: int) -> Eyes:
    """MTCNN's first two landmarks (the eye on the image's left, then on its right), on the
    unpadded search copy."""
    left, right = landmarks[0], landmarks[1]
    return (
        (float(left[0]) - pad, float(left[1]) - pad),
        (float(right[0]) - pad, float(right[1]) - pad),
    )


class HaarFaceFinder(FaceFinder):
    """OpenCV's frontal-face Haar cascade: always available, fast, but it misses faces that
    fill the frame, profiles and tilted heads. Kept as the fallback."""

    kind = "haar"

    def __init__(
        self,
        *,
        min_neighbors: int = 5,
        scale_factor: float = 1.1,
        min_face_size: int = 24,
        search_size: int = SEARCH_SIZE,
    ) -> None:
        import cv2  # heavy: OpenCV, only for the Haar finder

        path = os.path.join(cv2.data.haarcascades, HAAR_CASCADE)  # type: ignore[attr-defined]  # not in OpenCV's stubs
        self._cv2 = cv2
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ConfigError(
                f"{path}: OpenCV's face cascade cannot be loaded; reinstall opencv-python-headless"
            )
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.min_face_size = min_face_size
        self.search_size = search_size

    def find(self, images: Sequence[Image.Image]) -> list[list[FaceBox]]:
        return [self._find(image) for image in images]

    def _find(self, image: Image.Image) -> list[FaceBox]:
        cv2 = self._cv2
        rgb, scale = _search_copy(image, self.search_size)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = self.cascade.detectMultiScale(
            cv2.equalizeHist(gray),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face_size, self.min_face_size),
        )
        boxes = [
            _to_original(x, y, x + w, y + h, scale, image.size, None)
            for x, y, w, h in np.asarray(faces).reshape(-1, 4).tolist()
        ]
        return _largest_first([b for b in boxes if b is not None])


def mtcnn_available() -> bool:
    """True when facenet-pytorch (and so MTCNN with its shipped weights) is installed; found
    without importing it (its import imports torch and torchvision)."""
    try:
        return importlib.util.find_spec("facenet_pytorch") is not None
    except (ImportError, ValueError):
        return False


_warned_fallback = False


def make_face_finder(kind: str = "auto", **options: Any) -> FaceFinder:
    """A face finder by kind: "mtcnn", "haar", or "auto" (MTCNN if facenet-pytorch is
    installed, else the Haar cascade, whose ``note`` says why and which is logged once).

    ``options`` go to the finder's constructor (e.g. ``border_retries=()`` for plain MTCNN).
    """
    global _warned_fallback
    if kind not in FINDER_KINDS:
        raise ConfigError(f"face finder must be one of {', '.join(FINDER_KINDS)}, got {kind!r}")
    if kind == "haar":
        return HaarFaceFinder(**options)
    if mtcnn_available():
        return MtcnnFaceFinder(**options)
    if kind == "mtcnn":
        raise ConfigError(
            "the MTCNN face finder needs facenet-pytorch: pip install --no-deps facenet-pytorch "
            "(its metadata pins an old torch; its weights ship inside the wheel)"
        )
    finder = HaarFaceFinder()
    finder.note = HAAR_FALLBACK_NOTE
    if not _warned_fallback:
        logger.warning(HAAR_FALLBACK_NOTE)
        _warned_fallback = True
    return finder


@dataclass(frozen=True)
class FaceCropPolicy:
    """How a face box becomes the crop a detector sees; stored in the bundle of a detector
    trained on face crops so that training, evaluation and prediction crop alike.

    ``margin``: added on each side, as a fraction of the box side (0.25: the crop is 1.5x
    the face), because the blending seams of a face swap lie at the face's border.
    ``square``: a square crop of the box's longer side (with margin), moved to stay inside
    the image, so resizing to the model's square input does not distort the face.
    ``min_size``: faces whose longer side is under this many pixels (original image) are
    ignored: too few pixels for a verdict, and often false detections.
    ``finder``: which face finder ("auto", "mtcnn", "haar").
    ``align``: level the eyes. The crop region (as above) is turned about its centre by the
    face's roll (:attr:`FaceBox.roll`), so the eye line is horizontal in the crop and every
    face reaches the detector upright; what the turn brings in from outside the image is
    mirrored from the border. Faces without eye landmarks (the Haar cascade's) and rolls
    under 1 degree are cropped unturned. Off by default, and for bundles that predate it.
    """

    margin: float = 0.25
    square: bool = True
    min_size: int = 24
    finder: str = "auto"
    align: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.margin <= 2:
            raise ConfigError(f"face crop margin must be within 0..2, got {self.margin}")
        if self.min_size < 1:
            raise ConfigError(f"face crop min_size must be >= 1 px, got {self.min_size}")
        if self.finder not in FINDER_KINDS:
            raise ConfigError(
                f"face crop finder must be one of {', '.join(FINDER_KINDS)}, got {self.finder!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_identity(self) -> dict[str, Any]:
        """The settings that decide the crops, for cache keys: ``align`` only when on, so
        face crops cached before it existed (all unturned) keep their keys."""
        identity = self.to_dict()
        if not self.align:
            del identity["align"]
        return identity

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaceCropPolicy:
        """The policy from a bundle's JSON; an unknown key is refused (it would mean a crop
        this version cannot reproduce), missing keys take their defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown face crop setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


@dataclass(frozen=True)
class FaceCrop:
    """A face cut out of an image: the crop, the face box and the crop's region (x, y, w, h),
    both in the original image's pixels; ``angle``: degrees the region was turned about its
    centre to level the eyes (policy ``align``; 0: cut as it is)."""

    image: Image.Image
    face_box: FaceBox
    crop_box: Box
    angle: float = 0.0


MIN_ROLL = 1.0
"""Degrees: a face rolled less than this is cropped unturned (resampling would only blur)."""


def crop_region(box: FaceBox | Box, size: tuple[int, int], policy: FaceCropPolicy) -> Box:
    """The region (x, y, w, h) of an image of ``size`` that ``policy`` crops around ``box``.

    Square: side max(w, h) * (1 + 2 * margin), at most the image's short side, centred on the
    face and shifted (not shrunk) to stay inside the image, so the crop stays square.
    Otherwise: the box grown by the margin on each side, clamped to the image.
    """
    x, y, w, h = box.xywh if isinstance(box, FaceBox) else box
    width, height = size
    if policy.square:
        side = min(round(max(w, h) * (1 + 2 * policy.margin)), width, height)
        cx, cy = x + w / 2, y + h / 2
        left = int(min(max(cx - side / 2, 0), width - side))
        top = int(min(max(cy - side / 2, 0), height - side))
        return (left, top, side, side)
    left = max(0, round(x - w * policy.margin))
    top = max(0, round(y - h * policy.margin))
    right = min(width, round(x + w * (1 + policy.margin)))
    bottom = min(height, round(y + h * (1 + policy.margin)))
    return (left, top, right - left, bottom - top)


def crop_face(image: Image.Image, box: FaceBox | Box, policy: FaceCropPolicy) -> FaceCrop:
    """Cut ``box`` out of ``image`` with ``policy`` (see :func:`crop_region`), turned to
    level the eyes when the policy aligns and the box has them."""
    face = box if isinstance(box, FaceBox) else FaceBox(*box)
    region = crop_region(face, image.size, policy)
    left, top, w, h = region
    roll = face.roll if policy.align else 0.0
    if abs(roll) < MIN_ROLL:
        return FaceCrop(image.crop((left, top, left + w, top + h)), face, region)
    return FaceCrop(_turned_crop(image, region, roll), face, region, roll)


def _turned_crop(image: Image.Image, region: Box, degrees: float) -> Image.Image:
    """The ``region`` (x, y, w, h) of ``image`` turned by ``degrees`` about its centre (the
    content turns the other way, so a face rolled by ``degrees`` comes out level); pixels
    from beyond the image are mirrored from its border (no black corners for a detector to
    read as a trace)."""
    import cv2  # heavy: OpenCV, only for this finder

    left, top, w, h = region
    cx, cy = left + w / 2, top + h / 2
    # turn the content by ``degrees`` anticlockwise about the region's centre, then move
    # that centre to the middle of the (w, h) output
    to_crop = cv2.getRotationMatrix2D((cx, cy), degrees, 1.0)
    to_crop[:, 2] += np.array([w / 2 - cx, h / 2 - cy])
    pixels = np.asarray(image if image.mode in ("RGB", "L") else image.convert("RGB"))
    turned = cv2.warpAffine(
        pixels,
        to_crop,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return Image.fromarray(turned)


@dataclass(frozen=True)
class FaceSelection:
    """What to score for one image: the largest face's crop, or the whole image when no face
    was found (``face_box`` None and ``note`` saying so). ``crop_box`` is the region of the
    original image that ``image`` shows (turned by ``angle`` degrees about its centre when
    the policy levels the eyes); ``faces_found`` counts faces of at least min_size."""

    image: Image.Image
    face_box: FaceBox | None
    crop_box: Box
    faces_found: int
    note: str | None = None
    angle: float = 0.0

    def report(self) -> dict[str, Any]:
        """The fields a result row carries: ``face_box`` [x, y, w, h] or None, and the note."""
        box = None if self.face_box is None else list(self.face_box.xywh)
        return {"face_box": box, "faces_found": self.faces_found, "note": self.note}


NO_FACE_NOTE = "no face found; the whole image was scored instead"


def usable_faces(boxes: Sequence[FaceBox], policy: FaceCropPolicy) -> list[FaceBox]:
    """The boxes big enough for ``policy`` (longer side >= min_size), largest first."""
    return [b for b in boxes if max(b.w, b.h) >= policy.min_size]


def select_largest_faces(
    images: Sequence[Image.Image],
    finder: FaceFinder,
    policy: FaceCropPolicy | None = None,
) -> list[FaceSelection]:
    """For each image, the crop of its largest face, or the whole image with a note when it
    has none (so a verdict is always given, and it says what it is about):
    :meth:`FaceSelector.largest` with ``finder``."""
    return FaceSelector(policy, finder).largest(images)


def select_largest_face(
    image: Image.Image, finder: FaceFinder, policy: FaceCropPolicy | None = None
) -> FaceSelection:
    """:func:`select_largest_faces` for one image."""
    return select_largest_faces([image], finder, policy)[0]


# -- one finder per process, and what scoring faces needs ----------------------------------
_shared: dict[str, tuple[FaceFinder, threading.Lock]] = {}
_shared_lock = threading.Lock()


def shared_face_finder(kind: str = "auto") -> tuple[FaceFinder, threading.Lock]:
    """The process's face finder of ``kind``, created on first use (MTCNN loads its weights
    once per process, not once per image or request), with the lock that serializes its use
    (a finder is not thread-safe)."""
    with _shared_lock:
        if kind not in _shared:
            _shared[kind] = (make_face_finder(kind), threading.Lock())
        return _shared[kind]


class FaceSelector:
    """Picks what a face verdict scores, by a policy, with the process's shared finder:
    :meth:`largest` (one selection per image) or :meth:`every` (one per face). Thread-safe.

    ``finder`` replaces the shared finder (tests, benchmarks)."""

    def __init__(self, policy: FaceCropPolicy | None = None, finder: FaceFinder | None = None):
        self.policy = policy or FaceCropPolicy()
        self._finder = finder
        self._lock = threading.Lock()

    def _find(self, images: Sequence[Image.Image]) -> list[list[FaceBox]]:
        if self._finder is not None:
            finder, lock = self._finder, self._lock
        else:
            finder, lock = shared_face_finder(self.policy.finder)
        with lock:
            return finder.find(images)

    @property
    def finder_note(self) -> str | None:
        """Why the finder is a stand-in (Haar without facenet-pytorch), if it is."""
        finder = self._finder or shared_face_finder(self.policy.finder)[0]
        return finder.note

    def largest(self, images: Sequence[Image.Image]) -> list[FaceSelection]:
        """Per image, the crop of its largest usable face, or the whole image with a note."""
        return [self._select(image, boxes, 1)[0] for image, boxes in self._found(images)]

    def every(self, images: Sequence[Image.Image]) -> list[list[FaceSelection]]:
        """Per image, one selection per usable face (largest first), or [the whole image
        with a note] when it has none."""
        return [self._select(image, boxes) for image, boxes in self._found(images)]

    def _found(self, images: Sequence[Image.Image]) -> list[tuple[Image.Image, list[FaceBox]]]:
        if not images:
            return []
        found = self._find(images)
        return [(img, usable_faces(b, self.policy)) for img, b in zip(images, found, strict=True)]

    def _select(
        self, image: Image.Image, faces: list[FaceBox], count: int | None = None
    ) -> list[FaceSelection]:
        """Crops of the first ``count`` faces (all: None), each reporting how many were found;
        without faces, the whole image with a note."""
        if not faces:
            whole = (0, 0, image.width, image.height)
            return [FaceSelection(image, None, whole, 0, NO_FACE_NOTE)]
        crops = [crop_face(image, face, self.policy) for face in faces[:count]]
        return [
            FaceSelection(c.image, c.face_box, c.crop_box, len(faces), angle=c.angle) for c in crops
        ]
