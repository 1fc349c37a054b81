"""Sparse TIFFs: strips or tiles without data (StripByteCounts / TileByteCounts 0, as GDAL
writes them) read as 0, as tifffile and GDAL read them, with a note naming the pages; `curated
check` says the same. A page whose other strips lie beyond the file is still refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile

from curated.curation import check
from curated.curation.formats import inspect_tiff
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.sources import open_source

DATA = (np.arange(5 * 16 * 32) % 250 + 1).astype(np.uint8).reshape(5, 16, 32)


def _set(path, page, tag, item, value):
    """Overwrite item ``item`` of tag ``tag`` (an array: its values are stored elsewhere)."""
    with tifffile.TiffFile(path) as tf:
        t = tf.pages[page].tags[tag]
        code = {3: "H", 4: "I", 16: "Q"}[int(t.dtype)]
        where, order = t.valueoffset, tf.byteorder
    with open(path, "r+b") as fh:
        fh.seek(where + struct.calcsize(code) * item)
        fh.write(struct.pack(order + code, value))


def _sparse(path, *, tiled=False, compression="zlib", segment=3, zero_offset=True):
    """A 5-page stack whose page 0 lacks one strip (rows 4 x segment on) or tile ``segment``.
    (Page 0: tifffile writes the byte counts of pages 1+ once when they are equal.)"""
    kw = {"tile": (16, 16)} if tiled else {"rowsperstrip": 4}
    tifffile.imwrite(path, DATA, compression=compression, photometric="minisblack", **kw)
    prefix = "Tile" if tiled else "Strip"
    _set(path, 0, f"{prefix}ByteCounts", segment, 0)
    if zero_offset:
        _set(path, 0, f"{prefix}Offsets", segment, 0)
    want = DATA.copy()
    if tiled:
        want[0, :, 16:] = 0
    else:
        want[0, 4 * segment : 4 * segment + 4] = 0
    return path, want


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _sparse(p),
        lambda p: _sparse(p, zero_offset=False),  # a byte count 0 at a real offset
        lambda p: _sparse(p, compression=None),
        lambda p: _sparse(p, compression=None, segment=1),
        lambda p: _sparse(p, tiled=True, segment=1),
    ],
    ids=["zlib", "zlib-count-only", "raw", "raw-middle", "tiled"],
)
def test_empty_segments_read_as_zero_with_a_note(tmp_path, make):
    path, want = make(tmp_path / "sparse.tif")
    before = path.read_bytes()
    src = open_source(path)
    got = src.read((slice(0, 5), slice(0, 16), slice(0, 32)))
    np.testing.assert_array_equal(got, want)
    if "raw-middle" not in path.name:  # tifffile reads the same (its own reader)
        np.testing.assert_array_equal(tifffile.imread(path), want)
    note = next(n for n in src.not_carried if n.startswith("sparse TIFF"))
    assert "1 strip(s)/tile(s) in 1 page(s)" in note and "page 0 (1)" in note
    info = inspect_tiff(path, path.stat().st_size)
    assert info["opens"] and info["sparse"] == note
    assert path.read_bytes() == before


def test_convert_carries_the_note_and_check_flags_it(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    path, want = _sparse(raw / "stack.tif")
    res = convert_to_ome_zarr(path, tmp_path / "o.ome.zarr", voxel_size=(8, 4, 4), chunks=8)
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").levels[0][:], want)
    assert any("sparse TIFF" in n for n in res.details["decision"]["not_carried_over"])
    report = check(None, [raw], write=False)
    flags = report.flags_by_code("sparse-image")
    assert [f.paths for f in flags] == [["raw/stack.tif"]] and "page 0" in flags[0].message


def test_a_slice_with_an_empty_strip_is_named(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(DATA):
        tifffile.imwrite(folder / f"s{i}.tif", plane, compression="zlib", rowsperstrip=4)
    _set(folder / "s3.tif", 0, "StripByteCounts", 0, 0)
    _set(folder / "s3.tif", 0, "StripOffsets", 0, 0)
    src = open_source(folder)
    got = src.read((slice(0, 5), slice(0, 16), slice(0, 32)))
    assert (got[3, :4] == 0).all() and (got[3, 4:] == DATA[3, 4:]).all()
    assert any("slice 3 (1)" in n for n in src.not_carried)


def test_a_page_without_strips_or_beyond_the_file_is_still_refused(tmp_path):
    path, _ = _sparse(tmp_path / "s.tif")
    _set(path, 2, "StripByteCounts", 0, 60000)  # another page lies past the end
    with pytest.raises(ConversionError, match="page 2's header puts its pixel data"):
        open_source(path)
