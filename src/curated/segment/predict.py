"""Blockwise prediction over an OME-Zarr image's level 0, identical to one whole-volume pass.

How a volume is cut
-------------------
::

    write unit (the label array's shard)        one dask task, written once
      └─ tiles of ``block`` voxels               computed one after another
           input = tile grown by the halo        (network context + pre-processing halo)

Tiles sit on a global grid whose offsets are multiples of the network's pooling
step, and every tile's input is grown by the model's halo, reflected at the
volume border (:func:`curated.segment.preprocess.read_region`). With valid
convolutions and no per-sample normalisation, each output voxel is therefore
computed from exactly the same input values, in the same order, whatever the
tile or shard size: the stitched result equals a single pass over the whole
volume (a test checks this bit for bit on CPU).

The network input is pre-processed (normalised) over as large a region as a
budget allows, then cut into the tiles' inputs: the whole padded volume once per
process when it fits :data:`WHOLE_INPUT_VOXELS`, otherwise each write unit's
padded region (unit + network context + pre-processing halo), split into groups
of whole tiles when what it holds exceeds :data:`UNIT_INPUT_BYTES`. A pre-processed voxel
only depends on the raw voxels within the halo, so every choice gives the same
values; a wider region only spares re-filtering the halo around every tile.

Memory is bounded by one group's input (at most the budget, or one tile's input
when a single tile exceeds it), one tile's activations and one write unit of
uint8 output per worker, whatever the volume size. Each finished write unit
leaves a marker file, so an interrupted prediction resumes where it stopped;
running it again after it finished reports ``notneeded``.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curated._crash import crash_point
from curated._io import atomic_write_text, write_json
from curated.errors import InputError, SegmentationError
from curated.images.kept import open_recording, unkept, unkept_message
from curated.images.store import drop_journal
from curated.objstore import StorePath, as_path, names_in, open_sink, remove_tree
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result, with_warnings
from curated.segment import _store
from curated.segment._heap import prediction_heap
from curated.segment.device import (
    amp_dtype,
    precision_dtype,
    precision_name,
    resolve_device,
)
from curated.segment.geometry import voxel_size_mismatch
from curated.segment.modelio import SOFTWARE, SegmentationModel, load_model
from curated.segment.preprocess import read_region
from curated.workspace import Workspace, recorder

DEFAULT_BLOCK = (64, 128, 128)
"""Largest tile (z, y, x) computed in one network pass when none is given; the planned tile
(:func:`plan_blocks`) may be shorter along an axis so that tiles do not straddle write units."""
MARKERS = ".curated-predict"


def marker_name(idx: tuple[int, ...]) -> str:
    """The name of the marker a finished write unit leaves in the markers folder."""
    return "done-" + "-".join(str(i) for i in idx)


def units_to_do(plan: BlockPlan, markers: str | Path) -> list[tuple[int, int, int]]:
    """The write units of ``plan`` without a marker in ``markers`` (a folder or ``s3://`` prefix).

    One listing of the markers: asking about each unit would be a request or two per unit
    on an object store (~10^5 units for a terabyte image).
    """
    done = names_in(markers)
    return [idx for idx in plan.units() if marker_name(idx) not in done]


@dataclass(frozen=True)
class BlockPlan:
    """How one prediction is cut: write units (tasks) and compute tiles."""

    shape: tuple[int, int, int]
    unit: tuple[int, int, int]
    tile: tuple[int, int, int]

    def units(self) -> list[tuple[int, int, int]]:
        counts = [-(-n // u) for n, u in zip(self.shape, self.unit, strict=True)]
        return [tuple(int(v) for v in idx) for idx in np.ndindex(*counts)]  # type: ignore[misc]

    def unit_region(self, idx: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lo = tuple(i * u for i, u in zip(idx, self.unit, strict=True))
        hi = tuple(min(a + u, n) for a, u, n in zip(lo, self.unit, self.shape, strict=True))
        return lo, hi

    def tiles(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Global-grid tile offsets that intersect ``[lo, hi)``."""
        ranges = [range((a // t) * t, b, t) for a, b, t in zip(lo, hi, self.tile, strict=True)]
        return [
            tuple(o)
            for o in np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T.tolist()
        ]


def plan_blocks(
    model: SegmentationModel,
    shape: tuple[int, ...],
    unit: tuple[int, ...],
    block: tuple[int, ...] | None = None,
) -> BlockPlan:
    """Write units and tiles of a prediction; ``block`` is the tile, or ``None`` to plan one.

    A given ``block`` is cut to the write unit and the volume and rounded up to the pooling
    step. ``None`` plans each axis's length (:func:`planned_length`) within
    :data:`DEFAULT_BLOCK`: a tile that straddles two write units is computed for both, so
    with 96-voxel shards a 64-voxel tile computed half the z tiles twice.
    """
    geom = model.geometry
    if block is None:
        tile = tuple(
            planned_length(int(b), int(u), int(n), int(st), int(lo), int(c))
            for b, u, n, st, lo, c in zip(
                DEFAULT_BLOCK, unit, shape, geom.step, geom.output_min, geom.context, strict=True
            )
        )
    else:
        # a tile never needs to exceed the write unit or the volume
        want = tuple(
            min(int(b), int(u), int(n)) for b, u, n in zip(block, unit, shape, strict=True)
        )
        tile = geom.block_multiple(want)
    return BlockPlan(tuple(int(s) for s in shape), tuple(int(u) for u in unit), tile)  # type: ignore[arg-type]


def planned_length(cap: int, unit: int, n: int, step: int, least: int, context: int) -> int:
    """Tile length along one axis: of the multiples of ``step`` (at least ``least``) up to
    ``min(cap, unit, n)`` rounded up, the one whose tiles read the fewest input voxels over
    the axis, counting every tile once per write unit it touches (each unit computes the
    tiles it touches) and its ``2 · context`` margin; ties go to the longer tile.

    Per axis is enough: the tiles a block of units computes are a product over the axes.
    """
    top = -(-min(int(cap), int(unit), int(n)) // step) * step
    best: tuple[tuple[int, int], int] | None = None
    for t in range(max(step, -(-least // step) * step), max(top, least) + 1, step):
        touched = sum((min(u0 + unit, n) - 1) // t - u0 // t + 1 for u0 in range(0, n, unit))
        key = (touched * (t + 2 * context), -t)
        if best is None or key < best[0]:
            best = (key, t)
    return best[1] if best is not None else top


# ------------------------------------------------------------------ compute
@functools.lru_cache(maxsize=4)
def _cached_model(path: str, sha256: str) -> SegmentationModel:
    model = load_model(path)
    if model.sha256 != sha256:
        msg = "the model changed while predicting (weights sha256 differs)"
        raise SegmentationError(msg, path=path)
    return model


WHOLE_INPUT_VOXELS = 32 * 2**20
"""Largest raw region (voxels, halos included) pre-processed once and shared by every tile.

The default normalisation reads 3 σ = 150 voxels around a tile at 8 nm; pre-processing
each 64³ tile of a small image on its own re-filtered a 364²-voxel area per tile (the demo:
4.6× slower than one pass). Images whose whole padded input fits this budget (32 Mi
voxels, 128 MiB as float32) are pre-processed once per process instead; larger ones are
pre-processed once per write unit (:data:`UNIT_INPUT_BYTES`), so memory stays bounded by
the budget or the tile, never the volume.
Both give the same values: a pre-processed voxel only depends on raw voxels within the
halo, read with the same reflection at the volume's borders.
"""

UNIT_INPUT_BYTES = 160 * 2**20
"""Most memory (bytes) one pre-processed region may hold: its raw voxels as stored, halos
included, plus the float32 network input made from them (:func:`input_bytes`).

An image larger than :data:`WHOLE_INPUT_VOXELS` is pre-processed per write unit: the
unit's tiles share one input grown once by the halo instead of each tile re-filtering
its own halo (400 nm normalisation at 4.6 nm: a 20 x 128 x 128 tile read a 20 x 690 x
690 region, 29 times its size; a 20 x 512 x 512 unit reads 4.4 times its size). A unit
whose region exceeds this budget is split into groups of whole tiles that fit it
(the cut that pre-processes the fewest voxels, :func:`tile_groups`); a single tile is
never split. Each worker holds one group's input at a time. Until this release the budget
counted raw voxels (32 Mi) while the filters held 5 float32 copies of the region on top;
the normalisation now reads the stored integers and works slice by slice, so 160 MiB is
what the region holds, and wider groups fit it where the halo is wide (5 nm FIB-SEM: three
64 x 96 x 96 tiles per group instead of one; prediction 2.4-2.7 times faster).
"""


def input_bytes(model: SegmentationModel, itemsize: int, extent: Any) -> int:
    """Bytes a pre-processed region of ``extent`` raw voxels (halos included) holds:
    the raw voxels at ``itemsize`` bytes plus 4 bytes per network-input voxel (the
    region less the pre-processing halo on each side)."""
    pre = model.preprocessing.halo
    inner = [max(0, int(e) - 2 * h) for e, h in zip(extent, pre, strict=True)]
    return int(np.prod([int(e) for e in extent])) * int(itemsize) + 4 * int(np.prod(inner))


def input_cost(model: SegmentationModel, itemsize: int) -> Callable[[Sequence[int]], int]:
    """:func:`input_bytes` of ``model``'s regions of raw voxels of ``itemsize`` bytes, as the
    ``cost`` of :func:`start_boxes`."""
    return functools.partial(input_bytes, model, itemsize)


@dataclass(frozen=True)
class _Input:
    """The pre-processed network input of ``[start, start + data.shape)`` (global voxels)."""

    start: tuple[int, ...]
    data: np.ndarray


_whole_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _whole_input(
    model_path: str, sha256: str, image: str, start: tuple[int, ...], stop: tuple[int, ...]
) -> _Input:
    return _preprocessed(_cached_model(model_path, sha256), _store.image_level0(image), start, stop)


def _preprocessed(
    model: SegmentationModel, raw: Any, start: tuple[int, ...], stop: tuple[int, ...]
) -> _Input:
    """Raw ``[start, stop)`` pre-processed: the input of every voxel at least a halo inside it."""
    x = model.preprocessing.apply(read_region(raw, start, stop))
    pre = model.preprocessing.halo
    return _Input(tuple(a + h for a, h in zip(start, pre, strict=True)), x)


def shared_input(model: SegmentationModel, image: str, extent: tuple[int, ...]) -> _Input | None:
    """The pre-processed input of every tile whose output ends by ``extent``, or ``None``.

    ``None`` when the padded region exceeds :data:`WHOLE_INPUT_VOXELS`; the caller then
    pre-processes smaller regions (:func:`region_input` for a group of tiles from
    :func:`tile_groups`, or each tile on its own).
    """
    start = tuple(-h for h in model.halo)
    stop = tuple(int(e) + h for e, h in zip(extent, model.halo, strict=True))
    if not _fits_whole(model, extent):
        return None
    with _whole_lock:  # one computation, shared by the worker threads
        return _whole_input(str(model.path), model.sha256, str(image), start, stop)


def _fits_whole(model: SegmentationModel, extent: tuple[int, ...]) -> bool:
    """Whether the padded region of outputs ending by ``extent`` fits :data:`WHOLE_INPUT_VOXELS`."""
    padded = [int(e) + 2 * h for e, h in zip(extent, model.halo, strict=True)]
    return int(np.prod(padded)) <= WHOLE_INPUT_VOXELS


def _shared_extent(model: SegmentationModel, plan: BlockPlan) -> tuple[int, ...]:
    """Where the last tile's output ends: the extent a shared input must cover."""
    out = model.geometry.valid_output(plan.tile)
    last = [(-(-n // t) - 1) * t for n, t in zip(plan.shape, plan.tile, strict=True)]
    return tuple(a + o for a, o in zip(last, out, strict=True))


def release_shared_input() -> None:
    """Forget the shared input (call when a run ends)."""
    _whole_input.cache_clear()


def _shared_input(model: SegmentationModel, image: str, plan: BlockPlan) -> _Input | None:
    return shared_input(model, image, _shared_extent(model, plan))


def unit_tasks(
    model: SegmentationModel,
    plan: BlockPlan,
    todo: list[tuple[int, ...]],
    budget: int | None = None,
    itemsize: int = 1,
) -> list[list[tuple[int, ...]]]:
    """The write units of ``todo`` in tasks: blocks of adjacent units pre-processed together.

    An image too large for one shared input is pre-processed per task, over the task's
    region grown by the halo. The halo of the default 400 nm normalisation is 150 voxels
    at 8 nm, so one 32 × 128 × 128 write unit on its own filtered 11 times its area in
    every plane; blocks of units share one halo. The blocks are cut from the whole unit
    grid as :func:`start_boxes` cuts tiles (:func:`input_bytes` of raw voxels of ``itemsize``
    bytes within ``budget``, default :data:`UNIT_INPUT_BYTES`; the fewest voxels
    pre-processed in all), so a resumed run
    forms the same blocks; units already done are left out of them. Images that fit one
    shared input keep one task per unit (more tasks to share out between workers).
    """
    if not todo:
        return []
    if _fits_whole(model, _shared_extent(model, plan)):
        return [[idx] for idx in todo]
    budget = UNIT_INPUT_BYTES if budget is None else int(budget)
    counts = [-(-n // u) for n, u in zip(plan.shape, plan.unit, strict=True)]
    axes = [[i * u for i in range(c)] for c, u in zip(counts, plan.unit, strict=True)]
    runs = start_boxes(axes, plan.unit, model.halo, budget, input_cost(model, itemsize))
    pending = set(todo)
    tasks = []
    for bz, by, bx in itertools.product(*runs):
        block = [
            (z // plan.unit[0], y // plan.unit[1], x // plan.unit[2])
            for z in bz
            for y in by
            for x in bx
        ]
        if kept := [idx for idx in block if idx in pending]:
            tasks.append(kept)
    return tasks


def start_boxes(
    axes: list[list[int]],
    out: tuple[int, ...],
    halo: tuple[int, ...],
    budget: int,
    cost: Callable[[Sequence[int]], int],
) -> list[list[list[int]]]:
    """Cut sorted per-axis tile starts into runs whose boxes' padded input fits ``budget``.

    ``cost`` maps a box's input extent to what counts against the budget
    (:func:`input_cost`: the bytes the pre-processed region holds).

    A box spans one run per axis; its input is the span of its starts plus one tile's
    output ``out`` and ``2 · halo``. Of the ways to cut each axis into equal runs, the
    one whose boxes fit the budget and together pre-process the fewest voxels is taken
    (the halo is paid once per box: wide flat boxes suit a normalisation that only
    reaches across yx). A box holds at least one tile, whatever its size. Returns the
    runs per axis.
    """

    def runs(i: int, n: int) -> list[list[int]]:
        return [axes[i][j : j + n] for j in range(0, len(axes[i]), n)]

    def extent(i: int, run: list[int]) -> int:
        """Input length along axis ``i`` of a box over the starts ``run``."""
        return run[-1] - run[0] + out[i] + 2 * halo[i]

    def size(per: tuple[int, ...]) -> int:
        """Cost of the largest box of ``per`` tiles per axis."""
        return int(cost([max(extent(i, r) for r in runs(i, per[i])) for i in range(3)]))

    def total(per: tuple[int, ...]) -> int:
        """Input voxels of all boxes: a product of per-axis sums (the last run may be shorter)."""
        return int(np.prod([sum(extent(i, r) for r in runs(i, per[i])) for i in range(3)]))

    options = [sorted({-(-len(a) // k) for k in range(1, len(a) + 1)}) for a in axes]
    fitting = (p for p in itertools.product(*options) if max(p) == 1 or size(p) <= budget)
    # (1, 1, 1) always qualifies; ties go to the larger boxes
    per = min(fitting, key=lambda p: (total(p), -int(np.prod(p)), p))
    return [runs(i, per[i]) for i in range(3)]


def tile_groups(
    model: SegmentationModel,
    plan: BlockPlan,
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    budget: int | None = None,
    itemsize: int = 1,
) -> list[list[tuple[int, ...]]]:
    """The tiles of ``[lo, hi)`` in boxes of whole tiles whose padded input fits ``budget``.

    ``budget`` (bytes, :func:`input_bytes` of raw voxels of ``itemsize`` bytes) defaults
    to :data:`UNIT_INPUT_BYTES`; the cut is :func:`start_boxes`'.
    """
    budget = UNIT_INPUT_BYTES if budget is None else int(budget)
    axes = [list(range((a // t) * t, b, t)) for a, b, t in zip(lo, hi, plan.tile, strict=True)]
    out = model.geometry.valid_output(plan.tile)
    boxes = start_boxes(axes, out, model.halo, budget, input_cost(model, itemsize))
    return [
        [(z, y, x) for z in bz for y in by for x in bx]
        for bz in boxes[0]
        for by in boxes[1]
        for bx in boxes[2]
    ]


def region_input(
    model: SegmentationModel, raw: Any, tiles: list[tuple[int, ...]], size: tuple[int, ...]
) -> _Input:
    """The pre-processed input shared by ``tiles`` (offsets of tiles of ``size``), read once."""
    out = model.geometry.valid_output(size)
    first = [min(t[i] for t in tiles) for i in range(3)]
    last = [max(t[i] for t in tiles) for i in range(3)]
    start = tuple(a - h for a, h in zip(first, model.halo, strict=True))
    stop = tuple(b + o + h for b, o, h in zip(last, out, model.halo, strict=True))
    return _preprocessed(model, raw, start, stop)


def predict_tile(
    model: SegmentationModel,
    raw: Any,
    offset: tuple[int, ...],
    size: tuple[int, ...],
    device: torch.device,
    source: _Input | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Foreground probability (float32) of the region ``[offset, offset + size)``; ``offset`` on the step grid.

    ``source``, when given, holds the pre-processed input around the tile already;
    ``dtype`` is the mixed-precision dtype (``None``: float32, see
    :func:`~curated.segment.device.amp_dtype`).
    """
    geom = model.geometry
    out = geom.valid_output(size)
    if source is not None:
        ctx = geom.context
        a = [o - c - s for o, c, s in zip(offset, ctx, source.start, strict=True)]
        x = source.data[
            tuple(slice(lo, lo + n + 2 * c) for lo, n, c in zip(a, out, ctx, strict=True))
        ]
    else:
        halo = model.halo
        start = tuple(o - h for o, h in zip(offset, halo, strict=True))
        stop = tuple(o + s + h for o, s, h in zip(offset, out, halo, strict=True))
        x = model.preprocessing.apply(read_region(raw, start, stop))
    net = model.network(device)
    with (
        torch.no_grad(),
        torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None),
    ):
        logits = net(torch.from_numpy(np.ascontiguousarray(x))[None, None].to(device))
    prob = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
    return prob[: size[0], : size[1], : size[2]]


def _predict_units(
    model_path: str,
    sha256: str,
    image: str,
    label_array: str,
    prob_array: str | None,
    plan: BlockPlan,
    precision: str,
    units: list[tuple[int, ...]],
    device: str,
    threshold: float,
    markers: str,
) -> int:
    """One task: compute every tile of a block of write units (:func:`unit_tasks`), write
    each unit once and leave its marker; returns the number of units written.

    ``precision`` is what :func:`predict` resolved (``fp32``, ``bf16`` or ``fp16``)."""

    with prediction_heap():  # the tiles' buffers stay mapped until the task ends
        model = _cached_model(model_path, sha256)
        dev, dtype = torch.device(device), precision_dtype(precision)
        raw = _store.image_level0(image)
        regions = [plan.unit_region(idx) for idx in units]
        lo = tuple(min(r[0][i] for r in regions) for i in range(3))
        hi = tuple(max(r[1][i] for r in regions) for i in range(3))
        box = [b - a for a, b in zip(lo, hi, strict=True)]
        # uint8 buffers: a task costs 1-2 bytes per voxel, whatever the volume
        labels = np.zeros(box, dtype=np.uint8)
        prob8 = np.zeros(box, dtype=np.uint8) if prob_array is not None else None
        value = np.uint8(model.label_value)
        shared = _shared_input(model, image, plan)
        # the whole image's input when it fits; else the block's, in groups that fit the budget
        groups = (
            [plan.tiles(lo, hi)]
            if shared is not None
            else tile_groups(model, plan, lo, hi, itemsize=raw.dtype.itemsize)
        )
        for group in groups:
            source = shared if shared is not None else region_input(model, raw, group, plan.tile)
            for t in group:
                p = predict_tile(model, raw, t, plan.tile, dev, source, dtype)
                a = [max(lo_, t_) for lo_, t_ in zip(lo, t, strict=True)]
                b = [min(hi_, t_ + s) for hi_, t_, s in zip(hi, t, plan.tile, strict=True)]
                dst = tuple(slice(x - lo_, y - lo_) for x, y, lo_ in zip(a, b, lo, strict=True))
                src = tuple(slice(x - t_, y - t_) for x, y, t_ in zip(a, b, t, strict=True))
                labels[dst] = np.where(p[src] > threshold, value, np.uint8(0))
                if prob8 is not None:
                    prob8[dst] = np.rint(p[src] * 255.0).astype(np.uint8)
            del source  # one group's input at a time
        outputs = [(label_array, labels)] + ([(prob_array, prob8)] if prob8 is not None else [])
        labels_root = str(as_path(markers).parent.parent)
        opened = [
            (open_recording(path), path[len(labels_root) + 1 :], buf) for path, buf in outputs
        ]
        for idx, (ulo, uhi) in zip(units, regions, strict=True):
            region = tuple(slice(a, b) for a, b in zip(ulo, uhi, strict=True))
            local = tuple(slice(a - o, b - o) for a, b, o in zip(ulo, uhi, lo, strict=True))
            files: dict[str, tuple[int, str]] = {}
            for (array, recorder), rel, buf in opened:
                array[region] = buf[local]
                files.update(recorder.take(rel))  # nothing when the unit is all background
            _mark_done(as_path(markers) / marker_name(idx), files)
        return len(units)


def _mark_done(marker: Path | StorePath, files: dict[str, tuple[int, str]]) -> None:
    """Leave a write unit's marker: what it wrote (key under ``labels/`` → size, sha256), for
    the listing check of :func:`_check_kept`. One PUT in an object store; in a folder written
    beside and renamed into place, so a kill never leaves a torn marker."""
    import json

    text = json.dumps({"files": files})
    if isinstance(marker, StorePath):
        marker.write_text(text)
    else:
        atomic_write_text(marker, text)


def _check_kept(run: _Prediction) -> dict[str, tuple[int, str]]:
    """What the write units wrote (key under ``labels/`` → size, sha256, from their markers).

    Before the label images are finished: refuse them unless the object store's listing
    shows every level-0 object the write units (of this run and the runs it resumes) wrote,
    at the size written.

    zarr writes no shard that is all background, so a store that answered a shard's PUT
    ``200 OK`` and kept nothing would finish the prediction with a hole of zeros (and one
    that kept fewer bytes, with a shard that does not decode). The objects not there as
    written and the markers of their units are removed, so that a re-run computes them again;
    nothing is read back but the markers. A folder is not checked: zarr renames its files
    into place, whole or not at all.
    """
    import json

    sink = open_sink(run.markers)
    names = sorted(n for n in sink.listdir("") if n.startswith("done-"))
    known: dict[str, tuple[int, str]] = {}
    owner: dict[str, str] = {}
    for name, body in zip(names, sink.get_many(names), strict=True):
        try:
            files = json.loads(body)["files"]
        except (ValueError, KeyError, TypeError):
            continue  # an empty marker of an earlier version: it says nothing to check
        for rel, (size, hexd) in files.items():
            known[rel], owner[rel] = (int(size), str(hexd)), name
    if not isinstance(run.markers, StorePath):
        return known
    level0 = run.img.level_paths[0]
    listed = {
        f"{n}/{level0}/{rel}": size
        for n in run.names
        for rel, size in open_sink(run.dest.parent / n / level0).files()
        if f"{n}/{level0}/{rel}" in known
    }
    bad = unkept(listed, known)
    if bad:
        labels = open_sink(run.dest.parent)
        for rel in bad:  # zarr reads a shard before writing it again: one kept short is gone
            labels.delete(rel)
        for name in sorted({owner[rel] for rel in bad}):
            sink.delete(name)
        raise SegmentationError(unkept_message(bad, listed), path=run.dest)
    return known


class _DaskProgress:
    """Advance a progress reporter as dask finishes unit tasks."""

    def __init__(self, progress: ProgressReporter) -> None:
        from dask.callbacks import Callback

        outer = progress

        class _CB(Callback):
            def _posttask(
                self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any
            ) -> None:
                if isinstance(result, int):
                    outer.advance(result)  # the write units the task finished

        self.callback = _CB()


def predict(
    model: str | Path | SegmentationModel,
    image: str | Path,
    *,
    name: str,
    workers: int | None = None,
    scheduler: str | None = None,
    block: tuple[int, int, int] | None = None,
    probabilities: bool = False,
    threshold: float = 0.5,
    device: str = "auto",
    precision: str = "auto",
    overwrite: bool = False,
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> Result:
    """Segment an OME-Zarr image blockwise and store the result as label image ``name``.

    Parameters
    ----------
    model
        A model folder (``model.json`` + ``weights.pt``; sha256 checked).
    image
        The OME-Zarr image; level 0 is segmented.
    name
        Label image to write (kind ``prediction``, ``ai_generated`` true, with the
        model's id and sha256). Foreground voxels get the model's label value.
    workers
        Threads (default: all cores) for the local dask scheduler; ignored with ``scheduler``.
    scheduler
        Address of a ``dask.distributed`` scheduler (``tcp://host:port``); its
        workers must see the same file system.
    block
        Tile computed in one network pass (memory per worker grows with it); ``None``
        plans it within :data:`DEFAULT_BLOCK` (:func:`plan_blocks`).
    probabilities
        Also write ``<name>-probability`` (uint8, probability × 255).
    threshold
        Probability above which a voxel is foreground.
    device
        ``auto``, ``cpu`` or ``cuda``.
    precision
        ``auto`` (mixed precision on a GPU, float32 on a CPU), ``fp32`` or ``bf16``
        (:data:`~curated.segment.device.PRECISIONS`); resolved once here, so every
        worker computes at the same precision (recorded with the label image).

    Returns
    -------
    Result
        ``details``: voxels, seconds, voxels per second, units computed and skipped.
    """
    from curated.images import open_image

    image = as_path(image)
    m = model if isinstance(model, SegmentationModel) else load_model(model)
    params = {
        "model": m.id,
        "model_sha256": m.sha256,
        "name": name,
        "block": list(block) if block is not None else None,
        "probabilities": probabilities,
        "threshold": threshold,
        "device": device,
        "precision": precision,
        "workers": workers,
        "scheduler": scheduler,
    }
    with recorder(
        workspace,
        "T",
        "predict",
        inputs=[image, m.path / "weights.pt"],
        params=params,
        libraries=SOFTWARE,
    ) as step:
        dev = resolve_device(device)
        used = precision_name(amp_dtype(dev, precision))
        _check_arguments(threshold, block)
        img = open_image(image)
        raw = img.levels[0]
        if raw.ndim != 3:
            msg = f"prediction needs a 3D (z, y, x) image; level 0 has {raw.ndim} dimensions"
            raise InputError(msg, path=image)
        run = _Prediction(
            image=image,
            img=img,
            model=m,
            name=name,
            names=[name] + ([f"{name}-probability"] if probabilities else []),
            threshold=threshold,
            device=dev,
            precision=used,
            shape=tuple(int(s) for s in raw.shape),
        )
        warnings = _voxel_size_warnings(m, image)
        done = _earlier_prediction(run, step, overwrite)
        if done is None:
            done = _predict_and_record(run, step, block, overwrite, workers, scheduler, progress)
        done = _warned(done, step, warnings)
    # the markers go once the step is logged: a run killed before its entry is written keeps
    # them, and the next run takes the finished label image for one still to record
    if done.status in ("ok", "notneeded") and run.markers.exists() and not _unfinished(run):
        crash_point("predict-logged")
        remove_tree(run.markers)
    return done


def _unfinished(run: _Prediction) -> bool:
    """Whether one of the run's label images is not finished (still to resume)."""
    from curated.images import open_image

    labelled = open_image(run.image).label_names()
    return any(n not in labelled for n in run.names)


def _predict_and_record(
    run: _Prediction,
    step: Any,
    block: tuple[int, int, int] | None,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    progress: ProgressReporter | None,
) -> Result:
    """Compute the units not done, finalize the label image(s) and add them to ``step``."""
    image = run.image
    plan, todo, seconds = _compute_units(run, block, overwrite, workers, scheduler, progress)
    finished = _finalize(run, plan, _check_kept(run))
    crash_point("predict-finalized")
    details = _details(run, plan, len(todo), seconds)
    for n in run.names:
        # digests taken while the stores were written; a terabyte prediction is not re-read
        done_n = finished[n].details or {}
        step.add_output(
            _store.label_path(image, n),
            digest=done_n.get("store_digest"),
            size=done_n.get("bytes"),
        )
    step.details.update({k: details[k] for k in ("units_computed", "units_skipped", "seconds")})
    skipped = details["units_skipped"]
    step.message = f"{len(todo)} of {len(plan.units())} blocks predicted" + (
        f" ({skipped} resumed)" if skipped else ""
    )
    return Result("predict", "ok", str(run.dest), step.message, details)


def _voxel_size_warnings(m: SegmentationModel, image: StorePath | Path) -> list[str]:
    """A warning when the image's voxels are not the ones the model was trained on."""
    trained = (m.meta.get("training") or {}).get("voxel_size")
    try:
        warning = voxel_size_mismatch(trained, _store.voxel_size(image))
    except (InputError, SegmentationError):
        return []  # no length unit: nothing to compare (the prediction does not need one)
    return [warning] if warning else []


def _warned(result: Result, step: Any, warnings: list[str]) -> Result:
    """``result`` and its log entry with ``warnings`` appended to the message and in details."""
    if not warnings:
        return result
    details = dict(result.details or {})
    step.message = with_warnings(result.message, details, warnings)
    step.details["warnings"] = details["warnings"]
    return Result(result.action, result.status, result.path, step.message, details)


@dataclass
class _Prediction:
    """One prediction run: the image, the model and the label image(s) it writes."""

    image: Path
    img: Any
    model: SegmentationModel
    name: str
    names: list[str]
    """The label image, then its probability image when asked for."""
    threshold: float
    device: torch.device
    precision: str
    """``fp32``, ``bf16`` or ``fp16``: what :func:`predict`'s ``precision`` resolved to."""
    shape: tuple[int, ...]

    @property
    def dest(self) -> Path:
        return _store.label_path(self.image, self.name)

    @property
    def markers(self) -> Path:
        return self.dest / MARKERS

    @property
    def model_block(self) -> dict[str, Any]:
        return {"id": self.model.id, "sha256": self.model.sha256, "card": None}


def _check_arguments(threshold: float, block: tuple[int, int, int] | None) -> None:
    if not 0.0 < threshold < 1.0:
        msg = f"threshold must be between 0 and 1, not {threshold}"
        raise InputError(msg, field="threshold")
    if block is not None and (len(block) != 3 or min(int(b) for b in block) < 1):
        msg = f"block must be three positive sizes (z y x), not {block}"
        raise InputError(msg, field="block")


def _earlier_prediction(run: _Prediction, step: Any, overwrite: bool) -> Result | None:
    """The result when this model already predicted ``name``; refuses to replace anything else."""
    image, name, names, img = run.image, run.name, run.names, run.img
    labelled = img.label_names()
    finished = name in labelled
    attrs = _store.label_curated_attrs(image, name) if finished else {}
    same = (attrs.get("model") or {}).get("sha256") == run.model.sha256 and attrs.get(
        "prediction", {}
    ).get("threshold") == run.threshold
    if finished and run.markers.exists():
        if same and not overwrite and any(n not in labelled for n in names):
            # killed between finishing the label image and its probability image: every
            # unit is marked done, so the run goes on to finish the other
            return None
        if overwrite:
            remove_tree(run.markers)
    if finished and not overwrite:
        if same:
            # registered only once finished: a journal left is one a kill kept from going
            drop_journal(run.dest)
            if step.log is not None and _not_on_record(run, step.log):
                # killed after finishing but before its log entry: record it now
                for n in names:
                    if n in img.label_names():
                        step.add_output(_store.label_path(image, n))
                step.message = f"label image {name!r} recorded after an interrupted run"
                return Result("predict", "ok", str(run.dest), step.message, {"name": name})
            step.status = "notneeded"
            step.message = f"label image {name!r} was already predicted by this model"
            return Result("predict", "notneeded", str(run.dest), step.message, {"name": name})
        msg = f"label image {name!r} already exists (made otherwise); choose another --name or pass --overwrite"
        raise SegmentationError(msg, path=image, field="name")
    if name == "truth" or any(
        n in img.label_names() and _store.label_curated_attrs(image, n).get("kind") != "prediction"
        for n in names
    ):
        msg = f"label image {name!r} holds truth or annotations; predictions never replace those"
        raise SegmentationError(msg, path=image, field="name")
    return None


def _not_on_record(run: _Prediction, log: Any) -> bool:
    """Whether the finished label image(s) still wait for their log entry.

    Nothing on record for the label image: killed after finishing, before its entry. The
    markers left beside it (they go only once the step is logged) mean a run finished it
    and may have been killed before its entry; an entry there may be an earlier run's (a
    killed ``overwrite``), so the stores are digested (this once) and compared with it.
    """
    recorded = log.recorded_output(run.dest)
    if recorded is None:
        return True
    if not run.markers.exists():
        return False
    return not all(log.records_as_is(_store.label_path(run.image, n)) for n in run.names)


def _compute_units(
    run: _Prediction,
    block: tuple[int, int, int] | None,
    overwrite: bool,
    workers: int | None,
    scheduler: str | None,
    progress: ProgressReporter | None,
) -> tuple[BlockPlan, list[tuple[int, ...]], float]:
    """Create the label image(s) and compute every write unit not marked done; returns the
    plan, the units computed now and the seconds they took."""
    from curated.images import create_label_image

    image, m, names = run.image, run.model, run.names
    labelled = [] if overwrite else run.img.label_names()  # finished before a kill: kept
    arrays = [
        _open_finished(run, n)
        if n in labelled
        else create_label_image(
            image,
            n,
            dtype="uint8",
            kind="prediction",
            ai_generated=True,
            model=run.model_block,
            overwrite=overwrite,
        )
        for n in names
    ]
    unit_shape = tuple(int(v) for v in (getattr(arrays[0], "shards", None) or arrays[0].chunks))
    plan = plan_blocks(m, run.shape, unit_shape, block)
    markers = run.markers
    markers.mkdir(parents=True, exist_ok=True)
    _claim_markers(run, plan)
    todo = units_to_do(plan, markers)
    skipped = len(plan.units()) - len(todo)
    array_paths = [str(_store.label_path(image, n) / run.img.level_paths[0]) for n in names]
    args = (
        str(m.path),
        m.sha256,
        str(image),
        array_paths[0],
        array_paths[1] if len(names) > 1 else None,
        plan,
        run.precision,
    )
    rep = ensure_progress(progress)
    rep.start(f"predict {run.name}", len(plan.units()), "blocks")
    if skipped:
        rep.advance(skipped)
    t0 = time.perf_counter()
    n_workers = workers or os.cpu_count() or 1
    dev, threshold = str(run.device), run.threshold
    tasks = unit_tasks(m, plan, todo, itemsize=_store.image_level0(image).dtype.itemsize)
    if scheduler:
        _run_distributed(scheduler, args, tasks, dev, threshold, str(markers), rep)
    else:
        try:
            _run_threads(args, tasks, dev, threshold, str(markers), n_workers, rep)
        finally:
            release_shared_input()  # do not hold the shared input after the run
    seconds = time.perf_counter() - t0
    rep.finish()
    return plan, todo, seconds


RUN_SETTINGS = "settings.json"
"""Beside the markers: what decides the voxels of the units they mark (besides the model,
which the label image's plan holds)."""


def _claim_markers(run: _Prediction, plan: BlockPlan) -> None:
    """Record this run's settings beside its markers, or refuse to resume units computed with
    others (a killed run resumed with another threshold, or on a machine where ``auto``
    resolves to another precision, would mix the two in one label image)."""
    import json

    settings = {
        "names": run.names,
        "threshold": run.threshold,
        "precision": run.precision,
        "unit": list(plan.unit),
        "tile": list(plan.tile),
    }
    path = run.markers / RUN_SETTINGS
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not any(n.startswith("done-") for n in names_in(run.markers)):
            # (a unit marked done without settings: markers of an earlier version, resumed)
            if isinstance(path, StorePath):  # one PUT; write_json would make a local "s3:/…"
                path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
            else:
                write_json(path, settings)
        return
    except (OSError, ValueError):
        earlier = None
    if earlier != settings:
        shown = ", ".join(f"{k} {v}" for k, v in (earlier or {}).items() if settings.get(k) != v)
        msg = (
            f"label image {run.name!r} holds an interrupted prediction made with other settings "
            f"({shown or 'unreadable'}); run it again with those to finish it, or pass "
            "--overwrite to start again"
        )
        raise SegmentationError(msg, path=run.dest, field="name")


def _open_finished(run: _Prediction, name: str) -> Any:
    """Level 0 of the label image ``name`` this run finished before it was killed (read only)."""
    import zarr

    return zarr.open_array(
        str(_store.label_path(run.image, name) / run.img.level_paths[0]), mode="r"
    )


def _finalize(
    run: _Prediction, plan: BlockPlan, written: dict[str, tuple[int, str]]
) -> dict[str, Result]:
    """Write the label images' final metadata (class name, threshold, tile); ``written``:
    what the write units wrote (key under ``labels/`` → size, sha256), which the store
    digests take instead of reading level 0 again."""
    from curated.images import finalize_label_image

    finished: dict[str, Result] = {}
    class_name = _class_name(run.image, run.model)
    for n in run.names:
        props = (
            [{"label-value": run.model.label_value, "name": class_name}] if n == run.name else None
        )
        finished[n] = finalize_label_image(
            run.image,
            n,
            written={k[len(n) + 1 :]: v for k, v in written.items() if k.startswith(f"{n}/")},
            properties=props,
            curated_extra={
                "prediction": {
                    "threshold": run.threshold,
                    "precision": run.precision,
                    "values": "probability x 255" if n != run.name else "label value",
                    "block": list(plan.tile),
                }
            },
        )
    return finished


def _details(run: _Prediction, plan: BlockPlan, computed: int, seconds: float) -> dict[str, Any]:
    units = len(plan.units())
    voxels = int(np.prod(run.shape)) * computed // max(units, 1)
    return {
        "name": run.name,
        "model": run.model_block,
        "shape": list(run.shape),
        "units": units,
        "units_computed": computed,
        "units_skipped": units - computed,
        "tile": list(plan.tile),
        "halo": list(run.model.halo),
        "seconds": round(seconds, 3),
        "voxels_per_second": voxels / seconds if seconds > 0 else None,
        "device": str(run.device),
        "precision": run.precision,
    }


def _class_name(image: str | Path, m: Any) -> str:
    """The predicted structure's name: the model's record, else the training labels' properties.

    Falls back to ``label K``; never the label image's own name (``annotations``), which
    says nothing about the structure.
    """
    label = m.meta.get("label") or {}
    if label.get("name"):
        return str(label["name"])
    src = label.get("labels")
    if src and src in _store.label_names(image):
        found = _store.class_names(image, src).get(int(m.label_value))
        if found:
            return found
    return f"label {m.label_value}"


def _run_threads(
    args: tuple[Any, ...],
    tasks: list[list[tuple[int, ...]]],
    device: str,
    threshold: float,
    markers: str,
    workers: int,
    rep: ProgressReporter,
) -> None:
    import dask

    if not tasks:
        return
    delayed = [
        dask.delayed(_predict_units)(*args, units, device, threshold, markers) for units in tasks
    ]
    threads = max(1, min(workers, len(tasks)))
    # torch's own threads share the cores with dask's
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // threads))
    try:
        with _DaskProgress(rep).callback:
            dask.compute(*delayed, scheduler="threads", num_workers=threads)
    finally:
        torch.set_num_threads(old)


def _run_distributed(
    address: str,
    args: tuple[Any, ...],
    tasks: list[list[tuple[int, ...]]],
    device: str,
    threshold: float,
    markers: str,
    rep: ProgressReporter,
) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        msg = f"cannot reach the dask scheduler at {address} ({exc})"
        raise SegmentationError(msg, field="scheduler") from None
    try:
        futures = [
            client.submit(_predict_units, *args, units, device, threshold, markers, pure=False)
            for units in tasks
        ]
        for fut in as_completed(futures):
            rep.advance(fut.result())
    finally:
        client.close()
