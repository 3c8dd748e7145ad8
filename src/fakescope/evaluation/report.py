"""One self-contained HTML report page: inline CSS, images as data URIs, no scripts.

`ReportBuilder` holds an ordered list of sections, each rendered as
``<section id="...">`` between ``<!-- section:ID -->`` markers. Other steps add to it
(`add_section`, `add_table`, `add_image`) before it is written, once. All text is escaped;
only HTML built here is trusted.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fakescope import __version__
from fakescope.evaluation.tables import GROUP_COLUMNS as GROUP_COLUMNS
from fakescope.evaluation.tables import METRIC_ROWS as METRIC_ROWS
from fakescope.evaluation.tables import _interval, fmt
from fakescope.evaluation.tables import metrics_table_rows as metrics_table_rows
from fakescope.verdict.prediction import evidence_text

# Sections every evaluation report has, in page order (placeholders included).
EVALUATION_SECTIONS = (
    "summary",
    "metrics",
    "per-group",
    "selective-risk",
    "plots",
    "per-class",
    "confusion",
    "provenance",
    "oracle",
    "explanations",
    "embeddings",
)
PLACEHOLDERS = {
    "explanations": (
        "Explanation gallery",
        "Grad-CAM overlays of true/false positives/negatives and of the most confident "
        "mistakes were not made for this report (fakescope evaluate --no-explain, or "
        "evaluate() without report_sections.ExplanationSection).",
    ),
    "embeddings": (
        "Embeddings (t-SNE)",
        "The t-SNE map of the detector's features was not made for this report (fakescope "
        "evaluate --no-tsne, or evaluate() without report_sections.EmbeddingSection).",
    ),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9;line-height:1.45}
header{background:#1d2330;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:22px}header p{margin:0;color:#c5cad3;font-size:13px}
nav{padding:8px 32px;background:#e8ebf0;font-size:13px}nav a{margin-right:14px;color:#2a4d8f}
main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:14px 20px;
margin:16px 0}
h2{font-size:18px;margin:0 0 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #dde1e7;padding:4px 10px;text-align:left}
th{background:#f0f2f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.mean td{font-weight:600;background:#f7f8fa}
figure{display:inline-block;margin:6px 12px 12px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555;max-width:560px}
.warning{border-left:5px solid #d9822b;background:#fff7ed}
.placeholder{color:#666;font-style:italic}
.verdict{font-weight:600}.verdict.fake{color:#b03a2e}.verdict.real{color:#1e8449}
.verdict.unsure{color:#7e5109}.leaning{color:#666;font-size:11px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0;font-size:14px}
dt{font-weight:600}dd{margin:0}
"""

_ID = re.compile(r"[^a-z0-9]+")


def escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def slug(title: str) -> str:
    return _ID.sub("-", title.lower()).strip("-") or "section"


def image_data_uri(image: str | os.PathLike | bytes) -> str:
    """A PNG (path or bytes) as a ``data:image/png;base64,...`` URI."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_html(image: str | os.PathLike | bytes, caption: str = "", alt: str = "") -> str:
    caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img src="{image_data_uri(image)}" alt="{escape(alt or caption)}">'
        f"{caption_html}</figure>"
    )


class Html(str):
    """A table cell's markup, already escaped: `table_html` puts it in as it is."""


def table_html(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    row_classes: Sequence[str] | None = None,
) -> str:
    """An escaped table (`Html` cells are kept as they are); numbers are right-aligned and
    formatted with :func:`fmt`."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(
            f'<td class="num">{escape(fmt(v))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{v if isinstance(v, Html) else escape(fmt(v))}</td>"
            for v in row
        )
        cls = row_classes[index] if row_classes and row_classes[index] else ""
        body.append(f'<tr class="{escape(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def definition_list(pairs: Sequence[tuple[str, object]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(fmt(v))}</dd>" for k, v in pairs)
    return f"<dl>{items}</dl>"


def paragraph(text: str, cls: str = "") -> str:
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


@dataclass
class Section:
    id: str
    title: str
    body: str  # trusted HTML built with the helpers above
    css_class: str = ""

    def render(self) -> str:
        cls = f' class="{escape(self.css_class)}"' if self.css_class else ""
        return (
            f"<!-- section:{self.id} -->\n"
            f'<section id="{escape(self.id)}"{cls}>\n<h2>{escape(self.title)}</h2>\n'
            f"{self.body}\n</section>\n<!-- /section:{self.id} -->"
        )


@dataclass
class ReportBuilder:
    """An HTML report assembled section by section; `write` produces one standalone file."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def add_section(
        self, title: str, html_body: str = "", *, id: str | None = None, css_class: str = ""
    ) -> str:
        """Add a section of trusted HTML (or replace the one with this id, keeping its place).

        Returns the section's id (derived from the title when not given).
        """
        section = Section(id or slug(title), title, html_body, css_class)
        for index, existing in enumerate(self.sections):
            if existing.id == section.id:
                self.sections[index] = section
                return section.id
        self.sections.append(section)
        return section.id

    def add_text(self, title: str, text: str, *, id: str | None = None) -> str:
        return self.add_section(title, paragraph(text), id=id)

    def add_table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        id: str | None = None,
        note: str = "",
    ) -> str:
        body = (paragraph(note) if note else "") + table_html(headers, rows)
        return self.add_section(title, body, id=id)

    def add_image(
        self,
        title: str,
        image: str | os.PathLike | bytes,
        caption: str = "",
        *,
        id: str | None = None,
        section: str | None = None,
    ) -> str:
        """Embed a PNG: appended to section `section` if it exists, else a new section."""
        figure = figure_html(image, caption, alt=title)
        target = self.section(section) if section else None
        if target is not None:
            if target.css_class == "placeholder":  # the first real content replaces the note
                target.body, target.css_class = "", ""
            target.body += figure
            return target.id
        return self.add_section(title, figure, id=id or section)

    def add_placeholder(self, section_id: str, title: str, text: str) -> str:
        return self.add_section(
            title, paragraph(text, "placeholder"), id=section_id, css_class="placeholder"
        )

    def render(self) -> str:
        nav = " ".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in self.sections)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        subtitle = escape(self.subtitle + (" · " if self.subtitle else ""))
        body = "\n".join(s.render() for s in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{escape(self.title)}</h1>"
            f"<p>{subtitle}fakescope {escape(__version__)} · {escape(stamp)}</p></header>\n"
            f"<nav>{nav}</nav>\n<main>\n{body}\n<!-- /sections -->\n</main>\n</body>\n</html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)
        return path


# -- evaluation report ---------------------------------------------------------------------
SELECTIVE_COLUMNS = (
    ("n", "n"),
    ("coverage", "coverage"),
    ("risk", "risk"),
    ("confident_wrong", "confident wrong (of all)"),
    ("real_called_fake_confidently", "reals called fake confidently (of reals)"),
    ("fake_called_real_confidently", "fakes called real confidently (of fakes)"),
    ("aurc", "AURC"),
    ("unsure_band", "unsure: band"),
    ("out_of_domain", "unsure: out of domain"),
)
SELECTIVE_TEXT = (
    "A detector that may answer 'unsure' is judged by two numbers: coverage, the share of "
    "images it answers confidently (neither inside the unsure band around the threshold nor "
    "outside the domain of its training data), and risk, the error rate among those answers. "
    "Confident wrong is the share of all images answered confidently and wrongly, the "
    "mistakes a user would act on. The curve answers the most confident images first "
    "(confidence: distance of the logit from the threshold; out-of-domain images last) and "
    "shows the risk at every coverage; a circle marks where the detector actually operates. "
    "AURC, the area under the curve, is lower when confidence ranks mistakes last; a "
    "detector whose risk stays low until high coverage knows what it does not know."
)
EVIDENCE_ROWS = 50  # per-image provenance rows shown in the report (all are in predictions.csv)
PLOT_CAPTIONS = {
    "roc": "ROC curve: fakes caught against reals falsely flagged, over all thresholds.",
    "pr": "Precision-recall curve (fake is the positive class); dotted: the fake prevalence.",
    "scores": "Score distributions per true class, the decision threshold and the unsure band.",
    "reliability": "Reliability diagram: observed fraction of fakes per p(fake) bin.",
    "thresholds": "Accuracy, precision, recall and F1 as the threshold moves; dashed: chosen.",
    "confusion": "Confusion matrix in counts and normalized by true class.",
    "risk_coverage": "Risk-coverage curves per group and overall; circles: operating points.",
}
OWN_SECTION_PLOTS = ("confusion", "risk_coverage")  # shown in their own sections, not Plots


def group_table(per_group: Mapping[str, Any]) -> str:
    headers = [per_group.get("by", "group")] + [label for _, label in GROUP_COLUMNS]
    rows = [[r["group"]] + [r.get(k) for k, _ in GROUP_COLUMNS] for r in per_group["rows"]]
    mean = per_group["mean"]
    rows.append(["mean"] + [mean.get(k) if k != "n" else None for k, _ in GROUP_COLUMNS])
    classes = [""] * (len(rows) - 1) + ["mean"]
    return table_html(headers, rows, row_classes=classes)


def evaluation_report(
    metrics: Mapping[str, Any],
    plots: Mapping[str, str | os.PathLike],
    *,
    model: Mapping[str, Any],
    images: Sequence[Mapping[str, Any]] = (),
) -> ReportBuilder:
    """The standard evaluation page from `evaluate`'s metrics and plot files; `images`
    (per image: path, true label and the verdict's fields) feed the per-image provenance
    table."""
    sources = metrics.get("sources") or [metrics.get("source")]
    builder = ReportBuilder("fakescope evaluation", subtitle=", ".join(map(str, sources)))
    _add_summary(builder, metrics, model, sources)
    builder.add_table(
        "Metrics",
        ["metric", "value", "95% CI (bootstrap)"],
        metrics_table_rows(metrics),
        id="metrics",
        note=f"At threshold {metrics['threshold']:.4f} on p(fake); fake is the positive class. "
        "Intervals: percentile bootstrap over images (1000 resamples).",
    )
    _add_per_group(builder, metrics.get("per_group"))
    _add_selective(builder, metrics, plots)
    builder.add_section(
        "Plots",
        "".join(
            figure_html(path, PLOT_CAPTIONS.get(name, name), alt=name)
            for name, path in plots.items()
            if name not in OWN_SECTION_PLOTS
        ),
        id="plots",
    )
    builder.add_table(
        "Per-class report",
        ["class", "precision", "recall", "F1", "support"],
        _per_class_rows(metrics),
        id="per-class",
    )
    builder.add_section("Confusion matrices", _confusion_body(metrics, plots), id="confusion")
    _add_provenance(builder, metrics.get("provenance"), images)
    _add_oracle(builder, metrics)
    for section_id, (title, text) in PLACEHOLDERS.items():
        builder.add_placeholder(section_id, title, text)
    return builder


def _threshold_origin(metrics: Mapping[str, Any]) -> str:
    return metrics.get("threshold_source", {}).get("description", "the bundle")


def _add_summary(
    builder: ReportBuilder,
    metrics: Mapping[str, Any],
    model: Mapping[str, Any],
    sources: Sequence[object],
) -> None:
    """Which model on which images, and the decision rule it used: what a reader needs
    before any number on the page means anything."""
    counts = metrics["confusion_matrix"]["rows_true_cols_pred"]
    builder.add_section(
        "Summary",
        definition_list(
            [
                ("model", model.get("bundle") or "(in-memory detector)"),
                ("architecture", model.get("architecture")),
                ("data", ", ".join(map(str, sources))),
                ("split", metrics.get("split") or "all labelled images"),
                ("images", f"{metrics['n']} ({sum(counts[0])} real, {sum(counts[1])} fake)"),
                ("unreadable (skipped)", len(metrics.get("unreadable", []))),
                ("threshold", metrics["threshold"]),
                ("threshold from", _threshold_origin(metrics)),
                ("temperature", metrics.get("temperature")),
                ("unsure band", _interval(metrics.get("unsure_band"))),
                *_selective_summary_rows(metrics.get("selective")),
            ]
        ),
        id="summary",
    )


def _selective_summary_rows(selective: Mapping[str, Any] | None) -> list[tuple[str, object]]:
    if not selective:
        return []
    overall = selective["overall"]
    return [
        ("domain model", "yes: out-of-domain images are unsure" if selective["domain_model"]
         else "none (unsure band only)"),
        ("coverage (answered)", overall["coverage"]),
        ("risk (errors among answers)", overall["risk"]),
        ("confident wrong (of all images)", overall["confident_wrong"]),
        ("reals called fake confidently (of reals)", overall["real_called_fake_confidently"]),
        ("fakes called real confidently (of fakes)", overall.get("fake_called_real_confidently")),
    ]  # fmt: skip


def _add_selective(
    builder: ReportBuilder, metrics: Mapping[str, Any], plots: Mapping[str, str | os.PathLike]
) -> None:
    """Coverage and risk at the operating point, per group and overall, and the
    risk-coverage curves: how often the detector answers, and how often it is then wrong."""
    selective = metrics.get("selective")
    if not selective:
        builder.add_section(
            "Selective risk",
            paragraph("No verdicts were recorded, so coverage and risk were not measured.",
                      "placeholder"),
            id="selective-risk",
            css_class="placeholder",
        )  # fmt: skip
        return
    rows = [*selective["per_group"], selective["overall"]]
    table = table_html(
        [selective.get("by") or "group", *(label for _, label in SELECTIVE_COLUMNS)],
        [[r["group"], *(r.get(k) for k, _ in SELECTIVE_COLUMNS)] for r in rows],
        row_classes=[""] * (len(rows) - 1) + ["mean"],
    )
    body = paragraph(SELECTIVE_TEXT) + table
    for by, mistakes in selective.get("mistakes", {}).items():
        body += paragraph(
            f"Confident mistakes by {by}, both ways: real images answered 'fake' and AI "
            "images answered 'real', neither marked unsure."
        ) + table_html(
            [by, "reals", "reals called fake", "share", "fakes", "fakes called real", "share"],
            [
                [r["group"], r["n_real"], r["real_called_fake"], r["real_called_fake_share"],
                 r["n_fake"], r["fake_called_real"], r["fake_called_real_share"]]
                for r in mistakes
            ],
        )  # fmt: skip
    if "risk_coverage" in plots:
        body += figure_html(plots["risk_coverage"], PLOT_CAPTIONS["risk_coverage"],
                            alt="risk_coverage")  # fmt: skip
    builder.add_section("Selective risk (coverage and risk)", body, id="selective-risk")


def _add_provenance(
    builder: ReportBuilder,
    summary: Mapping[str, Any] | None,
    images: Sequence[Mapping[str, Any]],
) -> None:
    """What the files' own provenance said (C2PA, XMP/IPTC, generator metadata, watermarks):
    counts per signal and claim, and the images that carried any, with the pixel score
    beside the final one."""
    title = "Content Credentials and metadata"
    if not summary or not summary.get("read"):
        text = "Provenance was not read (pixels only: evaluate(..., provenance=False))."
        builder.add_section(title, paragraph(text, "placeholder"), id="provenance",
                            css_class="placeholder")  # fmt: skip
        return
    body = definition_list(
        [
            ("images", summary["images"]),
            ("with provenance evidence", summary["images_with_evidence"]),
            ("verdicts changed by the evidence", summary["verdicts_changed"]),
            ("labels changed by the evidence", summary["labels_changed"]),
            ("pixels and provenance disagree", summary["disagreements"]),
        ]
    )
    if not summary["images_with_evidence"]:
        body += paragraph(
            "None of the images carried Content Credentials, an AI label in their metadata, "
            "generator settings, a Stable Diffusion watermark or camera EXIF. Most images "
            "carry none: that is no evidence either way."
        )
        builder.add_section(title, body, id="provenance")
        return
    body += table_html(["signal/claim", "images"], list(summary["counts"].items()))
    if any(kind.endswith("/capture_metadata") for kind in summary["counts"]):
        body += paragraph(
            "Camera EXIF (exif/capture_metadata: make, model, lens, exposure, capture date, "
            "GPS, software) is listed, not counted: anyone can write it, so it never moves "
            "a verdict towards real. EXIF contradicting itself or the file "
            "(exif/inconsistent_metadata) counts a little towards fake."
        )
    carrying = [i for i in images if i.get("evidence")]
    shown = carrying[:EVIDENCE_ROWS]
    more = f" (the first {len(shown)} of {len(carrying)}; all in predictions.csv)" if len(
        carrying) > len(shown) else ""  # fmt: skip
    body += f"<h3>Images with evidence{escape(more)}</h3>" + per_image_table(shown)
    builder.add_section(title, body, id="provenance")


PER_IMAGE_COLUMNS = (
    ("path", "file"),
    ("label", "true label"),
    ("p_fake", "p(fake)"),
    ("p_fake_pixels", "p(fake) pixels"),
    ("predicted", "verdict"),
    ("unsure_reason", "why unsure"),
    ("domain_score", "domain score"),
    ("in_domain", "in domain"),
    ("evidence", "evidence"),
    ("disagreement", "disagreement"),
)


def per_image_table(images: Sequence[Mapping[str, Any]]) -> str:
    """Images with their verdict's fields (`PER_IMAGE_COLUMNS`); evidence is given either as
    text or as the list of evidence dicts."""

    def cell(image: Mapping[str, Any], key: str) -> object:
        value = image.get(key)
        if key == "evidence" and isinstance(value, list):
            return "; ".join(evidence_text(e) for e in value) or None
        if key == "predicted" and value is not None:
            return verdict_html(str(value), bool(image.get("unsure")), image.get("in_domain"))
        return value

    return table_html(
        [label for _, label in PER_IMAGE_COLUMNS],
        [[cell(image, key) for key, _ in PER_IMAGE_COLUMNS] for image in images],
    )


def verdict_html(label: str, unsure: bool, in_domain: bool | None = None) -> Html:
    """A verdict headlined as a person should read it: "unsure" when unsure, with the side
    of the threshold it leans to beneath in small print (none out of domain, where p(fake)
    means little), never "fake" or "real" with a caveat beside it."""
    if not unsure:
        return Html(f'<span class="verdict {escape(label)}">{escape(label)}</span>')
    small = "out of domain" if in_domain is False else f"leans {label}"
    return Html(
        f'<span class="verdict unsure">unsure</span><br><small class="leaning">'
        f"{escape(small)}</small>"
    )


def _add_per_group(builder: ReportBuilder, per_group: Mapping[str, Any] | None) -> None:
    """One row per data set or generator (generalization is the question that matters),
    or a placeholder saying how to get them."""
    if per_group:
        builder.add_section(
            f"Per {per_group.get('by', 'group')}",
            (paragraph(per_group["note"]) if per_group.get("note") else "")
            + group_table(per_group)
            + paragraph("mean: unweighted mean of the rows above (as in NPR/UniversalFakeDetect)."),
            id="per-group",
        )
        return
    builder.add_section(
        "Per data set / generator",
        paragraph(
            "One data set without a generator column: nothing to break down. Pass several "
            "sources, or a CSV manifest with a generator column.",
            "placeholder",
        ),
        id="per-group",
        css_class="placeholder",
    )


def _per_class_rows(metrics: Mapping[str, Any]) -> list[list[object]]:
    """scikit-learn's classification report as table rows (its averages included)."""
    report = metrics.get("classification_report") or {}
    class_rows: list[list[object]] = [
        [name, v.get("precision"), v.get("recall"), v.get("f1-score"), int(v.get("support", 0))]
        for name, v in report.items()
        if isinstance(v, dict)
    ]
    if "accuracy" in report:
        class_rows.append(["accuracy", None, None, report["accuracy"], metrics["n"]])
    return class_rows


def _confusion_body(metrics: Mapping[str, Any], plots: Mapping[str, str | os.PathLike]) -> str:
    """Counts and shares per true class side by side, then the plot when there is one."""
    cm = metrics["confusion_matrix"]
    labels = cm["labels"]
    cm_rows = [
        [f"true {labels[i]}"]
        + list(cm["rows_true_cols_pred"][i])
        + list(cm.get("normalized", [[None, None], [None, None]])[i])
        for i in range(2)
    ]
    body = table_html(
        ["", *(f"pred {n}" for n in labels), *(f"pred {n} (share)" for n in labels)], cm_rows
    )
    if "confusion" in plots:
        body += figure_html(plots["confusion"], PLOT_CAPTIONS["confusion"], alt="confusion")
    return body


def _add_oracle(builder: ReportBuilder, metrics: Mapping[str, Any]) -> None:
    """The threshold tuned on the test data itself, in a warning box: papers report it, so
    readers ask for it, but it must never pass for an estimate on new data."""
    oracle = metrics.get("oracle") or {}
    builder.add_section(
        "Oracle threshold (not a valid estimate)",
        paragraph(
            "ORACLE: the threshold below was chosen on this test data itself. It shows how much "
            "a better threshold could gain, and matches papers that tune on test data, but it "
            "is optimistic and NOT a valid estimate of performance on new data. The metrics "
            "above use the threshold from " + _threshold_origin(metrics) + "."
        )
        + table_html(
            ["oracle quantity", "value"],
            [
                ["oracle best threshold on test", oracle.get("best_threshold_on_test")],
                ["oracle accuracy", oracle.get("accuracy")],
                ["oracle F1", oracle.get("f1")],
            ],
        ),
        id="oracle",
        css_class="warning",
    )


def comparison_report(
    result: Mapping[str, Any], plots: Mapping[str, str | os.PathLike]
) -> ReportBuilder:
    """One page comparing several bundles on the same data."""
    builder = ReportBuilder("fakescope model comparison", subtitle=str(result["source"]))
    builder.add_section(
        "Summary",
        definition_list(
            [
                ("data", result["source"]),
                ("split", result.get("split") or "all labelled images"),
                ("models", len(result["models"])),
                ("thresholds", "each bundle's own (chosen on its validation data)"),
            ]
        ),
        id="summary",
    )
    keys = (
        "n",
        "threshold",
        "accuracy",
        "f1",
        "roc_auc",
        "average_precision",
        "eer",
        "tpr_at_fpr_1pct",
        "ece",
    )
    rows = []
    for model in result["models"]:
        m = model["metrics"]
        ci_text = _interval((m.get("ci95") or {}).get("roc_auc"), 3)
        rows.append([model["name"], *(m.get(k) for k in keys), ci_text])
    builder.add_table(
        "Comparison",
        ["model", *keys, "AUC 95% CI"],
        rows,
        id="comparison",
        note="Same images for every model; each at its own bundle threshold.",
    )
    builder.add_section(
        "Plots",
        "".join(
            figure_html(path, PLOT_CAPTIONS.get(name, name), alt=name)
            for name, path in plots.items()
        ),
        id="plots",
    )
    return builder
