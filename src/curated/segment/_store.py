"""Read access to OME-Zarr images and their label images for the segmentation layer.

Writing always goes through :mod:`curated.images`; the metadata are read by
:mod:`curated.images.ngff` (strict for the arrays a computation reads: an
interrupted store is refused; tolerant for the ``curated`` block and the class
names that describe a label image, which a resumed prediction reads back).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import zarr

from curated.errors import InputError, SegmentationError
from curated.images import ngff
from curated.images.units import convert_length, length_unit
from curated.objstore import StorePath, as_path


def open_group(path: str | Path, *, mode: str = "r") -> zarr.Group:
    p = as_path(path)
    if not p.exists():
        msg = "no such OME-Zarr image"
        raise InputError(msg, path=p)
    try:
        return zarr.open_group(str(p), mode=mode)  # type: ignore[arg-type]
    except Exception as exc:  # zarr raises several kinds for "not a group"
        msg = f"not an OME-Zarr image ({exc})"
        raise InputError(msg, path=p) from None


def level0_path(group: zarr.Group, where: str | Path) -> str:
    """Path of the full-resolution array inside ``group`` (strict: refuses an interrupted store)."""
    return ngff.from_group(group, path=where).levels[0].path


def image_level0(path: str | Path) -> zarr.Array:
    """The full-resolution array (z, y, x) of an OME-Zarr image."""
    meta = ngff.read_ngff(path)
    arr = open_group(path)[meta.levels[0].path]
    if not isinstance(arr, zarr.Array):
        msg = f"level {meta.levels[0].path!r} is a Zarr group, not an array"
        raise InputError(msg, path=path, field="multiscales[0].datasets[0].path")
    if arr.ndim != 3:
        msg = f"segmentation needs a 3D (z, y, x) image; level 0 has {arr.ndim} dimensions"
        raise InputError(msg, path=path)
    return arr


def voxel_size(path: str | Path) -> tuple[float, float, float]:
    """Level-0 voxel size (z, y, x) in nanometres: the level's scale followed by the
    multiscale-wide one, converted from each axis's unit (an axis without a unit is
    taken as nanometres, as ``curated convert`` writes them).

    Network planning, the normalisation's σ and exported models read sizes in nm: a
    store written in micrometres (Fiji, bioformats2raw) would otherwise plan a 5 nm
    image as 0.005 nm.
    """
    meta = ngff.read_ngff(path)
    scale = meta.levels[0].scale
    units = meta.units
    out = []
    for axis in meta.zyx():
        value = float(scale[axis])
        if units[axis] is not None:
            try:
                unit = length_unit(units[axis])
            except InputError:
                msg = (
                    f"its axis {meta.axes[axis].name!r} is in {units[axis]!r}; segmentation "
                    "needs a length unit (e.g. nanometer, micrometer, angstrom)"
                )
                raise SegmentationError(msg, path=path, field="unit") from None
            if unit != "nanometer":  # rounded to the source's precision: 0.008 µm is 8 nm
                value = convert_length(value, unit, "nanometer")
        out.append(value)
    return (out[0], out[1], out[2])


def label_names(path: str | Path) -> list[str]:
    return ngff.label_names(path)


def label_path(path: str | Path, name: str) -> Path | StorePath:
    return as_path(path) / "labels" / name


def label_group(path: str | Path, name: str, *, mode: str = "r") -> zarr.Group:
    lp = label_path(path, name)
    if not lp.exists():
        have = ", ".join(label_names(path)) or "none"
        msg = f"has no label image {name!r} (label images: {have})"
        raise SegmentationError(msg, path=path, field="labels")
    return open_group(lp, mode=mode)


def label_level0(path: str | Path, name: str, *, mode: str = "r") -> zarr.Array:
    g = label_group(path, name, mode=mode)
    return g[level0_path(g, label_path(path, name))]  # type: ignore[return-value]


def _describe_label(path: str | Path, name: str) -> ngff.NgffMetadata:
    """A label image's metadata, tolerant: an unfinished one still says what it is."""
    return ngff.from_group(label_group(path, name), path=label_path(path, name), tolerant=True)


def label_curated_attrs(path: str | Path, name: str) -> dict[str, Any]:
    """The ``curated`` key of a label group (kind, ai_generated, model, annotation ...)."""
    return dict(_describe_label(path, name).curated)


GENERIC_NAME = re.compile(r"^(class|label)\s*\d+$", re.IGNORECASE)
"""Names that say nothing about the structure (``class 1``): never shown as a class name."""


def label_properties(path: str | Path, name: str) -> list[dict[str, Any]]:
    """The ``image-label.properties`` of a label image (``[]`` when it has none)."""
    il = _describe_label(path, name).image_label
    return [dict(p) for p in il.properties] if il is not None else []


def class_names(path: str | Path, name: str) -> dict[int, str]:
    """Label value → the structure's name, from the label image's properties.

    Background (0), the unannotated marker and placeholder names (``class 1``)
    are left out, so a caller can fall back to its own wording.
    """
    out: dict[int, str] = {}
    for p in label_properties(path, name):
        value = int(p["label-value"])  # an int in every property the reader keeps
        text = str(p.get("name") or "").strip()
        if value == 0 or p.get("curated:unannotated") or not text or GENERIC_NAME.match(text):
            continue
        out[value] = text
    return out


def label_origin(path: str | Path, name: str) -> str | None:
    """The label image's ``curated.origin``; ``model-prediction`` for older AI-generated labels."""
    attrs = label_curated_attrs(path, name)
    origin = attrs.get("origin")
    if isinstance(origin, str) and origin:
        return origin
    return "model-prediction" if attrs.get("ai_generated") else None
