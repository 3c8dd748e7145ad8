"""From an image's coding-gap statistics to a logit, fitted on real photos only.

The score is a fixed linear form of the statistics (``-d0``: how much more cheaply than
expected the finest level is coded, ZED's direction), or, as a two-sided test (what
``zero-shot build`` fits by default, chosen after the one-sided test read some generators
backwards), its distance from the real photos' median (an image coded either more cheaply or
more expensively than real photos are). The threshold is the score that a chosen share of
held-back real photos exceed (the false-positive rate); the logit is
``(score - threshold) / scale`` with the real photos' spread as the scale, so p(fake) = 0.5 at
the threshold. Images whose finest level is unusually cheap (by a readability feature:
below nearly every real photo's, as in up-scaled, blurred or heavily compressed images) cannot
be read: their readability score is above 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fakescope.errors import BundleError, ConfigError

#: Readability features: name -> (its value from an image's statistics, what it measures).
#: An image whose value is below the floor fitted on real photos is too smooth to read.
READABILITY_FEATURES: dict[str, tuple[Callable[[Mapping[str, float]], float], str]] = {
    "h0": (lambda s: s["h0"], "the finest level's expected cost, bits per sub-pixel"),
    "nll_ratio": (
        lambda s: s["nll0"] / s["nll1"] if s["nll1"] > 0 else float("inf"),
        "the finest level's actual cost over the next level's (low: up-scaled or blurred)",
    ),
}


@dataclass(frozen=True)
class GapStatistic:
    """score = sum(weights[name] * stats[name]), or its distance from `reference` (the real
    photos' median) when that is set (two-sided); logit = (score - center) / scale;
    readability = floor / the readability feature's value (above 1: too smooth to read)."""

    weights: dict[str, float]
    center: float
    scale: float
    fpr: float
    readability_feature: str = "h0"
    readability_floor: float = 0.0
    fitted_on: dict[str, Any] = field(default_factory=dict)
    reference: float | None = None

    @property
    def two_sided(self) -> bool:
        return self.reference is not None

    def score(self, stats: Mapping[str, float]) -> float:
        linear = float(sum(w * stats[name] for name, w in self.weights.items()))
        return linear if self.reference is None else abs(linear - self.reference)

    def logit(self, stats: Mapping[str, float]) -> float:
        return (self.score(stats) - self.center) / self.scale

    def readability(self, stats: Mapping[str, float]) -> float:
        value = READABILITY_FEATURES[self.readability_feature][0](stats)
        return float(self.readability_floor / value) if value > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GapStatistic:
        try:
            stat = cls(
                weights={str(k): float(v) for k, v in dict(data["weights"]).items()},
                center=float(data["center"]),
                scale=float(data["scale"]),
                fpr=float(data["fpr"]),
                readability_feature=str(data.get("readability_feature", "h0")),
                readability_floor=float(data.get("readability_floor", 0.0)),
                fitted_on=dict(data.get("fitted_on", {})),
                reference=None if data.get("reference") is None else float(data["reference"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"the zero-shot statistic in bundle.json is malformed ({exc})"
            ) from None
        if stat.readability_feature not in READABILITY_FEATURES:
            raise BundleError(
                f"unknown readability feature {stat.readability_feature!r} in bundle.json; "
                f"this version knows {sorted(READABILITY_FEATURES)} (upgrade fakescope?)"
            )
        if not stat.scale > 0:
            raise BundleError(f"the zero-shot statistic's scale must be positive, not {stat.scale}")
        return stat


def check_fit_options(
    fpr: float, readability_feature: str, readability_quantile: float, readability_factor: float
) -> None:
    """Reject fitting options before any photo is scored.

    Raises:
        ConfigError: naming the option and its valid range.
    """
    if not 0.0 < fpr < 0.5:
        raise ConfigError(f"the false-positive rate must be in (0, 0.5), not {fpr}")
    if readability_feature not in READABILITY_FEATURES:
        raise ConfigError(
            f"unknown readability feature {readability_feature!r}; choose from "
            f"{sorted(READABILITY_FEATURES)}"
        )
    if not 0.0 <= readability_quantile < 0.5:
        raise ConfigError(
            f"the readability quantile must be in [0, 0.5), not {readability_quantile}"
        )
    if not 0.0 <= readability_factor <= 1.0:
        raise ConfigError(
            f"the readability factor must be in [0, 1] (0: never unreadable), not "
            f"{readability_factor}"
        )


def fit_statistic(
    real_stats: Sequence[Mapping[str, float]],
    weights: Mapping[str, float],
    *,
    fpr: float = 0.05,
    readability_feature: str = "h0",
    readability_quantile: float = 0.01,
    readability_factor: float = 0.5,
    two_sided: bool = False,
    fitted_on: dict[str, Any] | None = None,
) -> GapStatistic:
    """Fit the threshold (a `fpr` share of `real_stats` above it), the scale (the reals'
    score spread, robust) and the readability floor (the `readability_quantile` of the
    reals' `readability_feature` times `readability_factor`) on real photos only;
    `two_sided` first takes the score's distance from the reals' median, so the `fpr` is
    shared by both tails.

    Raises:
        ConfigError: fewer than 20 real photos, or an option :func:`check_fit_options`
            rejects.
    """
    check_fit_options(fpr, readability_feature, readability_quantile, readability_factor)
    if len(real_stats) < 20:
        raise ConfigError(
            f"fitting the threshold needs at least 20 real photos, got {len(real_stats)}"
        )
    scores = np.array([sum(w * s[n] for n, w in weights.items()) for s in real_stats])
    reference = float(np.median(scores)) if two_sided else None
    if reference is not None:
        scores = np.abs(scores - reference)
    center = float(np.quantile(scores, 1.0 - fpr))
    q25, q75 = np.quantile(scores, [0.25, 0.75])
    scale = float(max((q75 - q25) / 1.349, 1e-6))
    read = READABILITY_FEATURES[readability_feature][0]
    smooth = np.array([read(s) for s in real_stats])
    floor = float(np.quantile(smooth, readability_quantile)) * readability_factor
    return GapStatistic(
        weights=dict(weights),
        center=center,
        scale=scale,
        fpr=fpr,
        readability_feature=readability_feature,
        readability_floor=floor,
        fitted_on={
            "n_real": len(real_stats),
            "readability": {"quantile": readability_quantile, "factor": readability_factor},
            **(fitted_on or {}),
        },
        reference=reference,
    )
