"""Hostile TIFFs: files written by tifffile, then one header field rewritten in place.

Each maker writes a small, valid 5-page stack and lies in one place: a page's
ImageLength/ImageWidth/BitsPerSample, StripOffsets/StripByteCounts past the end of the
file, an ImageJ header, tifffile's shaped description or the OME-XML announcing another
page count or plane size, a cut file, an IFD chain looping back. ``HOSTILE`` maps each
name to its maker and to a pattern the one-line error must match (what lies).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

PAGES, SIDE = 5, 16
DATA = (np.arange(PAGES * SIDE * SIDE) % 251).astype("uint8").reshape(PAGES, SIDE, SIDE)


def write(path: Path, **kw) -> Path:  # type: ignore[no-untyped-def]
    tifffile.imwrite(path, DATA, **kw)
    return path


def set_tag(path: Path, page: int, tag: str, value: int) -> None:
    """Overwrite the (single) value of ``tag`` in page ``page``'s IFD."""
    with tifffile.TiffFile(path) as tf:
        t = tf.pages[page].tags[tag]
        where, code, order = t.valueoffset, {3: "H", 4: "I", 16: "Q"}[int(t.dtype)], tf.byteorder
    with open(path, "r+b") as fh:
        fh.seek(where)
        fh.write(struct.pack(order + code, value))


def set_next_ifd(path: Path, page: int, target: int) -> None:
    """Point page ``page``'s next-IFD offset at page ``target``'s IFD (0: end the chain)."""
    with tifffile.TiffFile(path) as tf:
        offsets = [p.offset for p in tf.pages]
        order = tf.byteorder
    with open(path, "r+b") as fh:
        fh.seek(offsets[page])
        ntags = struct.unpack(order + "H", fh.read(2))[0]
        fh.seek(offsets[page] + 2 + 12 * ntags)
        fh.write(struct.pack(order + "I", offsets[target] if target >= 0 else 0))


def set_description(path: Path, old: str, new: str) -> None:
    text = tifffile.tiffcomment(path)
    assert old in text, text
    tifffile.tiffcomment(path, text.replace(old, new))


def _every_page(tag: str, value: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, photometric="minisblack")
        for i in range(PAGES):
            set_tag(path, i, tag, value)
        return path

    return make


def _one_page(tag: str, page: int, value: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, photometric="minisblack")
        set_tag(path, page, tag, value)
        return path

    return make


def _ome(old: str, new: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, metadata={"axes": "ZYX"})
        set_description(path, old, new)
        return path

    return make


def _imagej(images: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, imagej=True, metadata={"axes": "ZYX"})
        set_description(path, f"images={PAGES}", f"images={images}")
        return path

    return make


def _shaped(shape: str) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path)
        set_description(path, f'"shape": [{PAGES}, {SIDE}, {SIDE}]', f'"shape": {shape}')
        return path

    return make


def _loop(page: int, target: int) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, photometric="minisblack")
        set_next_ifd(path, page, target)
        return path

    return make


def _cut(fraction: float) -> Callable[[Path], Path]:
    def make(path: Path) -> Path:
        write(path, photometric="minisblack")
        os.truncate(path, int(path.stat().st_size * fraction))
        return path

    return make


def _first_page_only_length(path: Path) -> Path:
    # only page 0 lies: tifffile then sees a 2D image of 60000 rows followed by 4 others
    write(path, photometric="minisblack")
    set_tag(path, 0, "ImageLength", 60000)
    return path


def _deflate_claims_more(path: Path) -> Path:
    # a zlib page whose header claims 60000 x 60000 pixels: its few hundred bytes cannot
    # inflate to 3.6 GB (decoding it would try); no description, so only the page lies
    tifffile.imwrite(path, DATA, compression="zlib", photometric="minisblack", metadata=None)
    for i in range(PAGES):
        set_tag(path, i, "ImageLength", 60000)
        set_tag(path, i, "ImageWidth", 60000)
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "deflate-claims-more": (_deflate_claims_more, r"page 0's header says 60000 x 60000 pixels .* cannot expand past"),
    "length-first-page": (_first_page_only_length, r"page 0's header says 16 x 60000 pixels"),
    "length-every-page": (_every_page("ImageLength", 60000), r"ImageWidth/ImageLength/BitsPerSample lie"),
    "width": (_every_page("ImageWidth", 4000), r"says 4000 x 16 pixels .* strips hold 256 bytes"),
    "bits": (_every_page("BitsPerSample", 16), r"pixels of 16 bit\(s\) \(512 bytes\) but its strips hold 256"),
    "strip-offsets-past-eof": (_one_page("StripOffsets", 2, 10**9), r"page 2's header puts its pixel data at bytes up to \d+ .* but the file has 2200 bytes"),
    "strip-counts-past-eof": (_one_page("StripByteCounts", 2, 10**9), r"page 2's header puts its pixel data at bytes up to \d+"),
    "ome-one-plane": (_ome('SizeZ="5"', 'SizeZ="1"'), r"OME-XML describes 1 plane\(s\) .* but the file holds 5 page"),
    "ome-more-planes": (_ome('SizeZ="5"', 'SizeZ="20"'), r"OME-XML describes 20 plane\(s\) .* holds 5 page"),
    "ome-plane-size": (_ome('SizeX="16"', 'SizeX="64"'), r"OME-XML says the image is 64 x 16 pixels .* pages are 16 x 16"),
    "imagej-fewer": (_imagej(1), r"ImageJ header says 1 image\(s\) .* holds 5 page"),
    "imagej-more": (_imagej(50), r"ImageJ header says 50 image\(s\) .* holds 5 page"),
    "shaped-fewer": (_shaped(f"[1, {SIDE}, {SIDE}]"), r"ImageDescription says shape \[1, 16, 16\] \(1 page\(s\)\) but the file holds 5"),
    "shaped-more": (_shaped(f"[50, {SIDE}, {SIDE}]"), r"ImageDescription says shape \[50, 16, 16\] .* holds 5"),
    "shaped-plane": (_shaped(f"[{PAGES}, 32, {SIDE}]"), r"ImageDescription says shape \[5, 32, 16\] but its pages are 16 x 16"),
    "ifd-loop-at-end": (_loop(PAGES - 1, 0), r"IFD chain loops back"),
    "ifd-loop-in-middle": (_loop(2, 1), r"IFD chain loops back"),
    "cut-in-data": (_cut(2 / 3), r"truncated"),
    "cut-in-header": (_cut(0.05), r"cannot be read as TIFF|truncated"),
}  # fmt: skip
