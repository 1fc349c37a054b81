"""Benchmark: TIFF stack → multiscale OME-Zarr with curated, beside the fastest level-0 copy and ome-zarr-py.

Every converter reads the same synthetic uint8 BigTIFF (smooth structure + noise,
EM-like) and writes OME-Zarr 0.5 / Zarr v3 with 64³ inner chunks in 512³ shards and
blosc-zstd level 3 + shuffle (level 0 everywhere; curated's default stores its levels 1 and
up with blosc-zstd level 1, ``curated-same-codec`` keeps level 3 on every level). Each
measurement runs in its own subprocess, which reports its wall time (library imports
excluded, for every converter alike), CPU time (imports included) and peak resident
memory (``ru_maxrss``).

The anchors:

* ``zarrs-level0``: level 0 only (no pyramid, no digest), written by zarr-python with the
  ``zarrs`` Rust codec pipeline, the TIFF read slab by slab (one shard deep) with tifffile;
* ``tensorstore-level0``: the same copy written by tensorstore;
* ``ome-zarr-py``: ome-zarr-py's ``write_image`` (a full pyramid, dask);
* ``ngff-zarr``: on request (``--only``).

The goal (issue 18) is curated's *full pyramid* at ≥ 0.7× the throughput of the faster
level-0 copy and ≥ 15× ome-zarr-py. Rounds are interleaved (every converter once per
round, in an order that turns by one each round and is reversed every other round, so that
load from other processes and the slow first run after another program hit all of them
alike; use a ``--repeat`` that is a multiple of twice the number of converters); ratios are taken within a round and the median over
rounds is printed.

    python benchmarks/convert.py --gib 0.5 --repeat 3 --rss-gib 0.25 1 4 --workers 1 2

Scratch data go to ``--workdir`` (default ``/tmp/images-bench``) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
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


def _slabs(src: str):
    """The TIFF in slabs one shard deep (pages read straight into the slab)."""
    import tifffile

    with tifffile.TiffFile(src) as tf:
        pages = tf.pages
        depth = len(pages)
        shape = (depth, *pages[0].shape)
        for z0 in range(0, depth, SHARD):
            slab = np.empty((min(SHARD, depth - z0), *shape[1:]), dtype=pages[0].dtype)
            for i in range(slab.shape[0]):
                pages[z0 + i].asarray(out=slab[i])
            yield shape, z0, slab


def run_curated(
    src: str, dest: str, workers: int | None = None, *, same_codec: bool = False
) -> dict:
    import numcodecs  # noqa: F401
    import tifffile  # noqa: F401
    import zarr  # noqa: F401

    from curated.images import convert_to_ome_zarr

    # the libraries stay outside the clock for every converter (the anchors import zarr or
    # tensorstore before theirs starts); curated imports these lazily, inside the conversion
    t0 = time.perf_counter()
    res = convert_to_ome_zarr(
        src,
        dest,
        voxel_size=VOXEL,
        chunks=CHUNK,
        shard=SHARD,
        workers=workers,
        same_codec=same_codec,
    )
    return {
        "seconds": time.perf_counter() - t0,
        "write_seconds": res.details["seconds"],
        "levels": len(res.details["levels"]),
    }


def run_curated_same_codec(src: str, dest: str, workers: int | None = None) -> dict:
    return run_curated(src, dest, workers, same_codec=True)


def run_zarrs_level0(src: str, dest: str, workers: int | None = None) -> dict:
    import zarr
    from zarr.codecs import BloscCodec

    zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
    t0 = time.perf_counter()
    arr = None
    for shape, z0, slab in _slabs(src):
        if arr is None:
            arr = zarr.create_array(
                dest,
                shape=shape,
                dtype=slab.dtype,
                chunks=(CHUNK,) * 3,
                shards=(SHARD,) * 3,
                compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
                fill_value=0,
                dimension_names=("z", "y", "x"),
            )
        arr[z0 : z0 + slab.shape[0]] = slab
    return {"seconds": time.perf_counter() - t0, "levels": 1}


def run_tensorstore_level0(src: str, dest: str, workers: int | None = None) -> dict:
    import tensorstore as ts

    t0 = time.perf_counter()
    arr = None
    for shape, z0, slab in _slabs(src):
        if arr is None:
            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": dest},
                "metadata": {
                    "shape": list(shape),
                    "data_type": "uint8",
                    "chunk_grid": {
                        "name": "regular",
                        "configuration": {"chunk_shape": [SHARD] * 3},
                    },
                    "codecs": [
                        {
                            "name": "sharding_indexed",
                            "configuration": {
                                "chunk_shape": [CHUNK] * 3,
                                "codecs": [
                                    {"name": "bytes", "configuration": {"endian": "little"}},
                                    {
                                        "name": "blosc",
                                        "configuration": {
                                            "cname": "zstd",
                                            "clevel": 3,
                                            "shuffle": "shuffle",
                                            "typesize": 1,
                                            "blocksize": 0,
                                        },
                                    },
                                ],
                                "index_codecs": [
                                    {"name": "bytes", "configuration": {"endian": "little"}},
                                    {"name": "crc32c"},
                                ],
                            },
                        }
                    ],
                },
                "create": True,
                "delete_existing": True,
            }
            arr = ts.open(spec).result()
        arr[z0 : z0 + slab.shape[0]].write(slab).result()
    return {"seconds": time.perf_counter() - t0, "levels": 1}


def run_ome_zarr_py(src: str, dest: str, workers: int | None = None) -> dict:
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


def run_ngff_zarr(src: str, dest: str, workers: int | None = None) -> dict:
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


RUNNERS = {
    "curated": run_curated,
    "curated-same-codec": run_curated_same_codec,
    "zarrs-level0": run_zarrs_level0,
    "tensorstore-level0": run_tensorstore_level0,
    "ome-zarr-py": run_ome_zarr_py,
    "ngff-zarr": run_ngff_zarr,
}
DEFAULT = ["curated", "zarrs-level0", "tensorstore-level0", "ome-zarr-py"]
LEVEL0 = ("zarrs-level0", "tensorstore-level0")


def child(name: str, src: str, dest: str, workers: str) -> None:
    out = RUNNERS[name](src, dest, int(workers) or None)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = ru.ru_maxrss / 1024
    out["cpu_seconds"] = ru.ru_utime + ru.ru_stime
    print("RESULT " + json.dumps(out))


def measure(name: str, src: Path, dest: Path, timeout: int, workers: int = 0) -> dict:
    label = name if not workers else f"{name} ({workers} worker{'s' if workers > 1 else ''})"
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["sync"], check=False)
    load = os.getloadavg()[0]
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(src), str(dest), str(workers)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"name": label, "error": f"timed out after {timeout} s"}
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]
        return {"name": label, "error": tail[0]}
    res = json.loads(line[7:])
    files = [p for p in dest.rglob("*") if p.is_file()]
    res.update(
        name=label,
        files=len(files),
        stored_mb=sum(p.stat().st_size for p in files) / 1e6,
        load=load,
    )
    shutil.rmtree(dest, ignore_errors=True)
    return res


def _source(workdir: Path, gib: float) -> tuple[Path, tuple[int, ...]]:
    src = workdir / f"stack-{gib:g}gib.tif"
    if not src.exists():
        return src, make_stack(src, gib)
    import tifffile

    with tifffile.TiffFile(src) as tf:
        return src, (len(tf.pages), *tf.pages[0].shape)


def speed_rounds(args: argparse.Namespace) -> None:
    src, shape = _source(args.workdir, args.gib)
    nbytes = src.stat().st_size
    print(
        f"source: {src} shape {tuple(shape)} uint8, {nbytes / 1e6:.0f} MB; chunks {CHUNK}^3, "
        f"shards {SHARD}^3, blosc-zstd3+shuffle; {os.cpu_count()} CPUs"
    )
    rounds: list[dict[str, dict]] = []
    for r in range(args.repeat):
        row: dict[str, dict] = {}
        # the order turns every round: on this project's VM the first run of a program after
        # another one is up to 3x slower (zarrs 2.7 s, then 0.8 s), whichever program it is
        # (turned, and reversed every other round, so that no converter always follows the same one)
        k = r % len(args.only)
        order = args.only[k:] + args.only[:k]
        for name in order[::-1] if r % 2 else order:
            res = measure(name, src, args.workdir / f"{name}.ome.zarr", args.timeout)
            if "error" not in res:
                res["mb_s"] = nbytes / 1e6 / res["seconds"]
            row[name] = res
            print(f"round {r + 1}: " + json.dumps(res), flush=True)
        rounds.append(row)
    print()
    print(
        "| converter | levels | seconds (median) | MB/s | CPU s | peak RSS MB | stored MB | files |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only:
        ok = [row[name] for row in rounds if "error" not in row[name]]
        if not ok:
            print(f"| {name} | error: {rounds[-1][name]['error']} |||||||")
            continue
        med = lambda k, ok=ok: statistics.median(x[k] for x in ok)  # noqa: E731
        print(
            f"| {name} | {ok[0]['levels']} | {med('seconds'):.2f} | {med('mb_s'):.0f} | "
            f"{med('cpu_seconds'):.2f} | {med('peak_rss_mb'):.0f} | {ok[0]['stored_mb']:.0f} | {ok[0]['files']} |"
        )
    print()
    print(
        "| round | load avg | curated s | fastest level-0 copy | its s | curated ÷ copy (throughput) | curated vs ome-zarr-py |"
    )
    print("|---|---|---|---|---|---|---|")
    vs_copy, vs_ozp = [], []
    for i, row in enumerate(rounds):
        cur = row.get("curated")
        if not cur or "error" in cur:
            continue
        copies = [row[n] for n in LEVEL0 if n in row and "error" not in row[n]]
        best = min(copies, key=lambda x: x["seconds"]) if copies else None
        ozp = row.get("ome-zarr-py")
        a = best["seconds"] / cur["seconds"] if best else None
        b = ozp["seconds"] / cur["seconds"] if ozp and "error" not in ozp else None
        if a:
            vs_copy.append(a)
        if b:
            vs_ozp.append(b)
        print(
            f"| {i + 1} | {cur['load']:.1f} | {cur['seconds']:.2f} | {best['name'] if best else 'n/a'} | "
            f"{best['seconds'] if best else float('nan'):.2f} | {a or float('nan'):.2f}x | {b or float('nan'):.1f}x |"
        )
    if vs_copy:
        print(
            f"median curated pyramid ÷ fastest level-0 copy: {statistics.median(vs_copy):.2f}x (goal ≥ 0.7x)"
        )
    if vs_ozp:
        print(f"median curated vs ome-zarr-py: {statistics.median(vs_ozp):.1f}x (goal ≥ 15x)")


def workers_rounds(args: argparse.Namespace) -> None:
    src, _ = _source(args.workdir, args.gib)
    nbytes = src.stat().st_size
    print()
    print(f"workers (curated, {args.gib:g} GiB): " + ", ".join(map(str, args.workers)))
    times: dict[int, list[float]] = {w: [] for w in args.workers}
    for _ in range(args.repeat):
        for w in args.workers:
            res = measure("curated", src, args.workdir / "w.ome.zarr", args.timeout, workers=w)
            print(json.dumps(res), flush=True)
            if "error" not in res:
                times[w].append(res["seconds"])
    print("| workers | seconds (median) | MB/s | speed-up vs 1 |")
    print("|---|---|---|---|")
    base = statistics.median(times[args.workers[0]]) if times[args.workers[0]] else None
    for w, ts in times.items():
        if not ts:
            continue
        m = statistics.median(ts)
        print(
            f"| {w} | {m:.2f} | {nbytes / 1e6 / m:.0f} | {base / m if base else float('nan'):.2f}x |"
        )


def rss_sweep(args: argparse.Namespace) -> None:
    print()
    print("| source GiB | levels | seconds | MB/s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for gib in args.rss_gib:
        src, _ = _source(args.workdir, gib)
        res = measure("curated", src, args.workdir / "rss.ome.zarr", args.timeout)
        if "error" in res:
            print(f"| {gib:g} | error: {res['error']} ||||")
        else:
            mb_s = src.stat().st_size / 1e6 / res["seconds"]
            print(
                f"| {gib:g} | {res['levels']} | {res['seconds']:.1f} | {mb_s:.0f} | {res['peak_rss_mb']:.0f} |"
            )
        if not args.keep and gib != args.gib:
            src.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=0.5, help="source size of the speed rounds")
    ap.add_argument("--only", nargs="*", choices=list(RUNNERS), default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    ap.add_argument(
        "--workers", type=int, nargs="*", default=[], help="curated with these worker counts"
    )
    ap.add_argument(
        "--rss-gib", type=float, nargs="*", default=[], help="curated's peak RSS at these sizes"
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/images-bench"))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic TIFFs")
    ap.add_argument(
        "--child", nargs=4, metavar=("NAME", "SRC", "DEST", "WORKERS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.only:
            speed_rounds(args)
        if args.workers:
            workers_rounds(args)
        if args.rss_gib:
            rss_sweep(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
