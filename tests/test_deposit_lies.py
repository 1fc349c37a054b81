"""Servers that lie, on 127.0.0.1: a success status without the thing done, a size that
is not the file's, a lost answer to an upload, a POST redirected to another site.

Each test is the curator's story: nothing is claimed deposited that was not, nothing is
stored twice, and the message names what the server did.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.deposit.http import HttpSession, LostResponse, parse_retry_after
from curated.deposit.journal import journal_path
from curated.errors import DepositError, IntegrityError
from tests.fakes import bags
from tests.fakes.base import FakeServer, Request
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
from tests.fakes.figshare import TOKEN as FS_TOKEN
from tests.fakes.figshare import FakeFigshare
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio

FAST = RetryPolicy(attempts=3, backoff=0.001, sleep=lambda s: None)
SECRET = "lying-test-secret-0077"


pytestmark = pytest.mark.usefixtures("forgotten_secrets")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return bags.bagged_template(tmp_path_factory, big=2000)


@pytest.fixture
def bag(template, tmp_path, monkeypatch):
    for var, value in (
        ("INVENIO_TOKEN", INV_TOKEN),
        ("DATAVERSE_TOKEN", DV_TOKEN),
        ("FIGSHARE_TOKEN", FS_TOKEN),
        ("DSPACE_USER", USER),
        ("DSPACE_PASSWORD", PASSWORD),
    ):
        monkeypatch.setenv(var, value)
    ws = bags.copy_workspace(template, tmp_path / "ws")
    return ws / "package" / "bag"


# Where each target publishes, and how to ask it: (fake, publish route, deposit arguments).
PUBLISH = {
    "invenio": (FakeInvenio, "POST", r"/api/records/[^/]+/draft/actions/publish", {}),
    "dataverse": (
        FakeDataverse,
        "POST",
        r"/api/datasets/:persistentId/actions/:publish",
        {"target": "lab"},
    ),
    "figshare": (FakeFigshare, "POST", r"/v2/account/articles/\d+/publish", {}),
    "dspace": (FakeDSpace, "POST", r"/server/api/workflow/workflowitems", {"target": COLLECTION}),
}


def _url(to: str, fake: FakeServer) -> str:
    return fake.url + {"figshare": "/v2", "dspace": "/server"}.get(to, "")


def _published(to: str, fake: Any) -> int:
    if to == "invenio":
        return len(fake.records)
    if to == "dataverse":
        return sum(d["published"] for d in fake.datasets.values())
    if to == "figshare":
        return sum(a["version"] for a in fake.articles.values())
    return sum(1 for i in fake.items.values() if i.get("inArchive"))


@pytest.mark.parametrize("to", sorted(PUBLISH))
@pytest.mark.parametrize(
    "answer", [{}, {"status": 500, "message": "publication failed"}], ids=["empty", "error"]
)
def test_success_status_without_a_publication_is_not_claimed_published(bag, to, answer):
    make, method, route, kw = PUBLISH[to]
    with make() as fake:
        fake.inject(method, route, status=201 if to != "invenio" else 202, body=answer)
        with pytest.raises(DepositError, match="publish|submitting|workflow") as exc:
            deposit(bag, to=to, url=_url(to, fake), retry=FAST, publish=True, **kw)
        assert (
            "HTTP" in str(exc.value) or "lacks id" in str(exc.value) or "errors" in str(exc.value)
        )
        assert _published(to, fake) == 0
        entry = next(iter(json.loads(journal_path(bag).read_text())["deposits"].values()))
        assert entry["stage"] != "published"
        # the server mends its ways: --resume publishes the same draft, once
        done = deposit(bag, to=to, url=_url(to, fake), retry=FAST, publish=True, resume=True, **kw)
        assert done.status in ("published", "submitted")
        assert _published(to, fake) == 1
    log = (bag.parents[1] / "curation" / "log.jsonl").read_text()
    assert '"status": "error"' in log or '"status":"error"' in log


def test_invenio_error_document_under_a_success_status_is_an_error(bag):
    with FakeInvenio() as fake:
        fake.inject(
            "PUT",
            r"/api/records/[^/]+/draft",
            status=200,
            body={"status": 400, "message": "A validation error occurred."},
        )
        with pytest.raises(DepositError, match="A validation error occurred"):
            deposit(bag, to="invenio", url=fake.url, retry=FAST)


def test_dataverse_dataset_created_without_its_id_is_a_clear_error(bag):
    with FakeDataverse() as fake:
        fake.inject(
            "POST",
            r"/api/dataverses/lab/datasets",
            status=201,
            body={"status": "OK", "data": {"persistentId": "doi:10.5072/FK2/X"}},
        )
        with pytest.raises(DepositError, match="lacks data.id"):
            deposit(bag, to="dataverse", url=fake.url, target="lab", retry=FAST)


class WrongSizeInvenio(FakeInvenio):
    """InvenioRDM that reports the right md5 of a file but not its size."""

    def commit(self, req: Request, rid: str, key: str):
        status, body, *rest = super().commit(req, rid, key)
        if status == 200:
            body = {**body, "size": (body.get("size") or 0) + 1}
        return (status, body, *rest)


def test_committed_file_of_the_wrong_size_is_not_confirmed(bag):
    with WrongSizeInvenio() as fake:
        with pytest.raises(IntegrityError, match="bytes"):
            deposit(bag, to="invenio", url=fake.url, retry=FAST)
        entry = next(iter(json.loads(journal_path(bag).read_text())["deposits"].values()))
        assert not any(f.get("status") == "confirmed" for f in entry["files"].values())


UPLOADS = {
    "dspace": (FakeDSpace, r"/server/api/submission/workspaceitems/(\d+)", {"target": COLLECTION}),
    "dataverse": (FakeDataverse, r"/api/datasets/:persistentId/add", {"target": "lab"}),
    "figshare": (FakeFigshare, r"/v2/account/articles/(\d+)/files", {}),
}


@pytest.mark.parametrize("to", sorted(UPLOADS))
def test_lost_answer_to_an_upload_stores_the_file_once(bag, to):
    make, route, kw = UPLOADS[to]
    with make() as fake:
        fake.lose_answers("POST", route)  # stored, but the answer never leaves
        receipt = deposit(bag, to=to, url=_url(to, fake), retry=FAST, **kw)
        assert fake.count("POST", route) == len(receipt.files)  # nothing sent twice
        if to == "dspace":
            wsi = next(iter(fake.wsis.values()))
            names = [
                f["metadata"]["dc.title"][0]["value"] for f in wsi["sections"]["upload"]["files"]
            ]
            assert names == ["bag.zip"]
        if to == "figshare":  # one entry per file, none left pending beside it
            article = next(iter(fake.articles.values()))
            assert len(article["files"]) == len(receipt.files)
            assert {f["status"] for f in article["files"].values()} == {"available"}
        assert all(f["server_checksum"] for f in receipt.files)


def test_gateway_error_on_an_upload_is_not_resent_blindly(bag):
    with FakeDSpace() as fake:
        route = r"/server/api/submission/workspaceitems/(\d+)"
        fake.inject("POST", route, status=502)  # nothing stored, but who could tell
        with pytest.raises(LostResponse, match="--resume"):
            deposit(bag, to="dspace", url=_url("dspace", fake), target=COLLECTION, retry=FAST)
        receipt = deposit(
            bag, to="dspace", url=_url("dspace", fake), target=COLLECTION, retry=FAST, resume=True
        )
        wsi = next(iter(fake.wsis.values()))
        assert len(wsi["sections"]["upload"]["files"]) == 1
        assert receipt.status == "draft"


class Evil(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        for method in ("GET", "POST", "PUT"):
            self.route(method, r"/.*", lambda req: (200, {"id": "forged", "is_published": True}))


@pytest.mark.parametrize("status", [301, 302, 303])
def test_post_redirected_to_another_site_as_a_get_is_refused(status):
    with Evil() as evil, FakeServer() as repo:
        repo.route("POST", r"/publish", lambda req: (status, None, {"Location": evil.url + "/x"}))
        s = HttpSession(
            repo.url, headers={"Authorization": f"Bearer {SECRET}"}, retry=FAST, repository="Test"
        )
        with pytest.raises(DepositError, match="redirected this POST to another site"):
            s.request("POST", "/publish", json_body={})
        assert evil.calls == []  # its answer is never taken for the repository's


@pytest.mark.parametrize("value", ["nan", "NaN"])
def test_retry_after_that_is_not_a_number_is_ignored(value):
    assert parse_retry_after(value) is None
    hits = {"n": 0}

    def busy(req: Request):
        hits["n"] += 1
        return (
            (429, {"message": "slow down"}, {"Retry-After": value}) if hits["n"] == 1 else (200, {})
        )

    with FakeServer() as repo:
        repo.route("GET", r"/x", busy)
        r = HttpSession(repo.url, retry=FAST, repository="Test").request("GET", "/x")
        assert r.status == 200 and hits["n"] == 2


@pytest.mark.parametrize("workflow", [False, True], ids=["archived-at-once", "in-review"])
def test_dspace_submission_answered_204_or_with_a_workflow_item_is_told_apart(bag, workflow):
    """DSpace answers the submission 204 without a body when the collection has no reviewers
    (the item is archived at once) and 201 with the workflow item when it waits for review;
    both are successes, told apart by the item itself."""
    with FakeDSpace(workflow=workflow) as fake:
        done = deposit(
            bag, to="dspace", url=_url("dspace", fake), target=COLLECTION, retry=FAST, publish=True
        )
        item = next(iter(fake.items.values()))
        if workflow:
            assert done.status == "submitted" and not item["inArchive"]
            assert list(fake.workflow_items.values()) == [item["uuid"]]
        else:
            assert done.status == "published" and item["inArchive"]
            assert done.handle == item["handle"]
