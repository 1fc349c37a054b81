"""Honest evaluation of a label image on seeded random held-out blocks.

A curator's own crops are where the model was fixed (or where structures are
obvious), so scores on them are biased. :func:`evaluate` instead draws ``N``
blocks uniformly at random inside the image with a recorded seed, refuses (and
redraws) every block that touches a region the model or any of its ancestors
was trained on (``lineage_rois`` grown by the model's context), and reports:

- voxel Dice (= F1), IoU, precision and recall, raw and with a band of
  ``boundary_band`` voxels around the truth's edges excluded (boundary truth is
  noisy, as incasem's metric masks acknowledge);
- instance F1 at IoU 0.5: connected components of truth and prediction inside
  each block, matched one-to-one (Hungarian assignment on IoU);
- TP/FP/FN summed over blocks before any ratio is taken (CellMap's rule), a
  seeded bootstrap 95 % confidence interval over blocks, and the same figures
  per *factor* group (e.g. blocks on the shaded vs the bright half).

Blocks are read one at a time from the OME-Zarr level 0, so memory is bounded by
the block size, never by the image.

A few blocks can miss whole kinds of error, so when the truth covers the volume
:func:`evaluate` also scores every voxel outside the training regions, tile by
tile (:mod:`curated.segment.wholevolume`), and the report puts those figures
first. Blocks are stratified so that each truth class present is covered
(:func:`stratify_blocks`); the report warns when the blocks hold too little of a
class, names the classes from the truth's ``image-label`` properties, states the
truth's origin, and says where the false positives lie
(:mod:`curated.segment.confusion`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from curated._io import atomic_write_bytes, atomic_write_text, write_json
from curated._text import render_template
from curated._version import __version__
from curated.document.figures import BlockPanel, block_errors_png
from curated.document.survey import evaluation_picture
from curated.errors import InputError, SegmentationError
from curated.images.labels import UNANNOTATED_VALUE
from curated.images.ngff import read_ngff
from curated.objstore import local_only, refuse_url_out
from curated.progress import ProgressReporter, ensure_progress
from curated.results import Result
from curated.segment.geometry import Box, Vec3, vec3
from curated.segment.metrics import (
    BOOTSTRAP_SAMPLES,
    CONFIDENCE,
    MIN_BOOTSTRAP_BLOCKS,
    BlockCounts,
    bootstrap_ci,
    count_block,
    ratio_scores,
    summarize,
)
from curated.segment.modeljson import read_model_json
from curated.segment.volume import Volume, open_level0
from curated.workspace import Workspace, as_workspace, recorder, unlogged

EVALUATION_FORMAT = "curated-evaluation/1"
"""Value of ``format`` in every evaluation JSON this module writes."""


# ------------------------------------------------------------- held-out blocks
@dataclass(frozen=True)
class HeldOutBlocks:
    """Seeded random test blocks, drawn before anyone looks at a prediction.

    Keep the object (or the evaluation JSON that holds it) and pass it again to
    :func:`evaluate` to score a fine-tuned model on the *same* blocks.
    """

    image_shape: Vec3
    block_size: Vec3
    seed: int
    blocks: tuple[Box, ...]
    rejected_training: int = 0
    """Draws refused because they touched a (context-grown) training ROI."""
    rejected_overlap: int = 0
    """Draws refused because they overlapped a block already drawn."""
    exclusion: tuple[Box, ...] = ()
    """The grown training ROIs the blocks were kept clear of."""
    strata: tuple[dict[str, Any], ...] = ()
    """Blocks placed on purpose so that a truth class is covered: ``{"block", "class_value"}``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "block_size": list(self.block_size),
            "seed": self.seed,
            "blocks": [b.to_dict() for b in self.blocks],
            "rejected_training": self.rejected_training,
            "rejected_overlap": self.rejected_overlap,
            "exclusion": [b.to_dict() for b in self.exclusion],
            "strata": [dict(s) for s in self.strata],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeldOutBlocks:
        try:
            return cls(
                image_shape=vec3(d["image_shape"], "image_shape"),
                block_size=vec3(d["block_size"], "block_size"),
                seed=int(d["seed"]),
                blocks=tuple(Box.from_dict(b) for b in d["blocks"]),
                rejected_training=int(d.get("rejected_training", 0)),
                rejected_overlap=int(d.get("rejected_overlap", 0)),
                exclusion=tuple(Box.from_dict(b) for b in d.get("exclusion", [])),
                strata=tuple(dict(x) for x in d.get("strata", []) if isinstance(x, Mapping)),
            )
        except KeyError as exc:
            msg = f"held-out blocks lack the field {exc.args[0]!r}"
            raise InputError(msg, field=str(exc.args[0])) from None

    @classmethod
    def load(cls, path: str | Path) -> HeldOutBlocks:
        """Read the blocks from an evaluation JSON (``held_out``) or a bare blocks JSON."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("file not found", path=p) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a JSON file ({exc})", path=p) from None
        if isinstance(data, dict) and "held_out" in data:
            data = data["held_out"]
        if not isinstance(data, dict):
            raise InputError("expected a JSON object with held-out blocks", path=p)
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise InputError(exc.message, path=p, field=exc.field) from None


def draw_held_out_blocks(
    image_shape: Sequence[int],
    n: int,
    block_size: int | Sequence[int],
    *,
    seed: int = 0,
    exclude: Iterable[Box] = (),
    allow_overlap: bool = False,
    max_draws: int | None = None,
) -> HeldOutBlocks:
    """Draw ``n`` blocks at uniformly random offsets inside ``image_shape``.

    A draw that touches any box in ``exclude`` (grown training ROIs) is
    rejected and redrawn, and so is one that overlaps a block already kept
    (unless ``allow_overlap``): overlapping blocks would count voxels twice.
    The number of rejections of each kind is recorded.

    Raises
    ------
    SegmentationError
        When ``n`` blocks cannot be found within ``max_draws`` draws (default
        ``200 * n``), e.g. because the training ROIs cover the image: the
        message gives how many were found and what to change.
    """
    shape = vec3(image_shape, "image_shape")
    size = tuple(min(b, s) for b, s in zip(vec3(block_size, "block_size"), shape, strict=True))
    if n <= 0:
        raise InputError(f"the number of blocks must be positive, got {n}", field="blocks")
    exclude = tuple(exclude)
    rng = np.random.default_rng(seed)
    max_draws = max_draws if max_draws is not None else 200 * n
    kept: list[Box] = []
    rejected_training = rejected_overlap = draws = 0
    while len(kept) < n and draws < max_draws:
        draws += 1
        offset = tuple(int(rng.integers(0, s - b + 1)) for s, b in zip(shape, size, strict=True))
        box = Box(offset, size)  # type: ignore[arg-type]
        if any(box.intersects(e) for e in exclude):
            rejected_training += 1
            continue
        if not allow_overlap and any(box.intersects(k) for k in kept):
            rejected_overlap += 1
            continue
        kept.append(box)
    if len(kept) < n:
        if not kept and rejected_training == draws:
            why = "every block position touches a training ROI of the model or its ancestors (context included)"
        elif rejected_training == 0:
            why = "the image is too small for that many non-overlapping blocks"
        else:
            why = "too little of the image lies outside the training ROIs for that many separate blocks"
        msg = (
            f"found only {len(kept)} of {n} held-out blocks of size {list(size)} in an image of shape "
            f"{list(shape)} after {draws} draws ({rejected_training} touched training ROIs, "
            f"{rejected_overlap} overlapped other blocks): {why}. Use fewer or smaller blocks, "
            "or evaluate on another image the model never saw"
        )
        raise SegmentationError(
            msg,
            field="blocks",
            details={"found": len(kept), "requested": n, "rejected_training": rejected_training},
        )
    return HeldOutBlocks(
        image_shape=shape,
        block_size=size,  # type: ignore[arg-type]
        seed=seed,
        blocks=tuple(kept),
        rejected_training=rejected_training,
        rejected_overlap=rejected_overlap,
        exclusion=exclude,
    )


MIN_CI_BLOCKS = 8
"""Below this many held-out blocks the report warns that the block CI is too narrow to trust
(the research notes ask for at least 8 seeded random blocks per label)."""
MIN_CLASS_VOXELS = 500
"""Below this many truth voxels of a class in the scored blocks, the report warns."""
MIN_CLASS_FRACTION = 0.01
"""Below this share of the scored voxels for a class, the report warns."""
MOSTLY_TRAINING = 0.5
"""From this share of the image inside the (grown) training regions on, the report warns that
the whole-volume figures rest on what is left."""


def _class_counts(values: np.ndarray, ignore: Iterable[int] = ()) -> dict[int, int]:
    vals, cnt = np.unique(values, return_counts=True)
    skip = set(ignore)
    return {int(v): int(c) for v, c in zip(vals, cnt, strict=True) if int(v) not in skip}


def stratify_blocks(
    held: HeldOutBlocks,
    truth: Volume,
    coarse: np.ndarray,
    classes: Sequence[int],
    *,
    min_voxels: int = MIN_CLASS_VOXELS,
    tries: int = 50,
) -> tuple[HeldOutBlocks, list[dict[int, int]]]:
    """Make every truth class in ``classes`` appear in at least one held-out block.

    Uniform blocks often miss a rare class (a nucleus at one side, a few
    vesicles). For each class with fewer than ``min_voxels`` voxels in the
    blocks, a block is moved onto the class: a voxel of the class is picked at
    random (the held-out seed) in ``coarse`` (the truth's coarsest level), the
    block is centred on it at level 0 and kept if it touches no training region
    and no other block. The uniform block replaced is the last one whose
    classes stay covered without it. The moved blocks are listed in
    ``strata``; the number of blocks does not change.

    Returns the (possibly) new blocks and each block's truth voxels per value.
    """
    blocks = list(held.blocks)
    counts = [_class_counts(truth.read(b)) for b in blocks]
    strata: list[dict[str, Any]] = list(held.strata)
    rng = np.random.default_rng([held.seed, 1])
    scale = [s / c for s, c in zip(held.image_shape, coarse.shape, strict=True)]
    size = held.block_size
    for value in classes:
        if sum(c.get(value, 0) for c in counts) >= min_voxels:
            continue
        fixed = {int(x["block"]) for x in strata}
        # replace the last uniform block whose other classes are covered elsewhere
        victim = None
        for i in reversed(range(len(blocks))):
            if i in fixed:
                continue
            others_ok = all(
                sum(c.get(v, 0) for j, c in enumerate(counts) if j != i) > 0
                for v in classes
                if v != value and counts[i].get(v, 0) > 0
            )
            if others_ok:
                victim = i
                break
        where = np.argwhere(coarse == value)
        if victim is None or where.size == 0:
            continue
        best: tuple[int, Box, dict[int, int]] | None = None
        for _ in range(tries):
            cz = where[int(rng.integers(0, len(where)))]
            centre = [(c + 0.5) * f for c, f in zip(cz, scale, strict=True)]
            off = tuple(
                int(min(max(0, round(c - b / 2)), n - b))
                for c, b, n in zip(centre, size, held.image_shape, strict=True)
            )
            box = Box(off, size)  # type: ignore[arg-type]
            if any(box.intersects(e) for e in held.exclusion):
                continue
            if any(box.intersects(b) for j, b in enumerate(blocks) if j != victim):
                continue
            got = _class_counts(truth.read(box))
            if best is None or got.get(value, 0) > best[0]:
                best = (got.get(value, 0), box, got)
            if got.get(value, 0) >= min_voxels:
                break
        if best is None or best[0] == 0:
            continue
        blocks[victim] = best[1]
        counts[victim] = best[2]
        strata = [x for x in strata if int(x["block"]) != victim]
        strata.append({"block": victim, "class_value": int(value)})
    new = HeldOutBlocks(
        held.image_shape,
        held.block_size,
        held.seed,
        tuple(blocks),
        held.rejected_training,
        held.rejected_overlap,
        held.exclusion,
        tuple(sorted(strata, key=lambda x: int(x["block"]))),
    )
    return new, counts


def coarsest_level(vol: Volume) -> np.ndarray:
    """The coarsest pyramid level of an OME-Zarr image or label image as (z, y, x).

    Memory is bounded by that level, which a multiscale image keeps small.
    """
    import zarr

    group = zarr.open_group(str(vol.path), mode="r")
    arr = group[read_ngff(vol.path).levels[-1].path]
    index: list[Any] = [0] * arr.ndim
    for a in vol.spatial:
        index[a] = slice(None)
    return np.asarray(arr[tuple(index)])


def foreground_warnings(
    class_voxels: Mapping[int, int],
    scored: int,
    classes: Sequence[int],
    names: Mapping[int, str],
    *,
    where: str,
    target: int,
) -> list[str]:
    """Warnings for classes with too little truth among the scored voxels."""
    out = []
    for v in classes:
        n = int(class_voxels.get(v, 0))
        share = n / scored if scored else 0.0
        if n >= MIN_CLASS_VOXELS and share >= MIN_CLASS_FRACTION:
            continue
        name = names.get(v, f"class {v}")
        role = "the scored class" if v == target else "a truth class"
        out.append(
            f"the {where} hold only {n} voxels of {name} (label {v}, {role}), {share:.2%} of the "
            f"{scored} scored voxels (fewer than {MIN_CLASS_VOXELS} or under "
            f"{MIN_CLASS_FRACTION:.0%}): scores for it are fragile; use more or larger blocks, "
            "or score the whole volume when the truth covers it"
        )
    return out


# ----------------------------------------------------------- training lineage
@dataclass(frozen=True)
class TrainingExclusion:
    """What a model (and its ancestors) saw in training, grown into no-go boxes."""

    model_dir: Path
    model: dict[str, Any]
    rois: tuple[Box, ...]
    margin: Vec3
    boxes: tuple[Box, ...]
    notes: tuple[str, ...] = ()
    """What the reader must know about ROIs left out (their image could not be found)."""


def training_exclusion(
    model_dir: str | Path, *, extra_margin: int | Sequence[int] = 0, image: str | Path | None = None
) -> TrainingExclusion:
    """The boxes a held-out block must not touch for the model at ``model_dir``.

    Every ROI in ``lineage_rois`` (this model's and all its ancestors'; falls
    back to ``training.rois`` when absent) is grown by the model's
    ``architecture.context`` (the raw input a training output saw), the
    denoising filter's halo (it mixes raw voxels directly into that input), the
    recorded augmentation's reach (an elastic warp's margin; every axis the largest
    context when patches were read with z swapped in), and ``extra_margin``. The halos of the shading
    correction and the local contrast normalisation are *not* added: beyond the
    network's input they only feed smooth local statistics (a Gaussian mean and
    spread, σ 400 nm by default), never a label or a voxel value the
    network sees; with them, a 400 nm normalisation would grow every crop by 150
    voxels per side and leave no room for held-out blocks in a volume of a few
    hundred voxels. With ``image``, ROIs recorded on an image of another name
    are left out (another image shares no voxels) unless that image is found and
    holds the same voxels there (a copy or re-conversion, see :func:`_rois_on_image`);
    ROIs whose image is not recorded, or has the same name, are always kept: when
    in doubt, exclude.
    """
    folder, model = read_model_json(model_dir)
    raw_rois = model.get("lineage_rois")
    if raw_rois is None:
        raw_rois = (model.get("training") or {}).get("rois") or []
    notes: list[str] = []
    if model.get("lineage_rois") is None and model.get("parent"):
        notes.append(
            "the model records no lineage_rois but has a parent: only its own training regions "
            "were left out, not its ancestors', so the scores may include voxels an ancestor "
            "was trained on"
        )
    if image is not None:
        raw_rois, more = _rois_on_image(raw_rois, Path(image), folder)
        notes += more
    try:
        rois = tuple(Box.from_dict(r) for r in raw_rois)
    except InputError as exc:
        raise InputError(exc.message, path=folder / "model.json", field="lineage_rois") from None
    context = (model.get("architecture") or {}).get("context", [0, 0, 0])
    try:
        ctx = tuple(int(c) for c in context)
    except (TypeError, ValueError):
        raise InputError(
            f"architecture.context must be three integers, got {context!r}",
            path=folder / "model.json",
            field="architecture.context",
        ) from None
    extra = (extra_margin,) * 3 if isinstance(extra_margin, int) else tuple(extra_margin)
    halo = _denoise_halo(model.get("preprocessing"))
    ctx, warp = _augmented_reach(ctx, (model.get("training") or {}).get("augmentation"))
    margin = tuple(c + e + h + w for c, e, h, w in zip(ctx, extra, halo, warp, strict=True))
    boxes = tuple(r.grow(margin) for r in rois)
    return TrainingExclusion(folder, model, rois, margin, boxes, tuple(notes))  # type: ignore[arg-type]


SAME_VOXELS_CORRELATION = 0.95
"""Grey values of a training ROI correlating at least this much with the evaluated image's
count as the same voxels (a copy or a re-conversion with rescaled values)."""


def _rois_on_image(
    raw_rois: Sequence[Any], image: Path, model_dir: Path
) -> tuple[list[Any], list[str]]:
    """The lineage ROIs that lie on ``image``, and notes on those left out.

    A ROI recorded on an image of the same name is kept. One recorded on an image of
    another name is kept too when that image is found (as recorded, or relative to the
    model folder or a folder above it) and holds the same voxels in the ROI as ``image``:
    a copy or a re-conversion shares every voxel. One whose image cannot be found is
    left out, with a note saying so.
    """
    name = image.resolve().name
    kept: list[Any] = []
    missing: set[str] = set()
    for r in raw_rois:
        ref = str(r.get("image") or "") if isinstance(r, Mapping) else ""
        if not ref or Path(ref).name == name:
            kept.append(r)
            continue
        same = _same_voxels(_find_image(ref, model_dir), image, r)
        if same is None:
            missing.add(ref)
        elif same:
            kept.append(r)
    notes = [
        f"training regions recorded on image {ref!r}, which was not found, were taken to share no "
        "voxels with this image: if this image is a copy or a re-conversion of it, the scores "
        "include training voxels"
        for ref in sorted(missing)
    ]
    return kept, notes


def _find_image(ref: str, model_dir: Path) -> Path | None:
    """The image a model recorded (absolute, or relative to its folder or one above it)."""
    p = Path(ref)
    if p.is_absolute():
        return p if p.is_dir() else None
    for base in [model_dir, *model_dir.resolve().parents][:6]:
        if (base / p).is_dir():
            return base / p
    return None


def _same_voxels(other: Path | None, image: Path, roi: Mapping[str, Any]) -> bool | None:
    """Whether ``other`` holds the same level-0 voxels as ``image`` inside ``roi``; ``None``
    when ``other`` is missing or unreadable."""
    if other is None:
        return None
    if other.resolve() == image.resolve():
        return True
    try:
        a, b = open_level0(other, "training image"), open_level0(image, "image")
        box = Box.from_dict(roi)
    except InputError:
        return None
    if a.shape != b.shape:
        return False
    inside = box.grow((0, 0, 0), within=b.shape)
    if min(inside.shape) <= 0:
        return False  # the ROI lies outside this image: nothing to exclude
    x, y = a.read(inside), b.read(inside)
    if np.array_equal(x, y):
        return True
    # a re-conversion may rescale grey values (16 to 8 bit, another window): the same voxels
    # still correlate almost perfectly, another acquisition's do not
    x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    if x.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return False
    if x.std() == 0 or y.std() == 0:
        return False
    return bool(np.corrcoef(x, y)[0, 1] >= SAME_VOXELS_CORRELATION)


def _augmented_reach(
    ctx: tuple[int, ...], aug: Any
) -> tuple[tuple[int, ...], tuple[int, int, int]]:
    """The network context per axis and the warp's margin as the recorded augmentation makes them.

    An elastic warp moves raw voxels and labels up to its margin (``3 σ + 1`` in y and x,
    as :class:`curated.segment.train.Augmentation` reads them) into a supervised output, so
    the crop's raw reach grows by it; with ``swap_z`` a patch is read with z exchanged for
    an in-plane axis, so every axis may carry the largest context.
    """
    if not isinstance(aug, Mapping):
        return ctx, (0, 0, 0)
    warp = (0, 0, 0)
    if aug.get("elastic"):
        try:
            m = int(np.ceil(3 * float(aug.get("elastic_sigma", 2.0)))) + 1
        except (TypeError, ValueError):
            m = 7
        warp = (0, m, m)
    if aug.get("swap_z") and aug.get("transposes", True):
        ctx = (max(ctx),) * len(ctx)
    return ctx, warp


def _denoise_halo(prep: Any) -> tuple[int, int, int]:
    """Extra raw voxels whose *values* reach the network's input: the denoising filter's radius.

    The shading and local-contrast filters only contribute smooth statistics
    (see :func:`training_exclusion`), so their halos are left out.
    """
    if not isinstance(prep, Mapping):
        return (0, 0, 0)
    try:
        from curated.segment.preprocess import Preprocessing, gaussian_radius

        pre = Preprocessing.from_dict(dict(prep))
    except (TypeError, ValueError):
        return (0, 0, 0)
    d = gaussian_radius(pre.denoise_sigma)
    return (d, d, d)


# ------------------------------------------------------------------- factors
Factor = Callable[[Box, tuple[int, ...]], str]
"""A factor maps a block (and the image shape) to the name of its group."""


def half_along(axis: int, low: str, high: str) -> Factor:
    """A factor splitting blocks by which half of the image their centre lies in along ``axis``."""

    def factor(box: Box, image_shape: tuple[int, ...]) -> str:
        return low if box.centre[axis] < image_shape[axis] / 2 else high

    return factor


SHADING_MIN_CONTRAST = 0.05
"""Relative brightness difference between the halves below which no side is called shaded."""


def shading_side(image_attrs: Mapping[str, Any] | None = None) -> Factor:
    """Shaded vs bright half of a sample whose brightness changes along x.

    Uses ``curated.shading`` of the image attributes (``{"axis": "z"|"y"|"x",
    "dark_side": "low"|"high"|None}``), which :func:`evaluate` measures on the
    image's coarsest level when absent. With no dark side (halves within
    :data:`SHADING_MIN_CONTRAST` of each other) the groups are ``low x`` and
    ``high x``: nothing is called shaded that is not.
    """
    info: Mapping[str, Any] = {}
    if image_attrs:
        cur = image_attrs.get("curated") or {}
        if isinstance(cur, Mapping) and isinstance(cur.get("shading"), Mapping):
            info = cur["shading"]
    name = str(info.get("axis", "x"))
    axis = {"z": 0, "y": 1, "x": 2}.get(name, 2)
    dark = info.get("dark_side")
    if dark == "high":
        return half_along(axis, "bright", "shaded")
    if dark == "low":
        return half_along(axis, "shaded", "bright")
    return half_along(axis, f"low {name}", f"high {name}")


def measure_shading(image: str | Path, axis: int = 2) -> dict[str, Any]:
    """Mean brightness of the two halves of an image along ``axis``, from its coarsest level.

    Memory is bounded by the coarsest level, which a multiscale image keeps small.
    """
    import zarr

    group = zarr.open_group(str(image), mode="r")
    vol = open_level0(Path(image), "image")
    arr = group[read_ngff(image).levels[-1].path]
    index: list[Any] = [0] * arr.ndim
    for a in vol.spatial:
        index[a] = slice(None)
    data = np.asarray(arr[tuple(index)], dtype=np.float64)
    n = data.shape[axis]
    if n < 2:
        return {"axis": "zyx"[axis], "dark_side": None, "means": None}
    low = float(np.take(data, range(n // 2), axis=axis).mean())
    high = float(np.take(data, range(n - n // 2, n), axis=axis).mean())
    contrast = abs(low - high) / max(abs(low), abs(high), 1e-12)
    dark = None if contrast < SHADING_MIN_CONTRAST else ("high" if high < low else "low")
    return {"axis": "zyx"[axis], "dark_side": dark, "means": [low, high], "contrast": contrast}


BUILTIN_FACTORS: dict[str, Callable[[Mapping[str, Any] | None], Factor]] = {
    "shading_side": shading_side,
    "x_half": lambda _attrs: half_along(2, "low x", "high x"),
    "y_half": lambda _attrs: half_along(1, "low y", "high y"),
    "z_half": lambda _attrs: half_along(0, "low z", "high z"),
}
"""Factors known by name (what the CLI's ``--factor`` accepts)."""


def resolve_factors(
    factors: Sequence[str] | Mapping[str, Factor] | None,
    image_attrs: Mapping[str, Any] | None = None,
) -> dict[str, Factor]:
    if not factors:
        return {}
    if isinstance(factors, Mapping):
        return dict(factors)
    out: dict[str, Factor] = {}
    for name in factors:
        if name not in BUILTIN_FACTORS:
            msg = f"unknown factor {name!r}; known: {', '.join(BUILTIN_FACTORS)} (or pass a mapping name → function)"
            raise InputError(msg, field="factors")
        out[name] = BUILTIN_FACTORS[name](image_attrs)
    return out


# --------------------------------------------------------------- label images
def _label_path(image: Path, name: str, role: str) -> Path:
    p = image / "labels" / name
    if not p.is_dir():
        labels_dir = image / "labels"
        known = (
            sorted(q.name for q in labels_dir.iterdir() if q.is_dir())
            if labels_dir.is_dir()
            else []
        )
        msg = f"no label image {name!r} (the {role}) in this image; it has: {', '.join(known) or 'none'}"
        raise InputError(msg, path=image, field=role)
    return p


def _declared_label_values(attrs: Mapping[str, Any]) -> set[int] | None:
    il = attrs.get("image-label") or {}
    values: set[int] = set()
    for key in ("colors", "properties"):
        for item in il.get(key, []) or []:
            if isinstance(item, Mapping) and "label-value" in item:
                try:
                    values.add(int(item["label-value"]))
                except (TypeError, ValueError):
                    continue
    return values or None


# --------------------------------------------------------------------- report
@dataclass
class EvaluationReport:
    """What :func:`evaluate` found; ``to_dict`` is the evaluation JSON."""

    name: str
    image: str
    pred: str
    truth: str
    label_value: int
    pred_value: int
    held_out: HeldOutBlocks
    boundary_band: int
    iou_threshold: float
    connectivity: int
    counts: list[BlockCounts]
    factor_groups: dict[str, list[str]]
    factor_info: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    pred_meta: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    bootstrap_seed: int = 0
    files: dict[str, str] = field(default_factory=dict)
    class_names: dict[int, str] = field(default_factory=dict)
    """Truth value → structure name (from the truth's ``image-label`` properties)."""
    classes: list[int] = field(default_factory=list)
    """Truth classes present (coarsest level), the scored one always included."""
    truth_origin: str | None = None
    truth_complete: bool = False
    unannotated: list[int] = field(default_factory=list)
    block_class_voxels: dict[int, int] = field(default_factory=dict)
    block_scored_voxels: int = 0
    confusion: Any = None
    """:class:`curated.segment.confusion.Confusion` of the false positives in the blocks."""
    whole: Any = None
    """:class:`curated.segment.wholevolume.WholeVolumeScores` when the whole volume was scored."""
    warnings: list[str] = field(default_factory=list)

    @property
    def overall(self) -> dict[str, Any]:
        return summarize(self.counts)

    @property
    def label_name(self) -> str:
        """The scored structure's name, or ``label K`` when the truth does not name it."""
        return self.class_names.get(self.label_value, f"label {self.label_value}")

    def confusion_summary(self) -> dict[str, Any]:
        """What the model confuses, on the whole volume (when scored) and on the blocks."""
        out: dict[str, Any] = {}
        if self.whole is not None:
            # the summed counts only: ``overall`` would also run the tile bootstrap
            tot = self.whole.totals
            out["whole_volume"] = self.whole.confusion.summary(
                self.label_value, self.class_names, tp=tot["tp"], fn=tot["fn"]
            )
        if self.confusion is not None:
            raw = self.overall["raw"]
            out["blocks"] = self.confusion.summary(
                self.label_value, self.class_names, tp=raw["tp"], fn=raw["fn"]
            )
        return out

    @property
    def ci95(self) -> dict[str, list[float] | None]:
        return bootstrap_ci(_scored(self.counts), seed=self.bootstrap_seed)

    def factors(self) -> dict[str, dict[str, Any]]:
        """Scores per factor group, with a bootstrap CI inside each group."""
        out: dict[str, dict[str, Any]] = {}
        for fname, groups in self.factor_groups.items():
            per: dict[str, Any] = {}
            for g in sorted(set(groups)):
                sub = [c for c, gg in zip(self.counts, groups, strict=True) if gg == g]
                ci = bootstrap_ci(_scored(sub), seed=self.bootstrap_seed)
                per[g] = summarize(sub) | {"ci95": ci}
            out[fname] = per
        return out

    @property
    def dice(self) -> float | None:
        return self.overall["raw"]["dice"]

    def to_dict(self) -> dict[str, Any]:
        blocks = []
        for i, (box, c) in enumerate(zip(self.held_out.blocks, self.counts, strict=True)):
            blocks.append(
                {
                    "index": i,
                    **box.to_dict(),
                    "factors": {f: g[i] for f, g in self.factor_groups.items()},
                    "counts": c.to_dict(),
                    # a block of unannotated voxels scored nothing: no Dice, not the both-empty 1
                    **{
                        k: ratio_scores(*n)["dice"] if c.scored else None
                        for k, n in (
                            ("dice", (c.tp, c.fp, c.fn)),
                            ("dice_boundary_excluded", (c.band_tp, c.band_fp, c.band_fn)),
                            ("instance_f1", (c.inst_tp, c.inst_fp, c.inst_fn)),
                        )
                    },
                }
            )
        per_block = [b["dice"] for b in blocks if b["dice"] is not None]
        sampling = (
            "uniform random block offsets inside the image (level 0), seeded, non-overlapping, "
            "drawn independently of the prediction; "
            + (
                "blocks touching a training ROI of the model or any ancestor (grown by the "
                "model's context) were rejected and redrawn"
                if self.model is not None
                else "no model was given, so the blocks were NOT checked against training "
                "regions and may hold voxels the model was trained on"
            )
        )
        if self.held_out.strata:
            moved = ", ".join(
                f"block {x['block']} onto {self.class_names.get(int(x['class_value']), 'label ' + str(x['class_value']))}"
                for x in self.held_out.strata
            )
            sampling += (
                f"; stratified by truth class: {len(self.held_out.strata)} uniform block(s) moved onto a "
                f"class no block covered, centred on a random voxel of it ({moved})"
            )
        names = {str(k): v for k, v in sorted(self.class_names.items())}
        return {
            "format": EVALUATION_FORMAT,
            "name": self.name,
            "created": self.created,
            "software": {"curated": __version__},
            "image": self.image,
            "pred": {
                "name": self.pred,
                "value": self.pred_value,
                "class_name": self.label_name,
                **self.pred_meta,
            },
            "truth": {
                "name": self.truth,
                "origin": self.truth_origin,
                "classes": names,
                "complete": self.truth_complete,
                "unannotated": list(self.unannotated),
            },
            "label_value": self.label_value,
            "label_name": self.label_name,
            "classes_present": [
                {"value": v, "name": self.class_names.get(v, f"label {v}")} for v in self.classes
            ],
            "model": self.model,
            "warnings": list(self.warnings),
            "whole_volume": self.whole.to_dict() if self.whole is not None else None,
            "confusion": self.confusion_summary(),
            "block_class_voxels": {
                str(k): int(v) for k, v in sorted(self.block_class_voxels.items())
            },
            "block_scored_voxels": int(self.block_scored_voxels),
            "protocol": {
                "sampling": sampling,
                "whole_volume": (
                    (
                        "every voxel of the image outside the training regions of the model and "
                        "its ancestors (grown by the model's context and pre-processing halo)"
                        if self.model is not None
                        else "every voxel of the image, training regions included (no model "
                        "was given)"
                    )
                    + (", and outside unannotated truth voxels" if self.unannotated else "")
                    + ", read tile by tile; TP/FP/FN summed over tiles; bootstrap CI over "
                    "spatial blocks of neighbouring tiles (neighbouring tiles are not independent; "
                    "the block size whose Dice interval is widest of those leaving at least "
                    f"{MIN_BOOTSTRAP_BLOCKS} blocks); instance scores are not computed (objects cross tiles)"
                    if self.whole is not None
                    else None
                ),
                "dataset_role": "test" if self.model is not None else "unchecked",
                "boundary_band": self.boundary_band,
                "iou_threshold": self.iou_threshold,
                "connectivity": self.connectivity,
                "aggregation": "TP/FP/FN summed over blocks, then ratios",
                "both_empty_scores_one": True,
                "bootstrap": {
                    "samples": BOOTSTRAP_SAMPLES,
                    "confidence": CONFIDENCE,
                    "seed": self.bootstrap_seed,
                },
            },
            "held_out": self.held_out.to_dict(),
            "overall": self.overall,
            "ci95": self.ci95,
            "per_block_dice": {
                "min": min(per_block) if per_block else None,
                "median": float(np.median(per_block)) if per_block else None,
                "max": max(per_block) if per_block else None,
            },
            "factors": self.factors(),
            "factor_info": self.factor_info,
            "blocks": blocks,
            "files": self.files,
        }

    def to_markdown(self) -> str:
        return render_template("evaluation.md.j2", ev=self.to_dict())

    def result(self) -> Result:
        ov = self.overall
        d = ov["raw"]["dice"]
        ci = self.ci95.get("dice")
        n_scored = len(_scored(self.counts))
        few = n_scored < MIN_CI_BLOCKS
        raw = ov["raw"]
        block_txt = _dice_text(d, ci, raw["tp"] + raw["fn"], raw["fp"], few=few)
        kind = "held-out" if self.model is not None else "random"
        n_txt = f"{len(self.counts)} {kind} blocks" + (
            f" ({n_scored} with annotated voxels)" if n_scored < len(self.counts) else ""
        )
        msg = f"{self.label_name}: Dice {block_txt} on {n_txt}"
        details: dict[str, Any] = {
            "dice": d,
            "ci95": ci,
            "files": dict(self.files),
            "name": self.name,
            "warnings": list(self.warnings),
        }
        if self.whole is not None:
            wo = self.whole.overall
            wd, wci = wo["raw"]["dice"], wo["ci95"].get("dice")
            tot = self.whole.totals
            few_tiles = int(np.count_nonzero(self.whole.counts[:, -1] > 0)) < MIN_CI_BLOCKS
            whole_txt = _dice_text(wd, wci, tot["tp"] + tot["fn"], tot["fp"], few=few_tiles)
            where = (
                "the whole volume outside training regions"
                if self.model is not None
                else "the whole volume, training regions not left out"
            )
            msg = f"{self.label_name}: Dice {whole_txt} on {where}; {block_txt} on {n_txt}"
            details["whole_volume_dice"] = wd
            details["whole_volume_ci95"] = wci
        if self.warnings:
            msg += f" ({len(self.warnings)} warning(s))"
        return Result(
            action="evaluate",
            status="ok",
            path=self.files.get("json"),
            message=msg,
            details=details,
        )


def _scored(counts: Sequence[BlockCounts]) -> list[BlockCounts]:
    """The blocks that scored voxels: a block of a sparse truth's unannotated voxels holds
    nothing, and resampling it (Dice 1 when drawn alone) only widens the interval upwards."""
    return [c for c in counts if c.scored]


def _dice_text(
    dice: float | None, ci: Sequence[float] | None, truth: int, fp: int, *, few: bool = False
) -> str:
    """``0.912 (95% CI 0.88–0.93)`` for a result message; with no truth of the class among the
    scored voxels, the both-empty Dice of 1 would flatter, so it says what was found instead."""
    if truth == 0:
        return f"undefined (no truth of the class there; {fp} false-positive voxels)"
    note = ", too few blocks or tiles to trust" if few else ""
    ci_txt = f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}{note})" if ci else ""
    return f"{dice:.3f}{ci_txt}"


# --------------------------------------------------------------- the command
_SAFE = re.compile(r"[\\/\x00-\x1f:*?\"<>|]+")


def safe_name(name: str) -> str:
    """A file name from free text: path separators and control characters become '-'."""
    out = _SAFE.sub("-", name).strip(" .-")
    if not out:
        msg = f"{name!r} cannot be used as a file name"
        raise InputError(msg, field="name")
    return out


def _binary(arr: np.ndarray, value: int) -> np.ndarray:
    return arr == value


@dataclass(frozen=True)
class _EvalSettings:
    """What :func:`evaluate` scores and how; the fields are its keyword arguments."""

    pred: str
    truth: str
    label_value: int
    pred_value: int | None = None
    blocks: int | HeldOutBlocks | str | Path = 8
    block_size: int | Sequence[int] = 32
    seed: int = 0
    exclude_training: str | Path | None = None
    extra_margin: int = 0
    factors: Sequence[str] | Mapping[str, Factor] | None = ("shading_side",)
    boundary_band: int = 1
    iou_threshold: float = 0.5
    connectivity: int = 3
    name: str | None = None
    out: str | Path | None = None
    overwrite: bool = False
    picture_blocks: int | None = None
    whole_volume: bool | None = None
    tile: int | Sequence[int] | None = None
    x_bins: int = 4
    stratify: bool = True


def evaluate(
    image: str | Path,
    *,
    pred: str,
    truth: str,
    label_value: int,
    pred_value: int | None = None,
    blocks: int | HeldOutBlocks | str | Path = 8,
    block_size: int | Sequence[int] = 32,
    seed: int = 0,
    exclude_training: str | Path | None = None,
    extra_margin: int = 0,
    factors: Sequence[str] | Mapping[str, Factor] | None = ("shading_side",),
    boundary_band: int = 1,
    iou_threshold: float = 0.5,
    connectivity: int = 3,
    name: str | None = None,
    workspace: Workspace | str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    picture_blocks: int | None = None,
    whole_volume: bool | None = None,
    tile: int | Sequence[int] | None = None,
    x_bins: int = 4,
    stratify: bool = True,
    progress: ProgressReporter | None = None,
) -> EvaluationReport:
    """Score label image ``pred`` against ``truth`` on seeded random held-out blocks,
    and on the whole volume when the truth covers it.

    Parameters
    ----------
    image
        The OME-Zarr image holding both label images under ``labels/``.
    pred, truth
        Names of the label images (``labels/<name>``).
    label_value
        The truth value of the structure to score (e.g. 1 for mitochondria).
    pred_value
        The prediction's value for that structure; defaults to the prediction's
        model ``label_value`` when recorded, else ``label_value``.
    blocks
        How many blocks to draw, or blocks from an earlier evaluation
        (:class:`HeldOutBlocks`, or the path of its JSON) to score again.
    block_size
        Edge of each block (one int or ``(z, y, x)``), clipped to the image.
    seed
        Seed of the block draw and of the bootstrap.
    exclude_training
        A model folder: blocks touching its ``lineage_rois`` grown by its
        ``architecture.context`` (+ ``extra_margin``) are refused and redrawn,
        and the evaluation's path is appended to its ``model.json``.
    factors
        Factor names (see :data:`BUILTIN_FACTORS`) or a mapping name → function
        ``(block, image_shape) -> group``; scores are reported per group.
    boundary_band
        Voxels on each side of truth edges excluded from the "boundary
        excluded" scores.
    name
        Name of the evaluation (file stem); defaults to ``<pred>-vs-<truth>-<K>``.
    workspace
        Write ``derived/evaluations/<name>.json|.md|.png`` there and record an
        ``E`` entry in its log.
    out
        Without a workspace: the JSON path; Markdown and PNG go next to it.
    overwrite
        Replace an existing evaluation of the same name (refused otherwise).
    whole_volume
        Also score every voxel outside the (grown) training regions, tile by
        tile (:func:`curated.segment.wholevolume.score_whole_volume`): overall,
        per x-bin, with a bootstrap CI over spatial blocks of tiles. ``None`` (default) does so
        when the truth is complete (not a sparse annotation, no unannotated
        value declared); ``True`` scores every *annotated* voxel of any truth.
    tile, x_bins
        Tile edge of the whole-volume pass (``None``: 64, smaller for a small image, see
        :func:`curated.segment.wholevolume.auto_tile`), and how many bins along x its curve has.
    stratify
        Move uniform blocks onto truth classes that no block covers (see
        :func:`stratify_blocks`); freshly drawn blocks only.

    Returns
    -------
    EvaluationReport

    Examples
    --------
    >>> report = evaluate("cell.ome.zarr", pred="mito-pred", truth="truth",
    ...                   label_value=1, blocks=8, block_size=64, seed=0)  # doctest: +SKIP
    >>> report.dice  # doctest: +SKIP
    0.91
    """
    settings = _EvalSettings(
        pred=pred,
        truth=truth,
        label_value=int(label_value),
        pred_value=pred_value,
        blocks=blocks,
        block_size=block_size,
        seed=seed,
        exclude_training=exclude_training,
        extra_margin=extra_margin,
        factors=factors,
        boundary_band=boundary_band,
        iou_threshold=iou_threshold,
        connectivity=connectivity,
        name=name,
        out=out,
        overwrite=overwrite,
        picture_blocks=picture_blocks,
        whole_volume=whole_volume,
        tile=tile,
        x_bins=x_bins,
        stratify=stratify,
    )
    return _evaluate(
        local_only(image), settings, as_workspace(workspace), ensure_progress(progress)
    )


@dataclass
class _Inputs:
    """The three level-0 volumes and what the truth's metadata says about the scoring."""

    image: Path
    img: Volume
    pred_vol: Volume
    truth_vol: Volume
    pred_meta: dict[str, Any]
    pred_value: int
    declared: set[int] | None
    unannotated: set[int]
    truth_complete: bool
    names: dict[int, str]
    coarse: np.ndarray
    classes: list[int]
    truth_model_crops: int = 0
    """Crops of a sparse truth whose origin is ``model-prediction``."""
    implicit_unannotated: bool = False
    """The truth holds 255 without declaring it: read as "not annotated", as train reads it."""


def _open_inputs(image: Path, s: _EvalSettings) -> _Inputs:
    """Open image, prediction and truth; check their shapes and the label values."""
    from curated.segment import _store

    img = open_level0(image, "image")
    pred_vol = open_level0(_label_path(image, s.pred, "pred"), f"prediction {s.pred!r}")
    truth_vol = open_level0(_label_path(image, s.truth, "truth"), f"truth {s.truth!r}")
    for vol, role in ((pred_vol, "pred"), (truth_vol, "truth")):
        if vol.shape != img.shape:
            msg = f"the {role} label image has shape {list(vol.shape)} but the image has {list(img.shape)}; they must match voxel for voxel"
            raise SegmentationError(msg, path=vol.path, field=role)
        _check_same_grid(image, vol.path, role)
    _check_label_arrays(s, pred_vol, truth_vol)
    pred_meta = _prediction_meta(pred_vol.attrs)
    pred_value = s.pred_value
    if pred_value is None:
        pv = (
            (pred_meta.get("model") or {}).get("label_value")
            if isinstance(pred_meta.get("model"), Mapping)
            else None
        )
        pred_value = int(pv) if pv is not None else s.label_value
    declared = _declared_label_values(truth_vol.attrs)
    if declared is not None and s.label_value not in declared:
        msg = f"label value {s.label_value} is not among the truth's declared values {sorted(declared)}; choose one of them"
        raise SegmentationError(msg, path=truth_vol.path, field="label_value")
    unannotated = _unannotated_values(truth_vol.attrs)
    truth_kind = (truth_vol.attrs.get("curated") or {}).get("kind")
    names = _store.class_names(image, s.truth)
    coarse = coarsest_level(truth_vol)
    # 255 means "not annotated" to annotate and train; scored as background it would count
    # every structure nobody drew there as correctly left out
    implicit = (
        UNANNOTATED_VALUE not in unannotated
        and UNANNOTATED_VALUE not in names
        and s.label_value != UNANNOTATED_VALUE
        and bool(np.any(coarse == UNANNOTATED_VALUE))
    )
    if implicit:
        unannotated = unannotated | {UNANNOTATED_VALUE}
    classes = sorted(
        ({int(v) for v in np.unique(coarse)} | {s.label_value}) - {0} - set(unannotated)
    )
    return _Inputs(
        image=image,
        img=img,
        pred_vol=pred_vol,
        truth_vol=truth_vol,
        pred_meta=pred_meta,
        pred_value=int(pred_value),
        declared=declared,
        unannotated=unannotated,
        truth_complete=not unannotated and truth_kind != "annotation",
        names=names,
        coarse=coarse,
        classes=classes,
        truth_model_crops=_model_crops(truth_vol.attrs),
        implicit_unannotated=implicit,
    )


def _check_label_arrays(s: _EvalSettings, pred_vol: Volume, truth_vol: Volume) -> None:
    """Refuse what would score without meaning: the truth scored against itself, label
    images of a non-integer type, and a probability map taken for labels."""
    if pred_vol.path.resolve() == truth_vol.path.resolve():
        msg = f"the prediction and the truth are the same label image {s.pred!r}: it would score 1"
        raise SegmentationError(msg, path=pred_vol.path, field="pred")
    for vol, role in ((pred_vol, "pred"), (truth_vol, "truth")):
        kind = np.dtype(vol.array.dtype).kind
        if kind not in "uib":
            msg = (
                f"the {role} label image holds {np.dtype(vol.array.dtype).name} values, not "
                "integer labels: threshold or round it and add it with `curated labels add`"
            )
            raise SegmentationError(msg, path=vol.path, field=role)
    made = (pred_vol.attrs.get("curated") or {}).get("prediction")
    if isinstance(made, Mapping) and str(made.get("values", "")).startswith("probability"):
        msg = (
            f"the label image {s.pred!r} holds the model's probabilities ({made['values']}), not "
            "its labels: pass the label image the prediction wrote beside it"
        )
        raise SegmentationError(msg, path=pred_vol.path, field="pred")


def _grid(path: Path) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str | None, ...]]:
    """Level 0's voxel size, translation and units along z, y, x."""
    meta = read_ngff(path)
    zyx = meta.zyx()
    level = meta.levels[0]
    return (
        tuple(float(level.scale[i]) for i in zyx),
        tuple(float(level.translation[i]) if level.translation else 0.0 for i in zyx),
        tuple(meta.axes[i].unit for i in zyx),
    )


def _check_same_grid(image: Path, label: Path, role: str) -> None:
    """Refuse a label image on another voxel grid than the image (voxel size, offset, unit):
    equal shapes alone do not make its voxels the image's voxels."""
    (vs_i, tr_i, un_i), (vs_l, tr_l, un_l) = _grid(image), _grid(label)
    same = (
        np.allclose(vs_i, vs_l, rtol=1e-6, atol=0)
        and np.allclose(tr_i, tr_l, rtol=0, atol=1e-6 * max(vs_i))
        and all(a == b or a is None or b is None for a, b in zip(un_i, un_l, strict=True))
    )
    if not same:
        msg = (
            f"the {role} label image lies on another voxel grid than the image: voxel size "
            f"{list(vs_l)} {list(un_l)} and offset {list(tr_l)} against the image's {list(vs_i)} "
            f"{list(un_i)} and {list(tr_i)}; it was made for another image or level. Scores "
            "need the label image on the image's own level-0 grid"
        )
        raise SegmentationError(msg, path=label, field=role)


def _held_out(s: _EvalSettings, inp: _Inputs, exclusion: TrainingExclusion | None) -> HeldOutBlocks:
    """The blocks to score: given ones (checked against the training regions) or a fresh draw."""
    if not isinstance(s.blocks, HeldOutBlocks | str | Path):
        held = draw_held_out_blocks(
            inp.img.shape,
            int(s.blocks),
            s.block_size,
            seed=s.seed,
            exclude=exclusion.boxes if exclusion else (),
        )
        if s.stratify:
            held, _ = stratify_blocks(held, inp.truth_vol, inp.coarse, inp.classes)
        return held
    held = s.blocks if isinstance(s.blocks, HeldOutBlocks) else HeldOutBlocks.load(s.blocks)
    if tuple(held.image_shape) != tuple(inp.img.shape):
        msg = f"the held-out blocks were drawn for an image of shape {list(held.image_shape)}, this one is {list(inp.img.shape)}"
        raise SegmentationError(msg, field="blocks")
    _check_given_blocks(held)
    if exclusion is None:
        return held
    touching = [
        i for i, b in enumerate(held.blocks) if any(b.intersects(e) for e in exclusion.boxes)
    ]
    if touching:
        msg = (
            f"held-out blocks {touching} touch a training ROI of the model or its ancestors "
            "(context included): the model was trained where it is tested. Draw new blocks, "
            "or train without those regions"
        )
        raise SegmentationError(
            msg, path=exclusion.model_dir, field="lineage_rois", details={"blocks": touching}
        )
    return HeldOutBlocks(
        held.image_shape,
        held.block_size,
        held.seed,
        held.blocks,
        held.rejected_training,
        held.rejected_overlap,
        exclusion.boxes,
        held.strata,
    )


def _check_given_blocks(held: HeldOutBlocks) -> None:
    """Refuse given blocks that overlap (their voxels would count twice) or leave the image
    (they would be scored on fewer voxels than they claim)."""
    shape = held.image_shape
    outside = [
        i
        for i, b in enumerate(held.blocks)
        if min(b.shape) <= 0
        or any(o < 0 or e > n for o, e, n in zip(b.offset, b.stop, shape, strict=True))
    ]
    if outside:
        msg = f"held-out blocks {outside} do not lie inside the image of shape {list(shape)}"
        raise SegmentationError(msg, field="blocks", details={"blocks": outside})
    pairs = [
        (i, j)
        for i, a in enumerate(held.blocks)
        for j, b in enumerate(held.blocks)
        if i < j and a.intersects(b)
    ]
    if pairs:
        msg = (
            f"held-out blocks overlap ({', '.join(f'{i} and {j}' for i, j in pairs[:5])}): "
            "their shared voxels would be counted twice; draw the blocks again"
        )
        raise SegmentationError(msg, field="blocks", details={"pairs": pairs})


def _factor_setup(
    image: Path, img: Volume, factors: Sequence[str] | Mapping[str, Factor] | None
) -> tuple[dict[str, Any], bool, dict[str, Factor]]:
    """The image attributes the factors read (shading measured when asked for and not
    recorded), whether shading was asked for, and the factor functions."""
    factor_attrs = dict(img.attrs)
    needs_shading = (
        factors is not None and not isinstance(factors, Mapping) and "shading_side" in factors
    )
    if needs_shading and not isinstance(
        (factor_attrs.get("curated") or {}).get("shading"), Mapping
    ):
        factor_attrs["curated"] = {
            **(factor_attrs.get("curated") or {}),
            "shading": measure_shading(image),
        }
    return factor_attrs, needs_shading, resolve_factors(factors, factor_attrs)


def _step_params(
    s: _EvalSettings,
    inp: _Inputs,
    held: HeldOutBlocks,
    factor_fns: Mapping[str, Factor],
    ws: Workspace | None,
) -> dict[str, Any]:
    return {
        "pred": s.pred,
        "truth": s.truth,
        "label_value": s.label_value,
        "pred_value": inp.pred_value,
        "blocks": len(held.blocks),
        "block_size": list(held.block_size),
        "seed": held.seed,
        "boundary_band": s.boundary_band,
        "iou_threshold": s.iou_threshold,
        "factors": list(factor_fns),
        "exclude_training": _named(s.exclude_training, ws)
        if s.exclude_training is not None
        else None,
        "whole_volume": bool(_wants_whole_volume(s, inp)),
        "stratified_blocks": len(held.strata),
    }


def _check_prediction_model(inp: _Inputs, exclusion: TrainingExclusion) -> None:
    """Refuse ``--exclude-training MODEL`` when the prediction records another model.

    Only the training regions of the model that made the prediction (its lineage holds
    every ancestor's) keep its training voxels out of the scores; another model's leave
    them in, and the evaluation would be filed in that other model's ``model.json`` and
    quoted on its card as its own.
    """
    rec = inp.pred_meta.get("model")
    if not isinstance(rec, Mapping):
        return
    m = exclusion.model
    sha = (m.get("weights") or {}).get("sha256")
    if rec.get("sha256"):
        if rec["sha256"] == sha:
            return
    elif not rec.get("id") or rec.get("id") == m.get("id"):
        return
    msg = (
        f"the prediction was made by model {rec.get('id')!r} (weights "
        f"{str(rec.get('sha256') or 'not recorded')[:12]}), but --exclude-training names "
        f"{m.get('id')!r} (weights {str(sha)[:12]}): only the training regions of the model "
        "that made the prediction keep its training voxels out of the scores. Pass that "
        "model's folder"
    )
    raise SegmentationError(msg, path=exclusion.model_dir, field="exclude_training")


def _wants_whole_volume(s: _EvalSettings, inp: _Inputs) -> bool:
    return inp.truth_complete if s.whole_volume is None else bool(s.whole_volume)


def _exists_message(ws: Workspace | None, json_path: Path) -> str:
    """Why an evaluation of this name is not replaced, and what to do."""
    msg = "an evaluation with this name exists; choose another --name or pass --overwrite"
    if ws is None or ws.log.records_as_is(json_path):
        return msg
    return (
        "an evaluation with this name exists, not as the curator log records it (left by a "
        "run killed before its log entry, or edited since); pass --overwrite to evaluate "
        "again and record it, or choose another --name"
    )


def _evaluate(
    image: Path, s: _EvalSettings, ws: Workspace | None, prog: ProgressReporter
) -> EvaluationReport:
    from curated.segment import _store

    inp = _open_inputs(image, s)
    exclusion: TrainingExclusion | None = None
    if s.exclude_training is not None:
        exclusion = training_exclusion(s.exclude_training, extra_margin=s.extra_margin, image=image)
        _check_prediction_model(inp, exclusion)
    held = _held_out(s, inp, exclusion)
    name = safe_name(s.name or f"{s.pred}-vs-{s.truth}-{s.label_value}")
    json_path = _output_json(ws, s.out, name)
    if (
        json_path is not None
        and json_path.exists()
        and not s.overwrite
        and not unlogged(ws, json_path)
    ):
        raise InputError(_exists_message(ws, json_path), path=json_path)
    factor_attrs, needs_shading, factor_fns = _factor_setup(image, inp.img, s.factors)
    inputs: list[str | Path] = [image]
    if exclusion is not None:
        inputs.append(exclusion.model_dir / "model.json")
    with recorder(
        ws,
        "E",
        "evaluate",
        inputs=inputs,
        params=_step_params(s, inp, held, factor_fns, ws),
        libraries=("zarr", "scipy"),
        hash_inputs=False,
    ) as step:
        scores = _score_blocks(s, inp, held, prog)
        whole = _score_whole(s, inp, held.seed, exclusion, prog)
        truth_origin = _store.label_origin(image, s.truth)
        report = EvaluationReport(
            name=name,
            image=_named(image, ws),
            pred=s.pred,
            truth=s.truth,
            label_value=s.label_value,
            pred_value=inp.pred_value,
            held_out=held,
            boundary_band=s.boundary_band,
            iou_threshold=s.iou_threshold,
            connectivity=s.connectivity,
            counts=scores.counts,
            factor_groups={
                f: [fn(b, tuple(inp.img.shape)) for b in held.blocks]
                for f, fn in factor_fns.items()
            },
            factor_info={"shading": (factor_attrs.get("curated") or {}).get("shading")}
            if needs_shading
            else {},
            model=_model_info(exclusion, ws),
            pred_meta={**inp.pred_meta, "origin": _store.label_origin(image, s.pred)},
            bootstrap_seed=held.seed,
            class_names=inp.names,
            classes=inp.classes,
            truth_origin=truth_origin,
            truth_complete=inp.truth_complete,
            unannotated=sorted(inp.unannotated),
            block_class_voxels=scores.block_classes,
            block_scored_voxels=scores.scored_voxels,
            confusion=scores.confusion,
            whole=whole,
            warnings=_warnings(s, inp, scores, whole, exclusion, truth_origin),
        )
        if json_path is not None:
            panel = _whole_panel(image, s, inp, whole, exclusion)
            _write_report(report, json_path, ws, scores.shown, step, exclusion, image, panel)
        step.details = {
            "dice": report.overall["raw"]["dice"],
            "blocks": len(scores.counts),
            "ci95_dice": report.ci95.get("dice"),
            "whole_volume_dice": whole.overall["raw"]["dice"] if whole is not None else None,
            "warnings": len(report.warnings),
        }
        step.message = report.result().message
    return report


@dataclass
class _BlockScores:
    """What scoring the held-out blocks one by one gathered."""

    counts: list[BlockCounts] = field(default_factory=list)
    shown: list[BlockPanel] = field(default_factory=list)
    seen_value: bool = False
    confusion: Any = None
    block_classes: dict[int, int] = field(default_factory=dict)
    scored_voxels: int = 0


def _score_blocks(
    s: _EvalSettings, inp: _Inputs, held: HeldOutBlocks, prog: ProgressReporter
) -> _BlockScores:
    """Count every held-out block (memory: one block and its halo at a time)."""
    from curated.segment.confusion import HALO, Confusion, count_confusion

    out = _BlockScores(confusion=Confusion())
    unannotated = inp.unannotated
    prog.start("evaluating held-out blocks", len(held.blocks), "blocks")
    try:
        for box in held.blocks:
            ctx = box.grow((max(s.boundary_band, HALO),) * 3, within=inp.img.shape)
            truth_ctx = inp.truth_vol.read(ctx)
            inner = tuple(
                slice(b - c, b - c + n)
                for b, c, n in zip(box.offset, ctx.offset, box.shape, strict=True)
            )
            t_raw = truth_ctx[inner]
            t = _binary(t_raw, s.label_value)
            p = _binary(inp.pred_vol.read(box), inp.pred_value)
            valid = ~np.isin(t_raw, list(unannotated)) if unannotated else None
            out.seen_value = out.seen_value or bool(t.any())
            c = count_block(
                p,
                t,
                boundary_band=s.boundary_band,
                truth_context=_binary(truth_ctx, s.label_value),
                context_slices=inner,
                iou_threshold=s.iou_threshold,
                connectivity=s.connectivity,
                valid=valid,
            )
            out.counts.append(c)
            out.scored_voxels += box.size if valid is None else int(valid.sum())
            for v, n in _class_counts(t_raw, unannotated).items():
                out.block_classes[v] = out.block_classes.get(v, 0) + n
            if c.fp:
                out.confusion = out.confusion + count_confusion(
                    p, truth_ctx, inner, s.label_value, valid=valid, ignore=unannotated
                )
            if s.picture_blocks is None or len(out.shown) < s.picture_blocks:
                mid = box.shape[0] // 2
                mid_plane = Box((box.offset[0] + mid, *box.offset[1:]), (1, *box.shape[1:]))
                out.shown.append(
                    BlockPanel(
                        box.offset,
                        inp.img.read(mid_plane)[0],
                        t[mid],
                        p[mid],
                        _block_note(c, valid, t),
                    )
                )
            prog.advance(1, dice=ratio_scores(c.tp, c.fp, c.fn)["dice"] or 0.0)
    finally:
        prog.finish()
    # declared but absent counts as absent: both-empty scores 1, which would flatter
    if (
        not out.seen_value
        and not np.any(inp.coarse == s.label_value)
        and not _value_anywhere(inp.truth_vol, s.label_value)
    ):
        msg = f"label value {s.label_value} does not occur in the truth {s.truth!r}; check --label-value"
        raise SegmentationError(msg, path=inp.truth_vol.path, field="label_value")
    return out


def _score_whole(
    s: _EvalSettings,
    inp: _Inputs,
    seed: int,
    exclusion: TrainingExclusion | None,
    prog: ProgressReporter,
) -> Any:
    """Whole-volume scores outside the training regions, or ``None`` when not asked for."""
    if not _wants_whole_volume(s, inp):
        return None
    from curated.segment import _store
    from curated.segment.baseline import tune_threshold
    from curated.segment.wholevolume import score_whole_volume

    # a threshold tuned on the truth inside the crops the model learned from, scored beside it
    baseline = (
        tune_threshold(
            inp.img,
            inp.truth_vol,
            exclusion.rois,
            label_value=s.label_value,
            unannotated=inp.unannotated,
            voxel_size=_store.voxel_size(inp.image),
        )
        if exclusion is not None and exclusion.rois
        else None
    )
    return score_whole_volume(
        inp.pred_vol,
        inp.truth_vol,
        label_value=s.label_value,
        pred_value=inp.pred_value,
        exclusion=exclusion.boxes if exclusion else (),
        unannotated=inp.unannotated,
        boundary_band=s.boundary_band,
        tile=s.tile,
        x_bins=s.x_bins,
        seed=seed,
        raw=inp.img if baseline is not None else None,
        baseline=baseline,
        progress=prog,
    )


def _warnings(
    s: _EvalSettings,
    inp: _Inputs,
    scores: _BlockScores,
    whole: Any,
    exclusion: TrainingExclusion | None,
    truth_origin: str | None,
) -> list[str]:
    """What the reader of the scores must know: thin classes, no exclusion, a model as truth."""
    warnings = foreground_warnings(
        scores.block_classes,
        scores.scored_voxels,
        inp.classes,
        inp.names,
        where="held-out blocks" if exclusion is not None else "random blocks",
        target=s.label_value,
    )
    if whole is not None:
        warnings += foreground_warnings(
            whole.class_voxels,
            int(whole.counts[:, -1].sum()),
            [s.label_value],
            inp.names,
            where="scored voxels of the whole volume",
            target=s.label_value,
        )
    if whole is not None:
        tiles = int(np.count_nonzero(whole.counts[:, -1] > 0)) if whole.counts.size else 0
        if tiles < MIN_CI_BLOCKS:
            warnings.append(
                f"the whole volume was scored in only {tiles} tile(s): its bootstrap confidence "
                "interval over tiles understates the uncertainty; use a smaller --tile"
            )
        few = [b for b in whole.x_curve() if 0 < b["bootstrap_blocks"] < MIN_CI_BLOCKS]
        if few and tiles >= MIN_CI_BLOCKS:
            where = ", ".join(
                f"x {b['x_start']}–{b['x_stop']}: {b['bootstrap_blocks']}" for b in few
            )
            warnings.append(
                f"the confidence intervals along x rest on fewer than {MIN_CI_BLOCKS} tiles in "
                f"some bins ({where}): too few to trust; quote the whole-volume interval, or use "
                "a smaller --tile"
            )
    image_voxels = int(np.prod(inp.img.shape))
    if whole is not None and whole.excluded_voxels >= MOSTLY_TRAINING * image_voxels:
        warnings.append(
            f"{whole.excluded_voxels / image_voxels:.0%} of the image lies in the training regions "
            "of the model and its ancestors (grown by its context): the whole-volume figures "
            f"rest on the remaining {int(whole.counts[:, -1].sum())} voxels only, and the model "
            "saw the structures next to them; score another image the model never saw"
        )
    if whole is None and inp.truth_complete:
        warnings.append(
            "the truth covers the whole volume but only the held-out blocks were scored: a few "
            "blocks can miss whole kinds of error, so quote the whole-volume figures (evaluate "
            "again without --blocks-only / whole_volume=False)"
        )
    n = len(_scored(scores.counts))
    if n < MIN_CI_BLOCKS:
        of = (
            f" of the {len(scores.counts)} block(s) hold annotated voxels"
            if n < len(scores.counts)
            else " block(s)"
        )
        warnings.append(
            f"only {n}{of}: a bootstrap confidence interval over so few blocks "
            "understates the uncertainty (it cannot reach beyond the blocks drawn, and is "
            f"absent for one block); use at least {MIN_CI_BLOCKS} blocks"
            + (", or rely on the whole-volume figures" if whole is not None else "")
        )
    if exclusion is not None:
        warnings += list(exclusion.notes)
    if exclusion is None:
        warnings.append(
            "no model was given (--exclude-training), so training regions were not left out: "
            "if this prediction's model was trained on this image, these scores are optimistic"
            + _made_by(inp.pred_meta)
        )
    copied = (inp.pred_vol.attrs.get("curated") or {}).get("copied_from")
    source = copied.get("image") if isinstance(copied, Mapping) else None
    # named from the prediction's label image (this release) or absolute (earlier ones)
    if source and (inp.pred_vol.path / str(source)).resolve() != inp.image.resolve():
        warnings.append(
            f"the prediction {s.pred!r} was copied from a label image of another image "
            f"({source}): its scores mean something only if it was predicted from these very "
            "voxels"
        )
    if inp.implicit_unannotated:
        warnings.append(
            f"the truth {s.truth!r} holds value {UNANNOTATED_VALUE} without naming it: it was read "
            "as 'not annotated' (as annotate and train read it) and left out of the scores, so "
            "the truth does not count as complete; if it marks a structure, add the truth again "
            f"with --map {UNANNOTATED_VALUE}=1 (or name the class)"
        )
    if truth_origin == "mixed" and inp.truth_model_crops:
        warnings.append(
            f"{inp.truth_model_crops} crop(s) of the truth {s.truth!r} are a model's prediction: "
            "there the scores measure agreement between two models, not accuracy"
        )
    if truth_origin == "model-prediction":
        warnings.append(
            f"the truth {s.truth!r} is itself a model's prediction: these scores measure agreement "
            "between two models, not accuracy"
        )
    return warnings


def _made_by(pred_meta: Mapping[str, Any]) -> str:
    """`` (the prediction records model ...)`` when it does, for the no-model warning."""
    rec = pred_meta.get("model")
    if not isinstance(rec, Mapping) or not rec.get("id"):
        return ""
    return f" (the prediction records model {rec['id']!r}: pass its folder)"


def _named(path: str | Path, ws: Workspace | None) -> str:
    """A path as an evaluation records it: relative to the workspace root in a workspace (an
    absolute path breaks once the workspace is moved or copied), else as given."""
    return ws.relative(path) if ws is not None else str(path)


def _model_info(exclusion: TrainingExclusion | None, ws: Workspace | None) -> dict[str, Any] | None:
    if exclusion is None:
        return None
    m = exclusion.model
    return {
        "id": m.get("id"),
        "name": m.get("name"),
        "path": _named(exclusion.model_dir, ws),
        "weights_sha256": (m.get("weights") or {}).get("sha256"),
        "parent": m.get("parent"),
        "lineage_rois": [r.to_dict() for r in exclusion.rois],
        "exclusion_margin": list(exclusion.margin),
    }


def _block_note(c: BlockCounts, valid: np.ndarray | None, t: np.ndarray) -> str:
    """``Dice 0.91, 812 truth voxels`` for the block figure (``no truth`` when the block has none)."""
    dice = ratio_scores(c.tp, c.fp, c.fn)["dice"]
    truth = c.tp + c.fn
    scored = "" if valid is None else f", {int(valid.sum())} annotated"
    if truth == 0:
        return f"no truth in block, {c.fp} false positive voxels{scored}"
    return f"Dice {dice:.2f}, {truth} truth voxels{scored}"


def _whole_panel(
    image: Path,
    s: _EvalSettings,
    inp: _Inputs,
    whole: Any,
    exclusion: TrainingExclusion | None,
) -> Any:
    """The whole-volume picture's data (:mod:`curated.segment.wholefigure`), or ``None``."""
    if whole is None:
        return None
    from curated.segment.wholefigure import whole_volume_panel

    return whole_volume_panel(
        image,
        whole,
        pred=s.pred,
        truth=s.truth,
        label_value=s.label_value,
        pred_value=inp.pred_value,
        exclusion=exclusion.boxes if exclusion else (),
        unannotated=inp.unannotated,
    )


def _write_report(
    report: EvaluationReport,
    json_path: Path,
    ws: Workspace | None,
    shown: Sequence[BlockPanel],
    step: Any,
    exclusion: TrainingExclusion | None,
    image: Path,
    whole_panel: Any = None,
) -> None:
    """Write the JSON, Markdown and PNGs; link the evaluation from the model's ``model.json``."""
    md_path = json_path.with_suffix(".md")
    png_path = json_path.with_suffix(".png")
    whole_path = evaluation_picture(json_path)
    rel = (lambda p: p.name) if ws is None else (lambda p: ws.relative(p))
    report.files = {"json": rel(json_path), "md": rel(md_path), "png": rel(png_path)}
    meta = read_ngff(image)
    pixel_size = meta.voxel_size[-1] if meta.voxel_size else None
    written = [json_path, md_path, png_path]
    # the JSON, written last, is the evaluation: an old one goes first, so that a kill while
    # the new files are written leaves no evaluation there, never the old JSON with new pictures
    json_path.unlink(missing_ok=True)
    if whole_panel is not None:
        from curated.segment.wholefigure import whole_volume_png

        report.files["whole_png"] = rel(whole_path)
        atomic_write_bytes(
            whole_path,
            whole_volume_png(
                whole_panel,
                class_name=report.label_name,
                pixel_size=pixel_size,
                unit=meta.unit,
                title=f"{report.name}: the whole volume"
                + (" outside the training regions" if report.model is not None else "")
                + (f" (pyramid level {whole_panel.level})" if whole_panel.level else ""),
            ),
        )
        written.append(whole_path)
    atomic_write_bytes(
        png_path,
        block_errors_png(
            shown,
            class_name=report.label_name,
            pixel_size=pixel_size,
            unit=meta.unit,
            title=f"{report.name}: held-out blocks, middle z slice of each ({len(shown)} of "
            f"{len(report.counts)} blocks)",
        ),
    )
    atomic_write_text(md_path, report.to_markdown())
    write_json(json_path, report.to_dict())
    for p in written:
        step.add_output(p, role="evaluation")
    if exclusion is not None:
        _append_model_evaluation(exclusion.model_dir, json_path)
        # model.json changed: record its new digest so `curated log --verify --files` still passes
        step.add_output(exclusion.model_dir / "model.json", role="model")


def _prediction_meta(attrs: Mapping[str, Any]) -> dict[str, Any]:
    cur = attrs.get("curated")
    if not isinstance(cur, Mapping):
        return {}
    return {k: cur[k] for k in ("kind", "ai_generated", "model") if k in cur}


def _unannotated_values(attrs: Mapping[str, Any]) -> set[int]:
    """Truth values that mean "nobody annotated this voxel" (sparse annotations)."""
    out: set[int] = set()
    for p in (attrs.get("image-label") or {}).get("properties") or []:
        if isinstance(p, Mapping) and p.get("curated:unannotated") and "label-value" in p:
            try:
                out.add(int(p["label-value"]))
            except (TypeError, ValueError):
                continue
    ann = (attrs.get("curated") or {}).get("annotation")
    if isinstance(ann, Mapping) and isinstance(ann.get("unannotated"), int):
        out.add(int(ann["unannotated"]))
    return out


def _model_crops(attrs: Mapping[str, Any]) -> int:
    """How many crops of a sparse annotation record ``model-prediction`` as their origin."""
    ann = (attrs.get("curated") or {}).get("annotation")
    rois = ann.get("rois") if isinstance(ann, Mapping) else None
    return sum(
        1 for r in rois or [] if isinstance(r, Mapping) and r.get("origin") == "model-prediction"
    )


def _value_anywhere(vol: Volume, value: int) -> bool:
    """Scan level 0 chunk row by chunk row for ``value`` (only when blocks and metadata did not show it)."""
    chunks = getattr(vol.array, "chunks", None)
    step = tuple(int(chunks[a]) for a in vol.spatial) if chunks else (64, 64, 64)
    shape = vol.shape
    for z0 in range(0, shape[0], step[0]):
        for y0 in range(0, shape[1], step[1]):
            for x0 in range(0, shape[2], step[2]):
                off = (z0, y0, x0)
                box = Box(
                    off, tuple(min(s, n - o) for s, n, o in zip(step, shape, off, strict=True))
                )  # type: ignore[arg-type]
                if np.any(vol.read(box) == value):
                    return True
    return False


def _output_json(ws: Workspace | None, out: str | Path | None, name: str) -> Path | None:
    if ws is not None:
        return ws.evaluations_dir / f"{name}.json"
    if out is not None:
        refuse_url_out(out)
        p = Path(out)
        if p.suffix.lower() != ".json":
            p = p / f"{name}.json" if p.is_dir() or not p.suffix else p.with_suffix(".json")
        return p
    return None


def _append_model_evaluation(model_dir: Path, json_path: Path) -> None:
    """Add the evaluation's path (relative to the model folder) to ``model.json`` atomically."""
    mj = model_dir / "model.json"
    data = json.loads(mj.read_text(encoding="utf-8"))
    rel = Path(os.path.relpath(json_path.resolve(), model_dir.resolve())).as_posix()
    evals = list(data.get("evaluations") or [])
    if rel not in evals:
        evals.append(rel)
    data["evaluations"] = evals
    write_json(mj, data)
