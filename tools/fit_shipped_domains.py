"""Give the shipped detectors a domain model fitted on the data they were trained on.

    python tools/fit_shipped_domains.py ../shared/data/cifake_train.zip            # all
    python tools/fit_shipped_domains.py ../shared/data/cifake_train.zip --name scratch

Each shipped CIFAKE detector gets class-conditional Gaussians on its penultimate features
(`fakescope.detectors.domain`), fitted on up to 6,000 CIFAKE images, with the threshold at the
95th percentile of 3,000 others: then a photo, a face or a modern AI image, unlike anything
it was trained on, is answered "unsure: out of domain" instead of a confident guess.
The bundle is re-signed; `fakescope info --bundle NAME` shows the domain in its card.
"""

from __future__ import annotations

import argparse

from fakescope.bundle import SHIPPED_DETECTORS, shipped_available
from fakescope.evaluation.domain import fit_bundle_domain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="the training data (cifake_train.zip)")
    parser.add_argument("--name", action="append", help="shipped detector(s); default: all")
    parser.add_argument("--max-images", type=int, default=6000)
    args = parser.parse_args()
    installed = {name for name in SHIPPED_DETECTORS if shipped_available(name)}
    names = args.name or sorted(installed - {"cifake"})
    for name in names:
        fit = fit_bundle_domain(
            name, args.data, max_images=args.max_images, allow_shipped=True, progress=True
        )
        print(
            f"{name}: {fit.dims} dims on {fit.n_train} images; threshold {fit.threshold:.3f} "
            f"keeps {fit.in_domain_val:.1%} of {fit.n_val} validation images in-domain"
        )


if __name__ == "__main__":
    main()
