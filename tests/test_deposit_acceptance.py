"""Would the real servers accept what ``curated deposit`` sends? Realistic records and bags.

Each test pairs a rule of the real server (the fake in ``tests/fakes`` enforces it and
cites the source) with a record or bag a curator would plausibly make: no publisher,
non-ASCII and markup in descriptions, folder and file names with spaces, accents and
punctuation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.errors import DepositError
from curated.workspace import Workspace
from tests.fakes import bags
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio

TODAY = "2026-11-23"


def _bag(root: Path, edit=None, files: dict[str, bytes] | None = None) -> Path:  # type: ignore[no-untyped-def]
    """A bagged workspace whose record was changed by ``edit(record)``, with ``files``
    (workspace-relative path → bytes) added under ``derived/``."""
    rec = bags.record()
    if edit is not None:
        edit(rec)
    Workspace.create(root, record=rec)
    for rel, content in (files or {"volume.bin": os.urandom(1000)}).items():
        p = root / "derived" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return bags.bag_workspace(root)


def _run(bag: Path, to: str, url: str, **kw: Any):  # type: ignore[no-untyped-def]
    retry = RetryPolicy(attempts=3, backoff=0.001, sleep=lambda s: None)
    return deposit(bag, to=to, url=url, retry=retry, today=TODAY, **kw)


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("INVENIO_TOKEN", INV_TOKEN)
    monkeypatch.setenv("ZENODO_TOKEN", INV_TOKEN)


def _no_publisher(rec: dict) -> None:
    rec["study"].pop("publisher")


# ---------------------------------------------------------------- InvenioRDM: publisher
def test_zenodo_publishes_a_record_without_a_publisher_as_zenodo(creds, tmp_path):
    """DataCite needs a publisher to register the DOI; Zenodo's form says "Zenodo"."""
    bag = _bag(tmp_path / "ws", _no_publisher)
    with FakeInvenio() as fake:
        r = _run(bag, "zenodo", fake.url, publish=True)
        assert r.status == "published"
        assert fake.records[r.record_id]["metadata"]["publisher"] == "Zenodo"
    assert "publisher" in "\n".join(p["what"] for p in r.problems)


def test_invenio_refuses_to_publish_without_a_publisher_before_creating_anything(creds, tmp_path):
    bag = _bag(tmp_path / "ws", _no_publisher)
    with FakeInvenio() as fake:
        with pytest.raises(DepositError, match=r"study\.publisher"):
            _run(bag, "invenio", fake.url, publish=True)
        assert not fake.drafts and not fake.records
        # a draft is fine: the curator can fill it in before publishing
        r = _run(bag, "invenio", fake.url)
        assert r.status == "draft"
        assert any("publisher" in p["what"] and not p["blocking"] for p in r.problems)


def test_invenio_fake_refuses_to_publish_without_a_publisher(creds):
    import requests

    with FakeInvenio() as fake:
        h = {"Authorization": f"Bearer {INV_TOKEN}"}
        md = {
            "title": "abcd",
            "resource_type": {"id": "dataset"},
            "publication_date": "2026",
            "creators": [{"person_or_org": {"type": "personal", "family_name": "Curie"}}],
        }
        rid = requests.post(fake.url + "/api/records", json={"metadata": md}, headers=h).json()[
            "id"
        ]
        fake.drafts[rid]["files"]["a"] = {"status": "completed"}
        r = requests.post(f"{fake.url}/api/records/{rid}/draft/actions/publish", headers=h)
        assert r.status_code == 400
        assert [e["field"] for e in r.json()["errors"]] == ["metadata.publisher"]
