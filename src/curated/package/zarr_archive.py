"""A Zarr store as one uncompressed zip archive, with a per-chunk inventory.

Repositories such as Zenodo cap a record at 100 files; a FIB-SEM store has
millions. In ``zarr="archive"`` mode each store becomes ``<store>.zip`` (entries
``ZIP_STORED``, so zarr's ``ZipStore`` reads chunks in place without
decompressing) and ``metadata/zarr-inventory/<store>.tsv`` lists every file in
it (``path``, ``size``, ``sha256``) so each chunk stays individually verifiable.
Workers read the store's files folder by folder and send back ready-made zip
bytes; the main process appends them in order (see :class:`ZipWriter`). The
central directory is spooled to a file beside the archive while it is written,
so memory does not grow with the number of chunks; ZIP64 records are written
where counts or offsets need them (more than 65,535 entries, past 4 GiB).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from curated.package.names import encode_tsv_field
from curated.package.tasks import BUFFER_SIZE, FileChangedError, FolderTask
from curated.package.tasks import read_exact as _read_exact

INVENTORY_HEADER = "path\tsize\tsha256\n"


@dataclass(frozen=True)
class StoreArchive:
    files: int
    bytes: int
    """Bytes of the store's files (not of the archive)."""
    empty_dirs: int


def _zip_time(mtime_ns: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(mtime_ns // 1_000_000_000, 315532800))  # zip cannot go before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


# ------------------------------------------------------------------ parallel writer
# The fast path used by make_bag: workers read a store's files folder by folder
# (sha256 for the inventory, CRC-32 for the zip) and send back each group's zip
# bytes (local headers + data) ready to append; the main process appends them in
# order and keeps the central directory in a spool file beside the archive, so
# memory does not grow with the number of chunks. Files over
# :data:`~curated.package.tasks.BUFFER_SIZE` are not sent back: the main
# process copies them into the zip in the kernel and checks they did not change
# since the worker read them.

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_EXTRA = 0x0001
_UTF8 = 0x800
_MAX32 = 0xFFFFFFFF
_FILE_ATTR = (0o100644 << 16) & 0xFFFFFFFF
_DIR_ATTR = ((0o40755 << 16) | 0x10) & 0xFFFFFFFF
_MADE_BY = (3 << 8) | 45  # Unix, zip spec 4.5


_U32 = struct.Struct("<I")


def _entries(central: bytes) -> tuple[ZipEntry, ...]:
    """The entries of a piece's relative central directory records."""
    out = []
    pos = 0
    while pos < len(central):
        f = _CENTRAL.unpack_from(central, pos)
        name = central[pos + 46 : pos + 46 + f[10]]
        out.append(ZipEntry(name, f[7], f[9], f[5], f[6], f[16], "", 0))
        pos += 46 + f[10] + f[11]
    return tuple(out)


def _dos_time(mtime_ns: int) -> tuple[int, int]:
    y, mo, d, h, mi, s = _zip_time(mtime_ns)
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


class ZipEntry(NamedTuple):
    name: bytes
    crc: int
    size: int
    dos_time: int
    dos_date: int
    offset: int
    """Where the local header goes within its piece's blob."""
    src: str
    """``""``: header and data are in the blob; else a large file the main process copies."""
    mtime_ns: int
    """The ``src`` file's time when the worker read it (checked again when it is copied)."""


class ZipPiece(NamedTuple):
    """What a worker sends back for one group of a store's files."""

    blob: bytes
    entries: tuple[ZipEntry, ...]
    """Every entry, or none when ``central`` holds them all."""
    inventory: str
    files: int
    bytes: int
    central: bytes = b""
    """Central directory records of a piece without large files, offsets relative to the blob."""
    fixups: tuple[int, ...] = ()
    """Where each record's offset field is in ``central``."""


def _local_header(name: bytes, crc: int, size: int, dos_time: int, dos_date: int) -> bytes:
    flags = 0 if name.isascii() else _UTF8
    if size >= _MAX32:
        extra = struct.pack("<HHQQ", _ZIP64_EXTRA, 16, size, size)
        return (
            _LOCAL.pack(
                0x04034B50,
                45,
                flags,
                0,
                dos_time,
                dos_date,
                crc,
                _MAX32,
                _MAX32,
                len(name),
                len(extra),
            )
            + name
            + extra
        )
    return (
        _LOCAL.pack(0x04034B50, 20, flags, 0, dos_time, dos_date, crc, size, size, len(name), 0)
        + name
    )


def zip_folder(task: FolderTask) -> ZipPiece:
    """Worker side: read, check and CRC/sha256 the files of one group of a store."""
    store_prefix = len(task.store or "") + 1
    inner = task.prefix[store_prefix:]
    parts: list[bytes] = []
    entries: list[ZipEntry] = []
    inventory: list[str] = []
    offset = nbytes = cd_len = 0
    central: list[bytes] = []
    fixups: list[int] = []
    dos_cache: dict[int, tuple[int, int]] = {}
    local_pack, central_pack = _LOCAL.pack, _CENTRAL.pack
    plain = not ("\t" in inner or "%" in inner or "\r" in inner or "\n" in inner)
    dir_fd = os.open(task.src_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, name in enumerate(task.names):
            src = name if task.srcs is None else task.srcs[i]
            fd = os.open(src, os.O_RDONLY, dir_fd=dir_fd)
            try:
                st0 = os.fstat(fd)
                size = st0.st_size
                if size <= BUFFER_SIZE:
                    data = _read_exact(fd, size)
                    read = len(data)
                    crc = zlib.crc32(data)
                    digest = hashlib.sha256(data).hexdigest()
                else:
                    data = None
                    h = hashlib.sha256()
                    crc = 0
                    buf = bytearray(BUFFER_SIZE)
                    view = memoryview(buf)
                    read = 0
                    while read < size:
                        n = os.readv(fd, [buf])
                        if not n:
                            break
                        h.update(view[:n])
                        crc = zlib.crc32(view[:n], crc)
                        read += n
                    digest = h.hexdigest()
                after = os.fstat(fd)
            finally:
                os.close(fd)
            if read != size or after.st_size != size or after.st_mtime_ns != st0.st_mtime_ns:
                raise _archive_changed(os.path.join(task.src_dir, src))
            rel = inner + name
            zname = rel.encode("utf-8")
            seconds = st0.st_mtime_ns // 1_000_000_000
            dos = dos_cache.get(seconds)
            if dos is None:
                dos = dos_cache[seconds] = _dos_time(st0.st_mtime_ns)
            dos_time, dos_date = dos
            if data is None:
                full = os.path.join(task.src_dir, src)
                entries.append(
                    ZipEntry(zname, crc, size, dos_time, dos_date, offset, full, st0.st_mtime_ns)
                )
            else:
                flags = 0 if zname.isascii() else _UTF8
                head = local_pack(
                    0x04034B50, 20, flags, 0, dos_time, dos_date, crc, size, size, len(zname), 0
                )
                head += zname
                entries.append(ZipEntry(zname, crc, size, dos_time, dos_date, offset, "", 0))
                fixups.append(cd_len + 42)
                record = central_pack(
                    0x02014B50, _MADE_BY, 20, flags, 0,
                    dos_time, dos_date, crc, size, size, len(zname), 0, 0, 0, 0, _FILE_ATTR, offset,
                )  # fmt: skip
                central.append(record)
                central.append(zname)
                cd_len += len(record) + len(zname)
                parts.append(head)
                parts.append(data)
                offset += len(head) + size
            field = (
                rel
                if plain and not ("\t" in name or "%" in name or "\r" in name or "\n" in name)
                else encode_tsv_field(rel)
            )
            inventory.append(f"{field}\t{size}\t{digest}\n")
            nbytes += size
    finally:
        os.close(dir_fd)
    blob = b"".join(parts)
    if any(e.src for e in entries):
        return ZipPiece(blob, tuple(entries), "".join(inventory), len(task.names), nbytes)
    return ZipPiece(
        blob, (), "".join(inventory), len(task.names), nbytes, b"".join(central), tuple(fixups)
    )


def _archive_changed(path: str) -> FileChangedError:
    msg = "changed while it was being archived; stop whatever writes to the store and bag again"
    return FileChangedError(msg, path=path)


class ZipWriter:
    """Main side: append pieces to ``zip_path`` in order, then the central directory."""

    def __init__(self, zip_path: str, inventory_path: str) -> None:
        os.makedirs(os.path.dirname(inventory_path), exist_ok=True)
        self.path = zip_path
        self.fh = open(zip_path, "xb")  # noqa: SIM115
        self.inventory = open(inventory_path, "x", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.inventory.write(INVENTORY_HEADER)
        # the central directory, spooled to disk beside the zip (removed on close)
        self.cd_path = zip_path + ".central"
        self.cd = open(self.cd_path, "w+b")  # noqa: SIM115
        self.offset = 0
        self.count = 0
        self.files = 0
        self.bytes = 0
        self.empty_dirs = 0

    def _central(self, e: ZipEntry, offset: int, attr: int) -> None:
        extra = b""
        size32 = e.size
        off32 = offset
        fields: list[int] = []
        if e.size >= _MAX32:
            fields += [e.size, e.size]
            size32 = _MAX32
        if offset >= _MAX32:
            fields.append(offset)
            off32 = _MAX32
        if fields:
            extra = struct.pack(f"<HH{len(fields)}Q", _ZIP64_EXTRA, 8 * len(fields), *fields)
        flags = 0 if e.name.isascii() else _UTF8
        self.cd.write(
            _CENTRAL.pack(
                0x02014B50,
                _MADE_BY,
                45 if fields else 20,
                flags,
                0,
                e.dos_time,
                e.dos_date,
                e.crc,
                size32,
                size32,
                len(e.name),
                len(extra),
                0,
                0,
                0,
                attr,
                off32,
            )
            + e.name
            + extra
        )
        self.count += 1

    def add_piece(self, piece: ZipPiece) -> None:
        if piece.central:
            if self.offset + len(piece.blob) < _MAX32:  # the records only need their offsets
                cd = bytearray(piece.central)
                base = self.offset
                unpack_from, pack_into = _U32.unpack_from, _U32.pack_into
                for pos in piece.fixups:
                    pack_into(cd, pos, base + unpack_from(cd, pos)[0])
                self.cd.write(cd)
                self.count += len(piece.fixups)
                self.fh.write(piece.blob)
                self.offset += len(piece.blob)
                self.inventory.write(piece.inventory)
                self.files += piece.files
                self.bytes += piece.bytes
                return
            piece = piece._replace(entries=_entries(piece.central), central=b"")  # ZIP64 offsets
        view = memoryview(piece.blob)
        pos = 0  # how much of the blob is written; self.offset is where it goes in the file
        for e in piece.entries:
            if not e.src:
                self._central(e, self.offset + e.offset - pos, _FILE_ATTR)
                continue
            self.fh.write(view[pos : e.offset])
            self.offset += e.offset - pos
            pos = e.offset
            self._copy_large(e)
        self.fh.write(view[pos:])
        self.offset += len(view) - pos
        self.inventory.write(piece.inventory)
        self.files += piece.files
        self.bytes += piece.bytes

    def _copy_large(self, e: ZipEntry) -> None:
        head = _local_header(e.name, e.crc, e.size, e.dos_time, e.dos_date)
        self._central(e, self.offset, _FILE_ATTR)
        self.fh.write(head)
        self.fh.flush()
        out = self.fh.fileno()
        fd = os.open(e.src, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            if st.st_size != e.size or st.st_mtime_ns != e.mtime_ns:
                raise _archive_changed(e.src)
            done = 0
            while done < e.size:
                n = os.sendfile(out, fd, done, min(e.size - done, 1 << 30))
                if not n:
                    raise _archive_changed(e.src)
                done += n
            after = os.fstat(fd)
            if after.st_size != e.size or after.st_mtime_ns != e.mtime_ns:
                raise _archive_changed(e.src)
        finally:
            os.close(fd)
        self.offset += len(head) + e.size
        self.fh.seek(self.offset)

    def add_dir(self, rel: str, mtime_ns: int) -> None:
        """An empty folder of the store (a ``rel/`` entry, as zipfile writes them)."""
        dos_time, dos_date = _dos_time(mtime_ns)
        e = ZipEntry((rel + "/").encode("utf-8"), 0, 0, dos_time, dos_date, 0, "", 0)
        self._central(e, self.offset, _DIR_ATTR)
        head = _local_header(e.name, 0, 0, dos_time, dos_date)
        self.fh.write(head)
        self.offset += len(head)
        self.empty_dirs += 1

    def close(self) -> StoreArchive:
        """Write the central directory and end records (ZIP64 where needed)."""
        self.cd.flush()
        cd_size = self.cd.tell()
        cd_offset = self.offset
        self.cd.seek(0)
        shutil.copyfileobj(self.cd, self.fh, 1 << 20)
        end = cd_offset + cd_size
        n = self.count
        if n >= 0xFFFF or cd_offset >= _MAX32 or cd_size >= _MAX32:
            self.fh.write(
                struct.pack(
                    "<IQHHIIQQQQ", 0x06064B50, 44, _MADE_BY, 45, 0, 0, n, n, cd_size, cd_offset
                )
            )
            self.fh.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        self.fh.write(
            struct.pack(
                "<IHHHHIIH",
                0x06054B50,
                0,
                0,
                min(n, 0xFFFF),
                min(n, 0xFFFF),
                min(cd_size, _MAX32),
                min(cd_offset, _MAX32),
                0,
            )
        )
        self.abort()
        return StoreArchive(files=self.files, bytes=self.bytes, empty_dirs=self.empty_dirs)

    def abort(self) -> None:
        """Close every handle and drop the spool (the archive itself is left to the caller)."""
        for fh in (self.fh, self.inventory, self.cd):
            fh.close()
        if os.path.exists(self.cd_path):
            os.unlink(self.cd_path)
