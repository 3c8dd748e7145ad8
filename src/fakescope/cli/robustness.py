"""`fakescope robustness`: accuracy under corruptions and attacks, one or more detectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fakescope.cli.common import Runtime, RuntimeOpt, console, face_bundle, out
from fakescope.evaluation.tables import fmt


def register(app: typer.Typer) -> None:
    """`fakescope robustness`."""
    app.command("robustness")(robustness)


def robustness(
    source: Annotated[str, typer.Argument(help="Labelled folder, archive or CSV.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for robustness.json, plots, report.html.")
    ],
    bundles: Annotated[
        list[Path] | None,
        typer.Option("--bundle", "-b", help="Bundle (repeat to compare; default: shipped)."),
    ] = None,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", help="More bundles for a before/after table.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only rows of this split (CSVs).")] = None,
    max_images: Annotated[
        int | None, typer.Option(help="Stratified, seeded subsample of this many images.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsample, noise and PGD.")] = 0,
    corruptions: Annotated[
        str | None, typer.Option(help="Comma list, 'all' (default) or 'none'.")
    ] = None,
    severities: Annotated[
        list[str] | None, typer.Option(help="NAME=V1,V2 (repeatable), e.g. jpeg=90,50.")
    ] = None,
    attacks: Annotated[str | None, typer.Option(help="fgsm,pgd (default: none).")] = None,
    eps: Annotated[str | None, typer.Option(help="L-inf budgets, e.g. 0.5/255,2/255,0.08.")] = None,
    steps: Annotated[int, typer.Option(help="PGD steps.")] = 10,
    step_size: Annotated[
        str | None, typer.Option(help="PGD step (default 2.5*eps/steps), e.g. 0.5/255.")
    ] = None,
    examples: Annotated[int, typer.Option(help="Attack example images per attack.")] = 4,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 128,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Corrupt and score each image's largest face (the first bundle's face crop "
            "policy) instead of the whole image.",
        ),
    ] = False,
    runtime: RuntimeOpt = Runtime.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Accuracy and ROC-AUC under corruptions (and FGSM/PGD attacks); table, plots, report."""
    # heavy: torch
    from fakescope.detectors import load_detector
    from fakescope.evaluation.evaluate import model_names
    from fakescope.robustness.report import source_table_rows, table_rows
    from fakescope.robustness.sweep import (
        DEFAULT_EPS,
        RobustnessConfig,
        parse_list,
        parse_number,
        parse_severities,
    )
    from fakescope.robustness.sweep import robustness as run_robustness

    paths: list[Path | str] = [*(bundles or []), *(compare or [])]
    if faces and not paths:
        paths = [str(face_bundle(None, faces))]
    detectors = [load_detector(p, runtime=runtime.value) for p in paths]
    config = RobustnessConfig(
        severities=parse_severities(corruptions, severities),
        attacks=tuple(parse_list(attacks)),
        eps=tuple(parse_number(e) for e in parse_list(eps)) if eps else DEFAULT_EPS,
        steps=steps,
        step_size=parse_number(step_size) if step_size else None,
        max_images=max_images,
        seed=seed,
        split=split,
        batch_size=batch_size,
        examples=examples,
        faces=detectors[0].face_policy if faces and detectors else None,
    )
    detectors = detectors or [load_detector(runtime=runtime.value)]
    names = model_names(paths) if paths else ["default"]
    result = run_robustness(detectors, source, out_dir, config, names=names, progress=not quiet)

    all_rows = [*result["rows"], *result["attacks"]["rows"]]
    headers, body = table_rows(result, all_rows)
    table = Table(*headers, title=f"robustness on {result['n']} images of {source}")
    for row in body:
        table.add_row(*(fmt(v) for v in row))
    out.print(table)
    for model in result["models"]:
        by_source = source_table_rows(result, model["name"])
        if by_source is not None:
            per_source = Table(*by_source[0], title=f"{model['name']}: accuracy by source")
            for row in by_source[1]:
                per_source.add_row(*(fmt(v) for v in row))
            out.print(per_source)
    console.print(f"results: {out_dir / 'robustness.json'}\nreport:  {out_dir / 'report.html'}")
