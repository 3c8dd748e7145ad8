"""Robustness of a detector to real-world degradations and white-box attacks: the sweep
(`fakescope robustness`, robustness/sweep.py), its results, plots and report.

The corruptions and the attacks themselves live lower, in `fakescope.data.corruptions` and
`fakescope.models.attacks`, because training augments and attacks with them too; they are
re-exported here."""

from __future__ import annotations

from fakescope.data.corruptions import (
    CORRUPTIONS,
    DEFAULT_SEVERITIES,
    RobustAugment,
    apply_corruption,
)
from fakescope.models.attacks import attack, eps_label, fgsm, pgd

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_SEVERITIES",
    "RobustAugment",
    "apply_corruption",
    "attack",
    "eps_label",
    "fgsm",
    "pgd",
]
