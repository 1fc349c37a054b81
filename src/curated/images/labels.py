"""OME-Zarr label images: whole arrays (:func:`add_labels`) or written block by block
(:func:`create_label_image` then :func:`finalize_label_image`)."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import InputError
from curated.images import store as _store
from curated.images.layout import (
    LABEL_CODEC,
    Axis,
    Level,
    StoreLayout,
    block_grid,
    label_colors,
    level_block,
    multiscales,
)
from curated.images.ngff import declares_image, ngff_block
from curated.images.reader import OmeZarrImage, open_image
from curated.images.shards import (
    LevelFiles,
    WriteJob,
    check_written,
    collected_values,
    create_level_arrays,
    level_stats,
    run_levels,
    store_digest,
    written_files,
)
from curated.images.sources import ArraySource, TiffSource, open_source
from curated.images.stored import is_stored
from curated.objstore import as_path, is_url
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result
from curated.workspace import Workspace, portable_path, recorder

KINDS = ("truth", "annotation", "prediction")
ORIGINS = ("human", "derived-from-truth", "simulated", "model-prediction")
"""Where a label image's values came from (``curated.origin``):

- ``human``: drawn or corrected by people;
- ``derived-from-truth``: copied from another label image (e.g. crops taken from a
  dense truth to emulate a curator), so no independent human judgement;
- ``simulated``: made by a simulator together with the image (exact by construction);
- ``model-prediction``: predicted by a model (``ai_generated`` is then true).
"""
MIXED_ORIGIN = "mixed"
"""Label-level ``origin`` of a sparse annotation whose crops have different origins."""
MAX_COLORS = 1024
"""Beyond this many label values, ``colors`` is left out (viewers pick their own)."""
UNANNOTATED_VALUE = 255
"""Label value of voxels that carry no annotation in a sparse annotation
(``curated.segment.annotate.UNANNOTATED``): ``annotate`` and ``segment train`` skip them."""


def _as_image(image: OmeZarrImage | str | Path) -> OmeZarrImage:
    return image if isinstance(image, OmeZarrImage) else open_image(image)


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in ("labels",):
        msg = f"label name {name!r} must be a plain folder name (letters, digits, - _ .)"
        raise InputError(msg, field="name")


def _model_block(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    if isinstance(model, str):
        return {"id": model, "sha256": None, "card": None}
    if isinstance(model, dict) and "id" in model:
        return {"id": model["id"], "sha256": model.get("sha256"), "card": model.get("card")}
    msg = "model must be an id string or a dict with 'id' (and 'sha256', 'card')"
    raise InputError(msg, field="model")


def check_origin(origin: str, *, allow_mixed: bool = False) -> str:
    """``origin`` if it is one of :data:`ORIGINS` (or ``mixed`` when allowed), else a clear error."""
    allowed = (*ORIGINS, MIXED_ORIGIN) if allow_mixed else ORIGINS
    if origin not in allowed:
        msg = f"origin must be one of {', '.join(allowed)}, not {origin!r}"
        raise InputError(msg, field="origin")
    return origin


def parse_class_names(items: list[str]) -> list[dict[str, Any]]:
    """``["1=mitochondrion", "2=nucleus"]`` as ``image-label`` properties (a clear error otherwise)."""
    props: dict[int, str] = {}
    for item in items:
        value, sep, name = str(item).partition("=")
        try:
            v = int(value.strip())
        except ValueError:
            v = -1
        if not sep or v < 0 or not name.strip():
            msg = f"a class name is given as VALUE=NAME with a label value ≥ 0, e.g. 1=mitochondrion; got {item!r}"
            raise InputError(msg, field="class_name")
        props[v] = name.strip()
    return [{"label-value": v, "name": n} for v, n in sorted(props.items())]


NONZERO = "nonzero"
"""Key of a value map that stands for every non-zero value not mapped on its own."""

ValueMap = dict[int | str, int]
"""``{old: new}`` label values, ``old`` an integer or :data:`NONZERO`."""


def parse_value_map(items: list[str]) -> ValueMap:
    """``["255=1"]`` as ``{255: 1}``: label values rewritten while a label volume is stored.

    A binary mask saved as 0/255 (ImageJ, most EM challenge data) needs ``255=1``: 255 is
    what ``curated annotate`` and ``curated segment train`` read as "not annotated". An
    instance segmentation (one value per object, often beyond 255) becomes one class with
    ``nonzero=1``: every non-zero value not mapped on its own. Stored label values are ≥ 0,
    so an "ignore" label of -1 (a machine-learning habit) is mapped, e.g. ``-1=255``.
    """
    out: ValueMap = {}
    for item in items:
        old, sep, new = str(item).partition("=")
        a: int | str
        try:
            a = NONZERO if old.strip() == NONZERO else int(old.strip())
            b = int(new.strip())
        except ValueError:
            a = b = -1
        if not sep or b < 0:
            msg = (
                "a value map is given as OLD=NEW with a NEW label value ≥ 0 (or nonzero=NEW "
                f"for every other non-zero value), e.g. 255=1 or -1=255; got {item!r}"
            )
            raise InputError(msg, field="map")
        if out.get(a, b) != b:
            msg = f"label value {a} is mapped twice ({a}={out[a]} and {a}={b})"
            raise InputError(msg, field="map")
        out[a] = b
    return out


def value_map_record(value_map: ValueMap) -> dict[str, int]:
    """A value map as the ``curated`` block and the log record it (string keys, sorted)."""
    return {str(k): int(v) for k, v in sorted(value_map.items(), key=lambda kv: str(kv[0]))}


def describe_value_map(value_map: ValueMap) -> str:
    """A value map as results show it: ``255→1, nonzero→1``."""
    return ", ".join(f"{k}→{v}" for k, v in value_map_record(value_map).items())


def default_origin(kind: str, ai_generated: bool) -> str:
    """The origin assumed when none is given: a model's output if AI-generated, else people's."""
    del kind  # a "prediction" not marked AI-generated (e.g. a classical filter) was run by people
    return "model-prediction" if ai_generated else "human"


def recorded_origin(source: Any) -> dict[str, Any] | None:
    """What a label source says about who made it: the ``curated`` block (``kind``,
    ``origin``, ``ai_generated``, ``model``) of an OME-Zarr label image written by
    curated, or of the label image holding a level array given as the source.

    ``None`` for anything else (an array, a TIFF, a folder without such a block): then
    nothing is known and the caller's defaults apply. A copy of a model's prediction must
    not become ``human`` because nobody repeated ``--ai-generated``.
    """
    if not isinstance(source, str | Path) or is_url(str(source)):
        return None
    p = Path(source)
    for candidate in (p, p.parent):
        try:
            got = _store.read_group_attrs(candidate) if candidate.is_dir() else None
        except (ValueError, OSError):
            got = None
        if got is None:
            continue
        block = got[0].get("curated")
        if isinstance(block, dict) and (block.get("origin") or block.get("ai_generated")):
            origin = block.get("origin")
            if not isinstance(origin, str) or not origin:
                origin = "model-prediction" if block.get("ai_generated") else None
            where = candidate.resolve()
            return {
                "kind": block.get("kind") if block.get("kind") in KINDS else None,
                "origin": origin,
                "ai_generated": bool(block.get("ai_generated")) or origin == "model-prediction",
                "model": block.get("model") if isinstance(block.get("model"), dict) else None,
                "label_image": str(where),
                "image": str(where.parent.parent) if where.parent.name == "labels" else None,
            }
    return None


def curated_block(
    kind: str, ai_generated: bool, model: Any, origin: str | None = None
) -> dict[str, Any]:
    """The label group's ``curated`` attributes: kind, origin, AI marking and model.

    ``ai_generated`` is kept for readers that predate ``origin``; the two must agree
    (a model's output is ``model-prediction``, nothing else is AI-generated).
    """
    if kind not in KINDS:
        msg = f"kind must be one of {', '.join(KINDS)}, not {kind!r}"
        raise InputError(msg, field="kind")
    origin = (
        check_origin(origin, allow_mixed=True) if origin else default_origin(kind, ai_generated)
    )
    if (origin == "model-prediction" and not ai_generated) or (
        ai_generated and origin not in ("model-prediction", MIXED_ORIGIN)
    ):
        msg = (
            f"origin {origin!r} contradicts ai_generated={bool(ai_generated)}: only a "
            "model-prediction is AI-generated"
        )
        raise InputError(msg, field="origin")
    return {
        "kind": kind,
        "origin": origin,
        "ai_generated": bool(ai_generated),
        "model": _model_block(model),
    }


def label_layout(image: OmeZarrImage, dtype: np.dtype | str) -> StoreLayout:
    """The image's own levels, chunks and shards, for an integer label array."""
    dt = np.dtype(dtype)
    if dt.kind not in "ui":
        msg = f"labels must have an integer type, not {dt.name}; round or cast them first"
        raise InputError(msg, field="labels")
    axes = tuple(
        Axis(a.name, a.type or ("space" if a.name in "zyx" else "channel"), a.unit)
        for a in image.metadata.axes
    )
    scale0 = image.scale[0]
    levels = tuple(
        Level(
            path=p,
            shape=tuple(int(n) for n in arr.shape),
            factors=tuple(round(s / s0) for s, s0 in zip(sc, scale0, strict=True)),
            scale=tuple(sc),
            translation=tuple(tr),
        )
        for p, arr, sc, tr in zip(
            image.level_paths, image.levels, image.scale, image.translation, strict=True
        )
    )
    lv0 = image.levels[0]
    chunks = tuple(int(c) for c in lv0.chunks)
    shards = getattr(lv0, "shards", None)
    if image.zarr_format == 3 and shards is not None:
        shard: tuple[int, ...] | None = tuple(int(s) for s in shards)
        block = shard
    else:
        shard = None
        block = tuple(
            min(c * 8, -(-n // c) * c) if a.type == "space" else c
            for c, n, a in zip(chunks, lv0.shape, axes, strict=True)
        )
    return StoreLayout(
        axes=axes,
        dtype=dt.name,
        levels=levels,
        chunks=chunks,
        shard=shard,
        block=block,
        ngff_version="0.5" if image.zarr_format == 3 else "0.4",
        codec=dict(LABEL_CODEC),
        method="mode",
    )


def _labels_source(labels: Any) -> ArraySource | TiffSource:
    if isinstance(labels, str | Path):
        p = Path(labels)
        if not p.exists() and not is_stored(labels):  # FILE.h5:/dataset does not exist as a path
            msg = "does not exist; give a label array file (.npy, .tif, .h5, .mrc), a Zarr/N5 array or an OME-Zarr image"
            raise InputError(msg, path=p)
        if p.suffix == ".npy":
            return ArraySource(np.load(p, mmap_mode="r"), axes="zyx", path=str(p), files=[str(p)])
        got = _store.read_group_attrs(p) if p.is_dir() else None
        if got is not None and declares_image(got[0]):
            img = open_image(p)
            return ArraySource(img.levels[0], axes="".join(img.axes), path=str(p))
        return open_source(p)
    if not hasattr(labels, "shape"):
        labels = np.asarray(labels)
    return ArraySource(
        labels,
        axes="zyx"[-len(labels.shape) :]
        if len(labels.shape) <= 3
        else "tczyx"[-len(labels.shape) :],
    )


def not_whole(block: np.ndarray) -> np.ndarray:
    """True where a floating-point label value is NaN, infinite or a fraction (no label)."""
    return ~np.isfinite(block) | (block != np.round(block))


_SCAN_BYTES = 64 << 20
"""Bytes of a label source read at a time when its values are checked before storing."""


def _source_values(src: ArraySource | TiffSource) -> dict[str, Any]:
    """What a signed or floating-point label source holds, read in regions of ≤ 64 MiB.

    ``max``: the largest finite value; ``bad``: voxels that are not finite or not whole
    numbers, with ``example`` (value, position) of the first; ``negative``: voxel counts
    of up to 20 negative values.
    """
    shape = tuple(int(n) for n in src.shape)
    step = list(shape)  # a region of at most _SCAN_BYTES: halve its longest axis until it fits
    while int(np.prod(step, dtype=np.int64)) * np.dtype(src.dtype).itemsize > _SCAN_BYTES:
        k = int(np.argmax(step))
        step[k] = -(-step[k] // 2)
    top, bad, example = None, 0, None
    negative: dict[int, int] = {}
    for idx in np.ndindex(*[-(-n // s) for n, s in zip(shape, step, strict=True)]):
        start = [i * s for i, s in zip(idx, step, strict=True)]
        region = tuple(slice(a, min(a + s, n)) for a, s, n in zip(start, step, shape, strict=True))
        b = np.asarray(src.read(region))
        if b.dtype.kind == "f":
            off = not_whole(b)
            n = int(np.count_nonzero(off))
            if n:
                if example is None:
                    at = np.unravel_index(int(np.argmax(off)), b.shape)
                    example = (
                        float(b[at]),
                        tuple(int(i) + a for i, a in zip(at, start, strict=True)),
                    )
                bad += n
                b = b[~off]
        if b.size:
            top = max(top, float(b.max())) if top is not None else float(b.max())
            if b.min() < 0:
                vals, counts = np.unique(b[b < 0], return_counts=True)
                for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                    if int(v) in negative or len(negative) < 20:
                        negative[int(v)] = negative.get(int(v), 0) + int(c)
    return {"max": top, "bad": bad, "example": example, "negative": negative}


def _checked_label_dtype(
    src: ArraySource | TiffSource, value_map: ValueMap | None
) -> tuple[np.dtype, dict[str, Any]]:
    """The stored type of a label source, checking signed and floating-point sources first.

    Unsigned and boolean sources are stored as they are (widened where a value map needs
    it). Signed and floating-point ones are read once before anything is written: every
    value must be a whole number (a float32 0.0/1.0 mask is fine, a probability map is
    not) and every negative value must be mapped (an "ignore" label of -1: ``-1=255``);
    they are then stored as the smallest unsigned type that holds them, recorded as
    ``cast_from`` in the ``curated`` block.
    """
    sdt = np.dtype(src.dtype)
    if sdt.kind not in "if":
        return _label_dtype(sdt, value_map), {}
    scan = _source_values(src)
    if scan["bad"]:
        value, at = scan["example"]
        msg = (
            f"{scan['bad']:,} voxel{'s' if scan['bad'] != 1 else ''} of these {sdt.name} labels "
            f"{'are' if scan['bad'] != 1 else 'is'} not a whole number (e.g. "
            f"{value:g} at z,y,x {', '.join(map(str, at[-3:]))}): labels are whole numbers ≥ 0. "
            "A probability map must be thresholded first (curated does not guess a threshold); "
            "a mask that was resampled must be resampled again with nearest-neighbour"
        )
        raise InputError(msg, field="labels")
    vmap = value_map or {}
    unmapped = {v: n for v, n in scan["negative"].items() if v not in vmap}
    if unmapped and NONZERO not in vmap:
        shown = ", ".join(f"{v} in {n:,} voxels" for v, n in sorted(unmapped.items())[:5])
        msg = (
            f"the labels hold negative values ({shown}); label images hold values ≥ 0: map "
            f"them, e.g. --map={min(unmapped)}=255 (an 'ignore' label: not annotated) or "
            f"--map={min(unmapped)}=0 (background)"
        )
        raise InputError(msg, field="labels")
    top = max([int(scan["max"] or 0), *vmap.values()])
    return np.promote_types(np.uint8, np.min_scalar_type(top)), {"cast_from": sdt.name}


def _label_dtype(dtype: np.dtype, value_map: ValueMap | None = None) -> np.dtype:
    dt = np.dtype(dtype).newbyteorder("=")
    if dt.kind == "b":
        dt = np.dtype("uint8")
    if dt.kind not in "ui":
        msg = f"labels must have an integer type (uint8, uint16, uint32...), not {dt.name}; round or cast them first"
        raise InputError(msg, field="labels")
    if value_map:
        # the stored type must also hold the new values (255=1000 on uint8 labels: uint16)
        dt = np.promote_types(dt, np.min_scalar_type(max(value_map.values())))
    return dt


def _register_label(image: OmeZarrImage, name: str) -> None:
    """Add ``name`` to ``labels/``'s list (under a lock: two label writers may finish at once)."""
    labels_dir = image.path / "labels"
    if is_url(labels_dir):
        # an object store has no locks: its label images are finished one at a time
        _add_label_name(labels_dir, name, image.zarr_format)
        return
    labels_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(
        labels_dir, os.O_RDONLY
    )  # lock the folder itself: no lock file left in the store
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _add_label_name(labels_dir, name, image.zarr_format)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


def _add_label_name(labels_dir: str | Path, name: str, zarr_format: int) -> None:
    got = _store.read_group_attrs(labels_dir)
    attrs = got[0] if got else {}
    block = ngff_block(attrs)
    names = [n for n in block.get("labels", []) if n != name] + [name]
    names.sort()
    new = {"ome": {"version": "0.5", "labels": names}} if zarr_format == 3 else {"labels": names}
    _store.write_group_attrs(labels_dir, new, zarr_format)


def _unregister_label(image: OmeZarrImage, name: str) -> None:
    labels_dir = image.path / "labels"
    got = _store.read_group_attrs(labels_dir)
    if got is None:
        return
    attrs = got[0]
    block = ngff_block(attrs)
    if name in block.get("labels", []):
        names = [n for n in block["labels"] if n != name]
        new = (
            {"ome": {"version": "0.5", "labels": names}}
            if image.zarr_format == 3
            else {"labels": names}
        )
        _store.write_group_attrs(labels_dir, new, image.zarr_format)


def _unannotated_clear(
    colors: list[dict[str, Any]], properties: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The "not drawn" value of a sparse annotation made transparent: a viewer that paints
    label images by their ``colors`` (napari, vizarr) would otherwise cover the whole
    unannotated volume opaquely, in a hue next to class 1's (255 and 1 land close on the
    colour walk)."""
    clear = {int(p["label-value"]) for p in properties if p.get("curated:unannotated")}
    return [{**c, "rgba": [*c["rgba"][:3], 0]} if c["label-value"] in clear else c for c in colors]


def _final_attrs(
    layout: StoreLayout,
    name: str,
    values: list[int],
    curated: dict[str, Any],
    properties: list[dict[str, Any]] | None,
    colors: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    il: dict[str, Any] = {"source": {"image": "../../"}}
    if colors is None and properties:
        # validators want colours and properties to name the same label values
        colors = _unannotated_clear(
            label_colors(sorted({int(p["label-value"]) for p in properties})), properties
        )
    elif colors is None and len(values) <= MAX_COLORS:
        colors = label_colors(values)
    if colors:
        il["colors"] = colors
    if properties:
        il["properties"] = properties
    if layout.ngff_version == "0.4":
        il["version"] = "0.4"
    body = {"multiscales": [multiscales(layout, name, label=True)], "image-label": il}
    attrs = _store.ome_attrs(body, layout.ngff_version)
    attrs["curated"] = curated
    return attrs


def _scan_values(root: Path, layout: StoreLayout) -> list[int]:
    """Label values present in level 0 (read shard by shard, bounded memory)."""
    lf = LevelFiles(root / layout.levels[0].path)
    vals: set[int] = set()
    shape = layout.levels[0].shape
    for idx in block_grid(shape, level_block(layout, 0)):
        region = tuple(
            slice(i * b, min((i + 1) * b, n))
            for i, b, n in zip(idx, level_block(layout, 0), shape, strict=True)
        )
        vals.update(int(v) for v in np.unique(lf.read(region)))
    return sorted(vals)


def _finish_label(
    image: OmeZarrImage,
    name: str,
    layout: StoreLayout,
    job: WriteJob,
    curated: dict[str, Any],
    properties: list[dict[str, Any]] | None,
    colors: list[dict[str, Any]] | None,
    curated_extra: dict[str, Any] | None,
    *,
    first_level: int,
    progress: ProgressReporter | None,
    keep_journal: bool = False,
    elsewhere: dict[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """Write the remaining levels, the final metadata, then register the label image.

    The journal goes only after the label image is registered (``keep_journal``: the
    caller drops it once the step is logged): killed before, a re-run resumes the store
    (nothing left to write) instead of finding a finished, unregistered one it refuses.
    """
    dest = as_path(job.root)
    curated = {**curated, **(curated_extra or {})}
    rep = ensure_progress(progress)
    itemsize = np.dtype(layout.dtype).itemsize
    total = sum(int(np.prod(lv.shape)) for lv in layout.levels[first_level:]) * itemsize
    rep.start(f"labels {name}", total, "bytes")
    done_before = level_stats(job)["bytes"]
    if done_before:
        rep.advance(done_before)
    written = run_levels(job, range(first_level, len(layout.levels)), progress=rep)
    rep.finish()
    values = collected_values(job) if len(layout.levels) > 1 else _scan_values(dest, layout)
    # read before finish() drops the journal; ``elsewhere``: what the caller wrote itself
    known = {**(elsewhere or {}), **written_files(job)}
    check_written(job, known)
    _store.finish(
        dest,
        _final_attrs(layout, name, values, curated, properties, colors),
        layout.zarr_format,
        keep_journal=True,
    )
    _register_label(image, name)
    if not keep_journal:
        _store.drop_journal(dest)
    # the shard tasks (and a blockwise prediction's units) hashed what they wrote: only
    # metadata and files written otherwise are read again for the store digest
    digest, nbytes, _files = store_digest(dest, known)
    return {
        "shards_written": written,
        "values": values,
        "label_values": len(values),
        "store_digest": digest,
        "bytes": nbytes,
    }


def add_labels(
    image: OmeZarrImage | str | Path,
    name: str,
    labels: Any,
    *,
    kind: str | None = None,
    ai_generated: bool | None = None,
    model: Any = None,
    origin: str | None = None,
    properties: list[dict[str, Any]] | None = None,
    colors: list[dict[str, Any]] | None = None,
    overwrite: bool = False,
    curated_extra: dict[str, Any] | None = None,
    value_map: ValueMap | None = None,
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
    keep_journal: bool = False,
) -> Result:
    """Store a label volume as ``labels/<name>`` of an OME-Zarr image.

    Parameters
    ----------
    image
        The OME-Zarr image (path or :class:`OmeZarrImage`).
    name
        Folder name of the label image under ``labels/``.
    labels
        numpy, dask or zarr array, or a path (``.npy``, TIFF, OME-Zarr) with the
        image's level-0 shape and an integer (or bool) type.
    kind, ai_generated, model
        The ``curated`` block: ``truth``/``annotation``/``prediction`` (default
        ``annotation``); whether a model made them (default: when ``origin`` is
        ``model-prediction``); the model (id string or ``{"id", "sha256", "card"}``).
    origin
        Where the values came from, one of :data:`ORIGINS` (default
        ``model-prediction`` for AI-generated labels, else ``human``). Say
        ``simulated`` for a simulator's truth and ``derived-from-truth`` for
        labels copied from another label image: documents show it. Given neither this
        nor ``ai_generated``, a label image curated wrote as ``labels`` gives its own
        (:func:`recorded_origin`): a copied prediction stays a model's prediction.
    properties, colors
        ``image-label`` ``properties`` and ``colors`` (colours are generated when ``None``).
    curated_extra
        More keys for the ``curated`` block (an annotation's crops), so the digest is final.
    value_map
        Label values rewritten on the way in, ``{old: new}`` (e.g. ``{255: 1}`` for a
        0/255 mask, ``{"nonzero": 1}`` for an instance segmentation; see
        :func:`parse_value_map`); recorded in the ``curated`` block and the log. The
        source is only read.
    keep_journal
        Leave the progress journal for the caller to drop once its own step is logged
        (``curated.images.store.drop_journal``): killed before, it still reads unfinished.

    Returns
    -------
    Result
        ``details``: levels, dtype, label value count, store digest of the label group.
    """
    img = _as_image(image)
    _check_name(name)
    block = _added_block(labels, kind, ai_generated, model, origin, img.path / "labels" / name)
    if value_map:
        block["value_map"] = value_map_record(value_map)
    src = _labels_source(labels)
    params = {
        "name": name,
        "kind": block["kind"],
        "origin": block["origin"],
        "ai_generated": block["ai_generated"],
        "model": block["model"],
        "value_map": block.get("value_map"),
        **({"source_key": src.key} if getattr(src, "key", None) else {}),
    }
    # an HDF5 dataset's container file is what is hashed (FILE.h5:/key is no file)
    inputs = [getattr(src, "file", None) or src.path] if isinstance(labels, str | Path) else []
    with recorder(
        workspace,
        "T",
        "labels-add",
        inputs=inputs,
        params=params,
        libraries=("zarr", "numcodecs", "dask"),
    ) as step:
        if tuple(src.shape) != tuple(img.shape):
            msg = f"labels have shape {tuple(src.shape)} but the image has {tuple(img.shape)}; they must match voxel for voxel"
            raise InputError(
                msg, path=src.path if isinstance(labels, str | Path) else None, field="labels"
            )
        dt, cast = _checked_label_dtype(src, value_map)
        block.update(cast)
        if done := _added_before(img, name, src, dt, block, step, overwrite, keep_journal):
            return done
        layout, dest, job = _begin_added(img, name, src, dt, block, value_map, overwrite)
        figures = _finish_label(
            img,
            name,
            layout,
            job,
            block,
            properties,
            colors,
            curated_extra,
            first_level=0,
            progress=progress,
            keep_journal=True,
        )
        step.add_output(dest, digest=figures["store_digest"], size=figures["bytes"], role="labels")
        sparse = bool((curated_extra or {}).get("annotation"))  # written by curated annotate
        values = figures.pop("values")
        step.message = _added_message(
            name, block, len(layout.levels), value_map, values, sparse
        ) + _unnamed_note(values, properties)
    if not keep_journal:
        _store.drop_journal(dest)  # once logged (as convert): killed before, a re-run resumes
    shape = list(layout.levels[0].shape)
    details = {"levels": len(layout.levels), "dtype": dt.name, "shape": shape, **figures}
    return Result("labels-add", "ok", str(dest), step.message, {**details, "curated": block})


def _added_block(
    labels: Any,
    kind: str | None,
    ai_generated: bool | None,
    model: Any,
    origin: str | None,
    dest: Path,
) -> dict[str, Any]:
    """The ``curated`` block of an added label image (``dest``). With neither ``origin`` nor
    ``ai_generated`` given, a source that records them (:func:`recorded_origin`) gives its
    kind, origin and model; otherwise the defaults of :func:`add_labels` apply. Where a copy
    came from is named from ``dest`` when both lie in one workspace
    (:func:`curated.workspace.portable_path`): an absolute path breaks once it is moved."""
    rec = recorded_origin(labels) if origin is None and ai_generated is None else None
    if rec is not None and rec["origin"] is not None:
        kind = kind or rec["kind"]
        ai_generated = bool(rec["ai_generated"])
        model = model if model is not None else rec["model"]
        origin = str(rec["origin"])
    kind = kind or "annotation"
    if ai_generated is None:
        ai_generated = origin == "model-prediction" or (origin is None and kind == "prediction")
    block = curated_block(kind, ai_generated, model, origin)
    if rec is not None and rec["origin"] is not None:
        # where the copy came from: a prediction of another image's voxels scores nothing here
        block["copied_from"] = {
            k: None if rec[k] is None else portable_path(rec[k], dest)
            for k in ("label_image", "image")
        }
    return block


def _added_plan(
    img: OmeZarrImage, src: ArraySource | TiffSource, dt: np.dtype, block: dict[str, Any]
) -> tuple[StoreLayout, dict[str, Any]]:
    """The layout and the plan of an added label volume (the plan's digest names the run)."""
    layout = label_layout(img, dt)
    plan = {
        "layout": layout.to_dict(),
        "labels": {"path": src.path, "shape": list(src.shape), "dtype": np.dtype(src.dtype).str},
        "curated": block,
    }
    return layout, plan


def _logged_unsettled(
    img: OmeZarrImage,
    name: str,
    src: ArraySource | TiffSource,
    dt: np.dtype,
    block: dict[str, Any],
    step: Any,
) -> bool:
    """Whether this very ``labels add`` finished and was logged, and was killed before its
    journal went: the plan there is this run's, the store is finished, and the curator log
    records it as it is now. Its re-run resuming it would record it a second time."""
    import json

    dest = img.path / "labels" / name
    plan_file = dest / _store.PLAN
    if step.log is None or not plan_file.is_file():
        return False
    got = _store.read_group_attrs(dest)
    if got is None or not got[0] or _store.INCOMPLETE_KEY in got[0]:
        return False
    try:
        digest = json.loads(plan_file.read_text(encoding="utf-8")).get("digest")
    except (OSError, ValueError, AttributeError):
        return False
    if digest != _store.plan_digest(_added_plan(img, src, dt, block)[1]):
        return False
    return bool(step.log.records_as_is(dest))


def _added_before(
    img: OmeZarrImage,
    name: str,
    src: ArraySource | TiffSource,
    dt: np.dtype,
    block: dict[str, Any],
    step: Any,
    overwrite: bool,
    keep_journal: bool,
) -> Result | None:
    """``notneeded`` when this ``labels add`` was killed once logged, before its journal
    went (:func:`_logged_unsettled`), else ``None``; ``overwrite`` always writes again, and a
    caller that keeps the journal (annotate) settles it itself."""
    if overwrite or keep_journal or not _logged_unsettled(img, name, src, dt, block, step):
        return None
    _store.drop_journal(img.path / "labels" / name)
    step.status = "notneeded"
    step.message = (
        f"labels {name!r} are already added (on record; the run that added them was "
        "interrupted before it tidied up)"
    )
    dest = img.path / "labels" / name
    return Result("labels-add", "notneeded", str(dest), step.message, {"name": name})


def _begin_added(
    img: OmeZarrImage,
    name: str,
    src: ArraySource | TiffSource,
    dt: np.dtype,
    block: dict[str, Any],
    value_map: ValueMap | None,
    overwrite: bool,
) -> tuple[StoreLayout, Path, WriteJob]:
    """Start (or resume) writing an added label volume: its layout, folder and write job."""
    layout, plan = _added_plan(img, src, dt, block)
    dest = img.path / "labels" / name
    if overwrite and dest.exists():
        _unregister_label(img, name)
    _store.begin(
        dest,
        layout,
        plan,
        overwrite=overwrite,
        group_attrs={"curated": block},
        job="label image (labels add)",
    )
    job = WriteJob(
        root=str(dest),
        layout=layout,
        source=_CastSource(src, dt, value_map),
        collect_values=True,
    )
    return layout, dest, job


def _unnamed_note(values: list[int], properties: list[dict[str, Any]] | None) -> str:
    """When classes were named, the values found that got no name (stray values of
    anti-aliased label slices, a class forgotten): a curator should see them now."""
    if not properties:
        return ""
    named = {int(p["label-value"]) for p in properties if "label-value" in p}
    unnamed = sorted(set(values) - named - {0, UNANNOTATED_VALUE})
    if not unnamed:
        return ""
    shown = ", ".join(map(str, unnamed[:10])) + (
        f" and {len(unnamed) - 10} more" if len(unnamed) > 10 else ""
    )
    return f"; values without a class name: {shown}"


def _added_message(
    name: str,
    block: dict[str, Any],
    levels: int,
    value_map: ValueMap | None,
    values: list[int],
    sparse: bool,
) -> str:
    """``labels add``'s one-line result, with the value map and a hint for 0/255 masks."""
    ai = ", AI-generated" if block["ai_generated"] else ""
    msg = f"labels {name!r} ({block['kind']}, origin {block['origin']}{ai}) with {levels} levels"
    if value_map:
        msg += "; values " + describe_value_map(value_map)
    if block.get("cast_from"):
        msg += f"; whole-number {block['cast_from']} values stored as unsigned integers"
    meant = UNANNOTATED_VALUE in (value_map or {}).values()  # e.g. -1=255: asked for
    if block["kind"] != "prediction" and not sparse and not meant and UNANNOTATED_VALUE in values:
        msg += (
            f"; value {UNANNOTATED_VALUE} means 'not annotated' to annotate and train: if it "
            f"marks a structure (a 0/{UNANNOTATED_VALUE} mask), add the labels again with "
            f"--map {UNANNOTATED_VALUE}=1 --overwrite"
        )
    return msg


def remap_values(block: np.ndarray, value_map: ValueMap, dtype: Any) -> np.ndarray:
    """``block`` as ``dtype`` with each value ``old`` of ``value_map`` replaced by its ``new``.

    Every voxel is looked up in ``block`` as given, so ``{1: 2, 2: 1}`` swaps two values;
    ``{"nonzero": 1}`` turns every other non-zero value into 1.
    """
    block = np.asarray(block)
    ints = {int(k): v for k, v in value_map.items() if k != NONZERO}
    if block.dtype.kind in "bu" and block.dtype.itemsize <= 2:
        # a lookup table over every value the type can hold: one gather, no temporaries
        # wider than the output (a 512³ shard of uint8 labels stays 128 MiB, not 1 GiB)
        lut = np.arange(2 ** (8 * block.dtype.itemsize), dtype=np.dtype(dtype))
        if NONZERO in value_map:
            lut[1:] = value_map[NONZERO]
        for k, v in ints.items():
            if k < lut.size:
                lut[k] = v
        return lut[block.view(np.uint8) if block.dtype.kind == "b" else block]
    out = block.astype(dtype, copy=True)
    hit = np.zeros(block.shape, dtype=bool)
    for k, v in ints.items():  # one boolean mask at a time, each tested on the values as read
        m = block == k
        out[m] = v
        hit |= m
    if NONZERO in value_map:
        out[(block != 0) & ~hit] = value_map[NONZERO]
    return out


class _CastSource:
    """Reads a label source, casts it to the label dtype (bool → uint8) and applies a value map."""

    def __init__(
        self,
        src: ArraySource | TiffSource,
        dtype: np.dtype,
        value_map: ValueMap | None = None,
    ) -> None:
        self.src = src
        self.dtype = dtype.str
        self.shape = src.shape
        self.path = src.path
        self.value_map = value_map or {}

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        block = np.asarray(self.src.read(region))
        if self.value_map:
            return remap_values(block, self.value_map, self.dtype)
        return block.astype(self.dtype, copy=False)


def create_label_image(
    image: OmeZarrImage | str | Path,
    name: str,
    *,
    dtype: str | np.dtype = "uint8",
    kind: str = "prediction",
    ai_generated: bool = True,
    model: Any = None,
    origin: str | None = None,
    fill_value: int = 0,
    overwrite: bool = False,
) -> Any:
    """Create an empty label level 0 to be written block by block; returns the zarr array.

    The array has the image's level-0 chunking and sharding: write it in whole
    shards (``array.shards``; ``array.chunks`` for 0.4 stores), never two writers in
    one shard. The label group stays marked unfinished (no ``multiscales``) until
    :func:`finalize_label_image`. Calling this again on an unfinished label image
    with the same arguments returns the same array, so interrupted writers resume.
    """
    import zarr

    img = _as_image(image)
    _check_name(name)
    block = curated_block(kind, ai_generated, model, origin)
    dt = _label_dtype(np.dtype(dtype))
    layout = label_layout(img, dt)
    layout = StoreLayout(**{**layout.__dict__, "fill_value": int(fill_value)})
    dest = img.path / "labels" / name
    if overwrite and dest.exists():
        _unregister_label(img, name)
    plan = {"layout": layout.to_dict(), "streaming": True, "curated": block}
    _store.begin(
        dest,
        layout,
        plan,
        overwrite=overwrite,
        group_attrs={"curated": block},
        job="label image",
    )
    return zarr.open_array(
        str(dest / layout.levels[0].path), mode="r+", zarr_format=layout.zarr_format
    )


_ZARR_PARTIAL = re.compile(r".+\.[0-9a-f]{32}\.partial")


def _remove_partial_writes(level: Path) -> None:
    """Delete what zarr's local store left of writes killed before their rename.

    zarr writes each chunk or shard to ``KEY.<uuid hex>.partial`` and renames it; a writer
    killed in between (a blockwise prediction) leaves that file in the array's folder. It is
    never part of the array, and a finished store must not carry it into digests and bags.
    """
    from curated.walk import Files, walk

    if not level.is_dir():
        return
    for ev in walk(level, order="files-first"):
        if type(ev) is Files:
            for f in ev.names:
                if f.endswith(".partial") and _ZARR_PARTIAL.fullmatch(f):
                    Path(ev.folder, f).unlink(missing_ok=True)


def finalize_label_image(
    image: OmeZarrImage | str | Path,
    name: str,
    *,
    properties: list[dict[str, Any]] | None = None,
    colors: list[dict[str, Any]] | None = None,
    curated_extra: dict[str, Any] | None = None,
    progress: ProgressReporter | None = None,
    workspace: Workspace | str | Path | None = None,
    written: dict[str, tuple[int, str]] | None = None,
) -> Result:
    """Build the pyramid (mode) of a label image made with :func:`create_label_image` and mark it finished.

    ``curated_extra`` adds keys to the label group's ``curated`` block (as in
    :func:`add_labels`); ``details["store_digest"]`` is the finished store's digest.
    ``written``: the level-0 objects the caller wrote (key → size, sha256), listing-checked
    and digested without reading them again.
    """
    import json

    img = _as_image(image)
    dest = img.path / "labels" / name
    plan_file = dest / _store.JOURNAL / "plan.json"
    if not plan_file.is_file():
        _store.drop_leftover_journal(dest)
        if (
            (dest / "zarr.json").exists() or (dest / ".zattrs").exists()
        ) and not _store.is_incomplete(dest):
            return Result(
                "labels-finalize",
                "notneeded",
                str(dest),
                f"labels {name!r} are already finished",
            )
        msg = f"no unfinished label image {name!r}; create it with create_label_image first"
        raise InputError(msg, path=dest)
    plan = json.loads(plan_file.read_text())["plan"]
    layout = StoreLayout.from_dict(plan["layout"])
    block = plan["curated"]
    with recorder(
        workspace,
        "T",
        "labels-finalize",
        params={"name": name, **block},
        libraries=("zarr", "numcodecs", "dask"),
    ) as step:
        job = WriteJob(root=str(dest), layout=layout, collect_values=True)
        # every level's metadata, should a kill inside create_label_image have left one out
        # (a level's folder can exist without its metadata: test the documents themselves)
        create_level_arrays(dest, layout, missing_only=True)
        if not is_url(dest):
            _remove_partial_writes(Path(dest) / layout.levels[0].path)
        figures = _finish_label(
            img,
            name,
            layout,
            job,
            block,
            properties,
            colors,
            curated_extra,
            first_level=1,
            progress=progress,
            elsewhere=written,
        )
        figures.pop("values")
        step.add_output(dest, digest=figures["store_digest"], size=figures["bytes"], role="labels")
        step.message = f"labels {name!r} finished with {len(layout.levels)} levels"
    return Result(
        "labels-finalize",
        "ok",
        str(dest),
        step.message,
        {"levels": len(layout.levels), **figures},
    )
