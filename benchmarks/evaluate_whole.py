"""Whole-volume scoring: time and peak memory of the tile-by-tile pass against an in-memory numpy anchor.

``curated segment evaluate`` scores every voxel outside the training regions when
the truth covers the volume. It reads prediction and truth one tile at a time, so
its memory should stay flat as the volume grows, while the anchor (load both
volumes whole, count TP/FP/FN with numpy) grows with the volume. Both count the
same voxels; the script checks that their TP/FP/FN agree exactly.

Each measurement runs in a fresh process (peak RSS via ``resource``), after a
volume pair is written as OME-Zarr (uint8, 64³ chunks) outside the timing.

Run::

    OMP_NUM_THREADS=1 python benchmarks/evaluate_whole.py --sizes 64 128 192 --scratch /tmp/wv-bench
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write(path: Path, n: int) -> None:
    from curated.images import add_labels, write_ome_zarr

    rng = np.random.default_rng(0)
    shape = (n, n, n)
    img = rng.integers(0, 255, size=shape, dtype=np.uint8)
    write_ome_zarr(img, path, voxel_size=(8.0, 8.0, 8.0), chunks=64, shard=128)
    del img
    truth = np.zeros(shape, np.uint8)
    zz, yy, xx = np.ogrid[:n, :n, :n]
    for c in rng.integers(8, n - 8, size=(max(4, n // 8), 3)):
        truth[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 36] = 1
    truth[:, : n // 6, :] = 2
    pred = (truth == 1).astype(np.uint8)
    pred[:, :, n // 2 :] = np.roll(pred[:, :, n // 2 :], 2, axis=1)
    pred[:, n // 6 - 2 : n // 6 + 1, :] = 1
    add_labels(path, "truth", truth, kind="truth", origin="simulated")
    add_labels(path, "pred", pred, kind="prediction", model={"id": "bench"})


def _child(mode: str, path: str) -> None:
    from curated.segment.volume import open_level0

    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "curated":
        from curated.segment.wholevolume import score_whole_volume

        image = Path(path)
        wv = score_whole_volume(
            open_level0(image / "labels" / "pred", "pred"),
            open_level0(image / "labels" / "truth", "truth"),
            label_value=1,
            pred_value=1,
        )
        raw = wv.overall["raw"]
        counts = [raw["tp"], raw["fp"], raw["fn"]]
    else:
        import zarr

        p = np.asarray(zarr.open_array(f"{path}/labels/pred/0", mode="r")[...]) == 1
        t = np.asarray(zarr.open_array(f"{path}/labels/truth/0", mode="r")[...]) == 1
        counts = [int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB → MB on Linux
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak, "counts": counts}))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 192])
    p.add_argument("--scratch", default=None)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="wv-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in args.sizes:
            path = scratch / f"v{n}.ome.zarr"
            if not path.exists():
                _write(path, n)
            res = {}
            for mode in ("curated", "numpy"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            same = res["curated"]["counts"] == res["numpy"]["counts"]
            rows.append((n, res, same))
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        "| volume | voxels | curated wall s | curated CPU s | numpy wall s | numpy CPU s "
        "| curated peak MB | numpy peak MB | peak ratio | counts agree |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n, r, same in rows:
        c, a = r["curated"], r["numpy"]
        print(
            f"| {n}³ | {n**3} | {c['seconds']:.2f} | {c['cpu']:.2f} | {a['seconds']:.2f} | "
            f"{a['cpu']:.2f} | {c['peak_mb']:.0f} | "
            f"{a['peak_mb']:.0f} | {c['peak_mb'] / a['peak_mb']:.2f}x | {'yes' if same else 'NO'} |"
        )
    return 0 if all(s for _, _, s in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
