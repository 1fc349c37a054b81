"""Level 0 of an OME-Zarr image or label image as a lazily read ``(z, y, x)`` volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import InputError
from curated.segment.geometry import Box, Vec3


@dataclass
@dataclass
class Volume:
    """Level 0 of an OME-Zarr image or label image, opened lazily."""

    path: Path
    array: Any
    attrs: dict[str, Any]
    spatial: tuple[int, int, int]
    lead: tuple[int, ...]

    @property
    def shape(self) -> Vec3:
        return tuple(self.array.shape[i] for i in self.spatial)  # type: ignore[return-value]

    def read(self, box: Box) -> np.ndarray:
        index: list[Any] = [0] * self.array.ndim
        for axis, sl in zip(self.spatial, box.slices, strict=True):
            index[axis] = sl
        return np.asarray(self.array[tuple(index)])


def ome_attrs(group: Any) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return dict(attrs.get("ome", {})) | {k: v for k, v in attrs.items() if k != "ome"}


def open_level0(path: Path, what: str) -> Volume:
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a missing/non-group path
        msg = f"cannot open the {what} as an OME-Zarr group ({type(exc).__name__}: {exc})"
        raise InputError(msg, path=path) from None
    attrs = ome_attrs(group)
    ms = attrs.get("multiscales")
    if not ms:
        raise InputError(f"the {what} has no OME-Zarr 'multiscales' metadata", path=path)
    ds_path = ms[0]["datasets"][0]["path"]
    axes = [a["name"] if isinstance(a, dict) else a for a in ms[0].get("axes", ["z", "y", "x"])]
    try:
        spatial = tuple(axes.index(n) for n in ("z", "y", "x"))
    except ValueError:
        raise InputError(f"the {what} must have z, y and x axes, has {axes}", path=path) from None
    array: Any = group[ds_path]
    lead = tuple(i for i in range(array.ndim) if i not in spatial)
    if any(array.shape[i] != 1 for i in lead):
        dims = {axes[i]: array.shape[i] for i in lead}
        raise InputError(
            f"the {what} has non-spatial axes of size > 1 {dims}; evaluate one channel/time point",
            path=path,
        )
    return Volume(path=path, array=array, attrs=attrs, spatial=spatial, lead=lead)  # type: ignore[arg-type]
