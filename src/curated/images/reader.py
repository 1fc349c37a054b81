"""Open a finished OME-Zarr image (0.5 or 0.4) and its label images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import ConversionError, InputError
from curated.images.objstore import as_path
from curated.images.store import INCOMPLETE_KEY, read_group_attrs


@dataclass(frozen=True)
class OmeZarrImage:
    """A multiscale OME-Zarr image (or label image) opened for reading.

    ``levels[0]`` is full resolution. ``scale``/``translation`` are per level, in
    axis order; ``voxel_size`` is level 0's scale on the ``z, y, x`` axes.
    """

    path: Path
    levels: list[Any]
    """zarr arrays, level 0 first."""
    axes: list[str]
    units: list[str | None]
    scale: list[list[float]]
    translation: list[list[float]]
    ngff_version: str
    attrs: dict[str, Any] = field(default_factory=dict)
    """The group's attributes as stored (``ome`` for 0.5, top level for 0.4)."""
    name: str | None = None

    @property
    def ome(self) -> dict[str, Any]:
        """The OME metadata block whatever the version."""
        return self.attrs.get("ome", self.attrs) if self.ngff_version == "0.5" else self.attrs

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.levels[0].dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    @property
    def voxel_size(self) -> tuple[float, ...]:
        return tuple(
            s for s, a in zip(self.scale[0], self.axes, strict=True) if a in ("z", "y", "x")
        )

    @property
    def unit(self) -> str | None:
        return next(
            (u for u, a in zip(self.units, self.axes, strict=True) if a in ("z", "y", "x") and u),
            None,
        )

    @property
    def zarr_format(self) -> int:
        return 3 if self.ngff_version == "0.5" else 2

    @property
    def level_paths(self) -> list[str]:
        return [d["path"] for d in self.ome["multiscales"][0]["datasets"]]

    @property
    def is_label(self) -> bool:
        return "image-label" in self.ome

    def label_names(self) -> list[str]:
        """Names of the finished label images under ``labels/``."""
        got = read_group_attrs(self.path / "labels")
        if got is None:
            return []
        attrs, _ = got
        block = attrs.get("ome", attrs) if self.ngff_version == "0.5" else attrs
        return list(block.get("labels", []))

    def open_label(self, name: str) -> OmeZarrImage:
        if name not in self.label_names():
            msg = f"has no finished label image {name!r} (labels: {', '.join(self.label_names()) or 'none'})"
            raise InputError(msg, path=self.path, field="labels")
        return open_image(self.path / "labels" / name)

    def read(self, level: int = 0, region: tuple[slice, ...] | None = None) -> np.ndarray:
        arr = self.levels[level]
        return np.asarray(arr[region if region is not None else ...])


def open_image(path: str | Path) -> OmeZarrImage:
    """Open a finished OME-Zarr multiscale image.

    Raises
    ------
    InputError
        ``path`` is not a zarr group / has no ``multiscales``.
    ConversionError
        The store is an unfinished (interrupted) conversion.
    """
    import zarr

    root = as_path(path)  # a folder, or an s3:// URL read through zarr's fsspec store
    got = read_group_attrs(root)
    if got is None:
        msg = (
            "is not an OME-Zarr image (no zarr.json or .zgroup); convert one with `curated convert`"
        )
        raise InputError(msg, path=root)
    attrs, fmt = got
    if INCOMPLETE_KEY in attrs:
        msg = "is an unfinished conversion (interrupted); re-run the same command to finish it"
        raise ConversionError(msg, path=root)
    ome = attrs.get("ome", {}) if fmt == 3 else attrs
    ms_list = ome.get("multiscales")
    if not ms_list:
        msg = "has no OME-Zarr multiscales metadata; it is not an OME-Zarr image"
        raise InputError(msg, path=root)
    ms = ms_list[0]
    version = str(ome.get("version") or ms.get("version") or ("0.5" if fmt == 3 else "0.4"))
    axes = [a["name"] for a in ms["axes"]]
    units = [a.get("unit") for a in ms["axes"]]
    levels, scales, translations = [], [], []
    for ds in ms["datasets"]:
        levels.append(zarr.open_array(str(root / ds["path"]), mode="r", zarr_format=fmt))
        sc = [1.0] * len(axes)
        tr = [0.0] * len(axes)
        for t in ds.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                sc = [float(v) for v in t["scale"]]
            elif t.get("type") == "translation":
                tr = [float(v) for v in t["translation"]]
        scales.append(sc)
        translations.append(tr)
    return OmeZarrImage(
        path=root,
        levels=levels,
        axes=axes,
        units=units,
        scale=scales,
        translation=translations,
        ngff_version=version,
        attrs=attrs,
        name=ms.get("name"),
    )
