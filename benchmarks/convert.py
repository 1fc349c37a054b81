"""Benchmark: TIFF stack → multiscale OME-Zarr with curated, ome-zarr-py and ngff-zarr.

Every converter reads the same synthetic uint8 BigTIFF (smooth structure + noise,
EM-like) and writes OME-Zarr 0.5 with 64³ inner chunks in 512³ shards and
blosc-zstd level 3 + shuffle. Each run happens in its own subprocess, which
reports its wall time and its peak resident memory (``ru_maxrss``).

    python benchmarks/convert.py --gib 0.5                   # all three
    python benchmarks/convert.py --gib 4 --only curated      # the big case, curated only

Scratch data go to ``--workdir`` (default ``/tmp/images-bench``) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 64
SHARD = 512
VOXEL = (8.0, 4.0, 4.0)


def make_stack(path: Path, gib: float, seed: int = 0) -> tuple[int, int, int]:
    """Write a uint8 BigTIFF of about ``gib`` GiB page by page (bounded memory)."""
    import tifffile

    side = 1024
    depth = int(round(gib * 2**30 / side / side))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for z in range(depth):
            base = 128 + 50 * np.sin(xx / 37.0 + z / 23.0) * np.cos(yy / 53.0 - z / 31.0)
            page = np.clip(base + rng.normal(0, 12, (side, side)), 0, 255).astype(np.uint8)
            tw.write(page, photometric="minisblack", contiguous=True, metadata=None)
    return depth, side, side


def _source_dask(src: str):
    import dask.array as da
    import tifffile
    import zarr

    store = tifffile.imread(src, aszarr=True)
    arr = zarr.open_array(store, mode="r")
    return da.from_zarr(arr).rechunk((CHUNK, -1, -1))


def run_curated(src: str, dest: str) -> dict:
    from curated.images import convert_to_ome_zarr

    t0 = time.perf_counter()
    res = convert_to_ome_zarr(src, dest, voxel_size=VOXEL, chunks=CHUNK, shard=SHARD)
    return {
        "seconds": time.perf_counter() - t0,
        "write_seconds": res.details["seconds"],
        "levels": len(res.details["levels"]),
    }


def run_ome_zarr_py(src: str, dest: str) -> dict:
    import zarr
    from ome_zarr.writer import write_image
    from zarr.codecs import BloscCodec

    image = _source_dask(src)
    t0 = time.perf_counter()
    group = zarr.open_group(dest, mode="w")
    write_image(
        image,
        group,
        axes="zyx",
        storage_options={
            "chunks": (CHUNK,) * 3,
            "shards": (SHARD,) * 3,
            "compressor": BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
        },
    )
    return {"seconds": time.perf_counter() - t0, "levels": len(list(group.array_keys()))}


def run_ngff_zarr(src: str, dest: str) -> dict:
    import ngff_zarr as nz
    from zarr.codecs import BloscCodec

    image = _source_dask(src)
    t0 = time.perf_counter()
    img = nz.to_ngff_image(
        image,
        dims=["z", "y", "x"],
        scale=dict(zip("zyx", VOXEL, strict=True)),
        axes_units=dict.fromkeys("zyx", "nanometer"),
    )
    ms = nz.to_multiscales(img, chunks=CHUNK)
    nz.to_ngff_zarr(
        dest,
        ms,
        version="0.5",
        chunks_per_shard=SHARD // CHUNK,
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")],
    )
    return {"seconds": time.perf_counter() - t0, "levels": len(ms.images)}


RUNNERS = {"curated": run_curated, "ome-zarr-py": run_ome_zarr_py, "ngff-zarr": run_ngff_zarr}


def child(name: str, src: str, dest: str) -> None:
    out = RUNNERS[name](src, dest)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(name: str, src: Path, dest: Path, timeout: int) -> dict:
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["sync"], check=False)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(src), str(dest)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout} s"}
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {
            "name": name,
            "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"],
        }
    res = json.loads(line[7:])
    files = [p for p in dest.rglob("*") if p.is_file()]
    res.update(name=name, files=len(files), stored_mb=sum(p.stat().st_size for p in files) / 1e6)
    shutil.rmtree(dest, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=0.5)
    ap.add_argument("--only", nargs="*", choices=list(RUNNERS), default=list(RUNNERS))
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/images-bench"))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic TIFF")
    ap.add_argument("--child", nargs=3, metavar=("NAME", "SRC", "DEST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / f"stack-{args.gib:g}gib.tif"
    try:
        if not src.exists():
            shape = make_stack(src, args.gib)
        else:
            import tifffile

            shape = tifffile.TiffFile(src).series[0].shape
        nbytes = src.stat().st_size
        print(
            f"source: {src} shape {tuple(shape)} uint8, {nbytes / 1e6:.0f} MB; chunks {CHUNK}^3, shards {SHARD}^3, blosc-zstd3+shuffle"
        )
        rows = []
        for name in args.only:
            r = measure(name, src, args.workdir / f"{name}.ome.zarr", args.timeout)
            if "error" not in r:
                r["mb_s"] = nbytes / 1e6 / r["seconds"]
            rows.append(r)
            print(json.dumps(r), flush=True)
        base = {r["name"]: r for r in rows if "error" not in r}
        print()
        print(
            "| converter | levels | seconds | MB/s | peak RSS MB | stored MB | files | throughput vs ome-zarr-py | RSS vs ome-zarr-py |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        ref = base.get("ome-zarr-py")
        for r in rows:
            if "error" in r:
                print(f"| {r['name']} | error: {r['error']} |||||||")
                continue
            tr = f"{r['mb_s'] / ref['mb_s']:.1f}x" if ref else "n/a"
            rr = f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x" if ref else "n/a"
            print(
                f"| {r['name']} | {r['levels']} | {r['seconds']:.1f} | {r['mb_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['stored_mb']:.0f} | {r['files']} | {tr} | {rr} |"
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
