"""How an OME-Zarr image is laid out: axes, pyramid levels, chunks, shards, codecs and metadata.

Pure functions and small frozen dataclasses; nothing here touches the disk. The
writer (:mod:`curated.images.shards`) turns a :class:`StoreLayout` into files.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curated.errors import InputError

NGFF_VERSIONS = ("0.5", "0.4")

INTENSITY_CODEC: dict[str, Any] = {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1}
"""Images: blosc-zstd level 3 with byte shuffle (best ratio/speed for EM intensities)."""

PYRAMID_CODEC: dict[str, Any] = {"id": "blosc", "cname": "zstd", "clevel": 1, "shuffle": 1}
"""Images, levels 1 and up (the default): blosc-zstd level 1 with byte shuffle. The downsampled
levels are smoother than level 0 (the mean halves the noise), and zstd's higher levels search
much longer for matches on smooth data: level 1 compresses them 4-6x faster for ~1 % more bytes
over the whole store. Each array's ``zarr.json`` names its own codec, as Zarr allows; pass
``same_codec`` to :func:`make_layout` to write every level with :data:`INTENSITY_CODEC`."""

LABEL_CODEC: dict[str, Any] = {"id": "zstd", "level": 3}
"""Labels: plain zstd level 3 (dense labels compress best without shuffle)."""


@dataclass(frozen=True)
class Axis:
    """One axis of an image: ``name`` (z, y, x, c, t), ``type`` and ``unit``."""

    name: str
    type: str
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.unit:
            d["unit"] = self.unit
        return d


def make_axes(names: str, unit: str, time_unit: str = "second") -> tuple[Axis, ...]:
    """Axes for ``names`` such as ``"zyx"`` or ``"tczyx"`` (space axes get ``unit``)."""
    out = []
    for n in names.lower():
        if n in "zyx":
            out.append(Axis(n, "space", unit))
        elif n == "c":
            out.append(Axis(n, "channel"))
        elif n == "t":
            out.append(Axis(n, "time", time_unit))
        else:
            msg = f"axis {n!r} is not one of t, c, z, y, x"
            raise InputError(msg, field="axes")
    return tuple(out)


@dataclass(frozen=True)
class Level:
    """One pyramid level: its path, shape, cumulative factor per axis, scale and translation."""

    path: str
    shape: tuple[int, ...]
    factors: tuple[int, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...]

    def transforms(self) -> list[dict[str, Any]]:
        return [
            {"type": "scale", "scale": [float(s) for s in self.scale]},
            {"type": "translation", "translation": [float(t) for t in self.translation]},
        ]


def plan_levels(
    shape: tuple[int, ...],
    voxel_size: tuple[float, ...],
    axes: tuple[Axis, ...],
    chunks: tuple[int, ...],
    *,
    max_levels: int = 32,
) -> tuple[Level, ...]:
    """Plan an anisotropy-aware pyramid.

    At each step every space axis whose current voxel size is below twice the
    smallest current one is halved (``ceil(n/2)`` voxels); levels are added until
    every axis fits one chunk. Non-space axes are never downsampled. Level ``k``
    carries ``scale = voxel * factor`` and ``translation = (factor - 1) / 2 * voxel``,
    the shift that windowed (block) downsampling implies.
    """
    space = [i for i, a in enumerate(axes) if a.type == "space"]
    factors = [1] * len(shape)
    cur_shape = list(shape)
    levels: list[Level] = []
    for k in range(max_levels):
        levels.append(
            Level(
                path=str(k),
                shape=tuple(cur_shape),
                factors=tuple(factors),
                scale=tuple(v * f for v, f in zip(voxel_size, factors, strict=True)),
                translation=tuple(
                    (f - 1) / 2 * v if i in space else 0.0
                    for i, (v, f) in enumerate(zip(voxel_size, factors, strict=True))
                ),
            )
        )
        if all(cur_shape[i] <= chunks[i] for i in space):
            break
        cur_vox = {i: voxel_size[i] * factors[i] for i in space}
        smallest = min(cur_vox.values())
        halve = [i for i in space if cur_vox[i] < 2 * smallest * (1 - 1e-9) and cur_shape[i] > 1]
        if not halve:
            break
        for i in halve:
            factors[i] *= 2
            cur_shape[i] = -(-cur_shape[i] // 2)
    return tuple(levels)


def step_factors(levels: tuple[Level, ...], k: int) -> tuple[int, ...]:
    """The per-axis factor between level ``k-1`` and level ``k`` (1 or 2)."""
    return tuple(b // a for a, b in zip(levels[k - 1].factors, levels[k].factors, strict=True))


def normalise_grid(
    value: int | tuple[int, ...] | list[int], axes: tuple[Axis, ...], what: str
) -> tuple[int, ...]:
    """``64`` → 64 on every space axis and 1 on c/t; a tuple is taken per axis (space axes only or all)."""
    space = [i for i, a in enumerate(axes) if a.type == "space"]
    if isinstance(value, int | np.integer):
        vals = [int(value)] * len(space)
    else:
        vals = [int(v) for v in value]
        if len(vals) == len(axes):
            vals = [vals[i] for i in space]
        if len(vals) != len(space):
            msg = f"{what} needs 1 or {len(space)} values, got {len(vals)}"
            raise InputError(msg, field=what)
    if any(v < 1 for v in vals):
        msg = f"{what} must be positive, got {vals}"
        raise InputError(msg, field=what)
    out = [1] * len(axes)
    for i, v in zip(space, vals, strict=True):
        out[i] = v
    return tuple(out)


@dataclass(frozen=True)
class StoreLayout:
    """Everything needed to write (or resume writing) one multiscale image or label image."""

    axes: tuple[Axis, ...]
    dtype: str
    levels: tuple[Level, ...]
    chunks: tuple[int, ...]
    shard: tuple[int, ...] | None
    """Shard shape (a multiple of ``chunks``), or ``None`` for an unsharded (Zarr v2) store."""
    ngff_version: str
    codec: dict[str, Any] = field(default_factory=lambda: dict(INTENSITY_CODEC))
    method: str = "mean"
    """Downsampling reducer: ``mean`` (intensity) or ``mode`` (labels)."""
    fill_value: int | float = 0
    pyramid_codec: dict[str, Any] | None = None
    """The codec of levels 1 and up, or ``None``: :attr:`codec` on every level."""

    def level_codec(self, level: int) -> dict[str, Any]:
        """The codec the chunks of pyramid level ``level`` are stored with."""
        return self.codec if level == 0 or self.pyramid_codec is None else self.pyramid_codec

    @property
    def zarr_format(self) -> int:
        return 3 if self.ngff_version == "0.5" else 2

    block: tuple[int, ...] = ()
    """The region one write task owns: the shard (v3), or a shard-sized group of chunks (v2)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": [a.to_dict() for a in self.axes],
            "dtype": self.dtype,
            "levels": [
                {
                    "path": lv.path,
                    "shape": list(lv.shape),
                    "factors": list(lv.factors),
                    "scale": list(lv.scale),
                    "translation": list(lv.translation),
                }
                for lv in self.levels
            ],
            "chunks": list(self.chunks),
            "shard": list(self.shard) if self.shard else None,
            "ngff_version": self.ngff_version,
            "codec": self.codec,
            "method": self.method,
            "fill_value": self.fill_value,
            "block": list(self.block),
            # absent with one codec everywhere: the plans of stores begun before levels had
            # their own codec stay the same (an unfinished one resumes with --same-codec)
            **({"pyramid_codec": self.pyramid_codec} if self.pyramid_codec is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreLayout:
        return cls(
            axes=tuple(Axis(a["name"], a["type"], a.get("unit")) for a in d["axes"]),
            dtype=d["dtype"],
            levels=tuple(
                Level(
                    lv["path"],
                    tuple(lv["shape"]),
                    tuple(lv["factors"]),
                    tuple(lv["scale"]),
                    tuple(lv["translation"]),
                )
                for lv in d["levels"]
            ),
            chunks=tuple(d["chunks"]),
            shard=tuple(d["shard"]) if d["shard"] else None,
            ngff_version=d["ngff_version"],
            codec=d["codec"],
            pyramid_codec=d.get("pyramid_codec"),
            method=d["method"],
            fill_value=d["fill_value"],
            block=tuple(d["block"]),
        )


def make_layout(
    shape: tuple[int, ...],
    dtype: np.dtype | str,
    axes: tuple[Axis, ...],
    voxel: tuple[float, ...],
    *,
    chunks: int | tuple[int, ...] = 64,
    shard: int | tuple[int, ...] | None = 512,
    ngff_version: str = "0.5",
    method: str = "mean",
    codec: dict[str, Any] | None = None,
    same_codec: bool = False,
) -> StoreLayout:
    """Check the parameters and plan the store (chunks clipped to the image, shards a multiple of chunks).

    Intensity images with the default codec store levels 1 and up with :data:`PYRAMID_CODEC`
    unless ``same_codec``; labels and an explicit ``codec`` use one codec on every level.
    """
    if ngff_version not in NGFF_VERSIONS:
        msg = f"ngff_version must be one of {', '.join(NGFF_VERSIONS)}, not {ngff_version!r}"
        raise InputError(msg, field="ngff_version")
    ch = normalise_grid(chunks, axes, "chunks")
    # a chunk never needs to be bigger than the image (keeps tiny images to one small chunk)
    ch = tuple(max(1, min(c, n)) for c, n in zip(ch, shape, strict=True))
    req = normalise_grid(shard if shard is not None else chunks, axes, "shard")
    blk_list = []
    for c, s, n in zip(ch, req, shape, strict=True):
        if c >= n:  # the whole axis fits one chunk: so does the shard
            s = c
        if s % c and s > c:
            msg = f"shard ({s}) must be a multiple of the chunk size ({c})"
            raise InputError(msg, field="shard")
        blk_list.append(max(c, s))
    # no shard needs to extend past the image by more than one chunk
    blk = tuple(min(s, -(-n // c) * c) for s, c, n in zip(blk_list, ch, shape, strict=True))
    sh = blk if (ngff_version == "0.5" and shard is not None) else None
    levels = plan_levels(tuple(shape), tuple(voxel), axes, ch)
    return StoreLayout(
        axes=axes,
        dtype=np.dtype(dtype).str.lstrip("<>|="),
        levels=levels,
        chunks=ch,
        shard=sh,
        block=blk,
        ngff_version=ngff_version,
        codec=dict(codec or (INTENSITY_CODEC if method == "mean" else LABEL_CODEC)),
        pyramid_codec=(
            dict(PYRAMID_CODEC)
            if method == "mean" and codec is None and not same_codec and len(levels) > 1
            else None
        ),
        method=method,
    )


def iter_block_grid(shape: tuple[int, ...], block: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every block index of a regular grid over ``shape``, in C order, one at a time (memory
    bounded whatever the grid's size)."""
    counts = [-(-n // b) for n, b in zip(shape, block, strict=True)]
    return itertools.product(*(range(c) for c in counts))


def block_grid(shape: tuple[int, ...], block: tuple[int, ...]) -> list[tuple[int, ...]]:
    """:func:`iter_block_grid` as a list."""
    return list(iter_block_grid(shape, block))


def block_region(
    index: tuple[int, ...], block: tuple[int, ...], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """The slice of ``shape`` covered by grid block ``index`` (clipped at the edge)."""
    return tuple(
        slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(index, block, shape, strict=True)
    )


# ---------------------------------------------------------------- metadata


def multiscales(layout: StoreLayout, name: str, *, label: bool = False) -> dict[str, Any]:
    """The ``multiscales[0]`` entry for this layout."""
    ms: dict[str, Any] = {
        "name": name,
        "axes": [a.to_dict() for a in layout.axes],
        "datasets": [
            {"path": lv.path, "coordinateTransformations": lv.transforms()} for lv in layout.levels
        ],
        "type": "mode" if layout.method == "mode" else "mean",
        "metadata": {
            "description": (
                "windowed mode over 2-voxel blocks on the halved axes (labels)"
                if layout.method == "mode"
                else "windowed mean over 2-voxel blocks on the halved axes"
            ),
            "method": f"curated.images.downsample.{layout.method}",
            "anisotropy": "each level halves the space axes whose voxel size is below twice the smallest",
        },
    }
    if layout.ngff_version == "0.4":
        ms["version"] = "0.4"
    return ms


def omero(
    dtype: str, window: tuple[float, float, float, float], name: str, *, inverted: bool = False
) -> dict[str, Any]:
    """A one-channel grey ``omero`` block with the contrast window ``(min, max, start, end)``;
    ``inverted``: viewers show high values dark (the source says 0 is white)."""
    lo, hi, start, end = window
    return {
        "name": name,
        "version": "0.5",
        "rdefs": {"model": "greyscale", "defaultZ": 0},
        "channels": [
            {
                "active": True,
                "color": "FFFFFF",
                "label": "intensity",
                "coefficient": 1,
                "family": "linear",
                "inverted": inverted,
                "window": {
                    "min": float(lo),
                    "max": float(hi),
                    "start": float(start),
                    "end": float(end),
                },
            }
        ],
    }


def window_from_sample(
    sample: np.ndarray, dtype: str, *, low: float = 0.1, high: float = 99.9
) -> tuple[float, float, float, float]:
    """Contrast window from a sample of intensities: percentiles ``low``/``high`` as start/end."""
    dt = np.dtype(dtype)
    if sample.size == 0:
        start, end = 0.0, 1.0
    else:
        start, end = (float(v) for v in np.percentile(sample.astype(np.float64), [low, high]))
    if dt.kind in "ui":
        info = np.iinfo(dt)
        lo, hi = float(info.min), float(info.max)
    else:
        lo = float(np.min(sample)) if sample.size else 0.0
        hi = float(np.max(sample)) if sample.size else 1.0
    if end <= start:
        end = start + 1.0
        hi = max(hi, end)
    return lo, hi, start, end


def label_colors(values: list[int]) -> list[dict[str, Any]]:
    """Distinct, reproducible RGBA colours for label values (0 is transparent background)."""
    out = []
    for v in values:
        if v == 0:
            out.append({"label-value": 0, "rgba": [0, 0, 0, 0]})
            continue
        # golden-ratio hue walk: neighbours get far-apart hues
        h = (v * 0.618033988749895) % 1.0
        r, g, b = _hsv_to_rgb(h, 0.75, 0.95)
        out.append({"label-value": int(v), "rgba": [r, g, b, 255]})
    return out


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = math.floor(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return round(r * 255), round(g * 255), round(b * 255)


def level_block(layout: StoreLayout, k: int) -> tuple[int, ...]:
    """The shard (task block) of level ``k``: the layout's block clipped to that level's chunk-rounded shape."""
    shape = layout.levels[k].shape
    return tuple(
        min(b, -(-n // c) * c) for b, c, n in zip(layout.block, layout.chunks, shape, strict=True)
    )
