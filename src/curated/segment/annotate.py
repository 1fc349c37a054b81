"""Sparse annotations: a label image where only some crops are annotated.

Convention (recorded in every annotation label image)
-----------------------------------------------------
A sparse annotation is an OME-Zarr **uint8** label image beside the raw image:

- ``255`` (:data:`UNANNOTATED`) marks voxels nobody has annotated; training
  ignores them (the loss is masked to annotated voxels);
- ``0`` is *annotated* background;
- ``1..254`` are the classes (the same values as the truth or the curator's tool).

The label group's ``image-label.properties`` names each value, with
``{"label-value": 255, "name": "unannotated", "curated:unannotated": true}``,
and its ``curated`` attributes hold ``kind: "annotation"``, ``origin`` plus
``annotation: {"unannotated": 255, "rois": [{"offset": [z, y, x], "shape": [z, y, x], "source": ..., "origin": ...}]}``:
every annotated crop, in the order it was added, with where it came from
(``human`` for a crop a person drew, ``derived-from-truth`` for one copied from a
truth label image). The label image's ``origin`` is the crops' common origin, or
``mixed`` when they differ. Class names are copied from the truth (or kept from
the annotation), never made up. Training reads the ROIs from
there (or, for label images written by other tools, from the bounding boxes of
the annotated voxels).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated._crash import crash_point
from curated._io import is_temp_name
from curated.errors import InputError, SegmentationError
from curated.images.labels import (
    MIXED_ORIGIN,
    UNANNOTATED_VALUE,
    ValueMap,
    describe_value_map,
    not_whole,
    recorded_origin,
    remap_values,
    value_map_record,
)
from curated.images.store import JOURNAL, drop_journal
from curated.objstore import local_only
from curated.results import Result
from curated.segment import _store
from curated.workspace import Workspace, as_workspace, recorder

UNANNOTATED = UNANNOTATED_VALUE
"""Label value of voxels that carry no annotation (255)."""
BACKGROUND = 0
"""Label value of annotated background."""

_REGION = re.compile(r"^\s*([zyx])\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*$")
_AXES = {"z": 0, "y": 1, "x": 2}


def parse_region(
    region: str | None, shape: tuple[int, ...]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Turn ``"x<0.5"`` (a fraction of an axis) into a voxel box ``(start, stop)``; ``None`` is everything.

    Several conditions may be joined with ``,`` (``"x<0.5,z>=0.25"``).
    """
    start = [0, 0, 0]
    stop = [int(s) for s in shape]
    if not region:
        return tuple(start), tuple(stop)  # type: ignore[return-value]
    for part in region.split(","):
        m = _REGION.match(part)
        if not m:
            msg = f"region {part!r} is not like 'x<0.5' (axis z|y|x, comparison, fraction of the axis)"
            raise InputError(msg, field="region")
        axis, op, frac = _AXES[m.group(1)], m.group(2), float(m.group(3))
        if not 0.0 <= frac <= 1.0:
            msg = f"region fraction must be between 0 and 1, not {frac}"
            raise InputError(msg, field="region")
        edge = int(round(frac * shape[axis]))
        if op.startswith("<"):
            stop[axis] = min(stop[axis], edge)
        else:
            start[axis] = max(start[axis], edge)
    if any(b <= a for a, b in zip(start, stop, strict=True)):
        msg = f"region {region!r} is empty for an image of shape {tuple(shape)}"
        raise InputError(msg, field="region")
    return tuple(start), tuple(stop)  # type: ignore[return-value]


def _overlaps(a_off: Any, a_shape: Any, b_off: Any, b_shape: Any) -> bool:
    return all(
        ao < bo + bs and bo < ao + as_
        for ao, as_, bo, bs in zip(a_off, a_shape, b_off, b_shape, strict=True)
    )


def _properties(values: list[int], names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """Properties of a sparse annotation; a class without a known name stays ``class K``."""
    names = names or {}
    props: list[dict[str, Any]] = [
        {"label-value": UNANNOTATED, "name": "unannotated", "curated:unannotated": True},
        {"label-value": BACKGROUND, "name": "background (annotated)"},
    ]
    for v in sorted({int(v) for v in values} - {UNANNOTATED, BACKGROUND}):
        props.append({"label-value": v, "name": names.get(v, f"class {v}")})
    return props


def _rois_origin(rois: list[dict[str, Any]]) -> str:
    """The common origin of the crops (crops recorded before origins existed count as ``human``)."""
    from curated.images.labels import MIXED_ORIGIN

    found = {str(r.get("origin") or "human") for r in rois}
    return found.pop() if len(found) == 1 else MIXED_ORIGIN


def read_annotation_rois(image: str | Path, name: str) -> list[dict[str, Any]]:
    """The annotated crops recorded in a sparse label image (``[]`` if none are recorded)."""
    attrs = _store.label_curated_attrs(image, name)
    return [dict(r) for r in (attrs.get("annotation") or {}).get("rois", [])]


class _SparseLabels:
    """A sparse label volume that is never held whole: ``UNANNOTATED`` plus pasted crops.

    ``add_labels`` reads it block by block, so writing an annotation costs memory
    in proportion to the annotated crops and one block, not to the image (a
    FIB-SEM volume may be terabytes; its annotations are a few small crops).
    Later crops win where they hold annotated voxels.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = len(self.shape)
        self.crops: list[tuple[tuple[int, ...], np.ndarray]] = []

    def paste(self, offset: tuple[int, ...], crop: np.ndarray) -> None:
        crop = np.asarray(crop)
        if crop.size and (int(crop.min()) < 0 or int(crop.max()) > UNANNOTATED):
            # a cast would wrap 300 to 44: another class, without a word
            msg = f"annotation values must be 0..{UNANNOTATED}; found {int(crop.min())}..{int(crop.max())}"
            raise SegmentationError(msg, field="labels")
        self.crops.append((tuple(int(o) for o in offset), crop.astype(np.uint8)))

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        bounds = [sl.indices(n)[:2] for sl, n in zip(region, self.shape, strict=True)]
        out = np.full([b - a for a, b in bounds], UNANNOTATED, dtype=np.uint8)
        for off, crop in self.crops:
            lo = [max(a, o) for (a, _b), o in zip(bounds, off, strict=True)]
            hi = [min(b, o + s) for (_a, b), o, s in zip(bounds, off, crop.shape, strict=True)]
            if any(h <= low for low, h in zip(lo, hi, strict=True)):
                continue
            src = crop[tuple(slice(low - o, h - o) for low, h, o in zip(lo, hi, off, strict=True))]
            dst = out[
                tuple(slice(low - a, h - a) for low, h, (a, _b) in zip(lo, hi, bounds, strict=True))
            ]
            keep = src != UNANNOTATED
            dst[keep] = src[keep]
        return out

    def annotated_voxels(self, rois: list[dict[str, Any]]) -> int:
        """Annotated voxels inside ``rois`` (overlapping ROIs counted once)."""
        total = 0
        for i, r in enumerate(rois):
            off, shp = r["offset"], r["shape"]
            box = tuple(slice(o, o + n) for o, n in zip(off, shp, strict=True))
            mask = self[box] != UNANNOTATED
            for q in rois[:i]:
                lo = [max(a, b) - a for a, b in zip(off, q["offset"], strict=True)]
                hi = [
                    min(a + n, b + m) - a
                    for a, n, b, m in zip(off, shp, q["offset"], q["shape"], strict=True)
                ]
                if all(h > low for low, h in zip(lo, hi, strict=True)):
                    mask[tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))] = False
            total += int(np.count_nonzero(mask))
        return total

    def values(self) -> list[int]:
        found = {UNANNOTATED} if self._has_unannotated() else set()
        for _off, crop in self.crops:
            found.update(int(v) for v in np.unique(crop))
        return sorted(found)

    def _has_unannotated(self) -> bool:
        covered = sum(int(c.size) for _o, c in self.crops)
        return covered < int(np.prod(self.shape)) or any(
            np.any(c == UNANNOTATED) for _o, c in self.crops
        )


def _existing_annotation(
    image: Path, name: str
) -> tuple[_SparseLabels, list[dict[str, Any]]] | None:
    # class names of an existing annotation are read separately (_existing_names)
    """An existing sparse annotation, as the contents of its recorded crops only."""
    if not _store.label_path(image, name).exists():
        return None  # (still listed when a first write of it was killed and set aside)
    attrs = _store.label_curated_attrs(image, name)
    if attrs.get("kind") != "annotation":
        msg = (
            f"label image {name!r} exists and is not a sparse annotation (kind {attrs.get('kind')!r}); "
            "choose another --name"
        )
        raise SegmentationError(msg, path=image, field="name")
    level0 = _store.label_level0(image, name)
    rois = read_annotation_rois(image, name)
    sparse = _SparseLabels(tuple(int(n) for n in level0.shape))
    for r in rois:
        box = tuple(slice(o, o + n) for o, n in zip(r["offset"], r["shape"], strict=True))
        sparse.paste(tuple(r["offset"]), np.asarray(level0[box]))
    return sparse, rois


def _existing_names(image: Path, name: str) -> dict[int, str]:
    if not _store.label_path(image, name).exists():
        return {}
    return _store.class_names(image, name)


def _write_annotation(
    image: Path,
    name: str,
    labels: _SparseLabels,
    rois: list[dict[str, Any]],
    *,
    replace: bool,
    names: dict[int, str] | None = None,
) -> Result:
    """Write the sparse label image; ``details`` hold its store digest, taken while writing.

    The annotation it replaces is moved aside first (:func:`_previous_path`), not deleted:
    it is the curator's work, and a write killed part way must not lose it. The new
    label image keeps its progress journal until :func:`_settle_annotation`, after the
    step is logged; :func:`_recover_annotation` sorts out what a kill left.
    """
    if replace:
        os.replace(image / "labels" / name, _previous_path(image, name))
    try:
        return _add_annotation(image, name, labels, rois, names)
    except BaseException:
        _recover_annotation(image, name)  # the previous annotation back, the new one gone
        raise


def _add_annotation(
    image: Path,
    name: str,
    labels: _SparseLabels,
    rois: list[dict[str, Any]],
    names: dict[int, str] | None,
) -> Result:
    from curated.images import add_labels

    return add_labels(
        image,
        name,
        labels,
        kind="annotation",
        ai_generated=any(r.get("origin") == "model-prediction" for r in rois),
        model=None,
        origin=_rois_origin(rois),
        properties=_properties(labels.values(), names),
        curated_extra={"annotation": {"unannotated": UNANNOTATED, "rois": rois}},
        keep_journal=True,
    )


_PREVIOUS = "previous"
"""Eight letters: ``.IMAGE.NAME.previous.tmp`` is a temporary name (``is_temp_name``)."""


def _previous_path(image: Path, name: str) -> Path:
    """Where an annotation being replaced waits until its successor is finished and logged.

    Beside the image, not inside it: bags leave temp-named folders out only outside stores.
    """
    path = image.parent / f".{image.name}.{name}.{_PREVIOUS}.tmp"
    assert is_temp_name(path.name)
    return path


def _finished(store: Path) -> bool:
    """Written to the end: its metadata there and its plan gone (a journal's plan goes first,
    so a journal without one is the rest of a finished store's, whose removal was killed)."""
    has_metadata = (store / "zarr.json").is_file() or (store / ".zattrs").is_file()
    return has_metadata and not (store / JOURNAL / "plan.json").exists()


def _unfinished_annotation(store: Path) -> bool:
    """Whether an unfinished label image was begun as an annotation (not, say, a killed
    ``labels add``, which its own re-run resumes)."""
    try:
        plan = json.loads((store / JOURNAL / "plan.json").read_bytes())
    except FileNotFoundError:
        return True  # killed before its plan was written: nothing in it yet
    except (OSError, ValueError):
        return False
    block = plan.get("plan", {}).get("curated", {}) if isinstance(plan, dict) else {}
    return isinstance(block, dict) and block.get("kind") == "annotation"


def _discard(path: Path, beside: Path) -> None:
    """Remove the folder ``path``, renamed first to a temporary name in ``beside``'s folder
    (outside any store), so that a kill part way never leaves part of it under its name."""
    trash = tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=".tmp", dir=beside.parent)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _logged(store: Path, ws: Workspace | None) -> bool:
    """Whether ``ws``'s curator log records ``store`` as it is now (journals are never digested)."""
    return ws is not None and ws.log.records_as_is(store)


def _recorded_unsettled(
    image: Path,
    name: str,
    ws: Workspace | None,
    action: str,
    params: dict[str, Any],
    source: Path | None = None,
) -> bool:
    """Whether the same step (``action`` with ``params``, reading ``source``) finished and was
    logged, but was killed before it settled (the new annotation still holds its journal).

    Its re-run then has nothing to do: running it again would add its crops a second time.
    Once settled, running the command again is a new step (it adds crops, as documented).
    """
    store = image / "labels" / name
    if ws is None or not (store / JOURNAL).exists() or not _logged(store, ws):
        return False
    rel = ws.log.relative(store)
    entry: dict[str, Any] | None = None
    for e in ws.log.entries():
        if any(isinstance(o, dict) and o.get("path") == rel for o in e.get("outputs") or []):
            entry = dict(e)
    if entry is None or entry.get("action") != action or entry.get("status") != "ok":
        return False
    recorded = entry.get("params") or {}
    wanted = json.loads(json.dumps(params, default=str))
    if any(recorded.get(k) != v for k, v in wanted.items()):
        return False
    if source is None:
        return True
    read = ws.log.artifact(source)
    return any(
        isinstance(i, dict) and i.get("path") == read.path and i.get("digest") == read.digest
        for i in entry.get("inputs") or []
    )


def _not_again(step: Any, image: Path, name: str, action: str) -> Result:
    """The result of a step found done by :func:`_recorded_unsettled` (settled once logged)."""
    step.status = "notneeded"
    step.message = (
        f"annotation {name!r} already holds this step's crops (recorded; the run that added "
        "them was interrupted before it tidied up)"
    )
    return Result(
        action, "notneeded", str(_store.label_path(image, name)), step.message, {"name": name}
    )


def _recover_annotation(image: Path, name: str, ws: Workspace | None = None) -> None:
    """Undo what a killed (or failed) annotate step left behind, before anything is read.

    A label image still carrying its journal is a write that never finished (or never got
    logged): it goes, and the annotation it was replacing comes back. A finished one
    stays, and the annotation it replaced, if still there, goes; so does one the curator
    log records as it is (a step killed after its log entry, before it settled).
    """
    store = image / "labels" / name
    previous = _previous_path(image, name)
    if store.exists() and not _finished(store) and _unfinished_annotation(store):
        if _logged(store, ws):
            _settle_annotation(image, name)  # on record: the step finished
        else:
            _discard(store, image)
    elif (store / JOURNAL).exists() and _finished(store):
        drop_journal(store)
    if previous.exists():
        if store.exists():
            _discard(previous, image)
        else:
            os.replace(previous, store)
    for left in image.parent.glob(f".{image.name}.*.tmp"):  # a discard killed part way
        kept = left.name.endswith(f".{_PREVIOUS}.tmp")  # (any name's previous annotation)
        if not kept and is_temp_name(left.name) and left.is_dir():
            shutil.rmtree(left, ignore_errors=True)


def _settle_annotation(image: Path, name: str) -> None:
    """Once the step is logged: the new annotation's journal goes, then the one it replaced."""
    drop_journal(image / "labels" / name)
    previous = _previous_path(image, name)
    if previous.exists():
        _discard(previous, image)


def _readd_truth(truth: str, mapping: str) -> str:
    """The command that adds ``truth`` again with a value map (e.g. ``255=1``)."""
    return f"`curated labels add IMAGE --name {truth} --from FILE --kind truth --overwrite --map {mapping}`"


def _truth_too_high(truth: str, crop: np.ndarray) -> str:
    """Why a truth crop cannot become a sparse annotation (values 0..254), and the fix."""
    top = int(crop.max())
    if top == UNANNOTATED:
        return (
            f"truth {truth!r} uses value {UNANNOTATED}, which is reserved for unannotated "
            f"voxels; if it marks a structure (a 0/{UNANNOTATED} mask), add the truth again "
            f"with {_readd_truth(truth, f'{UNANNOTATED}=1')}"
        )
    # never cast: 300 would become 44 in the uint8 annotation, another class without a word
    return (
        f"truth {truth!r} holds label values up to {top} (an instance segmentation?), but "
        f"annotations hold 0..{UNANNOTATED - 1} ({UNANNOTATED} = unannotated); for one class "
        f"of all objects add the truth again with {_readd_truth(truth, 'nonzero=1')}"
    )


INSTANCE_HINT_VALUES = 16
"""Crops holding more label values than this look like an instance segmentation."""


def _instance_note(labels: _SparseLabels, truth: str) -> str:
    """A hint when the copied crops hold many values: training learns one (``--label-value``)."""
    n = len(set(labels.values()) - {BACKGROUND, UNANNOTATED})
    if n <= INSTANCE_HINT_VALUES:
        return ""
    return (
        f"; the crops hold {n} label values (an instance segmentation?) and training learns "
        f"one of them: for one class of all objects add the truth with "
        f"{_readd_truth(truth, 'nonzero=1')}"
    )


def _copied_origin(image: Path, truth: str) -> str:
    """The origin of crops copied from ``truth``: a model's output stays one, anything else
    becomes ``derived-from-truth``."""
    if _store.label_origin(image, truth) == "model-prediction":
        return "model-prediction"
    return "derived-from-truth"


def annotate_from_truth(
    image: str | Path,
    *,
    truth: str = "truth",
    crops: int = 4,
    size: int | tuple[int, int, int] = 32,
    seed: int = 0,
    name: str = "annotations",
    region: str | None = None,
    require_label: int | None = None,
    min_fraction: float = 0.05,
    workspace: Workspace | str | Path | None = None,
) -> Result:
    """Emulate a curator who annotates ``crops`` random crops densely, copying them from ``truth``.

    Crops do not overlap each other or crops already in ``name``; when ``name``
    exists (a sparse annotation), the new crops are added to it.

    Parameters
    ----------
    image
        The OME-Zarr image holding the ``truth`` label image.
    crops, size
        How many crops and their size (one number for a cube, or z, y, x; clipped to the image).
    seed
        Seed of the crop positions.
    region
        Restrict crops to part of the image, e.g. ``"x<0.5"`` (the bright side of a
        sample shaded along x) or ``"x>=0.5"``; see :func:`parse_region`.
    """
    image = local_only(image)
    params = {"truth": truth, "crops": crops, "size": size, "seed": seed}
    params |= {"name": name, "region": region}
    if require_label is not None:
        params |= {"require_label": require_label, "min_fraction": min_fraction}
    with recorder(
        workspace,
        "A",
        "annotate-from-truth",
        inputs=[image],
        params=params,
        libraries=("numpy", "zarr"),
    ) as step:
        if crops < 1:
            msg = "crops must be at least 1"
            raise InputError(msg, field="crops")
        truth_arr = _store.label_level0(image, truth)
        shape = tuple(int(s) for s in truth_arr.shape)
        sz = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
        start, stop = parse_region(region, shape)
        sz = tuple(max(1, min(s, b - a)) for s, a, b in zip(sz, start, stop, strict=True))
        ws = as_workspace(workspace)
        if _recorded_unsettled(image, name, ws, "annotate-from-truth", params):
            result = _not_again(step, image, name, "annotate-from-truth")
        else:
            _recover_annotation(image, name, ws)
            draw = _Draw(crops, sz, start, stop, seed, require_label, min_fraction)
            result = _copy_truth_crops(image, step, truth_arr, truth, name, draw)
    crash_point("annotate-logged")
    _settle_annotation(image, name)
    return result


@dataclass(frozen=True)
class _Draw:
    """Where :func:`annotate_from_truth` draws its crops: how many, their size, the region
    ``[start, stop)``, the seed and the label a crop must hold."""

    crops: int
    size: tuple[int, ...]
    start: tuple[int, ...]
    stop: tuple[int, ...]
    seed: int
    require_label: int | None
    min_fraction: float


def _copy_truth_crops(
    image: Path, step: Any, truth_arr: Any, truth: str, name: str, draw: _Draw
) -> Result:
    """Draw new crops, copy them from ``truth`` into ``name`` and add that to ``step``."""
    shape = tuple(int(s) for s in truth_arr.shape)
    crops, sz, start, stop = draw.crops, draw.size, draw.start, draw.stop
    seed, require_label, min_fraction = draw.seed, draw.require_label, draw.min_fraction
    existing = _existing_annotation(image, name)
    labels, rois = existing if existing else (_SparseLabels(shape), [])
    origin = _copied_origin(image, truth)
    rng = np.random.default_rng(seed)
    new: list[dict[str, Any]] = []
    for _ in range(crops * 200):
        if len(new) == crops:
            break
        off = tuple(
            int(rng.integers(a, b - s + 1)) for a, b, s in zip(start, stop, sz, strict=True)
        )
        if any(_overlaps(off, sz, r["offset"], r["shape"]) for r in rois + new):
            continue
        if require_label is not None:
            sl = tuple(slice(o, o + s) for o, s in zip(off, sz, strict=True))
            if np.mean(np.asarray(truth_arr[sl]) == require_label) < min_fraction:
                continue
        new.append(
            {
                "offset": list(off),
                "shape": list(sz),
                "source": f"truth:{truth}",
                "origin": origin,
            }
        )
    if len(new) < crops:
        msg = f"only {len(new)} non-overlapping {sz} crops fit in the region (with the required label); ask for fewer or smaller crops"
        raise SegmentationError(msg, path=image, field="crops")
    for r in new:
        # only the crops are read from the truth, never the whole volume
        sl = tuple(slice(o, o + s) for o, s in zip(r["offset"], r["shape"], strict=True))
        crop = np.asarray(truth_arr[sl])
        if crop.size and int(crop.max()) >= UNANNOTATED:
            raise SegmentationError(_truth_too_high(truth, crop), path=image, field="truth")
        labels.paste(tuple(r["offset"]), crop)
    rois = rois + new
    # the truth's names win: the crops are its values
    names = {**_existing_names(image, name), **_store.class_names(image, truth)}
    written = _write_annotation(
        image, name, labels, rois, replace=existing is not None, names=names
    )
    annotated = labels.annotated_voxels(rois)
    fraction = annotated / float(np.prod(shape))
    step.add_output(
        _store.label_path(image, name),
        digest=written.details["store_digest"],
        size=written.details["bytes"],
    )
    details = {
        "rois": new,
        "annotated_voxels": annotated,
        "annotated_fraction": fraction,
        "name": name,
    }
    step.details.update({"annotated_fraction": fraction, "crops": len(rois)})
    result = Result(
        "annotate-from-truth",
        "ok",
        str(_store.label_path(image, name)),
        f"{len(new)} crops of {sz} copied from truth {truth!r} (origin {origin}); "
        f"{fraction:.1%} of voxels annotated" + _instance_note(labels, truth),
        details,
    )
    return result


def _read_crop(source: Path, value_map: ValueMap | None = None) -> np.ndarray:
    if not source.exists():
        msg = "no such annotation file"
        raise InputError(msg, path=source)
    suffix = source.name.lower()
    try:
        if suffix.endswith(".npy"):
            arr = np.load(source, allow_pickle=False)
        elif suffix.endswith((".tif", ".tiff")):
            import tifffile

            arr = tifffile.imread(source)
        elif source.is_dir():
            import zarr

            node = zarr.open(str(source), mode="r")
            if isinstance(node, zarr.Array):
                arr = np.asarray(node[...])
            else:
                arr = np.asarray(node[_store.level0_path(node, source)][...])
        else:
            msg = "annotation files must be .tif/.tiff, .npy or an OME-Zarr/Zarr folder"
            raise InputError(msg, path=source)
    except InputError:
        raise
    except Exception as exc:
        msg = f"cannot read the annotation ({exc})"
        raise InputError(msg, path=source) from None
    arr = np.squeeze(arr)
    if arr.ndim != 3:
        msg = f"an annotation crop must be 3D (z, y, x); this one has shape {arr.shape}"
        raise InputError(msg, path=source)
    if arr.dtype.kind == "f":  # a float32 0.0/1.0 mask is fine, a probability map is not
        off = not_whole(arr)
        if off.any():
            msg = (
                f"{int(np.count_nonzero(off)):,} voxels of this {arr.dtype} "
                "annotation are not whole numbers: labels are whole numbers (threshold a "
                "probability map first)"
            )
            raise InputError(msg, path=source)
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        msg = f"an annotation must hold integer labels, not {arr.dtype}"
        raise InputError(msg, path=source)
    if value_map:
        wide = arr.dtype if arr.dtype == np.uint64 else np.dtype(np.int64)
        arr = remap_values(arr, value_map, wide)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > UNANNOTATED):
        msg = f"label values must be 0..{UNANNOTATED} ({UNANNOTATED} = unannotated); found {int(arr.min())}..{int(arr.max())}"
        if int(arr.min()) < 0:
            msg += f" (an 'ignore' label? import it with --map={int(arr.min())}={UNANNOTATED})"
        raise InputError(msg, path=source)
    return arr.astype(np.uint8)


def _crop_note(crop: np.ndarray, value_map: ValueMap | None) -> str:
    """A hint when an imported crop looks like a 0/255 mask whose 255 was meant as a structure."""
    if value_map:
        return "; values " + describe_value_map(value_map)
    if set(np.unique(crop).tolist()) == {BACKGROUND, UNANNOTATED}:
        return (
            f"; it holds only {BACKGROUND} and {UNANNOTATED}, and {UNANNOTATED} means 'not "
            f"annotated': if it marks a structure (a 0/{UNANNOTATED} mask), import it again "
            f"with --map {UNANNOTATED}=1"
        )
    return ""


def _check_crop_grid(source: Path, image: Path) -> None:
    """Refuse an OME-Zarr crop whose voxels are not the image's level-0 voxels (a crop cut
    from a coarser pyramid level or another image): its offset and shape would place
    annotations on the wrong voxels. Crops without a voxel size (TIFF, .npy) are taken as given."""
    from curated.images.ngff import read_ngff

    if not source.is_dir():
        return
    try:
        theirs = read_ngff(source)
    except InputError:
        return  # a bare Zarr array: no voxel size to compare
    mine = read_ngff(image)
    a = [float(theirs.levels[0].scale[i]) for i in theirs.zyx()]
    b = [float(mine.levels[0].scale[i]) for i in mine.zyx()]
    if not np.allclose(a, b, rtol=1e-6, atol=0):
        msg = (
            f"the crop's voxel size {a} is not the image's level-0 voxel size {b}: it was cut "
            "from another pyramid level or image; export the crop at level 0 (offset in "
            "level-0 voxels)"
        )
        raise InputError(msg, path=source, field="offset")


def _source_origin(source: Path) -> str:
    """The origin a crop read from ``source`` has when none is given: the source's own when
    it is a label image curated wrote, else ``human``."""
    rec = recorded_origin(source)
    found = (rec or {}).get("origin")
    if found == MIXED_ORIGIN:
        msg = (
            "the source is a label image whose crops have different origins (mixed): say "
            "which this crop has with --origin"
        )
        raise InputError(msg, path=source, field="origin")
    return str(found) if found else "human"


def import_annotation(
    image: str | Path,
    *,
    source_file: str | Path,
    offset: tuple[int, int, int],
    name: str = "annotations",
    origin: str | None = None,
    class_names: dict[int, str] | None = None,
    value_map: ValueMap | None = None,
    workspace: Workspace | str | Path | None = None,
) -> Result:
    """Add a crop annotated in another tool (napari, Fiji, Paintera ...) to a sparse label image.

    The crop (TIFF, ``.npy`` or Zarr/OME-Zarr; integer values 0..255 with 255 =
    unannotated) is placed at ``offset`` (z, y, x) of the image's level 0. The
    label image ``name`` is created if missing; existing annotations outside the
    crop are kept. Nothing is written when the crop does not fit or is not a label.

    ``origin`` says who made the crop: ``human`` when a person drew it,
    ``derived-from-truth``, ``simulated`` or ``model-prediction`` otherwise (a
    corrected prediction a person checked is ``human``, said explicitly). By default
    it is the source's own origin when the source is a label image curated wrote
    (:func:`curated.images.labels.recorded_origin`: a crop of a model's prediction
    stays ``model-prediction``), else ``human``. ``class_names`` names
    label values (``{1: "mitochondrion"}``); names already in ``name`` are kept.
    ``value_map`` rewrites values as the crop is read (``{255: 1}`` for a 0/255 mask
    from Fiji, whose 255 would otherwise mean "not annotated"); it is recorded.
    """
    from curated.images.labels import check_origin

    image = local_only(image)
    source = Path(source_file)
    origin = check_origin(origin if origin is not None else _source_origin(source))
    params = {
        "offset": list(offset),
        "name": name,
        "origin": origin,
        "value_map": value_map_record(value_map) if value_map else None,
    }
    if class_names:  # recorded where given (a re-run naming other classes is another step)
        params["class_names"] = {str(int(k)): str(v) for k, v in sorted(class_names.items())}
    with recorder(
        workspace,
        "A",
        "annotate-import",
        inputs=[image, source],
        params=params,
        libraries=("numpy", "zarr", "tifffile"),
    ) as step:
        crop = _read_crop(source, value_map)
        _check_crop_grid(source, image)
        shape = tuple(int(s) for s in _store.image_level0(image).shape)
        off = tuple(int(o) for o in offset)
        if len(off) != 3:
            msg = "offset must be three numbers (z y x)"
            raise InputError(msg, field="offset")
        if any(o < 0 or o + s > n for o, s, n in zip(off, crop.shape, shape, strict=True)):
            msg = f"a crop of shape {crop.shape} at offset {off} does not fit in the image of shape {shape}"
            raise InputError(msg, path=source, field="offset")
        if not np.any(crop != UNANNOTATED):
            msg = f"the crop holds no annotated voxels (all {UNANNOTATED})"
            raise InputError(msg, path=source)
        ws = as_workspace(workspace)
        if _recorded_unsettled(image, name, ws, "annotate-import", params, source):
            result = _not_again(step, image, name, "annotate-import")
        else:
            _recover_annotation(image, name, ws)
            result = _import_crop(
                image,
                step,
                source,
                crop,
                off,
                name,
                origin,
                class_names,
                _crop_note(crop, value_map),
            )
    crash_point("annotate-logged")
    _settle_annotation(image, name)
    return result


def _import_crop(
    image: Path,
    step: Any,
    source: Path,
    crop: np.ndarray,
    off: tuple[int, ...],
    name: str,
    origin: str,
    class_names: dict[int, str] | None,
    note: str,
) -> Result:
    """Add ``crop`` at ``off`` to the annotation ``name`` and add that to ``step``;
    ``note`` ends the result's message."""
    shape = tuple(int(s) for s in _store.image_level0(image).shape)
    existing = _existing_annotation(image, name)
    labels = existing[0] if existing else _SparseLabels(shape)
    rois = existing[1] if existing else []
    annotated = crop != UNANNOTATED
    labels.paste(off, crop)
    roi = {
        "offset": list(off),
        "shape": list(crop.shape),
        "source": source.name,
        "origin": origin,
    }
    rois = rois + [roi]
    names = {
        **_existing_names(image, name),
        **{int(k): str(v) for k, v in (class_names or {}).items()},
    }
    written = _write_annotation(
        image, name, labels, rois, replace=existing is not None, names=names
    )
    step.add_output(
        _store.label_path(image, name),
        digest=written.details["store_digest"],
        size=written.details["bytes"],
    )
    result = Result(
        "annotate-import",
        "ok",
        str(_store.label_path(image, name)),
        f"crop {crop.shape} from {source.name} added at {off} (origin {origin})" + note,
        {"roi": roi, "annotated_voxels": int(annotated.sum()), "name": name, "origin": origin},
    )
    return result
