"""The published OpenAPI schema against a real server: what the schema allows, the server
accepts (unless a file's bytes are not an image, which a schema cannot express), what it
forbids, the server refuses with a 4xx, and nothing ends in a 5xx. Checked by a real OpenAPI
client, schemathesis, with all its checks, on a short and seeded run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from liveserver import thread_server

from fakescope.detectors import Detector
from fakescope.serve import ServeSettings, create_app

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    detector = Detector.load(device="cpu")
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5, max_files=4))) as url:
        yield url


def _upload_schema(schema: dict, path: str) -> dict:
    body = schema["paths"][path]["post"]["requestBody"]
    return body["content"]["multipart/form-data"]["schema"]


def test_schema_says_files_are_required_non_empty_and_bounded(server: str) -> None:
    schema = httpx.get(f"{server}/openapi.json", timeout=30).json()
    for path, most in (("/v1/predict", 4), ("/v1/explain", 1)):
        upload = _upload_schema(schema, path)
        files = upload["properties"]["files"]
        assert upload["required"] == ["files"], path
        assert (files["minItems"], files["maxItems"]) == (1, most), path
        assert files["items"]["minLength"] == 1, path  # an empty file is refused (400)
        assert schema["paths"][path]["post"]["requestBody"]["required"] is True


@pytest.mark.slow
def test_schemathesis_finds_no_failure_and_no_server_error(server: str, tmp_path: Path) -> None:
    # The CLI rather than the pytest plugin: it runs every phase (examples, coverage,
    # fuzzing) and every check exactly as a user's `st run` would. tmp_path keeps its
    # hypothesis and schemathesis caches out of the checkout.
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "25",
        "--seed",
        "0",
        "--workers",
        "1",
        "--request-timeout",
        "30",
    ]
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    report = run.stdout[-8000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert " passed" in run.stdout, report  # it did test something
