"""Per-class statistics of the audited images: counts, sizes, formats, colour modes, JPEG
qualities, file sizes."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from fakescope import LABEL_NAMES
from fakescope.data.audit.report import ClassStats, NumberSummary
from fakescope.data.audit.scan import ImageScan
from fakescope.data.sources import Item

_TOP = 10


def class_name(label: int | None) -> str:
    return "unlabeled" if label is None else LABEL_NAMES[label]


def _top(counter: Counter[str] | Counter[int], n: int = _TOP) -> dict[str, int]:
    return {str(key): count for key, count in counter.most_common(n)}


def _summary(values: list[float]) -> NumberSummary:
    if not values:
        return {"mean": 0.0, "median": 0.0}
    return {
        "mean": round(statistics.fmean(values), 2),
        "median": round(float(statistics.median(values)), 2),
    }


def per_class(items: list[Item], scans: list[ImageScan]) -> dict[str, ClassStats]:
    by_class: dict[str, list[ImageScan]] = defaultdict(list)
    totals: Counter[str] = Counter()
    for item, scan in zip(items, scans, strict=True):
        name = class_name(item.label)
        totals[name] += 1
        if scan.error is None:
            by_class[name].append(scan)
    stats: dict[str, ClassStats] = {}
    for name in sorted(totals, key=class_order):
        ok = by_class[name]
        jpeg = [s.jpeg_quality for s in ok if s.jpeg_quality is not None]
        stats[name] = {
            "count": totals[name],
            "readable": len(ok),
            "sizes": _top(Counter(f"{s.width}x{s.height}" for s in ok)),
            "formats": _top(Counter(format_of(s) for s in ok), 100),
            "modes": _top(Counter(mode_of(s) for s in ok), 100),
            "jpeg_quality": _top(Counter(jpeg)),
            "width": _summary([s.width for s in ok]),
            "height": _summary([s.height for s in ok]),
            "file_size": _summary([s.file_size for s in ok]),
        }
    return stats


def format_of(scan: ImageScan) -> str:
    return scan.format or "unknown"  # always set on a readable scan


def mode_of(scan: ImageScan) -> str:
    return scan.mode or "unknown"  # always set on a readable scan


def class_order(name: str) -> int:
    return LABEL_NAMES.index(name) if name in LABEL_NAMES else len(LABEL_NAMES)
