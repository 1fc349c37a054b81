"""Peak memory of a multi-GB deposit: curated streams, the usual client reads the file whole.

A workspace holding one sparse file of ``--size`` GiB is bagged with ``curated.package.make_bag``,
then deposited, each in a fresh child process whose peak RSS is read with ``os.wait4``:

* ``curated deposit --to directory``  (copy into a folder repository, verified),
* ``curated deposit --to figshare``   (the bag as one zip, sent in parts to the fake Figshare
  of ``tests/fakes`` running in this process on 127.0.0.1),
* anchor: ``requests.put(url, data=open(f).read())`` of the same file to the same fake, which is
  how ``dspace-rest-client``'s ``create_bitstream`` and most scripts upload.

Run from the repository root::

    python benchmarks/deposit_memory.py --size 2 --scratch /tmp/deposit-bench
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD_DEPOSIT = textwrap.dedent(
    """
    import sys
    from curated.deposit import deposit, RetryPolicy
    r = deposit(sys.argv[1], to=sys.argv[2], url=sys.argv[3], publish=True, limits="none",
                retry=RetryPolicy(attempts=2, backoff=0.01))
    assert r.status == "published", r.status
    """
)

CHILD_NAIVE = textwrap.dedent(
    """
    import sys, requests
    with open(sys.argv[1], "rb") as fh:
        data = fh.read()
    r = requests.put(sys.argv[2], data=data, timeout=600)
    r.raise_for_status()
    """
)


def run_child(code: str, *args: str, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a child Python running ``code``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed with {proc.returncode}: {args}")
    return time.perf_counter() - t0, usage.ru_maxrss * 1024 / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", type=float, default=2.0, help="GiB in the one payload file")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/deposit-bench"))
    ap.add_argument("--part-mib", type=int, default=64, help="the fake Figshare's part size")
    ap.add_argument("--keep", action="store_true", help="leave the scratch folder")
    args = ap.parse_args()

    from curated.package import make_bag
    from tests.fakes import bags
    from tests.fakes.figshare import TOKEN, FakeFigshare

    scratch = args.scratch
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    size = int(args.size * 2**30)
    try:
        ws = bags.make_workspace(scratch / "ws", big=10)
        big = ws / "derived" / "volume.bin"
        with open(big, "wb") as fh:  # sparse: costs no disk until copied
            fh.truncate(size)
        t0 = time.perf_counter()
        res = make_bag(ws, ws / "package" / "bag")
        assert res.ok, res.message
        bag_s = time.perf_counter() - t0
        bag = ws / "package" / "bag"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "FIGSHARE_TOKEN": TOKEN}
        rows = []

        secs, rss = run_child(CHILD_DEPOSIT, str(bag), "directory", str(scratch / "repo"), env=env)
        rows.append(("curated deposit --to directory", secs, rss))
        shutil.rmtree(scratch / "repo")

        with FakeFigshare(part_size=args.part_mib * 2**20) as fake:
            secs, rss = run_child(CHILD_DEPOSIT, str(bag), "figshare", fake.url + "/v2", env=env)
            rows.append((f"curated deposit --to figshare ({args.part_mib} MiB parts)", secs, rss))
        (ws / "package" / "bag.zip").unlink(missing_ok=True)

        with FakeFigshare(part_size=size + 1) as fake:
            import requests

            h = {"Authorization": f"token {TOKEN}"}
            art = requests.post(
                fake.url + "/v2/account/articles", json={"title": "anchor"}, headers=h, timeout=30
            ).json()
            loc = requests.post(
                f"{art['location']}/files",
                json={"name": "volume.bin", "size": size},
                headers=h,
                timeout=30,
            ).json()
            upload = requests.get(loc["location"], headers=h, timeout=30).json()["upload_url"]
            secs, rss = run_child(CHILD_NAIVE, str(big), upload + "/1", env=env)
            rows.append(("anchor: requests.put(data=f.read())", secs, rss))

        anchor = rows[-1][2]
        gib = size / 2**30
        print(
            f"\npayload: one {gib:.2f} GiB file; make_bag took {bag_s:.1f} s (not included below)\n"
        )
        print(f"| operation ({gib:.2f} GiB file) | seconds | peak RSS MB | RSS vs anchor |")
        print("|---|---:|---:|---:|")
        for name, secs, rss in rows:
            print(f"| {name} | {secs:.1f} | {rss:.0f} | {rss / anchor:.2f}x |")
        worst = max(r[2] for r in rows[:-1])
        print(
            f"\ncurated peak RSS {worst:.0f} MB: {'under' if worst < 200 else 'OVER'} the 200 MB budget"
        )
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
