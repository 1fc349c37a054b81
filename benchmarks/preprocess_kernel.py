"""Local contrast normalisation: the ``box3`` kernel against the Gaussian (scipy), same block, same run.

The default pre-processing normalises over 400 nm in y and x: σ = 50 voxels at 8 nm, 80 at
5 nm, 100 at 4 nm. scipy's Gaussian is a direct convolution (2·3σ + 1 taps per axis), so
its cost grows with σ; ``box3`` (three box filters per axis with the same variance, running
sums) does not. This script times ``Preprocessing.apply`` with each kernel on the padded
input of one training crop (``--crop`` voxels plus the halo, like ``train`` reads) of a
random uint8 volume, one thread, alternating the kernels, and prints the ratio and how far
apart the two normalised blocks are.

    OMP_NUM_THREADS=1 python benchmarks/preprocess_kernel.py --sigma 50 80 128 --crop 48 48 48
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sigma", type=float, nargs="+", default=[50.0, 80.0, 128.0])
    p.add_argument("--crop", type=int, nargs=3, default=[48, 48, 48])
    p.add_argument("--context", type=int, default=44, help="network context per side (yx)")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args(argv)

    from curated.segment.preprocess import Preprocessing

    rng = np.random.default_rng(0)
    print(
        f"{'sigma':>6} {'block (z, y, x)':>18} {'gaussian s':>11} {'box3 s':>8} {'ratio':>6} "
        f"{'mean |diff|':>11}"
    )
    for sigma in a.sigma:
        pres = {
            k: Preprocessing(local_contrast_sigma=sigma, local_contrast_kernel=k)
            for k in ("gaussian", "box3")
        }
        halo = max(pr.halo[1] for pr in pres.values())
        shape = (a.crop[0], *(c + 2 * (a.context + halo) for c in a.crop[1:]))
        vol = ndimage.gaussian_filter(rng.normal(128, 40, shape), (0, 2, 2))
        raw = np.clip(vol, 0, 255).astype(np.uint8)
        fitted = {k: pr.fit([raw]) for k, pr in pres.items()}
        times: dict[str, list[float]] = {k: [] for k in fitted}
        outs = {}
        for _ in range(a.rounds):
            for k, pr in fitted.items():
                # each kernel reads its own halo: crop the shared block to it
                d = halo - pr.halo[1]
                block = raw[:, d : raw.shape[1] - d, d : raw.shape[2] - d]
                t = time.process_time()
                outs[k] = pr.apply(block)
                times[k].append(time.process_time() - t)
        g, b = min(times["gaussian"]), min(times["box3"])
        diff = float(np.abs(outs["gaussian"] - outs["box3"]).mean())
        print(
            f"{sigma:6.0f} {str(shape):>18} {g:11.2f} {b:8.2f} {g / b:5.1f}x {diff:11.4f}",
            flush=True,
        )
    print(f"(CPU seconds, best of {a.rounds}; load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
