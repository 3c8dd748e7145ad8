"""Give the shipped detectors a domain model fitted on the data they were trained on.

    python tools/fit_shipped_domains.py ../shared/data/cifake_train.zip --name cifake --name scratch
    python tools/fit_shipped_domains.py ../shared/data --name general            # five sources

A CIFAKE detector gets class-conditional Gaussians on its penultimate features
(`fakescope.detectors.domain`), fitted on up to 6,000 CIFAKE images, with the threshold at the
95th percentile of 3,000 others: then a photo, a face or a modern AI image, unlike anything
it was trained on, is answered "unsure: out of domain" instead of a confident guess.

A detector trained on several sources (its recipe lists `data.sources`) is given the DATA
folder that holds them: its training split is rebuilt from the recipe recorded in the bundle
(the split is seeded, so it is the same one; the image counts are checked against the
bundle's), and it gets one Gaussian per source and class, fitted on images drawn evenly
from them, with every source weighing the same in the threshold.

The bundle is re-signed; `fakescope info --bundle NAME` shows the domain in its card.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rebuild_manifest import rebuilt_manifest

from fakescope.bundle import SHIPPED_DETECTORS, read_meta, shipped_available, shipped_bundle_path
from fakescope.evaluation.domain import fit_bundle_domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, help="the training data (archive, or DATA folder)")
    parser.add_argument(
        "--name",
        action="append",
        required=True,
        choices=sorted(SHIPPED_DETECTORS),
        help="shipped detector(s) to fit (repeat the option for several)",
    )
    parser.add_argument("--max-images", type=int, default=6000)
    args = parser.parse_args()
    missing = [name for name in args.name if not shipped_available(name)]
    if missing:
        raise SystemExit(f"not installed with this copy of fakescope: {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.name:
            recipe = read_meta(shipped_bundle_path(name))["training"].get("recipe") or {}
            multi = bool((recipe.get("data") or {}).get("sources"))
            data = (
                rebuilt_manifest(name, args.data, Path(tmp) / f"{name}.csv") if multi else args.data
            )
            fit = fit_bundle_domain(
                name, data, max_images=args.max_images, allow_shipped=True, progress=True
            )
            print(
                f"{name}: {fit.dims} dims on {fit.n_train} images; threshold "
                f"{fit.threshold:.3f} keeps {fit.in_domain_val:.1%} of {fit.n_val} validation "
                "images in-domain"
            )
            for source, share in fit.in_domain_by_source.items():
                print(f"  {source}: {share:.1%} of its validation images in-domain")


if __name__ == "__main__":
    main()
