"""Each repository, against its stateful fake: deposit → interrupted → resume → publish → new version.

Plus the bad inputs a curator meets: a wrong token, a missing collection, a package over
the target's limits, an HTML answer, an invalid bag. Nothing leaks the token.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.deposit.core import make_repository
from curated.deposit.journal import journal_path
from curated.errors import DepositError
from curated.workspace import Workspace
from tests.fakes import bags
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, PASSWORD, USER, FakeDSpace
from tests.fakes.figshare import TOKEN as FS_TOKEN
from tests.fakes.figshare import FakeFigshare
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio


@dataclass
class Target:
    to: str
    fake: Any
    url: str
    env: str
    token: str
    collection: str | None
    upload: tuple[str, str]
    """(method, path pattern) of the requests that carry file bytes."""
    options: dict[str, Any] = field(default_factory=dict)


def _target(name: str, tmp_path: Path) -> Target:
    if name == "invenio":
        f = FakeInvenio(communities=("imaging",)).start()
        return Target(
            "invenio",
            f,
            f.url,
            "INVENIO_TOKEN",
            INV_TOKEN,
            None,
            ("PUT", r"/api/records/\d+/draft/files/.+/content"),
        )
    if name == "zenodo":
        f = FakeInvenio(multipart=True, vocabularies=ZENODO_VOCABULARIES).start()
        return Target(
            "zenodo",
            f,
            f.url,
            "ZENODO_TOKEN",
            INV_TOKEN,
            None,
            ("PUT", r"/api/records/\d+/draft/files/.+/content/\d+"),
            {"multipart_threshold": 100_000, "part_size": 64 * 1024},
        )
    if name == "dataverse":
        f = FakeDataverse().start()
        return Target(
            "dataverse",
            f,
            f.url,
            "DATAVERSE_TOKEN",
            DV_TOKEN,
            "lab",
            ("POST", r"/api/datasets/:persistentId/add"),
        )
    if name in ("dspace", "dspace-8.0"):
        # 7.6.2+ by default; "dspace-8.0": DSpace 8.0-8.2/9.0-9.1 (no CSRF token on GETs)
        f = FakeDSpace(version="8.0" if name == "dspace-8.0" else "7.6").start()
        return Target(
            "dspace",
            f,
            f.url + "/server",
            "DSPACE_PASSWORD",
            PASSWORD,
            COLLECTION,
            ("POST", r"/server/api/submission/workspaceitems/\d+"),
        )
    if name == "figshare":
        f = FakeFigshare(part_size=64 * 1024).start()
        return Target(
            "figshare",
            f,
            f.url + "/v2",
            "FIGSHARE_TOKEN",
            FS_TOKEN,
            None,
            ("PUT", r"/upload/\w+/\d+"),
        )
    return Target("directory", None, str(tmp_path / "repo"), "", "", None, ("", ""))


ZENODO_VOCABULARIES = {
    "affiliations": {"05a28rw58"},
    "funders": {"021nxhr62"},
    "awards": {"021nxhr62::DBI-1234567"},
}
"""What Zenodo's vocabularies hold of the fixture record's ids (ROR and the NSF award)."""

HTTP_TARGETS = ["invenio", "zenodo", "dataverse", "dspace", "figshare"]
ALL_TARGETS = [*HTTP_TARGETS, "directory"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    ws = bags.make_workspace(tmp_path_factory.mktemp("tpl") / "ws")
    bags.bag_workspace(ws)
    return ws


@pytest.fixture
def ws(template, tmp_path):
    return bags.copy_workspace(template, tmp_path / "ws")


@pytest.fixture
def sleeps():
    return []


def run(t: Target, bag: Path, sleeps: list[float], **kw: Any):
    retry = RetryPolicy(attempts=3, backoff=0.001, sleep=sleeps.append)
    return deposit(
        bag,
        to=t.to,
        url=t.url,
        target=t.collection,
        retry=retry,
        options=t.options or None,
        today="2026-11-23",
        **kw,
    )


@pytest.fixture
def target(request, tmp_path, monkeypatch):
    t = _target(request.param, tmp_path)
    if t.env:
        monkeypatch.setenv(t.env, t.token)
    monkeypatch.setenv("DSPACE_USER", USER)
    yield t
    if t.fake is not None:
        t.fake.stop()


def _spy_uploads(monkeypatch, t: Target) -> list[str]:
    """Record every file name an adapter is asked to send."""
    names: list[str] = []
    repo = make_repository(
        t.to, t.url, token="x", token_env=t.env, target=t.collection, options=t.options or None
    )
    cls = type(repo)
    real = cls.upload

    def spy(self, state, item, entry, save, advance):
        names.append(item.name)
        return real(self, state, item, entry, save, advance)

    monkeypatch.setattr(cls, "upload", spy)
    return names


def _interrupt(t: Target, monkeypatch) -> None:
    """Make the third file's upload fail for good: the fake hangs up mid-body (every retry),
    or, for the directory target, the process is 'killed' after some bytes."""
    if t.fake is not None:
        # DSpace gets the bag as one zip in one request: cut that one. A file that goes in
        # one POST (Dataverse, DSpace) is cut before its bytes: a server that stored it and
        # then hung up has it, and the deposit rightly takes it.
        one_post = t.to in ("dataverse", "dspace")
        t.fake.inject(
            t.upload[0],
            t.upload[1],
            drop_after=100 if one_post else 20_000,
            times=3,
            skip=0 if t.to == "dspace" else 2,
        )
        return
    from curated.deposit import directory

    real = directory.DirectoryRepository.upload
    calls = {"n": 0}

    def dying(self, state, item, entry, save, advance):
        calls["n"] += 1
        if calls["n"] == 3:
            partial = self._draft_dir(state) / self.bag_name / (item.name + ".partial")
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"half")
            raise KeyboardInterrupt
        return real(self, state, item, entry, save, advance)

    monkeypatch.setattr(directory.DirectoryRepository, "upload", dying)


def _all_written(ws: Path, extra: list[Path]) -> list[Path]:
    files = [p for p in ws.rglob("*") if p.is_file()]
    for e in extra:
        files += (
            [p for p in e.rglob("*") if p.is_file()] if e.is_dir() else ([e] if e.exists() else [])
        )
    return files


@pytest.mark.parametrize("target", [*ALL_TARGETS, "dspace-8.0"], indirect=True)
def test_deposit_resume_publish_new_version(target, ws, sleeps, monkeypatch, tmp_path):
    t = target
    bag = ws / "package" / "bag"
    names = _spy_uploads(monkeypatch, t)
    _interrupt(t, monkeypatch)

    # 1. the connection drops (or the process dies) in the middle of the third file
    with pytest.raises((DepositError, KeyboardInterrupt)) as exc:
        run(t, bag, sleeps)
    if exc.type is DepositError:
        assert "--resume" in str(exc.value)
    journal = json.loads(journal_path(bag).read_text())
    entry = next(iter(journal["deposits"].values()))
    confirmed = {n for n, f in entry["files"].items() if f["status"] == "confirmed"}
    parts_done = {
        n: len(f.get("parts_done") or [])
        for n, f in entry["files"].items()
        if f["status"] != "confirmed"
    }
    if t.to in ("invenio", "dataverse", "directory"):
        assert len(confirmed) == 2
    if t.to in ("zenodo", "figshare"):
        assert (
            sorted(parts_done.values())[-1] == 2
        )  # two parts of the file being sent are confirmed
    sent_before = t.fake.count(*t.upload) if t.fake is not None else 0
    if t.fake is not None:
        # the server is well again (a POST whose answer was lost is not re-sent, so not
        # every injected hang-up may have been used)
        t.fake.faults.clear()

    # 2. a plain re-run refuses to start a second record
    with pytest.raises(DepositError, match="--resume"):
        run(t, bag, sleeps)

    # 3. --resume continues, re-sending nothing already confirmed
    monkeypatch.undo()
    if t.env:
        monkeypatch.setenv(t.env, t.token)
    monkeypatch.setenv("DSPACE_USER", USER)
    names = _spy_uploads(monkeypatch, t)
    draft = run(t, bag, sleeps, resume=True)
    assert draft.status == "draft"
    assert not confirmed & set(names)
    if t.to in ("zenodo", "figshare"):
        big = next(f for f in entry["files"] if parts_done.get(f))
        size = next(f["size"] for f in draft.files if f["name"] == big)
        total_parts = -(-size // (64 * 1024))
        assert t.fake.count(*t.upload) - sent_before == total_parts - 2  # only the missing parts
    assert all(f["server_checksum"] and f["md5"] and f["sha256"] for f in draft.files)

    # 4. publishing the complete draft
    done = run(t, bag, sleeps, publish=True)
    assert done.status in ("published", "submitted")
    assert done.record_id == draft.record_id
    if t.to in ("invenio", "zenodo", "dataverse", "figshare"):
        assert done.doi
    if t.to == "dspace":
        assert done.handle and done.handle.startswith("123456789/")
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    assert receipt["record_id"] == done.record_id and receipt["status"] == done.status
    assert {f["name"] for f in receipt["files"]} == {f["name"] for f in done.files}

    # 5. the same bag again is not deposited twice
    again = run(t, bag, sleeps, publish=True)
    assert again.status == "notneeded"
    assert json.loads((ws / "package" / "receipt.json").read_text())["status"] == done.status

    # 6. a changed bag becomes a new version of the same record
    (ws / "derived" / "evaluations" / "eval.json").write_text('{"dice": 0.95}\n')
    bags.bag_workspace(ws, overwrite=True)
    names.clear()
    v2 = run(t, bag, sleeps, publish=True)
    assert v2.status in ("published", "submitted")
    assert v2.new_version_of == done.record_id
    if t.to in ("invenio", "zenodo", "dataverse", "figshare"):
        # unchanged files were kept by the repository, not sent again
        assert "data/derived/volume.bin" not in names
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    assert receipt["previous"][-1]["record_id"] == done.record_id

    # the curator log has the deposits as D entries and still verifies
    w = Workspace(ws)
    entries = [e for e in w.log.entries() if e.get("action") == "deposit"]
    assert entries and all(e["step"] == "D" for e in entries)
    assert any(e["status"] == "ok" for e in entries) and any(
        e["status"] == "error" for e in entries
    )
    assert w.log.verify().ok

    # the token is nowhere on disk
    if t.token:
        extra = [tmp_path / "repo"]
        for p in _all_written(ws, extra):
            assert t.token.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("target", ["invenio", "figshare", "dataverse", "dspace"], indirect=True)
def test_wrong_token_is_named_and_not_retried(target, ws, sleeps, monkeypatch):
    t = target
    monkeypatch.setenv(t.env, "wrong-token-000")
    with pytest.raises(DepositError) as exc:
        run(t, ws / "package" / "bag", sleeps)
    msg = str(exc.value)
    assert f"${t.env}" in msg and "wrong-token-000" not in msg
    assert sleeps == []
    assert len(t.fake.calls) <= 3
    assert not journal_path(
        ws / "package" / "bag"
    ).exists()  # nothing to resume: start over after fixing the token


@pytest.mark.parametrize("target", HTTP_TARGETS, indirect=True)
def test_missing_token_variable(target, ws, sleeps, monkeypatch):
    monkeypatch.delenv(target.env)
    with pytest.raises(DepositError, match=f"set the environment variable {target.env}"):
        run(target, ws / "package" / "bag", sleeps)
    assert target.fake.calls == []


@pytest.mark.parametrize(
    "target", ["invenio", "dataverse", "dspace", "figshare", "directory"], indirect=True
)
def test_missing_collection(target, ws, sleeps):
    target.collection = "no-such-collection" if target.to != "figshare" else "999"
    with pytest.raises(DepositError, match="does not exist"):
        run(target, ws / "package" / "bag", sleeps)


@pytest.mark.parametrize("target", ["invenio"], indirect=True)
def test_community_deposit_is_submitted_for_review(target, ws, sleeps):
    target.collection = "imaging"
    r = run(target, ws / "package" / "bag", sleeps, publish=True)
    assert r.status == "submitted"
    assert target.fake.count("PUT", r"/api/records/\d+/draft/review") == 1


@pytest.mark.parametrize("target", ["invenio"], indirect=True)
def test_html_answer_is_a_clear_error(target, ws, sleeps):
    target.fake.inject(
        "GET",
        "/api/user/records",
        status=200,
        body="<html><body>Sign in</body></html>",
        content_type="text/html",
    )
    with pytest.raises(DepositError, match="HTML page instead of JSON"):
        run(target, ws / "package" / "bag", sleeps)


@pytest.mark.parametrize("target", ["invenio"], indirect=True)
def test_2xx_with_errors_stops_the_deposit(target, ws, sleeps):
    target.fake.inject(
        "PUT",
        r"/api/records/\d+/draft",
        status=200,
        body={
            "id": "1",
            "errors": [
                {"field": "metadata.creators", "messages": ["Missing data for required field."]}
            ],
        },
    )
    with pytest.raises(DepositError, match="metadata.creators: Missing data"):
        run(target, ws / "package" / "bag", sleeps)


@pytest.mark.parametrize("target", ["invenio", "figshare"], indirect=True)
def test_rate_limit_is_waited_out(target, ws, sleeps):
    path = r"/api/records" if target.to == "invenio" else r"/v2/account/articles"
    target.fake.inject(
        "POST", path, status=429, body={"message": "rate limited"}, headers={"Retry-After": "3"}
    )
    r = run(target, ws / "package" / "bag", sleeps)
    assert r.status == "draft" and 3.0 in sleeps


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_locked_dataset_is_waited_for(target, ws, sleeps):
    target.fake.lock_polls = 3
    target.fake.locked_writes = 1
    r = run(target, ws / "package" / "bag", sleeps, publish=True)
    assert r.status == "published"
    assert target.fake.count("GET", r"/api/datasets/\d+/locks") > 3


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataset_locked_for_too_long(target, ws, sleeps):
    target.fake.lock_polls = 10_000
    target.options = {"lock_wait": 0.01, "lock_poll": 0.005}
    with pytest.raises(DepositError, match=r"locked \(Ingest\).*--resume"):
        run(target, ws / "package" / "bag", sleeps)


@pytest.mark.parametrize("target", ["dspace"], indirect=True)
def test_dspace_relogs_in_when_the_jwt_expires(target, ws, sleeps, monkeypatch):
    bag = ws / "package" / "bag"
    from curated.deposit.dspace import DSpaceRepository

    real = DSpaceRepository.set_metadata

    def expire_then(self, state, md):
        target.fake.expire_jwt()
        return real(self, state, md)

    monkeypatch.setattr(DSpaceRepository, "set_metadata", expire_then)
    r = run(target, bag, sleeps)
    assert r.status == "draft" and target.fake.logins == 2


@pytest.mark.parametrize("target", ["zenodo"], indirect=True)
def test_over_the_file_limit_is_refused_before_any_upload(target, tmp_path, sleeps):
    ws = bags.make_workspace(tmp_path / "many", big=10)
    for i in range(101):
        (ws / "derived" / f"tile-{i:03d}.bin").write_bytes(b"%d" % i)
    bag = bags.bag_workspace(ws)
    with pytest.raises(DepositError) as exc:
        run(target, bag, sleeps)
    msg = str(exc.value)
    assert (
        "takes at most 100 per record" in msg
        and "split the bag" in msg
        and "nothing was uploaded" in msg
    )
    assert target.fake.calls == []


@pytest.mark.parametrize("target", ["dspace"], indirect=True)
def test_invalid_bag_is_refused(target, ws, sleeps):
    bag = ws / "package" / "bag"
    victim = bag / "data" / "derived" / "volume.bin"
    victim.unlink()
    victim.write_bytes(b"tampered")
    with pytest.raises(DepositError, match="refusing to deposit a bag that fails validation"):
        run(target, bag, sleeps)
    assert target.fake.calls == []
    assert not journal_path(bag).exists()


@pytest.mark.parametrize("target", ["figshare", "directory"], indirect=True)
def test_dry_run_sends_and_writes_nothing(target, ws, sleeps, monkeypatch):
    if target.env:
        monkeypatch.delenv(target.env)  # a dry run needs no credential
    bag = ws / "package" / "bag"
    before = sorted(p for p in ws.rglob("*"))
    r = run(target, bag, sleeps, dry_run=True, publish=True)
    assert r.status == "planned" and r.planned
    assert any(c["method"] in ("POST", "COPY") for c in r.planned)
    assert sorted(p for p in ws.rglob("*")) == before
    if target.fake is not None:
        assert target.fake.calls == []
    else:
        assert not (tmp := Path(target.url)).exists(), tmp


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataverse_keeps_a_zipped_bag_whole(target, ws, sleeps):
    """Dataverse unpacks a .zip sent to /add, one level: sent inside a zip of its own, the
    bag is what it keeps, byte for byte."""
    z = bags.bag_workspace(ws, name="zbag", serialize="zip")
    r = run(target, z, sleeps, publish=True)
    assert r.status == "published" and [f["name"] for f in r.files] == ["zbag.zip"]
    ds = next(iter(target.fake.datasets.values()))
    assert list(ds["files"]) == ["zbag.zip"]
    df = ds["files"]["zbag.zip"]["dataFile"]
    assert df["filesize"] == z.stat().st_size
    assert df["checksum"]["value"] == hashlib.md5(z.read_bytes()).hexdigest()


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataverse_sends_a_zip_direct_where_the_store_allows_it(target, ws, sleeps):
    """A direct upload is registered as it is (no unpacking): a zip goes that way, whatever its size."""
    target.fake.direct = True
    z = bags.bag_workspace(ws, name="zbag", serialize="zip")
    assert z.stat().st_size < 64 * 2**20  # below the threshold of other files
    r = run(target, z, sleeps)
    assert r.status == "draft"
    df = next(iter(target.fake.datasets.values()))["files"]["zbag.zip"]["dataFile"]
    assert df["storageIdentifier"].startswith("s3://")
    assert df["stored_md5"] == hashlib.md5(z.read_bytes()).hexdigest() == df["checksum"]["value"]
    assert target.fake.count("POST", r"/api/datasets/:persistentId/add") == 1


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataverse_that_keeps_the_wrapper_is_named_and_cleaned_up(target, ws, sleeps):
    """With unpacking limited (:ZipUploadFilesLimit) Dataverse stores the zip as sent."""
    target.fake.zip_limit = 0
    z = bags.bag_workspace(ws, name="zbag", serialize="zip")
    with pytest.raises(DepositError, match=r"did not unpack .*:ZipUploadFilesLimit") as e:
        run(target, z, sleeps)
    assert "corrupted" not in str(e.value)
    assert next(iter(target.fake.datasets.values()))["files"] == {}


@pytest.mark.parametrize("target", ["invenio"], indirect=True)
def test_serialized_bag_goes_as_one_file(target, ws, sleeps):
    z = bags.bag_workspace(ws, name="zbag", serialize="zip")
    r = run(target, z, sleeps, publish=True)
    assert [f["name"] for f in r.files] == ["zbag.zip"]
    assert r.status == "published"


@pytest.mark.parametrize("target", ["dspace"], indirect=True)
def test_dspace_refreshes_a_stale_csrf_token(target, ws, sleeps, monkeypatch):
    from curated.deposit.dspace import DSpaceRepository

    real = DSpaceRepository.set_metadata

    def stale_then(self, state, md):
        target.fake.csrf = "rotated-behind-our-back"
        return real(self, state, md)

    monkeypatch.setattr(DSpaceRepository, "set_metadata", stale_then)
    r = run(target, ws / "package" / "bag", sleeps)
    assert r.status == "draft"
    assert target.fake.count("PATCH", r"/server/api/submission/workspaceitems/\d+") >= 2


@pytest.mark.parametrize("target", ["directory"], indirect=True)
def test_tar_bag_to_a_folder_repository(target, ws, sleeps):
    tar = bags.bag_workspace(ws, name="tbag", serialize="tar")
    r = run(target, tar, sleeps, publish=True)
    assert r.status == "published" and [f["name"] for f in r.files] == ["tbag.tar"]
    copy = Path(target.url) / r.record_id / "v1" / "tbag.tar"
    assert copy.read_bytes() == tar.read_bytes()


@pytest.mark.parametrize("target", ["figshare"], indirect=True)
def test_unreadable_journal_is_named(target, ws, sleeps):
    bag = ws / "package" / "bag"
    journal_path(bag).write_text("{not json")
    with pytest.raises(DepositError, match="journal cannot be read"):
        run(target, bag, sleeps)
    assert target.fake.calls == []


@pytest.mark.parametrize("target", ["dataverse", "invenio"], indirect=True)
def test_unpublished_draft_is_brought_up_to_date_with_a_changed_bag(
    target, ws, sleeps, monkeypatch
):
    bag = ws / "package" / "bag"
    first = run(target, bag, sleeps)
    (ws / "derived" / "evaluations" / "eval.json").write_text('{"dice": 0.97}\n')
    bags.bag_workspace(ws, overwrite=True)
    with pytest.raises(DepositError, match="--resume to bring that draft up to date"):
        run(target, bag, sleeps)
    names = _spy_uploads(monkeypatch, target)
    second = run(target, bag, sleeps, resume=True, publish=True)
    assert second.record_id == first.record_id and second.status == "published"
    assert "data/derived/volume.bin" not in names
    assert "data/derived/evaluations/eval.json" in names


@pytest.mark.parametrize("target", ["invenio"], indirect=True)
def test_instance_without_multipart_gets_single_puts(target, ws, sleeps):
    target.options = {
        "multipart_threshold": 100_000,
        "part_size": 64 * 1024,
    }  # the fake has no multipart
    r = run(target, ws / "package" / "bag", sleeps, publish=True)
    assert r.status == "published"
    assert target.fake.count("PUT", r"/api/records/\d+/draft/files/.+/content/\d+") == 0
    assert (
        target.fake.count("PUT", r"/api/records/\d+/draft/files/data/derived/volume.bin/content")
        == 1
    )


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataverse_direct_upload_in_parts_resumes(target, ws, sleeps):
    fake = target.fake
    fake.direct, fake.part_size = True, 64 * 1024
    target.options = {"direct_threshold": 100_000}
    fake.inject(
        "PUT", r"/s3/\w+", drop_after=10_000, times=3, skip=2
    )  # the third part never arrives
    bag = ws / "package" / "bag"
    with pytest.raises(DepositError, match="--resume"):
        run(target, bag, sleeps)
    r = run(target, bag, sleeps, resume=True, publish=True)
    assert r.status == "published"
    ds = next(iter(fake.datasets.values()))
    vol = ds["files"]["data/derived/volume.bin"]["dataFile"]
    assert vol["storageIdentifier"].startswith("s3://")
    assert vol["stored_md5"] == vol["checksum"]["value"]  # the bytes in the store are the file's
    # 4 parts: 2 before the drop, 3 dropped tries, 2 after resuming (none sent twice)
    assert fake.count("PUT", r"/s3/\w+") == 2 + 3 + 2
    to_store = [
        h
        for (_, path), h in zip(fake.calls, fake.headers_seen, strict=True)
        if path.startswith("/s3/")
    ]
    assert to_store and all("X-Dataverse-key" not in h for h in to_store)  # the API key stays home


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_dataverse_without_direct_upload_goes_through_the_server(target, ws, sleeps):
    target.options = {"direct_threshold": 100_000}
    r = run(target, ws / "package" / "bag", sleeps)
    assert r.status == "draft"
    assert (
        target.fake.count("GET", r"/api/datasets/:persistentId/uploadurls") == 1
    )  # asked once, then remembered
    assert target.fake.count("PUT", r"/s3/\w+") == 0


@pytest.mark.parametrize("target", ["directory"], indirect=True)
def test_holey_bag_sends_present_files_and_fetch_txt(target, ws, sleeps):
    holey = bags.bag_workspace(
        ws, name="holey", fetch_base="https://storage.example.org/ws", fetch_min_size=100_000
    )
    r = run(target, holey, sleeps, publish=True)
    names = {f["name"] for f in r.files}
    assert "fetch.txt" in names and "data/derived/volume.bin" not in names


def test_dataverse_checksum_types_are_named_like_hashlib() -> None:
    from curated.deposit.dataverse import _remote_file

    df = {"filesize": 3, "id": 7, "checksum": {"type": "SHA-256", "value": "ab" * 32}}
    rf = _remote_file("a/b.txt", df)
    assert (rf.name, rf.size, rf.algorithm, rf.id) == ("a/b.txt", 3, "sha256", "7")
    assert _remote_file("x", {}).algorithm == "md5"


# ------------------------------------------------------------------ lost answers to a create
CREATE = {
    "dataverse": ("POST", r"/api/dataverses/([^/]+)/datasets", "datasets"),
    "dspace": ("POST", r"/server/api/submission/workspaceitems", "wsis"),
    "figshare": ("POST", r"/v2/account/articles", "articles"),
}
"""Per target: the request that makes the draft, and the fake's table of drafts."""


@pytest.mark.parametrize("target", list(CREATE), indirect=True)
def test_lost_answer_to_the_create_is_found_not_duplicated(target, ws, sleeps):
    from curated.deposit.http import LostResponse

    method, pattern, table = CREATE[target.to]
    target.fake.lose_answers(method, pattern)
    bag = ws / "package" / "bag"
    with pytest.raises(LostResponse, match="may have been done"):
        run(target, bag, sleeps)
    drafts = getattr(target.fake, table)
    assert len(drafts) == 1  # made, but its answer never came back
    assert "creating" in json.loads(journal_path(bag).read_text())["deposits"].__repr__()
    receipt = run(target, bag, sleeps, resume=True)
    assert len(drafts) == 1  # the lost draft was adopted, not made twice
    assert target.fake.count(method, pattern + "$") == 1
    assert receipt.status == "draft" and len(receipt.files) >= 1
    key = next(iter(drafts))
    assert str(key) in json.dumps(receipt.to_dict())
    assert "creating" not in journal_path(bag).read_text()


@pytest.mark.parametrize("target", list(CREATE), indirect=True)
def test_lost_create_that_made_nothing_is_made_once_on_resume(target, ws, sleeps):
    from curated.deposit.http import LostResponse

    method, pattern, table = CREATE[target.to]
    target.fake.inject(method, pattern, status=502)  # a gateway error: nothing was made
    bag = ws / "package" / "bag"
    with pytest.raises(LostResponse):
        run(target, bag, sleeps)
    assert len(getattr(target.fake, table)) == 0
    receipt = run(target, bag, sleeps, resume=True)
    assert len(getattr(target.fake, table)) == 1
    assert receipt.status == "draft"


@pytest.mark.parametrize("target", ["figshare"], indirect=True)
def test_two_drafts_matching_a_lost_create_are_left_to_the_curator(target, ws, sleeps):
    from curated.deposit.http import LostResponse

    target.fake.lose_answers("POST", r"/v2/account/articles")
    bag = ws / "package" / "bag"
    with pytest.raises(LostResponse):
        run(target, bag, sleeps)
    ((aid, art),) = target.fake.articles.items()
    target.fake.articles["999"] = {**art, "id": "999", "files": {}}  # a twin, made by hand
    with pytest.raises(
        DepositError, match=r"2 drafts made since then match it .*delete all but one"
    ):
        run(target, bag, sleeps, resume=True)
    assert sorted(target.fake.articles) == sorted([aid, "999"])  # nothing made, nothing adopted
    del target.fake.articles["999"]
    receipt = run(target, bag, sleeps, resume=True)
    assert receipt.record_id == aid and len(target.fake.articles) == 1


@pytest.mark.parametrize("target", ["dataverse"], indirect=True)
def test_an_older_draft_with_the_same_title_is_not_adopted(target, ws, sleeps):
    from curated.deposit.http import LostResponse

    target.fake.inject("POST", r"/api/dataverses/([^/]+)/datasets", status=504)
    bag = ws / "package" / "bag"
    with pytest.raises(LostResponse):
        run(target, bag, sleeps)
    # a draft of the same record from last year, by an earlier deposit the journal forgot
    from curated.deposit import payload
    from curated.metadata.crosswalk.dataverse import to_dataverse

    record = payload.open_bag(bag).record
    version = to_dataverse(record, today="2026-11-23")["datasetVersion"]
    target.fake.datasets[7] = {
        "id": 7,
        "pid": "doi:10.5072/FK2/000007",
        "version": version,
        "files": {},
        "published": 0,
        "draft": True,
        "collection": "lab",
        "created": "2025-01-01T00:00:00Z",
    }
    receipt = run(target, bag, sleeps, resume=True)
    assert receipt.record_id != "doi:10.5072/FK2/000007"
    assert len(target.fake.datasets) == 2


@pytest.mark.parametrize("target", ["dspace"], indirect=True)
def test_lost_workspace_item_is_found_past_the_first_page(target, ws, sleeps):
    from curated.deposit.http import LostResponse

    fake = target.fake
    for i in range(130):  # the account's other submissions, listed before the lost one
        item = f"00000000-0000-0000-0000-{i:012d}"
        fake.items[item] = {
            "uuid": item,
            "handle": None,
            "inArchive": False,
            "collection": COLLECTION,
        }
        w = fake._new_wsi(item)
        w["sections"]["traditionalpageone"] = {"dc.title": [{"value": f"another study {i}"}]}
    fake.lose_answers("POST", r"/server/api/submission/workspaceitems")
    bag = ws / "package" / "bag"
    with pytest.raises(LostResponse):
        run(target, bag, sleeps)
    assert len(fake.wsis) == 131
    receipt = run(target, bag, sleeps, resume=True)
    assert len(fake.wsis) == 131  # found on the second page, not made again
    assert receipt.status == "draft"
