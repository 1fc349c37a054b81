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
from collections.abc import Iterator
from dataclasses import dataclass

from curated.errors import PackageError
from curated.images.ngff import is_zarr_store
from curated.package.names import check_name, check_siblings

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
    root = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in sorted(filenames) + [d for d in dirnames]:
            full = os.path.join(dirpath, name)
            try:
                mode = os.lstat(full).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                yield prefix + name, "symbolic link", os.readlink(full)
            elif name in UNFINISHED_MARKERS and stat.S_ISDIR(mode):
                yield prefix + name, "unfinished write's progress folder", ""
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                yield prefix + name, "device, pipe or socket", ""
        # os.walk lists a link to a folder among the folders but does not enter it
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


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


def _check_listing(names: list[str], path: str) -> None:
    # Plain ASCII names are valid UTF-8 and already NFC: nothing to check. Names
    # with undecodable bytes (surrogate escapes) are not ASCII, so they take the slow path.
    if "".join(names).isascii():
        return
    for n in names:
        check_name(n, path)
    check_siblings(names, path)


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
) -> Iterator[GroupItem]:
    ancestors: frozenset[str] = (
        frozenset({os.path.realpath(path)}) if follow_symlinks else frozenset()
    )
    stack: list[tuple[str, str, str | None, frozenset[str]]] = [(path, rel, None, ancestors)]
    while stack:
        path, rel, store, ancestors = stack.pop()
        if store is None and is_zarr_store(path):
            _refuse_if_marked_incomplete(path, rel)
            if zarr_archives:
                yield ZarrStore(rel, path)
                continue
            store = rel
        # The listing's d_type says which entries are plain files and folders
        # (no system call); only the rest (links, specials, unknown) are lstat-ed.
        files: list[str] = []
        dirs: list[str] = []
        other: list[str] = []
        sizes: dict[str, int] | None = None if store is not None else {}
        with os.scandir(path) as it:
            entries = list(it)
        try:  # the common case in one pass: every entry a plain file (a chunk folder)
            files = [e.name for e in entries if e.is_file(follow_symlinks=False)]
        except OSError:
            files = []
        if len(files) != len(entries):
            files = []
            for e in entries:
                try:
                    if e.is_file(follow_symlinks=False):
                        files.append(e.name)
                        continue
                    if e.is_dir(follow_symlinks=False):
                        dirs.append(e.name)
                        continue
                except OSError:
                    pass
                other.append(e.name)
        if sizes is not None:
            plain = set(files)
            for e in entries:
                if e.name in plain:
                    sizes[e.name] = e.stat(follow_symlinks=False).st_size
        del entries
        for n in dirs:
            if n in UNFINISHED_MARKERS:
                raise refuse_unfinished(path, rel, n)
        _check_listing(files + dirs + other, path)
        yield PayloadDir(rel, empty=not (files or dirs or other), store=store)
        prefix = rel + "/" if rel else ""
        linked: dict[str, str] = {}
        for n in other:
            full = os.path.join(path, n)
            st = os.lstat(full)
            mode = st.st_mode
            real = full
            if stat.S_ISLNK(mode):
                if not follow_symlinks or not os.path.exists(full):
                    raise refuse_link(full, prefix + n)
                real = os.path.realpath(full)
                st = os.stat(real)
                mode = st.st_mode
            if stat.S_ISREG(mode):
                files.append(n)
                linked[n] = real
                if sizes is not None:
                    sizes[n] = st.st_size
            elif stat.S_ISDIR(mode):
                dirs.append(n)
                linked[n] = real
            else:
                msg = f"{prefix + n!r} is not a regular file or folder (a device, pipe or socket); remove it from the payload"
                raise PackageError(msg, path=full)
        if store is None and "model.json" in files and TRAINING_STATE.intersection(files):
            files = [n for n in files if n not in TRAINING_STATE]
        if files:
            files.sort()
            srcs = None
            if linked:
                srcs = [linked.get(n) or os.path.join(path, n) for n in files]
            yield from _groups(
                path, prefix, store, files, srcs, sizes, group_files, group_bytes, parts
            )
        dirs.sort(reverse=True)
        for n in dirs:
            real = linked.get(n) or os.path.join(path, n)
            sub_anc = ancestors
            if follow_symlinks:
                rp = os.path.realpath(real)
                if rp in ancestors:
                    msg = f"symbolic link loop at {prefix + n!r}: it leads back into a folder above it"
                    raise PackageError(msg, path=os.path.join(path, n))
                sub_anc = ancestors | {rp}
            stack.append((real, prefix + n, store, sub_anc))


def _groups(
    path: str,
    prefix: str,
    store: str | None,
    files: list[str],
    srcs: list[str] | None,
    sizes: dict[str, int] | None,
    group_files: int,
    group_bytes: int,
    parts: int,
) -> Iterator[FileGroup]:
    per = max(1, min(group_files, -(-len(files) // max(1, parts))))
    if sizes is None:  # inside a store: by count only
        for i in range(0, len(files), per):
            yield FileGroup(
                path,
                prefix,
                tuple(files[i : i + per]),
                store,
                None if srcs is None else tuple(srcs[i : i + per]),
            )
        return
    start = 0
    nbytes = 0
    for i, name in enumerate(files):
        size = sizes[name]
        count = i - start
        if count and (count >= per or nbytes + size > group_bytes):
            yield FileGroup(
                path,
                prefix,
                tuple(files[start:i]),
                store,
                None if srcs is None else tuple(srcs[start:i]),
            )
            start, nbytes = i, 0
        nbytes += size
    yield FileGroup(
        path,
        prefix,
        tuple(files[start:]),
        store,
        None if srcs is None else tuple(srcs[start:]),
    )


def walk_store_groups(
    path: str,
    rel: str,
    *,
    follow_symlinks: bool = False,
    group_files: int = 1000,
    parts: int = 1,
) -> Iterator[GroupItem]:
    """:func:`walk_groups` inside one Zarr store (``rel`` its path in the payload)."""
    yield from _walk_tree(path, rel, follow_symlinks, False, group_files, 64 << 20, parts)


def count_files(
    root: str | os.PathLike[str],
    *,
    zarr_archives: bool = False,
    roots: tuple[str, ...] = PAYLOAD_ROOTS,
) -> int:
    """How many files :func:`walk_groups` will yield, for a progress total (checks nothing).

    Folder listings only (``d_type``), no ``lstat`` per file and no sorting. Each
    Zarr store in archive mode counts its files plus one for its zip. Links count
    as one file each.
    """
    total = 0
    stack: list[str] = []
    for rel in roots:
        path = os.path.join(os.fspath(root), *rel.split("/"))
        if os.path.isdir(path):
            stack.append(path)
        elif os.path.lexists(path):
            total += 1
        while stack:
            folder = stack.pop()
            if (
                zarr_archives
                and folder != path
                and is_zarr_store(folder)
                and not is_zarr_store(os.path.dirname(folder))
            ):
                total += 1  # the store's zip
            with os.scandir(folder) as it:
                for e in it:
                    try:
                        is_dir = e.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    if is_dir:
                        stack.append(e.path)
                    else:
                        total += 1
    return total
