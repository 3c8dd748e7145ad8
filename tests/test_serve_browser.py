"""The web page end to end: headless Chromium against `fakescope serve` (a real uvicorn
process on 127.0.0.1), with a real CIFAKE image picked and a bad file dropped."""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest
from liveserver import cli_server

from fakescope.detectors import Detector

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


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
