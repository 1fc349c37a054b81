"""The one directory-tree walker: sorted, depth-first, memory bounded at any file count.

Every walk of a folder tree in curated goes through :func:`walk` (the
inventory of ``curated check``, the payload of ``curated bag``, the tree
digests of the curator log). One policy for all of them:

- **Order.** Each folder is listed once with :func:`os.scandir` and its entries
  sorted by name (code point order). ``order="sorted"`` interleaves files and
  folders by name (the order of a tree digest: sorted by path components);
  ``order="files-first"`` gives a folder's files, then its sub-folders (a
  bag's manifests). Either way the same on every run.
- **Memory.** A listing of more than :data:`SPILL_THRESHOLD` entries is sorted
  on disk in runs and merged (external merge sort): a flat folder of a million
  files costs the same memory as one of a thousand. Files are handed out in
  batches (:class:`Files`), never as one list per tree.
- **Symbolic links** are never followed unless ``follow_symlinks=True``: a link is
  reported as a :class:`Special` (``kind="link"``) where it is met and the walk
  goes on; what to make of it (refuse, flag, read the file it names, skip) is the
  caller's decision. When following, a link to a file is handed out with the
  files (``Files.srcs`` says where it is read from), a link to a folder is
  entered, a broken link or a loop back into a folder above is reported
  (``"broken-link"``, ``"link-loop"``).
- **Special files** (devices, pipes, sockets) are never opened; they are
  reported as :class:`Special` (``kind="special"``).
- **Unreadable folders** raise their ``OSError``, or with ``errors="report"`` are
  reported as :class:`Unreadable` and the walk goes on.

:func:`is_zarr_store` is the one meaning of "a Zarr store": a folder holding Zarr
metadata (``zarr.json``, ``.zgroup`` or ``.zarray``), whatever its name.
"""

from __future__ import annotations

import heapq
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SPILL_THRESHOLD = 50_000
"""A folder with more entries than this is sorted on disk rather than in memory."""

ZARR_METADATA = ("zarr.json", ".zgroup", ".zarray")
"""Files whose presence makes a folder a Zarr v3 (``zarr.json``) or v2 group or array."""

FILE, DIR, LINK, SPECIAL = "f", "d", "l", "s"
"""Kinds of a listing's entries, as the listing (``d_type``) tells them without a system call."""


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """A folder that is a Zarr v2 or v3 group or array (it holds Zarr metadata), whatever its name."""
    p = os.fspath(path)
    return os.path.isdir(p) and any(os.path.isfile(os.path.join(p, f)) for f in ZARR_METADATA)


def is_n5_container(path: str | os.PathLike[str]) -> bool:
    """A folder that is the root of an N5 container: its ``attributes.json`` names the N5
    version (``"n5": "2.0.0"``), or, as older writers leave it out, the folder is named
    ``*.n5``. Unreadable attributes are not taken for a container."""
    p = os.fspath(path)
    attrs = os.path.join(p, "attributes.json")
    if not os.path.isfile(attrs):
        return False
    if p.rstrip(os.sep).lower().endswith(".n5"):
        return True
    try:
        with open(attrs, "rb") as f:
            meta = json.loads(f.read(ZARR_JSON_READ))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and "n5" in meta


ZARR_JSON_READ = 1 << 20
"""Most bytes of a ``zarr.json`` :func:`is_zarr_array` parses (an array's is a few kilobytes)."""


def is_zarr_array(path: str | os.PathLike[str]) -> bool:
    """A Zarr store that is an array (v2 ``.zarray``, v3 ``node_type: array``), not a group.

    Below an array lie only its chunks (millions, in a flat v2 array): walkers that look for
    groups stop there. Unreadable metadata (not JSON, nested too deeply, larger than
    :data:`ZARR_JSON_READ`) is not taken for an array.
    """
    p = os.fspath(path)
    if os.path.isfile(os.path.join(p, ".zarray")):
        return True
    try:
        with open(os.path.join(p, "zarr.json"), "rb") as f:
            meta = json.loads(f.read(ZARR_JSON_READ))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("node_type") == "array"


def _kind(entry: os.DirEntry[str]) -> str:
    try:
        if entry.is_file(follow_symlinks=False):
            return FILE
        if entry.is_dir(follow_symlinks=False):
            return DIR
        if entry.is_symlink():
            return LINK
    except OSError:
        pass
    return SPECIAL


class Listing:
    """One folder's entries as ``(name, kind)``, sorted by name; iterable more than once.

    Up to ``spill_threshold`` entries are kept in memory; beyond that, sorted runs
    go to temporary files and are merged on each iteration. :meth:`close` (or the
    ``with`` block) removes the runs.
    """

    def __init__(self, folder: str, spill_threshold: int | None = None) -> None:
        limit = SPILL_THRESHOLD if spill_threshold is None else max(1, int(spill_threshold))
        self._runs: list[str] = []
        batch: list[tuple[str, str]] = []
        self.count = 0
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    batch.append((entry.name, _kind(entry)))
                    if len(batch) >= limit:
                        self._runs.append(_spill(batch))
                        self.count += len(batch)
                        batch = []
        except BaseException:
            self.close()
            raise
        self.count += len(batch)
        if self._runs and batch:
            self._runs.append(_spill(batch))
            batch = []
        batch.sort()
        self._batch = batch

    @property
    def spilled(self) -> bool:
        return bool(self._runs)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if not self._runs:
            return iter(self._batch)
        return heapq.merge(*(_read_run(r) for r in self._runs))

    def close(self) -> None:
        for r in self._runs:
            Path(r).unlink(missing_ok=True)
        self._runs = []

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spill(batch: list[tuple[str, str]]) -> str:
    batch.sort()
    fd, name = tempfile.mkstemp(prefix="curated-sort-", suffix=".run")
    with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
        for entry_name, kind in batch:
            fh.write(kind.encode() + os.fsencode(entry_name) + b"\0")
    return name


def _read_run(run: str) -> Iterator[tuple[str, str]]:
    with open(run, "rb") as fh:
        rest = b""
        while chunk := fh.read(1 << 20):
            parts = (rest + chunk).split(b"\0")
            rest = parts.pop()
            for rec in parts:
                yield os.fsdecode(rec[1:]), rec[:1].decode()


# ------------------------------------------------------------------ the walk
@dataclass(frozen=True, slots=True)
class Folder:
    """A folder entered (``rel`` is ``""`` for the root); ``entries`` its listing's size."""

    path: str
    rel: str
    depth: int
    entries: int


@dataclass(frozen=True, slots=True)
class Files:
    """Consecutive regular files of one folder, in name order."""

    folder: str
    prefix: str
    """``rel`` of the folder plus ``/`` (``""`` at the root)."""
    names: tuple[str, ...]
    srcs: tuple[str, ...] | None = None
    """Where each file is read from when some are followed links (else ``folder/name``)."""


@dataclass(frozen=True, slots=True)
class Special:
    """An entry that is not a plain file or folder: ``link``, ``broken-link``, ``link-loop``,
    ``special`` (device, pipe, socket)."""

    path: str
    rel: str
    kind: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A folder that could not be listed (``errors="report"``)."""

    path: str
    rel: str
    error: OSError


Event = Folder | Files | Special | Unreadable
Order = Literal["sorted", "files-first"]


@dataclass(frozen=True, slots=True)
class _Dir:
    path: str
    rel: str
    depth: int
    ancestors: frozenset[str]


def walk(
    root: str | os.PathLike[str],
    *,
    rel: str = "",
    order: Order = "sorted",
    follow_symlinks: bool = False,
    errors: Literal["raise", "report"] = "raise",
    skip: Callable[[str, str, str], bool] | None = None,
    enter: Callable[[Folder], bool] | None = None,
    batch: int = 1000,
    spill_threshold: int | None = None,
) -> Iterator[Event]:
    """Walk the folder ``root`` depth-first (see the module docstring for the policy).

    Parameters
    ----------
    root
        The folder to walk.
    rel
        How ``root`` itself is named in the events' ``rel`` (prefixes follow it).
    order
        ``sorted`` (files and folders interleaved by name) or ``files-first``.
    follow_symlinks
        Follow links to files and folders (loops are reported, not followed).
    errors
        ``raise`` the ``OSError`` of a folder that cannot be listed, or ``report`` it.
    skip
        ``skip(prefix, name, kind)`` true leaves an entry (and all below it) out.
    enter
        Called with each :class:`Folder` right after it is yielded; false: its
        entries are not walked.
    batch
        Most files per :class:`Files`.
    spill_threshold
        Listing size past which it is sorted on disk (default :data:`SPILL_THRESHOLD`).
    """
    top = os.fspath(root)
    ancestors = frozenset({os.path.realpath(top)}) if follow_symlinks else frozenset()
    stack: list[Iterator[Event | _Dir]] = [iter([_Dir(top, rel, 0, ancestors)])]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif type(item) is _Dir:
            stack.append(
                _folder(item, order, follow_symlinks, errors, skip, enter, batch, spill_threshold)
            )
        else:
            yield item  # type: ignore[misc]


def _folder(
    d: _Dir,
    order: Order,
    follow: bool,
    errors: str,
    skip: Callable[[str, str, str], bool] | None,
    enter: Callable[[Folder], bool] | None,
    batch: int,
    spill_threshold: int | None,
) -> Iterator[Event | _Dir]:
    """One folder's events; a :class:`_Dir` item asks :func:`walk` to descend there and then."""
    try:
        listing = Listing(d.path, spill_threshold)
    except OSError as exc:
        if errors == "raise":
            raise
        yield Unreadable(d.path, d.rel, exc)
        return
    with listing:
        folder = Folder(d.path, d.rel, d.depth, len(listing))
        yield folder
        if enter is not None and not enter(folder):
            return
        prefix = d.rel + "/" if d.rel else ""
        if order == "files-first":
            yield from _entries(d, prefix, listing, (FILE, LINK, SPECIAL), follow, skip, batch)
            yield from _entries(d, prefix, listing, (DIR, LINK), follow, skip, batch, dirs=True)
        else:
            yield from _entries(d, prefix, listing, None, follow, skip, batch)


def _entries(
    d: _Dir,
    prefix: str,
    listing: Listing,
    kinds: tuple[str, ...] | None,
    follow: bool,
    skip: Callable[[str, str, str], bool] | None,
    batch: int,
    *,
    dirs: bool = False,
) -> Iterator[Event | _Dir]:
    names: list[str] = []
    # where each file is read from: made at the first followed link (else every file is d.path/name)
    srcs: list[str] | None = None
    join = os.path.join
    for name, kind in listing:
        if kinds is not None and kind not in kinds:
            continue
        if skip is not None and skip(prefix, name, kind):
            continue
        if kind == FILE:
            names.append(name)
            if srcs is not None:
                srcs.append(join(d.path, name))
            if len(names) >= batch:
                yield from _flush(d, prefix, names, srcs)
                names, srcs = [], None
            continue
        path = join(d.path, name)
        real = path
        if kind == LINK:
            if not follow:
                if not dirs:
                    yield from _flush(d, prefix, names, srcs)
                    names, srcs = [], None
                    yield Special(path, prefix + name, "link")
                continue
            kind, real = _resolve(path)
            if kind not in (FILE, DIR):
                if not dirs:
                    yield from _flush(d, prefix, names, srcs)
                    names, srcs = [], None
                    yield Special(path, prefix + name, kind)
                continue
            if kinds is not None and kind not in kinds:
                continue  # a link to a folder waits for the folders (files-first)
        if kind == FILE:  # a followed link to a file
            if srcs is None:
                srcs = [join(d.path, n) for n in names]
            names.append(name)
            srcs.append(real)
            if len(names) >= batch:
                yield from _flush(d, prefix, names, srcs)
                names, srcs = [], None
        elif kind == DIR:
            yield from _flush(d, prefix, names, srcs)
            names, srcs = [], None
            sub_anc = d.ancestors
            if follow:
                rp = os.path.realpath(real)
                if rp in d.ancestors:
                    yield Special(path, prefix + name, "link-loop")
                    continue
                sub_anc = d.ancestors | {rp}
            yield _Dir(real, prefix + name, d.depth + 1, sub_anc)
        else:
            yield from _flush(d, prefix, names, srcs)
            names, srcs = [], None
            yield Special(path, prefix + name, "special")
    yield from _flush(d, prefix, names, srcs)


def _flush(d: _Dir, prefix: str, names: list[str], srcs: list[str] | None) -> Iterator[Files]:
    if names:
        yield Files(d.path, prefix, tuple(names), tuple(srcs) if srcs is not None else None)


def _resolve(path: str) -> tuple[str, str]:
    """``(kind, real path)`` of what a link leads to (``broken-link`` when nothing)."""
    try:
        st = os.stat(path)
    except OSError:
        return "broken-link", path  # (or a loop of links, or gone since the listing)
    if stat.S_ISREG(st.st_mode):
        return FILE, os.path.realpath(path)
    if stat.S_ISDIR(st.st_mode):
        return DIR, os.path.realpath(path)
    return "special", path
