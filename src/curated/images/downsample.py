"""Windowed reducers for pyramid levels: mean for intensities, mode for labels.

Both take a block whose extent along each halved axis may be odd (the image's
edge): the block is padded by repeating its edge voxel, which repeats every voxel
of a partial window the same number of times, so the mean and the mode of the
padded window equal those of the voxels that exist.

The window's voxels are visited as strided views (one per offset in the window)
and combined element-wise; that is an order of magnitude faster than reducing a
reshaped array over several axes. A large block is reduced in slices along its first
axis (about :data:`CACHE_BYTES` each), so the views of one slice stay in the CPU cache;
every output voxel sees the same operations in the same order either way.

Unsigned integers halved along every reduced axis (the common case: 2 x 2 x 2 windows of
uint8/uint16 EM data) take a faster path: the sums are built one axis at a time, the
innermost axis first by viewing each pair of neighbouring voxels as one integer of twice
the width (no strided gather), the others by adding whole rows or planes. The sums are
exact integers either way, so both paths give identical results.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np


def _pad_even(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    pad = [(0, (f - n % f) % f) for n, f in zip(block.shape, factors, strict=True)]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    return block


def _views(block: np.ndarray, factors: tuple[int, ...]) -> list[np.ndarray]:
    """One strided view per position inside the window, each of the output's shape."""
    return [
        block[tuple(slice(o, None, f) for o, f in zip(off, factors, strict=True))]
        for off in itertools.product(*[range(f) for f in factors])
    ]


def _accumulator(dtype: np.dtype, count: int) -> np.dtype:
    if dtype.kind == "u":
        bits = dtype.itemsize * 8 + count.bit_length()
        return np.dtype(np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64)
    if dtype.kind == "i":
        bits = dtype.itemsize * 8 + count.bit_length()
        return np.dtype(np.int16 if bits <= 16 else np.int32 if bits <= 32 else np.int64)
    return np.dtype(np.float64)


CACHE_BYTES = 1 << 20
"""Input bytes reduced at once: about one CPU core's L2 cache."""


def mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Windowed mean; integers round half up, so the result is exact and reproducible."""
    block = _pad_even(block, factors)
    f0 = factors[0]
    plane = block.nbytes // max(1, block.shape[0])
    step = max(1, CACHE_BYTES // max(1, plane * f0)) * f0
    if block.ndim < 2 or step >= block.shape[0]:
        return _mean_even(block, factors)
    out = np.empty(tuple(n // f for n, f in zip(block.shape, factors, strict=True)), block.dtype)
    for z in range(0, block.shape[0], step):
        out[z // f0 : (z + step) // f0] = _mean_even(block[z : z + step], factors)
    return out


def _mean_even(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """:func:`mean` of a block whose extents are multiples of ``factors``."""
    if _pairwise_ok(block, factors):
        return _mean_pairwise(block, factors)
    count = int(np.prod(factors))
    views = _views(block, factors)
    acc_t = _accumulator(block.dtype, count)
    acc = views[0].astype(acc_t)
    for v in views[1:]:
        np.add(acc, v, out=acc, casting="unsafe")
    if block.dtype.kind in "ui":
        acc += count // 2
        if count & (count - 1) == 0:
            np.right_shift(
                acc, count.bit_length() - 1, out=acc
            ) if block.dtype.kind == "u" else np.floor_divide(acc, count, out=acc)
        else:
            np.floor_divide(acc, count, out=acc)
        return acc.astype(block.dtype)
    acc /= count
    return acc.astype(block.dtype)


_WIDER: dict[int, np.dtype[Any]] = {1: np.dtype("<u2"), 2: np.dtype("<u4"), 4: np.dtype("<u8")}


def _pairwise_ok(block: np.ndarray, factors: tuple[int, ...]) -> bool:
    """Unsigned, native little-endian, factors of 1 or 2, at most 8 voxels a window."""
    return (
        block.dtype.kind == "u"
        and block.dtype.itemsize in _WIDER
        and block.dtype.byteorder in "=|<"
        and np.little_endian
        and all(f in (1, 2) for f in factors)
        and block.ndim >= 1
    )


def _mean_pairwise(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """:func:`_mean_even` for unsigned integers and factors of 1 or 2, one axis at a time."""
    count = int(np.prod(factors))
    acc_t = _accumulator(block.dtype, count)
    last = block.ndim - 1
    if factors[last] == 2:
        # a pair of neighbours along the last axis is one integer twice as wide: low + high half
        wide = np.ascontiguousarray(block).view(_WIDER[block.dtype.itemsize])
        bits = block.dtype.itemsize * 8
        acc = np.bitwise_and(wide, (1 << bits) - 1, dtype=acc_t, casting="unsafe")
        np.add(acc, np.right_shift(wide, bits).astype(acc_t, copy=False), out=acc)
    else:
        acc = block.astype(acc_t)
    for axis in range(last - 1, -1, -1):
        if factors[axis] == 2:
            lo = (slice(None),) * axis + (slice(0, None, 2),)
            hi = (slice(None),) * axis + (slice(1, None, 2),)
            acc = np.add(acc[lo], acc[hi])
    if count > 1:
        acc += count // 2
        np.right_shift(acc, count.bit_length() - 1, out=acc)
    return acc.astype(block.dtype)


def mode(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Windowed mode (most frequent label); ties go to the smallest label value."""
    block = _pad_even(block, factors)
    views = _views(block, factors)
    if len(views) == 1:
        return views[0].copy()
    counts = [sum((v == w).astype(np.uint8) for w in views) for v in views]
    best = views[0].copy()
    best_n = counts[0]
    for v, n in zip(views[1:], counts[1:], strict=True):
        better = (n > best_n) | ((n == best_n) & (v < best))
        best = np.where(better, v, best)
        best_n = np.where(better, n, best_n)
    return best


REDUCERS = {"mean": mean, "mode": mode}
