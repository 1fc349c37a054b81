"""Deposit clients against servers that behave as the real ones do where the fakes are
kind, and against servers that lie about what they stored (DSpace, Figshare, InvenioRDM).

Each test is the curator's story: the error names what the server did, the journal
never records as confirmed a file that was not verified whole, and a resumed run
finishes without sending a file twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.deposit.journal import journal_path
from curated.errors import DepositError
from tests.fakes import bags
from tests.fakes.base import Request
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
from tests.fakes.figshare import TOKEN as FS_TOKEN
from tests.fakes.figshare import FakeFigshare
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio, PublishedRecords

FAST = RetryPolicy(attempts=3, backoff=0.001, sleep=lambda s: None)


pytestmark = pytest.mark.usefixtures("forgotten_secrets")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return bags.bagged_template(tmp_path_factory, big=2000)


@pytest.fixture
def bag(template, tmp_path, monkeypatch):
    monkeypatch.setenv("INVENIO_TOKEN", INV_TOKEN)
    monkeypatch.setenv("FIGSHARE_TOKEN", FS_TOKEN)
    monkeypatch.setenv("DSPACE_USER", USER)
    monkeypatch.setenv("DSPACE_PASSWORD", PASSWORD)
    ws = bags.copy_workspace(template, tmp_path / "ws")
    return ws / "package" / "bag"


def _entry(bag) -> dict[str, Any]:
    return next(iter(json.loads(journal_path(bag).read_text())["deposits"].values()))


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _journal_true(bag) -> int:
    """Check that every file the journal confirms carries the bag file's own md5; how many."""
    confirmed = 0
    for name, fe in _entry(bag)["files"].items():
        if fe.get("status") == "confirmed":
            confirmed += 1
            path = bag / name if (bag / name).exists() else None
            if path is not None:
                assert fe["md5"] == _md5(path), name
    return confirmed


# ---------------------------------------------------------------- Figshare


class ShortPartsFigshare(FakeFigshare):
    """Figshare whose upload service lists parts that stop short of the file's end, then
    reports the declared size and the md5 of what it got."""

    honest = False

    def init_file(self, req: Request, aid: str):
        status, body = super().init_file(req, aid)
        f = self.articles[aid]["files"][body["location"].rsplit("/", 1)[1]]
        if len(f["parts"]) > 1 and not self.honest:
            f["parts"] = f["parts"][: len(f["parts"]) // 2]
        return status, body


def test_figshare_part_list_that_does_not_cover_the_file_is_refused(bag):
    with ShortPartsFigshare(part_size=1024) as fake:
        with pytest.raises(DepositError, match="do not cover the file"):
            deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST)
        assert _journal_true(bag) == 0
        article = next(iter(fake.articles.values()))
        assert not article["files"]  # the entry it could not fill is removed
        fake.honest = True
        receipt = deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST, resume=True)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)
        assert fake.count("POST", r"/v2/account/articles/\d+/files") == 1 + len(receipt.files)


# ---------------------------------------------------------------- InvenioRDM


class FewPartsInvenio(FakeInvenio):
    """InvenioRDM that links fewer parts than the multipart upload asked for, commits what
    it got and reports the declared size."""

    def init_files(self, req: Request, rid: str):
        status, body = super().init_files(req, rid)
        for e in body.get("entries") or []:
            f = self.drafts[rid]["files"][e["key"]]
            if f.get("parts", 0) > 1:
                f["parts_asked"] = f["size"]
                f["parts"] //= 2
                e.update(self._file_json(rid, e["key"], f))
        return status, body

    def commit(self, req: Request, rid: str, key: str):
        status, body, *rest = super().commit(req, rid, key)
        f = self.drafts[rid]["files"][key]
        if status == 200 and f.get("parts"):
            declared = f["parts_asked"]
            f["size"] = declared
            body = {**body, "size": declared}
        return (status, body, *rest)


def _multipart(bag, fake, **kw):
    return deposit(
        bag,
        to="invenio",
        url=fake.url,
        retry=FAST,
        options={"multipart_threshold": 1000, "part_size": 512, "checksum_wait": 0.2},
        **kw,
    )


def test_invenio_part_links_that_do_not_cover_the_file_are_refused(bag):
    with FewPartsInvenio(multipart=True, checksum_delay=0) as fake:
        with pytest.raises(DepositError, match="part URLs that are not parts 1 to"):
            _multipart(bag, fake)
        _journal_true(bag)
        sizes = [f["size"] for f in _entry(bag)["files"].values() if f["status"] == "confirmed"]
        assert all(size <= 1000 for size in sizes)  # none sent in parts
        assert not any(
            f["status"] == "pending" for d in fake.drafts.values() for f in d["files"].values()
        )


class OtherRecordInvenio(PublishedRecords):
    """InvenioRDM that publishes the draft but answers with another record (id and DOI)."""

    def publish(self, req: Request, rid: str):
        status, body = super().publish(req, rid)
        if status == 202:
            body = {**body, "id": "other-1", "pids": {"doi": {"identifier": "10.5072/other"}}}
        return status, body


def test_invenio_publish_answered_with_another_record_keeps_the_draft_s_own(bag):
    with OtherRecordInvenio() as fake:
        receipt = deposit(bag, to="invenio", url=fake.url, retry=FAST, publish=True)
        ((rid, rec),) = fake.records.items()
        assert receipt.status == "published"
        assert (receipt.record_id, receipt.doi) == (rid, rec["doi"])


class AbortingFigshare(FakeFigshare):
    """Figshare whose upload service gives up an unfinished upload (``ABORTED``, as
    ``docs/api/file_uploader.md`` says it does on a timeout or an error): its parts are
    refused from then on."""

    def abort_all(self) -> None:
        for f in self.uploads.values():
            if f["status"] == "created":
                f["aborted"] = True

    def upload_info(self, req: Request, token: str):
        status, body = super().upload_info(req, token)
        if self.uploads.get(token, {}).get("aborted"):
            body = {**body, "status": "ABORTED"}
        return status, body

    def put_part(self, req: Request, token: str, n: str):
        if self.uploads.get(token, {}).get("aborted"):
            req.drain()
            return 404, None
        return super().put_part(req, token, n)


def test_figshare_upload_the_service_aborted_is_started_again_on_resume(bag):
    with AbortingFigshare(part_size=4096) as fake:
        fake.inject("PUT", r"/upload/\w+/3", status=500)
        with pytest.raises(DepositError, match="part 3"):
            deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST)
        fake.abort_all()
        receipt = deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST, resume=True)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)
        article = next(iter(fake.articles.values()))
        assert {f["status"] for f in article["files"].values()} == {"available"}
        assert len(article["files"]) == len(receipt.files)  # the aborted entry is gone


class AssemblingFigshare(FakeFigshare):
    """Figshare that assembles a completed file in the background, as the real one does
    after its 202 Accepted: the file is ``moving_to_final`` for ``reads`` more reads."""

    reads = 15

    def complete(self, req: Request, aid: str, fid: str):
        status, body = super().complete(req, aid, fid)
        f = self.articles[aid]["files"][fid]
        if status == 202:
            f["status"], f["pending"] = "moving_to_final", self.reads
        return status, body

    def _file_json(self, aid: str, f: dict[str, Any]) -> dict[str, Any]:
        if f.get("pending", 0) > 0:
            f["pending"] -= 1
            if not f["pending"]:
                f["status"] = "available"
        return super()._file_json(aid, f)


def test_figshare_file_assembled_slowly_is_waited_for(bag):
    with AssemblingFigshare() as fake:
        receipt = deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)


def test_figshare_file_still_assembling_is_not_completed_twice_on_resume(bag):
    with AssemblingFigshare() as fake:
        fake.reads = 10**9
        opts = {"status_polls": 2, "status_wait": 0.0}
        with pytest.raises(DepositError, match="not finished assembling.*--resume"):
            deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST, options=opts)
        parts = fake.count("PUT", r"/upload/\w+/\d+")
        for a in fake.articles.values():
            for f in a["files"].values():
                f["pending"] = 3
        receipt = deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST, resume=True)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)
        assert fake.count("POST", r"/v2/account/articles/\d+/files/\d+") == len(receipt.files)
        assert fake.count("PUT", r"/upload/\w+/\d+") == parts


class ExpiringInvenio(FakeInvenio):
    """InvenioRDM on object storage: part URLs are signed until :meth:`expire`, after which
    the storage refuses them (403) and a read of the pending file lists fresh ones."""

    generation = 0

    def expire(self) -> None:
        self.generation += 1

    def _file_json(self, rid: str, key: str, f: dict[str, Any]) -> dict[str, Any]:
        out = super()._file_json(rid, key, f)
        for p in (out.get("links") or {}).get("parts") or []:
            p["url"] += f"?sig={self.generation}"
        return out

    def put_part(self, req: Request, rid: str, key: str, n: str):
        if req.query.get("sig") != str(self.generation):
            req.drain()
            return 403, {"status": 403, "message": "Request has expired"}
        return super().put_part(req, rid, key, n)


def test_invenio_multipart_resumed_after_its_part_urls_expired(bag):
    with ExpiringInvenio(multipart=True, checksum_delay=0) as fake:
        fake.inject("PUT", r"/api/records/\d+/draft/files/.+/content/2", status=500)
        with pytest.raises(DepositError, match="part 2"):
            _multipart(bag, fake)
        fake.expire()
        receipt = _multipart(bag, fake, resume=True)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)
        parts = sum(f.get("parts", 0) for d in fake.drafts.values() for f in d["files"].values())
        # every part once, and the one refused by the fault: part 1 was not sent again
        assert fake.count("PUT", r"/api/records/\d+/draft/files/.+/content/\d+") == parts + 1


def test_invenio_pending_file_gone_from_the_draft_is_initiated_again(bag):
    with FakeInvenio() as fake:
        fake.inject("PUT", r"/api/records/\d+/draft/files/.+/content", status=500)
        with pytest.raises(DepositError, match="HTTP 500"):
            deposit(bag, to="invenio", url=fake.url, retry=FAST)
        for d in fake.drafts.values():
            for key in [k for k, f in d["files"].items() if f["status"] == "pending"]:
                del d["files"][key]
        receipt = deposit(bag, to="invenio", url=fake.url, retry=FAST, resume=True)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)


# ---------------------------------------------------------------- redirects of uploads


UPLOAD_ROUTES = {
    # target: (fake, method, upload route of bag-info.txt or the bag, where it is sent again, kw)
    "invenio": (
        FakeInvenio,
        "PUT",
        r"/api/records/\d+/draft/files/bag-info.txt/content",
        "/api/records/1001/draft/files/bag-info.txt/content?again=1",
        {},
    ),
    "dspace": (
        FakeDSpace,
        "POST",
        r"/server/api/submission/workspaceitems/\d+",
        "/server/api/submission/workspaceitems/{wsi}?again=1",
        {"target": COLLECTION},
    ),
}


@pytest.mark.parametrize("to", sorted(UPLOAD_ROUTES))
@pytest.mark.parametrize("status", [307, 308])
def test_upload_redirected_on_the_same_site_sends_the_whole_file_again(bag, to, status):
    make, method, route, again, kw = UPLOAD_ROUTES[to]
    with make() as fake:
        url = fake.url + ("/server" if to == "dspace" else "")
        if to == "dspace":  # the workspace item the deposit creates, known once it exists
            orig = fake.create

            def create(req, *groups):
                out = orig(req, *groups)
                fake.inject(
                    method,
                    route,
                    status=status,
                    headers={"Location": again.format(wsi=out[1]["id"])},
                )
                return out

            fake.routes = [(m, rx, create if fn == orig else fn) for m, rx, fn in fake.routes]
        else:
            fake.inject(method, route, status=status, headers={"Location": again})
        receipt = deposit(bag, to=to, url=url, retry=FAST, **kw)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)


# ---------------------------------------------------------------- answers of another shape


def test_invenio_commit_answered_with_a_list_is_a_clear_error(bag):
    with FakeInvenio() as fake:
        fake.inject("POST", r"/api/records/\d+/draft/files/.+/commit", status=200, body=["x"])
        with pytest.raises(DepositError, match="md5"):
            deposit(bag, to="invenio", url=fake.url, retry=FAST, options={"checksum_wait": 0.0})
        assert _journal_true(bag) == 0


# ---------------------------------------------------------------- DSpace


def test_dspace_removes_the_bitstream_it_was_given_not_the_first_of_its_name():
    from curated.deposit.dspace import DSpaceRepository
    from curated.deposit.protocol import RemoteFile

    with FakeDSpace() as fake:
        repo = DSpaceRepository(
            fake.url + "/server", token=PASSWORD, user=USER, collection=COLLECTION, retry=FAST
        )
        repo.check_access()
        state = repo.create_draft([])
        files = fake.wsis[int(state["id"])]["sections"]["upload"]["files"]
        for n, md5 in enumerate(("a" * 32, "b" * 32)):  # an older copy, then the bad one
            files.append(
                {
                    "uuid": f"uuid-{n}",
                    "metadata": {"dc.title": [{"value": "bag.zip"}]},
                    "sizeBytes": 3,
                    "checkSum": {"checkSumAlgorithm": "MD5", "value": md5},
                }
            )
        repo.delete_file(state, RemoteFile("bag.zip", 3, "b" * 32, "md5", "uuid-1"))
        files = fake.wsis[int(state["id"])]["sections"]["upload"]["files"]
        assert [f["uuid"] for f in files] == ["uuid-0"]
        repo.close()


class OtherItemDSpace(FakeDSpace):
    """DSpace that answers an upload with another workspace item, one already holding a
    good copy of the file, and stores nothing in the one asked."""

    def upload(self, req: Request, wid: str):
        status, body = super().upload(req, wid)
        w = self.wsis[int(wid)]
        other = json.loads(json.dumps(self._json(w)))
        other["id"] = int(wid) + 1000
        w["sections"]["upload"]["files"].pop()  # not kept here
        return status, other


def test_dspace_upload_answered_with_another_workspace_item_is_not_confirmed(bag):
    with OtherItemDSpace() as fake:
        with pytest.raises(DepositError, match="does not list the file"):
            deposit(bag, to="dspace", url=fake.url + "/server", target=COLLECTION, retry=FAST)
        assert _journal_true(bag) == 0


class LateMd5Figshare(FakeFigshare):
    """Figshare that lists a completed file as available before its md5 is computed."""

    def complete(self, req: Request, aid: str, fid: str):
        status, body = super().complete(req, aid, fid)
        if status == 202:
            f = self.articles[aid]["files"][fid]
            f["md5_later"], f["computed_md5"], f["md5_reads"] = f["computed_md5"], "", 3
        return status, body

    def _file_json(self, aid: str, f: dict[str, Any]) -> dict[str, Any]:
        if f.get("md5_reads"):
            f["md5_reads"] -= 1
            if not f["md5_reads"]:
                f["computed_md5"] = f["md5_later"]
        return super()._file_json(aid, f)


def test_figshare_md5_computed_after_the_file_is_available_is_waited_for(bag):
    with LateMd5Figshare() as fake:
        receipt = deposit(bag, to="figshare", url=fake.url + "/v2", retry=FAST)
        assert receipt.status == "draft" and _journal_true(bag) == len(receipt.files)
        assert fake.count("PUT", r"/upload/\w+/\d+") == len(
            [p for a in fake.articles.values() for f in a["files"].values() for p in f["parts"]]
        )


NGINX_413 = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
"""What nginx answers a body over its ``client_max_body_size`` (ngx_http_special_response.c)."""


@pytest.mark.parametrize(
    ("to", "route", "advice"),
    [
        ("dataverse", r"/api/datasets/:persistentId/add", "enable direct upload"),
        ("invenio", r"/api/records/\d+/draft/files/.+/content", "in parts of"),
        ("dspace", r"/server/api/submission/workspaceitems/\d+", "max-file-size"),
    ],
)
def test_upload_refused_by_a_proxy_for_its_size_is_named_with_what_to_do(
    bag, monkeypatch, to, route, advice
):
    """A proxy's 413 is that request's size refused for good: named at once, with the
    target's way around it (direct upload, parts) or whom to ask, never sent again."""
    monkeypatch.setenv("DATAVERSE_TOKEN", DV_TOKEN)
    fakes = {"dataverse": FakeDataverse, "invenio": FakeInvenio, "dspace": FakeDSpace}
    with fakes[to]() as fake:
        fake.inject(
            "POST" if to != "invenio" else "PUT",
            route,
            status=413,
            body=NGINX_413,
            content_type="text/html",
            times=10,
        )
        url = fake.url + ("/server" if to == "dspace" else "")
        target = {"dataverse": "lab", "dspace": COLLECTION}.get(to)
        with pytest.raises(DepositError, match="HTTP 413 Request Entity Too Large") as err:
            deposit(bag, to=to, url=url, target=target, retry=FAST)
        assert fake.count("POST" if to != "invenio" else "PUT", route) == 1
    said = str(err.value)
    assert "size limit" in said and advice in said and "try again later" not in said


def test_dspace_upload_its_storage_failed_is_named_with_what_dspace_said(bag):
    """DSpace's upload step answers 201 when storing the file failed, the exception's
    message among the workspace item's errors: that message is what the curator needs."""
    with FakeDSpace() as fake:
        fake.upload_failure = "No space left on device"
        with pytest.raises(DepositError, match="upload step failed with .*No space left on device"):
            deposit(bag, to="dspace", url=fake.url + "/server", target=COLLECTION, retry=FAST)
        assert _journal_true(bag) == 0
