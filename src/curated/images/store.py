"""The life of one multiscale store on disk: plan, resume, finish.

An unfinished store never looks finished: its group carries only a
``curated-incomplete`` attribute and no ``multiscales`` until every shard of every
level is written; the OME metadata is written last, in one atomic file write,
and only then is the progress journal removed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from curated._crash import crash_point
from curated._io import canonical_json
from curated.errors import ConversionError, InputError
from curated.images.layout import StoreLayout
from curated.images.shards import JOURNAL, create_level_arrays
from curated.objstore import LocalSink, S3Sink, is_url, open_sink

INCOMPLETE_KEY = "curated-incomplete"
INCOMPLETE_MESSAGE = (
    "this store is being written or was interrupted; re-run the same command to finish it"
)
PLAN_KEY = "curated-plan"
"""Group attribute of a finished conversion: the digest of the plan that made it (source
fingerprint, layout, name), so that running the same command again is recognised as done."""


MAX_METADATA_BYTES = 64 * 1024 * 1024
"""The largest ``zarr.json`` / ``.zattrs`` read: a store's metadata is small, and a hostile one
must not make a reader parse gigabytes."""


def _read_metadata(sink: LocalSink | S3Sink, key: str) -> Any:
    """The JSON document ``key`` of ``sink``; ``ValueError`` when it is too large or too deeply nested."""
    too_large = f"{key} is larger than {MAX_METADATA_BYTES} bytes; no Zarr metadata is that large"
    if isinstance(sink, LocalSink):
        p = sink.root / key
        if p.is_file() and p.stat().st_size > MAX_METADATA_BYTES:
            raise ValueError(too_large)
        raw = sink.get(key)
    else:  # at most one byte more than the limit is fetched, however large the object
        raw = sink.get_range(key, 0, MAX_METADATA_BYTES + 1)
        if len(raw) > MAX_METADATA_BYTES:
            raise ValueError(too_large)
    try:
        return json.loads(raw)
    except RecursionError:
        msg = f"{key} is JSON nested too deeply to be Zarr metadata"
        raise ValueError(msg) from None


def read_group_attrs(root: str | Path) -> tuple[dict[str, Any], int] | None:
    """``(attributes, zarr_format)`` of the group at ``root`` (folder or ``s3://`` URL), or ``None`` when it is not a zarr group.

    Raises ``ValueError`` when the metadata is not JSON, not a JSON object, or too large
    or deeply nested to be Zarr metadata (``OSError`` when it cannot be read).
    """
    sink = open_sink(root)
    if isinstance(sink, LocalSink) and not sink.root.is_dir():
        return None
    try:
        doc = _read_metadata(sink, "zarr.json")
    except (FileNotFoundError, IsADirectoryError):
        pass
    else:
        if not isinstance(doc, dict):
            msg = f"zarr.json holds a JSON {type(doc).__name__}, not the object Zarr metadata is"
            raise ValueError(msg)
        return doc.get("attributes", {}) or {}, 3
    if sink.exists(".zgroup"):
        try:
            return _read_metadata(sink, ".zattrs"), 2
        except FileNotFoundError:
            return {}, 2
    return None


def write_group_attrs(root: str | Path, attrs: dict[str, Any], zarr_format: int) -> None:
    """Atomically (re)write a group's metadata with ``attrs``."""
    sink = open_sink(root)
    if zarr_format == 3:
        _write_json_readable(
            sink, "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attrs}
        )
    else:
        if not sink.exists(".zgroup"):
            _write_json_readable(sink, ".zgroup", {"zarr_format": 2})
        _write_json_readable(sink, ".zattrs", attrs)


def _write_json_readable(sink: LocalSink | S3Sink, key: str, obj: dict[str, Any]) -> None:
    """Pretty JSON (2-space indent, trailing newline), put in one atomic piece."""
    sink.put(key, (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode())
    if isinstance(sink, LocalSink):
        (sink.root / key).chmod(0o644)  # staged files are private; metadata is meant to be shared


def plan_digest(plan: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(plan).encode()).hexdigest()


def begin(
    root: str | Path,
    layout: StoreLayout,
    plan: dict[str, Any],
    *,
    overwrite: bool,
    protect: list[Path] = (),  # type: ignore[assignment]
    group_attrs: dict[str, Any] | None = None,
    job: str = "conversion",
) -> bool:
    """Prepare ``root`` for writing; return ``True`` when an interrupted run with the same plan is resumed.

    ``job`` names what writes ``root`` in the refusals (``"conversion"``, ``"label image
    (labels add)"``...).

    Raises
    ------
    InputError
        ``root`` exists (and is not an unfinished run of the same plan) and ``overwrite`` is false,
        or ``root`` would contain one of the ``protect`` paths (the source).
    """
    if not is_url(root):  # an object store cannot contain a local source
        rr = Path(root).resolve()
        for p in protect:
            rp = Path(p).resolve()
            if rp == rr or rr in rp.parents:
                msg = "the destination must not be (or contain) the source; choose another DEST"
                raise InputError(msg, path=root)
    sink = open_sink(root)
    if isinstance(sink, S3Sink) and not sink.prefix:
        msg = "is a whole bucket; a store needs a path of its own in it: write s3://BUCKET/NAME.ome.zarr (with --overwrite, every object in the bucket would go)"
        raise InputError(msg, path=root)
    digest = plan_digest(plan)
    attrs = dict(group_attrs or {})
    attrs[INCOMPLETE_KEY] = INCOMPLETE_MESSAGE
    if sink.root_exists():
        if overwrite:
            _refuse_to_replace_other_files(sink, root)
            sink.abort_uploads()  # a killed writer's unfinished multipart uploads
            _delete_store(sink)
        elif sink.exists(PLAN):
            if _read_plan(sink).get("digest") == digest:
                sink.abort_uploads()
                _complete_metadata(sink, root, layout, attrs)
                return True
            msg = (
                f"holds an unfinished {job} made with different inputs or parameters; "
                "re-run it with the same ones to finish it, or pass --overwrite to start again"
            )
            raise InputError(msg, path=root)
        elif _nothing_but_journal(sink):
            sink.delete_prefix(JOURNAL)  # a start killed before its plan was written
        else:
            drop_leftover_journal(root)  # a finished store whose journal removal was killed
            msg = "already exists; pass --overwrite to replace it (or choose another DEST)"
            if finished_plan(root) is not None:  # made by another plan: the digests differ
                msg = (
                    "holds a finished conversion of another source, or made with other "
                    "parameters, or the source changed since; " + msg.split("; ", 1)[1]
                )
            raise InputError(msg, path=root)
    # The plan is the claim on ``root`` and goes first; the group (marked unfinished) and the
    # level arrays' metadata follow. A kill can fall between any two of these writes (each
    # is atomic: a renamed file or one PUT), so a re-run with the same plan completes
    # whatever metadata is missing (:func:`_complete_metadata`) before it resumes, and a
    # root holding only a journal without a plan (a kill while the plan was being written)
    # is started afresh. Every one of these documents is a pure function of the plan, and
    # nothing else is written before ``begin`` returns, so any kill point ends, after a
    # re-run, byte-identical to an uninterrupted run.
    sink.put(PLAN, json.dumps({"digest": digest, "plan": plan}, indent=1, default=str).encode())
    crash_point("store-planned")
    write_group_attrs(root, attrs, layout.zarr_format)
    crash_point("store-group-written")
    create_level_arrays(root, layout)
    return False


PLAN = f"{JOURNAL}/plan.json"
"""The plan of an unfinished store (its digest decides whether a re-run resumes it)."""


def _read_plan(sink: LocalSink | S3Sink) -> dict[str, Any]:
    try:
        got = json.loads(sink.get(PLAN))
    except (ValueError, UnicodeDecodeError):
        got = None
    if not isinstance(got, dict):
        msg = f"holds an unreadable progress journal ({PLAN}); pass --overwrite to start again"
        raise InputError(msg, path=sink.url)
    return got


_STORE_ROOT_FILES = ("zarr.json", ".zgroup", ".zattrs", ".zarray")


def _refuse_to_replace_other_files(sink: LocalSink | S3Sink, root: str | Path) -> None:
    """``--overwrite`` replaces a Zarr store (or what an interrupted run left), never a folder
    of other files: ``convert SRC ~/Documents --overwrite`` must not delete the documents."""
    if isinstance(sink, LocalSink) and not sink.root.is_dir():
        msg = "is a file, not a Zarr store; --overwrite replaces only a store: choose another DEST"
        raise InputError(msg, path=root)
    if _nothing_but_journal(sink) or any(sink.exists(k) for k in _STORE_ROOT_FILES):
        return
    msg = (
        "is not a Zarr store (no zarr.json or .zgroup): --overwrite replaces only a store, "
        "never a folder of other files; choose another DEST"
    )
    raise InputError(msg, path=root)


def _delete_store(sink: LocalSink | S3Sink) -> None:
    """Delete the store at the sink's root, its root metadata last (a folder is removed in
    directory order, an object store's keys in name order, which puts ``zarr.json`` last):
    a kill part way leaves what the next ``--overwrite`` still recognises as a store."""
    if isinstance(sink, LocalSink):
        for name in sink.listdir(""):
            if name not in _STORE_ROOT_FILES:
                sink.delete_prefix(name)
    sink.delete_prefix("")


def _nothing_but_journal(sink: LocalSink | S3Sink) -> bool:
    """Whether the root is an empty folder or holds only a progress journal (no plan, no data)."""
    if isinstance(sink, LocalSink) and not sink.root.is_dir():
        return False
    return set(sink.listdir("")) <= {JOURNAL}


def _complete_metadata(
    sink: LocalSink | S3Sink, root: str | Path, layout: StoreLayout, attrs: dict[str, Any]
) -> None:
    """Write the group's and the level arrays' metadata that a run killed inside :func:`begin` left out.

    Only missing documents are written: a present group keeps its attributes (they may be
    the final ones, written just before a kill), and no chunk or shard is touched.
    """
    keys = ("zarr.json",) if layout.zarr_format == 3 else (".zgroup", ".zattrs")
    if not all(sink.exists(k) for k in keys):
        write_group_attrs(root, attrs, layout.zarr_format)
    create_level_arrays(root, layout, missing_only=True)


def finish(
    root: str | Path, attrs: dict[str, Any], zarr_format: int, *, keep_journal: bool = False
) -> None:
    """Write the final OME metadata (the completion mark) and drop the journal.

    ``keep_journal`` leaves the journal for the caller to drop once the step is logged
    (:func:`drop_journal`): a crash in between is then resumed (nothing left to write)
    instead of refused as an existing store. Digests never cover the journal.
    """
    attrs = {k: v for k, v in attrs.items() if k != INCOMPLETE_KEY}
    write_group_attrs(root, attrs, zarr_format)
    _check_kept(root, attrs, zarr_format)
    if not keep_journal:
        drop_journal(root)


def _check_kept(root: str | Path, attrs: dict[str, Any], zarr_format: int) -> None:
    """Read an object store's final metadata back (one GET): a store that acknowledged the
    PUT without keeping it would otherwise stay marked unfinished under a run reported
    done, its journal dropped, every later run refusing it as "already exists". A folder's
    file is renamed into place, whole or not at all."""
    if not is_url(root):
        return
    got = read_group_attrs(root)
    if got is None or got[0] != json.loads(json.dumps(attrs, ensure_ascii=False, default=str)):
        key = "zarr.json" if zarr_format == 3 else ".zattrs"
        msg = f"the object store acknowledged the store's final metadata ({key}) but does not hold it; re-run to write it again"
        raise ConversionError(msg, path=str(root))


def drop_journal(root: str | Path) -> None:
    """Remove a finished store's progress journal, its plan first.

    Removing a journal takes many steps; with the plan gone first, a kill part way never
    leaves a plan beside half its records (a re-run would resume from them and rewrite the
    shards whose records went). It leaves a finished store with the rest of its journal,
    which :func:`drop_leftover_journal` recognises and removes.
    """
    sink = open_sink(root)
    sink.abort_uploads()  # every writer is done: an upload still open is a killed worker's
    sink.delete_prefix(PLAN)
    sink.delete_prefix(JOURNAL)


def drop_leftover_journal(root: str | Path) -> bool:
    """Finish removing the journal of a finished store that a kill left part removed.

    A store is finished once :func:`finish` wrote its final metadata (no
    ``curated-incomplete``); a journal still there without its plan is what a kill inside
    :func:`drop_journal` left. Returns whether there was such a journal.
    """
    sink = open_sink(root)
    if not sink.listdir(JOURNAL) or sink.exists(PLAN):
        return False
    got = read_group_attrs(root)
    if got is None or not got[0] or INCOMPLETE_KEY in got[0]:
        return False
    sink.delete_prefix(JOURNAL)
    return True


def finished_plan(root: str | Path) -> str | None:
    """The digest of the plan that made the finished store at ``root`` (:data:`PLAN_KEY`), or
    ``None`` when it is no finished conversion that records one (or cannot be read)."""
    try:
        got = read_group_attrs(root)
        if got is None or open_sink(root).exists(PLAN):
            return None
    except (OSError, ValueError):
        return None
    attrs = got[0]
    plan = attrs.get(PLAN_KEY)
    return plan if INCOMPLETE_KEY not in attrs and isinstance(plan, str) else None


def is_incomplete(root: str | Path) -> bool:
    got = read_group_attrs(root)
    if got is None:
        return True
    attrs, _ = got
    return INCOMPLETE_KEY in attrs or bool(open_sink(root).listdir(JOURNAL))


def ome_attrs(body: dict[str, Any], ngff_version: str) -> dict[str, Any]:
    """Place OME metadata where each version wants it (0.5: under ``ome``; 0.4: top level)."""
    if ngff_version == "0.5":
        return {"ome": {"version": "0.5", **body}}
    return dict(body)


def check_voxel(voxel: tuple[float, ...]) -> None:
    for v in voxel:
        if not (v > 0) or v != v or v == float("inf"):
            msg = f"voxel size must be positive and finite in every axis, got {list(voxel)}"
            raise InputError(msg, field="voxel_size")


def require_3d(shape: tuple[int, ...], axes: str, path: str) -> None:
    if sum(1 for a in axes if a in "zyx") < 3:
        msg = f"is a 2D image (shape {tuple(shape)}, axes {axes}); a 3D stack (z, y, x) is needed: give a multi-page TIFF or a folder of slices, or, if its metadata names the axes wrongly, --axes (e.g. zyx)"
        raise ConversionError(msg, path=path)
