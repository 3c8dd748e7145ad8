"""The web page end to end: headless Chromium against `fakescope serve` (a real uvicorn
process on 127.0.0.1), with a real CIFAKE image picked and a bad file dropped."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest
from liveserver import cli_server, thread_server
from PIL import Image

from fakescope.detectors import Detector, load_detector
from fakescope.inference import OUT_OF_DOMAIN
from fakescope.serve import ServeSettings, create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def cifake_image(shared_data: Path, out_dir: Path, label: str) -> Path:
    with zipfile.ZipFile(shared_data / "cifake_train.zip") as archive:
        member = next(
            n for n in archive.namelist() if n.lower().endswith(".jpg") and f"{label}/" in n.lower()
        )
        path = out_dir / f"{label}_{Path(member).name}"
        path.write_bytes(archive.read(member))
    return path


def test_page_shows_verdict_probability_band_and_overlay(
    browser, shared_data: Path, tmp_path: Path
) -> None:
    image = cifake_image(shared_data, tmp_path, "fake")
    expected = Detector.load(device="cpu").predict(image.read_bytes())[0]
    with cli_server(log_path=tmp_path / "server.log") as (url, _):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.includes('loading')"
        )
        assert "threshold" in page.locator("#model-info").inner_text()

        page.set_input_files("#file-input", str(image))
        card = page.locator("[data-testid=result]").first
        card.locator("[data-testid=verdict]").filter(has_text=expected.label).wait_for()
        probability = card.locator("[data-testid=probability]")
        assert float(probability.get_attribute("data-p-fake")) == pytest.approx(
            expected.p_fake, abs=1e-5
        )
        assert f"{expected.p_fake:.3f}" in probability.inner_text()
        assert card.get_attribute("data-unsure") == str(expected.unsure).lower()
        assert card.locator(".band").evaluate("e => e.getBoundingClientRect().width") > 0

        overlay = card.locator("[data-testid=overlay]")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle()
        )
        assert overlay.evaluate("img => img.naturalWidth") >= 256

        # A file dropped on the zone that is not an image gets its reason, not a verdict.
        page.evaluate(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const data = new DataTransfer();
                data.items.add(new File([bytes], 'notes.jpg', {type: 'image/jpeg'}));
                const zone = document.getElementById('drop-zone');
                zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
            }""",
            base64.b64encode(b"just some text, not a picture\n").decode(),
        )
        bad = page.locator("[data-testid=result][data-status=error]")
        bad.wait_for()
        assert "not an image" in bad.locator("[data-testid=error]").inner_text()
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        page.close()


def _scored_card(page):
    card = page.locator("[data-testid=result]").first
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-testid=result]');"
        " return c && c.dataset.status; }"
    )
    assert card.get_attribute("data-status") == "scored", card.inner_text()
    return card


def test_page_shows_content_credentials_and_no_provenance(
    browser, provenance_fixtures: Path, tmp_path: Path
) -> None:
    detector = Detector.load(device="cpu")
    dalle = provenance_fixtures / "c2pa_openai_dalle3_2024.webp"
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 64), (90, 140, 200)).save(plain)
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#file-input", str(dalle))
        card = _scored_card(page)
        panel = card.locator("[data-testid=provenance]")
        assert panel.locator("h3").inner_text() == "Content Credentials and metadata"
        row = panel.locator("[data-testid=evidence][data-claim=ai_generated]")
        assert row.locator("[data-testid=claim]").inner_text() == "AI-generated"
        assert "DALL" in row.locator("[data-testid=by]").inner_text()
        assert row.get_attribute("data-trust") in ("trusted", "valid")
        assert "signature" in row.locator("[data-testid=trust]").inner_text()
        assert "OpenAI" in row.locator("[data-testid=detail]").inner_text()
        assert not panel.locator("[data-testid=no-evidence]").is_visible()
        assert card.locator("[data-testid=verdict]").inner_text().startswith("fake")
        page.screenshot(path=str(tmp_path / "c2pa.png"), full_page=True)

        page.set_input_files("#file-input", str(plain))  # the newest card comes first
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=result][data-status]').length == 2"
        )
        none = page.locator("[data-testid=result]").first.locator("[data-testid=no-evidence]")
        assert none.is_visible()
        assert "that is not evidence of anything" in none.inner_text()
        page.close()


def test_page_says_unsure_out_of_domain_not_fake_or_real(
    browser, domain_bundle: Path, tmp_path: Path
) -> None:
    detector = load_detector(domain_bundle, device="cpu")
    solid = tmp_path / "solid.png"
    Image.new("RGB", (96, 96), (255, 0, 255)).save(solid)
    (expected,) = detector.predict([solid])
    assert expected.unsure_reason == OUT_OF_DOMAIN  # the premise of this test
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.includes('loading')"
        )
        assert "unlike its training data" in page.locator("#model-info").inner_text()
        page.set_input_files("#file-input", str(solid))
        card = _scored_card(page)
        assert card.get_attribute("data-unsure") == "true"
        verdict = card.locator("[data-testid=verdict]").inner_text()
        assert verdict == "Unsure" and "fake" not in verdict and "real" not in verdict
        reason = card.locator("[data-testid=unsure-reason]")
        assert reason.is_visible()
        assert reason.inner_text() == "Unsure: unlike anything this detector was trained on"
        domain = card.locator("[data-testid=domain]")
        assert f"{expected.domain_score:.2f}" in domain.inner_text()
        assert "out of domain" in domain.inner_text()
        assert card.locator(".overlay-anyway").is_visible()  # no heat map unless asked
        page.screenshot(path=str(tmp_path / "ood.png"), full_page=True)
        page.close()


def _unsure_blend(detector: Detector, shared_data: Path, out_dir: Path) -> tuple[Path, object]:
    """A picture the detector is unsure about, inside its band around the threshold: a real
    and a fake CIFAKE image blended, the mix found by bisection on the detector's own p(fake)."""
    import numpy as np

    low, high = detector.meta.unsure_band
    ends = [
        np.asarray(Image.open(cifake_image(shared_data, out_dir, label)).convert("RGB"), float)
        for label in ("real", "fake")
    ]
    path = out_dir / "blend.png"
    lo, hi = 0.0, 1.0
    for _ in range(24):
        mix = (lo + hi) / 2
        Image.fromarray(np.rint((1 - mix) * ends[0] + mix * ends[1]).astype(np.uint8)).save(path)
        (result,) = detector.predict([path])
        if result.unsure and result.unsure_reason != OUT_OF_DOMAIN:
            return path, result
        if result.p_fake < (low + high) / 2:
            lo = mix
        else:
            hi = mix
    pytest.fail(f"no blend of a real and a fake image falls in the unsure band {low}-{high}")


def test_page_headlines_an_unsure_verdict_as_unsure_with_the_leaning_beneath(
    browser, shared_data: Path, tmp_path: Path
) -> None:
    detector = Detector.load(device="cpu")
    image, expected = _unsure_blend(detector, shared_data, tmp_path)
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#file-input", str(image))
        card = _scored_card(page)
        assert card.get_attribute("data-unsure") == "true"
        assert card.get_attribute("data-label") == expected.label  # the JSON label is kept
        verdict = card.locator("[data-testid=verdict]")
        assert verdict.inner_text() == "Unsure"  # the headline: no "fake" or "real" in it
        leaning = card.locator("[data-testid=leaning]")
        assert leaning.is_visible() and leaning.inner_text() == f"leans {expected.label}"
        # Beneath the headline, and in smaller print.
        box_verdict, box_leaning = verdict.bounding_box(), leaning.bounding_box()
        assert box_leaning["y"] >= box_verdict["y"] + box_verdict["height"] - 1
        size = "e => parseFloat(getComputedStyle(e).fontSize)"
        assert leaning.evaluate(size) < verdict.evaluate(size)
        assert card.locator("[data-testid=unsure-reason]").inner_text().startswith("Unsure: ")
        page.screenshot(path=str(tmp_path / "unsure.png"), full_page=True)
        page.close()
