"""Blockwise prediction: curated vs MONAI ``sliding_window_inference``, same network, same volume.

For each volume size, every tool runs in its own subprocess (so peak RSS is its
own): curated reads the OME-Zarr level 0 tile by tile and writes an OME-Zarr
label image; MONAI gets the volume as an in-memory tensor (its usual use), with
windows of the same size as curated's tiles, each reflect-padded by the
network's context so the valid-convolution network returns a full window.
MONAI runs at its default overlap (0.25) and at overlap 0 (seams, but the
fewest windows). Throughput counts the pre-processing, the network and the
thresholding; curated's figure also includes reading and writing the store.

    python benchmarks/predict.py --sizes 32x128x128 64x192x192 --iterations 20

Prints voxels/s and peak RSS side by side, with curated/MONAI ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _rss_mib() -> float:
    """Peak RSS of this process since exec (VmHWM; ``ru_maxrss`` would include the parent's at fork)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(
    tool: str,
    image: str,
    model: str,
    tile: tuple[int, int, int],
    overlap: float,
    precision: str = "auto",
) -> dict:
    import torch

    from curated.images import open_image
    from curated.segment import load_model, predict
    from curated.segment.device import amp_dtype

    if tool == "curated":
        t0 = time.perf_counter()
        r = predict(
            model,
            image,
            name="bench",
            block=tile,
            device="cpu",
            precision=precision,
            overwrite=True,
        )
        seconds = time.perf_counter() - t0
        voxels = int(np.prod(r.details["shape"]))
        return {"seconds": seconds, "voxels": voxels, "rss_mib": _rss_mib()}

    from monai.inferers import sliding_window_inference

    m = load_model(model)
    net = m.network("cpu")
    ctx = m.geometry.context
    halo = m.preprocessing.halo
    raw = np.asarray(open_image(image).levels[0][...])
    t0 = time.perf_counter()
    x = m.preprocessing.apply(np.pad(raw, [(h, h) for h in halo], mode="reflect"))
    inputs = torch.from_numpy(x)[None, None]

    def predictor(window: torch.Tensor) -> torch.Tensor:
        # a valid-convolution network shrinks its input by the context: reflect-pad each window first,
        # and grow odd window sizes to the next valid one, cropping back afterwards
        size = tuple(window.shape[2:])
        want = m.geometry.valid_output(size)
        extra = [w - s for w, s in zip(want, size, strict=True)]
        pad = []
        for c, e in zip(reversed(ctx), reversed(extra), strict=True):
            pad += [c, c + e]
        padded = torch.nn.functional.pad(window, pad, mode="reflect")
        return net(padded)[:, :, : size[0], : size[1], : size[2]]

    # MONAI's windows run at the same precision as curated's tiles
    dtype = amp_dtype(torch.device("cpu"), precision)
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        prob = sliding_window_inference(
            inputs,
            roi_size=tile,
            sw_batch_size=1,
            predictor=predictor,
            overlap=overlap,
            mode="constant",
        )
    labels = (torch.sigmoid(prob.float())[0, 0] > 0.5).to(torch.uint8).numpy()
    seconds = time.perf_counter() - t0
    assert labels.shape == raw.shape
    return {"seconds": seconds, "voxels": int(raw.size), "rss_mib": _rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", default=["32x128x128", "64x192x192"])
    ap.add_argument("--tile", default="32x128x128", help="curated tile = MONAI window (z x y x x)")
    ap.add_argument(
        "--iterations", type=int, default=20, help="training iterations of the benchmarked network"
    )
    ap.add_argument("--scratch", default="/tmp/segment/bench-predict")
    ap.add_argument(
        "--precision",
        default="auto",
        help="auto | fp32 | bf16: both tools compute at it (auto: float32 on a CPU)",
    )
    ap.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "IMAGE", "MODEL", "OVERLAP"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    tile = tuple(int(v) for v in args.tile.split("x"))
    if args.worker:
        tool, image, model, overlap = args.worker
        print(json.dumps(worker(tool, image, model, tile, float(overlap), args.precision)))  # type: ignore[arg-type]
        return

    from curated.segment import annotate_from_truth, make_fibsem_sample, train

    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    images = []
    for i, s in enumerate(args.sizes):
        shape = tuple(int(v) for v in s.split("x"))
        img = scratch / f"v{i}.ome.zarr"
        make_fibsem_sample(img, shape=shape, seed=i, chunks=32, shard=tile)  # type: ignore[arg-type]
        images.append((shape, img))
    annotate_from_truth(images[0][1], crops=4, size=24, seed=0, name="ann")
    model = scratch / "model"
    train(
        images[0][1],
        labels="ann",
        label_value=1,
        out=model,
        iterations=args.iterations,
        device="cpu",
    )

    runs = [("curated", 0.0), ("monai", 0.25), ("monai", 0.0)]
    rows = []
    for shape, img in images:
        row = {"shape": "x".join(map(str, shape)), "voxels": int(np.prod(shape))}
        for tool, overlap in runs:
            cmd = [
                sys.executable,
                __file__,
                "--tile",
                args.tile,
                "--precision",
                args.precision,
                "--worker",
                tool,
                str(img),
                str(model),
                str(overlap),
            ]
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=True, env=os.environ.copy()
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            key = tool if tool == "curated" else f"monai@{overlap:g}"
            row[key] = {
                "vox_s": res["voxels"] / res["seconds"],
                "rss_mib": res["rss_mib"],
                "seconds": res["seconds"],
            }
        rows.append(row)

    import torch

    from curated.segment.device import amp_dtype, precision_name

    used = precision_name(amp_dtype(torch.device("cpu"), args.precision))
    print(
        f"tile/window {args.tile}, network: depth 2, 8 features, valid convolutions; "
        f"CPU threads: {os.cpu_count()}; precision {args.precision} ({used})"
    )
    head = f"{'volume':>12} {'Mvox':>6} | {'curated vox/s':>13} {'MONAI@0.25':>11} {'MONAI@0':>10} {'ratio@0.25':>10} {'ratio@0':>8} | {'RSS MiB cur':>11} {'MONAI@0.25':>10} {'MONAI@0':>8}"
    print(head)
    for row in rows:
        c, m25, m0 = row["curated"], row["monai@0.25"], row["monai@0"]
        print(
            f"{row['shape']:>12} {row['voxels'] / 1e6:>6.2f} | {c['vox_s']:>13.0f} {m25['vox_s']:>11.0f} {m0['vox_s']:>10.0f} "
            f"{c['vox_s'] / m25['vox_s']:>10.2f} {c['vox_s'] / m0['vox_s']:>8.2f} | {c['rss_mib']:>11.0f} {m25['rss_mib']:>10.0f} {m0['rss_mib']:>8.0f}"
        )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
