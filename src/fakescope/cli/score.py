"""`fakescope score`: very large collections on Ray, into Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fakescope.cli.common import BundleOpt, console


def register(app: typer.Typer) -> None:
    """`fakescope score`."""
    app.command("score")(score)


def score(
    sources: Annotated[
        list[str],
        typer.Argument(metavar="SOURCE", help="Image files, folders, archives or CSV manifests."),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    bundle: BundleOpt = None,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster: 'auto' or HOST:PORT; default: a local Ray instance."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch and actor call.")] = 256,
    workers: Annotated[
        int | None, typer.Option(help="Scoring actors (default: one per CPU of the cluster).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Score very large image collections on Ray into Parquet (path, p_fake, label, unsure,
    error)."""
    # heavy: torch and pyarrow
    from fakescope.batch_score import score_to_parquet

    summary = score_to_parquet(
        sources,
        out_file,
        bundle=bundle,
        ray_address=ray_address,
        batch_size=batch_size,
        workers=workers,
        progress=not quiet,
    )
    console.print(
        f"scored {summary.n} images in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.0f} img/s): {summary.out}"
    )
    if summary.n_errors:
        console.print(f"[yellow]{summary.n_errors} inputs could not be read (see 'error')[/]")
