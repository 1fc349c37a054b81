"""A byte-bounded cache of decoded TIFF segments (strips and tiles), one per process.

A compressed TIFF page stored as one strip (``RowsPerStrip`` = ``ImageLength``, as many
microscope programs, ImageJ and FIB-SEM acquisition software write slices) or as a few
very large strips or tiles cannot be read in part: every shard task whose region
touches the page would decode the whole strip again (256 decodes of each 8192² page
with the default 512-voxel shards). :class:`TiffSource` therefore keeps the decoded
segments that a read used only in part here, for the next task that needs them.

Bounded: the decoded segments kept never exceed ``max_bytes`` (default
:data:`DEFAULT_MAX_BYTES`, or ``CURATED_SEGMENT_CACHE_MB`` in the environment; ``0``
keeps nothing); the least recently used go first. A segment larger than the cap is
decoded for its reader and not kept. Each thread decoding holds at most one more segment
outside the cap while it decodes it. A segment that several threads want at once is
decoded once: the others wait for it (shard tasks of one slab run side by side).

Never stale: a key holds the file's identity (device, inode, size, modification and
change times in ns) as seen on the descriptor that is read, so a file rewritten or
replaced between two reads is decoded afresh. (A rewrite in place to the same size within
the file system's timestamp granularity cannot be told apart, as by any check on ``stat``;
a conversion's resume check compares size and mtime the same way.)

Per process: every worker process of a dask.distributed cluster has its own; threads
of one process share one. Damaged data raise and nothing is kept from them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

DEFAULT_MAX_BYTES = 1 << 30
"""1 GiB of decoded segments per process. A level-0 shard task reads each page of its depth
once, and the shard tasks of one slab read the same pages, side by side on the threads;
one decode serves them all when the pages of one shard's depth fit (a stack of up to 64
pages of 4096² uint8, or 512-deep shards of pages up to 2 MiB). Where they do not, the
tasks running at the same time still share each decode (a segment wanted by several threads
is decoded once), and the others decode it again: set ``CURATED_SEGMENT_CACHE_MB`` higher
where memory allows."""

CACHE_ENV = "CURATED_SEGMENT_CACHE_MB"


def file_identity(fd: int) -> tuple[int, ...]:
    """What tells one version of an open file from another: device, inode, size, mtime, ctime."""
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _max_bytes_from_env() -> int:
    value = os.environ.get(CACHE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        return max(0, int(float(value) * (1 << 20)))
    except ValueError:
        return DEFAULT_MAX_BYTES


class SegmentCache:
    """Decoded segments by key, least recently used dropped first, at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = _max_bytes_from_env() if max_bytes is None else max(0, int(max_bytes))
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._decoding: dict[Hashable, threading.Event] = {}
        self.nbytes = 0
        """Bytes of the decoded segments kept now (never above ``max_bytes``)."""
        self.hits = 0
        self.decodes = 0

    def get(self, key: Hashable, decode: Callable[[], tuple[np.ndarray, Any]], keep: bool) -> Any:
        """``decode()``'s result for ``key``: ``(array, extra)``, kept when ``keep`` and it fits.

        The array is made read-only: the cached copy is shared with later readers. An
        exception from ``decode`` reaches the caller and nothing is kept; a thread that
        waited for the same key then decodes it itself (and meets the same error).
        """
        if not keep or self.max_bytes <= 0:
            return self._decode(decode)
        while True:
            with self._lock:
                found = self._entries.get(key)
                if found is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return found[0]
                waiting = self._decoding.get(key)
                if waiting is None:
                    done = self._decoding[key] = threading.Event()
                    break
            waiting.wait()
        try:
            value = self._decode(decode)
            self._put(key, value)
            return value
        finally:
            with self._lock:
                del self._decoding[key]
            done.set()

    def _decode(self, decode: Callable[[], tuple[np.ndarray, Any]]) -> Any:
        value = decode()
        value[0].flags.writeable = False
        with self._lock:
            self.decodes += 1
        return value

    def _put(self, key: Hashable, value: tuple[np.ndarray, Any]) -> None:
        size = int(value[0].nbytes)
        with self._lock:
            if size > self.max_bytes:
                return
            while self._entries and self.nbytes + size > self.max_bytes:
                _, (_, old) = self._entries.popitem(last=False)
                self.nbytes -= old
            self._entries[key] = (value, size)
            self.nbytes += size

    def clear(self) -> None:
        """Drop every kept segment (after a conversion) and reset the counters."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0
            self.hits = 0
            self.decodes = 0

    def resize(self, max_bytes: int) -> None:
        """Keep at most ``max_bytes`` from now on (``0``: keep nothing), dropping the oldest."""
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            while self._entries and self.nbytes > self.max_bytes:
                _, (_, old) = self._entries.popitem(last=False)
                self.nbytes -= old


SEGMENTS = SegmentCache()
"""This process's cache, shared by every :class:`curated.images.sources.TiffSource`."""
