"""One writer and one reader per storage format a vEM volume is commonly kept in.

Writers take the volume from a :class:`Volume` region by region (whole pages for TIFF,
``unit``-edge cubes for the chunked formats), so memory stays bounded by a slab or a
block, never the volume. Each writer returns the seconds spent inside the format's
library (the time spent reading the source is left out) including ``fsync`` of every
file written, so the figure is the time to get the bytes onto the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated.walk import Files, walk

SLAB_BYTES = 64 << 20
"""Largest slab of whole z-planes held at once when a page-ordered format is written or scanned."""


@dataclass(frozen=True)
class Layout:
    """Chunk / tile geometry shared by the formats, so they differ only in the format."""

    chunk: int = 64
    """Chunk edge of HDF5, Zarr and N5 (and the inner chunk of a Zarr v3 shard)."""
    shard: int = 256
    """Shard edge of Zarr v3, also the edge of the cubes chunked formats are written in."""
    tile: int = 256
    """Tile edge (y, x) of the tiled TIFF."""


@dataclass
class Volume:
    """A 3-D source read region by region; counts the seconds spent reading it."""

    read_region: Callable[[tuple[slice, ...]], np.ndarray]
    shape: tuple[int, int, int]
    dtype: np.dtype
    seconds: float = 0.0

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        t0 = time.perf_counter()
        block = np.ascontiguousarray(self.read_region(region), dtype=self.dtype)
        self.seconds += time.perf_counter() - t0
        return block


def cubes(shape: tuple[int, ...], edge: int) -> Iterator[tuple[slice, ...]]:
    """``edge``-sided regions covering ``shape`` in C order (clipped at the far faces)."""
    for z in range(0, shape[0], edge):
        for y in range(0, shape[1], edge):
            for x in range(0, shape[2], edge):
                yield tuple(
                    slice(o, min(o + edge, n)) for o, n in zip((z, y, x), shape, strict=True)
                )


def slabs(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple[slice, ...]]:
    """Runs of whole z-planes of at most :data:`SLAB_BYTES` (at least one plane)."""
    plane = shape[1] * shape[2] * itemsize
    step = max(1, SLAB_BYTES // max(plane, 1))
    for z in range(0, shape[0], step):
        yield (slice(z, min(z + step, shape[0])), slice(0, shape[1]), slice(0, shape[2]))


def files_of(path: Path) -> list[Path]:
    """Every file of a format's output (one file, or all files under a store folder).

    A folder is walked with :func:`curated.walk.walk` (sorted by path components;
    links and special files are not followed: curated writes neither).
    """
    if path.is_file():
        return [path]
    out: list[Path] = []
    for ev in walk(path):
        if type(ev) is Files:
            out.extend(Path(ev.folder, n) for n in ev.names)
    return out


def sync(path: Path) -> None:
    for f in files_of(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def evict(path: Path) -> None:
    """Ask the kernel to drop the cached pages of every file of ``path`` (no root needed).

    ``posix_fadvise(POSIX_FADV_DONTNEED)`` drops clean, unmapped pages of the file from
    the page cache; files were fsynced after writing, so their pages are clean. The
    kernel may keep pages in use elsewhere, and a virtual machine's host may still
    cache the disk, so "cold" here means: not in this machine's page cache, as far
    as the kernel honours the advice.
    """
    for f in files_of(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(bytes allocated on disk, apparent bytes, files) of a format's output."""
    files = files_of(path)
    st = [f.stat() for f in files]
    return sum(s.st_blocks * 512 for s in st), sum(s.st_size for s in st), len(files)


def _timed_sync(path: Path, seconds: float) -> float:
    t0 = time.perf_counter()
    sync(path)
    return seconds + time.perf_counter() - t0


# ------------------------------------------------------------------ writers
def _write_tiff(vol: Volume, dest: Path, layout: Layout, *, tiled: bool) -> float:
    import tifffile

    def pages() -> Iterator[np.ndarray]:
        for region in slabs(vol.shape, vol.dtype.itemsize):
            yield from vol.read(region)

    def tiles() -> Iterator[np.ndarray]:
        t = layout.tile
        for plane in pages():
            for y in range(0, vol.shape[1], t):
                for x in range(0, vol.shape[2], t):
                    yield plane[y : y + t, x : x + t]

    kw: dict[str, Any] = {"tile": (layout.tile, layout.tile)} if tiled else {}
    before = vol.seconds
    t0 = time.perf_counter()
    tifffile.imwrite(
        dest,
        tiles() if tiled else pages(),
        shape=vol.shape,
        dtype=vol.dtype,
        photometric="minisblack",
        metadata={"axes": "ZYX"},
        bigtiff=True,
        **kw,
    )
    return _timed_sync(dest, time.perf_counter() - t0 - (vol.seconds - before))


def _write_cubes(
    vol: Volume, layout: Layout, put: Callable[[tuple[slice, ...], Any], None]
) -> float:
    spent = 0.0
    for region in cubes(vol.shape, layout.shard):
        block = vol.read(region)
        t0 = time.perf_counter()
        put(region, block)
        spent += time.perf_counter() - t0
    return spent


def _chunks(vol: Volume, edge: int) -> tuple[int, ...]:
    return tuple(min(edge, n) for n in vol.shape)


def _write_hdf5(vol: Volume, dest: Path, layout: Layout) -> float:
    import h5py

    t0 = time.perf_counter()
    with h5py.File(dest, "w") as f:
        ds = f.create_dataset(
            "data",
            shape=vol.shape,
            dtype=vol.dtype,
            chunks=_chunks(vol, layout.chunk),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        opened = time.perf_counter() - t0

        def put(region: tuple[slice, ...], block: Any) -> None:
            ds[region] = block

        spent = _write_cubes(vol, layout, put)
    t1 = time.perf_counter()  # closing flushes the chunk cache
    return _timed_sync(dest, opened + spent + (time.perf_counter() - t1))


def _write_zarr(vol: Volume, dest: Path, layout: Layout, *, version: int) -> float:
    import zarr

    t0 = time.perf_counter()
    if version == 2:
        from numcodecs import Zstd

        arr = zarr.create_array(
            store=str(dest),
            shape=vol.shape,
            dtype=vol.dtype,
            chunks=_chunks(vol, layout.chunk),
            zarr_format=2,
            compressors=Zstd(level=3),
        )
    else:
        from zarr.codecs import ZstdCodec

        chunks = _chunks(vol, layout.chunk)
        shards = tuple(
            -(-min(layout.shard, n) // c) * c for n, c in zip(vol.shape, chunks, strict=True)
        )
        arr = zarr.create_array(
            store=str(dest),
            shape=vol.shape,
            dtype=vol.dtype,
            chunks=chunks,
            shards=shards,
            zarr_format=3,
            compressors=ZstdCodec(level=3),
        )
    opened = time.perf_counter() - t0

    def put(region: tuple[slice, ...], block: Any) -> None:
        arr[region] = block

    return _timed_sync(dest, opened + _write_cubes(vol, layout, put))


def _n5_spec(path: Path) -> dict[str, Any]:
    return {"driver": "n5", "kvstore": {"driver": "file", "path": str(path)}}


def _write_n5(vol: Volume, dest: Path, layout: Layout) -> float:
    import tensorstore as ts

    # N5 lists dimensions fastest first (x y z): create it so, and write through the
    # transposed (z y x) view, the way curated reads N5 sources
    t0 = time.perf_counter()
    arr = ts.open(
        {
            **_n5_spec(dest),
            "metadata": {
                "dimensions": list(vol.shape[::-1]),
                "blockSize": list(_chunks(vol, layout.chunk)[::-1]),
                "dataType": vol.dtype.name,
                "compression": {"type": "zstd", "level": 3},
            },
        },
        create=True,
    ).result()
    zyx = arr.T
    opened = time.perf_counter() - t0

    def put(region: tuple[slice, ...], block: Any) -> None:
        zyx[region].write(block).result()

    return _timed_sync(dest, opened + _write_cubes(vol, layout, put))


# ------------------------------------------------------------------ readers
class _ContiguousTiff:
    """Reads rows straight from an uncompressed contiguous TIFF (what memory-mapping readers do),
    with ``pread`` instead of a memory map so that a full scan does not map the whole file."""

    def __init__(self, path: Path) -> None:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            self.shape = tuple(series.shape)
            self.dtype = np.dtype(series.dtype)
        if series.dataoffset is None:
            msg = f"{path} is not a contiguous uncompressed TIFF"
            raise ValueError(msg)
        self.offset: int = series.dataoffset
        self.fd = os.open(path, os.O_RDONLY)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        zs, ys, xs = region
        row = self.shape[2] * self.dtype.itemsize
        plane = self.shape[1] * row
        rows = ys.stop - ys.start
        out = np.empty((zs.stop - zs.start, rows, xs.stop - xs.start), self.dtype)
        for i, z in enumerate(range(zs.start, zs.stop)):
            raw = os.pread(self.fd, rows * row, self.offset + z * plane + ys.start * row)
            out[i] = np.frombuffer(raw, self.dtype).reshape(rows, self.shape[2])[:, xs]
        return out

    def close(self) -> None:
        os.close(self.fd)


class _ArrayReader:
    """zarr / h5py / tensorstore arrays behind one ``read(region)``."""

    def __init__(self, arr: Any, close: Callable[[], None] | None = None, ts: bool = False) -> None:
        self.arr = arr
        self._close = close
        self._ts = ts

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        if self._ts:
            return np.asarray(self.arr[region].read().result())
        return np.asarray(self.arr[region])

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _open_tiled_tiff(path: Path) -> _ArrayReader:
    import tifffile
    import zarr

    tf = tifffile.TiffFile(path)
    store = tf.series[0].aszarr()

    def close() -> None:
        store.close()
        tf.close()

    return _ArrayReader(zarr.open_array(store, mode="r"), close)


def _open_hdf5(path: Path) -> _ArrayReader:
    import h5py

    f = h5py.File(path, "r")
    return _ArrayReader(f["data"], f.close)


def _open_zarr(path: Path) -> _ArrayReader:
    import zarr

    return _ArrayReader(zarr.open_array(str(path), mode="r"))


def _open_n5(path: Path) -> _ArrayReader:
    import tensorstore as ts

    # a fresh context per open: no cache shared with earlier handles (cold means cold)
    arr = ts.open(_n5_spec(path), read=True, context=ts.Context()).result()
    return _ArrayReader(arr.T, ts=True)


@dataclass(frozen=True)
class StorageFormat:
    """One way of storing the volume: how it is written, how it is read, what it uses."""

    name: str
    suffix: str
    library: str
    layout: str
    """Chunking / tiling and codec, in words (for the report)."""
    write: Callable[[Volume, Path, Layout], float]
    open: Callable[[Path], Any]
    scan_in_planes: bool = False
    """Scanned in whole-plane slabs (page order) rather than in chunk-aligned cubes."""


def formats(layout: Layout) -> tuple[StorageFormat, ...]:
    c, s, t = layout.chunk, layout.shard, layout.tile
    return (
        StorageFormat(
            "tiff-contiguous",
            ".tif",
            "tifffile",
            "one uncompressed page per z, contiguous",
            lambda v, d, lay: _write_tiff(v, d, lay, tiled=False),
            _ContiguousTiff,
            scan_in_planes=True,
        ),
        StorageFormat(
            "tiff-tiled",
            ".tif",
            "tifffile",
            f"uncompressed {t}x{t} tiles per page",
            lambda v, d, lay: _write_tiff(v, d, lay, tiled=True),
            _open_tiled_tiff,
            scan_in_planes=True,
        ),
        StorageFormat(
            "hdf5", ".h5", "h5py", f"{c}³ chunks, shuffle+gzip level 1", _write_hdf5, _open_hdf5
        ),
        StorageFormat(
            "zarr-v2",
            ".zarr",
            "zarr-python",
            f"{c}³ chunks, zstd level 3, one file per chunk",
            lambda v, d, lay: _write_zarr(v, d, lay, version=2),
            _open_zarr,
        ),
        StorageFormat(
            "zarr-v3-sharded",
            ".zarr",
            "zarr-python",
            f"{c}³ chunks in {s}³ shards, zstd level 3",
            lambda v, d, lay: _write_zarr(v, d, lay, version=3),
            _open_zarr,
        ),
        StorageFormat(
            "n5",
            ".n5",
            "tensorstore",
            f"{c}³ blocks, zstd level 3 (zarr-python 3 has no N5 store)",
            _write_n5,
            _open_n5,
        ),
    )
