"""The robustness page (report.html) and the rows of the robustness tables.

Built with fakescope.evaluation.report's public API (ReportBuilder and its HTML helpers), so it
looks like every other fakescope report. The table has one column block per model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fakescope.evaluation.report import (
    ReportBuilder,
    definition_list,
    figure_html,
    paragraph,
    table_html,
)
from fakescope.models.attacks import eps_label
from fakescope.robustness.results import RobustnessResult, RobustnessRow

BLOCK = (
    ("accuracy", "acc"),
    ("accuracy_drop", "Δacc"),
    ("roc_auc", "AUC"),
    ("roc_auc_drop", "ΔAUC"),
)


def condition_label(row: RobustnessRow) -> tuple[str, str]:
    """(condition, severity text) for a robustness row."""
    if row["kind"] == "clean":
        return "clean", ""
    if row["kind"] == "attack":
        return row["name"], f"eps {eps_label(row['severity'] or 0.0)}"
    return row["name"], f"{row['unit']} {row['severity']:g}"


def table_rows(
    result: RobustnessResult, rows: list[RobustnessRow]
) -> tuple[list[str], list[list[object]]]:
    """Headers and rows: condition, severity, then (acc, Δacc, AUC, ΔAUC) per model."""
    names = [m["name"] for m in result["models"]]
    multi = len(names) > 1
    headers = ["condition", "severity"] + [
        f"{name} {label}" if multi else label for name in names for _, label in BLOCK
    ]
    body = []
    for row in rows:
        cells: list[object] = list(condition_label(row))
        for name in names:
            res = row["results"][name]
            cells += [res.get(key) for key, _ in BLOCK]
        body.append(cells)
    return headers, body


def source_table_rows(
    result: RobustnessResult, name: str
) -> tuple[list[str], list[list[object]]] | None:
    """Model `name`'s accuracy and its drop from clean per source (one column pair each)
    under every corruption, when the images came from several named sources; else None."""
    rows = list(result["rows"])
    sources = list(rows[0]["results"][name].get("by_source", {}))
    if not sources:
        return None
    headers = ["condition", "severity"] + [
        f"{source} {label}" for source in sources for label in ("acc", "Δacc")
    ]
    body = []
    for row in rows:
        cells: list[object] = list(condition_label(row))
        by_source = row["results"][name].get("by_source", {})
        for source in sources:
            cell = by_source.get(source)
            cells += [None, None] if cell is None else [cell["accuracy"], cell["accuracy_drop"]]
        body.append(cells)
    return headers, body


def robustness_report(
    result: RobustnessResult, plots: Mapping[str, str | os.PathLike], out: Path
) -> ReportBuilder:
    """The robustness page: summary, corruption table and plot, attack table, plot, examples."""
    builder = ReportBuilder("fakescope robustness", subtitle=str(result["source"]))
    builder.add_section("Summary", _summary(result), id="summary")
    builder.add_section("Corruptions", _corruptions(result, plots), id="corruptions")
    by_source = _by_source(result)
    if by_source:
        builder.add_section("By source", by_source, id="by-source")
    if result["attacks"]["rows"]:
        builder.add_section("Attacks", _attacks(result, plots, out), id="attacks")
    return builder


def _summary(result: RobustnessResult) -> str:
    """The data, the subsample and the models with their thresholds."""
    return definition_list(
        [
            ("data", result["source"]),
            ("split", result.get("split") or "all labelled images"),
            ("images", f"{result['n']} ({result['n_real']} real, {result['n_fake']} fake)"),
            (
                "subsample",
                f"stratified, seed {result['seed']}" if result.get("max_images") else "none",
            ),
            ("unreadable (skipped)", len(result.get("unreadable", []))),
            *(
                (
                    f"model {m['name']}",
                    f"{m['bundle']} ({m['architecture']}, threshold {m['threshold']:.4f})",
                )
                for m in result["models"]
            ),
        ]
    )


def _corruptions(result: RobustnessResult, plots: Mapping[str, str | os.PathLike]) -> str:
    """How corruptions are applied, the table (clean row first) and the plots."""
    headers, body = table_rows(result, list(result["rows"]))
    return (
        paragraph(
            "Each corruption is applied to the decoded image at its original resolution, then the "
            "bundle's preprocessing. Accuracy uses each bundle's own threshold (chosen on its "
            "validation data, never re-tuned on corrupted images); Δ = clean minus corrupted."
        )
        + table_html(headers, body, row_classes=["mean"] + [""] * (len(body) - 1))
        + (
            figure_html(plots["robustness"], "Accuracy and ROC-AUC versus severity; dashed: clean.")
            if "robustness" in plots
            else ""
        )
        + (
            figure_html(plots["corruption_examples"], "One image under every condition.")
            if "corruption_examples" in plots
            else ""
        )
    )


def _by_source(result: RobustnessResult) -> str:
    """Per model, the corruption table split by source (empty for a single source)."""
    parts = []
    for model in result["models"]:
        table = source_table_rows(result, model["name"])
        if table is not None:
            title = f"<h3>{model['name']}</h3>" if len(result["models"]) > 1 else ""
            parts.append(title + table_html(*table, row_classes=["mean"] + [""] * len(table[1])))
    if not parts:
        return ""
    return paragraph(
        "The images came from several sources (the manifest's source column): accuracy "
        "and its drop from clean on each source's images, at the bundle's threshold. A "
        "corruption that costs little overall may cost much on one source."
    ) + "".join(parts)


def _attacks(result: RobustnessResult, plots: Mapping[str, str | os.PathLike], out: Path) -> str:
    """How the attacks were run, the table (clean row first), the plot and the examples."""
    attacks = result["attacks"]
    headers, body = table_rows(result, [result["rows"][0], *attacks["rows"]])
    step = attacks["step_size"]
    body_html = paragraph(
        f"White-box L-infinity attacks on each model through its own gradient: FGSM and "
        f"PGD ({attacks['steps']} steps, step size "
        f"{'2.5 eps / steps' if step is None else f'{step:g}'}, random start). They act on "
        "the model's input image in [0, 1] after the bundle's resize; adversarial images "
        "are scored as floats (not re-quantized to 8 bits)."
    ) + table_html(headers, body, row_classes=["mean"] + [""] * (len(body) - 1))
    if "attacks" in plots:
        body_html += figure_html(plots["attacks"], "Accuracy and ROC-AUC versus eps.")
    for model_name, per_attack in attacks.get("examples", {}).items():
        for attack_name, info in per_attack.items():
            grid = out / info["grid"]
            if grid.is_file():
                body_html += figure_html(
                    grid,
                    f"{model_name}, {attack_name} at eps {info['eps']:.4g}: clean, "
                    "adversarial, "
                    "amplified perturbation (grey = unchanged).",
                )
    return body_html
