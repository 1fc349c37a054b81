"""Arrays stored in HDF5, MRC, Zarr (v2/v3), N5 and OME-Zarr (0.4/0.5) as converter sources.

Each is opened through the field's library (h5py, mrcfile, zarr-python,
TensorStore for N5, :func:`curated.images.reader.open_image` for OME-Zarr) and
read region by region, so memory stays bounded by the shard being written. A
:class:`StoredArraySource` is picklable (it holds paths, never open handles):
shard tasks reopen the file on the thread or worker that reads it.

Voxel sizes are taken only where the file states them with a unit: the MRC
header, OME-Zarr ``coordinateTransformations``, and the attribute conventions
that name their unit (``element_size_um``; ``pixelResolution`` with ``unit``;
``transform`` with ``units``). A size without a unit is reported, not used.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from curated.errors import ConversionError, InputError
from curated.images.ngff import declares_image
from curated.images.segments import SEGMENTS, file_identity
from curated.images.units import length_unit, round_to, significant_digits
from curated.images.velox import VELOX_SUFFIX, is_velox, velox_key, velox_pixel
from curated.walk import Files, Special, walk

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
MRC_SUFFIXES = (".mrc", ".mrcs", ".rec", ".st", ".ali", ".preali", ".map", ".ccp4", ".tomo")
_KEYED = re.compile(
    r"^(?P<file>.+?\.(?:h5|hdf5|hdf|he5|emd|n5|zarr))(?::(?P<key>/.*))?$", re.IGNORECASE
)


@dataclass
class StoredArraySource:
    """One array in an HDF5 / MRC file or a Zarr / N5 / OME-Zarr store, read region by region."""

    kind: str
    """``hdf5``, ``mrc``, ``zarr``, ``n5`` or ``ome-zarr``."""
    path: str
    """As given: ``FILE.h5:/path/to/dataset``, ``volume.mrc``, ``image.ome.zarr``."""
    file: str
    """The file or the store's root folder."""
    key: str
    """The dataset / array inside it (``""`` for the root array)."""
    axes: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...] | None = None
    voxel_size: tuple[float | None, ...] | None = None
    unit: str | None = None
    voxel_source: str = "none"
    not_carried: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """What the conversion must never write into (the file or the store)."""
    file_axes: tuple[int, ...] | None = None
    """For each axis of :attr:`axes`, the file's own axis it is read from (``None``: the same
    order). An MRC map whose header puts z in its columns (``mapc = 3``) is read transposed."""
    stored: ChunkCount | None = None
    """Chunks stored and claimed (HDF5, Zarr, N5); ``None`` for an unchunked array."""

    @property
    def name(self) -> str:
        stem = Path(self.file).name
        for suffix in (".ome.zarr", ".zarr", ".n5", VELOX_SUFFIX, *HDF5_SUFFIXES, *MRC_SUFFIXES):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        tail = self.key.strip("/").replace("/", "-")
        return f"{stem}-{tail}" if tail and self.kind != "ome-zarr" else stem

    def absent(self, region: tuple[slice, ...]) -> bool:
        """Whether no stored chunk touches ``region``: it reads as the fill value
        (:attr:`ChunkCount.fill`) throughout, and need not be read.

        Asked only of a sparse array (fewer chunks stored than claimed), from an index of
        the chunks stored built once per process (:func:`_stored_ids`); an array of more
        than :data:`INDEXED_CHUNKS` stored chunks is not indexed (always ``False``).
        """
        count = self.stored
        if count is None or count.stored >= count.expected or count.stored > INDEXED_CHUNKS:
            return False
        ids = _stored_ids(self.kind, self.file, self.key, count.grid, self.shape)
        return not _any_stored(ids, region, count.grid, self.shape)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Read ``region`` (one slice per axis) into a new native-endian array.

        A chunk that cannot be decoded (damaged, or cut short in a copy) is a
        :class:`~curated.errors.ConversionError` naming the file, the array and the region.
        """
        try:
            return self._read(region)
        except ConversionError:
            raise
        except Exception as exc:  # codec and storage library errors on damaged chunks
            where = ", ".join(
                f"{a} {s.start}-{s.stop}" for a, s in zip(self.axes, region, strict=False)
            )
            array = f"dataset {self.key}" if self.key else "the array"
            msg = (
                f"{array} cannot be read at {where} ({type(exc).__name__}: {exc}): a chunk "
                "there is damaged or missing; copy the file again"
            )
            raise ConversionError(msg, path=self.file, details={"region": where}) from exc

    def _read(self, region: tuple[slice, ...]) -> np.ndarray:
        if self.kind == "mrc":
            import mrcfile

            order = self.file_axes or tuple(range(len(region)))
            in_file = [slice(None)] * len(region)
            for axis, sl in zip(order, region, strict=True):
                in_file[axis] = sl
            # memory-mapped and closed after each region, so mapped pages never pile up
            with mrcfile.mmap(self.file, mode="r", permissive=True) as mrc:
                block = np.ascontiguousarray(np.array(mrc.data[tuple(in_file)]).transpose(order))
            if block.dtype == np.int8 and np.dtype(self.dtype) == np.uint8:
                block = block.view(np.uint8)  # IMOD's unsigned bytes (see _mrc_mode0_unsigned)
        elif self.kind == "n5":
            block = np.asarray(_handle(self.kind, self.file, self.key)[region].read().result())
        elif self.file_axes is not None:  # a Velox image: (y, x, frame) in the file
            block = _read_reordered(_handle(self.kind, self.file, self.key), self.file_axes, region)
        elif (planes := self._plane_chunks()) is not None:
            block = self._read_planes(region, planes)
        else:
            block = np.asarray(_handle(self.kind, self.file, self.key)[region])
        return block.astype(block.dtype.newbyteorder("="), copy=False)

    def _plane_chunks(self) -> tuple[int, int] | None:
        """``(rows, columns)`` of the chunks of an HDF5 dataset stored one plane deep, when
        a chunk is at least :data:`PLANE_CHUNK_BYTES`; else ``None``."""
        if self.kind != "hdf5" or not self.chunks or len(self.chunks) < 3:
            return None
        if any(c != 1 for c in self.chunks[:-2]):
            return None
        rows, cols = self.chunks[-2:]
        if rows * cols * np.dtype(self.dtype).itemsize < PLANE_CHUNK_BYTES:
            return None
        return rows, cols

    def _read_planes(self, region: tuple[slice, ...], chunks: tuple[int, int]) -> np.ndarray:
        """``region`` of a dataset in plane-deep chunks, a chunk at a time through the decoded
        segment cache (:mod:`curated.images.segments`): a chunk a read uses in part is kept,
        or spilled to disk in a conversion, for the other shards across it, instead of being
        decoded again by each (a stack written slice by slice with ``chunks=(1, Y, X)`` and
        gzip: every 512² shard across a 4096² plane decoded all of it, 64 times per plane)."""
        rows, cols = chunks
        arr = _handle(self.kind, self.file, self.key)
        identity = file_identity(self.file)
        ys, xs = region[-2], region[-1]
        height, width = self.shape[-2], self.shape[-1]
        out = np.empty(
            tuple(s.stop - s.start for s in region), np.dtype(self.dtype).newbyteorder("=")
        )
        for lead in np.ndindex(*out.shape[:-2]):
            at = tuple(s.start + i for s, i in zip(region[:-2], lead, strict=True))
            for y0 in range(ys.start // rows * rows, ys.stop, rows):
                for x0 in range(xs.start // cols * cols, xs.stop, cols):
                    box = (slice(y0, min(y0 + rows, height)), slice(x0, min(x0 + cols, width)))
                    partial = box[0].start < ys.start or box[0].stop > ys.stop
                    partial = partial or box[1].start < xs.start or box[1].stop > xs.stop

                    def decode(
                        box: tuple[slice, slice] = box, at: tuple[int, ...] = at
                    ) -> tuple[np.ndarray, tuple[int, int]]:
                        plane = np.asarray(arr[(*at, *box)])
                        return plane.astype(plane.dtype.newbyteorder("="), copy=False), (
                            box[0].start,
                            box[1].start,
                        )

                    key = ("stored", self.file, identity, self.key, at, y0, x0)
                    part, ya, xa = SEGMENTS.window(key, decode, partial, ys, xs)
                    h, w = part.shape
                    oy, ox = ya - ys.start, xa - xs.start
                    out[(*lead, slice(oy, oy + h), slice(ox, ox + w))] = part
        return out


def _read_reordered(arr: Any, order: tuple[int, ...], region: tuple[slice, ...]) -> np.ndarray:
    """``region`` of ``arr`` whose axis ``i`` is the file's axis ``order[i]``; the file's
    axes not in ``order`` (a single frame) are read at index 0."""
    in_file: list[slice | int] = [0] * arr.ndim
    for axis, sl in zip(order, region, strict=True):
        in_file[axis] = sl
    block = np.asarray(arr[tuple(in_file)])
    kept = sorted(order)
    return np.ascontiguousarray(block.transpose([kept.index(a) for a in order]))


PLANE_CHUNK_BYTES = 1 << 20
"""HDF5 chunks one plane deep of at least 1 MiB are read a chunk at a time through the decoded
segment cache (smaller ones: a region's chunks in one read, as every other array)."""


class ChunkCount(NamedTuple):
    """How many chunks of an array are stored against how many its shape claims."""

    stored: int
    expected: int
    grid: tuple[int, ...]
    """The chunk (Zarr v3 sharded: shard) shape of what is stored, in the source's axis order."""
    fill: Any = 0
    """What an absent chunk reads as."""


INDEXED_CHUNKS = 4_000_000
"""Most stored chunks a sparse array's index (:meth:`StoredArraySource.absent`) holds."""

_LOOKUPS = 1 << 22
"""Most rows of chunks one :meth:`StoredArraySource.absent` question looks up (more: read it)."""


def _chunk_counts(grid: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(-(-n // g) for n, g in zip(shape, grid, strict=True))


_ids_lock = threading.Lock()
_ids: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()


def _stored_ids(
    kind: str, file: str, key: str, grid: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """The C-order indices of the chunks an array stores, sorted (8 bytes a chunk), built once
    per process from the file's chunk index or the store's chunk names."""
    k = (kind, file, key)
    with _ids_lock:
        got = _ids.get(k)
    if got is not None:
        return got
    counts = _chunk_counts(grid, shape)
    coords = [
        c
        for c in _stored_chunk_coords(kind, file, key, len(grid))
        if all(0 <= i < n for i, n in zip(c, counts, strict=True))
    ]
    built = (
        np.sort(np.ravel_multi_index(np.array(coords).T, counts)).astype(np.int64)
        if coords
        else np.empty(0, np.int64)
    )
    with _ids_lock:
        _ids[k] = built
        while len(_ids) > 8:
            _ids.popitem(last=False)
    return built


def _any_stored(
    ids: np.ndarray, region: tuple[slice, ...], grid: tuple[int, ...], shape: tuple[int, ...]
) -> bool:
    """Whether a stored chunk (``ids``: :func:`_stored_ids`) touches ``region``: each row of
    chunks along the last axis is one range of indices, looked up in the sorted ``ids``."""
    if not ids.size:
        return False
    counts = _chunk_counts(grid, shape)
    spans = [
        (s.start // g, (max(s.stop, s.start + 1) - 1) // g + 1)
        for s, g in zip(region, grid, strict=True)
    ]
    rows = int(np.prod([b - a for a, b in spans[:-1]]))
    if rows > _LOOKUPS:
        return True  # too many to look up: read it
    strides = np.cumprod((1, *counts[::-1][:-1]))[::-1]
    base = np.zeros(1, np.int64)
    for (a, b), stride in zip(spans[:-1], strides[:-1], strict=True):
        base = (base[:, None] + np.arange(a, b, dtype=np.int64)[None, :] * int(stride)).ravel()
    lo, hi = base + spans[-1][0], base + spans[-1][1]
    return bool((np.searchsorted(ids, hi) > np.searchsorted(ids, lo)).any())


def _stored_chunk_coords(kind: str, file: str, key: str, ndim: int) -> list[tuple[int, ...]]:
    """Grid coordinates (source axis order) of the chunks an array stores, from HDF5's chunk
    index or the names of a Zarr / N5 array's chunk files (nothing is decoded)."""
    if kind == "hdf5":
        dset = _handle(kind, file, key)
        chunks = dset.chunks
        found: list[tuple[int, ...]] = []
        dset.id.chunk_iter(
            lambda info: found.append(
                tuple(o // c for o, c in zip(info.chunk_offset, chunks, strict=True))
            )
        )
        return found
    root = Path(file) / key.strip("/")
    if kind == "n5":  # blocks are folders x/y/z (N5's fastest-first order): reversed
        prefix, sep, reverse = "", "/", True
    else:
        probe = _handle(kind, file, key).metadata.encode_chunk_key((11, 22) + (33,) * (ndim - 2))
        prefix, sep, reverse = probe[: probe.index("11")], probe[probe.index("11") + 2], False
    out = []
    for ev in walk(root, errors="report"):
        if type(ev) is not Files:
            continue
        for name in ev.names:
            path = ev.prefix + name
            if prefix and not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split(sep)
            if len(parts) == ndim and all(p.isdigit() for p in parts):
                coord = tuple(int(p) for p in parts)
                out.append(coord[::-1] if reverse else coord)
    return out


_lock = threading.Lock()
_handles: OrderedDict[tuple[str, str, str], Any] = OrderedDict()


def _handle(kind: str, file: str, key: str) -> Any:
    """An open array, from a small per-process cache (handles are never pickled)."""
    k = (kind, file, key)
    with _lock:
        arr = _handles.get(k)
        if arr is None:
            arr = _open_array(kind, file, key)
            _handles[k] = arr
            while len(_handles) > 8:
                _, old = _handles.popitem(last=False)
                _close(old)
        else:
            _handles.move_to_end(k)
        return arr


def _close(arr: Any) -> None:
    f = getattr(arr, "file", None)
    if f is not None and hasattr(f, "close"):
        f.close()


def close_stored() -> None:
    """Close the files kept open between reads (after a conversion)."""
    with _lock:
        while _handles:
            _close(_handles.popitem()[1])
    with _ids_lock:
        _ids.clear()


def _open_array(kind: str, file: str, key: str) -> Any:
    if kind == "hdf5":
        import h5py

        return h5py.File(file, "r")[key or "/"]
    if kind == "n5":
        import tensorstore as ts

        spec = {
            "driver": "n5",
            "kvstore": {"driver": "file", "path": str(Path(file) / key.strip("/"))},
        }
        # TensorStore shows N5 dimensions in N5's own order (x y z, fastest first): transpose to z y x
        return ts.open(spec, read=True, open=True).result().T
    if kind in ("zarr", "ome-zarr"):
        import zarr

        return zarr.open_array(store=str(Path(file) / key.strip("/")), mode="r")
    msg = f"unknown stored-array kind {kind!r}"
    raise ValueError(msg)


# ---------------------------------------------------------------- opening
def split_key(path: str | Path) -> tuple[Path, str] | None:
    """``FILE.h5:/a/b`` → ``(FILE.h5, "/a/b")``; ``None`` when ``path`` names no HDF5/Zarr/N5 container."""
    m = _KEYED.match(str(path))
    if m is None:
        return None
    return Path(m.group("file")), m.group("key") or ""


def is_stored(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5/MRC file, a Zarr/N5 store, or ``CONTAINER:/key``."""
    p = Path(path)
    if (
        p.suffix.lower() in (*MRC_SUFFIXES, VELOX_SUFFIX) and not p.is_dir()
    ):  # a folder of slices may be named x.rec
        return True
    got = split_key(path)
    if got is not None and (got[1] or got[0].suffix.lower() in HDF5_SUFFIXES):
        return True
    if p.is_dir():
        return any(
            (p / n).is_file() for n in ("zarr.json", ".zarray", ".zgroup", "attributes.json")
        )
    return False


def open_stored(path: str | Path) -> StoredArraySource:
    """Open an HDF5 dataset, MRC file, Zarr/N5 array or OME-Zarr image as a converter source.

    Raises
    ------
    InputError
        Missing file, no such dataset, a group instead of an array (naming the arrays in it).
    ConversionError
        A file the library cannot read (truncated, damaged) or an unsupported pixel type.
    """
    text = str(path)
    p = Path(text)
    if p.suffix.lower() in MRC_SUFFIXES:
        return _open_mrc(p)
    got = split_key(text)
    file, key = got if got is not None else (p, "")
    if not file.exists():
        msg = "does not exist; give FILE.h5:/path/to/dataset, a .mrc file, or a Zarr / N5 / OME-Zarr store"
        raise InputError(msg, path=file)
    if file.suffix.lower() in HDF5_SUFFIXES:
        return _open_hdf5(file, key, text)
    if file.suffix.lower() == VELOX_SUFFIX:
        return _open_velox(file, key, text)
    if (file / "attributes.json").is_file() and not (file / "zarr.json").is_file():
        return _open_n5(file, key, text)
    return _open_zarr(file, key, text)


def _check_dtype(dtype: np.dtype, path: str) -> np.dtype:
    from curated.images.sources import LABEL_ONLY_DTYPES, SUPPORTED_DTYPES

    try:
        native: np.dtype | None = np.dtype(dtype).newbyteorder("=")
    except (TypeError, ValueError):  # strings, objects (zarr's variable-length types), records
        native = None
    if native is None or native.name not in (*SUPPORTED_DTYPES, *LABEL_ONLY_DTYPES):
        shown = dtype if native is None else native.name
        msg = f"pixel type {shown} is not supported; convert to uint8, uint16 or float32 first"
        raise ConversionError(msg, path=path)
    return native


def _default_axes(ndim: int, path: str) -> str:
    if ndim > 5 or ndim < 2:
        msg = f"array has {ndim} dimensions; give a 3D (z y x) array, or up to t c z y x"
        raise ConversionError(msg, path=path)
    return "tczyx"[-ndim:]


def _hdf5_file(file: Path) -> Any:
    """``file`` opened read-only with h5py; one that does not open is named as damaged."""
    import h5py

    try:
        return h5py.File(file, "r")
    except OSError as exc:
        msg = f"cannot be read as HDF5 ({exc}); the file is truncated or damaged, copy it again"
        raise ConversionError(msg, path=file) from None


def _open_hdf5(file: Path, key: str, shown: str) -> StoredArraySource:
    import h5py

    with _hdf5_file(file) as f:

        def datasets() -> list[str]:
            found: list[str] = []
            f.visititems(
                lambda n, o: found.append("/" + n) if isinstance(o, h5py.Dataset) else None
            )
            return found

        if not key:
            names = datasets()
            if len(names) != 1:
                listed = ", ".join(names[:10]) or "none"
                msg = f"holds {len(names)} datasets ({listed}); name one as {file.name}:/path/to/dataset"
                raise InputError(msg, path=file)
            key = names[0]
        obj = f.get(key)
        if not isinstance(obj, h5py.Dataset):
            what = "no such dataset" if obj is None else "a group, not a dataset"
            names = datasets()
            inside = [d for d in names if d.startswith(key.rstrip("/") + "/")]
            listed = ", ".join((inside or names)[:10])
            msg = f"{key} is {what}; datasets in the file: {listed or 'none'}"
            raise InputError(msg, path=file)
        _check_filters(obj, file)
        dtype = _check_dtype(obj.dtype, shown)
        attrs = {k: _plain(v) for k, v in obj.attrs.items()}
        axes = _default_axes(obj.ndim, shown)
        voxel, unit, origin, notes = _voxel_from_attrs(attrs, axes, "hdf5")
        count = None
        if obj.chunks:
            grid = tuple(int(c) for c in obj.chunks)
            count = ChunkCount(
                obj.id.get_num_chunks(),
                _expected_chunks(obj.shape, grid),
                grid,
                _plain(obj.fillvalue),
            )
            notes += _absent_chunks(count)
        return StoredArraySource(
            kind="hdf5",
            path=shown,
            file=str(file),
            key=key,
            axes=axes,
            shape=tuple(int(n) for n in obj.shape),
            dtype=dtype.str,
            chunks=tuple(obj.chunks) if obj.chunks else None,
            voxel_size=voxel,
            unit=unit,
            voxel_source=origin,
            not_carried=notes + _other_attrs(attrs, "HDF5 dataset attributes"),
            files=[str(file)],
            stored=count,
        )


_NOT_VELOX = (
    "is an EMD file (HDF5) but no Thermo Fisher Velox file (its Version does not name the "
    "format Velox); curated reads Velox .emd files, and datasets of HDF5 files named .h5, "
    ".hdf5, .hdf or .he5 as arrays in t c z y x order: write the dataset in z y x order "
    "to an .h5 file and convert that"
)


def _open_velox(file: Path, key: str, shown: str) -> StoredArraySource:
    """A Velox image, its (y, x, frame) pixels read as y x (one frame) or z y x (frames as z)."""
    with _hdf5_file(file) as f:
        if not is_velox(f):
            raise InputError(_NOT_VELOX, path=file)
        key = velox_key(f, key, file)
        obj = f[key]
        if obj.ndim != 3:
            msg = f"Velox image {key} has shape {obj.shape}; a Velox image is (y, x, frame)"
            raise ConversionError(msg, path=file)
        _check_filters(obj, file)
        dtype = _check_dtype(obj.dtype, shown)
        file_shape = tuple(int(n) for n in obj.shape)
        frames = file_shape[2]
        pixel = velox_pixel(f, key, frames)
        chunks = obj.chunks
    order = (2, 0, 1) if frames > 1 else (0, 1)
    notes = [
        f"Velox image {key}: stored as (y, x, frame), read as {'z y x' if frames > 1 else 'y x'}"
    ]
    if frames > 1:
        notes.append(
            f"Velox frame stack ({frames} frames): the z axis is the frame index (a series in "
            "time or of tilts, not depth); give the z spacing with --voxel-size"
        )
    if pixel.note:
        notes.append(f"pixel size: {pixel.note}")
    voxel = None if pixel.yx is None else (None, *pixel.yx)
    return StoredArraySource(
        kind="hdf5",
        path=shown,
        file=str(file),
        key=key,
        axes="zyx" if frames > 1 else "yx",
        shape=tuple(file_shape[a] for a in order),
        dtype=dtype.str,
        chunks=tuple(int(chunks[a]) for a in order) if chunks else None,
        voxel_size=voxel,
        unit=None if voxel is None else "nanometer",
        voxel_source=pixel.source if voxel is not None else "none",
        not_carried=notes,
        files=[str(file)],
        file_axes=order,
    )


def _check_filters(obj: Any, file: Path) -> None:
    """Refuse, at open, a dataset compressed with an HDF5 filter this installation cannot decode."""
    from h5py import h5z

    plist = obj.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5z.filter_avail(code):
            label = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            msg = (
                f"dataset {obj.name} is compressed with HDF5 filter {code} ({label or 'unnamed'}), "
                "which is not installed; install the plugin (e.g. `pip install hdf5plugin`) and retry"
            )
            raise ConversionError(msg, path=file)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


_VOXEL_ATTRS = ("element_size_um", "pixelResolution", "transform", "resolution", "units", "unit")


def _other_attrs(attrs: dict[str, Any], where: str) -> list[str]:
    rest = sorted(k for k in attrs if k not in _VOXEL_ATTRS)
    return [f"{where}: {', '.join(rest)}"] if rest else []


def _voxel_from_attrs(
    attrs: dict[str, Any], axes: str, prefix: str, *, reverse: bool = False
) -> tuple[tuple[float | None, ...] | None, str | None, str, list[str]]:
    """(z, y, x) voxel size, unit, origin and notes from array attributes (C order unless ``reverse``)."""
    space = [a for a in axes if a in "zyx"]
    nspace = len(space)

    def ordered(values: list[Any]) -> list[float] | None:
        vals = list(values)[::-1] if reverse else list(values)
        if len(vals) < nspace or not all(
            isinstance(v, int | float) and v > 0 for v in vals[-nspace:]
        ):
            return None
        return [float(v) for v in vals[-nspace:]]

    def result(vals: list[float], unit: str, origin: str) -> tuple:
        try:
            name = length_unit(unit)
        except InputError:
            return (
                None,
                None,
                "none",
                [f"{origin}: unit {unit!r} is not a length; voxel size not used"],
            )
        full = dict(zip(space, vals, strict=True))
        zyx = tuple(
            round_to(full[a], significant_digits(full[a])) if a in full else None for a in "zyx"
        )
        return zyx, name, origin, []

    if "element_size_um" in attrs:
        vals = ordered(
            attrs["element_size_um"] if isinstance(attrs["element_size_um"], list) else []
        )
        if vals:
            return result(vals, "micrometer", f"{prefix}:@element_size_um")
    pr = attrs.get("pixelResolution")
    if (
        isinstance(pr, dict)
        and isinstance(pr.get("dimensions"), list)
        and isinstance(pr.get("unit"), str)
    ):
        # n5-viewer convention: dimensions in x y z order
        vals = ordered(pr["dimensions"][::-1] if not reverse else pr["dimensions"])
        if vals:
            return result(vals, pr["unit"], f"{prefix}:@pixelResolution")
    tr = attrs.get("transform")
    if (
        isinstance(tr, dict)
        and isinstance(tr.get("scale"), list)
        and isinstance(tr.get("units"), list)
    ):
        # COSEM / OpenOrganelle convention: axes, scale and units listed in the array's order
        vals = ordered(tr["scale"])
        units = set(tr["units"][-nspace:])
        if vals and len(units) == 1:
            return result(vals, units.pop(), f"{prefix}:@transform")
    if "resolution" in attrs:
        unit = attrs.get("unit") if isinstance(attrs.get("unit"), str) else None
        units = attrs.get("units")
        if (
            unit is None
            and isinstance(units, list)
            and len(set(units)) == 1
            and isinstance(units[0], str)
        ):
            unit = units[0]
        vals = ordered(attrs["resolution"] if isinstance(attrs["resolution"], list) else [])
        if vals and unit:
            return result(vals, unit, f"{prefix}:@resolution")
        return (
            None,
            None,
            "none",
            [
                f"{prefix}:@resolution = {attrs['resolution']} states no unit; not used as the voxel size (pass --voxel-size)"
            ],
        )
    return None, None, "none", []


def _absent_chunks(count: ChunkCount) -> list[str]:
    """A note when chunks are absent: they read as the fill value, like a store cut short by a copy."""
    stored, expected = count.stored, count.expected
    if expected <= 0 or stored >= expected:
        return []
    return [
        f"warning: {expected - stored} of {expected} chunks are not stored and read as the fill value "
        f"({count.fill}); writers may skip empty chunks, but a partial copy looks the same: check the copy"
    ]


def sparse_problem(
    shape: tuple[int, ...], count: ChunkCount | None, block: tuple[int, ...]
) -> str | None:
    """Why converting an array that stores ``count`` chunks into tasks of ``block`` voxels
    (a shard) is refused: at least :data:`MOST_EMPTY_SHARDS` of its shards would hold no
    stored chunk at all, so the conversion's time would go on a claimed shape the data do
    not fill (10^15 voxels with one chunk written: days). ``None`` when it may go ahead."""
    if count is None or count.stored >= count.expected:
        return None
    shards = int(np.prod([-(-n // b) for n, b in zip(shape, block, strict=True)]))
    touched = int(np.prod([-(-g // b) + 1 for g, b in zip(count.grid, block, strict=True)]))
    empty = shards - count.stored * touched
    if empty < MOST_EMPTY_SHARDS:
        return None
    voxels = int(np.prod(shape))
    return (
        f"the array claims {' x '.join(str(n) for n in shape)} voxels ({voxels:.3g}) but stores "
        f"only {count.stored} of its {count.expected} chunks ({100 * count.stored / count.expected:.2g} %): "
        f"converting it would write at least {empty} shards that hold nothing but the fill value "
        f"({count.fill}); its shape is probably wrong or the copy incomplete: ask the depositor; "
        "if the array really is this large and this empty, copy the part that holds data into "
        "an array of its own and convert that"
    )


def sparse_summary(shape: tuple[int, ...], count: ChunkCount | None) -> str | None:
    """The claimed size of a chunked array against the chunks it stores, in one line (for
    `curated check`), with whether ``curated convert`` (default 512-voxel shards) refuses it;
    ``None`` when every chunk is stored."""
    if count is None or count.stored >= count.expected or count.expected <= 0:
        return None
    voxels = int(np.prod(shape))
    said = (
        f"claims {' x '.join(str(n) for n in shape)} voxels ({voxels:.3g}) but stores "
        f"{count.stored} of its {count.expected} chunks ({100 * count.stored / count.expected:.2g} %); "
        f"the others read as the fill value ({count.fill}): writers may skip empty chunks, but "
        "a partial copy or a header that lies looks the same"
    )
    block = tuple(512 if i >= len(shape) - 3 else 1 for i in range(len(shape)))
    if sparse_problem(shape, count, block) is not None:
        said += (
            "; `curated convert` refuses it (far more empty shards than data): ask the depositor"
        )
    return said


MOST_EMPTY_SHARDS = 100_000
"""Shards holding no stored chunk past which a conversion is refused (:func:`sparse_problem`);
each still costs a task (about 10 ms), however empty."""


def _expected_chunks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    return int(np.prod([-(-n // c) for n, c in zip(shape, chunks, strict=True)])) if shape else 1


# -------------------------------------------------------------------- MRC
_MRC_NOTES = (
    "MRC header fields beyond the voxel size (origin, cell angles, extended header, labels)"
)


_IMOD_STAMP = 1146047817
"""``imodStamp`` (header bytes 152-155) of files written by IMOD and the software using its library."""


def _mrc_mode0_unsigned(header: Any) -> bool:
    """Whether mode-0 data are unsigned bytes: files stamped by IMOD (and SerialEM) hold unsigned
    bytes unless ``imodFlags`` bit 1 says they are signed (IMOD's mrc_format.txt); mrcfile reads
    every mode-0 file as signed, the MRC2014 reading, which turns 128-255 into -128..-1."""
    if int(header.mode) != 0:
        return False
    raw = bytes(header.extra2)[40:48]  # imodStamp, imodFlags at header bytes 152 and 156
    stamp, flags = np.frombuffer(
        raw, dtype=np.dtype("i4").newbyteorder(header.mode.dtype.byteorder)
    )
    return int(stamp) == _IMOD_STAMP and not int(flags) & 1


def _mrc_file_axes(header: Any, ndim: int, path: Path) -> tuple[tuple[int, ...] | None, list[str]]:
    """Which file axis holds z, y and x (``mapc/mapr/maps``): ``None`` for the usual columns = x,
    rows = y, sections = z; a transposition for maps that store their axes in another order."""
    mapping = (int(header.maps), int(header.mapr), int(header.mapc))  # file axes 0, 1, 2
    if mapping == (3, 2, 1):
        return None, []
    if sorted(mapping) != [1, 2, 3]:
        note = f"MRC axis order mapc/mapr/maps = {mapping[::-1]} is not valid; read as columns = x, rows = y, sections = z"
        return None, [note]
    if ndim != 3:
        msg = f"the MRC header stores the axes in another order (mapc/mapr/maps = {mapping[::-1]}) in a {ndim}D stack; curated reads that order only in a 3D map"
        raise ConversionError(msg, path=path)
    order = tuple(mapping.index(a) for a in (3, 2, 1))
    note = f"MRC axis order mapc/mapr/maps = {mapping[::-1]}: read transposed into z, y, x"
    return order, [note]


class _MrcFacts(NamedTuple):
    header: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    stack: bool
    voxel: dict[str, float]
    """Cell size over sampling per physical axis (``x``, ``y``, ``z``), in angstrom."""


def _mrc_facts(mrc: Any, file: Path) -> _MrcFacts:
    data = mrc.data
    if data is None:
        msg = "the MRC header describes no data; the file is truncated or damaged, copy it again"
        raise ConversionError(msg, path=file)
    vs = mrc.voxel_size
    return _MrcFacts(
        header=mrc.header.copy(),
        shape=tuple(int(n) for n in data.shape),
        dtype=data.dtype,
        stack=bool(mrc.is_image_stack()) or bool(mrc.is_volume_stack()),
        voxel={"x": float(vs.x), "y": float(vs.y), "z": float(vs.z)},
    )


def _read_mrc_header(file: Path) -> tuple[_MrcFacts, list[str]]:
    """What the converter needs from an MRC file's header; header quirks (an unknown machine
    stamp, no ``MAP`` id, as in older files) are read past, as mrcfile's permissive mode does,
    and noted."""
    import mrcfile

    damaged = "cannot be read as MRC ({}); the file is truncated or damaged, copy it again"
    try:
        with mrcfile.mmap(file, mode="r", permissive=False) as mrc:
            return _mrc_facts(mrc, file), []
    except ValueError as exc:
        text = str(exc)
        if "machine stamp" not in text.lower() and "map id" not in text.lower():
            raise ConversionError(damaged.format(text), path=file) from None
    except (OSError, EOFError) as exc:
        raise ConversionError(damaged.format(exc), path=file) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.mmap(file, mode="r", permissive=True) as mrc:
                facts = _mrc_facts(mrc, file)
        except (ValueError, OSError, EOFError) as exc:
            raise ConversionError(damaged.format(exc), path=file) from None
    return facts, [f"MRC header: {text}; read as mrcfile's permissive mode does"]


def _open_mrc(file: Path) -> StoredArraySource:
    if not file.is_file():
        raise InputError("does not exist; give an MRC file (.mrc, .rec, .st, .map)", path=file)
    facts, quirks = _read_mrc_header(file)
    file_dtype = facts.dtype
    if _mrc_mode0_unsigned(facts.header):
        file_dtype = np.dtype(np.uint8)
        quirks.append("MRC mode 0 from IMOD without its signed-bytes flag: read as unsigned bytes")
    dtype = _check_dtype(file_dtype, str(file))
    file_axes, axis_notes = _mrc_file_axes(facts.header, len(facts.shape), file)
    shape = facts.shape if file_axes is None else tuple(facts.shape[a] for a in file_axes)
    stack = facts.stack
    nspg = int(facts.header.ispg)
    axes = _default_axes(len(shape), str(file)) if not (stack and len(shape) == 4) else "tzyx"
    notes = [_MRC_NOTES, *quirks, *axis_notes]
    # the MRC voxel size is a float32 cell size over the sampling: 7 significant digits, in angstrom
    sizes = facts.voxel
    voxel: tuple[float | None, ...] | None = tuple(
        round_to(sizes[a], 7) if sizes[a] > 0 else None for a in "zyx"
    )
    if stack and len(shape) == 3:
        voxel = (None, *voxel[1:])  # type: ignore[index]
        notes.append(
            f"image stack (space group {nspg}): the z axis is the image index; give the z spacing with --voxel-size"
        )
    if voxel is not None and all(v is None for v in voxel):
        voxel = None
        notes.append("the MRC header gives no cell size; pass --voxel-size")
    return StoredArraySource(
        kind="mrc",
        path=str(file),
        file=str(file),
        key="",
        axes=axes,
        shape=shape,
        dtype=dtype.str,
        voxel_size=voxel,
        unit="angstrom" if voxel is not None else None,
        voxel_source="mrc:header cella/mx,my,mz" if voxel is not None else "none",
        not_carried=notes,
        files=[str(file)],
        file_axes=file_axes,
    )


# -------------------------------------------------------------------- N5
def n5_arrays(root: Path) -> list[str]:
    """The arrays of an N5 container (folders whose ``attributes.json`` has dimensions).

    Walked with :func:`curated.walk.walk`: links are not followed (not even to
    files), unreadable folders are passed over; names sorted.
    """
    arrays = []
    for ev in walk(root, errors="report"):
        if (
            type(ev) is Files
            and "attributes.json" in ev.names
            and "dimensions" in _json_or_empty(Path(ev.folder) / "attributes.json")
        ):
            arrays.append("/" + ev.prefix.rstrip("/"))
    return sorted(arrays)


def _chunk_files(target: Path, metadata: frozenset[str]) -> int:
    """How many chunk files an array folder holds (regular files other than its ``metadata``).

    A symbolic link or special file among them is refused: the array would be read
    through it, and a chunk that is a link can be any file on the machine.
    """
    n = 0
    for ev in walk(target, errors="report"):
        if type(ev) is Files:
            n += sum(1 for name in ev.names if name not in metadata)
        elif type(ev) is Special:
            what = "symbolic link" if ev.kind == "link" else "special file"
            msg = (
                f"{ev.rel} in the array is a {what}; chunks are read only from regular files "
                "inside the store (a link could bring in any file): replace it with the file itself"
            )
            raise InputError(msg, path=target)
    return n


_N5_METADATA = frozenset({"attributes.json"})
_ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})


def _refuse_linked_levels(store: Path, target: Path) -> None:
    """Refuse an array reached through a symbolic link inside ``store`` (a level linked to elsewhere)."""
    here = store
    for part in target.relative_to(store).parts:
        here = here / part
        if here.is_symlink():
            msg = (
                f"{here.relative_to(store).as_posix()} in the store is a symbolic link; arrays are "
                "read only from inside the store (a link could bring in any files): copy them in"
            )
            raise InputError(msg, path=store)


def zarr_chunk_count(arr: Any, target: Path) -> ChunkCount:
    """The chunks a Zarr array in the folder ``target`` stores and claims, counting its files.

    zarr's own count visits every key of the chunk grid, so a store claiming 10^15
    voxels took forever; and a chunk extent of 0 divided by zero. The count is of
    shards where the array is sharded (what is stored), else of chunks.
    """
    grid = tuple(int(c) for c in (getattr(arr, "shards", None) or arr.chunks))
    if any(c <= 0 for c in grid):
        msg = f"chunk shape {list(grid)} is not positive in every axis; the array's metadata is damaged"
        raise InputError(msg, path=target)
    stored = _chunk_files(target, _ZARR_METADATA)
    fill = _plain(arr.fill_value) if arr.fill_value is not None else 0
    return ChunkCount(stored, _expected_chunks(tuple(arr.shape), grid), grid, fill)


def _open_n5(root: Path, key: str, shown: str) -> StoredArraySource:

    target = root / key.strip("/")
    meta = target / "attributes.json"
    try:
        attrs = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
    except ValueError as exc:
        raise ConversionError(f"attributes.json is not valid JSON ({exc})", path=meta) from None
    if "dimensions" not in attrs:
        arrays = n5_arrays(root)
        msg = f"{key or '/'} is an N5 group, not an array; arrays in the store: {', '.join(arrays[:10]) or 'none'}; name one as {root.name}:/path"
        raise InputError(msg, path=root)
    try:
        arr = _open_array("n5", str(root), key)
    except Exception as exc:  # tensorstore raises ValueError with the store's complaint
        raise ConversionError(f"cannot be opened as N5 ({exc})", path=target) from None
    dtype = _check_dtype(np.dtype(arr.dtype.numpy_dtype), shown)
    shape = tuple(int(n) for n in arr.shape)
    axes = _default_axes(len(shape), shown)
    # N5 lists dimensions fastest-first (x y z); the array is read transposed (z y x), so
    # attribute lists in N5 order are reversed too
    voxel, unit, origin, notes = _voxel_from_attrs(attrs, axes, "n5", reverse=True)
    block = tuple(int(b) for b in attrs.get("blockSize", []))
    count = None
    if len(block) == len(shape) and all(b > 0 for b in block):
        stored = _chunk_files(target, _N5_METADATA)
        count = ChunkCount(stored, _expected_chunks(shape, block[::-1]), block[::-1], 0)
        notes += _absent_chunks(count)
    return StoredArraySource(
        kind="n5",
        path=shown,
        file=str(root),
        key=key,
        axes=axes,
        shape=shape,
        dtype=dtype.str,
        chunks=tuple(int(c) for c in arr.chunk_layout.read_chunk.shape),  # after the transpose
        voxel_size=voxel,
        unit=unit,
        voxel_source=origin,
        not_carried=notes
        + _other_attrs(
            {
                k: v
                for k, v in attrs.items()
                if k not in ("dimensions", "blockSize", "dataType", "compression")
            },
            "N5 attributes",
        ),
        files=[str(root)],
        stored=count,
    )


def _json_or_empty(p: Path) -> dict[str, Any]:
    try:
        got = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


# ------------------------------------------------------------------ Zarr
def _open_zarr(root: Path, key: str, shown: str) -> StoredArraySource:
    import zarr

    target = root / key.strip("/")
    try:
        node = zarr.open(store=str(target), mode="r")
    except Exception as exc:  # zarr raises several kinds for missing/damaged metadata
        msg = f"cannot be opened as Zarr ({type(exc).__name__}: {exc}); give a Zarr array, an OME-Zarr image, or STORE.zarr:/path/to/array"
        raise InputError(msg, path=target) from None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        if declares_image(attrs):
            return _open_ome_zarr(target, shown)
        # nested too (CREMI-style volumes/labels/...): members at any depth
        members = sorted(("/" + name, m) for name, m in node.members(max_depth=None))
        images = _outermost(
            [name for name, m in members if isinstance(m, zarr.Group) and declares_image(m.attrs)]
        )
        if len(images) == 1 and "bioformats2raw.layout" in attrs:
            # bioformats2raw's container of one series: the image is its only OME-Zarr member
            return _open_ome_zarr(target / images[0].strip("/"), f"{shown}:{images[0]}")
        if images:
            listed = f"OME-Zarr images in it: {', '.join(images[:10])}"
        else:
            arrays = [name for name, m in members if isinstance(m, zarr.Array)]
            listed = f"arrays in it: {', '.join(arrays[:10]) or 'none'}"
        msg = f"{key or '/'} is a Zarr group, not an array or OME-Zarr image; {listed}; name one as {root.name}:/path"
        raise InputError(msg, path=target)
    dtype = _check_dtype(node.dtype, shown)
    axes = _default_axes(node.ndim, shown)
    attrs = {k: _plain(v) for k, v in dict(node.attrs).items()}
    voxel, unit, origin, notes = _voxel_from_attrs(attrs, axes, "zarr")
    _refuse_linked_levels(root, target)
    count = zarr_chunk_count(node, target)
    notes += _absent_chunks(count)
    return StoredArraySource(
        kind="zarr",
        path=shown,
        file=str(root),
        key=key,
        axes=axes,
        shape=tuple(int(n) for n in node.shape),
        dtype=dtype.str,
        chunks=tuple(int(c) for c in node.chunks),
        voxel_size=voxel,
        unit=unit,
        voxel_source=origin,
        not_carried=notes + _other_attrs(attrs, "Zarr attributes"),
        files=[str(root)],
        stored=count,
    )


def _outermost(groups: list[str]) -> list[str]:
    """Sorted group paths without those inside another listed one (an image's label images)."""
    kept: list[str] = []
    for g in groups:
        if not any(g.startswith(k + "/") for k in kept):
            kept.append(g)
    return kept


def _open_ome_zarr(root: Path, shown: str) -> StoredArraySource:
    """Level 0 of an existing OME-Zarr image (0.4 or 0.5); the pyramid is rebuilt from it."""
    from curated.images.reader import open_image

    img = open_image(root)
    names = "".join(img.axes)
    if not set(names) <= set("tczyx") or len(set(names)) != len(names):
        msg = f"axes {img.axes} are not a subset of t c z y x; curated converts only those"
        raise ConversionError(msg, path=root)
    order = [a for a in "tczyx" if a in names]
    if names != "".join(order):
        msg = f"axes {img.axes} are not in t c z y x order"
        raise ConversionError(msg, path=root)
    level0 = img.levels[0]
    dtype = _check_dtype(level0.dtype, shown)
    scale = dict(zip(img.axes, img.scale[0], strict=True))
    units = dict(zip(img.axes, img.units, strict=True))
    space_units = {units[a] for a in "zyx" if a in units and units[a]}
    voxel: tuple[float | None, ...] | None = None
    unit = None
    notes = [f"OME-Zarr {img.ngff_version} levels 1+ (rebuilt from level 0)"]
    if len(space_units) == 1:
        unit = length_unit(space_units.pop())
        voxel = tuple(
            round_to(scale[a], significant_digits(scale[a])) if a in scale else None for a in "zyx"
        )
    else:
        notes.append("the space axes state no single unit; voxel size not used (pass --voxel-size)")
    if any(v != 0 for v in img.translation[0]):
        notes.append(f"level 0 translation {img.translation[0]}")
    _refuse_linked_levels(root, root / img.level_paths[0])
    count = zarr_chunk_count(level0, root / img.level_paths[0])
    notes += _absent_chunks(count)
    if img.label_names():
        notes.append(
            f"label images ({', '.join(img.label_names())}); add them with `curated labels add`"
        )
    if "omero" in img.ome:
        notes.append("omero rendering settings (recomputed)")
    return StoredArraySource(
        kind="ome-zarr",
        path=shown,
        file=str(root),
        key=img.level_paths[0],
        axes=names,
        shape=tuple(int(n) for n in level0.shape),
        dtype=dtype.str,
        chunks=tuple(int(c) for c in level0.chunks),
        voxel_size=voxel,
        unit=unit,
        voxel_source=f"ome-zarr {img.ngff_version} coordinateTransformations" if voxel else "none",
        not_carried=notes,
        files=[str(root)],
        stored=count,
    )


__all__ = [
    "ChunkCount",
    "StoredArraySource",
    "close_stored",
    "is_stored",
    "open_stored",
    "sparse_problem",
    "sparse_summary",
    "split_key",
    "zarr_chunk_count",
]
