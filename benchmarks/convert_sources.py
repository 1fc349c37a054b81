"""Benchmark: memory and speed of `curated convert` from each source format, beside the TIFF figure.

The same synthetic uint8 volume (smooth structure + noise, EM-like; 1024×1024 planes)
is written as a BigTIFF, an HDF5 dataset (64³ chunks), an MRC file, a Zarr v2 array, an
N5 array and an OME-Zarr 0.4 image; each is converted to OME-Zarr 0.5 (64³ chunks in
512³ shards) by curated in its own subprocess, which reports wall time and peak
resident memory (``ru_maxrss``). The anchor in the same run is ome-zarr-py's
``write_image`` on the HDF5 dataset through ``dask.array.from_array`` (the usual way
to get an HDF5 volume into OME-Zarr with the reference library).

    python benchmarks/convert_sources.py --gib 0.25
    python benchmarks/convert_sources.py --gib 1 --no-anchor --only TIFF N5

Scratch data go to ``--workdir`` (default ``/tmp/sources-bench``) and are deleted at the end.
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
SIDE = 1024


def planes(depth: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    for z in range(depth):
        base = 128 + 50 * np.sin(xx / 37.0 + z / 23.0) * np.cos(yy / 53.0 - z / 31.0)
        yield z, np.clip(base + rng.normal(0, 12, (SIDE, SIDE)), 0, 255).astype(np.uint8)


def make_sources(work: Path, depth: int) -> dict[str, str]:
    """Write every source slab by slab (bounded memory); return name -> source argument."""
    import h5py
    import mrcfile
    import tensorstore as ts
    import tifffile
    import zarr

    shape = (depth, SIDE, SIDE)
    tif = work / "v.tif"
    h5 = work / "v.h5"
    mrc = work / "v.mrc"
    z2 = work / "v2.zarr"
    n5 = work / "v.n5"
    with h5py.File(h5, "w") as f:
        d = f.create_dataset("/volumes/raw", shape=shape, dtype="u1", chunks=(CHUNK,) * 3)
        d.attrs["element_size_um"] = [v / 1000 for v in VOXEL]
    za = zarr.create_array(str(z2), shape=shape, chunks=(CHUNK,) * 3, dtype="u1", zarr_format=2)
    nspec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(n5 / "raw")},
        "metadata": {
            "dimensions": [SIDE, SIDE, depth],
            "blockSize": [CHUNK] * 3,
            "dataType": "uint8",
            "compression": {"type": "gzip"},
        },  # fmt: skip
        "create": True,
    }
    na = ts.open(nspec).result().T
    mm = mrcfile.new_mmap(
        mrc, shape=shape, mrc_mode=0, overwrite=True
    )  # int8: MRC has no uint8 mode
    mm.voxel_size = (VOXEL[2] * 10, VOXEL[1] * 10, VOXEL[0] * 10)
    with tifffile.TiffWriter(tif, bigtiff=True) as tw:
        slab = np.empty((CHUNK, SIDE, SIDE), np.uint8)
        for z, page in planes(depth):
            tw.write(page, photometric="minisblack", contiguous=True, metadata=None)
            slab[z % CHUNK] = page
            if z % CHUNK == CHUNK - 1 or z == depth - 1:
                z0 = z - z % CHUNK
                n = z - z0 + 1
                with h5py.File(h5, "a") as f:
                    f["/volumes/raw"][z0 : z + 1] = slab[:n]
                za[z0 : z + 1] = slab[:n]
                na[z0 : z + 1] = slab[:n]
                mm.data[z0 : z + 1] = slab[:n].view(np.int8)
    mm.close()
    meta = n5 / "raw" / "attributes.json"
    attrs = json.loads(meta.read_text())
    attrs["pixelResolution"] = {"dimensions": [VOXEL[2], VOXEL[1], VOXEL[0]], "unit": "nm"}
    meta.write_text(json.dumps(attrs))
    (n5 / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    z2.joinpath(".zattrs").write_text(json.dumps({"element_size_um": [v / 1000 for v in VOXEL]}))
    ome04 = work / "v04.ome.zarr"
    from curated.images import convert_to_ome_zarr

    convert_to_ome_zarr(tif, ome04, voxel_size=VOXEL, ngff_version="0.4", chunks=CHUNK)
    return {
        "TIFF (reference)": str(tif),
        "HDF5": f"{h5}:/volumes/raw",
        "MRC": str(mrc),
        "Zarr v2": str(z2),
        "N5": f"{n5}:/raw",
        "OME-Zarr 0.4": str(ome04),
    }


def run_curated(src: str, dest: str) -> dict:
    from curated.images import convert_to_ome_zarr

    t0 = time.perf_counter()
    vs = None if not src.endswith(".tif") else VOXEL
    res = convert_to_ome_zarr(src, dest, voxel_size=vs, chunks=CHUNK, shard=SHARD)
    return {"seconds": time.perf_counter() - t0, "levels": len(res.details["levels"])}


def run_ome_zarr_py(src: str, dest: str) -> dict:
    import dask.array as da
    import h5py
    import zarr
    from ome_zarr.writer import write_image
    from zarr.codecs import BloscCodec

    path, _, key = src.partition(":")
    f = h5py.File(path, "r")
    image = da.from_array(f[key], chunks=(CHUNK, -1, -1))
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


def child(kind: str, src: str, dest: str) -> None:
    out = (run_ome_zarr_py if kind == "anchor" else run_curated)(src, dest)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def measure(kind: str, src: str, dest: Path, timeout: int) -> dict:
    shutil.rmtree(dest, ignore_errors=True)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, src, str(dest)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
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
    ap.add_argument("--gib", type=float, default=0.25)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sources-bench"))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--no-anchor", action="store_true", help="skip ome-zarr-py")
    ap.add_argument(
        "--only", nargs="*", help="source names to convert (default: all), e.g. TIFF N5"
    )
    ap.add_argument("--child", nargs=3, metavar=("KIND", "SRC", "DEST"), help=argparse.SUPPRESS)
    ap.add_argument("--make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.make:
        print("SOURCES " + json.dumps(make_sources(args.workdir, int(args.make))))
        return
    depth = int(round(args.gib * 2**30 / SIDE / SIDE))
    nbytes = depth * SIDE * SIDE
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        # written by a child process: a forked child inherits the parent's peak RSS figure
        made = subprocess.run(
            [sys.executable, __file__, "--make", str(depth), "--workdir", str(args.workdir)],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(ln for ln in made.stdout.splitlines() if ln.startswith("SOURCES "))
        sources = json.loads(line[8:])
        print(
            f"volume ({depth}, {SIDE}, {SIDE}) uint8, {nbytes / 1e6:.0f} MB; chunks {CHUNK}^3, shards {SHARD}^3"
        )
        picked = {n: s for n, s in sources.items() if not args.only or any(n.startswith(o) for o in args.only)}  # fmt: skip
        rows = [(name, measure("curated", src, args.workdir / "out.ome.zarr", args.timeout)) for name, src in picked.items()]  # fmt: skip
        if not args.no_anchor:
            anchor = measure("anchor", sources["HDF5"], args.workdir / "out.ome.zarr", args.timeout)
            rows.append(("ome-zarr-py 0.18 `write_image` from HDF5 (dask)", anchor))
        ref = dict(rows).get("TIFF (reference)", {})
        print("| source | converter | seconds | MB/s | peak RSS MB | RSS vs TIFF | RSS / volume |")
        print("|---|---|---|---|---|---|---|")
        for name, r in rows:
            if "error" in r:
                print(f"| {name} | error: {r['error']} ||||||")
                continue
            who = "ome-zarr-py" if name.startswith("ome-zarr-py") else "curated"
            vs_tiff = (
                f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}x"
                if ref and "error" not in ref
                else "n/a"
            )
            print(
                f"| {name} | {who} | {r['seconds']:.1f} | {nbytes / 1e6 / r['seconds']:.0f} | "
                f"{r['peak_rss_mb']:.0f} | {vs_tiff} | {r['peak_rss_mb'] * 1e6 / nbytes:.2f} |"
            )
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
