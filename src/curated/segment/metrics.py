"""Segmentation scores from summed confusion counts: Dice/IoU/precision/recall,
boundary-band and instance counts, and bootstrap confidence intervals over blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from curated.errors import SegmentationError

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95


@dataclass
@dataclass
class BlockCounts:
    """Confusion counts of one block (voxels and instances)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    band_tp: int = 0
    band_fp: int = 0
    band_fn: int = 0
    inst_tp: int = 0
    inst_fp: int = 0
    inst_fn: int = 0
    truth_voxels: int = 0
    pred_voxels: int = 0

    def __add__(self, other: BlockCounts) -> BlockCounts:
        return BlockCounts(
            **{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__}
        )

    def to_dict(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in self.__dataclass_fields__}

    @property
    def scored(self) -> int:
        """Voxels the block scored (its annotated voxels): TP + FP + FN + TN."""
        return self.tp + self.fp + self.fn + self.tn


def ratio_scores(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    """Dice/F1, IoU, precision and recall from summed counts.

    Both-empty (no truth, no prediction) scores 1 for Dice, F1 and IoU, as
    CellMap and empanada do; a ratio with a zero denominator otherwise is
    ``None`` (undefined), never a silent 0.
    """
    if tp + fp + fn == 0:
        return {"dice": 1.0, "iou": 1.0, "precision": None, "recall": None}
    return {
        "dice": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def summed_scores(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    """:func:`ratio_scores` of counts summed over blocks or tiles.

    With no voxel of the class in truth or prediction anywhere in the sum, Dice and IoU
    are ``None`` too: the both-empty 1 lets one empty block count among others, but a sum
    with nothing in it measured nothing, and 1 would flatter (a class that lies only
    inside the training regions; small objects lying wholly in the boundary band).
    """
    out = ratio_scores(tp, fp, fn)
    if tp + fp + fn == 0:
        out["dice"] = out["iou"] = None
    return out


def boundary_band_mask(truth: np.ndarray, band: int, *, connectivity: int = 1) -> np.ndarray:
    """Voxels within ``band`` voxels (inside or outside) of the truth's edges.

    Outside the array counts as "same as the nearest voxel", so the array's own
    faces are not taken for object edges; pass a truth array grown by ``band``
    voxels and crop afterwards to get exact bands at block faces.
    """
    if band <= 0:
        return np.zeros(truth.shape, dtype=bool)
    structure = ndimage.generate_binary_structure(truth.ndim, connectivity)
    padded = np.pad(truth, band, mode="edge")
    grown = ndimage.binary_dilation(padded, structure, iterations=band)
    shrunk = ndimage.binary_erosion(padded, structure, iterations=band, border_value=1)
    inner = tuple(slice(band, -band) for _ in range(truth.ndim))
    return (grown & ~shrunk)[inner]


def instance_counts(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    connectivity: int = 3,
) -> tuple[int, int, int]:
    """Instance TP/FP/FN: connected components matched one-to-one at IoU ≥ ``iou_threshold``.

    Components come from :func:`scipy.ndimage.label` (``connectivity`` 1 = faces,
    3 = faces, edges and corners). Pairs are matched by the Hungarian algorithm
    on IoU, restricted to pairs reaching the threshold.
    """
    structure = ndimage.generate_binary_structure(3, connectivity)
    t_lab, n_t = ndimage.label(truth, structure)
    p_lab, n_p = ndimage.label(pred, structure)
    if n_t == 0 or n_p == 0:
        return 0, int(n_p), int(n_t)
    t_area = np.bincount(t_lab.ravel(), minlength=n_t + 1)
    p_area = np.bincount(p_lab.ravel(), minlength=n_p + 1)
    both = (t_lab > 0) & (p_lab > 0)
    pair = t_lab[both].astype(np.int64) * (n_p + 1) + p_lab[both]
    keys, inter = np.unique(pair, return_counts=True)
    ti, pi = np.divmod(keys, n_p + 1)
    iou = inter / (t_area[ti] + p_area[pi] - inter)
    ok = iou >= iou_threshold
    if not ok.any():
        return 0, int(n_p), int(n_t)
    ti, pi, iou = ti[ok], pi[ok], iou[ok]
    rows, row_idx = np.unique(ti, return_inverse=True)
    cols, col_idx = np.unique(pi, return_inverse=True)
    cost = np.zeros((rows.size, cols.size))
    cost[row_idx, col_idx] = iou
    r, c = linear_sum_assignment(cost, maximize=True)
    tp = int(np.count_nonzero(cost[r, c] >= iou_threshold))
    return tp, int(n_p) - tp, int(n_t) - tp


def count_block(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    boundary_band: int = 1,
    truth_context: np.ndarray | None = None,
    context_slices: tuple[slice, ...] | None = None,
    iou_threshold: float = 0.5,
    connectivity: int = 3,
    valid: np.ndarray | None = None,
) -> BlockCounts:
    """Count one block; ``pred`` and ``truth`` are boolean arrays of the same shape.

    ``truth_context`` (with ``context_slices`` locating the block inside it) is
    the truth grown by ``boundary_band`` voxels, so the band is exact at the
    block's faces. ``valid`` (optional) marks the voxels that count: voxels the
    truth leaves unannotated are neither positives nor negatives.
    """
    if pred.shape != truth.shape:
        msg = f"prediction block {pred.shape} and truth block {truth.shape} differ in shape"
        raise SegmentationError(msg)
    pred = pred.astype(bool, copy=False)
    truth = truth.astype(bool, copy=False)
    if valid is not None:
        # unannotated truth voxels count neither way
        pred = pred & valid
        truth = truth & valid
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    # unannotated voxels are no true negatives either
    scored = pred.size if valid is None else int(np.count_nonzero(valid))
    if truth_context is not None and context_slices is not None:
        band = boundary_band_mask(truth_context.astype(bool, copy=False), boundary_band)[
            context_slices
        ]
    else:
        band = boundary_band_mask(truth, boundary_band)
    keep = ~band if valid is None else ~band & valid
    i_tp, i_fp, i_fn = instance_counts(
        pred, truth, iou_threshold=iou_threshold, connectivity=connectivity
    )
    return BlockCounts(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=int(scored - tp - fp - fn),
        band_tp=int(np.count_nonzero(pred & truth & keep)),
        band_fp=int(np.count_nonzero(pred & ~truth & keep)),
        band_fn=int(np.count_nonzero(~pred & truth & keep)),
        inst_tp=i_tp,
        inst_fp=i_fp,
        inst_fn=i_fn,
        truth_voxels=int(np.count_nonzero(truth)),
        pred_voxels=int(np.count_nonzero(pred)),
    )


MIN_BOOTSTRAP_BLOCKS = 16
"""The whole-volume bootstrap tries a block size only while at least this many blocks hold
scored voxels (:mod:`curated.segment.wholevolume`): below it the percentile interval is itself
too narrow (it cannot reach beyond the few blocks drawn)."""


_CI_KEYS = {
    "dice": ("tp", "fp", "fn"),
    "dice_boundary_excluded": ("band_tp", "band_fp", "band_fn"),
    "instance_f1": ("inst_tp", "inst_fp", "inst_fn"),
}


def tile_bootstrap_sums(
    data: np.ndarray, *, samples: int, seed: int, batch_cells: int = 4_000_000
) -> np.ndarray:
    """``samples`` bootstrap resamples of the rows of ``data`` (tiles × counts), summed.

    Each resample draws the rows with replacement as multinomial weights, in batches of at
    most ``batch_cells`` weights, so memory stays bounded for millions of tiles.
    """
    n = int(data.shape[0])
    rng = np.random.default_rng(seed)
    data = np.asarray(data, dtype=np.float64)
    sums = np.empty((samples, data.shape[1]))
    per, done = max(1, batch_cells // n), 0
    while done < samples:
        k = min(per, samples - done)
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=k).astype(np.float64)
        sums[done : done + k] = w @ data
        done += k
    return sums


def ratio_interval(
    num: np.ndarray, den: np.ndarray, *, empty_is_one: bool, confidence: float = CONFIDENCE
) -> list[float] | None:
    """Percentile interval of the bootstrap ratios ``num / den`` (one value per resample).

    A resample with ``den == 0`` counts as 1 when ``empty_is_one`` (Dice, IoU: nothing to
    find, nothing found) and is left out otherwise; ``None`` when no resample is left, and
    when no resample has anything to score (the point estimate is undefined then,
    :func:`summed_scores`, and an interval of 1–1 would flatter).
    """
    if not np.any(den > 0):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0 if empty_is_one else np.nan)
    val = val[~np.isnan(val)]
    if val.size == 0:
        return None
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    return [float(np.quantile(val, lo_q)), float(np.quantile(val, hi_q))]


def bootstrap_ci(
    counts: Sequence[BlockCounts],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap CI over blocks for summed-count metrics.

    Each resample draws ``len(counts)`` blocks with replacement, sums their
    counts and recomputes the metric, exactly as the point estimate is made.
    ``None`` when fewer than two blocks exist (no spread to resample).
    """
    keys = [*_CI_KEYS, "iou", "precision", "recall"]
    if len(counts) < 2:
        return dict.fromkeys(keys)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(counts), size=(samples, len(counts)))

    def arr(name: str) -> np.ndarray:
        return np.array([getattr(c, name) for c in counts], dtype=np.float64)[idx].sum(axis=1)

    def interval(num: np.ndarray, den: np.ndarray, empty_is_one: bool) -> list[float] | None:
        return ratio_interval(num, den, empty_is_one=empty_is_one, confidence=confidence)

    out: dict[str, list[float] | None] = {}
    for key, (a, b, c) in _CI_KEYS.items():
        tp, fp, fn = arr(a), arr(b), arr(c)
        out[key] = interval(2 * tp, 2 * tp + fp + fn, True)
    tp, fp, fn = arr("tp"), arr("fp"), arr("fn")
    out["iou"] = interval(tp, tp + fp + fn, True)
    out["precision"] = interval(tp, tp + fp, False)
    out["recall"] = interval(tp, tp + fn, False)
    return out


def summarize(counts: Sequence[BlockCounts]) -> dict[str, Any]:
    """Summed counts and the scores computed from them (raw, boundary-excluded, instance)."""
    total = sum(counts, BlockCounts())
    inst = summed_scores(total.inst_tp, total.inst_fp, total.inst_fn)
    return {
        "blocks": len(counts),
        # blocks holding annotated voxels: a sparse truth leaves others with nothing to score
        "scored_blocks": sum(1 for c in counts if c.scored),
        "raw": {
            "tp": total.tp,
            "fp": total.fp,
            "fn": total.fn,
            **summed_scores(total.tp, total.fp, total.fn),
        },
        "boundary_excluded": {
            "tp": total.band_tp,
            "fp": total.band_fp,
            "fn": total.band_fn,
            **summed_scores(total.band_tp, total.band_fp, total.band_fn),
        },
        "instance": {
            "tp": total.inst_tp,
            "fp": total.inst_fp,
            "fn": total.inst_fn,
            "f1": inst["dice"],
            "precision": inst["precision"],
            "recall": inst["recall"],
        },
        "truth_voxels": total.truth_voxels,
        "pred_voxels": total.pred_voxels,
        "empty_truth_blocks": sum(1 for c in counts if c.truth_voxels == 0),
    }


def masked_dice(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Dice of two boolean arrays over the voxels of ``mask``; 1 when both are empty there."""
    p, t = pred[mask], target[mask]
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)
