"""The commands on one bundle: `export` it to ONNX, `info`: verify it and print its card."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from fakescope.cli.common import BundleOpt, console, out


def register(app: typer.Typer) -> None:
    """`fakescope export`, `fakescope info`."""
    app.command("export")(export)
    app.command("info")(info)


class ExporterOpt(str, Enum):
    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


def export(
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The .onnx file to write (BUNDLE/model.onnx: used by "
            "--runtime onnx with that bundle).",
        ),
    ],
    bundle: BundleOpt = None,
    check_images: Annotated[
        list[str] | None,
        typer.Option(
            "--check-images",
            help="Images, folders or archives for the parity check (default: synthetic images).",
        ),
    ] = None,
    check_n: Annotated[int, typer.Option(help="Images used by the parity check.")] = 128,
    tolerance: Annotated[float, typer.Option(help="Max |p_torch - p_onnx| allowed.")] = 1e-4,
    exporter: Annotated[
        ExporterOpt, typer.Option(help="auto: torch's dynamo exporter, else TorchScript.")
    ] = ExporterOpt.auto,
) -> None:
    """Export a detector to ONNX (dynamic batch, bundle metadata inside), parity-checked."""
    # heavy: torch
    from fakescope.kinds.single.export import export_onnx

    result = export_onnx(
        bundle,
        out_path,
        exporter=exporter.value,
        check_images=check_images,
        check_n=check_n,
        tolerance=tolerance,
    )
    parity = result.parity
    console.print(
        f"wrote {result.path} ({result.path.stat().st_size / 1e6:.1f} MB, {result.exporter} "
        f"exporter, opset {result.opset}) in {result.seconds:.1f} s\n"
        f"parity on {parity.n} {parity.source} images: max |Δp| {parity.max_abs_diff_p:.2e}, "
        f"max |Δlogit| {parity.max_abs_diff_logit:.2e} (tolerance {parity.tolerance:.0e})",
        soft_wrap=True,
    )


def info(bundle: BundleOpt = None) -> None:
    """Verify a bundle and print its model card."""
    # heavy: torch (fakescope.bundle), markdown-it (rich.markdown)
    from rich.markdown import Markdown

    from fakescope.bundle import CARD_FILE, read_meta, resolve_bundle_path

    path = resolve_bundle_path(bundle)
    read_meta(path)  # verifies a bundle of any kind (weights or members)
    out.print(Markdown((Path(path) / CARD_FILE).read_text()))
