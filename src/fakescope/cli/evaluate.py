"""The commands on labelled data: `evaluate`, `compare` and `explain` measure a detector;
`calibrate`, `unsure-band` and `domain` fit on it what the bundle stores (temperature, unsure
band, domain model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from fakescope.cli.common import (
    BundleOpt,
    Runtime,
    RuntimeOpt,
    StrictOpt,
    console,
    exit_if_unread,
    face_bundle,
    loading,
    out,
)
from fakescope.evaluation.tables import GROUP_COLUMNS, fmt, metrics_table_rows


def register(app: typer.Typer) -> None:
    """`fakescope evaluate`, `calibrate`, `unsure-band`, `domain`, `compare`, `explain`."""
    app.command("evaluate")(evaluate)
    app.command("calibrate")(calibrate)
    app.command("unsure-band")(unsure_band)
    app.command("domain")(domain)
    app.command("compare")(compare)
    app.command("explain")(explain)


class ThresholdPolicyOpt(str, Enum):
    bundle = "bundle"
    max_f1 = "max_f1"
    youden = "youden"
    target_fpr = "target_fpr"


def evaluate(
    sources: Annotated[
        list[str],
        typer.Argument(metavar="SOURCE", help="Labelled folders, archives or CSVs (one row each)."),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json, predictions.csv, report.html.")
    ],
    bundle: BundleOpt = None,
    split: Annotated[
        str | None, typer.Option(help="Only rows of this split (CSV manifests).")
    ] = None,
    val: Annotated[
        str | None,
        typer.Option("--val", help="Validation source: choose the threshold there, not on test."),
    ] = None,
    val_split: Annotated[
        str | None, typer.Option(help="Split of --val to use (default: 'val' if it has one).")
    ] = None,
    threshold_policy: Annotated[
        ThresholdPolicyOpt | None,
        typer.Option(help="bundle (default without --val) or how to choose it on --val."),
    ] = None,
    target_fpr: Annotated[
        float | None, typer.Option(help="FPR for --threshold-policy target_fpr (0.01).")
    ] = None,
    gallery: Annotated[
        int, typer.Option(help="Grad-CAM gallery: images per row (TP, FP, TN, FN, mistakes).")
    ] = 4,
    no_explain: Annotated[
        bool, typer.Option("--no-explain", help="No Grad-CAM gallery in the report.")
    ] = False,
    tsne_points: Annotated[
        int, typer.Option(help="t-SNE map of this many images (a random subsample).")
    ] = 3000,
    no_tsne: Annotated[bool, typer.Option("--no-tsne", help="No t-SNE map in the report.")] = False,
    compare_bundle: Annotated[
        Path | None,
        typer.Option("--compare", help="A second bundle: its t-SNE map beside this one's."),
    ] = None,
    no_provenance: Annotated[
        bool,
        typer.Option(
            "--no-provenance",
            help="Judge the pixels alone: ignore Content Credentials, metadata, watermarks.",
        ),
    ] = False,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Score each image's (or video frame's) largest face, cropped by the "
            "bundle's face crop policy; without --bundle, the face specialist if installed.",
        ),
    ] = False,
    fps: Annotated[float, typer.Option(help="Videos: frames sampled per second.")] = 2.0,
    max_frames: Annotated[int, typer.Option(help="Videos: at most this many frames.")] = 64,
    runtime: RuntimeOpt = Runtime.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Metrics with 95% CIs, coverage and risk, plots, Grad-CAM gallery, t-SNE map and
    report.html. Verdicts are predict's: pixels, domain and provenance.

    A folder of labelled videos (real/ and fake/ holding mp4, webm, mov...) is evaluated one
    row per video: its verdict is the mean p(fake) of its sampled frames (faces with --faces).
    """
    with loading():
        # heavy: torch
        from fakescope.detectors import load_detector
        from fakescope.evaluation.evaluate import evaluate as run_evaluation
        from fakescope.evaluation.report_sections import report_hooks
        from fakescope.video import VideoOptions

        video_options = VideoOptions(fps=fps, max_frames=max_frames, faces=faces)
        detector = load_detector(face_bundle(bundle, faces), runtime=runtime.value)
    hooks = report_hooks(
        gallery=0 if no_explain else gallery,
        tsne_points=0 if no_tsne else tsne_points,
        compare=compare_bundle,
    )
    metrics = run_evaluation(
        detector,
        sources,
        out_dir,
        split=split,
        progress=not quiet,
        val_source=val,
        val_split=val_split,
        threshold_policy=threshold_policy.value if threshold_policy else None,
        target_fpr=target_fpr,
        report_hooks=hooks,
        provenance=not no_provenance,
        faces=faces,
        video_options=video_options,
    )
    _print_evaluation(metrics, title=f"evaluation of {', '.join(sources)}")
    if metrics.get("faces"):
        found = metrics["faces"]
        console.print(
            f"faces: {found['with_face']} of {found['images']} images had a face to score; "
            "the others were scored whole",
            highlight=False,
        )
    if metrics.get("videos"):
        console.print(f"{metrics['videos']['n']} videos, one verdict each", highlight=False)
    if metrics["unreadable"]:
        console.print(f"[yellow]{len(metrics['unreadable'])} unreadable images skipped[/]")
    description = metrics["threshold_source"]["description"]
    console.print(f"threshold {metrics['threshold']:.4f} from {description}")
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.html'}")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in metrics["timings"].items())
    console.print(f"[dim]seconds per stage: {stages}[/]", highlight=False)


def _print_evaluation(metrics: Mapping[str, Any], title: str) -> None:
    table = Table("metric", "value", "95% CI", title=title)
    table.add_row("n", str(metrics["n"]), "")
    table.add_row("threshold", fmt(metrics["threshold"]), "")
    for label, value, interval in metrics_table_rows(metrics):
        table.add_row(label, fmt(value), interval)
    cm = metrics["confusion_matrix"]["rows_true_cols_pred"]
    table.add_row("confusion (true real)", f"pred real {cm[0][0]} / pred fake {cm[0][1]}", "")
    table.add_row("confusion (true fake)", f"pred real {cm[1][0]} / pred fake {cm[1][1]}", "")
    out.print(table)
    per_group = metrics.get("per_group")
    if per_group:
        groups = Table(per_group["by"], *(label for _, label in GROUP_COLUMNS))
        for row in [*per_group["rows"], per_group["mean"]]:
            groups.add_row(row["group"], *(fmt(row.get(k)) for k, _ in GROUP_COLUMNS))
        out.print(groups)
    _print_selective(metrics)
    oracle = metrics.get("oracle") or {}
    if oracle.get("accuracy") is not None:
        console.print(
            f"[dim]oracle (threshold tuned on this test data, not a valid estimate): "
            f"accuracy {oracle['accuracy']:.4f} at {oracle['best_threshold_on_test']:.4f}[/]"
        )


def _mistakes_table(by: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    """Confident mistakes in both directions, one row per source or generator."""
    table = Table(by, "reals", "called fake (sure)", "fakes", "called real (sure)")
    table.title = f"confident mistakes by {by}"
    for r in rows:
        accused = (
            f"{r['real_called_fake']} ({r['real_called_fake_share']:.1%})" if r["n_real"] else "-"
        )
        missed = (
            f"{r['fake_called_real']} ({r['fake_called_real_share']:.1%})" if r["n_fake"] else "-"
        )
        table.add_row(r["group"], str(r["n_real"]), accused, str(r["n_fake"]), missed)
    return table


def _print_selective(metrics: Mapping[str, Any]) -> None:
    """Coverage, risk and AURC overall; the provenance evidence when there was any."""
    selective = metrics.get("selective")
    if selective:
        o = selective["overall"]
        why = f"{o['unsure_band']} in the unsure band"
        if selective["domain_model"]:
            why += f", {o['out_of_domain']} out of domain"
        console.print(
            f"coverage {fmt(o['coverage'])} (answered confidently; {o['unsure']} of {o['n']} "
            f"unsure: {why})\n"
            f"risk     {fmt(o['risk'])} (errors among confident answers); confident wrong "
            f"{fmt(o['confident_wrong'])} of all images, reals called fake confidently "
            f"{fmt(o['real_called_fake_confidently'])} of reals, fakes called real "
            f"confidently {fmt(o.get('fake_called_real_confidently'))} of fakes\n"
            f"AURC     {fmt(o['aurc'])} (area under the risk-coverage curve; lower is better)",
            highlight=False,
        )
        for by, rows in selective.get("mistakes", {}).items():
            out.print(_mistakes_table(by, rows))
    provenance = metrics.get("provenance")
    if provenance and provenance["images_with_evidence"]:
        counts = ", ".join(f"{k} {v}" for k, v in provenance["counts"].items())
        console.print(
            f"provenance: {provenance['images_with_evidence']} images with evidence ({counts}); "
            f"{provenance['verdicts_changed']} verdicts changed by it",
            highlight=False,
        )


def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder to calibrate (updated in place).")],
    val_source: Annotated[str, typer.Argument(help="Labelled validation folder, archive or CSV.")],
    split: Annotated[
        str | None, typer.Option(help="Split of VAL_SOURCE (default: 'val' if it has one).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Fit the temperature on validation data and store it in the bundle (re-signed)."""
    # heavy: torch
    from fakescope.evaluation.calibration import calibrate_bundle, check_rewritable

    check_rewritable(bundle, val_source)  # the library's refusal, before anything loads
    result = calibrate_bundle(bundle, val_source, split=split, progress=not quiet)
    table = Table("", "before", "after", title=f"calibration on {result['n']} images")
    for key in ("temperature", "threshold", "ece", "log_loss", "accuracy"):
        table.add_row(key, fmt(result["before"][key]), fmt(result["after"][key]))
    out.print(table)
    console.print(f"bundle updated: {bundle} (decisions unchanged; probabilities recalibrated)")


def unsure_band(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (updated in place).")],
    val_source: Annotated[
        str, typer.Argument(help="Labelled validation data: folder, archive, CSV or manifest.")
    ],
    max_real_called_fake: Annotated[
        float, typer.Option(help="Share of real images that may be confidently called fake.")
    ] = 0.05,
    max_fake_called_real: Annotated[
        float, typer.Option(help="Share of fakes that may be confidently called real.")
    ] = 0.10,
    pooled: Annotated[
        bool, typer.Option("--pooled", help="Pool the sources instead of holding each to it.")
    ] = False,
    by_generator: Annotated[
        bool,
        typer.Option(
            "--by-generator",
            help="Hold every generator's fakes (the manifest's generator column) to the "
            "fakes' budget, instead of every source's.",
        ),
    ] = False,
    split: Annotated[
        str | None, typer.Option(help="Split of VAL_SOURCE (default: 'val' if it has one).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Widen the unsure band until, on validation data, each source stays within a budget of
    confident mistakes (real images called fake above all); store it in the bundle."""
    # heavy: torch (calibration), numpy (unsure_band)
    from fakescope.evaluation.calibration import check_rewritable
    from fakescope.evaluation.unsure_band import check_budgets, fit_bundle_band

    try:
        check_budgets(max_real_called_fake, max_fake_called_real)
    except ValueError as exc:
        raise typer.BadParameter(f"--{str(exc).replace('_', '-')}") from exc
    check_rewritable(bundle, val_source, command="unsure-band")
    fit = fit_bundle_band(
        bundle,
        val_source,
        split=split,
        max_real_called_fake=max_real_called_fake,
        max_fake_called_real=max_fake_called_real,
        by_source=not pooled,
        by_generator=by_generator,
        progress=not quiet,
    )
    table = Table(
        "images",
        "n",
        "reals called fake",
        "fakes called real",
        "answered confidently",
        title=f"unsure band [{fit['band'][0]:.3f}, {fit['band'][1]:.3f}], threshold "
        f"{fit['threshold']:.3f}",
    )
    rows = [
        *fit["sources"].items(),
        *((f"generator {name}", r) for name, r in fit.get("generators", {}).items()),
        ("all (fitted)", fit["fitted"]),
        ("all (cross-fit estimate)", fit["cross_fit"]),
    ]
    for name, r in rows:
        table.add_row(
            name,
            str(r["n"]),
            fmt(r["real_called_fake"]),
            fmt(r["fake_called_real"]),
            fmt(r["coverage"]),
        )
    out.print(table)
    console.print(
        f"bundle updated: {bundle} (labels unchanged; p(fake) in the band is now 'unsure')"
    )


def domain(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (updated in place).")],
    source: Annotated[
        str, typer.Argument(help="Its training data: folder, archive, CSV or RUN/manifest.csv.")
    ],
    max_images: Annotated[int, typer.Option(help="At most this many training images.")] = 6000,
    quantile: Annotated[
        float, typer.Option(help="Share of validation images that count as in-domain.")
    ] = 0.95,
    dims: Annotated[int, typer.Option(help="PCA dimensions of the feature space.")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Describe the bundle's training data in its feature space, so that predictions say
    'unsure: out of domain' for images unlike anything it was trained on."""
    # heavy: torch
    from fakescope.evaluation.domain import fit_bundle_domain

    if not 0.5 <= quantile < 1.0:
        raise typer.BadParameter("--quantile must be in [0.5, 1)")
    fit = fit_bundle_domain(
        bundle, source, max_images=max_images, quantile=quantile, dims=dims, progress=not quiet
    )
    console.print(
        f"domain model: {fit.dims} dimensions, fitted on {fit.n_train} images; threshold "
        f"{fit.threshold:.3f} keeps {fit.in_domain_val:.1%} of {fit.n_val} validation images "
        f"in-domain\nbundle updated: {fit.bundle}"
    )
    for name, share in fit.in_domain_by_source.items():
        console.print(f"  {name}: {share:.1%} of its validation images in-domain")


def compare(
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH", help="BUNDLE... SOURCE: bundles, then one labelled source."),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for metrics.json, report.html.")],
    split: Annotated[
        str | None, typer.Option(help="Only rows of this split (CSV manifests).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Compare bundles on the same data: one metrics table, overlaid ROC and PR curves."""
    # heavy: torch
    from fakescope.evaluation.evaluate import compare_models

    if len(paths) < 2:
        raise typer.BadParameter("give at least one BUNDLE and then the SOURCE")
    result = compare_models(paths[:-1], paths[-1], out_dir, split=split, progress=not quiet)
    keys = ("n", "threshold", "accuracy", "f1", "roc_auc", "average_precision", "eer", "ece")
    table = Table("model", *keys, title=f"comparison on {paths[-1]}")
    for model in result["models"]:
        table.add_row(model["name"], *(fmt(model["metrics"][k]) for k in keys))
    out.print(table)
    console.print(f"metrics: {out_dir / 'metrics.json'}\nreport:  {out_dir / 'report.html'}")


def explain(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or archives.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Grad-CAM PNGs.")],
    bundle: BundleOpt = None,
    layers: Annotated[
        list[str] | None, typer.Option("--layers", help="Layer(s) for (multi-layer) Grad-CAM.")
    ] = None,
    faces: Annotated[
        bool,
        typer.Option(
            "--faces",
            help="Explain the largest face of each image (the crop `predict --faces` scores); "
            "without --bundle, the shipped face specialist if installed.",
        ),
    ] = False,
    strict: StrictOpt = False,
) -> None:
    """Grad-CAM overlays: where in each image the detector found evidence of 'fake'. Exit
    status 1 when no image could be read (--strict: when any could not)."""
    # heavy: torch
    from fakescope.data.sources import collect_inputs
    from fakescope.detectors import load_detector
    from fakescope.evaluation.explain import explain_files
    from fakescope.faces import FaceSelector

    detector = load_detector(face_bundle(bundle, faces), runtime="torch")
    detector.require("explain", "Grad-CAM")  # before any image is read
    images, problems = collect_inputs(paths)
    selector = FaceSelector(detector.face_policy) if faces else None
    written = explain_files(detector, images, out_dir, layers or None, faces=selector)
    console.print(f"wrote {len(written)} Grad-CAM overlays to {out_dir}")
    # explain_files warns with the reason for each image it skips; count them here.
    skipped = len(images) - len(written)
    exit_if_unread(problems, len(images) + len(problems), strict, unnamed=skipped)
