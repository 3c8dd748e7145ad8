"""The domain model inside bundles: fitted from data, verified, and 'unsure' out of domain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clirun import fakescope
from imagegen import make_dataset
from PIL import Image
from tiny import tiny_bundle

from fakescope.bundle import DOMAIN_FILE, read_meta
from fakescope.detectors import load_detector
from fakescope.errors import BundleError, ConfigError
from fakescope.evaluation.domain import fit_bundle_domain
from fakescope.inference import OUT_OF_DOMAIN


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("domain")
    data = make_dataset(root / "data", layout="folder", n_per_class=60)
    bundle = tiny_bundle(root / "bundle")
    fit = fit_bundle_domain(bundle, data, progress=False, quantile=0.9)
    assert fit.n_train + fit.n_val == 120 and 0.85 <= fit.in_domain_val <= 0.95
    return bundle, data


def _unlike_toys(seed: int, size: int = 96) -> Image.Image:
    """A saturated solid colour: nothing like the smooth toy images (uniform noise is no good
    probe here: an untrained network pools it to the mean feature)."""
    rng = np.random.default_rng(seed)
    colour = tuple(int(v) for v in rng.choice([0, 255], 3))
    return Image.new("RGB", (size, size), colour)  # type: ignore[arg-type]


def test_the_domain_score_separates_in_domain_from_out_of_domain(
    fitted: tuple[Path, Path],
) -> None:
    bundle, data = fitted
    detector = load_detector(bundle, device="cpu")
    inside = detector.predict([data])
    outside = detector.predict([_unlike_toys(i) for i in range(20)])
    in_scores = np.array([r.domain_score for r in inside])
    out_scores = np.array([r.domain_score for r in outside])
    assert np.mean(in_scores <= 1.0) >= 0.85 and np.all(out_scores > 1.0)
    for r in outside:
        assert r.unsure is True and r.in_domain is False and r.unsure_reason == OUT_OF_DOMAIN


def test_a_bundle_without_a_domain_predicts_as_before(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path / "plain")
    assert "domain" not in json.loads((bundle / "bundle.json").read_text())
    (r,) = load_detector(bundle, device="cpu").predict([_unlike_toys(0)])
    assert r.domain_score is None and r.in_domain is None
    assert r.unsure_reason in (None, "p(fake) is inside the unsure band around the threshold")


def test_a_damaged_domain_file_is_refused(fitted: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    bundle = Path(shutil.copytree(fitted[0], tmp_path / "copy"))
    assert read_meta(bundle)["domain"]["method"] == "mahalanobis"
    raw = bytearray((bundle / DOMAIN_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (bundle / DOMAIN_FILE).write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="domain.safetensors: missing, modified or damaged"):
        load_detector(bundle)


def test_shipped_detectors_are_not_rewritten(fitted: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="shipped detectors are read-only"):
        fit_bundle_domain("scratch", fitted[1], progress=False)


@pytest.mark.slow
def test_cli_domain_then_predict_shows_out_of_domain(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", layout="folder", n_per_class=40)
    bundle = tiny_bundle(tmp_path / "bundle")
    done = fakescope("domain", bundle, data, "-q")
    assert "bundle updated" in done.stderr
    _unlike_toys(3, 200).save(tmp_path / "noise.png")
    rows = json.loads(
        fakescope("predict", tmp_path / "noise.png", "-b", bundle, "-f", "json").stdout
    )
    assert rows[0]["unsure"] is True and rows[0]["unsure_reason"] == OUT_OF_DOMAIN
    shown = fakescope("predict", tmp_path / "noise.png", "-b", bundle).stdout
    assert "out of domain" in shown


def test_a_bundle_rewritten_with_its_domain_file_still_verifies(
    fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    """What tools/ship_default_detector.py does: new (float16) weights, the same domain."""
    from fakescope.bundle import load_bundle, save_bundle

    model, meta = load_bundle(fitted[0])
    copy = save_bundle(
        tmp_path / "shipped", model.half(), meta, extra_files=[fitted[0] / DOMAIN_FILE]
    )
    detector = load_detector(copy, device="cpu")
    assert detector.meta.domain == meta.domain and detector.domain is not None


def test_a_multi_source_manifest_gets_one_gaussian_per_source_and_class(tmp_path: Path) -> None:
    """A manifest naming two sources (one big, one small): the domain model keeps a mean per
    (source, class), draws the small source whole, and reports each source's in-domain share."""
    rows = ["path,label,split,source"]
    for name, n, size in (("big", 50, 32), ("small", 12, 64)):
        data = make_dataset(tmp_path / name, n_per_class=n, size=size, seed=len(name))
        for i, path in enumerate(sorted(data.rglob("*.png"))):
            label = 0 if path.parent.name == "real" else 1
            rows.append(f"{path},{label},{'val' if i % 4 == 0 else 'train'},{name}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    bundle = tiny_bundle(tmp_path / "bundle")
    fit = fit_bundle_domain(bundle, manifest, max_images=80, progress=False)
    assert set(fit.in_domain_by_source) == {"big", "small"}
    assert all(0.0 <= share <= 1.0 for share in fit.in_domain_by_source.values())
    # 93 training images, 80 drawn: all 18 of the small source, 62 of the big one; the 31
    # validation images are fewer than the budget of 40 and all used
    assert (fit.n_train, fit.n_val) == (80, 31)
    domain = read_meta(bundle)["domain"]
    assert domain["groups"] == ["big/real", "big/fake", "small/real", "small/fake"]
    (r,) = load_detector(bundle, device="cpu").predict([_unlike_toys(1)])
    assert r.domain_score is not None
