"""`audit_source`: scan a source's images once, then run each check (class statistics, bias
warnings, duplicates, split leaks, shortcuts per source and generator) into one report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fakescope.data.audit.bias import bias_warnings
from fakescope.data.audit.class_stats import class_name, class_order, format_of, per_class
from fakescope.data.audit.duplicates import analyse_duplicates, duplicates_section, split_leaks
from fakescope.data.audit.report import AuditReport
from fakescope.data.audit.scan import ImageScan, scan_items
from fakescope.data.shortcuts import Record, per_group, shortcut_findings
from fakescope.data.sources import Item, Source


def audit_source(
    source: Source,
    *,
    near_threshold: int = 4,
    progress: bool = True,
    workers: int | None = None,
    items: Sequence[Item] | None = None,
) -> AuditReport:
    """Audit a source (or a subset of its items); returns a JSON-serialisable report.

    ``workers`` defaults to one per CPU for large sources and in-process for small ones.
    """
    chosen = list(source.items if items is None else items)
    scans = scan_items(source, chosen, workers=workers, progress=progress)
    analysis = analyse_duplicates(chosen, scans, near_threshold)
    counts = Counter(class_name(item.label) for item in chosen)
    has_splits = any(item.split for item in chosen)
    records = _records(chosen, scans)
    return {
        "source": source.location,
        "fingerprint": source.fingerprint(),
        "counts": {name: counts[name] for name in sorted(counts, key=class_order)},
        "total": len(chosen),
        "per_class": per_class(chosen, scans),
        "bias_warnings": bias_warnings(chosen, scans),
        "duplicates": duplicates_section(analysis),
        "near_threshold": near_threshold,
        "has_splits": has_splits,
        "leaks": split_leaks(analysis) if has_splits else [],
        "unreadable": [
            {"path": chosen[s.position].path, "reason": s.error} for s in scans if s.error
        ],
        "skipped": [{"path": path, "reason": reason} for path, reason in source.skipped],
        "groups": analysis.groups(),
        "per_source": per_group(records, lambda r: r.source) if _several(chosen, "source") else {},
        "per_generator": per_group([r for r in records if r.label == 1], lambda r: r.generator)
        if _several(chosen, "generator")
        else {},
        "shortcuts": shortcut_findings(records),
    }


def _several(items: list[Item], attribute: str) -> bool:
    return len({getattr(item, attribute) for item in items} - {None, ""}) > 1


def _records(items: list[Item], scans: list[ImageScan]) -> list[Record]:
    return [
        Record(
            item.label,
            item.source or "",
            item.generator or "",
            format_of(scan),
            scan.jpeg_quality,
            scan.width,
            scan.height,
            scan.file_size,
            scan.content or "photo",
        )
        for item, scan in zip(items, scans, strict=True)
        if scan.error is None
    ]
