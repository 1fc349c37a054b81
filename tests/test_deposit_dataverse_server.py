"""The Dataverse deposit against a server that behaves as a real Dataverse does where the
fake is kind (background publication, ingest of direct uploads, renamed duplicate names,
locks that never clear), and against one that lies about what it stored.

Each test is the curator's story: the error names what the server did, the journal never
records as confirmed a file that was not verified whole, and a resumed run finishes
without sending a file twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from curated._secrets import forget_secrets
from curated.deposit import RetryPolicy, deposit
from curated.deposit.journal import journal_path
from curated.errors import DepositError
from curated.workspace import Workspace
from tests.fakes import bags
from tests.fakes.base import Request
from tests.fakes.dataverse import LOCKED, TOKEN, FakeDataverse

FAST = RetryPolicy(attempts=3, backoff=0.001, sleep=lambda s: None)
ADD = r"/api/datasets/:persistentId/add"
PUBLISH = r"/api/datasets/:persistentId/actions/:publish"
LOCKS = r"/api/datasets/\d+/locks"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("DATAVERSE_TOKEN", TOKEN)
    yield
    forget_secrets()


def _bag(root: Path, files: dict[str, bytes]) -> Path:
    Workspace.create(root, record=bags.record())
    for rel, content in files.items():
        p = root / "derived" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return bags.bag_workspace(root)


def _run(bag: Path, fake: FakeDataverse, **kw: Any):  # type: ignore[no-untyped-def]
    return deposit(bag, to="dataverse", url=fake.url, target="lab", retry=FAST, **kw)


def _entry(bag: Path) -> dict[str, Any]:
    return next(iter(json.loads(journal_path(bag).read_text())["deposits"].values()))


def _confirmed(bag: Path) -> dict[str, str]:
    """bag path → remote id of every file the journal confirms, each checked to carry the
    bag file's own md5 and an id no other confirmed file has."""
    out = {}
    for name, fe in _entry(bag)["files"].items():
        if fe.get("status") == "confirmed":
            assert fe["md5"] == hashlib.md5((bag / name).read_bytes()).hexdigest(), name
            out[name] = str(fe["remote_id"])
    assert len(set(out.values())) == len(out), out
    return out


def _stored(fake: FakeDataverse) -> dict[str, tuple[int, str]]:
    """path in the dataset → (size, md5 of what the store holds or Dataverse recorded)."""
    (ds,) = fake.datasets.values()
    return {
        name: (f["dataFile"]["filesize"], f["dataFile"]["checksum"]["value"])
        for name, f in ds["files"].items()
    }


def _as_bag(bag: Path) -> dict[str, tuple[int, str]]:
    return {
        p.relative_to(bag).as_posix(): (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
        for p in bag.rglob("*")
        if p.is_file()
    }


# ---------------------------------------------------------------- ingest of direct uploads
def test_dataverse_table_sent_direct_is_stored_as_sent_not_ingested(tmp_path):
    """Dataverse ingests direct uploads too: a CSV registered without ``tabIngest: false``
    would become a .tab of another size, and the deposit of a large table would fail."""
    files = {"tables/counts.csv": b"cell,area\n" + b"1,20\n" * 200}
    bag = _bag(tmp_path / "ws", files)
    with FakeDataverse(direct=True) as fake:
        r = _run(bag, fake, options={"direct_threshold": 1})
        assert r.status == "draft"
        assert fake.count("PUT", r"/s3/[\w-]+") == len(r.files)  # every file went direct
        assert _stored(fake) == _as_bag(bag)
    assert len(_confirmed(bag)) == len(r.files)


# ---------------------------------------------------------------- publication
def test_dataverse_publication_finished_in_the_background_is_waited_for(tmp_path):
    """A large or PID-registering publication answers 200 with the dataset still a draft
    and finishes behind a finalizePublication lock: the deposit waits, then sees it released."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with FakeDataverse(finalize="async", finalize_polls=3) as fake:
        r = _run(bag, fake, publish=True)
        assert r.status == "published"
        (ds,) = fake.datasets.values()
        assert ds["published"] == 1 and not ds["draft"]
        assert fake.count("POST", PUBLISH) == 1


@pytest.mark.parametrize("how", ["pidfail", "workflowfail"])
def test_dataverse_publication_that_fails_in_the_background_keeps_the_draft(how, tmp_path):
    """When finishing the publication fails (a PID it could not register, a prepublication
    workflow answered 202 that fails), Dataverse unlocks the dataset and leaves it
    unpublished: that is not a publication."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with FakeDataverse(finalize=how) as fake:
        with pytest.raises(DepositError, match="not released") as err:
            _run(bag, fake, publish=True)
        assert "draft and its files are kept" in str(err.value)
        (ds,) = fake.datasets.values()
        assert ds["draft"] and not ds["published"]
        assert _entry(bag)["stage"] != "published"
        fake.finalize = "sync"  # the installation's PID provider is back
        adds = fake.count("POST", ADD)
        r = _run(bag, fake, publish=True, resume=True)
        assert r.status == "published" and ds["published"] == 1
        assert fake.count("POST", ADD) == adds  # no file sent twice
        assert len(_confirmed(bag)) == len(r.files)


def test_dataverse_lock_that_never_clears_stops_the_deposit_at_once(tmp_path):
    """A FileValidationFailed lock stays until an administrator acts: waiting the whole
    lock timeout for it only delays the message."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with FakeDataverse(finalize="invalid") as fake:
        with pytest.raises(DepositError, match="FileValidationFailed.*missing or corrupted"):
            _run(bag, fake, publish=True)
        # one poll before each write, then the lock is named: not 300 more over the timeout
        assert fake.count("GET", LOCKS) < 40


def test_dataverse_lost_publish_answer_is_looked_up_not_sent_again(tmp_path):
    """A publish whose answer was lost may have gone through: the re-run asks the dataset
    before publishing again, which Dataverse would refuse for a dataset without a draft."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with FakeDataverse() as fake:
        fake.lose_answers("POST", PUBLISH)
        with pytest.raises(DepositError):
            _run(bag, fake, publish=True)
        (ds,) = fake.datasets.values()
        assert ds["published"] == 1  # it went through
        r = _run(bag, fake, publish=True, resume=True)
        assert r.status == "published" and r.record_id == ds["pid"]
        assert fake.count("POST", PUBLISH) == 1 and ds["published"] == 1


# ---------------------------------------------------------------- /add answers
class RacingDataverse(FakeDataverse):
    """Another client adds a file under the name of the first one curated sends, so
    Dataverse stores curated's as ``name-1`` (IngestUtil.checkForDuplicateFileNamesFinal)."""

    victim: str | None = None

    def _race(self, d: dict[str, Any], folder: str | None, label: str) -> None:
        if self.victim is None:
            self.victim = f"{folder}/{label}" if folder else label
            super()._store(d, folder, label, {}, b"another client's file")

    def _store(self, d, folder, label, meta, data):  # type: ignore[no-untyped-def]
        self._race(d, folder, label)
        return super()._store(d, folder, label, meta, data)

    def _register(self, d: dict[str, Any], meta: dict[str, Any]):
        self._race(d, meta.get("directoryLabel") or None, str(meta.get("fileName")))
        return super()._register(d, meta)


@pytest.mark.parametrize("direct", [False, True])
def test_dataverse_file_stored_under_another_name_is_not_confirmed(direct, tmp_path):
    """The /add answer names the file Dataverse stored: one renamed because the name was
    taken meanwhile is not the bag file stored, and the re-run leaves the dataset as the bag."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(3000)})
    opts = {"direct_threshold": 1} if direct else {}
    with RacingDataverse(direct=direct) as fake:
        with pytest.raises(DepositError, match=r"added '.*-1.*', not '.*' as sent"):
            _run(bag, fake, options=opts)
        assert fake.victim is not None and fake.victim not in _confirmed(bag)
        r = _run(bag, fake, resume=True, options=opts)
        assert r.status == "draft"
        assert _stored(fake) == _as_bag(bag)  # the other client's file and the -1 are gone
        assert len(_confirmed(bag)) == len(r.files)


class EchoingDataverse(FakeDataverse):
    """Stores every file, but answers the /add of a file whose content the dataset already
    has with that other file's entry (the checksum matches what was sent)."""

    def add(self, req: Request):
        status, body = super().add(req)
        (ds,) = self.datasets.values()
        if status == 200:
            new = body["data"]["files"][0]
            md5 = new["dataFile"]["checksum"]["value"]
            twin = next(
                (
                    f
                    for f in ds["files"].values()
                    if f is not new and f["dataFile"]["checksum"]["value"] == md5
                ),
                None,
            )
            if twin is not None:
                body["data"]["files"] = [twin]
        return status, body


def test_dataverse_answer_about_another_file_is_not_confirmed(tmp_path):
    same = os.urandom(2000)
    bag = _bag(tmp_path / "ws", {"a/one.bin": same, "b/two.bin": same})
    with EchoingDataverse() as fake:
        with pytest.raises(DepositError, match="not 'data/derived/b/two.bin' as sent"):
            _run(bag, fake)
        confirmed = _confirmed(bag)
        assert "data/derived/a/one.bin" in confirmed and "data/derived/b/two.bin" not in confirmed
        adds = fake.count("POST", ADD)
        r = _run(bag, fake, resume=True)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert fake.count("POST", ADD) == adds + len(r.files) - len(confirmed) - 1  # two.bin kept
        assert len(_confirmed(bag)) == len(r.files)


# ---------------------------------------------------------------- multipart direct upload
BIG = {"volume.bin": os.urandom(200_000)}
PARTS = {"direct_threshold": 100_000}  # only volume.bin goes direct, in 64 KiB parts
S3_PUT = r"/s3/[\w-]+"


class CompleteFailsOnce(FakeDataverse):
    """S3 refuses the first completion (Dataverse answers 500 and aborts the upload)."""

    failed = False

    def mp_complete(self, req: Request):
        if not self.failed:
            self.failed = True
            req.drain()
            self.objects[req.query["storageidentifier"]]["aborted"] = True
            return 500, {"status": "ERROR", "message": "Could not complete multipart upload"}
        return super().mp_complete(req)


def test_dataverse_multipart_upload_it_could_not_complete_is_sent_afresh(tmp_path):
    bag = _bag(tmp_path / "ws", BIG)
    with CompleteFailsOnce(direct=True) as fake:
        with pytest.raises(DepositError, match="could not complete the multipart upload"):
            _run(bag, fake, options=PARTS)
        assert "data/derived/volume.bin" not in _confirmed(bag)
        r = _run(bag, fake, options=PARTS, resume=True)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert len(_confirmed(bag)) == len(r.files)


class RegisterFailsOnce(FakeDataverse):
    """The first registration of a direct upload fails (a server error after the store has
    the whole object)."""

    failed = False

    def _register(self, d: dict[str, Any], meta: dict[str, Any]):
        if not self.failed:
            self.failed = True
            return 500, {"status": "ERROR", "message": "Internal server error"}
        return super()._register(d, meta)


def test_dataverse_completed_upload_is_registered_on_resume_not_completed_again(tmp_path):
    """S3 knows a completed upload no more: completing it again fails, and the whole file
    would be sent again; the journal says it was completed and the re-run registers it."""
    bag = _bag(tmp_path / "ws", BIG)
    with RegisterFailsOnce(direct=True) as fake:
        with pytest.raises(DepositError, match="HTTP 500"):
            _run(bag, fake, options=PARTS)
        puts = fake.count("PUT", S3_PUT)
        assert puts == 4  # 200 000 bytes in 64 KiB parts
        r = _run(bag, fake, options=PARTS, resume=True)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert fake.count("PUT", S3_PUT) == puts  # no part sent twice
        assert fake.count("PUT", r"/api/datasets/mpupload") == 1
        assert len(_confirmed(bag)) == len(r.files)


# ---------------------------------------------------------------- answers of another shape
FILES = r"/api/datasets/:persistentId/versions/:latest/files"


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("GET", LOCKS, ["Ingest"]),
        ("POST", ADD, {"status": "OK", "data": {"files": {"label": "volume.bin"}}}),
        ("GET", FILES, {"status": "OK", "data": ["volume.bin"]}),
    ],
    ids=["locks", "add", "files"],
)
def test_dataverse_answer_of_another_shape_is_a_clear_error(method, route, body, tmp_path):
    """A proxy or another service answering 200 with JSON of another shape: a DepositError
    naming the step, never a crash, never a file confirmed; the re-run finishes."""
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with FakeDataverse() as fake:
        if route == FILES:  # the listing is read when a run resumes
            fake.inject("POST", ADD, status=503, times=3)  # every attempt
            with pytest.raises(DepositError):
                _run(bag, fake)
        fake.inject(method, route, status=200, body=body)
        with pytest.raises(DepositError, match=r"(checking locks|uploading|listing).*answer"):
            _run(bag, fake, resume=journal_path(bag).exists())
        done = _confirmed(bag) if journal_path(bag).exists() else {}
        assert "data/derived/volume.bin" not in done
        r = _run(bag, fake, resume=True)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert len(_confirmed(bag)) == len(r.files)


# ---------------------------------------------------------------- another dataset's id
class MixedUpDataverse(FakeDataverse):
    """Creates the dataset, but answers with the id of the collection's first dataset
    beside the new one's persistent identifier (files would go to one, locks be read and
    publication checked in the other)."""

    def create(self, req: Request, alias: str):
        status, body = super().create(req, alias)
        if status == 201 and len(self.datasets) > 1:
            body["data"]["id"] = min(self.datasets)
        return status, body


def test_dataverse_creation_answered_with_another_dataset_s_id_is_not_used(tmp_path):
    first = _bag(tmp_path / "first", {"volume.bin": os.urandom(500)})
    bag = _bag(tmp_path / "ws", {"volume.bin": os.urandom(1000)})
    with MixedUpDataverse() as fake:
        _run(first, fake, publish=True)  # the collection's first dataset, published
        with pytest.raises(DepositError, match="which name another dataset"):
            _run(bag, fake, publish=True)
        assert fake.count("POST", ADD) == len(_as_bag(first))  # nothing sent to either
        r = _run(bag, fake, publish=True, resume=True)  # finds the dataset it made
        new = fake.datasets[max(fake.datasets)]
        assert r.status == "published" and r.record_id == new["pid"] and new["published"] == 1
        assert {
            n: (f["dataFile"]["filesize"], f["dataFile"]["checksum"]["value"])
            for n, f in new["files"].items()
        } == _as_bag(bag)
        assert len(fake.datasets) == 2 and fake.datasets[min(fake.datasets)]["published"] == 1


# ---------------------------------------------------------------- limits of the store
TOO_LARGE = (
    "The file you are trying to upload is too large to be uploaded to this dataset. "
    "The maximum allowed file size is 150000 bytes."
)


class LimitedDataverse(FakeDataverse):
    """A store whose largest file is 150 000 bytes (``:MaxFileUploadSizeInBytes``): the
    direct upload is refused with a 400 (Datasets.getMPUploadUrls), and so is the file
    sent through the server."""

    limit = 150_000
    big_adds = 0

    def upload_urls(self, req: Request):
        if int(req.query["size"]) > self.limit:
            return 400, {"status": "ERROR", "message": TOO_LARGE}
        return super().upload_urls(req)

    def add(self, req: Request):
        if req.length > self.limit:
            self.big_adds += 1
            req.drain()
            return 400, {"status": "ERROR", "message": "the file exceeds the size limit"}
        return super().add(req)


def test_dataverse_direct_upload_refused_for_the_file_s_size_is_named_not_sent_another_way(
    tmp_path,
):
    """A 400 from uploadurls is this file refused, not a store without direct upload:
    streaming it through the server instead only fails later, on the same limit."""
    bag = _bag(tmp_path / "ws", BIG)
    with LimitedDataverse(direct=True) as fake:
        with pytest.raises(DepositError, match="maximum allowed file size is 150000 bytes"):
            _run(bag, fake, options=PARTS)
        assert fake.big_adds == 0
        assert "data/derived/volume.bin" not in _confirmed(bag)


def test_dataverse_landing_url_keeps_an_awkward_persistent_identifier_whole():
    """A PID is a query value of the landing URL: ``&``, ``#``, ``+`` and ``;`` in it
    must not end it or read as another parameter."""
    from urllib.parse import parse_qs, urlsplit

    from curated.deposit.dataverse import DataverseRepository

    repo = DataverseRepository("https://dv.example.org", token="k", collection="lab")
    pid = "doi:10.5072/FK2/A&B#1+c;d"
    for landing, version in (
        (repo.landing({"id": 7, "pid": pid}), ["DRAFT"]),
        (repo._landing({"id": 7, "pid": pid}, "published"), None),
    ):
        query = parse_qs(urlsplit(str(landing.url)).query)
        assert query["persistentId"] == [pid] and query.get("version") == version
        assert landing.doi == "10.5072/FK2/A&B#1+c;d"


def test_dataverse_completion_whose_answer_was_lost_is_registered_not_sent_again(tmp_path):
    """Completing a large upload may outlast a proxy; the repeated completion finds the
    upload gone (S3 completed it: 500), yet the object is whole: it is registered, not
    aborted and sent again."""
    bag = _bag(tmp_path / "ws", BIG)
    with FakeDataverse(direct=True) as fake:
        fake.lose_answers("PUT", r"/api/datasets/mpupload")
        r = _run(bag, fake, options=PARTS)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert fake.count("PUT", S3_PUT) == 4 and fake.count("PUT", r"/api/datasets/mpupload") == 2
        assert not fake.aborted
        assert len(_confirmed(bag)) == len(r.files)


# ---------------------------------------------------------------- locks and rate limits
GENERIC = "Failed to add file to dataset."


def test_dataverse_add_failing_generically_under_an_ingest_lock_is_waited_out(tmp_path):
    """An ingest takes its lock in the background after ``/add`` answered, so the lock
    check before the next file can miss it; that file's ``/add`` then fails with only
    ``Failed to add file to dataset.`` (IQSS/dataverse#8700). The deposit finds the lock,
    waits for it and sends the file again: once, and every file stored once."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500), "b.bin": os.urandom(700)})
    with FakeDataverse() as fake:
        fake.late_ingests = 1
        r = _run(bag, fake)
        assert r.status == "draft"
        assert _stored(fake) == _as_bag(bag)  # no file twice (a second copy is "name-1")
        assert fake.count("POST", ADD) == len(r.files) + 1  # the refused one, sent again
    assert len(_confirmed(bag)) == len(r.files)


def test_dataverse_add_refused_under_a_lock_but_stored_is_not_sent_again(tmp_path):
    """A refused ``/add`` may have stored the file all the same: before sending it again the
    deposit reads what the dataset holds, and takes the file it finds whole."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500), "b.bin": os.urandom(700)})
    with FakeDataverse() as fake:
        fake.late_ingests, fake.store_refused = 1, True
        r = _run(bag, fake)
        assert r.status == "draft"
        assert _stored(fake) == _as_bag(bag)
        assert fake.count("POST", ADD) == len(r.files)  # each file sent once
    assert len(_confirmed(bag)) == len(r.files)


def test_dataverse_add_failing_generically_without_a_lock_names_the_answer(tmp_path):
    """The same generic failure while the dataset is not locked is no lock to wait out: the
    deposit stops at once, quoting Dataverse, and the resumed run sends the file once."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    with FakeDataverse() as fake:
        fake.inject("POST", ADD, status=400, body={"status": "ERROR", "message": GENERIC})
        with pytest.raises(DepositError, match=r"Failed to add file to dataset\..*not locked"):
            _run(bag, fake)
        assert fake.count("POST", ADD) == 1
        r = _run(bag, fake, resume=True)
        assert _stored(fake) == _as_bag(bag)
    assert len(_confirmed(bag)) == len(r.files)


def test_dataverse_add_refused_for_a_lock_is_waited_out_not_taken_for_a_lost_answer(tmp_path):
    """``Dataset cannot be edited due to dataset lock.`` says the file was not added: it is
    sent again once the lock clears, not reported as an answer lost on the way."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    with FakeDataverse() as fake:
        fake.inject("POST", ADD, status=403, body={"status": "ERROR", "message": LOCKED})
        r = _run(bag, fake)
        assert r.status == "draft"
        assert _stored(fake) == _as_bag(bag)
        assert fake.count("POST", ADD) == len(r.files) + 1
    assert len(_confirmed(bag)) == len(r.files)


def test_dataverse_refusal_naming_a_metadata_block_is_not_a_lock(tmp_path):
    """``metadata blocks not found`` holds the letters ``lock``: that refusal is reported at
    once, not retried as a lock and then blamed on the repository's load."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    said = "Error parsing dataset version: Invalid JSON object: metadata blocks not found."
    with FakeDataverse() as fake:
        draft = r"/api/datasets/:persistentId/versions/:draft"
        fake.inject("PUT", draft, status=400, body={"status": "ERROR", "message": said}, times=5)
        with pytest.raises(DepositError, match="answered HTTP 400: Error parsing") as err:
            _run(bag, fake)
        assert "still answers" not in str(err.value)
        assert fake.count("PUT", draft) == 1


def test_dataverse_rate_limit_without_retry_after_is_backed_off(tmp_path):
    """Dataverse's rate limit answers 429 with no ``Retry-After``: the file is sent again
    after growing pauses, and stored once."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    sleeps: list[float] = []
    retry = RetryPolicy(attempts=3, backoff=0.5, sleep=sleeps.append)
    limited = {"status": "ERROR", "message": "User @curator is rate limited: UpdateDatasetVersion"}
    with FakeDataverse() as fake:
        fake.inject("POST", ADD, status=429, body=limited, times=2)
        r = deposit(bag, to="dataverse", url=fake.url, target="lab", retry=retry)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
    assert sleeps == [0.5, 1.0]


def test_the_journal_keeping_presigned_urls_is_readable_by_its_owner_only(tmp_path):
    """The journal keeps a direct upload's presigned URLs (write access to the store, to
    resume the upload): it was written with the umask's mode (0644: any user of a shared
    lab server could read them), and kept an older journal's mode."""
    import os
    import stat

    files = {"images/a.bin": os.urandom(3000)}
    bag = _bag(tmp_path / "ws", files)
    journal = journal_path(bag)
    journal.write_text(
        json.dumps({"format": "curated-deposit-journal/1", "bag": bag.name, "deposits": {}})
    )
    journal.chmod(0o644)  # as an earlier release left it
    old = os.umask(0o022)
    try:
        with FakeDataverse(direct=True) as fake:
            r = _run(bag, fake, options={"direct_threshold": 1})
    finally:
        os.umask(old)
    assert r.status == "draft"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


# ---------------------------------------------------------------- refusals that never pass
@pytest.mark.parametrize(
    ("direct", "threshold"),
    [(False, 100_000), (True, 100_000), (True, 0)],
    ids=["through-the-server", "direct-offered", "direct-registration"],
)
def test_dataverse_without_http_upload_is_named_at_once_not_retried(direct, threshold, tmp_path):
    """An installation whose ``:UploadMethods`` lacks ``native/http`` answers every ``/add``
    (a direct upload's registration too) with 503 ``File upload via HTTP is not available``:
    a setting, not an outage. The deposit stops at the first ``/add``, names the setting and
    what to do, and never calls it temporary."""
    bag = _bag(tmp_path / "ws", BIG)
    slept: list[float] = []
    retry = RetryPolicy(attempts=6, backoff=1.0, sleep=slept.append)
    options = {"direct_threshold": threshold}
    with FakeDataverse(direct=direct, http_upload=False) as fake:
        with pytest.raises(DepositError, match=r"lacks native/http") as err:
            deposit(bag, to="dataverse", url=fake.url, target="lab", retry=retry, options=options)
        assert fake.count("POST", ADD) == 1
        assert (fake.count("PUT", r"/s3/[\w-]+") > 0) == (threshold == 0)  # a registration
    said = str(err.value)
    assert "File upload via HTTP is not available" in said and ":UploadMethods" in said
    assert "try again later" not in said and "still answers" not in said
    assert ("offers direct upload" in said) == direct
    assert sum(slept) < 1.0  # no backoff spent on it


def test_dataverse_add_answered_503_for_maintenance_is_still_waited_out(tmp_path):
    """A 503 that is not the switched-off upload (a proxy's maintenance page) stays transient."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    with FakeDataverse() as fake:
        fake.inject(
            "POST",
            ADD,
            status=503,
            body="<html>Down for maintenance</html>",
            content_type="text/html",
        )
        r = _run(bag, fake)
        assert r.status == "draft" and _stored(fake) == _as_bag(bag)
        assert fake.count("POST", ADD) == len(r.files) + 1


def test_dataverse_refusing_files_for_a_package_file_is_not_called_a_credential_problem(tmp_path):
    """``file.api.alreadyHasPackageFile`` (403) is about the dataset, not the token: the
    deposit says so and what to do, once, instead of asking to check $DATAVERSE_TOKEN."""
    bag = _bag(tmp_path / "ws", {"a.bin": os.urandom(500)})
    with FakeDataverse() as fake:
        fake.package_file = True
        with pytest.raises(DepositError) as err:
            _run(bag, fake)
        assert fake.count("POST", ADD) == 1
    msg = str(err.value)
    assert "refused it (HTTP 403: This dataset already has a package file" in msg
    assert "make a new deposit into another dataset" in msg
    assert "refused the credential" not in msg and "DATAVERSE_TOKEN" not in msg
