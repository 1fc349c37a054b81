"""Benchmark: convert into a local folder vs into an S3-compatible object store.

One synthetic uint8 TIFF stack (smooth structure + noise, EM-like) is converted by
curated into a local folder and into ``s3://`` on an S3 server started on 127.0.0.1
in this process (moto's server mode: a Python server, so the S3 figure measures
curated *plus* a slow local server, not a real object store). The anchor, in the same
run: zarr-python writing level 0 alone into the same server through its own fsspec
store, with the same codecs, chunks and shards.

    python benchmarks/s3.py --mib 64 --workers 2

Prints one table and a JSON line; scratch data go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNK = 64
SHARD = 128
VOXEL = (8.0, 4.0, 4.0)


def make_stack(path: Path, mib: int, seed: int = 0) -> np.ndarray:
    import tifffile

    side = 256
    depth = max(8, int(mib * 2**20 / side / side))
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[0:depth, 0:side, 0:side].astype(np.float32)
    vol = 128 + 60 * np.sin(xx / 17 + zz / 11) * np.cos(yy / 23)
    vol = (vol + rng.normal(0, 12, vol.shape)).clip(0, 255).astype(np.uint8)
    tifffile.imwrite(path, vol, photometric="minisblack", bigtiff=True)
    return vol


def start_server() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    return server, endpoint


def zarr_level0(vol: np.ndarray, url: str) -> float:
    """The anchor: zarr-python writes level 0 only, same codecs/chunks/shards."""
    import zarr
    from zarr.codecs import BloscCodec

    t0 = time.perf_counter()
    arr = zarr.create_array(
        url,
        shape=vol.shape,
        dtype=vol.dtype,
        chunks=(CHUNK,) * 3,
        shards=(SHARD,) * 3,
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
        zarr_format=3,
    )
    arr[:] = vol
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=64, help="size of the stack in MiB")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    server, _ = start_server()
    import boto3

    from curated.images import convert_to_ome_zarr

    boto3.client("s3").create_bucket(Bucket="bench")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "stack.tif"
        vol = make_stack(src, args.mib)
        nbytes = vol.nbytes
        kw = {"voxel_size": VOXEL, "chunks": CHUNK, "shard": SHARD, "workers": args.workers}
        t0 = time.perf_counter()
        local = convert_to_ome_zarr(src, Path(tmp) / "local.ome.zarr", **kw)
        rows.append(("curated → local folder (pyramid)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        remote = convert_to_ome_zarr(src, "s3://bench/run/stack.ome.zarr", **kw)
        rows.append(("curated → s3 on moto (pyramid)", time.perf_counter() - t0))
        assert remote.details["store_digest"] == local.details["store_digest"]
        rows.append(
            ("zarr-python → s3 on moto (level 0 only)", zarr_level0(vol, "s3://bench/anchor.zarr"))
        )
    server.stop()
    print(
        f"{nbytes / 2**20:.0f} MiB uint8 {vol.shape}, chunks {CHUNK}^3, shards {SHARD}^3, workers {args.workers}"
    )
    print(f"{'writer':44} {'seconds':>8} {'MB/s':>8} {'vs local':>9}")
    base = rows[0][1]
    for name, secs in rows:
        print(f"{name:44} {secs:8.2f} {nbytes / secs / 1e6:8.1f} {base / secs:9.2f}")
    print(
        json.dumps(
            {
                "bytes": nbytes,
                "seconds": {n: round(s, 3) for n, s in rows},
                "identical_digest": True,
            }
        )
    )


if __name__ == "__main__":
    main()
