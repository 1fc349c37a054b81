"""Train and fine-tune a one-label 3D U-Net from sparse annotations.

The recipe follows incasem (Gallusser et al. 2023), scaled to minutes on a CPU:

- one binary label per model (``label_value`` K of a sparse annotation: K is
  foreground, every other annotated value background, ``255`` ignored);
- random output patches centred inside the annotated crops, input grown by the
  network's context (reflected at the volume border, as in prediction); the patch is
  planned from the crops (:func:`planned_patch`: up to 48 voxels an axis, within an
  80³-voxel input) unless given;
- augmentation: flips, transposes and 90° rotations in the isotropic plane (optionally
  across z where the voxels are isotropic, :func:`z_swap_axes`), nnU-Net-style intensity
  changes, optional elastic deformation;
- binary cross-entropy masked to annotated voxels, with class weights that give
  foreground and background equal total weight (frequencies clipped to 1-99 %);
- Adam; checkpoints every ``checkpoint_every`` iterations (resumable: running the
  same command again continues from the last one); one annotated crop is held
  out for validation and the checkpoint with the lowest validation loss becomes
  ``weights.pt`` (the rule is written to ``model.json``; the loss is used because
  Dice on a small crop with few foreground voxels jumps from check to check);
- mixed precision on CUDA (bf16, or fp16 with loss scaling), float32 on a CPU unless
  ``precision="bf16"`` asks for bfloat16 there too;
- the training loop runs with glibc's heap kept (:func:`~curated.segment._heap.training_heap`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from curated._crash import crash_point
from curated._io import canonical_json
from curated.errors import CuratedError, InputError, SegmentationError
from curated.objstore import local_only
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.digest import digest_path
from curated.provenance.log import library_versions, utc_now
from curated.results import Result, with_warnings
from curated.segment import _store
from curated.segment._heap import training_heap
from curated.segment.annotate import UNANNOTATED, read_annotation_rois
from curated.segment.average import OTHER_MODEL_HERE, check_draws, finetune_average, unlogged
from curated.segment.defaults import (
    DEFAULT_CLASS_BALANCE,
    DEFAULT_CLASS_BALANCE_WARMUP,
    DEFAULT_DEPTH,
    DEFAULT_FEATURES,
    DEFAULT_FINETUNE_DRAWS,
    DEFAULT_FINETUNE_ITERATIONS,
    DEFAULT_FINETUNE_LEARNING_RATE,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NEW_CROP_FRACTION,
    DEFAULT_NORM,
    FIELD_OF_VIEW_NM,
    MAX_DEPTH,
    PATCH_EDGE,
    PATCH_FLOOR,
    PATCH_INPUT_VOXELS,
    POINTWISE_BELOW_NM,
)
from curated.segment.device import amp_dtype, check_precision, precision_name, resolve_device
from curated.segment.geometry import voxel_size_mismatch
from curated.segment.metrics import masked_dice
from curated.segment.modelio import (
    MODEL_FORMAT,
    MODEL_JSON,
    SOFTWARE,
    SegmentationModel,
    image_key,
    load_checkpoint,
    load_model,
    save_checkpoint,
    write_model_json,
    write_weights,
)
from curated.segment.modeljson import read_model_json
from curated.segment.preprocess import (
    Preprocessing,
    default_kernel,
    default_preprocessing,
    read_region,
)
from curated.segment.unet import (
    UNet3D,
    UNetConfig,
    UNetGeometry,
    count_parameters,
    depth_for_voxel_size,
)
from curated.workspace import Workspace, as_workspace, recorder


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation (recorded in ``model.json``).

    Spatial: flips, transposes in the isotropic plane, optional elastic warp.
    Intensity, in the style of nnU-Net (Isensee et al. 2021), each drawn with its
    own probability per patch, on the pre-processed values: brightness
    (multiplicative), contrast (around the patch mean), gamma (also on the inverted
    image), Gaussian noise, Gaussian blur, simulated low resolution, and a smooth
    random gain field with contrast loss toward a random backlight level (the
    shading model of :mod:`curated.segment.sample`). These complement the
    brightness-independent pre-processing; they are not the cure for shading.
    """

    flips: bool = True
    transposes: bool = True
    """Swap axes of the isotropic plane (with flips this gives every 90° rotation in it)."""
    swap_z: bool = False
    """Where z's voxels are as fine as y's and x's (isotropic FIB-SEM) but the patch is shallower
    in z than in-plane, read two thirds of the patches with z and an in-plane axis exchanged and
    turn them back (``segment.train.z_swap_axes``), so the network also sees structures that run
    along z the way it sees those that run in-plane: with transposes and flips, every 90°
    rotation of the cube. A patch as deep as it is wide gets them from ``transposes`` already.

    Off by default. The planned patch of thin crops (24 × 48 × 48 at 8 nm) never turns z into
    the plane, and bright-only models missed mitochondria that run along z (one seed's bright
    half: recall 0.38 on them against 0.96 on the others; 0.92 with this on). But on the shaded
    benchmark (``benchmarks/hitl.py``, five seeds × two training draws, 40-slice volumes) it
    scored whole-volume Dice −0.013 (95 % CI −0.112 … +0.086 over seeds and draws) and
    shaded half −0.040, lower on four seeds of five: at 1,200 steps the network learns the
    other orientations at the cost of the low-contrast side, and a turned patch there is half
    unannotated and mostly reflection of a 40-slice volume (RESULTS.md "Training patches turned
    across z"). Try it on deep isotropic stacks whose crops are thin in z."""
    intensity_scale: float = 0.1
    """Multiply by 1 ± this (uniform), always."""
    intensity_shift: float = 0.1
    """Add ± this (uniform, in normalised units), always."""
    elastic: bool = False
    """A smooth random in-plane warp (y and x displaced; z, the cutting axis, never is). Off:
    on real ssTEM (three crop seeds, control points every 40 voxels, σ 2) it lowered Dice by
    0.031 (95 % CI 0.009-0.046) and cost 13 % more training time (RESULTS.md "Elastic
    deformation on real ssTEM")."""
    elastic_p: float = 1.0
    """Share of the patches warped when ``elastic`` is on."""
    elastic_grid: int = 16
    """Control-point spacing of the smooth displacement field (voxels)."""
    elastic_sigma: float = 2.0
    """Displacement standard deviation (voxels)."""
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    gamma_inverted_p: float = 0.1
    noise_p: float = 0.1
    noise_variance: float = 0.05
    """Upper bound of the noise variance (normalised units, where the data span [-1, 1])."""
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    low_resolution_p: float = 0.25
    low_resolution_zoom: tuple[float, float] = (0.5, 1.0)
    gain_field_p: float = 0.3
    gain_field_strength: float = 0.5
    """The gain falls by up to this much across the patch (contrast lost toward a random level)."""

    @property
    def margin(self) -> tuple[int, int, int]:
        """Voxels read beyond a patch on each side (z, y, x) for the warp to draw from."""
        m = int(np.ceil(3 * self.elastic_sigma)) + 1 if self.elastic else 0
        return (0, m, m)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augmentation:
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k, v in fields.items():
            if isinstance(v, list):
                fields[k] = tuple(v)
        return cls(**fields)

    @classmethod
    def spatial_only(cls) -> Augmentation:
        """Flips and transposes with the old ±10 % scale/shift, no other intensity changes."""
        return cls(
            brightness_p=0.0,
            contrast_p=0.0,
            gamma_p=0.0,
            gamma_inverted_p=0.0,
            noise_p=0.0,
            blur_p=0.0,
            low_resolution_p=0.0,
            gain_field_p=0.0,
        )


@dataclass(frozen=True)
class TrainingSettings:
    iterations: int = DEFAULT_ITERATIONS
    batch_size: int = 2
    patch: tuple[int, int, int] | None = None
    """Output patch (z, y, x); ``None``: planned from the crops (:func:`planned_patch`)."""
    learning_rate: float = DEFAULT_LEARNING_RATE
    weight_decay: float = 0.0
    checkpoint_every: int = 100
    validate_every: int = 50
    seed: int = 0
    schedule: str = "cosine"
    """Learning rate: ``cosine`` (annealed to 2 % of the start over the run) or ``constant``."""
    new_crop_fraction: float = DEFAULT_NEW_CROP_FRACTION
    """Fine-tuning only: share of patches drawn from crops the parent never saw."""
    loss: str = "balanced-bce+dice"
    """``balanced-bce+dice`` (default): cross-entropy with the classes weighted by
    :attr:`class_balance`, plus soft Dice; ``bce+dice``: plain cross-entropy plus soft Dice
    (nnU-Net's pair; on a few crops with 4-10 % foreground it can settle on "all
    background" from the start, seen on real ssTEM); ``balanced-bce``: the weighted
    cross-entropy alone (favours recall: it over-segments dark distractors)."""
    class_balance: float = DEFAULT_CLASS_BALANCE
    """Exponent b of the class weighting of the ``balanced-*`` losses: foreground
    voxels weigh ``((1 - f) / f) ** b`` times background ones (f: the annotated
    foreground fraction), scaled to a mean weight of 1; 1 = equal total weight per
    class, 0 = unweighted."""
    class_balance_warmup: float = DEFAULT_CLASS_BALANCE_WARMUP
    """Share of the iterations over which b falls linearly from 1 (equal class
    weight) to :attr:`class_balance`; see :func:`class_balance_at`."""


def class_weights(foreground_fraction: float, balance: float) -> tuple[float, float]:
    """``(foreground, background)`` cross-entropy weights with a mean of 1 over the annotated voxels.

    >>> class_weights(0.2, 1.0)  # equal total weight: 0.2 * 2.5 == 0.8 * 0.625
    (2.5, 0.625)
    >>> class_weights(0.2, 0.0)
    (1.0, 1.0)
    """
    f = float(np.clip(foreground_fraction, 0.01, 0.99))
    ratio = ((1.0 - f) / f) ** float(balance)
    norm = ratio * f + (1.0 - f)
    return ratio / norm, 1.0 / norm


def logit_adjustment(weights: tuple[float, float], loss: str) -> float:
    """What the output logit's bias gains at the end of training: ``-log(w_fg / w_bg)``.

    A cross-entropy that weighs foreground ``w_fg / w_bg`` times more is minimised by
    logits that are the true log-odds plus ``log(w_fg / w_bg)``: the weighting that
    helps training find a rare structure also moves every boundary outwards
    (logit adjustment, Menon et al., ICLR 2021). Removing that prior from the bias
    once training ends makes ``sigmoid > 0.5`` the unweighted decision, in
    ``curated segment predict``, the exported model and ``annotate suggest`` alike.
    Measured on the saved models of three real ssTEM and three synthetic runs
    (RESULTS.md), the best fixed threshold lay at 0.55-0.70, where this puts it
    (0.62-0.68); unweighted losses get 0.

    >>> round(logit_adjustment((2.0, 1.0), "balanced-bce+dice"), 4)
    -0.6931
    >>> logit_adjustment((2.0, 1.0), "bce+dice")
    0.0
    """
    if not loss.startswith("balanced"):
        return 0.0
    return -math.log(float(weights[0]) / float(weights[1]))


def sampling_prior_shift(
    annotated_fraction: float, pick_p: Any, crop_fractions: list[float]
) -> float:
    """``logit(f_annotated) - logit(f_shown)``: the prior shift of oversampling some crops.

    Fine-tuning draws half of its patches from the new crops (70 % until this release). The network then learns
    the foreground prior of what it was shown, ``f_shown = Σ p_crop · f_crop``, not of
    what was annotated: after a new crop with no foreground (a suggested crop of
    nucleus and cytoplasm), it learned a prior a third of the annotated one and called
    nothing foreground on the shaded half (``benchmarks/hitl.py`` seed 3, RESULTS.md).
    Adding this shift to the output bias puts the prior back to the annotated one
    (the prior-shift correction of Saerens et al., Neural Computation 2002).
    Fractions are clipped to 1-99 %, as in :func:`class_weights`.

    >>> round(sampling_prior_shift(0.1, [0.3, 0.7], [0.15, 0.0]), 3)
    0.858
    >>> sampling_prior_shift(0.1, [0.5, 0.5], [0.1, 0.1])
    0.0
    """

    def logit(f: float) -> float:
        f = float(np.clip(f, 0.01, 0.99))
        return math.log(f / (1.0 - f))

    shown = float(np.dot(np.asarray(pick_p, dtype=np.float64), np.asarray(crop_fractions)))
    return logit(annotated_fraction) - logit(shown)


def adjusted_head(state: dict[str, torch.Tensor], adjustment: float) -> dict[str, torch.Tensor]:
    """A copy of ``state`` whose output bias (``head.bias``) is moved by ``adjustment``."""
    out = dict(state)
    out["head.bias"] = state["head.bias"].detach().clone() + float(adjustment)
    return out


def _with_kernel(preprocessing: dict[str, Any], image: Path) -> dict[str, Any]:
    """A pre-processing dict that names no local contrast kernel gets the default one for
    the image's data type (``box3`` on integer images up to 16 bits: its cost does not
    grow with σ), as the default pre-processing does."""
    if "local_contrast_kernel" in preprocessing or not preprocessing.get("local_contrast_sigma"):
        return preprocessing
    try:
        dtype = _store.image_level0(image).dtype
    except (CuratedError, OSError, ValueError, KeyError):
        return preprocessing  # an unreadable image is reported when training opens it
    return {**preprocessing, "local_contrast_kernel": default_kernel(dtype)}


def _parent_logit_adjustment(parent: SegmentationModel) -> float:
    """The adjustment a parent's weights carry (0 for models saved before it existed)."""
    return float((parent.meta.get("training") or {}).get("logit_adjustment") or 0.0)


def class_balance_at(settings: TrainingSettings, iteration: int) -> float:
    """The class-balance exponent b of ``iteration`` (1-based); a pure function, so resuming needs no state.

    Training starts with equal total weight per class (b = 1), which finds the rare
    foreground at once, and moves b linearly to ``settings.class_balance`` over the
    first ``class_balance_warmup`` share of the iterations. A weak weighting from
    the start let the net settle on "all background" on a few crops of real ssTEM
    (``benchmarks/real_em.py``, RESULTS.md); starting at b = 1 avoids that, ending
    at a smaller b removes most of b = 1's over-segmentation.

    >>> s = TrainingSettings(iterations=100, class_balance=0.25, class_balance_warmup=0.5)
    >>> [round(class_balance_at(s, i), 3) for i in (1, 26, 51, 100)]
    [1.0, 0.625, 0.25, 0.25]
    """
    target = float(settings.class_balance)
    span = float(settings.class_balance_warmup) * settings.iterations
    if span <= 0 or target >= 1.0:
        return target
    frac = min(max((iteration - 1) / span, 0.0), 1.0)
    return 1.0 + (target - 1.0) * frac


LOSSES = ("balanced-bce+dice", "bce+dice", "balanced-bce")


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    kind: str,
    weights: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """The training loss over annotated voxels (``mask``) only; see :attr:`TrainingSettings.loss`."""
    n = mask.sum().clamp(min=1.0)
    if kind in ("balanced-bce", "balanced-bce+dice"):
        w = torch.where(target > 0.5, weights[0], weights[1]) * mask
    else:
        w = mask
    bce = (
        torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, weight=w, reduction="sum"
        )
        / n
    )
    if kind == "balanced-bce":
        return bce
    prob = torch.sigmoid(logits) * mask
    inter = (prob * target).sum()
    dice = (2 * inter + 1.0) / (prob.sum() + (target * mask).sum() + 1.0)
    return bce + (1.0 - dice)


def learning_rate_at(settings: TrainingSettings, iteration: int) -> float:
    """The learning rate of ``iteration`` (1-based); a pure function, so resuming needs no state."""
    if settings.schedule == "constant":
        return settings.learning_rate
    frac = min(max((iteration - 1) / max(settings.iterations - 1, 1), 0.0), 1.0)
    floor = 0.02
    return float(settings.learning_rate * (floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * frac))))


# ------------------------------------------------------------------- inputs
@dataclass
class _Region:
    """One annotated crop with the raw and label data around it, ready for sampling."""

    roi: dict[str, Any]
    origin: tuple[int, int, int]  # global coordinate of raw[0, 0, 0] (after pre-processing)
    raw: np.ndarray  # pre-processed, float32
    label_origin: tuple[int, int, int]
    labels: np.ndarray  # uint8, 255 outside annotations


def _roi_key(r: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(r["offset"]), tuple(r["shape"])


def _annotation_rois(image: Path, labels: str, arr: Any) -> list[dict[str, Any]]:
    rois = read_annotation_rois(image, labels)
    if rois:
        return [
            {"offset": [int(v) for v in r["offset"]], "shape": [int(v) for v in r["shape"]]}
            for r in rois
        ]
    # a label image from another tool: one ROI per connected annotated region
    mask = np.asarray(arr[...]) != UNANNOTATED
    lab, _ = ndimage.label(mask)
    out = []
    for sl in ndimage.find_objects(lab):
        if sl is not None:
            out.append({"offset": [s.start for s in sl], "shape": [s.stop - s.start for s in sl]})
    return out


def _read_labels(arr: Any, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
    """Labels of ``[start, stop)``; voxels outside the volume are unannotated."""
    out = np.full([b - a for a, b in zip(start, stop, strict=True)], UNANNOTATED, dtype=np.uint8)
    lo = [max(0, a) for a in start]
    hi = [min(n, b) for b, n in zip(stop, arr.shape, strict=True)]
    if all(h > lo_ for lo_, h in zip(lo, hi, strict=True)):
        src = np.asarray(arr[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])
        if src.dtype.kind == "i" and src.size and int(src.min()) < 0:
            # a cast would wrap -1 to 255 (unannotated) and -2 to 254 (a class)
            msg = (
                f"the labels hold negative values (down to {int(src.min())}); training reads "
                f"0..{UNANNOTATED} ({UNANNOTATED} = unannotated): add them again with a value "
                "map, e.g. `curated labels add ... --map=-1=255` for an 'ignore' label"
            )
            raise SegmentationError(msg, field="labels")
        if src.dtype != np.uint8 and src.size and int(src.max()) > UNANNOTATED:
            # a cast would wrap 256 to 0 (background) and 511 to 255 (unannotated)
            msg = (
                f"the labels hold values up to {int(src.max())} (an instance segmentation?); "
                f"training reads 0..{UNANNOTATED} ({UNANNOTATED} = unannotated): add them with "
                "`curated labels add ... --map nonzero=1` for one class of all objects"
            )
            raise SegmentationError(msg, field="labels")
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
        out[dst] = src
    return out


def _parent_rois(
    parent: SegmentationModel, image: Path, workspace: Workspace | None
) -> set[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The (offset, shape) of every crop in the parent's lineage recorded on ``image``."""
    names = {str(image.resolve()), image.name}
    if workspace is not None:
        names.add(workspace.relative(image))
    out = set()
    for r in parent.meta.get("lineage_rois", []):
        ref = str(r.get("image", ""))
        if ref in names or Path(ref).name == image.name:
            out.add((tuple(int(v) for v in r["offset"]), tuple(int(v) for v in r["shape"])))
    return out


def _signature(obj: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


# --------------------------------------------------------------- augmenting
def _fine_axes(voxel: tuple[float, ...]) -> tuple[int, ...]:
    """Axes whose voxels are within 1.5× of the finest: those training may turn into each other."""
    return tuple(i for i in range(3) if voxel[i] <= 1.5 * min(voxel))


def z_swap_axes(
    voxel: tuple[float, ...], in_patch: tuple[int, ...], aug: Augmentation
) -> tuple[int, ...]:
    """The axes that may take z's place in a training patch (z among them), or ``()``.

    Those whose voxels are within 1.5× of the finest, when z's are too and z is not already
    among the axes ``_augment`` transposes (those of the patch's longest input extent): the
    planned patch of a thin crop at isotropic 8 nm is 24 × 48 × 48, so the in-plane transposes
    never turn a mitochondrion that runs along z into one that runs across. Reading such a patch
    with z exchanged needs the crop's region grown to the largest extent of these axes
    (``_prepare_regions``); beyond the crop the labels are unannotated and the loss skips them.
    """
    if not (aug.transposes and aug.swap_z):
        return ()
    fine = _fine_axes(voxel)
    if 0 not in fine or len(fine) < 2 or in_patch[0] == max(in_patch):
        return ()
    return fine


def _augment(
    raw: np.ndarray,
    lab: np.ndarray,
    aug: Augmentation,
    iso_axes: tuple[int, ...],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same random flips/transposes/elastic warp to a raw patch and its (centred) labels."""
    if aug.elastic and rng.random() < aug.elastic_p:
        raw, lab = _elastic(raw, lab, aug, rng)
    elif any(aug.margin):  # read with the warp's margin, not warped this time
        inner = tuple(slice(m, n - m) for m, n in zip(aug.margin, raw.shape, strict=True))
        raw = raw[inner]
        lab = lab[tuple(slice(m, n - m) for m, n in zip(aug.margin, lab.shape, strict=True))]
    if aug.transposes and len(iso_axes) >= 2:
        perm = list(range(3))
        chosen = list(iso_axes)
        shuffled = [chosen[i] for i in rng.permutation(len(chosen))]
        for a, b in zip(chosen, shuffled, strict=True):
            perm[a] = b
        raw, lab = raw.transpose(perm), lab.transpose(perm)
    if aug.flips:
        for axis in range(3):
            if rng.random() < 0.5:
                raw, lab = np.flip(raw, axis), np.flip(lab, axis)
    raw = _augment_intensity(np.asarray(raw, dtype=np.float32), aug, iso_axes, rng)
    if aug.intensity_scale or aug.intensity_shift:
        scale = 1.0 + rng.uniform(-aug.intensity_scale, aug.intensity_scale)
        shift = rng.uniform(-aug.intensity_shift, aug.intensity_shift)
        raw = raw * np.float32(scale) + np.float32(shift)
    return np.ascontiguousarray(raw, dtype=np.float32), np.ascontiguousarray(lab)


def _augment_intensity(
    raw: np.ndarray, aug: Augmentation, iso_axes: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """nnU-Net-style intensity augmentation of one pre-processed patch (values near [-1, 1])."""
    x = raw
    # blur and simulated low resolution act in the isotropic plane (not across thick z slices)
    plane = tuple(iso_axes) if len(iso_axes) >= 2 else (1, 2)
    if aug.blur_p and rng.random() < aug.blur_p:
        sig = [0.0, 0.0, 0.0]
        for a in plane:
            sig[a] = float(rng.uniform(*aug.blur_sigma))
        x = ndimage.gaussian_filter(x, sig, mode="reflect")
    if aug.low_resolution_p and rng.random() < aug.low_resolution_p:
        zoom = float(rng.uniform(*aug.low_resolution_zoom))
        factors = [zoom if a in plane else 1.0 for a in range(3)]
        small = ndimage.zoom(x, factors, order=0, mode="nearest")
        back = [s / m for s, m in zip(x.shape, small.shape, strict=True)]
        # nearest down, linear up, as nnU-Net v2's augmentation (batchgeneratorsv2) does; a
        # cubic spline up took 0.36 s of a 104³ patch, where a whole 5 nm training step takes
        # 0.8 s on two cores (RESULTS.md, "Faster augmentation")
        x = ndimage.zoom(small, back, order=1, mode="nearest", grid_mode=True)[
            : x.shape[0], : x.shape[1], : x.shape[2]
        ]
        if x.shape != raw.shape:  # rounding left a voxel short: pad by reflection
            pad = [(0, t - h) for t, h in zip(raw.shape, x.shape, strict=True)]
            x = np.pad(x, pad, mode="reflect")
    if aug.noise_p and rng.random() < aug.noise_p:
        var = float(rng.uniform(0.0, aug.noise_variance))
        x = x + rng.normal(0.0, np.sqrt(var), size=x.shape).astype(np.float32)
    if aug.brightness_p and rng.random() < aug.brightness_p:
        x = x * np.float32(rng.uniform(*aug.brightness_range))
    if aug.contrast_p and rng.random() < aug.contrast_p:
        m = np.float32(x.mean())
        lo, hi = float(x.min()), float(x.max())
        x = np.clip((x - m) * np.float32(rng.uniform(*aug.contrast_range)) + m, lo, hi)
    if aug.gain_field_p and rng.random() < aug.gain_field_p:
        x = _gain_field(x, aug.gain_field_strength, rng)
    if aug.gamma_p and rng.random() < aug.gamma_p:
        invert = rng.random() < aug.gamma_inverted_p
        gamma = float(rng.uniform(*aug.gamma_range))
        lo, hi = float(x.min()), float(x.max())
        span = max(hi - lo, 1e-6)
        u = (x - lo) / span
        u = 1.0 - (1.0 - u) ** gamma if invert else u**gamma
        x = u * span + lo
    return np.asarray(x, dtype=np.float32)


def _gain_field(x: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random gain ``g`` in [1 - strength, 1] with contrast lost toward a random level."""
    grid = [2, 3, 3]
    coarse = rng.uniform(0.0, 1.0, grid)
    g = 1.0 - float(rng.uniform(0.0, strength)) * _linear_upsample(coarse, x.shape)
    level = float(rng.uniform(x.min(), x.mean()))
    return (g * x + (1.0 - g) * level).astype(np.float32)


def _linear_upsample(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``coarse`` stretched to ``shape`` by linear interpolation between corner-aligned grids.

    What ``ndimage.zoom(coarse, shape / coarse.shape, order=1)`` computes, as one
    interpolation matrix per axis (it is separable): 5 ms instead of 46 ms for a 104³
    patch.
    """
    mats = []
    for n, c in zip(shape, coarse.shape, strict=True):
        pos = np.arange(n) * ((c - 1) / (n - 1)) if n > 1 else np.zeros(1)
        lo = np.minimum(np.floor(pos).astype(int), max(c - 2, 0))
        frac = pos - lo
        m = np.zeros((n, c))
        m[np.arange(n), lo] = 1.0 - frac
        if c > 1:
            m[np.arange(n), lo + 1] += frac
        mats.append(m)
    mz, my, mx = mats
    # axis by axis, the large last step as a few scaled adds: no BLAS call (an optimised
    # einsum went through BLAS and started its threads beside torch's)
    u = np.einsum("jb,abk->ajk", my, np.einsum("abc,kc->abk", coarse, mx))
    out = np.zeros(tuple(shape), dtype=np.float64)
    for a in range(coarse.shape[0]):
        out += mz[:, a, None, None] * u[a][None]
    return out


def _elastic(
    raw: np.ndarray, lab: np.ndarray, aug: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random in-plane displacement (cubic-upsampled control grid, the same in every
    slice of the patch; z is never displaced); raw is linear, labels nearest."""
    margin = aug.margin
    m = margin[1]
    out_raw_shape = tuple(s - 2 * mm for s, mm in zip(raw.shape, margin, strict=True))
    plane = out_raw_shape[1:]
    grid = [max(2, -(-s // aug.elastic_grid) + 1) for s in plane]
    disp = [
        np.clip(
            ndimage.zoom(
                rng.normal(0, aug.elastic_sigma, grid),
                [s / g for s, g in zip(plane, grid, strict=True)],
                order=3,
            )[: plane[0], : plane[1]],
            -m + 1,
            m - 1,
        ).astype(np.float32)
        for _ in range(2)
    ]
    coords = np.meshgrid(
        *[np.arange(s, dtype=np.float32) + mm for s, mm in zip(out_raw_shape, margin, strict=True)],
        indexing="ij",
    )
    warped = [coords[0], coords[1] + disp[0][None], coords[2] + disp[1][None]]
    new_raw = ndimage.map_coordinates(raw, warped, order=1, mode="reflect").astype(np.float32)
    # label voxel j sits at raw voxel j + context; follow the same field into label coordinates
    ctx = [(r - s) // 2 for r, s in zip(raw.shape, lab.shape, strict=True)]
    sl = tuple(slice(c, c + s - 2 * mm) for c, s, mm in zip(ctx, lab.shape, margin, strict=True))
    lab_coords = [w[sl] - c for w, c in zip(warped, ctx, strict=True)]
    new_lab = ndimage.map_coordinates(
        lab, lab_coords, order=0, mode="constant", cval=UNANNOTATED
    ).astype(np.uint8)
    return new_raw, new_lab


# ------------------------------------------------------------------ training
def train(
    image: str | Path,
    *,
    labels: str,
    label_value: int,
    out: str | Path,
    iterations: int = DEFAULT_ITERATIONS,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    batch_size: int = 2,
    patch: int | tuple[int, int, int] | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    depth: int | None = DEFAULT_DEPTH,
    base_features: int = DEFAULT_FEATURES,
    norm: str = DEFAULT_NORM,
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    augmentation: Augmentation | dict[str, Any] | None = None,
    checkpoint_every: int = 100,
    validate_every: int = 50,
    validation: bool = False,
    loss: str = "balanced-bce+dice",
    class_balance: float = DEFAULT_CLASS_BALANCE,
    class_balance_warmup: float = DEFAULT_CLASS_BALANCE_WARMUP,
    new_crop_fraction: float = DEFAULT_NEW_CROP_FRACTION,
    name: str | None = None,
    overwrite: bool = False,
    parent: str | Path | SegmentationModel | None = None,
    workspace: Workspace | str | Path | None = None,
    progress: ProgressReporter | None = None,
) -> Result:
    """Train a one-label 3D U-Net on the annotated crops of a sparse label image.

    Parameters
    ----------
    image
        OME-Zarr image; training reads its level 0.
    labels, label_value
        The sparse label image (255 = unannotated, see :mod:`curated.segment.annotate`)
        and the value K this model learns to segment.
    out
        The model folder (``model.json`` + ``weights.pt``). Running again with the same
        arguments resumes from its last checkpoint, or is ``notneeded`` when finished.
    iterations, batch_size, patch, learning_rate
        Optimisation settings; ``patch`` is the output patch size (rounded up to a
        valid size of the network); ``None`` plans it from the annotated crops
        (:func:`planned_patch`).
    device, precision
        ``auto`` (CUDA if available), ``cpu`` or ``cuda``; ``auto``, ``fp32`` or ``bf16``
        (:data:`~curated.segment.device.PRECISIONS`; a resumed run may change it).
    depth, base_features, norm
        Network size and normalisation (``batch`` or ``none``); ``depth=None`` plans it from
        the voxel size (:func:`~curated.segment.unet.depth_for_voxel_size`); voxels finer than
        6 nm along every axis get a pointwise top level with half of ``base_features``
        (:func:`network_config`). A fine-tune keeps the parent's.
    preprocessing, augmentation
        :class:`Preprocessing` and :class:`Augmentation`, or their fields as dicts (e.g.
        ``{"shading_sigma": 24}``, ``{"elastic": True}``); the pre-processing's statistics
        are fitted once on the training regions.
    parent
        A model to start from (see :func:`finetune`).
    validation
        Hold out a crop with the label and keep the lowest-loss iteration on it (default: no).
    new_crop_fraction
        Fine-tuning only: share of patches from new crops holding the structure (:func:`finetune`).

    Returns
    -------
    Result
        ``path`` is the model folder; ``details`` holds losses, validation Dice and timing.
    """
    image = local_only(image)
    out = Path(out)
    parent_model = load_model(parent) if isinstance(parent, str | Path) else parent
    pre = _preprocessing(preprocessing, image)
    settings = TrainingSettings(
        iterations=int(iterations),
        batch_size=int(batch_size),
        patch=_patch_tuple(patch),
        learning_rate=float(learning_rate),
        checkpoint_every=int(checkpoint_every),
        validate_every=int(validate_every),
        seed=int(seed),
        loss=str(loss),
        class_balance=float(class_balance),
        class_balance_warmup=float(class_balance_warmup),
        new_crop_fraction=float(new_crop_fraction),
    )
    _check_settings(settings)
    job = _TrainJob(
        image=image,
        labels=labels,
        label_value=int(label_value),
        out=out,
        settings=settings,
        device_name=device,
        precision=check_precision(precision),
        depth=depth,
        base_features=base_features,
        norm=norm,
        pre=pre,
        aug=_augmentation(augmentation),
        validation=validation,
        name=name,
        overwrite=overwrite,
        parent=parent_model,
    )
    ws = as_workspace(workspace)
    params = job.params(label_value, ws)
    with recorder(ws, "T", job.action, inputs=[image], params=params, libraries=SOFTWARE) as step:
        result = _unless_unlogged(_train(job, ws, ensure_progress(progress)), ws, out)
        _record_training(step, result, out)
        return result


def _preprocessing(
    given: Preprocessing | dict[str, Any] | None, image: Path
) -> Preprocessing | None:
    """``None``: the default for the image's voxel size (local contrast normalisation),
    worked out once the image is open; a fine-tune keeps its parent's."""
    if isinstance(given, Preprocessing) or given is None:
        return given
    return Preprocessing(**_with_kernel(given, image))


def _unless_unlogged(result: Result, ws: Workspace | None, out: Path) -> Result:
    """A ``notneeded`` training whose model the log does not record (a run killed before its
    log entry finished it) is recorded now, as ``ok``."""
    if result.status != "notneeded" or not unlogged(ws, out):
        return result
    message = f"{result.message} (recorded after an interrupted run)"
    return replace(result, status="ok", message=message)


def _augmentation(given: Augmentation | dict[str, Any] | None) -> Augmentation:
    """``given`` as an :class:`Augmentation`; a dict naming a field that does not exist is
    refused (a misspelt option would otherwise train silently with the default)."""
    if not isinstance(given, dict):
        return given or Augmentation()
    unknown = sorted(set(given) - set(Augmentation.__dataclass_fields__))
    if unknown:
        msg = f"unknown augmentation option(s) {', '.join(unknown)}; known: {', '.join(Augmentation.__dataclass_fields__)}"
        raise InputError(msg, field="augmentation")
    return Augmentation.from_dict(given)


def _patch_tuple(patch: int | tuple[int, ...] | None) -> tuple[int, int, int] | None:
    """``patch`` as a (z, y, x) triple; an int is a cube, ``None`` stays (the plan)."""
    if patch is None:
        return None
    if isinstance(patch, int):
        return (patch,) * 3
    t = tuple(int(p) for p in patch)
    if len(t) != 3 or min(t) < 1:
        msg = f"patch must be one positive edge or three (z, y, x), not {patch!r}"
        raise InputError(msg, field="patch")
    return (t[0], t[1], t[2])


def _record_training(step: Any, result: Result, out: Path) -> None:
    """The curator log entry of a training: status, message, the model's files and key figures."""
    step.status = result.status
    step.message = result.message
    if result.status == "ok":
        step.add_output(out / MODEL_JSON)
        step.add_output(out / "weights.pt", digest="sha256:" + result.details["weights_sha256"])
    keep = ("best_validation_dice", "iterations", "output_patch", "seconds")
    step.details.update({k: v for k, v in result.details.items() if k in keep})


def finetune(
    parent: str | Path | SegmentationModel,
    image: str | Path,
    *,
    labels: str,
    out: str | Path,
    label_value: int | None = None,
    iterations: int = DEFAULT_FINETUNE_ITERATIONS,
    learning_rate: float = DEFAULT_FINETUNE_LEARNING_RATE,
    draws: int = DEFAULT_FINETUNE_DRAWS,
    **kwargs: Any,
) -> Result:
    """Continue training ``parent`` on new annotations; the model records the parent's sha256.

    The protocol for a few new crops: crops the parent never saw (not in its
    ``lineage_rois``) are the *new* ones; those holding the structure are drawn for
    ``new_crop_fraction`` (50 %) of the patches times their share of the new voxels
    (see ``_TrainingLoop._pick_probabilities``), and new crops are never held out;
    the parent's crops keep the rest so what it learned is not forgotten; the
    learning rate is annealed (cosine) and the last iteration is kept. The architecture and the fitted pre-processing are
    the parent's (the default local contrast normalisation makes absolute grey
    levels irrelevant, so nothing needs re-fitting); ``lineage_rois`` is the
    parent's lineage plus the ROIs used here. ``label_value`` defaults to the
    parent's, and so is ``class_balance`` unless given. Fine-tuning with no new crop
    is refused. ``draws`` (3 by default) fine-tunes that many times with other random
    draws and keeps the average of their weights (:mod:`curated.segment.average`);
    ``draws=1`` is one plain fine-tuning, a third of the time.

    Every annotated crop trains, the one the parent held out for validation included:
    fine-tuning keeps its last iteration, so a held-out crop would select nothing, and
    holding one out cost the fine-tuned model on both benchmarks (``benchmarks/RESULTS.md``,
    "Held-out crops in fine-tuning"). ``validation=True`` holds one of the parent's crops
    out and records its Dice during training, as fine-tuning did before this release.
    """
    parent_model = parent if isinstance(parent, SegmentationModel) else load_model(parent)
    if label_value is None:
        label_value = parent_model.label_value
    if kwargs.get("class_balance") is None:
        # the parent's objective: models from before the option weighed classes equally (1.0)
        kwargs["class_balance"] = _parent_class_balance(parent_model)
    kwargs.update(labels=labels, label_value=label_value, iterations=iterations)
    kwargs["learning_rate"] = learning_rate
    if check_draws(draws) > 1:
        return finetune_average(
            parent_model, local_only(image), out=Path(out), draws=draws, **kwargs
        )
    return train(image, out=out, parent=parent_model, **kwargs)


def _check_settings(settings: TrainingSettings) -> None:
    """One line for a class balance, warm-up, new-crop share or loss out of range."""
    for name in ("class_balance", "class_balance_warmup", "new_crop_fraction"):
        value = getattr(settings, name)
        if not 0.0 <= value <= 1.0:
            msg = f"{name} must be between 0 and 1, not {value!r}"
            raise InputError(msg, field=name)
    if settings.loss not in LOSSES:
        msg = f"loss must be one of {', '.join(LOSSES)}, not {settings.loss!r}"
        raise InputError(msg, field="loss")


def _parent_class_balance(parent: SegmentationModel) -> float:
    training = parent.meta.get("training") or {}
    value = training.get("class_balance")
    return float(value) if isinstance(value, int | float) else 1.0


@dataclass
class _TrainJob:
    """One training run as :func:`train` resolved its arguments."""

    image: Path
    labels: str
    label_value: int
    out: Path
    settings: TrainingSettings
    device_name: str
    precision: str
    depth: int | None
    base_features: int
    norm: str
    pre: Preprocessing | None
    aug: Augmentation
    validation: bool
    name: str | None
    overwrite: bool
    parent: SegmentationModel | None

    @property
    def action(self) -> str:
        return "finetune" if self.parent else "train"

    def params(self, label_value: Any, ws: Workspace | None) -> dict[str, Any]:
        """The parameters the curator log records for this run (``out`` relative to the
        workspace root, as the log names every path)."""
        return {
            "labels": self.labels,
            "label_value": label_value,
            "out": ws.relative(self.out) if ws else str(self.out),
            "device": self.device_name,
            "precision": self.precision,
            **asdict(self.settings),
            "depth": self.depth,
            "base_features": self.base_features,
            "norm": self.norm,
            "preprocessing": self.pre.to_dict() if self.pre is not None else "default",
            "augmentation": asdict(self.aug),
            "validation": self.validation,
            "parent": self.parent.id if self.parent else None,
        }


@dataclass
class _Source:
    """The opened image and labels, and the network and pre-processing that fit them."""

    raw: Any
    labels: Any
    shape: tuple[int, ...]
    voxel: tuple[float, float, float]
    config: UNetConfig
    pre: Preprocessing
    out_patch: tuple[int, int, int]

    @property
    def geom(self) -> UNetGeometry:
        return self.config.geometry

    @property
    def in_patch(self) -> tuple[int, int, int]:
        """The input one output patch needs (the output grown by the network's context)."""
        return self.geom.input_for(self.out_patch)


@dataclass
class _Crops:
    """The annotated crops, which of them is held out for validation, and which are new."""

    rois: list[dict[str, Any]]
    annotated: int
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    seen: set[tuple[tuple[int, ...], tuple[int, ...]]]
    new_keys: set[tuple[tuple[int, ...], tuple[int, ...]]]


def _train(job: _TrainJob, workspace: Workspace | None, progress: ProgressReporter) -> Result:
    t0 = time.perf_counter()
    device = resolve_device(job.device_name)
    src = _open_source(job)
    rng = np.random.default_rng(job.settings.seed)
    crops = _select_crops(job, src, workspace, rng)
    if job.settings.patch is None:
        src.out_patch = planned_patch(src.geom, [tuple(r["shape"]) for r in crops.rois])
    signature = _known_signature(job, src, crops)
    done = _finished_model(job, signature)
    if done is not None:
        return done
    ckpt = load_checkpoint(
        job.out, signature
    )  # IntegrityError on a corrupt one, before anything is written
    src.pre, train_regions, val_regions = _prepare_regions(job, src, crops)
    loop = _TrainingLoop(job, src, device, rng, train_regions, val_regions, crops.new_keys)
    loop.restore(ckpt)
    with training_heap():  # the same buffers every step: keep their pages mapped
        loop.run(signature, progress)
    selection, final_state = loop.selection()
    sha = write_weights(job.out, adjusted_head(final_state, loop.adjustment))
    meta = _model_meta(job, src, crops, loop, workspace, signature, selection, sha, t0)
    write_model_json(job.out, meta)
    best = loop.best
    details = {
        "weights_sha256": sha,
        "iterations": job.settings.iterations,
        "resumed_from": loop.start_it,
        "best_validation_dice": best["dice"] if val_regions else None,
        "checkpoint_selection": selection,
        "output_patch": list(src.out_patch),
        "seconds": meta["training"]["seconds"],
        "model_id": meta["id"],
        "annotated_fraction": meta["training"]["annotated_fraction"],
    }
    msg = f"{job.settings.iterations} iterations"
    if val_regions and job.parent is None:
        msg += f"; kept iteration {best['iteration']} (validation loss {best['loss']:.4f}, Dice {best['dice']:.3f})"
    elif val_regions and loop.history:  # fine-tuning keeps its last iteration
        msg += f"; validation Dice {loop.history[-1]['val_dice']:.3f} at the last iteration"
    msg = with_warnings(msg, details, recorded_warnings(meta))
    return Result(job.action, "ok", str(job.out), msg, details)


def recorded_warnings(meta: dict[str, Any]) -> list[str]:
    """What a fine-tuning warns of, read from its ``model.json``, so that a finished run, a
    re-run that finds it done and a weight average of such runs all say the same.

    A fine-tune whose new crops all lack the structure: such a crop only shows what the
    structure is *not*. In ``benchmarks/hitl.py`` a new crop that was mostly nucleus cost the
    shaded half of the volume its mitochondria (shaded-half Dice 0.731 → 0.557 on one seed,
    0.794 → 0.655 → 0.221 over two rounds on another; RESULTS.md), because the chromatin looks
    like shaded mitochondria there.
    """
    t = meta.get("training", {})
    warnings = []
    parent = meta.get("parent") or {}
    scale = voxel_size_mismatch(
        parent.get("voxel_size"), t.get("voxel_size") or (), who="the parent model"
    )
    if scale:  # the fine-tune keeps the parent's network and normalisation, planned in its voxels
        warnings.append(scale)
    new, without = t.get("new_rois") or [], t.get("new_rois_without_structure") or []
    if not new or len(without) < len(new):
        return warnings
    value = meta["label"]["label_value"]
    which = (
        f"the new crop holds no voxel of label {value}"
        if len(new) == 1
        else f"none of the {len(new)} new crops holds a voxel of label {value}"
    )
    return warnings + [
        f"{which}: crops that only show what "
        "the structure is not can teach the network to drop it where it looks alike; check the "
        "new model's scores where the structure is, and annotate a crop that holds it as well"
    ]


def _open_source(job: _TrainJob) -> _Source:
    """Check the settings, open level 0 of image and labels, choose network and pre-processing."""
    settings = job.settings
    if settings.iterations < 1 or settings.batch_size < 1:
        msg = "iterations and batch size must be at least 1"
        raise InputError(msg, field="iterations")
    if not 1 <= job.label_value < UNANNOTATED:
        msg = f"label value must be 1..{UNANNOTATED - 1}, not {job.label_value}"
        raise InputError(msg, field="label_value")
    raw_arr = _store.image_level0(job.image)
    lab_arr = _store.label_level0(job.image, job.labels)
    shape = tuple(int(s) for s in raw_arr.shape)
    if tuple(lab_arr.shape) != shape:
        msg = (
            f"label image {job.labels!r} has shape {tuple(lab_arr.shape)} but the image has {shape}"
        )
        raise SegmentationError(msg, path=job.image, field="labels")
    voxel = _store.voxel_size(job.image)
    pre = job.pre
    if job.parent is not None:
        config = job.parent.config
        pre = job.parent.preprocessing
    else:
        config = network_config(voxel, job.depth, job.base_features, job.norm)
        if pre is None:
            pre = default_preprocessing(voxel, raw_arr.dtype)
    # a planned patch (``None``) is worked out once the crops are known (``_train``)
    out_patch = config.geometry.valid_output(settings.patch or (PATCH_FLOOR,) * 3)
    return _Source(raw_arr, lab_arr, shape, voxel, config, pre, out_patch)  # type: ignore[arg-type]


def network_config(
    voxel: tuple[float, float, float], depth: int | None, base_features: int, norm: str
) -> UNetConfig:
    """The U-Net a new model gets for this voxel size; ``depth=None`` plans the depth for
    :data:`~curated.segment.defaults.FIELD_OF_VIEW_NM`.

    Levels finer than :data:`~curated.segment.defaults.POINTWISE_BELOW_NM` along every
    axis (isotropic FIB-SEM at 4-5 nm) get 1×1×1 kernels, and a pointwise top level
    carries half of ``base_features``: the first level that sees space, one pooling step
    down, then has ``base_features`` maps at about the voxel size a coarser image starts
    with.

    (Planned here, not in :mod:`curated.segment.unet`: that module is shipped as one
    self-contained file in exported packages and must not import the defaults.)
    """
    if depth is None:
        depth = depth_for_voxel_size(voxel, FIELD_OF_VIEW_NM, MAX_DEPTH, POINTWISE_BELOW_NM)
    try:
        cfg = UNetConfig.for_voxel_size(
            voxel,
            depth=depth,
            base_features=base_features,
            norm=norm,
            pointwise_below_nm=POINTWISE_BELOW_NM,
        )
    except ValueError as e:  # an unknown norm, an impossible depth
        raise InputError(str(e)) from None
    if cfg.depth and cfg.kernels[0] == (1, 1, 1) and base_features > 1:
        cfg = replace(cfg, base_features=base_features // 2)
    return cfg


def planned_patch(geom: UNetGeometry, crop_shapes: list[tuple[int, ...]]) -> tuple[int, int, int]:
    """The output patch a training plans from its annotated crops (``patch=None``).

    Each axis gets up to :data:`~curated.segment.defaults.PATCH_EDGE` voxels but no more
    than the largest crop spans along it (a patch beyond every crop only adds masked,
    unsupervised voxels), rounded up to a valid network output. While the input that
    patch needs exceeds :data:`~curated.segment.defaults.PATCH_INPUT_VOXELS`, the longest
    axis gives up one pooling step, down to :data:`~curated.segment.defaults.PATCH_FLOOR`
    (or the crops' extent): with valid convolutions most of a small patch's input is
    context, so a larger one supervises several times the voxels for each voxel read.
    On the shaded sample (``benchmarks/hitl.py``, 24 × 48 × 48 crops at 8 nm) the planned
    24 × 48 × 48 patch instead of the 24³ cube lifted bright-only whole-volume Dice from
    0.705 to 0.750 (five seeds, two training draws; higher in 7 of 10, CI −0.023 … +0.102),
    and on real ssTEM from 0.534 to 0.583 (higher on each of three crop seeds; RESULTS.md
    "A planned output patch").

    >>> from curated.segment.unet import UNetConfig
    >>> geom = UNetConfig().geometry  # depth 2, 3×3×3: 20 voxels of context a side
    >>> planned_patch(geom, [(24, 48, 48), (24, 40, 48)])
    (24, 48, 48)
    >>> planned_patch(geom, [(32, 32, 32)])
    (32, 32, 32)
    >>> planned_patch(geom, [(200, 200, 200)])  # 88³ input is over the budget; 80³ is not
    (40, 40, 40)
    """
    extent = [max(int(c[i]) for c in crop_shapes) for i in range(3)]
    want = [max(1, min(PATCH_EDGE, e)) for e in extent]
    out = list(geom.valid_output(tuple(want)))
    floor = list(geom.valid_output(tuple(min(PATCH_FLOOR, e) for e in extent)))
    while int(np.prod(geom.input_for(tuple(out)))) > PATCH_INPUT_VOXELS:
        shrinkable = [i for i in range(3) if out[i] - geom.step[i] >= floor[i]]
        if not shrinkable:
            break
        i = max(shrinkable, key=lambda k: (out[k], k == 0))
        out[i] -= geom.step[i]
    return tuple(out)  # type: ignore[return-value]


def _select_crops(
    job: _TrainJob, src: _Source, workspace: Workspace | None, rng: np.random.Generator
) -> _Crops:
    """The annotated crops; the validation crop is drawn with ``rng`` (the run's first draw)."""
    image, labels, label_value, parent = job.image, job.labels, job.label_value, job.parent
    rois = _annotation_rois(image, labels, src.labels)
    annotated = 0
    values: set[int] = set()
    has_label: list[bool] = []
    for r in rois:
        crop = _read_labels(
            src.labels,
            tuple(r["offset"]),
            tuple(o + s for o, s in zip(r["offset"], r["shape"], strict=True)),
        )
        m = crop != UNANNOTATED
        annotated += int(m.sum())
        present = {int(v) for v in np.unique(crop[m])}
        has_label.append(label_value in present)
        values |= present
    if annotated == 0:
        msg = f"label image {labels!r} has no annotated voxels (everything is {UNANNOTATED}); annotate some crops first"
        raise SegmentationError(msg, path=image, field="labels")
    if label_value not in values:
        msg = f"label value {label_value} does not occur in the annotations of {labels!r} (values present: {sorted(values)})"
        raise SegmentationError(msg, path=image, field="label_value")
    # Fine-tuning: crops the parent never saw are "new". They are what the curator
    # just added, so they are never held out and are drawn ``new_crop_fraction`` of
    # the time; the last iteration (annealed learning rate) is kept. By default no crop
    # is held out (finetune); with validation=True one of the parent's crops is, and
    # only watches for forgetting.
    seen = _parent_rois(parent, image, workspace) if parent is not None else set()
    is_new = [(tuple(r["offset"]), tuple(r["shape"])) not in seen for r in rois]
    if parent is not None and not any(is_new):
        msg = (
            f"every annotated crop of {labels!r} was already used to train the parent model; "
            "annotate new crops (e.g. where `curated annotate suggest` points) before fine-tuning"
        )
        raise SegmentationError(msg, path=image, field="labels")
    # the validation crop must hold the label, and another crop with the label must remain for training
    positive = [i for i, has in enumerate(has_label) if has and (parent is None or not is_new[i])]
    val_rois: list[dict[str, Any]] = []
    train_rois = list(rois)
    if job.validation and len(positive) >= 2:
        held = int(positive[int(rng.integers(len(positive)))])
        val_rois = [rois[held]]
        train_rois = [r for i, r in enumerate(rois) if i != held]
    new_keys = {_roi_key(r) for r, n in zip(rois, is_new, strict=True) if n}
    return _Crops(rois, annotated, train_rois, val_rois, seen, new_keys)


def _run_signature(job: _TrainJob, src: _Source, crops: _Crops, *, legacy: bool = False) -> str:
    """What makes two runs the same run (the iterations aside: more of them resume).

    ``legacy``: the form of earlier releases, which named the image by its absolute path.
    """
    return _signature(
        {
            "image": str(job.image.resolve()) if legacy else image_key(job.image, job.out),
            "labels": job.labels,
            "label_value": job.label_value,
            "rois": crops.rois,
            "settings": {k: v for k, v in asdict(job.settings).items() if k != "iterations"},
            "config": src.config.to_dict(),
            "preprocessing": src.pre.to_dict(),
            "augmentation": _augmentation_signature(job.aug),
            "parent": job.parent.sha256 if job.parent else None,
            "validation": job.validation,
        }
    )


def _known_signature(job: _TrainJob, src: _Source, crops: _Crops) -> str:
    """This run's signature, in the earlier releases' form when ``out``'s model or checkpoint
    holds that one: a run they finished (or started) in place is still found done (or resumed)."""
    import json

    legacy = _run_signature(job, src, crops, legacy=True)
    recorded = set()
    for name, keys in (
        ("checkpoint.json", ("signature",)),
        (MODEL_JSON, ("training", "signature")),
    ):
        try:
            value: Any = json.loads((job.out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if isinstance(value, str):
            recorded.add(value)
    return legacy if legacy in recorded else _run_signature(job, src, crops)


def _augmentation_signature(aug: Augmentation) -> dict[str, Any]:
    """The augmentation as the run signature holds it: ``swap_z`` only when on, so a run the
    previous release started (or finished) with the same command still resumes (or is found
    done) rather than being refused as another model."""
    d = asdict(aug)
    if not d["swap_z"]:
        del d["swap_z"]
    return d


def _finished_model(job: _TrainJob, signature: str) -> Result | None:
    """``notneeded`` when this run already finished in ``out``; refuses another model there."""
    out = job.out
    out.mkdir(parents=True, exist_ok=True)
    if job.overwrite and not _interrupted_here(out, signature):
        for f in ("checkpoint.pt", "checkpoint.json"):
            (out / f).unlink(missing_ok=True)
    if not (out / MODEL_JSON).is_file() or job.overwrite:
        return None
    try:
        _, old = read_model_json(out)
    except InputError:
        old = {}
    same = old.get("training", {}).get("signature") == signature
    if same and int(old["training"]["iterations"]) >= job.settings.iterations:
        load_model(out)  # verifies the weights
        details = {
            "weights_sha256": old["weights"]["sha256"],
            "iterations": old["training"]["iterations"],
        }
        msg = f"already trained for {old['training']['iterations']} iterations"
        msg = with_warnings(msg, details, recorded_warnings(old))
        return Result(job.action, "notneeded", str(out), msg, details)
    if not same:
        raise SegmentationError(OTHER_MODEL_HERE, path=out, field="out")
    return None


def model_json_sha256(out: Path) -> str | None:
    """The sha256 of ``out``'s ``model.json``, or ``None`` when there is none."""
    try:
        return hashlib.sha256((out / MODEL_JSON).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _interrupted_here(out: Path, signature: str) -> bool:
    """Whether ``out``'s checkpoint is of this run, interrupted before it wrote its model:
    an ``overwrite`` killed part way then resumes from it instead of starting over.

    The checkpoint names the ``model.json`` that was there while it was written; once the
    run finished, its own ``model.json`` is there instead, and another ``overwrite`` starts
    over. With none there (the run was killed while writing its model, which removes the
    old one first) the checkpoint is resumed as without ``overwrite``. A checkpoint of
    another run (other settings) is never resumed.
    """
    import json

    try:
        info = json.loads((out / "checkpoint.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(info, dict)
        and info.get("signature") == signature
        and "replaces" in info
        and model_json_sha256(out) in (info["replaces"], None)
    )


def _prepare_regions(
    job: _TrainJob, src: _Source, crops: _Crops
) -> tuple[Preprocessing, list[_Region], list[_Region]]:
    """Read and pre-process the region around each crop once (statistics fitted on them
    unless fine-tuning); the validation crop's labels are hidden from the training regions."""
    geom, out_patch, halo, margin = src.geom, src.out_patch, src.pre.halo, job.aug.margin
    lab_reach = [o + m for o, m in zip(out_patch, margin, strict=True)]
    raw_reach = [r + c for r, c in zip(lab_reach, geom.context, strict=True)]
    swap = z_swap_axes(src.voxel, src.in_patch, job.aug)
    for reach in (lab_reach, raw_reach):  # a patch read with z exchanged reaches this far
        top = max((reach[a] for a in swap), default=0)
        reach[:] = [top if a in swap else r for a, r in enumerate(reach)]
    grow = [r + h for r, h in zip(raw_reach, halo, strict=True)]

    def region_of(r: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        lo = tuple(o - g for o, g in zip(r["offset"], grow, strict=True))
        hi = tuple(o + s + g for o, s, g in zip(r["offset"], r["shape"], grow, strict=True))
        return lo, hi

    train_rois, val_rois = crops.train, crops.val
    raw_regions = []
    for r in train_rois + val_rois:
        lo, hi = region_of(r)
        raw_regions.append(read_region(src.raw, lo, hi))
    pre = src.pre.fit(raw_regions) if job.parent is None else src.pre
    regions: list[_Region] = []
    for r, raw in zip(train_rois + val_rois, raw_regions, strict=True):
        lo, hi = region_of(r)
        proc = pre.apply(raw)
        origin = tuple(a + h for a, h in zip(lo, halo, strict=True))
        lab_lo = tuple(o - lab_reach[i] for i, o in enumerate(r["offset"]))
        lab_hi = tuple(
            o + s + lab_reach[i]
            for i, (o, s) in enumerate(zip(r["offset"], r["shape"], strict=True))
        )
        lab = _read_labels(src.labels, lab_lo, lab_hi)
        if r not in val_rois:
            _hide_validation_labels(lab, lab_lo, val_rois)
        regions.append(_Region(r, origin, proc, lab_lo, lab))  # type: ignore[arg-type]
    del raw_regions
    return pre, regions[: len(train_rois)], regions[len(train_rois) :]


def _hide_validation_labels(
    lab: np.ndarray, lab_lo: tuple[int, ...], val_rois: list[dict[str, Any]]
) -> None:
    """The validation crop's annotations never reach the loss, even where regions touch it."""
    for v in val_rois:
        lo_v = [max(0, vo - lo_) for vo, lo_ in zip(v["offset"], lab_lo, strict=True)]
        hi_v = [
            min(n, vo + vs - lo_)
            for vo, vs, lo_, n in zip(v["offset"], v["shape"], lab_lo, lab.shape, strict=True)
        ]
        if all(h > lo_ for lo_, h in zip(lo_v, hi_v, strict=True)):
            lab[tuple(slice(a, b) for a, b in zip(lo_v, hi_v, strict=True))] = UNANNOTATED


class _TrainingLoop:
    """The network, optimiser and random state of one run, and the loop that trains it."""

    def __init__(
        self,
        job: _TrainJob,
        src: _Source,
        device: torch.device,
        rng: np.random.Generator,
        train_regions: list[_Region],
        val_regions: list[_Region],
        new_keys: set[tuple[tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.job, self.src, self.device, self.rng = job, src, device, rng
        self.settings = job.settings
        self.train_regions, self.val_regions = train_regions, val_regions
        # class balance over all training annotations
        label_value = job.label_value
        fg = sum(int((rg.labels == label_value).sum()) for rg in train_regions)
        ann = sum(int((rg.labels != UNANNOTATED).sum()) for rg in train_regions)
        self.fg_fraction = fg / max(ann, 1)
        # validation (and so checkpoint choice) always uses the final weighting
        self.weights = class_weights(self.fg_fraction, self.settings.class_balance)
        # network, optimiser, AMP
        torch.manual_seed(self.settings.seed)
        net = UNet3D(src.config)
        if job.parent is not None:
            # train on the parent's raw logits: undo the adjustment its weights carry,
            # so the weighted loss starts where the parent's training ended
            net.load_state_dict(
                adjusted_head(
                    job.parent.network("cpu").state_dict(), -_parent_logit_adjustment(job.parent)
                )
            )
        self.net = net.to(device)
        self.opt = torch.optim.Adam(
            self.net.parameters(),
            lr=self.settings.learning_rate,
            weight_decay=self.settings.weight_decay,
        )
        self.dtype = amp_dtype(device, job.precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.start_it = 0
        self.loss_ema: float | None = None
        """The running training loss (recorded in the history): a resumed run goes on with it."""
        self.best: dict[str, Any] = {
            "dice": -1.0,
            "loss": float("inf"),
            "iteration": 0,
            "state": None,
        }
        self.history: list[dict[str, float]] = []
        voxel, in_patch = src.voxel, src.in_patch
        self.iso_axes = tuple(i for i in _fine_axes(voxel) if in_patch[i] == max(in_patch))
        self.swap_axes = z_swap_axes(voxel, in_patch, job.aug)
        # per crop, inside the crop: foreground and annotated voxels
        inside = [_roi_labels(rg) for rg in train_regions]
        self.roi_fg = np.array([int((lab == label_value).sum()) for lab in inside])
        self.roi_ann = np.array([int((lab != UNANNOTATED).sum()) for lab in inside])
        # new crops: those the parent never saw (none when training from scratch).
        # Fine-tuning oversamples only the new ones that hold the structure; a new crop
        # without any is drawn in proportion to its size like the parent's crops: shown
        # 70 % of the time, a crop of nucleus and cytoplasm taught the network to find
        # nothing on the shaded half, far beyond what the prior shift explains
        # (benchmarks/hitl.py seed 3: whole-volume Dice 0.720 → 0.482 with the shift
        # corrected, RESULTS.md). The crops without it are recorded in model.json.
        self.fresh = np.array(
            [job.parent is not None and _roi_key(rg.roi) in new_keys for rg in train_regions],
            dtype=bool,
        )
        self.oversampled = self.fresh & (self.roi_fg > 0)
        self.new_without_structure = [
            _plain(rg.roi)
            for rg, new, fg in zip(train_regions, self.fresh, self.roi_fg, strict=True)
            if new and fg == 0
        ]
        self.pick_p = self._pick_probabilities()
        # added to the output bias when the weights are saved (see logit_adjustment and
        # sampling_prior_shift); validation scores the decision the saved model will make
        self.sampling_shift = self._sampling_prior_shift()
        self.adjustment = logit_adjustment(self.weights, self.settings.loss) + self.sampling_shift

    def _sampling_prior_shift(self) -> float:
        """See :func:`sampling_prior_shift`; 0 unless fine-tuning oversamples new crops."""
        over = self.oversampled
        if not over.any() or over.all():
            return 0.0
        fg, ann = self.roi_fg, self.roi_ann
        per_crop = list(fg / np.maximum(ann, 1))
        return sampling_prior_shift(float(fg.sum() / max(ann.sum(), 1)), self.pick_p, per_crop)

    def _pick_probabilities(self) -> np.ndarray:
        """Crops are drawn by size; when fine-tuning, the new crops holding the structure
        get ``new_crop_fraction`` times their share of the new crops' voxels (all of it
        when every new crop holds some; see ``oversampled`` in ``__init__``).

        The share of a new crop without the structure does not pass to the others: when
        one 16×32×32 crop of three new ones held mitochondria, it alone took 70 % of the
        patches, the sampling prior shift reached −1.19 and the fine-tuned model found
        almost nothing (``benchmarks/hitl.py --round-crops 3``, seed 1: whole-volume Dice
        0.645 → 0.119, RESULTS.md).
        """
        regions, over = self.train_regions, self.oversampled
        sizes = np.array([np.prod(rg.roi["shape"]) for rg in regions], dtype=np.float64)
        pick_p = sizes / sizes.sum()
        if over.any() and (~over).any():
            share = float(np.clip(self.settings.new_crop_fraction, 0.0, 1.0))
            share *= float(sizes[over].sum() / sizes[self.fresh].sum())
            pick_p = np.where(
                over,
                share * sizes / sizes[over].sum(),
                (1.0 - share) * sizes / sizes[~over].sum(),
            )
            pick_p = pick_p / pick_p.sum()
        return pick_p

    def restore(self, ckpt: dict[str, Any] | None) -> None:
        """Continue from a checkpoint of this run (weights, optimiser, history, random state)."""
        if ckpt is None:
            return
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_it = int(ckpt["iteration"])
        self.best = ckpt["best"]
        self.history = list(ckpt.get("history", []))
        self.loss_ema = ckpt.get("loss_ema")  # None in checkpoints from before it was kept
        self.rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (raw, labels) patch pair from a random place in a random crop."""
        rng, geom, aug = self.rng, self.src.geom, self.job.aug
        out_patch, in_patch = self.src.out_patch, self.src.in_patch
        rg = self.train_regions[int(rng.choice(len(self.train_regions), p=self.pick_p))]
        centre = [
            int(rng.integers(o, o + s))
            for o, s in zip(rg.roi["offset"], rg.roi["shape"], strict=True)
        ]
        # z exchanged with axis k (k = 0: not at all): the block is read in the source's
        # orientation with the patch's extents exchanged, then turned back
        perm = [0, 1, 2]
        if self.swap_axes:
            k = self.swap_axes[int(rng.integers(len(self.swap_axes)))]
            perm[0], perm[k] = k, 0
        out_s, in_s, ctx, mg = (
            [t[a] for a in perm] for t in (out_patch, in_patch, geom.context, aug.margin)
        )
        p0 = [c - op // 2 for c, op in zip(centre, out_s, strict=True)]
        rs = [p - c - m - o for p, c, m, o in zip(p0, ctx, mg, rg.origin, strict=True)]
        raw = rg.raw[tuple(slice(s, s + i + 2 * m) for s, i, m in zip(rs, in_s, mg, strict=True))]
        ls = [p - m - o for p, m, o in zip(p0, mg, rg.label_origin, strict=True)]
        lab = rg.labels[
            tuple(slice(s, s + o + 2 * m) for s, o, m in zip(ls, out_s, mg, strict=True))
        ]
        if perm[0]:
            raw, lab = raw.transpose(perm), lab.transpose(perm)
        return _augment(raw, lab, aug, self.iso_axes, rng)

    def validate(self) -> tuple[float, float]:
        """Mean Dice and loss over the validation crops."""
        net, geom, label_value = self.net, self.src.geom, self.job.label_value
        net.eval()
        dices, losses = [], []
        # at the run's precision, as prediction computes (validation scores the
        # decision the saved model will make)
        dtype = self.dtype
        with (
            torch.no_grad(),
            torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None),
        ):
            for rg in self.val_regions:
                o = geom.valid_output(tuple(rg.roi["shape"]))
                rs = [
                    ro - c - org
                    for ro, c, org in zip(rg.roi["offset"], geom.context, rg.origin, strict=True)
                ]
                x = rg.raw[
                    tuple(slice(s, s + i) for s, i in zip(rs, geom.input_for(o), strict=True))
                ]
                ls = [ro - lo for ro, lo in zip(rg.roi["offset"], rg.label_origin, strict=True)]
                y = rg.labels[
                    tuple(slice(s, s + sz) for s, sz in zip(ls, rg.roi["shape"], strict=True))
                ]
                logits = net(
                    torch.from_numpy(np.ascontiguousarray(x))[None, None].to(self.device)
                ).float()
                logits = logits[0, 0, : y.shape[0], : y.shape[1], : y.shape[2]].cpu()
                mask = y != UNANNOTATED
                target = y == label_value
                loss = segmentation_loss(
                    logits,
                    torch.from_numpy(target.astype(np.float32)),
                    torch.from_numpy(mask.astype(np.float32)),
                    self.settings.loss,
                    self.weights,
                )
                losses.append(float(loss))
                dices.append(masked_dice(logits.numpy() + self.adjustment > 0, target, mask))
        net.train()
        return float(np.mean(dices)), float(np.mean(losses))

    def checkpoint(self, it: int, signature: str) -> None:
        save_checkpoint(
            self.job.out,
            {
                "iteration": it,
                "model": self.net.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "best": self.best,
                "history": self.history,
                "loss_ema": self.loss_ema,
                "numpy_rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
            },
            signature,
            replaces=model_json_sha256(self.job.out),
        )

    def step(self, it: int) -> tuple[float, float]:
        """One optimiser step at iteration ``it``; returns the loss and the learning rate."""
        settings, device, label_value = self.settings, self.device, self.job.label_value
        lr = learning_rate_at(settings, it)
        for group in self.opt.param_groups:
            group["lr"] = lr
        batch = [self.sample() for _ in range(settings.batch_size)]
        x = torch.from_numpy(np.stack([b[0] for b in batch])[:, None]).to(device)
        y = np.stack([b[1] for b in batch])
        mask = torch.from_numpy((y != UNANNOTATED).astype(np.float32)).to(device)
        target = torch.from_numpy((y == label_value).astype(np.float32)).to(device)
        dtype = self.dtype
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            logits = self.net(x)[:, 0]
        weights = class_weights(self.fg_fraction, class_balance_at(settings, it))
        loss = segmentation_loss(logits.float(), target, mask, settings.loss, weights)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        return float(loss.detach()), lr

    def run(self, signature: str, progress: ProgressReporter) -> None:
        """Train from the last checkpoint to the last iteration, validating and checkpointing."""
        settings = self.settings
        progress.start(
            f"{'fine-tune' if self.job.parent else 'train'} {self.job.out.name}",
            settings.iterations,
            "iterations",
        )
        if self.start_it:
            progress.advance(self.start_it)
        self.net.train()
        for it in range(self.start_it + 1, settings.iterations + 1):
            lv, lr = self.step(it)
            ema = self.loss_ema
            self.loss_ema = loss_ema = lv if ema is None else 0.9 * ema + 0.1 * lv
            info: dict[str, object] = {"loss": loss_ema}
            if self.val_regions and (
                it % settings.validate_every == 0 or it == settings.iterations
            ):
                dice, vloss = self.validate()
                self.history.append(
                    {
                        "iteration": it,
                        "loss": loss_ema,
                        "val_dice": dice,
                        "val_loss": vloss,
                        "lr": lr,
                    }
                )
                if vloss < self.best["loss"]:
                    self.best = {
                        "dice": dice,
                        "loss": vloss,
                        "iteration": it,
                        "state": {
                            k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()
                        },
                    }
                info["val_dice"] = dice
            progress.advance(1, **info)
            if it % settings.checkpoint_every == 0 and it < settings.iterations:
                self.checkpoint(it, signature)
                crash_point("train-checkpointed")
        progress.finish()
        if settings.iterations > self.start_it:
            self.checkpoint(settings.iterations, signature)

    def selection(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Which iteration's weights are kept, and why; and those weights."""
        best, history, iterations = self.best, self.history, self.settings.iterations
        if self.job.parent is not None:
            selection = {
                "rule": "last iteration (fine-tuning: the learning rate is annealed; a validation "
                "crop, held out only when asked, is one of the parent's crops and only watches for "
                "forgetting)",
                "iteration": iterations,
                "validation_dice": history[-1]["val_dice"] if history else None,
            }
            return selection, self.net.state_dict()
        if self.val_regions:
            selection = {
                "rule": "lowest validation loss (class-balanced, masked BCE on the held-out crop)",
                "iteration": best["iteration"],
                "validation_dice": best["dice"],
            }
            state = best["state"] if best["state"] is not None else self.net.state_dict()
            return selection, state
        why = (
            "every crop trains; validation=True holds one out"
            if not self.job.validation
            else "only one annotated crop holds the label: none held out for validation"
        )
        selection = {"rule": f"last iteration ({why})", "iteration": iterations}
        return selection, self.net.state_dict()


def _image_identity(image: Path, ws: Workspace | None) -> tuple[str, str, str]:
    """How the model names its training image: reference, digest and what the digest covers."""
    image_ref = ws.relative(image) if ws else str(image.resolve())
    # A store the curator log already recorded (the converter hashed it while writing)
    # is named by that digest; re-reading a terabyte level 0 for every training run is
    # what the log's digests are there to spare. Otherwise the level-0 array is hashed.
    recorded = ws.log.recorded_output(image) if ws is not None and ws.log.exists() else None
    if recorded is not None and recorded.digest:
        return (
            image_ref,
            recorded.digest,
            f"the whole image store, as recorded in the curator log at seq {recorded.recorded_seq}",
        )
    image_digest, _ = digest_path(image / _store.level0_path(_store.open_group(image), image))
    return image_ref, image_digest, "the level-0 array of the image store"


def _roi_labels(rg: _Region) -> np.ndarray:
    """The labels of a region's annotated crop (its array also holds a margin around it)."""
    ls = [ro - lo for ro, lo in zip(rg.roi["offset"], rg.label_origin, strict=True)]
    return rg.labels[tuple(slice(s, s + sz) for s, sz in zip(ls, rg.roi["shape"], strict=True))]


def _plain(r: dict[str, Any]) -> dict[str, Any]:
    return {"offset": list(r["offset"]), "shape": list(r["shape"])}


def _lineage(
    parent: SegmentationModel | None, image_ref: str, crops: _Crops
) -> list[dict[str, Any]]:
    """The parent's lineage plus the crops used here; a crop it already learned from is listed once."""
    used = [_plain(r) for r in crops.train] + [_plain(r) for r in crops.val]
    lineage = list(parent.meta.get("lineage_rois", [])) if parent else []
    known = {(str(r.get("image")), tuple(r["offset"]), tuple(r["shape"])) for r in lineage}
    known |= {(image_ref, k[0], k[1]) for k in crops.seen}
    lineage += [
        {**r, "image": image_ref}
        for r in used
        if (image_ref, tuple(r["offset"]), tuple(r["shape"])) not in known
    ]
    return lineage


_LOSS_DESCRIPTION = {
    "balanced-bce+dice": "class-weighted binary cross-entropy (see class_balance) plus soft Dice, over annotated voxels only",
    "bce+dice": "binary cross-entropy plus soft Dice, over annotated voxels only",
    "balanced-bce": "binary cross-entropy over annotated voxels, class-weighted (see class_balance)",
}


def _model_meta(
    job: _TrainJob,
    src: _Source,
    crops: _Crops,
    loop: _TrainingLoop,
    ws: Workspace | None,
    signature: str,
    selection: dict[str, Any],
    sha: str,
    t0: float,
) -> dict[str, Any]:
    """The ``model.json`` of the finished run."""
    settings, parent, device, dtype = job.settings, job.parent, loop.device, loop.dtype
    image_ref, image_digest, digest_scope = _image_identity(job.image, ws)
    lineage = _lineage(parent, image_ref, crops)
    model_name = job.name or job.out.name
    w_fg, w_bg = loop.weights
    return {
        "format": MODEL_FORMAT,
        "id": f"{model_name}@{sha[:12]}",
        "name": model_name,
        "created": utc_now(),
        "architecture": {
            "type": "unet3d-valid",
            "version": MODEL_FORMAT,
            **src.config.to_dict(),
            **src.geom.to_dict(),
            "parameters": count_parameters(loop.net),
            "normalisation_layers": (
                "batch normalisation after every convolution; running statistics at prediction"
                if src.config.norm == "batch"
                else None
            ),
            "output": "one logit channel; sigmoid > 0.5 is the label",
        },
        "preprocessing": src.pre.to_dict(),
        "label": {"labels": job.labels, "label_value": job.label_value},
        "training": {
            "image": image_ref,
            "image_digest": image_digest,
            "image_digest_scope": digest_scope,
            "voxel_size": list(src.voxel),
            "rois": [_plain(r) for r in crops.train],
            "validation_rois": [_plain(r) for r in crops.val],
            "annotated_voxels": crops.annotated,
            "annotated_fraction": crops.annotated / float(np.prod(src.shape)),
            "iterations": settings.iterations,
            "seed": settings.seed,
            "batch_size": settings.batch_size,
            "output_patch": list(src.out_patch),
            "input_patch": list(src.in_patch),
            "learning_rate": settings.learning_rate,
            "schedule": settings.schedule,
            "new_crop_fraction": settings.new_crop_fraction if parent else None,
            "new_rois_without_structure": loop.new_without_structure if parent else None,
            "new_crop_share": float(loop.pick_p[loop.oversampled].sum()) if parent else None,
            "new_rois": [_plain(r) for r in crops.rois if _roi_key(r) in crops.new_keys]
            if parent
            else None,
            "optimizer": "Adam",
            "loss": settings.loss,
            "loss_description": _LOSS_DESCRIPTION[settings.loss],
            "class_weights": {"foreground": w_fg, "background": w_bg}
            if settings.loss.startswith("balanced")
            else None,
            "class_balance": settings.class_balance
            if settings.loss.startswith("balanced")
            else None,
            "logit_adjustment": loop.adjustment,
            "sampling_prior_shift": loop.sampling_shift,
            "logit_adjustment_description": "added to the output bias after training: "
            "-log(w_fg / w_bg) removes the class weighting's prior, plus sampling_prior_shift "
            "(fine-tuning: logit of the annotated foreground fraction minus that of the "
            "fraction the oversampled crops showed), so sigmoid > 0.5 is the unweighted "
            "decision at the annotated prior (the checkpoint holds the unadjusted weights)",
            "class_balance_warmup": settings.class_balance_warmup
            if settings.loss.startswith("balanced") and settings.class_balance < 1.0
            else None,
            "augmentation": asdict(job.aug),
            "checkpoint_selection": selection,
            "history": loop.history,
            "device": str(device),
            "amp": str(dtype).replace("torch.", "") if dtype else None,
            "precision": {"asked": job.precision, "used": precision_name(dtype)},
            "signature": signature,
            "seconds": round(time.perf_counter() - t0, 2),
        },
        "parent": (
            {
                "sha256": parent.sha256,
                "id": parent.id,
                "voxel_size": (parent.meta.get("training") or {}).get("voxel_size"),
            }
            if parent
            else None
        ),
        "lineage_rois": lineage,
        "weights": {"file": "weights.pt", "sha256": sha},
        "evaluations": [],
        "software": library_versions(SOFTWARE)
        | {
            "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        },
    }
