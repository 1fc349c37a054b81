"""Peak memory of reading a huge or endless answer: curated's HTTP session against plain requests.

A local server sends ``--size`` MiB (chunked, no Content-Length, like a hostile or broken
proxy). Each client runs in its own process and reports its peak RSS:

* ``requests`` (anchor): ``requests.get(url).content``, what the adapters did before;
* ``curated``: ``HttpSession.request`` (refuses past ``max_body``, 64 MiB by default).

    python benchmarks/hostile_bodies.py --size 1024
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading

PIECE = b"x" * (1 << 20)


def serve(size_mib: int) -> tuple[str, socket.socket]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def one(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(size_mib):
                conn.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE))
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            conn.close()

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", sock


CLIENT = {
    "requests": "import requests; r = requests.get(URL, timeout=600); n = len(r.content); outcome = f'read {n >> 20} MiB'",
    "curated": (
        "from curated.deposit.http import HttpSession\n"
        "from curated.errors import DepositError\n"
        "try:\n"
        "    HttpSession(URL).request('GET', '/'); outcome = 'read'\n"
        "except DepositError as e:\n"
        "    outcome = 'refused: ' + e.message[:60]"
    ),
}


def run_client(kind: str, url: str) -> tuple[float, float, str]:
    code = (
        f"import resource, time; URL = {url!r}; t0 = time.perf_counter()\n{CLIENT[kind]}\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t0, outcome, sep='|')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, secs, outcome = out.stdout.strip().split("|")
    return float(rss), float(secs), outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="answer size in MiB")
    args = ap.parse_args()
    url, sock = serve(args.size)
    rows = []
    for kind in ("requests", "curated"):
        rss, secs, outcome = run_client(kind, url)
        rows.append((kind, rss, secs, outcome))
    sock.close()
    anchor = rows[0][1]
    print(f"answer: {args.size} MiB, chunked, no Content-Length")
    print("| client | peak RSS MiB | seconds | outcome | RSS vs anchor |")
    print("|---|---:|---:|---|---:|")
    for kind, rss, secs, outcome in rows:
        print(f"| {kind} | {rss:.0f} | {secs:.1f} | {outcome} | {rss / anchor:.2f}x |")


if __name__ == "__main__":
    main()
