"""What the real DSpace, Figshare, InvenioRDM and Dataverse servers refuse, and how curated copes.

Each test names the issue-15 item it covers. The fakes in ``tests/fakes`` are as strict as
the servers (each route cites the document or source it follows), so every test here
fails against adapters that send what the servers refuse.
"""

from __future__ import annotations

import copy
import json
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
from tests.fakes.dspace import COLLECTION, DEFAULT_FORM, PASSWORD, USER, FakeDSpace
from tests.fakes.dspace import Field as FormField
from tests.fakes.dspace import Form as SubmissionForm
from tests.fakes.figshare import TOKEN as FS_TOKEN
from tests.fakes.figshare import FakeFigshare
from tests.fakes.invenio import TOKEN as INV_TOKEN
from tests.fakes.invenio import FakeInvenio

TODAY = "2026-11-23"


def _bag(root: Path, edit=None, *, big: int = 200_000) -> Path:  # type: ignore[no-untyped-def]
    """A bagged workspace whose record was changed by ``edit(record)``."""
    rec = bags.record()
    if edit is not None:
        edit(rec)
    Workspace.create(root, record=rec)
    (root / "derived" / "volume.bin").write_bytes(os.urandom(big))
    return bags.bag_workspace(root)


def _run(bag: Path, to: str, url: str, sleeps: list[float] | None = None, **kw: Any):
    retry = RetryPolicy(
        attempts=3, backoff=0.001, sleep=(sleeps if sleeps is not None else []).append
    )
    return deposit(bag, to=to, url=url, retry=retry, today=TODAY, **kw)


@pytest.fixture
def creds(monkeypatch):
    for var, value in (
        ("DSPACE_USER", USER),
        ("DSPACE_PASSWORD", PASSWORD),
        ("FIGSHARE_TOKEN", FS_TOKEN),
        ("INVENIO_TOKEN", INV_TOKEN),
        ("ZENODO_TOKEN", INV_TOKEN),
        ("DATAVERSE_TOKEN", DV_TOKEN),
    ):
        monkeypatch.setenv(var, value)


@pytest.fixture(scope="module")
def plain_bag(tmp_path_factory):
    return _bag(tmp_path_factory.mktemp("plain") / "ws")


def _problems(receipt) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(p["what"] for p in receipt.problems)


# ---------------------------------------------------------------- 1. DSpace: no embeds
@pytest.mark.parametrize("version", ["7.6", "8.0", "8.3"])
def test_dspace_deposit_publishes_on_each_release(version, plain_bag, creds, tmp_path):
    """Items 1 and 3: no ``_embedded`` since 7.6.2, no CSRF token on GETs in 8.0-8.2."""
    bag = tmp_path / "bag"
    import shutil

    shutil.copytree(plain_bag, bag)
    with FakeDSpace(version=version) as fake:
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        assert r.status == "published" and r.handle
        item = fake.items[r.record_id]
        assert item["inArchive"] and item["sections"]["traditionalpageone"]["dc.title"]
        # the item was read through its link: the create answer embedded nothing
        assert fake.count("GET", r"/server/api/submission/workspaceitems/\d+/item") == 1
        assert fake.count("GET", r"/server/api/security/csrf") >= 1


def test_dspace_80_refuses_a_login_without_a_token_from_security_csrf(creds):
    """The fake is honest: on 8.0 a client that only reads /authn/status cannot log in."""
    import requests

    with FakeDSpace(version="8.0") as fake:
        s = requests.Session()
        r = s.get(fake.url + "/server/api/authn/status")
        assert "DSPACE-XSRF-TOKEN" not in r.headers
        r = s.post(fake.url + "/server/api/authn/login", data={"user": USER, "password": PASSWORD})
        assert r.status_code == 403


def test_dspace_without_security_csrf_falls_back_to_authn_status(plain_bag, creds, tmp_path):
    """A DSpace 7 release without /security/csrf still hands the token out on /authn/status."""
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDSpace(version="7.6") as fake:
        fake.inject("GET", r"/server/api/security/csrf", status=404, body={"status": 404}, times=10)
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION)
        assert r.status == "draft"
        assert fake.count("GET", r"/server/api/authn/status") >= 1


def test_dspace_without_config_endpoints_or_item_link_still_deposits(plain_bag, creds, tmp_path):
    """A DSpace that hides its submission configuration gets the default form's fields."""
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDSpace() as fake:
        fake.inject(
            "GET", r"/server/api/config/submissiondefinitions/.*", status=404, body={}, times=9
        )
        fake.inject("GET", r"/server/api/submission/workspaceitems/\d+/item", status=404, body={})
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        assert r.status == "published"
    assert "default submission-forms.xml" in _problems(r)


def test_dspace_item_embedded_by_an_older_server_is_used_as_is():
    from curated.deposit.dspace import DSpaceRepository

    repo = DSpaceRepository("http://127.0.0.1:9/server", token=None, collection=COLLECTION)
    data = {"id": 7, "_embedded": {"item": {"uuid": "abc-123"}}}
    assert repo._item_of(data, 7, "creating") == "abc-123"  # no request made (port 9 is closed)


# ---------------------------------------------------------------- 2. DSpace: the form
def test_dspace_sends_only_the_forms_fields_and_names_the_rest(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDSpace() as fake:
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        sections = fake.items[r.record_id]["sections"]
        sent = {k for sid in ("traditionalpageone", "traditionalpagetwo") for k in sections[sid]}
        assert {"dc.title", "dc.contributor.author", "dc.subject"} <= sent
        assert not sent & {"dc.rights", "dc.identifier.orcid", "dc.relation.isreferencedby"}
    text = _problems(r)
    for key in ("dc.rights", "dc.rights.uri", "dc.identifier.orcid", "dc.relation.isreferencedby"):
        assert key in text
    assert "not carried over" in text


def test_dspace_custom_form_gets_each_field_in_its_own_section(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    form = copy.deepcopy(DEFAULT_FORM)
    form.name = "datasets"
    form.sections = {
        "datasetdescribe": dict(form.sections["traditionalpageone"]),
        "datasetrights": {
            "dc.rights": FormField("dc.rights", True, False, "Licence"),
            "dc.rights.uri": FormField("dc.rights.uri", False, False, "Licence URL"),
            **form.sections["traditionalpagetwo"],
        },
    }
    form.license_section = "depositlicence"
    with FakeDSpace(form=form) as fake:
        r = _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        sections = fake.items[r.record_id]["sections"]
    assert sections["datasetrights"]["dc.rights"][0]["value"].startswith("Creative Commons")
    assert sections["depositlicence"]["granted"] is True
    assert "dc.rights," not in _problems(r) and "dc.identifier.orcid" in _problems(r)


def test_dspace_fake_refuses_a_patch_with_one_unknown_field_and_applies_none(creds):
    """The fake is honest: one field outside the form fails the whole PATCH (422)."""
    import requests

    with FakeDSpace() as fake:
        s = requests.Session()
        tok = s.get(fake.url + "/server/api/security/csrf").headers["DSPACE-XSRF-TOKEN"]
        r = s.post(
            fake.url + "/server/api/authn/login",
            data={"user": USER, "password": PASSWORD},
            headers={"X-XSRF-TOKEN": tok},
        )
        hdr = {
            "Authorization": r.headers["Authorization"],
            "X-XSRF-TOKEN": r.headers["DSPACE-XSRF-TOKEN"],
        }
        w = s.post(
            fake.url + "/server/api/submission/workspaceitems",
            params={"owningCollection": COLLECTION},
            json={},
            headers=hdr,
        ).json()
        assert "_embedded" not in w and w["_links"]["item"]["href"].endswith("/item")
        ops = [
            {
                "op": "add",
                "path": "/sections/traditionalpageone/dc.title",
                "value": [{"value": "T"}],
            },
            {
                "op": "add",
                "path": "/sections/traditionalpageone/dc.rights",
                "value": [{"value": "x"}],
            },
        ]
        r = s.patch(
            f"{fake.url}/server/api/submission/workspaceitems/{w['id']}",
            data=json.dumps(ops),
            headers={**hdr, "Content-Type": "application/json-patch+json"},
        )
        assert r.status_code == 422 and "dc.rights is not present in section" in r.text
        assert not fake.wsis[w["id"]]["sections"]["traditionalpageone"]


def test_dspace_mandatory_field_missing_from_the_record_blocks_publishing(creds, tmp_path):
    form = SubmissionForm(
        "strict",
        {
            "page": {
                **DEFAULT_FORM.sections["traditionalpageone"],
                "dc.description.abstract": FormField(
                    "dc.description.abstract", True, False, "Abstract"
                ),
            }
        },
    )
    bag = _bag(tmp_path / "ws", lambda r: r["study"].pop("description"))
    with FakeDSpace(form=form) as fake:
        with pytest.raises(DepositError, match=r"requires dc.description.abstract") as exc:
            _run(bag, "dspace", fake.url + "/server", target=COLLECTION, publish=True)
        assert "nothing was created or uploaded" in str(exc.value)
        assert not (bag.parent / "bag.deposit-journal.json").exists()
        assert fake.count("POST", r"/server/api/submission/workspaceitems") == 0


# ---------------------------------------------------------------- 4. Figshare
def _many_authors(rec: dict) -> None:
    rec["study"]["authors"] += [
        {"family_name": f"Author{i}", "given_name": "A."} for i in range(11)
    ]


def test_figshare_publishes_with_categories_and_more_than_ten_authors(creds, tmp_path):
    bag = _bag(tmp_path / "ws", _many_authors)
    with FakeFigshare(upload_url_style="root") as fake:
        r = _run(bag, "figshare", fake.url + "/v2", publish=True)
        assert r.status == "published" and r.doi
        art = fake.articles[r.record_id]["meta"]
        assert len(art["authors"]) == 13
        assert art["categories"] == [241]  # "Connectomics", one of the record's keywords
        assert art["license"] == 1 and art["keywords"]
        assert "timeline" not in art
        assert fake.count("POST", r"/v2/account/articles/\d+/authors") == 1
        assert fake.count("PUT", r"/upload/\w+/\d+") >= 1  # joined <service>/upload/<token>
    assert "13 authors" in _problems(r)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["study"].update(description="abc"), "a description of 4-10,000 characters"),
        (lambda r: r["study"].update(description="x" * 10_001), "it has 10,001"),
        (
            lambda r: r.update(biosamples=[]) or r["study"].update(keywords=[]),
            "at least one keyword",
        ),
        (lambda r: r["study"].update(license="CC-BY-NC-4.0"), "a licence the account offers"),
    ],
)
def test_figshare_refuses_to_publish_without_mandatory_fields_before_sending(
    edit, expected, creds, tmp_path
):
    bag = _bag(tmp_path / "ws", edit, big=10)
    with FakeFigshare() as fake:
        with pytest.raises(DepositError, match="Figshare publishes only with") as exc:
            _run(bag, "figshare", fake.url + "/v2", publish=True)
        assert expected in str(exc.value)
        assert fake.count("POST", r"/v2/account/articles") == 0
        # a draft is still possible: the same problems are warnings then
        r = _run(bag, "figshare", fake.url + "/v2")
        assert r.status == "draft" and expected in _problems(r)


def test_figshare_files_under_the_public_list_when_no_keyword_matches(creds, tmp_path):
    bag = _bag(tmp_path / "ws", big=10)
    cats = [
        {
            "id": 11,
            "parent_id": 0,
            "title": "Anatomy",
            "path": "/11",
            "source_id": "1",
            "taxonomy_id": 4,
        },
        {
            "id": 12,
            "parent_id": 11,
            "title": "Histology",
            "path": "/11/12",
            "source_id": "2",
            "taxonomy_id": 4,
        },
    ]
    with FakeFigshare(categories=cats, account_categories=False) as fake:
        r = _run(bag, "figshare", fake.url + "/v2", publish=True)
        assert r.status == "published"
        assert fake.articles[r.record_id]["meta"]["categories"] == [11]
        assert fake.count("GET", r"/v2/categories") == 1
    assert "filed under 'Anatomy'" in _problems(r)


def test_figshare_fake_refuses_what_figshare_refuses(creds):
    import requests

    with FakeFigshare() as fake:
        h = {"Authorization": f"token {FS_TOKEN}"}
        many = [{"name": f"A {i}"} for i in range(11)]
        r = requests.post(
            fake.url + "/v2/account/articles", json={"title": "abcd", "authors": many}, headers=h
        )
        assert r.status_code == 400 and "authors" in r.text
        r = requests.post(
            fake.url + "/v2/account/articles", json={"title": "abcd", "timeline_x": 1}, headers=h
        )
        assert r.status_code == 400 and "timeline_x" in r.text  # not an article field
        aid = requests.post(
            fake.url + "/v2/account/articles", json={"title": "abcd"}, headers=h
        ).json()["entity_id"]
        r = requests.post(f"{fake.url}/v2/account/articles/{aid}/publish", headers=h)
        assert r.status_code == 400 and "Missing mandatory field for publication" in r.text


def test_figshare_upload_location_joins_service_and_token():
    from curated.deposit.figshare import upload_location

    tok = "9dfc5fe3-d617-4d93-ac11-8afe7e984a4b"
    assert (
        upload_location("https://uploads.figshare.com", tok)
        == f"https://uploads.figshare.com/upload/{tok}"
    )
    assert (
        upload_location(f"https://fup.example/upload/{tok}", tok)
        == f"https://fup.example/upload/{tok}"
    )
    assert upload_location("https://fup.example/upload", tok) == f"https://fup.example/upload/{tok}"
    # a token that merely ends the last segment is not the token segment
    assert upload_location(f"https://fup.example/x{tok}", tok).endswith(f"/x{tok}/upload/{tok}")


# ---------------------------------------------------------------- 5. InvenioRDM metadata
def _award_number_only(rec: dict) -> None:
    rec["study"]["funding"][0].pop("award_title")
    rec["study"]["authors"].append({"given_name": "Plato"})


def test_invenio_small_instance_gets_names_and_no_half_award(creds, tmp_path):
    bag = _bag(tmp_path / "ws", _award_number_only, big=10)
    with FakeInvenio() as fake:  # a small instance: empty vocabularies
        r = _run(bag, "invenio", fake.url, publish=True)
        assert r.status == "published"
        md = fake.records[r.record_id]["metadata"]
    assert md["funding"] == [{"funder": {"name": "National Science Foundation"}}]
    aff = md["creators"][0]["affiliations"][0]
    assert aff == {"name": "Example University"}
    assert md["creators"][-1]["person_or_org"] == {"type": "personal", "family_name": "Plato"}
    text = _problems(r)
    assert (
        "award DBI-1234567" in text
        and "affiliation 05a28rw58" in text
        and "funder 021nxhr62" in text
    )


def test_zenodo_like_instance_gets_vocabulary_ids_and_the_award_id(creds, tmp_path):
    bag = _bag(tmp_path / "ws", _award_number_only, big=10)
    vocab = {
        "affiliations": {"05a28rw58"},
        "funders": {"021nxhr62"},
        "awards": {"021nxhr62::DBI-1234567"},
    }
    with FakeInvenio(vocabularies=vocab) as fake:
        r = _run(bag, "invenio", fake.url, publish=True)
        md = fake.records[r.record_id]["metadata"]
    assert md["funding"] == [
        {
            "funder": {"name": "National Science Foundation", "id": "021nxhr62"},
            "award": {"id": "021nxhr62::DBI-1234567"},
        }
    ]
    assert md["creators"][0]["affiliations"][0]["id"] == "05a28rw58"


def test_invenio_fake_refuses_half_awards_unknown_ids_and_empty_family_names(creds):
    import requests

    with FakeInvenio() as fake:
        h = {"Authorization": f"Bearer {INV_TOKEN}"}
        md = {
            "title": "abcd",
            "resource_type": {"id": "dataset"},
            "publication_date": "2026",
            "creators": [
                {
                    "person_or_org": {"type": "personal", "family_name": ""},
                    "affiliations": [{"id": "nope"}],
                }
            ],
            "funding": [{"funder": {"name": "F"}, "award": {"number": "1"}}],
        }
        r = requests.post(fake.url + "/api/records", json={"metadata": md}, headers=h).json()
        fields = {e["field"] for e in r["errors"]}
        assert {
            "metadata.creators.0.person_or_org.family_name",
            "metadata.creators.0.affiliations.0.id",
            "metadata.funding.0.award",
        } <= fields


# ---------------------------------------------------------------- 6. InvenioRDM multipart md5
def test_multipart_md5_that_arrives_late_is_waited_for_then_resumed(creds, tmp_path):
    bag = _bag(tmp_path / "ws", big=300_000)
    opts = {"multipart_threshold": 100_000, "part_size": 64 * 1024, "checksum_wait": 0.2}
    with FakeInvenio(multipart=True, checksum_delay=10**9) as fake:  # the task has not run yet
        with pytest.raises(DepositError, match="has not computed the file's md5 yet.*--resume"):
            _run(bag, "zenodo", fake.url, options=opts)
        parts_sent = fake.count("PUT", r"/api/records/\d+/draft/files/.+/content/\d+")
        assert parts_sent == 5
        for d in fake.drafts.values():  # the background task finishes
            for f in d["files"].values():
                f["pending_reads"] = 3
        r = _run(bag, "zenodo", fake.url, options={**opts, "checksum_wait": 30}, resume=True)
        assert r.status == "draft"
        # nothing sent twice: the committed bytes were verified once the md5 arrived
        assert fake.count("PUT", r"/api/records/\d+/draft/files/.+/content/\d+") == parts_sent
        vol = next(f for f in r.files if f["name"] == "data/derived/volume.bin")
        assert vol["server_checksum"] == f"md5:{vol['md5']}"


# ---------------------------------------------------------------- 7. Dataverse licences
LICENCES = [
    {
        "id": 1,
        "name": "CC0 1.0",
        "uri": "http://creativecommons.org/publicdomain/zero/1.0",
        "active": True,
        "isDefault": True,
    },
    {
        "id": 3,
        "name": "CC BY-SA 4.0",
        "uri": "http://creativecommons.org/licenses/by-sa/4.0",
        "active": True,
    },
    {
        "id": 4,
        "name": "Apache-2.0",
        "uri": "https://www.apache.org/licenses/LICENSE-2.0.html",
        "active": True,
    },
    {"id": 5, "name": "MIT License", "uri": "http://opensource.org/licenses/MIT", "active": True},
    {
        "id": 6,
        "name": "CC BY-NC 4.0",
        "uri": "http://creativecommons.org/licenses/by-nc/4.0",
        "active": False,
    },
]


@pytest.mark.parametrize(
    ("spdx", "name"),
    [
        ("CC-BY-SA-4.0", "CC BY-SA 4.0"),
        ("Apache-2.0", "Apache-2.0"),
        ("MIT", "MIT License"),
        ("CC0-1.0", "CC0 1.0"),
    ],
)
def test_dataverse_licence_is_sent_as_the_installation_names_it(spdx, name, creds, tmp_path):
    bag = _bag(tmp_path / "ws", lambda r: r["study"].update(license=spdx), big=10)
    with FakeDataverse(licences=LICENCES) as fake:
        r = _run(bag, "dataverse", fake.url, target="lab", publish=True)
        ds = next(iter(fake.datasets.values()))
    assert r.status == "published" and ds["version"]["license"]["name"] == name


def test_dataverse_without_a_licence_list_assumes_the_default_licences(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDataverse() as fake:
        fake.inject("GET", r"/api/licenses", status=404, body={"status": "ERROR", "message": "no"})
        r = _run(bag, "dataverse", fake.url, target="lab", publish=True)
        ds = next(iter(fake.datasets.values()))
    assert r.status == "published" and ds["version"]["license"]["name"] == "CC BY 4.0"


def test_dataverse_without_the_licence_stops_before_creating_anything(creds, tmp_path):
    bag = _bag(tmp_path / "ws", lambda r: r["study"].update(license="CC-BY-NC-4.0"), big=10)
    with FakeDataverse(licences=LICENCES) as fake:
        with pytest.raises(DepositError, match="offers no licence matching CC-BY-NC-4.0") as exc:
            _run(bag, "dataverse", fake.url, target="lab")
        assert "CC BY-SA 4.0" in str(exc.value) and "CC BY-NC 4.0" not in str(exc.value)  # inactive
        assert fake.datasets == {}


# ---------------------------------------------------------------- 8. Dataverse direct upload
def _direct_target(fake: FakeDataverse, **kw: Any) -> dict[str, Any]:
    fake.direct = True
    return {"direct_threshold": 100, **kw}


@pytest.mark.parametrize("tagging", [True, False])
def test_dataverse_sends_tagging_only_when_the_url_signs_it(tagging, plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDataverse(tagging=tagging, part_size=10**7) as fake:  # one PUT per file
        r = _run(
            bag, "dataverse", fake.url, target="lab", options=_direct_target(fake), publish=True
        )
        assert r.status == "published"
        puts = [
            h
            for (m, p), h in zip(fake.calls, fake.headers_seen, strict=True)
            if p.startswith("/s3/")
        ]
        assert puts and all(("x-amz-tagging" in {k.lower() for k in h}) is tagging for h in puts)


def test_dataverse_sse_kms_etags_are_not_md5s(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDataverse(sse="aws:kms") as fake:
        r = _run(
            bag, "dataverse", fake.url, target="lab", options=_direct_target(fake), publish=True
        )
        assert r.status == "published"
        ds = next(iter(fake.datasets.values()))
        vol = ds["files"]["data/derived/volume.bin"]["dataFile"]
        assert vol["stored_md5"] == vol["checksum"]["value"]  # fixity at publication agreed


def test_dataverse_failed_multipart_upload_is_aborted_and_resent(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    with FakeDataverse() as fake:
        opts = _direct_target(fake)
        fake.inject(
            "PUT",
            r"/api/datasets/mpupload",
            status=400,
            body={"status": "ERROR", "message": "boom"},
        )
        with pytest.raises(DepositError, match="aborted: re-run with --resume"):
            _run(bag, "dataverse", fake.url, target="lab", options=opts)
        assert len(fake.aborted) == 1
        r = _run(bag, "dataverse", fake.url, target="lab", options=opts, resume=True, publish=True)
        assert r.status == "published"


def test_dataverse_expired_url_is_named_and_the_upload_aborted(plain_bag, creds, tmp_path):
    import shutil

    bag = tmp_path / "bag"
    shutil.copytree(plain_bag, bag)
    expired = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    with FakeDataverse() as fake:
        opts = _direct_target(fake, direct_threshold=100_000)  # only volume.bin, in parts
        fake.inject(
            "PUT", r"/s3/\w+", status=403, body=expired.encode(), content_type="application/xml"
        )
        with pytest.raises(DepositError, match="presigned upload URL has expired"):
            _run(bag, "dataverse", fake.url, target="lab", options=opts)
        assert len(fake.aborted) == 1
        r = _run(bag, "dataverse", fake.url, target="lab", options=opts, resume=True)
        assert r.status == "draft"


def test_dataverse_store_refuses_unsigned_tagging(creds):
    """The fake is honest: a header the URL did not sign is refused, as S3 does."""
    import requests

    with FakeDataverse(tagging=False, direct=True) as fake:
        fake.datasets[1] = {
            "id": 1,
            "pid": "doi:x",
            "version": {},
            "files": {},
            "published": 0,
            "draft": True,
        }
        u = requests.get(
            fake.url + "/api/datasets/:persistentId/uploadurls",
            params={"persistentId": "doi:x", "size": 5},
            headers={"X-Dataverse-key": DV_TOKEN},
        ).json()["data"]["url"]
        r = requests.put(u, data=b"12345", headers={"x-amz-tagging": "dv-state=temp"})
        assert r.status_code == 403 and "HeadersNotSigned" in r.text
        assert requests.put(u, data=b"12345").status_code == 200


# ---------------------------------------------------------------- dry run
def test_dry_run_without_credentials_names_what_each_target_would_refuse(plain_bag, monkeypatch):
    for var in (
        "DSPACE_USER",
        "DSPACE_PASSWORD",
        "FIGSHARE_TOKEN",
        "DATAVERSE_TOKEN",
        "INVENIO_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    with FakeDSpace() as ds, FakeFigshare() as fs, FakeDataverse() as dv, FakeInvenio() as inv:
        got = {
            "dspace": _run(
                plain_bag,
                "dspace",
                ds.url + "/server",
                target=COLLECTION,
                dry_run=True,
                publish=True,
            ),
            "figshare": _run(plain_bag, "figshare", fs.url + "/v2", dry_run=True, publish=True),
            "dataverse": _run(
                plain_bag, "dataverse", dv.url, target="lab", dry_run=True, publish=True
            ),
            "invenio": _run(plain_bag, "invenio", inv.url, dry_run=True, publish=True),
        }
        assert ds.calls == fs.calls == dv.calls == inv.calls == []
    assert "dc.rights" in _problems(got["dspace"]) and "not carried over" in _problems(
        got["dspace"]
    )
    assert "licence id and categories" in _problems(got["figshare"])
    assert "vocabularies" in _problems(got["invenio"])
    assert all(r.status == "planned" for r in got.values())
    # the payload shown is the one that will be sent: DSpace's without the refused fields
    patch = next(c for c in got["dspace"].planned if c["method"] == "PATCH")
    assert all("dc.rights" not in op["path"] for op in patch["body"])


def test_dry_run_with_credentials_reads_the_target_and_sends_nothing(creds, tmp_path):
    bag = _bag(tmp_path / "ws", lambda r: r["study"].update(license="CC-BY-NC-4.0"), big=10)
    with FakeDataverse(licences=LICENCES) as dv, FakeFigshare() as fs:
        r = _run(bag, "dataverse", dv.url, target="lab", dry_run=True, publish=True)
        assert {m for m, _ in dv.calls} == {"GET"}
        assert "offers no licence matching CC-BY-NC-4.0" in _problems(r)
        assert r.to_result().status == "impossible"
        f = _run(bag, "figshare", fs.url + "/v2", dry_run=True, publish=True)
        assert {m for m, _ in fs.calls} == {"GET"}
        assert "a licence the account offers" in _problems(f)
    assert not (bag.parent / "receipt.json").exists()


def test_cli_dry_run_prints_what_the_form_refuses(plain_bag, monkeypatch):
    from typer.testing import CliRunner

    from curated.cli import app

    monkeypatch.delenv("DSPACE_PASSWORD", raising=False)
    with FakeDSpace() as fake:
        res = CliRunner().invoke(
            app,
            [
                "deposit",
                str(plain_bag),
                "--to",
                "dspace",
                "--url",
                fake.url + "/server",
                "--target",
                COLLECTION,
                "--dry-run",
            ],
        )
        assert fake.calls == []
    assert res.exit_code == 0, res.output
    assert "not carried over" in res.output and "dc.identifier.orcid" in res.output
