"""How long header import takes, beside ome-types (the anchor) and a full pixel read.

Writes one OME-TIFF stack (``--pages`` planes of ``--size``² uint8) under a scratch
folder, then times, best of ``--repeat``:

- ``curated.metadata.from_ome`` (OME-XML parse + mapping to the REMBI record),
- ``ome_types.from_tiff`` (the anchor: reads tag 270 and parses it),
- ``tifffile.imread`` (what reading the pixels would cost).

Run::

    python benchmarks/metadata_import.py --pages 400 --size 512 --scratch /tmp/metadata-bench
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import ome_types
import tifffile

from curated.metadata import from_ome


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/metadata-bench"))
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    path = args.scratch / "stack.ome.tif"
    try:
        rng = np.random.default_rng(0)
        with tifffile.TiffWriter(path, ome=True) as tif:
            data = rng.integers(0, 255, (args.pages, args.size, args.size), dtype=np.uint8)
            tif.write(
                data,
                metadata={
                    "axes": "ZYX",
                    "PhysicalSizeX": 0.008,
                    "PhysicalSizeY": 0.008,
                    "PhysicalSizeZ": 0.008,
                },
            )
        size_mb = path.stat().st_size / 1e6
        t_curated = best(lambda: from_ome(path), args.repeat)
        t_ome = best(lambda: ome_types.from_tiff(path), args.repeat)
        t_read = best(lambda: tifffile.imread(path), max(1, args.repeat // 2))
        print(f"file: {args.pages} x {args.size} x {args.size} uint8 OME-TIFF, {size_mb:.1f} MB")
        print(f"{'operation':<32}{'seconds':>10}{'vs ome-types':>14}")
        for name, t in (
            ("curated from_ome", t_curated),
            ("ome_types.from_tiff (anchor)", t_ome),
            ("tifffile.imread (pixels)", t_read),
        ):
            print(f"{name:<32}{t:>10.4f}{t / t_ome:>13.2f}x")
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
