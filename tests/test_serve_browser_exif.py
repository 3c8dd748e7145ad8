"""The page's evidence panel shows a photo's camera metadata (headless Chromium against a
real uvicorn server): make and model, exposure, date, GPS, and that it is not counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from liveserver import thread_server
from provenance_make import camera_jpeg

from fakescope.detectors import Detector
from fakescope.serve import ServeSettings, create_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_page_shows_make_and_model_and_that_exif_is_not_counted(browser, tmp_path: Path) -> None:
    detector = Detector.load(device="cpu")
    photo = tmp_path / "iphone5.jpg"
    photo.write_bytes(camera_jpeg())
    (expected,) = detector.predict([photo])
    with thread_server(create_app(detector, ServeSettings(max_wait_ms=5))) as url:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#file-input", str(photo))
        card = page.locator("[data-testid=result][data-status]").first
        card.wait_for()
        assert card.get_attribute("data-status") == "scored", card.inner_text()
        panel = card.locator("[data-testid=provenance]")
        row = panel.locator("[data-testid=evidence][data-claim=capture_metadata]")
        assert row.locator("[data-testid=claim]").inner_text() == "Camera metadata (EXIF)"
        assert row.locator("[data-testid=by]").inner_text() == "by Apple iPhone 5"
        camera = row.locator("[data-testid=camera]")
        assert camera.is_visible()
        assert camera.locator("dd[data-field=make]").inner_text() == "Apple"
        assert camera.locator("dd[data-field=model]").inner_text() == "iPhone 5"
        assert camera.locator("dd[data-field=exposure]").inner_text() == (
            "1/120 s, f/2.4, ISO 50, 4.13 mm"
        )
        assert camera.locator("dd[data-field=taken]").inner_text() == "2012-09-29 10:15:30"
        assert camera.locator("dd[data-field=gps]").inner_text() == "position present"
        assert camera.locator("dd[data-field=software]").inner_text() == "6.0"
        weight = row.locator("[data-testid=weight]")
        assert weight.is_visible() and "Not counted in the verdict" in weight.inner_text()
        assert row.locator("[data-testid=trust]").inner_text() == "unsigned"
        assert not panel.locator("[data-testid=no-evidence]").is_visible()
        # The verdict is the pixels' own: no change from the camera metadata.
        probability = card.locator("[data-testid=probability]")
        assert float(probability.get_attribute("data-p-fake")) == pytest.approx(
            expected.p_fake_pixels, abs=1e-5
        )
        assert not card.locator("[data-testid=pixel-score]").is_visible()
        page.screenshot(path=str(tmp_path / "camera.png"), full_page=True)
        page.close()
