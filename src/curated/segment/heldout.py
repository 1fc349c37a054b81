"""Did a fine-tuning help? The parent and the new model scored on the crop the parent held out.

A model trained from several crops holds one of them out for validation (it never reaches
the loss). Fine-tuning keeps that same crop out, so after a human round both models can be
scored on annotations neither of them learned from: a check that needs no truth beyond
what the curator already annotated. It is one crop, so it is a coarse check: on the real
ssTEM stack one round moved Dice outside every crop by a few hundredths
(``benchmarks/RESULTS.md``, "Real EM: one human round"), which one crop cannot resolve; a
clear fall is still worth a look before the new model replaces its parent.
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

HELDOUT_TOLERANCE = 0.01
"""A fall in held-out Dice larger than this makes the fine-tuning warn."""


def _scores(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    p, t = pred[mask], target[mask]
    return {
        "dice": round(masked_dice(pred, target, mask), 4),
        "true_positives": int(np.logical_and(p, t).sum()),
        "false_positives": int(np.logical_and(p, ~t).sum()),
        "false_negatives": int(np.logical_and(~p, t).sum()),
    }


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
    scores = []
    for m in (parent, model):
        prob = predict_tile(m, raw, offset, shape, dev, dtype=dtype)
        scores.append(_scores(prob > 0.5, target, mask))
    return {
        "roi": {"offset": list(offset), "shape": list(shape)},
        "annotated_voxels": int(mask.sum()),
        "label_voxels": int(np.logical_and(mask, target).sum()),
        "parent": scores[0],
        "model": scores[1],
        "change": round(scores[1]["dice"] - scores[0]["dice"], 4),
        "note": "one crop, annotated by the curator, that neither model trained on",
    }


def heldout_message(check: dict[str, Any] | None) -> str:
    """The clause a fine-tuning's message carries for its check ('' without one)."""
    if not check:
        return ""
    return (
        f"; on the crop the parent held out ({check['label_voxels']} of "
        f"{check['annotated_voxels']} annotated voxels are the label): Dice "
        f"{check['parent']['dice']:.3f} → {check['model']['dice']:.3f} ({check['change']:+.3f})"
    )


def heldout_warning(check: dict[str, Any] | None) -> list[str]:
    """A warning when the new model scores clearly lower than its parent on that crop."""
    if not check or check["change"] >= -HELDOUT_TOLERANCE:
        return []
    return [
        f"on the crop the parent held out, Dice fell from {check['parent']['dice']:.3f} to "
        f"{check['model']['dice']:.3f}: this round may have made the model worse; score both "
        "models on more held-out voxels (curated segment evaluate) before keeping the new one"
    ]
