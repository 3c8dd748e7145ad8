"""Where a property other than real-vs-fake could decide a verdict: per source and per
generator, what the images are (format, size, JPEG quality, file size, photographic or
graphic content), and how well each property *alone* separates real from fake.

A property separates the classes when predicting the label from its value alone (the
majority class of each value, classes weighted equally) reaches a high balanced accuracy:
0.5 is chance, 1.0 means the property decides every image. Values rarer than 1% of the
images are pooled as "other"; numbers are binned at the pooled quintiles. A detector
trained on such data can learn the property instead of the traces of generation, and then
calls every real PNG, every large image or every drawing fake.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

DECISIVE = 0.75  # balanced accuracy from which a property could decide verdicts
_RARE = 0.01
_MIN_CLASS = 10


@dataclass(frozen=True)
class Record:
    """What the audit read of one image (readable images only)."""

    label: int | None
    source: str
    generator: str
    format: str
    jpeg_quality: int | None
    width: int
    height: int
    file_size: int
    content: str  # "photo" or "graphic" (fakescope.data.content_type)


class GroupStats(TypedDict):
    images: int
    formats: dict[str, float]  # share per format, the most common first
    jpeg_quality_median: float | None
    pixels_median: float
    file_size_median: float
    graphic_share: float  # share of non-photographic images


class Shortcut(TypedDict):
    scope: str  # "all images", or "<generator> vs all reals", "<source>"
    attribute: str
    balanced_accuracy: float
    real: str  # what the reals mostly are
    fake: str  # what the fakes mostly are
    decisive: bool


def _shares(values: Sequence[str], n: int = 3) -> dict[str, float]:
    counts = Counter(values)
    return {k: round(v / len(values), 3) for k, v in counts.most_common(n)}


def group_stats(records: Sequence[Record]) -> GroupStats:
    qualities = [r.jpeg_quality for r in records if r.jpeg_quality is not None]
    return {
        "images": len(records),
        "formats": _shares([r.format for r in records]),
        "jpeg_quality_median": float(np.median(qualities)) if qualities else None,
        "pixels_median": float(np.median([r.width * r.height for r in records])),
        "file_size_median": float(np.median([r.file_size for r in records])),
        "graphic_share": round(sum(r.content == "graphic" for r in records) / len(records), 3),
    }


def per_group(
    records: Sequence[Record], key: Callable[[Record], str]
) -> dict[str, dict[str, GroupStats]]:
    """group -> class name -> stats (reals and fakes apart)."""
    grouped: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        name = "unlabeled" if r.label is None else ("real", "fake")[r.label]
        grouped[key(r)][name].append(r)
    return {
        g: {c: group_stats(rs) for c, rs in sorted(classes.items())}
        for g, classes in sorted(grouped.items())
    }


def _binned(values: list[float]) -> list[str]:
    edges = np.unique(np.quantile(np.asarray(values, dtype=np.float64), [0.2, 0.4, 0.6, 0.8]))
    bins = np.searchsorted(edges, values, side="right")
    return [f"q{int(b) + 1}" for b in bins]


_ATTRIBUTES: dict[str, Callable[[Record], object]] = {
    "format": lambda r: r.format,
    "JPEG quality": lambda r: "not JPEG" if r.jpeg_quality is None else str(r.jpeg_quality),
    "image size": lambda r: f"{r.width}x{r.height}",
    "pixel count": lambda r: float(r.width * r.height),
    "file size": lambda r: float(r.file_size),
    "content (photo/graphic)": lambda r: r.content,
}


def balanced_accuracy(values: Sequence[str], labels: Sequence[int]) -> float:
    """Balanced accuracy of predicting the label by each value's (class-weighted) majority."""
    y = np.asarray(labels)
    n_real, n_fake = int(np.sum(y == 0)), int(np.sum(y == 1))
    pooled = Counter(values)
    keep = {v for v, c in pooled.items() if c / len(values) >= _RARE}
    real: Counter[str] = Counter()
    fake: Counter[str] = Counter()
    for v, label in zip(values, labels, strict=True):
        (fake if label else real)[v if v in keep else "other"] += 1
    correct_real = correct_fake = 0.0
    for v in set(real) | set(fake):
        if fake[v] / n_fake > real[v] / n_real:
            correct_fake += fake[v]
        else:
            correct_real += real[v]
    return 0.5 * (correct_real / n_real + correct_fake / n_fake)


def _describe(values: list[str], attribute: str) -> str:
    if attribute in ("pixel count", "file size"):
        return ""
    return ", ".join(f"{k} {v:.0%}" for k, v in _shares(values, 2).items())


def _findings(scope: str, records: Sequence[Record]) -> list[Shortcut]:
    labelled = [r for r in records if r.label is not None]
    labels = [int(r.label) for r in labelled if r.label is not None]
    if min(labels.count(0), labels.count(1)) < _MIN_CLASS:
        return []
    out: list[Shortcut] = []
    for attribute, get in _ATTRIBUTES.items():
        raw = [get(r) for r in labelled]
        if isinstance(raw[0], float):
            values = _binned([float(v) for v in raw])  # type: ignore[arg-type]
            real = (
                f"median {np.median([v for v, y in zip(raw, labels, strict=True) if y == 0]):,.0f}"
            )
            fake = (
                f"median {np.median([v for v, y in zip(raw, labels, strict=True) if y == 1]):,.0f}"
            )
        else:
            values = [str(v) for v in raw]
            real = _describe([v for v, y in zip(values, labels, strict=True) if y == 0], attribute)
            fake = _describe([v for v, y in zip(values, labels, strict=True) if y == 1], attribute)
        accuracy = balanced_accuracy(values, labels)
        out.append(
            {
                "scope": scope,
                "attribute": attribute,
                "balanced_accuracy": round(accuracy, 3),
                "real": real,
                "fake": fake,
                "decisive": accuracy >= DECISIVE,
            }
        )
    return out


def shortcut_findings(records: Sequence[Record]) -> list[Shortcut]:
    """Per property: how well it alone separates the classes, over all images, per source
    holding both classes, and per generator against all reals."""
    found = _findings("all images", records)
    by_source: dict[str, list[Record]] = defaultdict(list)
    by_generator: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_source[r.source].append(r)
        if r.label == 1 and r.generator:
            by_generator[r.generator].append(r)
    for source, rs in sorted(by_source.items()):
        if source and len({r.label for r in rs}) > 1 and len(by_source) > 1:
            found += _findings(f"source {source}", rs)
    reals = [r for r in records if r.label == 0]
    if len(by_generator) > 1:
        for generator, rs in sorted(by_generator.items()):
            found += _findings(f"{generator} vs all reals", reals + rs)
    return found
