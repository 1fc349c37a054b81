"""Voxel geometry shared by training, evaluation and export: boxes in ``(z, y, x)``."""

from __future__ import annotations

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
