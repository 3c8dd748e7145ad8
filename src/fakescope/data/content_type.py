"""Photographic or not: a simple, measured heuristic for what an image shows.

Screenshots, diagrams, plots, icons and flat artwork are drawn, not photographed: large
areas of one exact colour and few distinct colours. A photograph (and a photo-like
rendering) has sensor or rendering noise everywhere. Two statistics on the image reduced
to at most 256 px (box filter) say which:

- ``flat``: the share of pixels whose right and lower neighbours have the same colour
  within 2 levels per channel (flat regions);
- ``colours``: distinct colours among the pixels, quantised to 5 bits per channel, as a
  share of the pixels (capped at 4096 pixels counted).

An image is called *graphic* (non-photographic) when ``flat >= FLAT_GRAPHIC`` or
``colours <= COLOURS_GRAPHIC``. A greyscale image (channels within ``GREY_SPREAD`` levels of
each other on average) has at most 32 quantised colours whatever it shows, so a
black-and-white photograph would always count as graphic: for it the colour count is
replaced by the share of its pixels in its four commonest grey levels (``GREY_TOP_GRAPHIC``:
paper and ink of a text page or a line drawing; 0.55 lies between the text pages and
black-and-white portraits seen). On the first 400 real portraits of the StyleGAN faces
source (84 of them greyscale) the colour count alone called 80 graphic, this rule 5; of the
440 images of ``bench/nonphoto_reals.py`` (2026-12-06) it recognises 427 (the colour count
alone: 426). The other thresholds were chosen on 500 real photos of the
real.yaml sources and half of the 440 screenshots, plots, graphs and Debian artwork
``bench/nonphoto_reals.py`` makes (at most 2% of the photos called graphic, most
drawings caught); the bench prints the rates (about 98% of the drawings recognised, 2%
of photos called graphic: low-quality JPEGs of plain scenes, such as products on white).
It cannot tell painted or rendered *art* from a photo: an oil-painting-like image has
texture everywhere and is counted as photographic.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np
from PIL import Image

FLAT_GRAPHIC = 0.70
COLOURS_GRAPHIC = 0.02
GREY_SPREAD = 3.0
GREY_TOP_GRAPHIC = 0.55
_SIDE = 256
_COUNT = 4096

ContentKind = Literal["photo", "graphic"]


class ContentStats(TypedDict):
    flat: float
    colours: float
    kind: ContentKind


def content_stats(img: Image.Image) -> ContentStats:
    """The flat share, the distinct-colour share and the resulting kind of one image."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    if max(rgb.size) > _SIDE:
        scale = _SIDE / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    a = np.asarray(rgb, dtype=np.int16)
    if a.shape[0] < 2 or a.shape[1] < 2:
        return {"flat": 1.0, "colours": 0.0, "kind": "graphic"}
    right = _channel_max(np.abs(a[:-1, 1:] - a[:-1, :-1])) <= 2
    down = _channel_max(np.abs(a[1:, :-1] - a[:-1, :-1])) <= 2
    flat = float(np.mean(right & down))
    pixels = (a >> 3).reshape(-1, 3)
    if len(pixels) > _COUNT:
        pixels = pixels[np.linspace(0, len(pixels) - 1, _COUNT).astype(np.int64)]
    keys = (pixels[:, 0].astype(np.int32) << 10) | (pixels[:, 1] << 5) | pixels[:, 2]
    colours = float(np.count_nonzero(np.bincount(keys, minlength=1 << 15)) / len(keys))
    spread = _channel_max(a) - np.minimum(np.minimum(a[..., 0], a[..., 1]), a[..., 2])
    if float(spread.mean()) <= GREY_SPREAD:  # greyscale
        few = _grey_top_share(a) >= GREY_TOP_GRAPHIC
    else:
        few = colours <= COLOURS_GRAPHIC
    graphic = flat >= FLAT_GRAPHIC or few
    return {"flat": round(flat, 4), "colours": round(colours, 4), "kind": _kind(graphic)}


def _channel_max(a: np.ndarray) -> np.ndarray:
    """max over the last axis of an (H, W, 3) array: numpy's reduction over an axis of 3 is
    several times slower than two element-wise maxima (the check runs on every image)."""
    out: np.ndarray = np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
    return out


def _grey_top_share(a: np.ndarray) -> float:
    """The share of pixels in the four commonest grey levels of an (H, W, 3) image."""
    grey = a.mean(axis=2).round().astype(np.int64).reshape(-1)
    counts = np.bincount(grey, minlength=256)
    return float(np.sort(counts)[-4:].sum() / len(grey))


def _kind(graphic: bool) -> ContentKind:
    return "graphic" if graphic else "photo"
