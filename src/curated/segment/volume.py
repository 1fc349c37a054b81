"""Level 0 of an OME-Zarr image or label image as a lazily read ``(z, y, x)`` volume."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import InputError
from curated.images.ngff import read_ngff
from curated.segment.geometry import Box, Vec3


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


def open_level0(path: Path, what: str) -> Volume:
    """Level 0 of an image or label image, read through :mod:`curated.images.ngff` (strict)."""
    import zarr

    try:
        meta = read_ngff(path)
        spatial = meta.zyx()
    except InputError as exc:
        raise InputError(f"the {what} {exc.message}", path=path, field=exc.field) from None
    array: Any = zarr.open_group(str(path), mode="r")[meta.levels[0].path]
    lead = tuple(i for i in range(array.ndim) if i not in spatial)
    if any(array.shape[i] != 1 for i in lead):
        dims = {meta.axes[i].name: array.shape[i] for i in lead}
        raise InputError(
            f"the {what} has non-spatial axes of size > 1 {dims}; evaluate one channel/time point",
            path=path,
        )
    return Volume(path=path, array=array, attrs=meta.flat_attrs, spatial=spatial, lead=lead)
