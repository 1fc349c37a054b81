"""Digests of files and of directory trees (such as Zarr stores), streaming.

A file digest is ``sha256:<hex>``. A directory digest is the sha256 of the
sorted ``(relative posix path, size, file sha256)`` lines of every regular file
under it, so two trees with the same files have the same digest whatever order
the file system lists them in. Memory is bounded by one read buffer plus one
directory listing at a time: the tree is walked in sorted order and hashed as it
goes, never collected into a list first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BUFFER_SIZE = 4 * 1024 * 1024
"""Read buffer; 4 MiB keeps OpenSSL's sha256 at full speed with little memory."""


def sha256_file(path: str | Path, *, progress: Callable[[int], None] | None = None) -> str:
    """Return the hex sha256 of a file, read in :data:`BUFFER_SIZE` pieces."""
    h = hashlib.sha256()
    buf = bytearray(BUFFER_SIZE)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            if progress is not None:
                progress(n)
    return h.hexdigest()


def iter_tree(root: str | Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative posix path, absolute path)`` for regular files, sorted by relative path.

    Symbolic links are not followed (a Zarr store must not contain them); the walk
    is depth-first with each directory's entries sorted, which yields the same
    global order as sorting the full relative paths component-wise.
    """
    root = Path(root)

    def walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from walk(Path(entry.path), rel + "/")
            elif entry.is_file(follow_symlinks=False):
                yield rel, Path(entry.path)

    yield from walk(root, "")


@dataclass(frozen=True)
class TreeDigest:
    """The digest of a directory tree and what it covered."""

    digest: str
    files: int
    bytes: int


class TreeHasher:
    """Incremental directory digest for producers that hash what they write.

    A converter that already knows each chunk's sha256 can ``add`` it here and
    hand the resulting digest to the log, instead of re-reading terabytes. Files
    must be added in sorted relative-path order (the order :func:`iter_tree`
    yields); out-of-order adds raise ``ValueError`` so the digest stays
    comparable with :func:`digest_tree`.
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._last: tuple[str, ...] | None = None
        self.files = 0
        self.bytes = 0

    def add(self, relpath: str, size: int, sha256_hex: str) -> None:
        key = tuple(relpath.split("/"))
        if self._last is not None and key <= self._last:
            msg = f"files must be added in sorted order: {relpath!r} after {'/'.join(self._last)!r}"
            raise ValueError(msg)
        self._last = key
        self._h.update(f"{relpath}\t{size}\t{sha256_hex}\n".encode())
        self.files += 1
        self.bytes += size

    def result(self) -> TreeDigest:
        return TreeDigest(digest=f"sha256-tree:{self._h.hexdigest()}", files=self.files, bytes=self.bytes)


def digest_tree(root: str | Path, *, progress: Callable[[int], None] | None = None) -> TreeDigest:
    """Digest every regular file under ``root`` (see module docstring)."""
    hasher = TreeHasher()
    for rel, path in iter_tree(root):
        size = path.stat().st_size
        hasher.add(rel, size, sha256_file(path, progress=progress))
    return hasher.result()


def digest_path(path: str | Path, *, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Return ``(digest, bytes)`` of a file (``sha256:...``) or a directory (``sha256-tree:...``)."""
    path = Path(path)
    if path.is_dir():
        td = digest_tree(path, progress=progress)
        return td.digest, td.bytes
    return f"sha256:{sha256_file(path, progress=progress)}", path.stat().st_size
