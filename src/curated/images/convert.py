"""Transform: TIFF stacks, HDF5 / MRC / Zarr / N5 / OME-Zarr sources (and arrays) → OME-Zarr multiscale images, out of core."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from curated._crash import crash_point
from curated.errors import ConversionError, InputError
from curated.images import store as _store
from curated.images.layout import (
    StoreLayout,
    level_block,
    make_axes,
    make_layout,
    multiscales,
    omero,
    window_from_sample,
)
from curated.images.shards import (
    WriteJob,
    check_written,
    collected_sample,
    level_stats,
    run_levels,
    store_digest,
    written_files,
)
from curated.images.sources import (
    ArraySource,
    TiffSource,
    check_image_dtype,
    open_source,
    with_axes,
)
from curated.images.stored import StoredArraySource, sparse_problem
from curated.images.units import length_unit, round_to, significant_digits, to_unit
from curated.objstore import is_url
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.digest import TreeHasher, digest_tree, sha256_file
from curated.provenance.log import Artifact
from curated.results import Result
from curated.walk import Files, walk
from curated.workspace import Workspace, as_workspace, portable_path, recorder

LIBRARIES = ("zarr", "numcodecs", "tifffile", "dask", "distributed", "imagecodecs")
STORED_LIBRARIES = {"hdf5": ("h5py",), "mrc": ("mrcfile",), "n5": ("tensorstore",)}


def _voxel(
    given: tuple[float, ...] | list[float] | float | None,
    unit: str,
    source: TiffSource | ArraySource | StoredArraySource,
) -> tuple[tuple[float, ...], str, str]:
    """Pick the voxel size (z, y, x) and unit: given, else from the file's metadata, else refuse."""
    unit_name = length_unit(unit)
    if given is not None:
        vals = (
            (float(given),) * 3
            if isinstance(given, int | float)
            else tuple(float(v) for v in given)
        )
        if len(vals) != 3:
            msg = f"voxel size needs 3 values (z y x), got {len(vals)}"
            raise InputError(msg, field="voxel_size")
        _store.check_voxel(vals)
        return vals, unit_name, "given"
    known = source.voxel_size
    if known is not None and source.unit is not None and all(v is not None for v in known):
        bad = [f"{a}={v:g}" for a, v in zip("zyx", known, strict=True) if not v > 0]  # type: ignore[operator]
        if bad:  # e.g. ImageJ's spacing=-10 (a stack saved with its z order reversed)
            msg = (
                f"the file's metadata ({source.voxel_source}) give {' '.join(bad)} {source.unit}, "
                f"which is no size; pass --voxel-size Z Y X (in {unit_name}), and check the slice order"
            )
            raise InputError(msg, path=source.path, field="voxel_size")
        vals = tuple(
            round_to(to_unit(v, source.unit, unit_name), significant_digits(v)) for v in known
        )
        _store.check_voxel(vals)
        return vals, unit_name, source.voxel_source
    if known is not None and source.unit is not None:
        stated = " ".join(f"{a}={v:g}" for a, v in zip("zyx", known, strict=True) if v is not None)
        missing = " and ".join(a for a, v in zip("zyx", known, strict=True) if v is None)
        why = "".join(
            f" ({n})"
            for n in getattr(source, "not_carried", [])
            if n.startswith("pixel size z") or "z spacing" in n
        )
        msg = (
            f"the file's metadata ({source.voxel_source}) give {stated} {source.unit} but no {missing} "
            f"spacing{why}, and curated does not guess it; pass --voxel-size Z Y X (in {unit_name})"
        )
        raise InputError(msg, path=source.path, field="voxel_size")
    why = "" if source.voxel_source in ("none", "given") else f": {source.voxel_source}"
    # what the file does state, e.g. CREMI's unitless @resolution, so the curator can check it
    seen = [
        n.replace(" (pass --voxel-size)", "")
        for n in getattr(source, "not_carried", [])
        if "voxel size" in n
    ]
    stated = "; ".join(seen) if seen else f"{source.kind}{why}"
    msg = (
        f"no voxel size in the file's metadata ({stated}); pass --voxel-size Z Y X (in {unit_name})"
    )
    raise InputError(msg, path=source.path, field="voxel_size")


def _voxel_disagreement(
    given: tuple[float, ...], unit_name: str, source: TiffSource | ArraySource | StoredArraySource
) -> str | None:
    """What the file's metadata state where a given voxel size differs from it by more than 1 %
    (a value typed in micrometres with the default unit nanometer is 1000 times off), else ``None``."""
    known = getattr(source, "voxel_size", None)
    unit = getattr(source, "unit", None)
    if known is None or unit is None:
        return None
    stated, differ = [], False
    for axis, mine, theirs in zip("zyx", given, known, strict=True):
        if theirs is None:
            continue
        value = to_unit(theirs, unit, unit_name)
        stated.append(f"{axis}={round_to(value, significant_digits(theirs)):g}")
        differ = differ or abs(mine - value) > 0.01 * abs(value)
    if not differ:
        return None
    gave = " ".join(f"{a}={v:g}" for a, v in zip("zyx", given, strict=True))
    return (
        f"the voxel size given ({gave} {unit_name}) differs from the file's metadata "
        f"({source.voxel_source}: {' '.join(stated)} {unit_name}); the given one is used"
    )


def _full_voxel(axes: str, zyx: tuple[float, ...]) -> tuple[float, ...]:
    space = dict(zip("zyx", zyx, strict=True))
    return tuple(space.get(a, 1.0) for a in axes)


def _store_metadata_files(root: Path) -> list[Path]:
    """The metadata documents of a Zarr / N5 store (what changes when its arrays are rewritten)."""
    names = ("zarr.json", ".zarray", ".zgroup", ".zattrs", "attributes.json")
    found = []
    for ev in walk(root, errors="report"):  # links not followed; sorted by path components
        if type(ev) is Files:
            found.extend(Path(ev.folder, n) for n in ev.names if n in names)
    return found


def _located(path: str | Path, dest: str | Path | None) -> str:
    """How a conversion's plan names a local source file: the path from ``dest`` to it when
    both lie in one workspace (:func:`curated.workspace.portable_path`), so a workspace
    moved or copied with the sources it holds keeps its conversions; else (and with
    ``dest=None``, the plan of earlier releases) the absolute path."""
    if dest is None or is_url(dest):
        return str(Path(path).resolve())
    return portable_path(path, dest)


def _fingerprint(
    source: TiffSource | ArraySource | StoredArraySource, dest: str | Path | None
) -> dict[str, Any]:
    if isinstance(source, StoredArraySource):
        root = Path(source.file)
        h = hashlib.sha256()
        for f in [root] if root.is_file() else _store_metadata_files(root / source.key.strip("/")):
            st = os.stat(f)
            h.update(f"{_located(f, dest)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return {
            "path": _located(root, dest),
            "key": source.key,
            "kind": source.kind,
            "shape": list(source.shape),
            "dtype": source.dtype,
            "stat": h.hexdigest(),
        }
    if isinstance(source, TiffSource):
        h = hashlib.sha256()
        for f in source.files:
            st = os.stat(f)
            h.update(f"{_located(f, dest)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return {
            "path": _located(source.path, dest),
            "files": len(source.files),
            "stat": h.hexdigest(),
        }
    return {"path": source.path, "shape": list(source.shape), "dtype": source.dtype}


def conversion_plan(
    source: TiffSource | ArraySource | StoredArraySource,
    layout: StoreLayout,
    name: str,
    extra_plan: dict[str, Any] | None = None,
    *,
    dest: str | Path | None = None,
) -> dict[str, Any]:
    """What a store is made from: a re-run with the same plan resumes (or finds it finished).

    The source is named by its path from ``dest`` (see :func:`_located`); ``dest=None``
    gives the plan of earlier releases, which named it by its absolute path.
    """
    return {
        "layout": layout.to_dict(),
        "source": _fingerprint(source, dest),
        "name": name,
        **(extra_plan or {}),
    }


def write_multiscale(
    source: TiffSource | ArraySource | StoredArraySource,
    dest: str | Path,
    layout: StoreLayout,
    *,
    name: str,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    progress: ProgressReporter | None,
    extra_plan: dict[str, Any] | None = None,
    keep_journal: bool = False,
    mark_plan: bool = False,
) -> dict[str, Any]:
    """Write every level of ``layout`` from ``source`` into ``dest`` (resuming if interrupted); return figures.

    ``keep_journal``: the caller drops the progress journal once the step is logged.
    ``mark_plan``: the finished group records the plan's digest (:data:`_store.PLAN_KEY`), so
    that the same command run again finds nothing to do; only for sources whose fingerprint
    stands for their content (files, not in-memory arrays).
    """
    plan = conversion_plan(source, layout, name, extra_plan, dest=dest)
    resumed = _store.begin(
        dest,
        layout,
        plan,
        overwrite=overwrite,
        protect=[Path(f) for f in getattr(source, "files", [])],
    )
    job = WriteJob(root=str(dest), layout=layout, source=source)
    rep = ensure_progress(progress)
    itemsize = np.dtype(layout.dtype).itemsize
    total = sum(int(np.prod(lv.shape)) for lv in layout.levels) * itemsize
    rep.start(f"converting {Path(source.path).name}", total, "bytes")
    done_before = level_stats(job)["bytes"]
    if done_before:
        rep.advance(done_before)
    t0 = time.perf_counter()
    written = run_levels(
        job,
        range(len(layout.levels)),
        workers=workers,
        scheduler=scheduler,
        progress=rep,
        total_bytes=total,
    )
    seconds = time.perf_counter() - t0
    rep.finish()
    stats = level_stats(job)
    known = written_files(job)
    check_written(job, known)
    body: dict[str, Any] = {"multiscales": [multiscales(layout, name)]}
    if layout.method == "mean" and not any(a.type == "channel" for a in layout.axes):
        body["omero"] = omero(
            layout.dtype,
            window_from_sample(collected_sample(job), layout.dtype),
            name,
            inverted=getattr(source, "inverted", False),
        )
    attrs = _store.ome_attrs(body, layout.ngff_version)
    if mark_plan:
        attrs[_store.PLAN_KEY] = _store.plan_digest(plan)
    _store.finish(
        dest,
        attrs,
        layout.zarr_format,
        keep_journal=keep_journal,
    )
    crash_point("convert-finished")
    digest, nbytes, nfiles = store_digest(dest, known)
    return {
        "store_digest": digest,
        "bytes": nbytes,
        "files": nfiles,
        "resumed": resumed,
        "shards_written": written,
        "seconds": round(seconds, 3),
        "bytes_in": stats["bytes"],
        "bytes_stored": stats["stored"],
    }


def _details(
    source: TiffSource | ArraySource | StoredArraySource,
    layout: StoreLayout,
    figures: dict[str, Any],
    voxel: tuple[float, ...],
    unit: str,
) -> dict[str, Any]:
    return {
        "shape": list(layout.levels[0].shape),
        "dtype": layout.dtype,
        "axes": "".join(a.name for a in layout.axes),
        "voxel_size": list(voxel),
        "unit": unit,
        "levels": [
            {
                "path": lv.path,
                "shape": list(lv.shape),
                "scale": list(lv.scale),
                "translation": list(lv.translation),
            }
            for lv in layout.levels
        ],
        "chunks": list(layout.chunks),
        "shard": list(layout.shard) if layout.shard else None,
        "ngff_version": layout.ngff_version,
        "codec": layout.codec,
        "pyramid_codec": layout.level_codec(1) if len(layout.levels) > 1 else None,
        **figures,
    }


def _source_artifacts(
    source: TiffSource | StoredArraySource, workspace: Workspace | None
) -> list[Artifact]:
    """Input digests: a file's sha256, or for a folder of slices (or a Zarr/N5 array) a tree digest."""
    if workspace is None:
        return []
    if isinstance(source, StoredArraySource):
        if Path(source.file).is_file():
            return [workspace.log.artifact(source.file, role="source")]
        folder = Path(source.file)
        if source.kind != "ome-zarr":
            folder = folder / source.key.strip("/")
        # the tree digest of the log (curated.walk: links and special files are not part of it)
        td = digest_tree(folder)
    elif source.kind not in ("slices", "png-slices"):
        return [workspace.log.artifact(source.path, role="source")]
    else:
        folder, files = Path(source.path), source.files
        hasher = TreeHasher()
        for f in sorted(
            files, key=lambda p: tuple(Path(p).relative_to(folder).as_posix().split("/"))
        ):
            p = Path(f)
            hasher.add(p.relative_to(folder).as_posix(), p.stat().st_size, sha256_file(p))
        td = hasher.result()
    return [
        Artifact(path=workspace.relative(folder), bytes=td.bytes, digest=td.digest, role="source")
    ]


def _refuse_dest_inside_source(src: TiffSource | StoredArraySource, dest: str | Path) -> None:
    """Sources are never modified: a destination inside a source store is refused."""
    if is_url(dest):
        return
    dest = Path(dest)
    for f in src.files:
        folder = Path(f).resolve()
        if folder.is_dir() and folder in dest.resolve().parents:
            msg = "the destination lies inside the source store; choose a DEST outside it (sources are never modified)"
            raise InputError(msg, path=dest)


def convert_to_ome_zarr(
    source: str | Path,
    dest: str | Path,
    *,
    voxel_size: tuple[float, float, float] | list[float] | float | None = None,
    unit: str = "nanometer",
    ngff_version: str = "0.5",
    chunks: int | tuple[int, ...] = 64,
    shard: int | tuple[int, ...] | None = 512,
    workers: int | None = None,
    scheduler: str | None = None,
    workspace: Workspace | str | Path | None = None,
    overwrite: bool = False,
    progress: ProgressReporter | None = None,
    same_codec: bool = False,
    axes: str | None = None,
) -> Result:
    """Convert a TIFF stack or a stored array into a multiscale OME-Zarr image, out of core and resumable.

    Parameters
    ----------
    source
        A multi-page TIFF/BigTIFF (contiguous, striped, tiled or compressed), an
        OME-TIFF, an ImageJ hyperstack, a vendor SEM TIFF (Zeiss, FEI/Thermo: data bar
        cropped), a folder of per-slice 2D TIFFs or grey PNGs (natural sort order: ``s2``
        before ``s10``), an HDF5 dataset (``FILE.h5:/path/to/dataset``), an MRC file, a Zarr
        v2/v3 or N5 array (``STORE.n5:/path`` for one inside a group), or an existing
        OME-Zarr 0.4/0.5 image (re-encoded from its level 0).
    dest
        The ``.ome.zarr`` folder to write, or an ``s3://BUCKET/PATH.ome.zarr`` URL in an
        S3-compatible object store (the ``s3`` extra; credentials and endpoint from the
        standard ``AWS_*`` variables or ``~/.aws``). Refused if it exists, unless it holds an
        unfinished conversion of the same source with the same parameters (then it is
        resumed), the finished one (then nothing is written: status ``notneeded``), or
        ``overwrite`` is true.
    voxel_size
        ``(z, y, x)`` in ``unit``; taken from the file's metadata when ``None`` (OME-XML,
        a vendor header, ImageJ, the MRC header, OME-Zarr or array attributes that state
        a unit). A spacing the file does not state is never guessed: it is asked for.
    unit
        A length unit (UDUNITS-2 name, or an alias such as ``nm``).
    ngff_version
        ``"0.5"`` (Zarr v3, sharded) or ``"0.4"`` (Zarr v2, chunks only).
    chunks, shard
        Inner chunk and shard edge in voxels (per space axis, or one number for all).
    workers
        Worker threads, i.e. cores used (default: all cores).
    scheduler
        Address of a dask.distributed scheduler to run the shard tasks on instead.
    workspace
        Record the conversion as a T entry in this workspace's curator log.
    progress
        Receives the bytes written (all levels) as they are written.
    same_codec
        Store every level with level 0's codec (blosc-zstd 3), not blosc-zstd 1 on levels 1+
        (:data:`curated.images.layout.PYRAMID_CODEC`, 4-6x faster, ~1 % more bytes).
    axes
        The source's axes where its metadata names them wrongly, e.g. ``"zyx"`` for an ImageJ
        TIFF that calls its slices channels (:func:`curated.images.sources.with_axes`).

    Returns
    -------
    Result
        ``details`` hold shape, dtype, levels, ``store_digest``, bytes, timing and the
        transformation decision.

    Examples
    --------
    >>> convert_to_ome_zarr("stack.tif", "derived/stack.ome.zarr", voxel_size=(8, 4, 4))  # doctest: +SKIP
    """
    src = open_source(source) if axes is None else with_axes(open_source(source), axes)
    dest = dest if is_url(dest) else Path(dest)
    params = _logged_params(locals())
    ws = as_workspace(workspace)
    libraries = LIBRARIES + STORED_LIBRARIES.get(src.kind, ())
    with recorder(ws, "T", "convert", params=params, libraries=libraries, hash_inputs=True) as step:
        layout, voxel, unit_name, voxel_from = _plan_conversion(
            src, dest, voxel_size, unit, chunks, shard, ngff_version, same_codec=same_codec
        )
        step.inputs.extend(_source_artifacts(src, ws))
        voxel_info = (voxel, unit_name, voxel_from)
        if (
            done := _finished_before(src, dest, layout, voxel_info, ws, step, overwrite)
        ) is not None:
            return done
        figures = write_multiscale(
            src,
            dest,
            layout,
            name=_image_name(src),
            overwrite=overwrite,
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            keep_journal=True,
            mark_plan=True,
        )
        details = _convert_details(src, layout, figures, voxel, unit_name, voxel_from)
        step.add_output(dest, digest=figures["store_digest"], size=figures["bytes"], role="image")
        step.details = {
            "decision": details["decision"],
            "shape": details["shape"],
            "dtype": layout.dtype,
            "levels": len(layout.levels),
        }
        step.message = f"{src.kind} {tuple(src.shape)} {np.dtype(layout.dtype).name} → OME-Zarr {ngff_version}, {len(layout.levels)} levels"
    # The journal goes only once the step is logged: killed before, a re-run resumes
    # (nothing left to write) and logs it; it never finds a complete, unlogged store.
    crash_point("convert-logged")
    _store.drop_journal(dest)
    return Result(
        "convert",
        "ok",
        str(dest),
        step.message + (" (resumed)" if figures["resumed"] else ""),
        details,
    )


def _logged_params(args: dict[str, Any]) -> dict[str, Any]:
    """The parameters of :func:`convert_to_ome_zarr` its log entry records (JSON-ready)."""
    voxel_size, chunks, shard = args["voxel_size"], args["chunks"], args["shard"]
    return {
        **({"axes": args["axes"]} if args["axes"] is not None else {}),
        "voxel_size": list(voxel_size) if isinstance(voxel_size, list | tuple) else voxel_size,
        **{k: args[k] for k in ("unit", "ngff_version")},
        "chunks": chunks if isinstance(chunks, int) else list(chunks),
        "shard": shard if isinstance(shard, int | None) else list(shard),
        **{k: args[k] for k in ("workers", "scheduler", "same_codec")},
    }


def _finished_before(
    src: TiffSource | StoredArraySource,
    dest: str | Path,
    layout: StoreLayout,
    voxel_info: tuple[tuple[float, ...], str, str],
    ws: Workspace | None,
    step: Any,
    overwrite: bool,
) -> Result | None:
    """The result when ``dest`` is the finished conversion this very command makes (and is not
    to be overwritten), else ``None``.

    Same source (files, sizes, modification times), same layout and name: nothing is
    written. In a workspace whose log lacks the store (it was converted without one), the
    store is hashed and recorded; otherwise the step is ``notneeded``.
    """
    if overwrite:
        return None
    if ws is not None and _logged_unsettled(dest, src, layout, ws):
        _store.drop_journal(dest)  # killed once logged, before its journal went: done
    made_by = _store.finished_plan(dest)  # read first: a new DEST needs no fingerprint here
    if made_by is None or made_by not in _plan_digests(src, layout, dest):
        return None
    _store.drop_leftover_journal(dest)
    recorded = ws.log.recorded_output(dest) if ws is not None else None
    figures: dict[str, Any] = {"resumed": False, "shards_written": 0}
    if ws is not None and recorded is None:
        digest, nbytes, nfiles = store_digest(dest, {})
        figures |= {"store_digest": digest, "bytes": nbytes, "files": nfiles}
        step.add_output(dest, digest=digest, size=nbytes, role="image")
        status, what = "ok", "recorded a finished conversion of the same source"
    else:
        figures |= {
            "store_digest": recorded.digest if recorded else None,
            "bytes": recorded.bytes if recorded else None,
            "files": None,
        }
        status, what = (
            "notneeded",
            "already converted from the same source with the same parameters",
        )
        step.status = "notneeded"
    step.message = f"{what}; nothing written (pass --overwrite to convert again)"
    details = _convert_details(src, layout, figures, *voxel_info)
    return Result("convert", status, str(dest), step.message, details)


def _plan_digests(
    src: TiffSource | StoredArraySource, layout: StoreLayout, dest: str | Path
) -> tuple[str, str]:
    """The digests of this conversion's plan: as this release names the source (from
    ``dest``), and as earlier releases did (by its absolute path)."""
    name = _image_name(src)
    return (
        _store.plan_digest(conversion_plan(src, layout, name, dest=dest)),
        _store.plan_digest(conversion_plan(src, layout, name)),
    )


def _logged_unsettled(
    dest: str | Path, src: TiffSource | StoredArraySource, layout: StoreLayout, ws: Workspace
) -> bool:
    """Whether ``dest`` is this conversion, finished and recorded in ``ws``'s log as it is
    now, but still holding its journal: a run killed after its log entry, before it dropped
    the journal. Resuming it would record the same conversion a second time."""
    from curated.objstore import open_sink

    try:
        got = _store.read_group_attrs(dest)
        if got is None or not open_sink(dest).exists(_store.PLAN):
            return False
    except (OSError, ValueError):
        return False
    attrs = got[0]
    if _store.INCOMPLETE_KEY in attrs or attrs.get(_store.PLAN_KEY) not in _plan_digests(
        src, layout, dest
    ):
        return False
    return ws.log.records_as_is(dest)


def _convert_details(
    src: TiffSource | StoredArraySource,
    layout: StoreLayout,
    figures: dict[str, Any],
    voxel: tuple[float, ...],
    unit_name: str,
    voxel_from: str,
) -> dict[str, Any]:
    """The result's details: the store's figures, the source and the transformation decision."""
    decision = _decision(src, voxel_from)
    note = _voxel_disagreement(voxel, unit_name, src) if voxel_from == "given" else None
    if note:
        decision["voxel_size_disagrees"] = note
    warned = getattr(src, "warnings", None)
    if warned:
        decision["source_warnings"] = list(warned)
    return _details(src, layout, figures, voxel, unit_name) | {
        "source": str(src.path),
        "source_kind": src.kind,
        "source_files": len(src.files),
        "source_key": getattr(src, "key", None),
        "decision": decision,
    }


def _plan_conversion(
    src: TiffSource | StoredArraySource,
    dest: Path,
    voxel_size: tuple[float, float, float] | list[float] | float | None,
    unit: str,
    chunks: int | tuple[int, ...],
    shard: int | tuple[int, ...] | None,
    ngff_version: str,
    *,
    same_codec: bool = False,
) -> tuple[StoreLayout, tuple[float, ...], str, str]:
    """Check the source and destination and plan the store: ``(layout, voxel, unit, voxel_from)``."""
    _store.require_3d(src.shape, src.axes, src.path)
    check_image_dtype(src.dtype, src.path)
    _refuse_dest_inside_source(src, dest)
    voxel, unit_name, voxel_from = _voxel(voxel_size, unit, src)
    layout = make_layout(
        src.shape,
        src.dtype,
        make_axes(src.axes, unit_name),
        _full_voxel(src.axes, voxel),
        chunks=chunks,
        shard=shard,
        ngff_version=ngff_version,
        same_codec=same_codec,
    )
    sparse = sparse_problem(src.shape, getattr(src, "stored", None), level_block(layout, 0))
    if sparse is not None:
        raise ConversionError(sparse, path=src.path)
    return layout, voxel, unit_name, voxel_from


def _image_name(src: TiffSource | StoredArraySource) -> str:
    """The image's name in the multiscales metadata: the source's, without TIFF suffixes."""
    if isinstance(src, StoredArraySource):
        return src.name
    name = Path(src.path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _decision(src: TiffSource | StoredArraySource, voxel_from: str) -> dict[str, Any]:
    """The transformation decision recorded in the log."""
    return {
        "lossless": True,
        "lossless_note": "level 0 holds exactly the source voxels (a vendor data bar excepted, see not_carried_over); the codec (blosc-zstd) is lossless; lower levels are derived (windowed mean)",
        "originals_retained": True,
        "originals_note": "the source files were only read, never modified; keep them as the original record",
        "voxel_size_from": voxel_from,
        "not_carried_over": list(src.not_carried),
        "store_digest_method": (
            "each shard/chunk hashed by the task that wrote it, metadata hashed at the end; "
            "combined exactly as curated.provenance.digest.digest_tree"
        ),
    }


def write_ome_zarr(
    array_like: Any,
    dest: str | Path,
    *,
    voxel_size: tuple[float, ...] | list[float] | float,
    unit: str = "nanometer",
    name: str | None = None,
    ngff_version: str = "0.5",
    chunks: int | tuple[int, ...] = 64,
    shard: int | tuple[int, ...] | None = 512,
    overwrite: bool = False,
    progress: ProgressReporter | None = None,
    workspace: Workspace | str | Path | None = None,
    axes: str | None = None,
    workers: int | None = None,
    same_codec: bool = False,
) -> Result:
    """Write an in-memory, dask or zarr array as a multiscale OME-Zarr image.

    ``array_like`` is zyx by default (``axes`` may name e.g. ``"czyx"``); level 0
    equals it exactly. Same layout, pyramid, codecs (``same_codec`` as there) and metadata
    as :func:`convert_to_ome_zarr`.
    """
    dest = Path(dest)
    if not hasattr(array_like, "shape") or not hasattr(array_like, "dtype"):
        array_like = np.asarray(array_like)
    ax = (axes or "zyx"[-len(array_like.shape) :] if len(array_like.shape) <= 3 else axes) or ""
    if len(ax) != len(array_like.shape):
        msg = f"array has {len(array_like.shape)} dimensions; name them with axes= (e.g. 'czyx')"
        raise InputError(msg, field="axes")
    src = ArraySource(array_like, axes=ax)
    with recorder(
        workspace,
        "T",
        "write-image",
        params={
            "shape": list(src.shape),
            "dtype": np.dtype(src.dtype).name,
            "ngff_version": ngff_version,
        },
        libraries=LIBRARIES,
    ) as step:
        _store.require_3d(src.shape, ax, str(dest))
        voxel, unit_name, _ = _voxel(voxel_size, unit, src)
        dt = np.dtype(src.dtype).newbyteorder("=")
        layout = make_layout(
            src.shape,
            dt,
            make_axes(ax, unit_name),
            _full_voxel(ax, voxel),
            chunks=chunks,
            shard=shard,
            ngff_version=ngff_version,
            same_codec=same_codec,
        )
        figures = write_multiscale(
            src,
            dest,
            layout,
            name=name or dest.name.split(".")[0],
            overwrite=overwrite,
            workers=workers,
            scheduler=None,
            progress=progress,
        )
        details = _details(src, layout, figures, voxel, unit_name)
        if workspace is not None:
            step.add_output(
                dest, digest=figures["store_digest"], size=figures["bytes"], role="image"
            )
        step.message = (
            f"array {tuple(src.shape)} → OME-Zarr {ngff_version}, {len(layout.levels)} levels"
        )
    return Result("write-image", "ok", str(dest), step.message, details)
