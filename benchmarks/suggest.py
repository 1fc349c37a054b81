"""Does ``curated annotate suggest`` point where the model is wrong? Spearman of each score with tile error.

For each seed:

1. a synthetic FIB-SEM sample with shading (brightness falls along x), so a model
   trained on the bright half fails on the shaded half, as reported in issue 13;
2. ``--crops`` crops holding mitochondria annotated on the bright half (copied
   from the truth), a small model trained on them (mitochondria, label 1), and a
   blockwise prediction with probabilities (the public API throughout);
3. every candidate crop of ``--crop-size`` that does not overlap an annotated
   crop is scored by :func:`curated.segment.suggest.score_candidates`, and its
   error against the truth is measured: the fraction of wrong voxels and 1 − Dice
   (crops where truth and prediction are both empty have no Dice and are left
   out of that column);
4. printed: Spearman ρ of each component (anomaly, appearance, uncertainty,
   diversity = distance to the annotated crops) and of the combined score (the
   default weights, diversity as in the first greedy pick) with each error, over
   all candidates and within each x half (overall figures on a shaded sample are
   dominated by the bright/shaded split); and
   the mean error of the ``--n`` crops chosen by ``suggest`` next to the same
   number chosen at random (mean over 200 draws) and by entropy alone (the
   MONAI Label-style anchor), so the figures read as ratios.

Instead of steps 1-2, ``--image IMAGE --model M --pred P [--labels L --truth T]``
scores an existing image (its truth label image must exist).

Run::

    OMP_NUM_THREADS=2 python benchmarks/suggest.py --seeds 0 1 2

Prints one table per seed and a summary; copy them into benchmarks/RESULTS.md.
With ``--scratch DIR`` the samples, models and predictions are kept and reused
by the next run (only the scoring is repeated).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

COMPONENTS = ("anomaly", "appearance", "uncertainty", "diversity", "combined")


def _prepare(args: argparse.Namespace, seed: int, root: Path) -> tuple[Path, Path, str, str, str]:
    from curated.segment import annotate_from_truth, make_fibsem_sample, predict, train

    image = root / f"cell-{seed}.ome.zarr"
    model = root / f"model-{seed}"
    if (model / "model.json").is_file() and (image / "labels" / "pred-probability").is_dir():
        print(f"seed {seed}: reusing {image} and {model} from --scratch")
        return image, model, "pred", "annotations", "truth"
    shutil.rmtree(image, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    make_fibsem_sample(image, shape=tuple(args.shape), shading=args.shading, seed=seed)
    annotate_from_truth(
        image,
        crops=args.crops,
        size=args.annotation_size,
        seed=seed,
        region="x<0.5",
        require_label=1,
        min_fraction=0.05,
    )
    t0 = time.perf_counter()
    train(
        image,
        labels="annotations",
        label_value=1,
        out=root / f"model-{seed}",
        iterations=args.iterations,
        depth=args.depth,
        base_features=args.base_features,
        patch=args.patch,
        batch_size=2,
        seed=seed,
        device="cpu",
    )
    predict(root / f"model-{seed}", image, name="pred", probabilities=True, device="cpu")
    print(
        f"seed {seed}: sample, annotation, training and prediction took {time.perf_counter() - t0:.0f} s"
    )
    return image, root / f"model-{seed}", "pred", "annotations", "truth"


def _tile_errors(image: Path, truth: str, pred: str, offsets: np.ndarray, crop: tuple, value: int):
    from curated.segment import _store

    t_arr, p_arr = _store.label_level0(image, truth), _store.label_level0(image, pred)
    wrong, dice_err = [], []
    for off in offsets:
        box = tuple(slice(int(o), int(o) + c) for o, c in zip(off, crop, strict=True))
        t = np.asarray(t_arr[box]) == value
        p = np.asarray(p_arr[box]) == value
        wrong.append(float(np.mean(t != p)))
        denom = int(t.sum() + p.sum())
        dice_err.append(1.0 - 2.0 * float((t & p).sum()) / denom if denom else np.nan)
    return np.array(wrong), np.array(dice_err)


def _measure(
    args: argparse.Namespace, image: Path, model: Path, pred: str, labels: str, truth: str
) -> dict:
    from scipy.stats import spearmanr

    from curated.segment.modelio import load_model
    from curated.segment.suggest import SuggestionWeights, rank01, score_candidates, select_crops

    m = load_model(model)
    t0 = time.perf_counter()
    s = score_candidates(image, model=m, pred=pred, crop_size=tuple(args.crop_size), labels=labels)
    seconds = time.perf_counter() - t0
    e = s.eligible
    weights = SuggestionWeights.parse(args.weights) if args.weights else SuggestionWeights()
    w = weights.normalised()
    values = {
        "anomaly": s.anomaly[e],
        "appearance": s.appearance[e],
        "uncertainty": s.uncertainty[e],
        "diversity": s.distance_to_annotated()[e],
    }
    values["combined"] = sum(w[c] * rank01(values[c]) for c in values)
    wrong, dice_err = _tile_errors(image, truth, pred, s.offsets[e], s.shape, m.label_value)
    # within each x half too: overall figures on a shaded sample are dominated by the split
    centre_x = s.offsets[e][:, 2] + s.shape[2] / 2.0
    bright = centre_x < s.details["image_shape"][2] / 2.0
    rho = {}
    for c in COMPONENTS:
        ok = ~np.isnan(dice_err)
        rho[c] = (
            float(spearmanr(values[c], wrong).statistic),
            float(spearmanr(values[c][ok], dice_err[ok]).statistic),
            float(spearmanr(values[c][bright], wrong[bright]).statistic),
            float(spearmanr(values[c][~bright], wrong[~bright]).statistic),
        )
    # the n crops suggest picks, vs random and entropy-only picks of the same number
    picked = select_crops(s, args.n, weights)
    idx = {tuple(o): i for i, o in enumerate(s.offsets[e].tolist())}
    chosen = [idx[tuple(c["offset"])] for c in picked]
    entropy_only = select_crops(s, args.n, SuggestionWeights(0, 0, 1, 0))
    ent = [idx[tuple(c["offset"])] for c in entropy_only]
    rng = np.random.default_rng(0)
    random_mean = float(
        np.mean([wrong[rng.choice(len(wrong), args.n, replace=False)].mean() for _ in range(200)])
    )
    return {
        "rho": rho,
        "candidates": int(e.sum()),
        "seconds": seconds,
        "voxels": int(np.prod(s.details["image_shape"])),
        "suggested": float(wrong[chosen].mean()),
        "entropy_only": float(wrong[ent].mean()),
        "random": random_mean,
        "all": float(wrong.mean()),
        "uncertainty_source": s.uncertainty_source,
        "prior": s.prior,
        "weights": w,
    }


def _print(seed: object, r: dict) -> None:
    print(
        f"\nseed {seed}: {r['candidates']} candidate crops; prior foreground {r['prior']:.3f}; uncertainty from {r['uncertainty_source']}"
    )
    print("combined = " + " + ".join(f"{v:.2f}·rank({k})" for k, v in r["weights"].items()))
    _rho_table([r])
    print(
        f"mean error fraction of {args_n} crops: suggested {r['suggested']:.3f} | entropy only {r['entropy_only']:.3f} | "
        f"random {r['random']:.3f} | all candidates {r['all']:.3f}; scoring took {r['seconds']:.1f} s "
        f"({r['voxels'] / max(r['seconds'], 1e-9) / 1e6:.2f} Mvox/s)"
    )


args_n = 3
HEADS = ("rho(error)", "rho(1 - Dice)", "rho(error), bright half", "rho(error), shaded half")


def _rho_table(results: list[dict]) -> None:
    """Spearman rho per component (mean over ``results``; NaN where a column is constant)."""
    print(f"{'component':<12} " + " ".join(f"{h:>24}" for h in HEADS))
    for c in COMPONENTS:
        cols = [np.nanmean([r["rho"][c][k] for r in results]) for k in range(len(HEADS))]
        print(f"{c:<12} " + " ".join(f"{v:>24.3f}" for v in cols))


def main() -> int:
    global args_n
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shape", type=int, nargs=3, default=[48, 128, 128])
    p.add_argument("--shading", type=float, default=0.6)
    p.add_argument("--crops", type=int, default=3)
    p.add_argument("--annotation-size", type=int, default=24)
    p.add_argument("--crop-size", type=int, nargs=3, default=[16, 32, 32])
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--base-features", type=int, default=8)
    p.add_argument("--patch", type=int, default=None, help="[default: planned from the crops]")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--weights", default=None, help="e.g. anomaly=0.5,uncertainty=0.1 [default: suggest's]"
    )
    p.add_argument("--image", type=Path, help="score this image instead of making samples")
    p.add_argument("--model", type=Path)
    p.add_argument("--pred", default="pred")
    p.add_argument("--labels", default="annotations")
    p.add_argument("--truth", default="truth")
    p.add_argument("--scratch", type=Path, default=None)
    args = p.parse_args()
    args_n = args.n

    import torch

    torch.set_num_threads(args.threads)
    if args.image is not None:
        if args.model is None:
            p.error("--image needs --model")
        _print(
            args.image.name,
            _measure(args, args.image, args.model, args.pred, args.labels, args.truth),
        )
        return 0
    root = args.scratch or Path(tempfile.mkdtemp(prefix="suggest-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"shape {tuple(args.shape)}, shading {args.shading}, {args.crops} annotated crops of {args.annotation_size}³ "
        f"on the bright half, candidate crops {tuple(args.crop_size)}, {args.iterations} iterations, {args.threads} threads"
    )
    results = []
    try:
        for seed in args.seeds:
            r = _measure(args, *_prepare(args, seed, root))
            _print(seed, r)
            results.append(r)
    finally:
        if args.scratch is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nmean over {len(results)} seeds")
    _rho_table(results)
    for k in ("suggested", "entropy_only", "random", "all"):
        print(
            f"mean error fraction of the picked crops, {k:<13} {np.mean([r[k] for r in results]):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
