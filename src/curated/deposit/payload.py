"""What a deposit sends: the bag's files, or the bag as one archive.

* A **serialized bag** (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``) is sent as that one file.
* A **bag folder** goes file by file (bag-relative names such as ``data/x.ome.zarr.zip``)
  to targets that keep folders (InvenioRDM/Zenodo keys, Dataverse ``directoryLabel``,
  a directory repository); targets with flat file lists (Figshare, DSpace) get it as
  one uncompressed zip written beside the bag (``<bag>.zip``, made once, streamed,
  reused on resume).

Bags are validated completely (every checksum) before anything is sent.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from curated._io import MAX_MAPPING_BYTES, parse_mapping
from curated.deposit.protocol import UploadItem
from curated.errors import CuratedError, DepositError, MetadataError, PackageError
from curated.walk import Files, Folder, Special, Unreadable, walk

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
RECORD_TAG = "metadata/curated.yaml"


@dataclass
class BagView:
    """A bag as the deposit sees it."""

    path: Path
    serialized: bool
    files: list[UploadItem]
    """The bag's files (folder bag) or the archive itself (serialized bag)."""
    record: dict[str, Any]
    identity: str
    """Changes whenever the bag's content does (manifest digests; archive size+mtime)."""
    zarr_stores: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(i.size for i in self.files)


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def open_bag(path: str | Path, *, validate: bool = True) -> BagView:
    """Read a bag (folder or archive) for deposit, validating it fully first."""
    path = Path(path)
    if not path.exists():
        raise DepositError("no such bag", path=path)
    if validate:
        validate_bag_fully(path)
    if path.is_dir():
        files = _bag_files(path)
        record_file = path / RECORD_TAG
        if not record_file.is_file():
            msg = (
                f"the bag has no {RECORD_TAG} (the metadata record); rebuild it with `curated bag`"
            )
            raise DepositError(msg, path=path)
        with record_file.open("rb") as fh:
            record = _load_record(fh.read(MAX_MAPPING_BYTES + 1), path)
        return BagView(path, False, files, record, _dir_identity(path), _zarr_stores(path))
    if not is_archive(path):
        msg = f"neither a bag folder nor a serialized bag ({', '.join(ARCHIVE_SUFFIXES)})"
        raise DepositError(msg, path=path)
    raw = _archive_member(path, RECORD_TAG)
    if raw is None:
        msg = f"the serialized bag has no {RECORD_TAG} (the metadata record); rebuild it with `curated bag`"
        raise DepositError(msg, path=path)
    st = path.stat()
    ident = hashlib.sha256(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    return BagView(
        path, True, [UploadItem(path.name, path, st.st_size)], _load_record(raw, path), ident
    )


def _bag_files(path: Path) -> list[UploadItem]:
    """A bag folder's files, each folder's files in name order before its sub-folders.

    Walked with :func:`curated.walk.walk` (``files-first``): a link (to a file or
    a folder) or a special file is refused, never followed: what a link points
    to is never sent (validation refuses these too). A folder that cannot be
    listed is refused too, rather than deposited without its files.
    """
    files = []
    for ev in walk(path, order="files-first", errors="report"):
        if type(ev) is Files:
            for n in ev.names:
                p = Path(ev.folder, n)
                st = p.lstat()
                if not stat.S_ISREG(st.st_mode):  # replaced since the folder was listed
                    msg = (
                        f"{ev.prefix}{n} is a link or special file; a bag holds regular files only"
                    )
                    raise DepositError(msg, path=path)
                files.append(UploadItem(ev.prefix + n, p, st.st_size))
        elif type(ev) is Special:
            link_to_folder = ev.kind == "link" and os.path.isdir(ev.path)
            what = "link to a folder" if link_to_folder else "link or special file"
            msg = f"{ev.rel} is a {what}; a bag holds regular files only"
            raise DepositError(msg, path=path)
        elif type(ev) is Unreadable:
            msg = f"{ev.rel or '.'} cannot be read ({ev.error.strerror or ev.error}); nothing was deposited"
            raise DepositError(msg, path=path)
    return files


def _load_record(raw: bytes, bag: Path) -> dict[str, Any]:
    """The bag's ``curated.yaml``, read as the workspace's is (:func:`curated._io.parse_mapping`)."""
    if len(raw) > MAX_MAPPING_BYTES:
        msg = f"{RECORD_TAG} in the bag is larger than {MAX_MAPPING_BYTES // (1024 * 1024)} MiB; no metadata record is"
        raise DepositError(msg, path=bag)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{RECORD_TAG} in the bag is not UTF-8 text (byte {exc.start})"
        raise DepositError(msg, path=bag) from None
    try:
        return parse_mapping(text, path=RECORD_TAG)
    except MetadataError as exc:
        raise DepositError(f"{exc.message} (in the bag)", path=bag) from None


def _dir_identity(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.iterdir()):
        if p.is_file() and (
            p.name.startswith(("manifest-", "tagmanifest-")) or p.name == "bag-info.txt"
        ):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _zarr_stores(path: Path) -> list[str]:
    """The payload's folders named ``*.zarr`` (not entered; links not followed), sorted."""
    stores: list[str] = []
    data = path / "data"
    if not data.is_dir():
        return stores

    def enter(folder: Folder) -> bool:
        if folder.depth > 0 and folder.rel.endswith(".zarr"):
            stores.append(folder.rel)
            return False
        return True

    for _ in walk(data, rel="data", enter=enter, errors="report"):
        pass
    return sorted(stores)


# ----------------------------------------------------------------- archives
def _iter_archive(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(name, readable) for every regular file in a zip or tar archive."""
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    with zf.open(info) as fh:
                        yield info.filename, fh
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    fh = tf.extractfile(member)
                    if fh is not None:
                        yield member.name, fh


def _archive_member(path: Path, suffix: str) -> bytes | None:
    try:
        for name, fh in _iter_archive(path):
            parts = name.split("/")
            if "/".join(parts[-len(suffix.split("/")) :]) == suffix and len(parts) <= 3:
                return fh.read(MAX_MAPPING_BYTES + 1)  # more is refused as too large
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
        raise DepositError(f"the serialized bag cannot be read ({exc})", path=path) from None
    return None


def validate_bag_fully(path: Path) -> None:
    """Refuse a bag that does not validate (every checksum), saying what is wrong.

    Holey bags (``fetch.txt``) are accepted: their fetched files stay where they are and
    only the present files are sent.
    """
    from curated.package import validate_bag

    try:
        _raise_if_invalid(validate_bag(path, fast=False, allow_holes=True), path)
    except CuratedError as exc:
        msg = f"refusing to deposit a bag that fails validation: {exc.message}; rebuild it with `curated bag`"
        raise DepositError(msg, path=path, details=exc.details) from None


def _raise_if_invalid(outcome: Any, path: Path) -> None:
    if outcome is None or outcome is True:
        return
    if outcome is False:
        raise PackageError("the bag does not validate", path=path)
    ok = getattr(outcome, "ok", None)
    if ok is None:
        ok = getattr(outcome, "valid", None)
    if ok is False:
        message = getattr(outcome, "message", "") or "; ".join(
            str(p) for p in getattr(outcome, "problems", [])[:5]
        )
        raise PackageError(f"the bag does not validate: {message}", path=path)


# ---------------------------------------------------------------- zipping
def bag_zip_path(bag: Path) -> Path:
    return bag.parent / f"{bag.name}.zip"


def serialize_zip(view: BagView, dest: Path | None = None) -> Path:
    """Write the folder bag as an uncompressed zip (one top folder), streaming; reuse a current one.

    The zip's comment holds the bag identity, so a zip made from an older state of the
    bag is rebuilt, and a finished one is reused on resume.
    """
    dest = dest or bag_zip_path(view.path)
    tag = f"curated-bag:{view.identity}".encode()
    if dest.exists():
        try:
            with zipfile.ZipFile(dest) as zf:
                if zf.comment == tag:
                    return dest
        except zipfile.BadZipFile:
            pass
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for item in view.files:
                arc = f"{view.path.name}/{item.name}"
                with (
                    open(item.path, "rb") as src,
                    zf.open(arc, "w", force_zip64=item.size >= zipfile.ZIP64_LIMIT) as out,
                ):
                    while block := src.read(1 << 20):
                        out.write(block)
            zf.comment = tag
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def estimated_zip_size(view: BagView) -> int:
    """The size :func:`serialize_zip` will write (stored entries + headers), for preflight."""
    per_file = 30 + 46 + 2 * 40 + 2 * 28  # local + central headers, names, zip64 extras
    return (
        view.size + sum(len(view.path.name) + len(i.name) + 1 + per_file for i in view.files) + 100
    )


def upload_items(view: BagView, *, keeps_folders: bool, make_zip: bool = True) -> list[UploadItem]:
    """The files to send to a target: the bag's files, or one archive for flat targets."""
    if view.serialized or keeps_folders:
        return list(view.files)
    name = f"{view.path.name}.zip"
    if not make_zip:
        return [UploadItem(name, bag_zip_path(view.path), estimated_zip_size(view))]
    z = serialize_zip(view)
    return [UploadItem(name, z, z.stat().st_size)]
