"""Real EM: train from a few crops of a public ssTEM stack with mitochondria truth, score everything outside the crops.

Data (not shipped: CC BY-NC-SA 3.0): the "Segmented anisotropic ssTEM dataset of neural
tissue" (Gerhard, Funke, Martel, Cardona, Fetter; figshare, doi:10.6084/m9.figshare.856713),
stack 1: 20 sections of 1024 × 1024 at 4.6 × 4.6 × ~50 nm of Drosophila larva ventral nerve
cord, with a binary mitochondria image per section. Get it with
``git clone https://github.com/unidesigner/groundtruth-drosophila-vnc`` and pass ``--stack
.../stack1``.

Protocol:

1. the raw sections are converted to OME-Zarr by ``curated convert`` (a folder of
   per-slice TIFFs, ``--voxel-size 50 4.6 4.6``); the truth is added as a label image;
2. ``--crops`` crops (full depth × ``--crop`` × ``--crop``) holding mitochondria are
   annotated from the truth at random positions (seeded), as a curator would;
3. a U-Net is trained with the library's defaults (anisotropy-aware: 1×3×3 kernels,
   yx pooling), predicted blockwise, and scored on **every voxel outside the crops
   grown by the network's context and pre-processing halo** (Dice, precision,
   recall, bootstrap 95 % CI over 128 × 128 column tiles);
4. anchor: a *tuned* threshold, the best global grey-level threshold (after Gaussian
   smoothing σ 2 px, dark side, small objects removed) chosen on the annotated crops
   and applied to the same voxels;
5. with ``--rounds R``, R human rounds per crop strategy: one more crop of the same size
   (``suggested``: the top pick of ``curated annotate suggest`` from the current model's
   prediction and probabilities; ``random``: a random crop holding mitochondria, chosen as
   the first crops were), annotated from the truth (``derived-from-truth``) and
   fine-tuned at the library's defaults (``--draws``). Every model of every strategy is
   scored on the same voxels: outside *all* crops of all strategies, grown as above, with
   paired bootstrap CIs over the same tiles for each difference.

Run::

    OMP_NUM_THREADS=2 python benchmarks/real_em.py --stack /path/to/stack1 --scratch /tmp/real-em
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

import numpy as np


def load_truth(stack: Path) -> np.ndarray:
    from PIL import Image

    files = sorted((stack / "mitochondria").glob("*.png"))
    if not files:
        raise SystemExit(f"no mitochondria/*.png under {stack}")
    return np.stack([np.asarray(Image.open(f)) > 127 for f in files]).astype(np.uint8)


def tile_counts(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, tile: int = 128
) -> np.ndarray:
    """(tp, fp, fn) per 128 × 128 column tile, counted where ``mask`` is set."""
    rows = []
    for y in range(0, truth.shape[1], tile):
        for x in range(0, truth.shape[2], tile):
            sl = (slice(None), slice(y, y + tile), slice(x, x + tile))
            p, t, m = pred[sl] & mask[sl], truth[sl] & mask[sl], mask[sl]
            if m.any():
                rows.append(
                    (np.count_nonzero(p & t), np.count_nonzero(p & ~t), np.count_nonzero(~p & t))
                )
    return np.asarray(rows, dtype=np.float64)


BLOCK_TILES = 2
"""Bootstrap intervals resample blocks of 2 × 2 columns of 128² (256² pixels, 16 on the 1024²
stack), not single columns: neighbouring columns are alike, and intervals over single 128²
columns were 1.3-1.6× too narrow (RESULTS.md "The whole-volume interval over spatial blocks")."""


def tile_blocks(mask: np.ndarray, tile: int = 128) -> np.ndarray:
    """The bootstrap block of each column :func:`tile_counts` keeps (same order)."""
    ids = []
    edge = tile * BLOCK_TILES
    per_row = -(-mask.shape[2] // edge)
    for y in range(0, mask.shape[1], tile):
        for x in range(0, mask.shape[2], tile):
            if mask[:, y : y + tile, x : x + tile].any():
                ids.append((y // edge) * per_row + x // edge)
    return np.asarray(ids, dtype=np.int64)


def block_weights(blocks: np.ndarray | None, n_tiles: int, samples: int, rng) -> np.ndarray:
    """``samples`` × ``n_tiles`` bootstrap weights: each resample draws the blocks with
    replacement, and a tile weighs as often as its block was drawn (``blocks`` ``None``:
    single tiles, for records made before blocks were kept)."""
    if blocks is None:
        blocks = np.arange(n_tiles)
    _, inv = np.unique(np.asarray(blocks), return_inverse=True)
    k = int(inv.max()) + 1
    drawn = rng.multinomial(k, np.full(k, 1.0 / k), size=samples)
    return drawn[:, inv.reshape(-1)].astype(np.float64)


def _dice(c: np.ndarray) -> float:
    tp, fp, fn = c.sum(axis=0)
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def paired_diff(
    a: np.ndarray, b: np.ndarray, n: int = 2000, blocks: np.ndarray | None = None
) -> tuple[float, list[float]]:
    """Dice(a) − Dice(b) over the same tiles, with a bootstrap 95 % CI over blocks of tiles."""
    w = block_weights(blocks, len(a), n, np.random.default_rng(0))
    boot = _weighted_dice(a, w) - _weighted_dice(b, w)
    return _dice(a) - _dice(b), [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]


def _weighted_dice(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Dice of the tile counts ``c`` under each row of bootstrap weights ``w``."""
    tp, fp, fn = (w @ np.asarray(c, dtype=np.float64)).T
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def curator_crop(truth: np.ndarray, edge: int, avoid: list, rng: np.random.Generator):
    """One random try at a crop as a curator picks one: full depth, ``edge`` × ``edge``, clear
    of ``avoid``, at least 3 % mitochondria; ``None`` when this try does not qualify."""
    from curated.segment.evaluate import Box

    off = (
        0,
        int(rng.integers(0, truth.shape[1] - edge)),
        int(rng.integers(0, truth.shape[2] - edge)),
    )
    box = Box(off, (truth.shape[0], edge, edge))
    if any(box.intersects(c) for c in avoid) or truth[box.slices].mean() < 0.03:
        return None
    return box


def human_rounds(
    image: Path,
    model: Path,
    truth: np.ndarray,
    crops: list,
    scratch: Path,
    a: argparse.Namespace,
    trained_pred: str = "pred",
) -> dict:
    """``a.rounds`` rounds of one new crop per strategy, fine-tuned; scored on common voxels.

    ``trained_pred``: the label image in which ``model`` already predicted ``image``, with its
    probabilities (the first suggestion and the trained model's score start from it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hitl import suggested_crops

    from curated.segment import _store
    from curated.segment.annotate import import_annotation
    from curated.segment.evaluate import training_exclusion
    from curated.segment.predict import predict
    from curated.segment.train import finetune

    size = (truth.shape[0], a.crop, a.crop)
    models: dict[str, list[Path]] = {}
    timing: dict[str, float] = {}
    for strategy in a.strategies:
        rng = np.random.default_rng(a.seed * 1000 + 17)
        labels, boxes, current = f"hitl-{strategy}", list(crops), model
        for i, box in enumerate(crops):
            np.save(scratch / f"{labels}-{i}.npy", truth[box.slices])
            import_annotation(
                image, source_file=scratch / f"{labels}-{i}.npy", offset=box.offset, name=labels
            )
        models[strategy] = [model]
        for r in range(1, a.rounds + 1):
            if strategy == "suggested":
                pred = trained_pred if current == model else f"t-{labels}-{r}"
                if current != model:
                    predict(
                        current,
                        image,
                        name=pred,
                        probabilities=True,
                        device=a.device,
                        precision=a.precision,
                    )
                new = suggested_crops(image, current, pred, labels, size, a.device)[0]
            else:
                for _ in range(20000):
                    found = curator_crop(truth, a.crop, boxes, rng)
                    if found is not None:
                        break
                else:
                    raise SystemExit("no further crop holding mitochondria fits")
                new = found
            boxes.append(new)
            np.save(scratch / f"{labels}-r{r}.npy", truth[new.slices])
            import_annotation(
                image, source_file=scratch / f"{labels}-r{r}.npy", offset=new.offset, name=labels
            )
            child = scratch / f"{labels}-r{r}"
            t0 = time.perf_counter()
            finetune(
                current, image, labels=labels, out=child, device=a.device, precision=a.precision,
                seed=a.seed + r + 7919 * a.train_seed, **({"draws": a.draws} if a.draws else {}),
                **({"iterations": a.finetune_iterations} if a.finetune_iterations else {}),
                **(json.loads(a.finetune_options) if a.finetune_options else {}),
            )  # fmt: skip
            timing[f"finetune {strategy} r{r}"] = round(time.perf_counter() - t0, 1)
            print(
                f"{strategy} round {r}: crop {new.offset} ({truth[new.slices].mean():.1%} mitochondria), fine-tuned in {timing[f'finetune {strategy} r{r}']:.0f} s",
                flush=True,
            )
            current = child
            models[strategy].append(child)
    # the same voxels for every model: outside every strategy's crops, grown by context + halo
    held = np.ones(truth.shape, dtype=bool)
    for chain in models.values():
        for box in training_exclusion(chain[-1], image=image).boxes:
            held[box.slices] = False
    tb = truth.astype(bool)
    counts: dict[str, list[np.ndarray]] = {}
    # the trained model starts every strategy's chain; it has predicted already
    trained = np.asarray(_store.label_level0(image, trained_pred)[...]) == 1
    scored: dict[Path, np.ndarray] = {model: tile_counts(trained, tb, held)}
    for strategy, chain in models.items():
        counts[strategy] = []
        for r, m in enumerate(chain):
            if m not in scored:
                name = f"s-{strategy}-{r}"
                predict(m, image, name=name, device=a.device, precision=a.precision, overwrite=True)
                pred = np.asarray(_store.label_level0(image, name)[...]) == 1
                scored[m] = tile_counts(pred, tb, held)
            counts[strategy].append(scored[m])
    blocks = tile_blocks(held)  # the same columns for every model: one block layout
    out = {"held_fraction": float(held.mean()), "timing_s": timing, "curves": {}}
    print(
        f"\nhuman rounds, scored on the {held.mean():.1%} of voxels outside every strategy's crops:"
    )
    for strategy, cs in counts.items():
        curve = [_dice(c) for c in cs]
        d, ci = paired_diff(cs[-1], cs[0], blocks=blocks)
        out["curves"][strategy] = {
            "dice": curve,
            "auc": float(np.mean(curve)),
            "last_minus_first": [d, ci],
        }
        print(
            f"  {strategy:<10} Dice per round {' '.join(f'{x:.3f}' for x in curve)}; round {len(cs) - 1} − trained: {d:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        )
    if "suggested" in counts and "random" in counts:
        d, ci = paired_diff(counts["suggested"][-1], counts["random"][-1], blocks=blocks)
        out["suggested_minus_random_last"] = [d, ci]
        print(f"  suggested − random after round {a.rounds}: {d:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]")
    return out


def tile_dice(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, tile: int = 128, n: int = 2000
):
    c = tile_counts(pred, truth, mask, tile)
    blocks = tile_blocks(mask, tile)
    boot = _weighted_dice(c, block_weights(blocks, len(c), n, np.random.default_rng(0)))
    tp, fp, fn = c.sum(axis=0)
    return {
        "dice": _dice(c),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "predicted_fraction": float((pred & mask).sum() / mask.sum()),
        "truth_fraction": float((truth & mask).sum() / mask.sum()),
        "tiles": len(c),
        "tile_counts": c.astype(int).tolist(),
        "tile_blocks": blocks.tolist(),
    }


def _load_runs(pattern: str) -> dict[int, list[np.ndarray]]:
    """The ``--json`` records a glob matches, as crop seed → per-draw (tp, fp, fn) tile counts."""
    import glob

    runs: dict[int, list[np.ndarray]] = {}
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"--compare: nothing matches {pattern!r}")
    for f in files:
        rec = json.loads(Path(f).read_text())
        counts = rec["unet"].get("tile_counts")
        if counts is None:
            raise SystemExit(f"{f} holds no tile counts (written before they were recorded)")
        runs.setdefault(int(rec["seed"]), []).append(np.asarray(counts, dtype=np.float64))
    return runs


def _load_blocks(patterns: list[str]) -> dict[int, np.ndarray]:
    """Crop seed → the bootstrap block of each tile, where every record of that seed kept the
    same blocks (records made before blocks were kept leave their seed to single tiles)."""
    import glob

    seen: dict[int, list[tuple[int, ...] | None]] = {}
    for pattern in patterns:
        for f in sorted(glob.glob(pattern)):
            rec = json.loads(Path(f).read_text())
            b = rec["unet"].get("tile_blocks")
            seen.setdefault(int(rec["seed"]), []).append(None if b is None else tuple(b))
    return {
        s: np.asarray(v[0], dtype=np.int64)
        for s, v in seen.items()
        if v and v[0] is not None and all(x == v[0] for x in v)
    }


def draw_variance(settings: dict[str, dict[int, list[np.ndarray]]]) -> tuple[float, int]:
    """Pooled variance of whole-stack Dice between training draws of the same setting and crop
    seed (every setting × seed with two or more draws), and its degrees of freedom."""
    ss, df = 0.0, 0
    for runs in settings.values():
        for draws in runs.values():
            if len(draws) >= 2:
                d = np.array([_dice(c) for c in draws])
                ss += float(((d - d.mean()) ** 2).sum())
                df += len(d) - 1
    return (ss / df if df else float("nan")), df


def compare_settings(
    settings: dict[str, dict[int, list[np.ndarray]]],
    n: int = 2000,
    blocks: dict[int, np.ndarray] | None = None,
) -> list[dict]:
    """Each setting against the first: the mean over crop seeds of the mean over draws of
    Dice outside the crops, and the difference with a 95 % interval that holds both the
    test tiles (paired bootstrap over the same tiles) and the training draws (the pooled
    draw-to-draw variance over the draws each mean rests on; a t quantile with the
    Welch-Satterthwaite degrees of freedom). Crop seeds are fixed.

    A tile-only interval speaks for one draw, not for the setting: on real ssTEM one more
    draw of the same setting moved a crop seed's Dice by up to 0.13 (RESULTS.md).
    """
    from scipy.stats import t as t_dist

    var_draw, df = draw_variance(settings)
    names = list(settings)
    base = settings[names[0]]
    for seed in {s for runs in settings.values() for s in runs}:
        tiles = {len(c) for runs in settings.values() for c in runs.get(seed, [])}
        if len(tiles) > 1:
            raise SystemExit(
                f"crop seed {seed}: the runs were scored on different tiles ({sorted(tiles)} "
                "tiles); compare runs made with the same --crops and --crop"
            )
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        runs = settings[name]
        per_seed = {s: [_dice(c) for c in draws] for s, draws in sorted(runs.items())}
        row = {
            "setting": name,
            "per_seed": per_seed,
            "mean": float(np.mean([np.mean(v) for v in per_seed.values()])),
            "draws": sum(len(v) for v in per_seed.values()),
        }
        seeds = sorted(set(runs) & set(base))
        if name != names[0] and seeds:
            diffs, boot = [], np.zeros(n)
            for s in seeds:
                a, b = runs[s], base[s]
                diffs.append(np.mean(per_seed[s]) - np.mean(rows[0]["per_seed"][s]))
                w = block_weights((blocks or {}).get(s), len(a[0]), n, rng)
                boot += np.mean([_weighted_dice(c, w) for c in a], axis=0) - np.mean(
                    [_weighted_dice(c, w) for c in b], axis=0
                )
            boot /= len(seeds)
            diff = float(np.mean(diffs))
            tile_ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
            var_tile = float(np.var(boot))
            var_d = (
                sum(var_draw / len(runs[s]) + var_draw / len(base[s]) for s in seeds)
                / len(seeds) ** 2
            )
            # Welch-Satterthwaite: the draw variance rests on few draws (df), the tile
            # bootstrap on many; a normal quantile would claim the draw part is known
            df_eff = (var_tile + var_d) ** 2 * df / var_d**2 if df and var_d > 0 else float("inf")
            half = (
                float(t_dist.ppf(0.975, df_eff) * np.sqrt(var_tile + var_d)) if df else float("nan")
            )
            row.update(
                diff=diff,
                seeds=seeds,
                tile_ci=tile_ci,
                ci=[diff - half, diff + half],
            )
        rows.append(row)
    return rows


def print_comparison(specs: list[str]) -> int:
    """``--compare NAME=GLOB ...``: see :func:`compare_settings`."""
    settings = {}
    for spec in specs:
        name, _, pattern = spec.partition("=")
        if not pattern:
            raise SystemExit(f"--compare takes NAME=GLOB, not {spec!r}")
        settings[name] = _load_runs(pattern)
    patterns = [spec.partition("=")[2] for spec in specs]
    rows = compare_settings(settings, blocks=_load_blocks(patterns))
    var_draw, df = draw_variance(settings)
    print("Dice outside the crops; per crop seed, one figure per training draw")
    for r in rows:
        seeds = "; ".join(
            f"{s}: " + " ".join(f"{d:.3f}" for d in v) for s, v in r["per_seed"].items()
        )
        print(f"  {r['setting']:<16} mean {r['mean']:.3f} over {r['draws']} runs   ({seeds})")
    if df:
        print(
            f"draw-to-draw SD of one run's Dice (pooled, {df} degrees of freedom): "
            f"{np.sqrt(var_draw):.3f}"
        )
    else:
        print("no setting has two draws on one crop seed: the draw-to-draw spread is unknown")
    for r in rows[1:]:
        if "diff" not in r:
            print(f"  {r['setting']}: no crop seed in common with {rows[0]['setting']}")
            continue
        ci = r["ci"]
        if not df:
            print(
                f"  {r['setting']} − {rows[0]['setting']}: {r['diff']:+.3f}  "
                f"(tiles only [{r['tile_ci'][0]:+.3f}, {r['tile_ci'][1]:+.3f}]: one draw's "
                "interval, not the setting's; train each setting twice)"
            )
            continue
        print(
            f"  {r['setting']} − {rows[0]['setting']}: {r['diff']:+.3f}  "
            f"95 % CI over tiles and draws [{ci[0]:+.3f}, {ci[1]:+.3f}]  "
            f"(tiles only [{r['tile_ci'][0]:+.3f}, {r['tile_ci'][1]:+.3f}]; crop seeds {r['seeds']})"
        )
    return 0


def threshold_objects(raw: np.ndarray, level: float) -> np.ndarray:
    from scipy import ndimage

    dark = raw < level
    lab, n = ndimage.label(dark)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= 100
    keep[0] = False
    return keep[lab]


def reused_model(folder: str, crops: list) -> tuple[Path, str, list]:
    """``--parent``: a model an earlier run trained on these very crops (its path, message, patch)."""
    model = Path(folder)
    t = json.loads((model / "model.json").read_text())["training"]
    used = sorted((tuple(r["offset"]), tuple(r["shape"])) for r in t["rois"] + t["validation_rois"])
    if used != sorted((tuple(b.offset), tuple(b.shape)) for b in crops):
        raise SystemExit(f"{model} was trained on other crops ({used}); pass the same --seed")
    return model, f"reused {model} ({t['iterations']} iterations)", t["output_patch"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", type=Path, help="the stack folder (required unless --compare)")
    p.add_argument("--scratch", default=None)
    p.add_argument("--crops", type=int, default=4)
    p.add_argument("--crop", type=int, default=128, help="crop edge in y and x (full depth in z)")
    p.add_argument("--iterations", type=int, default=None, help="[default: the library's]")
    p.add_argument(
        "--patch",
        type=int,
        nargs=3,
        default=None,
        help="output patch (z y x) [default: the library's plan from the crops; 8 48 48 until "
        "the plan existed]",
    )
    p.add_argument("--local-contrast-nm", type=float, default=None, help="[default: the library's]")
    p.add_argument("--loss", default=None, help="[default: the library's]")
    p.add_argument("--class-balance", type=float, default=None, help="[default: the library's]")
    p.add_argument(
        "--class-balance-warmup", type=float, default=None, help="[default: the library's]"
    )
    p.add_argument("--depth", type=int, default=None, help="[default: the library's]")
    p.add_argument("--features", type=int, default=None, help="[default: the library's]")
    p.add_argument("--norm", default=None, help="[default: the library's]")
    p.add_argument("--batch", type=int, default=None, help="[default: the library's]")
    p.add_argument("--learning-rate", type=float, default=None, help="[default: the library's]")
    p.add_argument("--seed", type=int, default=0, help="crop positions (and training draws)")
    p.add_argument(
        "--train-seed",
        type=int,
        default=0,
        help="replicate k: the same crops, trained with other random draws (seed + 7919 k)",
    )
    p.add_argument(
        "--train-options",
        default=None,
        help="more keyword arguments of train() as JSON, e.g. '{\"weight_average\": 0.99}'",
    )
    p.add_argument(
        "--finetune-options",
        default=None,
        help="more keyword arguments of finetune() as JSON, e.g. '{\"validation\": true}' "
        "(hold out one of the parent's crops, as fine-tuning did before)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision", default="auto", help="auto | fp32 | bf16 (training and prediction)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=0, help="human rounds per crop strategy")
    p.add_argument("--strategies", nargs="+", default=["suggested", "random"])
    p.add_argument(
        "--draws", type=int, default=None, help="fine-tunings averaged [default: the library's]"
    )
    p.add_argument("--finetune-iterations", type=int, default=None, help="[default: the library's]")
    p.add_argument(
        "--parent",
        default=None,
        help="skip training: the model folder an earlier run of this script trained on the same "
        "crops (same --seed, --crops, --crop), e.g. to run only other human rounds",
    )
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME=GLOB",
        default=None,
        help="no training: compare the --json records of earlier runs, setting by setting "
        "(the first is the reference), over crop seeds and training draws",
    )
    a = p.parse_args(argv)
    if a.compare:
        return print_comparison(a.compare)
    if a.stack is None:
        p.error("--stack is required")

    import torch

    torch.set_num_threads(a.threads)
    from scipy import ndimage

    from curated.images import add_labels, convert_to_ome_zarr
    from curated.segment import _store
    from curated.segment.annotate import import_annotation
    from curated.segment.defaults import DEFAULT_ITERATIONS
    from curated.segment.evaluate import Box, training_exclusion
    from curated.segment.predict import predict
    from curated.segment.train import train

    scratch = Path(a.scratch or tempfile.mkdtemp(prefix="curated-real-em-"))
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    t_start = time.perf_counter()
    image = scratch / "vnc.ome.zarr"
    convert_to_ome_zarr(a.stack / "raw", image, voxel_size=(50.0, 4.6, 4.6))
    truth = load_truth(a.stack)
    raw = np.asarray(_store.image_level0(image)[...])
    if raw.shape != truth.shape:
        raise SystemExit(f"raw {raw.shape} and truth {truth.shape} differ")
    add_labels(
        image,
        "truth",
        truth,
        kind="truth",
        properties=[{"label-value": 1, "name": "mitochondrion"}],
    )

    rng = np.random.default_rng(a.seed)
    crops: list[Box] = []
    for _ in range(20000):
        if len(crops) == a.crops:
            break
        box = curator_crop(truth, a.crop, crops, rng)
        if box is not None:
            crops.append(box)
    for i, box in enumerate(crops):
        f = scratch / f"crop{i}.npy"
        np.save(f, truth[box.slices])
        import_annotation(image, source_file=f, offset=box.offset, name="annotations")
    fraction = sum(int(np.prod(b.shape)) for b in crops) / float(truth.size)

    model = scratch / "model"
    t0, c0 = time.perf_counter(), time.process_time()
    if a.parent:
        model, message, patch = reused_model(a.parent, crops)
    else:
        res = train(
            image, labels="annotations", label_value=1, out=model,
            iterations=a.iterations or DEFAULT_ITERATIONS, patch=tuple(a.patch) if a.patch else None,
            device=a.device, precision=a.precision, seed=a.seed + 7919 * a.train_seed,
            preprocessing={"local_contrast_sigma": round(a.local_contrast_nm / 4.6, 1)} if a.local_contrast_nm else None,
            **({"loss": a.loss} if a.loss else {}),
            **({"depth": a.depth} if a.depth is not None else {}),
            **({"base_features": a.features} if a.features is not None else {}),
            **({"norm": a.norm} if a.norm is not None else {}),
            **({"batch_size": a.batch} if a.batch is not None else {}),
            **({"learning_rate": a.learning_rate} if a.learning_rate is not None else {}),
            **({"class_balance": a.class_balance} if a.class_balance is not None else {}),
            **({"class_balance_warmup": a.class_balance_warmup} if a.class_balance_warmup is not None else {}),
            **(json.loads(a.train_options) if a.train_options else {}),
        )  # fmt: skip
        message, patch = res.message, res.details.get("output_patch")
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    # with probabilities when human rounds follow: the first suggestion starts from them
    predict(
        model,
        image,
        name="pred",
        probabilities=a.rounds > 0,
        device=a.device,
        precision=a.precision,
    )
    t_pred = time.perf_counter() - t0
    pred = np.asarray(_store.label_level0(image, "pred")[...]) == 1

    held = np.ones(truth.shape, dtype=bool)
    for box in training_exclusion(model, image=image).boxes:
        held[box.slices] = False
    tb = truth.astype(bool)
    unet = tile_dice(pred, tb, held)

    # anchor: the best threshold on the annotated crops, applied to the held-out voxels
    smooth = ndimage.gaussian_filter(raw.astype(np.float32), (0, 2, 2))
    in_crops = np.zeros(truth.shape, dtype=bool)
    for box in crops:
        in_crops[box.slices] = True
    best = (-1.0, 0.0)
    for level in np.percentile(smooth[in_crops], np.arange(1, 40, 1.0)):
        m = threshold_objects(smooth, level)
        t, q = tb[in_crops], m[in_crops]
        d = 2 * (t & q).sum() / max(t.sum() + q.sum(), 1)
        best = max(best, (float(d), float(level)))
    anchor = tile_dice(threshold_objects(smooth, best[1]), tb, held)

    print(
        f"stack {a.stack} {truth.shape} at 50 × 4.6 × 4.6 nm; {len(crops)} crops of "
        f"{raw.shape[0]}×{a.crop}×{a.crop} = {fraction:.1%} of voxels; scored on {held.mean():.1%} of voxels "
        f"(everything outside the crops grown by context + halo)"
    )
    print(
        f"U-Net: {message}; output patch {patch}; train {t_train:.0f} s wall, {c_train:.0f} s CPU; predict {t_pred:.0f} s"
    )
    print(
        f"{'method':<40} {'Dice':>6} {'95% CI':>15} {'prec.':>6} {'recall':>6} {'pred. fg':>8} {'truth fg':>8}"
    )
    for name, r in (
        ("curated U-Net (library defaults)", unet),
        (f"tuned threshold ({best[1]:.0f}, crop Dice {best[0]:.2f})", anchor),
    ):
        print(
            f"{name:<40} {r['dice']:>6.3f} {r['ci95'][0]:>7.3f}–{r['ci95'][1]:.3f} {r['precision']:>6.3f} "
            f"{r['recall']:>6.3f} {r['predicted_fraction']:>8.1%} {r['truth_fraction']:>8.1%}"
        )
    print(
        f"U-Net − tuned threshold: {unet['dice'] - anchor['dice']:+.3f}; {time.perf_counter() - t_start:.0f} s in all; load {os.getloadavg()[0]:.1f}"
    )
    record = {"seed": a.seed, "train_seed": a.train_seed, "unet": unet, "threshold": anchor}
    if a.rounds:
        record["rounds"] = human_rounds(image, model, truth, crops, scratch, a)
    if a.json:
        Path(a.json).write_text(json.dumps(record, indent=1, default=float))
    if not a.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
