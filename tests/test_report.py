"""Evaluation report: thresholds from validation, plots, report.html, per-group tables,
calibration of a bundle and model comparison, end to end on small generated data."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import report_bundle
from typer.testing import CliRunner

from fakescope.bundle import BundleMeta, load_bundle, read_meta
from fakescope.cli import app
from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, TorchDetector
from fakescope.errors import ConfigError
from fakescope.evaluation import plots as P
from fakescope.evaluation.calibration import calibrate_bundle
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.metrics import binary_metrics
from fakescope.evaluation.report import (
    EVALUATION_SECTIONS,
    ReportBuilder,
)
from fakescope.inference import CSV_FIELDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- fixtures: a detector whose score is the image brightness --------------------------------
class Brightness(torch.nn.Module):
    """logit = 4 * mean of the normalised image: p(fake) grows with brightness."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * x.mean(dim=(1, 2, 3)).unsqueeze(1)


def brightness_detector(threshold: float = 0.5) -> Detector:
    meta = BundleMeta(
        architecture="brightness", preprocessing=Preprocessing(input_size=8), threshold=threshold
    )
    return TorchDetector(Brightness(), meta)


def p_of(level: int) -> float:
    """The brightness detector's p(fake) for a uniform grey image of `level`."""
    return float(torch.sigmoid(torch.tensor(4.0 * (level / 127.5 - 1.0))))


def grey_set(root: Path, reals: list[int], fakes: list[int]) -> Path:
    """root/real/*.png and root/fake/*.png: uniform grey 8x8 images of the given levels."""
    for folder, levels in (("real", reals), ("fake", fakes)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, level in enumerate(levels):
            Image.new("RGB", (8, 8), (level,) * 3).save(root / folder / f"{i:03d}.png")
    return root


@pytest.fixture()
def shifted(tmp_path: Path) -> dict[str, Path]:
    """Validation and test sets whose best thresholds differ: test images are brighter."""
    return {
        "val": grey_set(tmp_path / "val", list(range(40, 101, 10)), list(range(120, 201, 10))),
        "test": grey_set(tmp_path / "test", list(range(100, 161, 10)), list(range(170, 231, 10))),
    }


class PageParser(HTMLParser):
    """Collects section ids, image sources, scripts, external links, and checks nesting."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: dict[str, str] = {}
        self.images: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self._section: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._section = a.get("id") or ""
            self.sections[self._section] = ""
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for key in ("href", "src"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(a[key] or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        if tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._section is not None:
            self.sections[self._section] += data


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    return parser


# -- the report page -----------------------------------------------------------------------------
def test_report_has_every_section_embedded_plots_and_valid_html(
    shifted: dict[str, Path], tmp_path: Path
) -> None:
    metrics = evaluate(brightness_detector(), shifted["test"], tmp_path / "ev", progress=False)
    out = tmp_path / "ev"
    page = parse_page(out / "report.html")
    for section_id in EVALUATION_SECTIONS:
        assert section_id in page.sections, section_id
    assert len(page.images) >= 6
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert page.scripts == 0 and not page.external
    for name in ("roc", "pr", "scores", "reliability", "thresholds", "confusion"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert metrics["plots"][name] == f"{name}.png"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["threshold_source"]["kind"] == "bundle" and saved["threshold"] == 0.5
    for key in ("ci95", "eer", "ece", "brier", "log_loss", "classification_report", "oracle"):
        assert key in saved
    assert "95% CI" in page.sections["metrics"] and "bundle" in page.sections["summary"]
    lines = (out / "predictions.csv").read_text().splitlines()
    assert lines[0].startswith("path,label,p_fake,predicted,unsure,") and len(lines) == 15
    assert lines[0].split(",")[5:] == list(CSV_FIELDS[5:])  # the verdict's other fields
    # old bundles (no domain model): coverage is the share outside the unsure band
    selective = saved["selective"]["overall"]
    rows = list(csv.DictReader(lines))
    assert all(r["unsure"] == str(int(0.4 < float(r["p_fake"]) < 0.6)) for r in rows)
    assert selective["coverage"] == pytest.approx(np.mean([r["unsure"] == "0" for r in rows]))
    assert all(r["domain_score"] == r["in_domain"] == r["evidence"] == "" for r in rows)
    assert saved["selective"]["domain_model"] is False and selective["out_of_domain"] == 0
    assert (out / "risk_coverage.png").read_bytes().startswith(PNG_MAGIC)
    assert saved["provenance"]["read"] and saved["provenance"]["images_with_evidence"] == 0


def test_threshold_chosen_on_validation_is_applied_and_the_oracle_is_labelled(
    shifted: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ev"
    metrics = evaluate(
        brightness_detector(),
        shifted["test"],
        out,
        val_source=shifted["val"],
        threshold_policy="max_f1",
        progress=False,
    )
    val_threshold = metrics["threshold"]
    assert val_threshold == pytest.approx(p_of(120), abs=1e-6)  # the dimmest validation fake
    assert metrics["threshold_source"]["kind"] == "validation"
    oracle = metrics["oracle"]
    assert oracle["best_threshold_on_test"] > p_of(160)  # test-optimal: above the test reals
    assert oracle["accuracy"] == 1.0 > metrics["accuracy"]
    # reals at 120..160 are called fake at the validation threshold: 5 of 14 wrong
    assert metrics["accuracy"] == pytest.approx(9 / 14)
    page = parse_page(out / "report.html")
    assert f"{val_threshold:.4f}" in page.sections["summary"]
    assert "validation data" in page.sections["summary"]
    assert f"At threshold {val_threshold:.4f}" in page.sections["metrics"]
    oracle_text = page.sections["oracle"]
    assert "ORACLE" in oracle_text and "NOT a valid estimate" in oracle_text
    assert "oracle" not in page.sections["metrics"].lower()
    rows = list(csv.DictReader((out / "predictions.csv").read_text().splitlines()))
    assert {r["predicted"] for r in rows if float(r["p_fake"]) >= val_threshold} == {"fake"}


def test_threshold_policies_need_separate_validation_data(
    shifted: dict[str, Path], tmp_path: Path
) -> None:
    detector = brightness_detector()
    with pytest.raises(ConfigError, match="needs validation data"):
        evaluate(detector, shifted["test"], tmp_path / "a", threshold_policy="youden")
    with pytest.raises(ConfigError, match="shares 14 images"):
        evaluate(detector, shifted["test"], tmp_path / "b", val_source=shifted["test"])
    metrics = evaluate(
        detector,
        shifted["test"],
        tmp_path / "c",
        val_source=shifted["val"],
        threshold_policy="target_fpr",
        target_fpr=0.0,
        progress=False,
        report=False,
    )
    assert metrics["threshold_source"]["target_fpr"] == 0.0
    assert metrics["threshold"] == pytest.approx(p_of(120), abs=1e-6)  # no val real above it


def test_report_builder_escapes_appends_and_fills_sections(tmp_path: Path) -> None:
    png = P.plot_roc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.4, 0.3]), tmp_path / "r.png")
    builder = ReportBuilder("<b>title</b>")
    builder.add_section("Notes <script>", "<p>ok</p>", id="notes")
    builder.add_table("Table", ["a<b"], [["<i>x</i>"], [1.5]], id="table")
    builder.add_placeholder("explanations", "Explanations", "not run")
    builder.add_image("Grad-CAM", png.read_bytes(), "caption & more", section="explanations")
    builder.add_image("Own section", png, "standalone")
    path = builder.write(tmp_path / "report.html")
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;i&gt;x" in text
    page = parse_page(path)
    assert set(page.sections) == {"notes", "table", "explanations", "own-section"}
    assert "not run" not in page.sections["explanations"]  # the image replaced the placeholder
    assert len(page.images) == 2


def test_per_image_tables_headline_unsure_as_unsure_with_the_leaning_beneath() -> None:
    from fakescope.evaluation.report import per_image_table

    rows = [
        {"path": "a.png", "label": "fake", "p_fake": 0.97, "predicted": "fake", "unsure": False},
        {"path": "b.png", "label": "fake", "p_fake": 0.41, "predicted": "real", "unsure": True,
         "unsure_reason": "p(fake) is inside the unsure band around the threshold",
         "in_domain": True},
        {"path": "c<1>.png", "label": "real", "p_fake": 0.8, "predicted": "fake", "unsure": True,
         "unsure_reason": "out of domain", "in_domain": False},
    ]  # fmt: skip
    html = per_image_table(rows)
    assert "<th>verdict</th>" in html and "<th>unsure</th>" not in html
    assert '<span class="verdict fake">fake</span>' in html
    cells = html.split("<tr>")[2:]  # the header row first
    assert (
        '<span class="verdict unsure">unsure</span><br><small class="leaning">leans real'
        in (cells[1])
    )
    assert (
        '<span class="verdict unsure">unsure</span><br><small class="leaning">out of domain'
        in (cells[2])
    )
    assert "c&lt;1&gt;.png" in cells[2]  # other cells are still escaped
    assert "verdict real" not in html and "verdict fake" not in cells[2]


def test_plots_handle_one_class_and_write_pngs(tmp_path: Path) -> None:
    y, p = np.ones(5, int), np.linspace(0.1, 0.9, 5)
    m = binary_metrics(y, p, 0.5)
    cm = m["confusion_matrix"]
    paths = [
        P.plot_roc(y, p, tmp_path / "roc.png"),
        P.plot_pr(y, p, tmp_path / "pr.png"),
        P.plot_score_distributions(y, p, 0.5, tmp_path / "s.png", unsure_band=(0.4, 0.6)),
        P.plot_reliability(m["reliability"]["bins"], m["ece"], tmp_path / "rel.png"),
        P.plot_metrics_vs_threshold(y, p, 0.5, tmp_path / "t.png"),
        P.plot_confusion_matrix(cm["rows_true_cols_pred"], cm["normalized"], tmp_path / "c.png"),
        P.plot_roc_overlay({"a": (np.r_[y, 0], np.r_[p, 0.2]), "b": (y, p)}, tmp_path / "o.png"),
    ]
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC)


# -- per data set / per generator --------------------------------------------------------------
def test_several_sources_give_one_row_each_and_the_mean(
    shifted: dict[str, Path], tmp_path: Path
) -> None:
    metrics = evaluate(
        brightness_detector(), [shifted["val"], shifted["test"]], tmp_path / "ev", progress=False
    )
    table = metrics["per_group"]
    assert table["by"] == "data set" and [r["group"] for r in table["rows"]] == ["val", "test"]
    val_row, test_row = table["rows"]
    assert val_row["n"] == 16 and test_row["n"] == 14
    assert val_row["accuracy"] == pytest.approx(15 / 16)  # the fake at 120 is below 0.5
    assert test_row["accuracy"] == pytest.approx(10 / 14)  # reals at 130..160 are above
    for key in ("accuracy", "roc_auc", "average_precision", "f1"):
        assert table["mean"][key] == pytest.approx((val_row[key] + test_row[key]) / 2)
    assert metrics["n"] == 30 and len(metrics["sources"]) == 2  # top level: pooled
    page = parse_page(tmp_path / "ev" / "report.html")
    assert "mean" in page.sections["per-group"] and "test" in page.sections["per-group"]


def test_generator_column_gives_per_generator_rows(tmp_path: Path) -> None:
    root = grey_set(tmp_path / "g", [40, 60, 80, 100], [150, 170, 90, 210])
    manifest = tmp_path / "g" / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "generator"])
        for i in range(4):
            writer.writerow([f"real/{i:03d}.png", "real", ""])
        for i, gen in enumerate(["ganA", "ganA", "diffB", "diffB"]):
            writer.writerow([f"fake/{i:03d}.png", "fake", gen])
    assert root.is_dir()
    metrics = evaluate(brightness_detector(), manifest, tmp_path / "ev", progress=False)
    rows = {r["group"]: r for r in metrics["per_group"]["rows"]}
    assert metrics["per_group"]["by"] == "generator" and set(rows) == {"ganA", "diffB"}
    assert rows["ganA"]["n"] == 6 and rows["ganA"]["n_real"] == 4  # reals shared by every row
    assert rows["ganA"]["fake_accuracy"] == 1.0 and rows["diffB"]["fake_accuracy"] == 0.5
    assert metrics["per_group"]["mean"]["fake_accuracy"] == pytest.approx(0.75)


# -- calibration ---------------------------------------------------------------------------------
def test_calibrate_bundle_stores_temperature_and_keeps_decisions(
    tmp_path: Path, toy_folder: Path
) -> None:
    bundle = report_bundle(tmp_path / "bundle", 0, threshold=0.4, unsure_margin=0.05)
    before = Detector.load(bundle, device="cpu").predict(toy_folder)
    result = calibrate_bundle(bundle, toy_folder, progress=False, device="cpu")
    assert result["after"]["accuracy"] == result["before"]["accuracy"]
    assert result["after"]["log_loss"] <= result["before"]["log_loss"] + 1e-9
    _, meta = load_bundle(bundle)  # verifies the re-signed checksum
    assert meta.temperature == pytest.approx(result["after"]["temperature"])
    assert meta.threshold == pytest.approx(result["after"]["threshold"])
    assert read_meta(bundle)["metrics"]["calibration"]["n"] == 40
    after = Detector.load(bundle, device="cpu").predict(toy_folder)
    assert [r.label for r in after] == [r.label for r in before]


# -- the CLI, in process -------------------------------------------------------------------------
runner = CliRunner()


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.mark.slow
def test_cli_evaluate_calibrate_and_compare_end_to_end(
    toy_folder: Path, toy_zip: Path, tmp_path: Path
) -> None:
    first, second = (
        report_bundle(tmp_path / "a", 0, threshold=0.4, unsure_margin=0.05),
        report_bundle(tmp_path / "b", 1, threshold=0.4, unsure_margin=0.05),
    )
    text = invoke("evaluate", toy_folder, toy_zip, "-b", first, "--out", tmp_path / "ev", "-q")
    assert "95% CI" in text and "mean" in text
    assert "coverage " in text and "risk " in text and "AURC " in text  # selective risk
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["per_group"]["rows"]
    assert "before" in invoke("calibrate", second, toy_folder, "-q")
    text = invoke("compare", first, second, toy_folder, "--out", tmp_path / "cmp", "-q")
    assert "a" in text and "b" in text
    result = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert [m["name"] for m in result["models"]] == ["a", "b"]
    assert all(m["metrics"]["n"] == 40 for m in result["models"])
    for name in ("roc.png", "pr.png"):
        assert (tmp_path / "cmp" / name).read_bytes().startswith(PNG_MAGIC)
    page = parse_page(tmp_path / "cmp" / "report.html")
    assert {"summary", "comparison", "plots"} <= set(page.sections) and len(page.images) == 2
