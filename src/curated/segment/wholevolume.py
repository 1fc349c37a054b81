"""Score every voxel outside the training regions, tile by tile, when full truth exists.

A few random blocks can hold a handful of foreground voxels and miss a whole
kind of error (the demo's blocks scored Dice 0.97 where the volume scored
0.74). When the truth covers the volume, :func:`score_whole_volume` reads
prediction and truth one tile at a time (memory bounded by a tile plus a small
halo), leaves out every voxel inside a training region grown by the model's
context and denoising halo (see `evaluate.training_exclusion`; and every unannotated truth voxel), and sums:

- TP/FP/FN overall, raw and with a band around truth edges excluded;
- the same per x-bin (quarters by default): a curve along x, because FIB-SEM
  shading runs along x;
- where the false positives lie (:mod:`curated.segment.confusion`);
- a percentile bootstrap 95 % CI over spatial blocks of tiles, overall and per bin
  (tiles are split at the bin edges, so each tile lies in one bin).

Neighbouring tiles are not independent: a nucleus, a cell body or a shaded corner
spans several of them, so a bootstrap that resamples single tiles gives intervals
that are too narrow. On the real ssTEM benchmark the interval of the same
prediction widened from 0.08 to 0.20 Dice as the resampled unit grew from 32² to
256² pixel columns (``benchmarks/RESULTS.md``, "The whole-volume interval over
spatial blocks"). So the bootstrap resamples cubes of k × k × k tiles (a block
bootstrap), trying k = 1, 2, 4, … while at least :data:`MIN_BOOTSTRAP_BLOCKS` blocks hold
scored voxels, and keeps the block size whose Dice interval is widest: the
interval stops widening once blocks are larger than the range of the dependence,
and the widest is the conservative choice. The block size and every width tried
are reported.

Per-tile counts are kept as one small integer row per tile for the bootstrap.
Instance scores are not computed here: objects cross tiles.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curated.progress import ProgressReporter, ensure_progress
from curated.segment.baseline import ThresholdBaseline, paired_dice_ci
from curated.segment.confusion import HALO, Confusion, count_confusion
from curated.segment.geometry import Box, Vec3
from curated.segment.metrics import (
    BOOTSTRAP_SAMPLES,
    CONFIDENCE,
    MIN_BOOTSTRAP_BLOCKS,
    boundary_band_mask,
    ratio_interval,
    ratio_scores,
    summed_scores,
    tile_bootstrap_sums,
)
from curated.segment.volume import Volume

DEFAULT_TILE = 64
"""Edge of a scoring tile in voxels (z, y, x); tiles are also cut at the x-bin edges."""
MIN_TILE = 16
"""``tile=None`` halves :data:`DEFAULT_TILE` down to this edge while the image holds fewer
than :data:`WANT_TILES` tiles (:func:`auto_tile`)."""
WANT_TILES = 64
"""Tiles ``tile=None`` aims for: enough that blocks of 2 × 2 × 2 tiles still leave
:data:`~curated.segment.metrics.MIN_BOOTSTRAP_BLOCKS` blocks to resample."""


def auto_tile(shape: Sequence[int]) -> int:
    """The tile edge for an image of ``shape``: :data:`DEFAULT_TILE`, halved (not below
    :data:`MIN_TILE`) while fewer than :data:`WANT_TILES` tiles would cover the image. A
    small image (the demo's 64 × 192 × 192 holds 18 tiles of 64³) then gets tiles small
    enough for the block bootstrap to try blocks of several tiles; a large one keeps
    64³ reads."""
    edge = DEFAULT_TILE
    while edge > MIN_TILE:
        n = int(np.prod([-(-int(d) // edge) for d in shape]))
        if n >= WANT_TILES:
            break
        edge //= 2
    return edge


COUNT_FIELDS = ("tp", "fp", "fn", "band_tp", "band_fp", "band_fn", "truth", "pred", "scored")


def _totals(rows: np.ndarray) -> dict[str, int]:
    tot = rows.sum(axis=0) if rows.size else np.zeros(len(COUNT_FIELDS), np.int64)
    return dict(zip(COUNT_FIELDS, (int(v) for v in tot), strict=True))


@dataclass
class WholeVolumeScores:
    """What :func:`score_whole_volume` found."""

    image_shape: Vec3
    tile: Vec3
    x_edges: list[int]
    counts: np.ndarray
    """One row per tile, columns :data:`COUNT_FIELDS`."""
    tile_bin: np.ndarray
    """The x-bin of each tile."""
    excluded_voxels: int
    ignored_voxels: int
    confusion: Confusion = field(default_factory=Confusion)
    class_voxels: dict[int, int] = field(default_factory=dict)
    """Truth voxels of each value among the scored voxels."""
    seed: int = 0
    baseline: ThresholdBaseline | None = None
    """The tuned threshold scored on the same voxels (:mod:`curated.segment.baseline`)."""
    baseline_counts: np.ndarray | None = None
    """One (tp, fp, fn) row per tile for :attr:`baseline`."""
    tile_offsets: np.ndarray | None = None
    """The (z, y, x) offset of each tile; ``None``: every tile is its own bootstrap block."""

    def block_ids(self, multiple: int) -> np.ndarray:
        """Each tile's bootstrap block: cubes of ``multiple`` tiles a side, never across x-bins."""
        n = int(self.counts.shape[0])
        if self.tile_offsets is None or multiple <= 1 or n == 0:
            return np.arange(n)
        edge = np.asarray(self.tile, np.int64) * int(multiple)
        cell = self.tile_offsets // edge
        key = np.concatenate([self.tile_bin[:, None], cell], axis=1)
        return np.unique(key, axis=0, return_inverse=True)[1].reshape(-1)

    @functools.cached_property
    def _intervals_tried(self) -> dict[int, tuple[int, dict[str, list[float] | None]]]:
        """Block size (tiles a side) → its block count and the whole volume's intervals over
        those blocks, for k = 1, 2, 4, … while the blocks are enough (module docstring)."""
        tried: dict[int, tuple[int, dict[str, list[float] | None]]] = {}
        scored = self.counts[:, COUNT_FIELDS.index("scored")] > 0
        multiple, last = 1, -1
        while True:
            ids = self.block_ids(multiple)[scored]
            blocks = int(np.unique(ids).size)
            if blocks < (MIN_BOOTSTRAP_BLOCKS if multiple > 1 else 2) or blocks == last:
                break
            sums = _block_sums(self.counts[scored], ids)
            tried[multiple] = (blocks, tile_bootstrap_ci(sums, seed=self.seed))
            multiple, last = multiple * 2, blocks
        return tried

    @functools.cached_property
    def bootstrap_blocks(self) -> dict[str, Any]:
        """The block size the intervals use (tiles a side), its block count, and the Dice
        interval width of every block size tried (module docstring)."""
        scored = self.counts[:, COUNT_FIELDS.index("scored")] > 0
        tried: list[dict[str, Any]] = [
            {
                "tiles_per_side": k,
                "blocks": blocks,
                "dice_ci_width": None if ci["dice"] is None else ci["dice"][1] - ci["dice"][0],
            }
            for k, (blocks, ci) in self._intervals_tried.items()
        ]
        best = max(tried, key=lambda t: t["dice_ci_width"] or 0.0, default=None)
        chosen = best["tiles_per_side"] if best else 1
        return {
            "tiles_per_side": chosen,
            "edge_voxels": [int(t) * chosen for t in self.tile],
            "blocks": best["blocks"] if best else int(np.count_nonzero(scored)),
            "tried": tried,
            "rule": (
                f"cubes of k × k × k tiles resampled together (k = 1, 2, 4, … while at least "
                f"{MIN_BOOTSTRAP_BLOCKS} blocks hold scored voxels); the k whose Dice interval is widest"
            ),
        }

    def _blocked(
        self, rows: np.ndarray, where: np.ndarray, multiple: int | None = None
    ) -> np.ndarray:
        """``rows`` (the tiles selected by ``where``) summed per bootstrap block."""
        k = self.bootstrap_blocks["tiles_per_side"] if multiple is None else multiple
        return _block_sums(rows, self.block_ids(k)[where])

    def _multiple_within(self, where: np.ndarray) -> int:
        """The largest block size up to the overall one that leaves :data:`MIN_BOOTSTRAP_BLOCKS` blocks in
        ``where`` (one x-bin), else single tiles: a handful of large blocks gives no interval."""
        k = int(self.bootstrap_blocks["tiles_per_side"])
        while k > 1 and np.unique(self.block_ids(k)[where]).size < MIN_BOOTSTRAP_BLOCKS:
            k //= 2
        return k

    def baseline_summary(self) -> dict[str, Any] | None:
        """The threshold's held-out Dice and the model's lead over it, with bootstrap CIs."""
        if self.baseline is None or self.baseline_counts is None:
            return None
        scored = self.counts[:, COUNT_FIELDS.index("scored")] > 0
        model, base = self.counts[scored][:, :3], self.baseline_counts[scored]
        tp, fp, fn = (int(v) for v in base.sum(axis=0))
        mine = summed_scores(*(int(v) for v in model.sum(axis=0)))["dice"]
        theirs = summed_scores(tp, fp, fn)["dice"]
        ci = paired_dice_ci(
            self._blocked(model, scored), self._blocked(base, scored), seed=self.seed
        )
        return {
            **self.baseline.to_dict(),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            **summed_scores(tp, fp, fn),
            # no interval around a Dice that is undefined (nothing of the class scored)
            "ci95": {"dice": None if theirs is None else ci["dice"]},
            "model_minus_baseline": {
                "dice": None if mine is None or theirs is None else mine - theirs,
                "ci95": None if mine is None or theirs is None else ci["difference"],
            },
        }

    @property
    def totals(self) -> dict[str, int]:
        """The counts of :data:`COUNT_FIELDS` summed over every tile (no bootstrap)."""
        return _totals(self.counts)

    def _summary(self, where: np.ndarray, *, whole: bool = False) -> dict[str, Any]:
        rows = self.counts[where]
        t = _totals(rows)
        scored = where & (self.counts[:, COUNT_FIELDS.index("scored")] > 0)
        k = self.bootstrap_blocks["tiles_per_side"] if whole else self._multiple_within(scored)
        blocks = self._blocked(self.counts[scored], scored, k)
        return {
            "tiles": int(rows.shape[0]),
            "bootstrap_blocks": int(blocks.shape[0]),
            "bootstrap_block_tiles": int(k),
            "scored_voxels": t["scored"],
            "truth_voxels": t["truth"],
            "pred_voxels": t["pred"],
            "raw": {
                "tp": t["tp"],
                "fp": t["fp"],
                "fn": t["fn"],
                **summed_scores(t["tp"], t["fp"], t["fn"]),
            },
            "boundary_excluded": {
                "tp": t["band_tp"],
                "fp": t["band_fp"],
                "fn": t["band_fn"],
                **summed_scores(t["band_tp"], t["band_fp"], t["band_fn"]),
            },
            # the whole volume's interval at the chosen size was computed while choosing it
            "ci95": (
                self._intervals_tried[k][1]
                if whole and k in self._intervals_tried
                else tile_bootstrap_ci(blocks, seed=self.seed)
            ),
        }

    @property
    def overall(self) -> dict[str, Any]:
        return copy.deepcopy(self._overall)

    @functools.cached_property
    def _overall(self) -> dict[str, Any]:
        # computed once: each bootstrap over a terabyte's millions of tiles takes seconds
        return self._summary(np.ones(self.counts.shape[0], bool), whole=True)

    def x_curve(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._x_curve)

    @functools.cached_property
    def _x_curve(self) -> list[dict[str, Any]]:
        out = []
        for i, (a, b) in enumerate(zip(self.x_edges, self.x_edges[1:], strict=False)):
            out.append(
                {
                    "bin": i,
                    "x_start": a,
                    "x_stop": b,
                    **self._summary(self.tile_bin == i),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "tile": list(self.tile),
            "bootstrap_blocks": self.bootstrap_blocks,
            "x_edges": list(self.x_edges),
            "excluded_training_voxels": self.excluded_voxels,
            "ignored_unannotated_voxels": self.ignored_voxels,
            "overall": self.overall,
            "x_curve": self.x_curve(),
            "class_voxels": {str(k): int(v) for k, v in sorted(self.class_voxels.items())},
            "threshold_baseline": self.baseline_summary(),
        }


def x_bin_edges(width: int, bins: int) -> list[int]:
    """``bins + 1`` edges splitting ``[0, width)`` into near-equal parts along x."""
    bins = max(1, min(int(bins), int(width)))
    return [round(i * width / bins) for i in range(bins + 1)]


def tiles(shape: Sequence[int], tile: Sequence[int], x_edges: Sequence[int]) -> Iterator[Box]:
    """Tiles covering ``shape`` in z, y, x order; x is also cut at ``x_edges``."""
    xs = sorted({*range(0, shape[2], tile[2]), *x_edges[:-1]})
    xs = [x for x in xs if x < shape[2]] + [shape[2]]
    for z in range(0, shape[0], tile[0]):
        for y in range(0, shape[1], tile[1]):
            for x0, x1 in zip(xs, xs[1:], strict=False):
                yield Box(
                    (z, y, x0), (min(tile[0], shape[0] - z), min(tile[1], shape[1] - y), x1 - x0)
                )


def _excluded_mask(box: Box, exclusion: Sequence[Box]) -> np.ndarray | None:
    """True where ``box``'s voxels lie inside an exclusion box (``None`` if none touches it)."""
    mask = None
    for e in exclusion:
        if not box.intersects(e):
            continue
        if mask is None:
            mask = np.zeros(box.shape, bool)
        lo = [max(a, b) - a for a, b in zip(box.offset, e.offset, strict=True)]
        hi = [min(a + n, b) - a for a, n, b in zip(box.offset, box.shape, e.stop, strict=True)]
        mask[tuple(slice(low, h) for low, h in zip(lo, hi, strict=True))] = True
    return mask


def score_whole_volume(
    pred: Volume,
    truth: Volume,
    *,
    label_value: int,
    pred_value: int,
    exclusion: Sequence[Box] = (),
    unannotated: Collection[int] = (),
    boundary_band: int = 1,
    tile: int | Sequence[int] | None = None,
    x_bins: int = 4,
    seed: int = 0,
    raw: Volume | None = None,
    baseline: ThresholdBaseline | None = None,
    progress: ProgressReporter | None = None,
) -> WholeVolumeScores:
    """Score ``pred`` against ``truth`` on every voxel outside ``exclusion``, tile by tile.

    With ``raw`` and ``baseline`` (:func:`curated.segment.baseline.tune_threshold`) the
    threshold is scored on the same voxels of the same tiles.
    """
    use_base = raw is not None and baseline is not None
    shape = truth.shape
    if tile is None:
        tile = auto_tile(shape)
    size: Vec3 = (tile,) * 3 if isinstance(tile, int) else tuple(int(t) for t in tile)  # type: ignore[assignment]
    edges = x_bin_edges(shape[2], x_bins)
    boxes = list(tiles(shape, size, edges))
    rows = np.zeros((len(boxes), len(COUNT_FIELDS)), np.int64)
    offsets = np.asarray([b.offset for b in boxes], np.int64).reshape(-1, 3)
    base_rows = np.zeros((len(boxes), 3), np.int64) if use_base else None
    bins = np.zeros(len(boxes), np.int64)
    confusion = Confusion()
    class_voxels: dict[int, int] = {}
    excluded = ignored = 0
    halo = max(boundary_band, HALO)
    prog = ensure_progress(progress)
    prog.start("scoring the whole volume", len(boxes), "tiles")
    try:
        for i, box in enumerate(boxes):
            bins[i] = int(np.searchsorted(edges, box.offset[2], side="right") - 1)
            out = _excluded_mask(box, exclusion)
            if out is not None and out.all():
                excluded += out.size
                prog.advance(1)
                continue
            ctx = box.grow((halo,) * 3, within=shape)
            inner = tuple(
                slice(b - c, b - c + s)
                for b, c, s in zip(box.offset, ctx.offset, box.shape, strict=True)
            )
            t_ctx = truth.read(ctx)
            t_vals = t_ctx[inner]
            p = pred.read(box) == pred_value
            valid = np.ones(box.shape, bool) if out is None else ~out
            excluded += box.size - int(valid.sum()) if out is not None else 0
            for v in unannotated:
                un = t_vals == v
                ignored += int(np.count_nonzero(un & valid))
                valid &= ~un
            t = (t_vals == label_value) & valid
            pv = p & valid
            band = boundary_band_mask(t_ctx == label_value, boundary_band)[inner]
            keep = valid & ~band
            tp, fp, fn = (
                int(np.count_nonzero(pv & t)),
                int(np.count_nonzero(pv & ~t)),
                int(np.count_nonzero(~pv & t)),
            )
            rows[i] = (
                tp,
                fp,
                fn,
                int(np.count_nonzero(pv & t & keep)),
                int(np.count_nonzero(pv & ~t & keep)),
                int(np.count_nonzero(~pv & t & keep)),
                int(np.count_nonzero(t)),
                int(np.count_nonzero(pv)),
                int(valid.sum()),
            )
            if base_rows is not None and baseline is not None and raw is not None:
                b = baseline.mask(raw, box) & valid
                base_rows[i] = (
                    int(np.count_nonzero(b & t)),
                    int(np.count_nonzero(b & ~t)),
                    int(np.count_nonzero(~b & t)),
                )
            vals, cnt = np.unique(t_vals[valid], return_counts=True)
            for v, c in zip(vals, cnt, strict=True):
                class_voxels[int(v)] = class_voxels.get(int(v), 0) + int(c)
            if fp:
                confusion = confusion + count_confusion(
                    p, t_ctx, inner, label_value, valid=valid, ignore=unannotated
                )
            prog.advance(1, dice=ratio_scores(tp, fp, fn)["dice"] or 0.0)
    finally:
        prog.finish()
    return WholeVolumeScores(
        image_shape=shape,
        tile=size,
        x_edges=edges,
        counts=rows,
        tile_bin=bins,
        excluded_voxels=excluded,
        ignored_voxels=ignored,
        confusion=confusion,
        class_voxels=class_voxels,
        seed=seed,
        baseline=baseline if use_base else None,
        baseline_counts=base_rows,
        tile_offsets=offsets,
    )


def _block_sums(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``rows`` summed per block id (ids need not be contiguous)."""
    if rows.shape[0] == 0:
        return rows
    _, dense = np.unique(ids, return_inverse=True)
    out = np.zeros((int(dense.max()) + 1, rows.shape[1]), rows.dtype)
    np.add.at(out, dense.reshape(-1), rows)
    return out


def tile_bootstrap_ci(
    rows: np.ndarray,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    batch_cells: int = 4_000_000,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap over tiles (rows of :data:`COUNT_FIELDS`) for summed-count metrics.

    Tiles that scored nothing (inside training regions) are dropped first. Each
    resample draws tiles with replacement as multinomial weights, in batches of at
    most ``batch_cells`` weights, so memory stays bounded for millions of tiles.
    """
    keys = ("dice", "iou", "precision", "recall", "dice_boundary_excluded")
    rows = rows[rows[:, COUNT_FIELDS.index("scored")] > 0] if rows.size else rows
    n = int(rows.shape[0])
    if n < 2:
        return dict.fromkeys(keys)
    sums = tile_bootstrap_sums(rows[:, :6], samples=samples, seed=seed, batch_cells=batch_cells)
    tp, fp, fn, btp, bfp, bfn = sums.T

    def interval(num: np.ndarray, den: np.ndarray, empty_is_one: bool) -> list[float] | None:
        return ratio_interval(num, den, empty_is_one=empty_is_one, confidence=confidence)

    return {
        "dice": interval(2 * tp, 2 * tp + fp + fn, True),
        "iou": interval(tp, tp + fp + fn, True),
        "precision": interval(tp, tp + fp, False),
        "recall": interval(tp, tp + fn, False),
        "dice_boundary_excluded": interval(2 * btp, 2 * btp + bfp + bfn, True),
    }
