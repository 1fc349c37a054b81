"""Training defaults shared by ``curated segment train``/``finetune``, the Python API and ``curated demo``.

One place, so the CLI, the library and the demo cannot drift apart; the values
are the ones measured by ``benchmarks/hitl.py`` and ``benchmarks/quality.py``
(figures in ``benchmarks/RESULTS.md``). This module imports nothing heavy, so
the CLI can show the defaults in ``--help`` without loading PyTorch.
"""

from __future__ import annotations

DEFAULT_DEPTH: int | None = None
"""``None``: the smallest depth whose in-plane field of view reaches
:data:`FIELD_OF_VIEW_NM` (``segment.unet.depth_for_voxel_size``): 2 at 8 nm (41 voxels,
328 nm), 3 at 4.6 nm (89 voxels, 409 nm)."""
FIELD_OF_VIEW_NM = 320.0
"""In-plane field of view (nm) the default depth reaches: twice a 160 nm mitochondrion's
short axis. On real ssTEM at 4.6 nm, depth 2 (189 nm, about one mitochondrion) scored
Dice 0.36 on crop seed 0 and depth 3 (409 nm) 0.41, and 0.44 / 0.47 on seeds 1 / 2
(RESULTS.md)."""
MAX_DEPTH = 4
POINTWISE_BELOW_NM = 6.0
"""Levels whose voxels are finer than this (nm) along every axis get 1×1×1 kernels, and a
pointwise top level half the features (``segment.train.network_config``): isotropic FIB-SEM
at 4-5 nm then sees space from 8-10 nm on, as 8 nm data does from its top level. At 5 nm the
top level's 3×3×3 convolutions were about half of a training step: a step takes 0.69 s instead
of 1.86 s on two cores (1200 iterations with validation: 19 min, 17 min since the linear
low-resolution augmentation), and whole-volume Dice on three
synthetic seeds was 0.638 against 0.648
(0.000, +0.029, −0.060; RESULTS.md "Isotropic 5 nm FIB-SEM: a pointwise top level"). 8 nm data
and ssTEM (50 nm in z) are planned as before."""
DEFAULT_FEATURES = 8
"""Feature maps at the top level (doubled at each level down)."""
DEFAULT_NORM = "batch"
"""Normalisation inside the U-Net: ``batch`` (batch statistics while training, a fixed
affine map at prediction) or ``none``. Without it the depth-3 net that 4.6 nm data plans
trained to validation Dice 0 for most of 600 iterations (real ssTEM seed 0: Dice 0.11);
with it, 0.41 (RESULTS.md)."""
DEFAULT_ITERATIONS = 1200
"""Training iterations (patches of the batch size each). 1200 rather than 600, measured side by
side on the same volumes and crops (RESULTS.md "1200 iterations by default"): the synthetic
shaded sample's whole-volume Dice +0.042 (95 % CI +0.023 to +0.061, five seeds; shaded half
0.963× the bright half instead of 0.917×), real ssTEM Dice outside the crops 0.526 instead of
0.480 (three crop seeds: +0.01, +0.14, −0.01). It doubles the training time: about 9-10 min of
CPU on one thread for either benchmark; ``curated demo`` stays within 10 min on two cores.

Not 2400, though it scores higher (RESULTS.md "Twice the training steps on all five seeds"):
whole-volume Dice +0.037 (CI +0.010 … +0.054, five seeds; shaded half +0.051) on the synthetic
benchmark and +0.082 outside the crops of real ssTEM (three crop seeds, two training draws
against four; CI +0.029 … +0.135 over test tiles and draws, RESULTS.md "Settings compared over
training draws"),
but ``curated demo``'s training took 12.7 min on two idle cores of a 2026-12-06 machine (the
whole demo 13 min 6 s against 6 min 57 s at 1200; Dice 0.892 against 0.840), over the 10
minutes a round may take there. Ask for it (``--iterations 2400``) where the cores
allow."""
PATCH_EDGE = 48
"""Planned output patch (``patch=None``, the default): up to this many voxels along each axis,
no more than the largest annotated crop spans along it (a patch beyond the crops trains on
masked voxels only) and within :data:`PATCH_INPUT_VOXELS` (``segment.train.planned_patch``).
Measured against the fixed 24³ cube on the same volumes, crops and draws (RESULTS.md "A planned
output patch"): the shaded benchmark's bright-only whole-volume Dice 0.705 → 0.750 (five seeds,
two training draws; shaded / bright 0.90 → 0.995), real ssTEM outside the crops 0.534 → 0.583
(higher on each of three crop seeds), at about twice the training time."""
PATCH_FLOOR = 24
"""The planned patch never shrinks an axis below this many voxels (or the crops' extent) to meet
the input budget: the fixed 24-voxel cube that was the default before the plan."""
PATCH_INPUT_VOXELS = 512 * 1024
"""Input voxels one planned patch may read (80³): at 8 nm the 24 × 48 × 48 output patch of a
24 × 48 × 48 crop needs 64 × 88 × 88 = 496 k, twice a 24³ patch's cost for four times its
supervised voxels; at 5 nm already a 24³ output needs 104³, so the plan keeps that."""
DEFAULT_LEARNING_RATE = 1e-3
"""Adam's starting learning rate; annealed (cosine) to 2 % of it over the run. Neither 2e-3 nor
5e-4 did better (RESULTS.md "The training learning rate"): real ssTEM outside the crops, crop
seeds 0-2, scored 0.584 / 0.557 / 0.558 from 2e-3 and 0.596 / 0.634 / 0.623 from 5e-4, against
0.595 / 0.644 / 0.587 from four training draws of 1e-3 (one run's Dice varies between draws with
a standard deviation of 0.048): with the draws counted, 2e-3 is −0.042 (CI −0.110 … +0.026) and
5e-4 +0.009 (CI −0.059 … +0.078)."""
DEFAULT_FINETUNE_ITERATIONS = 450
"""Fine-tuning's iterations; 150 until this release. With every annotated crop training and
the average of three fine-tunings, 450 scored higher than the old defaults (150, a random crop
of the parent's held out) on both benchmarks (RESULTS.md "The ten synthetic trials at the new
fine-tuning defaults" and "Held-out crops in fine-tuning, and 450 fine-tuning iterations"):
whole-volume Dice +0.025 after a suggested and +0.008 after a random crop on the ten synthetic
trials (suggested crops now beat random ones: AUC +0.011, CI above 0), and +0.007 to +0.025
outside every crop in four rounds on two crop seeds of the real ssTEM stack. Three times the
fine-tuning time: 361 s instead of 129 s for ``curated segment finetune`` of the benchmark's
volume on two idle CPU cores."""
DEFAULT_FINETUNE_LEARNING_RATE = 3e-4
"""Fine-tuning's starting learning rate (annealed like training's). Lower than training's: the
parent's own schedule ended at 2e-5, and restarting at 1e-3 moved well-trained parents away from
what they had learned. ``benchmarks/hitl.py`` (five seeds, one crop per round, 1200-iteration
parents): 3e-4 instead of 1e-3 changed the bright half by −0.018 instead of −0.025 with a
suggested crop (−0.048 instead of −0.062 with a random one) at the same worst x-quarter lift
(+0.124 vs +0.132); RESULTS.md "Fine-tuning at 3e-4"."""
DEFAULT_FINETUNE_DRAWS = 3
"""Fine-tunings averaged into one model (``segment.average``): 1 until this release. One
fine-tuning of one crop is a draw (three draws of the same crop differed by 0.030 whole-volume
Dice in the median, by up to 0.161); the uniform average of three draws' weights scored +0.011
(95 % CI +0.004 … +0.020) over the draws' mean and +0.029 over the worst. ``benchmarks/hitl.py``
with the average as the round's model (ten trials, RESULTS.md "The weight average of three
draws as the default"): a suggested crop lifts the bright half by +0.055 instead of +0.042 and
the worst x-quarter by +0.141 instead of +0.135. Three times the fine-tuning time:
``curated segment finetune`` of the benchmark's 40×160×256 volume took 129 s instead of 44 s
on two idle CPU cores at the then default 150 iterations."""
DEFAULT_NEW_CROP_FRACTION = 0.5
"""Fine-tuning: share of training patches drawn from the crops the parent never saw. The
foreground prior this shows the network differs from the annotated one; the saved bias
corrects for it (``segment.train.sampling_prior_shift``). 0.7 until this release (the
issue's "~70 %"): ``benchmarks/hitl.py``, ten trials × three fine-tuning draws on the
planned-patch parents (RESULTS.md "Three fine-tuning draws per round"), 0.5 scored higher
for suggested and random crops alike and spared the bright half; at 0.7 a suggested crop in
the darkest corner of one trial taught its model to call plain cytoplasm mitochondrion
(whole-volume Dice 0.76 → 0.50-0.60 on all three draws; 0.75-0.78 at 0.5)."""
DEFAULT_CLASS_BALANCE = 0.25
"""Exponent b of the cross-entropy's class weighting: foreground voxels weigh
((1 - f) / f) ** b times background ones (f = annotated foreground fraction), scaled
so the mean weight is 1; b = 1 gives both classes equal total weight. Training starts
at b = 1 and reaches this value after :data:`DEFAULT_CLASS_BALANCE_WARMUP` of the
iterations. On real ssTEM (``benchmarks/real_em.py``, three crop seeds, RESULTS.md)
b = 1 throughout over-segmented five- to sevenfold (Dice 0.208 / 0.194 / 0.154), and
b = 0.5 without the warm-up collapsed to "all background" on one seed; b = 0.25 with
the warm-up and the 400 nm normalisation scored 0.349 / 0.235 / 0.228. The weighting's
prior, ``log(w_fg / w_bg)`` on the logit, is taken out of the saved weights' output bias
(``segment.train.logit_adjustment``), so it helps training find the structure without
moving the predicted boundaries outwards."""
DEFAULT_CLASS_BALANCE_WARMUP = 0.5
"""Share of the iterations over which the class-balance exponent falls from 1 to its
target (``segment.train.class_balance_at``): equal class weight first finds the rare
foreground, the weaker target then trims the over-segmentation."""
LOCAL_CONTRAST_NM = 400.0
"""σ of the default local contrast normalisation, nanometres in y and x: wider than the
objects, so it removes shading without flattening them. Real mitochondria are 200-1000 nm
across; at 128 nm (the earlier default, fitted on the small synthetic ones) a few crops of
real ssTEM at 4.6 nm trained to "nothing found" on one crop seed of three (RESULTS.md)."""

__all__ = [
    "DEFAULT_CLASS_BALANCE",
    "DEFAULT_CLASS_BALANCE_WARMUP",
    "DEFAULT_DEPTH",
    "DEFAULT_FEATURES",
    "DEFAULT_FINETUNE_DRAWS",
    "DEFAULT_FINETUNE_ITERATIONS",
    "DEFAULT_FINETUNE_LEARNING_RATE",
    "DEFAULT_ITERATIONS",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_NORM",
    "PATCH_EDGE",
    "PATCH_FLOOR",
    "PATCH_INPUT_VOXELS",
    "FIELD_OF_VIEW_NM",
    "MAX_DEPTH",
    "POINTWISE_BELOW_NM",
    "DEFAULT_NEW_CROP_FRACTION",
    "LOCAL_CONTRAST_NM",
]
