"""Windowed reducers for pyramid levels: mean for intensities, mode for labels.

Both take a block whose extent along each halved axis may be odd (the image's
edge): the block is padded by repeating its edge voxel, which repeats every voxel
of a partial window the same number of times, so the mean and the mode of the
padded window equal those of the voxels that exist.
"""

from __future__ import annotations

import numpy as np


def _pad_even(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    pad = [(0, (f - n % f) % f) for n, f in zip(block.shape, factors, strict=True)]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    return block


def _windows(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Reshape to ``(n0/f0, f0, n1/f1, f1, ...)``."""
    shape: list[int] = []
    for n, f in zip(block.shape, factors, strict=True):
        shape += [n // f, f]
    return block.reshape(shape)


def mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Windowed mean; integers round half up, so the result is exact and reproducible."""
    block = _pad_even(block, factors)
    w = _windows(block, factors)
    axes = tuple(range(1, w.ndim, 2))
    count = int(np.prod(factors))
    if block.dtype.kind in "ui":
        acc = np.int64 if block.dtype.kind == "i" else np.uint64
        if block.dtype.itemsize <= 2:
            acc = np.int32 if block.dtype.kind == "i" else np.uint32
        total = w.sum(axis=axes, dtype=acc)
        if block.dtype.kind == "u":
            out = (total + count // 2) // count
        else:
            out = np.floor_divide(total + count // 2, count)
        return out.astype(block.dtype)
    return w.mean(axis=axes, dtype=np.float64).astype(block.dtype)


def mode(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Windowed mode (most frequent label); ties go to the smallest label value."""
    block = _pad_even(block, factors)
    w = _windows(block, factors)
    nd = block.ndim
    # bring the window axes to the front: (f0*f1*..., n0/f0, n1/f1, ...)
    order = tuple(range(1, 2 * nd, 2)) + tuple(range(0, 2 * nd, 2))
    vals = w.transpose(order).reshape(
        int(np.prod(factors)), *[n // f for n, f in zip(block.shape, factors, strict=True)]
    )
    k = vals.shape[0]
    if k == 1:
        return vals[0].copy()
    vals = np.sort(vals, axis=0)
    # run lengths over the sorted candidates: count[i] = number of j with vals[j] == vals[i]
    counts = np.zeros(vals.shape, dtype=np.uint8)
    for i in range(k):
        counts[i] = (vals == vals[i]).sum(axis=0, dtype=np.uint8)
    # first index of the max count in sorted order = smallest value among the most frequent
    best = np.argmax(counts, axis=0)
    return np.take_along_axis(vals, best[None], axis=0)[0]


REDUCERS = {"mean": mean, "mode": mode}
