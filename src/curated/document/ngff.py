"""Read what a README needs from an OME-Zarr image: levels, voxel size, labels, slices.

Tolerant by design: a store that cannot be read yields an :class:`ImageInfo` whose
``problem`` says why (the README then shows a TODO instead of crashing). The metadata
come from :mod:`curated.images.ngff` in its tolerant mode (NGFF 0.4 and 0.5; an
interrupted store is described, not refused). Pixel data are read one plane at a
time, so memory is bounded by a slice of one level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curated.images.ngff import NgffMetadata, is_zarr_store, read_ngff

__all__ = [
    "ImageInfo",
    "LabelInfo",
    "LevelInfo",
    "image_name",
    "is_zarr_store",
    "pick_level",
    "read_image_info",
    "read_plane",
]


@dataclass(frozen=True)
class LevelInfo:
    """One pyramid level: its array path, shape and scale (per axis, in ``axes`` order)."""

    path: str
    shape: tuple[int, ...]
    scale: tuple[float, ...]


@dataclass
class LabelInfo:
    """A label image inside an OME-Zarr image's ``labels`` group."""

    name: str
    path: Path
    levels: list[LevelInfo] = field(default_factory=list)
    kind: str | None = None
    """``truth``, ``annotation`` or ``prediction`` (from the ``curated`` attribute block)."""
    ai_generated: bool | None = None
    origin: str | None = None
    """``human``, ``derived-from-truth``, ``simulated``, ``model-prediction`` or ``mixed``
    (``curated.origin``); ``model-prediction`` for older AI-generated labels, else ``None``."""
    origins: dict[str, int] = field(default_factory=dict)
    """For a sparse annotation: how many crops have each origin."""
    rois: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    """For a sparse annotation: each recorded crop's ``(offset, shape)`` in level-0 voxels."""
    model: dict[str, Any] | None = None
    colors: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    """Label value → name, from ``image-label`` ``properties``."""
    unannotated: set[int] = field(default_factory=set)
    """Values that mean "not annotated" (sparse annotations), drawn transparent."""
    source: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class ImageInfo:
    """An OME-Zarr image as the README describes it."""

    name: str
    path: Path
    ngff_version: str | None = None
    axes: list[dict[str, Any]] = field(default_factory=list)
    levels: list[LevelInfo] = field(default_factory=list)
    dtype: str | None = None
    labels: list[LabelInfo] = field(default_factory=list)
    problem: str | None = None

    @property
    def axis_names(self) -> list[str]:
        return [str(a.get("name", "")).lower() for a in self.axes]

    @property
    def unit(self) -> str | None:
        for a in self.axes:
            if a.get("type") == "space" and a.get("unit"):
                return str(a["unit"])
        return None

    def spatial(self, values: tuple[Any, ...]) -> dict[str, Any]:
        """Pick the ``z``, ``y`` and ``x`` entries of a per-axis tuple."""
        return {n: v for n, v in zip(self.axis_names, values, strict=False) if n in ("z", "y", "x")}

    @property
    def voxel_size(self) -> dict[str, float]:
        return self.spatial(self.levels[0].scale) if self.levels else {}

    @property
    def shape(self) -> dict[str, int]:
        return self.spatial(self.levels[0].shape) if self.levels else {}


def _levels(path: Path, meta: NgffMetadata) -> list[LevelInfo]:
    """Each level's shape from its array's own metadata (no pixel is read)."""
    import zarr

    levels = []
    for lv in meta.levels:
        arr = zarr.open_array(str(path / lv.path), mode="r")
        if meta.axes and arr.ndim != len(meta.axes):
            msg = (
                f"level {lv.path} has {arr.ndim} dimensions but {len(meta.axes)} axes are declared"
            )
            raise ValueError(msg)
        levels.append(
            LevelInfo(path=lv.path, shape=tuple(int(s) for s in arr.shape), scale=lv.scale)
        )
    return levels


def read_image_info(path: str | Path, name: str | None = None) -> ImageInfo:
    """Describe the OME-Zarr image at ``path`` (never raises; see ``problem``)."""
    import zarr

    path = Path(path)
    info = ImageInfo(name=name or image_name(path), path=path)
    meta = read_ngff(path, tolerant=True)
    info.ngff_version = meta.version if meta.levels else None
    if not meta.levels:
        info.problem = meta.problems[0] if meta.problems else "no NGFF multiscales metadata"
        return info
    info.axes = [a.to_dict() for a in meta.axes]
    try:
        info.levels = _levels(path, meta)
        info.dtype = str(zarr.open_array(str(path / info.levels[0].path), mode="r").dtype)
    except Exception as exc:  # any unreadable store becomes a TODO, not a crash
        info.problem = f"cannot read the store ({type(exc).__name__}: {exc})"
        return info
    info.labels = [_read_label(path, lname) for lname in meta.labels]
    return info


def _read_label(image: Path, lname: str) -> LabelInfo:
    label = LabelInfo(name=lname, path=image / "labels" / lname)
    meta = read_ngff(label.path, tolerant=True)
    if not meta.levels:
        label.problem = "cannot read the label image (" + (meta.problems or ("no levels",))[0] + ")"
        return label
    try:
        label.levels = _levels(label.path, meta)
    except Exception as exc:
        label.problem = f"cannot read the label image ({type(exc).__name__}: {exc})"
        return label
    il = meta.image_label
    if il is not None:
        label.colors = dict(il.colors)
        label.names = il.names
        label.unannotated = set(il.unannotated)
        label.source = dict(il.source)
    _describe_origin(label, meta.curated)
    return label


def _describe_origin(label: LabelInfo, block: Any) -> None:
    """Kind, AI marking, origin and model from the label image's ``curated`` block."""
    label.kind = block.get("kind")
    label.ai_generated = block.get("ai_generated")
    origin = block.get("origin")
    label.origin = (
        str(origin)
        if isinstance(origin, str) and origin
        else ("model-prediction" if label.ai_generated else None)
    )
    label.model = block.get("model") if isinstance(block.get("model"), dict) else None
    sparse = block.get("annotation") if isinstance(block.get("annotation"), dict) else {}
    for roi in sparse.get("rois") or []:
        if isinstance(roi, dict) and isinstance(roi.get("origin"), str):
            label.origins[roi["origin"]] = label.origins.get(roi["origin"], 0) + 1
        box = _roi_box(roi)
        if box is not None:
            label.rois.append(box)
    if isinstance(sparse.get("unannotated"), int):
        label.unannotated.add(int(sparse["unannotated"]))


def _roi_box(roi: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(offset, shape)`` of a recorded crop, or ``None`` when the record is malformed."""
    if not isinstance(roi, dict):
        return None
    off, shp = roi.get("offset"), roi.get("shape")
    if not (isinstance(off, list) and isinstance(shp, list) and len(off) == len(shp) and off):
        return None
    try:
        return tuple(int(v) for v in off), tuple(int(v) for v in shp)
    except (TypeError, ValueError):
        return None


def image_name(path: Path) -> str:
    """``cell`` for ``derived/cell.ome.zarr``."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def pick_level(levels: list[LevelInfo], axis_names: list[str], max_dim: int = 512) -> int:
    """Index of the finest level whose largest spatial dimension is ≤ ``max_dim`` (else the coarsest)."""
    spatial = [i for i, n in enumerate(axis_names) if n in ("z", "y", "x")]
    for i, level in enumerate(levels):
        if max(level.shape[j] for j in spatial) <= max_dim:
            return i
    return len(levels) - 1


def _open_array(path: str) -> Any:
    import zarr

    return zarr.open_array(path, mode="r")


def read_plane(
    store: Path, level: LevelInfo, axis_names: list[str], fixed: dict[str, int]
) -> np.ndarray:
    """Read one 2-D plane: ``fixed`` gives the index of the axes to cut (e.g. ``{"z": 10}``).

    Channel and time axes are cut at 0. Only the chunks the plane crosses are read.
    """
    arr = _open_array(str(store / level.path))
    index: list[Any] = []
    for name, size in zip(axis_names, level.shape, strict=True):
        if name in fixed:
            index.append(min(max(int(fixed[name]), 0), size - 1))
        elif name in ("c", "t"):
            index.append(0)
        else:
            index.append(slice(None))
    return np.asarray(arr[tuple(index)])
