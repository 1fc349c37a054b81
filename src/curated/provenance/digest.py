"""Digests of files and of directory trees (such as Zarr stores), streaming.

A file digest is ``sha256:<hex>``. A directory digest is ``sha256-tree:<hex>``:
the sha256 over one record per regular file under it, in sorted order::

    <relative posix path as bytes> NUL <size in decimal> NUL <file sha256 hex> LF

Paths are encoded with the file system encoding (``surrogateescape``, so names
that are not UTF-8 still hash) and NUL cannot occur in a path, so the records
are unambiguous even for names holding tabs or newlines. "Sorted" means by the
tuple of path components, which is what a depth-first walk with each folder's
entries sorted by name yields. Working folders of unfinished writes
(:data:`WORKING_FOLDERS`) are not part of a tree.

Memory is bounded by one read buffer plus the sorted listings of the folders
on the current path (never the whole tree); a folder with more than
:data:`SPILL_THRESHOLD` entries is sorted on disk in runs (external merge
sort), so even a flat folder of a million files hashes in bounded memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from curated.walk import DIR, Files, walk

WORKING_FOLDERS = frozenset({".curated-progress", ".curated-predict"})
"""Folders an unfinished write keeps inside a store (progress journal, done-markers): working
state, not content, so no digest covers them (a store is recorded once they are gone, and
bagging refuses a store that still holds one)."""

BUFFER_SIZE = 1024 * 1024
"""Read buffer; 1 MiB keeps OpenSSL's sha256 at full speed with little memory."""

SMALL_FILE = 256 * 1024
"""Files below this size are read with one call."""

SPILL_THRESHOLD = 50_000
"""A folder with more entries than this is sorted on disk rather than in memory
(:class:`curated.walk.Listing`; read at each walk, so tests may lower it)."""

_local = threading.local()


def _buffer() -> tuple[bytearray, memoryview]:
    # One reusable buffer per thread: allocating (and zero-filling) a fresh
    # buffer per file would dominate the cost of hashing many small files.
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = bytearray(BUFFER_SIZE)
        _local.buf = buf
        _local.view = memoryview(buf)
    return buf, _local.view


def sha256_file(path: str | Path, *, progress: Callable[[int], None] | None = None) -> str:
    """Return the hex sha256 of a file, read in :data:`BUFFER_SIZE` pieces.

    Parameters
    ----------
    path
        The file (symbolic links are followed).
    progress
        Called with the number of bytes read after each piece.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "empty"
    >>> _ = p.write_bytes(b"")
    >>> sha256_file(p)[:16]
    'e3b0c44298fc1c14'
    """
    return _hash_fd(path, progress)[0]


def _hash_fd(
    path: str | Path, progress: Callable[[int], None] | None, head: int = 0
) -> tuple[str, int, bytes]:
    """(hex sha256, bytes read, first ``head`` bytes) with as few system calls as possible.

    Small files (most files of a Zarr store) are read with one ``read`` of
    their size plus one byte, so the end of the file is known without a second
    call; larger ones stream through the reusable buffer.
    """
    return _hash_open(os.open(path, _O_READ), progress, head)


def hash_fd_at(
    dir_fd: int, name: str, progress: Callable[[int], None] | None = None, head: int = 0
) -> tuple[str, int, bytes]:
    """Like :func:`sha256_file_head` for ``name`` inside the open folder ``dir_fd``.

    Returns ``(hex sha256, bytes read, first head bytes)``. Opening relative to
    a folder spares the kernel a lookup of every component of a long path, which
    counts when a folder holds thousands of small files.
    """
    return _hash_open(os.open(name, _O_READ, dir_fd=dir_fd), progress, head)


_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _hash_open(
    fd: int, progress: Callable[[int], None] | None, head: int
) -> tuple[str, int, bytes]:
    try:
        size = os.fstat(fd).st_size
        if size < SMALL_FILE:
            data = os.read(fd, size + 1)
            if progress is not None and data:
                progress(len(data))
            if len(data) <= size:
                return hashlib.sha256(data).hexdigest(), len(data), data[:head]
            # the file grew since fstat: hash the rest as it streams
            h = hashlib.sha256(data)
            total = len(data)
            first = data[:head]
        else:
            h = hashlib.sha256()
            total = 0
            first = b""
        buf, view = _buffer()
        while n := os.readv(fd, [buf]):
            if len(first) < head:
                first += bytes(view[: min(n, head - len(first))])
            h.update(view[:n])
            total += n
            if progress is not None:
                progress(n)
        return h.hexdigest(), total, first
    finally:
        os.close(fd)


def _walk(root: str, exclude: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """``(relative posix path, path)`` of regular files under ``root``, sorted; plain strings (fast).

    ``exclude`` holds relative posix paths (files or folders) left out with everything below them.
    Links and special files are not part of a tree (the walker reports them; they are passed over).
    """

    def skip(prefix: str, name: str, kind: str) -> bool:
        if kind == DIR and name in WORKING_FOLDERS:
            return True
        return bool(exclude) and f"{prefix}{name}" in exclude

    for ev in walk(root, skip=skip, spill_threshold=SPILL_THRESHOLD):
        if type(ev) is Files:
            folder, prefix = ev.folder, ev.prefix
            for name in ev.names:
                yield prefix + name, os.path.join(folder, name)


def iter_tree(root: str | Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, absolute path)`` for regular files, sorted by path components.

    Symbolic links and special files are skipped (a Zarr store must not contain
    them); the walk is depth-first with each folder's entries sorted, which
    yields the same order as sorting the relative paths component-wise.
    """
    for rel, path in _walk(os.fspath(root)):
        yield rel, Path(path)


@dataclass(frozen=True)
class TreeDigest:
    """The digest of a directory tree and what it covered."""

    digest: str
    """``sha256-tree:<hex>``."""
    files: int
    bytes: int


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def tree_record(relpath: str, size: int, sha256_hex: str) -> bytes:
    """One file's record in a directory digest (see the module docstring)."""
    # str.encode with the file system codec is os.fsencode without its Python-level call
    return relpath.encode(_FS_ENCODING, _FS_ERRORS) + f"\0{size}\0{sha256_hex}\n".encode("ascii")


def _validate(relpath: str, sha256_hex: str) -> None:
    if not relpath or relpath[0] == "/" or "\0" in relpath:
        msg = f"relpath must be a relative posix path, not {relpath!r}"
        raise ValueError(msg)
    if len(sha256_hex) != 64:
        msg = f"sha256_hex must be 64 hex digits, not {sha256_hex!r}"
        raise ValueError(msg)


class TreeHasher:
    """Incremental directory digest for producers that hash what they write.

    A converter that already knows each file's sha256 can :meth:`add` it here
    and hand the resulting digest to the log, instead of re-reading terabytes.
    Files must be added in sorted path-component order (the order
    :func:`iter_tree` yields); out-of-order adds raise ``ValueError`` so the
    digest stays comparable with :func:`digest_tree`.

    Examples
    --------
    >>> h = TreeHasher()
    >>> h.add("a/0", 3, "ab" * 32)
    >>> h.add("b", 1, "cd" * 32)
    >>> h.result().files
    2
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._last: tuple[str, ...] | None = None
        self.files = 0
        self.bytes = 0

    def add(self, relpath: str, size: int, sha256_hex: str) -> None:
        """Add one file: its posix path relative to the tree root, size and hex sha256."""
        _validate(relpath, sha256_hex)
        key = tuple(relpath.split("/"))
        if self._last is not None and key <= self._last:
            msg = f"files must be added in sorted order: {relpath!r} after {'/'.join(self._last)!r}"
            raise ValueError(msg)
        self._last = key
        self._h.update(tree_record(relpath, int(size), sha256_hex.lower()))
        self.files += 1
        self.bytes += int(size)

    def add_records(self, records: bytes, first: str, last: str, files: int, nbytes: int) -> None:
        """Add ``files`` files at once as their :func:`tree_record` lines, already in order.

        For producers that hash many files elsewhere (worker processes) and
        hand back the joined records of a run of consecutive files: ``first``
        and ``last`` are the run's first and last relative paths; the first is
        checked against what was added before, the run itself is trusted to be
        in order (it comes from one sorted folder listing).
        """
        if files <= 0:
            return
        _validate(first, "0" * 64)
        key = tuple(first.split("/"))
        if self._last is not None and key <= self._last:
            msg = f"files must be added in sorted order: {first!r} after {'/'.join(self._last)!r}"
            raise ValueError(msg)
        self._h.update(records)
        self.files += files
        self.bytes += nbytes
        self._last = tuple(last.split("/"))

    def add_file(
        self, relpath: str, path: str | Path, *, progress: Callable[[int], None] | None = None
    ) -> None:
        """Hash the file at ``path`` and add it under ``relpath``."""
        hexd, size, _ = _hash_fd(path, progress)
        self.add(relpath, size, hexd)

    def result(self) -> TreeDigest:
        return TreeDigest(
            digest=f"sha256-tree:{self._h.hexdigest()}", files=self.files, bytes=self.bytes
        )


def digest_tree(
    root: str | Path,
    *,
    progress: Callable[[int], None] | None = None,
    exclude: Iterable[str] = (),
) -> TreeDigest:
    """Digest every regular file under ``root`` (see the module docstring).

    ``exclude`` lists relative posix paths (files or folders) to leave out, e.g.
    ``["labels"]`` to digest an OME-Zarr image without the label images added to
    it later. Raises ``OSError`` (e.g. ``PermissionError``) when a file or folder
    cannot be read.
    """
    hasher = TreeHasher()
    for rel, path in _walk(os.fspath(root), frozenset(exclude)):
        hasher.add_file(rel, path, progress=progress)
    return hasher.result()


def digest_path(
    path: str | Path, *, progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """Return ``(digest, bytes)`` of a file (``sha256:...``) or a directory (``sha256-tree:...``)."""
    path = Path(path)
    if path.is_dir():
        td = digest_tree(path, progress=progress)
        return td.digest, td.bytes
    size = path.stat().st_size
    return f"sha256:{sha256_file(path, progress=progress)}", size


def sha256_file_head(
    path: str | Path, head: int = 512, *, progress: Callable[[int], None] | None = None
) -> tuple[str, bytes, int]:
    """Hash a file in one pass and keep its first ``head`` bytes (for format sniffing).

    Returns ``(hex sha256, first bytes, size read)``; saves a second open per
    file when an inventory needs both the digest and the magic bytes.
    """
    hexd, total, first = _hash_fd(path, progress, head)
    return hexd, first, total
