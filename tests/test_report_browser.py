"""The evaluation report in a real browser: headless Debian chromium through Playwright.

Renders report.html from a small evaluation (two sources, Grad-CAM gallery, t-SNE of two
models) and checks that every section is there with its content and that every image
decoded. A full-page screenshot goes to pytest's tmp dir and, when FAKESCOPE_SCREENSHOT_DIR
is set, there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from tiny import report_bundle

from fakescope.detectors import Detector
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.report import EVALUATION_SECTIONS
from fakescope.evaluation.report_sections import report_hooks

pytestmark = pytest.mark.browser

# section id -> text each must show; the plots are checked by their images' alt text
EXPECTED_TEXT = {
    "summary": ["threshold", "threshold from", "unsure band"],
    "metrics": ["95% CI (bootstrap)", "ROC-AUC", "ECE"],
    "per-group": ["data set", "mean", "coverage", "AURC"],
    "selective-risk": ["coverage", "risk", "confident wrong", "AURC", "operating point"],
    "per-class": ["precision", "recall"],
    "confusion": ["pred real", "pred fake"],
    "provenance": ["with provenance evidence", "verdicts changed by the evidence"],
    "oracle": ["ORACLE", "NOT a valid estimate"],
    "explanations": ["true positives", "false positives", "true negatives", "false negatives"],
    "embeddings": ["images mapped", "misclassified"],
}
EXPECTED_IMAGES = {
    "plots": ["roc", "pr", "scores", "reliability", "thresholds"],
    "selective-risk": ["risk_coverage"],
    "confusion": ["confusion"],
    "embeddings": ["t-SNE"],
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, toy_folder: Path, toy_zip: Path) -> Path:
    root = tmp_path_factory.mktemp("browser")
    base = report_bundle(root / "base" / "bundle", 0)
    tuned = Detector.load(report_bundle(root / "tuned" / "bundle", 1), device="cpu")
    scores = sorted(r.p_fake for r in tuned.predict(toy_folder))
    tuned.meta.threshold = scores[len(scores) // 2]  # mistakes of both kinds to show
    out = root / "report"
    hooks = report_hooks(gallery=2, tsne_points=40, compare=base)
    evaluate(tuned, [toy_folder, toy_zip], out, progress=False, bootstrap=100, report_hooks=hooks)
    return out / "report.html"


def test_report_renders_every_section_and_image_in_chromium(
    report: Path, browser: Any, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(request.url[:80]))
    page.goto(report.as_uri(), wait_until="load")
    sections = page.eval_on_selector_all("main > section", "els => els.map(e => e.id)")
    assert sections == list(EVALUATION_SECTIONS)
    placeholders = page.eval_on_selector_all("section.placeholder", "els => els.map(e => e.id)")
    assert placeholders == []
    for section_id, needles in EXPECTED_TEXT.items():
        text = page.inner_text(f"section#{section_id}").lower()
        for needle in needles:
            assert needle.lower() in text, f"{needle!r} missing from {section_id}"
        assert page.is_visible(f"section#{section_id}")
    ci_cells = page.eval_on_selector_all("section#metrics td", "tds => tds.map(t => t.textContent)")
    assert sum(cell.startswith("[") for cell in ci_cells) >= 3  # intervals shown
    images = page.eval_on_selector_all(
        "img",
        """imgs => imgs.map(i => ({
            section: i.closest('section').id, alt: i.alt, complete: i.complete,
            width: i.naturalWidth, height: i.naturalHeight}))""",
    )
    not_loaded = [i for i in images if not (i["complete"] and i["width"] > 0)]
    assert not not_loaded, not_loaded
    for section_id, alts in EXPECTED_IMAGES.items():
        shown = {i["alt"] for i in images if i["section"] == section_id}
        assert set(alts) <= shown, (section_id, shown)
    plots = {i["alt"] for i in images if i["section"] == "plots"}
    assert "risk_coverage" not in plots  # in its own section, not twice
    gallery = [i for i in images if i["section"] == "explanations"]
    assert len(gallery) == 5  # TP, FP, TN, FN and the most confident mistakes
    assert page.inner_text("nav").count("Embeddings") == 1
    assert not errors, errors
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert shot.stat().st_size > 10_000
    target = os.environ.get("FAKESCOPE_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
