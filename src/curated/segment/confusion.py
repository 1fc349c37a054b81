"""What a binary model confuses: its false positives against a multi-class truth.

A model of class K (say mitochondria, value 1) is scored against a truth that may
name more classes (nucleus 2, ...). A voxel the model calls K where the truth
says otherwise is a false positive; *which* truth class it lies in, and how far
it is from a class boundary, tells a curator what went wrong:

- false positives within a voxel or two of K's own boundary are outline errors
  (boundary truth is uncertain anyway);
- false positives inside another class, or near another class's boundary (the
  nuclear envelope is the nucleus boundary), are confusions of one structure
  for another;
- the rest lie in background far from any labelled structure.

Counts are made per block or tile (``count_confusion``) and summed
(:class:`Confusion` adds), so memory stays bounded by the block.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from curated.segment.metrics import summed_scores

DISTANCE_BINS = (1, 2, 4)
"""Distances (voxels, Euclidean) to a class boundary at which false positives are counted."""

HALO = max(DISTANCE_BINS)
"""Truth voxels needed around a block for exact distances up to the largest bin."""


@dataclass
class Confusion:
    """False-positive voxels by truth value, and by distance to each class's boundary."""

    fp: int = 0
    by_truth: dict[int, int] = field(default_factory=dict)
    """Truth value → false-positive voxels lying there (0 = background)."""
    near: dict[int, list[int]] = field(default_factory=dict)
    """Truth class → false-positive voxels within each of :data:`DISTANCE_BINS` of its boundary."""

    def __add__(self, other: Confusion) -> Confusion:
        by = dict(self.by_truth)
        for k, v in other.by_truth.items():
            by[k] = by.get(k, 0) + v
        near = {k: list(v) for k, v in self.near.items()}
        for k, v in other.near.items():
            near[k] = [a + b for a, b in zip(near.get(k, [0] * len(v)), v, strict=True)]
        return Confusion(self.fp + other.fp, by, near)

    def summary(
        self,
        target: int,
        names: Mapping[int, str] | None = None,
        *,
        top: int = 3,
        tp: int | None = None,
        fn: int | None = None,
    ) -> dict[str, Any]:
        """JSON-ready split of the false positives, with sentences a curator can read.

        With ``tp`` and ``fn`` (counted over the same voxels as these false positives),
        every class also gets ``dice_without``: the Dice the model would score if it made
        none of its false positives there, which says what annotating that confusion is
        worth; and ``errors`` splits all wrong voxels into false positives per truth class
        and missed ones.
        """
        names = names or {}

        def label(v: int) -> str:
            if v == 0:
                return "background (label 0)"
            return f"{names.get(v, f'class {v}')} (label {v})"

        rows = [
            {
                "truth_value": int(v),
                "name": names.get(v, "background" if v == 0 else f"class {v}"),
                "voxels": int(n),
                "share": n / self.fp if self.fp else None,
            }
            for v, n in sorted(self.by_truth.items(), key=lambda kv: (-kv[1], kv[0]))
            if n
        ]
        errors = None
        if tp is not None and fn is not None:
            dice = summed_scores(tp, self.fp, fn)["dice"]
            for r in rows:
                # None when nothing would be left to score (no truth of the class, no other error)
                r["dice_without"] = summed_scores(tp, self.fp - r["voxels"], fn)["dice"]
            wrong = self.fp + fn
            errors = {
                "wrong_voxels": int(wrong),
                "missed_voxels": int(fn),
                "missed_share": fn / wrong if wrong else None,
                "dice": dice,
            }
        near = []
        for v, counts in sorted(self.near.items()):
            near.append(
                {
                    "class_value": int(v),
                    "name": names.get(v, f"class {v}"),
                    "is_target": v == target,
                    "within": {
                        str(d): {"voxels": int(c), "share": c / self.fp if self.fp else None}
                        for d, c in zip(DISTANCE_BINS, counts, strict=True)
                    },
                }
            )
        sentences = []
        if self.fp == 0:
            sentences.append("The model made no false-positive voxel here.")
        only_background = len(rows) == 1 and rows[0]["truth_value"] == 0
        if only_background:
            # "100% of false-positive voxels are background" is all a binary truth can say;
            # say what it cannot tell instead
            sentences.append(
                "Every false-positive voxel lies in background: the truth names no other "
                f"structure, so what the model takes for {names.get(target, f'class {target}')} "
                "cannot be named (label the confused structures as further classes to see them)."
            )
        for k, r in enumerate([] if only_background else rows[:top]):
            if k and r["share"] < 0.005:
                # "0% of false-positive voxels are class 53": a handful of stray truth values
                # (anti-aliased label slices) says nothing; the rows keep their counts
                continue
            text = f"{r['share']:.0%} of false-positive voxels are {label(r['truth_value'])} in the truth"
            if errors is not None and r["truth_value"] != 0 and r["dice_without"] is not None:
                # what fixing this confusion would be worth (background is not one confusion)
                text += (
                    f"; without them Dice would be {r['dice_without']:.3f} "
                    f"instead of {errors['dice']:.3f}"
                )
            sentences.append(text + ".")
        if errors is not None and errors["wrong_voxels"]:
            sentences.append(
                f"Of all wrong voxels, {errors['missed_share']:.0%} are {names.get(target, f'class {target}')} "
                f"voxels the model missed and {1 - errors['missed_share']:.0%} false positives."
            )
        d = DISTANCE_BINS[1]
        for n in near:
            share = n["within"][str(d)]["share"]
            if not share or share < 0.05:
                continue
            what = (
                "its own boundary (outline errors)"
                if n["is_target"]
                else f"the boundary of {label(n['class_value'])}"
            )
            sentences.append(f"{share:.0%} lie within {d} voxels of {what}.")
        return {
            "false_positive_voxels": int(self.fp),
            "by_truth_class": rows,
            "near_boundary": near,
            "distance_bins_voxels": list(DISTANCE_BINS),
            **({"errors": errors} if errors is not None else {}),
            "sentences": sentences,
        }


def count_confusion(
    pred: np.ndarray,
    truth_context: np.ndarray,
    inner: tuple[slice, ...],
    target: int,
    *,
    valid: np.ndarray | None = None,
    ignore: Collection[int] = (),
) -> Confusion:
    """Split the false positives of one block.

    Parameters
    ----------
    pred
        Boolean prediction of the target class, the block's shape.
    truth_context
        Truth values of the block grown by up to :data:`HALO` voxels per side
        (clipped at the volume), so distances near the block's faces are exact.
    inner
        Where the block lies inside ``truth_context``.
    target
        The truth value the model predicts.
    valid
        Voxels that count (outside training regions, annotated); all when ``None``.
    ignore
        Truth values that mean "not annotated"; never counted.
    """
    truth = truth_context[inner]
    fp_mask = pred & (truth != target)
    for v in ignore:
        fp_mask &= truth != v
    if valid is not None:
        fp_mask &= valid
    n_fp = int(np.count_nonzero(fp_mask))
    if n_fp == 0:
        return Confusion()
    values, counts = np.unique(truth[fp_mask], return_counts=True)
    by = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    # distances are only needed up to HALO around the false positives: crop to them
    # (grown by HALO), which keeps the distance transforms small where errors are sparse
    idx = np.nonzero(fp_mask)
    lo = [int(i.min()) + (s.start or 0) - HALO for i, s in zip(idx, inner, strict=True)]
    hi = [int(i.max()) + (s.start or 0) + HALO + 1 for i, s in zip(idx, inner, strict=True)]
    lo = [max(0, v) for v in lo]
    hi = [min(n, v) for n, v in zip(truth_context.shape, hi, strict=True)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = truth_context[crop]
    fp_local = np.zeros(local.shape, bool)
    fp_local[tuple(i + (s.start or 0) - a for i, s, a in zip(idx, inner, lo, strict=True))] = True
    near: dict[int, list[int]] = {}
    present = [int(v) for v in np.unique(local) if v != 0 and int(v) not in ignore]
    for c in present:
        inside = local == c
        if inside.all():
            continue  # no boundary of c within HALO of any false positive
        # distance of every voxel to the boundary of class c, from whichever side it is on
        dist = np.where(
            inside,
            ndimage.distance_transform_edt(inside),
            ndimage.distance_transform_edt(~inside),
        )[fp_local]
        near[c] = [int(np.count_nonzero(dist <= d)) for d in DISTANCE_BINS]
    return Confusion(n_fp, by, near)
