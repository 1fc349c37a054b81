"""Image sources the converter reads: multi-page (Big)TIFF, OME-TIFF, ImageJ hyperstacks,
vendor SEM TIFFs, folders of per-slice 2D TIFFs, in-memory / dask / zarr arrays, and (through
:mod:`curated.images.stored`) HDF5, MRC, Zarr, N5 and OME-Zarr 0.4/0.5 stores.

A source is a small picklable object: its page table is built once when it is
opened (checking every page or slice), and :meth:`TiffSource.read` reads any
region by path, so shard tasks can run in threads or on dask.distributed workers.
Uncompressed pages are read with ``os.pread`` (no memory map, so the page cache
does not count against the process's memory); strips and tiles of compressed
pages are decoded only where the region touches them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import warnings
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from curated.errors import ConversionError, InputError
from curated.images.segments import SEGMENTS, file_identity
from curated.images.stored import StoredArraySource, is_stored, open_stored
from curated.images.units import (
    convert_length,
    imagej_units,
    length_unit,
    round_to,
    significant_digits,
    to_unit,
)
from curated.objstore import is_url

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
SUPPORTED_DTYPES = ("uint8", "uint16", "int8", "int16", "uint32", "int32", "float32")
_SPACE = "zyx"

# TIFF tags a conversion consumes; everything else is reported as "not carried over"
_CONSUMED_TAGS = {
    "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
    "PhotometricInterpretation", "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts",
    "XResolution", "YResolution", "ResolutionUnit", "PlanarConfiguration", "SampleFormat",
    "TileWidth", "TileLength", "TileOffsets", "TileByteCounts", "Predictor", "ImageDescription",
    "Software", "FillOrder", "Orientation", "MinSampleValue", "MaxSampleValue", "SMinSampleValue",
    "SMaxSampleValue", "ExtraSamples", "JPEGTables", "DateTime",
}  # fmt: skip


_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
"""A number in a file name: digits, with a decimal fraction (``z_1.25um``) when there is one."""


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``slice2`` before ``slice10`` (and ``z_1.25`` before ``z_1.5``)."""
    return [Decimal(t) if i % 2 else t.lower() for i, t in enumerate(_NUMBER.split(name))]


_TIFF_CACHE_SIZE = 8
_tiff_lock = threading.Lock()
_tiff_cache: OrderedDict[str, tuple[tuple[int, ...], Any]] = OrderedDict()


def _frame(path: str, index: int, identity: tuple[int, ...]) -> Any:
    """Page ``index`` of the TIFF at ``path``, from a small process-wide cache of parsed files.

    Parsing (walking the IFD chain) is not thread-safe in tifffile, so it happens
    under a lock; pixel data are then read with ``os.pread`` on our own descriptor.
    ``identity`` (:func:`curated.images.segments.file_identity` of that descriptor): a
    file parsed when it was another version (rewritten since) is parsed again.
    """
    import tifffile

    with _tiff_lock:
        known = _tiff_cache.get(path)
        if known is not None and known[0] != identity:
            _tiff_cache.pop(path)[1].close()
            known = None
        if known is None:
            known = (identity, tifffile.TiffFile(path))
            _tiff_cache[path] = known
            while len(_tiff_cache) > _TIFF_CACHE_SIZE:
                _, (_, old) = _tiff_cache.popitem(last=False)
                old.close()
        else:
            _tiff_cache.move_to_end(path)
        return known[1].pages[index]


def close_cached_files() -> None:
    """Close the parsed TIFF files (and HDF5/Zarr/N5 handles) kept between reads, and drop the
    decoded segments kept (:data:`curated.images.segments.SEGMENTS`), after a conversion."""
    with _tiff_lock:
        while _tiff_cache:
            _, (_, tf) = _tiff_cache.popitem()
            tf.close()
    SEGMENTS.clear()
    from curated.images.stored import close_stored

    close_stored()


class _Descriptors:
    """File descriptors opened for one read call and closed at its end."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def get(self, path: str) -> int:
        fd = self.fds.get(path)
        if fd is None:
            fd = self.fds[path] = os.open(path, os.O_RDONLY)
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _pread_exact(fd: int, n: int, offset: int, path: str, page: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        _truncated(n - len(data), path, page)
    return data


def _pread_into(fd: int, into: np.ndarray, offset: int, path: str, page: int) -> None:
    """Fill the C-contiguous array ``into`` with the file's bytes at ``offset`` (no copy in between)."""
    got = os.preadv(fd, [into], offset)
    if got != into.nbytes:
        _truncated(into.nbytes - got, path, page)


def _truncated(missing: int, path: str, page: int) -> None:
    msg = f"page {page} is truncated (file ends {missing} bytes early); the file is incomplete, copy it again"
    raise ConversionError(msg, path=path, details={"page": page})


@dataclass
class TiffSource:
    """A stack of TIFF pages (one file or a folder of slices) seen as one array.

    ``axes`` are the output axes in OME order (``t``, ``c``, ``z``, ``y``, ``x``;
    absent axes omitted). Page ``p`` of the stack holds the YX plane at leading
    index ``np.unravel_index(p, lead_shape)`` in the file's own axis order.
    """

    kind: str
    path: str
    files: list[str]
    axes: str
    shape: tuple[int, ...]
    dtype: str
    """numpy dtype string with byte order (``<u2``, ``>f4``...)."""
    page_file: np.ndarray
    page_index: np.ndarray
    page_offset: np.ndarray
    """Byte offset of an uncompressed contiguous page, or -1 (decode the page's segments)."""
    lead_shape: tuple[int, ...]
    lead_perm: tuple[int, ...]
    """For each output leading axis, its position among the file's leading axes."""
    voxel_size: tuple[float, ...] | None = None
    unit: str | None = None
    voxel_source: str = "none"
    not_carried: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What may be wrong with the source but does not stop it being read (a gap in the
    slice numbers)."""
    inverted: bool = False
    """The TIFF shows 0 as white (MinIsWhite, or a white-to-black grey palette): the values
    are kept as stored and the OME-Zarr's ``omero`` rendering is marked ``inverted``."""

    @property
    def page_shape(self) -> tuple[int, int]:
        return int(self.shape[-2]), int(self.shape[-1])

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Read ``region`` (one slice per output axis) into a new native-endian array."""
        ys, xs = region[-2], region[-1]
        lead = region[:-2]
        out_shape = tuple(s.stop - s.start for s in region)
        native = np.dtype(self.dtype).newbyteorder("=")
        out = np.empty(out_shape, dtype=native)
        ranges = [range(s.start, s.stop) for s in lead]
        fds = _Descriptors()
        rows: list[np.ndarray] = []  # one buffer of whole page rows, reused for every page
        try:
            for pos in np.ndindex(*[len(r) for r in ranges]):
                out_idx = [r[p] for r, p in zip(ranges, pos, strict=True)]
                file_idx = [0] * len(self.lead_shape)
                for o, fpos in zip(out_idx, self.lead_perm, strict=True):
                    file_idx[fpos] = o
                page = (
                    int(np.ravel_multi_index(file_idx, self.lead_shape)) if self.lead_shape else 0
                )
                if not self._read_page_into(out[pos], page, ys, xs, fds, rows):
                    out[pos] = self._decode_page(
                        page, self.files[int(self.page_file[page])], ys, xs, fds
                    )
        finally:
            fds.close()
        return out

    def _read_page_into(
        self,
        into: np.ndarray,
        page: int,
        ys: slice,
        xs: slice,
        fds: _Descriptors,
        rows: list[np.ndarray],
    ) -> bool:
        """Read rows ``ys``, columns ``xs`` of an uncompressed contiguous page into ``into``
        (native byte order); ``False`` when the page is compressed or segmented (decode it).

        Whole-width windows are read straight into ``into``; a window narrower than the page
        goes through ``rows`` (whole rows, one read), a narrow one row by row."""
        off = int(self.page_offset[page])
        if off < 0:
            return False
        path = self.files[int(self.page_file[page])]
        fd = fds.get(path)
        w = self.page_shape[1]
        dt = np.dtype(self.dtype)
        isz = dt.itemsize
        nrows = ys.stop - ys.start
        ncols = xs.stop - xs.start
        start = off + ys.start * w * isz
        if ncols == w and into.flags.c_contiguous:
            _pread_into(fd, into, start, path, page)
            if not dt.isnative:
                into.byteswap(inplace=True)
            return True
        if ncols * 4 >= w or nrows == 1:
            if not rows or rows[0].shape[0] < nrows:
                rows[:] = [np.empty((nrows, w), dtype=dt)]
            buf = rows[0][:nrows]
            _pread_into(fd, buf, start, path, page)
            into[...] = buf[:, xs]
            return True
        # narrow window of a wide page: read only the needed part of each row
        rowbytes = ncols * isz
        for i in range(nrows):
            data = _pread_exact(
                fd, rowbytes, off + ((ys.start + i) * w + xs.start) * isz, path, page
            )
            into[i] = np.frombuffer(data, dtype=dt)
        return True

    def _decode_page(
        self, page: int, path: str, ys: slice, xs: slice, fds: _Descriptors
    ) -> np.ndarray:
        """Rows ``ys``, columns ``xs`` of a compressed (or segmented) page, decoding only the
        strips or tiles they touch. A segment the window uses in part is kept decoded in
        :data:`curated.images.segments.SEGMENTS` for the reads of the next windows (a
        single-strip page is otherwise decoded again by every shard that touches it)."""
        if self.kind == "png-slices":
            return _decode_png(path, page, self.page_shape, np.dtype(self.dtype), ys, xs)
        try:
            fd = fds.get(path)
            identity = file_identity(fd)
            ifd = int(self.page_index[page])
            frame = _frame(path, ifd, identity)
            p = getattr(frame, "keyframe", None) or frame
            out = np.empty(
                (ys.stop - ys.start, xs.stop - xs.start),
                dtype=np.dtype(self.dtype).newbyteorder("="),
            )
            for s, (y0, x0, h, w) in _segments(p, ys, xs):
                partial = y0 < ys.start or y0 + h > ys.stop or x0 < xs.start or x0 + w > xs.stop

                def decode(
                    s: int = s, at: tuple[int, int, int, int] = (y0, x0, h, w)
                ) -> tuple[np.ndarray, tuple[int, int]]:
                    return _decode_segment(frame, p, s, fd, path, page, at)

                key = (path, identity, ifd, s)
                part, ya, xa = SEGMENTS.window(key, decode, partial, ys, xs)
                h, w = part.shape
                out[ya - ys.start : ya - ys.start + h, xa - xs.start : xa - xs.start + w] = part
            return out
        except ConversionError:
            raise
        except Exception as exc:  # codec errors on damaged data
            msg = f"page {page} cannot be decoded ({exc}); the file may be truncated or damaged"
            raise ConversionError(msg, path=path, details={"page": page}) from exc


def _segments(p: Any, ys: slice, xs: slice) -> list[tuple[int, tuple[int, int, int, int]]]:
    """The strips or tiles of page ``p`` that rows ``ys``, columns ``xs`` touch: their index
    and their extent ``(y0, x0, height, width)`` in the page (clipped to the image)."""
    height, width = int(p.imagelength), int(p.imagewidth)
    if p.is_tiled:
        tl, tw = int(p.tilelength), int(p.tilewidth)
        ntx = -(-width // tw)
        return [
            (ty * ntx + tx, (ty * tl, tx * tw, min(tl, height - ty * tl), min(tw, width - tx * tw)))
            for ty in range(ys.start // tl, (ys.stop - 1) // tl + 1)
            for tx in range(xs.start // tw, (xs.stop - 1) // tw + 1)
        ]
    rps = min(p.rowsperstrip or height, height)
    return [
        (s, (s * rps, 0, min(rps, height - s * rps), width))
        for s in range(ys.start // rps, (ys.stop - 1) // rps + 1)
    ]


def _decode_segment(
    frame: Any, p: Any, s: int, fd: int, path: str, page: int, at: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """Segment ``s`` of ``frame`` read from ``fd`` and decoded: (rows x columns, its origin).

    A segment without data (offset or byte count 0: a sparse TIFF) is ``at``'s extent
    ``(y0, x0, height, width)`` of zeros, as tifffile and GDAL read it."""
    offset, count = int(frame.dataoffsets[s]), int(frame.databytecounts[s])
    if not offset or not count:
        y0, x0, h, w = at
        return np.zeros((h, w), dtype=p.dtype), (y0, x0)
    data = _pread_exact(fd, count, offset, path, page)
    seg, idx, _ = p.decode(data, s, jpegtables=p.jpegtables)
    if seg is None:  # tifffile gives no array for a segment without data
        msg = f"page {page}: segment {s} cannot be decoded; the file may be truncated or damaged"
        raise ConversionError(msg, path=path, details={"page": page, "segment": s})
    return np.asarray(seg).reshape(seg.shape[-3], seg.shape[-2]), (int(idx[2]), int(idx[3]))


@dataclass
class ArraySource:
    """A numpy, dask or zarr array (or anything with ``shape``, ``dtype`` and slicing)."""

    array: Any
    axes: str
    kind: str = "array"
    path: str = "<array>"
    voxel_size: tuple[float, ...] | None = None
    unit: str | None = None
    voxel_source: str = "given"
    files: list[str] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def dtype(self) -> str:
        return np.dtype(self.array.dtype).str

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        block = self.array[region]
        if hasattr(block, "compute"):
            block = block.compute(scheduler="synchronous")
        return np.asarray(block)


Source = TiffSource | ArraySource | StoredArraySource


# ---------------------------------------------------------------- opening


def open_source(path: str | Path) -> TiffSource | StoredArraySource:
    """Open a TIFF file or a folder of per-slice TIFFs (or grey PNGs) as a :class:`TiffSource`.

    HDF5 datasets (``FILE.h5:/path/to/dataset``), MRC files, Zarr v2/v3 and N5 arrays
    and OME-Zarr 0.4/0.5 images open as a
    :class:`curated.images.stored.StoredArraySource` instead.

    Raises
    ------
    InputError
        Missing path, empty folder, not a TIFF.
    ConversionError
        Truncated pages, slices of different shape or dtype, unsupported pixel types.
    """
    if is_url(path):  # Path() would fold "s3://b/k" into "s3:/b/k" and call it missing
        msg = "is in an object store; sources are read from local (or mounted) files: copy it here first (e.g. aws s3 sync URL DIR) and convert the copy"
        raise InputError(msg, path=str(path))
    if is_stored(path):
        return open_stored(path)
    p = Path(path)
    if not p.exists():
        _unknown_container(str(path))
        msg = "does not exist; give a TIFF file or a folder of per-slice TIFFs"
        raise InputError(msg, path=p)
    if p.is_file() and p.name.lower().endswith(".ome"):
        return _open_companion(p)
    if p.is_dir():
        return _open_folder(p)
    return _open_file(p)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _unknown_container(text: str) -> None:
    """Refuse ``FILE:/key`` where FILE exists but is no container named as curated reads them
    (a NeXus ``.nxs``: HDF5 under another name), rather than call it missing."""
    file, sep, _ = text.partition(":/")
    if not sep or not Path(file).is_file():
        return
    if not _is_hdf5(Path(file)):
        msg = f"is no HDF5 file, Zarr or N5 store, so it holds no dataset {text[len(file) + 1 :]}; give the file alone"
        raise InputError(msg, path=file)
    raise InputError(_HDF5_ELSEWHERE.format(suffix=Path(file).suffix or "no suffix"), path=file)


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


_HDF5_ELSEWHERE = (
    "is an HDF5 file under another name ({suffix}); curated reads datasets from HDF5 files "
    "named .h5, .hdf5, .hdf or .he5, as arrays in t c z y x order, and Thermo Fisher Velox "
    ".emd files. Other vendor HDF5 formats keep their own layout: export the image as TIFF, or "
    "write the dataset in z y x order to an .h5 file and convert that"
)


def with_axes(src: TiffSource | StoredArraySource, axes: str) -> TiffSource | StoredArraySource:
    """``src`` read with the curator's axis names (``zyx``, ``czyx``...) instead of the file's.

    For files whose metadata names the axes wrongly, most often an ImageJ TIFF written
    without axes (tifffile then calls a stack's leading axis channels, ``CYX``). A TIFF's
    axes are given in the file's own order, its axes of size 1 left out; they may be in
    any order (they are put into OME order ``t c z y x``). An array in an HDF5 / MRC /
    Zarr / N5 file is named axis by axis and must already be in OME order. OME-Zarr and
    OME-TIFF state their axes; they are not renamed.
    """
    given = axes.strip().lower()
    if len(set(given)) != len(given) or not set(given) <= set("tczyx") or not given.endswith("yx"):
        msg = f"axes {axes!r}: give each of t, c, z, y, x at most once, ending in yx (e.g. zyx or czyx)"
        raise InputError(msg, field="axes")
    if src.kind in ("ome-zarr", "ome-tiff"):
        msg = f"states its axes ({src.axes}); --axes only renames those of files that do not"
        raise InputError(msg, path=src.path, field="axes")
    noted = [
        *src.not_carried,
        f"axes {given} given by the curator (the file's metadata reads {src.axes})",
    ]
    if isinstance(src, StoredArraySource):
        if len(given) != len(src.shape) or "".join(a for a in "tczyx" if a in given) != given:
            msg = f"axes {axes!r} do not fit the array's {len(src.shape)} axes {tuple(src.shape)}: name each, in t c z y x order"
            raise InputError(msg, path=src.path, field="axes")
        return replace(src, axes=given, not_carried=noted)
    lead = given[:-2]
    named = [i for i, n in enumerate(src.lead_shape) if n > 1]
    if len(lead) != len(named):
        sizes = tuple(src.lead_shape[i] for i in named)
        msg = f"axes {axes!r} name {len(lead)} axes before yx, but the file has {len(named)} of more than one plane ({sizes})"
        raise InputError(msg, path=src.path, field="axes")
    order = sorted(range(len(lead)), key=lambda k: "tcz".index(lead[k]))
    perm = tuple(named[k] for k in order)
    out_lead = tuple(src.lead_shape[i] for i in perm)
    return replace(
        src,
        axes="".join(lead[k] for k in order) + "yx",
        shape=(*out_lead, *src.shape[-2:]),
        lead_perm=perm,
        not_carried=noted,
    )


def _open_companion(companion: Path) -> TiffSource:
    """An OME companion file (``*.companion.ome``): the TIFF holding its image, with the companion's sizes."""
    xml = companion.read_text(encoding="utf-8", errors="replace")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError(f"is not valid OME-XML ({exc})", path=companion) from None
    images = [el for el in root.iter() if _local(el) == "Image"]
    if len(images) != 1:
        names = ", ".join(el.get("Name") or el.get("ID") or "?" for el in images[:8])
        msg = f"describes {len(images)} images ({names or 'none'}); convert one image's TIFF file (its sizes are read from this companion)"
        raise InputError(msg, path=companion)
    files = sorted(
        {u.get("FileName") for u in images[0].iter() if _local(u) == "UUID" and u.get("FileName")}
    )
    if len(files) != 1 or Path(files[0]).is_absolute() or ".." in Path(files[0]).parts:
        msg = f"puts the image's planes in {len(files)} files ({', '.join(files[:4]) or 'none named'}); curated converts an image held in one TIFF beside the companion"
        raise ConversionError(msg, path=companion)
    data = companion.parent / files[0]
    if not data.is_file():
        msg = f"names {files[0]} as the file holding the pixels, but it is not beside the companion"
        raise InputError(msg, path=companion)
    src = _open_file(data)
    got = _voxel_from_ome(xml, files[0])
    if got is not None:
        src.voxel_size, src.unit, src.voxel_source = got[0], got[1], f"ome-xml ({companion.name})"
    return src


LABEL_ONLY_DTYPES = ("uint64", "int64", "bool")
"""Pixel types a source opens with that only label volumes may have (CREMI's uint64 ids,
1-bit masks); :func:`check_image_dtype` refuses them for an image."""


def _check_dtype(dtype: np.dtype, path: Path) -> None:
    name = np.dtype(dtype).newbyteorder("=").name
    if name not in SUPPORTED_DTYPES and name not in LABEL_ONLY_DTYPES:
        msg = f"pixel type {np.dtype(dtype).name} is not supported; convert to uint8, uint16 or float32 first"
        raise ConversionError(msg, path=path)


def check_image_dtype(dtype: str | np.dtype, path: str | Path) -> None:
    """Refuse, for an image, a pixel type only labels may have (uint64, int64, 1-bit)."""
    name = np.dtype(dtype).newbyteorder("=").name
    if name not in SUPPORTED_DTYPES:
        msg = (
            f"pixel type {name} is not supported for an image; convert to uint8, uint16 or "
            "float32 first (a label volume of this type: `curated labels add`)"
        )
        raise ConversionError(msg, path=str(path))


def _open_tiff(path: Path, **flags: bool) -> Any:
    import tifffile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tifffile.TiffFile(path, **flags)
    except Exception as exc:
        if _is_hdf5(path):
            raise InputError(_HDF5_ELSEWHERE.format(suffix=path.suffix), path=path) from None
        msg = f"cannot be read as TIFF ({exc}); if it was copied, copy it again"
        raise ConversionError(msg, path=path) from exc


def _page_table_entry(
    page: Any, index: int, size: int, path: Path, shape: tuple[int, int], dtype: np.dtype
) -> int:
    """Check one page's data lies inside the file; return its contiguous offset or -1."""
    if page is None:
        msg = f"page {index} cannot be read (broken IFD chain); the file is truncated or damaged"
        raise ConversionError(msg, path=path, details={"page": index})
    if tuple(page.shape[-2:]) != shape or page.dtype != dtype:
        msg = f"page {index} has shape {page.shape} {page.dtype}, unlike page 0 ({shape} {dtype})"
        raise ConversionError(msg, path=path, details={"page": index})
    lie = page_lie(page, index, size)
    if lie is not None:
        raise ConversionError(lie, path=path, details={"page": index})
    offs, counts = page.dataoffsets, page.databytecounts
    expected = shape[0] * shape[1] * dtype.itemsize
    kf = getattr(page, "keyframe", None) or page
    plain = (
        kf.compression == 1
        and not kf.is_tiled  # tiles back to back are not rows: they are decoded tile by tile
        and getattr(kf, "predictor", 1) == 1
        and getattr(kf, "fillorder", 1) == 1
        and kf.samplesperpixel == 1
    )
    back_to_back = all(offs[i] + counts[i] == offs[i + 1] for i in range(len(offs) - 1))
    if (
        plain
        and back_to_back
        and sum(counts) >= expected
        and kf.bitspersample == dtype.itemsize * 8
    ):
        return int(offs[0])
    return -1


# ---------------------------------------------------------------- lying headers


def page_lie(page: Any, index: int, size: int) -> str | None:
    """What page ``index``'s own header claims that its file cannot hold, else ``None``.

    Read from the header only: where its strips/tiles are (``StripOffsets`` +
    ``StripByteCounts``, past the end of a file of ``size`` bytes?) and whether they can
    hold the ``ImageWidth`` x ``ImageLength`` pixels of ``BitsPerSample`` bits the header
    announces: uncompressed, byte for byte; compressed with Deflate, LZW or PackBits, within
    the most that codec can expand (:data:`_MOST_EXPANSION`; a 60000 x 60000 claim in a
    strip of a few bytes would otherwise be decoded into gigabytes). Strips without data
    (a sparse TIFF) read as 0 and are not counted.
    """
    kf = getattr(page, "keyframe", None) or page
    offs = [int(o) for o in (page.dataoffsets or ())]
    counts = [int(c) for c in (page.databytecounts or ())]
    ends = [o + c for o, c in zip(offs, counts, strict=False) if c and o]
    if ends and max(ends) > size:
        return (
            f"page {index}'s header puts its pixel data at bytes up to {max(ends)} (StripOffsets + "
            f"StripByteCounts) but the file has {size} bytes: it is truncated or its header lies; "
            "if it was copied, copy it again"
        )
    if not offs or not counts or len(offs) != len(counts):
        return (
            f"page {index}'s header gives no pixel data (empty StripOffsets/StripByteCounts): "
            "the file is damaged"
        )
    ratio = _MOST_EXPANSION.get(int(kf.compression), 1 if kf.compression == 1 else 0)
    if not ratio:
        return None
    width, length = int(kf.imagewidth), int(kf.imagelength)
    depth = int(getattr(kf, "imagedepth", 1) or 1)
    bits, spp = int(kf.bitspersample), int(kf.samplesperpixel)
    if getattr(kf, "is_tiled", False):
        tw, tl = int(kf.tilewidth), int(kf.tilelength)
        width, length = -(-width // tw) * tw, -(-length // tl) * tl
    row_bits = width * bits * (spp if kf.planarconfig == 1 else 1)
    expected = -(-row_bits // 8) * length * depth * (1 if kf.planarconfig == 1 else spp)
    held = sum(counts)
    empty = sum(1 for o, c in zip(offs, counts, strict=True) if not o or not c)
    if empty:  # sparse: the empty segments' share is not held (it reads as 0)
        expected = expected * (len(counts) - empty) // len(counts)
    if ratio > 1 and held * ratio < expected:
        codec = getattr(kf.compression, "name", str(kf.compression))
        return (
            f"page {index}'s header says {int(kf.imagewidth)} x {int(kf.imagelength)} pixels of "
            f"{bits} bit(s) ({expected} bytes) but its {codec} strips hold {held} bytes, which "
            f"{codec} cannot expand past {held * ratio} bytes: ImageWidth/ImageLength lie or "
            "the file is damaged"
        )
    if ratio == 1 and held < expected:
        return (
            f"page {index}'s header says {int(kf.imagewidth)} x {int(kf.imagelength)} pixels of "
            f"{bits} bit(s){f' x {spp} samples' if spp > 1 else ''} ({expected} bytes) but its "
            f"strips hold {held} bytes: ImageWidth/ImageLength/BitsPerSample lie or the file is damaged"
        )
    return None


def _empty_in(page: Any) -> int:
    """How many of a page's strips or tiles hold no data (offset or byte count 0)."""
    offs, counts = page.dataoffsets or (), page.databytecounts or ()
    return sum(1 for o, c in zip(offs, counts, strict=False) if not o or not c)


def empty_segments(tf: Any) -> list[tuple[int, int]]:
    """``(page, empty segments)`` of the pages of ``tf`` (up to :data:`HEADER_PAGES` of them,
    evenly spread) that have strips or tiles without data: StripByteCounts (or the offset) 0,
    as GDAL writes sparse TIFFs. tifffile and GDAL read such a segment as 0 (the no-data
    value), and so does the converter (:func:`sparse_note`)."""
    found = []
    for index in _pages_to_check(len(tf.pages)):
        page = tf.pages.get(index, aspage=False)
        n = _empty_in(page) if page is not None else 0
        if n:
            found.append((index, n))
    return found


def sparse_note(found: list[tuple[int, int]], what: str = "page") -> str | None:
    """One line on the empty strips/tiles ``found`` (``(page, count)``), else ``None``."""
    if not found:
        return None
    segments = sum(n for _, n in found)
    shown = ", ".join(f"{what} {p} ({n})" for p, n in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return (
        f"sparse TIFF: {segments} strip(s)/tile(s) in {len(found)} {what}(s) hold no data "
        f"(StripByteCounts 0): {shown}{more}; read as 0, as tifffile and GDAL read them (a "
        "writer that stopped early leaves the same: if those areas should hold data, ask for "
        "the file again)"
    )


_MOST_EXPANSION = {8: 1100, 32946: 1100, 5: 4096, 32773: 64}
"""The most a codec can expand its input (Deflate: 1032:1; PackBits 64:1; LZW: about
1365:1 from encoders that clear the table when it is full, as libtiff's and ImageJ's do, but
a stream that goes on with a full table can repeat a string of up to 3,838 bytes per 12-bit
code, so the bound taken is 4096:1), with some room: a compressed page whose strips hold too
few bytes for the pixels its header claims cannot be decoded into them (:func:`page_lie`)."""


def header_lies(tf: Any, path: Path, complaints: list[str] = ()) -> str | None:  # type: ignore[assignment]
    """What a TIFF's headers claim that its pages contradict (one line), else ``None``.

    Checks, from headers only: the IFD chain (a loop back to an earlier page, which
    tifffile reports in ``complaints``), the first and last pages (:func:`page_lie`), and
    the page count and plane size the ImageJ header, tifffile's shaped description or
    the OME-XML announce against the pages the file holds.
    """
    loop = next((m for m in complaints if "circular reference" in m), None)
    if loop is not None:
        return (
            "its IFD chain loops back to an earlier page "
            f"({loop.split('> ')[-1]}): the page count cannot be trusted; the file is damaged"
        )
    size = path.stat().st_size
    npages = len(tf.pages)
    if not npages:
        return None
    for index in _pages_to_check(npages):
        try:
            page = tf.pages.get(index, aspage=True)  # a full page, never a bare frame
        except Exception as exc:  # tifffile raises many types on a damaged IFD
            return f"page {index} cannot be read ({exc}): the file is truncated or damaged"
        lie = page_lie(page, index, size)
        if lie is not None:
            return lie
    first = tf.pages.get(0, aspage=True)
    return _description_lie(tf, first, npages, size) or _ome_lie(tf, first, npages, path.name)


HEADER_PAGES = 2048
"""Most pages whose headers :func:`header_lies` reads (evenly spread beyond that; the
converter checks every page it reads anyway)."""


def _pages_to_check(npages: int) -> list[int]:
    if npages <= HEADER_PAGES:
        return list(range(npages))
    step = npages / (HEADER_PAGES - 1)
    return sorted({min(int(i * step), npages - 1) for i in range(HEADER_PAGES)} | {npages - 1})


def _plane_bytes(page: Any) -> int:
    kf = getattr(page, "keyframe", None) or page
    return int(np.prod(kf.shape)) * int(np.dtype(kf.dtype).itemsize) if kf.dtype else 0


def _contiguous_fits(first: Any, planes: int, size: int) -> bool:
    """A file whose planes follow the first one's data back to back (ImageJ > 4 GB,
    tifffile's contiguous series) may list one IFD for many planes, if the bytes are there."""
    offs = first.dataoffsets or (0,)
    return bool(first.compression == 1 and int(offs[0]) + planes * _plane_bytes(first) <= size)


def _description_lie(tf: Any, first: Any, npages: int, size: int) -> str | None:
    """An ImageJ header or tifffile shaped description announcing another number of pages."""
    if tf.is_imagej and isinstance(tf.imagej_metadata, dict):
        claimed = tf.imagej_metadata.get("images")
        if (
            isinstance(claimed, int)
            and claimed != npages
            and not (npages == 1 and claimed > 1 and _contiguous_fits(first, claimed, size))
        ):
            return (
                f"its ImageJ header says {claimed} image(s) (images={claimed}) but the file "
                f"holds {npages} page(s): the header lies or the file is truncated"
            )
    desc = first.description if isinstance(getattr(first, "description", None), str) else ""
    if desc.lstrip().startswith("{") and '"shape"' in desc:
        try:
            shape = json.loads(desc).get("shape")
        except (ValueError, AttributeError):
            shape = None
        if isinstance(shape, list) and all(isinstance(n, int) and n > 0 for n in shape):
            spp = int(first.samplesperpixel)
            if spp > 1 and shape[-1] == spp:  # samples interleaved: (..., y, x, s)
                plane, yx = 3, tuple(shape[-3:-1])
            elif spp > 1 and len(shape) >= 3 and shape[-3] == spp and int(first.planarconfig) == 2:
                # samples in planes of their own (PlanarConfiguration 2): (..., s, y, x), as
                # tifffile writes an array of 3 or 4 leading planes by default
                plane, yx = 3, tuple(shape[-2:])
            else:
                plane, yx = 2, tuple(shape[-2:])
            claimed = int(np.prod(shape[:-plane])) if len(shape) > plane else 1
            if yx != (int(first.imagelength), int(first.imagewidth)):
                return (
                    f"its ImageDescription says shape {shape} but its pages are "
                    f"{int(first.imagelength)} x {int(first.imagewidth)}: the description lies"
                )
            # several shaped series (tifffile's writer, one series per write() call): each
            # page states its own shape; beyond 64 pages the second and last pages tell
            shaped_series = (
                sum(1 for p in tf.pages if p is not None and p.is_shaped)
                if npages < 64
                else 1 + _shaped_at(tf, 1) + _shaped_at(tf, npages - 1)
            )
            if (
                claimed != npages
                and shaped_series <= 1
                and not (npages == 1 and claimed > 1 and _contiguous_fits(first, claimed, size))
            ):
                return (
                    f"its ImageDescription says shape {shape} ({claimed} page(s)) but the file "
                    f"holds {npages} page(s): the description lies or the file is truncated"
                )
    return None


def _ome_lie(tf: Any, first: Any, npages: int, name: str) -> str | None:
    """OME-XML announcing another plane size, or (one image in this file) another plane count."""
    if not tf.is_ome or not tf.ome_metadata:
        return None
    try:
        root = ET.fromstring(tf.ome_metadata)
    except ET.ParseError:
        return None  # unreadable OME-XML is reported (and not used) by the metadata reader
    images = [el for el in root.iter() if _local(el) == "Image"]
    pixels = [el for el in images[0].iter() if _local(el) == "Pixels"] if images else []
    if not pixels:
        return None
    px = pixels[0]
    try:
        sx, sy = int(px.get("SizeX", "0")), int(px.get("SizeY", "0"))
        sz, sc, st = (int(px.get(k, "1")) for k in ("SizeZ", "SizeC", "SizeT"))
    except ValueError:
        return "its OME-XML gives sizes that are not whole numbers: the OME-XML is damaged"
    if (sy, sx) != (int(first.imagelength), int(first.imagewidth)):
        return (
            f"its OME-XML says the image is {sx} x {sy} pixels (SizeX x SizeY) but its pages are "
            f"{int(first.imagewidth)} x {int(first.imagelength)}: the OME-XML does not describe this file"
        )
    elsewhere = any(
        _local(u) == "UUID" and u.get("FileName") not in (None, name) for u in root.iter()
    )
    if len(images) != 1 or elsewhere:
        return None  # planes spread over several images or files: counted by the OME reader
    planes = sz * sc * st
    spp = int(first.samplesperpixel)
    if spp > 1 and sc % spp == 0:
        planes //= spp  # RGB: the channels share one page
    if planes != npages:
        return (
            f"its OME-XML describes {planes} plane(s) (SizeZ={sz}, SizeC={sc}, SizeT={st}) but "
            f"the file holds {npages} page(s): the OME-XML lies or the file is truncated"
        )
    return None


class _TiffWarnings(logging.Handler):
    """Collects tifffile's warnings (it logs broken IFD chains instead of raising)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _shaped_at(tf: Any, index: int) -> bool:
    """Whether page ``index`` states its own shape (tifffile's ``{"shape": ...}`` description)."""
    try:
        return bool(getattr(tf.pages[index], "is_shaped", False))
    except Exception:  # a damaged page: reported by the page checks, not here
        return False


def one_page_series(tf: Any) -> bool:
    """Whether a TIFF holds one shaped series per page, each of the same 2D shape and type: a stack
    written a page at a time with tifffile's ``TiffWriter.write`` (each call starts a series
    and states its ``{"shape": [y, x]}``). Read with ``is_shaped=False``, it is one stack."""
    npages = len(tf.pages)
    if not tf.is_shaped or npages < 2:
        return False
    # every page states its shape (page 0's description alone is a lie :func:`header_lies` names)
    if not (_shaped_at(tf, 1) and _shaped_at(tf, npages - 1)):
        return False
    series = tf.series
    if len(series) != npages:
        return False
    first = series[0]
    return all(
        len(s.pages) == 1
        and s.shape == first.shape
        and s.dtype == first.dtype
        and len(s.shape) == 2
        for s in series
    )


def _open_file(path: Path) -> TiffSource:
    logger = logging.getLogger("tifffile")
    capture = _TiffWarnings()
    logger.addHandler(capture)
    try:
        tf = _open_tiff(path)
        try:
            npages_file = len(tf.pages)
            broken = [
                m
                for m in capture.messages
                if "invalid page offset" in m
                or "failed to reshape" in m
                or "corrupted" in m.lower()
            ]
            if broken:
                npages_file = min(npages_file, _first_short_page(tf, path))
                msg = f"page {npages_file} is truncated or missing (the file ends early: {broken[0].split('> ')[-1]}); the file is incomplete, copy it again"
                raise ConversionError(msg, path=path, details={"page": npages_file})
            lie = header_lies(tf, path, capture.messages)
            if lie is not None:
                raise ConversionError(lie, path=path)
            if not one_page_series(tf):
                return _source_from_tiff(tf, path)
            tf.close()
            tf = _open_tiff(path, is_shaped=False)
            src = _source_from_tiff(tf, path)
            src.warnings.append(
                f"holds {len(tf.pages)} images of one page each (as tifffile writes a page per "
                "write() call): read as one stack of its pages in file order"
            )
            return src
        finally:
            tf.close()
    finally:
        logger.removeHandler(capture)


def _first_short_page(tf: Any, path: Path) -> int:
    """For pages stored back to back, the first page whose data run past the end of the file."""
    try:
        p0 = tf.pages[0]
        if p0.compression != 1 or not p0.dataoffsets:
            return 1 << 62
        page_bytes = int(np.prod(p0.shape)) * p0.dtype.itemsize
        return max(0, (path.stat().st_size - int(p0.dataoffsets[0])) // page_bytes)
    except Exception:
        return 1 << 62


def _source_from_tiff(tf: Any, path: Path) -> TiffSource:
    if True:
        size = path.stat().st_size
        if not tf.series:
            msg = "contains no image pages"
            raise ConversionError(msg, path=path)
        chosen = _main_series(tf)
        series = tf.series[chosen]
        axes = series.axes.upper()
        if "S" in axes and series.shape[axes.index("S")] > 1:
            msg = f"has {series.shape[axes.index('S')]} samples per pixel (RGB or similar); only single-sample grey images are supported"
            raise ConversionError(msg, path=path)
        if axes[-2:] != "YX":
            msg = f"axes {axes!r} do not end in YX; cannot read it as a stack of planes"
            raise ConversionError(msg, path=path)
        dtype = np.dtype(series.dtype)
        _check_dtype(dtype, path)
        lead_axes = axes[:-2]
        lead_shape = tuple(int(n) for n in series.shape[:-2])
        h, w = (int(n) for n in series.shape[-2:])
        npages = int(np.prod(lead_shape)) if lead_shape else 1
        offsets = np.full(npages, -1, dtype=np.int64)
        index = np.arange(npages, dtype=np.int64)
        byteorder = tf.byteorder
        page_dtype = dtype.newbyteorder(byteorder)
        first = series.pages[0] if len(series.pages) else None
        if first is None:
            msg = "page 0 cannot be read; the file is truncated or damaged"
            raise ConversionError(msg, path=path, details={"page": 0})
        grey = _grey_kind(first)
        contiguous_series = getattr(series, "dataoffset", None)
        page_bytes = h * w * dtype.itemsize
        sparse: list[tuple[int, int]] = []
        if contiguous_series is not None and len(series.pages) < npages:
            end = int(contiguous_series) + npages * page_bytes
            if end > size:
                bad = max(0, (size - int(contiguous_series)) // page_bytes)
                msg = f"page {bad} is truncated (the file ends {end - size} bytes early); the file is incomplete, copy it again"
                raise ConversionError(msg, path=path, details={"page": int(bad)})
            offsets[:] = int(contiguous_series) + np.arange(npages, dtype=np.int64) * page_bytes
        else:
            pages = series.pages
            if len(pages) < npages:
                msg = f"page {len(pages)} is missing: the file holds {len(pages)} of {npages} pages; it is truncated"
                raise ConversionError(msg, path=path, details={"page": len(pages)})
            for i in range(npages):
                try:
                    pg = pages[i]
                except Exception as exc:
                    msg = f"page {i} cannot be read ({exc}); the file is truncated or damaged"
                    raise ConversionError(msg, path=path, details={"page": i}) from exc
                offsets[i] = _page_table_entry(pg, i, size, path, (h, w), dtype)
                index[i] = pg.index if isinstance(pg.index, int) else pg.index[-1]
                if n_empty := _empty_in(pg):
                    sparse.append((i, n_empty))
        out_axes, perm, out_shape_lead = _map_axes(lead_axes, lead_shape, path)
        meta = _voxel_from_metadata(tf, path)
        src = TiffSource(
            kind="ome-tiff" if tf.is_ome else ("imagej" if tf.is_imagej else "tiff"),
            path=str(path),
            files=[str(path)],
            axes=out_axes + "yx",
            shape=(*out_shape_lead, meta.image_rows or h, w),
            dtype=page_dtype.str,
            page_file=np.zeros(npages, dtype=np.int32),
            page_index=index,
            page_offset=offsets,
            lead_shape=lead_shape,
            lead_perm=perm,
            voxel_size=meta.voxel,
            unit=meta.unit,
            voxel_source=meta.origin,
            not_carried=_not_carried(first, tf)
            + meta.notes
            + _bar_note(meta, h)
            + ([_GREY_NOTES[grey]] if grey in _GREY_NOTES else [])
            + _other_series(tf, chosen)
            + [n for n in [sparse_note(sparse)] if n],
            inverted=grey == "MinIsWhite",
        )
    return src


def _main_series(tf: Any) -> int:
    """The image a file's conversion reads: its first series, unless that is a
    reduced-resolution preview (NewSubfileType 1, TIFF/EP's IFD 0) followed by the image."""
    for k, s in enumerate(tf.series):
        page = s.pages[0] if len(s.pages) else None
        if page is not None and not int(getattr(page, "subfiletype", 0)) & 1:
            return k
    return 0


def _other_series(tf: Any, chosen: int = 0) -> list[str]:
    """The images in a multi-image file besides the one converted (OME multi-image,
    thumbnails, overviews)."""
    rest = [tuple(int(n) for n in s.shape) for k, s in enumerate(tf.series) if k != chosen]
    if not rest:
        return []
    shown = ", ".join(str(r) for r in rest[:4]) + (" ..." if len(rest) > 4 else "")
    which = "the first" if chosen == 0 else f"image {chosen + 1}, the first at full resolution"
    return [f"{len(rest)} more image(s) in the file, not converted (only {which}): {shown}"]


def _bar_note(meta: _PageMetadata, height: int) -> list[str]:
    if meta.image_rows is None:
        return []
    return [
        f"vendor data bar: rows {meta.image_rows}-{height - 1} of each page are cropped (not image data)"
    ]


def _map_axes(
    lead_axes: str, lead_shape: tuple[int, ...], path: Path
) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Map the file's leading axes (e.g. ``TZC``, ``Q``, ``I``) onto OME ``t``, ``c``, ``z``."""
    names = []
    for a in lead_axes:
        if a in "ZQIP":
            names.append("z")
        elif a == "C":
            names.append("c")
        elif a == "T":
            names.append("t")
        elif a == "S":
            names.append("s")
        else:
            msg = f"axis {a!r} of the file has no OME-Zarr counterpart"
            raise ConversionError(msg, path=path)
    # axes of size 1 that would collide with another (ImageJ writes T, Z and C) are kept but ordered
    if len(set(names)) != len(names):
        msg = f"file axes {lead_axes!r} map to the same OME axis more than once"
        raise ConversionError(msg, path=path)
    order = [n for n in "tcz" if n in names]
    perm = tuple(names.index(n) for n in order)
    out_shape = tuple(lead_shape[names.index(n)] for n in order)
    # drop singleton c and t: a grey volume is zyx
    keep = [i for i, n in enumerate(order) if not (n in "ct" and out_shape[i] == 1)]
    if "s" in order:
        keep = [i for i in keep if order[i] != "s"]
    axes = "".join(order[i] for i in keep)
    return axes, tuple(perm[i] for i in keep), tuple(out_shape[i] for i in keep)


def _open_folder(folder: Path) -> TiffSource:
    tiffs, pngs, others = _slice_names(folder)
    if not tiffs and pngs:
        files, warned = _slice_files(folder, pngs, others)
        src = _open_png_folder(folder, files)
        return replace(src, warnings=warned + src.warnings)
    if not tiffs:
        jpegs = sum(1 for n in others if n.lower().endswith((".jpg", ".jpeg")))
        msg = "contains no TIFF slices (*.tif, *.tiff) or PNG slices (*.png); give a folder of per-slice 2D images"
        if jpegs:
            msg = (
                f"holds {jpegs} JPEG image(s) but no TIFF or PNG slices: JPEG is lossy and its "
                "decoded values differ between decoders, so curated does not read it; ask for the "
                "original TIFFs (or convert the JPEGs to PNG yourself and say so in the README)"
            )
        else:
            subs = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name[0] != ".")
            if subs:
                msg = (
                    f"contains no TIFF or PNG slices; its {len(subs)} sub-folder(s) ({', '.join(subs[:4])}"
                    f"{' ...' if len(subs) > 4 else ''}) are not searched: give the folder that holds "
                    "the slices (one folder per volume)"
                )
        raise InputError(msg, path=folder)
    files, warned = _slice_files(folder, tiffs, pngs + others)
    offsets = np.full(len(files), -1, dtype=np.int64)
    page_index = np.zeros(len(files), dtype=np.int64)
    shape0: tuple[int, int] | None = None
    dtype0: np.dtype | None = None
    meta0 = _PageMetadata()
    not_carried: list[str] = []
    grey0 = "MinIsBlack"
    unlike: list[str] = []  # slices stored with the other grey (MinIsWhite / MinIsBlack)
    sparse: list[tuple[int, int]] = []  # slices with strips/tiles that hold no data
    for i, f in enumerate(files):
        _gone(f, i)
        tf = _open_tiff(f)
        try:
            if not tf.pages or tf.pages[0] is None:
                msg = "slice has no readable image; it is truncated or not a TIFF"
                raise ConversionError(msg, path=f, details={"slice": i})
            page_no, page = _slice_page(tf, f, i)
            page_index[i] = page_no
            pshape = tuple(int(n) for n in page.shape)
            if len(pshape) != 2:
                msg = f"slice has shape {pshape}; every slice must be a single 2D grey plane"
                raise ConversionError(msg, path=f, details={"slice": i})
            grey = _grey_kind(page)
            if not i:
                grey0 = grey
            elif grey != grey0:
                unlike.append(f"{f.name} ({grey})")
            if shape0 is None:
                shape0, dtype0 = pshape, np.dtype(page.dtype)  # type: ignore[assignment]
                _check_dtype(dtype0, f)
                meta0 = _voxel_from_metadata(tf, f)
                not_carried = _not_carried(page, tf) + meta0.notes + _bar_note(meta0, pshape[0])
            elif pshape != shape0 or np.dtype(page.dtype) != dtype0:
                msg = (
                    f"slice {i} has shape {pshape} and dtype {np.dtype(page.dtype).name}, "
                    f"but {files[0].name} has {shape0} {dtype0.name}; every slice must match"  # type: ignore[union-attr]
                )
                raise ConversionError(
                    msg,
                    path=f,
                    details={"slice": i, "expected": list(shape0), "found": list(pshape)},
                )
            if i:
                _same_grid(meta0, _voxel_from_metadata(tf, f), files[0], f, i)
            if tf.byteorder != "<" and dtype0.itemsize > 1:  # type: ignore[union-attr]
                offsets[i] = -1
            else:
                offsets[i] = _page_table_entry(page, page_no, f.stat().st_size, f, shape0, dtype0)  # type: ignore[arg-type]
            if n_empty := _empty_in(page):
                sparse.append((i, n_empty))
        finally:
            tf.close()
    assert shape0 is not None and dtype0 is not None
    not_carried += [_GREY_NOTES[grey0]] if grey0 in _GREY_NOTES else []
    not_carried += [n for n in [sparse_note(sparse, "slice")] if n]
    if unlike:
        warned.append(
            f"{len(unlike)} slice(s) show their values otherwise than {files[0].name} "
            f"({grey0}), e.g. {unlike[0]}: values are kept as stored; if those slices look "
            "inverted or false-coloured beside the others, ask for them again"
        )
    # a slice states its own pixel size, never the spacing between slices: z is asked
    # for (--voxel-size) unless OME-XML states it
    voxel = meta0.voxel
    if voxel is not None and not meta0.origin.startswith("ome-xml"):
        voxel = (None, voxel[1], voxel[2])
    if meta0.image_rows is not None:
        shape0 = (meta0.image_rows, shape0[1])
    return TiffSource(
        kind="slices",
        path=str(folder),
        files=[str(f) for f in files],
        axes="zyx",
        shape=(len(files), *shape0),
        dtype=dtype0.newbyteorder("<").str if dtype0.itemsize > 1 else dtype0.str,
        page_file=np.arange(len(files), dtype=np.int32),
        page_index=page_index,
        page_offset=offsets,
        lead_shape=(len(files),),
        lead_perm=(0,),
        voxel_size=voxel,
        unit=meta0.unit,
        voxel_source=meta0.origin,
        not_carried=not_carried,
        warnings=warned,
        inverted=grey0 == "MinIsWhite",
    )


_GREY_NOTES = {
    "MinIsWhite": (
        "PhotometricInterpretation MinIsWhite (or a white-to-black grey palette): the values "
        "are kept as stored and the omero rendering is marked inverted, so the image shows "
        "as the TIFF does where a viewer honours it; others show its negative (ImageJ writes "
        "this for an inverting LUT)"
    ),
    "palette": (
        "ColorMap: a palette TIFF, whose values are kept as stored (ImageJ writes one for an "
        "image shown with a colour LUT, e.g. labels in glasbey: the values are the data); from "
        "a graphics program, the colours may be the data: ask the depositor"
    ),
}
"""What :func:`_grey_kind` finds that the converted image does not carry."""


def _grey_kind(page: Any) -> str:
    """How a page's values show: ``MinIsBlack``, ``MinIsWhite`` or ``palette`` (a colour
    table that is not a grey ramp; a grey-ramp table shows the values as they are)."""
    kf = getattr(page, "keyframe", None) or page
    photometric = int(getattr(kf, "photometric", 1))
    if photometric == 3:
        cmap = getattr(kf, "colormap", None)
        if _grey_ramp(cmap):
            return "MinIsBlack"
        if cmap is not None and _grey_ramp(np.asarray(cmap)[:, ::-1]):
            return "MinIsWhite"  # white to black: shown as MinIsWhite shows
        return "palette"
    return "MinIsWhite" if photometric == 0 else "MinIsBlack"


def _grey_ramp(cmap: Any) -> bool:
    """Whether a TIFF ColorMap (3 x 2**bits) maps every index to the grey of that value."""
    if cmap is None:
        return False
    c = np.asarray(cmap, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != 3 or c.shape[1] < 2 or c[0, -1] <= 0:
        return False
    ramp = np.round(np.arange(c.shape[1]) * (c[0, -1] / (c.shape[1] - 1)))
    return bool((c == c[0]).all() and np.array_equal(c[0], ramp))


def _slice_page(tf: Any, f: Path, index: int) -> tuple[int, Any]:
    """``(page number, page)`` of a slice file's one image: a reduced-resolution preview
    page (NewSubfileType 1), even one written first, is not it. A file holding more than
    one full-resolution plane is refused; only one of them would be read otherwise."""
    pages = tf.pages
    if len(pages) < 2:
        planes, chosen = 1, 0
        ij = tf.imagej_metadata if tf.is_imagej else None
        if isinstance(ij, dict) and isinstance(ij.get("images"), int):
            planes = ij["images"]  # an ImageJ file > 4 GB lists one page for all its planes
    else:
        full = [
            k
            for k, p in enumerate(pages)
            if p is not None and not int(getattr(p, "subfiletype", 0)) & 1
        ]
        planes, chosen = len(full), (full[0] if full else 0)
    if planes > 1:
        msg = (
            f"slice {index} holds {planes} pages; every slice must be one 2D plane: convert "
            "a multi-page file on its own, or move it out"
        )
        raise ConversionError(msg, path=f, details={"slice": index, "pages": planes})
    return chosen, pages[chosen]


_OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jp2", ".bmp", ".gif")


def _slice_names(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(TIFF, PNG, other image) file names in ``folder``; hidden files (``.DS_Store``, macOS
    ``._*`` AppleDouble files) and folders are left out. One listing, nothing opened or sorted."""
    tiffs: list[str] = []
    pngs: list[str] = []
    others: list[str] = []
    with os.scandir(folder) as entries:
        for e in entries:
            name = e.name
            low = name.lower()
            if name.startswith(".") or e.is_dir():
                continue
            if low.endswith(TIFF_SUFFIXES):
                tiffs.append(name)
            elif low.endswith(".png"):
                pngs.append(name)
            elif low.endswith(_OTHER_IMAGE_SUFFIXES):
                others.append(name)
    return tiffs, pngs, others


def _slice_files(folder: Path, names: list[str], others: list[str]) -> tuple[list[Path], list[str]]:
    """The slices in order and the warnings about their names; refused when they are not
    one numbered series (:func:`order_slices`) or when an image of another format carries
    a slice's name and a number no slice has (``s1.png`` among ``s0.tif``, ``s2.tif``; a
    ``s1.png`` preview beside ``s1.tif`` is no slice)."""
    order = order_slices(names)
    if order.problem is not None:
        raise ConversionError(order.problem, path=folder)
    stem = slice_pattern(_stem(order.names[0]))
    if "#" in stem:
        numbers = {_numbers(n) for n in order.names}
        stray = next(
            (
                n
                for n in sorted(others)
                if slice_pattern(_stem(n)) == stem and _numbers(n) not in numbers
            ),
            None,
        )
        if stray is not None:
            msg = (
                f"is a {Path(stray).suffix} file among {Path(order.names[0]).suffix} slices of the "
                "same names, with a number none of them has: a slice saved in another format; "
                "convert it like the others, or move it out"
            )
            raise ConversionError(msg, path=folder / stray)
    return [folder / n for n in order.names], [order.gaps] if order.gaps else []


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _numbers(name: str) -> tuple[Decimal, ...]:
    """The numbers in a file name without its suffix, by value (``s01.png`` and ``s1.tif``: 1)."""
    return tuple(Decimal(d) for d in _NUMBER.findall(_stem(name)))


def _gone(f: Path, index: int) -> None:
    """Refuse a slice that is a symbolic link to nothing (the slice it names is missing)."""
    if f.is_symlink() and not f.exists():
        msg = f"slice {index} is a broken symbolic link to {os.readlink(f)!r}; the slice it names is missing"
        raise ConversionError(msg, path=f, details={"slice": index})


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_PNG_COLOUR = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}


class PngHeader(NamedTuple):
    """What a PNG's IHDR chunk and its last 12 bytes say, without decoding it."""

    height: int
    width: int
    bit_depth: int
    colour_type: int
    ends_whole: bool
    """The last 12 bytes are the IEND chunk (a truncated copy lacks them)."""


def png_header(path: str | Path) -> PngHeader | None:
    """The PNG's header, or ``None`` when its first 33 bytes are no PNG signature and IHDR.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as f:
        head = f.read(33)
        size = os.fstat(f.fileno()).st_size
        tail = os.pread(f.fileno(), 12, max(0, size - 12))
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return PngHeader(
        height=int.from_bytes(head[20:24], "big"),
        width=int.from_bytes(head[16:20], "big"),
        bit_depth=head[24],
        colour_type=head[25],
        ends_whole=tail == _PNG_END,
    )


_PNG_PALETTE_CHUNKS = (b"PLTE", b"tRNS", b"bKGD", b"hIST", b"sPLT")
"""Chunks that belong to a palette (or name palette entries): left out when a palette PNG's
indices are decoded as grey (:func:`_png_indices`)."""


def png_palette(path: str | Path) -> np.ndarray | None:
    """The PLTE chunk of a palette PNG as a TIFF-like colour map (3 x entries: red, green,
    blue rows), read without decoding the image; ``None`` when there is none before the data.

    Raises ``OSError`` when the file cannot be read.
    """
    with open(path, "rb") as f:
        f.seek(8)
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind == b"PLTE":
                body = f.read(length)
                if length % 3 or len(body) < length:
                    return None
                return np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).T.astype(np.uint16)
            if kind in (b"IDAT", b"IEND"):
                return None
            f.seek(length + 4, os.SEEK_CUR)  # the body and its CRC


def png_grey_kind(path: str | Path, header: PngHeader) -> str:
    """How a PNG's values show, named as :func:`_grey_kind` names a TIFF's: ``MinIsBlack``
    (grey, or a grey-ramp palette), ``MinIsWhite`` (a white-to-black palette), ``palette``
    (a colour table: ImageJ writes one for an image shown with a LUT, its indices the data),
    or the colour type curated refuses (``RGB``, ``RGBA``, ``grey + alpha``).

    Raises ``OSError`` when the file cannot be read.
    """
    if header.colour_type == 0:
        return "MinIsBlack"
    if header.colour_type != 3:
        return _PNG_COLOUR.get(header.colour_type, f"colour type {header.colour_type}")
    cmap = png_palette(path)
    if cmap is None:
        return "palette"
    # the grey a palette shows for each index the PNG's depth can hold (entries past the
    # table's end show nothing: the ramp is judged on the entries given)
    if _grey_ramp(cmap):
        return "MinIsBlack"
    if _grey_ramp(cmap[:, ::-1]):
        return "MinIsWhite"
    return "palette"


_PNG_GREY_NOTES = {
    "MinIsWhite": (
        "PLTE: a white-to-black grey palette PNG, whose indices are kept as stored and the "
        "omero rendering is marked inverted, so the image shows as the PNG does where a viewer "
        "honours it (ImageJ writes this for an inverting LUT)"
    ),
    "palette": (
        "PLTE: a palette PNG, whose indices are kept as stored (ImageJ writes one for an image "
        "shown with a colour LUT, e.g. labels in glasbey: the indices are the data); from a "
        "graphics program, the colours may be the data: ask the depositor"
    ),
}
"""What :func:`png_grey_kind` finds that the converted image does not carry (as
:data:`_GREY_NOTES` for a TIFF)."""


class _PngSlice(NamedTuple):
    shape: tuple[int, int]
    dtype: np.dtype
    grey: str


def _png_header(path: Path, index: int) -> _PngSlice:
    """Shape, dtype and grey kind (:func:`png_grey_kind`) of a single-channel PNG slice from
    :func:`png_header`, checking that it ends whole.

    Nothing is decoded: the last 12 bytes must be the IEND chunk, which a truncated
    copy lacks. Grey PNGs are volume slices (1, 2, 4 and 8 bits read as uint8, 16
    bits as uint16; a folder may mix 1-bit masks with 8-bit slices, as public label sets
    do); so are palette PNGs, whose indices are read as the values, as a palette TIFF's
    are (ImageJ writes an image shown with a LUT as one). Colour and alpha images are
    refused rather than reduced to grey.
    """
    details = {"slice": index}
    try:
        h = png_header(path)
        grey = png_grey_kind(path, h) if h is not None else ""
    except OSError as exc:
        raise ConversionError(f"cannot be read ({exc})", path=path, details=details) from exc
    if h is None:
        msg = "is not a PNG image (no PNG signature and header); remove it or give only the slices"
        raise ConversionError(msg, path=path, details=details)
    depth, colour = h.bit_depth, h.colour_type
    if colour not in (0, 3) or depth not in (1, 2, 4, 8, 16) or (colour == 3 and depth > 8):
        kind = _PNG_COLOUR.get(colour, f"colour type {colour}")
        msg = f"is a {depth}-bit {kind} PNG; slices must be single-channel grey (or palette) PNGs"
        raise ConversionError(msg, path=path, details=details)
    if not h.ends_whole:
        msg = "does not end with the PNG end chunk: the file is truncated, copy it again"
        raise ConversionError(msg, path=path, details=details)
    return _PngSlice((h.height, h.width), np.dtype(np.uint8 if depth <= 8 else "<u2"), grey)


def _open_png_folder(folder: Path, files: list[Path]) -> TiffSource:
    """A folder of per-slice grey (or palette) PNGs (common for public EM labels and images):
    lossless, z unknown. Palettes are noted and judged as a TIFF's are (:data:`_GREY_NOTES`)."""
    _gone(files[0], 0)
    first = _png_header(files[0], 0)
    shape0, dtype0 = first.shape, first.dtype
    unlike: list[str] = []
    for i, f in enumerate(files[1:], start=1):
        _gone(f, i)
        got = _png_header(f, i)
        if (got.shape, got.dtype) != (shape0, dtype0):
            msg = (
                f"slice {i} has shape {got.shape} and dtype {got.dtype.name}, "
                f"but {files[0].name} has {shape0} {dtype0.name}; every slice must match"
            )
            raise ConversionError(
                msg,
                path=f,
                details={"slice": i, "expected": list(shape0), "found": list(got.shape)},
            )
        if got.grey != first.grey:
            unlike.append(f"{f.name} ({got.grey})")
    n = len(files)
    warned = []
    if unlike:
        warned.append(
            f"{len(unlike)} slice(s) show their values otherwise than {files[0].name} "
            f"({first.grey}), e.g. {unlike[0]}: values are kept as stored; if those slices look "
            "inverted or false-coloured beside the others, ask for them again"
        )
    notes = ["PNG slices state no voxel size that curated uses (pHYs, if any, is ignored)"]
    if first.grey in _PNG_GREY_NOTES:
        notes.append(_PNG_GREY_NOTES[first.grey])
    return TiffSource(
        kind="png-slices",
        path=str(folder),
        files=[str(f) for f in files],
        axes="zyx",
        shape=(n, *shape0),
        dtype=dtype0.str,
        page_file=np.arange(n, dtype=np.int32),
        page_index=np.zeros(n, dtype=np.int64),
        page_offset=np.full(n, -1, dtype=np.int64),
        lead_shape=(n,),
        lead_perm=(0,),
        not_carried=notes,
        warnings=warned,
        inverted=first.grey == "MinIsWhite",
    )


def _decode_png(
    path: str, index: int, shape: tuple[int, int], dtype: np.dtype, ys: slice, xs: slice
) -> np.ndarray:
    """Decode one PNG slice whole (PNG has no random access) and cut ``ys, xs`` out of it.

    A slice is decoded once for every shard it spans: a 1024² slice four times with 512³
    shards, a 4096² one 64 times (imagecodecs decodes about 115 MB/s of noisy 8-bit EM on
    one core here). For slices much larger than a shard, convert the PNGs to TIFF slices
    first, whose strips are read where a shard needs them.
    """
    import imagecodecs

    try:
        with open(path, "rb") as f:
            data = f.read()
        plane = imagecodecs.png_decode(_png_indices(data) if data[25] == 3 else data)
    except Exception as exc:  # codec errors on damaged data
        msg = f"slice {index} cannot be decoded ({exc}); the file may be truncated or damaged"
        raise ConversionError(msg, path=path, details={"slice": index}) from exc
    depth = data[24]
    if depth < 8:
        # libpng widens 1-, 2- and 4-bit grey to 8 bits by scaling (1 -> 255 for a 1-bit
        # mask); a slice's values are its samples, so the scaling is undone exactly
        plane = plane // np.uint8(255 // ((1 << depth) - 1))
    if plane.shape != shape or plane.dtype.itemsize != dtype.itemsize:
        msg = f"slice {index} decodes to {plane.shape} {plane.dtype.name}, not the {shape} {dtype.name} its header states"
        raise ConversionError(msg, path=path, details={"slice": index})
    return np.ascontiguousarray(plane[ys, xs]).astype(dtype.newbyteorder("="), copy=False)


def _png_indices(data: bytes) -> bytes:
    """A palette PNG rewritten as a grey one of the same depth: its IHDR colour type 3 made 0
    (its CRC recomputed) and its palette chunks left out, so the decoder gives the indices
    (imagecodecs, like libpng, would expand them to the palette's RGB colours)."""
    import zlib

    out = [data[:8]]
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind == b"IHDR":
            body = data[pos + 8 : pos + 8 + 9] + b"\x00" + data[pos + 18 : pos + 8 + length]
            crc = zlib.crc32(kind + body).to_bytes(4, "big")
            out.append(data[pos : pos + 8] + body + crc)
        elif kind not in _PNG_PALETTE_CHUNKS:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def _same_grid(first: _PageMetadata, other: _PageMetadata, name0: Path, f: Path, i: int) -> None:
    """Slices of one volume share one pixel size (and data bar, and the z spacing their
    OME-XML states, the one metadata whose z is used); the first that differs is named."""
    axes = "zyx" if first.origin.startswith("ome-xml") else "yx"

    def grid(m: _PageMetadata) -> tuple | None:
        return None if m.voxel is None else (*m.voxel[3 - len(axes) :], m.unit)

    yx0, yx = grid(first), grid(other)
    if yx != yx0:

        def say(v: tuple | None, origin: str) -> str:
            if v is None:
                return "no pixel size"
            sizes = " ".join("?" if n is None else f"{n:g}" for n in v[:-1])
            return f"pixel size {' '.join(axes)} = {sizes} {v[-1]} ({origin})"

        msg = (
            f"slice {i} has {say(yx, other.origin)}, but {name0.name} has {say(yx0, first.origin)}; "
            "the slices are not one volume (sort them into one folder per acquisition)"
        )
        raise ConversionError(msg, path=f, details={"slice": i, "expected": yx0, "found": yx})
    if other.image_rows != first.image_rows:
        msg = f"slice {i} has {other.image_rows or 'no'} image rows above a data bar, but {name0.name} has {first.image_rows or 'none'}; every slice must match"
        raise ConversionError(msg, path=f, details={"slice": i})


# ---------------------------------------------------------------- slice names


_GAPS_SHOWN = 3
_AT_FAULT_SHOWN = 10


class SliceOrder(NamedTuple):
    """What the names of a folder's slice files say about their order (nothing is opened)."""

    names: list[str]
    """In slice order (natural sort: ``s2`` before ``s10``; ties broken by the name itself)."""
    problem: str | None
    """Why the names are not one series of slices in a knowable order (the converter refuses)."""
    gaps: str | None
    """Slice numbers missing between the first and the last (a lost section? a warning)."""
    at_fault: list[str] = []
    """The names the problem or the gaps are about (the two in conflict, the neighbours of
    each gap)."""


def slice_pattern(name: str) -> str:
    """A slice name's series: its runs of digits as ``#``, in lower case (``Slice_0042.TIF`` → ``slice_#.tif``)."""
    return _NUMBER.sub("#", name).lower()


def order_slices(names: list[str]) -> SliceOrder:
    """Sort slice file names and say whether they are one numbered series.

    Refused (``problem``): names of more than one series (``a_#.tif`` and ``b_#.tif``, or a
    stray image beside the slices), and two names that carry the same slice number
    (``slice_1.tif`` and ``slice_01.tif``, or tiles of a mosaic ``r1-c1_s001``,
    ``r1-c2_s001``), whose order cannot be known. Reported (``gaps``): numbers missing
    between the first slice and the last. Numbers compare by value, a decimal fraction
    included (``z_1.25um`` before ``z_1.5um``). Names without digits are sorted by name only.
    """
    ordered = sorted(names, key=lambda n: (natural_key(n), n))
    if len(ordered) < 2 or not any(_NUMBER.search(n) for n in ordered):
        return SliceOrder(ordered, None, None)
    series: dict[str, list[str]] = {}
    for n in ordered:
        series.setdefault(slice_pattern(n), []).append(n)
    if len(series) > 1:
        shown = "; ".join(
            f"{pattern} ({len(members)} files, e.g. {members[0]})"
            for pattern, members in sorted(series.items(), key=lambda kv: -len(kv[1]))[:4]
        )
        problem = (
            f"holds {len(series)} series of slice names: {shown}; they are not one volume in a "
            "knowable order: move the other series (or stray images) out, one folder per series"
        )
        return SliceOrder(ordered, problem, None, [m[0] for m in series.values()])
    numbers = [tuple(Decimal(d) for d in _NUMBER.findall(n)) for n in ordered]
    clash = _same_number(ordered, numbers)
    if clash is not None:
        return SliceOrder(ordered, clash[0], None, clash[1])
    varying = [k for k in range(len(numbers[0])) if len({t[k] for t in numbers}) > 1]
    if len(varying) != 1 or any(t[varying[0]] % 1 for t in numbers):
        return SliceOrder(ordered, None, None)  # no one slice index: gaps are not known
    gaps, around = _gaps(ordered, [int(t[varying[0]]) for t in numbers])
    return SliceOrder(ordered, None, gaps, around)


def _same_number(
    names: list[str], numbers: list[tuple[Decimal, ...]]
) -> tuple[str, list[str]] | None:
    """Two names of one series that carry the same slice number: (the problem, the two)."""
    first: dict[tuple[Decimal, ...], str] = {}
    for n, t in zip(names, numbers, strict=True):
        other = first.setdefault(t, n)
        if other != n:
            return (
                f"{other} and {n} carry the same number {'/'.join(map(str, t))}: their order "
                "cannot be known; rename or remove one"
            ), [other, n]
    # the slice number is the number that differs between every two names; when none does,
    # the names mix tiles, channels or acquisitions (the number shared the most is named)
    counts = [len({t[k] for t in numbers}) for k in range(len(numbers[0]))]
    if max(counts) == len(numbers):
        return None
    k = max(range(len(counts)), key=lambda i: (counts[i], i))
    by_value: dict[Decimal, str] = {}
    for n, t in zip(names, numbers, strict=True):
        other = by_value.setdefault(t[k], n)
        if other != n:
            return (
                f"{other} and {n} both carry slice number {t[k]}: the folder mixes tiles, "
                "channels or acquisitions; put each one's slices in a folder of its own"
            ), [other, n]
    return None  # pragma: no cover - a shared value always exists when counts fall short


def _span(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}-{b}"


def _gaps(names: list[str], numbers: list[int]) -> tuple[str | None, list[str]]:
    """Numbers missing from one series (``numbers`` in the order of ``names``), said as a
    warning, and the names beside the first gaps."""
    missing = (max(numbers) - min(numbers) + 1) - len(numbers)
    if missing <= 0:
        return None, []
    at = [i for i in range(len(numbers) - 1) if numbers[i + 1] - numbers[i] > 1]
    holes = [
        f"{_span(numbers[i] + 1, numbers[i + 1] - 1)} (between {names[i]} and {names[i + 1]})"
        for i in at
    ]
    around = [n for i in at[:_AT_FAULT_SHOWN] for n in (names[i], names[i + 1])]
    more = f" and {len(holes) - _GAPS_SHOWN} more gap(s)" if len(holes) > _GAPS_SHOWN else ""
    return (
        f"{missing} slice number(s) of {min(numbers)}-{max(numbers)} missing: "
        f"{', '.join(holes[:_GAPS_SHOWN])}{more} (sections lost, or files missing); the volume "
        "holds the slices that are there, one after another (say in the README how z is spaced)"
    ), list(dict.fromkeys(around))


# ---------------------------------------------------------------- metadata


@dataclass
class _PageMetadata:
    """What a file's header says about its physical grid (and its data bar)."""

    voxel: tuple[float | None, float | None, float | None] | None = None
    """(z, y, x); an axis the header does not give is ``None``."""
    unit: str | None = None
    origin: str = "none"
    image_rows: int | None = None
    """Rows of image data above a vendor data bar (FEI), when the page has one."""
    notes: list[str] = field(default_factory=list)


def _voxel_from_metadata(tf: Any, path: Path) -> _PageMetadata:
    """Voxel size (z, y, x) and unit from OME-XML, a vendor header or ImageJ metadata.

    Nothing is invented: a z spacing the file does not state stays ``None`` (the
    converter then asks for ``--voxel-size``). TIFF resolution tags on their own are a pixel
    size only in centimetres (``ResolutionUnit`` 3, as Fiji and tifffile's writers use them,
    and as ``import-ome`` reads them); in inches (dots per inch) or without a unit they are a
    print setting or a ratio, never a voxel size.
    """
    from curated.images.vendor import read_vendor_header

    if tf.is_ome and tf.ome_metadata:
        xml, origin, uuid = tf.ome_metadata, "ome-xml", None
        if _is_binary_only(xml):
            companion, xml, uuid = _binary_only_companion(path, xml)
            if companion is None:
                return _PageMetadata(origin=xml)  # why the sizes are unknown
            origin = f"ome-xml ({companion.name})"
        got = _voxel_from_ome(xml, path.name, uuid)
        if got is not None:
            return _PageMetadata(got[0], got[1], origin)
        if origin != "ome-xml":
            return _PageMetadata(origin=origin)
    try:
        head = read_vendor_header(tf)
    except Exception as exc:  # a damaged vendor header must not stop the pixels being read
        note = f"vendor header not readable ({type(exc).__name__}); its pixel size is not used"
        return _PageMetadata(notes=[note])
    if head is not None:
        # what the header says about the grid that is not used (a DigitalMicrograph stack whose
        # third axis is in seconds, a JEOL diffraction pattern), so the curator sees why
        said = [
            w.replace("images[0].voxel_size_", "pixel size ", 1)
            for w in head.warnings
            if w.startswith("images[0].voxel_size")
        ]
        meta = _PageMetadata(image_rows=head.image_rows, notes=said)
        if head.pixel_size_nm is not None:
            meta.voxel = (None, *head.pixel_size_nm)
            meta.unit = "nanometer"
            meta.origin = head.pixel_source
        return meta
    # the image's own page: a TIFF/EP reduced-resolution preview in IFD 0 states the
    # preview's pixel size, not the image's
    page = tf.series[_main_series(tf)].pages[0] if len(tf.series) else tf.pages[0]
    if tf.is_imagej and tf.imagej_metadata:
        got = _voxel_from_imagej(tf.imagej_metadata, page)
        if got is not None:
            return got
    return _centimetre_resolution(getattr(page, "keyframe", None) or page)


def _voxel_from_imagej(ij: dict[str, Any], page: Any) -> _PageMetadata | None:
    """(z, y, x) from an ImageJ description and the resolution tags, in the x axis's unit.

    The resolution tags are pixels per ``unit`` (x) and per ``yunit`` (y); ``spacing`` is in
    ``zunit``: ImageJ writes ``yunit``/``zunit`` only where they differ from ``unit``
    (:func:`curated.images.units.imagej_units`). ``None`` when x or y has no length unit.
    """
    xy = _resolution(page)
    if xy is None:
        return None
    zu, yu, xu = imagej_units(ij)
    try:
        unit, yunit = length_unit(xu), length_unit(yu)
    except InputError:
        return None
    # the resolution tags are rationals: 10 significant digits, no float noise
    y, x = round_to(to_unit(xy[0], yunit, unit), 10), round_to(xy[1], 10)
    z, zval, notes = ij.get("spacing"), None, []
    if z:
        try:
            zval = convert_length(float(z), length_unit(zu), unit)
        except InputError:
            notes.append(f"ImageJ z spacing {z} {zu} is not a length; not used (pass --voxel-size)")
        except (TypeError, ValueError):
            notes.append(f"ImageJ z spacing {z!r} is not a number; not used (pass --voxel-size)")
    return _PageMetadata((zval, y, x), unit, "imagej", notes=notes)


def stated_pixel_size(tf: Any, path: str | Path) -> str | None:
    """The pixel size a TIFF's header states, as the converter reads it, in words
    (``pixel size y x = 4 4 nanometer``; z too where OME-XML gives it, or an ImageJ ``spacing``),
    else ``None``. The sizes are written to the digits the converter writes them with."""
    meta = _voxel_from_metadata(tf, Path(path))
    if meta.voxel is None:
        return None
    axes = "zyx" if meta.origin.startswith("ome-xml") or meta.voxel[0] is not None else "yx"
    sizes = " ".join("?" if v is None else f"{v:.10g}" for v in meta.voxel[3 - len(axes) :])
    return f"pixel size {' '.join(axes)} = {sizes} {meta.unit}"


def unused_pixel_size(tf: Any, path: str | Path) -> str | None:
    """What a TIFF's header states of its grid that the converter does not use, and why
    (a Zeiss scan pixel size that is not the saved image's, a DigitalMicrograph axis in
    seconds), in words; else ``None``."""
    notes = _voxel_from_metadata(tf, Path(path)).notes
    return "; ".join(notes) if notes else None


def stated_data_bar(tf: Any, path: str | Path) -> str | None:
    """The rows of a TIFF's first page that its vendor header (FEI ``Image/ResolutionY``) says
    are a data bar, which the converter crops, in words; else ``None``."""
    meta = _voxel_from_metadata(tf, Path(path))
    return next(iter(_bar_note(meta, int(tf.pages.first.shape[0]))), None)


def photometric_name(page: Any) -> str:
    """How a page's grey values show: ``MinIsBlack``, ``MinIsWhite``, ``palette``, ``RGB``...

    Grey and palette pages are named as ``convert`` reads them (:func:`_grey_kind`: a
    grey-ramp palette shows its values as MinIsBlack, a white-to-black one as MinIsWhite),
    so `check` and `convert` agree on which slices differ.
    """
    kf = getattr(page, "keyframe", None) or page
    value = int(getattr(kf, "photometric", 1))
    if value in (0, 1, 3):
        return _grey_kind(page)
    return "RGB" if value == 2 else f"photometric {value}"


def _centimetre_resolution(page: Any) -> _PageMetadata:
    """The pixel size that X/YResolution state in pixels per centimetre, else nothing."""
    unit = page.tags.get("ResolutionUnit")
    xy = _resolution(page)
    if unit is None or xy is None or int(unit.value) != 3:
        return _PageMetadata()
    # centimetres per pixel to nanometres; the tags are rationals: 10 significant digits
    yx = (round_to(xy[0] * 1e7, 10), round_to(xy[1] * 1e7, 10))
    return _PageMetadata((None, *yx), "nanometer", "tiff:X/YResolution (pixels per centimeter)")


def _resolution(page: Any) -> tuple[float, float] | None:
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    try:
        xn, xd = tags["XResolution"].value
        yn, yd = tags["YResolution"].value
    except (TypeError, ValueError):
        return None
    if not xn or not yn:
        return None
    return yd / yn, xd / xn


def _local(el: ET.Element) -> str:
    return el.tag.rpartition("}")[2]


def _pixels_for(root: ET.Element, file_name: str | None, uuid: str | None) -> ET.Element | None:
    """The Pixels of the image stored in ``file_name`` (or the file with ``uuid``); else the first."""
    pixels = [el for el in root.iter() if _local(el) == "Pixels"]
    if file_name or uuid:
        for px in pixels:
            for u in (el for el in px.iter() if _local(el) == "UUID"):
                if (uuid and (u.text or "").strip() == uuid) or (
                    file_name and u.get("FileName") == file_name
                ):
                    return px
    return pixels[0] if pixels else None


def _voxel_from_ome(
    xml: str, file_name: str | None = None, uuid: str | None = None
) -> tuple[tuple[float | None, float | None, float | None], str] | None:
    """(z, y, x) physical sizes of the image in ``file_name`` (z ``None`` when the XML gives none)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = _pixels_for(root, file_name, uuid)
    if pixels is None or pixels.get("PhysicalSizeX") is None or pixels.get("PhysicalSizeY") is None:
        return None
    try:
        unit = length_unit(pixels.get("PhysicalSizeXUnit", "µm"))
    except InputError:
        return None
    out: list[float | None] = []
    for ax in "ZYX":
        v = pixels.get(f"PhysicalSize{ax}")
        if v is None:
            out.append(None)
            continue
        try:
            value = float(v)
            name = length_unit(pixels.get(f"PhysicalSize{ax}Unit", "µm"))
        except (ValueError, InputError):
            return None
        out.append(round_to(to_unit(value, name, unit), significant_digits(value)))
    return (out[0], out[1], out[2]), unit


def _binary_only_companion(tiff: Path, xml: str) -> tuple[Path | None, str, str | None]:
    """For a BinaryOnly OME-TIFF: (companion file, its XML, this file's UUID), or (None, why, None)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return None, f"its OME-XML is broken ({exc})", None
    block = next((el for el in root.iter() if _local(el) == "BinaryOnly"), None)
    name = "" if block is None else block.get("MetadataFile") or ""
    target = tiff.parent / name
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or not target.is_file():
        why = (
            f"BinaryOnly OME-TIFF whose companion file {name!r} is not beside it "
            "(copy the companion next to the TIFF)"
        )
        return None, why, None
    return target, target.read_text(encoding="utf-8", errors="replace"), root.get("UUID")


def _is_binary_only(xml: str) -> bool:
    return "BinaryOnly" in xml and "MetadataFile" in xml


def _not_carried(page: Any, tf: Any) -> list[str]:
    """Names of TIFF tags (and metadata blocks) that have no home in OME-Zarr."""
    out = []
    for tag in page.tags.values():
        if tag.name in _CONSUMED_TAGS:
            continue
        out.append(f"TIFF tag {tag.code} ({tag.name})")
    if tf.is_imagej and tf.imagej_metadata:
        extra = sorted(
            k
            for k in tf.imagej_metadata
            if k
            not in {
                "ImageJ",
                "images",
                "slices",
                "frames",
                "channels",
                "hyperstack",
                "mode",
                "spacing",
                "unit",
                "yunit",
                "zunit",
                "axes",
                "loop",
                "min",
                "max",
            }
        )
        if extra:
            out.append("ImageJ metadata keys: " + ", ".join(extra))
    if tf.is_ome:
        out.append(
            "OME-XML beyond pixel sizes (kept in the original; import it with `curated metadata import-ome`)"
        )
    return out
