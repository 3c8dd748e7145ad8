"""`fakescope zero-shot ...`: train the real-image coder, and build the detector bundle from it.

Thin: each command parses its options and calls the package's library functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fakescope.consoles import messages_console

app = typer.Typer(
    help="The zero-shot detector: a model of real photos only, and its coding-gap statistic.",
    no_args_is_help=True,
)
console = messages_console()


def register(parent: typer.Typer) -> None:
    """`fakescope zero-shot ...` (called by the kinds registry's `COMMANDS`)."""
    parent.add_typer(app, name="zero-shot")


RecipeOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML recipe (default: the shipped zero_shot recipe)."),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a recipe key: train.minutes=30")
]


@app.command("train")
def train(
    run_dir: Annotated[Path, typer.Option("--out", help="Run folder to create (or resume).")],
    config: RecipeOpt = None,
    overrides: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run's checkpoint (same recipe).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train the coder on random crops of the real photos (never a fake); a checkpoint every
    few steps, the held-out photos' bits per sub-pixel at the end."""
    # the library imports torch: kept out of `fakescope --help`
    from fakescope.kinds.zero_shot.recipe import load_recipe
    from fakescope.kinds.zero_shot.train import train_coder

    recipe = load_recipe(config, overrides)

    def report(step: int, bits: float, seconds: float) -> None:
        if not quiet and step % 25 == 0:
            console.print(f"step {step}: {bits:.3f} bits/sub-pixel, {seconds / 60:.1f} min")

    try:
        result = train_coder(recipe, run_dir, resume=resume, progress=report)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted; the last checkpoint is in {run_dir}[/]\nresume with: "
            f"fakescope zero-shot train --out {run_dir} --resume (and the same --config/--set)"
        )
        raise typer.Exit(130) from None
    test = "n/a" if result.test_bits is None else f"{result.test_bits:.3f}"
    console.print(
        f"{result.steps} steps in {result.seconds / 60:.1f} min; held-out real crops: "
        f"{test} bits/sub-pixel; weights in {run_dir}"
    )


@app.command("build")
def build(
    run_dir: Annotated[Path, typer.Option("--run", help="Run folder of zero-shot train.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    config: RecipeOpt = None,
    overrides: SetOpt = None,
    side: Annotated[int, typer.Option(help="Crop side read at native resolution.")] = 64,
    crops: Annotated[int, typer.Option(help="Crops per image.")] = 8,
    fpr: Annotated[float, typer.Option(help="False-positive rate on held-back reals.")] = 0.05,
    per_source: Annotated[int, typer.Option(help="Held-back real photos per source.")] = 60,
    two_sided: Annotated[
        bool,
        typer.Option(
            "--two-sided/--one-sided",
            help="Two-sided: flag images coded more expensively than real photos too, not "
            "only more cheaply (the statistic's distance from the real photos' median).",
        ),
    ] = True,
    readability: Annotated[
        str,
        typer.Option(
            help="Readability feature: h0 (the finest level's expected cost) or nll_ratio "
            "(its actual cost over the next level's); an image below the floor is unsure.",
        ),
    ] = "nll_ratio",
    readability_quantile: Annotated[
        float, typer.Option(help="The floor: this quantile of the held-back reals' feature...")
    ] = 0.02,
    readability_factor: Annotated[float, typer.Option(help="...times this factor.")] = 1.0,
    metrics: Annotated[
        Path | None,
        typer.Option(
            help="JSON file of figures measured on this coder (bench/zero_shot.py), written "
            "into the bundle and its card.",
        ),
    ] = None,
) -> None:
    """Fit the threshold on held-back real photos only and write the zero-shot bundle."""
    # the library imports torch: kept out of `fakescope --help`
    from fakescope.kinds.zero_shot.build import build_bundle, read_metrics
    from fakescope.kinds.zero_shot.recipe import load_recipe

    recipe = load_recipe(config, overrides)
    measured = read_metrics(metrics) if metrics is not None else None
    path = build_bundle(
        run_dir,
        out,
        recipe,
        side=side,
        crops=crops,
        fpr=fpr,
        per_source=per_source,
        two_sided=two_sided,
        readability=(readability, readability_quantile, readability_factor),
        metrics=measured,
    )
    console.print(f"bundle: {path} (fakescope info --bundle {path})")


@app.command("export")
def export(
    bundle: Annotated[str, typer.Option("--bundle", "-b", help="Zero-shot bundle or name.")],
    out: Annotated[Path, typer.Option("--out", help="ONNX file to write.")],
) -> None:
    """Export the coder and its coding-gap features (crops in, per-level NLL and entropy
    out) to ONNX, after a parity check against PyTorch."""
    # the library imports torch: kept out of `fakescope --help`
    from fakescope.bundle import resolve_bundle_path
    from fakescope.kinds.zero_shot.onnx_graph import export_zero_shot

    path = export_zero_shot(resolve_bundle_path(bundle), out)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
