"""`fakescope data audit|split|sources`: inspect a data set, split it, build one from clones."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakescope.cli.common import console, out

data_app = typer.Typer(help="Inspect and split data sets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """`fakescope data ...`."""
    app.add_typer(data_app, name="data")


@data_app.command("audit")
def data_audit(
    source: Annotated[str, typer.Argument(help="Folder, .zip/.tar archive or CSV manifest.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report here.")
    ] = None,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Counts, sizes, formats, JPEG qualities, duplicates, leaks and unreadable files."""
    # heavy: numpy and Pillow
    from fakescope.data.audit import audit_source, print_audit
    from fakescope.data.sources import open_source

    report = audit_source(open_source(source), near_threshold=near_threshold, progress=not quiet)
    print_audit(report, out)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
        console.print(f"full report: {json_out}")


@data_app.command("split")
def data_split(
    source: Annotated[str, typer.Argument(help="Folder, archive or CSV to split.")],
    out_path: Annotated[Path, typer.Option("--out", help="Manifest CSV to write.")],
    val: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    folds: Annotated[int | None, typer.Option(help="K-fold instead of train/val/test.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Stratified, group-aware train/val/test (or k-fold) manifest; duplicates stay together."""
    # heavy: numpy and Pillow
    from fakescope.data.sources import open_source
    from fakescope.data.split_assignment import split_source

    items = split_source(
        open_source(source),
        out=out_path,
        val=val,
        test=test,
        folds=folds,
        seed=seed,
        near_threshold=near_threshold,
        progress=not quiet,
    )
    table = Table("split", "real", "fake", "total")
    counts = Counter((it.split, it.label) for it in items)
    for split in sorted({it.split for it in items}, key=str):
        real, fake = counts[(split, 0)], counts[(split, 1)]
        table.add_row(str(split), str(real), str(fake), str(real + fake))
    out.print(table)
    console.print(f"manifest: {out_path}")


@data_app.command("sources")
def data_sources(
    sources_files: Annotated[
        list[str],
        typer.Argument(help="Sources files (YAML), or shipped ones by name: modern, real."),
    ],
    clones: Annotated[
        Path, typer.Option("--clones", help="Folder of clones: DIR/owner+name or DIR/owner/name.")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Manifest CSV to write.")],
    card: Annotated[
        Path | None, typer.Option(help="Dataset card (markdown); default: beside --out, .md.")
    ] = None,
    near_threshold: Annotated[int, typer.Option(help="Max phash Hamming distance.")] = 4,
    allow_commit_mismatch: Annotated[
        bool, typer.Option(help="Build from clones at other commits (a warning on the card).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Labelled manifest from local clones of the repositories a sources file lists, without
    exact or near duplicates, and its dataset card."""
    # heavy: numpy, Pillow, pydantic and PyYAML
    from fakescope.data.repo_sources import build_manifest

    result = build_manifest(
        sources_files,
        clones,
        out_path,
        card=card,
        near_threshold=near_threshold,
        allow_commit_mismatch=allow_commit_mismatch,
        progress=not quiet,
    )
    for warning in result.warnings:
        console.print(f"[yellow]{warning}[/]", highlight=False, soft_wrap=True)
    table = Table("source", "generator", "images", "removed")
    kept = Counter((it.source or "", it.generator or "") for it in result.items)
    removed = Counter((r.source, r.generator or "") for r in result.removed)
    for key in sorted(set(kept) | set(removed)):
        table.add_row(key[0], key[1] or "(real)", str(kept[key]), str(removed[key]))
    out.print(table)
    for reason, n in Counter(r.reason for r in result.removed).most_common():
        console.print(f"removed {n}: {reason}", highlight=False)
    console.print(f"manifest: {out_path} ({len(result.items)} images)", highlight=False)
