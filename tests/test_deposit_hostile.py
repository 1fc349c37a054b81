"""Hostile servers against the one HTTP session and the deposit adapters, on 127.0.0.1.

Cross-origin redirects (credentials never leave the origin), huge and trickling bodies
(bounded), tokens echoed in links, headers and bodies (never written anywhere), lost
answers to requests that create something (no second draft).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.deposit.core import make_repository
from curated.deposit.http import HttpSession, LostResponse, Timeouts
from curated.deposit.journal import journal_path
from curated.errors import DepositError
from tests.fakes import bags
from tests.fakes.base import FakeServer, Request
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio, PublishedRecords

SECRET = "hostile-test-secret-0042"
FAST = RetryPolicy(attempts=3, backoff=0.001, sleep=lambda s: None)


pytestmark = pytest.mark.usefixtures("forgotten_secrets")


class Evil(FakeServer):
    """Another origin that records every header it is sent."""

    def __init__(self) -> None:
        super().__init__()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(method, r"/.*", lambda req: (200, {"evil": True}))

    def leaked(self, *secrets: str) -> list[str]:
        return [
            f"{k}: {v}"
            for seen in self.headers_seen
            for k, v in seen.items()
            if k.lower() in ("authorization", "x-dataverse-key", "cookie", "x-xsrf-token")
            or any(s in v for s in secrets)
        ]


@pytest.fixture
def evil():
    with Evil() as e:
        yield e


def _session(url: str, **kw: Any) -> HttpSession:
    return HttpSession(
        url,
        headers={"X-Dataverse-key": SECRET, "Authorization": f"Bearer {SECRET}"},
        secrets=[SECRET],
        retry=FAST,
        repository="Test",
        **kw,
    )


# ------------------------------------------------------------------ redirects
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_origin_carries_no_credential(evil, status):
    with FakeServer() as repo:
        repo.route(
            "GET",
            r"/api/users/:me",
            lambda req: (status, None, {"Location": evil.url + "/steal", "Set-Cookie": "s=1"}),
        )
        s = _session(repo.url + "/api")
        s.session.cookies.set("JSESSIONID", SECRET)  # a session cookie of the repository
        r = s.request("GET", "/users/:me", expect_json=False)
        assert r.status == 200
        assert evil.count("GET", "/steal") == 1
        assert evil.leaked(SECRET) == []


@pytest.mark.parametrize("status", [307, 308])
def test_post_redirected_to_another_origin_is_refused(evil, status):
    with FakeServer() as repo:
        repo.route("POST", r"/login", lambda req: (status, None, {"Location": evil.url + "/x"}))
        s = _session(repo.url)
        with pytest.raises(DepositError, match="redirected this POST to another site"):
            s.request("POST", "/login", form={"user": "u", "password": SECRET})
        assert evil.calls == []


def test_same_origin_redirect_keeps_the_credential():
    with FakeServer() as repo:
        repo.route("GET", r"/old", lambda req: (302, None, {"Location": "/new"}))
        repo.route(
            "GET", r"/new", lambda req: (200, {"ok": req.headers.get("X-Dataverse-key") == SECRET})
        )
        r = _session(repo.url).request("GET", "/old")
        assert r.data == {"ok": True}


def test_redirect_chain_that_leaves_the_origin_never_returns_to_the_credential(evil):
    with FakeServer() as repo:
        # repo -> evil -> back to repo: the last hop is sent without the credential
        repo.route("GET", r"/a", lambda req: (302, None, {"Location": evil.url + "/b"}))
        repo.route("GET", r"/c", lambda req: (200, {"key": req.headers.get("X-Dataverse-key")}))
        evil.routes.insert(
            0,
            (
                "GET",
                __import__("re").compile(r"/b$"),
                lambda req: (302, None, {"Location": repo.url + "/c"}),
            ),
        )
        r = _session(repo.url).request("GET", "/a")
        assert r.data == {"key": None}


def test_endless_redirects_end_with_a_clear_error():
    with FakeServer() as repo:
        repo.route("GET", r"/loop", lambda req: (302, None, {"Location": "/loop"}))
        with pytest.raises(DepositError, match="more than 10 redirects"):
            _session(repo.url).request("GET", "/loop")


def test_dataverse_key_never_reaches_another_origin(evil):
    fake = FakeDataverse().start()
    try:
        fake.inject(
            "GET", r"/api/users/:me", status=307, headers={"Location": evil.url + "/api/users/:me"}
        )
        repo = make_repository(
            "dataverse",
            fake.url,
            token=DV_TOKEN,
            token_env="DATAVERSE_TOKEN",
            target="lab",
            retry=FAST,
        )
        try:
            repo.check_access()
        except DepositError:
            pass
        finally:
            repo.close()
        assert evil.count("GET", r"/api/users/:me") == 1
        assert evil.leaked(DV_TOKEN) == []
    finally:
        fake.stop()


def test_dspace_password_is_not_posted_to_another_origin(evil, monkeypatch):
    fake = FakeDSpace().start()
    try:
        fake.inject(
            "POST",
            r"/server/api/authn/login",
            status=307,
            headers={"Location": evil.url + "/login"},
        )
        repo = make_repository(
            "dspace",
            fake.url + "/server",
            token=PASSWORD,
            token_env="DSPACE_PASSWORD",
            target=COLLECTION,
            retry=FAST,
            options={"user": USER},
        )
        with pytest.raises(DepositError, match="another site") as err:
            repo.check_access()
        repo.close()
        assert PASSWORD not in str(err.value)
        assert evil.calls == []
    finally:
        fake.stop()


# ------------------------------------------------------------------ bodies
class RawServer:
    """A socket server that answers every request with ``respond(conn)``."""

    def __init__(self, respond) -> None:
        self.respond = respond
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.requests += 1
            self.respond(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.sock.close()


def test_huge_declared_body_is_refused_without_reading_it():
    def respond(conn):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{"
        )
        time.sleep(0.5)

    srv = RawServer(respond)
    try:
        with pytest.raises(DepositError, match="larger than 64 MiB"):
            _session(srv.url).request("GET", "/x")
    finally:
        srv.close()


def test_endless_chunked_body_is_cut_at_the_cap():
    sent = {"n": 0}

    def respond(conn):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        piece = b"x" * 65536
        for _ in range(400):  # 25 MiB unless the client hangs up first
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent["n"] += len(piece)
        conn.sendall(b"0\r\n\r\n")

    srv = RawServer(respond)
    try:
        s = _session(srv.url)
        s.max_body = 1 << 20
        with pytest.raises(DepositError, match="larger than 1 MiB"):
            s.request("GET", "/x")
    finally:
        srv.close()


def test_trickling_body_is_given_up_after_the_body_timeout():
    def respond(conn):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        for _ in range(1000):
            conn.sendall(b" ")
            time.sleep(0.05)

    srv = RawServer(respond)
    try:
        s = _session(srv.url, timeouts=Timeouts(connect=2, read=2, body=0.5))
        t0 = time.monotonic()
        with pytest.raises(DepositError, match="took more than 0 s|took more than 1 s"):
            s.request("GET", "/x")
        assert time.monotonic() - t0 < 5
    finally:
        srv.close()


def _trickle_headers(conn):
    """A status line, then headers one byte every 50 ms, for ever (no read timeout fires)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(2000):
        conn.sendall(b"X")
        time.sleep(0.05)


def test_server_trickling_its_headers_is_cut_off_at_the_deadline():
    srv = RawServer(_trickle_headers)
    try:
        s = _session(srv.url, timeouts=Timeouts(connect=2, read=2, body=60, total=0.6))
        t0 = time.monotonic()
        with pytest.raises(DepositError, match=r"did not answer within 0.6 s") as err:
            s.request("GET", "/x")
        assert time.monotonic() - t0 < 4
        assert not isinstance(err.value, LostResponse)  # a GET: nothing may have been made
        assert srv.requests == 1  # not retried: the next try would trickle as long
        assert "\n" not in str(err.value)
    finally:
        srv.close()


def test_post_cut_off_at_the_deadline_is_a_lost_answer():
    srv = RawServer(_trickle_headers)
    try:
        s = _session(srv.url, timeouts=Timeouts(connect=2, read=2, body=60, total=0.4))
        with pytest.raises(LostResponse, match="may have been done"):
            s.request("POST", "/records", json_body={"a": 1})
        assert srv.requests == 1
    finally:
        srv.close()


def test_deadline_covers_a_trickling_body_too():
    def respond(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for _ in range(2000):
            conn.sendall(b" ")
            time.sleep(0.05)

    srv = RawServer(respond)
    try:
        s = _session(srv.url, timeouts=Timeouts(connect=2, read=2, body=60, total=0.5))
        with pytest.raises(DepositError, match="did not answer within 0.5 s"):
            s.request("GET", "/x")
    finally:
        srv.close()


def test_sending_a_slow_request_body_does_not_count_against_the_deadline(tmp_path):
    from curated.deposit.http import FileSlice

    f = tmp_path / "part.bin"
    f.write_bytes(b"x" * 4096)
    with FakeServer() as repo:
        repo.route("PUT", r"/up", lambda req: (200, {"got": len(req.body())}))
        s = _session(repo.url, timeouts=Timeouts(connect=2, read=5, body=5, total=0.3))

        def body():
            # 4 pieces of 1 KiB, 0.15 s apart: 0.6 s sending, twice the deadline
            return FileSlice(f, on_read=lambda n: time.sleep(0.15))

        orig_read = FileSlice.read
        try:
            FileSlice.read = lambda self, n=-1: orig_read(self, min(n if n > 0 else 1024, 1024))
            assert s.request("PUT", "/up", body=body).data == {"got": 4096}
        finally:
            FileSlice.read = orig_read


@pytest.mark.parametrize("value", ["0", "-3", "soon", "nan", "inf"])
def test_bad_deadline_setting_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("CURATED_HTTP_DEADLINE", value)
    with pytest.raises(DepositError, match="CURATED_HTTP_DEADLINE must be a positive number"):
        Timeouts()


def test_deadline_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CURATED_HTTP_DEADLINE", "42.5")
    assert Timeouts().total == 42.5
    monkeypatch.delenv("CURATED_HTTP_DEADLINE")
    assert Timeouts().total == 1800.0


# ------------------------------------------------------------------ echoed secrets
def test_token_echoed_in_body_links_and_headers_is_redacted():
    with FakeServer() as repo:
        repo.route(
            "GET",
            r"/rec",
            lambda req: (
                200,
                {"links": {"self_html": f"{repo.url}/rec?t={SECRET}"}, "note": f"key {SECRET}"},
                {"X-Echo": SECRET},
            ),
        )
        r = _session(repo.url).request("GET", "/rec")
    assert SECRET not in json.dumps(r.data) + r.text + str(dict(r.headers))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    ws = bags.make_workspace(tmp_path_factory.mktemp("tpl") / "ws", big=2000)
    bags.bag_workspace(ws)
    return ws


def _written(ws: Path) -> str:
    bag = ws / "package" / "bag"
    return "".join(
        p.read_text(encoding="utf-8")
        for p in (ws / "package" / "receipt.json", journal_path(bag), ws / "curation" / "log.jsonl")
        if p.exists()
    )


class EchoingInvenio(FakeInvenio):
    """InvenioRDM that puts the caller's token into every link it hands out."""

    def _draft_json(self, d: dict[str, Any]) -> dict[str, Any]:
        out = super()._draft_json(d)
        out["links"]["self_html"] += f"?token={self.token}&t={self.token}"
        return out


def test_token_echoed_by_the_server_is_written_nowhere(template, tmp_path, monkeypatch):
    ws = bags.copy_workspace(template, tmp_path / "ws")
    fake = EchoingInvenio().start()
    try:
        monkeypatch.setenv("INVENIO_TOKEN", INV_TOKEN)
        receipt = deposit(ws / "package" / "bag", to="invenio", url=fake.url, retry=FAST)
        assert receipt.status == "draft"
    finally:
        fake.stop()
    written = _written(ws)
    assert "receipt.json" in receipt.receipt_path
    assert INV_TOKEN not in written


def test_password_in_the_url_is_written_nowhere(template, tmp_path, monkeypatch):
    ws = bags.copy_workspace(template, tmp_path / "ws")
    fake = FakeDataverse().start()
    try:
        monkeypatch.setenv("DATAVERSE_TOKEN", DV_TOKEN)
        url = fake.url.replace("http://", "http://curator:pa55word-in-url@")
        deposit(ws / "package" / "bag", to="dataverse", url=url, target="lab", retry=FAST)
    finally:
        fake.stop()
    written = _written(ws)
    assert "pa55word-in-url" not in written
    assert "curator:" not in written


# ------------------------------------------------------------------ lost answers
def test_lost_answer_to_a_post_is_not_resent():
    with FakeServer() as repo:

        def slow(req):
            time.sleep(1.0)
            return 201, {"id": 1}

        repo.route("POST", r"/records", slow)
        s = _session(repo.url, timeouts=Timeouts(connect=2, read=0.3, body=5))
        with pytest.raises(LostResponse, match="may have been done"):
            s.request("POST", "/records", json_body={"a": 1})
        time.sleep(1.0)
        assert repo.count("POST", "/records") == 1


def test_gateway_timeout_on_a_post_is_not_resent():
    with FakeServer() as repo:
        repo.route("POST", r"/records", lambda req: (201, {"id": 1}))
        repo.inject("POST", r"/records", status=504, times=5)
        with pytest.raises(LostResponse):
            _session(repo.url).request("POST", "/records", json_body={})
        assert repo.count("POST", "/records") == 1


def test_get_is_still_retried_after_a_read_timeout():
    with FakeServer() as repo:
        calls = {"n": 0}

        def first_slow(req):
            calls["n"] += 1
            if calls["n"] == 1:
                time.sleep(0.8)
            return 200, {"ok": True}

        repo.route("GET", r"/ok", first_slow)
        s = _session(repo.url, timeouts=Timeouts(connect=2, read=0.3, body=5))
        assert s.request("GET", "/ok").data == {"ok": True}


def test_a_stalled_server_is_given_up_on_after_two_silences_with_the_shorter_wait():
    """A request without a file waits Timeouts.answer, not the long read timeout meant for
    a repository checking an uploaded file; a server silent twice is not tried six times."""
    with FakeServer() as repo:
        repo.route("GET", r"/stall", lambda req: (time.sleep(3), (200, {}))[1])
        s = HttpSession(
            repo.url,
            retry=RetryPolicy(attempts=6, backoff=0.001, sleep=lambda s: None),
            repository="Test",
            timeouts=Timeouts(connect=2, read=30, answer=0.3, body=5),
        )
        t0 = time.monotonic()
        with pytest.raises(DepositError, match=r"failed 2 times \(ReadTimeout\)"):
            s.request("GET", "/stall")
        assert time.monotonic() - t0 < 2.5
        assert repo.count("GET", r"/stall") == 2
    assert Timeouts().as_tuple(sends_file=False) == (15.0, 120.0)
    assert Timeouts().as_tuple(sends_file=True) == (15.0, 600.0)


class ListingInvenio(FakeInvenio):
    """InvenioRDM whose ``/user/records`` lists the account's drafts, as the real one does."""

    def __init__(self, *, zone: dt.timezone = dt.UTC, **kw: Any) -> None:
        super().__init__(**kw)
        self.zone = zone  # the server's clock writes its times in this offset
        self.created: dict[str, str] = {}
        self.routes.insert(
            0, ("GET", __import__("re").compile(r"/api/user/records$"), self.listing)
        )

    def listing(self, req: Request):
        if (bad := self._auth(req)) is not None:
            return bad
        now = dt.datetime.now(self.zone).isoformat()
        hits = [
            {**self._draft_json(d), "created": self.created.setdefault(key, now)}
            for key, d in self.drafts.items()
        ]
        return 200, {"hits": {"hits": hits, "total": len(hits)}}


@pytest.mark.parametrize("zone", [0, -5], ids=["utc", "utc-5"])
def test_lost_draft_creation_is_found_not_duplicated(template, tmp_path, monkeypatch, zone):
    """A server writing its times in another offset (UTC-5 reads earlier as text) too."""
    ws = bags.copy_workspace(template, tmp_path / "ws")
    bag = ws / "package" / "bag"
    monkeypatch.setenv("INVENIO_TOKEN", INV_TOKEN)
    fake = ListingInvenio(zone=dt.timezone(dt.timedelta(hours=zone))).start()
    try:
        orig = fake.create

        def create_then_hang_up(req):
            orig(req)
            raise ConnectionResetError  # the draft exists, the answer never leaves

        fake.routes = [
            (m, rx, create_then_hang_up if (m == "POST" and rx.pattern == r"/api/records$") else fn)
            for m, rx, fn in fake.routes
        ]
        with pytest.raises(LostResponse):
            deposit(bag, to="invenio", url=fake.url, retry=FAST)
        assert len(fake.drafts) == 1
        assert "creating" in json.dumps(json.loads(journal_path(bag).read_text()))
        fake.routes = [
            (m, rx, orig if (m == "POST" and rx.pattern == r"/api/records$") else fn)
            for m, rx, fn in fake.routes
        ]
        receipt = deposit(bag, to="invenio", url=fake.url, retry=FAST, resume=True)
        assert len(fake.drafts) == 1  # the lost draft was adopted, not made twice
        assert receipt.record_id == next(iter(fake.drafts))
    finally:
        fake.stop()


def test_lost_draft_on_a_repository_that_cannot_list_asks_the_curator_once(
    template, tmp_path, monkeypatch
):
    ws = bags.copy_workspace(template, tmp_path / "ws")
    bag = ws / "package" / "bag"
    monkeypatch.setenv("DATAVERSE_TOKEN", DV_TOKEN)
    from curated.deposit.dataverse import DataverseRepository

    # an adapter that cannot list its drafts (every built-in one can now)
    monkeypatch.delattr(DataverseRepository, "find_draft")
    fake = FakeDataverse().start()
    try:
        fake.inject("POST", r"/api/dataverses/lab/datasets", status=502)
        with pytest.raises(LostResponse):
            deposit(bag, to="dataverse", url=fake.url, target="lab", retry=FAST)
        with pytest.raises(DepositError, match="look there for a draft created then"):
            deposit(bag, to="dataverse", url=fake.url, target="lab", retry=FAST, resume=True)
        receipt = deposit(bag, to="dataverse", url=fake.url, target="lab", retry=FAST, resume=True)
        assert receipt.status == "draft"
    finally:
        fake.stop()
    assert os.path.exists(ws / "package" / "receipt.json")


def test_lost_answer_to_publish_is_checked_not_repeated(template, tmp_path, monkeypatch):
    ws = bags.copy_workspace(template, tmp_path / "ws")
    bag = ws / "package" / "bag"
    monkeypatch.setenv("INVENIO_TOKEN", INV_TOKEN)
    fake = PublishedRecords().start()
    try:
        orig = fake.publish

        def publish_then_hang_up(req, rid):
            orig(req, rid)
            raise ConnectionResetError  # published, but the answer never leaves

        fake.routes = [
            (m, rx, publish_then_hang_up if rx.pattern.endswith("/actions/publish$") else fn)
            for m, rx, fn in fake.routes
        ]
        with pytest.raises(LostResponse):
            deposit(bag, to="invenio", url=fake.url, retry=FAST, publish=True)
        assert len(fake.records) == 1
        receipt = deposit(bag, to="invenio", url=fake.url, retry=FAST, publish=True, resume=True)
        assert receipt.status == "published"
        assert receipt.doi == next(iter(fake.records.values()))["doi"]
        assert fake.count("POST", r"/api/records/[^/]+/draft/actions/publish") == 1
    finally:
        fake.stop()


def test_dspace_item_link_to_another_site_is_not_followed(template, tmp_path, monkeypatch):
    """The item a workspace item holds is read from the repository, never from a site its
    answer links to (that site could name any item, and later steps would act on it)."""
    ws = bags.copy_workspace(template, tmp_path / "ws")
    bag = ws / "package" / "bag"
    monkeypatch.setenv("DSPACE_USER", USER)
    monkeypatch.setenv("DSPACE_PASSWORD", PASSWORD)
    with FakeDSpace() as fake, FakeServer() as evil:
        evil.route("GET", r"/.*", lambda req: (200, {"uuid": "forged-item", "type": "item"}))
        orig = fake.create

        def create_linking_elsewhere(req):
            status, body = orig(req)[:2]
            if isinstance(body, dict):
                body.pop("_embedded", None)
                body.setdefault("_links", {})["item"] = {"href": evil.url + "/item"}
            return status, body

        fake.routes = [
            (m, rx, create_linking_elsewhere if fn == orig else fn) for m, rx, fn in fake.routes
        ]
        receipt = deposit(bag, to="dspace", url=fake.url + "/server", target=COLLECTION, retry=FAST)
        assert receipt.record_id in fake.items and receipt.record_id != "forged-item"
        assert evil.count("GET", r"/.*") == 0
