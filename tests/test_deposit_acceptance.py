"""Would the real servers accept what ``curated deposit`` sends? Realistic records and bags.

Each test pairs a rule of the real server (the fake in ``tests/fakes`` enforces it and
cites the source) with a record or bag a curator would plausibly make: no publisher,
non-ASCII and markup in descriptions, folder and file names with spaces, accents and
punctuation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from curated.deposit import RetryPolicy, deposit
from curated.errors import DepositError
from curated.workspace import Workspace
from tests.fakes import bags
from tests.fakes.dataverse import TOKEN as DV_TOKEN
from tests.fakes.dataverse import FakeDataverse
from tests.fakes.dspace import COLLECTION, DEFAULT_FORM, PASSWORD, USER, FakeDSpace, Field, Form
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
    monkeypatch.setenv("DATAVERSE_TOKEN", DV_TOKEN)
    monkeypatch.setenv("DSPACE_USER", USER)
    monkeypatch.setenv("DSPACE_PASSWORD", PASSWORD)


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


# ---------------------------------------------------------------- InvenioRDM: description
def test_invenio_keeps_a_plain_text_description_with_angle_brackets_and_paragraphs(creds, tmp_path):
    """InvenioRDM reads the description as HTML and strips tags it does not allow: a
    plain-text description is sent as HTML so that its text and paragraphs survive."""
    import html
    import re

    text = (
        "Classes <mito> and <er> (p<0.05 & n>3), Ramón y Cajal's stain.\n\n"
        "Second paragraph:\nline two."
    )
    bag = _bag(tmp_path / "ws", lambda r: r["study"].update(description=text))
    with FakeInvenio() as fake:
        r = _run(bag, "zenodo", fake.url, publish=True)
        stored = fake.records[r.record_id]["metadata"]["description"]
    shown = html.unescape(re.sub(r"<[^>]+>", " ", stored))
    assert "Classes <mito> and <er> (p<0.05 & n>3), Ramón y Cajal's stain." in shown
    assert stored.count("<p>") == 2 and "line two" in shown


def test_zenodo_refuses_empty_files_so_the_deposit_stops_before_sending_any(creds, tmp_path):
    bag = _bag(tmp_path / "ws", files={"volume.bin": b"x" * 100, "notes/empty.txt": b""})
    with FakeInvenio(empty_files=False) as fake:  # Zenodo's configuration
        with pytest.raises(DepositError, match=r"refuses empty files.*notes/empty\.txt"):
            _run(bag, "zenodo", fake.url)
        assert not fake.drafts
    with FakeInvenio() as fake:  # InvenioRDM's default takes them
        assert _run(bag, "invenio", fake.url).status == "draft"


def test_invenio_leaves_out_a_related_url_without_its_scheme_instead_of_failing_to_publish(
    creds, tmp_path
):
    def edit(rec: dict) -> None:
        rec["study"]["related_identifiers"] = [
            {
                "identifier": "github.com/example/fibsem-unet",
                "identifier_type": "URL",
                "relation_type": "IsSupplementedBy",
            },
            {
                "identifier": "https://github.com/example/fibsem-data",
                "identifier_type": "URL",
                "relation_type": "IsSupplementedBy",
            },
        ]

    bag = _bag(tmp_path / "ws", edit)
    with FakeInvenio() as fake:
        r = _run(bag, "zenodo", fake.url, publish=True)
        assert r.status == "published"
        related = fake.records[r.record_id]["metadata"]["related_identifiers"]
    assert [x["identifier"] for x in related if x["scheme"] == "url"] == [
        "https://github.com/example/fibsem-data"
    ]
    assert "github.com/example/fibsem-unet (URL)" in "\n".join(p["what"] for p in r.problems)


# ---------------------------------------------------------------- Dataverse: file names
AWKWARD = {
    # folders with brackets and accents, names with a colon, a hash and accents
    "images (raw)/Zelle ä 1.tif": b"tif" * 100,
    "Übersicht/overview.png": b"png" * 100,
    "runs/2024-03-14T10:00.json": b"{}",
    "mitochondria #3.csv": b"id,volume\n1,2\n",
    "volume.bin": os.urandom(5000),
}


def _payload(bag: Path) -> list[str]:
    """Every file of the bag (tag files too), bag-relative."""
    return sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file())


def _dataset_files(fake: FakeDataverse) -> dict[str, dict]:
    (ds,) = fake.datasets.values()
    return ds["files"]


@pytest.mark.parametrize("direct", [False, True])
def test_dataverse_takes_every_file_of_a_bag_with_awkward_names(direct, creds, tmp_path):
    """Dataverse refuses folders outside [A-Za-z0-9_ ./-] and names with :;#?*|<>"\\ and
    garbles UTF-8 multipart names: each file still arrives, under a name it keeps, with
    its bag path in its description when the name had to change."""
    bag = _bag(tmp_path / "ws", files=AWKWARD)
    opts = {"direct_threshold": 1} if direct else {}
    with FakeDataverse(direct=direct) as fake:
        r = _run(bag, "dataverse", fake.url, target="lab", publish=True, options=opts)
        assert r.status == "published"
        stored = _dataset_files(fake)
    assert len(stored) == len(_payload(bag))
    by_path = {
        f["description"].removeprefix("Path in the bag: "): name
        for name, f in stored.items()
        if f["description"]
    }
    assert by_path["data/derived/images (raw)/Zelle ä 1.tif"] == (
        "data/derived/images _raw_/Zelle ä 1.tif"
    )
    assert by_path["data/derived/Übersicht/overview.png"] == "data/derived/Ubersicht/overview.png"
    assert by_path["data/derived/runs/2024-03-14T10:00.json"] == (
        "data/derived/runs/2024-03-14T10_00.json"
    )
    assert by_path["data/derived/mitochondria #3.csv"] == "data/derived/mitochondria _3.csv"
    assert stored["data/derived/volume.bin"]["description"] == ""
    assert {f["name"] for f in r.files} == set(_payload(bag))


def test_dataverse_file_names_with_control_characters_arrive_renamed(creds, tmp_path):
    """A tab, line break or \\x01 in a name (Linux allows them) is sent as "_", never raw in
    the label or the multipart header; the description keeps the bag path."""
    odd = "runs/two\nlines\tand\x01.json"
    bag = _bag(tmp_path / "ws", files={odd: b"1", "volume.bin": b"2"})
    with FakeDataverse() as fake:
        r = _run(bag, "dataverse", fake.url, target="lab", publish=True)
        assert r.status == "published"
        stored = _dataset_files(fake)
    kept = stored["data/derived/runs/two_lines_and_.json"]
    assert kept["description"] == f"Path in the bag: data/derived/{odd}"
    assert {f["name"] for f in r.files} == set(_payload(bag))


def test_dataverse_resume_keeps_the_files_whose_names_it_changed(creds, tmp_path):
    """A re-run compares the bag with the dataset under Dataverse's names: nothing it
    already holds is deleted (or the published dataset would lack it)."""
    bag = _bag(tmp_path / "ws", files=AWKWARD)
    count = len(_payload(bag))
    with FakeDataverse() as fake:
        fake.inject(
            "POST",
            r"/api/datasets/:persistentId/add",
            status=400,
            body={"status": "ERROR", "message": "Failed to add file to dataset"},
            skip=count - 1,
        )
        with pytest.raises(DepositError):
            _run(bag, "dataverse", fake.url, target="lab")
        r = _run(bag, "dataverse", fake.url, target="lab", resume=True, publish=True)
        assert r.status == "published"
        assert len(_dataset_files(fake)) == count
        assert fake.count("DELETE", r"/api/files/\d+") == 0
        assert fake.count("POST", r"/api/datasets/:persistentId/add") == count + 1


def test_dataverse_fake_refuses_what_dataverse_refuses():
    from tests.fakes.dataverse import file_metadata

    assert file_metadata("a.tif", {"directoryLabel": "data/images (raw)"})[2]
    assert file_metadata("a:b.tif", {"directoryLabel": "data"})[2]
    assert file_metadata("a.tif", {"directoryLabel": "data/Übersicht"})[2]
    assert file_metadata("Zelle ä.tif", {})[1] == "Zelle Ã¤.tif"  # IQSS/dataverse#12470
    assert file_metadata("Zelle ä.tif", {"label": "Zelle ä.tif"})[1] == "Zelle ä.tif"
    assert file_metadata("a.tif", {"directoryLabel": "/data/x. "})[:2] == ("data/x", "a.tif")


def test_dataverse_names_that_would_clash_stop_the_deposit_before_anything_is_sent(creds, tmp_path):
    bag = _bag(tmp_path / "ws", files={"runs/a:b.json": b"1", "runs/a_b.json": b"2"})
    with FakeDataverse() as fake:
        with pytest.raises(DepositError, match=r"a:b\.json and .*a_b\.json"):
            _run(bag, "dataverse", fake.url, target="lab")
        assert not fake.datasets


# ---------------------------------------------------------------- Dataverse: collection
def test_dataverse_publish_into_an_unpublished_collection_stops_before_anything_is_sent(
    creds, tmp_path
):
    """Dataverse publishes no dataset whose collection is unpublished (PublishDatasetCommand)."""
    bag = _bag(tmp_path / "ws")
    with FakeDataverse(unreleased=("lab",)) as fake:
        with pytest.raises(DepositError, match="collection 'lab' is not published"):
            _run(bag, "dataverse", fake.url, target="lab", publish=True)
        assert not fake.datasets
        r = _run(bag, "dataverse", fake.url, target="lab")  # a draft can wait for it
        assert r.status == "draft"


def test_dataverse_collection_requiring_more_fields_is_named_before_anything_is_created(
    creds, tmp_path
):
    """A collection may require fields beyond the citation block's (its input levels)."""
    bag = _bag(tmp_path / "ws")
    with FakeDataverse(required=("productionDate", "keywordValue")) as fake:
        with pytest.raises(DepositError, match="requires productionDate"):
            _run(bag, "dataverse", fake.url, target="lab")
        assert not fake.datasets


def test_dataverse_sub_collection_inherits_the_fields_its_parent_requires(creds, tmp_path):
    """A collection that uses its parent's metadata fields (isMetadataBlockRoot false) shows
    no input levels of its own, yet Dataverse requires what the parent's require
    (DatasetField.isRequired walks up to the metadata block root)."""
    bag = _bag(tmp_path / "ws")
    with FakeDataverse(levels={"root": ("productionDate",)}) as fake:
        with pytest.raises(
            DepositError,
            match=r"'lab' requires productionDate \(it uses the metadata fields of its parent collection 'root'\)",
        ):
            _run(bag, "dataverse", fake.url, target="lab")
        assert fake.count("POST", r"/api/dataverses/([^/]+)/datasets") == 0
        assert fake.count("POST", r"/api/datasets/:persistentId/add") == 0


def test_dataverse_inheritance_stops_at_the_first_collection_with_fields_of_its_own(
    creds, tmp_path
):
    """lab → mid (its own fields, requiring productionDate) → root (requiring more): mid's count."""
    bag = _bag(tmp_path / "ws")
    tree = {"collections": ("root", "mid", "lab"), "parents": {"lab": "mid", "mid": "root"}}
    levels = {"root": ("kindOfData",), "mid": ("productionDate",)}
    with FakeDataverse(**tree, levels=levels) as fake:
        with pytest.raises(DepositError, match=r"requires productionDate \(.*'mid'\)") as e:
            _run(bag, "dataverse", fake.url, target="lab")
        assert "kindOfData" not in str(e.value)
        assert not fake.datasets
    with FakeDataverse(**tree, levels={"root": ("productionDate",), "mid": ()}) as fake:
        r = _run(bag, "dataverse", fake.url, target="lab")  # mid requires nothing more
        assert r.status == "draft"


def test_dataverse_parent_the_token_may_not_read_is_said(creds, tmp_path):
    bag = _bag(tmp_path / "ws")
    tree = {"collections": ("root", "mid", "lab"), "parents": {"lab": "mid", "mid": "root"}}
    with FakeDataverse(**tree, hidden=("mid",)) as fake:
        r = _run(bag, "dataverse", fake.url, target="lab", dry_run=True)
    said = [p for p in r.problems if "may not read" in p["what"]]
    assert said and not said[0]["blocking"]


def test_dataverse_zips_in_a_folder_bag_are_stored_whole(creds, tmp_path):
    """Dataverse unpacks an uploaded file named *.zip or *.ZIP (jakarta.mime.types), not
    *.Zip: each is stored as the bag has it."""
    import io
    import zipfile

    def a_zip() -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("scan/a.txt", "a")
            zf.writestr("b.txt", "b")
        return buf.getvalue()

    files = {"store.ome.zarr.zip": a_zip(), "old/LEGACY.ZIP": a_zip(), "other.Zip": a_zip()}
    bag = _bag(tmp_path / "ws", files=files)
    with FakeDataverse() as fake:
        r = _run(bag, "dataverse", fake.url, target="lab", publish=True)
        stored = next(iter(fake.datasets.values()))["files"]
    assert r.status == "published"
    for rel, content in files.items():
        df = stored[f"data/derived/{rel}"]["dataFile"]
        assert df["filesize"] == len(content)
        assert df["checksum"]["value"] == hashlib.md5(content).hexdigest()
    assert len(stored) == len(r.files)  # one file each: none unpacked into its members
    assert not any(name.endswith(("a.txt", "b.txt")) for name in stored)


def test_dataverse_tables_are_stored_as_sent_not_ingested(creds, tmp_path):
    """Dataverse replaces a CSV/TSV/XLSX it ingests by a .tab file unless told tabIngest false."""
    files = {"tables/counts.csv": b"cell,area\n1,20\n", "tables/runs.tsv": b"a\tb\n1\t2\n"}
    bag = _bag(tmp_path / "ws", files=files)
    with FakeDataverse() as fake:
        r = _run(bag, "dataverse", fake.url, target="lab")
        stored = next(iter(fake.datasets.values()))["files"]
    assert r.status == "draft"
    for rel, content in files.items():
        df = stored[f"data/derived/{rel}"]["dataFile"]
        assert (df["filesize"], df["checksum"]["value"]) == (
            len(content),
            hashlib.md5(content).hexdigest(),
        )


# ---------------------------------------------------------------- DSpace: type-bind
def test_dspace_fields_bound_to_other_item_types_are_named_not_lost_silently(creds, tmp_path):
    """A form field with <type-bind> is for items of those dc.type values only: DSpace
    removes its values from a Dataset without a word, and does not require it."""
    one = dict(DEFAULT_FORM.sections["traditionalpageone"])
    one["dc.publisher"] = Field("dc.publisher", False, False, "Publisher", ("Dataset", "Book"))
    two = dict(DEFAULT_FORM.sections["traditionalpagetwo"])
    two["dc.description.sponsorship"] = Field(
        "dc.description.sponsorship", False, False, "Sponsors", ("Article",)
    )
    two["dc.description"] = Field("dc.description", True, False, "Thesis note", ("Thesis",))
    form = Form("typed", {"traditionalpageone": one, "traditionalpagetwo": two})
    bag = _bag(tmp_path / "ws")
    with FakeDSpace(form=form) as fake:
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        assert r.status == "published"
        sections = fake.items[r.record_id]["sections"]
    assert sections["traditionalpageone"]["dc.publisher"][0]["value"] == (
        "Example University Library"
    )
    text = "\n".join(p["what"] for p in r.problems)
    assert "dc.description.sponsorship (only for Article items)" in text
    assert "dc.description (" not in text  # not required of a Dataset


@pytest.mark.parametrize(
    ("scheme", "value", "ok"),
    [
        ("url", "https://github.com/example/x", True),
        ("url", "github.com/example/x", False),
        ("doi", "10.1234/abc", True),
        ("doi", "https://doi.org/10.1234/abc", True),
        ("doi", "1234/abc", False),
        ("handle", "20.500.12345/678", True),
        ("pmid", "12345678", True),
        ("pmid", "PMC123", False),
        ("urn", "urn:nbn:de:1234-5678", True),
        ("urn", "nbn:de:1234", False),
        ("ark", "ark:/13030/tf5p30086k", True),
        ("ark", "13030/tf5p30086k", False),
        ("arxiv", "2101.00001", True),
    ],
)
def test_related_identifier_rules_follow_idutils(scheme, value, ok):
    from curated.metadata.crosswalk.invenio import identifier_ok

    assert identifier_ok(scheme, value) is ok


def test_advice_for_zip_files_inside_a_folder_bag_fits_the_case():
    """A profile whose server unpacks zips the adapter cannot keep whole (none built in:
    the Dataverse adapter keeps them, so its profile does not stop them)."""
    import dataclasses

    from curated.deposit import preflight
    from curated.deposit.protocol import UploadItem

    zips = [UploadItem("data/derived/img.ome.zarr.zip", Path("x"), 10)]
    dataverse = preflight.LIMITS["dataverse"]
    assert not [p for p in preflight.check(zips, dataverse, single_request=True) if p.blocking]
    lim = dataclasses.replace(dataverse, unpacks_zip=True)
    inside = [UploadItem("data/derived/img.ome.zarr.zip", Path("x"), 10)]
    (p,) = [p for p in preflight.check(inside, lim, single_request=True) if ".zip" in p.what]
    assert "--zarr directory" in p.advice and "not a zipped bag" not in p.advice
    whole = [UploadItem("bag.zip", Path("x"), 10)]
    (p,) = [p for p in preflight.check(whole, lim, single_request=True) if ".zip" in p.what]
    assert "not a zipped bag" in p.advice
