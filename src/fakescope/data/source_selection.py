"""Which items of a labelled source a recipe trains on: generators chosen by name or glob,
and a balanced subsample in which no generator (or origin repository) dominates.

A CSV manifest built by `fakescope data sources` names each image's generator and the
repository it came from (`source` column, its *origin* here). A recipe can list the same
manifest several times, once per generator family (``generators: ["GPT-4o*"]``), so each
family is its own source with its own sampling weight, validation share and metrics; and
``balance: generator`` (or ``origin``) with ``max_items`` takes an equal quota per
generator (or origin) instead of a share proportional to its size, so 2,296 Krea images
cannot drown 155 DALL-E 2 ones. Patterns that match nothing are refused, naming the recipe
field, before any image is decoded.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fakescope.data.sources import Item
from fakescope.errors import SourceError

Balance = Literal["none", "generator", "origin"]


@dataclass(frozen=True)
class Selection:
    """Generator patterns (shell globs, case-sensitive) and the balance of a subsample."""

    generators: tuple[str, ...] | None = None
    exclude_generators: tuple[str, ...] = ()
    balance: Balance = "none"

    @property
    def filters(self) -> bool:
        return self.generators is not None or bool(self.exclude_generators)


def _matches(name: str | None, pattern: str) -> bool:
    return name is not None and fnmatch.fnmatchcase(name, pattern)


def select_generators(items: Sequence[Item], selection: Selection, where: str) -> list[Item]:
    """The items whose generator matches one of `generators` (all, when None) and none of
    `exclude_generators`. Every pattern must match some generator of the items: a typo
    is an error naming `where` (the recipe field) and the generators there are."""
    if not selection.filters:
        return list(items)
    present = sorted({it.generator for it in items if it.generator is not None})
    patterns = [("generators", p) for p in selection.generators or ()]
    patterns += [("exclude_generators", p) for p in selection.exclude_generators]
    for field, pattern in patterns:
        if not any(_matches(name, pattern) for name in present):
            known = ", ".join(repr(n) for n in present) or "none (no generator column)"
            raise SourceError(
                f"{where}.{field}: {pattern!r} matches no generator of this source "
                f"(its generators: {known})"
            )
    chosen = [
        it
        for it in items
        if (
            selection.generators is None
            or any(_matches(it.generator, p) for p in selection.generators)
        )
        and not any(_matches(it.generator, p) for p in selection.exclude_generators)
    ]
    if not chosen:
        raise SourceError(f"{where}: the generator patterns leave no image")
    return chosen


def quotas(counts: Sequence[int], total: int) -> list[int]:
    """Water-filling: up to `total` items shared as equally as possible between groups of
    these sizes; a group smaller than its equal share gives all it has, the rest go to the
    others (no image is repeated to fill a share)."""
    take = [0] * len(counts)
    open_groups = [i for i, n in enumerate(counts) if n > 0]
    left = min(total, sum(counts))
    while left > 0 and open_groups:
        share = max(1, left // len(open_groups))
        for i in sorted(open_groups, key=lambda g: counts[g] - take[g]):
            add = min(share, counts[i] - take[i], left)
            take[i] += add
            left -= add
            if left == 0:
                break
        open_groups = [i for i in open_groups if take[i] < counts[i]]
    return take


def _key(item: Item, balance: Balance) -> str:
    value = item.generator if balance == "generator" else item.source
    return value or ""


def balanced_subsample(
    items: Sequence[Item], max_items: int, balance: Balance, seed: int
) -> list[Item]:
    """At most `max_items` items, an equal quota per generator or origin (`quotas`), drawn
    at random (seeded) within each; in path order."""
    keys = sorted({_key(it, balance) for it in items})
    pools = [[it for it in items if _key(it, balance) == k] for k in keys]
    rng = np.random.default_rng(seed)
    chosen: list[Item] = []
    for pool, take in zip(pools, quotas([len(p) for p in pools], max_items), strict=True):
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=take, replace=False))]
    return sorted(chosen, key=lambda it: it.path)
