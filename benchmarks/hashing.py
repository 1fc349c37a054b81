"""Hashing throughput of curated vs ``sha256sum``, and digest_tree memory at 10k and 200k files.

Run::

    /work/venv/bin/python benchmarks/hashing.py --data /tmp/curation-bench

Figures (printed side by side, as ratios to the anchor):

1. large files: ``sha256_file`` over each file vs ``sha256sum FILE...``;
2. many small files: ``digest_tree``, and the Check step's inventory
   (``check(None, [folder])``: hash, format sniffing, flags), vs
   ``find -type f -print0 | xargs -0 sha256sum``;
3. peak RSS of ``digest_tree`` (a fresh process each) over 10k and 200k small
   files, nested like a Zarr store (100 files per folder) and flat (one folder,
   which exercises the on-disk sort above 50k entries).

Every timing is the best of ``--repeat`` runs on a warm page cache, so both
sides measure hashing, not the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_large(root: Path, n: int, mib: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = []
    block = os.urandom(1 << 20)
    for i in range(n):
        p = root / f"large_{i}.bin"
        if not p.exists() or p.stat().st_size != mib << 20:
            with open(p, "wb") as fh:
                for j in range(mib):
                    fh.write(block[j % 7 :] + block[: j % 7])
        files.append(p)
    return files


def make_small(root: Path, n: int, *, flat: bool, size: int = 1024) -> Path:
    marker = root.parent / f"{root.name}.complete"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    payload = os.urandom(size)
    for i in range(n):
        folder = root if flat else root / f"{i // 10000}" / f"{(i // 100) % 100}"
        if not flat and i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"c{i}", "wb") as fh:
            fh.write(i.to_bytes(4, "little") + payload[4:])
    marker.write_text("ok")
    return root


def best_pair(ref, cur, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` times of two callables, interleaved so that load from other
    processes on a shared machine hits both sides alike."""
    t_ref, t_cur = [], []
    for _ in range(repeat):
        for fn, times in ((ref, t_ref), (cur, t_cur)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(t_ref), min(t_cur)


def bench_large(files: list[Path], repeat: int) -> tuple[float, float, int]:
    from curated.provenance.digest import sha256_file

    total = sum(p.stat().st_size for p in files)
    cmd = ["sha256sum", *map(str, files)]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache
    t_ref, t_cur = best_pair(
        lambda: subprocess.run(cmd, check=True, capture_output=True),
        lambda: [sha256_file(p) for p in files],
        repeat,
    )
    return t_ref, t_cur, total


def bench_tree(root: Path, repeat: int) -> tuple[float, float, float, float, int, int]:
    """find+xargs sha256sum vs digest_tree vs the Check step's inventory (hash + format sniffing),
    the latter with its default worker processes and with one process."""
    from curated.curation.check import check
    from curated.provenance.digest import digest_tree

    shell = f"find {root} -type f -print0 | xargs -0 sha256sum > /dev/null"
    subprocess.run(shell, shell=True, check=True)
    td = digest_tree(root)

    def ref() -> None:
        subprocess.run(shell, shell=True, check=True)

    t_ref, t_cur = best_pair(ref, lambda: digest_tree(root), repeat)
    t_ref2, t_check = best_pair(ref, lambda: check(None, [root]), repeat)
    t_ref3, t_check1 = best_pair(ref, lambda: check(None, [root], processes=1), repeat)
    return min(t_ref, t_ref2, t_ref3), t_cur, t_check, t_check1, td.files, td.bytes


_HWM = """
def hwm():
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's RSS at fork time
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""

RSS_CHILD = (
    _HWM
    + """
import sys
from curated.provenance.digest import digest_tree
import curated.provenance.log  # what a real caller has imported
base = hwm()
td = digest_tree(sys.argv[1])
print(td.files, base, hwm())
"""
)


CHECK_RSS_CHILD = (
    _HWM
    + """
import sys
from curated.curation.check import check
import curated.provenance.log
base = hwm()
report = check(None, [sys.argv[1]])
print(len(report.files), base, hwm())
"""
)


def rss(root: Path, child: str = RSS_CHILD) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", child, str(root)], check=True, capture_output=True, text=True
    ).stdout.split()
    files, base, peak = int(out[0]), int(out[1]) / 1024, int(out[2]) / 1024
    return files, base, peak


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("/tmp/curation-bench"))
    ap.add_argument("--large-files", type=int, default=2)
    ap.add_argument("--large-mib", type=int, default=256)
    ap.add_argument(
        "--small", type=int, nargs="+", default=[10_000], help="files in the throughput trees"
    )
    ap.add_argument("--rss-counts", type=int, nargs="*", default=[10_000, 200_000])
    ap.add_argument(
        "--check-rss-counts",
        type=int,
        nargs="*",
        default=[],
        help="also measure check()'s peak RSS (main process) over nested trees of these many files",
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, data in {args.data}")
    files = make_large(args.data / "large", args.large_files, args.large_mib)
    t_ref, t_cur, total = bench_large(files, args.repeat)
    mbs = total / 2**20
    print("\n| case | sha256sum MiB/s | curated MiB/s | ratio (curated / sha256sum) |")
    print("|---|---:|---:|---:|")
    print(
        f"| {args.large_files} x {args.large_mib} MiB files, sha256_file | {mbs / t_ref:.0f} | {mbs / t_cur:.0f} | {t_ref / t_cur:.2f} |"
    )

    from curated._parallel import default_processes

    for count in args.small:
        small = make_small(args.data / f"small-{count}", count, flat=False)
        t_ref, t_cur, t_check, t_check1, n, _nbytes = bench_tree(small, args.repeat)
        for label, t in (
            ("digest_tree", t_cur),
            (f"check() inventory, {default_processes()} processes (default)", t_check),
            ("check() inventory, 1 process", t_check1),
        ):
            print(
                f"| {n} x 1 KiB files (nested), {label} vs find+xargs sha256sum | {n / t_ref:.0f} files/s | {n / t:.0f} files/s | {t_ref / t:.2f} |"
            )

    print("\n| files | layout | baseline RSS MiB | peak RSS MiB | growth MiB |")
    print("|---:|---|---:|---:|---:|")
    for count in args.rss_counts:
        for flat in (False, True):
            root = make_small(
                args.data / f"rss-{count}-{'flat' if flat else 'nested'}", count, flat=flat, size=64
            )
            n, base, peak = rss(root)
            print(
                f"| {n} | {'flat (one folder)' if flat else 'nested (100 per folder)'} | {base:.1f} | {peak:.1f} | {peak - base:.1f} |"
            )
            if not args.keep:
                shutil.rmtree(root)
    if args.check_rss_counts:
        print("\n| files | check() baseline RSS MiB | peak RSS MiB | growth MiB | bytes per file |")
        print("|---:|---:|---:|---:|---:|")
    for count in args.check_rss_counts:
        root = make_small(args.data / f"small-{count}", count, flat=False)
        n, base, peak = rss(root, CHECK_RSS_CHILD)
        print(
            f"| {n} | {base:.1f} | {peak:.1f} | {peak - base:.1f} | {(peak - base) * 2**20 / n:.0f} |"
        )
    if not args.keep:
        shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()
