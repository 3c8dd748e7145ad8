"""/v1/predict beyond the pixel score, against a real uvicorn server: provenance evidence
(C2PA and malformed manifests), the domain score and its 'unsure', native-resolution crops
batched across requests, and what /v1/model says about the domain and capabilities."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from imagegen import encode, toy_array
from liveserver import thread_server
from PIL import Image
from provenance_make import camera_jpeg
from tiny import tiny_bundle

from fakescope.data.transforms import Preprocessing
from fakescope.detectors import Detector, load_detector
from fakescope.inference import OUT_OF_DOMAIN
from fakescope.serve import ServeSettings, create_app

http = httpx.Client(timeout=60)
RESULT_FIELDS = {
    "filename", "p_fake", "label", "unsure", "unsure_reason", "p_fake_pixels", "domain_score",
    "in_domain", "max_crop_p_fake", "evidence", "disagreement",
    "content",  # photo / graphic on a detector made for photographs, else null
    "face_box", "faces_found", "face_note",  # null unless faces=true
}  # fmt: skip
EVIDENCE_FIELDS = {"signal", "claim", "by", "trust", "detail", "decisive", "raw"}


def files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def predict(url: str, *items: tuple[str, bytes]) -> list[dict]:
    response = http.post(f"{url}/v1/predict", files=files(*items))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for result in results:
        assert set(result) == RESULT_FIELDS
        assert all(set(e) == EVIDENCE_FIELDS for e in result["evidence"])
    return results


def photo_jpeg(seed: int = 0, size: int = 96) -> bytes:
    return encode(toy_array("real", np.random.default_rng(seed), size), "JPEG")


def with_app11(jpeg: bytes, body: bytes) -> bytes:
    """`jpeg` with an APP11 (JUMBF, where C2PA lives) segment holding `body`."""
    return jpeg[:2] + b"\xff\xeb" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def out_of_domain_image() -> bytes:
    """A saturated solid colour: nothing like the toy images the domain model knows."""
    return encode(np.full((96, 96, 3), (255, 0, 255), np.uint8), "PNG")


@pytest.fixture(scope="module")
def default_server() -> Iterator[tuple[str, Detector]]:
    detector = Detector.load(device="cpu")
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        yield url, detector


# -- provenance ----------------------------------------------------------------------------
def test_a_c2pa_ai_label_is_evidence_and_makes_the_verdict(
    default_server: tuple[str, Detector], provenance_fixtures: Path
) -> None:
    url, detector = default_server
    path = provenance_fixtures / "c2pa_openai_dalle3_2024.webp"
    (result,) = predict(url, (path.name, path.read_bytes()))
    (reference,) = detector.predict(path.read_bytes())
    (c2pa,) = [e for e in result["evidence"] if e["signal"] == "c2pa"]
    assert c2pa["claim"] == "ai_generated" and c2pa["decisive"] is True
    assert "DALL" in c2pa["by"] and c2pa["trust"] in ("trusted", "valid")
    assert "OpenAI" in c2pa["detail"]
    assert result["label"] == "fake" and result["unsure"] is False
    assert result["p_fake"] == pytest.approx(reference.p_fake, abs=1e-6)
    assert result["p_fake_pixels"] == pytest.approx(reference.p_fake_pixels, abs=1e-5)
    assert result["p_fake"] >= result["p_fake_pixels"]


def test_tampered_and_remote_manifests_are_reported_not_trusted(
    default_server: tuple[str, Detector], provenance_fixtures: Path
) -> None:
    url, _ = default_server
    names = ("c2pa_test_XCA_tampered.jpg", "c2pa_remote_manifest.jpg")
    tampered, remote = predict(url, *((n, (provenance_fixtures / n).read_bytes()) for n in names))
    assert [(e["claim"], e["trust"]) for e in tampered["evidence"]] == [
        ("tampered", "integrity_failure")
    ]
    assert [e["claim"] for e in remote["evidence"]] == ["remote_manifest"]


def test_malformed_manifests_are_evidence_of_nothing_never_a_5xx(
    default_server: tuple[str, Detector], provenance_fixtures: Path
) -> None:
    url, detector = default_server
    plain = photo_jpeg()
    garbage = with_app11(plain, b"JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x40jumb" + b"\xaa" * 56)
    truncated = with_app11(plain, b"JP\x00\x01\x00\x00\x00\x01\x00\x00\xff\xffjumbc2pa")
    signed = bytearray((provenance_fixtures / "c2pa_test_C.jpg").read_bytes())
    start = signed.index(b"jumb")
    signed[start + 200 : start + 1200] = bytes(1000)  # the manifest damaged, the pixels intact
    results = predict(
        url, ("garbage.jpg", garbage), ("truncated.jpg", truncated), ("damaged.jpg", bytes(signed))
    )
    for result in results:
        assert not any(e["claim"].startswith("ai_") or e["decisive"] for e in result["evidence"])
    (pixels_only,) = detector.predict(plain, provenance=False)
    for result in results[:2]:  # nothing readable: the verdict is the pixels'
        assert result["p_fake"] == pytest.approx(pixels_only.p_fake, abs=1e-5)
        assert result["p_fake"] == result["p_fake_pixels"]


def test_camera_exif_is_listed_with_make_and_model_and_not_counted(
    default_server: tuple[str, Detector],
) -> None:
    url, _ = default_server
    honest, forged = predict(
        url,
        ("iphone5.jpg", camera_jpeg()),
        ("forged.jpg", camera_jpeg(software="Stable Diffusion XL")),
    )
    (camera,) = honest["evidence"]
    assert (camera["signal"], camera["claim"], camera["by"]) == (
        "exif",
        "capture_metadata",
        "Apple iPhone 5",
    )
    assert (camera["raw"]["make"], camera["raw"]["model"]) == ("Apple", "iPhone 5")
    assert camera["raw"]["captured_at"] == "2012-09-29T10:15:30" and camera["raw"]["gps"]
    assert "not counted" in camera["detail"]
    assert honest["p_fake"] == honest["p_fake_pixels"] and honest["disagreement"] is None
    claims = {(e["signal"], e["claim"]) for e in forged["evidence"]}
    assert {("metadata", "ai_generated"), ("exif", "inconsistent_metadata")} <= claims
    assert forged["label"] == "fake"


def test_model_card_names_domain_and_capabilities(default_server: tuple[str, Detector]) -> None:
    url, detector = default_server
    card = http.get(f"{url}/v1/model").json()
    # the shipped default knows its domain (CIFAKE), fitted by tools/fit_shipped_domains.py
    assert card["domain"]["method"] == "mahalanobis" and card["summary"]["domain"] is not None
    caps = card["summary"]["capabilities"]
    assert caps["can_explain"] is detector.capabilities.can_explain is True
    assert caps["runtime"] == "torch" and card["capabilities"]["can_explain"] is True


# -- the domain ----------------------------------------------------------------------------
def test_an_out_of_domain_image_is_unsure_with_its_reason(domain_bundle: Path) -> None:
    detector = load_detector(domain_bundle, device="cpu")
    inside = encode(toy_array("real", np.random.default_rng(5), 32), "PNG")
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        outside, familiar = predict(url, ("solid.png", out_of_domain_image()), ("toy.png", inside))
        card = http.get(f"{url}/v1/model").json()
    assert outside["unsure"] is True and outside["unsure_reason"] == OUT_OF_DOMAIN
    assert outside["in_domain"] is False and outside["domain_score"] > 1.0
    reference = detector.predict([out_of_domain_image(), inside])
    for result, expected in zip((outside, familiar), reference, strict=True):
        assert result["domain_score"] == pytest.approx(expected.domain_score, rel=1e-4)
        assert result["in_domain"] == expected.in_domain
    assert card["domain"]["method"] == "mahalanobis" and card["domain"]["threshold"] > 0
    assert card["summary"]["domain"] == card["domain"]


# -- native-resolution crops ---------------------------------------------------------------
@pytest.fixture(scope="module")
def crop_detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    pre = Preprocessing(input_size=32, resize="native", crops=4)
    return load_detector(
        tiny_bundle(tmp_path_factory.mktemp("crops"), preprocessing=pre), device="cpu"
    )


def test_native_crops_are_batched_across_requests_and_report_the_worst_crop(
    crop_detector: Detector,
) -> None:
    rng = np.random.default_rng(7)
    sizes = [(64, 48), (200, 120), (32, 32), (90, 300)] * 3
    payloads = [
        encode(np.asarray(Image.fromarray(toy_array("fake", rng, 64)).resize(s)), "PNG")
        for s in sizes
    ]
    expected = crop_detector.predict(payloads)
    app = create_app(crop_detector, ServeSettings(max_wait_ms=20))

    async def fire(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/predict", files=files((f"{i}.png", data)))
                    for i, data in enumerate(payloads)
                )
            )

    with thread_server(app) as url:
        responses = asyncio.run(fire(url))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    batcher = app.state.batcher
    assert batcher.images == len(payloads) and batcher.batches < len(payloads)
    for response, reference in zip(responses, expected, strict=True):
        (result,) = response.json()["results"]
        assert result["p_fake"] == pytest.approx(reference.p_fake, abs=1e-5)
        assert result["max_crop_p_fake"] == pytest.approx(reference.max_crop_p_fake, abs=1e-5)
        assert result["max_crop_p_fake"] >= result["p_fake_pixels"] - 1e-6
