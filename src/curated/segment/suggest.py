"""Where to annotate next: rank candidate crops by how likely the model is wrong there.

``curated annotate suggest IMAGE --model M --pred P --n K`` tiles level 0 of the
image with crops of ``crop_size`` (a regular grid; the last crop along each axis
is moved in so that it ends at the border) and scores every crop that does not
overlap an annotated crop. Each candidate gets four components:

``anomaly``
    ``predicted foreground fraction in the crop − foreground fraction in the
    annotated crops`` (the *prior*), signed. Above 0 it is how much more the model
    calls foreground there than the annotated crops hold: confident errors, such as
    a shaded side where everything dark is called foreground, or distractors
    (lipid droplets, ER, a nuclear envelope) the crops never showed, show up here
    although the model is confident there. Below 0 it still orders crops by how
    much structure the model sees in them: a crop with a few under-drawn objects
    holds more errors to correct than an empty one, and a crop with nothing to
    show teaches fine-tuning only what the structure is not. An empty crop the
    model rightly calls empty ranks last (an earlier two-sided
    ``|fraction − prior|`` ranked such crops as anomalous once the model was
    decent, ρ −0.76 with tile error; a one-sided ``max(0, ·)`` tied every crop
    below the prior and let entropy pick an empty shaded nucleus; RESULTS.md
    "suggest"). Missed objects in unfamiliar regions are also the *appearance*
    term's job.
``appearance``
    A model-free distance of the crop's raw intensity statistics (mean, standard
    deviation, 5th/50th/95th percentiles, local contrast = mean absolute
    neighbour difference) from the nearest already-annotated crop, each statistic
    scaled by its spread over all candidates. Regions unlike anything annotated
    score high.
``uncertainty``
    Mean binary entropy (bits) of the foreground probability. It is read from the
    prediction's probability image (``<pred>-probability``, written by
    ``curated segment predict --probabilities``) when there is one, otherwise a
    quick prediction of the crop's centre (at most :data:`QUICK_EDGE` voxels per
    axis) is made with the model.
``diversity``
    Distance from the crop's centre to the nearest annotated or already chosen
    crop, each axis in units of the crop size. It is recomputed after each pick.

Each component is turned into ranks scaled to [0, 1] over the candidates still
eligible (ties share their mean rank), and the combined score is the weighted sum
with :class:`SuggestionWeights` (recorded in every output). Selection is greedy:
the best crop is taken, crops overlapping it are dropped, diversity is
re-ranked, and so on until ``n`` crops are chosen; suggestions never overlap
each other or an annotated crop.

Annotated crops are those recorded in the sparse label image ``labels`` (see
:mod:`curated.segment.annotate`; for label images from other tools, the bounding
boxes of annotated voxels, found tile by tile) plus the model's ``lineage_rois``
made on this image. The prior is the foreground fraction of the annotated voxels
of ``labels``.

Memory is bounded by one crop of raw, prediction and probability; quick
predictions add one pre-processed box of at most
:data:`~curated.segment.predict.UNIT_INPUT_BYTES` (or the whole image's input when it
is smaller than :data:`~curated.segment.predict.WHOLE_INPUT_VOXELS`) and one tile's
activations; the volume is never loaded whole. The figures kept per
candidate are a few floats.

Outputs: a label image ``labels/<name>`` inside the image (value *i* marks the
*i*-th suggestion; its properties give rank, offset, shape and score), a table
(``suggestions.csv`` and ``suggestions.json``) and ``suggestions.png`` with the
crops outlined on xy and xz views.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from curated._io import atomic_write_bytes, atomic_write_text, write_json
from curated.errors import InputError, SegmentationError
from curated.images.store import JOURNAL
from curated.objstore import local_only, refuse_url_out
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result
from curated.segment import _store
from curated.segment.annotate import UNANNOTATED, read_annotation_rois
from curated.segment.modelio import SOFTWARE, SegmentationModel, load_model
from curated.workspace import Workspace, as_workspace, recorder

COMPONENTS = ("anomaly", "appearance", "uncertainty", "diversity")
FEATURES = ("mean", "std", "p5", "p50", "p95", "local_contrast")
QUICK_EDGE = 24
"""Largest edge (voxels) of the quick prediction made per candidate when there is no probability image."""
PNG_MAX = 512
"""The figure reads the finest pyramid level whose y and x (and z) are at most this many voxels."""

Vec3 = tuple[int, int, int]


@dataclass(frozen=True)
class SuggestionWeights:
    """Weights of the rank-normalised components in the combined score (scaled to sum 1).

    Measured with ``benchmarks/suggest.py`` (Spearman ρ of the combined score with
    the tile error fraction, RESULTS.md "suggest: a signed anomaly") in the regimes
    a curator meets: a small model that fails on a shaded half (3 seeds, ρ 0.77), a
    decent one whose errors sit at object boundaries, and the bright-only models of
    ``benchmarks/hitl.py``, which under-call the shaded half (5 seeds, ρ 0.58). The
    anomaly finds gross and confident errors and orders the rest by how much
    structure the model sees, entropy finds the boundary errors of a decent model,
    appearance regions unlike anything annotated; diversity keeps the picks apart
    and away from what is already annotated.
    """

    anomaly: float = 0.4
    appearance: float = 0.1
    uncertainty: float = 0.3
    diversity: float = 0.2

    def __post_init__(self) -> None:
        values = [getattr(self, c) for c in COMPONENTS]
        if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
            msg = f"weights must be finite, ≥ 0 and not all 0, not {dict(zip(COMPONENTS, values, strict=True))}"
            raise InputError(msg, field="weights")

    def normalised(self) -> dict[str, float]:
        total = sum(getattr(self, c) for c in COMPONENTS)
        return {c: getattr(self, c) / total for c in COMPONENTS}

    @classmethod
    def parse(cls, text: str) -> SuggestionWeights:
        """``"anomaly=0.5,appearance=0.2"``; components not named keep their default."""
        given: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in COMPONENTS:
                msg = f"{part.strip()!r} is not like 'anomaly=0.5' (components: {', '.join(COMPONENTS)})"
                raise InputError(msg, field="weights")
            try:
                given[key] = float(value)
            except ValueError:
                msg = f"weight {value.strip()!r} of {key} is not a number"
                raise InputError(msg, field="weights") from None
        return cls(**given)


@dataclass
class CandidateScores:
    """Every candidate crop with its raw (not yet ranked) component values."""

    shape: Vec3
    offsets: np.ndarray
    """(n, 3) voxel offsets of the candidates."""
    eligible: np.ndarray
    """False where a candidate overlaps an annotated crop."""
    anomaly: np.ndarray
    appearance: np.ndarray
    uncertainty: np.ndarray
    foreground: np.ndarray
    """Predicted foreground fraction per candidate."""
    prior: float
    annotated: list[dict[str, Any]]
    uncertainty_source: str
    details: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets)

    def centres(self) -> np.ndarray:
        return self.offsets + np.asarray(self.shape) / 2.0

    def distance_to_annotated(self) -> np.ndarray:
        """Centre distance to the nearest annotated crop, per axis in crop sizes (inf without any)."""
        return _min_distance(self.centres(), _roi_centres(self.annotated), self.shape)


# ------------------------------------------------------------------ geometry
def _parse_crop(crop_size: int | tuple[int, ...], shape: tuple[int, ...]) -> Vec3:
    size = (crop_size,) * 3 if isinstance(crop_size, int) else tuple(int(s) for s in crop_size)
    if len(size) != 3 or any(s < 1 for s in size):
        msg = f"crop size must be three positive voxel counts (z, y, x), not {crop_size}"
        raise InputError(msg, field="crop_size")
    if any(s > n for s, n in zip(size, shape, strict=True)):
        msg = f"crop size {tuple(size)} is larger than the image {tuple(shape)}; choose a smaller --crop-size"
        raise InputError(msg, field="crop_size")
    return size  # type: ignore[return-value]


def parse_crop_size(text: str) -> int | Vec3:
    """``"32"`` (a cube) or ``"16,32,32"`` (z, y, x) from the command line."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        msg = f"crop size {text!r} is not like '32' or '16,32,32' (z,y,x voxels)"
        raise InputError(msg, field="crop_size") from None
    if len(values) == 1:
        return values[0]
    if len(values) != 3:
        msg = f"crop size {text!r} needs one or three numbers (z,y,x), not {len(values)}"
        raise InputError(msg, field="crop_size")
    return (values[0], values[1], values[2])


def _default_crop(image: Path, labels: str, shape: tuple[int, ...]) -> Vec3:
    """The median size of the recorded annotated crops (what the curator is used to), else 32; clipped to the image."""
    rois = read_annotation_rois(image, labels) if _store.label_path(image, labels).exists() else []
    want = [int(np.median([r["shape"][a] for r in rois])) for a in range(3)] if rois else [32] * 3
    return tuple(max(1, min(w, n)) for w, n in zip(want, shape, strict=True))  # type: ignore[return-value]


def candidate_offsets(shape: tuple[int, ...], crop: Vec3) -> np.ndarray:
    """Offsets of a grid of ``crop``-sized crops covering ``shape`` (edge crops moved inside)."""
    axes = []
    for n, c in zip(shape, crop, strict=True):
        starts = list(range(0, n - c + 1, c))
        if starts[-1] + c < n:
            starts.append(n - c)
        axes.append(starts)
    grid = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    return grid.astype(np.int64)


def _box(offset: Any, shape: Any) -> tuple[slice, ...]:
    return tuple(slice(int(o), int(o) + int(s)) for o, s in zip(offset, shape, strict=True))


def _overlaps(a_off: Any, a_shape: Any, b_off: Any, b_shape: Any) -> bool:
    return all(
        ao < bo + bs and bo < ao + as_
        for ao, as_, bo, bs in zip(a_off, a_shape, b_off, b_shape, strict=True)
    )


def _overlap_mask(offsets: np.ndarray, crop: Vec3, rois: list[dict[str, Any]]) -> np.ndarray:
    hit = np.zeros(len(offsets), dtype=bool)
    size = np.asarray(crop)
    for r in rois:
        ro, rs = np.asarray(r["offset"]), np.asarray(r["shape"])
        hit |= np.all((offsets < ro + rs) & (ro < offsets + size), axis=1)
    return hit


def _roi_centres(rois: list[dict[str, Any]]) -> np.ndarray:
    if not rois:
        return np.zeros((0, 3))
    return np.array([np.asarray(r["offset"]) + np.asarray(r["shape"]) / 2.0 for r in rois])


def _min_distance(points: np.ndarray, others: np.ndarray, crop: Vec3) -> np.ndarray:
    best = np.full(len(points), np.inf)
    scale = np.asarray(crop, dtype=float)
    for o in others:  # one pass per annotated crop: memory stays one float per candidate
        np.minimum(best, np.sqrt((((points - o) / scale) ** 2).sum(axis=1)), out=best)
    return best


# ------------------------------------------------------------------ statistics
def region_features(raw: np.ndarray) -> np.ndarray:
    """Model-free intensity statistics of a region (see :data:`FEATURES`), from raw values."""
    x = np.asarray(raw, dtype=np.float32)
    p5, p50, p95 = np.percentile(x, (5, 50, 95))
    diffs = [np.abs(np.diff(x, axis=a)).mean() for a in range(x.ndim) if x.shape[a] > 1]
    contrast = float(np.mean(diffs)) if diffs else 0.0
    return np.array([x.mean(), x.std(), p5, p50, p95, contrast], dtype=np.float64)


def appearance_distance(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance of each row of ``features`` from the nearest row of ``reference``.

    Each statistic is divided by its robust spread (1.4826 × MAD, or the standard
    deviation when the MAD is 0) over ``features`` and ``reference`` together, so
    that grey levels and contrasts weigh alike.
    """
    both = np.vstack([features, reference])
    med = np.median(both, axis=0)
    spread = 1.4826 * np.median(np.abs(both - med), axis=0)
    std = both.std(axis=0)
    spread = np.where(spread > 1e-9, spread, np.where(std > 1e-9, std, 1.0))
    f = features / spread
    r = reference / spread
    d = np.sqrt(((f[:, None, :] - r[None, :, :]) ** 2).mean(axis=2))
    return d.min(axis=1)


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a foreground probability (0 at p = 0 or 1, 1 at p = 0.5)."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their mean rank; a single value gets 0.5)."""
    v = np.asarray(values, dtype=float)
    if len(v) <= 1:
        return np.full(len(v), 0.5)
    v = np.where(np.isfinite(v), v, np.nanmax(np.where(np.isfinite(v), v, -np.inf)) + 1.0)
    return (rankdata(v, method="average") - 1.0) / (len(v) - 1.0)


# ------------------------------------------------------------------ inputs
def _image_ref(image: Path, ws: Workspace | None) -> set[str]:
    refs = {str(image.resolve()), str(image)}
    if ws is not None:
        refs.add(ws.relative(image))
    return refs


def _scan_annotated_boxes(arr: Any, tile: Vec3) -> list[dict[str, Any]]:
    """Bounding boxes of annotated voxels, one per tile (for label images with no recorded crops)."""
    shape = tuple(int(n) for n in arr.shape)
    boxes = []
    for off in candidate_offsets(shape, tuple(min(t, n) for t, n in zip(tile, shape, strict=True))):  # type: ignore[arg-type]
        size = [min(t, n - o) for t, n, o in zip(tile, shape, off, strict=True)]
        block = np.asarray(arr[_box(off, size)])
        idx = np.argwhere(block != UNANNOTATED)
        if len(idx):
            lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
            boxes.append(
                {
                    "offset": [int(o + a) for o, a in zip(off, lo, strict=True)],
                    "shape": [int(v) for v in hi - lo],
                }
            )
    return boxes


def annotated_crops(
    image: Path, labels: str, model: SegmentationModel, ws: Workspace | None, crop: Vec3
) -> list[dict[str, Any]]:
    """Annotated crops of ``image``: recorded in ``labels`` (or found there) and the model's lineage."""
    if not _store.label_path(image, labels).exists():
        have = ", ".join(_store.label_names(image)) or "none"
        msg = f"has no annotation label image {labels!r} (label images: {have}); pass --labels NAME, the sparse annotation the model learnt from"
        raise SegmentationError(msg, path=image, field="labels")
    rois = [
        {
            "offset": [int(v) for v in r["offset"]],
            "shape": [int(v) for v in r["shape"]],
            "source": f"labels:{labels}",
        }
        for r in read_annotation_rois(image, labels)
    ]
    if not rois:
        arr = _store.label_level0(image, labels)
        rois = [{**b, "source": f"labels:{labels}"} for b in _scan_annotated_boxes(arr, crop)]
    refs = _image_ref(image, ws)
    seen = {(tuple(r["offset"]), tuple(r["shape"])) for r in rois}
    for r in model.meta.get("lineage_rois", []) or []:
        key = (tuple(int(v) for v in r["offset"]), tuple(int(v) for v in r["shape"]))
        if str(r.get("image")) in refs and key not in seen:
            seen.add(key)
            rois.append(
                {
                    "offset": list(key[0]),
                    "shape": list(key[1]),
                    "source": f"model-lineage:{model.id}",
                }
            )
    if not rois:
        msg = f"label image {labels!r} holds no annotated voxels and the model's lineage names no crop of this image; suggestions are measured against what is already annotated"
        raise SegmentationError(msg, path=image, field="labels")
    return rois


def _pieces(roi: dict[str, Any], crop: Vec3) -> list[tuple[list[int], list[int]]]:
    """Split an annotated crop into pieces of at most ``crop`` (bounds the memory of big annotations)."""
    out = []
    ranges = [range(o, o + s, c) for o, s, c in zip(roi["offset"], roi["shape"], crop, strict=True)]
    for start in np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T:
        stop = [
            min(a + c, o + s)
            for a, c, o, s in zip(start, crop, roi["offset"], roi["shape"], strict=True)
        ]
        out.append(
            ([int(a) for a in start], [int(b - a) for a, b in zip(start, stop, strict=True)])
        )
    return out


def _reference(
    raw: Any, labels: Any, rois: list[dict[str, Any]], crop: Vec3, value: int
) -> tuple[np.ndarray, float, int]:
    """Intensity statistics of the annotated crops, and their foreground fraction (the prior)."""
    feats, fg, annotated = [], 0, 0
    for r in rois:
        for off, size in _pieces(r, crop):
            box = _box(off, size)
            feats.append(region_features(np.asarray(raw[box])))
            if r["source"].startswith("labels:"):
                lab = np.asarray(labels[box])
                annotated += int(np.count_nonzero(lab != UNANNOTATED))
                fg += int(np.count_nonzero(lab == value))
    if annotated == 0:
        msg = "the annotated crops hold no annotated voxels, so there is no foreground prior"
        raise SegmentationError(msg, field="labels")
    return np.array(feats), fg / annotated, annotated


def _open_prediction(image: Path, pred: str, shape: tuple[int, ...], field: str, role: str) -> Any:
    if not _store.label_path(image, pred).exists():
        have = ", ".join(_store.label_names(image)) or "none"
        msg = f"has no {role} label image {pred!r} (label images: {have}); run `curated segment predict` first"
        raise SegmentationError(msg, path=image, field=field)
    arr = _store.label_level0(image, pred)
    if tuple(int(n) for n in arr.shape) != tuple(shape):
        msg = f"{role} {pred!r} has shape {tuple(arr.shape)} but the image has {tuple(shape)}; it was made for another image"
        raise SegmentationError(msg, path=image, field=field)
    return arr


def _probability_name(image: Path, pred: str, probability: str | None) -> str | None:
    if probability is None:
        auto = f"{pred}-probability"
        return auto if _store.label_path(image, auto).exists() else None
    return probability or None


# ------------------------------------------------------------------ scoring
class _QuickPredictor:
    """Foreground probability of candidates' centres, for the entropy term when no probability image exists.

    A small image is pre-processed once, whole (:func:`~curated.segment.predict.shared_input`).
    A larger one is pre-processed once per box of candidates whose padded input fits
    :data:`~curated.segment.predict.UNIT_INPUT_BYTES` (cut by
    :func:`~curated.segment.predict.start_boxes`, as prediction cuts a write unit): each quick tile's own input
    would re-filter the normalisation's halo around it (at 4.6 nm the 400 nm
    normalisation reads 260 voxels each side of a 24-voxel tile). Both give the same
    values as a tile pre-processed on its own.
    """

    def __init__(
        self,
        model: SegmentationModel,
        raw: Any,
        device: str,
        image: Path | None,
        crop: Vec3,
    ) -> None:
        from curated.segment.device import amp_dtype, resolve_device
        from curated.segment.predict import predict_tile, shared_input

        self.model, self.raw, self.dev = model, raw, resolve_device(device)
        self.dtype = amp_dtype(self.dev)  # as `curated segment predict` computes by default
        self._predict = predict_tile
        geom = model.geometry
        self.size = geom.block_multiple(tuple(min(c, QUICK_EDGE) for c in crop))
        self.crop = crop
        out = geom.valid_output(self.size)
        extent = tuple(int(n) + o for n, o in zip(raw.shape, out, strict=True))
        self._source = shared_input(model, str(image), extent) if image is not None else None

    def start(self, offset: Any) -> tuple[int, ...]:
        """Where the quick tile of the candidate at ``offset`` starts (centred, on the step grid)."""
        centre = [int(o) + c // 2 for o, c in zip(offset, self.crop, strict=True)]
        # tiles must start on the pooling-step grid (predict_tile's rule)
        return tuple(
            max(0, (m - s // 2) // st * st)
            for m, s, st in zip(centre, self.size, self.model.geometry.step, strict=True)
        )

    def batches(self, offsets: np.ndarray, budget: int | None = None) -> Any:
        """``(indices, probabilities)`` for every candidate, one pre-processed box at a time."""
        from curated.segment.predict import (
            UNIT_INPUT_BYTES,
            input_cost,
            region_input,
            start_boxes,
        )

        starts = [self.start(o) for o in offsets]
        groups: dict[tuple[int, ...], list[int]] = {}
        if self._source is not None:
            groups[()] = list(range(len(starts)))
        elif starts:
            # the candidates' tiles form a grid: cut it as prediction cuts a write unit
            boxes = start_boxes(
                [sorted({s[i] for s in starts}) for i in range(3)],
                self.model.geometry.valid_output(self.size),
                self.model.halo,
                UNIT_INPUT_BYTES if budget is None else int(budget),
                input_cost(self.model, self.raw.dtype.itemsize),
            )
            run_of = [{v: k for k, run in enumerate(b) for v in run} for b in boxes]
            for i, s in enumerate(starts):
                groups.setdefault(tuple(run_of[a][v] for a, v in enumerate(s)), []).append(i)
        for key in sorted(groups):
            idx = groups[key]
            source = (
                self._source
                if self._source is not None
                else region_input(self.model, self.raw, [starts[i] for i in idx], self.size)
            )
            for i in idx:
                yield (
                    i,
                    self._predict(
                        self.model, self.raw, starts[i], self.size, self.dev, source, self.dtype
                    ),
                )
            del source  # one box's input at a time


def score_candidates(
    image: str | Path,
    *,
    model: str | Path | SegmentationModel,
    pred: str,
    crop_size: int | tuple[int, int, int] | None = None,
    labels: str = "annotations",
    probability: str | None = None,
    device: str = "auto",
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> CandidateScores:
    """Score every candidate crop (no selection); :func:`suggest_crops` ranks and picks from these.

    ``probability`` names the probability label image (uint8, p × 255); ``None``
    looks for ``<pred>-probability`` and ``""`` forces quick model predictions.
    """
    image = local_only(image)
    m = model if isinstance(model, SegmentationModel) else load_model(model)
    ws = as_workspace(workspace)
    raw = _store.image_level0(image)
    shape = tuple(int(n) for n in raw.shape)
    pred_arr = _open_prediction(image, pred, shape, "pred", "prediction")
    prob_name = _probability_name(image, pred, probability)
    prob_arr = (
        _open_prediction(image, prob_name, shape, "probability", "probability")
        if prob_name
        else None
    )
    crop = _parse_crop(
        crop_size if crop_size is not None else _default_crop(image, labels, shape), shape
    )

    rois = annotated_crops(image, labels, m, ws, crop)
    lab_arr = _store.label_level0(image, labels)
    reference, prior, annotated_voxels = _reference(raw, lab_arr, rois, crop, m.label_value)
    offsets = candidate_offsets(shape, crop)
    eligible = ~_overlap_mask(offsets, crop, rois)
    n = len(offsets)
    feats = np.zeros((n, len(FEATURES)))
    fg = np.zeros(n)
    entropy = np.full(n, np.nan)
    rep = ensure_progress(progress)
    rep.start("suggest: scoring crops", n, "crops")
    for i, off in enumerate(offsets):
        box = _box(off, crop)
        feats[i] = region_features(np.asarray(raw[box]))
        fg[i] = float(np.mean(np.asarray(pred_arr[box]) == m.label_value))
        if eligible[i] and prob_arr is not None:
            p = np.asarray(prob_arr[box], dtype=np.float32) / np.float32(255.0)
            entropy[i] = float(binary_entropy(p).mean())
        rep.advance(1)
    rep.finish()
    if prob_arr is None:
        from curated.segment.predict import release_shared_input

        todo = np.flatnonzero(eligible)
        quick = _QuickPredictor(m, raw, device, image, crop)
        rep.start("suggest: quick predictions", len(todo), "crops")
        try:
            for j, p in quick.batches(offsets[todo]):
                entropy[todo[j]] = float(binary_entropy(p).mean())
                rep.advance(1)
        finally:
            rep.finish()
            release_shared_input()
    return CandidateScores(
        shape=crop,
        offsets=offsets,
        eligible=eligible,
        anomaly=fg - prior,
        appearance=appearance_distance(feats, reference),
        uncertainty=entropy,
        foreground=fg,
        prior=prior,
        annotated=rois,
        uncertainty_source=f"probability image {prob_name!r}"
        if prob_name
        else f"quick prediction of each crop's centre (≤ {QUICK_EDGE} voxels per axis) with the model",
        details={
            "annotated_voxels": annotated_voxels,
            "reference_pieces": len(reference),
            "image_shape": list(shape),
        },
    )


def select_crops(
    scores: CandidateScores, n: int, weights: SuggestionWeights | None = None
) -> list[dict[str, Any]]:
    """Greedy choice of ``n`` non-overlapping crops (see the module notes); rank 1 first."""
    w = (weights or SuggestionWeights()).normalised()
    idx = np.flatnonzero(scores.eligible)
    static = {
        "anomaly": rank01(scores.anomaly[idx]),
        "appearance": rank01(scores.appearance[idx]),
        "uncertainty": rank01(scores.uncertainty[idx]),
    }
    dist = scores.distance_to_annotated()[idx]
    alive = np.ones(len(idx), dtype=bool)
    centres = scores.centres()[idx]
    chosen: list[dict[str, Any]] = []
    for rank in range(1, n + 1):
        live = np.flatnonzero(alive)
        if len(live) == 0:
            break
        diversity = rank01(dist[live])
        total = sum(w[c] * static[c][live] for c in static) + w["diversity"] * diversity
        best = int(np.argmax(total))  # ties: the first crop in grid order
        j = live[best]
        off = scores.offsets[idx[j]]
        chosen.append(
            {
                "rank": rank,
                "label_value": rank,
                "offset": [int(v) for v in off],
                "shape": list(scores.shape),
                "score": float(total[best]),
                "ranked": {
                    **{c: float(static[c][j]) for c in static},
                    "diversity": float(diversity[best]),
                },
                "raw": {
                    "anomaly": float(scores.anomaly[idx[j]]),
                    "appearance": float(scores.appearance[idx[j]]),
                    "uncertainty": float(scores.uncertainty[idx[j]]),
                    "diversity": float(dist[j]),
                    "predicted_foreground": float(scores.foreground[idx[j]]),
                },
            }
        )
        alive &= ~_overlap_mask(scores.offsets[idx], scores.shape, [chosen[-1]])
        dist = np.minimum(dist, _min_distance(centres, centres[j][None, :], scores.shape))
    return chosen


# ------------------------------------------------------------------ outputs
class _SuggestionLabels:
    """The suggestion label volume, computed per block on request (never held whole)."""

    def __init__(self, shape: tuple[int, ...], crops: list[dict[str, Any]]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(np.uint8 if len(crops) < 256 else np.uint16)
        self.ndim = 3
        self.crops = crops

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        bounds = [sl.indices(n)[:2] for sl, n in zip(region, self.shape, strict=True)]
        out = np.zeros([b - a for a, b in bounds], dtype=self.dtype)
        for c in reversed(
            self.crops
        ):  # they never overlap; the order only makes rank 1 win if they did
            lo = [max(a, o) for (a, _b), o in zip(bounds, c["offset"], strict=True)]
            hi = [
                min(b, o + s) for (_a, b), o, s in zip(bounds, c["offset"], c["shape"], strict=True)
            ]
            if all(h > low for low, h in zip(lo, hi, strict=True)):
                out[
                    tuple(
                        slice(low - a, h - a)
                        for low, h, (a, _b) in zip(lo, hi, bounds, strict=True)
                    )
                ] = c["label_value"]
        return out


def _table_rows(crops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for c in crops:
        row: dict[str, Any] = {
            "rank": c["rank"],
            "label_value": c["label_value"],
            "offset_z": c["offset"][0],
            "offset_y": c["offset"][1],
            "offset_x": c["offset"][2],
            "shape_z": c["shape"][0],
            "shape_y": c["shape"][1],
            "shape_x": c["shape"][2],
        }
        for comp in COMPONENTS:
            row[f"{comp}_raw"] = round(c["raw"][comp], 6)
            row[f"{comp}_rank"] = round(c["ranked"][comp], 6)
        row["predicted_foreground"] = round(c["raw"]["predicted_foreground"], 6)
        row["score"] = round(c["score"], 6)
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _figure_png(image: Path, crops: list[dict[str, Any]], annotated: list[dict[str, Any]]) -> bytes:
    """xy (at the top suggestion's centre z) and xz (at its centre y) views with crops outlined.

    Suggested crops are yellow and numbered by rank, annotated crops cyan; a crop
    the plane does not cut is dashed (its projection). Each panel has a scale bar;
    the legend names the colours.
    """
    from PIL import Image, ImageDraw

    from curated.document import figures as fig
    from curated.images import open_image

    img = open_image(image)
    shape0 = img.levels[0].shape[-3:]
    level = next(
        (i for i, a in enumerate(img.levels) if max(a.shape[-3:]) <= PNG_MAX), len(img.levels) - 1
    )
    arr = img.levels[level]
    factor = [n0 / n for n0, n in zip(shape0, arr.shape[-3:], strict=True)]
    top = crops[0]
    cz = int((top["offset"][0] + top["shape"][0] / 2) / factor[0])
    cy = int((top["offset"][1] + top["shape"][1] / 2) / factor[1])
    lead = (0,) * (arr.ndim - 3)
    xy = np.asarray(
        arr[(*lead, min(cz, arr.shape[-3] - 1), slice(None), slice(None))], dtype=np.float32
    )
    xz = np.asarray(
        arr[(*lead, slice(None), min(cy, arr.shape[-2] - 1), slice(None))], dtype=np.float32
    )
    window = fig.grey_window([xy, xz], (1, 99))
    vs = img.voxel_size[-3:]
    zoom = max(1.0, 640.0 / max(xy.shape))
    aniso = vs[0] * factor[0] / (vs[2] * factor[2])

    def panel(plane: np.ndarray, sy: float) -> Image.Image:
        g = fig.to_grey(plane, window)
        p = Image.fromarray(g).convert("RGB")
        return p.resize(
            (round(g.shape[1] * zoom), max(1, round(g.shape[0] * zoom * sy))), Image.NEAREST
        )

    views = [
        (panel(xy, 1.0), 1, zoom / factor[1], "a  xy", cz * factor[0], 0),
        (panel(xz, aniso), 0, zoom * aniso / factor[0], "b  xz", cy * factor[1], 1),
    ]
    suggested, known = (255, 210, 0), (0, 200, 255)
    legend = [
        fig.LegendItem(suggested, "suggested crop (number = rank)", "outline"),
        fig.LegendItem(known, "annotated crop", "outline"),
        fig.LegendItem(fig.TEXT, "dashed: crop not cut by this plane", "dashed"),
    ]
    pad, head = fig.PAD, 24
    width = max(v[0].width for v in views) + 2 * pad
    rows = fig.legend_rows(legend, width - 2 * pad)
    height = fig.TITLE_H + sum(v[0].height + head for v in views) + rows * fig.LEGEND_ROW + pad
    canvas = Image.new("RGB", (width, height), fig.BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    title = f"{image.name}: {len(crops)} crop{'s' if len(crops) != 1 else ''} to annotate next (level {level})"
    draw.text((pad, 6), title, fill=fig.TEXT, font=fig.font(fig.TITLE_SIZE))
    y0 = fig.TITLE_H
    unit = img.unit
    for im, row_axis, row_scale, label, cut, cut_axis in views:
        draw.text(
            (pad, y0 + 4),
            f"{label} at {'z' if cut_axis == 0 else 'y'} = {int(cut)} (level-0 voxels)",
            fill=fig.TEXT,
            font=fig.font(fig.TEXT_SIZE),
        )
        canvas.paste(im, (pad, y0 + head))
        col_scale = zoom / factor[2]
        for boxes, colour, numbered in ((annotated, known, False), (crops, suggested, True)):
            for b in boxes:
                inside = b["offset"][cut_axis] <= cut < b["offset"][cut_axis] + b["shape"][cut_axis]
                x0 = pad + b["offset"][2] * col_scale
                x1 = pad + (b["offset"][2] + b["shape"][2]) * col_scale - 1
                r0 = y0 + head + b["offset"][row_axis] * row_scale
                r1 = y0 + head + (b["offset"][row_axis] + b["shape"][row_axis]) * row_scale - 1
                if inside:
                    draw.rectangle([x0, r0, x1, r1], outline=colour, width=3)
                else:
                    fig.dashed_rectangle(draw, (x0, r0, x1, r1), colour, 2)
                if numbered:
                    fig.tag(draw, (int(x0) + 4, int(r0) + 3), str(b["rank"]))
        fig.scale_bar(
            draw,
            pad + im.width - 8,
            y0 + head + im.height - 8,
            int(0.3 * im.width),
            vs[2] * factor[2] / zoom,
            unit,
        )
        y0 += head + im.height
    fig.draw_legend(draw, legend, pad, y0 + pad // 2, width - 2 * pad)
    return fig.png_bytes(canvas)


def _default_out(image: Path, name: str, ws: Workspace | None) -> Path:
    stem = image.name.removesuffix(".ome.zarr").removesuffix(".zarr")
    if ws is not None:
        return ws.derived_dir / "suggestions" / f"{stem}-{name}"
    return image.parent / f"{stem}-{name}"


def _check_name(image: Path, name: str, used: set[str]) -> bool:
    """True when ``name`` holds earlier suggestions (replaced); refuses any other existing label image."""
    if name in used:
        msg = f"--name {name!r} is one of the input label images; choose another"
        raise InputError(msg, field="name")
    store = _store.label_path(image, name)
    if not store.exists():
        return False
    if isinstance(store, Path) and _unfinished_suggestions(store):
        return True  # what a killed run left: replaced like finished suggestions
    if "suggestion" not in _store.label_curated_attrs(image, name):
        msg = f"label image {name!r} exists and does not hold suggestions; choose another --name"
        raise SegmentationError(msg, path=image, field="name")
    return True


def _unfinished_suggestions(store: Path) -> bool:
    """Whether ``store`` is a suggestion label image whose write was killed: begun from an
    in-memory volume as a model's prediction, or nothing written yet but its journal."""
    try:
        plan = json.loads((store / JOURNAL / "plan.json").read_bytes())
    except FileNotFoundError:
        return not (store / "zarr.json").exists() and {p.name for p in store.iterdir()} <= {JOURNAL}
    except (OSError, ValueError):
        return False
    got = plan.get("plan") if isinstance(plan, dict) else None
    if not isinstance(got, dict):
        return False
    source, block = got.get("labels"), got.get("curated")
    return (
        isinstance(source, dict)
        and source.get("path") == "<array>"
        and isinstance(block, dict)
        and block.get("kind") == "prediction"
    )


def _model_folder(model: str | Path | SegmentationModel, ws: Workspace | None) -> str:
    """The model's folder as the log names every path: relative to the workspace root."""
    folder = model.path if isinstance(model, SegmentationModel) else model
    return ws.relative(folder) if ws is not None else str(folder)


def suggest_crops(
    image: str | Path,
    *,
    model: str | Path | SegmentationModel,
    pred: str,
    n: int = 3,
    crop_size: int | tuple[int, int, int] | None = None,
    labels: str = "annotations",
    probability: str | None = None,
    weights: SuggestionWeights | None = None,
    name: str = "suggestions",
    out: str | Path | None = None,
    device: str = "auto",
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> Result:
    """Propose the next ``n`` crops to annotate, where the model is most likely wrong.

    Parameters
    ----------
    image
        The OME-Zarr image (level 0 is scored; it is read one crop at a time).
    model
        The model folder that made ``pred`` (``model.json`` + ``weights.pt``).
    pred
        Prediction label image inside ``image`` (foreground = the model's label value).
    n
        How many crops to suggest (≥ 1).
    crop_size
        Crop size (one int for a cube, or z, y, x); default: the median size of the
        annotated crops, else 32 (clipped to the image).
    labels
        The sparse annotation label image (255 = unannotated) whose crops are
        already annotated; its foreground fraction is the prior.
    probability
        Probability label image for the entropy term; ``None`` uses
        ``<pred>-probability`` when it exists, ``""`` forces quick predictions.
    weights
        Component weights (:class:`SuggestionWeights`); recorded in the outputs.
    name
        Label image to write inside ``image`` (value *i* = suggestion of rank *i*).
    out
        Folder for ``suggestions.csv``, ``suggestions.json`` and ``suggestions.png``
        (default ``<workspace>/derived/suggestions/<image>-<name>``, or beside the image).
    device
        ``auto``, ``cpu`` or ``cuda``, for the quick predictions (only made when
        there is no probability image).

    Returns
    -------
    Result
        ``details``: the suggested crops with every score component, the prior,
        the weights and the output paths.

    Examples
    --------
    >>> r = suggest_crops("cell.ome.zarr", model="model", pred="pred", n=3)  # doctest: +SKIP
    >>> [c["offset"] for c in r.details["crops"]]  # doctest: +SKIP
    """
    image = local_only(image)
    w = weights or SuggestionWeights()
    ws = as_workspace(workspace)
    params = {
        "model": _model_folder(model, ws),
        "pred": pred,
        "n": n,
        "crop_size": crop_size
        if crop_size is None or isinstance(crop_size, int)
        else list(crop_size),
        "labels": labels,
        "probability": probability,
        "weights": asdict(w),
        "name": name,
        "device": device,
    }
    with recorder(
        ws, "A", "annotate-suggest", inputs=[image], params=params, libraries=SOFTWARE
    ) as step:
        _check_n(n)
        refuse_url_out(out)
        m = model if isinstance(model, SegmentationModel) else load_model(model)
        step.add_input(m.path / "weights.pt")
        replace = _check_name(image, name, {pred, labels, probability or f"{pred}-probability"})
        scores = score_candidates(
            image,
            model=m,
            pred=pred,
            crop_size=crop_size,
            labels=labels,
            probability=probability,
            device=device,
            workspace=ws,
            progress=progress,
        )
        free = int(scores.eligible.sum())
        note = _other_model_note(image, pred, m)
        crops = select_crops(scores, n, w)
        if len(crops) < n:
            msg = f"only {len(crops)} crops of {scores.shape} fit outside the annotated crops ({free} free grid positions); ask for fewer or smaller crops"
            raise SegmentationError(msg, path=image, field="n")
        summary = _summary(m, pred, labels, scores, w, free, crops)
        files = _write_outputs(image, name, m, crops, summary, replace, scores, step, out, ws)
        step.details.update(
            {
                "crops": [{"offset": c["offset"], "score": round(c["score"], 4)} for c in crops],
                "prior": round(scores.prior, 4),
            }
        )
        step.message = (
            f"{len(crops)} crops of {tuple(scores.shape)} suggested ({free} candidates); "
            f"label image {name!r}{note}"
        )
        details = {
            **summary,
            "label_image": str(_store.label_path(image, name)),
            "files": {k: str(v) for k, v in files.items()},
        }
        return Result(
            "annotate-suggest", "ok", str(_store.label_path(image, name)), step.message, details
        )


def _check_n(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        msg = f"n must be a whole number ≥ 1, not {n!r}"
        raise InputError(msg, field="n")


def _other_model_note(image: Path, pred: str, m: SegmentationModel) -> str:
    """A warning for the message when ``pred`` was made by a model other than ``m``."""
    made_by = (_store.label_curated_attrs(image, pred).get("model") or {}).get("sha256")
    if made_by and made_by != m.sha256:
        return f"; note: {pred!r} was predicted by another model (weights {made_by[:12]}…)"
    return ""


def _summary(
    m: SegmentationModel,
    pred: str,
    labels: str,
    scores: Any,
    w: SuggestionWeights,
    free: int,
    crops: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the suggestion outputs record: the model, the prior, the weights and the crops."""
    return {
        "model": {"id": m.id, "sha256": m.sha256},
        "pred": pred,
        "labels": labels,
        "crop_size": list(scores.shape),
        "prior_foreground_fraction": scores.prior,
        "weights": w.normalised(),
        "normalisation": (
            "each component ranked over the eligible candidates and scaled to [0, 1]; "
            "score = weighted sum of the ranks when the crop was picked (greedy: diversity is "
            "re-ranked over the remaining crops after each pick, so a later pick may score higher)"
        ),
        "uncertainty_source": scores.uncertainty_source,
        "candidates": len(scores),
        "eligible_candidates": free,
        "annotated_crops": scores.annotated,
        "crops": crops,
    }


def _write_outputs(
    image: Path,
    name: str,
    m: SegmentationModel,
    crops: list[dict[str, Any]],
    summary: dict[str, Any],
    replace: bool,
    scores: Any,
    step: Any,
    out: str | Path | None,
    ws: Workspace | None,
) -> dict[str, Path]:
    """The label image (recorded with its store digest), the table, the JSON record and the picture."""
    written = _write_labels(image, name, m, crops, summary, replace)
    step.add_output(
        _store.label_path(image, name),
        digest=written.details["store_digest"],
        size=written.details["bytes"],
        role="labels",
    )
    folder = Path(out) if out is not None else _default_out(image, name, ws)
    folder.mkdir(parents=True, exist_ok=True)
    rows = _table_rows(crops)
    files = {
        "csv": atomic_write_text(folder / "suggestions.csv", _csv_text(rows)),
        "json": write_json(
            folder / "suggestions.json", {**summary, "table": rows, "label_image": name}
        ),
        "png": atomic_write_bytes(
            folder / "suggestions.png", _figure_png(image, crops, scores.annotated)
        ),
    }
    for p in files.values():
        step.add_output(p)
    return files


def _write_labels(
    image: Path,
    name: str,
    m: SegmentationModel,
    crops: list[dict[str, Any]],
    summary: dict[str, Any],
    replace: bool,
) -> Result:
    from curated.images import add_labels

    shape = tuple(int(v) for v in _store.image_level0(image).shape)
    props = [
        {
            "label-value": c["label_value"],
            "name": f"suggestion {c['rank']}",
            "curated:rank": c["rank"],
            "curated:score": round(c["score"], 6),
            "curated:offset": c["offset"],
            "curated:shape": c["shape"],
        }
        for c in crops
    ]
    record = {k: v for k, v in summary.items() if k not in ("annotated_crops",)}
    return add_labels(
        image,
        name,
        _SuggestionLabels(shape, crops),
        kind="prediction",
        ai_generated=True,
        model={"id": m.id, "sha256": m.sha256, "card": None},
        properties=props,
        overwrite=replace,
        curated_extra={"suggestion": json.loads(json.dumps(record, default=float))},
    )
