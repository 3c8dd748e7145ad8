"""What a robustness sweep measures: the corruptions with their severities and the attacks
with their budgets (`RobustnessConfig`), and parsing them from command-line options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fakescope.data.corruptions import CORRUPTIONS, DEFAULT_SEVERITIES
from fakescope.errors import ConfigError
from fakescope.faces import FaceCropPolicy

ATTACKS = ("fgsm", "pgd")
#: The attack budgets measured by default (L-infinity, on the [0, 1] scale).
DEFAULT_EPS: tuple[float, ...] = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 0.08)
#: Corruptions whose severity grows as the value falls (JPEG quality, rescale factor).
DECREASING_SEVERITY = frozenset({"jpeg", "rescale", "web"})


@dataclass
class RobustnessConfig:
    """What to measure. `severities` maps corruption name -> values (units: SEVERITY_UNITS)."""

    severities: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES)
    )
    attacks: tuple[str, ...] = ()
    eps: tuple[float, ...] = DEFAULT_EPS
    steps: int = 10
    step_size: float | None = None
    max_images: int | None = None
    seed: int = 0
    split: str | None = None
    batch_size: int = 128
    examples: int = 4
    faces: FaceCropPolicy | None = None  # score each image's largest face by this policy

    def __post_init__(self) -> None:
        unknown = [name for name in self.severities if name not in CORRUPTIONS]
        if unknown:
            raise ConfigError(
                f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}"
            )
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ConfigError(f"unknown attack {bad[0]!r}; choose from {', '.join(ATTACKS)}")
        if self.attacks and (not self.eps or min(self.eps) < 0):
            raise ConfigError("attacks need at least one eps >= 0 (e.g. --eps 1/255,4/255)")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.max_images is not None and self.max_images < 2:
            raise ConfigError(f"--max-images must be >= 2, got {self.max_images}")

    def conditions(self) -> list[tuple[str, float]]:
        """(corruption, severity) pairs, each corruption from mild to severe."""
        return [
            (name, value)
            for name in self.severities
            for value in ordered(name, self.severities[name])
        ]


def ordered(name: str, values: Sequence[float]) -> list[float]:
    """Severities of corruption `name` from the mildest to the most severe."""
    return sorted(set(values), reverse=name in DECREASING_SEVERITY)


# -- option parsing (shared by the CLI and scripts) -------------------------------------------
def parse_number(text: str) -> float:
    """'0.08', '2/255' or '8/255' -> float; ConfigError names the bad text."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"not a number: {text!r} (write e.g. 0.08 or 2/255)") from None


def parse_list(text: str | Sequence[str] | None) -> list[str]:
    """'a,b' or ['a', 'b,c'] -> ['a', 'b', 'c'] (blanks dropped)."""
    if text is None:
        return []
    parts = [text] if isinstance(text, str) else list(text)
    return [p.strip() for part in parts for p in part.split(",") if p.strip()]


def parse_severities(
    corruptions: str | Sequence[str] | None, severities: Sequence[str] | None
) -> dict[str, tuple[float, ...]]:
    """`--corruptions jpeg,web` (or 'all' / 'none') and `--severities jpeg=90,50` -> mapping."""
    names = parse_list(corruptions)
    if not names or names == ["all"]:
        chosen = dict(DEFAULT_SEVERITIES)
    elif names == ["none"]:
        chosen = {}
    else:
        unknown = [n for n in names if n not in CORRUPTIONS]
        if unknown:
            raise ConfigError(
                f"unknown corruption {unknown[0]!r}; choose from {', '.join(CORRUPTIONS)}"
            )
        chosen = {n: DEFAULT_SEVERITIES[n] for n in names}
    for spec in severities or []:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or name not in CORRUPTIONS:
            raise ConfigError(
                f"--severities {spec!r}: write NAME=V1,V2 with NAME one of {', '.join(CORRUPTIONS)}"
            )
        chosen[name] = tuple(parse_number(v) for v in parse_list(values))
    return chosen
