"""Did a fine-tuning help? The parent and the new model scored on the crop the parent held out.

A model trained from several crops holds one of them out for validation (it never reaches
the loss). ``finetune(..., heldout_check=True)`` keeps that same crop out, so after a human
round both models can be scored on annotations neither of them learned from: a check that
needs no truth beyond what the curator already annotated. It costs the fine-tuning that
crop, and it is one crop: on the benchmarks its verdict often disagreed with the change
outside every crop (``benchmarks/RESULTS.md``, "Held-out crops in fine-tuning"), so it is
off by default and a fall only asks the curator to look closer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from curated.segment import _store
from curated.segment.annotate import UNANNOTATED
from curated.segment.device import amp_dtype, resolve_device
from curated.segment.metrics import masked_dice
from curated.segment.modelio import SegmentationModel
from curated.segment.predict import predict_tile

TILES_PER_AXIS = 4
"""The crop is cut into up to 4 × 4 tiles in y and x for the bootstrap of the change."""
BOOTSTRAP_SAMPLES = 2000


def _scores(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    p, t = pred[mask], target[mask]
    return {
        "dice": round(masked_dice(pred, target, mask), 4),
        "true_positives": int(np.logical_and(p, t).sum()),
        "false_positives": int(np.logical_and(p, ~t).sum()),
        "false_negatives": int(np.logical_and(~p, t).sum()),
    }


def _tile_counts(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(tp, fp, fn) per tile of a grid of up to 4 × 4 in y and x, annotated voxels only."""
    rows = []
    for ys in np.array_split(np.arange(pred.shape[1]), min(TILES_PER_AXIS, pred.shape[1])):
        for xs in np.array_split(np.arange(pred.shape[2]), min(TILES_PER_AXIS, pred.shape[2])):
            sl = (slice(None), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
            p, t, m = pred[sl], target[sl], mask[sl]
            rows.append(
                (
                    np.count_nonzero(p & t & m),
                    np.count_nonzero(p & ~t & m),
                    np.count_nonzero(~p & t & m),
                )
            )
    return np.asarray(rows, dtype=np.float64)


def paired_change_ci(
    new: np.ndarray, old: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> list[float] | None:
    """95 % percentile-bootstrap interval of Dice(new) − Dice(old), resampling tiles (rows of
    (tp, fp, fn)) in pairs; ``None`` with fewer than two tiles."""
    n = len(new)
    if n < 2:
        return None
    idx = np.random.default_rng(seed).integers(0, n, size=(samples, n))

    def dice(rows: np.ndarray) -> np.ndarray:
        tp, fp, fn = rows[idx].sum(axis=1).T
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)

    diff = dice(new) - dice(old)
    return [round(float(np.quantile(diff, 0.025)), 4), round(float(np.quantile(diff, 0.975)), 4)]


def heldout_check(
    parent: SegmentationModel,
    model: SegmentationModel,
    image: str | Path,
    labels: str,
    roi: dict[str, Any],
    label_value: int,
    *,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Both models' Dice (and counts) on the annotated voxels of ``roi``, as prediction decides."""
    offset = tuple(int(v) for v in roi["offset"])
    shape = tuple(int(v) for v in roi["shape"])
    box = tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))
    truth = np.asarray(_store.label_level0(image, labels)[box])
    mask = truth != UNANNOTATED
    target = truth == label_value
    raw = _store.image_level0(image)
    dev = resolve_device(device)
    dtype = amp_dtype(dev, precision)
    scores, tiles = [], []
    for m in (parent, model):
        pred = predict_tile(m, raw, offset, shape, dev, dtype=dtype) > 0.5
        scores.append(_scores(pred, target, mask))
        tiles.append(_tile_counts(pred, target, mask))
    return {
        "roi": {"offset": list(offset), "shape": list(shape)},
        "annotated_voxels": int(mask.sum()),
        "label_voxels": int(np.logical_and(mask, target).sum()),
        "parent": scores[0],
        "model": scores[1],
        "change": round(scores[1]["dice"] - scores[0]["dice"], 4),
        "change_ci95": paired_change_ci(tiles[1], tiles[0]),
        "tiles": len(tiles[0]),
        "note": "one crop, annotated by the curator, that neither model trained on; the "
        "interval resamples tiles of that crop, so it cannot show how the models do elsewhere",
    }


def with_check(message: str, details: dict[str, Any], meta: dict[str, Any]) -> str:
    """``message`` with the clause for the check a fine-tuning's ``model.json`` records (if
    any); ``details["heldout_check"]`` holds the check."""
    check = (meta.get("training") or {}).get("heldout_check")
    if check:
        details["heldout_check"] = check
    return message + heldout_message(check)


def heldout_message(check: dict[str, Any] | None) -> str:
    """The clause a fine-tuning's message carries for its check ('' without one)."""
    if not check:
        return ""
    ci = check.get("change_ci95")
    span = f", 95 % CI {ci[0]:+.3f} … {ci[1]:+.3f} over its tiles" if ci else ""
    return (
        f"; on the crop the parent held out ({check['label_voxels']} of "
        f"{check['annotated_voxels']} annotated voxels are the label): Dice "
        f"{check['parent']['dice']:.3f} → {check['model']['dice']:.3f} ({check['change']:+.3f}{span})"
    )


def heldout_warning(check: dict[str, Any] | None) -> list[str]:
    """A warning when the new model scores lower than its parent on that crop beyond the
    spread of its tiles (the whole interval below 0)."""
    ci = (check or {}).get("change_ci95")
    if not check or not ci or ci[1] >= 0:
        return []
    return [
        f"on the crop the parent held out, Dice fell from {check['parent']['dice']:.3f} to "
        f"{check['model']['dice']:.3f}: this round may have made the model worse; score both "
        "models on more held-out voxels (curated segment evaluate) before keeping the new one"
    ]
