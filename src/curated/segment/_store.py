"""Read access to OME-Zarr images and their label images for the segmentation layer.

Writing always goes through :mod:`curated.images`; this module only finds arrays
and attributes (NGFF 0.5 keeps them under ``attrs["ome"]``, 0.4 at the top level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

from curated.errors import InputError, SegmentationError


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    return dict(attrs.get("ome", attrs))


def open_group(path: str | Path, *, mode: str = "r") -> zarr.Group:
    p = Path(path)
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
    return Path(path) / "labels" / name


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
