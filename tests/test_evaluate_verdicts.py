"""evaluate judges images as predict does: domain scores (out of domain is unsure),
provenance evidence, selective risk (coverage, risk, AURC) per group and overall, native-crop
bundles end to end; calibrate_bundle refuses what it cannot rewrite before any work."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from imagegen import make_dataset, toy_array
from PIL import Image, PngImagePlugin
from test_report import PNG_MAGIC, parse_page
from tiny import tiny_bundle

from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, load_detector
from fakescope.errors import BundleError
from fakescope.evaluation.domain import fit_bundle_domain
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.selective import selective_risk
from fakescope.inference import OUT_OF_DOMAIN

A1111 = "a photo of a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 32x32"


def rows_of(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def solid_colours(root: Path, n: int = 8) -> Path:
    """real/ and fake/ of saturated solid colours: nothing like the smooth toy images."""
    rng = np.random.default_rng(0)
    for folder in ("real", "fake"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            colour = tuple(int(v) for v in rng.choice([0, 255], 3))
            Image.new("RGB", (96, 96), colour).save(root / folder / f"{i}.png")  # type: ignore[arg-type]
    return root


@pytest.fixture(scope="module")
def with_domain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("evaldomain")
    data = make_dataset(root / "data", layout="folder", n_per_class=60)
    bundle = tiny_bundle(root / "bundle")
    fit_bundle_domain(bundle, data, progress=False, quantile=0.9)
    return bundle, data, solid_colours(root / "unlike")


def test_out_of_domain_images_are_unsure_and_counted_in_selective_risk(
    with_domain: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bundle, data, unlike = with_domain
    detector = load_detector(bundle, device="cpu")
    detector.meta.unsure_margin = 1e-4  # an untrained model's scores all sit near 0.5
    out = tmp_path / "ev"
    metrics = evaluate(detector, [data, unlike], out, progress=False, bootstrap=0)
    selective = metrics["selective"]
    assert selective["domain_model"] is True and selective["by"] == "data set"
    by_group = {r["group"]: r for r in selective["per_group"]}
    assert set(by_group) == {"toy", "unlike"}
    assert by_group["unlike"]["out_of_domain"] == 16 and by_group["unlike"]["coverage"] == 0.0
    assert by_group["unlike"]["risk"] is None  # no confident answer to be wrong
    assert by_group["toy"]["coverage"] >= 0.5
    rows = rows_of(out)
    unlike_rows = [r for r in rows if "/unlike/" in r["path"]]
    assert len(unlike_rows) == 16
    for r in unlike_rows:
        assert r["unsure"] == "1" and r["in_domain"] == "0" and float(r["domain_score"]) > 1
        assert r["unsure_reason"] == OUT_OF_DOMAIN
    # the overall figures are selective_risk on exactly what predictions.csv says
    labels = np.array([int(r["label"] == "fake") for r in rows])
    p = np.array([float(r["p_fake"]) for r in rows])
    unsure = np.array([r["unsure"] == "1" for r in rows])
    in_domain = np.array([r["in_domain"] == "1" for r in rows])
    expected = selective_risk(labels, p, metrics["threshold"], unsure, in_domain)
    overall = selective["overall"]
    for key in ("coverage", "risk", "confident_wrong", "real_called_fake_confidently"):
        assert overall[key] == pytest.approx(expected[key]), key  # type: ignore[literal-required]
    # the CSV's 6 decimals tie a few scores, which reorders equally confident answers
    assert overall["aurc"] == pytest.approx(expected["aurc"], abs=2e-3)
    assert overall["out_of_domain"] == int((~in_domain).sum())
    assert overall["unsure"] == overall["unsure_band"] + overall["out_of_domain"]
    # the per-group table carries coverage, risk and AURC, and their mean
    table = {r["group"]: r for r in metrics["per_group"]["rows"]}  # type: ignore[index]
    assert table["unlike"]["coverage"] == 0.0 and "aurc" in table["toy"]
    assert metrics["per_group"]["mean"]["coverage"] == pytest.approx(  # type: ignore[index]
        (by_group["toy"]["coverage"] + 0.0) / 2
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["selective"]["overall"]["curve_coverage"][-1] == 1.0
    assert saved["plots"]["risk_coverage"] == "risk_coverage.png"
    assert (out / "risk_coverage.png").read_bytes().startswith(PNG_MAGIC)
    page = parse_page(out / "report.html")
    assert (
        "coverage" in page.sections["selective-risk"] and "AURC" in page.sections["selective-risk"]
    )
    assert "coverage (answered)" in page.sections["summary"]


def _png_with_parameters(array: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_provenance_evidence_joins_the_verdicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    for folder in ("real", "fake"):
        (data / folder).mkdir(parents=True)
    for i in range(6):
        Image.fromarray(toy_array("real", rng, 32)).save(data / "real" / f"{i}.png")
        fake = toy_array("fake", rng, 32)
        if i < 3:  # three fakes say what made them
            (data / "fake" / f"{i}.png").write_bytes(_png_with_parameters(fake))
        else:
            Image.fromarray(fake).save(data / "fake" / f"{i}.png")
    detector = load_detector(tiny_bundle(tmp_path / "bundle"), device="cpu")
    metrics = evaluate(detector, data, tmp_path / "ev", progress=False, bootstrap=0)
    summary = metrics["provenance"]
    assert summary["read"] and summary["images"] == 12
    assert summary["images_with_evidence"] == 3
    assert summary["counts"] == {"metadata/ai_generated": 3}
    rows = {
        Path(r["path"]).parent.name + "/" + Path(r["path"]).name: r
        for r in rows_of(tmp_path / "ev")
    }
    for i in range(3):
        row = rows[f"fake/{i}.png"]
        assert "metadata: ai_generated" in row["evidence"]
        assert float(row["p_fake"]) > float(row["p_fake_pixels"])  # AI evidence raises p(fake)
    changed = sum(
        (float(r["p_fake_pixels"]) >= 0.5) != (r["predicted"] == "fake") for r in rows.values()
    )
    assert summary["labels_changed"] == changed
    carrying = {k for k, r in rows.items() if r["evidence"]}
    assert carrying == {"fake/0.png", "fake/1.png", "fake/2.png"}
    page = parse_page(tmp_path / "ev" / "report.html")
    assert "metadata/ai_generated" in page.sections["provenance"]
    assert "AUTOMATIC1111" in page.sections["provenance"]  # the per-image table
    # pixels alone: no evidence, p_fake is the pixel score
    pixels = evaluate(
        detector, data, tmp_path / "px", progress=False, bootstrap=0, provenance=False
    )
    assert pixels["provenance"]["read"] is False and not pixels["provenance"]["counts"]
    for row in rows_of(tmp_path / "px"):
        assert row["evidence"] == "" and row["p_fake"] == row["p_fake_pixels"]


# -- native-resolution crops -----------------------------------------------------------------
def native_bundle(folder: Path, *, crops: int = 4, seed: int = 0) -> Path:
    pre = Preprocessing(input_size=32, resize="native", crops=crops)
    return tiny_bundle(folder, seed, preprocessing=pre)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, Path]:
    root = tmp_path_factory.mktemp("native")
    data = make_dataset(root / "data", layout="folder", n_per_class=8, size=64)
    detector = load_detector(native_bundle(root / "bundle"), device="cpu")
    scores = sorted(r.p_fake for r in detector.predict(data) if r.p_fake is not None)
    detector.meta.threshold = scores[len(scores) // 2]  # mistakes of both kinds to show
    return detector, data


@pytest.mark.slow
def test_evaluate_a_native_crop_bundle_with_gallery_and_tsne(
    native: tuple[Detector, Path], tmp_path: Path
) -> None:
    from fakescope.evaluation.embeddings import embed_files
    from fakescope.evaluation.report_sections import report_hooks

    detector, data = native
    out = tmp_path / "ev"
    hooks = report_hooks(gallery=1, tsne_points=10)
    metrics = evaluate(detector, data, out, progress=False, bootstrap=0, report_hooks=hooks)
    assert metrics["n"] == 16
    rows = rows_of(out)
    predicted = {r["path"]: r for r in rows}
    for result in detector.predict(data):  # the same verdicts as predict
        row = predicted[result.path]
        assert float(row["p_fake"]) == pytest.approx(result.p_fake, abs=1e-6)
        assert float(row["max_crop_p_fake"]) == pytest.approx(result.max_crop_p_fake, abs=1e-6)
    assert metrics["explanations"]["rows"]  # type: ignore[typeddict-item]
    assert (out / "gradcam_true_positives.png").is_file() or (
        out / "gradcam_false_negatives.png"
    ).is_file()
    assert metrics["embeddings"]["n"] == 10  # type: ignore[typeddict-item]
    assert (out / "tsne.png").read_bytes().startswith(PNG_MAGIC)
    # t-SNE features of crops: one row per image, scores the mean of the crop logits
    found = embed_files(detector, [r["path"] for r in rows[:4]], progress=False, scores=True)
    assert found.features.shape[0] == 4 and found.p_fake is not None
    np.testing.assert_allclose(found.p_fake, [float(r["p_fake"]) for r in rows[:4]], atol=1e-5)


@pytest.mark.slow
def test_robustness_of_a_native_crop_bundle_corrupts_and_attacks_the_crops(
    native: tuple[Detector, Path], tmp_path: Path
) -> None:
    from fakescope.robustness.attacked import attack_target
    from fakescope.robustness.sweep import RobustnessConfig, robustness

    detector, data = native
    model, normalize, pre, _ = attack_target(detector)
    batch = torch.from_numpy(np.stack([pre.to_uint8(Image.new("RGB", (80, 48), (90, 20, 200)))]))
    assert batch.ndim == 5
    with torch.no_grad():  # the attacked module is the detector's own aggregate logit
        z = model(normalize(batch.float() / 255.0)).reshape(-1)
    assert float(z[0]) == pytest.approx(float(detector.logits(batch)[0]), abs=1e-4)
    config = RobustnessConfig(
        severities={"jpeg": (50,), "gaussian_blur": (1.0,)},
        attacks=("fgsm", "pgd"),
        eps=(8 / 255,),
        steps=2,
        examples=2,
    )
    result = robustness(detector, data, tmp_path / "rob", config, progress=False)
    name = result["models"][0]["name"]
    assert [r["name"] for r in result["rows"]] == ["clean", "jpeg", "gaussian_blur"]
    clean = result["rows"][0]["results"][name]
    assert clean["n"] == 16
    attacked = {r["name"]: r["results"][name] for r in result["attacks"]["rows"]}
    assert set(attacked) == {"fgsm", "pgd"}
    for res in attacked.values():  # attacks push every image towards the wrong class
        assert res["n"] == 16 and res["accuracy"] <= clean["accuracy"]
    shown = result["attacks"]["examples"][name]["pgd"]
    assert shown  # example files of the first crop
    assert (tmp_path / "rob" / "report.html").is_file()


# -- calibrate -------------------------------------------------------------------------------
def test_calibrate_bundle_refuses_shipped_and_ensemble_bundles_before_scoring(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakescope.evaluation import calibration

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded a detector before refusing")

    monkeypatch.setattr(calibration, "load_detector", no_loading)
    with pytest.raises(BundleError, match="the shipped 'default' detector is read-only"):
        calibration.calibrate_bundle("default", toy_folder, progress=False)
    (tmp_path / "ens").mkdir()
    meta = {"format": "fakescope-bundle", "kind": "ensemble"}
    (tmp_path / "ens" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="an ensemble bundle has no temperature"):
        calibration.calibrate_bundle(tmp_path / "ens", toy_folder, progress=False)


def test_confident_mistakes_both_ways_per_source_and_generator(
    with_domain: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A manifest naming sources and generators: metrics.json counts, per source and per
    generator, reals confidently called fake and AI images confidently called real, as
    predictions.csv says."""
    bundle, data, _ = with_domain
    files = sorted(p for p in data.rglob("*.png"))
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "generator", "source"])
        for i, path in enumerate(files):
            label = "fake" if "fake" in path.parts else "real"
            generator = f"g{i % 2}" if label == "fake" else ""
            writer.writerow([path, label, generator, f"s{i % 3}"])
    detector = load_detector(bundle, device="cpu")
    detector.meta.unsure_margin = 1e-4
    out = tmp_path / "ev"
    metrics = evaluate(detector, [manifest], out, progress=False, bootstrap=0)
    mistakes = metrics["selective"]["mistakes"]
    assert set(mistakes) == {"source", "generator"}
    assert [r["group"] for r in mistakes["source"]] == ["s0", "s1", "s2"]
    assert [r["group"] for r in mistakes["generator"]] == ["g0", "g1"]
    rows = rows_of(out)
    by_path = {str(p): (f"s{i % 3}", f"g{i % 2}") for i, p in enumerate(files)}
    for by, column in (("source", 0), ("generator", 1)):
        for r in mistakes[by]:
            mine = [x for x in rows if by_path[x["path"]][column] == r["group"]]
            sure = [x for x in mine if x["unsure"] == "0"]
            missed = sum(x["label"] == "fake" and x["predicted"] == "real" for x in sure)
            accused = sum(x["label"] == "real" and x["predicted"] == "fake" for x in sure)
            assert r["fake_called_real"] == missed
            if by == "source":
                assert r["real_called_fake"] == accused
    overall = metrics["selective"]["overall"]
    assert overall["fake_called_real_confidently"] is not None
    section = parse_page(out / "report.html").sections["selective-risk"]
    assert "Confident mistakes by generator" in section and "fakes called real" in section
