"""Storage formats for vEM: ``curated bench formats`` on the demo sample and a larger volume.

    python benchmarks/storage_formats.py                       # demo sample + 0.5 GiB volume
    python benchmarks/storage_formats.py --gib 4 --skip-demo   # the 4 GiB volume
    python benchmarks/storage_formats.py --gib 0               # the demo sample only

Each run of ``curated bench formats`` happens in its own subprocess, which reports its
wall time and peak resident memory (``ru_maxrss`` of the child). The larger volume is
a uint8 BigTIFF made of the demo sample's voxels tiled (mirrored) to the size asked,
written page by page, so it compresses like EM and not like zeros or pure noise.

The anchor is the disk: the BigTIFF source is read once cold (evicted with
``posix_fadvise``) with plain ``os.readv`` into one reused buffer, and each format's
full scan is shown as a fraction of that rate. Scratch data go to ``--workdir``
(default ``/tmp/storage-bench``) and are deleted at the end unless ``--keep``.
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

import numpy as np

SIDE = 2048


def make_volume(sample: Path, dest: Path, gib: float) -> tuple[int, int, int]:
    """A uint8 BigTIFF of about ``gib`` GiB tiled from the sample's level 0 (one plane in memory)."""
    import tifffile

    from curated.images.reader import open_image

    tile = open_image(sample).read()
    if tile.dtype != np.uint8:
        tile = (tile >> (8 * (tile.dtype.itemsize - 1))).astype(np.uint8)
    depth = max(1, int(round(gib * 2**30 / SIDE / SIDE)))
    reps = (-(-SIDE // tile.shape[1]), -(-SIDE // tile.shape[2]))

    def planes():
        for z in range(depth):
            k, r = divmod(z, tile.shape[0])
            plane = tile[r if k % 2 == 0 else tile.shape[0] - 1 - r]  # mirrored: no seam
            row = np.concatenate([plane, plane[:, ::-1]] * (reps[1] // 2 + 1), axis=1)
            full = np.concatenate([row, row[::-1]] * (reps[0] // 2 + 1), axis=0)
            yield np.ascontiguousarray(full[:SIDE, :SIDE])

    tifffile.imwrite(
        dest,
        planes(),
        shape=(depth, SIDE, SIDE),
        dtype=np.uint8,
        photometric="minisblack",
        metadata={"axes": "ZYX"},
        bigtiff=True,
    )
    return depth, SIDE, SIDE


def disk_anchor(path: Path) -> float:
    """MB/s of reading ``path`` cold with plain reads (the ceiling any format's scan is held to)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        buf = bytearray(16 << 20)
        total, t0 = 0, time.perf_counter()
        while n := os.readv(fd, [buf]):
            total += n
        return total / (time.perf_counter() - t0) / 1e6
    finally:
        os.close(fd)


def add_fragments(sample: Path, edge: int = 4) -> str:
    """Add ``fragments``: each connected object of the truth cut by an ``edge``³ grid.

    An over-segmentation like the supervoxels of connectomics pipelines, so that the
    Parquet/CSV comparison runs on a table of realistic length (tens of thousands of rows).
    """
    from scipy import ndimage

    from curated.images import add_labels
    from curated.images.reader import open_image

    img = open_image(sample)
    instances, _ = ndimage.label(img.open_label("truth").read() > 0)
    z, y, x = (np.arange(n) // edge for n in instances.shape)
    cells = (z[:, None, None] * (y.max() + 1) + y[None, :, None]) * (x.max() + 1) + x[None, None, :]
    key = instances.astype(np.int64) * (int(cells.max()) + 1) + cells
    _, ids = np.unique(np.where(instances > 0, key, -1), return_inverse=True)
    fragments = ids.reshape(instances.shape).astype(np.uint32)  # background (-1) sorts first: id 0
    add_labels(img, "fragments", fragments, kind="truth", origin="simulated")
    return "fragments"


def run_bench(image: Path, out: Path, blocks: int, labels: str | None = None) -> dict:
    """``curated bench formats IMAGE --out OUT --json`` in a subprocess; its record, wall time and peak RSS."""
    cmd = [sys.executable, "-m", "curated", "--quiet", "bench", "formats", str(image)]
    cmd += ["--out", str(out), "--blocks", str(blocks), "--json"]
    cmd += ["--labels", labels] if labels else []
    stdout = out.with_suffix(".stdout")
    t0 = time.perf_counter()
    with open(stdout, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE, text=True)
        # wait4: the peak RSS of this very child (RUSAGE_CHILDREN would mix in earlier children)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench formats failed on {image}:\n{proc.stderr.read() if proc.stderr else ''}")
    record = json.loads(stdout.read_text())["details"]
    record["wall_s"] = round(wall, 1)
    record["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return record


def report(name: str, rec: dict, anchor: float | None) -> None:
    from curated.bench.formats import markdown_table

    src = rec["source"]
    print(
        f"\n#### {name}: {'x'.join(map(str, src['shape']))} {src['dtype']} ({src['bytes'] / 1e6:.0f} MB)"
    )
    print(f"\nwall {rec['wall_s']} s, peak RSS {rec['peak_rss_mb']} MB\n")
    print(markdown_table(rec))
    if anchor:
        print(
            f"\ndisk anchor (plain cold read of the BigTIFF source): {anchor:.0f} MB/s; scan / anchor: "
            + ", ".join(f"{r['format']} {r['scan_mb_s'] / anchor:.2f}" for r in rec["formats"])
        )
    t = rec["tables"]
    if "skipped" in t:
        print(f"\nParquet vs CSV: skipped ({t['skipped']})")
    else:
        print(
            f"\nmeasurements table ({t['rows']} rows x {t['columns']} columns, labels {t['labels']!r}):\n\n"
            "| table format | bytes | write ms | read ms | units kept |\n|---|---|---|---|---|"
        )
        for kind in ("parquet", "csv"):
            k = t[kind]
            print(
                f"| {kind} | {k['bytes']} | {k['write_ms']} | {k['read_ms']} | {k['units_kept']} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--gib", type=float, default=0.5, help="size of the larger volume (default 0.5)"
    )
    ap.add_argument(
        "--blocks", type=int, default=5, help="random 64³ blocks per format (default 5)"
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/storage-bench"))
    ap.add_argument("--skip-demo", action="store_true", help="only the larger volume")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        sample = work / "sample.ome.zarr"
        subprocess.run(
            [sys.executable, "-m", "curated", "--quiet", "sample", "fibsem", str(sample)],
            check=True,
        )
        if not args.skip_demo:
            labels = add_fragments(sample)
            rec = run_bench(sample, work / "demo", args.blocks, labels)
            report("demo sample (`curated sample fibsem`)", rec, None)
        if args.gib <= 0:
            return
        big = work / "volume.tif"
        make_volume(sample, big, args.gib)
        anchor = disk_anchor(big)
        report(
            f"{args.gib:g} GiB volume (BigTIFF source)",
            run_bench(big, work / "big", args.blocks),
            anchor,
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
