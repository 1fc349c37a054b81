"""A zip file wrapped in a zip of its own, streamed: what Dataverse unpacks back into the file.

Dataverse unpacks a ``.zip`` sent through its native ``/add`` (one level only: the members
are stored as they are, a zip among them included), so a zip that must be kept whole is
sent inside a one-member, uncompressed ("stored") zip. :func:`wrapper` gives the bytes
that go before and after the file's own bytes; the file itself is streamed between them
untouched, so what Dataverse stores and checksums is the file, byte for byte.

The layout is PKWARE's APPNOTE: local header, data, central directory, end record, with
the ZIP64 extra field and end records when the file reaches 4 GiB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from curated.deposit.http import CHUNK

_FULL = 0xFFFFFFFF
_UTF8 = 0x0800
"""General purpose flag bit 11: the name is UTF-8."""
_DOS_DATE = (1 << 5) | 1  # 1980-01-01: a fixed date, so the wrapper of a file is always the same
_DOS_TIME = 0


def crc32_of(path: str | Path) -> int:
    """The CRC-32 of a file (what a zip entry records), read in blocks."""
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def wrapper(name: str, size: int, crc: int, *, zip64: bool | None = None) -> tuple[bytes, bytes]:
    """``(head, tail)``: a zip whose one stored member ``name`` holds ``size`` bytes with
    CRC-32 ``crc`` is ``head + <those bytes> + tail``.

    ``zip64`` forces (or forbids) the ZIP64 records; by default they are written when the
    file is too large for the classic fields.
    """
    big = size >= _FULL if zip64 is None else zip64
    raw = name.encode("utf-8")
    version = 45 if big else 20
    if big:
        extra = struct.pack("<HHQQ", 0x0001, 16, size, size)
        sizes = (_FULL, _FULL)
    else:
        extra = b""
        sizes = (size, size)
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            version,
            _UTF8,
            0,  # stored
            _DOS_TIME,
            _DOS_DATE,
            crc,
            *sizes,
            len(raw),
            len(extra),
        )
        + raw
        + extra
    )
    central = (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            version,
            version,
            _UTF8,
            0,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            *sizes,
            len(raw),
            len(extra),
            0,  # comment
            0,  # disk
            0,  # internal attributes
            0,  # external attributes
            0,  # offset of the local header
        )
        + raw
        + extra
    )
    cd_offset = len(local) + size
    tail = central + _end_records(cd_offset, len(central), big=big)
    return local, tail


def _end_records(cd_offset: int, cd_size: int, *, big: bool) -> bytes:
    """The end of central directory record (preceded by the ZIP64 ones when ``big``)."""
    if not big:
        return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, cd_size, cd_offset, 0)
    zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, cd_offset + cd_size, 1)
    classic = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, cd_size, _FULL, 0)
    return zip64_end + locator + classic
