"""Which workspace files make a bag's payload, listed in a stable order with bounded memory.

The walk is depth-first with each folder's entries sorted by name, so a bag's
manifests come out in the same order on every run. Only one folder listing is
held at a time. Names are checked as they are met (UTF-8, NFC collisions);
symbolic links are refused with their name and target, or followed when asked,
never skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from curated.errors import PackageError
from curated.package.names import check_name, check_siblings

PAYLOAD_ROOTS: tuple[str, ...] = (
    "README.md",
    "figures",
    "curation/fair.json",
    "curation/fair.md",
    "derived",
)
"""Workspace paths that go into ``data/`` (at the same relative place). ``package/``
(bags and receipts), ``curated.yaml`` and the curator log are not payload: the last
two travel as tag files under ``metadata/``."""


@dataclass(frozen=True, slots=True)
class PayloadFile:
    rel: str
    """Path below ``data/`` (posix), the same as below the workspace root."""
    src: str
    size: int
    mtime_ns: int
    store: str | None
    """The Zarr store (its ``rel``) this file is inside, if any."""


@dataclass(frozen=True, slots=True)
class PayloadDir:
    rel: str
    empty: bool
    store: str | None


@dataclass(frozen=True, slots=True)
class ZarrStore:
    """A Zarr store met while walking in archive mode (not descended into)."""

    rel: str
    src: str


PayloadItem = PayloadFile | PayloadDir | ZarrStore


def is_zarr_store(name: str) -> bool:
    return name.endswith(".zarr")


def _refuse_link(path: str, rel: str) -> PackageError:
    target = os.readlink(path)
    if not os.path.exists(path):
        msg = (
            f"broken symbolic link {rel!r} -> {target!r}: it points to nothing; "
            "remove it or restore its target, then bag again"
        )
    else:
        msg = (
            f"symbolic link {rel!r} -> {target!r}: bags hold files, not links; "
            "replace it with the file itself, or bag with --follow-symlinks to store what it points to"
        )
    return PackageError(msg, path=path, details={"link": rel, "target": target})


class PayloadWalker:
    """Walk the payload of a workspace (see :data:`PAYLOAD_ROOTS`).

    Parameters
    ----------
    root
        The workspace folder.
    follow_symlinks
        Store what links point to instead of refusing them (broken links and
        loops are refused either way).
    zarr_archives
        Yield each Zarr store as a :class:`ZarrStore` instead of its files.
    roots
        Payload paths relative to ``root``; defaults to :data:`PAYLOAD_ROOTS`.
    stat_files
        ``lstat`` every regular file for its size and time (default). With
        ``False``, files inside Zarr stores that the folder listing shows to be
        regular are yielded with ``size`` and ``mtime_ns`` of ``-1``, sparing one
        system call per chunk for a consumer that opens them anyway (the bag
        builder's hashing). Files outside stores are always stat-ed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        follow_symlinks: bool = False,
        zarr_archives: bool = False,
        roots: tuple[str, ...] = PAYLOAD_ROOTS,
        stat_files: bool = True,
    ) -> None:
        self.stat_files = stat_files
        self.root = os.fspath(root)
        self.follow_symlinks = follow_symlinks
        self.zarr_archives = zarr_archives
        self.roots = roots

    def __iter__(self) -> Iterator[PayloadItem]:
        parents: set[str] = set()
        for rel in self.roots:
            path = os.path.join(self.root, *rel.split("/"))
            if not os.path.lexists(path):
                continue
            for i in range(1, rel.count("/") + 1):
                parent = "/".join(rel.split("/")[:i])
                if parent not in parents:
                    parents.add(parent)
                    yield PayloadDir(parent, empty=False, store=None)
            yield from self._entry(path, rel, None, frozenset())

    def _entry(
        self, path: str, rel: str, store: str | None, ancestors: frozenset[str]
    ) -> Iterator[PayloadItem]:
        # An explicit stack instead of recursive generators: each item is yielded
        # once, not passed up through one generator frame per folder level. The
        # kind of each entry comes from the folder listing (d_type), so folders
        # and, with stat_files=False, regular files cost no lstat.
        stack: list[tuple[str, str, str | None, frozenset[str], int]] = [
            (path, rel, store, ancestors, _UNKNOWN)
        ]
        lstat, join, is_reg, is_dir, is_lnk = (
            os.lstat,
            os.path.join,
            stat.S_ISREG,
            stat.S_ISDIR,
            stat.S_ISLNK,
        )
        stat_files = self.stat_files
        while stack:
            path, rel, store, ancestors, kind = stack.pop()
            if kind == _FILE and not stat_files and store is not None:
                yield PayloadFile(rel, path, -1, -1, store)
                continue
            if kind == _DIR:
                mode = stat.S_IFDIR
            else:
                st = lstat(path)
                mode = st.st_mode
                if is_lnk(mode):
                    if not self.follow_symlinks or not os.path.exists(path):
                        raise _refuse_link(path, rel)
                    path = os.path.realpath(path)  # link and read the target, never the link itself
                    st = os.stat(path)
                    mode = st.st_mode
                if is_reg(mode):
                    yield PayloadFile(rel, path, st.st_size, st.st_mtime_ns, store)
                    continue
            if not is_dir(mode):
                msg = f"{rel!r} is not a regular file or folder (a device, pipe or socket); remove it from the payload"
                raise PackageError(msg, path=path)
            if self.follow_symlinks:
                real = os.path.realpath(path)
                if real in ancestors:
                    msg = f"symbolic link loop at {rel!r}: it leads back into a folder above it"
                    raise PackageError(msg, path=path)
                ancestors = ancestors | {real}
            name = rel.rsplit("/", 1)[-1]
            if store is None and is_zarr_store(name):
                if self.zarr_archives:
                    yield ZarrStore(rel, path)
                    continue
                store = rel
            with os.scandir(path) as it:
                listing = sorted((e.name, _kind(e)) for e in it)
            for n, _k in listing:
                check_name(n, path)
            check_siblings([n for n, _k in listing], path)
            yield PayloadDir(rel, empty=not listing, store=store)
            prefix = rel + "/" if rel else ""
            for n, k in reversed(listing):
                stack.append((join(path, n), prefix + n, store, ancestors, k))


_UNKNOWN, _FILE, _DIR = 0, 1, 2


def _kind(entry: os.DirEntry[str]) -> int:
    """What the listing says an entry is, without a system call where d_type is known."""
    try:
        if entry.is_symlink():
            return _UNKNOWN
        if entry.is_dir(follow_symlinks=False):
            return _DIR
        if entry.is_file(follow_symlinks=False):
            return _FILE
    except OSError:
        pass
    return _UNKNOWN


def walk_store(
    path: str | os.PathLike[str], *, follow_symlinks: bool = False
) -> Iterator[PayloadItem]:
    """Walk one Zarr store; ``rel`` values are relative to the store root."""
    walker = PayloadWalker(path, follow_symlinks=follow_symlinks)
    for item in walker._entry(os.fspath(path), "", "", frozenset()):
        if item.rel:
            yield item
