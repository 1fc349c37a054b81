"""Human in the loop on shaded FIB-SEM, measured: baselines, bright-only training, and one HITL loop per crop strategy.

Protocol (per seed; every score is on an *independent test volume* with full truth,
never on the volume the crops come from):

1. a training volume and a test volume are drawn with the same shading model
   (``curated sample fibsem``: smooth gain field falling along x, contrast lost
   toward a backlight level, z drift, lipid droplets and ER as dark distractors),
   different seeds;
2. threshold baselines on the test volume: Otsu, CLAHE + Otsu (skimage, kernel 1/4
   of the field, clip 0.02, as incasem uses CLAHE), flat-field division (σ 24) + Otsu;
   each smoothed (σ 1) first, dark side, components under 200 voxels removed;
3. **bright-only**: a curator annotates ``--crops`` crops holding mitochondria on the
   bright half of the training volume, one of them holding a quarter of its voxels
   of nucleus (``--cover-fraction``), so the network sees the dark chromatin under
   the envelope, what is dark but not a mitochondrion; a U-Net is trained with the
   library's defaults (``curated segment train``);
4. **human in the loop**, per crop strategy, ``--rounds`` rounds of one new crop each
   (same voxel budget for every strategy): the current model predicts the training
   volume, the strategy picks the next crop, the crop is annotated (copied from the
   truth: ``derived-from-truth``), the model is fine-tuned (``curated segment
   finetune``) and scored on the test volume. Strategies: ``suggested``
   (``curated annotate suggest``), ``random`` (anywhere), ``foreground-random``
   (random crops that hold mitochondria, what a curator does unaided), and ``oracle``
   (the crop of ``suggest``'s grid where the current model has the most wrong voxels
   against the training volume's truth: no curator can do this; it bounds what any
   error-pointing suggestion can gain under the same fine-tuning);
5. scores: Dice per x-quarter and per half, precision, recall, over the whole test
   volume; paired bootstrap 95 % CIs over test tiles (16×32×32) for every
   difference; the learning-curve AUC (mean Dice over rounds 0..R) per strategy.

Run::

    OMP_NUM_THREADS=2 python benchmarks/hitl.py --seeds 0 1 2 3 4 --scratch /tmp/hitl-bench
    python benchmarks/hitl.py --quick            # one seed, small: about 10 min on 2 cores

Every human round is fine-tuned as ``curated segment finetune`` does by default: the
average of ``--draws`` (the library's: 3) fine-tunings' weights. ``--replicates R`` runs that
R times per round with other random draws, and the rows and comparisons pool their tile
counts (a single fine-tuning of one crop is a lottery: the same crop took one seed's
whole-volume Dice to 0.50 with one draw and 0.79 with another); the last table then shows
each replicate on its own. ``--draws 1 --replicates 3`` is how RESULTS.md's pooled
single-draw figures were made.

One training per seed leaves training's own randomness out of the CIs (they resample test
tiles). Replicates train the same volumes and crops with other draws; merge them::

    python benchmarks/hitl.py --seeds 0 --train-seed 1 --scratch /tmp/hitl-s0-t1 ...
    python benchmarks/hitl.py --merge /tmp/hitl-s*-t*/hitl.json

To compare settings (a ``--train-options`` change, say) over seeds *and* training draws, name
each setting's files; each seed's difference is of its draws' means, the CI Student's t over
seeds::

    python benchmarks/hitl.py --compare default='/tmp/base-*/hitl.json' new='/tmp/new-*/hitl.json'

Prints tables and writes ``hitl.json`` in the scratch folder; RESULTS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TILE = (16, 32, 32)
TRAIN_SEED_STRIDE = 7919
"""``--train-seed k`` trains and fine-tunes with seed ``seed + k × this`` (same volumes and crops)."""
MITO = 1


# ----------------------------------------------------------------- scoring
BLOCK_TILES = 2
"""The paired bootstraps resample blocks of this many tiles a side (32 × 64 × 64 voxels), not
single tiles: neighbouring tiles are alike (a nucleus, a shaded corner), and on real ssTEM an
interval over single small tiles was 1.5-2.6× too narrow (RESULTS.md "The whole-volume interval
over spatial blocks"). Runs recorded before this (four columns per tile) resample single tiles."""


def tile_counts(pred: np.ndarray, truth: np.ndarray, tile=TILE) -> np.ndarray:
    """Per-tile (tp, fp, fn, x-quarter, bootstrap block) counts over the whole volume."""
    shape = truth.shape
    q = shape[2] / 4.0
    nb = [-(-n // (t * BLOCK_TILES)) for n, t in zip(shape, tile, strict=True)]
    rows = []
    for z in range(0, shape[0], tile[0]):
        for y in range(0, shape[1], tile[1]):
            for x in range(0, shape[2], tile[2]):
                cell = [v // (t * BLOCK_TILES) for v, t in zip((z, y, x), tile, strict=True)]
                sl = (slice(z, z + tile[0]), slice(y, y + tile[1]), slice(x, x + tile[2]))
                p, t = pred[sl], truth[sl]
                xc = min(x + tile[2] / 2.0, shape[2] - 1)
                rows.append(
                    (
                        int(np.count_nonzero(p & t)),
                        int(np.count_nonzero(p & ~t)),
                        int(np.count_nonzero(~p & t)),
                        min(int(xc // q), 3),
                        (cell[0] * nb[1] + cell[1]) * nb[2] + cell[2],
                    )
                )
    return np.asarray(rows, dtype=np.int64)


def blocks_of(c: np.ndarray) -> np.ndarray:
    """Each tile's bootstrap block (single tiles for runs recorded without one)."""
    return c[:, 4] if c.shape[1] > 4 else np.arange(len(c))


def _resampler(groups: np.ndarray):
    """``rng → tile indices`` of one block-bootstrap resample (every tile of each block drawn)."""
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inv.reshape(-1) == k) for k in range(int(inv.max()) + 1)]

    def draw(rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])

    return draw


def predicted_counts(
    model: Path, image: Path, name: str, truth: np.ndarray, device: str, precision: str = "auto"
) -> np.ndarray:
    """``model`` predicts ``image`` into label image ``name``; its tile counts against ``truth``."""
    from curated.segment import _store
    from curated.segment.predict import predict

    predict(model, image, name=name, device=device, precision=precision, overwrite=True)
    return tile_counts(np.asarray(_store.label_level0(image, name)[...]) == MITO, truth)


def pool_draws(counts: list[np.ndarray]) -> np.ndarray:
    """Tile counts of several fine-tuning draws summed (tp, fp, fn), the x-quarter kept.

    Dice of the pooled counts is the expected outcome of one fine-tuning over its draws:
    a single draw of one crop swung a seed's whole-volume Dice by up to 0.3 (RESULTS.md).
    """
    pooled = np.array(counts[0], dtype=np.int64, copy=True)
    for c in counts[1:]:
        if not np.array_equal(c[:, 3], pooled[:, 3]):
            raise ValueError("draws scored on different tiles")
        pooled[:, :3] += c[:, :3]
    return pooled


def dice_of(c: np.ndarray) -> float:
    tp, fp, fn = (float(c[..., i].sum()) for i in range(3))
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def summary(c: np.ndarray) -> dict[str, Any]:
    tp, fp, fn = (float(c[:, i].sum()) for i in range(3))
    quarters = [dice_of(c[c[:, 3] == k]) for k in range(4)]
    return {
        "dice": dice_of(c),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "bright": dice_of(c[c[:, 3] < 2]),
        "shaded": dice_of(c[c[:, 3] >= 2]),
        "quarters": quarters,
    }


def paired_bootstrap(per_seed, diff, n: int = 2000, seed: int = 0) -> tuple[float, list[float]]:
    """Mean over seeds of ``diff(payload, idx)``, with a 95 % CI from a block bootstrap within each seed.

    ``per_seed`` holds ``(blocks, payload)`` per seed, ``blocks`` the bootstrap block of each
    tile row (:func:`blocks_of`); ``idx`` is a resample of that seed's tile rows, whole blocks
    at a time (``None``: all tiles, for the point estimate).
    """
    rng = np.random.default_rng(seed)
    point = float(np.mean([diff(p, None) for _, p in per_seed]))
    draw = [_resampler(g) for g, _ in per_seed]
    draws = np.empty(n)
    for i in range(n):
        draws[i] = np.mean([diff(p, d(rng)) for d, (_, p) in zip(draw, per_seed, strict=True)])
    return point, [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]


def _rows(c: np.ndarray, idx) -> np.ndarray:
    return c if idx is None else c[idx]


def trial_bootstrap(values: list[float], n: int = 2000, seed: int = 3) -> list[float]:
    """95 % CI of the mean of per-trial values, resampling the trials."""
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=np.float64)
    means = [float(v[rng.integers(0, len(v), len(v))].mean()) for _ in range(n)]
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired_ci(
    a: list[np.ndarray], b: list[np.ndarray], select, n: int = 2000, seed: int = 0
) -> tuple[float, list[float]]:
    """Mean over seeds of Dice(b) − Dice(a) on ``select``ed tiles, with a tile bootstrap within each seed."""

    def diff(pair, idx):
        ra, rb = _rows(pair[0], idx), _rows(pair[1], idx)
        return dice_of(rb[select(rb)]) - dice_of(ra[select(ra)])

    return paired_bootstrap(
        [(blocks_of(aa), (aa, bb)) for aa, bb in zip(a, b, strict=True)], diff, n, seed
    )


# --------------------------------------------------------------- baselines
def threshold_baselines(raw: np.ndarray) -> dict[str, np.ndarray]:
    from scipy import ndimage
    from skimage.exposure import equalize_adapthist
    from skimage.filters import threshold_otsu

    def dark_objects(img: np.ndarray) -> np.ndarray:
        sm = ndimage.gaussian_filter(img.astype(np.float32), 1.0)
        mask = sm < threshold_otsu(sm)
        lab, n = ndimage.label(mask)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        keep = sizes >= 200
        keep[0] = False
        return keep[lab]

    f = raw.astype(np.float32)
    kernel = (max(raw.shape[0] // 4, 1), max(raw.shape[1] // 4, 8), max(raw.shape[2] // 4, 8))
    clahe = equalize_adapthist(f / 255.0, kernel_size=kernel, clip_limit=0.02)
    flat = f / np.maximum(ndimage.gaussian_filter(f, (0, 24, 24)), 1e-3)
    return {
        "Otsu": dark_objects(f),
        "CLAHE + Otsu": dark_objects(clahe),
        "flat-field + Otsu": dark_objects(flat),
    }


# ---------------------------------------------------------------- crops
def random_crop(shape, size, avoid, rng, truth=None, min_fraction=0.0):
    from curated.segment.evaluate import Box

    for _ in range(5000):
        off = tuple(int(rng.integers(0, s - c + 1)) for s, c in zip(shape, size, strict=True))
        box = Box(off, tuple(size))
        if any(box.intersects(a) for a in avoid):
            continue
        if truth is not None and float(np.mean(truth[box.slices] == MITO)) < min_fraction:
            continue
        return box
    raise RuntimeError("no crop fits")


def bright_boxes(
    truth_train: np.ndarray, seed: int, crops: int, size, cover_fraction: float
) -> list:
    """The bright-only round's crops: on the bright half, holding mitochondria, one at the nucleus."""
    from curated.segment.hitl import pick_crops

    return pick_crops(
        truth_train,
        n=crops,
        size=tuple(size),
        x_range=(0, truth_train.shape[2] // 2),
        avoid=[],
        seed=seed + 7,
        cover=(2,),
        cover_fraction=cover_fraction,
    )


def suggested_crops(
    image: Path, model: Path, pred: str, labels: str, size, device: str, n: int = 1
) -> list:
    """The top ``n`` crops of ``curated annotate suggest`` (a curator annotates them all)."""
    from curated.segment.evaluate import Box
    from curated.segment.suggest import suggest_crops

    res = suggest_crops(
        image,
        model=model,
        pred=pred,
        n=n,
        crop_size=tuple(size),
        labels=labels,
        name=f"suggestions-{labels}",
        device=device,
    )
    return [Box(tuple(c["offset"]), tuple(c["shape"])) for c in res.details["crops"]]


def oracle_crops(pred: np.ndarray, truth: np.ndarray, size, avoid: list, n: int = 1) -> list:
    """The ``n`` crops of ``annotate suggest``'s candidate grid with the most wrong voxels.

    ``pred`` is the current model's label image of the training volume, ``truth`` its full
    truth: only a benchmark can do this (the upper bound of an error-pointing suggestion).
    """
    from curated.segment.evaluate import Box
    from curated.segment.suggest import candidate_offsets

    wrong = (pred == MITO) != (truth == MITO)
    picked: list = []
    scored = []
    for off in candidate_offsets(truth.shape, tuple(size)):
        box = Box(tuple(int(o) for o in off), tuple(size))
        if not any(box.intersects(b) for b in avoid):
            scored.append((int(wrong[box.slices].sum()), box))
    for _, box in sorted(scored, key=lambda t: -t[0]):
        if len(picked) == n:
            break
        if not any(box.intersects(b) for b in picked):
            picked.append(box)
    return picked


# ------------------------------------------------------------------ trial
def run_trial(root: Path, seed: int, a: argparse.Namespace, log=print) -> dict[str, Any]:
    from curated.segment import _store
    from curated.segment.annotate import import_annotation

    # draw d of a fine-tuning: its seed + d × this (finetune(draws=...)); replicates step past them
    from curated.segment.average import DRAW_SEED_STRIDE
    from curated.segment.evaluate import Box
    from curated.segment.predict import predict
    from curated.segment.sample import make_fibsem_sample
    from curated.segment.train import finetune, train

    root.mkdir(parents=True, exist_ok=True)
    shape = tuple(a.shape)
    train_img, test_img = root / "train.ome.zarr", root / "test.ome.zarr"
    make_fibsem_sample(train_img, shape=shape, shading=a.shading, seed=seed, overwrite=True)
    make_fibsem_sample(test_img, shape=shape, shading=a.shading, seed=seed + 1000, overwrite=True)
    truth_train = np.asarray(_store.label_level0(train_img, "truth")[...])
    truth_test = np.asarray(_store.label_level0(test_img, "truth")[...]) == MITO
    raw_test = np.asarray(_store.image_level0(test_img)[...])
    out: dict[str, Any] = {
        "seed": seed,
        "train_seed": a.train_seed,
        "precision": a.precision,
        "baselines": {},
        "timing_s": {},
    }

    for name, mask in threshold_baselines(raw_test).items():
        out["baselines"][name] = tile_counts(mask, truth_test)
    scratch = root / "crops"
    scratch.mkdir(exist_ok=True)
    size = tuple(a.crop_size)
    # the human round's crops: the issue allows <= 3 % of the voxels per round
    round_size = tuple(a.round_crop_size or a.crop_size)

    def annotate(label_name: str, boxes: list[Box]) -> None:
        for i, box in enumerate(boxes):
            f = scratch / f"{label_name}-{i}-{'-'.join(map(str, box.offset))}.npy"
            np.save(f, truth_train[box.slices].astype(np.uint8))
            import_annotation(train_img, source_file=f, offset=box.offset, name=label_name)

    def score(model: Path, tag: str) -> np.ndarray:
        t0 = time.perf_counter()
        counts = predicted_counts(model, test_img, f"p-{tag}", truth_test, a.device, a.precision)
        out["timing_s"][f"predict {tag}"] = round(time.perf_counter() - t0, 1)
        return counts

    # round 0: bright half only
    # crops that hold mitochondria; one of them also holds the nucleus, which the
    # network must learn is not a mitochondrion (a curator shows both)
    bright = bright_boxes(truth_train, seed, a.crops, size, a.cover_fraction)
    annotate("bright", bright)
    model0 = root / "bright"
    earlier = _earlier_trial(root, seed) if a.reuse_bright else None
    if earlier is not None and earlier.get("train_seed", 0) != a.train_seed:
        earlier = None  # that model was trained with other draws: train this replicate's own
    if earlier is not None and (model0 / "model.json").is_file():
        # the bright-only model of an earlier run of this benchmark in this scratch folder
        # (its training is deterministic; only the human rounds are run again)
        for k in ("train bright", "train bright (CPU)"):
            out["timing_s"][k] = earlier["timing_s"][k]
        log(f"seed {seed}: reusing {model0}")
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        train(
            train_img,
            labels="bright",
            label_value=MITO,
            out=model0,
            iterations=a.iterations,
            device=a.device,
            precision=a.precision,
            seed=seed + TRAIN_SEED_STRIDE * a.train_seed,
            overwrite=True,
            **({"norm": a.norm} if a.norm else {}),
            **({"depth": a.depth} if a.depth else {}),
            **_train_options(a),
        )
        out["timing_s"]["train bright"] = round(time.perf_counter() - t0, 1)
        out["timing_s"]["train bright (CPU)"] = round(time.process_time() - c0, 1)
    out["bright"] = score(model0, "bright")
    frac0 = sum(int(np.prod(b.shape)) for b in bright) / float(np.prod(shape))
    out["annotated_fraction"] = {"bright": frac0}
    log(f"seed {seed}: bright-only {summary(out['bright'])['quarters']}")

    def _finetune_once(parent: Path, labels: str, child: Path, draw_seed: int) -> None:
        finetune(
            parent,
            train_img,
            labels=labels,
            out=child,
            iterations=a.finetune_iterations,
            device=a.device,
            precision=a.precision,
            seed=draw_seed,
            draws=a.draws,
            overwrite=True,
            **({"learning_rate": a.finetune_lr} if a.finetune_lr else {}),
            **(
                {"class_balance_warmup": a.finetune_warmup} if a.finetune_warmup is not None else {}
            ),
            **(
                {"new_crop_fraction": a.new_crop_fraction}
                if a.new_crop_fraction is not None
                else {}
            ),
            **(json.loads(a.finetune_options) if a.finetune_options else {}),
        )

    out["strategies"] = {}
    for strategy in a.strategies:
        rng = np.random.default_rng(seed * 1000 + 17)
        name = f"hitl-{strategy}"
        annotate(name, bright)
        model, boxes, curve, draws = model0, list(bright), [out["bright"]], [[out["bright"]]]
        for r in range(1, a.rounds + 1):
            if strategy in ("suggested", "oracle"):
                predict(
                    model,
                    train_img,
                    name=f"t-{name}",
                    device=a.device,
                    precision=a.precision,
                    overwrite=True,
                )
                if strategy == "oracle":
                    pred = np.asarray(_store.label_level0(train_img, f"t-{name}")[...])
                    new = oracle_crops(pred, truth_train, round_size, boxes, a.round_crops)
                else:
                    new = suggested_crops(
                        train_img, model, f"t-{name}", name, round_size, a.device, a.round_crops
                    )
                for box in new:
                    if any(box.intersects(b) for b in boxes):
                        raise RuntimeError(f"suggestion {box} overlaps an annotated crop")
            else:
                # foreground-random: only crops holding some of the structure
                holds = {} if strategy == "random" else {"truth": truth_train, "min_fraction": 0.02}
                new = []
                for _ in range(a.round_crops):
                    new.append(random_crop(shape, round_size, boxes + new, rng, **holds))
            annotate(name, new)
            boxes.extend(new)
            children, counts = [], []
            for d in range(a.replicates):
                child = root / (f"{name}-r{r}" + (f"-d{d}" if d else ""))
                t0 = time.perf_counter()
                _finetune_once(
                    model,
                    name,
                    child,
                    seed + r + TRAIN_SEED_STRIDE * a.train_seed + DRAW_SEED_STRIDE * a.draws * d,
                )
                out["timing_s"][f"finetune {name} r{r}" + (f" d{d}" if d else "")] = round(
                    time.perf_counter() - t0, 1
                )
                children.append(child)
                counts.append(score(child, f"{name}-r{r}" + (f"-d{d}" if d else "")))
            curve.append(pool_draws(counts))
            draws.append(counts)
            model = children[0]
            log(
                f"seed {seed}: {strategy} round {r} crops {[b.offset for b in new]}: {summary(curve[-1])['quarters']}"
                + (
                    f" (per draw {' '.join(f'{dice_of(c):.3f}' for c in counts)})"
                    if len(counts) > 1
                    else ""
                )
            )
        added = sum(int(np.prod(b.shape)) for b in boxes[len(bright) :]) / float(np.prod(shape))
        out["strategies"][strategy] = {
            "curve": curve,
            "draws": draws,
            "added_fraction": added,
            "crops": [b.to_dict() for b in boxes[len(bright) :]],
        }
    return out


def _earlier_trial(root: Path, seed: int) -> dict[str, Any] | None:
    """This seed's trial in the ``hitl.json`` an earlier run left in the scratch folder."""
    f = root.parent / "hitl.json"
    if not f.is_file():
        return None
    for t in json.loads(f.read_text()).get("trials", []):
        if t.get("seed") == seed:
            return t
    return None


# ------------------------------------------------------------------ report
def report(trials: list[dict[str, Any]], a: argparse.Namespace) -> dict[str, Any]:
    seeds = [t["seed"] for t in trials]
    replicas = [t.get("train_seed", 0) for t in trials]
    rows = []

    def row(name: str, counts: list[np.ndarray]) -> dict[str, Any]:
        s = [summary(c) for c in counts]
        mean = {k: float(np.mean([x[k] for x in s])) for k in ("dice", "bright", "shaded")}
        mean["precision"] = float(np.mean([x["precision"] or 0 for x in s]))
        mean["recall"] = float(np.mean([x["recall"] or 0 for x in s]))
        mean["quarters"] = [float(np.mean([x["quarters"][k] for x in s])) for k in range(4)]
        return {"name": name, **mean}

    for name in trials[0]["baselines"]:
        rows.append(row(name, [t["baselines"][name] for t in trials]))
    rows.append(row("U-Net, bright-half crops only", [t["bright"] for t in trials]))
    for strategy in a.strategies:
        rows.append(
            row(
                f"+ {a.rounds * a.round_crops} {strategy} crop(s), fine-tuned",
                [t["strategies"][strategy]["curve"][-1] for t in trials],
            )
        )
    what = f"seeds {seeds}"
    if any(replicas):
        what = "trials (seed, train seed) " + str(list(zip(seeds, replicas, strict=True)))
    print(
        f"\n{what}; test volumes {tuple(a.shape)} at 8 nm, shading {a.shading}; whole-volume scores (mean over trials)"
    )
    head = f"{'method':<44} {'Dice':>6} {'prec.':>6} {'recall':>6} {'bright':>6} {'shaded':>6}   x-quarters"
    print(head)
    print("-" * (len(head) + 20))
    for r in rows:
        q = " ".join(f"{v:.3f}" for v in r["quarters"])
        print(
            f"{r['name']:<44} {r['dice']:>6.3f} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['bright']:>6.3f} {r['shaded']:>6.3f}   {q}"
        )

    comp: dict[str, Any] = {}
    b0 = [t["bright"] for t in trials]
    ratio = [summary(c)["shaded"] / max(summary(c)["bright"], 1e-9) for c in b0]
    comp["shaded_over_bright"] = {"mean": float(np.mean(ratio)), "per_seed": ratio}
    # the U-Net against the best threshold baseline *of each half* (mean over seeds), for
    # the bright-only model and for every strategy's model after its last human round
    n_base = len(trials[0]["baselines"])
    unets = [("bright-only U-Net", b0)] + [
        (f"{s} (round {a.rounds})", [t["strategies"][s]["curve"][-1] for t in trials])
        for s in a.strategies
    ]
    for half in ("bright", "shaded"):
        sel = (lambda c: c[:, 3] < 2) if half == "bright" else (lambda c: c[:, 3] >= 2)
        best_base = max(rows[:n_base], key=lambda r: r[half])
        base = [t["baselines"][best_base["name"]] for t in trials]
        for label, counts in unets:
            d, ci = paired_ci(base, counts, sel)
            comp[f"{label} − {best_base['name']}, {half} half"] = {"diff": d, "ci95": ci}
    # worst quarter of the bright-only model, per seed
    worst = [int(np.argmin(summary(c)["quarters"])) for c in b0]
    for strategy in a.strategies:
        last = [t["strategies"][strategy]["curve"][-1] for t in trials]

        # the worst quarter differs per seed: bootstrap each seed's tiles on its own quarter
        def lift(p, idx):
            aa, bb, q = p
            ra, rb = _rows(aa, idx), _rows(bb, idx)
            return dice_of(rb[rb[:, 3] == q]) - dice_of(ra[ra[:, 3] == q])

        per_seed = [
            (blocks_of(aa), (aa, bb, worst[k]))
            for k, (aa, bb) in enumerate(zip(b0, last, strict=True))
        ]
        point, ci = paired_bootstrap(per_seed, lift, seed=1)
        comp[f"{strategy}: worst-quarter lift"] = {"diff": point, "ci95": ci}
        d, ci = paired_ci(b0, last, lambda c: c[:, 3] < 2)
        comp[f"{strategy}: bright-half change"] = {"diff": d, "ci95": ci}
        aucs = [
            float(np.mean([dice_of(c) for c in t["strategies"][strategy]["curve"]])) for t in trials
        ]
        comp[f"{strategy}: learning-curve AUC"] = {"mean": float(np.mean(aucs)), "per_seed": aucs}
    # suggested against every other strategy; the oracle (the most wrong voxels) against random
    pairs = [
        ("suggested", s) for s in a.strategies if s != "suggested" and "suggested" in a.strategies
    ]
    pairs += [("oracle", s) for s in ("random",) if {"oracle", s} <= set(a.strategies)]
    for lead, other in pairs:

        def auc_gap(p, idx):
            cs, co = p
            return np.mean([dice_of(_rows(c, idx)) for c in cs]) - np.mean(
                [dice_of(_rows(c, idx)) for c in co]
            )

        per_seed = [
            (
                blocks_of(t["strategies"][lead]["curve"][0]),
                (t["strategies"][lead]["curve"], t["strategies"][other]["curve"]),
            )
            for t in trials
        ]
        pt, ci = paired_bootstrap(per_seed, auc_gap, seed=2)
        comp[f"AUC {lead} − {other}"] = {"diff": pt, "ci95": ci}
        # the tile bootstrap holds each trial's crops and trainings fixed; resampling the
        # trials themselves includes which crop was drawn and how training went
        gaps = [auc_gap(payload, None) for _, payload in per_seed]
        comp[f"AUC {lead} − {other}, over trials"] = {
            "diff": float(np.mean(gaps)),
            "ci95": trial_bootstrap(gaps),
            "per_seed": gaps,
        }
    added = {
        s: float(np.mean([t["strategies"][s]["added_fraction"] for t in trials]))
        for s in a.strategies
    }
    print(
        "\nvoxels annotated: bright crops "
        f"{100 * np.mean([t['annotated_fraction']['bright'] for t in trials]):.2f} %; "
        + "; ".join(f"{s} adds {100 * v:.2f} % in {a.rounds} round(s)" for s, v in added.items())
    )
    print(
        "\npaired comparisons (mean over seeds; 95 % CI: bootstrap over test tiles within each "
        "seed, or over the trials where it says so)"
    )
    for k, v in comp.items():
        if "ci95" in v:
            print(f"  {k:<56} {v['diff']:+.3f}  [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}]")
        else:
            per = " ".join(f"{x:.3f}" for x in v["per_seed"])
            print(f"  {k:<56} {v['mean']:.3f}  (per seed: {per})")
    # which strategies drew the very same crops (on a dense sample the first random crop
    # usually holds the structure, so "random" and "foreground-random" coincide)
    for i, sa in enumerate(a.strategies):
        for sb in a.strategies[i + 1 :]:
            same = [
                t["seed"]
                for t in trials
                if t["strategies"][sa]["crops"] == t["strategies"][sb]["crops"]
            ]
            if same:
                print(f"  {sa} and {sb} drew the same crops on seeds {same}")
    if len(set(zip(seeds, replicas, strict=True))) > len(set(seeds)):
        print("\ntraining's own spread (same volumes, crops and test tiles; other training draws):")
        for seed in sorted(set(seeds)):
            group = [t for t in trials if t["seed"] == seed]
            if len(group) < 2:
                continue
            parts = ["bright-only " + " ".join(f"{dice_of(t['bright']):.3f}" for t in group)]
            for st in a.strategies:
                after = [dice_of(t["strategies"][st]["curve"][-1]) for t in group]
                parts.append(f"+ {st} " + " ".join(f"{x:.3f}" for x in after))
            reps = [t.get("train_seed", 0) for t in group]
            print(f"  seed {seed} (train seeds {reps}): " + "; ".join(parts))
    per_trial(trials, a.strategies)
    spread = draw_spread(trials, a.strategies)
    times = [t["timing_s"]["train bright"] for t in trials]
    cpu = [t["timing_s"]["train bright (CPU)"] for t in trials]
    ft = [v for t in trials for k, v in t["timing_s"].items() if k.startswith("finetune")]
    ft_text = f"{np.mean(ft):.0f} s wall mean" if ft else "none"
    print(
        f"\ntraining round: {np.mean(times):.0f} s wall ({np.mean(cpu):.0f} s CPU) mean; fine-tune round {ft_text}; load {os.getloadavg()[0]:.1f}"
    )
    return {
        "rows": rows,
        "comparisons": comp,
        "draw_spread": spread,
        "train_seconds": times,
        "finetune_seconds": ft,
    }


def per_trial(trials: list[dict[str, Any]], strategies: list[str]) -> None:
    """Whole / bright / shaded Dice of each trial after each strategy's last round, and the crops added."""
    print("\nper trial, whole / bright / shaded Dice (the crops the rounds added in brackets):")
    for t in trials:
        parts = [f"bright-only {_wbs(t['bright'])}"]
        for st in strategies:
            info = t["strategies"][st]
            offsets = ", ".join(str(tuple(c["offset"])) for c in info["crops"])
            parts.append(f"{st} {_wbs(info['curve'][-1])} [{offsets}]")
        print(f"  seed {t['seed']} (train seed {t.get('train_seed', 0)}): " + "; ".join(parts))


def _wbs(c: np.ndarray) -> str:
    m = summary(np.asarray(c))
    return f"{m['dice']:.3f} / {m['bright']:.3f} / {m['shaded']:.3f}"


def draw_spread(trials: list[dict[str, Any]], strategies: list[str]) -> dict[str, Any]:
    """Each fine-tuning replicate on its own: per trial the last round's Dice per replicate, and
    the suggested-vs-other AUC gap computed from replicate ``d`` of both strategies alone (the
    JSON keeps the name ``draws`` for them, as runs before ``--replicates`` wrote it)."""
    k = min(len(t["strategies"][s]["draws"][-1]) for t in trials for s in strategies)
    if k < 2:
        return {}
    print("\nfine-tuning's own spread (same crops, other replicates; the rows above pool them):")
    per_trial = []
    for t in trials:
        last = {s: [dice_of(c) for c in t["strategies"][s]["draws"][-1]] for s in strategies}
        per_trial.append({"seed": t["seed"], "train_seed": t.get("train_seed", 0), "last": last})
        parts = "; ".join(f"{s} " + " ".join(f"{x:.3f}" for x in v) for s, v in last.items())
        print(f"  seed {t['seed']} (train seed {t.get('train_seed', 0)}): {parts}")
    gaps: dict[str, list[float]] = {}
    if "suggested" in strategies:
        for other in (s for s in strategies if s != "suggested"):

            def auc(t: dict[str, Any], s: str, d: int) -> float:
                rounds = t["strategies"][s]["draws"]
                return float(np.mean([dice_of(r[0] if len(r) == 1 else r[d]) for r in rounds]))

            gaps[other] = [
                float(np.mean([auc(t, "suggested", d) - auc(t, other, d) for t in trials]))
                for d in range(k)
            ]
            print(
                f"  AUC suggested − {other}, each replicate alone: "
                + " ".join(f"{g:+.3f}" for g in gaps[other])
            )
    return {"per_trial": per_trial, "auc_gap_per_draw": gaps}


def trial_metrics(t: dict[str, Any]) -> dict[str, float]:
    """One trial's figures: the bright-only model's whole / bright / shaded Dice and, per
    strategy, the last round's whole Dice and its lift of the bright-only worst x-quarter."""
    b = summary(np.asarray(t["bright"]))
    out = {"bright-only whole": b["dice"], "bright half": b["bright"], "shaded half": b["shaded"]}
    q = int(np.argmin(b["quarters"]))
    for st, info in t.get("strategies", {}).items():
        if not info.get("curve") or len(info["curve"]) < 2:
            continue  # no human round in this run
        last = summary(np.asarray(info["curve"][-1]))
        out[f"+ {st}: whole"] = last["dice"]
        out[f"+ {st}: worst-quarter lift"] = last["quarters"][q] - b["quarters"][q]
    return out


def load_setting(pattern: str) -> dict[tuple[int, int], dict[str, float]]:
    """Every trial of the ``hitl.json`` files ``pattern`` matches: (seed, train seed) → metrics."""
    import glob

    runs: dict[tuple[int, int], dict[str, float]] = {}
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"--compare: nothing matches {pattern!r}")
    for f in files:
        for t in json.loads(Path(f).read_text())["trials"]:
            key = (int(t["seed"]), int(t.get("train_seed", 0)))
            if key in runs:
                raise SystemExit(
                    f"--compare: seed {key[0]} train seed {key[1]} twice in {pattern!r}"
                )
            runs[key] = trial_metrics(t)
    return runs


def compare_settings(settings: dict[str, dict[tuple[int, int], dict[str, float]]]) -> dict:
    """Each setting against the first, over seeds *and* training draws.

    Per seed, each setting's runs (one per training draw) are averaged and the difference of
    the averages is one observation; the interval is Student's t over the seeds both settings
    ran. A seed's difference then carries its draws' spread, which the tile bootstraps of
    ``report`` leave out (one draw of the default moved a seed's bright half by 0.05-0.10,
    RESULTS.md). The pooled draw-to-draw SD of one run is printed beside it: from the seeds
    a setting ran with two or more draws.
    """
    from scipy import stats

    names = list(settings)
    base = settings[names[0]]
    metrics = [m for m in next(iter(base.values())) if all(
        m in r for runs in settings.values() for r in runs.values())]  # fmt: skip

    def per_seed(runs: dict[tuple[int, int], dict[str, float]], m: str) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for (seed, _), r in sorted(runs.items()):
            out.setdefault(seed, []).append(r[m])
        return out

    result: dict[str, Any] = {"settings": {}, "metrics": metrics}
    for name in names:
        runs = settings[name]
        row: dict[str, Any] = {"runs": len(runs), "seeds": sorted({s for s, _ in runs})}
        for m in metrics:
            groups = per_seed(runs, m)
            row[m] = {"mean": float(np.mean([v for g in groups.values() for v in g]))}
            within = [(len(g) - 1, float(np.var(g, ddof=1))) for g in groups.values() if len(g) > 1]
            if within:
                dof = sum(d for d, _ in within)
                row[m]["draw_sd"] = float(np.sqrt(sum(d * v for d, v in within) / dof))
                row[m]["draw_df"] = dof
            if name != names[0]:
                ref = per_seed(base, m)
                common = sorted(set(groups) & set(ref))
                d = np.array([np.mean(groups[s]) - np.mean(ref[s]) for s in common])
                entry: dict[str, Any] = {"diff": float(d.mean()) if len(d) else float("nan")}
                entry["seeds"] = len(d)
                entry["higher"] = int((d > 0).sum())
                if len(d) >= 2:
                    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
                    entry["ci95"] = [entry["diff"] - half, entry["diff"] + half]
                row[m]["vs_first"] = entry
        result["settings"][name] = row
    return result


def print_comparison(result: dict) -> None:
    names = list(result["settings"])
    print(f"settings against {names[0]!r}: per seed the mean over its training draws, then "
          "the mean over seeds; 95 % CI Student's t over seeds (each seed's difference holds its "
          "draws' spread)")  # fmt: skip
    for name, row in result["settings"].items():
        print(f"\n{name}: {row['runs']} runs on seeds {row['seeds']}")
        for m in result["metrics"]:
            v = row[m]
            text = f"  {m:<36} {v['mean']:.3f}"
            if "draw_sd" in v:
                text += f"  (one run's draw-to-draw SD {v['draw_sd']:.3f}, {v['draw_df']} df)"
            c = v.get("vs_first")
            if c is not None:
                ci = c.get("ci95")
                ci_text = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "(one seed: no interval)"
                text += f"   vs {names[0]}: {c['diff']:+.3f} {ci_text}, higher on {c['higher']} of {c['seeds']} seeds"
            print(text)


def _train_options(a: argparse.Namespace) -> dict:
    """The ``--train-options`` JSON as keyword arguments of ``train`` (lists as tuples)."""
    if not getattr(a, "train_options", None):
        return {}
    opts = json.loads(a.train_options)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--train-seed",
        type=int,
        default=0,
        help="replicate k: the same volumes, crops and test tiles, trained and fine-tuned with "
        "other random draws (merge runs with several k to see training's own spread)",
    )
    p.add_argument("--shape", type=int, nargs=3, default=[40, 160, 256])
    p.add_argument("--shading", type=float, default=0.6)
    p.add_argument("--crops", type=int, default=3)
    p.add_argument("--crop-size", type=int, nargs=3, default=[24, 48, 48])
    p.add_argument(
        "--round-crop-size",
        type=int,
        nargs=3,
        default=[20, 48, 48],
        help="crop of each human round (z y x); 20x48x48 is 2.8 %% of the default volume",
    )
    p.add_argument(
        "--round-crops",
        type=int,
        default=1,
        help="crops annotated per human round (the issue allows up to 3 within 3 %% of the voxels)",
    )
    p.add_argument(
        "--cover-fraction",
        type=float,
        default=0.25,
        help="share of the nucleus the bright crop at the nucleus holds (0.02: its envelope only)",
    )
    p.add_argument("--iterations", type=int, default=None, help="[default: the library's]")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--norm", default=None, help="U-Net normalisation [default: the library's]")
    p.add_argument("--depth", type=int, default=None, help="U-Net depth [default: the library's]")
    p.add_argument(
        "--train-options",
        default=None,
        metavar="JSON",
        help="more arguments of the bright-only training, e.g. '{\"patch\": [24, 48, 48]}' "
        "(lists become tuples; fine-tuning keeps the parent's network)",
    )
    p.add_argument(
        "--finetune-options",
        default=None,
        metavar="JSON",
        help="more arguments of every fine-tuning, e.g. '{\"validation\": true}' (hold out one "
        "of the parent's crops, as fine-tuning did before this release)",
    )
    p.add_argument("--finetune-iterations", type=int, default=None, help="[default: the library's]")
    p.add_argument(
        "--draws",
        type=int,
        default=None,
        help="fine-tunings averaged into each round's model [default: the library's]",
    )
    p.add_argument(
        "--replicates",
        type=int,
        default=1,
        help="fine-tune every human round this many times with other random draws and pool "
        "their scores (one draw of one crop swung a seed by up to 0.3 Dice); the next round "
        "continues from replicate 0",
    )
    p.add_argument("--finetune-lr", type=float, default=None, help="[default: the library's]")
    p.add_argument("--finetune-warmup", type=float, default=None, help="[default: the library's]")
    p.add_argument(
        "--new-crop-fraction",
        type=float,
        default=None,
        help="share of fine-tuning patches from the new crops [default: the library's]",
    )
    p.add_argument("--strategies", nargs="+", default=["suggested", "random", "foreground-random"])
    p.add_argument(
        "--reuse-bright",
        action="store_true",
        help="keep the bright-only model an earlier run left in --scratch; run the human rounds again",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--precision", default="auto", help="auto | fp32 | bf16 (training and prediction)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scratch", default=None)
    p.add_argument("--quick", action="store_true", help="one seed, fewer rounds")
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="only report: pool the trials of earlier runs' hitl.json files (seeds run in parallel)",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="NAME=GLOB",
        help="only report: compare settings, each the hitl.json files GLOB matches (any seeds "
        "and --train-seed draws), against the first, over seeds and training draws",
    )
    a = p.parse_args(argv)
    if a.compare:
        settings = {}
        for spec in a.compare:
            name, sep, pattern = spec.partition("=")
            if not sep or not name or not pattern:
                raise SystemExit(f"--compare wants NAME=GLOB, not {spec!r}")
            settings[name] = load_setting(pattern)
        print_comparison(compare_settings(settings))
        return 0
    if a.merge:
        trials, strategies = [], []
        for f in a.merge:
            doc = json.loads(Path(f).read_text())
            for t in doc["trials"]:
                for k in ("bright",):
                    t[k] = np.asarray(t[k])
                t["baselines"] = {n: np.asarray(v) for n, v in t["baselines"].items()}
                for st in t["strategies"].values():
                    st["curve"] = [np.asarray(c) for c in st["curve"]]
                    # runs from before replicates fine-tuned each round once
                    st["draws"] = [
                        [np.asarray(c) for c in d]
                        for d in st.get("draws", [[c] for c in st["curve"]])
                    ]
                same = [
                    u
                    for u in trials
                    if (u["seed"], u.get("train_seed", 0)) == (t["seed"], t.get("train_seed", 0))
                ]
                if same:
                    # another run of this trial (--reuse-bright) with other strategies: join them
                    if not np.array_equal(same[0]["bright"], t["bright"]):
                        raise SystemExit(f"{f}: seed {t['seed']}'s bright-only model differs")
                    same[0]["strategies"].update(t["strategies"])
                else:
                    trials.append(t)
            settings = doc["report"]["settings"]
            strategies += [s for s in settings["strategies"] if s not in strategies]
        for k in ("shape", "shading", "rounds"):
            setattr(a, k, settings[k])
        a.strategies = strategies
        missing = [(t["seed"], s) for t in trials for s in strategies if s not in t["strategies"]]
        if missing:
            raise SystemExit(f"trials without a strategy (seed, strategy): {missing}")
        a.round_crops = settings.get("round_crops", 1)  # runs before --round-crops had one
        report(trials, a)
        return 0
    if a.quick:
        a.seeds, a.rounds = a.seeds[:1], min(a.rounds, 2)
    if a.iterations is None:
        from curated.segment.defaults import DEFAULT_ITERATIONS

        a.iterations = DEFAULT_ITERATIONS
    if a.draws is None:
        from curated.segment.defaults import DEFAULT_FINETUNE_DRAWS

        a.draws = DEFAULT_FINETUNE_DRAWS
    if a.finetune_iterations is None:
        from curated.segment.defaults import DEFAULT_FINETUNE_ITERATIONS

        a.finetune_iterations = DEFAULT_FINETUNE_ITERATIONS
    import torch

    torch.set_num_threads(a.threads)
    try:
        import curated.segment.suggest  # noqa: F401
    except ImportError:
        a.strategies = [s for s in a.strategies if s != "suggested"]
        print(
            "curated.segment.suggest is not available: the suggested strategy is skipped",
            file=sys.stderr,
        )
    scratch = Path(a.scratch or tempfile.mkdtemp(prefix="curated-hitl-"))
    scratch.mkdir(parents=True, exist_ok=True)
    trials = []
    t0 = time.perf_counter()
    for seed in a.seeds:
        trials.append(
            run_trial(scratch / f"seed{seed}", seed, a, log=lambda m: print(m, flush=True))
        )
    res = report(trials, a)
    res["seconds"] = round(time.perf_counter() - t0)
    res["settings"] = {k: v for k, v in vars(a).items()}

    def plain(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    (scratch / "hitl.json").write_text(
        json.dumps({"report": res, "trials": trials}, default=plain, indent=1)
    )
    print(f"\n{res['seconds']} s in all; {scratch / 'hitl.json'}")
    if not a.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
