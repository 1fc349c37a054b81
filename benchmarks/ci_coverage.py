"""How honest is the whole-volume confidence interval of ``segment evaluate``?

Two checks, each printing figures (no timing):

``--real DIR ...``: ``benchmarks/real_em.py`` scratch folders (``vnc.ome.zarr`` with the
``pred`` and ``truth`` label images, and the ``model`` folder). For each:

1. *dependence*: the percentile-bootstrap interval of the whole-volume Dice (outside the
   grown training crops) when the resampled unit is a column of 32², 64², 128² or 256²
   pixels. Independent units give about the same width at every size; widths that grow
   with the unit mean neighbouring units are alike, and a bootstrap over small ones is
   too narrow;
2. *coverage*: the stack is cut into sub-volumes of ``--edge`` pixels a side; each
   sub-volume is scored alone (``score_whole_volume``, as ``segment evaluate`` does) and
   its interval is checked against the Dice of the whole stack (single tiles of the
   automatic tile, the spatial-block interval ``segment evaluate`` reports, single 64²
   tiles). A 95 % interval that speaks for the sample would hold it about 95 % of the time.

``--synthetic MODEL --n N``: N independent ``curated sample fibsem`` volumes (seeds 100 …,
``--shape``), predicted with MODEL; each volume's interval is checked against the Dice
pooled over all N (the model's Dice on the generator's population), for the old (64³
tiles resampled singly) and the current interval.

Run::

    python benchmarks/ci_coverage.py --real /tmp/em/base-s*-d0/scratch
    python benchmarks/ci_coverage.py --synthetic DEMO/workspace/derived/models/mito-v1 --n 16 --scratch /tmp/cov
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _vol(a: np.ndarray):  # type: ignore[no-untyped-def]
    from curated.segment.volume import Volume

    return Volume(path=Path("memory"), array=a, attrs={}, spatial=(0, 1, 2), lead=())


def _ci_units(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, edge: int) -> list[float]:
    """The bootstrap interval of the Dice over columns of ``edge``² pixels (the columns of
    ``real_em.tile_counts``; the library's bootstrap, ``tile_bootstrap_ci``, over them)."""
    from real_em import tile_counts

    from curated.segment.wholevolume import COUNT_FIELDS, tile_bootstrap_ci

    c = tile_counts(pred, truth, mask, edge)
    rows = np.zeros((len(c), len(COUNT_FIELDS)), np.int64)
    rows[:, :3] = c
    rows[:, COUNT_FIELDS.index("scored")] = 1  # every column kept holds scored voxels
    return tile_bootstrap_ci(rows, seed=0)["dice"]  # type: ignore[return-value]


def real(folders: list[Path], edge: int) -> None:
    from curated.segment import _store
    from curated.segment.evaluate import training_exclusion
    from curated.segment.geometry import Box
    from curated.segment.wholevolume import score_whole_volume, tile_bootstrap_ci

    totals = {"single tiles": [0, 0], "spatial blocks (reported)": [0, 0], "64² tiles": [0, 0]}
    for sc in folders:
        image = sc / "vnc.ome.zarr"
        pred = np.asarray(_store.label_level0(image, "pred")[...]) == 1
        truth = np.asarray(_store.label_level0(image, "truth")[...]) == 1
        boxes = training_exclusion(sc / "model", image=image).boxes
        held = np.ones(truth.shape, bool)
        for b in boxes:
            held[b.slices] = False
        print(f"{sc}:")
        for unit in (32, 64, 128, 256):
            lo, hi = _ci_units(pred, truth, held, unit)
            print(f"  {unit:>3}² columns: interval {lo:.3f}–{hi:.3f}, width {hi - lo:.3f}")
        p8, t8 = pred.astype(np.uint8), truth.astype(np.uint8)
        subs, whole = [], np.zeros(3)
        for y in range(0, truth.shape[1], edge):
            for x in range(0, truth.shape[2], edge):
                sl = (slice(None), slice(y, y + edge), slice(x, x + edge))
                ex = [Box((b.offset[0], b.offset[1] - y, b.offset[2] - x), b.shape) for b in boxes]
                kw = {"label_value": 1, "pred_value": 1, "exclusion": ex, "seed": 0}
                wv = score_whole_volume(_vol(p8[sl]), _vol(t8[sl]), **kw)  # type: ignore[arg-type]
                t = wv.totals
                if t["scored"] == 0 or t["tp"] + t["fn"] == 0:
                    continue
                w64 = score_whole_volume(_vol(p8[sl]), _vol(t8[sl]), tile=64, **kw)  # type: ignore[arg-type]
                whole += (t["tp"], t["fp"], t["fn"])
                subs.append(
                    (
                        tile_bootstrap_ci(wv.counts, seed=0)["dice"],
                        wv.overall["ci95"]["dice"],
                        tile_bootstrap_ci(w64.counts, seed=0)["dice"],
                    )
                )
        d = 2 * whole[0] / (2 * whole[0] + whole[1] + whole[2])
        print(f"  {len(subs)} sub-volumes of {edge}²; the whole stack's Dice {d:.3f} is inside:")
        for i, name in enumerate(totals):
            cis = [c[i] for c in subs if c[i] is not None]
            held_in = sum(lo <= d <= hi for lo, hi in cis)
            width = np.mean([hi - lo for lo, hi in cis])
            print(f"    {name:<27} {held_in:>3} of {len(cis)} intervals (mean width {width:.3f})")
            totals[name][0] += held_in
            totals[name][1] += len(cis)
    print("all folders:")
    for name, (a, b) in totals.items():
        print(f"  {name:<27} {a} of {b} = {a / max(b, 1):.2f} (nominal 0.95)")


def synthetic(model: str, n: int, shape: list[str], scratch: Path) -> None:
    from curated.segment.predict import predict
    from curated.segment.volume import open_level0
    from curated.segment.wholevolume import score_whole_volume, tile_bootstrap_ci

    curated = str(Path(sys.executable).with_name("curated"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(100, 100 + n):
        img = scratch / f"v{seed}.ome.zarr"
        if not img.exists():
            cmd = [curated, "sample", "fibsem", str(img), "--shape", *shape, "--seed", str(seed)]
            subprocess.run(cmd, check=True, capture_output=True)
            predict(model, img, name="pred", workers=2)
        pv = open_level0(img / "labels" / "pred", "prediction")
        tv = open_level0(img / "labels" / "truth", "truth")
        new = score_whole_volume(pv, tv, label_value=1, pred_value=1, seed=0)
        old = score_whole_volume(pv, tv, label_value=1, pred_value=1, tile=64, seed=0)
        t = new.totals
        rows.append(
            (
                t["tp"],
                t["fp"],
                t["fn"],
                tile_bootstrap_ci(old.counts, seed=0)["dice"],
                new.overall["ci95"]["dice"],
            )
        )
        tried = ", ".join(
            f"{x['blocks']} blocks: {x['dice_ci_width']:.3f}" for x in new.bootstrap_blocks["tried"]
        )
        print(
            f"seed {seed}: Dice {2 * t['tp'] / (2 * t['tp'] + t['fp'] + t['fn']):.3f}; widths tried {tried}",
            flush=True,
        )
    tp, fp, fn = (sum(r[i] for r in rows) for i in range(3))
    pooled = 2 * tp / (2 * tp + fp + fn)
    dice = [2 * r[0] / (2 * r[0] + r[1] + r[2]) for r in rows]
    print(f"pooled Dice over {n} volumes {pooled:.3f}; per-volume sd {np.std(dice, ddof=1):.3f}")
    for i, name in ((3, "64³ tiles resampled singly (before)"), (4, "spatial blocks (reported)")):
        held_in = sum(r[i][0] <= pooled <= r[i][1] for r in rows)
        width = np.mean([r[i][1] - r[i][0] for r in rows])
        print(f"  {name:<38} holds it in {held_in} of {n} (mean width {width:.3f})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--real", nargs="*", type=Path, default=[], help="real_em.py scratch folders")
    ap.add_argument("--edge", type=int, default=256, help="sub-volume edge (pixels) for --real")
    ap.add_argument("--synthetic", help="model folder for the synthetic check")
    ap.add_argument("--n", type=int, default=16, help="synthetic volumes")
    ap.add_argument("--shape", nargs=3, default=["64", "192", "192"], help="synthetic volume shape")
    ap.add_argument("--scratch", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.real:
        real(a.real, a.edge)
    if a.synthetic:
        synthetic(a.synthetic, a.n, a.shape, a.scratch or Path(tempfile.mkdtemp(prefix="cov-")))
    if not a.real and not a.synthetic:
        ap.error("give --real and/or --synthetic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
