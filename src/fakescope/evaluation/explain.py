"""Grad-CAM for the one-logit detectors: where in an image the evidence for "fake" lies.

Grad-CAM (Selvaraju et al., 2017) weights a stage's feature maps by the spatial mean of the
logit's gradient and keeps the positive part. With several stages the per-stage maps, each
scaled to [0, 1] at the input size, are averaged ("multi-layer" Grad-CAM): deep stages say
what, shallow ones where. Maps are at the model's input size, i.e. on the image as the model
saw it after the bundle's resize.

Figures are drawn on matplotlib's Agg canvas through ``Figure`` directly (no pyplot).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from torch import nn

from fakescope.data.decode import load_image
from fakescope.data.sources import read_item_bytes, split_item_path
from fakescope.errors import ConfigError, ImageError
from fakescope.models.registry import feature_module_names

if TYPE_CHECKING:
    from fakescope.detectors import Detector
    from fakescope.faces import FaceBox, FaceSelector

DEFAULT_BATCH_SIZE = 16
MIN_DISPLAY_SIZE = 128  # 32 px inputs are unreadable at their own size
MAX_DISPLAY_SIZE = 1280  # px, longer side: overlays of large photos stay viewable
DPI = 110
GALLERY_ROWS = (
    "true positives",
    "false positives",
    "true negatives",
    "false negatives",
    "most confident mistakes",
)


# -- Grad-CAM ------------------------------------------------------------------------------
def resolve_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """The module names to explain: ``layers`` checked, or the deepest stage by default."""
    stages = feature_module_names(model)
    if not layers:
        return stages[-1:]
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules or not name]
    if unknown:
        raise ConfigError(
            f"no module named {', '.join(map(repr, unknown))} in {type(model).__name__}; "
            f"its stages are {', '.join(stages)}"
        )
    return list(dict.fromkeys(layers))


@contextmanager
def _captured_outputs(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each named module's output during a forward pass; the hooks never outlive it."""
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> torch.Tensor:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                raise ConfigError(
                    f"Grad-CAM needs a (B, C, H, W) feature map from {name!r}, "
                    f"got {type(output).__name__} {getattr(output, 'shape', '')}"
                )
            outputs[name] = output
            # Later in-place ops (ReLU(inplace), +=) must not change the recorded map; the
            # clone passes gradients straight through to it.
            return output.clone()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def _unit_max(cam: torch.Tensor) -> torch.Tensor:
    """Scale each (B, 1, H, W) map to max 1; an all-zero map stays zero."""
    peak = cam.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))


def gradcam_tensor(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str], *, target: str = "fake"
) -> torch.Tensor:
    """Grad-CAM maps (B, H, W) in [0, 1] for a normalised input batch ``x`` (B, 3, H, W).

    ``target`` "fake" explains the logit, "real" its negative. The model is put in eval mode
    for the pass and given back in the mode it came in; parameter ``.grad`` is not touched.
    """
    if target not in ("fake", "real"):
        raise ConfigError(f"target must be 'fake' or 'real', got {target!r}")
    sign = 1.0 if target == "fake" else -1.0
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            _captured_outputs(model, layers) as outputs,
        ):
            # An input that needs a gradient keeps a graph even when the weights are frozen;
            # the clone turns a tensor made under inference_mode into a normal one.
            x = x.detach().clone().float().requires_grad_(True)
            logits = model(x).float().reshape(x.shape[0], -1)[:, 0]
            maps = [outputs[name] for name in layers]
            grads = torch.autograd.grad((sign * logits).sum(), maps)
    finally:
        model.train(was_training)
    cams = []
    for feature, grad in zip(maps, grads, strict=True):
        weights = grad.float().mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * feature.detach().float()).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        cams.append(_unit_max(cam.clamp_min(0)))
    return _unit_max(torch.stack(cams).mean(0)).squeeze(1).clamp(0, 1).detach()


def gradcam(
    detector: Detector,
    images: Sequence[Image.Image],
    layers: Sequence[str] | None = None,
    *,
    target: str = "fake",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[np.ndarray]:
    """Per image an (S, S) float32 heat map in [0, 1] at the model's input size S; for
    native-resolution crops, a map of the whole image at its own size and aspect ratio
    (``preprocessing.resize_image(img)``), each crop's map pasted where the crop lies.

    ``layers`` are module names (see ``feature_module_names``); default: the deepest stage.
    Several layers give their average (multi-layer Grad-CAM). A detector that combines
    models around one whole-image model (face-aware) is explained by that model.
    """
    if not images:
        return []
    detector = detector.explained_by
    model = detector.torch_model("Grad-CAM")
    names = resolve_layers(model, layers)
    pre = detector.preprocessing
    if pre.multi_crop:
        return [_whole_image_cam(detector, model, img, names, target) for img in images]
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        batch = detector.preprocessing.batch_from_images(list(images[start : start + batch_size]))
        x = detector.preprocessing.normalize(batch.to(detector.device))
        cams = gradcam_tensor(model, x, names, target=target)
        out += [cam.astype(np.float32) for cam in cams.cpu().numpy()]
    return out


def _whole_image_cam(
    detector: Detector, model: nn.Module, img: Image.Image, names: Sequence[str], target: str
) -> np.ndarray:
    """Grad-CAM of every native-resolution crop, averaged where crops overlap, on a map the
    size of the image as the crops see it; parts no crop covers stay 0."""
    pre = detector.preprocessing
    view = pre.native_view(img.convert("RGB"))
    crops = torch.from_numpy(pre.to_uint8(img))
    x = pre.normalize(crops.to(detector.device))
    cams = gradcam_tensor(model, x, names, target=target).cpu().numpy()
    total = np.zeros((view.height, view.width), dtype=np.float32)
    count = np.zeros_like(total)
    for cam, (left, top, right, bottom) in zip(cams, pre.crop_boxes(*view.size), strict=True):
        total[top:bottom, left:right] += cam
        count[top:bottom, left:right] += 1.0
    whole = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return (whole / max(float(whole.max()), 1e-8)).astype(np.float32)


# -- pictures ------------------------------------------------------------------------------
def _upscale_factor(size: tuple[int, int], min_size: int) -> int:
    return max(1, math.ceil(min_size / max(1, min(size))))


def overlay(
    image: Image.Image,
    cam: np.ndarray,
    *,
    alpha: float = 0.5,
    min_size: int = MIN_DISPLAY_SIZE,
    colormap: str = "jet",
) -> Image.Image:
    """The heat map in the jet colormap blended over the image, upscaled (nearest) so that
    its shorter side is at least ``min_size`` pixels, or shrunk so that its longer side is at
    most MAX_DISPLAY_SIZE (a native-resolution photo). The map is resized to the image."""
    rgb = image.convert("RGB")
    if max(rgb.size) > MAX_DISPLAY_SIZE:
        scale = MAX_DISPLAY_SIZE / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    cam = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0.0, 1.0)
    if cam.shape != (rgb.height, rgb.width):
        resized = Image.fromarray(cam, mode="F").resize(rgb.size, Image.Resampling.BILINEAR)
        cam = np.clip(np.asarray(resized), 0.0, 1.0)
    heat = colormaps[colormap](cam)[..., :3] * 255.0
    blend = (1.0 - alpha) * np.asarray(rgb, dtype=np.float32) + alpha * heat
    out = Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8))
    return _upscale(out, min_size)


def _upscale(img: Image.Image, min_size: int) -> Image.Image:
    factor = _upscale_factor(img.size, min_size)
    if factor == 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def _item_name(path: str) -> str:
    archive, member = split_item_path(path)
    return member if member is not None else archive


def _unique_png(out_dir: Path, stem: str, taken: set[str]) -> Path:
    name, n = f"{stem}_gradcam.png", 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}_gradcam.png"
    taken.add(name)
    return out_dir / name


def _captioned_pair(view: Image.Image, cam: np.ndarray, caption: str) -> Image.Image:
    """[image | overlay] side by side with a caption strip underneath."""
    left = _upscale(view.convert("RGB"), MIN_DISPLAY_SIZE)
    right = overlay(view, cam, min_size=MIN_DISPLAY_SIZE)
    font_size = max(11, left.height // 12)
    font = ImageFont.load_default(size=font_size)
    strip = font_size + 10
    canvas = Image.new("RGB", (left.width + right.width, left.height + strip), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    ImageDraw.Draw(canvas).text((5, left.height + 4), caption, fill="black", font=font)
    return canvas


def _face_at(box: FaceBox | None) -> str:
    """Where the explained face is ("x,y,w,h" in the original image), or "none"."""
    return "none" if box is None else ",".join(str(v) for v in box.xywh)


def _face_caption(box: FaceBox | None, angle: float = 0.0) -> str:
    """The caption's face part: where the explained face is (and how far its crop was turned
    to level the eyes), or that none was found."""
    if box is None:
        return "  no face found: whole image"
    return f"  face at {_face_at(box)}" + (f", turned {angle:.0f} deg" if angle else "")


def _load(path: str) -> Image.Image | str:
    try:
        return load_image(read_item_bytes(path), path)
    except ImageError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot read: {exc}"


def explain_files(
    detector: Detector,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    layers: Sequence[str] | None = None,
    *,
    target: str = "fake",
    batch_size: int = DEFAULT_BATCH_SIZE,
    faces: FaceSelector | None = None,
) -> list[Path]:
    """Write ``<stem>_gradcam.png`` per readable image: the image as the model saw it next to
    its Grad-CAM overlay, captioned with p(fake) and the verdict (also in the PNG's text
    chunks ``p_fake``, ``label``, ``source``, ``layers``). With `faces`, the map is of the
    largest face's crop, the one `predict --faces` scores (chunk ``face_box``: x,y,w,h in the
    original image, or none found and the whole image explained). Unreadable files are
    skipped with a warning. Returns the written paths in input order."""
    names = resolve_layers(detector.explained_by.torch_model("Grad-CAM"), layers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    written: list[Path] = []
    items = [str(p) for p in paths]
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        loaded = [(path, _load(path)) for path in chunk]
        for path, result in loaded:
            if isinstance(result, str):
                warnings.warn(f"Grad-CAM skipped {path}: {result}", stacklevel=2)
        good = [(path, img) for path, img in loaded if isinstance(img, Image.Image)]
        if not good:
            continue
        images = [img for _, img in good]
        boxes: list[FaceBox | None] = [None] * len(images)
        angles = [0.0] * len(images)
        if faces is not None:
            selections = faces.largest(images)
            images = [sel.image for sel in selections]
            boxes = [sel.face_box for sel in selections]
            angles = [sel.angle for sel in selections]
        cams = gradcam(detector, images, names, target=target, batch_size=batch_size)
        probabilities = detector.predict_images(images)
        for (path, _), img, box, angle, cam, p in zip(
            good, images, boxes, angles, cams, probabilities, strict=True
        ):
            note = _face_caption(box, angle) if faces is not None else ""
            label, unsure = detector.verdict(float(p))
            verdict = f"unsure, leans {label}" if unsure else label
            view = detector.preprocessing.resize_image(img)
            picture = _captioned_pair(view, cam, f"p(fake)={p:.3f}  {verdict}{note}")
            info = PngImagePlugin.PngInfo()
            for key, value in (
                ("p_fake", f"{p:.6f}"),
                ("label", label),
                ("source", path),
                ("layers", ",".join(names)),
            ):
                info.add_text(key, value)
            if faces is not None:
                info.add_text("face_box", _face_at(box))
            target_path = _unique_png(out, Path(_item_name(path)).stem, taken)
            picture.save(target_path, format="PNG", pnginfo=info)
            written.append(target_path)
    return written


# -- gallery -------------------------------------------------------------------------------
def _binary_labels(labels: Sequence[int | str] | np.ndarray, names: Sequence[str]) -> np.ndarray:
    values = list(labels)
    if all(isinstance(v, str) for v in values):
        lookup = {name: index for index, name in enumerate(names)}
        unknown = sorted({v for v in values if v not in lookup})
        if unknown:
            raise ConfigError(f"unknown labels {unknown}; expected {list(names)}")
        return np.array([lookup[v] for v in values], dtype=int)
    return np.asarray(values).astype(int)


def _spread(order: np.ndarray, k: int) -> list[int]:
    """k indices evenly spread along ``order`` (all of them when there are no more than k)."""
    if len(order) <= k:
        return [int(i) for i in order]
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, k)).astype(int))
    return [int(order[i]) for i in picks]


def select_gallery(
    labels: Sequence[int] | np.ndarray,
    p_fake: Sequence[float] | np.ndarray,
    threshold: float,
    k: int = 4,
) -> dict[str, list[int]]:
    """Indices to show, per row of :func:`gallery` (rows in :data:`GALLERY_ROWS` order).

    Each of TP/FP/TN/FN shows up to ``k`` cases spread from most to least confident; the
    last row shows the ``k`` mistakes furthest from the threshold on the wrong side.
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(p_fake, dtype=float)
    if y.shape != p.shape:
        raise ConfigError(f"{len(y)} labels but {len(p)} probabilities")
    predicted = (p >= threshold).astype(int)
    confidence = np.abs(p - threshold)
    rows: dict[str, list[int]] = {}
    for name, truth, guess in (
        ("true positives", 1, 1),
        ("false positives", 0, 1),
        ("true negatives", 0, 0),
        ("false negatives", 1, 0),
    ):
        members = np.flatnonzero((y == truth) & (predicted == guess))
        rows[name] = _spread(members[np.argsort(-confidence[members], kind="stable")], k)
    mistakes = np.flatnonzero(y != predicted)
    ranked = mistakes[np.argsort(-confidence[mistakes], kind="stable")]
    rows["most confident mistakes"] = [int(i) for i in ranked[:k]]
    return rows


@dataclass
class GalleryRow:
    """One written row of the gallery: its PNG and the cases shown (indices into the input)."""

    name: str
    png: Path
    indices: list[int]


class _Cases:
    """The selected images of a gallery, loaded once, with their Grad-CAM maps.

    ``targets[i]`` is the class whose evidence image ``i``'s map shows ("fake" or "real").
    """

    def __init__(
        self,
        detector: Detector,
        items: Sequence[str],
        targets: dict[int, str],
        layers: Sequence[str] | None,
    ) -> None:
        self.detector = detector
        self.targets = targets
        self.loaded = {i: _load(items[i]) for i in sorted(targets)}
        self.cams: dict[int, np.ndarray] = {}
        for target in ("fake", "real"):
            good = {
                i: img
                for i, img in self.loaded.items()
                if isinstance(img, Image.Image) and targets[i] == target
            }
            cams = gradcam(detector, list(good.values()), layers, target=target)
            self.cams.update(zip(good, cams, strict=True))

    def draw(
        self,
        axes: Sequence[Any],
        indices: Sequence[int],
        y: np.ndarray,
        p: np.ndarray,
        captions: Sequence[str] | None = None,
    ) -> None:
        """Tiles [image | Grad-CAM] for ``indices`` on a row of 2 * k axes."""
        names = self.detector.meta.labels
        for col, index in enumerate(indices):
            image_ax, cam_ax = axes[2 * col], axes[2 * col + 1]
            image_ax.set_title(f"{names[y[index]]} p={p[index]:.2f}", fontsize=7)
            if captions:
                image_ax.set_xlabel(_short(captions[index]), fontsize=6, loc="left")
            img = self.loaded[index]
            if isinstance(img, str):
                image_ax.text(0.5, 0.5, "unreadable", ha="center", transform=image_ax.transAxes)
                continue
            view = self.detector.preprocessing.resize_image(img)
            image_ax.imshow(np.asarray(view), interpolation="nearest")
            cam_ax.imshow(
                np.asarray(overlay(view, self.cams[index], min_size=0)), interpolation="nearest"
            )
            cam_ax.set_title(f"Grad-CAM: {self.targets[index]}", fontsize=7)


def _short(path: str, width: int = 24) -> str:
    name = _item_name(path)
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _blank_axes(fig: Figure, rows: int, cols: int) -> np.ndarray:
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    return axes


def _gallery_inputs(
    detector: Detector,
    paths: Sequence[str | os.PathLike],
    labels: Sequence[int | str] | np.ndarray,
    p_fake: Sequence[float] | np.ndarray,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    y = _binary_labels(labels, detector.meta.labels)
    p = np.asarray(p_fake, dtype=float)
    items = [str(path) for path in paths]
    if not len(items) == len(y) == len(p):
        raise ConfigError(f"{len(items)} paths, {len(y)} labels and {len(p)} probabilities")
    return items, y, p


def gallery(
    detector: Detector,
    paths: Sequence[str | os.PathLike],
    labels: Sequence[int | str] | np.ndarray,
    p_fake: Sequence[float] | np.ndarray,
    threshold: float,
    out_png: str | os.PathLike,
    k: int = 4,
    *,
    layers: Sequence[str] | None = None,
) -> Path:
    """One figure of Grad-CAM examples: rows of true/false positives/negatives and the most
    confident mistakes, each tile the image and its overlay, titled with label and p(fake).

    ``labels`` are 0/1 (1 = fake) or the bundle's label names; ``p_fake`` and ``threshold``
    are typically an evaluation's calibrated scores and the bundle's threshold.
    """
    items, y, p = _gallery_inputs(detector, paths, labels, p_fake)
    selection = {name: idx for name, idx in select_gallery(y, p, threshold, k).items() if idx}
    cases = _Cases(detector, items, {i: "fake" for idx in selection.values() for i in idx}, layers)
    n_rows = max(1, len(selection))
    fig = Figure(figsize=(2 * k * 1.35, n_rows * 1.75))
    axes = _blank_axes(fig, n_rows, 2 * k)
    if not selection:
        axes[0, 0].text(0, 0.5, "no images to show", transform=axes[0, 0].transAxes)
    for row, (title, indices) in enumerate(selection.items()):
        axes[row, 0].set_ylabel(title, fontsize=8)
        cases.draw(axes[row], indices, y, p)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.suptitle(f"Grad-CAM gallery (threshold {threshold:.3f})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=DPI)
    return out


def gallery_rows(
    detector: Detector,
    paths: Sequence[str | os.PathLike],
    labels: Sequence[int | str] | np.ndarray,
    p_fake: Sequence[float] | np.ndarray,
    threshold: float,
    out_dir: str | os.PathLike,
    k: int = 4,
    *,
    layers: Sequence[str] | None = None,
    target: str = "predicted",
    prefix: str = "gradcam_",
) -> list[GalleryRow]:
    """The gallery as one PNG per row (``gradcam_true_positives.png`` ...), for a report.

    Each map shows the evidence for ``target``: "fake", "real", or by default the class the
    detector predicted (so a missed fake shows what looked real to it). Rows without a case
    (e.g. no false negatives) are left out. Tiles are captioned with the file name under
    the image, the true label and p(fake) above it.
    """
    if target not in ("predicted", "fake", "real"):
        raise ConfigError(f"target must be 'predicted', 'fake' or 'real', got {target!r}")
    items, y, p = _gallery_inputs(detector, paths, labels, p_fake)
    selection = {name: idx for name, idx in select_gallery(y, p, threshold, k).items() if idx}
    targets = {
        i: target if target != "predicted" else ("fake" if p[i] >= threshold else "real")
        for idx in selection.values()
        for i in idx
    }
    cases = _Cases(detector, items, targets, layers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, indices in selection.items():
        fig = Figure(figsize=(2 * k * 1.35, 2.0))
        axes = _blank_axes(fig, 1, 2 * k)
        cases.draw(axes[0], indices, y, p, captions=items)
        fig.tight_layout()
        png = out / f"{prefix}{name.replace(' ', '_')}.png"
        fig.savefig(png, format="png", dpi=DPI)
        rows.append(GalleryRow(name, png, list(indices)))
    return rows
