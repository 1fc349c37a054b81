"""Shard-aligned writing and reading of the arrays of one multiscale store.

One task writes one whole output shard (v3) or one shard-sized group of chunks
(v2), so no two writers ever touch the same file: the concurrent
read-modify-write data loss of partial shard writes cannot happen. A task
streams its shard in slabs, encodes every inner chunk as it goes, writes the
shard to a temporary file and renames it into place, then leaves a marker in
the store's progress journal (``.curated-progress/``). A re-run skips shards with
markers. A level-0 task also builds, from the slabs it holds, the levels above it
whose share of its shard is whole chunks (:func:`subpyramid_depth`), and leaves their
encoded chunks in the journal (``parts/``); the task of such a level only gathers those
bytes. Any other level ``k+1`` is built from the *written* level ``k``. Both ways give
the same bytes.

Every byte is read and written through the store's sink (:mod:`curated.objstore`): a local
folder, where every object is written to a temporary file in the journal and renamed into
place, or an ``s3://`` object store, where every object is one atomic ``PUT``. The journal
(markers, samples, label values, parts) lives in the store under ``.curated-progress/``,
so a conversion into an object store resumes like a local one. Every object is written by
one of the small functions at the end of the writing section (``_stage``/``_publish``,
``_write_chunk``, ``_remove``, ``_save_npy``, ``_write_marker``); a shard is streamed into
a local temporary file first and published in one piece.

The files are the ones zarr-python reads: sharding codec with the index at the
end (offset/length ``uint64`` pairs + crc32c), inner chunks padded to full size,
chunks equal to the fill value left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from curated._crash import crash_point
from curated.errors import ConversionError
from curated.images import downsample
from curated.images.kept import unkept, unkept_message
from curated.images.layout import (
    StoreLayout,
    block_grid,
    block_region,
    iter_block_grid,
    level_block,
    step_factors,
)
from curated.images.segments import SEGMENTS
from curated.objstore import LocalSink, S3Sink, join, open_sink, sha256_of

JOURNAL = ".curated-progress"
EMPTY = np.uint64(2**64 - 1)
ABORT_ENV = "CURATED_TEST_ABORT_AFTER_SHARDS"
"""Test hook: the process exits abruptly after this many shards (simulates a kill)."""

SAMPLES_PER_SHARD_AXIS = 32
SAMPLE_BUDGET = 1 << 22
"""Most level-0 voxels sampled over the whole image for the display window: small shards
must not make the progress journal an uncompressed copy of the image."""
LIST_PAGE = 1000
"""Objects of an object store the store digest takes at a time (one LIST page)."""
SMALL_OBJECT = 1 << 20
"""Objects up to this size the store digest fetches together (metadata documents)."""
REMOTE_SHARDS = 2
"""Whole shards an object-store reader keeps (memory: two compressed shards per open level)."""
SCHEDULER_TIMEOUT = "20s"
"""How long to keep trying to reach a dask.distributed scheduler."""


# ------------------------------------------------------------------ codecs


def make_codec(config: dict[str, Any]) -> Any:
    import numcodecs

    kind = config.get("id") or config.get("name")
    if kind == "blosc":
        shuffle = config.get("shuffle", 1)
        if isinstance(shuffle, str):
            shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[shuffle]
        return numcodecs.Blosc(
            cname=config.get("cname", "zstd"),
            clevel=int(config.get("clevel", 3)),
            shuffle=int(shuffle),
            blocksize=int(config.get("blocksize", 0)),
        )
    if kind == "zstd":
        return numcodecs.Zstd(
            level=int(config.get("level", 3)), checksum=bool(config.get("checksum", False))
        )
    msg = f"codec {kind!r} is not one curated writes"
    raise ConversionError(msg)


def zarr_compressor(config: dict[str, Any], zarr_format: int) -> Any:
    """The zarr-python object describing ``config`` in array metadata."""
    if zarr_format == 2:
        return make_codec(config)
    from zarr.codecs import BloscCodec, ZstdCodec

    if config["id"] == "blosc":
        return BloscCodec(
            cname=config["cname"],
            clevel=config["clevel"],
            shuffle={0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}[config["shuffle"]],
        )
    return ZstdCodec(level=config["level"])


def create_level_arrays(
    root: str | Path,
    layout: StoreLayout,
    *,
    names: tuple[str, ...] | None = None,
    missing_only: bool = False,
) -> None:
    """Write the ``zarr.json``/``.zarray`` of every level (no data).

    ``missing_only`` writes only the documents not in the store yet (a resumed start).
    """
    import zarr
    from zarr.storage import MemoryStore

    # zarr-python makes the metadata documents in memory; the sink puts each in one piece
    # (one request per level into an object store, instead of zarr's listing and probing)
    made: dict[str, Any] = {}
    store = MemoryStore(made)
    dims = tuple(a.name for a in layout.axes)
    for k, lv in enumerate(layout.levels):
        if names is not None and lv.path not in names:
            continue
        kw: dict[str, Any] = {
            "store": store,
            "name": lv.path,
            "shape": lv.shape,
            "dtype": layout.dtype,
            "chunks": layout.chunks,
            "fill_value": layout.fill_value,
            "zarr_format": layout.zarr_format,
            "overwrite": True,
            "compressors": zarr_compressor(layout.level_codec(k), layout.zarr_format),
        }
        if layout.zarr_format == 3:
            kw["dimension_names"] = dims
            if layout.shard is not None:
                kw["shards"] = level_block(layout, k)
        else:
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        zarr.create_array(**kw)
    sink = open_sink(root)
    arrays = {lv.path for lv in layout.levels}
    for key, buf in sorted(made.items()):
        if key.split("/", 1)[0] not in arrays:
            continue  # not the implicit groups zarr-python made around them
        if missing_only and sink.exists(key):
            continue
        sink.put(key, buf.to_bytes())
        crash_point("store-level-created")


# ------------------------------------------------------------------ reading


class LevelFiles:
    """Fast region reads of one array written in curated's layout (v3 sharded/unsharded, v2)."""

    def __init__(self, path: str | Path, sink: LocalSink | S3Sink | None = None) -> None:
        """``path``: the array's folder (or URL); or, with ``sink``, its key in that store."""
        self.sink = sink if sink is not None else open_sink(path)
        self._base = str(path).strip("/") + "/" if sink is not None else ""
        self.path = path if sink is not None else self.sink.url
        meta_v3 = self.sink.size(self._base + "zarr.json") is not None
        if meta_v3:
            meta = json.loads(self.sink.get(self._base + "zarr.json"))
            self.zarr_format = 3
            self.shape = tuple(meta["shape"])
            self.dtype = np.dtype(meta["data_type"])
            self.fill = meta.get("fill_value", 0) or 0
            grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
            codecs = meta["codecs"]
            sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
            self._prefix = (
                "c" + sep
                if meta.get("chunk_key_encoding", {}).get("name", "default") == "default"
                else ""
            )
            self._sep = sep
            if codecs[0]["name"] == "sharding_indexed":
                cfg = codecs[0]["configuration"]
                self.shard: tuple[int, ...] | None = grid
                self.chunks = tuple(cfg["chunk_shape"])
                inner = cfg["codecs"]
                if cfg.get("index_location", "end") != "end":
                    msg = "shard index at the start is not supported"
                    raise ConversionError(msg, path=self.path)
            else:
                self.shard = None
                self.chunks = grid
                inner = codecs
            endian = next(
                (
                    c.get("configuration", {}).get("endian", "little")
                    for c in inner
                    if c["name"] == "bytes"
                ),
                "little",
            )
            self.dtype = self.dtype.newbyteorder("<" if endian == "little" else ">")
            comp = [c for c in inner if c["name"] not in ("bytes", "crc32c")]
            self.codec = (
                make_codec({"id": comp[0]["name"], **comp[0].get("configuration", {})})
                if comp
                else None
            )
        else:
            meta = json.loads(self.sink.get(self._base + ".zarray"))
            self.zarr_format = 2
            self.shape = tuple(meta["shape"])
            self.dtype = np.dtype(meta["dtype"])
            self.fill = meta.get("fill_value", 0) or 0
            self.chunks = tuple(meta["chunks"])
            self.shard = None
            self._prefix = ""
            self._sep = meta.get("dimension_separator", ".")
            self.codec = make_codec(meta["compressor"]) if meta.get("compressor") else None
        self._lock = threading.Lock()
        self._remote: dict[str, bytes] = {}

    def _key(self, idx: tuple[int, ...]) -> str:
        return self._base + self._prefix + self._sep.join(str(i) for i in idx)

    def _decode(self, data: bytes) -> np.ndarray:
        raw = self.codec.decode(data) if self.codec is not None else data
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunks)

    def _chunks_in_shard(
        self, shard_idx: tuple[int, ...], wanted: list[tuple[int, ...]]
    ) -> dict[tuple[int, ...], np.ndarray | None]:
        assert self.shard is not None
        cps = tuple(s // c for s, c in zip(self.shard, self.chunks, strict=True))
        key = self._key(shard_idx)
        out: dict[tuple[int, ...], np.ndarray | None] = dict.fromkeys(wanted)
        read = self._object_reader(key)
        if read is None:
            return out
        size, get_range = read
        nidx = int(np.prod(cps)) * 16
        raw = get_range(size - nidx - 4, nidx)
        index = np.frombuffer(raw, dtype="<u8").reshape(*cps, 2)
        for c in wanted:
            local = tuple(ci - si * n for ci, si, n in zip(c, shard_idx, cps, strict=True))
            off, n = index[local]
            if off == EMPTY:
                continue
            out[c] = self._decode(get_range(int(off), int(n)))
        return out

    def _object_reader(self, key: str) -> tuple[int, Any] | None:
        """``(size, get_range)`` of one shard, or ``None`` when it is absent.

        Locally every range is one ``pread``. From an object store each request costs a
        round trip, and building a pyramid level reads every parent shard many times (once
        per slab), so the last shards fetched are kept whole (at most ``REMOTE_SHARDS``).
        """
        if isinstance(self.sink, LocalSink):
            size = self.sink.size(key)
            if size is None:
                return None
            return size, lambda start, length: self.sink.get_range(key, start, length)
        with self._lock:
            data = self._remote.get(key)
        if data is None:
            try:
                data = self.sink.get(key)
            except FileNotFoundError:
                return None
            with self._lock:
                self._remote[key] = data
                while len(self._remote) > REMOTE_SHARDS:
                    self._remote.pop(next(iter(self._remote)))
        view = memoryview(data)
        return len(data), lambda start, length: view[start : start + length]

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Read ``region`` into a new native-endian array (missing chunks = fill value)."""
        shape = tuple(s.stop - s.start for s in region)
        out = np.full(shape, self.fill, dtype=self.dtype.newbyteorder("="))
        lo = [s.start // c for s, c in zip(region, self.chunks, strict=True)]
        hi = [-(-s.stop // c) for s, c in zip(region, self.chunks, strict=True)]
        wanted = [
            tuple(lo[i] + v for i, v in enumerate(idx))
            for idx in np.ndindex(*[h - b for h, b in zip(hi, lo, strict=True)])
        ]
        if self.shard is not None:
            cps = tuple(s // c for s, c in zip(self.shard, self.chunks, strict=True))
            groups: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
            for c in wanted:
                groups.setdefault(tuple(ci // n for ci, n in zip(c, cps, strict=True)), []).append(
                    c
                )
            decoded: dict[tuple[int, ...], np.ndarray | None] = {}
            for sidx, cs in groups.items():
                decoded.update(self._chunks_in_shard(sidx, cs))
        else:
            decoded = {}
            for c in wanted:
                try:
                    decoded[c] = self._decode(self.sink.get(self._key(c)))
                except FileNotFoundError:
                    decoded[c] = None
        for c, arr in decoded.items():
            if arr is None:
                continue
            src = []
            dst = []
            for ci, cs, s in zip(c, self.chunks, region, strict=True):
                a = max(s.start, ci * cs)
                b = min(s.stop, (ci + 1) * cs)
                src.append(slice(a - ci * cs, b - ci * cs))
                dst.append(slice(a - s.start, b - s.start))
            out[tuple(dst)] = arr[tuple(src)]
        return out


# ------------------------------------------------------------------ writing


@dataclass(frozen=True)
class WriteJob:
    """What every shard task of one store needs (picklable)."""

    root: str
    layout: StoreLayout
    source: Any = None
    """Level 0's source (a :class:`curated.images.sources.TiffSource` or ``ArraySource``), or ``None`` when level 0 exists."""
    collect_values: bool = False
    """Labels: record the label values each level-1 task (or level-0 scan) saw, for ``image-label`` colours."""

    @property
    def sink(self) -> LocalSink | S3Sink:
        """Where the store's bytes go (a local folder or an ``s3://`` object store)."""
        return open_sink(self.root)


def shard_key(idx: tuple[int, ...]) -> str:
    return ".".join(str(i) for i in idx)


def marker_key(level: int, idx: tuple[int, ...]) -> str:
    return f"{JOURNAL}/done/{level}/{shard_key(idx)}"


def pending_shards(job: WriteJob, level: int) -> Iterator[tuple[int, ...]]:
    """Shards of ``level`` without a completion marker, in C order, one at a time.

    A generator: a level of millions of shards (or a source claiming a vast shape)
    is never listed whole in memory.
    """
    lv = job.layout.levels[level]
    done = set(job.sink.listdir(f"{JOURNAL}/done/{level}"))
    for idx in iter_block_grid(lv.shape, level_block(job.layout, level)):
        if shard_key(idx) not in done:
            yield idx


def _units(region: tuple[slice, ...], unit: tuple[int, ...]) -> list[tuple[slice, ...]]:
    shape = tuple(s.stop - s.start for s in region)
    out = []
    for idx in block_grid(shape, unit):
        sub = block_region(idx, unit, shape)
        out.append(
            tuple(
                slice(r.start + s.start, r.start + s.stop) for r, s in zip(region, sub, strict=True)
            )
        )
    return out


def _unit_shape(layout: StoreLayout, block: tuple[int, ...], level: int) -> tuple[int, ...]:
    """Slab that one step of a task produces: one chunk deep on the first chunked axis (level 0),
    one chunk deep on the first two chunked axes (pyramid levels: their parent region is 8x bigger)."""
    unit = list(block)
    space = [i for i, a in enumerate(layout.axes) if a.type == "space"]
    for i, a in enumerate(layout.axes):
        if a.type != "space":
            unit[i] = 1
    n_narrow = 1 if level == 0 else 2
    for i in space[:n_narrow]:
        unit[i] = layout.chunks[i]
    return tuple(unit)


def _pipeline(fn: Any, items: list[Any], workers: int) -> Any:
    """Yield ``fn(item)`` in order, computing up to ``workers`` items at once (bounded memory)."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Any] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers + 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _chunk_range(region: tuple[slice, ...], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Global indices of the chunks that cover ``region`` (chunk-aligned start), in C order."""
    lo = [s.start // c for s, c in zip(region, chunks, strict=True)]
    n = [-(-(s.stop - s.start) // c) for s, c in zip(region, chunks, strict=True)]
    return [tuple(a + int(i) for a, i in zip(lo, idx, strict=True)) for idx in np.ndindex(*n)]


class _ChunkCoder:
    """Turns one chunk of ``level`` into the bytes stored for it (``None``: all fill value, left out)."""

    def __init__(self, layout: StoreLayout, level: int) -> None:
        self.codec = make_codec(layout.level_codec(level))
        self.chunks = layout.chunks
        self.dtype = np.dtype(layout.dtype)
        self.le = self.dtype.newbyteorder("<")
        self.fill = layout.fill_value

    def encode(self, chunk: np.ndarray) -> bytes | None:
        if chunk.shape != self.chunks:  # the image's edge: padded with the fill value
            full = np.full(self.chunks, self.fill, dtype=self.le)
            full[tuple(slice(0, n) for n in chunk.shape)] = chunk
        else:  # the one copy a chunk needs: out of its slab, into contiguous little-endian
            full = np.ascontiguousarray(chunk, dtype=self.le)
        # an all-zero chunk is found without a temporary array (-0.0 and NaN agree with ==)
        if (not full.any()) if self.fill == 0 else bool(np.all(full == self.fill)):
            return None
        return self.codec.encode(full)

    def encode_all(
        self, data: np.ndarray, origin: tuple[int, ...]
    ) -> list[tuple[tuple[int, ...], bytes | None]]:
        """Every chunk of ``data`` (a chunk-aligned block starting at voxel ``origin``), in C order."""
        out = []
        for cidx in block_grid(data.shape, self.chunks):
            gidx = tuple(o // c + i for o, c, i in zip(origin, self.chunks, cidx, strict=True))
            out.append((gidx, self.encode(data[block_region(cidx, self.chunks, data.shape)])))
        return out


class _ShardFile:
    """One sharded object being written: encoded chunks in arrival order, then the index
    (offset/length pairs, ``EMPTY`` for chunks left out) and its crc32c, hashed as it is written;
    staged in a local temporary file and published in one piece (a rename, or one upload).
    Also the format of the sub-pyramid parts a level-0 task leaves in the journal."""

    def __init__(
        self,
        sink: LocalSink | S3Sink,
        key: str,
        origin: tuple[int, ...],
        cps: tuple[int, ...],
        *,
        journal: bool = False,
    ):
        self.sink, self.key = sink, key
        self.origin = origin
        """Global chunk index of the file's first chunk."""
        self.index = np.full((*cps, 2), EMPTY, dtype="<u8")
        self._staged = _stage(sink, key)
        self.fh: IO[bytes] | None = self._staged.__enter__()  # left by publish() / discard()
        self.journal = journal
        """A working file of the progress journal (a part): not hashed, published there."""
        self.hash = None if journal else hashlib.sha256()
        self.offset = 0
        self.count = 0

    def _place(self, gidx: tuple[int, ...], length: int) -> None:
        """Record the next ``length`` bytes of the file as chunk ``gidx`` in the index."""
        local = tuple(g - o for g, o in zip(gidx, self.origin, strict=True))
        self.index[local] = (self.offset, length)
        self.offset += length
        self.count += 1

    def add(self, gidx: tuple[int, ...], payload: bytes) -> None:
        assert self.fh is not None
        self.fh.write(payload)
        if self.hash is not None:
            self.hash.update(payload)
        self._place(gidx, len(payload))

    def add_all(self, items: list[tuple[tuple[int, ...], Any]]) -> None:
        """Add many encoded chunks (already in memory): the file writes run in this thread
        while another hashes the same bytes, both outside the GIL, so gathering a shard from
        its parts costs the slower of the two instead of their sum."""
        if self.hash is None or len(items) < 2:
            for gidx, payload in items:
                self.add(gidx, payload)
            return
        assert self.fh is not None
        for gidx, payload in items:
            self._place(gidx, len(payload))
        from concurrent.futures import ThreadPoolExecutor

        digest = self.hash
        with ThreadPoolExecutor(1) as pool:
            hashed = pool.submit(lambda: [digest.update(p) for _, p in items])
            try:
                for _, payload in items:
                    self.fh.write(payload)
            finally:
                hashed.result()

    def publish(self, *, keep_empty: bool = False) -> tuple[int, str] | None:
        """Finish and publish under its key; ``(size, sha256)``, or ``None`` when no chunk was
        stored (then no object is left, unless ``keep_empty``)."""
        import google_crc32c

        assert self.fh is not None
        if not self.count and not keep_empty:
            self.discard()
            _remove(self.sink, self.key)
            return None
        raw = self.index.tobytes()
        crc = np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()
        for piece in (raw, crc):
            self.fh.write(piece)
            if self.hash is not None:
                self.hash.update(piece)
        self.fh = None
        _publish(self._staged)
        return self.offset + len(raw) + len(crc), self.hash.hexdigest() if self.hash else ""

    def discard(self) -> None:
        """Drop the staged bytes unpublished (nothing to do once published)."""
        if self.fh is not None:
            self.fh = None
            _unstage(self._staged)


class _ShardSink:
    """Where the encoded chunks of one shard task go, in C order: one shard object (v3 sharded) or
    one object per chunk (v2 and unsharded v3). Records size and sha256 of every object for the
    store digest."""

    def __init__(self, job: WriteJob, level: int, idx: tuple[int, ...]) -> None:
        layout = job.layout
        self.sink = job.sink
        self.rel = layout.levels[level].path
        self.zarr_format = layout.zarr_format
        self.files: dict[str, list[Any]] = {}
        self.count = 0
        self.stored = 0
        self.shard: _ShardFile | None = None
        if layout.shard is not None:
            cps = tuple(
                b // c for b, c in zip(level_block(layout, level), layout.chunks, strict=True)
            )
            self.shard = _ShardFile(
                self.sink,
                _shard_name(self.rel, idx),
                tuple(i * n for i, n in zip(idx, cps, strict=True)),
                cps,
            )
            self.idx = idx

    def add(self, gidx: tuple[int, ...], payload: bytes | None) -> None:
        if payload is None:
            # left out; one file per chunk: remove a stale one from an earlier run
            if self.shard is None:
                _remove(self.sink, _chunk_key(self.rel, gidx, self.zarr_format))
            return
        if self.shard is not None:
            self.shard.add(gidx, payload)
        else:
            rel = _chunk_key(self.rel, gidx, self.zarr_format)
            _write_chunk(self.sink, rel, payload)
            self.files[rel] = [len(payload), hashlib.sha256(payload).hexdigest()]
        self.count += 1
        self.stored += len(payload)

    def add_all(self, items: list[tuple[tuple[int, ...], Any]]) -> None:
        """Every chunk of the shard at once (C order), e.g. gathered from the journal's parts:
        a shard object's bytes are written and hashed side by side (:meth:`_ShardFile.add_all`)."""
        if self.shard is None:  # one object per chunk: each put gets bytes of its own
            for gidx, payload in items:
                self.add(gidx, None if payload is None else bytes(payload))
            return
        kept = [(g, p) for g, p in items if p is not None]
        self.shard.add_all(kept)
        self.count += len(kept)
        self.stored += sum(len(p) for _, p in kept)

    def publish(self) -> None:
        if self.shard is None:
            return
        done = self.shard.publish()
        if done is not None:
            self.files[_shard_name(self.rel, self.idx)] = list(done)

    def discard(self) -> None:
        if self.shard is not None:
            self.shard.discard()


# ---------------------------------------------------------------- the sub-pyramid of level-0 tasks


def subpyramid_depth(layout: StoreLayout) -> int:
    """How many levels above level 0 each level-0 task also computes, from the data it holds.

    Level ``k`` qualifies when a level-0 shard maps onto whole level-``k`` chunks (its edge
    divisible by the cumulative factor, the quotient by the chunk) and the level-0 slabs
    start on even voxels; its chunks are then exactly those a level-``k`` task would compute
    by reading level ``k-1`` back (same windows, same edge padding, same chunk bytes).
    """
    if len(layout.levels) < 2:
        return 0
    block = level_block(layout, 0)
    f1 = step_factors(layout.levels, 1)
    if any(c % f or b % f for c, b, f in zip(layout.chunks, block, f1, strict=True)):
        return 0
    depth = 0
    for k in range(1, len(layout.levels)):
        cum = layout.levels[k].factors
        if any(b % f or (b // f) % c for b, f, c in zip(block, cum, layout.chunks, strict=True)):
            break
        depth = k
    return depth


def part_key(level: int, idx0: tuple[int, ...]) -> str:
    """The encoded level-``level`` chunks computed by level-0 task ``idx0`` (a journal object)."""
    return f"{JOURNAL}/parts/{level}/{shard_key(idx0)}"


def _piece_chunks(layout: StoreLayout, level: int) -> tuple[int, ...]:
    """Chunks per axis of the piece of level ``level`` that one level-0 shard covers."""
    cum = layout.levels[level].factors
    return tuple(
        b // f // c for b, f, c in zip(level_block(layout, 0), cum, layout.chunks, strict=True)
    )


class _SubPyramid:
    """Levels ``1..depth`` over one level-0 shard, built from its slabs as they pass."""

    def __init__(self, job: WriteJob, idx0: tuple[int, ...], depth: int) -> None:
        layout = job.layout
        self.job, self.idx0, self.depth = job, idx0, depth
        self.reducer = downsample.REDUCERS[layout.method]
        self.f1 = step_factors(layout.levels, 1)
        self.origin0 = tuple(
            s.start for s in block_region(idx0, level_block(layout, 0), layout.levels[0].shape)
        )
        region1 = self._region(1)
        self.level1 = np.empty(
            tuple(s.stop - s.start for s in region1), dtype=np.dtype(layout.dtype)
        )
        self.seen = False
        """Whether a slab of data was placed (not only fill slabs)."""
        self.fills: list[tuple[slice, ...]] = []
        """Where fill slabs go, filled only when data were seen too."""

    def _region(self, k: int) -> tuple[slice, ...]:
        cum = self.job.layout.levels[k].factors
        r0 = block_region(
            self.idx0, level_block(self.job.layout, 0), self.job.layout.levels[0].shape
        )
        return tuple(slice(s.start // f, -(-s.stop // f)) for s, f in zip(r0, cum, strict=True))

    def reduce(self, data: np.ndarray) -> np.ndarray:
        """Level 1 of one level-0 slab (thread-safe)."""
        return self.reducer(data, self.f1)

    def fill_piece(self, shape: tuple[int, ...]) -> np.ndarray:
        """Level 1 of a slab of ``shape`` holding the fill value alone (the reduction of a
        constant is that constant), as a read-only broadcast view."""
        fill = np.asarray(self.job.layout.fill_value, dtype=self.level1.dtype)
        return np.broadcast_to(fill, tuple(-(-n // f) for n, f in zip(shape, self.f1, strict=True)))

    def place(self, unit: tuple[slice, ...], reduced: np.ndarray) -> None:
        at = tuple((u.start - o) // f for u, o, f in zip(unit, self.origin0, self.f1, strict=True))
        where = tuple(slice(a, a + n) for a, n in zip(at, reduced.shape, strict=True))
        if reduced.size and not any(reduced.strides):  # a fill slab's (fill_piece)
            self.fills.append(where)
            return
        self.seen = True
        self.level1[where] = reduced

    def write_parts(self) -> None:
        """Encode every level's piece into its part file (published before the task's marker).

        A shard whose slabs were all fill (:meth:`fill_piece`) leaves empty parts, as
        encoding its pieces would (every chunk the fill value, left out)."""
        layout = self.job.layout
        if self.seen:
            fill = layout.fill_value
            for where in self.fills:
                self.level1[where] = fill
        data = self.level1
        for k in range(1, self.depth + 1):
            if k > 1 and self.seen:
                data = self.reducer(data, step_factors(layout.levels, k))
            region = self._region(k)
            cps = _piece_chunks(layout, k)
            coder = _ChunkCoder(layout, k)
            part = _ShardFile(
                self.job.sink,
                part_key(k, self.idx0),
                tuple(i * n for i, n in zip(self.idx0, cps, strict=True)),
                cps,
                journal=True,  # a working object: the shard that gathers it is hashed
            )
            try:
                encoded = (
                    coder.encode_all(data, tuple(s.start for s in region)) if self.seen else []
                )
                for gidx, payload in encoded:
                    if payload is not None:
                        part.add(gidx, payload)
                part.publish(keep_empty=True)
            except BaseException:
                part.discard()
                raise


class _Parts:
    """Reads back the parts that level-0 tasks left for one shard of level ``level``.

    Each part is read whole, once (a part is at most one compressed level-0 shard's share of
    the level), locally as from an object store.
    """

    def __init__(self, job: WriteJob, level: int, region: tuple[slice, ...]) -> None:
        layout = job.layout
        self.job, self.level = job, level
        self.sink = job.sink
        self.cps = _piece_chunks(layout, level)
        piece = tuple(n * c for n, c in zip(self.cps, layout.chunks, strict=True))
        lo = [s.start // p for s, p in zip(region, piece, strict=True)]
        hi = [-(-s.stop // p) for s, p in zip(region, piece, strict=True)]
        self.children = [
            tuple(a + int(i) for a, i in zip(lo, d, strict=True))
            for d in np.ndindex(*[b - a for a, b in zip(lo, hi, strict=True)])
        ]
        self.keys = {c: part_key(level, c) for c in self.children}
        self._open: dict[tuple[int, ...], tuple[Any, np.ndarray]] = {}

    def complete(self) -> bool:
        return bool(self.children) and all(self.sink.exists(k) for k in self.keys.values())

    def payload(self, gidx: tuple[int, ...]) -> memoryview | None:
        child = tuple(g // n for g, n in zip(gidx, self.cps, strict=True))
        if child not in self._open:
            self._open[child] = self._load(child)
        read, index = self._open[child]
        off, n = index[tuple(g - c * k for g, c, k in zip(gidx, child, self.cps, strict=True))]
        if off == EMPTY:
            return None
        data = read(int(off), int(n))
        if len(data) != int(n):
            self._damaged(child)
        return data

    def _load(self, child: tuple[int, ...]) -> tuple[Any, np.ndarray]:
        """``(read(start, length), index)`` of one part, its index checked against its crc32c.

        The part is read whole, once: a shard's parts together hold at most one compressed
        shard, and its chunks are then handed on as views, without a copy each."""
        import google_crc32c

        key = self.keys[child]
        whole = memoryview(self.sink.get(key))
        size = len(whole)

        def read(start: int, length: int) -> memoryview:
            return whole[start : start + length]

        nidx = int(np.prod(self.cps)) * 16
        tail = bytes(read(size - nidx - 4, nidx + 4)) if size >= nidx + 4 else b""
        if len(tail) != nidx + 4 or np.frombuffer(tail[nidx:], "<u4")[0] != google_crc32c.value(
            tail[:nidx]
        ):
            self._damaged(child)
        return read, np.frombuffer(tail[:nidx], dtype="<u8").reshape(*self.cps, 2)

    def _damaged(self, child: tuple[int, ...]) -> None:
        folder = join(self.job.root, JOURNAL, "parts")
        msg = (
            "a sub-pyramid part in the progress journal is truncated or damaged; remove "
            f"{folder} and re-run the same command (the level is then computed from the level below)"
        )
        raise ConversionError(msg, path=join(self.job.root, self.keys[child]))

    def close(self) -> None:
        self._open.clear()

    def drop(self) -> None:
        """Remove the parts once the shard that used them is marked done."""
        for key in self.keys.values():
            _remove(self.sink, key)


# ---------------------------------------------------------------- one shard task


@dataclass
class _TaskFigures:
    """What one shard task saw besides its chunks: bytes, the display-window sample, label values."""

    bytes: int = 0
    samples: list[np.ndarray] = field(default_factory=list)
    values: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_values(self, found: np.ndarray) -> None:
        with self.lock:
            self.values.update(int(v) for v in found)


def write_shard(
    job: WriteJob, level: int, idx: tuple[int, ...], inner_workers: int = 1
) -> dict[str, Any]:
    """Write shard ``idx`` of ``level`` completely, then mark it done. Returns figures for progress.

    A level-0 task also computes the levels above it that fit whole chunks (see
    :func:`subpyramid_depth`) and leaves their encoded chunks in the journal; the task of
    such a level then only gathers those bytes. Other levels are read back from the written
    level below. With ``inner_workers`` > 1, slabs of the shard are produced and encoded in
    that many threads (used when a level has fewer shards than workers); one thread writes.
    """
    layout = job.layout
    lv = layout.levels[level]
    region = block_region(idx, level_block(layout, level), lv.shape)
    if level == 0 and job.source is None:
        msg = "level 0 has no source to be written from"
        raise ConversionError(msg, path=job.root)
    parts = _Parts(job, level, region) if 0 < level <= subpyramid_depth(layout) else None
    if parts is not None and not parts.complete():
        parts = None  # e.g. a journal from an earlier version: compute from the level below
    figures = _TaskFigures()
    sink = _ShardSink(job, level, idx)
    try:
        if parts is not None:
            sink.add_all([(g, parts.payload(g)) for g in _chunk_range(region, layout.chunks)])
            figures.bytes = int(np.prod([s.stop - s.start for s in region]))
            figures.bytes *= np.dtype(layout.dtype).itemsize
        else:
            _encode_region(job, level, idx, region, sink, figures, inner_workers)
        sink.publish()
    finally:
        sink.discard()
        if parts is not None:
            parts.close()
    crash_point("shard-written")
    _save_task_figures(job, level, idx, figures)
    _write_marker(
        job.sink,
        marker_key(level, idx),
        {"bytes": figures.bytes, "stored": sink.stored, "chunks": sink.count, "files": sink.files},
    )
    if parts is not None:
        parts.drop()
    return {"level": level, "shard": idx, "bytes": figures.bytes, "stored": sink.stored}


def _encode_region(
    job: WriteJob,
    level: int,
    idx: tuple[int, ...],
    region: tuple[slice, ...],
    sink: _ShardSink,
    figures: _TaskFigures,
    inner_workers: int,
) -> None:
    """Produce the shard's data slab by slab (source, or the level below reduced), encode, write."""
    layout = job.layout
    coder = _ChunkCoder(layout, level)
    produce = _producer(job, level, figures)
    depth = subpyramid_depth(layout) if level == 0 else 0
    pyramid = _SubPyramid(job, idx, depth) if depth else None
    sample = _sampler(layout) if level == 0 and layout.method == "mean" else None
    collect = job.collect_values and level == 0 and (len(layout.levels) == 1 or depth > 0)

    skip = _absent_units(job, coder) if level == 0 else None

    def process(unit: tuple[slice, ...]) -> tuple[Any, ...]:
        """Produce and encode one slab (pure: safe to run in several threads)."""
        if skip is not None and skip(unit):
            return _fill_slab(unit, coder, sample, pyramid, collect, figures)
        data = produce(unit)
        if data.dtype != coder.dtype:
            data = data.astype(coder.dtype)
        if collect:
            figures.add_values(np.unique(data))
        return (
            unit,
            data.nbytes,
            sample(unit, data) if sample is not None else None,
            pyramid.reduce(data) if pyramid is not None else None,
            coder.encode_all(data, tuple(u.start for u in unit)),
        )

    units = _units(region, _unit_shape(layout, level_block(layout, level), level))
    for unit, nbytes, part_sample, reduced, encoded in _pipeline(process, units, inner_workers):
        figures.bytes += nbytes
        if part_sample is not None:
            figures.samples.append(part_sample)
        if pyramid is not None:
            pyramid.place(unit, reduced)  # a fill slab's: a 0-d array, broadcast
        for gidx, payload in encoded:
            sink.add(gidx, payload)
    if pyramid is not None:
        pyramid.write_parts()


def _absent_units(job: WriteJob, coder: _ChunkCoder) -> Any:
    """``unit → bool``: whether a level-0 slab lies where the source stores no chunk, and its
    fill value is the store's (so the slab is left out, as the chunks it would encode are);
    ``None`` when the source cannot tell (only sparse chunked arrays can, see
    :meth:`curated.images.stored.StoredArraySource.absent`)."""
    absent = getattr(job.source, "absent", None)
    count = getattr(job.source, "stored", None)
    if absent is None or count is None or count.stored >= count.expected:
        return None
    try:
        fill = np.asarray(count.fill, dtype=coder.dtype)
    except (TypeError, ValueError, OverflowError):
        return None
    if not bool(fill == coder.fill) or bool(fill != fill):  # NaN fills: read as they are
        return None
    return absent


def _fill_slab(
    unit: tuple[slice, ...],
    coder: _ChunkCoder,
    sample: Any,
    pyramid: _SubPyramid | None,
    collect: bool,
    figures: _TaskFigures,
) -> tuple[Any, ...]:
    """What :func:`_encode_region`'s ``process`` returns for a slab of the fill value alone,
    without reading or building it: no chunk stored, the display sample and the sub-pyramid
    taken from a broadcast view (the same values a read would give)."""
    shape = tuple(u.stop - u.start for u in unit)
    view = np.broadcast_to(np.asarray(coder.fill, dtype=coder.dtype), shape)
    if collect:
        figures.add_values(np.unique(view[(slice(0, 1),) * len(shape)]))
    return (
        unit,
        int(np.prod(shape)) * coder.dtype.itemsize,
        sample(unit, view) if sample is not None else None,
        pyramid.fill_piece(shape) if pyramid is not None else None,
        [(gidx, None) for gidx in _chunk_range(unit, coder.chunks)],
    )


def _producer(job: WriteJob, level: int, figures: _TaskFigures) -> Any:
    """``region → array`` of ``level``: the source (level 0) or the written level below, reduced."""
    if level == 0:
        return job.source.read
    layout = job.layout
    # opened fresh per task: a store may have been rewritten since the last one
    parent = LevelFiles(join(job.root, layout.levels[level - 1].path))
    pshape = layout.levels[level - 1].shape
    f = step_factors(layout.levels, level)
    reducer = downsample.REDUCERS[layout.method]
    collect = job.collect_values and level == 1

    def produce(r: tuple[slice, ...]) -> np.ndarray:
        pr = tuple(
            slice(s.start * k, min(s.stop * k, n)) for s, k, n in zip(r, f, pshape, strict=True)
        )
        data = parent.read(pr)
        if collect:
            figures.add_values(np.unique(data))
        return reducer(data, f)

    return produce


def _sampler(layout: StoreLayout) -> Any:
    """``(unit, data) → strided sample`` of level 0 for the display window (bounded overall)."""
    whole = _global_sample_step(layout.levels[0].shape, layout)
    step = tuple(
        max(1, b // SAMPLES_PER_SHARD_AXIS, whole) if a.type == "space" else 1
        for b, a in zip(level_block(layout, 0), layout.axes, strict=True)
    )

    def sample(unit: tuple[slice, ...], data: np.ndarray) -> np.ndarray:
        picked = data[
            tuple(slice((-u.start) % s, None, s) for u, s in zip(unit, step, strict=True))
        ]
        return picked.ravel().copy()

    return sample


def _save_task_figures(
    job: WriteJob, level: int, idx: tuple[int, ...], figures: _TaskFigures
) -> None:
    if figures.samples:
        _save_npy(
            job.sink, f"{JOURNAL}/samples/{shard_key(idx)}.npy", np.concatenate(figures.samples)
        )
    if figures.values:
        values = sorted(figures.values)
        # uint64 label ids past 2**63 (CREMI's "no label" is 2**64 - 1) fit no int64
        wide = values[-1] > np.iinfo(np.int64).max
        _save_npy(
            job.sink,
            f"{JOURNAL}/values/{level}-{shard_key(idx)}.npy",
            np.array(values, dtype=np.uint64 if wide else np.int64),
        )


def _global_sample_step(shape: tuple[int, ...], layout: StoreLayout) -> int:
    """The step along each space axis that keeps the image's sample within :data:`SAMPLE_BUDGET`."""
    space = [n for n, a in zip(shape, layout.axes, strict=True) if a.type == "space"]
    voxels = float(np.prod(space)) if space else 1.0
    if voxels <= SAMPLE_BUDGET or not space:
        return 1
    return int(np.ceil((voxels / SAMPLE_BUDGET) ** (1.0 / len(space))))


# ---------------------------------------------------------------- the only places that write objects
# Through the store's sink: locally a temporary file in the journal renamed into place, in an
# object store one PUT (a shard: one upload of its staged file). A kill never leaves half an object.


def _shard_name(array: str, idx: tuple[int, ...]) -> str:
    return f"{array}/c/" + "/".join(str(i) for i in idx)


def _chunk_key(array: str, gidx: tuple[int, ...], zarr_format: int) -> str:
    """One unsharded chunk's key: Zarr v3's default encoding puts ``c/`` before the indices
    (the arrays are created with it, ``create_store_levels``), v2's "/"-separated one does not.
    Without the ``c/`` an unsharded v3 store read as all fill value, in zarr-python and here."""
    return f"{array}/{'c/' if zarr_format == 3 else ''}" + "/".join(str(i) for i in gidx)


def _stage(sink: LocalSink | S3Sink, key: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A local temporary file to stream ``key``'s bytes into (entered by the caller)."""
    return sink.staging(key)


def _publish(staged: contextlib.AbstractContextManager[IO[bytes]]) -> None:
    """Publish a staged object under its key in one piece (a rename, or one upload)."""
    staged.__exit__(None, None, None)


class _Unpublished(Exception):
    """Thrown into a staged object to drop it without publishing it."""


def _unstage(staged: contextlib.AbstractContextManager[IO[bytes]]) -> None:
    """Drop a staged object: its temporary file is removed, nothing is published."""
    staged.__exit__(_Unpublished, _Unpublished(), None)


def _write_chunk(sink: LocalSink | S3Sink, key: str, payload: bytes) -> None:
    """One unsharded chunk, written whole (temporary file then rename, or one PUT)."""
    sink.put(key, payload)


def _remove(sink: LocalSink | S3Sink, key: str) -> None:
    sink.delete(key)


def _save_npy(sink: LocalSink | S3Sink, key: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    sink.put(key, buf.getvalue())


def _write_marker(sink: LocalSink | S3Sink, key: str, body: dict[str, Any]) -> None:
    """The completion marker of one shard, written last as one atomic object (rename locally,
    one PUT in an object store): a kill never leaves half a marker, and a shard without one
    is written again."""
    sink.put(key, json.dumps(body).encode())


def _journal_objects(job: WriteJob, folder: str) -> list[bytes]:
    """The objects in one folder of the journal, in name order (fetched together)."""
    sink = job.sink
    return sink.get_many([f"{JOURNAL}/{folder}/{n}" for n in sink.listdir(f"{JOURNAL}/{folder}")])


def collected_sample(job: WriteJob) -> np.ndarray:
    parts = [np.load(io.BytesIO(b)) for b in _journal_objects(job, "samples")]
    return np.concatenate(parts) if parts else np.zeros(0)


def collected_values(job: WriteJob) -> list[int]:
    vals: set[int] = set()
    for b in _journal_objects(job, "values"):
        vals.update(int(v) for v in np.load(io.BytesIO(b)))
    return sorted(vals)


def _markers(job: WriteJob) -> list[dict[str, Any]]:
    """Every completion marker of the store's journal."""
    out = []
    for level in job.sink.listdir(f"{JOURNAL}/done"):
        out.extend(json.loads(b) for b in _journal_objects(job, f"done/{level}"))
    return out


def level_stats(job: WriteJob) -> dict[str, int]:
    """Bytes and stored bytes over all finished shards, from the journal markers."""
    total = {"bytes": 0, "stored": 0, "chunks": 0}
    for d in _markers(job):
        for k in total:
            total[k] += int(d.get(k, 0))
    return total


def written_files(job: WriteJob) -> dict[str, tuple[int, str]]:
    """Size and sha256 of every data file the shard tasks wrote (from the journal markers)."""
    out: dict[str, tuple[int, str]] = {}
    for d in _markers(job):
        for rel, (size, hexd) in d.get("files", {}).items():
            out[rel] = (int(size), hexd)
    return out


def check_written(job: WriteJob, known: dict[str, tuple[int, str]]) -> None:
    """Before a store in an object store is marked finished: refuse it unless its listing
    shows every data object this run (and the runs it resumes) wrote, at the size written.

    A store that answered a PUT ``200 OK`` and kept nothing, or fewer bytes (its checksum
    ignored), would otherwise be finished with a hole that reads as fill values, and a
    re-run would find every shard marked done. The markers of the shards whose objects are
    not there as written are removed, so that the re-run writes them again, and so are the
    markers of every level above the lowest such shard (read from the hole, they are written
    again from the shard). A folder is not checked: its files are renamed into place, whole
    or not at all.
    """
    if isinstance(job.sink, LocalSink):
        return
    listed = {rel: size for rel, size in job.sink.files() if rel in known}
    bad = unkept(listed, known)
    if not bad:
        return
    lowest: int | None = None  # the lowest level with a hole: every level above was built from it
    for level in sorted(job.sink.listdir(f"{JOURNAL}/done"), key=int):
        folder = f"{JOURNAL}/done/{level}"
        names = job.sink.listdir(folder)
        above = lowest is not None
        for name, blob in zip(names, _journal_objects(job, f"done/{level}"), strict=True):
            if above or set(json.loads(blob).get("files", {})) & set(bad):
                job.sink.delete(f"{folder}/{name}")
                lowest = int(level) if lowest is None else lowest
    raise ConversionError(unkept_message(bad, listed), path=str(job.root))


def check_level(job: WriteJob, level: int) -> None:
    """:func:`check_written` for the shards of one level just written, listing only that
    level: the next level is read from it, and a shard the object store dropped would be
    read as fill values (one kept short, as a shard that does not decode)."""
    if isinstance(job.sink, LocalSink):
        return
    known: dict[str, tuple[int, str]] = {}
    for blob in _journal_objects(job, f"done/{level}"):
        for rel, (size, hexd) in json.loads(blob).get("files", {}).items():
            known[rel] = (int(size), hexd)
    path = job.layout.levels[level].path
    listed = {
        f"{path}/{rel}": size
        for rel, size in open_sink(join(job.root, path)).files()
        if f"{path}/{rel}" in known
    }
    if unkept(listed, known):
        check_written(job, known)


def store_digest(root: str | Path, known: dict[str, tuple[int, str]]) -> tuple[str, int, int]:
    """The :func:`curated.provenance.digest.digest_tree` digest of ``root``, hashing only files not in ``known``.

    Data files were hashed by the tasks while they wrote them; only metadata files
    (and any file whose size no longer matches) are read here.
    """
    from curated.provenance.digest import TreeHasher

    hasher = TreeHasher()
    sink = open_sink(root)
    listed = iter(sink.files())
    shown: set[str] = set()  # the known objects the listing showed
    # an object store's unknown small objects are fetched together, a listing page at a time
    batch = 1 if isinstance(sink, LocalSink) else LIST_PAGE
    while page := list(itertools.islice(listed, batch)):
        fetched: dict[str, bytes] = {}
        if not isinstance(sink, LocalSink):
            small = [r for r, n in page if (known.get(r) or (None,))[0] != n and n <= SMALL_OBJECT]
            fetched = dict(zip(small, sink.get_many(small), strict=True))
        for rel, size in page:
            got = known.get(rel)
            if got is not None:
                shown.add(rel)
            if got is not None and got[0] == size:
                hexd = got[1]
            elif rel in fetched:
                hexd = hashlib.sha256(fetched.pop(rel)).hexdigest()
            else:
                hexd = sha256_of(sink, rel)
            hasher.add(rel, size, hexd)
    if len(shown) < len(known):
        _listing_lacks(root, sorted(set(known) - shown))
    td = hasher.result()
    return td.digest, td.bytes, td.files


def _listing_lacks(root: str | Path, missing: list[str]) -> None:
    """Refuse a digest over a listing that lacks objects this run wrote (a store whose LIST
    omits keys): the digest would describe a store that is not there."""
    msg = (
        f"the store's listing lacks {len(missing)} object(s) written to it (e.g. {missing[0]}); "
        "the object store answered an incomplete listing: re-run once it lists them"
    )
    raise ConversionError(msg, path=str(root))


def remove_journal(job: WriteJob) -> None:
    job.sink.delete_prefix(JOURNAL)


# ------------------------------------------------------------------ running


def run_levels(
    job: WriteJob,
    levels: range | list[int],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Any = None,
    total_bytes: int | None = None,
) -> int:
    """Write every pending shard of ``levels`` in order, one task per shard. Returns shards written.

    Locally the tasks run on a thread pool (every heavy step releases the GIL); with
    ``scheduler`` they are dask tasks on that dask.distributed cluster.
    """
    abort_after = int(os.environ.get(ABORT_ENV, "0") or 0)
    count = 0

    def done(info: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress.advance(info["bytes"], level=int(info["level"]))
        if abort_after and count >= abort_after:
            os._exit(75)

    client = _connect(scheduler) if scheduler else None
    if client is None:  # decoded pages spill beside a local output, not into TMPDIR
        local = isinstance(job.sink, LocalSink)
        SEGMENTS.spill_to(Path(job.root).resolve().parent if local else None)
    try:
        for level in levels:
            threads = workers or os.cpu_count() or 1
            if client is not None:
                threads = max(1, sum(client.nthreads().values()))
            pending = pending_shards(job, level)
            head = list(itertools.islice(pending, threads + 1))  # enough to size the tasks
            if not head:
                continue
            inner = max(1, threads // len(head))
            todo = itertools.chain(head, pending)
            if client is not None:
                _run_distributed(client, job, level, todo, inner, done)
            else:
                _run_local(job, level, todo, inner, threads, done)
            check_level(job, level)  # before the next level is built from it
    finally:
        if client is not None:
            client.close()
        from curated.images.sources import close_cached_files

        close_cached_files()
    return count


def _connect(scheduler: str) -> Any:
    from distributed import Client

    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except OSError as exc:
        msg = f"cannot reach the dask scheduler at {scheduler} ({exc})"
        raise ConversionError(msg) from exc


IN_FLIGHT_PER_THREAD = 4
"""Shard tasks submitted ahead per worker thread (the rest wait in the pending list)."""


def _run_local(
    job: WriteJob,
    level: int,
    todo: Iterable[tuple[int, ...]],
    inner: int,
    threads: int,
    done: Any,
) -> None:
    """The shards of one level on a thread pool; the first failure cancels the tasks not started.

    Even one worker runs in a pool thread: numcodecs' blosc compresses with its own thread
    pool (as many threads as cores) when called from the main thread, and single-threaded
    elsewhere, so ``workers`` is the number of cores the conversion uses.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max(1, threads)) as pool:  # threads start only as tasks come
        if threads <= 1:  # one after the other, as if in this thread
            for idx in todo:
                done(pool.submit(write_shard, job, level, idx, inner).result())
            return
        # a bounded window of tasks in flight: one future per shard of a level at once cost
        # memory by the image's size (millions of shards), not by the shard's
        window = IN_FLIGHT_PER_THREAD * threads
        running: set[Future[dict[str, Any]]] = set()

        def settle_one_or_more() -> None:
            nonlocal running
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                done(fut.result())

        try:
            for idx in todo:
                running.add(pool.submit(write_shard, job, level, idx, inner))
                if len(running) >= window:
                    settle_one_or_more()
            while running:
                settle_one_or_more()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise


def _run_distributed(
    client: Any, job: WriteJob, level: int, todo: Iterable[tuple[int, ...]], inner: int, done: Any
) -> None:
    """The shards of one level on a dask.distributed cluster, a bounded window at a time.

    As on threads (:func:`_run_local`): one future per shard of a terabyte level at once
    would hold millions of tasks in the client and the scheduler.
    """
    from distributed import as_completed

    threads = sum(client.nthreads().values()) or 1
    window = IN_FLIGHT_PER_THREAD * threads
    pending = iter(todo)
    live: set[Any] = set()
    completed = as_completed(loop=client.loop)

    def submit(idx: tuple[int, ...]) -> None:
        key = f"shard-{level}-{shard_key(idx)}-{uuid.uuid4().hex[:8]}"
        fut = client.submit(write_shard, job, level, idx, inner, key=key, pure=False)
        live.add(fut)
        completed.add(fut)

    try:
        for idx in itertools.islice(pending, window):
            submit(idx)
        for fut in completed:
            live.discard(fut)
            done(fut.result())
            nxt = next(pending, None)
            if nxt is not None:
                submit(nxt)
    finally:
        client.cancel(list(live))
