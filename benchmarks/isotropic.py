"""Isotropic 5 nm FIB-SEM: training cost and quality of the planned network, pointwise top level or not.

At voxels finer than ``POINTWISE_BELOW_NM`` (6 nm) along every axis, ``curated segment
train`` plans a U-Net whose top level has 1×1×1 kernels and half the features
(``segment.train.network_config``). This script trains both plans on the same synthetic
isotropic sample and crops, side by side, and scores each on an independent test volume:

1. ``make_fibsem_sample`` writes a training volume (seed S) and a test volume (seed
   100 + S), ``--shape`` voxels at ``--voxel`` nm (default 128 × 256 × 256 at 5 nm);
2. three 48³ crops holding mitochondria are annotated from the truth (seed S);
3. ``train`` runs ``--iterations`` with the library's defaults, once as planned now
   (``planned``) and once with the top level planned as before (``previous``:
   3×3×3 kernels, the full features), each in its own process;
4. each model predicts the whole test volume (blockwise, as ``curated segment
   predict``), scored against its full truth: Dice, precision, recall, false positives
   in the nucleus; training and prediction wall/CPU seconds are printed.

Run::

    OMP_NUM_THREADS=1 python benchmarks/isotropic.py --seed 0 --iterations 400 --threads 1 --scratch /tmp/iso
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PLANS = ("planned", "previous")


def _volumes(
    scratch: Path, seed: int, shape: tuple[int, int, int], voxel: float
) -> tuple[Path, Path]:
    from curated.segment import annotate_from_truth, make_fibsem_sample

    train_img = scratch / f"train{seed}.ome.zarr"
    test_img = scratch / f"test{seed}.ome.zarr"
    if not train_img.exists():
        make_fibsem_sample(train_img, shape=shape, voxel_size=(voxel,) * 3, seed=seed)
        annotate_from_truth(train_img, crops=3, size=48, seed=seed, require_label=1)
    if not test_img.exists():
        make_fibsem_sample(test_img, shape=shape, voxel_size=(voxel,) * 3, seed=100 + seed)
    return train_img, test_img


def run_one(
    plan: str,
    train_img: Path,
    test_img: Path,
    iterations: int,
    threads: int,
    scratch: Path,
    precision: str = "auto",
) -> dict:
    """Train and predict with one plan (in this process) and score the prediction."""
    import importlib

    import torch
    import zarr

    from curated.segment import predict, train

    # the module, not the function ``curated.segment.train`` that the package re-exports
    train_mod = importlib.import_module("curated.segment.train")

    torch.set_num_threads(threads)
    if plan == "previous":
        train_mod.POINTWISE_BELOW_NM = None  # type: ignore[assignment]  # plan as before the rule
    tag = f"{train_img.stem.split('.')[0]}-{plan}-it{iterations}-{precision}"
    out = scratch / f"model-{tag}"
    t0, c0 = time.perf_counter(), time.process_time()
    train(
        train_img,
        labels="annotations",
        label_value=1,
        out=out,
        iterations=iterations,
        device="cpu",
        precision=precision,
    )
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    arch = json.loads((out / "model.json").read_text())["architecture"]
    t1, c1 = time.perf_counter(), time.process_time()
    predict(out, test_img, name=f"p-{tag}", overwrite=True, device="cpu", precision=precision)
    pred_wall, pred_cpu = time.perf_counter() - t1, time.process_time() - c1
    g = zarr.open_group(str(test_img), mode="r")
    truth = np.asarray(g["labels/truth/0"][...])
    fg = np.asarray(g[f"labels/p-{tag}/0"][...]) == 1
    t = truth == 1
    tp, fp, fn = int((t & fg).sum()), int((~t & fg).sum()), int((t & ~fg).sum())
    return {
        "plan": plan,
        "arithmetic": json.loads((out / "model.json").read_text())["training"]["precision"],
        "kernels_top": arch["kernels"][0],
        "depth": arch["depth"],
        "base_features": arch["base_features"],
        "parameters": arch.get("parameters"),
        "dice": 2 * tp / max(1, 2 * tp + fp + fn),
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, tp + fn),
        "fp_in_nucleus": int((fg & (truth == 2)).sum()),
        "train_wall_s": train_wall,
        "train_cpu_s": train_cpu,
        "predict_wall_s": pred_wall,
        "predict_cpu_s": pred_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--voxel", type=float, default=5.0, help="isotropic voxel size, nm")
    ap.add_argument("--shape", type=int, nargs=3, default=(128, 256, 256))
    ap.add_argument("--plans", nargs="+", choices=PLANS, default=list(PLANS))
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/iso-bench"))
    ap.add_argument(
        "--precision", default="auto", help="auto | fp32 | bf16 (training and prediction)"
    )
    ap.add_argument("--child", choices=PLANS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.scratch.mkdir(parents=True, exist_ok=True)
    train_img, test_img = _volumes(a.scratch, a.seed, tuple(a.shape), a.voxel)
    if a.child:
        print(
            json.dumps(
                run_one(
                    a.child, train_img, test_img, a.iterations, a.threads, a.scratch, a.precision
                )
            )
        )
        return 0
    rows = []
    for plan in a.plans:  # one process per plan: the module constant is set per process
        cmd = [
            sys.executable,
            __file__,
            "--child",
            plan,
            *(argv if argv is not None else sys.argv[1:]),
        ]
        res = subprocess.run(
            cmd, capture_output=True, text=True, env=os.environ.copy(), check=False
        )
        if res.returncode:
            sys.stderr.write(res.stderr)
            return res.returncode
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(
        f"seed {a.seed}, {a.iterations} iterations, {a.voxel} nm isotropic, {a.threads} thread(s)"
    )
    print(
        "| plan | top kernels | features | Dice | precision | recall | FP in nucleus | train wall s | train CPU s | predict wall s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['plan']} | {'×'.join(map(str, r['kernels_top']))} | {r['base_features']} | {r['dice']:.3f} "
            f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['fp_in_nucleus']} | {r['train_wall_s']:.0f} "
            f"| {r['train_cpu_s']:.0f} | {r['predict_wall_s']:.0f} |"
        )
    (a.scratch / f"isotropic-seed{a.seed}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
