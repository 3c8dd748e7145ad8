"""Several uint8 model inputs as one (3, S, S) array per image: how a kind that feeds more than
one model from one decoded image passes its inputs through the code paths that stack prepared
images into a batch (decode once, score many)."""

from __future__ import annotations

import math

import numpy as np


def square_side(total: int) -> int:
    """The side S of the smallest (3, S, S) array that holds `total` values."""
    return math.ceil(math.sqrt(total / 3))


def pack_square(flat: np.ndarray, side: int) -> np.ndarray:
    """Flat uint8 values as a (3, side, side) array, zero-padded: one array per image for the
    code paths that stack prepared images into a batch."""
    out = np.zeros(3 * side**2, dtype=np.uint8)
    out[: flat.size] = flat
    return out.reshape(3, side, side)
