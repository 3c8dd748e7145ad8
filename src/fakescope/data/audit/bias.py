"""Bias warnings: a property (format, colour mode, size, JPEG quality, file size, pixel
count) distributed differently in real and fake images, which a model could learn instead of
real-vs-fake cues."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from fakescope.data.audit.class_stats import format_of, mode_of
from fakescope.data.audit.scan import ImageScan
from fakescope.data.sources import Item

_TV_THRESHOLD = 0.2  # total-variation distance between classes that we call a bias
_MIN_CLASS_IMAGES = 10
_RARE_SHARE = 0.01  # categorical values rarer than this (pooled) are binned as "other"


def _significant(table: np.ndarray) -> bool:
    """Chi-square test of homogeneity at p < 1e-3, so sampling noise raises no warning.

    The critical value uses the Wilson-Hilferty approximation, accurate enough for a
    warning threshold and it spares importing scipy.stats (seconds on a busy machine).
    """
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return False
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    z = 3.0902  # standard normal quantile for p = 1e-3
    critical = dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3
    return bool(statistic > critical)


def _share_text(dist: dict[str, float], n: int = 3) -> str:
    top = sorted(dist.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{key} {share:.0%}" for key, share in top if share > 0)


def _categorical_warnings(attribute: str, real: list[str], fake: list[str]) -> list[str]:
    pooled = Counter(real) + Counter(fake)
    total = sum(pooled.values())
    # Rare values (e.g. the many distinct sizes of camera photos) are pooled as "other";
    # otherwise two equally diverse classes would look completely different.
    keep = {value for value, count in pooled.items() if count / total >= _RARE_SHARE}
    keys = sorted(keep) + (["other"] if len(keep) < len(pooled) else [])

    def dist(values: list[str]) -> np.ndarray:
        counts = Counter(v if v in keep else "other" for v in values)
        return np.array([counts.get(k, 0) for k in keys], dtype=np.float64)

    real_counts, fake_counts = dist(real), dist(fake)
    p_real, p_fake = real_counts / len(real), fake_counts / len(fake)
    tv = 0.5 * float(np.abs(p_real - p_fake).sum())
    if tv <= _TV_THRESHOLD or not _significant(np.stack([real_counts, fake_counts])):
        return []
    real_text = _share_text(dict(zip(keys, p_real, strict=True)))
    fake_text = _share_text(dict(zip(keys, p_fake, strict=True)))
    return [
        f"{attribute} differs between classes (total variation {tv:.2f}): "
        f"real is {real_text}; fake is {fake_text}. A model can learn this instead of "
        "real-vs-fake cues."
    ]


def _value_warnings(attribute: str, real: list[str], fake: list[str]) -> list[str]:
    """Single values (a size, a quality) that occur almost only in one class."""
    real_counts, fake_counts = Counter(real), Counter(fake)
    warnings = []
    for value in sorted(set(real_counts) | set(fake_counts)):
        share_real = real_counts[value] / len(real)
        share_fake = fake_counts[value] / len(fake)
        if max(share_real, share_fake) < 0.05 or real_counts[value] + fake_counts[value] < 20:
            continue
        dominant = share_fake / (share_real + share_fake)  # normalised for class imbalance
        if 0.1 < dominant < 0.9:
            continue
        mostly = "fake" if dominant >= 0.9 else "real"
        warnings.append(
            f"{attribute} {value} is mostly {mostly}: {share_real:.1%} of real vs "
            f"{share_fake:.1%} of fake images."
        )
    return warnings[:3]


def _numeric_warnings(attribute: str, real: list[float], fake: list[float], unit: str) -> list[str]:
    pooled = np.array(real + fake, dtype=np.float64)
    edges = np.unique(np.quantile(pooled, [0.2, 0.4, 0.6, 0.8]))
    real_bins = np.bincount(np.searchsorted(edges, real, side="right"), minlength=len(edges) + 1)
    fake_bins = np.bincount(np.searchsorted(edges, fake, side="right"), minlength=len(edges) + 1)
    tv = 0.5 * float(np.abs(real_bins / len(real) - fake_bins / len(fake)).sum())
    if tv <= _TV_THRESHOLD or not _significant(np.stack([real_bins, fake_bins])):
        return []
    return [
        f"{attribute} distribution differs between classes (total variation {tv:.2f} over "
        f"quintiles): median real {fmt_number(np.median(real), unit)} vs fake "
        f"{fmt_number(np.median(fake), unit)}."
    ]


def fmt_number(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1024:.1f} KiB" if value >= 1024 else f"{value:.0f} B"
    return f"{value:,.0f} {unit}"


def bias_warnings(items: list[Item], scans: list[ImageScan]) -> list[str]:
    real = [s for it, s in zip(items, scans, strict=True) if it.label == 0 and s.error is None]
    fake = [s for it, s in zip(items, scans, strict=True) if it.label == 1 and s.error is None]
    if min(len(real), len(fake)) < _MIN_CLASS_IMAGES:
        return []
    out: list[str] = []
    categorical: dict[str, Callable[[ImageScan], str]] = {
        "format": format_of,
        "colour mode": mode_of,
        "image size": lambda s: f"{s.width}x{s.height}",
    }
    for attribute, key in categorical.items():
        r, f = [key(s) for s in real], [key(s) for s in fake]
        found = _categorical_warnings(attribute, r, f)
        out += found or _value_warnings(attribute, r, f)
    size_warned = any(w.startswith("image size") for w in out)
    q_real = [str(s.jpeg_quality) for s in real if s.jpeg_quality is not None]
    q_fake = [str(s.jpeg_quality) for s in fake if s.jpeg_quality is not None]
    if min(len(q_real), len(q_fake)) >= _MIN_CLASS_IMAGES:
        found = _categorical_warnings("JPEG quality", q_real, q_fake)
        out += found or _value_warnings("JPEG quality", q_real, q_fake)
    out += _numeric_warnings(
        "file size", [s.file_size for s in real], [s.file_size for s in fake], "bytes"
    )
    if not size_warned:
        out += _numeric_warnings(
            "pixel count",
            [s.width * s.height for s in real],
            [s.width * s.height for s in fake],
            "pixels",
        )
    return out
