"""What the EMPIAR and BioImage Archive exports share.

Reading the workspace's images (the OME-Zarr stores under ``derived/`` and the
original files named in ``curated.yaml``), collecting every missing field before
refusing, building the package in a hidden sibling folder that is renamed into
place only when complete, and placing image files there without ever opening a
source for writing (hard links where the file system allows, else copies).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curated._io import building_dir, occupied, recover_swap
from curated.document.ngff import ImageInfo, read_image_info
from curated.errors import InputError, MetadataError
from curated.walk import DIR, Files, Special, Unreadable, walk
from curated.workspace import Workspace, unlogged

LINK = "link"
COPY = "copy"
FILE_MODES = (LINK, COPY)


@dataclass
class Missing:
    """Fields an archive needs that the record lacks, collected so that all are named at once."""

    archive: str
    items: list[tuple[str, str]] = field(default_factory=list)

    def need(self, path: str, why: str) -> None:
        """Note that field ``path`` (as ``curated metadata set`` takes it) is missing or unusable."""
        if (path, why) not in self.items:
            self.items.append((path, why))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, metadata_path: Path) -> None:
        """Refuse with one line that names every field, field path first."""
        if not self.items:
            return
        n = len(self.items)
        listed = "; ".join(f"{p}: {why}" for p, why in self.items)
        msg = (
            f"cannot export for {self.archive}: {n} required field{'s' if n != 1 else ''} "
            f"missing or unusable: {listed} (set them with `curated metadata set`)"
        )
        raise MetadataError(
            msg,
            path=metadata_path,
            details={"missing": [{"field": p, "why": w} for p, w in self.items]},
        )


def read_record(ws: Workspace, archive: str) -> dict[str, Any]:
    """``curated.yaml``, refused (every field named) where a value has the wrong type.

    The exports read values as the schema types them: a string where a list belongs
    would become a list of letters (keywords F, I, B, ...) and a word where a number
    belongs would crash, so those are refused first, as `curated metadata validate` does.
    """
    from curated.metadata import validate_record

    record = ws.read_metadata()
    missing = Missing(archive)
    for issue in validate_record(record).errors:
        if issue.rule == "type":
            missing.need(issue.field or "(record)", issue.message)
    missing.raise_if_any(ws.metadata_path)
    return record


def text(value: Any) -> str:
    """A record value as stripped text (``""`` for nothing)."""
    if value is None:
        return ""
    return str(value).strip()


def items(record: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The dict entries of a list field (non-dict entries are skipped)."""
    value = record.get(key) or []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def initials(given: str) -> str:
    """``YW`` for ``Yi-Wei``, ``JD`` for ``John David`` (EMPIAR's author name format)."""
    parts = given.replace("-", " ").replace(".", " ").split()
    return "".join(p[0].upper() for p in parts if p[0].isalpha())


def orcid_id(value: Any) -> str | None:
    """The bare 16-character ORCID iD of ``https://orcid.org/…`` or ``0000-…`` (``None`` if absent)."""
    s = text(value)
    if not s:
        return None
    return s.rsplit("/", 1)[-1]


def workspace_images(root: Path) -> list[ImageInfo]:
    """The OME-Zarr images under ``derived/`` (as the README finds them)."""
    derived = root / "derived"
    links = [derived] if derived.is_symlink() else []
    if not links and derived.is_dir():
        links = [p for p in sorted(derived.iterdir()) if p.is_symlink() and ".zarr" in p.name]
    if links:  # as `curated bag`: nothing outside the workspace enters a package through a link
        msg = "is a symbolic link; exports never follow links (move the data into the workspace)"
        raise InputError(msg, path=links[0])
    if not derived.is_dir():
        return []
    return [
        read_image_info(p)
        for p in sorted(derived.iterdir())
        if p.is_dir() and p.name.endswith((".ome.zarr", ".zarr"))
    ]


def label_dtype(path: Path, level: str) -> str | None:
    """The data type of a label image's level array (``None`` if it cannot be read)."""
    import zarr

    try:
        return str(zarr.open_array(str(path / level), mode="r").dtype)
    except Exception:  # an unreadable label is reported by the caller as a missing field
        return None


@dataclass(frozen=True)
class PackageKind:
    """What an export writes: the archive's name and the files every such package holds."""

    archive: str
    files: tuple[str, ...]

    def made(self, folder: Path) -> bool:
        """Whether ``folder`` is a package of this kind (so an export may replace it)."""
        return all((folder / name).is_file() for name in self.files)


def check_mode(mode: str) -> None:
    """Refuse a ``files`` mode other than ``link`` or ``copy``."""
    if mode not in FILE_MODES:
        msg = f"files must be one of {', '.join(FILE_MODES)}, not {mode!r}"
        raise InputError(msg, field="files")


def check_destination(
    dest: Path,
    sources: list[Path],
    *,
    overwrite: bool,
    kind: PackageKind,
    ws: Workspace | None = None,
) -> bool:
    """Refuse a destination that holds something, or that overlaps what is exported;
    return whether the package at ``dest`` is to be replaced.

    ``overwrite`` replaces an earlier package of the same kind only, never a folder
    of other work. Without it, a package of the same kind inside ``ws`` that its log does not
    record (:func:`curated.workspace.unlogged`: the export that made it was killed
    after swapping it in, before its log entry) is replaced too, so the same command
    finishes the job. What a killed export left beside ``dest`` is recovered first
    (:func:`curated._io.recover_swap`: an old package set aside is put back, temporary
    folders cleared); hidden ``.NAME.XXXXXXXX.tmp`` / ``.NAME.old.tmp`` folders are
    cleared only when an export made them, anything else in the way is refused by name.
    """
    dest_abs = dest.resolve()
    for src in sources:
        s = src.resolve()
        if dest_abs == s or s.is_relative_to(dest_abs) or dest_abs.is_relative_to(s):
            msg = f"the export folder overlaps {src}, which it exports; choose a folder outside it"
            raise InputError(msg, path=dest)
    if dest.is_symlink():
        msg = "is a symbolic link; give the folder it names (exports never write through links)"
        raise InputError(msg, path=dest)
    left = recover_swap(dest, is_ours=kind.made)
    if left.busy:
        msg = "is another export being built into this folder right now; wait for it to finish"
        raise InputError(msg, path=left.busy[0])
    if left.foreign:
        msg = "is in the way of the export and was not made by `curated export`; move it away and export again"
        raise InputError(msg, path=left.foreign[0])
    if dest.exists() and not dest.is_dir():
        raise InputError("exists and is not a folder", path=dest)
    if not occupied(dest):
        return False
    if not overwrite:
        # only inside the workspace: a package elsewhere may be another workspace's, which
        # this log cannot record either
        inside = ws is not None and dest.resolve().is_relative_to(ws.root.resolve())
        if kind.made(dest) and inside and unlogged(ws, dest):
            return True
        msg = "exists and is not empty; choose a new folder or pass --overwrite"
        raise InputError(msg, path=dest)
    if not kind.made(dest):
        msg = (
            f"is not an earlier {kind.archive} export (no {' and '.join(kind.files)}); "
            "refusing to replace it even with --overwrite: choose a new folder"
        )
        raise InputError(msg, path=dest)
    return True


def building(dest: Path, kind: PackageKind, *, overwrite: bool) -> AbstractContextManager[Path]:
    """Build a package in a hidden sibling folder, then swap it into ``dest`` whole
    (:func:`curated._io.building_dir`, after :func:`check_destination`).

    A crash (even ``kill -9``) leaves only hidden ``.NAME.XXXXXXXX.tmp`` /
    ``.NAME.old.tmp`` folders, which the next run recovers; ``dest`` is at every moment
    either absent, the old package whole or the new one whole. An exception removes
    the temporary folder.
    """
    return building_dir(dest, is_ours=kind.made, overwrite=overwrite, crash="export")


Skip = Callable[[str, str, str], bool]


def top_level_visible(prefix: str, name: str, kind: str) -> bool:
    """A ``skip`` for a folder of slices: its own files only, hidden ones and sub-folders left out."""
    return name.startswith(".") or kind == DIR


def files_under(src: Path, skip: Skip | None = None) -> Iterator[tuple[Path, str]]:
    """Every file below ``src`` with its relative path, streamed; symbolic links are refused.

    ``skip(prefix, name, kind)`` true leaves an entry out (see :func:`curated.walk.walk`).
    """
    if src.is_symlink():
        raise InputError("is a symbolic link; exports never follow links", path=src)
    if src.is_file():
        yield src, ""
        return
    # curated.walk, files-first (a folder's files in name order, then its sub-folders):
    # links are refused, never followed; so are devices, pipes and sockets (copying a
    # pipe would block), and folders that cannot be listed (no silently missing files)
    for ev in walk(src, order="files-first", errors="report", skip=skip):
        if type(ev) is Files:
            for name in ev.names:
                yield Path(ev.folder, name), ev.prefix + name
        elif type(ev) is Special:
            if ev.kind == "link":
                raise InputError("is a symbolic link; exports never follow links", path=ev.path)
            msg = "is a device, pipe or socket; exports hold regular files only"
            raise InputError(msg, path=ev.path)
        elif type(ev) is Unreadable:
            msg = f"cannot be read ({ev.error.strerror or ev.error}); nothing was exported"
            raise InputError(msg, path=ev.path)


def place(
    src: Path, dest: Path, *, mode: str = LINK, skip: Skip | None = None
) -> Iterator[tuple[Path, str]]:
    """Put a file or folder's files at ``dest``: hard links (``link``) or copies.

    Yields each placed file and its path relative to ``dest``. Sources are only
    read: a hard link shares the file without opening it, and a copy streams it
    (memory bounded by the copy buffer). Where the file system refuses links
    (another device, no support) the file is copied.
    """
    check_mode(mode)
    for full, rel in files_under(src, skip):
        target = dest / rel if rel else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == LINK:
            try:
                os.link(full, target)
            except OSError:
                shutil.copyfile(full, target)
        else:
            shutil.copyfile(full, target)
        yield target, rel
