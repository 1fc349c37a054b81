"""Make the vendor TIFF fixtures beside this script from real instrument files.

The headers (Zeiss ``CZ_SEM`` tag 34118, FEI tag 34682, JEOL SightX ImageDescription,
Make, Model, resolution and DateTime tags) are copied byte for byte from the
test files of HyperSpy's RosettaSciIO (``rsciio/tests/data/tiff/``); the pixel data
are replaced by a small synthetic ramp so that the fixtures stay a few kilobytes,
and the user names in the Zeiss header are replaced by ``JDOE``/``jdoe`` (same
length, so the header layout is unchanged). Run with the folder holding the
unpacked RosettaSciIO files::

    python tests/data/vendor/make_fixtures.py /path/to/rsciio/tests/data/tiff
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).parent


def raw_tag(path: Path, code: int, page: int = 0) -> bytes:
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[page].tags[code]
        tif.filehandle.seek(tag.valueoffset)
        return tif.filehandle.read(tag.valuebytecount)


def ramp(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 251).reshape(shape).astype(dtype)


def zeiss(src: Path) -> None:
    header = raw_tag(src / "ZEISS_SEM_multipage.tif", 34118)
    header = header.replace(b"AREK", b"JDOE").replace(b"arek", b"jdoe")
    tifffile.imwrite(
        HERE / "zeiss_auriga_fibsem.tif",
        ramp((2, 48, 64), "uint8"),
        metadata=None,
        extratags=[(34118, 2, len(header), header, True)],
    )


def fei(src: Path) -> None:
    header = raw_tag(src / "FEI-Helios-Ebeam-16bits.tif", 34682)
    # 471 rows as in the original: 442 image rows (Image/ResolutionY) and a 29-row data bar
    tifffile.imwrite(
        HERE / "fei_helios.tif",
        ramp((471, 16), "uint8"),
        resolution=(64, 64),
        resolutionunit="INCH",
        extratags=[(34682, 2, len(header), header, True)],
    )


def jeol(src: Path) -> None:
    path = src / "JEOL-SightX-TEM-mag-dummy.tif"
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        description = page.description
        make, model = page.tags["Make"].value, page.tags["Model"].value
        xres = page.tags["XResolution"].value
        when = page.tags["DateTime"].value
    tifffile.imwrite(
        HERE / "jeol_sightx_tem.tif",
        ramp((16, 16), "uint16"),
        description=description,
        resolution=(xres, xres),
        resolutionunit="INCH",
        extratags=[(271, 2, 0, make, True), (272, 2, 0, model, True), (306, 2, 0, when, True)],
        metadata=None,
    )


if __name__ == "__main__":
    source = Path(sys.argv[1])
    zeiss(source)
    fei(source)
    jeol(source)
