"""Benchmark: `curated convert` of a stack of compressed single-strip TIFF pages (or an HDF5 dataset in
chunks one plane deep, ``--format hdf5``), beside tifffile (h5py) + zarr.

Microscope software, ImageJ and FIB-SEM acquisition programs write compressed slices as one
strip per page (RowsPerStrip = ImageLength): a reader cannot decode part of such a page.
A synthetic uint8 stack (smooth structure + noise, EM-like; default 16 × 4096²) is written
as one zlib strip per page and converted to OME-Zarr 0.5 (64³ chunks in 512³ shards) by
curated, each run in its own subprocess, which reports wall time, peak resident memory
(``ru_maxrss``) and how many strips were decoded:

- ``curated`` as shipped (decoded strips kept in the per-process segment cache);
- with ``--cache-mb M`` (``CURATED_SEGMENT_CACHE_MB=M``, set below the decoded pages of one
  shard's depth to see the cyclic pattern of a slab deeper than memory), also ``curated, no
  spill`` (``CURATED_SEGMENT_SPILL_MB=0``: what memory drops is decoded again);
- ``curated, no segment cache`` (``CURATED_SEGMENT_CACHE_MB=0`` and no spill: every shard
  touching a page decodes its strip again, as before the cache);
- the anchor: ``tifffile.imread`` of the whole stack into memory, then one
  ``zarr.create_array`` write of it with the same chunks, shards and codec (blosc-zstd 3,
  bit shuffle): level 0 only, where curated also writes the pyramid.

    python benchmarks/tiff_strips.py
    python benchmarks/tiff_strips.py --pages 32 --side 8192 --no-uncached
    python benchmarks/tiff_strips.py --pages 64 --side 2048 --workers 1 --cache-mb 128
    python benchmarks/tiff_strips.py --format hdf5 --pages 32 --side 4096

``--format hdf5``: the strips decoded column counts planes read by the anchor only (h5py
decodes HDF5 chunks out of sight); the runs with no cache read as before the chunk cache.

Scratch data go to ``--workdir`` (default ``/tmp/tiff-strips-bench``), deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

CHUNK = 64
SHARD = 512
VOXEL = (8.0, 4.0, 4.0)


def make_stack(path: Path, pages: int, side: int) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)

    def planes():  # written one page at a time (bounded memory)
        for z in range(pages):
            base = 128 + 50 * np.sin(xx / 37.0 + z / 23.0) * np.cos(yy / 53.0 - z / 31.0)
            yield np.clip(base + rng.normal(0, 12, (side, side)), 0, 255).astype(np.uint8)

    if path.suffix == ".h5":  # a stack written slice by slice: chunks one plane deep, gzip
        import h5py

        with h5py.File(path, "w") as f:
            d = f.create_dataset(
                "data", (pages, side, side), np.uint8, chunks=(1, side, side), compression="gzip"
            )
            for z, plane in enumerate(planes()):
                d[z] = plane
        return

    tifffile.imwrite(
        path,
        planes(),
        shape=(pages, side, side),
        dtype=np.uint8,
        bigtiff=True,
        photometric="minisblack",
        compression="zlib",
        rowsperstrip=side,
        metadata={"axes": "ZYX"},
    )


def _count_decodes() -> dict[str, int]:
    """Count tifffile's strip/tile decodes in this process."""
    import tifffile.tifffile as tt

    counts = {"decodes": 0}
    lock = threading.Lock()
    real = tt.TiffPage.decode.func

    def counting(page):  # type: ignore[no-untyped-def]
        fn = real(page)

        def decode(data, index, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                counts["decodes"] += 1
            return fn(data, index, **kwargs)

        return decode

    tt.TiffPage.decode = property(counting)  # type: ignore[assignment]
    return counts


def run_curated(src: str, dest: str, workers: int | None) -> dict:
    from curated.images import convert_to_ome_zarr

    counts = _count_decodes()
    t0 = time.perf_counter()
    res = convert_to_ome_zarr(
        src, dest, voxel_size=VOXEL, chunks=CHUNK, shard=SHARD, workers=workers
    )
    return {
        "seconds": time.perf_counter() - t0,
        "levels": len(res.details["levels"]),
        "decodes": counts["decodes"],
    }


def run_anchor(src: str, dest: str, workers: int | None) -> dict:
    import tifffile
    import zarr
    from zarr.codecs import BloscCodec

    counts = _count_decodes()
    t0 = time.perf_counter()
    if src.endswith(":/data"):
        import h5py

        with h5py.File(src[: -len(":/data")], "r") as f:
            data = f["data"][...]
        counts["decodes"] = len(data)
    else:
        data = tifffile.imread(src, maxworkers=workers)
    shape = data.shape
    arr = zarr.create_array(
        dest,
        shape=shape,
        dtype=data.dtype,
        chunks=tuple(min(CHUNK, n) for n in shape),
        shards=tuple(min(SHARD, -(-n // CHUNK) * CHUNK) for n in shape),
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
    )
    arr[...] = data
    return {"seconds": time.perf_counter() - t0, "levels": 1, "decodes": counts["decodes"]}


def child(kind: str, src: str, dest: str, workers: int | None) -> None:
    run = run_anchor if kind == "anchor" else run_curated
    out = run(src, dest, workers)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(
    kind: str, src: str, dest: Path, workers: int | None, timeout: int, cache_mb: float | None
) -> dict:
    shutil.rmtree(dest, ignore_errors=True)
    env = dict(os.environ)
    if cache_mb is not None:
        env["CURATED_SEGMENT_CACHE_MB"] = str(cache_mb)
    if kind in ("uncached", "unspilled"):
        env["CURATED_SEGMENT_SPILL_MB"] = "0"
    if kind == "uncached":
        env["CURATED_SEGMENT_CACHE_MB"] = "0"
    child_kind = "cached" if kind == "unspilled" else kind
    cmd = [sys.executable, __file__, "--child", child_kind, str(src), str(dest)]
    if workers:
        cmd += ["--workers", str(workers)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"error": ((proc.stderr or proc.stdout).strip().splitlines() or ["failed"])[-1]}
    return json.loads(line[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--format",
        choices=["tiff", "hdf5"],
        default="tiff",
        help="hdf5: an HDF5 dataset in gzip chunks one plane deep (a stack written slice by slice)",
    )
    ap.add_argument("--pages", type=int, default=16)
    ap.add_argument("--side", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tiff-strips-bench"))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--no-uncached", action="store_true", help="skip the run without the cache")
    ap.add_argument(
        "--cache-mb", type=float, default=None, help="memory for decoded pages (MiB; default 1024)"
    )
    ap.add_argument("--child", nargs=3, metavar=("KIND", "SRC", "DEST"), help=argparse.SUPPRESS)
    ap.add_argument("--make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.workers)
        return
    if args.make:
        make_stack(Path(args.make), args.pages, args.side)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / ("stack.h5" if args.format == "hdf5" else "stack.tif")
    given = f"{src}:/data" if args.format == "hdf5" else str(src)
    try:
        # written by a child process: a child started from this one would inherit (through
        # exec) the peak RSS figure of the writing
        make = [sys.executable, __file__, "--make", str(src)]
        subprocess.run([*make, "--pages", str(args.pages), "--side", str(args.side)], check=True)
        nbytes = args.pages * args.side * args.side
        layout = (
            "gzip chunks one plane deep" if args.format == "hdf5" else "one zlib strip per page"
        )
        print(
            f"{args.pages} × {args.side}² uint8, {layout} "
            f"({nbytes / 2**20:.0f} MiB raw, {src.stat().st_size / 2**20:.0f} MiB in the file), "
            f"{args.workers or os.cpu_count()} worker thread(s), decoded-page memory "
            f"{args.cache_mb if args.cache_mb is not None else 1024:g} MiB"
        )
        runs = {"curated": "cached"}
        if args.cache_mb is not None:
            runs["curated, no spill"] = "unspilled"
        if not args.no_uncached:
            runs["curated, no segment cache"] = "uncached"
        runs["anchor: tifffile.imread + zarr write"] = "anchor"
        got = {
            name: measure(
                kind, given, args.workdir / "out.zarr", args.workers, args.timeout, args.cache_mb
            )
            for name, kind in runs.items()
        }
        anchor = got["anchor: tifffile.imread + zarr write"].get("seconds")
        print("\n| run | levels | s | × anchor | MiB/s | strips decoded | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in got.items():
            if "error" in r:
                print(f"| {name} | – | – | – | – | – | {r['error']} |")
                continue
            ratio = f"{r['seconds'] / anchor:.2f}" if anchor else "–"
            print(
                f"| {name} | {r['levels']} | {r['seconds']:.1f} | {ratio} | "
                f"{nbytes / 2**20 / r['seconds']:.0f} | {r['decodes']} | {r['peak_rss_mb']:.0f} |"
            )
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
