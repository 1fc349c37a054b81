"""Shard-aligned writing and reading of the arrays of one multiscale store.

One task writes one whole output shard (v3) or one shard-sized group of chunks
(v2), so no two writers ever touch the same file: the concurrent
read-modify-write data loss of partial shard writes cannot happen. A task
streams its shard in slabs, encodes every inner chunk as it goes, writes the
shard to a temporary file and renames it into place, then leaves a marker in
the store's progress journal (``.curated-progress/``). A re-run skips shards with
markers. Level ``k+1`` is built from the *written* level ``k``.

The files are the ones zarr-python reads: sharding codec with the index at the
end (offset/length ``uint64`` pairs + crc32c), inner chunks padded to full size,
chunks equal to the fill value left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import ConversionError
from curated.images import downsample
from curated.images.layout import StoreLayout, block_grid, block_region, level_block
from curated.images.objstore import LocalSink, S3Sink, open_sink, sha256_of

JOURNAL = ".curated-progress"
EMPTY = np.uint64(2**64 - 1)
ABORT_ENV = "CURATED_TEST_ABORT_AFTER_SHARDS"
"""Test hook: the process exits abruptly after this many shards (simulates a kill)."""

SAMPLES_PER_SHARD_AXIS = 32
SAMPLE_BUDGET = 1 << 22
"""Most level-0 voxels sampled over the whole image for the display window: small shards
must not make the progress journal an uncompressed copy of the image."""
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
    root: str | Path, layout: StoreLayout, *, names: tuple[str, ...] | None = None
) -> None:
    """Write the ``zarr.json``/``.zarray`` of every level (no data)."""
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
            "compressors": zarr_compressor(layout.codec, layout.zarr_format),
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
        if key.split("/", 1)[0] in arrays:  # not the implicit groups zarr-python made around them
            sink.put(key, buf.to_bytes())


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


def pending_shards(job: WriteJob, level: int) -> list[tuple[int, ...]]:
    """Shards of ``level`` without a completion marker."""
    lv = job.layout.levels[level]
    done = set(job.sink.listdir(f"{JOURNAL}/done/{level}"))
    return [
        idx
        for idx in block_grid(lv.shape, level_block(job.layout, level))
        if shard_key(idx) not in done
    ]


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


def write_shard(
    job: WriteJob, level: int, idx: tuple[int, ...], inner_workers: int = 1
) -> dict[str, Any]:
    """Write shard ``idx`` of ``level`` completely, then mark it done. Returns figures for progress.

    With ``inner_workers`` > 1, slabs of the shard are produced and encoded in that many
    threads (used when a level has fewer shards than workers); one thread still writes the file.
    """
    layout = job.layout
    lv = layout.levels[level]
    block = level_block(layout, level)
    region = block_region(idx, block, lv.shape)
    chunks = layout.chunks
    codec = make_codec(layout.codec)
    dtype = np.dtype(layout.dtype)
    fill = layout.fill_value
    root = job.root
    sink = job.sink
    info: dict[str, Any] = {"level": level, "shard": idx, "bytes": 0, "stored": 0}
    sample_parts: list[np.ndarray] = []
    values: set[int] = set()
    values_lock = threading.Lock()

    if level == 0:
        if job.source is None:
            msg = "level 0 has no source to be written from"
            raise ConversionError(msg, path=root)

        def produce(r: tuple[slice, ...]) -> np.ndarray:
            return job.source.read(r)

    else:
        # opened fresh per task: a store may have been rewritten since the last one
        parent = LevelFiles(layout.levels[level - 1].path, sink)
        pshape = layout.levels[level - 1].shape
        f = tuple(b // a for a, b in zip(layout.levels[level - 1].factors, lv.factors, strict=True))
        reducer = downsample.REDUCERS[layout.method]

        def produce(r: tuple[slice, ...]) -> np.ndarray:
            pr = tuple(
                slice(s.start * k, min(s.stop * k, n)) for s, k, n in zip(r, f, pshape, strict=True)
            )
            data = parent.read(pr)
            if job.collect_values and level == 1:
                found = np.unique(data)
                with values_lock:
                    values.update(int(v) for v in found)
            return reducer(data, f)

    whole = _global_sample_step(layout.levels[0].shape, layout)
    sample_step = tuple(
        max(1, b // SAMPLES_PER_SHARD_AXIS, whole) if a.type == "space" else 1
        for b, a in zip(block, layout.axes, strict=True)
    )

    def process(
        unit: tuple[slice, ...],
    ) -> tuple[
        tuple[slice, ...], int, np.ndarray | None, list[tuple[tuple[int, ...], bytes | None]]
    ]:
        """Produce and encode one slab (pure: safe to run in several threads)."""
        data = produce(unit)
        if data.dtype != dtype:
            data = data.astype(dtype)
        sample = None
        if level == 0 and layout.method == "mean":
            sample = (
                data[
                    tuple(
                        slice((-u.start) % s, None, s)
                        for u, s in zip(unit, sample_step, strict=True)
                    )
                ]
                .ravel()
                .copy()
            )
        if job.collect_values and level == 0 and len(layout.levels) == 1:
            found = np.unique(data)
            with values_lock:
                values.update(int(v) for v in found)
        encoded: list[tuple[tuple[int, ...], bytes | None]] = []
        for cidx in block_grid(data.shape, chunks):
            chunk = data[block_region(cidx, chunks, data.shape)]
            gidx = tuple(u.start // c + i for u, c, i in zip(unit, chunks, cidx, strict=True))
            if np.all(chunk == fill):
                encoded.append((gidx, None))
                continue
            if chunk.shape != chunks:
                padded = np.full(chunks, fill, dtype=dtype)
                padded[tuple(slice(0, n) for n in chunk.shape)] = chunk
                chunk = padded
            encoded.append(
                (
                    gidx,
                    codec.encode(
                        np.ascontiguousarray(chunk.astype(dtype.newbyteorder("<"), copy=False))
                    ),
                )
            )
        return unit, data.nbytes, sample, encoded

    n_written = 0
    shard_hash = hashlib.sha256()
    files: dict[str, list[Any]] = {}
    """Every file this task wrote: relative path → [size, sha256], so the store digest needs no re-read."""
    shard_name = f"{lv.path}/c/" + "/".join(str(i) for i in idx)
    try:
        # v2 chunks go one by one (sink.put); a v3 shard is staged whole, then put in one piece
        staged = sink.staging(shard_name) if layout.shard is not None else contextlib.nullcontext()
        with staged as fh:
            if layout.shard is not None:
                cps = tuple(b // c for b, c in zip(block, chunks, strict=True))
                index = np.full((*cps, 2), EMPTY, dtype="<u8")
                offset = 0
            for _unit, nbytes, sample, encoded in _pipeline(
                process, _units(region, _unit_shape(layout, block, level)), inner_workers
            ):
                info["bytes"] += nbytes
                if sample is not None:
                    sample_parts.append(sample)
                for gidx, payload in encoded:
                    if payload is None:
                        if layout.shard is None:
                            # v2: leave the chunk out, and remove a stale one from an earlier run
                            sink.delete(_chunk_key(lv.path, gidx))
                        continue
                    if layout.shard is not None:
                        local = tuple(g - i * n for g, i, n in zip(gidx, idx, cps, strict=True))
                        fh.write(payload)
                        shard_hash.update(payload)
                        index[local] = (offset, len(payload))
                        offset += len(payload)
                    else:
                        sink.put(_chunk_key(lv.path, gidx), payload)
                        rel = f"{lv.path}/" + "/".join(str(i) for i in gidx)
                        files[rel] = [len(payload), hashlib.sha256(payload).hexdigest()]
                    n_written += 1
                    info["stored"] += len(payload)
            if layout.shard is not None and n_written:
                import google_crc32c

                raw = index.tobytes()
                crc = np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()
                fh.write(raw)
                fh.write(crc)
                shard_hash.update(raw)
                shard_hash.update(crc)
                files[shard_name] = [offset + len(raw) + len(crc), shard_hash.hexdigest()]
            if layout.shard is not None and not n_written:
                raise _EmptyShard
    except _EmptyShard:
        sink.delete(shard_name)  # all fill value: no shard object, and none left from a past run
    if sample_parts:
        _save_npy(sink, f"{JOURNAL}/samples/{shard_key(idx)}.npy", np.concatenate(sample_parts))
    if values:
        _save_npy(
            sink,
            f"{JOURNAL}/values/{level}-{shard_key(idx)}.npy",
            np.array(sorted(values), dtype=np.int64),
        )
    # the marker is one atomic object (rename locally, one PUT in an object store): a kill
    # never leaves half a marker, and a shard without one is written again
    sink.put(
        marker_key(level, idx),
        json.dumps(
            {"bytes": info["bytes"], "stored": info["stored"], "chunks": n_written, "files": files}
        ).encode(),
    )
    return info


class _EmptyShard(Exception):
    """Leaves a staged shard unwritten: every one of its chunks is the fill value."""


def _global_sample_step(shape: tuple[int, ...], layout: StoreLayout) -> int:
    """The step along each space axis that keeps the image's sample within :data:`SAMPLE_BUDGET`."""
    space = [n for n, a in zip(shape, layout.axes, strict=True) if a.type == "space"]
    voxels = float(np.prod(space)) if space else 1.0
    if voxels <= SAMPLE_BUDGET or not space:
        return 1
    return int(np.ceil((voxels / SAMPLE_BUDGET) ** (1.0 / len(space))))


def _chunk_key(array: str, gidx: tuple[int, ...]) -> str:
    return f"{array}/" + "/".join(str(i) for i in gidx)


def _save_npy(sink: LocalSink | S3Sink, key: str, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    sink.put(key, buf.getvalue())


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


def store_digest(root: str | Path, known: dict[str, tuple[int, str]]) -> tuple[str, int, int]:
    """The :func:`curated.provenance.digest.digest_tree` digest of ``root``, hashing only files not in ``known``.

    Data files were hashed by the tasks while they wrote them; only metadata files
    (and any file whose size no longer matches) are read here.
    """
    from curated.provenance.digest import TreeHasher

    hasher = TreeHasher()
    sink = open_sink(root)
    listed = sink.files()
    fetched: dict[str, bytes] = {}
    if not isinstance(sink, LocalSink):  # a listing in memory anyway: fetch the unknown together
        listed = list(listed)  # type: ignore[assignment]
        small = [r for r, n in listed if (known.get(r) or (None,))[0] != n and n <= SMALL_OBJECT]
        fetched = dict(zip(small, sink.get_many(small), strict=True))
    for rel, size in listed:
        got = known.get(rel)
        if got is not None and got[0] == size:
            hexd = got[1]
        elif rel in fetched:
            hexd = hashlib.sha256(fetched.pop(rel)).hexdigest()
        else:
            hexd = sha256_of(sink, rel)
        hasher.add(rel, size, hexd)
    td = hasher.result()
    return td.digest, td.bytes, td.files


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
    """Write every pending shard of ``levels`` in order (one dask task per shard). Returns shards written."""
    import dask

    abort_after = int(os.environ.get(ABORT_ENV, "0") or 0)
    count = 0
    client = None
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
        except OSError as exc:
            msg = f"cannot reach the dask scheduler at {scheduler} ({exc})"
            raise ConversionError(msg) from exc
    try:
        for level in levels:
            todo = pending_shards(job, level)
            if not todo:
                continue
            threads = workers or os.cpu_count() or 1
            if client is not None:
                threads = max(1, sum(client.nthreads().values()))
            inner = max(1, threads // len(todo))
            tasks = [
                dask.delayed(write_shard, pure=False)(
                    job,
                    level,
                    idx,
                    inner,
                    dask_key_name=f"shard-{level}-{shard_key(idx)}-{uuid.uuid4().hex[:8]}",
                )
                for idx in todo
            ]

            def done(info: dict[str, Any]) -> None:
                nonlocal count
                count += 1
                if progress is not None:
                    progress.advance(info["bytes"], level=int(info["level"]))
                if abort_after and count >= abort_after:
                    os._exit(75)

            if client is not None:
                from distributed import as_completed

                futures = client.compute(tasks)
                try:
                    for fut in as_completed(futures, loop=client.loop):
                        done(fut.result())
                finally:
                    client.cancel(futures)
            else:
                from dask.callbacks import Callback

                class _Progress(Callback):
                    def _posttask(
                        self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any
                    ) -> None:
                        if isinstance(result, dict) and "shard" in result:
                            done(result)

                with _Progress():
                    dask.compute(
                        *tasks, scheduler="threads", num_workers=workers or os.cpu_count() or 1
                    )
    finally:
        if client is not None:
            client.close()
        from curated.images.sources import close_cached_files

        close_cached_files()
    return count
