"""Secrets never leave: every deposit target against a server that fails at each step.

Each target deposits a bag into its fake (127.0.0.1) while the server answers one request
after another, in turn, with an error whose body and headers echo the request back: its
URL (Figshare upload tokens, presigned signatures) and its headers (``Authorization``,
``X-Dataverse-key``, ``X-XSRF-TOKEN``, the DSpace JWT). Whatever the step, no credential
may appear in the exception (text, ``repr``, details, traceback), in the progress
reported, in what the CLI prints, or in any file of the workspace (receipt, journal,
curator log).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.deposit import RetryPolicy, deposit
from curated.deposit.http import HttpSession
from curated.errors import CuratedError, DepositError
from tests.fakes import bags
from tests.fakes.base import FakeServer
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
from tests.fakes.figshare import TOKEN as FS_TOKEN
from tests.fakes.figshare import FakeFigshare
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio

FAST = RetryPolicy(attempts=2, backoff=0.0, sleep=lambda s: None)
SIGNATURE = "presigned-signature-4b1d"
"""The ``X-Amz-Signature`` of the presigned URLs the Dataverse fake hands out."""
STATUSES = itertools.cycle([400, 500, 403, 409, 404, 422, 401])


pytestmark = pytest.mark.usefixtures("forgotten_secrets")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    # one file spans several upload parts of every fake (64 KiB parts)
    return bags.bagged_template(tmp_path_factory, big=150_000)


# ----------------------------------------------------------------- the hostile fakes
class Hostile:
    """Mixin: request number :attr:`fail_at` is answered :attr:`status` with the request
    echoed back (URL and headers in the body, in ``errors`` and in response headers)."""

    fail_at = 0
    status = 400
    seen = 0
    issued: list[str]

    def _dispatch(self, h: Any) -> None:
        self.seen += 1
        if self.seen != self.fail_at:
            super()._dispatch(h)  # type: ignore[misc]
            return
        left = int(h.headers.get("Content-Length") or 0)
        while left > 0:
            got = h.rfile.read(min(left, 1 << 16))
            if not got:
                break
            left -= len(got)
        url = f"{self.url}{h.path}"  # type: ignore[attr-defined]
        said = f"refused {h.command} {url} sent with {dict(h.headers)}"
        auth = h.headers.get("Authorization") or h.headers.get("X-Dataverse-key") or ""
        headers = {"X-Echo-Url": url, "X-Echo-Auth": auth, "Location": url}
        body: Any
        if self.seen % 2:
            body = {
                "status": self.status,
                "message": said,
                "errors": [{"field": url, "messages": [said, auth]}],
                "links": {"self": url},
            }
        else:
            body = said  # a plain-text (or proxy) error page
        self._send(h, self.status, body, headers)  # type: ignore[attr-defined]


class HostileFigshare(Hostile, FakeFigshare):
    def _file_json(self, aid: str, f: dict[str, Any]) -> dict[str, Any]:
        self.issued.append(f["token"])
        return super()._file_json(aid, f)


class HostileInvenio(Hostile, FakeInvenio):
    pass


class HostileDataverse(Hostile, FakeDataverse):
    def upload_urls(self, req: Any):
        status, body, *rest = super().upload_urls(req)
        text = json.dumps(body).replace("X-Amz-Signature=sig", f"X-Amz-Signature={SIGNATURE}")
        return (status, json.loads(text), *rest)


class HostileDSpace(Hostile, FakeDSpace):
    def _new_csrf(self) -> dict[str, str]:
        out = super()._new_csrf()
        self.issued.append(str(self.csrf))
        return out

    def login(self, req: Any):
        out = super().login(req)
        if self.jwt:
            self.issued.append(self.jwt)
        return out


TARGETS: dict[str, dict[str, Any]] = {
    "figshare": {
        "fake": lambda: HostileFigshare(),
        "env": {"FIGSHARE_TOKEN": FS_TOKEN},
        "url": lambda f: f.url + "/v2",
        "target": None,
        "options": {},
    },
    "invenio": {
        "fake": lambda: HostileInvenio(multipart=True, checksum_delay=0),
        "env": {"INVENIO_TOKEN": INV_TOKEN},
        "url": lambda f: f.url,
        "target": None,
        "options": {"multipart_threshold": 100_000, "part_size": 64 * 1024, "checksum_wait": 0.2},
    },
    "dataverse": {
        "fake": lambda: HostileDataverse(direct=True),
        "env": {"DATAVERSE_TOKEN": DV_TOKEN},
        "url": lambda f: f.url,
        "target": "lab",
        "options": {},
    },
    "dspace": {
        "fake": lambda: HostileDSpace(),
        "env": {"DSPACE_USER": USER, "DSPACE_PASSWORD": PASSWORD},
        "url": lambda f: f.url + "/server/api",
        "target": COLLECTION,
        "options": {},
    },
}


class Recorder:
    """A progress reporter keeping every description and piece of info it is shown."""

    def __init__(self) -> None:
        self.shown: list[str] = []

    def start(self, description: str, total: float | None, unit: str = "") -> None:
        self.shown.append(f"{description} {total} {unit}")

    def advance(self, amount: float = 1, **info: object) -> None:
        self.shown.append(repr(info))

    def finish(self) -> None:
        return None


def _workspace_text(ws: Path) -> str:
    """Every file of the workspace (and what lies beside the bag), as text."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(ws.rglob("*")) if p.is_file()
    )


def _exception_text(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, CuratedError):
        parts.append(json.dumps(exc.to_dict(), default=str))
    return "\n".join(parts)


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return sorted({s for s in secrets if s and s in text})


def _run(name: str, fail_at: int, status: int, tmp_path: Path, template: Path, monkeypatch):
    """One deposit against the hostile fake failing at request ``fail_at``: (text the
    user or disk could see, secrets that had to stay hidden, the requests it got)."""
    spec = TARGETS[name]
    for k, v in spec["env"].items():
        monkeypatch.setenv(k, v)
    ws = bags.copy_workspace(template, tmp_path / f"ws-{fail_at}")
    fake = spec["fake"]()
    fake.issued, fake.fail_at, fake.status = [], fail_at, status
    progress = Recorder()
    seen = ""
    with fake:
        try:
            deposit(
                ws / "package" / "bag",
                to=name,
                url=spec["url"](fake),
                target=spec["target"],
                retry=FAST,
                options=spec["options"],
                progress=progress,
            )
        except Exception as exc:  # every failure is looked at, a bug's as well
            seen = _exception_text(exc)
    secrets = [*spec["env"].values(), *fake.issued, SIGNATURE]
    secrets = [s for s in secrets if s != USER]  # the account name is no secret
    text = "\n".join([seen, *progress.shown, _workspace_text(ws)])
    return text, secrets, fake.calls


def _steps(calls: list[tuple[str, str]]) -> list[int]:
    """The number of the first request of each kind (method and path, ids, tokens and
    file names aside): a poll repeated ten times, or the upload of each file, is one step."""
    first: dict[tuple[str, str, str], int] = {}
    for n, (method, path) in enumerate(calls, start=1):
        shape = [
            "#" if re.search(r"[\d.]", seg) or len(seg) > 20 else seg for seg in path.split("/")
        ]
        # a file's folders in a path are no other kind of request: its head and end say
        first.setdefault((method, "/".join(shape[:6]), shape[-1]), n)
    return sorted(first.values())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_no_secret_leaks_whichever_step_fails(name, tmp_path, template, monkeypatch):
    # a clean run first: how many requests a deposit makes, and that the fake issues secrets
    text, secrets, calls = _run(name, 0, 200, tmp_path, template, monkeypatch)
    assert _leaks(text, secrets) == []
    steps = _steps(calls)
    assert len(steps) > 5
    if name in ("figshare", "dspace"):
        assert len(secrets) > len(TARGETS[name]["env"]) + 1  # upload tokens, JWTs were issued
    failures = []
    for fail_at in steps:
        status = next(STATUSES)
        text, secrets, _ = _run(name, fail_at, status, tmp_path, template, monkeypatch)
        if leaked := _leaks(text, secrets):
            found = [
                text[max(m.start() - 120, 0) : m.end() + 40]
                for s in leaked
                for m in [re.search(re.escape(s), text)]
                if m
            ]
            failures.append((fail_at, status, found))
    assert failures == []


@pytest.mark.parametrize("fail", [True, False], ids=["failing", "succeeding"])
def test_the_cli_prints_no_upload_token(fail, tmp_path, template, monkeypatch):
    # Figshare's upload service is failed at its first part PUT (echoing its URL, which
    # carries the file's upload token); the CLI's error line, progress and --json say nothing of it
    monkeypatch.setenv("FIGSHARE_TOKEN", FS_TOKEN)
    ws = bags.copy_workspace(template, tmp_path / "ws")
    fake = HostileFigshare()
    fake.issued = []
    if fail:
        fake.route(
            "PUT",
            r"/upload/([\w-]+)/(\d+)",
            lambda req, *g: (req.drain(), (403, f"no upload {fake.url}{req.path}"))[1],
        )
        fake.routes.insert(0, fake.routes.pop())  # before the fake's own part route
    with fake:
        r = CliRunner().invoke(
            app,
            ["deposit", str(ws / "package" / "bag"), "--to", "figshare"]
            + ["--url", fake.url + "/v2", "--json"],
        )
    assert fake.issued and ("PUT", f"/upload/{fake.issued[0]}/1") in fake.calls
    assert r.exit_code == (1 if fail else 0), r.output
    out = r.output + (str(r.exception) if r.exception else "")
    assert _leaks(out + _workspace_text(ws), [FS_TOKEN, *fake.issued]) == []


def test_a_presigned_url_in_an_error_shows_no_signature():
    # nobody registered this signature: it is redacted as what it looks like
    with FakeServer() as store:
        store.route("PUT", r"/s3/key", lambda req: (req.drain(), (403, "denied"))[1])
        s = HttpSession("http://127.0.0.2:9/api", retry=FAST)  # the repository is elsewhere
        url = f"{store.url}/s3/key?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SIGNATURE}"
        with pytest.raises(DepositError) as err:
            s.request("PUT", url, raw=b"x", expect_json=False)
    assert "/s3/key" in str(err.value)
    assert _leaks(_exception_text(err.value), [SIGNATURE, "AKIAEXAMPLE"]) == []


# ----------------------------------------------------------------- huge error bodies
class Flood:
    """Answers every request with ``status`` and a ``size``-byte body (an error document,
    then padding), counting the bytes the client took before it hung up."""

    def __init__(self, status: int, head: bytes, size: int, ctype: str) -> None:
        self.sent = 0
        self.requests = 0
        flood = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _any(self) -> None:
                flood.requests += 1
                left = int(self.headers.get("Content-Length") or 0)
                while left > 0 and (got := self.rfile.read(min(left, 1 << 16))):
                    left -= len(got)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                piece, todo = head, size
                try:
                    while todo > 0:
                        piece = piece[:todo]
                        self.wfile.write(piece)
                        flood.sent += len(piece)
                        todo -= len(piece)
                        piece = b" " * (1 << 16)
                except OSError:  # the client hung up: what it left unread was never sent
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


HUGE = 48 * 2**20
"""The error body's size; what a client reads of it must stay far below."""
TAKEN = 8 * 2**20
"""Most bytes a client may have taken per request (its own 64 KiB, and what the
operating system's socket buffers hold)."""


def test_a_huge_error_body_from_a_repository_is_read_only_in_part():
    head = json.dumps({"status": 400, "message": "bad request" + " " * 100}).encode()[:-1]
    flood = Flood(400, head, HUGE, "application/json")
    try:
        with pytest.raises(DepositError, match="HTTP 400") as err:
            HttpSession(flood.url, retry=FAST).request("POST", "/records", json_body={})
    finally:
        flood.close()
    assert "larger than" not in str(err.value)  # the error is the server's, not its size
    assert flood.requests == 1 and flood.sent < TAKEN


def test_a_huge_error_body_from_an_object_store_is_read_only_in_part():
    pytest.importorskip("s3fs")
    from s3_server import AWS_ENV, environment

    from curated.objstore import S3Sink, StoreAccessError

    head = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>"
    flood = Flood(403, head, HUGE, "application/xml")
    try:
        env = environment({**AWS_ENV, "AWS_ENDPOINT_URL": flood.url})
        with env, pytest.raises(StoreAccessError, match="refused"):
            S3Sink("s3://bucket/store").put("zarr.json", b"{}")
    finally:
        flood.close()
    assert flood.requests >= 1
    assert flood.sent / flood.requests < TAKEN


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_no_adapter_shows_its_credential_in_a_repr(name):
    from curated.deposit.core import make_repository

    token = "repr-test-token-5150"
    url = "https://curator:repr-test-password@repository.example.org/api"
    repo = make_repository(name, url, token=token, token_env="T", target="c")
    try:
        shown = repr(repo) + repr(repo.http) + str(repo.http)
        assert token not in shown and "repr-test-password" not in shown
        assert "repository.example.org" in repr(repo.http)  # the repr still says which
    finally:
        repo.close()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:99999/upload/{s}", "http://[::1/upload/{s}", "http://a b.org/upload/{s}"],
    ids=["port", "ipv6", "host"],
)
def test_an_unusable_address_is_one_clear_error_without_its_token(url):
    secret = "unusable-url-token-8086"
    s = HttpSession("http://127.0.0.1:9/api", secrets=[secret], retry=FAST)
    with pytest.raises(DepositError, match="cannot be used") as err:
        s.request("GET", url.format(s=secret))
    assert _leaks(_exception_text(err.value), [secret]) == []


def test_the_cli_error_line_never_shows_a_secret_the_process_holds():
    import errno

    import typer

    from curated._secrets import register_secret
    from curated.cli._common import handle_errors

    secret = "cli-error-secret-2718"
    register_secret(secret)
    errors = iter(
        [
            PermissionError(errno.EACCES, f"AccessDenied (key {secret})", f"s3://b/{secret}"),
            DepositError(f"the server said: {secret}"),
        ]
    )
    cli = typer.Typer()

    @cli.command()
    @handle_errors
    def boom() -> None:
        raise next(errors)

    for _ in range(2):
        r = CliRunner().invoke(cli, [])
        assert r.exit_code == 1 and "<redacted>" in r.output, r.output
        assert secret not in r.output


class SameJwtDSpace(FakeDSpace):
    """A DSpace that hands out the same JWT at every login (one still valid)."""

    def login(self, req: Any):
        out = super().login(req)
        if self.jwt:
            self.jwt = "eyJ.the-same.jwt-value-1234"
            out[2]["Authorization"] = f"Bearer {self.jwt}"
        return out


def test_a_jwt_kept_secret_is_still_usable_when_handed_out_again(tmp_path, template, monkeypatch):
    monkeypatch.setenv("DSPACE_USER", USER)
    monkeypatch.setenv("DSPACE_PASSWORD", PASSWORD)
    with SameJwtDSpace() as fake:
        for n in range(2):  # the second deposit of this process logs in to the same token
            ws = bags.copy_workspace(template, tmp_path / f"ws{n}")
            r = deposit(
                ws / "package" / "bag",
                to="dspace",
                url=fake.url + "/server/api",
                target=COLLECTION,
                retry=FAST,
            )
            assert r.status == "draft"
            assert "jwt-value-1234" not in _workspace_text(ws)
    assert fake.logins == 2


def test_the_printed_receipt_is_the_written_one_without_credentials():
    """`deposit --json` and its results table printed the receipt unredacted while the written
    receipt.json was redacted: a share link's ``?token=`` in a landing URL (not a registered
    secret) or a ``user:password@`` reached the terminal and the CI log."""
    from curated.cli.deposit import _shown
    from curated.results import Result

    url = "https://depositor:hunter22-pass@repo.example/records/7?token=share-link-token-91"
    r = Result("deposit", "ok", url, f"published in invenio: {url}", {"record_url": url})
    shown = _shown(r)
    text = json.dumps(shown.to_dict())
    assert "share-link-token-91" not in text and "hunter22-pass" not in text
    assert shown.status == "ok" and "repo.example/records/7" in shown.details["record_url"]
