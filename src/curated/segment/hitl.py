"""The human-in-the-loop story on a shaded sample, end to end and measured honestly.

1. A synthetic FIB-SEM sample is made whose brightness falls along x (shading).
2. Test blocks are drawn first, at random with a recorded seed, before any model
   exists (so nobody can pick them where a model happens to do well).
3. A curator annotates crops on the bright half only (emulated from the truth,
   imported like crops from napari or Fiji, never touching a test block) and a
   model is trained on them.
4. Evaluation on the test blocks, per factor ``shading_side``, shows the drop on
   the shaded half.
5. The curator adds crops on the shaded half; the model is fine-tuned from the
   first (its lineage now holds every crop of both rounds).
6. Evaluation on the *same* test blocks shows whether the shaded half recovered.
7. Optionally (``shading_sigma``), a model with flat-field shading correction
   instead of the default local contrast normalisation is trained on all the
   crops and scored on the same blocks, for comparison.

This is the story on one volume with held-out blocks, for the tests and the
curator log; the measured version (independent test volumes, whole-volume
scores, several seeds, crop strategies, baselines) is ``benchmarks/hitl.py``.

Every step goes through the public API (and the curator log, with a workspace);
:func:`run_hitl_story` is what ``examples/hitl_shading.py`` and the tests call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curated.errors import SegmentationError
from curated.segment.defaults import DEFAULT_DEPTH, DEFAULT_FEATURES
from curated.segment.evaluate import (
    Box,
    EvaluationReport,
    HeldOutBlocks,
    draw_held_out_blocks,
    evaluate,
)
from curated.workspace import Workspace, as_workspace

MITOCHONDRION = 1


@dataclass
class HitlStory:
    """What happened in each round: models, evaluations on the same blocks, crops."""

    image: Path
    held_out: HeldOutBlocks
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per round: Dice overall and per shading side, recall on the shaded side."""
        rows = []
        for r in self.rounds:
            ev: EvaluationReport = r["evaluation"]
            d = ev.to_dict()
            groups = d["factors"].get("shading_side", {})
            rows.append(
                {
                    "round": r["name"],
                    "crops": r["crops"],
                    "annotated_fraction": r["annotated_fraction"],
                    "dice": d["overall"]["raw"]["dice"],
                    "dice_ci95": d["ci95"]["dice"],
                    # the whole volume outside this round's training regions, when scored
                    "whole_dice": ((d.get("whole_volume") or {}).get("overall") or {})
                    .get("raw", {})
                    .get("dice"),
                    "whole_dice_ci95": ((d.get("whole_volume") or {}).get("overall") or {})
                    .get("ci95", {})
                    .get("dice"),
                    "dice_bright": (groups.get("bright") or {}).get("raw", {}).get("dice"),
                    "dice_shaded": (groups.get("shaded") or {}).get("raw", {}).get("dice"),
                    "recall_shaded": (groups.get("shaded") or {}).get("raw", {}).get("recall"),
                    "blocks_bright": (groups.get("bright") or {}).get("blocks", 0),
                    "blocks_shaded": (groups.get("shaded") or {}).get("blocks", 0),
                    "instance_f1": d["overall"]["instance"]["f1"],
                }
            )
        return rows


_PLACEMENTS = 20
"""Whole placements :func:`pick_crops` draws before it settles for crops without the structure."""


def _place_crops(
    truth: np.ndarray,
    rng: np.random.Generator,
    n: int,
    size: tuple[int, int, int],
    x_range: tuple[int, int],
    avoid: list[Box],
    min_fraction: float,
    label_value: int,
    cover: tuple[int, ...],
    cover_fraction: float | None,
) -> tuple[list[Box], list[Box], list[int]]:
    """One random placement: crops holding the structure, crops without it, labels not covered."""
    shape = truth.shape
    lo_x, hi_x = x_range
    chosen: list[Box] = []
    fallback: list[Box] = []
    missing = [int(v) for v in cover]
    for _ in range(400 * n):
        if len(chosen) == n:
            break
        off = (
            int(rng.integers(0, shape[0] - size[0] + 1)),
            int(rng.integers(0, shape[1] - size[1] + 1)),
            int(rng.integers(lo_x, max(lo_x, hi_x - size[2]) + 1)),
        )
        box = Box(off, size)
        if any(box.intersects(a) for a in avoid) or any(
            box.intersects(c) for c in chosen + fallback
        ):
            continue
        crop = truth[box.slices]
        frac = float(np.mean(crop == label_value))
        if missing:
            need = min_fraction if cover_fraction is None else cover_fraction
            held = [v for v in missing if float(np.mean(crop == v)) >= need]
            if held and frac >= min_fraction:
                chosen.append(box)
                missing = [v for v in missing if v not in held]
            continue
        if frac >= min_fraction:
            chosen.append(box)
        elif len(fallback) < n:
            fallback.append(box)
    return chosen, fallback, missing


def pick_crops(
    truth: np.ndarray,
    *,
    n: int,
    size: tuple[int, int, int],
    x_range: tuple[int, int],
    avoid: list[Box],
    seed: int,
    min_fraction: float = 0.02,
    label_value: int = MITOCHONDRION,
    cover: tuple[int, ...] = (),
    cover_fraction: float | None = None,
) -> list[Box]:
    """Crops a curator would annotate: inside ``x_range``, holding some of the structure, clear of ``avoid``.

    Crops holding at least ``min_fraction`` of the structure are preferred (a
    curator annotates where there is something to see); if too few exist, any
    crop in the region is taken, as long as one crop holds the structure.
    ``cover`` lists other label values (e.g. the nucleus) of which some crop must
    also hold ``min_fraction``: a curator shows the network the structures it
    must *not* call ``label_value``, not only the one it must. ``cover_fraction``
    (default ``min_fraction``) is how much of such a label the crop must hold: a crop
    that grazes the nucleus shows its envelope but not the dark chromatin inside it.
    """
    rng = np.random.default_rng(seed)
    # Random placement can fill the region before every crop holds the structure (a crop
    # at the nucleus in the middle leaves no room); a curator would place them again, so
    # draw whole placements until one has n crops with structure (the first draw is the
    # one earlier versions took), else keep the one with the most.
    best: tuple[list[Box], list[Box], list[int]] | None = None
    for _ in range(_PLACEMENTS):
        chosen, fallback, missing = _place_crops(
            truth, rng, n, size, x_range, avoid, min_fraction, label_value, cover, cover_fraction
        )
        if best is None or (not missing, len(chosen)) > (not best[2], len(best[0])):
            best = (chosen, fallback, missing)
        if not missing and len(chosen) == n:
            break
    assert best is not None
    chosen, fallback, missing = best
    if missing:
        msg = f"no annotation crop holding label {missing[0]} and the structure fits in the region; use a bigger sample"
        raise SegmentationError(msg, field="crops")
    if not chosen:
        msg = "no annotation crop holding the structure fits outside the test blocks; use a bigger sample or fewer blocks"
        raise SegmentationError(msg, field="crops")
    chosen += fallback[: n - len(chosen)]
    if len(chosen) < n:
        msg = f"only {len(chosen)} of {n} annotation crops fit outside the test blocks; use a bigger sample or fewer blocks"
        raise SegmentationError(msg, field="crops")
    return chosen


def annotate_crops(
    image: Path,
    truth: np.ndarray,
    crops: list[Box],
    name: str,
    workspace: Workspace | None,
    scratch: Path,
) -> None:
    """Emulate a curator annotating ``crops`` in another tool and importing them."""
    from curated.segment.annotate import import_annotation

    for i, box in enumerate(crops):
        f = scratch / f"{name}-{len(list(scratch.iterdir()))}-{i}.npy"
        np.save(f, truth[box.slices].astype(np.uint8))
        import_annotation(image, source_file=f, offset=box.offset, name=name, workspace=workspace)


def run_hitl_story(
    dest: str | Path,
    *,
    shape: tuple[int, int, int] = (48, 128, 128),
    shading: float = 0.6,
    crops_per_round: int = 3,
    crop_size: tuple[int, int, int] = (24, 32, 32),
    blocks: int = 8,
    block_size: int | tuple[int, int, int] = 24,
    iterations: int = 300,
    finetune_iterations: int = 200,
    depth: int | None = DEFAULT_DEPTH,
    base_features: int = DEFAULT_FEATURES,
    patch: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    shading_sigma: float | None = None,
    preprocessing: dict[str, Any] | None = None,
    workspace: Workspace | str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> HitlStory:
    """Run the shading story in ``dest`` (a folder) and return each round's evaluation.

    The test blocks are drawn before training and kept ``context`` voxels (plus
    the pre-processing halo) away from every annotation crop, so no model's
    training input ever sees them. ``preprocessing`` (fields of
    :class:`~curated.segment.preprocess.Preprocessing`) replaces the default local
    contrast normalisation, e.g. a smaller σ on a tiny test volume. With
    ``shading_sigma``, a third round trains
    a model with shading correction (σ in voxels, y and x) on all the crops.
    """
    from curated.segment import _store
    from curated.segment.defaults import DEFAULT_NORM
    from curated.segment.preprocess import Preprocessing, default_preprocessing
    from curated.segment.sample import make_fibsem_sample
    from curated.segment.train import network_config

    say = log or (lambda _msg: None)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    ws = as_workspace(workspace)
    image = dest / "shaded-sample.ome.zarr"
    make_fibsem_sample(image, shape=shape, shading=shading, seed=seed, overwrite=True, workspace=ws)
    voxel = _store.voxel_size(image)
    context = network_config(voxel, depth, base_features, DEFAULT_NORM).geometry.context
    first = (
        Preprocessing(**preprocessing)
        if preprocessing
        else default_preprocessing(voxel, _store.image_level0(image).dtype)
    )
    halos = [first.halo, Preprocessing(shading_sigma=float(shading_sigma or 0.0)).halo]
    widest = tuple(max(h[i] for h in halos) for i in range(3))
    margin = tuple(c + h for c, h in zip(context, widest, strict=True))
    say(f"sample {shape} with shading {shading}; network context {context}")

    # 1. test blocks first, at random, before anything is trained or predicted
    held = draw_held_out_blocks(shape, blocks, block_size, seed=seed)
    avoid = [b.grow(margin) for b in held.blocks]
    truth = np.asarray(_store.label_level0(image, "truth")[...])
    story = HitlStory(image=image, held_out=held)
    half = shape[2] // 2
    models = dest / "models"
    common = {"device": device, "workspace": ws, "seed": seed, "patch": patch}

    with tempfile.TemporaryDirectory(prefix="curated-hitl-") as tmp:
        scratch = Path(tmp)
        rounds: list[tuple[str, tuple[int, int] | None, str]] = [
            ("bright side only", (0, half), "train"),
            ("+ shaded-side crops, fine-tuned", (half, shape[2]), "finetune"),
        ]
        if shading_sigma:
            rounds.append(("all crops, shading correction", None, "shading"))
        names = {
            "train": "bright",
            "finetune": "bright-plus-shaded",
            "shading": "shading-corrected",
        }
        all_crops: list[Box] = []
        for r, (title, x_range, how) in enumerate(rounds):
            if x_range is not None:
                crops = pick_crops(
                    truth,
                    n=crops_per_round,
                    size=crop_size,
                    x_range=x_range,
                    avoid=avoid + all_crops,
                    seed=seed + 101 * (r + 1),
                )
                all_crops += crops
                annotate_crops(image, truth, crops, "annotations", ws, scratch)
            annotated = sum(int(np.prod(c.shape)) for c in all_crops) / float(np.prod(shape))
            out = models / names[how]
            say(
                f"round {r + 1}: {title}: {len(all_crops)} crops ({annotated:.1%} of voxels); training"
            )
            report = _round(
                image,
                how,
                out,
                models / names["train"],
                held,
                iterations=finetune_iterations if how == "finetune" else iterations,
                net={"depth": depth, "base_features": base_features},
                preprocessing={"shading_sigma": float(shading_sigma or 0.0)}
                if how == "shading"
                else preprocessing,
                dest=dest,
                common=common,
            )
            story.rounds.append(
                {
                    "name": title,
                    "model": out,
                    "crops": len(all_crops),
                    "annotated_fraction": annotated,
                    "evaluation": report,
                }
            )
    return story


def _round(
    image: Path,
    how: str,
    out: Path,
    parent: Path,
    held: Any,
    *,
    iterations: int,
    net: dict[str, int],
    preprocessing: dict[str, Any] | None,
    dest: Path,
    common: dict[str, Any],
) -> Any:
    """Train (or fine-tune ``parent``), predict the whole image and score the held-out blocks."""
    from curated.segment.predict import predict
    from curated.segment.train import finetune, train

    ws = common["workspace"]
    if how == "finetune":
        finetune(
            parent,
            image,
            labels="annotations",
            out=out,
            iterations=iterations,
            overwrite=True,
            **common,
        )
    else:
        train(
            image,
            labels="annotations",
            label_value=MITOCHONDRION,
            out=out,
            iterations=iterations,
            preprocessing=preprocessing,
            overwrite=True,
            **net,
            **common,
        )
    pred_name = f"prediction-{out.name}"
    predict(out, image, name=pred_name, device=common["device"], overwrite=True, workspace=ws)
    return evaluate(
        image,
        pred=pred_name,
        truth="truth",
        label_value=MITOCHONDRION,
        blocks=held,
        exclude_training=out,
        factors=("shading_side",),
        workspace=ws,
        out=None if ws else dest / "evaluations",
        name=f"{out.name}-held-out",
        overwrite=True,
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text before/after table (no colours, fit for logs and RESULTS files)."""

    def f(v: Any) -> str:
        return "  n/a" if v is None else f"{v:.3f}"

    def c(ci: Any) -> str:
        return f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "n/a"

    head = (
        f"{'round':<34} {'crops':>5} {'annot.':>7} {'whole':>6} {'95% CI':>13} {'blocks':>6} "
        f"{'95% CI':>13} {'bright':>6} {'shaded':>6} {'recall sh.':>10}"
    )
    lines = [
        "Dice on the whole volume outside each round's training regions (whole), and on the "
        "same held-out blocks every round (blocks; bright/shaded: the blocks' halves)",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r['round']:<34} {r['crops']:>5} {r['annotated_fraction']:>6.1%} "
            f"{f(r.get('whole_dice')):>6} {c(r.get('whole_dice_ci95')):>13} {f(r['dice']):>6} "
            f"{c(r['dice_ci95']):>13} {f(r['dice_bright']):>6} {f(r['dice_shaded']):>6} "
            f"{f(r['recall_shaded']):>10}"
        )
    return "\n".join(lines)
