"""`fakescope provenance`: what each file's Content Credentials, metadata and watermarks say."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakescope.cli.common import StrictOpt, exit_if_unread, out
from fakescope.errors import FakescopeError


def register(app: typer.Typer) -> None:
    """`fakescope provenance`."""
    app.command("provenance")(provenance)


class ProvenanceFormat(str, Enum):
    table = "table"
    json = "json"


def provenance(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or archives.")],
    fmt: Annotated[ProvenanceFormat, typer.Option("--format", "-f")] = ProvenanceFormat.table,
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust",
            help="PEM file of extra C2PA trust anchors (repeatable); the official C2PA "
            "trust lists are always used.",
        ),
    ] = None,
    watermark: Annotated[
        bool, typer.Option(help="Look for the Stable Diffusion watermark (lossless files).")
    ] = True,
    strict: StrictOpt = False,
) -> None:
    """Content Credentials (C2PA), XMP/IPTC labels, generator metadata, watermarks and
    camera EXIF per file: what each says and how far it can be trusted. Offline: remote
    manifests are reported, never fetched. Files without provenance are listed with none
    (most real images carry none: that is no evidence of anything). Exit status 1 when no
    file could be read (--strict: when any could not)."""
    # heavy: numpy and Pillow
    from fakescope.provenance import load_trust_anchors, read_paths

    try:
        anchors = load_trust_anchors(list(trust or []))
    except (OSError, ValueError) as exc:
        raise FakescopeError(f"--trust: {exc}") from None
    results = read_paths(paths, trust_anchors=anchors, watermark=watermark)
    if fmt is ProvenanceFormat.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        table = Table()
        table.add_column("path", overflow="fold", ratio=2)
        for name in ("signal", "claim", "trust"):
            table.add_column(name, no_wrap=True)
        table.add_column("by", ratio=1)
        table.add_column("detail", ratio=3)
        for r in results:
            if r.error:
                table.add_row(r.path, "-", "-", "-", "-", f"error: {r.error}")
            elif not r.evidence:
                note = "; ".join(r.notes) or "no provenance found"
                table.add_row(r.path, "-", "-", "-", "-", note)
            for e in r.evidence:
                table.add_row(r.path, e.signal, e.claim, e.trust or "-", e.by or "-", e.detail)
        out.print(table)
    exit_if_unread([(r.path, r.error) for r in results if r.error], len(results), strict)
