"""The one HTTP session every repository adapter uses: timeouts, retries, streaming, clear errors.

* Every request has a connect and a read timeout; TLS verification is always on.
* 429/502/503/504 and dropped connections are retried with exponential backoff,
  honouring ``Retry-After``; attempts and total waiting are bounded.
* 401/403 become a :class:`~curated.errors.DepositError` that names the environment
  variable the credential came from, and are never retried blindly.
* An HTML page where JSON was expected (a login page, a proxy error, a wrong ``--url``)
  is named as such.
* Bodies are streamed from disk through :class:`FileSlice` / :class:`MultipartBody`, which
  hash what they send (md5 + sha256) in the same pass; a retry re-opens the body.
* Secrets never reach a message: every text taken from a server passes :func:`redact`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from curated._version import __version__
from curated.errors import DepositError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTH_HEADERS = ("Authorization", "X-Dataverse-key", "X-XSRF-TOKEN", "Cookie")
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
        base = self.backoff * (2 ** (attempt - 1))
        if retry_after is not None:
            base = max(retry_after, 0.0)
        return min(base, self.max_delay)


@dataclass
class Timeouts:
    connect: float = 15.0
    read: float = 600.0

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` by ``***``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
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

    def __len__(self) -> int:
        return self.remaining

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

    ``fields`` are small text parts sent before the file part.
    """

    def __init__(
        self, fields: dict[str, str], file_field: str, filename: str, source: FileSlice
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
        safe_name = filename.replace('"', "%22")
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
            f'filename="{safe_name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._stage = 0
        self.remaining = len(head) + len(source) + len(self._tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

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

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(self.headers)
        self.session.trust_env = True

    # -------------------------------------------------------------- helpers
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def foreign(self, url: str) -> bool:
        """Whether ``url`` is on another host than the repository's API."""
        return urlsplit(url).netloc.lower() != urlsplit(self.base_url).netloc.lower()

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def close(self) -> None:
        self.session.close()

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
    ) -> Reply:
        """Send one request, retrying transient failures; return the :class:`Reply`.

        ``body`` is a factory returning a fresh streamed body (a :class:`FileSlice` or
        :class:`MultipartBody`) for each attempt. Statuses in ``allow`` are returned,
        not raised. ``retry_on(reply)`` may declare an extra status retryable (a lock).
        """
        url = self.url(path)
        allow = set(allow)
        what = what or f"{method} {url}"
        waited = 0.0
        auth_retried = False
        attempt = 0
        while True:
            attempt += 1
            hdrs: dict[str, Any] = dict(headers or {})
            if self.foreign(url):
                # Presigned storage URLs (S3 parts, Figshare's upload service) carry their own
                # authorisation; the repository credential must not travel to another host.
                hdrs.update({h: None for h in AUTH_HEADERS if h not in (headers or {})})
            data: Any = None
            if body is not None:
                data = body()
                if isinstance(data, MultipartBody):
                    hdrs.setdefault("Content-Type", data.content_type)
                else:
                    hdrs.setdefault("Content-Type", "application/octet-stream")
            elif raw is not None:
                data = raw
            elif form is not None:
                data = form
            try:
                resp = self.session.request(
                    method,
                    url,
                    json=json_body if json_body is not None else None,
                    data=data,
                    headers=hdrs,
                    params=params,
                    timeout=self.timeouts.as_tuple(),
                    allow_redirects=True,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                for fh in (data, getattr(data, "source", None)):
                    if isinstance(fh, FileSlice):
                        fh.close()
                reason = type(exc).__name__
                if attempt >= self.retry.attempts:
                    msg = (
                        f"{what}: the connection to {self.repository} failed {attempt} times ({reason}); "
                        "nothing confirmed is lost: re-run with --resume to continue"
                    )
                    raise DepositError(msg, details={"url": url, "attempts": attempt}) from None
                delay = self.retry.delay(attempt, None)
                if waited + delay > self.retry.max_wait:
                    msg = f"{what}: gave up after waiting {waited:.0f} s for {self.repository}; re-run with --resume"
                    raise DepositError(msg, details={"url": url}) from None
                waited += delay
                self.retry.sleep(delay)
                continue
            if self.on_response is not None:
                self.on_response(resp)
            reply = self._reply(
                resp, expect_json=expect_json and resp.status_code not in (204, 205)
            )
            status = resp.status_code
            if status in allow:
                return reply
            transient = status in RETRY_STATUSES or (retry_on is not None and retry_on(reply))
            if transient:
                if attempt >= self.retry.attempts:
                    msg = (
                        f"{what}: {self.repository} still answers HTTP {status} after {attempt} attempts"
                        f"{self._server_says(reply)}; try again later with --resume"
                    )
                    raise DepositError(msg, details={"url": url, "status": status})
                delay = self.retry.delay(
                    attempt, parse_retry_after(resp.headers.get("Retry-After"))
                )
                if waited + delay > self.retry.max_wait:
                    msg = (
                        f"{what}: {self.repository} asks to wait longer than {self.retry.max_wait:.0f} s "
                        f"(HTTP {status}); try again later with --resume"
                    )
                    raise DepositError(msg, details={"url": url, "status": status})
                waited += delay
                self.retry.sleep(delay)
                continue
            if status in (401, 403):
                if (
                    not auth_retried
                    and self.on_auth_failure is not None
                    and self.on_auth_failure(reply)
                ):
                    auth_retried = True
                    attempt -= 1
                    continue
                msg = (
                    f"{what}: {self.repository} refused the credential in {self.credential} (HTTP {status})"
                    f"{self._server_says(reply)}; check that it is valid, not expired, and allowed to deposit"
                )
                raise DepositError(msg, details={"url": url, "status": status})
            if status >= 400:
                msg = f"{what}: {self.repository} answered HTTP {status}{self._server_says(reply)}"
                raise DepositError(
                    msg, details={"url": url, "status": status, "server": self._errors(reply)}
                )
            if (
                expect_json
                and status not in (204, 205)
                and reply.data is None
                and reply.text.strip()
            ):
                raise self._not_json(reply, what)
            return reply

    # ---------------------------------------------------------- internals
    def _reply(self, resp: requests.Response, *, expect_json: bool) -> Reply:
        text = resp.text if resp.content else ""
        data = None
        ctype = resp.headers.get("Content-Type", "")
        if text and ("json" in ctype or (expect_json and text.lstrip()[:1] in ("{", "["))):
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        return Reply(
            status=resp.status_code, headers=resp.headers, data=data, text=text, url=resp.url
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
        return DepositError(msg, details={"url": reply.url, "status": reply.status})

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


def env_token(var: str, *, repository: str) -> str:
    """The secret in environment variable ``var``, or a DepositError saying how to set it."""
    value = os.environ.get(var, "")
    if not value.strip():
        msg = (
            f"no credential for {repository}: set the environment variable {var} "
            f"(e.g. `export {var}=...` from a password manager) or choose another with --token-env"
        )
        raise DepositError(msg, field=var)
    return value.strip()
