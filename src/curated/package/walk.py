"""Which workspace files make a bag's payload, listed in a stable order with bounded memory.

The walk is depth-first: a folder's files in name order (handed out in groups,
:class:`FileGroup`), then its sub-folders in name order, so a bag's manifests
come out in the same order on every run. Only the folders on the way down and
one listing are held at a time. Names are checked as they are met (UTF-8, NFC
collisions); symbolic links are refused with their name and target, or followed
when asked, never skipped; devices, pipes and sockets are refused.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from curated._io import is_temp_name
from curated.errors import PackageError
from curated.package.names import check_name, check_siblings
from curated.walk import Files, Folder, Special, is_zarr_store, walk

PAYLOAD_ROOTS: tuple[str, ...] = (
    "README.md",
    "figures",
    "derived",
)
"""Workspace paths that go into ``data/`` (at the same relative place). ``package/``
(bags and receipts), ``curated.yaml`` and the curator log are not payload: the last
two travel as tag files under ``metadata/``. ``data/curation/fair.*`` is evaluated
on the bag itself while it is built (the workspace's copy predates the bag)."""

TRAINING_STATE = frozenset(("checkpoint.pt", "checkpoint.json"))
"""Resume state of a training run, left out of a folder that holds a finished model
(``model.json``): the model is ``weights.pt``; the checkpoint only serves to resume
training in the workspace."""


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


UNFINISHED_MARKERS = frozenset({".curated-progress", ".curated-predict"})
"""Folders that unfinished writes (convert, labels, predict) keep inside a store until done."""


def refuse_unfinished(path: str, rel: str, marker: str) -> PackageError:
    msg = (
        f"{rel!r} holds an unfinished write ({marker}/): a conversion or prediction was "
        "interrupted; re-run that command to finish it (or remove the store), then bag again"
    )
    return PackageError(msg, path=path, details={"unfinished": rel})


INCOMPLETE_KEY = "curated-incomplete"
"""The attribute a store carries while it is being written (``curated.images.store``)."""


def _refuse_if_marked_incomplete(path: str, rel: str) -> None:
    for meta in ("zarr.json", ".zattrs"):
        try:
            with open(os.path.join(path, meta), "rb") as fh:
                head = fh.read(1 << 20)
        except OSError:
            continue
        if INCOMPLETE_KEY.encode() in head:
            raise refuse_unfinished(path, rel, meta + ": " + INCOMPLETE_KEY)


def links_and_specials(root: str | os.PathLike[str]) -> Iterator[tuple[str, str, str]]:
    """Every symbolic link and non-regular file under ``root``, never following a link.

    Progress folders of unfinished writes (:data:`UNFINISHED_MARKERS`) are reported too.
    Yields ``(relative path, what it is, where it points or "")`` in a stable order. The one
    symlink policy of bags: the walk that builds payloads refuses these as it meets
    them (:func:`walk_groups`); validation and deposit refuse a bag holding any.
    """
    marker = False

    def enter(folder: Folder) -> bool:
        return not marker

    for ev in walk(root, order="files-first", enter=enter, batch=1 << 16):
        if type(ev) is Special:
            if ev.kind == "special":
                yield ev.rel, "device, pipe or socket", ""
            else:
                yield ev.rel, "symbolic link", os.readlink(ev.path)
        elif type(ev) is Folder:
            marker = ev.rel.rpartition("/")[2] in UNFINISHED_MARKERS
            if marker:
                yield ev.rel, "unfinished write's progress folder", ""


def refuse_link(path: str, rel: str) -> PackageError:
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


# ------------------------------------------------------------------ folder groups
@dataclass(frozen=True, slots=True)
class FileGroup:
    """Regular files of one folder, in name order, handed to hashing as one unit."""

    src_dir: str
    prefix: str
    """``rel`` of the folder plus ``/`` (``""`` at the workspace root)."""
    names: tuple[str, ...]
    store: str | None
    srcs: tuple[str, ...] | None = None
    """Where each file is read from when not ``src_dir/name`` (followed links)."""


GroupItem = PayloadDir | FileGroup | ZarrStore


class _Names:
    """Names of one folder checked as they are met (UTF-8, NFC collisions), in bounded memory.

    Plain ASCII names are valid UTF-8 and already NFC: nothing to check. A name
    that changes under NFC collides with a sibling holding its NFC form (looked
    up on disk) or with another name of the same NFC form met before (only
    non-ASCII names are remembered).
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.seen: dict[str, str] = {}

    def check(self, name: str) -> None:
        if name.isascii():
            return
        check_name(name, self.folder)
        key = unicodedata.normalize("NFC", name)
        if key != name and os.path.lexists(os.path.join(self.folder, key)):
            check_siblings((key, name), self.folder)
        if key in self.seen:
            check_siblings((self.seen[key], name), self.folder)
        self.seen[key] = name


def walk_groups(
    root: str | os.PathLike[str],
    *,
    follow_symlinks: bool = False,
    zarr_archives: bool = False,
    roots: tuple[str, ...] = PAYLOAD_ROOTS,
    group_files: int = 1000,
    group_bytes: int = 64 << 20,
    parts: int = 1,
) -> Iterator[GroupItem]:
    """Walk the payload folder by folder, yielding files in groups (bounded memory).

    Each folder is listed once with :func:`os.scandir`; entries that the listing
    shows to be regular files or folders cost no further system call inside Zarr
    stores. Files outside stores are ``lstat``-ed (they are few, and their sizes
    keep large files in separate groups). Links are refused (or followed), as are
    devices, pipes, sockets, undecodable names and NFC-equal siblings, as soon as
    their folder is listed. Order: a folder's :class:`PayloadDir`, its files in
    name order (in groups of at most ``group_files`` files, or ``len/parts`` so
    that one folder keeps ``parts`` workers busy), then its sub-folders in name
    order, depth first: the same on every run.
    """
    root = os.fspath(root)
    seen_parents: set[str] = set()
    for rel in roots:
        path = os.path.join(root, *rel.split("/"))
        if not os.path.lexists(path):
            continue
        for i in range(1, rel.count("/") + 1):
            parent = "/".join(rel.split("/")[:i])
            if parent not in seen_parents:
                seen_parents.add(parent)
                yield PayloadDir(parent, empty=False, store=None)
        parent_rel, _, name = rel.rpartition("/")
        st = os.lstat(path)
        src = path
        if stat.S_ISLNK(st.st_mode):
            if not follow_symlinks or not os.path.exists(path):
                raise refuse_link(path, rel)
            src = os.path.realpath(path)
            st = os.stat(src)
        if stat.S_ISREG(st.st_mode):
            prefix = parent_rel + "/" if parent_rel else ""
            yield FileGroup(
                os.path.dirname(path), prefix, (name,), None, None if src == path else (src,)
            )
        elif stat.S_ISDIR(st.st_mode):
            yield from _walk_tree(
                src, rel, follow_symlinks, zarr_archives, group_files, group_bytes, parts
            )
        else:
            msg = f"{rel!r} is not a regular file or folder (a device, pipe or socket); remove it from the payload"
            raise PackageError(msg, path=path)


def _walk_tree(
    path: str,
    rel: str,
    follow_symlinks: bool,
    zarr_archives: bool,
    group_files: int,
    group_bytes: int,
    parts: int,
    store: str | None = None,
) -> Iterator[GroupItem]:
    """The payload under one folder through :func:`curated.walk.walk` (files first, then folders)."""
    stores: list[str] = [] if store is None else [store]
    archived = False
    # per depth: the folder being walked there and its name checker (made at its first non-ASCII name)
    anc: list[list[Any]] = []
    pending = _Pending()
    model_dir = False

    def enter(folder: Folder) -> bool:
        return not archived

    try:
        for ev in walk(
            path,
            rel=rel,
            order="files-first",
            follow_symlinks=follow_symlinks,
            enter=enter,
            batch=group_files,
        ):
            if type(ev) is Files:
                for n in ev.names:
                    if not n.isascii():
                        _names_of(anc[-1]).check(n)
                yield from pending.add(ev, model_dir)
                continue
            yield from pending.flush()
            if type(ev) is Folder:
                archived = False
                del anc[ev.depth :]
                name = ev.rel.rpartition("/")[2]
                if ev.depth:
                    if name in UNFINISHED_MARKERS:
                        raise refuse_unfinished(anc[-1][0], ev.rel.rpartition("/")[0], name)
                    if not name.isascii():
                        _names_of(anc[-1]).check(name)
                anc.append([ev.path, None])
                while stores and not (ev.rel == stores[-1] or ev.rel.startswith(stores[-1] + "/")):
                    stores.pop()
                current = stores[-1] if stores else None
                if current is None and ev.depth and is_temp_name(name):
                    archived = True  # not entered: what a killed atomic folder write left
                    continue
                if current is None and is_zarr_store(ev.path):
                    _refuse_if_marked_incomplete(ev.path, ev.rel)
                    if zarr_archives:
                        archived = True
                        yield ZarrStore(ev.rel, ev.path)
                        continue
                    stores.append(ev.rel)
                    current = ev.rel
                model_dir = current is None and os.path.lexists(os.path.join(ev.path, "model.json"))
                pending.start(ev, current, group_files, group_bytes, parts)
                yield PayloadDir(ev.rel, empty=ev.entries == 0, store=current)
            elif type(ev) is Special:
                raise _refuse_special(ev)
        yield from pending.flush()
    finally:
        pending.close()


def _names_of(level: list[Any]) -> _Names:
    if level[1] is None:
        level[1] = _Names(level[0])
    checker: _Names = level[1]
    return checker


def _refuse_special(ev: Special) -> PackageError:
    if ev.kind in ("link", "broken-link"):
        return refuse_link(ev.path, ev.rel)
    if ev.kind == "link-loop":
        msg = f"symbolic link loop at {ev.rel!r}: it leads back into a folder above it"
        return PackageError(msg, path=ev.path)
    msg = f"{ev.rel!r} is not a regular file or folder (a device, pipe or socket); remove it from the payload"
    return PackageError(msg, path=ev.path)


class _Pending:
    """Files of the current folder gathered into :class:`FileGroup` s (by count, and by bytes
    outside stores, where sizes keep large files in separate groups). Outside stores, the
    temporary file of an atomic write that a kill interrupted (``figures/.cell.png.x1y2.tmp``,
    :func:`curated._io.is_temp_name`) is left out: it may be half written and is never content.
    So is such a temporary folder (an output being built) and an output a kill left set aside
    between the two renames of its replacement (``.NAME.old.tmp``), in :func:`walk_groups`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.srcs: list[str] | None = None
        """Where each name is read from, made at the first followed link (else ``None``)."""
        self.nbytes = 0
        self.fd = -1
        """The folder whose files are being sized, open (``lstat`` by name, one path step)."""
        self.fd_folder = ""
        self.path = self.prefix = ""
        self.store: str | None = None
        self.per = 1
        self.group_bytes = 0

    def start(
        self, folder: Folder, store: str | None, group_files: int, group_bytes: int, parts: int
    ) -> None:
        self.path = folder.path
        self.prefix = folder.rel + "/" if folder.rel else ""
        self.store = store
        self.per = max(1, min(group_files, -(-folder.entries // max(1, parts))))
        self.group_bytes = group_bytes

    def add(self, ev: Files, model_dir: bool) -> Iterator[FileGroup]:
        sized = self.store is None
        if sized and self.fd_folder != ev.folder:
            self.close()
            self.fd = os.open(ev.folder, os.O_RDONLY | os.O_DIRECTORY)
            self.fd_folder = ev.folder
        lstat, fd, names = os.lstat, self.fd, self.names
        for i, name in enumerate(ev.names):
            if (model_dir and name in TRAINING_STATE) or (sized and is_temp_name(name)):
                continue  # resume state of training; what a killed atomic write left
            src = ev.srcs[i] if ev.srcs is not None else None
            size = 0
            if sized:
                size = os.stat(src).st_size if src is not None else lstat(name, dir_fd=fd).st_size
            if names and (
                len(names) >= self.per or (sized and self.nbytes + size > self.group_bytes)
            ):
                yield from self.flush()
                names = self.names
            if src is not None and self.srcs is None:
                self.srcs = [os.path.join(ev.folder, n) for n in names]
            names.append(name)
            if self.srcs is not None:
                self.srcs.append(src or os.path.join(ev.folder, name))
            self.nbytes += size

    def flush(self) -> Iterator[FileGroup]:
        if self.names:
            yield FileGroup(
                self.path,
                self.prefix,
                tuple(self.names),
                self.store,
                tuple(self.srcs) if self.srcs is not None else None,
            )
        self.names, self.srcs, self.nbytes = [], None, 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.fd_folder = -1, ""


def walk_store_groups(
    path: str,
    rel: str,
    *,
    follow_symlinks: bool = False,
    group_files: int = 1000,
    parts: int = 1,
) -> Iterator[GroupItem]:
    """:func:`walk_groups` inside one Zarr store (``rel`` its path in the payload)."""
    yield from _walk_tree(
        path, rel, follow_symlinks, False, group_files, 64 << 20, parts, store=rel
    )


def count_files(
    root: str | os.PathLike[str],
    *,
    zarr_archives: bool = False,
    roots: tuple[str, ...] = PAYLOAD_ROOTS,
) -> int:
    """How many files :func:`walk_groups` will yield, for a progress total (checks nothing).

    Folder listings only (``d_type``), no ``lstat`` per file. Each Zarr store in
    archive mode counts its files plus one for its zip. Links count as one file each.
    """
    total = 0
    for rel in roots:
        path = os.path.join(os.fspath(root), *rel.split("/"))
        if not os.path.isdir(path):
            total += os.path.lexists(path)
            continue
        stores: list[str] = []
        for ev in walk(path, rel=rel, errors="report", batch=1 << 16):
            if type(ev) is Files:
                total += len(ev.names)
            elif type(ev) is Special:
                total += 1
            elif type(ev) is Folder and zarr_archives:
                while stores and not ev.rel.startswith(stores[-1] + "/"):
                    stores.pop()
                if not stores and ev.rel != rel and is_zarr_store(ev.path):
                    stores.append(ev.rel)
                    total += 1  # the store's zip
    return total
