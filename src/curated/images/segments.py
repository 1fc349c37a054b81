"""A byte-bounded cache of decoded TIFF segments (strips and tiles), one per process.

A compressed TIFF page stored as one strip (``RowsPerStrip`` = ``ImageLength``, as many
microscope programs, ImageJ and FIB-SEM acquisition software write slices) or as a few
very large strips or tiles cannot be read in part: every shard task whose region
touches the page would decode the whole strip again (256 decodes of each 8192² page
with the default 512-voxel shards). :class:`TiffSource` therefore keeps the decoded
segments that a read used only in part here, for the next task that needs them; so does
:class:`curated.images.stored.StoredArraySource` with HDF5 chunks one plane deep.

Bounded: the decoded segments kept in memory never exceed ``max_bytes`` (default
:data:`DEFAULT_MAX_BYTES`, or ``CURATED_SEGMENT_CACHE_MB`` in the environment; ``0``
keeps nothing in memory); the least recently used go first. Each thread decoding holds
at most one more segment outside the cap while it decodes it (and one it is writing to
disk, below). A segment that several threads want at once is decoded once: the others
wait for it (shard tasks of one slab run side by side).

Spilled to disk when memory is too small for the pattern: the shard tasks of one slab
all walk the same pages in the same order, the cyclic pattern in which least-recently-used
eviction drops each page just before the next shard wants it. Once a segment that was
dropped is wanted again, the cache writes what it drops from then on to one unlinked
scratch file (:class:`SpillFile`, in tiles, so that a shard's window of a page is read
back without reading the page), bounded by ``spill_bytes`` (``CURATED_SEGMENT_SPILL_MB``;
by default :data:`DEFAULT_SPILL_BYTES`; ``0`` spills nothing), by half the free space where
it is written, and by the free space left beside it: it never grows past it, and once the
disk holds less free space than the file (the conversion's own output needs the disk more)
spilling stops and the file is closed, its space given back. Each page is then decoded once
per slab where it was decoded once per shard. Only a conversion run on this process's threads spills
(:meth:`SegmentCache.spill_to`, until :meth:`SegmentCache.clear` at its end; not the tasks of
a dask.distributed worker, nor other readers). The file lives in the output folder's parent
for a local output, in the temporary folder (``TMPDIR``) for an ``s3://`` one; it has no
name, so nothing is left behind even by ``kill -9``. A disk that fills or fails turns
spilling off for the run and closes the file: reads go on, decoding again.

Never stale: a key holds the file's identity (device, inode, size, modification and
change times in ns) as seen on the descriptor that is read, so a file rewritten or
replaced between two reads is decoded afresh. (A rewrite in place to the same size within
the file system's timestamp granularity cannot be told apart, as by any check on ``stat``;
a conversion's resume check compares size and mtime the same way.)

Per process: every worker process of a dask.distributed cluster has its own; threads
of one process share one. Damaged data raise and nothing is kept from them.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_BYTES = 1 << 30
"""1 GiB of decoded segments in memory per process. A level-0 shard task reads each page of
its depth once, and the shard tasks of one slab read the same pages, side by side on the
threads; one decode serves them all when the pages of one shard's depth fit (a stack of up
to 64 pages of 4096² uint8, or 512-deep shards of pages up to 2 MiB). Where they do not,
the segments dropped are spilled to disk (see the module's text) and read back from there."""

DEFAULT_SPILL_BYTES = 64 << 30
"""64 GiB of spilled segments at most by default: one slab of 512-deep shards of 8192² uint8
pages is 32 GiB. Never more than half the free space of the folder written to."""

CACHE_ENV = "CURATED_SEGMENT_CACHE_MB"
SPILL_ENV = "CURATED_SEGMENT_SPILL_MB"

TILE = 256
"""Spilled segments are stored in tiles of TILE × TILE values: a shard's window of a wide
page is read back as a few contiguous runs, not row by row."""

GHOSTS = 4096
"""Keys of dropped segments remembered (not their data) to notice one wanted again."""


def file_identity(file: int | str | Path) -> tuple[int, ...]:
    """What tells one version of a file (an open descriptor, or a path) from another:
    device, inode, size, mtime, ctime."""
    st = os.stat(file)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _megabytes_from_env(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return max(0, int(float(value) * (1 << 20)))
    except ValueError:
        return default


class SpillFile:
    """Segments written to one unlinked scratch file: fixed slots reused by size, in tiles.

    Every method but :meth:`write`/:meth:`read` is called under the cache's lock; a slot
    being written or read is never handed out again meanwhile (the cache pins it).
    """

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        # unlinked: gone when closed, or when the process is killed; closed by close()
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self.fd = self._file.fileno()
        self.directory = directory
        free = shutil.disk_usage(directory).free
        self.max_bytes = max(0, min(int(max_bytes), free // 2))
        self.end = 0
        self.free: dict[int, list[int]] = {}

    @staticmethod
    def slot_size(shape: tuple[int, ...], itemsize: int) -> int:
        rows, cols = -(-shape[0] // TILE), -(-shape[1] // TILE)
        return rows * cols * TILE * TILE * itemsize

    def allocate(self, size: int) -> int | None:
        """A slot of ``size`` bytes: a freed one of that size, or more file, or ``None``."""
        spare = self.free.get(size)
        if spare:
            return spare.pop()
        if self.end + size > self.max_bytes or self.free_space() - size < self.end + size:
            return None  # over the budget, or it would hold more than the disk has left
        offset, self.end = self.end, self.end + size
        return offset

    def free_space(self) -> int:
        return shutil.disk_usage(self.directory).free

    def crowds(self) -> bool:
        """Whether the file holds more than the free space left beside it: the conversion's
        own output needs the disk more."""
        return self.end > 0 and self.free_space() < self.end

    def release(self, offset: int, size: int) -> None:
        self.free.setdefault(size, []).append(offset)

    def write(self, offset: int, arr: np.ndarray) -> None:
        """``arr`` (2-D) at ``offset``, one row of tiles at a time (a row of tiles of memory)."""
        cols = -(-arr.shape[1] // TILE)
        band = np.zeros((TILE, cols * TILE), dtype=arr.dtype)
        step = band.nbytes
        for r, y in enumerate(range(0, arr.shape[0], TILE)):
            part = arr[y : y + TILE]
            band[: part.shape[0], : part.shape[1]] = part
            band[part.shape[0] :] = 0
            tiles = np.ascontiguousarray(band.reshape(TILE, cols, TILE).transpose(1, 0, 2))
            if os.pwritev(self.fd, [tiles.data], offset + r * step) != step:
                raise OSError("short write to the segment spill file")

    def read(self, at: Spilled, rows: slice, cols: slice) -> np.ndarray:
        """Rows ``rows``, columns ``cols`` (within the segment) of the segment ``at``."""
        dt, tcols = at.dtype, -(-at.shape[1] // TILE)
        out = np.empty((rows.stop - rows.start, cols.stop - cols.start), dtype=dt)
        tile_bytes = TILE * TILE * dt.itemsize
        tx0, tx1 = cols.start // TILE, (cols.stop - 1) // TILE + 1
        buf = np.empty((tx1 - tx0, TILE, TILE), dtype=dt)
        for ty in range(rows.start // TILE, (rows.stop - 1) // TILE + 1):
            got = os.preadv(self.fd, [buf.data], at.offset + (ty * tcols + tx0) * tile_bytes)
            if got != buf.nbytes:
                raise OSError("short read from the segment spill file")
            band = buf.transpose(1, 0, 2).reshape(TILE, (tx1 - tx0) * TILE)
            ya, yb = max(rows.start, ty * TILE), min(rows.stop, (ty + 1) * TILE)
            out[ya - rows.start : yb - rows.start] = band[
                ya - ty * TILE : yb - ty * TILE, cols.start - tx0 * TILE : cols.stop - tx0 * TILE
            ]
        return out

    def close(self) -> None:
        self._file.close()


@dataclass
class Spilled:
    """Where a spilled segment lies in the :class:`SpillFile`, and who is reading it."""

    offset: int
    size: int
    shape: tuple[int, int]
    dtype: np.dtype[Any]
    extra: Any
    readers: int = 0


def _overlap(
    ys: slice, xs: slice, origin: tuple[int, int], shape: tuple[int, ...]
) -> tuple[slice, slice]:
    """The part of rows ``ys``, columns ``xs`` (page coordinates) inside a segment at
    ``origin`` of ``shape``, in the segment's own coordinates (empty slices when none)."""
    y0, x0 = origin
    ya, yb = max(ys.start, y0), max(max(ys.start, y0), min(ys.stop, y0 + shape[0]))
    xa, xb = max(xs.start, x0), max(max(xs.start, x0), min(xs.stop, x0 + shape[1]))
    return slice(ya - y0, yb - y0), slice(xa - x0, xb - x0)


Decoder = Callable[[], tuple[np.ndarray, Any]]


class SegmentCache:
    """Decoded segments by key, least recently used dropped first, at most ``max_bytes`` in
    memory; what is dropped is spilled to disk once the cyclic pattern shows (module text)."""

    def __init__(
        self,
        max_bytes: int | None = None,
        spill_bytes: int | None = None,
        spill_dir: str | Path | None = None,
    ) -> None:
        env_max = _megabytes_from_env(CACHE_ENV, DEFAULT_MAX_BYTES)
        env_spill = _megabytes_from_env(SPILL_ENV, DEFAULT_SPILL_BYTES)
        self.max_bytes = int(env_max or 0) if max_bytes is None else max(0, int(max_bytes))
        self.spill_bytes = int(env_spill or 0) if spill_bytes is None else max(0, int(spill_bytes))
        self.spill_dir = spill_dir
        self._may_spill = spill_dir is not None  # a conversion's cache (spill_to), not any reader's
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._decoding: dict[Hashable, threading.Event] = {}
        self._dropping: dict[Hashable, Any] = {}  # dropped from memory, being written to disk
        self._spilled: OrderedDict[Hashable, Spilled] = OrderedDict()
        self._ghosts: OrderedDict[Hashable, None] = OrderedDict()
        self._spill: SpillFile | None = None
        self._spilling = False
        self._users = 0  # readers and writers of the spill file now: it is closed when none
        self._release = False  # close the spill file once no one uses it
        self.nbytes = 0
        """Bytes of the decoded segments kept in memory now (never above ``max_bytes``)."""
        self.hits = 0
        self.decodes = 0
        self.spills = 0
        """Segments written to the spill file."""
        self.spill_hits = 0
        """Reads served from the spill file."""
        self.spill_error: str | None = None
        """Why spilling was turned off for this run (a full or failing disk), if it was."""

    @property
    def spilled_bytes(self) -> int:
        return sum(s.size for s in self._spilled.values())

    def spill_to(self, directory: str | Path | None) -> None:
        """Allow spilling until :meth:`clear`, into ``directory`` (``None``: the temporary
        folder). A conversion run on this process's threads calls it, and clears the cache
        at its end; other readers (``check``'s samples, a dask worker's tasks) never spill,
        so no scratch file outlives the work that needed it."""
        with self._lock:
            self._may_spill = True
            if self._spill is None:
                self.spill_dir = directory

    def get(self, key: Hashable, decode: Decoder, keep: bool) -> Any:
        """``decode()``'s result for ``key``: ``(array, extra)``, kept when ``keep`` and it fits.

        The array is made read-only: the cached copy is shared with later readers. An
        exception from ``decode`` reaches the caller and nothing is kept; a thread that
        waited for the same key then decodes it itself (and meets the same error).
        """
        kind, found = self._lookup(key, keep)
        if kind == "disk":
            whole = (slice(0, found.shape[0]), slice(0, found.shape[1]))
            arr = self._read_spilled(key, found, *whole)
            if arr is None:
                return self.get(key, decode, keep)
            arr.flags.writeable = False
            return arr, found.extra
        return found if kind == "memory" else self._decode_and_keep(key, decode, found)

    def window(
        self, key: Hashable, decode: Decoder, keep: bool, ys: slice, xs: slice
    ) -> tuple[np.ndarray, int, int]:
        """The part of a 2-D segment inside rows ``ys``, columns ``xs`` (page coordinates), for
        a ``decode`` whose ``extra`` is the segment's ``(row, column)`` origin in the page:
        ``(values, first row, first column)``; a spilled segment is read only there."""
        kind, found = self._lookup(key, keep)
        if kind == "disk":
            rows, cols = _overlap(ys, xs, found.extra, found.shape)
            part = self._read_spilled(key, found, rows, cols)
            if part is None:
                return self.window(key, decode, keep, ys, xs)
            return part, found.extra[0] + rows.start, found.extra[1] + cols.start
        seg, origin = found if kind == "memory" else self._decode_and_keep(key, decode, found)
        rows, cols = _overlap(ys, xs, origin, seg.shape)
        return seg[rows, cols], origin[0] + rows.start, origin[1] + cols.start

    def _lookup(self, key: Hashable, keep: bool) -> tuple[str, Any]:
        """``("memory", value)``, ``("disk", Spilled)`` (pinned: read it, then it is unpinned)
        or ``("decode", Event or None)`` (decode it; ``None``: and keep nothing)."""
        if not keep:
            return "decode", None
        while True:
            with self._lock:
                kind, found = self._find(key)
            if kind != "wait":
                return kind, found
            found.wait()

    def _find(self, key: Hashable) -> tuple[str, Any]:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return "memory", found[0]
        if key in self._dropping:
            self.hits += 1
            return "memory", self._dropping[key]
        spilled = self._spilled.get(key)
        if spilled is not None:
            self._spilled.move_to_end(key)
            spilled.readers += 1
            self._users += 1
            self.spill_hits += 1
            return "disk", spilled
        waiting = self._decoding.get(key)
        if waiting is not None:
            return "wait", waiting
        if (
            key in self._ghosts
            and self._may_spill
            and self.spill_bytes > 0
            and not self.spill_error
        ):
            self._spilling = True  # a dropped segment wanted again: the cyclic pattern
        done = self._decoding[key] = threading.Event()
        return "decode", done

    def _decode_and_keep(self, key: Hashable, decode: Decoder, done: threading.Event | None) -> Any:
        if done is None:
            return self._decode(decode)
        try:
            value = self._decode(decode)
            dropped = self._put(key, value)
        finally:
            with self._lock:
                del self._decoding[key]
            done.set()
        for item in dropped:
            self._spill_one(*item)
        return value

    def _decode(self, decode: Decoder) -> Any:
        value = decode()
        value[0].flags.writeable = False
        with self._lock:
            self.decodes += 1
        return value

    def _put(self, key: Hashable, value: tuple[np.ndarray, Any]) -> list[tuple[Hashable, Any]]:
        """Keep ``value`` in memory if it fits; returns what is to be written to disk now."""
        size = int(value[0].nbytes)
        dropped: list[tuple[Hashable, Any]] = []
        with self._lock:
            if size > self.max_bytes:
                dropped.append((key, value))
            else:
                while self._entries and self.nbytes + size > self.max_bytes:
                    old_key, (old, n) = self._entries.popitem(last=False)
                    self.nbytes -= n
                    dropped.append((old_key, old))
                self._entries[key] = (value, size)
                self.nbytes += size
            to_disk = []
            for k, v in dropped:
                if self._spilling and v[0].ndim == 2 and k not in self._spilled:
                    self._dropping[k] = v
                    to_disk.append((k, v))
                else:
                    self._ghost(k)
            return to_disk

    def _ghost(self, key: Hashable) -> None:
        self._ghosts[key] = None
        self._ghosts.move_to_end(key)
        while len(self._ghosts) > GHOSTS:
            self._ghosts.popitem(last=False)

    def _spill_one(self, key: Hashable, value: tuple[np.ndarray, Any]) -> None:
        """Write a segment dropped from memory to the spill file (or forget it, if it cannot)."""
        arr, extra = value
        with self._lock:
            at = self._reserve(arr, extra)
        if at is not None:
            try:
                assert self._spill is not None
                self._spill.write(at.offset, arr)
            except OSError as exc:
                with self._lock:
                    self._stop_spilling(exc)
        with self._lock:
            self._dropping.pop(key, None)
            if at is None:
                self._ghost(key)
            else:
                self._users -= 1
                if self.spill_error is None:
                    self._spilled[key] = at
                    self.spills += 1
                self._close_if_idle()

    def _reserve(self, arr: np.ndarray, extra: Any) -> Spilled | None:
        """Under the lock: a slot for ``arr``, dropping the least recently used spilled
        segments no one is reading as needed; ``None`` when there is no room."""
        if not self._spilling:
            return None
        if self._spill is None:
            try:
                self._spill = SpillFile(self.spill_dir or tempfile.gettempdir(), self.spill_bytes)
            except OSError as exc:
                self._stop_spilling(exc)
                return None
        if self._spill.crowds():
            self._stop_spilling(OSError(errno.ENOSPC, "the disk it is on is filling up"))
            return None
        size = SpillFile.slot_size(arr.shape, arr.itemsize)
        if size > self._spill.max_bytes:
            return None
        offset = self._spill.allocate(size)
        while offset is None:
            victim = next((k for k, s in self._spilled.items() if s.readers == 0), None)
            if victim is None:
                return None
            old = self._spilled.pop(victim)
            self._spill.release(old.offset, old.size)
            self._ghost(victim)
            offset = self._spill.allocate(size)
        shape = (int(arr.shape[0]), int(arr.shape[1]))
        self._users += 1  # the writer, until _spill_one is done
        return Spilled(offset, size, shape, np.dtype(arr.dtype), extra)

    def _read_spilled(
        self, key: Hashable, at: Spilled, rows: slice, cols: slice
    ) -> np.ndarray | None:
        """Rows and columns of a pinned spilled segment, then unpinned; ``None`` (and spilling
        turned off, what was spilled forgotten) when the disk fails: decode it again."""
        try:
            if rows.stop <= rows.start or cols.stop <= cols.start:
                empty = (max(0, rows.stop - rows.start), max(0, cols.stop - cols.start))
                return np.empty(empty, at.dtype)
            assert self._spill is not None
            return self._spill.read(at, rows, cols)
        except OSError as exc:
            with self._lock:
                self._stop_spilling(exc)
            return None
        finally:
            with self._lock:
                at.readers -= 1
                self._users -= 1
                self._close_if_idle()

    def _stop_spilling(self, exc: OSError) -> None:
        """Under the lock: turn spilling off for this run, forget what was spilled and close
        the file, returning its space, once no reader or writer uses it any more (one busy
        with a spilled segment finishes from the open file)."""
        self._spilling = False
        self.spill_error = f"{type(exc).__name__}: {exc}"
        for key in self._spilled:
            self._ghost(key)
        self._spilled.clear()
        self._release = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self._release and self._users == 0 and self._spill is not None:
            self._spill.close()
            self._spill = None

    def clear(self) -> None:
        """Drop every kept segment (after a conversion), close the spill file, reset the counters."""
        with self._lock:
            self._entries.clear()
            self._dropping.clear()
            self._spilled.clear()
            self._ghosts.clear()
            if self._spill is not None:
                self._spill.close()
                self._spill = None
            self._spilling = self._may_spill = self._release = False
            self._users = 0
            self.spill_error = None
            self.spill_dir = None
            self.nbytes = 0
            self.hits = 0
            self.decodes = 0
            self.spills = 0
            self.spill_hits = 0

    def resize(self, max_bytes: int) -> None:
        """Keep at most ``max_bytes`` in memory from now on (``0``: nothing), dropping the oldest."""
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            while self._entries and self.nbytes > self.max_bytes:
                key, (_, old) = self._entries.popitem(last=False)
                self.nbytes -= old
                self._ghost(key)


SEGMENTS = SegmentCache()
"""This process's cache, shared by every :class:`curated.images.sources.TiffSource`."""
