"""What every fake repository shares: a threaded HTTP server on 127.0.0.1:0, routing,
streamed request bodies, and injectable faults (an error status, ``Retry-After``,
an HTML page, a connection dropped after N bytes of a request body).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHUNK = 256 * 1024


class Dropped(Exception):
    """The fake hung up in the middle of a request body."""


@dataclass
class Fault:
    method: str
    pattern: str
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    times: int = 1
    skip: int = 0
    """Let this many matching requests through before the fault applies."""
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Any
    handler: BaseHTTPRequestHandler
    drop_after: int | None = None
    consumed: int = 0

    @property
    def length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def stream(self) -> Iterator[bytes]:
        """The body in chunks; raises :class:`Dropped` where a drop fault cuts it."""
        remaining = self.length - self.consumed
        while remaining > 0:
            n = min(CHUNK, remaining)
            if self.drop_after is not None:
                n = min(n, self.drop_after - self.consumed)
                if n <= 0:
                    raise Dropped
            data = self.handler.rfile.read(n)
            if not data:
                raise Dropped
            self.consumed += len(data)
            remaining -= len(data)
            yield data

    def body(self) -> bytes:
        return b"".join(self.stream())

    def json(self) -> Any:
        raw = self.body()
        return json.loads(raw) if raw else None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body().decode()).items()}

    def multipart(self) -> dict[str, tuple[str | None, bytes]]:
        """Parts of a multipart/form-data body: name → (filename, content). Small bodies only."""
        ctype = self.headers.get("Content-Type", "")
        m = re.search(r"boundary=([^;]+)", ctype)
        if not m:
            return {}
        boundary = b"--" + m.group(1).strip('"').encode()
        out: dict[str, tuple[str | None, bytes]] = {}
        for chunk in self.body().split(boundary)[1:]:
            if chunk.startswith(b"--"):
                break
            head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
            content = content.removesuffix(b"\r\n")
            disp = head.decode("utf-8", "replace")
            name = re.search(r'name="([^"]*)"', disp)
            fname = re.search(r'filename="([^"]*)"', disp)
            if name:
                out[name.group(1)] = (fname.group(1) if fname else None, content)
        return out

    def drain(self) -> None:
        for _ in self.stream():
            pass


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class FakeServer:
    """Subclasses register routes with :meth:`route` in ``__init__`` and keep their own state."""

    name = "fake"

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = []
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, str]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.RLock()
        self.httpd: ThreadingHTTPServer | None = None
        self.url = ""

    # ------------------------------------------------------------ set-up
    def route(self, method: str, pattern: str, fn: Callable[..., Reply]) -> None:
        self.routes.append((method, re.compile(pattern + r"$"), fn))

    def inject(self, method: str, pattern: str, **kwargs: Any) -> Fault:
        f = Fault(method, pattern, **kwargs)
        with self.lock:
            self.faults.append(f)
        return f

    def lose_answers(self, method: str, pattern: str, *, times: int = 1) -> None:
        """The next ``times`` requests to the route ``pattern`` are carried out, then the
        connection is closed without an answer (the answer to a POST lost on the way)."""
        left = {"n": times}

        def wrap(fn: Callable[..., Reply]) -> Callable[..., Reply]:
            def lossy(req: Request, *groups: str) -> Reply:
                result = fn(req, *groups)
                if left["n"] > 0:
                    left["n"] -= 1
                    raise ConnectionResetError  # done, but the answer never leaves
                return result

            return lossy

        hits = [
            i
            for i, (m, rx, _) in enumerate(self.routes)
            if m == method and rx.pattern == pattern + "$"
        ]
        if not hits:
            raise KeyError(f"no route {method} {pattern}")
        m, rx, fn = self.routes[hits[0]]
        self.routes[hits[0]] = (m, rx, wrap(fn))

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return None

            def _any(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def count(self, method: str, pattern: str) -> int:
        rx = re.compile(pattern + r"$")
        return sum(1 for m, p in self.calls if m == method and rx.match(p))

    # ------------------------------------------------------------ serving
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.method == method and re.match(f.pattern + r"$", path):
                    if f.skip > 0:
                        f.skip -= 1
                        return None
                    f.times -= 1
                    return f
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.calls.append((h.command, path))
            self.headers_seen.append(dict(h.headers.items()))
        req = Request(h.command, path, query, h.headers, h)
        fault = self._take_fault(h.command, path)
        try:
            if fault is not None and fault.drop_after is not None:
                req.drop_after = fault.drop_after
            elif fault is not None:
                req.drain()
                self._send(h, fault.status or 500, fault.body, fault.headers, fault.content_type)
                return
            for method, rx, fn in self.routes:
                m = rx.match(path)
                if method == h.command and m:
                    result = fn(req, *m.groups())
                    break
            else:
                req.drain()
                result = (404, {"message": f"no route {h.command} {path}"})
            if req.drop_after is not None:
                raise Dropped  # the fault says hang up even if the body was short
            req.drain()
            status, body, *rest = result
            self._send(h, status, body, rest[0] if rest else {})
        except Dropped:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (ConnectionError, BrokenPipeError):
            h.close_connection = True

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str],
        ctype: str = "application/json",
    ) -> None:
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
            ctype = "text/html; charset=utf-8" if body.lstrip().startswith("<") else "text/plain"
        else:
            raw = json.dumps(body).encode()
        h.send_response(status)
        if raw:
            h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if raw and h.command != "HEAD":
            h.wfile.write(raw)


class Assembler:
    """Receives a file's bytes (whole or in numbered parts) and knows its md5 and size.

    Parts arriving in order are hashed as they come (no bytes kept, so a 2 GiB benchmark
    upload costs no memory); a part that arrives out of order is kept in memory.
    """

    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.size = 0
        self.next_part = 1
        self.held: dict[int, bytes] = {}
        self.parts_done: set[int] = set()

    def whole(self, chunks: Iterator[bytes]) -> None:
        h, n = hashlib.md5(), 0
        for c in chunks:
            h.update(c)
            n += len(c)
        self.md5, self.size, self.parts_done = h, n, {1}

    def part(self, n: int, chunks: Iterator[bytes]) -> int:
        if n == self.next_part:
            h, size = self.md5.copy(), self.size
            for c in chunks:
                h.update(c)
                size += len(c)
            got = size - self.size
            self.md5, self.size = h, size
            self.next_part += 1
            while self.next_part in self.held:
                data = self.held.pop(self.next_part)
                self.md5.update(data)
                self.size += len(data)
                self.next_part += 1
        else:
            data = b"".join(chunks)
            got = len(data)
            self.held[n] = data
        self.parts_done.add(n)
        return got

    @property
    def hexdigest(self) -> str:
        return self.md5.hexdigest()


def bearer(req: Request) -> str | None:
    auth = req.headers.get("Authorization") or ""
    return auth.split(" ", 1)[1] if " " in auth else None
