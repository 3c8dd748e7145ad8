"""Content type heuristic, and the audit's per-source / per-generator shortcut report."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fakescope.data.audit import audit_source, format_audit
from fakescope.data.content_type import content_stats
from fakescope.data.shortcuts import balanced_accuracy
from fakescope.data.sources import CsvSource


def _photo_like(rng: np.random.Generator, size: int = 200) -> Image.Image:
    """Smooth shapes plus sensor-like noise everywhere."""
    y, x = np.mgrid[0:size, 0:size]
    base = 128 + 60 * np.sin(x / rng.uniform(8, 30))[..., None] * np.cos(y / 17)[..., None]
    noisy = base + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _chart(rng: np.random.Generator, size: int = 200) -> Image.Image:
    """A drawn chart: white page, axes, a few bars and a line."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.line([(20, 180), (190, 180)], fill="black", width=2)
    draw.line([(20, 10), (20, 180)], fill="black", width=2)
    for k in range(5):
        h = int(rng.integers(20, 150))
        draw.rectangle([30 + k * 30, 180 - h, 50 + k * 30, 180], fill=(40, 90, 200))
    draw.text((60, 5), "revenue", fill="black")
    return img


def test_content_heuristic_separates_charts_from_photo_like_images():
    rng = np.random.default_rng(0)
    assert all(content_stats(_chart(rng))["kind"] == "graphic" for _ in range(5))
    assert all(content_stats(_photo_like(rng))["kind"] == "photo" for _ in range(5))
    # a chart served as a JPEG stays graphic
    buffer = io.BytesIO()
    _chart(rng).save(buffer, "JPEG", quality=85)
    assert content_stats(Image.open(buffer))["kind"] == "graphic"


def test_balanced_accuracy():
    assert balanced_accuracy(["a"] * 10 + ["b"] * 10, [0] * 10 + [1] * 10) == 1.0
    assert balanced_accuracy(["a"] * 20, [0] * 10 + [1] * 10) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def shortcut_manifest(tmp_path_factory):
    """Source s1: reals are JPEG photos, fakes PNG charts (format and content decide);
    source s2: both classes are JPEG photos (nothing decides)."""
    root = tmp_path_factory.mktemp("shortcuts")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        for source, label, fmt, make, generator in (
            ("s1", "real", "JPEG", _photo_like, ""),
            ("s1", "fake", "PNG", _chart, "drawer"),
            ("s2", "real", "JPEG", _photo_like, ""),
            ("s2", "fake", "JPEG", _photo_like, "painter"),
        ):
            path = root / f"{source}_{label}_{i}.{fmt.lower()}"
            make(rng).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            rows.append([path.name, label, generator, source])
    with open(root / "m.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator", "source"])
        writer.writerows(rows)
    return root / "m.csv"


def test_audit_reports_sources_generators_and_decisive_properties(shortcut_manifest):
    report = audit_source(CsvSource(shortcut_manifest), progress=False)
    assert set(report["per_source"]) == {"s1", "s2"}
    assert report["per_source"]["s1"]["fake"]["formats"] == {"PNG": 1.0}
    assert report["per_source"]["s1"]["fake"]["graphic_share"] == 1.0
    assert report["per_source"]["s1"]["real"]["graphic_share"] == 0.0
    assert set(report["per_generator"]) == {"drawer", "painter"}
    decisive = {(s["scope"], s["attribute"]) for s in report["shortcuts"] if s["decisive"]}
    assert ("source s1", "format") in decisive
    assert ("source s1", "content (photo/graphic)") in decisive
    assert ("drawer vs all reals", "content (photo/graphic)") in decisive
    assert not any(scope in ("source s2", "painter vs all reals") for scope, _ in decisive)
    text = format_audit(report, width=200)
    assert "could decide a verdict" in text
    assert "source s1: format alone 1.00" in text


def test_confident_mistakes_in_both_directions_per_group():
    from fakescope.evaluation.selective import confident_mistakes, selective_risk

    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.9, 0.1, 0.55, 0.1, 0.2, 0.9, 0.45])
    unsure = np.array([False, False, True, False, False, False, True])
    groups = np.array(["a", "a", "a", "g1", "g1", "g2", "g2"], dtype=object)
    rows = {r["group"]: r for r in confident_mistakes(y, p, 0.5, unsure, groups)}
    assert rows["a"]["real_called_fake"] == 1 and rows["a"]["n_real"] == 3
    assert rows["g1"]["fake_called_real"] == 2 and rows["g1"]["fake_called_real_share"] == 1.0
    assert rows["g2"]["fake_called_real"] == 0  # its miss is unsure, not a confident mistake
    risk = selective_risk(y, p, 0.5, unsure)
    assert risk["fake_called_real_confidently"] == pytest.approx(2 / 4)
    assert risk["real_called_fake_confidently"] == pytest.approx(1 / 3)
