"""The report's Grad-CAM gallery and t-SNE sections, wired into `evaluate` and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import report_bundle
from typer.testing import CliRunner

from fakescope.cli import app
from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.evaluation.embeddings import embed_files
from fakescope.evaluation.evaluate import ReportContext, ScoredSet, evaluate
from fakescope.evaluation.explain import gallery_rows
from fakescope.evaluation.report import EVALUATION_SECTIONS, ReportBuilder
from fakescope.evaluation.report_sections import (
    EmbeddingSection,
    ExplanationSection,
    report_hooks,
    sample_indices,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROWS = ("true_positives", "false_positives", "true_negatives", "false_negatives")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return report_bundle(root / "base" / "bundle", 0), report_bundle(root / "tuned" / "bundle", 1)


def median_threshold(detector: Detector, folder: Path) -> float:
    """A threshold between the scores, so an untrained model makes mistakes of both kinds."""
    return float(np.median([r.p_fake for r in detector.predict(folder)]))


def test_evaluate_fills_the_gallery_and_tsne_sections(
    toy_folder: Path, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = (Detector.load(b, device="cpu") for b in bundles)
    tuned.meta.threshold = median_threshold(tuned, toy_folder)
    out = tmp_path / "ev"
    metrics = evaluate(
        tuned,
        toy_folder,
        out,
        progress=False,
        bootstrap=50,
        report_hooks=[ExplanationSection(k=2), EmbeddingSection(points=30, compare=base)],
    )
    page = (out / "report.html").read_text()
    assert page.count("<section") == len(EVALUATION_SECTIONS)
    for section in ("explanations", "embeddings"):
        body = page.split(f"<!-- section:{section} -->")[1].split(f"<!-- /section:{section} -->")[0]
        assert "data:image/png;base64," in body and "placeholder" not in body
    gallery = metrics["explanations"]
    assert gallery["layers"] == ["stage3"] and gallery["k"] == 2
    for row in ROWS:
        png = out / f"gradcam_{row}.png"
        assert png.read_bytes().startswith(PNG_MAGIC)
        shown = gallery["rows"][row.replace("_", " ")]["images"]
        assert 1 <= len(shown) <= 2
    # the mistakes shown are really wrong at the threshold used
    for case in gallery["rows"]["most confident mistakes"]["images"]:
        assert (case["p_fake"] >= metrics["threshold"]) != (case["label"] == "fake")
    tsne = metrics["embeddings"]
    assert tsne["plot"] == "tsne_compare.png" and not (out / "tsne.png").exists()
    assert tsne["n"] == 30 and tsne["of"] == 40 and tsne["subsampled"]
    wrong = metrics["confusion_matrix"]["rows_true_cols_pred"]
    assert tsne["model"]["misclassified"] <= wrong[0][1] + wrong[1][0]
    # the compared model's mistakes are counted with its own scores, at its own threshold
    assert tsne["compare"]["name"] == "base" and tsne["compare"]["threshold"] == 0.5
    predictions = base.predict(toy_folder)
    assert tsne["compare"]["misclassified"] <= sum(
        (r.p_fake >= 0.5) != ("/fake/" in r.path) for r in predictions
    )
    with Image.open(out / "tsne_compare.png") as png:
        assert png.width > png.height
    assert "base (--compare)" in page
    assert set(metrics["timings"]) >= {"decode", "score", "metrics", "plots", "gallery", "t-SNE"}
    assert json.loads((out / "metrics.json").read_text())["embeddings"]["n"] == 30


def test_a_single_map_without_compare(
    toy_folder: Path, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    detector = Detector.load(bundles[0], device="cpu")
    scored = detector.predict(toy_folder)
    section = EmbeddingSection(points=12, seed=3)
    paths = [r.path for r in scored]
    labels = np.array([int("/fake/" in p) for p in paths])
    p_fake = np.array([r.p_fake for r in scored])
    builder = ReportBuilder("t")
    metrics = {"threshold": 0.5}
    out = tmp_path / "out"
    section(builder, ReportContext(detector, ScoredSet(paths, labels, p_fake, []), metrics, out))
    picked = sample_indices(40, 12, seed=3)
    expected_wrong = int(np.sum((p_fake[picked] >= 0.5) != labels[picked]))
    assert metrics["embeddings"]["model"]["misclassified"] == expected_wrong
    assert metrics["embeddings"]["plot"] == "tsne.png" and (out / "tsne.png").is_file()
    assert builder.section("embeddings") is not None


def test_gallery_rows_explain_the_predicted_class(
    bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    detector = Detector.load(bundles[0], device="cpu")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    labels = [0, 1, 0, 1, 0, 1]
    p = [0.1, 0.9, 0.8, 0.3, 0.2, 0.6]
    rows = gallery_rows(detector, paths, labels, p, 0.5, tmp_path / "g", k=2)
    by_name = {row.name: row for row in rows}
    assert by_name["false positives"].indices == [2]
    assert by_name["false negatives"].indices == [3]
    assert by_name["most confident mistakes"].indices == [2, 3]
    for row in rows:
        assert row.png.name == "gradcam_" + row.name.replace(" ", "_") + ".png"
        with Image.open(row.png) as png:
            assert png.format == "PNG"
    with pytest.raises(ConfigError, match="target"):
        gallery_rows(detector, paths, labels, p, 0.5, tmp_path / "g", target="both")
    with pytest.raises(ConfigError, match="6 paths, 6 labels and 5"):
        gallery_rows(detector, paths, labels, p[:5], 0.5, tmp_path / "g")


def test_embed_files_scores_match_the_detector(
    bundles: tuple[Path, Path], toy_folder: Path
) -> None:
    detector = Detector.load(bundles[0], device="cpu")
    predictions = detector.predict(toy_folder)
    result = embed_files(detector, [r.path for r in predictions], progress=False, scores=True)
    assert result.p_fake is not None and result.features.shape == (40, 32)
    np.testing.assert_allclose(result.p_fake, [r.p_fake for r in predictions], atol=1e-6)
    assert embed_files(detector, [], progress=False, scores=True).p_fake.shape == (0,)


def test_hooks_are_checked_before_any_work(bundles: tuple[Path, Path], tmp_path: Path) -> None:
    assert report_hooks(gallery=0, tsne_points=0) == []
    hooks = report_hooks(gallery=3, tsne_points=100, compare=bundles[0])
    assert isinstance(hooks[0], ExplanationSection) and hooks[0].k == 3
    assert isinstance(hooks[1], EmbeddingSection) and hooks[1].compare is not None
    with pytest.raises(ConfigError, match="--compare"):
        report_hooks(tsne_points=0, compare=bundles[0])
    with pytest.raises(ConfigError, match="at least 4"):
        report_hooks(tsne_points=2)
    with pytest.raises(ConfigError, match="0 \\(off\\)"):
        report_hooks(gallery=-1)
    with pytest.raises(Exception, match="missing"):
        report_hooks(compare=tmp_path / "missing")
    picked = sample_indices(100, 10, seed=1)
    assert list(picked) == sorted(picked) and len(set(picked)) == 10
    np.testing.assert_array_equal(picked, sample_indices(100, 10, seed=1))
    np.testing.assert_array_equal(sample_indices(5, 10, seed=1), np.arange(5))


def test_cli_evaluate_with_gallery_tsne_and_compare(
    toy_folder: Path, bundles: tuple[Path, Path], tmp_path: Path
) -> None:
    base, tuned = bundles
    out = tmp_path / "ev"
    args = ["evaluate", toy_folder, "-b", tuned, "--out", out, "-q"]
    result = CliRunner().invoke(
        app, [str(a) for a in [*args, "--gallery", 1, "--tsne-points", 8, "--compare", base]]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "seconds per stage" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["explanations"]["k"] == 1 and metrics["embeddings"]["n"] == 8
    assert metrics["embeddings"]["compare"]["name"] == "base"
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--no-explain", "--no-tsne"]])
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "explanations" not in metrics and "embeddings" not in metrics
    assert 'class="placeholder"' in (out / "report.html").read_text()
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--no-tsne", "--compare", base]])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
