"""A Zarr store as one uncompressed zip archive, with a per-chunk inventory.

Repositories such as Zenodo cap a record at 100 files; a FIB-SEM store has
millions. In ``zarr="archive"`` mode each store becomes ``<store>.zip`` (entries
``ZIP_STORED``, so zarr's ``ZipStore`` reads chunks in place without
decompressing) and ``metadata/zarr-inventory/<store>.tsv`` lists every file in
it (``path``, ``size``, ``sha256``) so each chunk stays individually verifiable.
The zip's central directory holds one small record per member in memory while
it is written: about 0.5 KB per chunk.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from curated.package.hashing import BUFFER_SIZE, FileChangedError
from curated.package.names import encode_tsv_field
from curated.package.walk import PayloadDir, PayloadFile, walk_store

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


def archive_store(
    store_path: str,
    zip_path: str,
    inventory_path: str,
    *,
    follow_symlinks: bool = False,
    on_bytes: Callable[[int], None] | None = None,
) -> StoreArchive:
    """Write ``store_path`` into ``zip_path`` (stored) and its inventory; return counts."""
    os.makedirs(os.path.dirname(inventory_path), exist_ok=True)
    files = nbytes = empty = 0
    buf = bytearray(BUFFER_SIZE)
    view = memoryview(buf)
    with (
        zipfile.ZipFile(zip_path, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as zf,
        open(inventory_path, "x", encoding="utf-8", newline="\n") as inv,
    ):
        inv.write(INVENTORY_HEADER)
        for item in walk_store(store_path, follow_symlinks=follow_symlinks):
            if isinstance(item, PayloadDir):
                if item.empty:
                    zf.mkdir(item.rel)
                    empty += 1
                continue
            assert isinstance(item, PayloadFile)
            zi = zipfile.ZipInfo(item.rel, date_time=_zip_time(item.mtime_ns))
            zi.compress_type = zipfile.ZIP_STORED
            zi.file_size = item.size
            zi.external_attr = 0o644 << 16
            h = hashlib.sha256()
            read = 0
            with open(item.src, "rb", buffering=0) as src, zf.open(zi, "w") as dst:
                st = os.fstat(src.fileno())
                while n := src.readinto(buf):
                    chunk = view[:n]
                    h.update(chunk)
                    dst.write(chunk)
                    read += n
                    if on_bytes is not None:
                        on_bytes(n)
                after = os.fstat(src.fileno())
            if (
                read != item.size
                or st.st_mtime_ns != item.mtime_ns
                or after.st_mtime_ns != item.mtime_ns
            ):
                msg = "changed while it was being archived; stop whatever writes to the store and bag again"
                raise FileChangedError(msg, path=item.src)
            inv.write(f"{encode_tsv_field(item.rel)}\t{item.size}\t{h.hexdigest()}\n")
            files += 1
            nbytes += item.size
    return StoreArchive(files=files, bytes=nbytes, empty_dirs=empty)
