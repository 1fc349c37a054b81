"""A tuned grey-level threshold scored beside the model: does the network add anything?

On an EM stack a global threshold of the smoothed image is what a curator would try
first; a model that does not clearly beat it has not earned its training. The threshold is
*tuned on the training crops* (the truth inside the regions the model learned from, the
same data the model had) and scored on the same held-out voxels as the model, tile by
tile, in the whole-volume pass (:func:`curated.segment.wholevolume.score_whole_volume`).

- The image is smoothed with a Gaussian of σ = :data:`SIGMA_PIXELS` in-plane pixels and
  the same physical width along z (none on sections much thicker than the pixels, as on
  ssTEM). Each tile is smoothed with a halo of 4σ, so the result does
  not depend on the tiling.
- Both polarities are tried (structure darker or brighter than the level); the level and
  polarity with the best Dice over the crops win, over 1,024 levels between the crops'
  lowest and highest grey value.
- Unlike ``benchmarks/real_em.py`` no small components are removed (objects cross tiles),
  so this baseline is a little weaker than the benchmark's on noisy images.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curated.segment.geometry import Box
from curated.segment.metrics import BOOTSTRAP_SAMPLES, CONFIDENCE, tile_bootstrap_sums
from curated.segment.volume import Volume

LEVELS = 1024
"""Candidate levels between the crops' lowest and highest grey value."""
SIGMA_PIXELS = 2.0
"""In-plane Gaussian σ in pixels; along z the same physical width."""


def smoothing_sigma(voxel_size: Sequence[float]) -> tuple[float, float, float]:
    """σ (z, y, x) in voxels: :data:`SIGMA_PIXELS` in-plane, the same width in nm along z."""
    z, y, x = (float(v) for v in voxel_size)
    plane = min(y, x)
    sz = SIGMA_PIXELS * plane / z if z > 0 else SIGMA_PIXELS
    return (sz if sz >= 0.5 else 0.0, SIGMA_PIXELS * plane / y, SIGMA_PIXELS * plane / x)


def _smoothed(raw: Volume, box: Box, sigma: tuple[float, float, float]) -> np.ndarray:
    """``box`` of the image smoothed by ``sigma``, read with a 4σ halo (as if smoothed whole)."""
    from scipy import ndimage

    halo = tuple(math.ceil(4 * s) for s in sigma)
    ctx = box.grow(halo, within=raw.shape)
    inner = tuple(
        slice(b - c, b - c + n) for b, c, n in zip(box.offset, ctx.offset, box.shape, strict=True)
    )
    block = raw.read(ctx).astype(np.float32)
    if any(sigma):
        block = ndimage.gaussian_filter(block, sigma, mode="nearest")
    return block[inner]


@dataclass(frozen=True)
class ThresholdBaseline:
    """A tuned global threshold: ``smoothed < level`` (``dark``) or ``> level``."""

    level: float
    dark: bool
    sigma: tuple[float, float, float]
    tuned_dice: float
    tuned_voxels: int

    def mask(self, raw: Volume, box: Box) -> np.ndarray:
        sm = _smoothed(raw, box, self.sigma)
        return sm < self.level if self.dark else sm > self.level

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sigma_voxels"] = [round(s, 3) for s in d.pop("sigma")]
        d["polarity"] = "darker than the level" if self.dark else "brighter than the level"
        d.pop("dark")
        return d


def _drop_counted(valid: np.ndarray, box: Box, earlier: Sequence[Box]) -> None:
    """Clear the voxels of ``box`` that lie in an ``earlier`` crop: overlapping crops
    (a suggested crop next to a training one) would otherwise count them twice."""
    for other in earlier:
        if not box.intersects(other):
            continue
        lo = [max(a, b) for a, b in zip(box.offset, other.offset, strict=True)]
        hi = [min(a, b) for a, b in zip(box.stop, other.stop, strict=True)]
        valid[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, box.offset, strict=True))] = (
            False
        )


def tune_threshold(
    raw: Volume,
    truth: Volume,
    rois: Sequence[Box],
    *,
    label_value: int,
    unannotated: Collection[int],
    voxel_size: Sequence[float],
) -> ThresholdBaseline | None:
    """The level and polarity with the best Dice on the truth inside ``rois``.

    ``None`` when the crops hold no voxel of ``label_value`` or no other annotated voxel
    (nothing to tune on). Reads each crop twice (its range, then its histograms), one crop
    at a time; a voxel in several overlapping crops counts once.
    """
    sigma = smoothing_sigma(voxel_size)
    lo, hi = math.inf, -math.inf
    for box in rois:
        r = raw.read(box)
        finite = r[np.isfinite(r)] if r.dtype.kind == "f" else r  # NaN padding of aligned stacks
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if not rois or not hi > lo:
        return None
    edges = np.linspace(lo, hi, LEVELS + 1)
    fg = np.zeros(LEVELS, np.int64)
    bg = np.zeros(LEVELS, np.int64)
    for i, box in enumerate(rois):
        t = truth.read(box)
        valid = np.ones(t.shape, bool)
        for v in unannotated:
            valid &= t != v
        _drop_counted(valid, box, rois[:i])
        sm = _smoothed(raw, box, sigma)
        fg += np.histogram(sm[valid & (t == label_value)], bins=edges)[0]
        bg += np.histogram(sm[valid & (t != label_value)], bins=edges)[0]
    n_fg, n_bg = int(fg.sum()), int(bg.sum())
    if n_fg == 0 or n_bg == 0:
        return None
    # level edges[i + 1]: "dark" takes bins 0..i, "bright" bins i+1..
    tp_dark, fp_dark = np.cumsum(fg)[:-1], np.cumsum(bg)[:-1]
    tp_bright, fp_bright = n_fg - tp_dark, n_bg - fp_dark
    best = None
    for dark, tp, fp in ((True, tp_dark, fp_dark), (False, tp_bright, fp_bright)):
        dice = 2 * tp / (2 * tp + fp + (n_fg - tp))
        i = int(np.argmax(dice))
        if best is None or dice[i] > best[0]:
            best = (float(dice[i]), dark, float(edges[i + 1]))
    assert best is not None
    return ThresholdBaseline(
        level=best[2],
        dark=best[1],
        sigma=sigma,
        tuned_dice=best[0],
        tuned_voxels=n_fg + n_bg,
    )


def paired_dice_ci(
    model: np.ndarray,
    base: np.ndarray,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    batch_cells: int = 4_000_000,
) -> dict[str, list[float] | None]:
    """Bootstrap over tiles (the same resample for both) of the baseline's Dice and of the
    model's minus the baseline's; ``model`` and ``base`` are per-tile (tp, fp, fn) rows of
    the scored tiles. Batched multinomial weights keep memory bounded for millions of tiles."""
    if int(model.shape[0]) < 2:
        return {"dice": None, "difference": None}
    sums = tile_bootstrap_sums(
        np.concatenate([model, base], axis=1), samples=samples, seed=seed, batch_cells=batch_cells
    )

    def dice(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 1.0)

    d_model, d_base = dice(*sums[:, :3].T), dice(*sums[:, 3:].T)
    q = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]
    return {
        "dice": [float(v) for v in np.quantile(d_base, q)],
        "difference": [float(v) for v in np.quantile(d_model - d_base, q)],
    }
