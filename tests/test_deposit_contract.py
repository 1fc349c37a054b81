"""Contract tests: documented response shapes replayed to the adapters, and the requests
the adapters send checked against the documented request shapes.

The answers live in ``tests/data/contract`` (see its README for the document each one
follows). A :class:`Replay` server serves them in order per route and keeps every request.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from curated.deposit.http import RetryPolicy
from curated.deposit.protocol import UploadItem
from tests.fakes.base import FakeServer, Request

DATA = Path(__file__).parent / "data" / "contract"
CONTENT = b"curated contract test\n" * 10


class Replay(FakeServer):
    """Answers each (method, path) with the next scripted reply; the last one repeats."""

    name = "replay"

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[str, re.Pattern[str], list[tuple[int, Any, dict[str, str]]]]] = []
        self.seen: list[dict[str, Any]] = []
        self.route("GET", r"/.*", self._serve)
        self.route("POST", r"/.*", self._serve)
        self.route("PUT", r"/.*", self._serve)
        self.route("PATCH", r"/.*", self._serve)
        self.route("DELETE", r"/.*", self._serve)

    def on(self, method: str, pattern: str, *replies: Any) -> None:
        norm = [r if isinstance(r, tuple) else (200, r, {}) for r in replies]
        self.script.append((method, re.compile(pattern + "$"), [(*r, {})[:3] for r in norm]))

    def doc(self, name: str, **subs: str) -> Any:
        text = (DATA / name).read_text(encoding="utf-8")
        for k, v in {"base": self.url, **subs}.items():  # a sub may override base
            text = text.replace("{" + k + "}", v)
        return json.loads(text)

    def _serve(self, req: Request):
        body = req.body()
        self.seen.append(
            {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": {k.lower(): v for k, v in req.headers.items()},
                "body": body,
            }
        )
        for method, rx, replies in self.script:
            if method == req.method and rx.match(req.path):
                return replies.pop(0) if len(replies) > 1 else replies[0]
        return 404, {"message": f"not scripted: {req.method} {req.path}"}

    def requests(self, method: str, pattern: str) -> list[dict[str, Any]]:
        rx = re.compile(pattern + "$")
        return [s for s in self.seen if s["method"] == method and rx.match(s["path"])]


@pytest.fixture
def replay():
    with Replay() as r:
        yield r


@pytest.fixture
def payload(tmp_path) -> UploadItem:
    p = tmp_path / "bag.zip"
    p.write_bytes(CONTENT)
    return UploadItem("data/bag.zip", p, len(CONTENT))


def _retry() -> RetryPolicy:
    return RetryPolicy(attempts=2, backoff=0.0, sleep=lambda s: None)


# ---------------------------------------------------------------- DSpace
def test_dspace_created_workspace_item_without_embeds(replay):
    from curated.deposit.dspace import DSpaceRepository

    item = replay.doc("dspace_item.json", base=replay.url + "/server")
    replay.on(
        "POST",
        r"/server/api/submission/workspaceitems",
        (201, replay.doc("dspace_workspaceitem.json", base=replay.url + "/server"), {}),
    )
    replay.on("GET", r"/server/api/submission/workspaceitems/17/item", item)
    repo = DSpaceRepository(replay.url + "/server", token=None, collection="c0ffee", retry=_retry())
    state = repo.create_draft([])
    assert state == {"id": 17, "item": item["uuid"]}
    sent = replay.requests("POST", r"/server/api/submission/workspaceitems")[0]
    # RestContract workspaceitems.md: POST ?owningCollection=<uuid>, JSON body
    assert sent["query"]["owningCollection"] == "c0ffee" and json.loads(sent["body"]) == {}


def test_dspace_form_is_read_from_the_definition_and_fits_the_patch(replay):
    from curated.deposit.dspace import DSpaceRepository
    from curated.metadata.crosswalk.dspace import to_dspace_patch
    from tests.fakes.bags import record

    replay.on(
        "GET",
        r"/server/api/config/submissiondefinitions/search/findByCollection",
        replay.doc("dspace_definition.json", base=replay.url + "/server"),
    )
    replay.on(
        "GET",
        r"/server/api/config/submissiondefinitions/dataset/sections",
        replay.doc("dspace_sections.json", base=replay.url + "/server"),
    )
    replay.on(
        "GET",
        r"/server/api/config/submissionforms/datasetdescribe",
        replay.doc("dspace_submissionform.json", base=replay.url + "/server"),
    )
    repo = DSpaceRepository(replay.url + "/server", token=None, collection="c0ffee", retry=_retry())
    repo.form = repo._read_form()
    assert repo.form.license_section == "datasetlicense" and repo.form.upload_section == "upload"
    fields = repo.form.sections["datasetdescribe"]
    assert {"dc.identifier.uri", "dc.identifier.other", "dc.rights"} <= set(fields)
    assert fields["dc.title"].mandatory and not fields["dc.title"].repeatable
    ops, findings = repo.review(
        to_dspace_patch(record(), today="2026-11-23"), record=record(), publish=True
    )
    # RFC 6902 add operations on /sections/<form>/<field>, each field in the form
    for op in ops:
        assert op["op"] == "add" and re.fullmatch(
            r"/sections/datasetdescribe/dc\.[\w.]+", op["path"]
        )
        assert op["path"].rsplit("/", 1)[-1] in fields
        assert all(set(v) >= {"value"} for v in op["value"])
    assert {o["path"].rsplit("/", 1)[-1] for o in ops} >= {
        "dc.title",
        "dc.date.issued",
        "dc.rights",
    }
    assert "dc.subject" in findings[0]["what"] and not any(f["blocking"] for f in findings)
    # the licence is granted in the definition's own licence section
    replay.on("PATCH", r"/server/api/submission/workspaceitems/17", {"id": 17, "errors": []})
    repo.finalize({"id": 17, "item": "x"})
    patch = replay.requests("PATCH", r"/server/api/submission/workspaceitems/17")[0]
    assert patch["headers"]["content-type"].startswith("application/json-patch+json")
    assert json.loads(patch["body"]) == [
        {"op": "add", "path": "/sections/datasetlicense/granted", "value": "true"}
    ]


def test_dspace_csrf_token_comes_from_security_csrf(replay):
    from curated.deposit.dspace import DSpaceRepository

    # RestContract csrf-tokens.md: 204, token in the DSPACE-XSRF-TOKEN header
    replay.on("GET", r"/server/api/security/csrf", (204, None, {"DSPACE-XSRF-TOKEN": "tok-1"}))
    replay.on(
        "POST",
        r"/server/api/authn/login",
        (200, None, {"Authorization": "Bearer jwt-1", "DSPACE-XSRF-TOKEN": "tok-2"}),
    )
    repo = DSpaceRepository(
        replay.url + "/server", token="pw", user="u@example.org", collection="c", retry=_retry()
    )
    repo.login()
    login = replay.requests("POST", r"/server/api/authn/login")[0]
    assert login["headers"]["x-xsrf-token"] == "tok-1"
    assert login["body"] == b"user=u%40example.org&password=pw"
    assert repo.http.session.headers["X-XSRF-TOKEN"] == "tok-2"
    assert replay.requests("GET", r"/server/api/authn/status") == []


# ---------------------------------------------------------------- Figshare
def test_figshare_upload_follows_the_documented_sequence(replay, payload):
    from curated.deposit.figshare import FigshareRepository

    token = "6f3b1c1e-2a0d-4c41-9b55-0c7f8a1d2e33"
    replay.on(
        "POST",
        r"/v2/account/articles/4711/files",
        (201, replay.doc("figshare_file_created.json"), {}),
    )
    replay.on(
        "GET",
        r"/v2/account/articles/4711/files/900100",
        replay.doc("figshare_private_file_created.json"),
        replay.doc("figshare_private_file_available.json"),
    )
    replay.on("GET", rf"/upload/{token}", replay.doc("figshare_upload_info.json"))
    replay.on("PUT", rf"/upload/{token}/\d", (200, None, {}))
    replay.on("POST", r"/v2/account/articles/4711/files/900100", (202, {"location": "x"}, {}))
    repo = FigshareRepository(replay.url + "/v2", token="t", retry=_retry())
    entry: dict[str, Any] = {}
    up = repo.upload({"id": "4711"}, payload, entry, lambda: None, lambda n: None)
    assert up.remote.checksum == hashlib.md5(CONTENT).hexdigest() == up.local["md5"]
    init = json.loads(replay.requests("POST", r"/v2/account/articles/4711/files")[0]["body"])
    assert init == {"name": "bag.zip", "size": 220}  # swagger FileCreator
    parts = replay.requests("PUT", rf"/upload/{token}/\d")
    assert [p["path"][-1] for p in parts] == ["1", "2"]
    assert b"".join(p["body"] for p in parts) == CONTENT  # inclusive byte ranges
    assert all("authorization" not in p["headers"] or p["headers"]["authorization"] for p in parts)


def test_figshare_article_create_answer_is_understood(replay):
    from curated.deposit.figshare import FigshareRepository

    replay.on(
        "POST", r"/v2/account/articles", (201, replay.doc("figshare_article_created.json"), {})
    )
    repo = FigshareRepository(replay.url + "/v2", token="t", retry=_retry())
    body = {"title": "A title", "authors": [{"name": "A B"}], "defined_type": "dataset"}
    assert repo.create_draft(body) == {"id": "4711"}
    sent = json.loads(replay.requests("POST", r"/v2/account/articles")[0]["body"])
    assert set(sent) <= {
        "title",
        "description",
        "authors",
        "keywords",
        "categories",
        "license",
        "defined_type",
        "funding_list",
        "references",
    }


# ---------------------------------------------------------------- InvenioRDM
def test_invenio_multipart_commit_then_md5_later(replay, payload):
    from curated.deposit.invenio import InvenioRepository

    base = r"/api/records/a1b2c-3d4e5/draft/files"
    replay.on("POST", base, (201, replay.doc("invenio_multipart_init.json"), {}))
    replay.on("PUT", base + r"/data/bag.zip/content/\d", (200, None, {}))
    replay.on("POST", base + r"/data/bag.zip/commit", replay.doc("invenio_multipart_commit.json"))
    replay.on(
        "GET",
        base + r"/data/bag.zip",
        replay.doc("invenio_multipart_commit.json"),
        replay.doc("invenio_file_settled.json"),
    )
    repo = InvenioRepository(
        replay.url, token="t", retry=_retry(), multipart_threshold=100, part_size=110
    )
    entry: dict[str, Any] = {}
    up = repo.upload({"id": "a1b2c-3d4e5"}, payload, entry, lambda: None, lambda n: None)
    assert (up.remote.algorithm, up.remote.checksum) == ("md5", hashlib.md5(CONTENT).hexdigest())
    init = json.loads(replay.requests("POST", base)[0]["body"])
    # docs-invenio-rdm: [{"key", "size", "transfer": {"type": "M", "parts", "part_size"}}]
    assert init == [
        {
            "key": "data/bag.zip",
            "size": 220,
            "transfer": {"type": "M", "parts": 2, "part_size": 110},
        }
    ]
    assert len(replay.requests("GET", base + r"/data/bag.zip")) == 2 and entry["committed"]


# ---------------------------------------------------------------- Dataverse
def test_dataverse_single_direct_upload_without_signed_tagging(replay, payload):
    from curated.deposit.dataverse import DataverseRepository

    replay.on(
        "GET",
        r"/api/datasets/:persistentId/uploadurls",
        replay.doc(
            "dataverse_uploadurls_single.json", store=replay.url.replace("127.0.0.1", "localhost")
        ),
    )
    replay.on(
        "PUT", r"/dv-bucket/.+", (200, None, {"ETag": f'"{hashlib.md5(CONTENT).hexdigest()}"'})
    )
    replay.on("POST", r"/api/datasets/:persistentId/add", replay.doc("dataverse_add_direct.json"))
    repo = DataverseRepository(
        replay.url, token="k", collection="lab", retry=_retry(), direct_threshold=1
    )
    entry: dict[str, Any] = {}
    up = repo._direct(
        {"id": 1, "pid": "doi:10.5072/FK2ABCDEF"}, payload, entry, lambda: None, lambda n: None
    )
    assert up.remote.checksum == hashlib.md5(CONTENT).hexdigest() and up.remote.size == 220
    put = replay.requests("PUT", r"/dv-bucket/.+")[0]
    assert "x-amz-tagging" not in put["headers"]  # SignedHeaders=host: the store has tagging off
    assert "x-dataverse-key" not in put["headers"] and put["body"] == CONTENT
    add = replay.requests("POST", r"/api/datasets/:persistentId/add")[0]
    form = add["body"].decode()
    meta = json.loads(re.search(r'name="jsonData"\r\n\r\n(.*?)\r\n--', form, re.S).group(1))
    # s3-direct-upload-api.rst: storageIdentifier, fileName, mimeType and a checksum object
    assert meta["storageIdentifier"] == "s3://dv-bucket:18a1f2b3c4d-5e6f7a8b9c0d"
    assert meta["fileName"] == "bag.zip" and meta["mimeType"]
    assert meta["checksum"] == {"@type": "MD5", "@value": hashlib.md5(CONTENT).hexdigest()}


def test_dataverse_licence_list_is_read_and_matched(replay):
    from curated.deposit.dataverse import DataverseRepository
    from curated.metadata.crosswalk.dataverse import to_dataverse
    from tests.fakes.bags import record

    replay.on("GET", r"/api/users/:me", {"status": "OK", "data": {"id": 1}})
    replay.on("GET", r"/api/dataverses/lab", {"status": "OK", "data": {"alias": "lab"}})
    replay.on("GET", r"/api/licenses", replay.doc("dataverse_licenses.json"))
    repo = DataverseRepository(replay.url, token="k", collection="lab", retry=_retry())
    repo.check_access()
    rec = record()
    rec["study"]["license"] = "CC-BY-SA-4.0"  # no rightsIdentifier in the list: matched by URI
    body, findings = repo.review(to_dataverse(rec), record=rec, publish=True)
    assert body["datasetVersion"]["license"] == {
        "name": "CC BY-SA 4.0",
        "uri": "http://creativecommons.org/licenses/by-sa/4.0",
    }
    assert findings == []


def test_dataverse_url_without_signed_headers_retries_once_without_tagging(replay, payload):
    """A presigned URL that does not list its signed headers gets the guide's tagging first;
    a store that refuses the unsigned header gets the same bytes again without it."""
    from curated.deposit.dataverse import DataverseRepository

    store = replay.url.replace("127.0.0.1", "localhost")
    urls = {
        "status": "OK",
        "data": {
            "url": f"{store}/dv-bucket/obj?Signature=abc&Expires=1",
            "partSize": 10**9,
            "storageIdentifier": "s3://dv-bucket:obj",
        },
    }
    refused = (
        "<Error><Code>AccessDenied</Code><Message>There were headers present in the request "
        "which were not signed</Message></Error>"
    )
    replay.on("GET", r"/api/datasets/:persistentId/uploadurls", urls)
    replay.on(
        "PUT",
        r"/dv-bucket/obj",
        (403, refused, {}),
        (200, None, {"ETag": f'"{hashlib.md5(CONTENT).hexdigest()}"'}),
    )
    replay.on("POST", r"/api/datasets/:persistentId/add", replay.doc("dataverse_add_direct.json"))
    repo = DataverseRepository(
        replay.url, token="k", collection="lab", retry=_retry(), direct_threshold=1
    )
    up = repo._direct({"id": 1, "pid": "doi:x"}, payload, {}, lambda: None, lambda n: None)
    assert up.remote.checksum == hashlib.md5(CONTENT).hexdigest()
    first, second = replay.requests("PUT", r"/dv-bucket/obj")
    assert (
        first["headers"]["x-amz-tagging"] == "dv-state=temp"
        and "x-amz-tagging" not in second["headers"]
    )
    assert second["body"] == CONTENT
