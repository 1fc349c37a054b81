"""Build a BagIt bag (RFC 8493) of a workspace at a destination, streaming, never in place.

Layout of a bag made here::

    DEST/
      bagit.txt                      BagIt-Version: 1.0 / Tag-File-Character-Encoding: UTF-8
      bag-info.txt                   Source-Organization, Contact-*, External-*, Payload-Oxum, ...
      manifest-sha512.txt            every payload file (one pass hashes all algorithms)
      manifest-sha256.txt
      fetch.txt                      holey bags only: large files left on institutional storage
      tagmanifest-sha512.txt         every tag file, including the payload manifests
      tagmanifest-sha256.txt
      metadata/curated.yaml          the REMBI record
      metadata/curator-log.jsonl     the curator log up to and including this bag's own entry
      metadata/prov.json             that log as W3C PROV-JSON
      metadata/datacite.json         DataCite 4.x JSON
      metadata/check.json            the check report, when there is one
      metadata/empty-directories.txt folders without files (manifests cannot list folders)
      metadata/zarr-inventory/...    per-chunk inventories of archived Zarr stores
      data/                          README.md, figures/, curation/fair.*, derived/..., ro-crate-metadata.json

The workspace is only read. Payload files are hard-linked into the bag where the
file system allows (else copied from the buffers being hashed); a hard-linked
file *is* the workspace file, so nothing here ever opens a payload file for
writing. Tag files are always new files. The bag is assembled in a hidden
``.DEST.XXXXXXXX.tmp`` folder beside it (with a marker file, :class:`curated._io.DirBuild`)
and renamed into place only when complete; a re-run after a crash removes what the
crash left, or puts back a bag being replaced (:func:`curated._io.recover_swap`).

Decisions worth knowing:

- **Empty folders.** RFC 8493 manifests list files only, so an empty folder cannot
  be checksummed. It is kept as a folder in ``data/`` (and as a folder entry in
  zip archives) and listed, percent-encoded, in ``metadata/empty-directories.txt``
  so a consumer that rebuilds the payload from the manifests can recreate it. No
  placeholder file is added: a ``.keep`` inside a Zarr store would change the store.
- **Symbolic links** are refused with their name and target, or followed with
  ``follow_symlinks=True`` (the bag then holds the target's bytes); broken links
  and loops are refused either way. Nothing is ever skipped silently.
- **The log inside the bag.** The RO-Crate is payload, so it is written before the
  bag's own log entry exists: its actions are the steps *before* bagging. The D
  entry then records the payload manifest's digest; the log copy in
  ``metadata/curator-log.jsonl`` (up to and including that entry) and the PROV-JSON
  made from it are tag files, covered by the tag manifests written last.
- **Holey bags and archives.** With ``fetch_base`` only workspace files are left
  out; Zarr archives made while bagging exist nowhere else and always stay in.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

from curated._crash import crash_point
from curated._io import (
    BUILDING_MARKER,
    DirBuild,
    atomic_write_via,
    naming,
    recover_swap,
    write_json,
)
from curated._json_outline import Outline
from curated._text import binary_size
from curated._version import __version__
from curated.errors import PackageError
from curated.package.crate import (
    CrateWriter,
    EntityRun,
    EntitySpec,
    FormatMemo,
    file_entity,
    label_origins,
    store_entity,
)
from curated.package.hashing import (
    COPY,
    FOLDER_CHUNK,
    FOLDER_CHUNK_BYTES,
    LINK,
    READ,
    ZIP,
    ZIP_BEGIN,
    ZIP_DIR,
    ZIP_END,
    FetchSpec,
    FolderResult,
    FolderTask,
    HashTask,
    hash_file_threaded,
    hash_folder,
    hash_folders,
    hash_one,
)
from curated.package.names import encode_path
from curated.package.profiles import Profile, load_profile
from curated.package.walk import (
    FileGroup,
    PayloadDir,
    ZarrStore,
    count_files,
    refuse_link,
    walk_groups,
    walk_store_groups,
)
from curated.package.zarr_archive import ZipPiece, ZipWriter
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.log import Artifact, CuratorLog, bag_identifier
from curated.results import Result
from curated.walk import DIR, Files, Folder, walk
from curated.workspace import Workspace, as_workspace, recorder

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
"""RFC 8493 section 2.1.1, byte for byte (the RO-Crate spec's example misspells the casing)."""

DEFAULT_FETCH_MIN_SIZE = 1 << 30
"""With ``fetch_base``, payload files of at least this many bytes stay outside the bag."""

_COMPUTED_TAGS = {
    t.lower()
    for t in (
        "Payload-Oxum",
        "Bag-Size",
        "Bagging-Date",
        "External-Identifier",
        "BagIt-Profile-Identifier",
        "Bag-Software-Agent",
    )
}
ZarrMode = Literal["directory", "archive"]
Serialization = Literal["none", "tar", "zip"]
_SERIAL_MIME = {"tar": ("application/x-tar", "application/tar"), "zip": ("application/zip",)}


def _one_line(text: str) -> str:
    """``text`` as one tag-file line: whitespace runs made one space, control characters
    (NUL...) and bidirectional overrides (RLO...) removed, so what is read is what is meant."""
    return _UNSAFE_CHARS.sub("", re.sub(r"\s+", " ", str(text))).strip()


# ------------------------------------------------------------------ bag-info
def describe_bag(record: dict[str, Any], ws_root: Path) -> dict[str, str]:
    """bag-info labels taken from ``curated.yaml`` (those it can fill)."""
    study = record.get("study") or {}
    authors = [a for a in study.get("authors") or [] if isinstance(a, dict)]
    contact = (
        next((a for a in authors if a.get("contact")), None)
        or next((a for a in authors if a.get("email")), None)
        or (authors[0] if authors else None)
    )
    info: dict[str, str] = {}
    org = study.get("publisher")
    if not org:
        for person in ([contact] if contact else []) + authors:
            aff = person.get("affiliation") or {}
            if isinstance(aff, dict) and aff.get("name"):
                org = aff["name"]
                break
    if org:
        info["Source-Organization"] = _one_line(org)
    if contact:
        name = " ".join(x for x in (contact.get("given_name"), contact.get("family_name")) if x)
        if name:
            info["Contact-Name"] = _one_line(name)
        if contact.get("email"):
            info["Contact-Email"] = _one_line(contact["email"])
    desc = study.get("description") or study.get("title")
    if desc:
        title = study.get("title")
        info["External-Description"] = _one_line(
            f"{title}. {desc}" if title and desc != title else desc
        )
    info["Internal-Sender-Identifier"] = ws_root.name
    return info


def _refuse_misshapen(record: dict[str, Any], ws: Workspace) -> None:
    """A field of the wrong shape (``study: 5``) is named before anything reads it."""
    from curated.metadata.validate import validate_record

    wrong = [e for e in validate_record(record).errors if e.rule == "type"]
    if wrong:
        first = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        msg = (
            f"{first.message}{more}; fix it with `curated metadata set` "
            "(`curated metadata validate` lists every problem), then bag again"
        )
        raise PackageError(msg, path=ws.metadata_path, field=first.field)


_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069\ufeff]")
"""Control characters and bidirectional overrides: a tag value shows what it says."""


def _write_tag_file(path: Path, tags: list[tuple[str, str]]) -> None:
    with open(path, "x", encoding="utf-8", newline="\n") as fh:
        for label, value in tags:
            fh.write(f"{label}: {_one_line(value)}\n")


# ------------------------------------------------------------------ the build
@dataclass
class _Build:
    ws: Workspace
    profile: Profile
    final: Path
    bag_name: str
    build: DirBuild
    zarr: str
    serialize: str
    processes: int
    fetch_base: str | None
    fetch_min_size: int
    follow_symlinks: bool
    link: bool
    record: dict[str, Any]
    info: dict[str, str]
    other_tags: dict[str, dict[str, str]]
    progress: ProgressReporter
    algorithms: tuple[str, ...] = ()
    hash_algorithms: tuple[str, ...] = ()
    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    fetched: int = 0
    stores: dict[str, list[int]] = field(default_factory=dict)
    archives: list[str] = field(default_factory=list)
    empty_dirs: int = 0
    crate: CrateWriter | None = None
    """The RO-Crate's data entities, spilled to disk as files are recorded."""
    formats: FormatMemo = field(default_factory=FormatMemo)
    """fido's answers: one call for a folder of slices, one per bag once folders agree."""
    external_id: str = ""
    manifests: dict[str, _TagHashingWriter] = field(default_factory=dict)
    fetch_fh: _TagHashingWriter | None = None
    tag_digests: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)
    """Sizes and digests of the tag files hashed while they were written."""
    zip: ZipWriter | None = None
    counting: bool = True

    @property
    def partial(self) -> Path:
        """The hidden folder the bag is built in (once :func:`_start_bag` made it)."""
        assert self.build.path is not None
        return self.build.path


def _preflight_dest(ws: Workspace, dest: Path, final: Path, overwrite: bool) -> None:
    root = ws.root.resolve()
    for p in (dest.resolve(), final.resolve()):
        if p == root or root in p.parents:
            pkg = root / "package"
            if pkg not in p.parents:
                msg = (
                    "the bag cannot be built inside the workspace it packs (it would become its own payload); "
                    f"put it outside, or under {pkg} which is never part of a payload"
                )
                raise PackageError(msg, path=dest)
        if p in root.parents:
            msg = "the bag destination contains the workspace; choose a folder outside it"
            raise PackageError(msg, path=dest)
    if final.exists() or final.is_symlink():
        if not overwrite:
            msg = "already exists; choose another destination or pass --overwrite to replace it"
            raise PackageError(msg, path=final)
        if final.is_dir() and not (final / "bagit.txt").is_file():
            msg = "exists and is not a bag; refusing to replace it even with --overwrite"
            raise PackageError(msg, path=final)


TAG_SOURCES = ("curated.yaml", "curation", "curation/check.json", "curation/log.jsonl")
"""Workspace paths copied into ``metadata/``: under the same symlink policy as the payload."""


def _refuse_linked_tag_sources(ws: Workspace) -> None:
    """A tag file (or its folder) that is a link would bring an outside file into the bag."""
    for rel in TAG_SOURCES:
        path = ws.root / rel
        if path.is_symlink():
            raise refuse_link(os.fspath(path), rel)


def _correct_interrupted_entry(ws: Workspace, final: Path) -> None:
    """Make the log true again after a crash between a bag's entry and its rename.

    The bag's entry is written before the bag is complete (the bag carries the log up
    to its own entry). When the last entry for ``final`` says ``ok`` but the bag there
    (folder or archive) does not carry its external identifier (none landed, or the old
    one stayed or was put back), an ``error`` entry says that bag was never made.
    """
    last = _last_bag_entry(ws, final)
    if last is None or last.get("status") != "ok":
        return
    want = (last.get("details") or {}).get("external_identifier")
    if not want or bag_identifier(final) == want:
        return
    ws.log.append(
        "D",
        "bag",
        status="error",
        message=f"the bag of seq {last['seq']} was interrupted before it was complete; no bag was left",
        params=last.get("params") or {},
        details={"interrupted_seq": last["seq"], "external_identifier": want},
    )


def _last_bag_entry(ws: Workspace, final: Path) -> dict[str, Any] | None:
    """The log's last ``bag`` entry for ``final`` (any status), or ``None``."""
    names = (str(final), ws.relative(final))
    last = None
    for entry in ws.log.entries():
        if entry.get("action") == "bag" and (entry.get("params") or {}).get("dest") in names:
            last = entry
    return last


def _last_bag_entry_id(ws: Workspace, final: Path) -> str | None:
    last = _last_bag_entry(ws, final)
    if last is None or last.get("status") != "ok":
        return None
    return (last.get("details") or {}).get("external_identifier")


def _preflight_profile(b: _Build) -> None:
    prof = b.profile
    if b.fetch_base and not prof.allows_fetch:
        msg = f"profile {prof.name} does not allow fetch.txt; bag without fetch_base (--fetch-base) or pick another profile"
        raise PackageError(msg)
    if prof.serialization == "required" and b.serialize == "none":
        msg = (
            f"profile {prof.name} requires a serialized bag; pass serialize='tar' (--serialize tar)"
        )
        raise PackageError(msg)
    if prof.serialization == "forbidden" and b.serialize != "none":
        msg = f"profile {prof.name} forbids serialized bags; use serialize='none'"
        raise PackageError(msg)
    accepted = prof.accepted_serializations
    if b.serialize != "none" and accepted and not set(_SERIAL_MIME[b.serialize]) & set(accepted):
        msg = f"profile {prof.name} accepts {', '.join(accepted)}, not {b.serialize}"
        raise PackageError(msg)
    for label, spec in prof.bag_info.items():
        if label in (
            "Payload-Oxum",
            "Bag-Size",
            "Bagging-Date",
            "BagIt-Profile-Identifier",
            "External-Identifier",
        ):
            continue
        if spec.get("required") and not b.info.get(label):
            msg = (
                f"profile {prof.name} requires bag-info tag {label!r}, which curated.yaml does not give; "
                f"fill the record (study.publisher, study.authors with contact/email, study.description) "
                f"or pass bag_info={{'{label}': ...}} (--info '{label}=...')"
            )
            raise PackageError(msg, field=label)
        values = spec.get("values")
        if values and label in b.info and b.info[label] not in values:
            msg = f"profile {prof.name} allows {label} to be one of {values}, not {b.info[label]!r}"
            raise PackageError(msg, field=label)
    for tag_file, tags in b.other_tags.items():
        for t in prof.tags(tag_file):
            name = t["tagName"]
            if t.get("required") and not tags.get(name):
                msg = f"profile {prof.name} requires {name!r} in {tag_file}; pass bag_info={{'{name}': ...}}"
                raise PackageError(msg, field=name)
            if t.get("values") and name in tags and tags[name] not in t["values"]:
                msg = f"profile {prof.name} allows {name} in {tag_file} to be one of {t['values']}, not {tags[name]!r}"
                raise PackageError(msg, field=name)


def _tasks(b: _Build) -> Iterator[FolderTask]:
    """Folder tasks for the hashing workers, made while walking (refusals raise here).

    A refusal met part-way (a link, a bad name) raises out of the build: the
    partial bag is removed by :func:`make_bag` and the workspace was only read.
    """
    data = os.path.join(b.partial, "data")
    empty_fh: IO[str] | None = None
    mode = LINK if b.link else COPY
    join = os.path.join
    # Placing files: a folder goes to one worker (links into one folder contend for
    # its lock, measured slower than one process); only reading: shared out finer.
    reading_only = b.zarr == "archive" or (b.fetch_base is not None and b.fetch_min_size <= 0)
    parts = 2 * b.processes if b.processes > 1 and reading_only else 1
    groups = walk_groups(
        b.ws.root,
        follow_symlinks=b.follow_symlinks,
        zarr_archives=b.zarr == "archive",
        group_files=FOLDER_CHUNK,
        group_bytes=FOLDER_CHUNK_BYTES,
        parts=parts,
    )
    with ExitStack() as files:
        for item in groups:
            if type(item) is FileGroup:
                yield FolderTask(
                    item.src_dir,
                    join(data, item.prefix),
                    item.prefix,
                    item.names,
                    mode,
                    item.store,
                    item.srcs,
                    None if item.store is not None else b.formats.settled(),
                )
            elif type(item) is PayloadDir:
                os.mkdir(join(data, item.rel))
                if item.empty:
                    if empty_fh is None:
                        empty_fh = files.enter_context(
                            open(
                                b.partial / "metadata" / "empty-directories.txt",
                                "x",
                                encoding="utf-8",
                                newline="\n",
                            )
                        )
                    empty_fh.write(f"data/{encode_path(item.rel)}\n")
                    b.empty_dirs += 1
            else:
                assert isinstance(item, ZarrStore)
                # The store's zip is written by the main process from pieces the
                # workers read (ZIP tasks), between ZIP_BEGIN and ZIP_END.
                yield FolderTask(item.src, None, item.rel, (), ZIP_BEGIN, item.rel)
                for sub in walk_store_groups(
                    item.src,
                    item.rel,
                    follow_symlinks=b.follow_symlinks,
                    group_files=FOLDER_CHUNK,
                    parts=parts,
                ):
                    if type(sub) is FileGroup:
                        yield FolderTask(
                            sub.src_dir, None, sub.prefix, sub.names, ZIP, sub.store, sub.srcs
                        )
                    elif type(sub) is PayloadDir and sub.empty and sub.rel != item.rel:
                        yield FolderTask(
                            join(item.src, sub.rel[len(item.rel) + 1 :]),
                            None,
                            sub.rel,
                            (),
                            ZIP_DIR,
                            item.rel,
                        )
                yield FolderTask(item.src, None, item.rel, (), ZIP_END, item.rel)


def _zip_step(b: _Build, task: FolderTask, piece: ZipPiece | None) -> None:
    """The main process's part of packing a Zarr store as one zip."""
    store = task.store or ""
    if task.mode == ZIP:
        assert b.zip is not None and piece is not None
        b.zip.add_piece(piece)
    elif task.mode == ZIP_BEGIN:
        zip_path = os.path.join(b.partial, "data", store + ".zip")
        inv = b.partial / "metadata" / "zarr-inventory" / f"{store}.tsv"
        b.zip = ZipWriter(zip_path, str(inv))
    elif task.mode == ZIP_DIR:
        assert b.zip is not None
        b.zip.add_dir(task.prefix[len(store) + 1 :], os.stat(task.src_dir).st_mtime_ns)
    else:
        assert b.zip is not None and task.mode == ZIP_END
        res = b.zip.close()
        b.zip = None
        zip_rel = store + ".zip"
        b.stores[store] = [res.files, res.bytes]
        b.archives.append(zip_rel)
        b.empty_dirs += res.empty_dirs
        parent, _, name = zip_rel.rpartition("/")
        zip_task = FolderTask(
            os.path.join(b.partial, "data", parent),
            None,
            parent + "/" if parent else "",
            (name,),
            READ,
        )
        r = hash_folder(zip_task, b.hash_algorithms, len(b.algorithms))
        b.progress.advance(1, bytes=0)
        _record(b, zip_task, r)


class _TagHashingWriter:
    """A payload manifest or ``fetch.txt`` being written, hashed for the tag manifests as it goes.

    These files hold a line per payload file (tens of MB for a large store);
    hashing them while their lines arrive overlaps with the workers instead of
    re-reading them alone at the end.
    """

    def __init__(self, b: _Build, rel: str) -> None:
        from curated.package.hashing import _CONSTRUCTORS

        self.b = b
        self.rel = rel
        self.fh: IO[bytes] = open(b.partial / rel, "xb", buffering=1 << 20)  # noqa: SIM115
        algs = dict.fromkeys((*b.profile.tag_manifest_algorithms, "sha256"))
        self.hashers = {a: _CONSTRUCTORS[a]() for a in algs}
        self.size = 0

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        for h in self.hashers.values():
            h.update(data)
        self.size += len(data)

    def close(self) -> None:
        self.fh.close()
        self.b.tag_digests[self.rel] = (
            self.size,
            {a: h.hexdigest() for a, h in self.hashers.items()},
        )


def _record(b: _Build, task: FolderTask, r: FolderResult) -> None:
    """Write one task's manifest and fetch lines (formatted by the worker) and its counts."""
    for fh, text in zip(b.manifests.values(), r.lines, strict=True):
        fh.write(text)
    if r.fetch:
        if b.fetch_fh is None:
            b.fetch_fh = _TagHashingWriter(b, "fetch.txt")
        b.fetch_fh.write(r.fetch)
    b.files += r.files
    b.bytes += r.bytes
    b.linked += r.linked
    b.copied += r.copied
    b.fetched += r.fetched
    if task.store is not None:
        stats = b.stores.setdefault(task.store, [0, 0])
        stats[0] += r.files
        stats[1] += r.bytes
        return
    if b.crate is None:
        return  # the crate is written: files made after it (the crate, fair.*) are not in it
    ws_root = os.fspath(b.ws.root)
    data = os.path.join(b.partial, "data")
    for item in r.entities:
        if type(item) is EntityRun:
            b.crate.add_run(item)  # formatted by the worker
            continue
        rel, size, sha256, fetched, head = item
        desc = None
        if rel in b.archives:
            inner = rel.removesuffix(".zip")
            nfiles, nbytes = b.stores[inner]
            desc = (
                f"OME-Zarr store {inner} as one uncompressed zip ({nfiles} files, {nbytes} bytes); "
                f"per-chunk sha256 in metadata/zarr-inventory/{inner}.tsv"
            )
        # read where it was hashed: the workspace (a linked file is the same file, a copied
        # one the same bytes, one completed from fetch.txt is only there), or the bag for a
        # store's zip made while bagging
        where = data if desc is not None else ws_root
        ent = file_entity(
            rel,
            size,
            sha256,
            description=desc,
            path=os.path.join(where, rel),
            memo=b.formats,
            head=head,
        )
        if fetched and desc is None and b.fetch_base:
            # RO-Crate in BagIt: a file completed from fetch.txt SHOULD carry the same URL
            ent["url"] = f"{b.fetch_base.rstrip('/')}/{quote(rel, safe='/')}"
        b.crate.add(ent)


def _build_payload(b: _Build) -> None:
    """The payload, its manifests, RO-Crate and FAIR report, then the metadata tag files."""
    _start_bag(b)
    from curated.provenance.export import ro_crate_action_entities

    # the log's entities are known before the payload, so the crate need not keep every part's id
    actions = ro_crate_action_entities(b.ws.log) if b.ws.log.exists() else []
    with ExitStack() as files:
        files.callback(b.progress.finish)
        b.crate = files.enter_context(
            CrateWriter(spill_dir=b.partial, action_ids=[str(a.get("@id")) for a in actions])
        )
        for alg in b.algorithms:
            path = b.partial / f"manifest-{alg}.txt"
            b.manifests[alg] = _TagHashingWriter(b, path.name)
            files.callback(b.manifests[alg].close)
        files.callback(lambda: b.fetch_fh.close() if b.fetch_fh is not None else None)
        files.callback(lambda: b.zip.abort() if b.zip is not None else None)
        _hash_payload(b)
        # The crate describes what was just measured, so it is written after the payload.
        crate_path, outline = _write_crate(b, actions)
        _record_crate_and_fair(b, crate_path, outline)
    _write_metadata(b)


def _start_bag(b: _Build) -> None:
    """``partial`` with its marker, ``bagit.txt`` and empty ``data/`` and ``metadata/``."""
    b.build.start()
    (b.partial / "bagit.txt").write_text(BAGIT_TXT, encoding="utf-8", newline="\n")
    (b.partial / "data").mkdir()
    (b.partial / "metadata").mkdir()
    # The count only feeds a progress bar: without one, no second listing of the payload.
    total = count_files(b.ws.root, zarr_archives=b.zarr == "archive") if b.counting else None
    b.progress.start("hashing payload", total, "files")


def _hash_payload(b: _Build) -> None:
    """Walk, place and hash the payload; the workers format the files' crate entities."""
    assert b.crate is not None
    fetch = FetchSpec(b.fetch_base.rstrip("/"), b.fetch_min_size) if b.fetch_base else None
    spec = EntitySpec(fetch.base if fetch else None, b.crate.spec.wanted)
    advance = b.progress.advance

    def on_bytes(nfiles: float, nbytes: int) -> None:
        advance(nfiles, bytes=nbytes)

    for task, r in hash_folders(
        _tasks(b),
        b.hash_algorithms,
        len(b.algorithms),
        fetch=fetch,
        processes=b.processes,
        on_bytes=on_bytes,
        entity_spec=spec,
    ):
        if type(r) is FolderResult:
            _record(b, task, r)
        else:
            _zip_step(b, task, r)


def _record_crate_and_fair(b: _Build, crate_path: Path, outline: Outline | None) -> None:
    """Hash the crate, then evaluate the FAIR checklist on the bag itself (now that its
    crate exists; ``outline`` spares reading the crate again) and hash its report."""
    from concurrent.futures import ThreadPoolExecutor

    from curated.document.fair import write_bag_fair

    n_manifests = len(b.algorithms)
    crate_task = FolderTask(str(crate_path.parent), None, "", (crate_path.name,), READ)
    with ThreadPoolExecutor(1) as pool:
        # the crate is hashed (one thread per algorithm) while the checklist is evaluated
        crate_hashed = pool.submit(hash_file_threaded, crate_task, b.hash_algorithms, n_manifests)
        fair_names = write_bag_fair(
            b.partial,
            record=b.ws.metadata_path,
            log=b.ws.log.path,
            # archived stores and holey bags' fetched files are read where they were made
            derived=b.ws.root / "derived" if b.zarr == "archive" or b.fetch_base else None,
            crate_outline=outline,
            name=b.bag_name,  # as it will be named in place, not its temporary folder's name
        )
        _record(b, crate_task, crate_hashed.result())
    fair_dir = b.partial / "data" / "curation"
    fair_task = FolderTask(str(fair_dir), None, "curation/", fair_names, READ)
    _record(b, fair_task, hash_folder(fair_task, b.hash_algorithms, n_manifests))


def _write_crate(b: _Build, actions: list[dict[str, Any]]) -> tuple[Path, Outline | None]:
    """Add the stores to the crate (files are in by now) and write ``data/ro-crate-metadata.json``.

    Returns its path and its outline (what the FAIR checks would read in it)."""
    assert b.crate is not None
    for store, (nfiles, nbytes_store) in sorted(b.stores.items()):
        if store + ".zip" not in b.archives:
            ents = store_entity(
                store,
                nfiles,
                nbytes_store,
                path=b.ws.root / store,
                labels=label_origins(b.ws.root / store),
            )
            for ent in ents if isinstance(ents, list) else [ents]:
                b.crate.add(ent)
    crate_path = b.partial / "data" / "ro-crate-metadata.json"
    with open(crate_path, "xb", buffering=1 << 20) as out:
        b.crate.write(
            out,
            b.record,
            identifier=b.external_id,
            date=datetime.now(UTC).date().isoformat(),
            actions=actions,
        )
    outline = b.crate.outline
    b.crate.close()
    b.crate = None
    return crate_path, outline


def _write_metadata(b: _Build) -> None:
    meta = b.partial / "metadata"
    shutil.copyfile(b.ws.metadata_path, meta / "curated.yaml")
    check = b.ws.curation_dir / "check.json"
    if check.is_file():
        shutil.copyfile(check, meta / "check.json")
    from curated.metadata.crosswalk import to_datacite

    write_json(meta / "datacite.json", to_datacite(b.record, strict=False))
    info = [
        *[(k, v) for k, v in b.info.items() if k not in ("Bag-Group-Identifier", "Bag-Count")],
        ("External-Identifier", b.external_id),
        ("Bagging-Date", datetime.now(UTC).date().isoformat()),
        ("Bag-Software-Agent", f"curated {__version__}"),
        ("Payload-Oxum", f"{b.bytes}.{b.files}"),
        ("Bag-Size", binary_size(b.bytes)),
        ("BagIt-Profile-Identifier", b.profile.identifier),
    ]
    if b.info.get("Bag-Group-Identifier"):
        info.append(("Bag-Group-Identifier", b.info["Bag-Group-Identifier"]))
        info.append(("Bag-Count", b.info.get("Bag-Count", "1 of 1")))
    _write_tag_file(b.partial / "bag-info.txt", info)
    for tag_file, tags in b.other_tags.items():
        if tags:
            _write_tag_file(b.partial / tag_file, list(tags.items()))


def _copy_log(b: _Build, entry: dict[str, Any]) -> Path:
    """Copy the curator log up to and including ``entry`` (later appends by others are left out)."""
    dest = b.partial / "metadata" / "curator-log.jsonl"
    seq = int(entry["seq"])
    with open(b.ws.log.path, "rb") as src, open(dest, "xb") as out:
        for line in src:
            out.write(line)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("seq") == seq and obj.get("hash") == entry["hash"]:
                break
    copy = CuratorLog(dest, root=b.ws.root)
    report = copy.verify()
    last = copy.last()
    if not report.ok or last is None or last.get("hash") != entry["hash"]:
        msg = f"the curator log copied into the bag does not end with this bag's entry ({'; '.join(report.problems)})"
        raise PackageError(msg, path=dest)
    return dest


def _tag_files(partial: Path) -> Iterator[str]:
    """Every file of the bag outside ``data/``, its marker and the tag manifests (files first)."""

    def skip(prefix: str, name: str, kind: str) -> bool:
        if prefix:
            return False
        return (
            (kind == DIR and name == "data")
            or name == BUILDING_MARKER
            or (kind != DIR and name.startswith("tagmanifest-"))
        )

    for ev in walk(partial, order="files-first", skip=skip):
        if type(ev) is Files:
            for name in ev.names:
                yield ev.prefix + name


def _write_tag_manifests(b: _Build) -> None:
    algs = b.profile.tag_manifest_algorithms
    lines: dict[str, list[str]] = {a: [] for a in algs}
    for rel in _tag_files(b.partial):
        p = b.partial / rel
        st = p.stat()
        known = b.tag_digests.get(rel)
        if known is not None and known[0] == st.st_size:
            digests: tuple[str, ...] = tuple(known[1][a] for a in algs)
        else:
            r = hash_one(HashTask(rel, str(p), None, st.st_size, st.st_mtime_ns, READ), algs)
            digests = r.digests
        for alg, digest in zip(algs, digests, strict=True):
            lines[alg].append(f"{digest}  {encode_path(rel)}\n")
    for alg in algs:
        with open(b.partial / f"tagmanifest-{alg}.txt", "x", encoding="utf-8", newline="\n") as fh:
            fh.writelines(lines[alg])


def _serialize(b: _Build) -> None:
    """Write the finished folder as one ``tar`` or ``zip`` file at ``final``, then remove it."""

    def write(tmp: str) -> None:
        if b.serialize == "tar":
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
                tf.add(b.partial, arcname=b.bag_name, recursive=True)
            return
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for ev in walk(b.partial, rel=b.bag_name, order="files-first"):
                if type(ev) is Folder and not ev.entries:
                    zf.mkdir(ev.rel)
                elif type(ev) is Files:
                    for name in ev.names:
                        zf.write(os.path.join(ev.folder, name), ev.prefix + name)

    atomic_write_via(b.final, write)  # one rename: the old archive or the new one, never half
    crash_point("bag-serialized")
    b.build.discard()


def _is_bag(path: Path) -> bool:
    """Whether ``path`` is what a bag run may replace or clear: a bag folder, or an archive file."""
    return path.is_file() or (path / "bagit.txt").is_file()


def _recover(ws: Workspace, final: Path, serialized: bool) -> None:
    """Finish or undo a replacement a crash interrupted (called under the build lock).

    :func:`curated._io.recover_swap`: a complete new bag folder whose identifier is the
    one the log's last entry for this bag records is renamed into place; otherwise a
    bag set aside is put back and what the crash left is removed. (A serialized bag's
    build folder is removed: it is not an archive yet, and the run builds anew.)
    """

    def finished(folder: Path) -> bool:
        ident = bag_identifier(folder)
        return not serialized and ident is not None and ident == _last_bag_entry_id(ws, final)

    left = recover_swap(final, is_ours=_is_bag, finished=finished)
    if left.foreign or left.busy:
        msg = (
            "is in the way of the bag and was not made by `curated bag`; move it away and bag again"
        )
        raise PackageError(msg, path=(left.foreign or left.busy)[0])


class _BuildLock:
    """An exclusive ``flock`` so two runs never build (or clean up) the same bag at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            msg = "another `curated bag` run is building this bag right now; wait for it to finish"
            raise PackageError(msg, path=self.path.parent) from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def make_bag(
    workspace: Workspace | str | Path,
    dest: str | Path,
    *,
    profile: str = "curated",
    zarr: ZarrMode = "directory",
    serialize: Serialization = "none",
    processes: int = 1,
    fetch_base: str | None = None,
    fetch_min_size: int = DEFAULT_FETCH_MIN_SIZE,
    follow_symlinks: bool = False,
    overwrite: bool = False,
    bag_info: dict[str, str] | None = None,
    bag_group: tuple[str, int, int] | None = None,
    link: bool = True,
    progress: ProgressReporter | None = None,
) -> Result:
    """Pack a workspace into a BagIt bag at ``dest``; the workspace is only read.

    Parameters
    ----------
    workspace
        The workspace to pack.
    dest
        The bag folder to create (must not exist, must not be inside the
        workspace except under ``<workspace>/package/``). With ``serialize``,
        the bag is written as ``<dest>.tar`` / ``<dest>.zip`` holding one
        top-level folder named like ``dest``.
    profile
        Packaged BagIt profile name (``curated``, ``btr``, ``aptrust``,
        ``chronopolis-like``) or a profile JSON path. It decides the manifest
        algorithms and which bag-info tags must be present.
    zarr
        ``directory``: Zarr stores as folders of chunks. ``archive``: each
        store as one uncompressed ``<store>.zip`` in ``data/`` plus a per-chunk
        inventory under ``metadata/zarr-inventory/``.
    serialize
        ``none``, ``tar`` or ``zip`` (stored, uncompressed).
    processes
        Hashing processes (1 hashes here, with byte-level progress).
    fetch_base
        Base URL of institutional storage holding a copy of the workspace
        layout; payload files of at least ``fetch_min_size`` bytes are listed
        in ``fetch.txt`` (URL ``fetch_base/<workspace path>``) and in every
        manifest, but not copied (a holey bag).
    follow_symlinks
        Store what symbolic links point to; by default a link is refused with
        its name (it is never skipped).
    overwrite
        Replace an existing bag at the destination (only after the new one is complete).
    bag_info
        Extra or overriding bag-info tags (and tags of other profile tag
        files, such as APTrust's ``Access``).
    bag_group
        ``(group identifier, index, total)`` for one bag of a split deposit
        (``Bag-Group-Identifier``, ``Bag-Count: index of total``).
    link
        Hard-link payload files where possible (default); ``False`` always copies.
    progress
        Receives ``hashing payload`` with a total in files, then
        ``advance(files, bytes=n)`` as files are hashed (fractions of a file
        for large files with ``processes=1``).

    Returns
    -------
    Result
        ``action="bag"``, ``path`` the bag (or archive), ``details`` with
        counts, algorithms, ``external_identifier`` and the log entry's ``seq``.

    Examples
    --------
    >>> make_bag("my-dataset", "/archive/my-dataset-bag", processes=2)  # doctest: +SKIP
    """
    ws = as_workspace(workspace)
    if ws is None:
        raise PackageError("a workspace is needed to make a bag")
    dest, bag_name, final = _bag_paths(dest, zarr, serialize)
    values = (ws.relative(final), profile, zarr, serialize, processes, fetch_base, follow_symlinks)
    params = _checked_params(values)
    b: _Build | None = None
    step_entry: dict[str, Any] | None = None
    lock = _BuildLock(dest.parent / f".{bag_name}.curated-bag.lock")
    build = DirBuild(final, crash="bag")
    try:
        with recorder(
            ws,
            "D",
            "bag",
            inputs=[ws.metadata_path],
            params=params,
            libraries=("bagit", "rocrate", "prov"),
        ) as step:
            b = _prepare(
                ws,
                lock,
                dest,
                (final, build, bag_name),
                params,
                fetch_min_size=fetch_min_size,
                overwrite=overwrite,
                bag_info=bag_info,
                bag_group=bag_group,
                link=link,
                progress=progress,
            )
            _build_naming(b)
            _describe_step(step, b)
        step_entry = step.entry
        crash_point("bag-entry-written")
        _finish(b, step_entry)
    except BaseException as exc:
        _failed(ws, exc, lock, build, step_entry, params)
        raise
    finally:
        lock.release()
    return _result(b, step.message, step_entry)


def _build_naming(b: _Build) -> None:
    """:func:`_build`; a failed write (disk full) names no file: the error names the bag's folder."""
    try:
        _build(b)
    except OSError as exc:
        raise naming(exc, b.build.path or b.final) from None


def check_fetch_base(url: str | None) -> None:
    """Refuse a ``fetch_base`` that is no absolute URL or that carries a credential.

    Its text goes verbatim into ``fetch.txt``, the RO-Crate and the curator log, where
    everyone who gets the bag reads it: a ``user:password@`` or a signed query (a presigned
    ``?X-Amz-Signature=…``; and ``base/<path>`` after a query is no URL of the file anyway)
    would publish the credential. The message does not repeat the URL.
    """
    if url is None:
        return
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    no_host = parts is not None and not parts.netloc and parts.scheme != "file"  # file:///mnt/…
    if parts is None or not parts.scheme or no_host or any(c.isspace() for c in url):
        msg = "must be an absolute URL without spaces (scheme://host/path, e.g. s3://BUCKET/PATH or https://…)"
        raise PackageError(msg, field="fetch_base")
    if "@" in parts.netloc or parts.query or parts.fragment:
        msg = "must not carry credentials, a query or a fragment (user:password@, ?X-Amz-Signature=…): give the storage's plain base URL; fetch.txt is read by everyone who gets the bag"
        raise PackageError(msg, field="fetch_base")


_PARAMS = ("dest", "profile", "zarr", "serialize", "processes", "fetch_base", "follow_symlinks")
"""The options a bag's log entry records, in this order."""


def _checked_params(values: tuple[Any, ...]) -> dict[str, Any]:
    """The options of :data:`_PARAMS` by name, once the ``fetch_base`` among them is checked."""
    params = dict(zip(_PARAMS, values, strict=True))
    check_fetch_base(params["fetch_base"])
    return params


def _describe_step(step: Any, b: _Build) -> None:
    """The bag's log entry: the bag as output, its identifier and payload manifest digest."""
    step.add_output(Artifact(path=b.ws.relative(b.final), bytes=b.bytes, digest=None, role="bag"))
    manifest = f"manifest-{b.algorithms[0]}.txt"
    step.details = {
        "external_identifier": b.external_id,
        "payload_oxum": f"{b.bytes}.{b.files}",
        manifest: f"sha256:{b.tag_digests[manifest][1]['sha256']}",
        "profile": b.profile.identifier,
    }
    step.message = f"bagged {b.files} file{'' if b.files == 1 else 's'} ({binary_size(b.bytes)}) into {b.final.name}"


def _failed(
    ws: Workspace,
    exc: BaseException,
    lock: _BuildLock,
    build: DirBuild,
    step_entry: dict[str, Any] | None,
    params: dict[str, Any],
) -> None:
    """Remove what a failed run built; a failure after the bag's entry is logged as such."""
    if lock.held:
        build.discard()
    if step_entry is not None:
        ws.log.append(
            "D",
            "bag",
            status="error",
            message=f"{type(exc).__name__}: {exc} (after the bag entry; no bag was left)",
            params=params,
        )


def _prepare(
    ws: Workspace,
    lock: _BuildLock,
    dest: Path,
    where: tuple[Path, DirBuild, str],
    params: dict[str, Any],
    *,
    fetch_min_size: int,
    overwrite: bool,
    bag_info: dict[str, str] | None,
    bag_group: tuple[str, int, int] | None,
    link: bool,
    progress: ProgressReporter | None,
) -> _Build:
    """Under the build lock: recover an interrupted run, check the destination and the record.

    ``params`` are the options the log entry records (:data:`_PARAMS`).
    """
    final, build, bag_name = where
    follow_symlinks = bool(params["follow_symlinks"])
    profile = str(params["profile"])
    prof = load_profile(profile)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock.acquire()
    _recover(ws, final, params["serialize"] != "none")
    _correct_interrupted_entry(ws, final)
    _preflight_dest(ws, dest, final, overwrite)
    if not follow_symlinks:
        _refuse_linked_tag_sources(ws)
    record = ws.read_metadata()
    _refuse_misshapen(record, ws)
    info, other = _tag_values(record, ws, prof, bag_info, bag_group)
    return _Build(
        ws=ws,
        profile=prof,
        final=final,
        bag_name=bag_name,
        build=build,
        zarr=params["zarr"],
        serialize=params["serialize"],
        processes=max(1, int(params["processes"])),
        fetch_base=params["fetch_base"],
        fetch_min_size=int(fetch_min_size),
        follow_symlinks=follow_symlinks,
        link=link,
        record=record,
        info=info,
        other_tags=other,
        progress=ensure_progress(progress),
        counting=progress is not None,
    )


def _bag_paths(dest: str | Path, zarr: str, serialize: str) -> tuple[Path, str, Path]:
    """``(dest, bag name, final path)``: a serialized bag is ``<name>.tar``/``.zip``."""
    if zarr not in ("directory", "archive"):
        raise PackageError(f"zarr must be 'directory' or 'archive', not {zarr!r}")
    if serialize not in ("none", "tar", "zip"):
        raise PackageError(f"serialize must be 'none', 'tar' or 'zip', not {serialize!r}")
    dest = Path(os.path.abspath(dest))
    bag_name = dest.name
    for suffix in (".tar", ".zip"):
        if serialize != "none" and bag_name.endswith(suffix):
            bag_name = bag_name.removesuffix(suffix)
    final = dest if serialize == "none" else dest.with_name(f"{bag_name}.{serialize}")
    return dest, bag_name, final


def _tag_values(
    record: dict[str, Any],
    ws: Workspace,
    prof: Profile,
    bag_info: dict[str, str] | None,
    bag_group: tuple[str, int, int] | None,
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """bag-info tags and those of the profile's other tag files (APTrust's ``aptrust-info.txt``)."""
    info = describe_bag(record, ws.root)
    other_files = sorted(
        {str(t.get("tagFile")) for t in prof.document.get("Tags", [])}
        - {"bagit.txt", "bag-info.txt"}
    )
    other: dict[str, dict[str, str]] = {f: {} for f in other_files}
    if "aptrust-info.txt" in other:
        study = record.get("study") or {}
        if study.get("title"):
            other["aptrust-info.txt"]["Title"] = _one_line(study["title"])
        other["aptrust-info.txt"]["Access"] = "Institution"
        other["aptrust-info.txt"]["Storage-Option"] = "Standard"
        if study.get("description"):
            other["aptrust-info.txt"]["Description"] = _one_line(study["description"])
    for k, v in (bag_info or {}).items():
        if k.lower() in _COMPUTED_TAGS:
            msg = f"bag-info tag {k!r} is computed while bagging and cannot be given"
            raise PackageError(msg, field=k)
        target = next(
            (f for f in other_files if any(t.get("tagName") == k for t in prof.tags(f))),
            None,
        )
        if target is not None:
            other[target][k] = str(v)
        else:
            info[k] = str(v)
    if bag_group is not None:
        gid, index, total = bag_group
        info["Bag-Group-Identifier"] = str(gid)
        info["Bag-Count"] = f"{int(index)} of {int(total)}"
    return info, other


def _build(b: _Build) -> None:
    """Check the profile's demands, then build the payload, crate and tag files in ``partial``."""
    _preflight_profile(b)
    b.algorithms = b.profile.manifest_algorithms
    b.hash_algorithms = b.algorithms + (() if "sha256" in b.algorithms else ("sha256",))
    b.external_id = f"urn:uuid:{uuid.uuid4()}"
    _build_payload(b)


def _finish(b: _Build | None, step_entry: dict[str, Any] | None) -> None:
    """After the bag's log entry: the log copy and its PROV, tag manifests, then into place."""
    assert b is not None
    if step_entry is not None:
        _copy_log(b, step_entry)
        from curated.provenance.export import write_prov_json

        write_prov_json(
            CuratorLog(b.partial / "metadata" / "curator-log.jsonl", root=b.ws.root),
            b.partial / "metadata" / "prov.json",
        )
    _write_tag_manifests(b)
    crash_point("bag-tag-manifests")
    b.build.finished()
    if b.serialize == "none":
        b.build.swap_in()
    else:
        _serialize(b)


def _result(b: _Build | None, message: str, step_entry: dict[str, Any] | None) -> Result:
    assert b is not None
    return Result(
        action="bag",
        status="ok",
        path=str(b.final),
        message=message,
        details={
            "files": b.files,
            "bytes": b.bytes,
            "payload_oxum": f"{b.bytes}.{b.files}",
            "algorithms": list(b.algorithms),
            "profile": b.profile.name,
            "external_identifier": b.external_id,
            "linked": b.linked,
            "copied": b.copied,
            "fetch": b.fetched,
            "zarr_stores": len(b.stores),
            "empty_directories": b.empty_dirs,
            "log_seq": step_entry["seq"] if step_entry else None,
        },
    )
