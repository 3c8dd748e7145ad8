"""Every CLI command end to end, as a user runs it: a real `fakescope` process."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from clirun import fakescope

pytestmark = pytest.mark.slow

TINY = [
    "--set", "model.kwargs={widths: [8, 16, 32]}",
    "--set", "train.epochs=2",
    "--set", "train.batch_size=8",
    "--set", "train.precision=fp32",
    "--set", "train.threads=1",
    "--set", "data.val_fraction=0.25",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, toy_folder: Path) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    fakescope("train", toy_folder, "--out", run, "--quiet", *TINY)
    return run


def test_version_and_help() -> None:
    assert "fakescope 0.1.0" in fakescope("--version").stdout
    help_text = fakescope("--help").stdout
    for command in ("data", "train", "predict", "evaluate", "explain", "calibrate", "info", "demo"):
        assert command in help_text


def test_models_lists_the_registry() -> None:
    listing = fakescope("models").stdout
    for name in ("resnet_se", "tf_efficientnet_lite0", "convnextv2_atto", "resnet50"):
        assert name in listing


def test_audit_writes_json(toy_folder: Path, tmp_path: Path) -> None:
    proc = fakescope("data", "audit", toy_folder, "--json", tmp_path / "a.json", "--quiet")
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["total"] == 40
    for key in ("within_class", "across_classes"):
        assert key in report["duplicates"]
    for key in ("leaks", "unreadable", "bias_warnings"):
        assert key in report
    assert "real" in proc.stdout


def test_split_writes_a_manifest(toy_folder: Path, tmp_path: Path) -> None:
    fakescope("data", "split", toy_folder, "--out", tmp_path / "m.csv", "--seed", "1", "-q")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert {r["split"] for r in rows} == {"train", "val", "test"} and len(rows) == 40
    fakescope("data", "split", toy_folder, "--out", tmp_path / "k.csv", "--folds", "4", "-q")
    rows = list(csv.DictReader((tmp_path / "k.csv").open()))
    assert {r["split"] for r in rows} == {"fold0", "fold1", "fold2", "fold3"}


def test_train_run_layout(trained: Path) -> None:
    for name in ("bundle/bundle.json", "metrics.json", "recipe.yaml", "manifest.csv"):
        assert (trained / name).is_file(), name


def test_train_on_a_split_manifest(toy_folder: Path, tmp_path: Path) -> None:
    fakescope("data", "split", toy_folder, "--out", tmp_path / "m.csv", "-q")
    fakescope("train", tmp_path / "m.csv", "--out", tmp_path / "run", "-q", *TINY)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"] is not None and metrics["test"]["n"] > 0


def test_bad_config_is_rejected_before_work(toy_folder: Path, tmp_path: Path) -> None:
    proc = fakescope(
        "train", toy_folder, "--out", tmp_path / "r", "--set", "train.epochs=-1", check=False
    )
    assert proc.returncode == 2
    assert "train.epochs" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_predict_formats(trained: Path, toy_folder: Path, tmp_path: Path) -> None:
    bundle = trained / "bundle"
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    rows = json.loads(
        fakescope("predict", "--bundle", bundle, toy_folder, text, "-f", "json").stdout
    )
    assert len(rows) == 41
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and bad[0]["path"].endswith("notes.jpg")
    # the five fields consumers read come first; provenance and domain fields follow
    assert list(rows[0])[:5] == ["path", "p_fake", "label", "unsure", "error"]
    assert {"p_fake_pixels", "evidence", "unsure_reason", "domain_score"} <= set(rows[0])
    csv_text = fakescope("predict", "-b", bundle, toy_folder / "fake", "-f", "csv").stdout
    assert csv_text.splitlines()[0].startswith("path,p_fake,label,unsure,error,")
    table = fakescope("predict", "-b", bundle, toy_folder / "real" / "0000.png").stdout
    assert "0000.png" in table
    fakescope("predict", "-b", bundle, toy_folder, "-f", "json", "--out", tmp_path / "p.json")
    assert len(json.loads((tmp_path / "p.json").read_text())) == 40


def test_predict_reads_heic_and_avif_like_the_png_they_were_made_from(
    trained: Path, toy_folder: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from fakescope.data import decode  # registers the HEIC opener, for saving here

    assert "HEIF" in Image.SAVE and {".heic", ".avif"} <= decode.IMAGE_EXTENSIONS

    png = tmp_path / "photo.png"
    picture = Image.open(toy_folder / "real" / "0000.png").convert("RGB").resize((96, 64))
    picture.save(png)
    picture.save(tmp_path / "photo.heic", quality=100)
    picture.save(tmp_path / "photo.avif", quality=100)
    names = ["photo.heic", "photo.avif", "photo.png"]
    proc = fakescope(
        "predict", "-b", trained / "bundle", *(tmp_path / n for n in names), "-f", "json"
    )
    rows = {Path(r["path"]).name: r for r in json.loads(proc.stdout)}
    assert all(rows[n]["error"] is None for n in names), rows
    for name in ("photo.heic", "photo.avif"):  # lossy, but the same picture
        assert rows[name]["p_fake"] == pytest.approx(rows["photo.png"]["p_fake"], abs=0.05)
    assert "could not be read" not in proc.stderr


def test_exit_status_says_whether_inputs_were_read(trained: Path, tmp_path: Path) -> None:
    bundle = trained / "bundle"
    proc = fakescope("predict", "-b", bundle, "/nonexistent", check=False)
    assert proc.returncode == 1
    assert "1 of 1 inputs could not be read" in proc.stderr
    assert "/nonexistent: does not exist" in proc.stderr
    good = tmp_path / "good.png"
    good.write_bytes(_png())
    bad = [tmp_path / f"bad{i}.jpg" for i in range(5)]
    for path in bad:
        path.write_text("not an image")
    mixed = ["predict", "-b", bundle, good, *bad, "-f", "json"]
    proc = fakescope(*mixed)  # some read: success, and the count on stderr
    assert "5 of 6 inputs could not be read" in proc.stderr
    assert "bad0.jpg: not an image" in proc.stderr and "... and 2 more" in proc.stderr
    strict = fakescope(*mixed, "--strict", check=False)
    assert strict.returncode == 1 and strict.stdout == proc.stdout  # results still written
    assert fakescope("predict", "-b", bundle, good, "--strict").returncode == 0
    proc = fakescope("explain", "-b", bundle, *bad, "--out", tmp_path / "cam", check=False)
    assert proc.returncode == 1 and "5 of 5 inputs could not be read" in proc.stderr
    proc = fakescope("explain", "-b", bundle, good, bad[0], "--out", tmp_path / "c", check=False)
    assert proc.returncode == 0
    proc = fakescope(
        "explain", "-b", bundle, good, bad[0], "--strict", "--out", tmp_path / "c", check=False
    )
    assert proc.returncode == 1 and "1 of 2 inputs could not be read" in proc.stderr


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def test_evaluate_and_info(trained: Path, toy_zip: Path, tmp_path: Path) -> None:
    proc = fakescope(
        "evaluate", toy_zip, "--bundle", trained / "bundle", "--out", tmp_path / "ev", "-q"
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n"] == 40 and "roc_auc" in metrics
    assert "accuracy" in proc.stdout
    assert "Model card" in fakescope("info", "--bundle", trained / "bundle").stdout


def test_resume_through_the_cli(toy_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    fakescope("train", toy_folder, "--out", run, "-q", *TINY)
    again = fakescope("train", toy_folder, "--out", run, "-q", *TINY, check=False)
    assert again.returncode == 2 and "--resume" in again.stderr
    shutil.rmtree(run / "bundle")
    fakescope("train", toy_folder, "--out", run, "--resume", "-q")
    assert (run / "bundle" / "bundle.json").is_file()


def test_explain_writes_overlays(trained: Path, toy_folder: Path, tmp_path: Path) -> None:
    fakescope("explain", toy_folder / "fake", "-b", trained / "bundle", "--out", tmp_path / "cam")
    assert len(list((tmp_path / "cam").glob("*_gradcam.png"))) == 20
    fakescope(
        "explain", toy_folder / "real" / "0000.png", "-b", trained / "bundle",
        "--layers", "stage2", "--layers", "stage3", "--out", tmp_path / "multi",
    )  # fmt: skip
    assert len(list((tmp_path / "multi").glob("*.png"))) == 1


def test_tampered_bundle_is_a_clear_error(trained: Path, tmp_path: Path, toy_folder: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(trained / "bundle", copy)
    (copy / "bundle.json").write_text(
        (copy / "bundle.json").read_text().replace("resnet_se", "resnet18")
    )
    proc = fakescope("predict", "--bundle", copy, toy_folder, check=False)
    assert proc.returncode == 2 and "checksum mismatch" in proc.stderr


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    # a long path and brackets: printed whole, on one line, not read as rich markup
    missing = tmp_path / ("deeply-nested-folder-" * 4) / "photos[bold]" / "nowhere"
    proc = fakescope("data", "audit", missing, check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert str(missing) in proc.stderr.replace("\n", "")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["calibrate", "unsure-band"])
def test_rewriting_commands_refuse_what_they_cannot_rewrite_before_any_work(
    command: str, toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from fakescope import cli
    from fakescope.bundle import shipped_bundle_path
    from fakescope.errors import BundleError
    from fakescope.evaluation import calibration, unsure_band

    calls = []
    monkeypatch.setattr(calibration, "calibrate_bundle", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(unsure_band, "fit_bundle_band", lambda *a, **k: calls.append(a))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ens").mkdir()
    ensemble_meta = {"format": "fakescope-bundle", "kind": "ensemble"}  # enough to be one
    (tmp_path / "ens" / "bundle.json").write_text(json.dumps(ensemble_meta))
    (tmp_path / "plain-folder").mkdir()
    shipped = shipped_bundle_path("scratch")
    expected = {
        "default": "the shipped 'default' detector is read-only",
        str(shipped): "the shipped 'scratch' detector is read-only",
        "ens": "an ensemble bundle has no temperature or band of its own",
        "plain-folder": "not a fakescope bundle (bundle.json is missing)",
        "nowhere": "no such bundle",
    }
    for bundle, reason in expected.items():
        result = CliRunner().invoke(cli.app, [command, bundle, str(toy_folder)])
        assert isinstance(result.exception, BundleError), (bundle, result.output)
        assert reason in str(result.exception), str(result.exception)
    assert not calls  # refused before any image was decoded or scored
    # what to do instead, as a command that works
    result = CliRunner().invoke(cli.app, [command, "default", str(toy_folder)])
    assert f"cp -r {shipped_bundle_path('default')} my-default-detector" in str(result.exception)
    assert f"fakescope {command} my-default-detector {toy_folder}" in str(result.exception)
    result = CliRunner().invoke(cli.app, [command, "ens", str(toy_folder)])
    assert f"run {command} on each member bundle" in str(result.exception)
    assert f"fakescope ensemble MEMBER... --val {toy_folder} --out ens" in str(result.exception)


def test_calibrate_a_shipped_name_is_one_clear_line() -> None:
    proc = fakescope("calibrate", "default", "anything", check=False)
    assert proc.returncode == 2 and "read-only" in proc.stderr and "cp -r" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_demo_without_data_says_where_to_get_cifake(tmp_path: Path) -> None:
    proc = fakescope("demo", "--data", tmp_path / "absent.zip", check=False)
    assert proc.returncode == 2 and "CIFAKE" in proc.stderr and "real/" in proc.stderr


def test_ensemble_and_robustness_commands(trained: Path, toy_folder: Path, tmp_path: Path) -> None:
    ens = tmp_path / "ens"
    proc = fakescope("ensemble", trained / "bundle", trained / "bundle", "--val", toy_folder,
                     "--out", ens, "--rule", "auc", "-q")  # fmt: skip
    assert "ensemble" in proc.stdout and (ens / "ensemble.json").is_file()
    assert json.loads((ens / "bundle.json").read_text())["weights"] == [0.5, 0.5]
    rows = json.loads(fakescope("predict", toy_folder / "fake", "-b", ens, "-f", "json").stdout)
    assert len(rows) == 20 and all(0 <= r["p_fake"] <= 1 for r in rows)
    assert "fakescope ensemble" in fakescope("info", "-b", ens).stdout
    fakescope("evaluate", toy_folder, "-b", ens, "--out", tmp_path / "ev", "-q")
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == 40
    fakescope("robustness", toy_folder, "-b", trained / "bundle", "--compare", ens,
              "--corruptions", "jpeg", "--severities", "jpeg=50", "--attacks", "fgsm",
              "--eps", "2/255", "--max-images", "10", "--out", tmp_path / "rob", "-q")  # fmt: skip
    result = json.loads((tmp_path / "rob" / "robustness.json").read_text())
    assert [m["name"] for m in result["models"]] == ["run", "ens"]
    assert len(result["rows"]) == 2 and len(result["attacks"]["rows"]) == 1
    bad = fakescope("robustness", toy_folder, "--corruptions", "snow", "--out", tmp_path / "x",
                    check=False)  # fmt: skip
    assert bad.returncode == 2 and "unknown corruption 'snow'" in bad.stderr
