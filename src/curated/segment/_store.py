"""Read access to OME-Zarr images and their label images for the segmentation layer.

Writing always goes through :mod:`curated.images`; this module only finds arrays
and attributes (NGFF 0.5 keeps them under ``attrs["ome"]``, 0.4 at the top level).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import zarr

from curated.errors import InputError, SegmentationError
from curated.images.objstore import as_path


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    return dict(attrs.get("ome", attrs))


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
    ms = _ome(dict(group.attrs)).get("multiscales")
    if not ms:
        msg = "has no multiscales metadata; is it an OME-Zarr image?"
        raise InputError(msg, path=where)
    return str(ms[0]["datasets"][0]["path"])


def image_level0(path: str | Path) -> zarr.Array:
    """The full-resolution array (z, y, x) of an OME-Zarr image."""
    g = open_group(path)
    arr = g[level0_path(g, path)]
    if arr.ndim != 3:
        msg = f"segmentation needs a 3D (z, y, x) image; level 0 has {arr.ndim} dimensions"
        raise InputError(msg, path=path)
    return arr  # type: ignore[return-value]


def voxel_size(path: str | Path) -> tuple[float, float, float]:
    """Level-0 voxel size (z, y, x) from the image's coordinate transformations."""
    g = open_group(path)
    ms = _ome(dict(g.attrs))["multiscales"][0]
    scale = [1.0, 1.0, 1.0]
    for t in ms.get("coordinateTransformations", []) + ms["datasets"][0].get(
        "coordinateTransformations", []
    ):
        if t.get("type") == "scale":
            scale = [a * b for a, b in zip(scale, t["scale"][-3:], strict=True)]
    return (float(scale[0]), float(scale[1]), float(scale[2]))


def label_names(path: str | Path) -> list[str]:
    g = open_group(path)
    if "labels" not in g:
        return []
    return list(_ome(dict(g["labels"].attrs)).get("labels", []))


def label_path(path: str | Path, name: str) -> Path:
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


def label_curated_attrs(path: str | Path, name: str) -> dict[str, Any]:
    """The ``curated`` key of a label group (kind, ai_generated, model, annotation ...)."""
    g = label_group(path, name)
    attrs = dict(g.attrs)
    return dict(attrs.get("curated") or _ome(attrs).get("curated") or {})


GENERIC_NAME = re.compile(r"^(class|label)\s*\d+$", re.IGNORECASE)
"""Names that say nothing about the structure (``class 1``): never shown as a class name."""


def label_properties(path: str | Path, name: str) -> list[dict[str, Any]]:
    """The ``image-label.properties`` of a label image (``[]`` when it has none)."""
    g = label_group(path, name)
    il = _ome(dict(g.attrs)).get("image-label") or {}
    return [dict(p) for p in il.get("properties") or [] if isinstance(p, dict)]


def class_names(path: str | Path, name: str) -> dict[int, str]:
    """Label value → the structure's name, from the label image's properties.

    Background (0), the unannotated marker and placeholder names (``class 1``)
    are left out, so a caller can fall back to its own wording.
    """
    out: dict[int, str] = {}
    for p in label_properties(path, name):
        try:
            value = int(p.get("label-value"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
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
