"""InvenioRDM multipart uploads: single PUTs only where the instance says it has no
multipart transfer; any other refusal of a multipart upload is reported, not worked around."""

from __future__ import annotations

from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.errors import DepositError
from tests.fakes import bags
from tests.fakes.base import Request
from tests.fakes.invenio import TOKEN, FakeInvenio

FAST = RetryPolicy(attempts=2, backoff=0.0, sleep=lambda s: None)
OPTIONS = {"multipart_threshold": 100_000, "part_size": 64 * 1024, "checksum_wait": 0.2}
BIG = r"/api/records/\d+/draft/files/data/derived/volume.bin/content"


pytestmark = pytest.mark.usefixtures("forgotten_secrets")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return bags.bagged_template(tmp_path_factory, big=150_000)


@pytest.fixture
def bag(template, tmp_path, monkeypatch):
    monkeypatch.setenv("INVENIO_TOKEN", TOKEN)
    return bags.copy_workspace(template, tmp_path / "ws") / "package" / "bag"


class RefusingInvenio(FakeInvenio):
    """An instance with multipart transfer that refuses this one upload (``answer``)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(multipart=True, checksum_delay=0)
        self.answer = answer
        self.multipart_asked = 0

    def init_files(self, req: Request, rid: str):
        specs = req.json() or []
        if any((s.get("transfer") or {}).get("type") == "M" for s in specs):
            self.multipart_asked += 1
            return 400, self.answer
        req.json = lambda: specs  # type: ignore[method-assign]  # the body is read already
        return super().init_files(req, rid)


def test_an_instance_without_multipart_transfer_gets_single_puts(bag):
    with FakeInvenio(multipart=False, checksum_delay=0) as fake:
        r = deposit(bag, to="invenio", url=fake.url, retry=FAST, options=OPTIONS)
    assert r.status == "draft"
    assert fake.count("PUT", BIG) == 1
    assert fake.count("PUT", BIG + r"/\d+") == 0


@pytest.mark.parametrize(
    "answer",
    [
        # TransferException (resources/files/config.py: HTTP 400 with its description)
        {"status": 400, "message": "Multipart file transfer requires file size."},
        # a validation error on another field of the file
        {
            "status": 400,
            "message": "A validation error occurred.",
            "errors": [{"field": "0.transfer.parts", "messages": ["Not a valid integer."]}],
        },
    ],
    ids=["transfer-exception", "parts-invalid"],
)
def test_another_refusal_of_a_multipart_upload_is_reported(bag, answer):
    with RefusingInvenio(answer) as fake, pytest.raises(DepositError, match="HTTP 400") as err:
        deposit(bag, to="invenio", url=fake.url, retry=FAST, options=OPTIONS)
    said = answer.get("errors", [{}])[0].get("messages", [answer["message"]])[0]
    assert said in str(err.value)
    assert "volume.bin" in str(err.value)
    assert fake.multipart_asked == 2  # asked again once its pending entry was removed
    assert fake.count("PUT", BIG) == 0  # never sent another way


def test_the_answer_of_an_instance_without_multipart_is_what_turns_it_off(bag):
    answer = {
        "status": 400,
        "message": "A validation error occurred.",
        "errors": [{"field": "0.transfer.type", "messages": ["Unsupported value: M"]}],
    }
    with RefusingInvenio(answer) as fake:
        r = deposit(bag, to="invenio", url=fake.url, retry=FAST, options=OPTIONS)
    assert r.status == "draft"
    assert fake.multipart_asked == 1 and fake.count("PUT", BIG) == 1


def test_an_instance_before_multipart_transfers_gets_a_plain_upload_of_a_clean_entry(bag):
    """invenio-records-resources before 8.0 (InvenioRDM 12 and older) knows no transfer
    types: its ``InitFileSchema`` INCLUDEs the unknown ``transfer`` and makes a plain
    pending file, answered without ``links.parts``. The deposit goes on with one PUT of
    the whole file, on an entry started afresh without the multipart fields, once."""
    with FakeInvenio(legacy=True, checksum_delay=0) as fake:
        r = deposit(bag, to="invenio", url=fake.url, retry=FAST, options=OPTIONS)
        assert r.status == "draft"
        assert fake.count("PUT", BIG) == 1
        assert fake.count("PUT", BIG + r"/\d+") == 0
        files = next(iter(fake.drafts.values()))["files"]
        big = files["data/derived/volume.bin"]
        assert big["status"] == "completed" and "transfer" not in big["data"]
        assert len(files) == len(r.files)


class PartlessInvenio(FakeInvenio):
    """An instance with multipart transfer whose answer names ``M`` but links no parts."""

    def _file_json(self, rid: str, key: str, f: dict[str, Any]) -> dict[str, Any]:
        out = super()._file_json(rid, key, f)
        out.pop("links", None)
        return out


def test_a_multipart_answer_without_part_links_is_not_taken_for_a_plain_upload(bag):
    with PartlessInvenio(multipart=True, checksum_delay=0) as fake:
        with pytest.raises(DepositError, match="gave no part URLs"):
            deposit(bag, to="invenio", url=fake.url, retry=FAST, options=OPTIONS)
        assert fake.count("PUT", BIG) == 0
