"""What the bag's hashing workers and the Zarr archiver share (kept apart so neither imports the other)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from curated.errors import PackageError

BUFFER_SIZE = 1 << 20
"""Read buffer (1 MiB): big enough for full hashing speed, small enough to stay cache-friendly."""


class FileChangedError(PackageError):
    """A payload file changed (size or modification time) while it was being bagged."""


class FolderTask(NamedTuple):
    """Files of one folder to place and hash in one go (a tuple: cheap to pickle)."""

    src_dir: str
    """The folder the names are in."""
    dest_dir: str | None
    """The same folder in the bag (``None``: hash only, nothing is placed)."""
    prefix: str
    """``rel`` of the folder plus ``/`` (or ``""`` at the payload root)."""
    names: tuple[str, ...]
    mode: str
    store: str | None = None
    """The Zarr store all these files belong to, if any."""
    srcs: tuple[str, ...] | None = None
    """Where each name is read from when not ``src_dir/name`` (followed links)."""
    formats: dict[tuple[str, str], Any] | None = None
    """The bag's settled format answers (:meth:`curated.package.crate.FormatMemo.settled`)
    for the worker that formats these files' RO-Crate entities."""


def read_exact(fd: int, size: int) -> bytes:
    """Read a small file (at most :data:`BUFFER_SIZE` bytes) in one call."""
    return os.read(fd, size)
