"""Open a finished OME-Zarr image (0.5 or 0.4) and its label images.

The metadata come from :mod:`curated.images.ngff` (strict: an interrupted store is
refused); this module adds the level arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import InputError
from curated.images.ngff import NgffMetadata, read_ngff
from curated.images.ngff import label_names as _label_names
from curated.objstore import StorePath, as_path


@dataclass(frozen=True)
class OmeZarrImage:
    """A multiscale OME-Zarr image (or label image) opened for reading.

    ``levels[0]`` is full resolution. ``scale``/``translation`` are per level, in
    axis order, and are the effective ones (the level's transformations followed by
    the multiscale-wide ones); ``voxel_size`` is level 0's scale on the ``z, y, x`` axes.
    """

    path: Path | StorePath
    levels: list[Any]
    """zarr arrays, level 0 first."""
    metadata: NgffMetadata
    """The typed NGFF metadata (axes, levels, ``image-label``, ``curated`` block)."""

    @property
    def axes(self) -> list[str]:
        return list(self.metadata.axis_names)

    @property
    def units(self) -> list[str | None]:
        return list(self.metadata.units)

    @property
    def scale(self) -> list[list[float]]:
        return [list(lv.scale) for lv in self.metadata.levels]

    @property
    def translation(self) -> list[list[float]]:
        return [list(lv.translation) for lv in self.metadata.levels]

    @property
    def ngff_version(self) -> str:
        return str(self.metadata.version)

    @property
    def attrs(self) -> dict[str, Any]:
        """The group's attributes as stored (``ome`` for 0.5, top level for 0.4)."""
        return dict(self.metadata.attrs)

    @property
    def name(self) -> str | None:
        return self.metadata.name

    @property
    def ome(self) -> dict[str, Any]:
        """The OME metadata block as stored, whatever the version."""
        return dict(self.metadata.ome)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.levels[0].dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    @property
    def voxel_size(self) -> tuple[float, ...]:
        return self.metadata.voxel_size

    @property
    def unit(self) -> str | None:
        return self.metadata.unit

    @property
    def zarr_format(self) -> int:
        return self.metadata.zarr_format

    @property
    def level_paths(self) -> list[str]:
        return self.metadata.level_paths

    @property
    def is_label(self) -> bool:
        return self.metadata.is_label

    def label_names(self) -> list[str]:
        """Names of the finished label images under ``labels/``."""
        return _label_names(self.path)

    def open_label(self, name: str) -> OmeZarrImage:
        if name not in self.label_names():
            msg = f"has no finished label image {name!r} (labels: {', '.join(self.label_names()) or 'none'})"
            raise InputError(msg, path=self.path, field="labels")
        return open_image(self.path / "labels" / name)

    def read(self, level: int = 0, region: tuple[slice, ...] | None = None) -> np.ndarray:
        arr = self.levels[level]
        return np.asarray(arr[region if region is not None else ...])


def open_image(path: str | Path) -> OmeZarrImage:
    """Open a finished OME-Zarr multiscale image (strict: see :func:`curated.images.ngff.read_ngff`).

    Raises
    ------
    InputError
        ``path`` is not a zarr group, has no (or malformed) ``multiscales``, or a
        level's array is missing or has another number of dimensions than the axes.
    ConversionError
        The store is being written or was interrupted.
    """
    root = as_path(path)  # a folder, or an s3:// URL read through zarr's fsspec store
    meta = read_ngff(root)
    levels = [_open_level(root, meta, k) for k in range(len(meta.levels))]
    return OmeZarrImage(path=root, levels=levels, metadata=meta)


def _open_level(root: Path | StorePath, meta: NgffMetadata, k: int) -> Any:
    import zarr

    rel = meta.levels[k].path
    try:
        arr = zarr.open_array(str(root / rel), mode="r", zarr_format=meta.zarr_format)  # type: ignore[arg-type]
    except Exception as exc:  # zarr raises several kinds for a missing or damaged array
        msg = f"level {rel!r} cannot be opened as a Zarr array ({type(exc).__name__})"
        raise InputError(msg, path=root, field=f"multiscales[0].datasets[{k}]") from None
    if arr.ndim != len(meta.axes):
        msg = f"level {rel!r} has {arr.ndim} dimensions but {len(meta.axes)} axes are declared"
        raise InputError(msg, path=root, field=f"multiscales[0].datasets[{k}]")
    return arr
