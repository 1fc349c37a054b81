"""Voxel geometry shared by training, evaluation and export: boxes in ``(z, y, x)``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curated.errors import InputError

Vec3 = tuple[int, int, int]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box of voxels, ``offset`` and ``shape`` as ``(z, y, x)``."""

    offset: Vec3
    shape: Vec3

    @property
    def stop(self) -> Vec3:
        return tuple(o + s for o, s in zip(self.offset, self.shape, strict=True))  # type: ignore[return-value]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Index expression for the box's voxels; parts before 0 are dropped.

        A grown box (e.g. a training crop widened by the network's context) can start
        below 0. Python reads a negative slice start as "from the end", so
        ``slice(-2, 22)`` on 20 planes would select planes 18-19 instead of 0-19; the
        start is clipped to 0 so the expression means the box's overlap with the array.
        """
        return tuple(
            slice(max(o, 0), max(e, 0)) for o, e in zip(self.offset, self.stop, strict=True)
        )  # type: ignore[return-value]

    @property
    def size(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    @property
    def centre(self) -> tuple[float, float, float]:
        return tuple(o + s / 2 for o, s in zip(self.offset, self.shape, strict=True))  # type: ignore[return-value]

    def intersects(self, other: Box) -> bool:
        """True when the two boxes share at least one voxel."""
        return all(
            a0 < b1 and b0 < a1
            for a0, a1, b0, b1 in zip(self.offset, self.stop, other.offset, other.stop, strict=True)
        )

    def grow(self, margin: Sequence[int], within: Sequence[int] | None = None) -> Box:
        """The box widened by ``margin`` voxels per side, clipped to ``[0, within)`` if given."""
        lo = [o - m for o, m in zip(self.offset, margin, strict=True)]
        hi = [e + m for e, m in zip(self.stop, margin, strict=True)]
        if within is not None:
            lo = [max(0, v) for v in lo]
            hi = [min(w, v) for w, v in zip(within, hi, strict=True)]
        return Box(tuple(lo), tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True)))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, list[int]]:
        return {"offset": list(self.offset), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Box:
        try:
            offset = tuple(int(v) for v in d["offset"])
            shape = tuple(int(v) for v in d["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"a box needs 'offset' and 'shape' as three integers each, got {dict(d)!r}"
            raise InputError(msg) from exc
        if len(offset) != 3 or len(shape) != 3 or min(shape) <= 0:
            msg = f"a box needs three offsets and three positive sizes (z, y, x), got {dict(d)!r}"
            raise InputError(msg)
        return cls(offset, shape)  # type: ignore[arg-type]


def vec3(value: int | Sequence[int], what: str) -> Vec3:
    """``value`` as three positive integers ``(z, y, x)`` (one int is used for all three)."""
    out = (int(value),) * 3 if isinstance(value, int | np.integer) else tuple(int(v) for v in value)
    if len(out) != 3 or min(out) <= 0:
        msg = (
            f"{what} must be a positive integer or three positive integers (z, y, x), got {value!r}"
        )
        raise InputError(msg, field=what)
    return out  # type: ignore[return-value]


VOXEL_SIZE_TOLERANCE = 1.25
"""An image's voxels may be this many times coarser or finer than a model's training
voxels, along every axis, before applying the model is warned about."""


def voxel_size_mismatch(
    trained: Sequence[float] | None, image: Sequence[float], *, who: str = "the model"
) -> str | None:
    """A warning when ``image`` voxels (nm, z y x) differ from the ``trained`` ones by more
    than :data:`VOXEL_SIZE_TOLERANCE` along an axis; ``None`` when they match or the
    model did not record its voxel size.

    The network sees voxels, not nanometres: at 2.5× coarser voxels a mitochondrion looks
    2.5× smaller than any it learned from, and its context window covers 2.5× more tissue.
    """
    if not trained or len(trained) != 3 or len(image) != 3:
        return None
    try:
        ratios = [float(i) / float(t) for i, t in zip(image, trained, strict=True)]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(r) and r > 0 for r in ratios):
        return None
    worst = max(range(3), key=lambda i: abs(math.log(ratios[i])))
    r = ratios[worst]
    if 1 / VOXEL_SIZE_TOLERANCE <= r <= VOXEL_SIZE_TOLERANCE:
        return None

    def nm(v: Sequence[float]) -> str:
        return " × ".join(f"{float(x):g}" for x in v)

    factor, how, looks = (r, "coarser", "smaller") if r > 1 else (1 / r, "finer", "larger")
    return (
        f"{who} was trained on {nm(trained)} nm voxels (z, y, x) and this image has "
        f"{nm(image)} nm, {factor:.3g}× {how} along {'zyx'[worst]}: structures look "
        f"{factor:.3g}× {looks} to the network than in training, so expect worse results; "
        "resample the image to the model's voxel size, or train on crops of this image"
    )
