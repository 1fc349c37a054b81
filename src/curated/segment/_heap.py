"""glibc heap settings for the two kinds of segmentation work: no page faults while training
on the same patch shapes again and again, or while predicting the tiles of one write unit, and
memory that stays flat over many write units.

All are process-wide (``mallopt``) and do nothing off glibc (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
GLIBC_MMAP_MAX = 65536
"""glibc's default ``M_MMAP_MAX``, restored after training and prediction."""
GLIBC_TRIM_THRESHOLD = 128 * 1024
"""glibc's default ``M_TRIM_THRESHOLD``, restored after training."""
TRAINING_TRIM_THRESHOLD = 2**31 - 1
"""Free memory at the heap's top that training (and a prediction task) keeps instead of
giving back (the largest value ``mallopt`` takes): one step's buffers are the next step's."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc has both; musl has no mallopt)
    except (OSError, AttributeError):
        return None
    return libc


def mallopt(param: int, value: int) -> bool:
    """glibc's ``mallopt``; ``False`` where there is no glibc or it refused the value."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(param, value))


def _heap_only() -> bool:
    """Every allocation from the heap (``mmap`` off), the heap never trimmed: what
    :func:`training_heap` and :func:`prediction_heap` run under."""
    return mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, TRAINING_TRIM_THRESHOLD)


PREDICTION_TRIM_THRESHOLD = 64 << 20
"""Free memory at the heap's top that prediction keeps between tiles (glibc's own
dynamic rule reaches this after large buffers were freed)."""


def steady_heap() -> bool:
    """Keep peak memory flat over many tiles (glibc): serve big buffers from mmap at a fixed threshold.

    glibc raises its mmap threshold each time a large buffer is freed, after which
    tile-sized arrays come from the heap and fragment it: peak RSS then creeps up
    with the number of tiles (measured: +240 MiB over 32 tiles). A fixed 1 MiB
    threshold returns every tile's buffers to the system. The heap's free top is kept
    up to :data:`PREDICTION_TRIM_THRESHOLD` instead of glibc's 128 KiB, which a fixed
    threshold would otherwise leave in force: the 5 nm test volume of
    ``benchmarks/isotropic.py`` predicted in 150 s instead of 189 s (64 → 42 million
    page faults) at 17 MB more peak RSS. Set on every call (cheap), so a training in the
    same process (:func:`training_heap`) does not leave its settings behind.
    """
    return mallopt(M_MMAP_THRESHOLD, 1 << 20) and mallopt(
        M_TRIM_THRESHOLD, PREDICTION_TRIM_THRESHOLD
    )


@contextmanager
def training_heap() -> Iterator[bool]:
    """Serve every allocation from the heap and never shrink it, for the duration of a training.

    A training step allocates and frees the same buffers each time (at 5 nm: patches of
    104³ voxels, activations of up to ~70 MB). By default glibc maps buffers over 32 MiB
    afresh with ``mmap`` and gives the heap's free top back to the system, so every step
    touched its memory anew: 1.0 million page faults in 5 steps of the 5 nm U-Net, and
    more system than user CPU time (benchmarks/RESULTS.md). With ``mmap`` off and the
    trim threshold at its maximum the pages stay mapped from one step to the next (17,600
    faults, the libraries' own). Memory stays bounded by the patch and network size, not
    the data; the heap's peak is kept until the end of the training, then trimmed and
    glibc's defaults restored. Yields whether the settings took (glibc only).
    """
    libc = _libc()
    ok = _heap_only()
    try:
        yield ok
    finally:
        if ok and libc is not None:
            mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
            mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
            libc.malloc_trim(0)


_tasks_lock = threading.Lock()
_tasks_running = 0


@contextmanager
def prediction_heap() -> Iterator[bool]:
    """Serve one prediction task's allocations from the heap; give its free pages back when it ends.

    The tiles of a task (a block of write units) have one shape, so the network's activations (torch allocates
    them with plain ``malloc``, tens to hundreds of MB per tile at 5 nm) are the same buffers
    from tile to tile. Under :func:`steady_heap` alone each of them was mapped afresh and
    faulted in page by page: the 5 nm test volume of ``benchmarks/isotropic.py`` made 40
    million page faults and spent more system than user time (65 s wall). Inside this
    context ``mmap`` is off and the heap is not trimmed, so the pages stay mapped from tile
    to tile (3.4 million faults, 31 s; benchmarks/RESULTS.md). When a task ends,
    ``malloc_trim(0)`` gives every free page of the heap back, so memory is bounded by the
    tasks running at once, not by their number. Tasks run in several threads share the
    settings: they stay in force until the last running task ends, then
    :func:`steady_heap`'s are restored. Yields whether the settings took (glibc only).
    """
    global _tasks_running
    libc = _libc()
    with _tasks_lock:
        ok = _heap_only()
        _tasks_running += 1
    try:
        yield ok
    finally:
        with _tasks_lock:
            _tasks_running -= 1
            if ok and libc is not None:
                if not _tasks_running:
                    mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
                    steady_heap()
                libc.malloc_trim(0)
