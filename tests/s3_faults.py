"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the moto server (tests/s3_server.py).

Every request is forwarded to moto unchanged unless a :class:`Fault` matches it; then
the proxy answers as a misbehaving object store would: an error status (``503
SlowDown``), a connection reset before any answer, a body shorter than its
``Content-Length``, a body with flipped bytes, or a redirect to another host. Every
request (method, path, query, headers) is recorded, so that tests can count what the
client sent and check where its credentials went.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from s3_server import S3Server, environment

ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>{message}</Message><RequestId>test</RequestId></Error>"
)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    @property
    def op(self) -> str:
        """A rough S3 operation name, enough to count requests by kind."""
        q = self.query
        if self.method == "GET" and "uploads" in q:
            return "list-uploads"
        if self.method == "GET" and ("list-type" in q or ("delimiter" in q or "prefix" in q)):
            return "list"
        if self.method == "PUT" and "partNumber" in q:
            return "upload-part"
        if self.method == "POST" and "uploads" in q:
            return "create-multipart"
        if self.method == "POST" and "uploadId" in q:
            return "complete-multipart"
        if self.method == "DELETE" and "uploadId" in q:
            return "abort-multipart"
        return {"GET": "get", "PUT": "put", "HEAD": "head", "DELETE": "delete"}.get(
            self.method, self.method.lower()
        )

    @property
    def key(self) -> str:
        return self.path.lstrip("/")


@dataclass
class Fault:
    """What to do to the requests ``when`` matches, ``times`` times (then pass them on)."""

    when: Callable[[Seen], bool]
    action: str  # "status", "reset", "truncate", "corrupt", "redirect", "rewrite", "answer"
    times: int = 1
    status: int = 503
    code: str = "SlowDown"
    message: str = "injected"
    headers: tuple[tuple[str, str], ...] = ()  # more headers of a "status" answer
    location: str = ""
    rewrite: Callable[[bytes], bytes] | None = None  # "rewrite"/"answer": the body to send
    body: bytes | None = None  # a "status" answer's body instead of an <Error> document
    hits: int = 0


@dataclass
class FaultProxy:
    upstream: str
    endpoint: str = ""
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.seen.clear()

    def ops(self, op: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.op == op]

    def _match(self, seen: Seen) -> Fault | None:
        with self.lock:
            self.seen.append(seen)
            for f in self.faults:
                if f.hits < f.times and f.when(seen):
                    f.hits += 1
                    return f
        return None


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    up = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reset(self) -> None:
            # SO_LINGER 0: close() sends a TCP RST, as a dropped connection does
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            skip = {"transfer-encoding", "content-length", "connection"}
            out = [(k, v) for k, v in resp.getheaders() if k.lower() not in skip]
            length = resp.getheader("Content-Length")
            if self.command == "HEAD" and length is not None:
                out.append(("Content-Length", length))
            else:
                out.append(("Content-Length", str(len(data))))
            return resp.status, out, data

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                dict(self.headers.items()),
            )
            body = self._body()
            fault = proxy._match(seen)
            if fault is None:
                self._answer(*self._forward(body))
            elif fault.action == "reset":
                self._reset()
            elif fault.action == "status":
                xml = fault.body
                if xml is None:
                    xml = ERROR_XML.format(code=fault.code, message=fault.message).encode()
                self._answer(
                    fault.status,
                    [
                        ("Content-Type", "application/xml"),
                        ("Content-Length", str(len(xml))),
                        *fault.headers,
                    ],
                    xml if self.command != "HEAD" else b"",
                )
            elif fault.action == "answer" and fault.rewrite is not None:  # moto never asked
                data = fault.rewrite(b"")
                self._answer(
                    200,
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))],
                    data,
                )
            elif fault.action == "redirect":
                target = fault.location + self.path
                self._answer(fault.status, [("Location", target), ("Content-Length", "0")], b"")
            else:
                status, headers, data = self._forward(body)
                if fault.action == "truncate" and len(data) > 1:
                    self._answer(status, headers, data[: len(data) // 2])
                    self.wfile.flush()
                    self._reset()
                elif fault.action == "corrupt" and data:
                    self._answer(status, headers, bytes([data[0] ^ 0xFF]) + data[1:])
                elif fault.action == "rewrite" and fault.rewrite is not None:
                    data = fault.rewrite(data)
                    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                    self._answer(status, [*headers, ("Content-Length", str(len(data)))], data)
                else:
                    self._answer(status, headers, data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 (a free port) in a thread; yields its ``http://`` address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fault_proxy(s3: S3Server, **env: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of ``s3``, with ``AWS_ENDPOINT_URL`` pointing at it
    (and the variables ``env``)."""
    proxy = FaultProxy(upstream=s3.endpoint)
    with serve(_handler(proxy)) as address:
        proxy.endpoint = address
        with environment({**s3.env, **env, "AWS_ENDPOINT_URL": address}):
            yield proxy


def killed_conversion(src: str, url: str, params: dict[str, object], abort_after: int) -> int:
    """Convert ``src`` into ``url`` in a fresh process that ends abruptly (as ``kill -9``)
    once ``abort_after`` shards are written; returns its exit status."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from curated.images.shards import ABORT_ENV

    code = (
        "import sys; from curated.images import convert_to_ome_zarr; "
        f"convert_to_ome_zarr(sys.argv[1], sys.argv[2], **{params!r})"
    )
    env = {**os.environ, ABORT_ENV: str(abort_after)}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    run = subprocess.run(
        [sys.executable, "-c", code, str(src), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.returncode


SHAPE = (16, 32, 32)
PARAMS = {"voxel_size": (8, 4, 4), "chunks": 8, "shard": 16, "workers": 1}
"""The small conversion the fault tests write into the object store."""


def converted_source(tmp_path_factory, seed: int):
    """``(tiff, local OME-Zarr, its Result)``: a random SHAPE stack and its conversion into a
    folder with PARAMS, the reference a store written through the faults must equal."""
    import numpy as np
    import tifffile

    from curated.images import convert_to_ome_zarr

    vol = np.random.default_rng(seed).integers(0, 255, SHAPE, dtype=np.uint8)
    path = tmp_path_factory.mktemp("src") / "stack.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    local = tmp_path_factory.mktemp("local") / "stack.ome.zarr"
    return path, local, convert_to_ome_zarr(path, local, **PARAMS)
