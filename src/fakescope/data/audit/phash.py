"""Perceptual hashes (64-bit phash) and the pairs of hashes within a Hamming distance,
sub-quadratic (multi-index hashing) so that 100k images group in seconds."""

from __future__ import annotations

import numpy as np
from PIL import Image

_MAX_PAIRWISE = 2048  # rows per block when comparing the hashes in one bucket


def _dct_matrix(size: int = 32, keep: int = 8) -> np.ndarray:
    # The first `keep` rows of the DCT-II as scipy.fftpack.dct computes it (unnormalised).
    n = np.arange(size)
    k = np.arange(keep)[:, None]
    return 2.0 * np.cos(np.pi * k * (2 * n[None, :] + 1) / (2 * size))


_DCT = _dct_matrix()
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def phash64(img: Image.Image) -> int:
    """64-bit perceptual hash, bit-for-bit the same as ``imagehash.phash(img)``.

    Computes only the 8x8 low-frequency DCT block with a cached matrix instead of the full
    2-D DCT, about 4x faster, which matters at 100k images. Bit order: row-major, first
    coefficient is the most significant bit (as ``str(imagehash.phash(img))``).
    """
    gray = img.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    low = _DCT @ np.asarray(gray, dtype=np.float64) @ _DCT.T
    # Flat images have all-zero AC coefficients; round away float noise so every flat
    # image hashes alike (as with imagehash's exact zeros) instead of to random bits.
    low = np.round(low, 6)
    bits = (low > np.median(low)).ravel()
    return int(np.sum(_BIT_WEIGHTS[bits], dtype=np.uint64))


def popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        counts: np.ndarray = np.bitwise_count(values)
        return counts
    as_bytes = values.astype(np.uint64).view(np.uint8).reshape(*values.shape, 8)
    counts = np.unpackbits(as_bytes, axis=-1).sum(axis=-1)
    return counts


def _bucket_pairs(values: np.ndarray, members: np.ndarray, threshold: int) -> list[np.ndarray]:
    """Pairs of `members` (each pair once) whose hashes are within `threshold` bits.

    Compared in blocks so a huge bucket (e.g. thousands of flat images) needs bounded memory.
    """
    found = []
    for row_start in range(0, len(members), _MAX_PAIRWISE):
        rows = members[row_start : row_start + _MAX_PAIRWISE]
        for col_start in range(row_start, len(members), _MAX_PAIRWISE):
            cols = members[col_start : col_start + _MAX_PAIRWISE]
            close = popcount(values[rows][:, None] ^ values[cols][None, :]) <= threshold
            if col_start == row_start:  # diagonal block: each pair once, no self-pairs
                close = np.triu(close, k=1)
            r, c = np.nonzero(close)
            if len(r):
                found.append(np.stack([rows[r], cols[c]], axis=1))
    return found


def near_pairs(values: np.ndarray, threshold: int) -> np.ndarray:
    """Index pairs of distinct 64-bit hashes within `threshold` Hamming distance.

    Multi-index hashing: split the 64 bits into threshold+1 chunks. Two hashes within
    `threshold` differing bits agree exactly on at least one chunk (pigeonhole), so only
    hashes sharing a chunk value are compared. Returns an (n, 2) array, i < j, unique.
    """
    values = np.asarray(values, dtype=np.uint64)
    if threshold <= 0 or len(values) < 2:
        return np.empty((0, 2), dtype=np.int64)
    threshold = min(threshold, 63)
    bounds = np.linspace(0, 64, threshold + 2).astype(int)
    found: list[np.ndarray] = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        mask = np.uint64((1 << int(high - low)) - 1)
        keys = (values >> np.uint64(low)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(keys)]))
        for bucket in np.flatnonzero(ends - starts >= 2):
            members = order[starts[bucket] : ends[bucket]]
            found.extend(_bucket_pairs(values, members, threshold))
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    # The same pair can share several chunks; canonical (low, high) order, then dedupe.
    return np.unique(np.sort(np.concatenate(found), axis=1), axis=0)
