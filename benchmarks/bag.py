"""Bagging throughput and memory: curated vs bagit-python vs sha512sum+sha256sum.

Builds two workspaces under --root: a Zarr-like tree of N small files and a tree
of a few large files. For each, in separate subprocesses (so peak RSS is each
tool's own): ``curated.package.make_bag`` (to a destination), ``bagit.make_bag``
(in place, on a hard-linked copy, sha512+sha256) and the coreutils reference
``sha512sum`` then ``sha256sum`` over the same files (xargs -P PROCESSES).
Prints wall time, MB/s and peak RSS side by side with ratios.

    python benchmarks/bag.py --small 200000 --large-mib 1024 --processes 2
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

CHILD = r"""
import json, resource, sys, time
tool, ws, dest, processes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
if tool == "curated":
    from curated.package import make_bag
    make_bag(ws, dest, processes=processes)
else:
    import bagit
    bagit.make_bag(dest, {"Source-Organization": "bench"}, processes=processes, checksums=["sha512", "sha256"])
wall = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall": wall, "rss_main_mb": me, "rss_worker_mb": kids}))
"""

RECORD = """study:
  title: Bag benchmark
  description: Synthetic payload for benchmarks/bag.py.
  publisher: Benchmark Lab
  authors:
  - family_name: Bench
    given_name: Mark
    email: mark@example.org
    contact: true
"""


def make_small(ws: Path, n: int, size: int) -> None:
    store = ws / "derived" / "small.ome.zarr"
    blob = os.urandom(size)
    per_dir = 1000
    for i in range(n):
        d = store / "0" / "c" / str(i // per_dir)
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / str(i % per_dir)).write_bytes(blob[: size - 8] + i.to_bytes(8, "little"))
    (store / "zarr.json").write_text("{}\n")


def make_large(ws: Path, total_mib: int, files: int) -> None:
    d = ws / "derived" / "large"
    d.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    for i in range(files):
        with open(d / f"volume-{i}.raw", "wb") as fh:
            for _ in range(total_mib // files):
                fh.write(chunk)


def new_workspace(root: Path, name: str) -> Path:
    ws = root / name
    (ws / "curation").mkdir(parents=True)
    (ws / "curated.yaml").write_text(RECORD)
    return ws


def run_child(tool: str, ws: Path, dest: Path, processes: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, tool, str(ws), str(dest), str(processes)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def coreutils(ws: Path, processes: int) -> float:
    t0 = time.perf_counter()
    for prog in ("sha512sum", "sha256sum"):
        subprocess.run(
            f"find {ws}/derived -type f -print0 | xargs -0 -P {processes} -n 2000 {prog} > /dev/null",
            shell=True,
            check=True,
        )
    return time.perf_counter() - t0


def tree_bytes(ws: Path) -> tuple[int, int]:
    n = b = 0
    for dirpath, _d, files in os.walk(ws / "derived"):
        for f in files:
            n += 1
            b += os.lstat(os.path.join(dirpath, f)).st_size
    return n, b


def bench(label: str, ws: Path, root: Path, processes: int) -> dict[str, object]:
    files, nbytes = tree_bytes(ws)
    ref = coreutils(ws, processes)  # also warms the page cache for both tools
    cur = run_child("curated", ws, root / f"{label}-curated-bag", processes)
    copy = root / f"{label}-bagit-copy"
    subprocess.run(["cp", "-al", str(ws / "derived"), str(copy)], check=True)
    bi = run_child("bagit", ws, copy, processes)
    shutil.rmtree(root / f"{label}-curated-bag")
    shutil.rmtree(copy)
    mb = nbytes / 1e6
    row = {
        "case": label,
        "files": files,
        "MB": round(mb, 1),
        "coreutils_s": round(ref, 2),
        "curated_s": round(cur["wall"], 2),
        "bagit_s": round(bi["wall"], 2),
        "curated_MBps": round(mb / cur["wall"], 1),
        "coreutils_MBps": round(mb / ref, 1),
        "curated_vs_coreutils": round(ref / cur["wall"], 2),
        "curated_vs_bagit": round(bi["wall"] / cur["wall"], 2),
        "curated_rss_mb": round(cur["rss_main_mb"], 1),
        "curated_worker_rss_mb": round(cur["rss_worker_mb"], 1),
        "bagit_rss_mb": round(bi["rss_main_mb"], 1),
        "bagit_worker_rss_mb": round(bi["rss_worker_mb"], 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("/tmp/bag-bench"))
    ap.add_argument("--small", type=int, nargs="+", default=[200_000], help="file counts of the Zarr-like trees")
    ap.add_argument("--small-size", type=int, default=128)
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--large-files", type=int, default=4)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.root.exists():
        shutil.rmtree(args.root)
    args.root.mkdir(parents=True)
    rows = []
    try:
        for n in args.small:
            ws = new_workspace(args.root, f"small-{n}")
            make_small(ws, n, args.small_size)
            rows.append(bench(f"small-{n}", ws, args.root, args.processes))
            shutil.rmtree(ws)
        if args.large_mib:
            ws = new_workspace(args.root, "large")
            make_large(ws, args.large_mib, args.large_files)
            rows.append(bench(f"large-{args.large_mib}MiB", ws, args.root, args.processes))
    finally:
        if not args.keep:
            shutil.rmtree(args.root, ignore_errors=True)
    cols = list(rows[0])
    print("\n| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
