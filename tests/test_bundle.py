"""Detector bundles, Detector predictions and evaluation metrics."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics as skm
from tiny import report_bundle

from fakescope.bundle import (
    SHIPPED_DETECTORS,
    load_bundle,
    read_meta,
    resolve_bundle_path,
    shipped_available,
    shipped_bundle_path,
    update_meta,
)
from fakescope.detectors import Detector
from fakescope.errors import BundleError
from fakescope.evaluation.evaluate import evaluate
from fakescope.evaluation.metrics import binary_metrics, choose_threshold
from fakescope.models import create_model


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    return report_bundle(
        tmp_path / "bundle",
        threshold=0.4,
        unsure_margin=0.05,
        data_fingerprint="abc",
        metrics={"accuracy": 0.5},
    )


def test_bundle_round_trip_keeps_weights_and_metadata(bundle_dir: Path) -> None:
    model, meta = load_bundle(bundle_dir)
    torch.manual_seed(0)
    original = create_model("resnet_se", widths=[8, 16, 32])
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert meta.threshold == 0.4 and meta.unsure_band == pytest.approx((0.35, 0.45))
    assert meta.preprocessing.std == (0.25, 0.25, 0.25)
    raw = read_meta(bundle_dir)
    assert len(raw["sha256"]) == 64 and len(raw["weights_sha256"]) == 64
    assert raw["versions"]["torch"] == torch.__version__
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "resnet_se" in card and "0.4000" in card
    assert not list(bundle_dir.glob("*.pt*")) and not list(bundle_dir.glob("*.pkl"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(bundle_dir.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    for file in bundle_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file.name


def test_tampered_weights_are_refused(bundle_dir: Path) -> None:
    weights = bundle_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="weights were modified"):
        load_bundle(bundle_dir)


def test_tampered_metadata_is_refused(bundle_dir: Path) -> None:
    meta_path = bundle_dir / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["threshold"] = 0.01
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="metadata was modified"):
        load_bundle(bundle_dir)


def test_incompatible_or_missing_bundles_say_why(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(empty)
    future = tmp_path / "future"
    shutil.copytree(bundle_dir, future)
    meta = read_meta(future)
    from fakescope.bundle import write_meta

    write_meta(future, {**meta, "format_version": 99}, weights_sha256=meta["weights_sha256"])
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(future)
    alien = tmp_path / "alien"
    shutil.copytree(bundle_dir, alien)
    meta = read_meta(alien)
    write_meta(alien, {**meta, "architecture": "vit_huge"}, weights_sha256=meta["weights_sha256"])
    with pytest.raises(BundleError, match="vit_huge"):
        load_bundle(alien)


def test_shipped_detectors_load_by_name_and_a_folder_of_that_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_bundle_path(None) == shipped_bundle_path("default")
    for name in SHIPPED_DETECTORS:
        if not shipped_available(name):  # the face specialist ships later: refused by name
            with pytest.raises(BundleError, match=f"{name!r} is not installed"):
                resolve_bundle_path(name)
            continue
        folder = resolve_bundle_path(name)
        assert folder == shipped_bundle_path(name)
        meta = read_meta(folder)  # verified: checksum and format
        if name == "default":  # another name for general_faces
            assert folder == shipped_bundle_path("general_faces")
            continue
        assert meta["card"]["title"].startswith(f"fakescope {name} detector")
    assert read_meta(resolve_bundle_path("scratch"))["architecture"] == "resnet_se"
    shipped = "cifake, default, faces, general, general_faces, scratch"
    with pytest.raises(BundleError, match=f"shipped: {shipped}"):
        shipped_bundle_path("nope")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scratch").mkdir()  # a real folder called like a shipped detector is used
    assert resolve_bundle_path("scratch") == Path("scratch")
    assert resolve_bundle_path("missing") == Path("missing")


def test_update_meta_resigns(bundle_dir: Path) -> None:
    update_meta(bundle_dir, temperature=2.0, threshold=0.6)
    _, meta = load_bundle(bundle_dir)
    assert meta.temperature == 2.0 and meta.unsure_band == pytest.approx((0.55, 0.65))


def test_model_card_lists_metrics_in_reading_order_after_update_meta(bundle_dir: Path) -> None:
    metrics = {"ece": 0.01, "accuracy": 0.9, "zeta_extra": 1.0, "roc_auc": 0.95, "n": 10}
    update_meta(bundle_dir, metrics=metrics)  # bundle.json stores its keys sorted
    rows = [
        line.split("|")[1].strip()
        for line in (bundle_dir / "MODEL_CARD.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| metric")
    ]
    assert rows == ["n", "accuracy", "roc_auc", "ece", "zeta_extra"]


# -- Detector ------------------------------------------------------------------------------
def test_detector_predicts_files_folders_archives_and_bad_files(
    bundle_dir: Path, toy_folder: Path, toy_zip: Path, bad_files: dict[str, Path]
) -> None:
    detector = Detector.load(bundle_dir, device="cpu")
    inputs = [toy_folder / "real", toy_zip, bad_files["truncated.jpg"], bad_files["rgba.png"]]
    results = detector.predict(inputs + [Path("/no/such/file.jpg")], batch_size=7)
    by_name = {Path(r.path.split("::")[-1]).name: r for r in results}
    assert by_name["truncated.jpg"].error and by_name["truncated.jpg"].p_fake is None
    assert by_name["file.jpg"].error == "does not exist"
    assert by_name["rgba.png"].error is None and 0 <= by_name["rgba.png"].p_fake <= 1
    good = [r for r in results if r.error is None]
    assert len(good) == 20 + 40 + 1
    for r in good:
        assert r.label == ("fake" if r.p_fake >= 0.4 else "real")
        assert r.unsure == (0.35 < r.p_fake < 0.45)
    # the first five keys as before; provenance and domain fields follow them
    assert list(results[0].to_dict())[:5] == ["path", "p_fake", "label", "unsure", "error"]
    assert {"p_fake_pixels", "evidence", "unsure_reason", "domain_score"} <= set(
        results[0].to_dict()
    )


def test_detector_accepts_images_and_bytes_and_uses_temperature(bundle_dir: Path) -> None:
    detector = Detector.load(bundle_dir, device="cpu")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    import io

    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    from_pil, from_bytes = detector.predict([img, buffer.getvalue()])
    assert from_pil.p_fake == pytest.approx(from_bytes.p_fake, abs=1e-6)
    logit = detector.logits(detector.preprocessing.batch_from_images([img]))[0]
    detector.meta.temperature = 3.0
    assert detector.predict_images([img])[0] == pytest.approx(
        float(torch.sigmoid(logit / 3.0)), abs=1e-6
    )


# -- metrics and evaluate ------------------------------------------------------------------
def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    m = binary_metrics(y, p, 0.5)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert np.array(m["confusion_matrix"]["rows_true_cols_pred"]).sum() == 500


def test_threshold_policies_pick_sensible_values() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.45, 0.4, 0.7, 0.8, 0.9])
    t = choose_threshold(y, p, "max_f1")
    assert binary_metrics(y, p, t)["f1"] == pytest.approx(max(skm.f1_score(y, p >= c) for c in p))
    assert choose_threshold(y, p, "youden") in p
    assert choose_threshold(y, p, "fixed", 0.3) == 0.3


def test_evaluate_writes_metrics_json(bundle_dir: Path, toy_csv: Path, tmp_path: Path) -> None:
    metrics = evaluate(
        Detector.load(bundle_dir, device="cpu"), toy_csv, tmp_path / "eval", progress=False
    )
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "confusion_matrix",
    ):
        assert key in saved
    assert saved["n"] == metrics["n"] == 40
    lines = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    # the first five columns as before; the verdict's other fields follow
    assert lines[0].startswith("path,label,p_fake,predicted,unsure,") and len(lines) == 41
