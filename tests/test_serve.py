"""The HTTP API against a real uvicorn server on 127.0.0.1: verdicts equal the library's,
micro-batching changes nothing but speed, every bad input is a 4xx with a JSON reason."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from imagegen import encode, png_one_colour, toy_array
from liveserver import thread_server
from PIL import Image

from fakescope.detectors import Detector
from fakescope.errors import ConfigError
from fakescope.serve import ServeSettings, create_app
from fakescope.serve.access_log import LOGGER_NAME
from fakescope.serve.batcher import MicroBatcher, Overloaded

# One keep-alive client: a new httpx client per request costs more than the request.
http = httpx.Client(timeout=60)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(device="cpu")


@pytest.fixture(scope="module")
def server(detector: Detector) -> str:
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        yield url


def image_bytes(seed: int, size: int = 64, fmt: str = "JPEG", kind: str = "real") -> bytes:
    return encode(toy_array(kind, np.random.default_rng(seed), size), fmt)


def files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]


# -- verdicts ------------------------------------------------------------------------------
def test_predict_matches_the_library_for_several_images(server: str, detector: Detector) -> None:
    images = [("a.jpg", image_bytes(1)), ("b.png", image_bytes(2, 100, "PNG", "fake"))]
    response = http.post(f"{server}/v1/predict", files=files(*images), timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = detector.predict([data for _, data in images])
    assert [r["filename"] for r in body["results"]] == ["a.jpg", "b.png"]
    for result, reference in zip(body["results"], expected, strict=True):
        want = reference.to_dict()
        for key in ("p_fake", "p_fake_pixels"):
            assert result.pop(key) == pytest.approx(want.pop(key), abs=1e-5)
        assert want.pop("path") is not None and want.pop("error") is None
        assert {k: v for k, v in result.items() if k != "filename"} == want
    assert body["model"]["threshold"] == pytest.approx(detector.threshold)
    assert body["model"]["unsure_band"] == pytest.approx(list(detector.meta.unsure_band))
    assert body["model"]["input_size"] == detector.preprocessing.input_size  # the default's


def test_heic_and_avif_uploads_are_scored_like_the_library(server: str, detector: Detector) -> None:
    """An iPhone photo (HEIC) and a web image (AVIF), made here, uploaded under names that
    say nothing of their format: decoded by content, scored as the library scores them."""
    picture = toy_array("real", np.random.default_rng(5), 96)
    uploads = [("IMG_0001.upload", encode(picture, "HEIF")), ("pic", encode(picture, "AVIF"))]
    response = http.post(f"{server}/v1/predict", files=files(*uploads), timeout=30)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = detector.predict([data for _, data in uploads])
    for result, reference in zip(results, expected, strict=True):
        assert reference.error is None
        assert result["p_fake"] == pytest.approx(reference.p_fake, abs=1e-5)
        assert result["label"] == reference.label


def test_a_png_bomb_upload_is_413_naming_pixels_and_file_size(server: str) -> None:
    bomb = png_one_colour(12000, 12000)
    response = http.post(f"{server}/v1/predict", files=files(("poster.png", bomb)), timeout=30)
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["code"] == "too_many_pixels" and error["filename"] == "poster.png"
    assert "12000x12000 = 144,000,000 pixels" in error["message"]
    assert f"{len(bomb):,} bytes" in error["message"]


def test_concurrent_requests_are_batched_and_scored_as_alone(
    server: str, detector: Detector
) -> None:
    payloads = [image_bytes(seed, 48) for seed in range(24)]
    expected = [p.p_fake for p in detector.predict(payloads)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/predict", files=files((f"{i}.jpg", data)))
                    for i, data in enumerate(payloads)
                )
            )

    before = http.get(f"{server}/v1/model").status_code  # warm connection path
    assert before == 200
    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["results"][0]["p_fake"] for r in responses]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_explain_returns_a_png_overlay_with_the_verdict(server: str, detector: Detector) -> None:
    data = image_bytes(3, 80)
    response = http.post(f"{server}/v1/explain", files=files(("x.jpg", data)), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.format == "PNG" and min(picture.size) >= 256
    assert np.asarray(picture).std() > 5  # a heat map over an image, not a blank
    reference = detector.predict(data)[0]
    assert float(response.headers["x-p-fake"]) == pytest.approx(reference.p_fake, abs=1e-5)
    assert response.headers["x-label"] == reference.label


def test_ops_endpoints_model_card_docs_and_page(server: str, detector: Detector) -> None:
    assert http.get(f"{server}/healthz").json() == {"status": "ok"}
    assert http.get(f"{server}/readyz").json() == {"status": "ready"}
    card = http.get(f"{server}/v1/model").json()
    assert card["architecture"] == detector.meta.architecture
    assert card["threshold"] == pytest.approx(detector.threshold)
    assert "bundle" not in card  # no server paths
    assert card["model_card_markdown"].startswith("# Model card")
    spec = http.get(f"{server}/openapi.json").json()
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz"} <= set(spec["paths"])
    upload = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert http.get(f"{server}/docs").status_code == 200
    page = http.get(f"{server}/")
    assert page.status_code == 200 and 'id="file-input"' in page.text
    for asset in ("app.js", "style.css"):
        assert http.get(f"{server}/static/{asset}").status_code == 200
    assert "http" not in page.text.replace('href="/', "").split("<body", 1)[0]  # no CDN


# -- bad input -----------------------------------------------------------------------------
def _truncated_jpeg() -> bytes:
    data = image_bytes(4, 64)
    return data[: len(data) // 2]


BAD_UPLOADS = [
    # (case, files, expected status, expected code, filename named in the message)
    ("text named .jpg", [("notes.jpg", b"hello, I am text\n" * 10)], 415, "not_an_image"),
    ("html", [("page.png", b"<!DOCTYPE html><html></html>")], 415, "not_an_image"),
    ("random bytes", [("r.bin", bytes(range(256)) * 4)], 415, "not_an_image"),
    ("truncated jpeg", [("cut.jpg", _truncated_jpeg())], 422, "corrupt_image"),
    ("empty file", [("empty.jpg", b"")], 400, "empty_file"),
    ("one good one bad", [("ok.jpg", image_bytes(5)), ("bad.jpg", b"x" * 50)], 415, "not_an_image"),
]


@pytest.mark.parametrize(
    ("uploads", "status", "code"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
def test_bad_images_are_4xx_with_a_reason_naming_the_file(
    server: str, uploads: list, status: int, code: str
) -> None:
    response = http.post(f"{server}/v1/predict", files=files(*uploads), timeout=30)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    bad_name = uploads[-1][0]
    assert error["filename"] == bad_name and error["message"].startswith(f"{bad_name}: ")


def test_bad_requests_are_4xx_with_a_reason(server: str) -> None:
    cases = [
        (http.post(f"{server}/v1/predict", json={"image": "x"}), 415, "unsupported_media_type"),
        (http.post(f"{server}/v1/predict", content=image_bytes(6)), 415, "unsupported_media_type"),
        (
            http.post(f"{server}/v1/predict", data={"note": "no file"}, files=[]),
            415,  # httpx sends a urlencoded body when there is no file
            "unsupported_media_type",
        ),
        (
            http.post(
                f"{server}/v1/predict",
                content=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b--\r\n',
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
            400,
            "no_files",
        ),
        (
            http.post(
                f"{server}/v1/predict",
                content=b"garbage",
                headers={"content-type": "multipart/form-data"},
            ),
            400,
            "bad_multipart",
        ),
        (
            http.post(
                f"{server}/v1/predict",
                files=files(*[(f"{i}.jpg", image_bytes(i, 16)) for i in range(17)]),
            ),
            413,
            "too_many_files",
        ),
        (
            http.post(
                f"{server}/v1/explain", files=files(("a.jpg", image_bytes(1)), ("b.jpg", b"1"))
            ),
            413,
            "too_many_files",
        ),
        (http.get(f"{server}/v1/predict"), 405, "method_not_allowed"),
        (http.get(f"{server}/v2/nothing"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (code, response.text)
        assert error_of(response)["code"] == code


def test_size_and_pixel_limits_are_413(detector: Detector) -> None:
    settings = ServeSettings(max_file_bytes=2000, max_request_bytes=10_000, max_pixels=50 * 50)
    big_file = encode(toy_array("noise", np.random.default_rng(0), 32), "PNG")  # ~3 kB
    many_pixels = image_bytes(7, 64, "JPEG")  # 4096 pixels, small file
    with thread_server(create_app(detector, settings)) as url:
        response = http.post(f"{url}/v1/predict", files=files(("big.png", big_file)))
        assert response.status_code == 413 and error_of(response)["code"] == "file_too_large"
        assert "big.png" in error_of(response)["message"]
        response = http.post(f"{url}/v1/predict", files=files(("wide.jpg", many_pixels)))
        assert response.status_code == 413 and error_of(response)["code"] == "too_many_pixels"
        response = http.post(
            f"{url}/v1/predict", files=files(*[("f.png", big_file[:1900])] * 8)
        )  # each file within the limit, the body not
        assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit must hold on the bytes received
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="s.png"\r\n\r\n'
            for _ in range(20):
                yield b"\0" * 1000

        response = http.post(
            f"{url}/v1/predict",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
        assert http.get(f"{url}/healthz").status_code == 200


# -- auth, CORS, logs ----------------------------------------------------------------------
def test_api_key_guards_the_api_but_not_health_or_page(detector: Detector) -> None:
    settings = ServeSettings(api_key="s3cret")
    upload = files(("a.jpg", image_bytes(8)))
    with thread_server(create_app(detector, settings)) as url:
        missing = http.post(f"{url}/v1/predict", files=upload)
        assert missing.status_code == 401 and error_of(missing)["code"] == "unauthorized"
        wrong = http.get(f"{url}/v1/model", headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401
        ok = http.post(f"{url}/v1/predict", files=upload, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        bearer = http.get(f"{url}/v1/model", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        for open_path in ("/healthz", "/readyz", "/"):
            assert http.get(f"{url}{open_path}").status_code == 200


def test_cors_is_off_by_default_and_allows_only_listed_origins(
    server: str, detector: Detector
) -> None:
    origin = {"Origin": "https://example.org"}
    assert (
        "access-control-allow-origin" not in http.get(f"{server}/v1/model", headers=origin).headers
    )
    settings = ServeSettings(cors_origins=("https://example.org",))
    with thread_server(create_app(detector, settings)) as url:
        allowed = http.get(f"{url}/v1/model", headers=origin)
        assert allowed.headers["access-control-allow-origin"] == "https://example.org"
        other = http.get(f"{url}/v1/model", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


def test_access_log_is_one_json_object_per_request(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        response = http.post(
            f"{server}/v1/predict",
            files=files(("notes.txt", b"text")),
            headers={"X-Request-ID": "req-42"},
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            "req-42" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.02)
    assert response.headers["x-request-id"] == "req-42"
    (line,) = [r.getMessage() for r in caplog.records if "req-42" in r.getMessage()]
    record = json.loads(line)
    assert record["method"] == "POST" and record["path"] == "/v1/predict"
    assert record["status"] == 415 and record["duration_ms"] >= 0
    assert record["client"] == "127.0.0.1" and record["request_bytes"] > 0


def test_app_factory_works_in_testclient_too(detector: Detector) -> None:
    with TestClient(create_app(detector)) as client:
        response = client.post("/v1/predict", files=files(("a.png", image_bytes(9, 32, "PNG"))))
        assert response.status_code == 200
        assert 0.0 <= response.json()["results"][0]["p_fake"] <= 1.0


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        ServeSettings(max_batch=0)
    with pytest.raises(ConfigError, match="max_wait_ms"):
        ServeSettings(max_wait_ms=-1)
    with pytest.raises(ConfigError, match="API key"):
        ServeSettings(api_key=" ")


# -- the batcher on its own ----------------------------------------------------------------
def _recording_scorer(delay: float = 0.0):
    sizes: list[int] = []

    def score(batch: list[np.ndarray]) -> list[float]:
        sizes.append(len(batch))
        time.sleep(delay)
        return [float(array.flat[0]) for array in batch]

    return score, sizes


def _submit_many(batcher: MicroBatcher, n: int) -> list[float]:
    async def go() -> list[float]:
        arrays = [np.full((3, 2, 2), i, np.uint8) for i in range(n)]
        results = await asyncio.gather(*(batcher.score([a]) for a in arrays))
        return [r[0] for r in results]

    return asyncio.run(go())


def test_batcher_groups_concurrent_images_and_keeps_their_order() -> None:
    score, sizes = _recording_scorer(delay=0.01)
    batcher = MicroBatcher(score, max_batch=8, max_wait=0.01)
    batcher.start()
    try:
        assert _submit_many(batcher, 20) == [float(i) for i in range(20)]
    finally:
        batcher.stop()
    assert sum(sizes) == 20 and max(sizes) > 1 and max(sizes) <= 8


def test_batcher_with_max_batch_1_scores_one_at_a_time() -> None:
    score, sizes = _recording_scorer()
    batcher = MicroBatcher(score, max_batch=1)
    batcher.start()
    try:
        assert _submit_many(batcher, 6) == [float(i) for i in range(6)]
    finally:
        batcher.stop()
    assert sizes == [1] * 6


def test_batcher_scores_a_lone_image_at_once_and_waits_only_for_announced_ones() -> None:
    score, sizes = _recording_scorer()
    batcher = MicroBatcher(score, max_batch=8, max_wait=2.0)  # a long wait, if it waited
    batcher.start()
    image = np.zeros((3, 2, 2), np.uint8)

    async def lone() -> float:
        with batcher.expect(1) as expected:
            started = time.perf_counter()
            await batcher.score([image], expected)
            return time.perf_counter() - started

    async def pair() -> None:
        async def request(delay: float) -> None:
            await asyncio.sleep(delay)  # e.g. still decoding
            await batcher.score([image], handle)

        with batcher.expect(2) as handle:
            assert batcher.expected == 2
            await asyncio.gather(request(0.0), request(0.3))

    async def broken() -> None:
        with pytest.raises(ValueError), batcher.expect(3):
            raise ValueError("the upload was not an image")  # nothing ever submitted

    try:
        assert asyncio.run(lone()) < 1.0  # not the 2 s max_wait: nobody else was coming
        assert sizes == [1]
        asyncio.run(pair())  # the first image waited 0.3 s for the announced second one
        assert sizes == [1, 2]
        asyncio.run(broken())
        assert batcher.expected == 0  # withdrawn: later lone images do not wait for it
        assert asyncio.run(lone()) < 1.0
    finally:
        batcher.stop()


def test_batcher_refuses_when_full_and_survives_a_failing_model() -> None:
    gate = threading.Event()
    calls = {"n": 0}

    def score(batch: list[np.ndarray]) -> list[float]:
        calls["n"] += 1
        gate.wait(5)
        if calls["n"] == 1:
            raise RuntimeError("model broke")
        return [0.0] * len(batch)

    batcher = MicroBatcher(score, max_batch=1, queue_size=2)
    batcher.start()

    async def go() -> None:
        first = asyncio.ensure_future(batcher.score([np.zeros((3, 2, 2), np.uint8)]))
        await asyncio.sleep(0.2)  # the model thread now holds the first image
        waiting = [
            asyncio.ensure_future(batcher.score([np.zeros((3, 2, 2), np.uint8)])) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):
            await batcher.score([np.zeros((3, 2, 2), np.uint8)])
        gate.set()
        with pytest.raises(RuntimeError, match="model broke"):
            await first
        assert [r[0] for r in await asyncio.gather(*waiting)] == [0.0, 0.0]

    try:
        asyncio.run(go())
    finally:
        batcher.stop()


# -- the command -----------------------------------------------------------------------------
def test_serve_command_maps_flags_and_env_onto_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from fakescope import cli
    from fakescope.serve import server

    calls = []
    monkeypatch.setattr(server, "run_server", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setenv("FAKESCOPE_API_KEY", "from-env")
    args = ["serve", "--port", "9123", "--max-batch", "1", "--max-bytes", "1000"]
    result = CliRunner().invoke(cli.app, [*args, "--cors-origin", "http://a.test"])
    assert result.exit_code == 0, result.output
    ((bundle, settings), options) = calls[0]
    assert bundle is None and options["port"] == 9123 and options["host"] == "127.0.0.1"
    assert settings.max_batch == 1 and settings.max_file_bytes == 1000
    assert settings.api_key == "from-env" and settings.cors_origins == ("http://a.test",)
    refused = CliRunner().invoke(cli.app, ["serve", "--max-batch", "0"])
    assert isinstance(refused.exception, ConfigError)


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536"])
def test_serve_refuses_an_impossible_port_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    from typer.testing import CliRunner

    from fakescope import cli
    from fakescope.serve import server

    calls = []
    monkeypatch.setattr(server, "run_server", lambda *a, **k: calls.append((a, k)))
    result = CliRunner().invoke(cli.app, ["serve", "--port", port])
    assert result.exit_code == 2 and not calls, result.output  # a usage error, nothing ran
    text = " ".join(result.output.split())
    assert "Invalid value for '--port'" in text and ("65535" in text or "equal to 1" in text)


def test_run_server_refuses_an_impossible_port_before_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fakescope.serve import server

    loaded = []
    monkeypatch.setattr(Detector, "load", lambda *a, **k: loaded.append(a))
    with pytest.raises(ConfigError, match="port must be .* 1 to 65535, got 99999"):
        server.run_server(None, ServeSettings(), port=99999)
    assert not loaded


# -- onnx runtime --------------------------------------------------------------------------
def test_onnx_runtime_serves_the_same_verdicts_and_gradcam_from_the_bundles_torch_model(
    detector: Detector,
) -> None:
    # onnxruntime scores; Grad-CAM runs on the same bundle's PyTorch model (the default
    # runtime is onnxruntime, so the page's Grad-CAM must keep working on it)
    onnx_detector = Detector.load(runtime="onnx")
    data = image_bytes(11)
    with thread_server(create_app(onnx_detector, ServeSettings(max_wait_ms=5))) as url:
        response = http.post(f"{url}/v1/predict", files=files(("x.jpg", data)), timeout=60)
        assert response.status_code == 200, response.text
        p_onnx = response.json()["results"][0]["p_fake"]
        explained = http.post(f"{url}/v1/explain", files=files(("x.jpg", data)), timeout=60)
    assert explained.status_code == 200, explained.text
    assert explained.content.startswith(b"\x89PNG")
    p_torch = detector.predict([data])[0].p_fake
    assert abs(p_onnx - p_torch) <= 1e-4
