"""Prediction on an image larger than one shared input: pre-processing per write unit vs per tile.

``curated segment predict`` pre-processes (normalises) the whole padded image once when it
fits ``WHOLE_INPUT_VOXELS`` (32 Mi voxels). A larger image used to be pre-processed tile by
tile, each tile re-filtering its own halo (3 σ of the 400 nm local-contrast normalisation:
281 voxels per side at 4.6 nm around a 128-voxel tile); it is now pre-processed once per
write unit. This script times, in one run and interleaved round by round, each in its own
process on one thread:

- ``before``: the code at ``--before-rev`` (per-tile pre-processing), extracted with
  ``git archive`` into the scratch folder;
- ``after``: this checkout's ``src`` (per-unit pre-processing);
- ``whole``: this checkout with the shared-input budget raised so that the whole padded
  image is pre-processed once: the floor (memory grows with the image, so it is not the
  default for large images).

It prints wall and CPU seconds, peak RSS, the load average, the before/after ratio per
round, and checks that the three label images are identical voxel for voxel.

    OMP_NUM_THREADS=1 python benchmarks/predict_input.py --image IMG.ome.zarr --model MODEL \\
        --before-rev main --rounds 2

``--image`` is copied into the scratch folder first (the source is never written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def worker(mode: str, image: str, model: str, name: str) -> dict:
    # one thread everywhere: predict sizes torch's pool from os.cpu_count() // workers
    os.cpu_count = lambda: 1  # type: ignore[assignment]
    import torch

    torch.set_num_threads(1)
    from curated.segment import predict as predict_pkg  # noqa: F401  (import before the clock)

    predict_module = sys.modules["curated.segment.predict"]
    if mode == "whole":
        predict_module.WHOLE_INPUT_VOXELS = 2**40
    from curated.segment import predict

    t0, c0 = time.perf_counter(), os.times()
    r = predict(model, image, name=name, device="cpu", workers=1, overwrite=True)
    wall, c1 = time.perf_counter() - t0, os.times()
    return {
        "wall": wall,
        "cpu": (c1.user - c0.user) + (c1.system - c0.system),
        "rss_mib": _rss_mib(),
        "units": r.details.get("units"),
        "tile": r.details.get("tile"),
        "source": str(Path(predict_module.__file__).resolve()),
    }


def _run(mode: str, src: Path, image: Path, model: str, name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--worker", mode, str(image), model, name]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["load"] = load
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--image", help="OME-Zarr image (copied; level 0 is predicted)")
    ap.add_argument("--model", help="model folder")
    ap.add_argument("--before-rev", default="main", help="git revision of the 'before' code")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", nargs="+", default=["before", "after", "whole"])
    ap.add_argument("--scratch", default="/tmp/curated-bench-predict-input")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    if not (args.image and args.model):
        ap.error("--image and --model are required")

    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    before = scratch / "before"
    before.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE), "archive", args.before_rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    srcs = {"before": before / "src", "after": HERE / "src", "whole": HERE / "src"}
    image = scratch / "image.ome.zarr"
    shutil.copytree(args.image, image)

    rows: dict[str, list[dict]] = {m: [] for m in args.modes}
    for r in range(args.rounds):
        for mode in args.modes:
            res = _run(mode, srcs[mode], image, args.model, f"bench-{mode}")
            rows[mode].append(res)
            print(
                f"round {r + 1} {mode:>6}: wall {res['wall']:7.1f} s  cpu {res['cpu']:7.1f} s  "
                f"rss {res['rss_mib']:6.0f} MiB  load {res['load']:.2f}",
                flush=True,
            )

    import numpy as np

    sys.path.insert(0, str(HERE / "src"))
    from curated.segment import _store

    ref = _store.label_level0(image, f"bench-{args.modes[0]}")[...]
    same = all(
        np.array_equal(ref, _store.label_level0(image, f"bench-{m}")[...]) for m in args.modes[1:]
    )
    first = rows[args.modes[0]][0]
    print()
    print(f"image {args.image}, model {args.model}, tile {first['tile']}, units {first['units']}")
    print(f"before = {args.before_rev}; one thread (OMP_NUM_THREADS=1, torch 1 thread, workers 1)")
    for mode, res in rows.items():
        print(f"{mode:>6} code: {res[0]['source']}")
    print(
        f"{'mode':>6} | {'wall s (each round)':>24} | {'cpu s (each round)':>24} | {'RSS MiB':>8}"
    )
    for mode, res in rows.items():
        walls = " ".join(f"{x['wall']:.1f}" for x in res)
        cpus = " ".join(f"{x['cpu']:.1f}" for x in res)
        rss = max(x["rss_mib"] for x in res)
        print(f"{mode:>6} | {walls:>24} | {cpus:>24} | {rss:>8.0f}")
    if "before" in rows and "after" in rows:
        ratios = [
            (b["wall"] / a["wall"], b["cpu"] / a["cpu"])
            for b, a in zip(rows["before"], rows["after"], strict=True)
        ]
        print(
            "before/after per round: " + ", ".join(f"wall {w:.2f}x cpu {c:.2f}x" for w, c in ratios)
        )
    if "whole" in rows and "after" in rows:
        ratios = [a["cpu"] / w["cpu"] for a, w in zip(rows["after"], rows["whole"], strict=True)]
        print("after/whole (cpu) per round: " + ", ".join(f"{x:.2f}x" for x in ratios))
    print(f"label images identical across modes: {'yes' if same else 'NO'}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
