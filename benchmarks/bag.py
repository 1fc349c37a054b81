"""Bagging throughput and memory: curated vs bagit-python vs sha512sum+sha256sum.

Builds two workspaces under --root: a Zarr-like tree of N small files and a tree
of a few large files. For each, in separate subprocesses (so peak RSS is each
tool's own): ``curated.package.make_bag`` (to a destination), ``bagit.make_bag``
(in place, on a hard-linked copy, sha512+sha256) and the coreutils reference
``sha512sum`` then ``sha256sum`` over the same files (xargs -P PROCESSES).
Also timed: ``cp -al`` of the same tree (the floor for placing files in a bag
without copying bytes), ``os.link`` of every file from Python in 1 and in
PROCESSES processes (does placement scale?), curated with every file sent to
``fetch.txt`` (the same walk, hashing and manifests with no placement: hashing
throughput alone) and curated with ``zarr="archive"`` (each store as one zip).
Prints wall time, MB/s and peak RSS side by side with ratios (``x_...`` > 1 means
curated is faster).

    python benchmarks/bag.py --small 200000 --large-mib 1024 --processes 2

Plain folders (issue 18: RSS flat at any file count): ``--plain N ...`` builds a
workspace of N files of 128 bytes outside any Zarr store (``derived/plain/<k>/<i>.bin``,
1000 per folder; each gets its own RO-Crate ``File`` entity and manifest lines) and
times only the coreutils pair, curated (hard links) and curated hash-only, with each
curated run's peak RSS (``ru_maxrss`` of the process, and of its largest worker).
``--reuse DIR`` takes (or leaves, for the next run) the trees under DIR::

    python benchmarks/bag.py --plain 100000 1000000 --reuse /tmp/bag1m --small --large-mib 0

``--rounds R`` repeats the plain cases (each row says its round and the 1-minute load
average); ``--link-floor`` adds ``cp -al`` of each plain tree. CPU seconds (user + system,
the tool and every process it started) are given beside wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
elif tool == "curated-archive":
    # each Zarr store as one uncompressed zip (no per-file placement)
    from curated.package import make_bag
    make_bag(ws, dest, processes=processes, zarr="archive")
elif tool == "curated-hash-only":
    # every payload file goes to fetch.txt: the same walk, hashing and manifests, no links/copies
    from curated.package import make_bag
    make_bag(ws, dest, processes=processes, fetch_base="https://storage.example.org/ws", fetch_min_size=0)
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


def make_plain(ws: Path, n: int, size: int) -> None:
    """``n`` files of ``size`` bytes in plain folders of 1000 (no Zarr store: one crate entity each)."""
    blob = os.urandom(size)
    root = ws / "derived" / "plain"
    d = root
    for i in range(n):
        if i % 1000 == 0:
            d = root / f"{i // 1000:04d}"
            d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{i % 1000:04d}.bin", "wb") as fh:
            fh.write(blob[: size - 8] + i.to_bytes(8, "little"))


def plain_workspace(root: Path, n: int, size: int) -> Path:
    """The plain tree of ``n`` files under ``root`` (made once, kept for the next run)."""
    ws = root / f"plain-{n}"
    whole = (ws / "curated.yaml").is_file() and tree_bytes(ws)[0] == n
    if not whole:  # missing, or some of its files were removed since it was made
        if ws.exists():
            shutil.rmtree(ws)
        ws = new_workspace(root, f"plain-{n}")
        make_plain(ws, n, size)
    shutil.rmtree(ws / "package", ignore_errors=True)
    log = ws / "curation" / "log.jsonl"
    log.unlink(missing_ok=True)  # every run bags the same workspace state
    return ws


def bench_plain(
    ws: Path, root: Path, processes: int, *, link_floor: bool = False
) -> dict[str, object]:
    """coreutils pair vs curated (hard links) vs curated hash-only, with curated's peak RSS.

    Besides wall time, the CPU seconds (user + system) of each tool and everything it
    started: on a shared machine the share of CPU a run gets varies, its CPU time much
    less. With ``link_floor``, ``cp -al`` of the same tree is timed too (placing a
    million hard links costs the kernel about as much as the whole coreutils pair).
    """
    files, nbytes = tree_bytes(ws)
    coreutils(ws, processes)  # warms the page cache (not counted)
    settle()
    warm(ws, processes)
    load = os.getloadavg()[0]
    ref, ref_cpu = timed_cpu(lambda: coreutils(ws, processes))

    def curated(tool: str) -> tuple[dict[str, float], float]:
        dest = root / f"bag-{tool}"
        shutil.rmtree(dest, ignore_errors=True)
        settle()
        warm(ws, processes)
        out, cpu = timed_cpu(lambda: run_child(tool, ws, dest, processes))
        shutil.rmtree(dest)
        (ws / "curation" / "log.jsonl").unlink(missing_ok=True)
        return out, cpu

    cur, cur_cpu = curated("curated")
    hash_only, hash_cpu = curated("curated-hash-only")
    row: dict[str, object] = {
        "case": f"plain-{files}",
        "files": files,
        "MB": round(nbytes / 1e6, 1),
        "load_avg_1min": round(load, 1),
        "sha512sum+sha256sum_s": round(ref, 2),
        "curated_s": round(cur["wall"], 2),
        "curated_hash_only_s": round(hash_only["wall"], 2),
        "x_coreutils": round(ref / cur["wall"], 2),
        "x_coreutils_hash_only": round(ref / hash_only["wall"], 2),
        "coreutils_cpu_s": round(ref_cpu, 2),
        "curated_cpu_s": round(cur_cpu, 2),
        "hash_only_cpu_s": round(hash_cpu, 2),
        "curated_rss_MB": round(cur["rss_main_mb"], 1),
        "curated_worker_rss_MB": round(cur["rss_worker_mb"], 1),
        "hash_only_rss_MB": round(hash_only["rss_main_mb"], 1),
    }
    if link_floor:
        settle()
        warm(ws, processes)
        t0 = time.perf_counter()
        subprocess.run(["cp", "-al", str(ws / "derived"), str(root / "cp-al")], check=True)
        floor = time.perf_counter() - t0
        shutil.rmtree(root / "cp-al")
        row["cp_-al_s"] = round(floor, 2)
        row["x_(coreutils+cp_-al)"] = round((ref + floor) / cur["wall"], 2)
    print(json.dumps(row), flush=True)
    return row


def warm(ws: Path, processes: int) -> None:
    """Read every file once (not timed): on this machine a million files' pages can leave
    the page cache within minutes, and each tool is to be measured with them cached."""
    subprocess.run(
        f"find {ws}/derived -type f -print0 | xargs -0 -P {processes} -n 2000 cat > /dev/null",
        shell=True,
        check=True,
    )


def timed_cpu(fn):  # type: ignore[no-untyped-def]
    """``(fn(), CPU seconds of the child processes it waited for)``; a float result is its wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu


def new_workspace(root: Path, name: str) -> Path:
    ws = root / name
    (ws / "curation").mkdir(parents=True)
    (ws / "curated.yaml").write_text(RECORD)
    return ws


def run_child(tool: str, ws: Path, dest: Path, processes: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, tool, str(ws), str(dest), str(processes)],
        check=True,
        capture_output=True,
        text=True,
    )
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


LINKER = r"""
import os, sys, time, multiprocessing as mp
src, dst, processes = sys.argv[1], sys.argv[2], int(sys.argv[3])
folders = []
for dirpath, dirs, files in os.walk(src):
    dirs.sort()
    rel = os.path.relpath(dirpath, src)
    os.makedirs(os.path.join(dst, rel), exist_ok=True)
    if files:
        folders.append((dirpath, os.path.join(dst, rel), sorted(files)))
def work(part):
    for s, d, files in part:
        for f in files:
            os.link(os.path.join(s, f), os.path.join(d, f))
t0 = time.perf_counter()
if processes == 1:
    work(folders)
else:
    ps = [mp.get_context("fork").Process(target=work, args=(folders[i::processes],)) for i in range(processes)]
    [p.start() for p in ps]
    [p.join() for p in ps]
print(time.perf_counter() - t0)
"""


def link_time(src: Path, dst: Path, processes: int) -> float:
    """Seconds for ``os.link`` of every file (folders made beforehand, not timed)."""
    out = subprocess.run(
        [sys.executable, "-c", LINKER, str(src), str(dst), str(processes)],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(dst)
    return float(out.stdout.strip())


def tree_bytes(ws: Path) -> tuple[int, int]:
    n = b = 0
    for dirpath, _d, files in os.walk(ws / "derived"):
        for f in files:
            n += 1
            b += os.lstat(os.path.join(dirpath, f)).st_size
    return n, b


def settle() -> None:
    """Write back what earlier runs left dirty (200k links made and removed), so that
    the kernel's writeback is not charged to whichever tool runs next."""
    os.sync()
    time.sleep(1)


def best_of(repeat: int, fn) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        settle()
        runs.append(fn())
    return min(runs, key=lambda r: r["wall"])


def bench(label: str, ws: Path, root: Path, processes: int, repeat: int) -> dict[str, object]:
    files, nbytes = tree_bytes(ws)
    coreutils(ws, processes)  # warms the page cache (not counted)
    ref = best_of(repeat, lambda: {"wall": coreutils(ws, processes)})["wall"]

    def link_floor() -> dict[str, float]:
        t0 = time.perf_counter()
        subprocess.run(["cp", "-al", str(ws / "derived"), str(root / "cp-al")], check=True)
        wall = time.perf_counter() - t0
        shutil.rmtree(root / "cp-al")
        return {"wall": wall}

    def curated(tool: str) -> dict[str, float]:
        out = run_child(tool, ws, root / f"{label}-{tool}", processes)
        shutil.rmtree(root / f"{label}-{tool}")
        return out

    def bagit_run() -> dict[str, float]:
        copy = root / f"{label}-bagit-copy"
        subprocess.run(["cp", "-al", str(ws / "derived"), str(copy)], check=True)
        out = run_child("bagit", ws, copy, processes)
        shutil.rmtree(copy)
        return out

    floor = best_of(repeat, link_floor)["wall"]
    link_1 = best_of(repeat, lambda: {"wall": link_time(ws / "derived", root / "links", 1)})["wall"]
    link_n = best_of(
        repeat, lambda: {"wall": link_time(ws / "derived", root / "links", processes)}
    )["wall"]
    cur = best_of(repeat, lambda: curated("curated"))
    hash_only = best_of(repeat, lambda: curated("curated-hash-only"))
    archive = best_of(repeat, lambda: curated("curated-archive"))
    bi = best_of(repeat, bagit_run)
    mb = nbytes / 1e6
    row = {
        "case": label,
        "files": files,
        "MB": round(mb, 1),
        "sha512sum+sha256sum_s": round(ref, 2),
        "cp_-al_s": round(floor, 2),
        "curated_s": round(cur["wall"], 2),
        "os.link_1p_s": round(link_1, 2),
        f"os.link_{processes}p_s": round(link_n, 2),
        "curated_hash_only_s": round(hash_only["wall"], 2),
        "curated_archive_s": round(archive["wall"], 2),
        "bagit_s": round(bi["wall"], 2),
        "curated_MB/s": round(mb / cur["wall"], 1),
        "coreutils_MB/s": round(mb / ref, 1),
        "x_coreutils": round(ref / cur["wall"], 2),
        "x_coreutils_hash_only": round(ref / hash_only["wall"], 2),
        "x_coreutils_archive": round(ref / archive["wall"], 2),
        "x_coreutils+cp_-al": round((ref + floor) / cur["wall"], 2),
        "x_bagit": round(bi["wall"] / cur["wall"], 2),
        "curated_rss_MB": round(cur["rss_main_mb"], 1),
        "curated_worker_rss_MB": round(cur["rss_worker_mb"], 1),
        "curated_archive_rss_MB": round(archive["rss_main_mb"], 1),
        "bagit_rss_MB": round(bi["rss_main_mb"], 1),
        "bagit_worker_rss_MB": round(bi["rss_worker_mb"], 1),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", type=Path, default=Path("/tmp/bag-bench"))
    ap.add_argument(
        "--small", type=int, nargs="*", default=[200_000], help="file counts of the Zarr-like trees"
    )
    ap.add_argument("--small-size", type=int, default=128)
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--large-files", type=int, default=4)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--plain", type=int, nargs="*", default=[], help="file counts of plain-folder trees"
    )
    ap.add_argument(
        "--reuse", type=Path, default=None, help="folder holding (or to hold) the plain trees"
    )
    ap.add_argument("--rounds", type=int, default=1, help="rounds over the plain trees")
    ap.add_argument(
        "--link-floor", action="store_true", help="also time `cp -al` of each plain tree"
    )
    args = ap.parse_args()
    rows = []
    if args.plain:
        keep = args.reuse or args.root
        keep.mkdir(parents=True, exist_ok=True)
        for r in range(args.rounds):
            for n in args.plain:
                ws = plain_workspace(keep, n, args.small_size)
                row = bench_plain(ws, keep, args.processes, link_floor=args.link_floor)
                rows.append({"round": r + 1, **row})
        if args.reuse is None and not args.keep:
            shutil.rmtree(keep, ignore_errors=True)
        if not args.small and not args.large_mib:
            _table(rows)
            return
    if args.root.exists():
        shutil.rmtree(args.root)
    args.root.mkdir(parents=True)
    try:
        for n in args.small:
            ws = new_workspace(args.root, f"small-{n}")
            make_small(ws, n, args.small_size)
            rows.append(bench(f"small-{n}", ws, args.root, args.processes, args.repeat))
            shutil.rmtree(ws)
        if args.large_mib:
            ws = new_workspace(args.root, "large")
            make_large(ws, args.large_mib, args.large_files)
            rows.append(
                bench(f"large-{args.large_mib}MiB", ws, args.root, args.processes, args.repeat)
            )
    finally:
        if not args.keep:
            shutil.rmtree(args.root, ignore_errors=True)
    _table(rows)


def _table(rows: list[dict[str, object]]) -> None:
    """One Markdown table per run of rows with the same columns."""
    last: list[str] = []
    for r in rows:
        cols = list(r)
        if cols != last:
            print("\n| " + " | ".join(cols) + " |")
            print("|" + "---|" * len(cols))
            last = cols
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
