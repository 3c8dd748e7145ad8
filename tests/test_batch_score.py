"""Batch scoring into Parquet: the scoring core without Ray, then whole jobs on a local Ray."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fakescope.batch_score import SCHEMA, score_paths, score_to_parquet
from fakescope.data.sources import collect_inputs
from fakescope.detectors import Detector
from fakescope.errors import ScoringError


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load("cifake", device="cpu")  # the shipped 64 px CIFAKE detector


@pytest.fixture(scope="module")
def mixed_inputs(
    tmp_path_factory: pytest.TempPathFactory, bad_files: dict[str, Path], toy_zip: Path
) -> list[str]:
    """A folder with good and corrupt images, an archive, a CSV manifest, a missing path."""
    from imagegen import make_dataset

    root = tmp_path_factory.mktemp("score")
    folder = make_dataset(root, n_per_class=6, layout="folder")
    for name in ("truncated.jpg", "text.jpg", "empty.jpg", "cmyk.jpg"):
        shutil.copy(bad_files[name], folder / "real" / name)
    manifest = make_dataset(root, n_per_class=3, layout="csv", seed=5)
    return [str(folder), str(toy_zip), str(manifest), str(root / "missing_folder")]


def _by_path(rows: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in rows}


def _assert_same_as_predict(rows: list[dict], detector: Detector, inputs: list[str]) -> None:
    expected = _by_path([p.to_dict() for p in detector.predict(inputs)])
    got = _by_path(rows)
    assert len(got) == len(rows)  # every image once
    assert got.keys() == expected.keys()
    for path, want in expected.items():
        row = got[path]
        assert row["error"] == want["error"], path
        if want["error"] is None:
            assert row["p_fake"] == pytest.approx(want["p_fake"], abs=1e-6), path
            assert (row["label"], row["unsure"]) == (want["label"], want["unsure"]), path
        else:
            assert row["p_fake"] is None and row["label"] is None and row["unsure"] is None


def test_score_paths_matches_predict_and_keeps_bad_files(
    detector: Detector, mixed_inputs: list[str]
) -> None:
    paths, problems = collect_inputs(mixed_inputs)
    assert problems == [(mixed_inputs[-1], "does not exist")]
    table = score_paths(detector, paths)
    assert table.schema == SCHEMA
    assert table.column("path").to_pylist() == paths  # in order, one row per input
    errors = [row for row in table.to_pylist() if row["error"]]
    assert {Path(row["path"]).name for row in errors} == {"truncated.jpg", "text.jpg", "empty.jpg"}
    _assert_same_as_predict(table.to_pylist(), detector, paths)


def test_bad_options_are_refused_before_any_work(tmp_path: Path, toy_folder: Path) -> None:
    with pytest.raises(ScoringError, match=r"\.parquet"):
        score_to_parquet([str(toy_folder)], tmp_path / "scores.csv")
    with pytest.raises(ScoringError, match="batch-size"):
        score_to_parquet([str(toy_folder)], tmp_path / "s.parquet", batch_size=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScoringError, match=r"no images to score \(.*empty: no image files found"):
        score_to_parquet([str(empty)], tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()


# -- on a local Ray instance ---------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray() -> object:
    ray = pytest.importorskip("ray")
    for attempt in range(3):  # Ray gives its raylet a fixed 30 s to start: a busy CI can miss it
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_job_writes_parquet_equal_to_predict(
    local_ray: object, detector: Detector, mixed_inputs: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out" / "scores.parquet"
    summary = score_to_parquet(
        mixed_inputs, out, detector=detector, batch_size=5, workers=2, progress=False
    )
    table = pq.read_table(out)
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert summary.n == len(rows) == 12 + 40 + 6 + 4 + 1
    assert summary.n_errors == 4  # three unreadable images and the missing folder
    assert not list(out.parent.glob("*.tmp"))
    missing = [row for row in rows if row["path"] == mixed_inputs[-1]]
    assert missing == [
        {
            "path": mixed_inputs[-1],
            "p_fake": None,
            "label": None,
            "unsure": None,
            "error": "does not exist",
        }
        | {name: None for name in SCHEMA.names[5:]}
    ]  # fmt: skip (the columns after the first five: pixels, domain, evidence)
    _assert_same_as_predict(rows, detector, mixed_inputs)


@pytest.mark.slow
def test_score_command_on_ray(local_ray: object, mixed_inputs: list[str], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fakescope.cli import app

    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(
        app, ["score", *mixed_inputs[:2], "--out", str(out), "--batch-size", "16", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "scored 56 images" in result.output
    assert "3 inputs could not be read" in result.output
    assert pq.read_table(out).num_rows == 56
