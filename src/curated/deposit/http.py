"""The one HTTP session every repository adapter uses: timeouts, retries, streaming, clear errors.

* Every request has a connect and a read timeout; TLS verification is always on.
* 429/502/503/504 and dropped connections are retried with exponential backoff, or
  after a ``Retry-After`` (seconds or an HTTP date) asking for longer; each delay, the
  attempts and the total waiting are bounded.
* 401/403 become a :class:`~curated.errors.DepositError` that names the environment
  variable the credential came from, and are never retried blindly; a 403 whose message
  says the record's state refused the request (locked, in review, a quota, a package file:
  :data:`FORBIDDEN_CAUSES`) is named as that instead, with what to do.
* 413 (a size limit, often a proxy's) and 507 (storage or quota full) are refusals for
  good: named at once with what to do (:data:`FINAL_REFUSALS`, each adapter's
  :attr:`HttpSession.advice`), never retried; a caller's ``refuse`` names an answer of a
  retried status that will never succeed (a feature switched off).
* An HTML page where JSON was expected (a login page, a proxy error, a wrong ``--url``)
  is named as such.
* Bodies are streamed from disk through :class:`FileSlice` / :class:`MultipartBody`, which
  hash what they send (md5 + sha256) in the same pass; a retry re-opens the body.
* Secrets never reach a message: every text taken from a server passes
  :func:`curated._secrets.scrub` (each session registers its credentials there),
  and a server echoing the credential back (in a link, a body) gets it replaced before
  anything is parsed, so it cannot reach a receipt, the journal or the log.
* Redirects are followed here, not by ``requests``: within the repository's origin
  (scheme, host, port) with the credential; to another origin only for GET/HEAD, on a
  bare session without any credential header or cookie; a redirect of any other request
  to another origin is refused (it may carry a password or a body meant for the repository).
* Response bodies are read in bounded pieces: at most :attr:`HttpSession.max_body` bytes
  (:data:`ERROR_BODY` of an error answer) and :attr:`Timeouts.body` seconds, however
  slowly or hugely a server answers.
* Every attempt has a total deadline (:attr:`Timeouts.total`, ``$CURATED_HTTP_DEADLINE``):
  connecting, the status line, the headers and the body of the answer together. A server
  trickling its headers a byte at a time (which no per-read timeout catches) is cut off
  by a watchdog that shuts the socket. The time spent sending a request body (a file
  upload) is not counted: only the waiting for the repository is.
* A server silent for :attr:`Timeouts.answer` seconds (120) within the answer to a request
  that sends no file, or :attr:`Timeouts.read` (600) after a file, has stalled; an attempt
  that meets such a silence is tried once more at most (:data:`STALLS`), not as often as
  :class:`RetryPolicy` allows for other failures.
* A request that is not idempotent (a POST/PATCH creating a draft, publishing) is not
  re-sent once it may have reached the server (a read timeout, a connection closed without
  an answer): that would create a second draft. It raises :class:`LostResponse` instead,
  and the deposit looks the draft up before making another.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from curated._secrets import MIN_LENGTH as MIN_SECRET
from curated._secrets import REDACTED, register_secret, scrub, without_userinfo
from curated._secrets import redact as _redact  # private: one public redact (tests/test_log.py)
from curated._version import __version__
from curated.errors import DepositError


class LostResponse(DepositError):
    """A request that is not safe to repeat may have reached the server, but no answer came back."""


RETRY_STATUSES = frozenset({429, 502, 503, 504})
UNSENT_STATUSES = frozenset({429, 503})
"""Statuses that say the request was not acted on: retried even when not idempotent."""
FINAL_REFUSALS = {
    413: "{what}: {repository}, or a proxy in front of it, refuses a request{size} as too "
    "large (HTTP 413 Request Entity Too Large{said}): a size limit, which sending it again "
    "will never get past",
    507: "{what}: {repository} has no room left for it (HTTP 507 Insufficient Storage{said}): "
    "its storage, or the quota of the account or the record, is full, and sending it again "
    "will not help until that changes",
}
"""Statuses that refuse a request for good (its size, a full quota), named as such."""
FINAL_ADVICE = {
    413: "ask the repository's administrators how large a request they take (the web "
    "server's or proxy's body size limit), or whether it takes files in parts",
    507: "ask the repository's administrators to raise the quota (or free space), then "
    "re-run with --resume",
}
FORBIDDEN_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        # Dataverse, file.api.alreadyHasPackageFile (Datasets.addFileToDataset, FORBIDDEN)
        re.compile(r"package file", re.IGNORECASE),
        "the dataset holds a package file (a DCM/rsync upload), and the repository takes no "
        "other file into such a dataset; make a new deposit into another dataset instead",
    ),
    (
        # DSpace: an item in the review workflow is no longer its submitter's to change
        re.compile(r"\bworkflow\b", re.IGNORECASE),
        "the item is in the repository's review workflow, where its submitter may no longer "
        "change it; ask the collection's reviewers to return it to you (then re-run with "
        "--resume), or make a new deposit",
    ),
    (
        re.compile(r"\bquota\b", re.IGNORECASE),
        "the storage quota of the account or the record is full; ask the repository's "
        "administrators to raise it (or free space), then re-run with --resume",
    ),
    (
        # invenio-files-rest MultipartAlreadyCompleted (403)
        re.compile(r"already completed", re.IGNORECASE),
        "the upload was completed already (by an earlier attempt); re-run with --resume: "
        "curated checks what the repository holds before sending anything again",
    ),
    (
        # invenio-files-rest BucketLockedError (403 "Bucket is locked for modifications."):
        # a published record, or a draft under review; a Figshare item that is locked
        re.compile(r"\block(ed)?\b", re.IGNORECASE),
        "the record is locked for changes (it is published, or under review or being "
        "processed), not a credential problem; check its state in the repository: one in "
        "review or processing takes changes once it is returned or done (then re-run with "
        "--resume), a published one only through a new version",
    ),
)
"""What a 403 that is not about the credential says (a pattern of the server's message)
and what to do about it: the request was refused by the state of the record, and a new
credential would not help."""
AUTHORIZATION = re.compile(
    r"token|credential|auth|permi(?:t|ssion)|access|denied|forbidden|log ?in|api.?key|"
    r"expired|csrf|not allowed",
    re.IGNORECASE,
)
"""Words of a server's message about the credential or the account's rights."""


def forbidden_cause(said: str) -> str | None:
    """What to say about a 403 whose message (``said``) names a cause that is not the
    credential (:data:`FORBIDDEN_CAUSES`), or ``None``."""
    return next((cause for pattern, cause in FORBIDDEN_CAUSES if pattern.search(said)), None)


AUTH_HEADERS = ("Authorization", "X-Dataverse-key", "X-XSRF-TOKEN", "Cookie", "Proxy-Authorization")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_BODY = 64 * 1024 * 1024
"""Largest response body read (API answers are small; a bigger one is refused, not buffered)."""
ERROR_BODY = 64 * 1024
"""Largest part of an error answer's body read (the rest is never needed to report it)."""
CHUNK = 1024 * 1024
USER_AGENT = (
    f"curated/{__version__} (+https://github.com/curated; python-requests/{requests.__version__})"
)


@dataclass
class RetryPolicy:
    """How often and how long to retry transient failures.

    Attempts are per request; ``max_wait`` bounds the total sleeping of one request.
    Tests pass ``sleep`` (a recorder) and tiny ``backoff`` values.
    """

    attempts: int = 6
    """Tries per request, the first included."""
    backoff: float = 1.0
    """First delay in seconds; doubles after each failure."""
    max_delay: float = 120.0
    """Longest single delay (also caps a server's ``Retry-After``)."""
    max_wait: float = 900.0
    """Longest total delay of one request before giving up."""
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before try ``attempt + 1``: the exponential backoff, or a server's
        ``Retry-After`` when that asks for longer (never less: a ``Retry-After`` of 0 or a
        date already past, a clock ahead of the server's, would retry at once), at most
        :attr:`max_delay`."""
        base = self.backoff * (2 ** (attempt - 1))
        if retry_after is not None:
            base = max(retry_after, base)
        return min(base, self.max_delay)


DEADLINE_ENV = "CURATED_HTTP_DEADLINE"
"""Environment variable overriding :attr:`Timeouts.total` (seconds)."""
DEFAULT_DEADLINE = 1800.0


def default_deadline() -> float:
    """:data:`DEFAULT_DEADLINE`, or the seconds in ``$CURATED_HTTP_DEADLINE``."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        msg = f"${DEADLINE_ENV} must be a positive number of seconds, not {raw!r}"
        raise DepositError(msg, field=DEADLINE_ENV)
    return value


STALLS = 2
"""Attempts after which a server that accepted the request and then fell silent (a read
timeout) is given up on, whatever :attr:`RetryPolicy.attempts` allows."""


@dataclass
class Timeouts:
    connect: float = 15.0
    read: float = 600.0
    """Longest wait for any one piece of the answer to a request that sends a file (the
    repository may check a large file before it answers)."""
    answer: float = 120.0
    """Longest wait for any one piece of the answer to any other request (metadata, lists,
    publishing): a server silent that long has stalled."""
    body: float = 900.0
    """Longest time reading one answer's body (a server trickling bytes is cut off)."""
    total: float = field(default_factory=default_deadline)
    """Longest time one attempt may wait for the repository: connecting, then the status
    line, headers and body of its answer (sending a request body is not counted)."""

    def as_tuple(self, *, sends_file: bool = True) -> tuple[float, float]:
        return (self.connect, self.read if sends_file else min(self.read, self.answer))


class Deadline:
    """The watchdog of one attempt: shuts its sockets once :attr:`Timeouts.total` is spent.

    A per-read timeout never fires while a server sends one byte every second; this
    does. The clock stops while the request body is being sent (:meth:`pause`/:meth:`arm`).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.left = seconds
        self.expired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._since = 0.0
        self._stopped = False
        self._socks: list[socket.socket] = []

    def arm(self) -> None:
        with self._lock:
            if self._stopped or self._timer is not None or self.expired:
                return
            self._since = time.monotonic()
            self._timer = threading.Timer(max(self.left, 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def pause(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self.left -= time.monotonic() - self._since

    def stop(self) -> None:
        self.pause()
        with self._lock:
            self._stopped = True
            self._socks.clear()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if sock not in self._socks:
                self._socks.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.expired = True
            self._timer = None
            for sock in self._socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_current = threading.local()
"""The :class:`Deadline` of the attempt running on this thread (``_current.deadline``)."""


def _deadline() -> Deadline | None:
    return getattr(_current, "deadline", None)


class _Watched:
    """Connection mixin: hands every socket to the running attempt's :class:`Deadline` and
    stops its clock while the request (and its body) is being sent."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        if (d := _deadline()) is not None:
            d.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        d = _deadline()
        if d is None:
            return super().request(*args, **kwargs)  # type: ignore[misc, no-any-return]
        d.watch(self.sock)
        d.pause()
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        finally:
            d.watch(self.sock)
            d.arm()


class _WatchedHTTP(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class DeadlineAdapter(HTTPAdapter):
    """``requests``' adapter whose connections answer to the running :class:`Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        _watch_pools(manager)
        return manager


def _watch_pools(manager: Any) -> None:
    manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``: where a credential may be sent (RFC 6454)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def public_url(url: str) -> str:
    """``url`` as messages, receipts and journals may show it: without ``user:password@``,
    and with every registered secret (a Figshare upload token in its path) and every
    secret-looking query value (``X-Amz-Signature``, ``access_token``...) redacted."""
    # by pattern, not by parsing: an address that does not parse is shown all the same
    return _redact(without_userinfo(url))  # type: ignore[no-any-return]


def url_secrets(url: str) -> list[str]:
    """The password (and user) of a ``user:password@`` URL, to be redacted wherever written."""
    parts = urlsplit(url)
    out = []
    if parts.password:
        out.append(unquote(parts.password))
        out.append(parts.password)
    return out


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "nan" parses as a float that no sleep takes; a server's nonsense means no advice
        return max(seconds, 0.0) if seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # An HTTP date is in UTC (RFC 9110 5.6.7); the asctime form names no zone, and a
        # naive time would be read in the local zone, hours off.
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - time.time(), 0.0)


class Hashes:
    """md5 + sha256 computed in one pass."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)

    def copy(self) -> Hashes:
        other = Hashes.__new__(Hashes)
        other.md5, other.sha256, other.size = self.md5.copy(), self.sha256.copy(), self.size
        return other

    def result(self) -> dict[str, Any]:
        return {**self.hexdigests(), "size": self.size}

    def hexdigests(self) -> dict[str, str]:
        return {"md5": self.md5.hexdigest(), "sha256": self.sha256.hexdigest()}


def hash_file(path: str | Path, *, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """md5, sha256 and size of a file, read in 1 MiB blocks."""
    h = Hashes()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            if progress:
                progress(len(block))
    return {**h.hexdigests(), "size": h.size}


class FileSlice:
    """A read-only, length-known, hashing view of ``length`` bytes of a file from ``offset``.

    ``requests`` sends it as a streamed body with a ``Content-Length`` (it has ``__len__``
    and ``read``); memory stays at one block whatever the file size.
    """

    def __init__(
        self,
        path: str | Path,
        offset: int = 0,
        length: int | None = None,
        *,
        on_read: Callable[[int], None] | None = None,
        hashes: Hashes | None = None,
        also: Any = None,
    ) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        self.offset = offset
        self.length = size - offset if length is None else length
        self.remaining = self.length
        self.hashes = hashes if hashes is not None else Hashes()
        """Hashes of what was read; pass the running hashes of earlier parts to chain them."""
        self.on_read = on_read
        self.also = also
        """One more hash object fed with this slice alone (e.g. a part's md5 to check an S3 ETag)."""
        self._fh = open(self.path, "rb")  # noqa: SIM115 - closed when drained or by close()
        self._fh.seek(offset)
        self._start = (self.hashes.copy(), also.copy() if also is not None else None)

    def __len__(self) -> int:
        return self.remaining

    def seek(self, pos: int, whence: int = 0) -> int:
        """Back to the slice's start (only ``seek(0)``), to send it again after a redirect
        (307/308 keep the body); the hashes start again from where they were given."""
        if (pos, whence) != (0, 0):
            raise io.UnsupportedOperation("a file slice only rewinds to its start")
        if self._fh.closed:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - closed when drained or by close()
        self._fh.seek(self.offset)
        self.remaining = self.length
        hashes, also = self._start
        self.hashes = hashes.copy()
        self.also = also.copy() if also is not None else None
        return 0

    def read(self, n: int = -1) -> bytes:
        if self.remaining <= 0:
            self.close()
            return b""
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        n = min(n, CHUNK * 8)
        data = self._fh.read(n)
        if not data:
            self.close()
            return b""
        self.remaining -= len(data)
        self.hashes.update(data)
        if self.also is not None:
            self.also.update(data)
        if self.on_read:
            self.on_read(len(data))
        return data

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass


class PartBody:
    """A retry-safe request body for one part of a file (upload parts, S3 parts).

    Each call makes a fresh :class:`FileSlice` of the part, so a retried request
    re-reads it from the start; hashes of earlier parts (``running``) are copied
    in, never consumed, and :attr:`last` is the slice of the attempt that went
    through. ``part_md5`` adds an md5 of the part alone (to check an S3 ETag).
    """

    def __init__(
        self,
        path: str | Path,
        offset: int,
        length: int,
        *,
        on_read: Callable[[int], None] | None,
        running: Hashes | None,
        part_md5: bool = False,
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.on_read = on_read
        self.running = running
        self.part_md5 = part_md5
        self.last: FileSlice | None = None

    def __call__(self) -> FileSlice:
        self.last = FileSlice(
            self.path,
            self.offset,
            self.length,
            on_read=self.on_read,
            hashes=self.running.copy() if self.running else None,
            also=hashlib.md5(usedforsecurity=False) if self.part_md5 else None,
        )
        return self.last

    @property
    def hashes(self) -> Hashes | None:
        """The running hashes including this part (``None`` when not chaining)."""
        if self.running is None or self.last is None:
            return None
        return self.last.hashes


class MultipartBody:
    """A ``multipart/form-data`` body whose file part streams from a :class:`FileSlice`.

    ``fields`` are small text parts sent before the file part. ``wrap``: bytes sent
    around the file's own inside the file part (``(head, tail)``, e.g. a zip wrapped
    around it); :attr:`hashes` stay those of the file alone.
    """

    def __init__(
        self,
        fields: dict[str, str],
        file_field: str,
        filename: str,
        source: FileSlice,
        *,
        wrap: tuple[bytes, bytes] = (b"", b""),
    ) -> None:
        self.boundary = uuid.uuid4().hex
        self.source = source
        head = b""
        for name, value in fields.items():
            head += (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                + value.encode("utf-8")
                + b"\r\n"
            )
        safe_name = multipart_filename(filename)
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._head = head + wrap[0]
        self._tail = wrap[1] + f"\r\n--{self.boundary}--\r\n".encode()
        self._stage = 0
        self.remaining = len(self._head) + len(source) + len(self._tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def seek(self, pos: int, whence: int = 0) -> int:
        """Back to the start (only ``seek(0)``), to send the body again after a redirect."""
        self.source.seek(pos, whence)
        self._stage = 0
        self.remaining = len(self._head) + len(self.source) + len(self._tail)
        return 0

    @property
    def hashes(self) -> Hashes:
        return self.source.hashes

    def __len__(self) -> int:
        return self.remaining

    def read(self, n: int = -1) -> bytes:
        out = b""
        if self._stage == 0:
            out, self._stage = self._head, 1
        elif self._stage == 1:
            out = self.source.read(n)
            if not out:
                out, self._stage = self._tail, 3
        elif self._stage == 3:
            out, self._stage = b"", 4
        self.remaining -= len(out)
        return out


_FILENAME_ESCAPES = {"\n": "%0A", "\r": "%0D", '"': "%22"}


def multipart_filename(name: str) -> str:
    """``name`` as a ``filename="…"`` parameter may carry it: LF, CR and ``"`` as ``%0A``,
    ``%0D`` and ``%22``, as browsers send them (WHATWG HTML, multipart/form-data encoding).

    A raw CR LF would end the part's header line, and a blank line the part's headers:
    the rest of the name would be read as a header or as the file's first bytes.
    """
    return re.sub('[\n\r"]', lambda m: _FILENAME_ESCAPES[m.group()], name)


def form_data(fields: dict[str, str]) -> tuple[bytes, str]:
    """A small ``multipart/form-data`` body of text fields, and its content type."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
        + v.encode()
        + b"\r\n"
        for k, v in fields.items()
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Reply:
    """What a request returned: status, headers, parsed JSON (or ``None``) and raw text."""

    status: int
    headers: Any
    data: Any = None
    text: str = ""
    url: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class _Call:
    """One :meth:`HttpSession.request` across its attempts."""

    method: str
    url: str
    what: str
    idempotent: bool
    allow: set[int]
    expect_json: bool
    retry_on: Callable[[Reply], bool] | None
    refuse: Callable[[Reply], DepositError | None] | None = None
    attempt: int = 0
    waited: float = 0.0
    auth_retried: bool = False
    sent: int | None = None
    """Bytes in the last attempt's body (to name a size refused)."""


def _attempt_body(
    body: Callable[[], Any] | None,
    raw: bytes | str | None,
    form: dict[str, str] | None,
    headers: dict[str, str] | None,
) -> tuple[Any, dict[str, Any]]:
    """The body of one attempt (a fresh stream for each) and its headers."""
    hdrs: dict[str, Any] = dict(headers or {})
    if body is not None:
        data = body()
        if isinstance(data, MultipartBody):
            hdrs.setdefault("Content-Type", data.content_type)
        else:
            hdrs.setdefault("Content-Type", "application/octet-stream")
        return data, hdrs
    if raw is not None:
        return raw, hdrs
    return form, hdrs


@dataclass
class HttpSession:
    """A ``requests.Session`` with timeouts, retries, streaming and error mapping.

    Parameters
    ----------
    base_url
        Root the relative paths of :meth:`request` are joined to.
    headers
        Default headers (authorization among them).
    secrets
        Strings that must never appear in a message (the token...).
    credential
        How the credential is named in messages, e.g. ``$ZENODO_TOKEN``.
    """

    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    credential: str = "the credential"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    repository: str = "the repository"
    on_auth_failure: Callable[[Reply], bool] | None = None
    """Called on 401/403; returning True retries once (DSpace CSRF / JWT refresh)."""
    on_response: Callable[[requests.Response], None] | None = None
    """Called on every response (DSpace reads its rotating XSRF token here)."""

    advice: dict[int, str] = field(default_factory=dict)
    """What to do about a :data:`FINAL_REFUSALS` status at this repository (its own way
    around a size limit...), instead of :data:`FINAL_ADVICE`."""

    max_body: int = MAX_BODY
    """Largest answer body read; a bigger one is refused (never buffered whole)."""
    hidden: list[str] = field(default_factory=list)
    """Values kept out of messages only (:meth:`hide`)."""

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(self.headers)
        self.session.trust_env = True
        # Requests to another origin (presigned storage URLs, redirects) go through a
        # session that has never held the credential or a cookie of the repository.
        self.bare = requests.Session()
        self.bare.headers["User-Agent"] = USER_AGENT
        self.bare.trust_env = True  # proxies and CA bundles apply off-origin too
        for sess in (self.session, self.bare):
            sess.mount("http://", DeadlineAdapter())
            sess.mount("https://", DeadlineAdapter())
        self.secrets = [*self.secrets, *url_secrets(self.base_url)]
        for secret in self.secrets:
            register_secret(secret)

    def __repr__(self) -> str:
        # the credential is in the headers, the secrets and maybe the URL: never in a repr
        # (a debugger, a log line, a test's report)
        return f"HttpSession({public_url(self.base_url)!r}, repository={self.repository!r})"

    # -------------------------------------------------------------- helpers
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def foreign(self, url: str) -> bool:
        """Whether ``url`` is on another origin (scheme, host, port) than the repository's API."""
        return origin(url) != origin(self.base_url)

    def clean(self, text: str) -> str:
        """``text`` fit for a message: registered secrets and this session's hidden values
        (:meth:`hide`) replaced by ``<redacted>``."""
        text = scrub(text)
        for value in self.hidden:
            text = text.replace(value, REDACTED)
        return text

    def add_secret(self, value: str | None) -> None:
        """Keep ``value`` (a credential handed out on the way: a JWT, a CSRF token) out of
        every message, receipt, journal and log from now on, answers included."""
        if value and value not in self.secrets:
            self.secrets.append(value)
            register_secret(value)

    def hide(self, value: str | None) -> None:
        """Keep ``value`` out of every message of this session, but not out of the answers
        it reads: a token the repository hands out again when asked (a Figshare upload
        token, inside the ``upload_url`` that must stay usable on a resumed upload)."""
        if value and len(value) >= MIN_SECRET and value not in self.hidden:
            self.hidden.append(value)

    def _shown(self, url: str) -> str:
        """``url`` as a message or an error's details show it."""
        return self.clean(public_url(url))

    def _hold_credentials(self, headers: dict[str, Any]) -> None:
        """Register the credential headers about to be sent (whoever set them) as secrets."""
        for name in AUTH_HEADERS:
            value = headers.get(name) or self.session.headers.get(name)
            if isinstance(value, str) and value:
                self.add_secret(value)
                scheme, _, credential = value.partition(" ")
                if credential and scheme.isalpha():  # "Bearer <jwt>", "token <token>"
                    self.add_secret(credential.strip())
        for cookie in self.session.cookies:  # a session cookie is as good as a password
            if cookie.value and len(cookie.value) >= 8:
                self.add_secret(cookie.value)

    def close(self) -> None:
        self.session.close()
        self.bare.close()

    # -------------------------------------------------------------- request
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        allow: Iterable[int] = (),
        expect_json: bool = True,
        retry_on: Callable[[Reply], bool] | None = None,
        what: str = "",
        idempotent: bool | None = None,
        refuse: Callable[[Reply], DepositError | None] | None = None,
    ) -> Reply:
        """Send one request, retrying transient failures; return the :class:`Reply`.

        ``body`` is a factory returning a fresh streamed body (a :class:`FileSlice` or
        :class:`MultipartBody`) for each attempt. Statuses in ``allow`` are returned,
        not raised. ``retry_on(reply)`` may declare an extra status retryable (a lock);
        ``refuse(reply)`` may name an answer that will never succeed (a feature switched
        off, answered with a status otherwise retried): its error is raised at once.
        ``idempotent`` (default: GET, HEAD, PUT, DELETE, OPTIONS and streamed file
        bodies, which the deposit verifies by checksum) says whether the request may be
        sent again after it possibly reached the server; when not, a lost answer raises
        :class:`LostResponse`.
        """
        url = self.url(path)
        call = _Call(
            method=method,
            url=url,
            what=self.clean(what or f"{method} {self._shown(url)}"),
            idempotent=method.upper() in IDEMPOTENT or body is not None
            if idempotent is None
            else idempotent,
            allow=set(allow),
            expect_json=expect_json,
            retry_on=retry_on,
            refuse=refuse,
        )
        while True:
            call.attempt += 1
            data, hdrs = _attempt_body(body, raw, form, headers)
            call.sent = (
                len(data) if isinstance(data, (bytes, str, FileSlice, MultipartBody)) else None
            )
            reply = self._attempt(call, json_body, data, hdrs, params)
            if reply is None:  # a dropped connection, retried after a pause
                continue
            if self._settle(call, reply):
                return reply

    def _attempt(
        self,
        call: _Call,
        json_body: Any,
        data: Any,
        hdrs: dict[str, Any],
        params: dict[str, Any] | None,
    ) -> Reply | None:
        """One try under its :class:`Deadline`: the reply, or ``None`` to try again."""
        deadline = Deadline(self.timeouts.total)
        _current.deadline = deadline
        deadline.arm()
        try:
            try:
                resp = self._send(call.method, call.url, json_body, data, hdrs, params, call.what)
            except (requests.ConnectionError, requests.Timeout) as exc:
                for fh in (data, getattr(data, "source", None)):
                    if isinstance(fh, FileSlice):
                        fh.close()
                if deadline.expired:
                    raise self._past_deadline(call) from None
                self._connection_failed(call, exc)
                return None
            except (requests.RequestException, ValueError) as exc:
                # an address that cannot be parsed (a repository's answer may hand one out):
                # requests' own message quotes it whole, upload token and all
                msg = (
                    f"{call.what}: the address {self._shown(call.url)} cannot be used "
                    f"({type(exc).__name__}); check --url, or report the repository's answer that gave it"
                )
                raise DepositError(msg, details={"url": self._shown(call.url)}) from None
            expect = call.expect_json and resp.status_code not in (204, 205)
            try:
                return self._reply(resp, expect_json=expect, what=call.what)
            except DepositError:
                if deadline.expired:
                    raise self._past_deadline(call) from None
                raise
            finally:
                if deadline.expired:
                    raise self._past_deadline(call)
        finally:
            deadline.stop()
            _current.deadline = None

    def _past_deadline(self, call: _Call) -> DepositError:
        """The error of an attempt cut off by its deadline (lost, when not safe to repeat)."""
        total = self.timeouts.total
        if not call.idempotent:
            msg = (
                f"{call.what}: {self.repository} did not answer within {total:g} s "
                f"(${DEADLINE_ENV}); it may have been done. Re-run with --resume: curated "
                "looks for what was made before doing it again"
            )
            return LostResponse(msg, details={"url": self._shown(call.url), "lost": True})
        msg = (
            f"{call.what}: {self.repository} did not answer within {total:g} s (connecting, "
            f"headers and body; set ${DEADLINE_ENV} to allow longer); gave up, re-run with --resume"
        )
        return DepositError(msg, details={"url": self._shown(call.url), "deadline": total})

    def _connection_failed(self, call: _Call, exc: Exception) -> None:
        """Raise for a connection that failed for good; otherwise sleep before the next try."""
        what, url, reason = call.what, call.url, type(exc).__name__
        if not call.idempotent and _may_have_arrived(exc):
            msg = (
                f"{what}: the answer from {self.repository} was lost ({reason}); it may have been done. "
                "Re-run with --resume: curated looks for what was made before doing it again"
            )
            raise LostResponse(msg, details={"url": self._shown(url), "lost": True}) from None
        stalled = isinstance(exc, requests.ReadTimeout) and call.attempt >= STALLS
        if call.attempt >= self.retry.attempts or stalled:
            # a server that fell silent twice is stalled, not busy: no hour of retries
            msg = (
                f"{what}: the connection to {self.repository} failed {call.attempt} times ({reason}); "
                "nothing confirmed is lost: re-run with --resume to continue"
            )
            raise DepositError(
                msg, details={"url": self._shown(url), "attempts": call.attempt}
            ) from None
        delay = self.retry.delay(call.attempt, None)
        if call.waited + delay > self.retry.max_wait:
            msg = f"{what}: gave up after waiting {call.waited:.0f} s for {self.repository}; re-run with --resume"
            raise DepositError(msg, details={"url": self._shown(url)}) from None
        call.waited += delay
        self.retry.sleep(delay)

    def _settle(self, call: _Call, reply: Reply) -> bool:
        """True when ``reply`` is the answer; False after a pause before the next try.

        Raises for an answer that is an error (transient ones once retries are spent).
        """
        status, what, url = reply.status, call.what, call.url
        if status in call.allow:
            return True
        if call.refuse is not None and (final := call.refuse(reply)) is not None:
            raise final
        transient = status in RETRY_STATUSES or (call.retry_on is not None and call.retry_on(reply))
        if transient:
            self._transient(call, reply)
            return False
        if status in (401, 403):
            if (
                not call.auth_retried
                and self.on_auth_failure is not None
                and self.on_auth_failure(reply)
            ):
                call.auth_retried = True
                call.attempt -= 1
                return False
            raise self.error_for(reply, what, url)
        if status >= 400:
            raise self.error_for(reply, what, url, sent=call.sent)
        if (
            call.expect_json
            and status not in (204, 205)
            and reply.data is None
            and reply.text.strip()
        ):
            raise self._not_json(reply, what)
        return True

    def error_for(
        self, reply: Reply, what: str, url: str | None = None, *, sent: int | None = None
    ) -> DepositError:
        """The error an answer of HTTP 400 or more stands for when it is not retried (a
        refused credential named as such, a 403 that names another cause as that cause):
        what :meth:`request` raises for a status it was not told to ``allow``, for a caller
        that allowed it to look at it first."""
        status, shown = reply.status, self._shown(url or reply.url)
        said = self.server_says(reply) if status == 403 else ""
        said = "" if said == "an HTML page" else said
        if said and (cause := forbidden_cause(said)) is not None:
            msg = f"{what}: {self.repository} refused it (HTTP 403: {said}): {cause}"
            return DepositError(msg, details={"url": shown, "status": status, "server": said})
        if said and not AUTHORIZATION.search(said):
            msg = (
                f"{what}: {self.repository} refused it (HTTP 403: {said}); do what its "
                "message asks, and if it is about access, check that the credential in "
                f"{self.credential} is valid, not expired, and allowed to deposit"
            )
            return DepositError(msg, details={"url": shown, "status": status, "server": said})
        if status in (401, 403):
            msg = (
                f"{what}: {self.repository} refused the credential in {self.credential} (HTTP {status})"
                f"{self._server_says(reply)}; check that it is valid, not expired, and allowed to deposit"
            )
            return DepositError(msg, details={"url": shown, "status": status})
        msg = f"{what}: {self.repository} answered HTTP {status}{self._server_says(reply)}"
        if status in FINAL_REFUSALS:
            said = self.server_says(reply)
            msg = FINAL_REFUSALS[status].format(
                what=what,
                repository=self.repository,
                said=f", saying {said!r}" if said and said != "an HTML page" else "",
                size=f" of {sent} bytes" if sent else "",
            )
            msg += "; " + self.advice.get(status, FINAL_ADVICE[status])
        return DepositError(
            msg, details={"url": shown, "status": status, "server": self._errors(reply)}
        )

    def server_says(self, reply: Reply) -> str:
        """What an answer's body says went wrong (its message, its errors), fit for a
        message; empty when it says nothing."""
        return self._server_says(reply).removeprefix(": ")

    def _transient(self, call: _Call, reply: Reply) -> None:
        """Sleep before retrying a transient answer, or raise when that is not safe or too long."""
        status, what, url = reply.status, call.what, call.url
        if not call.idempotent and status not in UNSENT_STATUSES:
            # a gateway error after the request went through may hide a draft made
            msg = (
                f"{what}: {self.repository} answered HTTP {status}; the request may have been done. "
                "Re-run with --resume: curated looks for what was made before doing it again"
            )
            raise LostResponse(
                msg, details={"url": self._shown(url), "status": status, "lost": True}
            )
        if call.attempt >= self.retry.attempts:
            msg = (
                f"{what}: {self.repository} still answers HTTP {status} after {call.attempt} attempts"
                f"{self._server_says(reply)}; try again later with --resume"
            )
            raise DepositError(msg, details={"url": self._shown(url), "status": status})
        delay = self.retry.delay(call.attempt, parse_retry_after(reply.header("Retry-After")))
        if call.waited + delay > self.retry.max_wait:
            msg = (
                f"{what}: {self.repository} asks to wait longer than {self.retry.max_wait:.0f} s "
                f"(HTTP {status}); try again later with --resume"
            )
            raise DepositError(msg, details={"url": self._shown(url), "status": status})
        call.waited += delay
        self.retry.sleep(delay)

    # ---------------------------------------------------------- internals
    def _send(
        self,
        method: str,
        url: str,
        json_body: Any,
        data: Any,
        headers: dict[str, Any],
        params: dict[str, Any] | None,
        what: str,
    ) -> requests.Response:
        """One request and the redirects it meets, with the credential kept on its origin."""
        trusted = not self.foreign(url)
        asked = method  # a POST turned into a GET by a 301/302/303 is still a POST's answer
        for _hop in range(MAX_REDIRECTS + 1):
            session = self.session if trusted else self.bare
            hdrs = dict(headers)
            self._hold_credentials(hdrs)
            if not trusted:
                # Presigned storage URLs carry their own authorisation (passed in ``headers``
                # by the caller); the repository's credential and cookies never go there.
                for h in AUTH_HEADERS:
                    if h not in (headers or {}):
                        hdrs.pop(h, None)
            resp = session.request(
                method,
                url,
                json=json_body,
                data=data,
                headers=hdrs,
                params=params,
                timeout=self.timeouts.as_tuple(sends_file=_sends_file(data)),
                allow_redirects=False,
                stream=True,
            )
            if self.on_response is not None and trusted:
                self.on_response(resp)
            if resp.status_code not in REDIRECTS or not resp.headers.get("Location"):
                return resp
            target = urljoin(resp.url, resp.headers["Location"])
            resp.close()
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method, json_body, data, params = (
                    ("GET" if method != "HEAD" else "HEAD"),
                    None,
                    None,
                    None,
                )
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            else:
                params = None  # already part of the URL redirected from
            if trusted and self.foreign(target):
                if asked not in ("GET", "HEAD") or data is not None or json_body is not None:
                    # Another site's answer is never taken for the repository's answer to a
                    # request that changes something (a forged "published", a foreign draft id).
                    msg = (
                        f"{what}: {self.repository} redirected this {asked} to another site "
                        f"({self._shown(target)}); curated does not send credentials or request bodies "
                        "off the repository's origin. Check --url (it may need https:// or the API path)"
                    )
                    raise DepositError(
                        msg, details={"url": self._shown(url), "redirect": self._shown(target)}
                    )
                trusted = False  # once off the origin, never back to the credential
            if origin(target)[0] == "http" and origin(url)[0] == "https":
                msg = (
                    f"{what}: redirected from https to plain http ({self._shown(target)}); refused"
                )
                raise DepositError(msg, details={"url": self._shown(url)})
            url = target
            if callable(getattr(data, "seek", None)):
                data.seek(0)
        msg = f"{what}: more than {MAX_REDIRECTS} redirects from {self.repository}; check --url"
        raise DepositError(msg, details={"url": self._shown(url)})

    def _read_body(self, resp: requests.Response, what: str) -> bytes:
        """The answer's body, at most ``max_body`` bytes within ``timeouts.body`` seconds.

        An error answer (400 and up) is read to :data:`ERROR_BODY` bytes at most: its
        first bytes say what is wrong; the rest is left unread (the connection is closed).
        """
        error = resp.status_code >= 400
        declared = resp.headers.get("Content-Length", "")
        too_big = (
            f"{what}: {self.repository} sent an answer larger than {self.max_body // 2**20} MiB; "
            "refused (an API answer is never that large: check --url)"
        )
        if not error and declared.isdigit() and int(declared) > self.max_body:
            resp.close()
            raise DepositError(too_big, details={"url": self._shown(resp.url)})
        limit = min(self.max_body, ERROR_BODY) if error else self.max_body
        deadline = time.monotonic() + self.timeouts.body
        buf = bytearray()
        raw = resp.raw
        try:
            while True:
                # read1: at most one read from the socket, so a trickling server is
                # checked against the deadline after every piece it sends.
                n = min(CHUNK, limit + 1 - len(buf))
                piece = raw.read1(n) if hasattr(raw, "read1") else raw.read(n)
                if not piece:
                    break
                buf += piece
                if len(buf) > limit and error:
                    del buf[limit:]  # the error's first bytes are all it needs
                    break
                if len(buf) > limit:
                    raise DepositError(too_big, details={"url": self._shown(resp.url)})
                if time.monotonic() > deadline:
                    msg = (
                        f"{what}: {self.repository} took more than {self.timeouts.body:.0f} s to send "
                        "its answer; gave up (re-run with --resume)"
                    )
                    raise DepositError(msg, details={"url": self._shown(resp.url)})
        except (requests.RequestException, OSError, Exception) as exc:
            if isinstance(exc, DepositError):
                raise
            msg = f"{what}: the answer from {self.repository} was cut off ({type(exc).__name__}); re-run with --resume"
            raise DepositError(msg, details={"url": self._shown(resp.url)}) from None
        finally:
            resp.close()
        return bytes(buf)

    def _reply(self, resp: requests.Response, *, expect_json: bool, what: str = "") -> Reply:
        content = self._read_body(resp, what or f"{resp.request.method} {self._shown(resp.url)}")
        text = content.decode(resp.encoding or "utf-8", errors="replace") if content else ""
        # A server echoing the credential back (a link ``?token=...``, a body) must not
        # hand it to what is written: receipts, the journal, the log.
        text = scrub(text)
        data = None
        ctype = resp.headers.get("Content-Type", "")
        if text and ("json" in ctype or (expect_json and text.lstrip()[:1] in ("{", "["))):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            data = scrub(data)
        # ``Authorization`` is where a server hands out a new credential (DSpace's JWT at
        # each login, which may be the one it gave before): kept whole to be used
        headers = requests.structures.CaseInsensitiveDict(
            {k: v if k.lower() == "authorization" else scrub(v) for k, v in resp.headers.items()}
        )
        return Reply(
            status=resp.status_code, headers=headers, data=data, text=text, url=scrub(resp.url)
        )

    def _not_json(self, reply: Reply, what: str) -> DepositError:
        head = reply.text.lstrip()[:200].lower()
        if head.startswith("<") or "html" in reply.headers.get("Content-Type", ""):
            msg = (
                f"{what}: {self.repository} answered with an HTML page instead of JSON (HTTP {reply.status}); "
                "check that --url is the repository's API root, not its web site or a login/proxy page"
            )
        else:
            msg = f"{what}: {self.repository} answered something that is not JSON (HTTP {reply.status})"
        return DepositError(msg, details={"url": self._shown(reply.url), "status": reply.status})

    def _errors(self, reply: Reply) -> Any:
        data = reply.data
        if isinstance(data, dict) and isinstance(data.get("errors"), list):
            return [self.clean(describe_error(e)) for e in data["errors"][:50]]
        if isinstance(data, dict):
            return self.clean(str(data.get("message") or data.get("error") or ""))
        return None

    def _server_says(self, reply: Reply) -> str:
        data = reply.data
        parts: list[str] = []
        if isinstance(data, dict):
            for key in ("message", "error", "description"):
                if isinstance(data.get(key), str) and data[key]:
                    parts.append(data[key])
                    break
            errs = data.get("errors")
            if isinstance(errs, list):
                for e in errs[:5]:
                    parts.append(describe_error(e))
        elif reply.text and not reply.text.lstrip().startswith("<"):
            parts.append(reply.text.strip()[:200])
        elif reply.text:
            parts.append("an HTML page")
        said = "; ".join(p for p in parts if p)
        return f": {self.clean(said)}" if said else ""


def describe_error(e: Any) -> str:
    """One line for one server field error (Invenio, Figshare, DSpace shapes)."""
    if isinstance(e, dict):
        fld = e.get("field") or e.get("paths") or ""
        if isinstance(fld, list):
            fld = ", ".join(str(x) for x in fld)
        msgs = e.get("messages") or e.get("message") or e.get("string") or e.get("exception") or ""
        if isinstance(msgs, list):
            msgs = " ".join(str(m) for m in msgs)
        return f"{fld}: {msgs}" if fld else str(msgs)
    return str(e)


def _sends_file(data: Any) -> bool:
    """Whether a request body is (part of) a file rather than a small in-memory one."""
    return data is not None and not isinstance(data, (bytes, bytearray, str, dict))


def _may_have_arrived(exc: BaseException) -> bool:
    """Whether a failed request may have reached the server (its answer was lost).

    A connect timeout or a refused connection never reached it; a read timeout, or a
    connection closed without an answer after the request was sent, may have.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ReadTimeout):
        return True
    text = repr(exc)
    return "RemoteDisconnected" in text or "without response" in text or "IncompleteRead" in text


def env_token(var: str, *, repository: str) -> str:
    """The secret in environment variable ``var``, or a DepositError saying how to set it."""
    value = os.environ.get(var, "")
    if not value.strip():
        msg = (
            f"no credential for {repository}: set the environment variable {var} "
            f"(e.g. `export {var}=...` from a password manager) or choose another with --token-env"
        )
        raise DepositError(msg, field=var)
    register_secret(value.strip())
    return value.strip()
