"""MTCNN's three nets on onnxruntime and its pipeline in numpy: facenet-pytorch's answers
without importing torch.

facenet-pytorch's MTCNN (P-, R- and O-net, weights shipped in its wheel) runs many tiny
convolutions, where PyTorch's per-operator overhead costs more than the arithmetic, and
importing it pulls in torch and torchvision (over 2.5 s of a CLI's start). Here:

- :func:`load_mtcnn_nets` exports the three nets with their shipped weights to ONNX at first
  use (PNet with a dynamic height and width) into ``$FAKESCOPE_CACHE/onnx/mtcnn-<facenet-
  pytorch version>-<hash of its weight files>/``, each file written atomically and listed with
  its sha256 in ``manifest.json`` (written last). Later processes check the hashes and open
  the files with onnxruntime alone; a damaged or incomplete cache is exported again. Only the
  export imports torch.
- :func:`detect_faces` is facenet-pytorch's ``detect_face`` followed by ``MTCNN.detect``
  (largest box first) in numpy, step for step in float32 so that the answers are the same:
  the scale pyramid, the "area" resize (PyTorch's adaptive average pooling: bin i of n over m
  pixels is [floor(i*m/n), ceil((i+1)*m/n)), the sum divided by the bin's height then its
  width), torchvision's ``batched_nms`` (stable descending order, IoU without the +1, the
  per-image coordinate offset below 1,001 boxes and one NMS per image above), facenet's own
  numpy "Min" NMS, ``rerec``, ``pad`` and ``bbreg``. The sums behind the resize are of whole
  pixel values, so an integral image gives them exactly and every crop of stage 2 and 3 is
  one gather.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakescope.atomic import atomic_path, atomic_write_text
from fakescope.cache_dir import default_cache_dir
from fakescope.errors import ConfigError

logger = logging.getLogger(__name__)

NETS = ("pnet", "rnet", "onet")
OUTPUTS = {"pnet": ("reg", "prob"), "rnet": ("reg", "prob"), "onet": ("reg", "points", "prob")}
INPUT_SIZE = {"rnet": 24, "onet": 48}
INPUT_NAME = "image"
MANIFEST = "manifest.json"
OPSET = 17
RUN_BATCH = 512  # crops per R-/O-net run, as facenet-pytorch's fixed_batch_process

Boxes = np.ndarray  # (K, 5) float32: x1, y1, x2, y2, probability
Points = np.ndarray  # (K, 5, 2) float32: the five landmarks (x, y)


def facenet_weights() -> dict[str, Path]:
    """facenet-pytorch's weight files (pnet.pt, rnet.pt, onet.pt), found without importing
    it (its import imports torch and torchvision)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("facenet-pytorch is not installed: pip install --no-deps facenet-pytorch")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    paths = {name: folder / f"{name}.pt" for name in NETS}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(f"facenet-pytorch's MTCNN weights are missing: {', '.join(missing)}")
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_dir() -> Path:
    """The cache folder of the exports of the installed facenet-pytorch's weights."""
    weights = facenet_weights()
    digest = hashlib.sha256()
    for name in NETS:
        digest.update(_sha256(weights[name]).encode())
    version = importlib.metadata.version("facenet-pytorch")
    return default_cache_dir() / "onnx" / f"mtcnn-{version}-{digest.hexdigest()[:16]}"


def export_nets(folder: Path) -> None:
    """Export P-, R- and O-net with facenet-pytorch's weights to ``folder`` (the only step
    that imports torch), then the manifest of their hashes."""
    import warnings

    import torch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    nets: dict[str, tuple[torch.nn.Module, tuple[int, int]]] = {
        "pnet": (PNet(), (24, 24)),
        "rnet": (RNet(), (24, 24)),
        "onet": (ONet(), (48, 48)),
    }
    hashes: dict[str, str] = {}
    for name, (net, (height, width)) in nets.items():
        net.eval()
        axes: dict[str, dict[int, str]] = {INPUT_NAME: {0: "batch"}}
        axes.update({out: {0: "batch"} for out in OUTPUTS[name]})
        if name == "pnet":
            axes[INPUT_NAME].update({2: "height", 3: "width"})
            for out in OUTPUTS[name]:
                axes[out].update({2: "out_height", 3: "out_width"})
        target = folder / f"{name}.onnx"
        with atomic_path(target) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                net,
                (torch.zeros(1, 3, height, width),),
                str(tmp),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUTS[name]),
                dynamic_axes=axes,
                opset_version=OPSET,
            )
        hashes[f"{name}.onnx"] = _sha256(target)
    atomic_write_text(folder / MANIFEST, json.dumps(hashes, indent=1, sort_keys=True))


def _intact(folder: Path) -> bool:
    """True when the manifest lists the three exports and each file has its hash."""
    try:
        hashes = json.loads((folder / MANIFEST).read_text())
        return all(hashes.get(f"{name}.onnx") == _sha256(folder / f"{name}.onnx") for name in NETS)
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class MtcnnNets:
    """The three onnxruntime sessions (one intra-op thread each: the convolutions are tiny)."""

    pnet: Any
    rnet: Any
    onet: Any
    folder: Path
    exported: bool
    """True when this load exported the nets (the cache was empty or damaged)."""


def load_mtcnn_nets(folder: Path | None = None) -> MtcnnNets:
    """The MTCNN sessions from the cache, exported there first when missing or damaged."""
    import onnxruntime as ort

    folder = folder or export_dir()
    exported = False
    if not _intact(folder):
        logger.warning("exporting facenet-pytorch's MTCNN to ONNX (once, seconds) into %s", folder)
        export_nets(folder)
        exported = True
        if not _intact(folder):
            raise ConfigError(f"{folder}: the MTCNN export does not match its manifest")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    sessions = [
        ort.InferenceSession(
            str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for name in NETS
    ]
    pnet, rnet, onet = sessions
    return MtcnnNets(pnet, rnet, onet, folder=folder, exported=exported)


# -- the pipeline ---------------------------------------------------------------------------
_F = np.float32


def _bins(size_in: np.ndarray | int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive pooling bins: [floor(i*m/n), ceil((i+1)*m/n)) for i < n; with an
    array of input sizes, one row per size."""
    i = np.arange(size_out)
    m = np.asarray(size_in, dtype=np.int64)[..., None]
    return (i * m) // size_out, -((-(i + 1) * m) // size_out)


def integral(images: np.ndarray) -> np.ndarray:
    """(N, H+1, W+1, C) summed-area tables of (N, H, W, C) uint8 images: exact integers,
    int32 while the image's total fits (2.5x faster than float64), else int64."""
    n, h, w, c = images.shape
    dtype = np.int32 if h * w * 255 < 2**31 else np.int64
    table = np.zeros((n, h + 1, w + 1, c), dtype=dtype)
    np.cumsum(images, axis=1, dtype=dtype, out=table[:, 1:, 1:])
    np.cumsum(table[:, 1:, 1:], axis=2, out=table[:, 1:, 1:])
    return table


def _area(
    table: np.ndarray,
    index: np.ndarray,
    top: np.ndarray,
    left: np.ndarray,
    height: np.ndarray,
    width: np.ndarray,
    out_h: int,
    out_w: int,
) -> np.ndarray:
    """``interpolate(mode="area")`` of the regions [top, top+height) x [left, left+width) of
    the images ``index`` (of the tables), as (K, out_h, out_w, C) float32: the exact sums,
    divided in float32 by each bin's height, then by its width (as PyTorch does)."""
    ys, ye = _bins(height, out_h)
    xs, xe = _bins(width, out_w)
    y0, y1 = top[:, None] + ys, top[:, None] + ye  # (K, out_h)
    x0, x1 = left[:, None] + xs, left[:, None] + xe  # (K, out_w)
    k = index[:, None, None]
    sums = (
        table[k, y1[:, :, None], x1[:, None, :]]
        - table[k, y0[:, :, None], x1[:, None, :]]
        - table[k, y1[:, :, None], x0[:, None, :]]
        + table[k, y0[:, :, None], x0[:, None, :]]
    ).astype(_F)
    kh = (ye - ys).astype(_F)[:, :, None, None]
    kw = (xe - xs).astype(_F)[:, None, :, None]
    out: np.ndarray = sums / kh / kw
    return out


def area_resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, C) uint8 images resized to ``size`` (h, w) as PyTorch's
    ``interpolate(mode="area")`` does (float32, NHWC)."""
    n, h, w, _ = images.shape
    zeros = np.zeros(n, dtype=np.int64)
    full = np.ones(n, dtype=np.int64)
    return _area(integral(images), np.arange(n), zeros, zeros, full * h, full * w, *size)


def _normalized_nchw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(((pixels - _F(127.5)) * _F(0.0078125)).transpose(0, 3, 1, 2))


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """torchvision's CPU ``nms``: indices kept, by decreasing score (ties: lower index first),
    IoU of (x2 - x1) * (y2 - y1) areas in float32, suppressed when above ``threshold``."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    zero = _F(0)
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[rank + 1 :]
        rest = rest[~suppressed[rest]]
        if not len(rest):
            continue
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[overlap.astype(np.float64) > threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float
) -> np.ndarray:
    """torchvision's ``batched_nms`` on the CPU: NMS within each group, indices by decreasing
    score. Up to 1,000 boxes each group's boxes are shifted apart (by group * (max + 1), in
    float32) and one NMS runs; above, one NMS per group, and the kept boxes are sorted by
    score stably (torchvision's sort there is PyTorch's unstable one: the same boxes and
    scores, equal scores possibly in another order)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if boxes.size > 4000:
        mask = np.zeros(len(scores), dtype=bool)
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            mask[members[nms(boxes[members], scores[members], threshold)]] = True
        kept = np.flatnonzero(mask)
        return kept[np.argsort(-scores[kept], kind="stable")]
    offsets = groups.astype(_F) * (boxes.max() + _F(1))
    return nms(boxes + offsets[:, None], scores, threshold)


def nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy`` with the "Min" overlap (intersection over the smaller
    box, areas with +1), as it is written."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i].copy() for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = []
    while order.size > 0:
        i = order[-1]
        pick.append(i)
        idx = order[0:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        inter = w * h
        order = order[np.where(inter / np.minimum(area[i], area[idx]) <= threshold)]
    return np.asarray(pick, dtype=np.int64)


def batched_nms_min(
    boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, threshold: float
) -> np.ndarray:
    """facenet-pytorch's ``batched_nms_numpy`` (groups shifted apart, then "Min" NMS)."""
    if boxes.size == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = groups.astype(_F) * (boxes.max() + _F(1))
    return nms_min(boxes + offsets[:, None], scores, threshold)


def rerec(boxes: np.ndarray) -> np.ndarray:
    """Boxes made square about their centre (side: the longer one), in place."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * _F(0.5) - side * _F(0.5)
    boxes[:, 1] = boxes[:, 1] + h * _F(0.5) - side * _F(0.5)
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Boxes moved by the nets' regression (fractions of the +1 width and height), in place."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0] = boxes[:, 0] + reg[:, 0] * w
    boxes[:, 1] = boxes[:, 1] + reg[:, 1] * h
    boxes[:, 2] = boxes[:, 2] + reg[:, 2] * w
    boxes[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return boxes


def pad(boxes: np.ndarray, w: int, h: int) -> tuple[np.ndarray, ...]:
    """(y, ey, x, ex): boxes truncated to ints, 1-based starts clamped to >= 1 and ends to
    the image."""
    ints = np.trunc(boxes[:, :4]).astype(np.int32)
    x, y, ex, ey = (ints[:, i] for i in range(4))
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def generate_boxes(
    reg: np.ndarray, probs: np.ndarray, scale: float, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """PNet's windows with a face probability >= threshold: (K, 9) float32 rows x1, y1, x2, y2,
    p, reg (4), in image pixels, and each row's image index."""
    image, row, col = np.nonzero(probs >= threshold)
    score = probs[image, row, col]
    regs = reg[image, :, row, col]
    cells = np.stack([col, row], axis=1).astype(_F)
    q1 = np.floor((2 * cells + 1) / _F(scale))
    q2 = np.floor((2 * cells + 12 - 1 + 1) / _F(scale))
    return np.concatenate([q1, q2, score[:, None], regs], axis=1).astype(_F), image


def _run(session: Any, batch: np.ndarray) -> list[np.ndarray]:
    parts = [
        session.run(None, {INPUT_NAME: batch[i : i + RUN_BATCH]})
        for i in range(0, len(batch), RUN_BATCH)
    ]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def _crops(
    nets: MtcnnNets,
    net: str,
    table: np.ndarray,
    boxes: np.ndarray,
    image_inds: np.ndarray,
    w: int,
    h: int,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The boxes' crops (``pad``), area-resized to the net's input, and its outputs; boxes
    whose crop is empty are left out (facenet-pytorch fails on those)."""
    y, ey, x, ex = pad(boxes, w, h)
    valid = np.flatnonzero((ey > y - 1) & (ex > x - 1))
    size = INPUT_SIZE[net]
    top, left = (y[valid] - 1).astype(np.int64), (x[valid] - 1).astype(np.int64)
    heights, widths = ey[valid] - top, ex[valid] - left
    if not len(valid):
        return valid, []
    pixels = _area(table, image_inds[valid], top, left, heights, widths, size, size)
    return valid, _run(getattr(nets, net), _normalized_nchw(pixels))


def detect_faces(
    nets: MtcnnNets,
    images: np.ndarray,
    min_face_size: float,
    thresholds: tuple[float, float, float],
    factor: float,
) -> list[tuple[Boxes, Points]]:
    """facenet-pytorch's ``MTCNN.detect(images, landmarks=True)`` on (N, H, W, 3) uint8
    images of one size: per image, its boxes (x1, y1, x2, y2, p), largest first, and their
    landmarks (empty arrays: no face)."""
    n, h, w, _ = images.shape
    table = integral(images)
    every = np.arange(n)
    m = 12.0 / min_face_size
    short = min(h, w) * m
    scales = []
    scale = m
    while short >= 12:
        scales.append(scale)
        scale *= factor
        short *= factor

    # first stage: PNet over the pyramid, NMS within each scale and image, then each image
    found, found_inds = [], []
    zeros, ones = np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    for scale in scales:
        size = (int(h * scale + 1), int(w * scale + 1))
        pixels = _area(table, every, zeros, zeros, ones * h, ones * w, *size)
        reg, probs = nets.pnet.run(None, {INPUT_NAME: _normalized_nchw(pixels)})
        boxes, inds = generate_boxes(reg, probs[:, 1], scale, thresholds[0])
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
        found.append(boxes[pick])
        found_inds.append(inds[pick])
    boxes = np.concatenate(found) if found else np.zeros((0, 9), dtype=_F)
    image_inds = np.concatenate(found_inds) if found else np.zeros(0, dtype=np.int64)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = np.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ],
        axis=1,
    )
    boxes = rerec(boxes)

    # second stage: RNet on 24 px crops
    if len(boxes):
        valid, outputs = _crops(nets, "rnet", table, boxes, image_inds, w, h)
        boxes, image_inds = boxes[valid], image_inds[valid]
        reg, prob = outputs or (np.zeros((0, 4), _F), np.zeros((0, 2), _F))
        score = prob[:, 1]
        keep = score > thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        image_inds, reg = image_inds[keep], reg[keep]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, reg = boxes[pick], image_inds[pick], reg[pick]
        boxes = rerec(bbreg(boxes, reg))

    # third stage: ONet on 48 px crops, landmarks, "Min" NMS
    points = np.zeros((0, 5, 2), dtype=_F)
    if len(boxes):
        valid, outputs = _crops(nets, "onet", table, boxes, image_inds, w, h)
        boxes, image_inds = boxes[valid], image_inds[valid]
        reg, marks, prob = outputs or (
            np.zeros((0, 4), _F),
            np.zeros((0, 10), _F),
            np.zeros((0, 2), _F),
        )
        score = prob[:, 1]
        keep = score > thresholds[2]
        marks = marks[keep]
        boxes = np.concatenate([boxes[keep, :4], score[keep, None]], axis=1)
        image_inds, reg = image_inds[keep], reg[keep]
        w_i = boxes[:, 2] - boxes[:, 0] + 1
        h_i = boxes[:, 3] - boxes[:, 1] + 1
        points_x = w_i[:, None] * marks[:, :5] + boxes[:, 0, None] - 1
        points_y = h_i[:, None] * marks[:, 5:10] + boxes[:, 1, None] - 1
        points = np.stack([points_x, points_y], axis=2)
        boxes = bbreg(boxes, reg)
        pick = batched_nms_min(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    out = []
    for index in range(n):
        box, point = boxes[image_inds == index], points[image_inds == index]
        order = np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]
        out.append((box[order], point[order]))
    return out


_shared: dict[Path, MtcnnNets] = {}
_shared_lock = threading.Lock()


def shared_mtcnn_nets() -> MtcnnNets:
    """The process's MTCNN sessions (loaded, or exported, once; onnxruntime's sessions may be
    run from several threads)."""
    folder = export_dir()
    with _shared_lock:
        if folder not in _shared:
            _shared[folder] = load_mtcnn_nets(folder)
        return _shared[folder]
