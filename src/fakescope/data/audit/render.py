"""The audit report for people: `print_audit` (rich tables on the console) and
`format_audit` (the same as plain text)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from fakescope.consoles import messages_console
from fakescope.data.audit.bias import fmt_number
from fakescope.data.audit.report import AuditReport
from fakescope.data.shortcuts import GroupStats, Shortcut


def _truncated_list(console: Console, rows: list[str], limit: int = 20) -> None:
    for row in rows[:limit]:
        console.print(f"  {row}", markup=False, highlight=False)
    if len(rows) > limit:
        console.print(f"  ... and {len(rows) - limit} more")


def _class_table(report: AuditReport) -> Table:
    table = Table(title="classes", title_justify="left")
    for column in ("class", "images", "readable", "top size", "formats", "JPEG quality"):
        table.add_column(column, justify="right" if column in ("images", "readable") else "left")
    table.add_column("median file size", justify="right")
    for name, stats in report["per_class"].items():
        top_size = next(iter(stats["sizes"]), "-")
        formats = ", ".join(f"{k} {v}" for k, v in list(stats["formats"].items())[:3]) or "-"
        quality = ", ".join(f"q{k}: {v}" for k, v in list(stats["jpeg_quality"].items())[:3])
        table.add_row(
            name,
            str(stats["count"]),
            str(stats["readable"]),
            top_size,
            formats,
            quality or "-",
            fmt_number(stats["file_size"]["median"], "bytes"),
        )
    return table


def _group_table(title: str, groups: dict[str, dict[str, GroupStats]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("group", "class", "images", "formats", "JPEG q (median)"):
        table.add_column(column, justify="right" if column == "images" else "left")
    for column in ("megapixels", "file size", "graphic"):
        table.add_column(column, justify="right")
    for name, classes in groups.items():
        for label, g in classes.items():
            formats = ", ".join(f"{k} {v:.0%}" for k, v in g["formats"].items())
            quality = g["jpeg_quality_median"]
            table.add_row(
                name or "-",
                label,
                str(g["images"]),
                formats,
                "-" if quality is None else f"{quality:.0f}",
                f"{g['pixels_median'] / 1e6:.2f}",
                fmt_number(g["file_size_median"], "bytes"),
                f"{g['graphic_share']:.0%}",
            )
    return table


def _print_shortcuts(console: Console, shortcuts: list[Shortcut]) -> None:
    decisive = [s for s in shortcuts if s["decisive"]]
    if not shortcuts:
        return
    console.print(
        "[bold]could decide a verdict[/bold] (a property alone separating real from fake, "
        f"balanced accuracy >= 0.75): {len(decisive) or 'none'}"
    )
    rows = [
        f"{s['scope']}: {s['attribute']} alone {s['balanced_accuracy']:.2f} "
        f"(real: {s['real'] or '-'}; fake: {s['fake'] or '-'})"
        for s in sorted(
            decisive, key=lambda s: (s["scope"] != "all images", -s["balanced_accuracy"])
        )
    ]
    _truncated_list(console, rows, limit=30)


def print_audit(report: AuditReport, console: Console | None = None) -> None:
    """Readable summary of an :func:`audit_source` report."""
    console = console or messages_console()
    console.print(
        f"[bold]Audit of {report['source']}[/bold]: {report['total']} images, "
        f"fingerprint {report['fingerprint'][:12]}",
        highlight=False,
    )
    console.print(_class_table(report))

    warnings = report["bias_warnings"]
    console.print(f"[bold]bias warnings[/bold]: {len(warnings) or 'none'}")
    for warning in warnings:
        console.print(f"  [yellow]![/yellow] {warning}", highlight=False)
    for title, groups in (
        ("by source", report.get("per_source", {})),
        ("by generator", report.get("per_generator", {})),
    ):
        if groups:
            console.print(_group_table(title, groups))
    _print_shortcuts(console, report.get("shortcuts", []))

    counts = report["duplicates"]["counts"]
    console.print(
        "[bold]duplicates[/bold]: "
        f"{counts['within_class_groups']} exact groups within a class "
        f"({counts['within_class_images']} images), "
        f"{counts['across_class_groups']} exact groups across classes "
        f"({counts['across_class_images']} images), "
        f"{counts['near_groups']} near-duplicate groups ({counts['near_images']} images, "
        f"{counts['near_across_class_groups']} across classes; phash distance <= "
        f"{report.get('near_threshold', '?')}), "
        f"{counts['redundant_copies']} redundant copies",
        highlight=False,
    )
    if counts["across_class_groups"]:
        console.print(
            "  [red]identical images are labelled both real and fake; fix the labels[/red]"
        )
    if report["has_splits"]:
        leaks = report["leaks"]
        console.print(f"[bold]split leaks[/bold]: {len(leaks) or 'none'}")
        _truncated_list(console, [f"{', '.join(x['splits'])}: {x['paths'][0]}" for x in leaks])

    unreadable = report["unreadable"]
    console.print(f"[bold]unreadable[/bold]: {len(unreadable) or 'none'}")
    _truncated_list(console, [f"{u['path']}: {u['reason']}" for u in unreadable])
    skipped = report.get("skipped", [])
    if skipped:
        console.print(f"[bold]skipped (not images)[/bold]: {len(skipped)}")
        _truncated_list(console, [f"{s['path']}: {s['reason']}" for s in skipped], limit=5)


def format_audit(report: AuditReport, width: int = 120) -> str:
    """The :func:`print_audit` summary as plain text."""
    buffer = io.StringIO()
    print_audit(report, Console(file=buffer, width=width, no_color=True, highlight=False))
    return buffer.getvalue()
