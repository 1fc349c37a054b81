"""Golden files: the one record in each repository's shape.

Regenerate after an intended change with ``CURATED_REGEN_GOLDEN=1 pytest tests/test_deposit_crosswalk.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from curated.metadata.crosswalk.dataverse import to_dataverse
from curated.metadata.crosswalk.dspace import to_dspace_patch
from curated.metadata.crosswalk.figshare import to_figshare
from curated.metadata.crosswalk.invenio import missing_required, to_invenio
from tests.fakes.figshare import LICENSES

DATA = Path(__file__).parent / "data" / "crosswalk"
TODAY = "2026-11-23"


def _record() -> dict:
    # Pinned to a fixture record (not examples/) so edits to the examples never rewrite goldens.
    return yaml.safe_load((DATA / "record.yaml").read_text(encoding="utf-8"))


CROSSWALKS = {
    "invenio": lambda r: to_invenio(r, today=TODAY),
    "dataverse": lambda r: to_dataverse(r, today=TODAY),
    "dspace": lambda r: to_dspace_patch(r, today=TODAY),
    "figshare": lambda r: to_figshare(r, licences=LICENSES, today=TODAY),
}


@pytest.mark.parametrize("target", sorted(CROSSWALKS))
def test_crosswalk_matches_golden_file(target):
    got = CROSSWALKS[target](_record())
    golden = DATA / f"{target}.json"
    if os.environ.get("CURATED_REGEN_GOLDEN"):
        golden.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == json.loads(golden.read_text(encoding="utf-8"))


def test_invenio_has_what_invenio_requires():
    md = to_invenio(_record(), today=TODAY)["metadata"]
    assert md["resource_type"] == {"id": "dataset"}
    assert md["publication_date"] == TODAY
    assert md["creators"][0]["person_or_org"]["identifiers"] == [
        {"scheme": "orcid", "identifier": "0000-0002-1825-0097"}
    ]
    assert md["rights"] == [{"id": "cc-by-4.0"}]


def test_future_release_date_becomes_an_embargo():
    rec = _record()
    rec["study"]["release_date"] = "2030-01-01"
    draft = to_invenio(rec, today=TODAY)
    assert draft["metadata"]["publication_date"] == "2030-01-01"
    assert draft["access"]["embargo"] == {
        "active": True,
        "until": "2030-01-01",
        "reason": "embargoed until the release date",
    }


def test_missing_fields_are_reported_not_invented():
    rec = {"study": {"title": "ab", "authors": []}}
    assert missing_required(rec) == [
        "study.title (at least 3 characters)",
        "study.authors[].family_name",
    ]
    assert "creators" in to_invenio(rec, today=TODAY)["metadata"]
    assert to_invenio(rec, today=TODAY)["metadata"]["creators"] == []


def test_dataverse_citation_block_has_the_required_fields():
    fields = to_dataverse(_record())["datasetVersion"]["metadataBlocks"]["citation"]["fields"]
    names = [f["typeName"] for f in fields]
    for required in ("title", "author", "datasetContact", "dsDescription", "subject"):
        assert required in names
    contact = next(f for f in fields if f["typeName"] == "datasetContact")["value"][0]
    assert contact["datasetContactEmail"]["value"] == "marie.curie@example.org"


def test_dspace_sections_are_configurable():
    ops = to_dspace_patch(_record(), today=TODAY, sections=("page1", "page2"))
    paths = {op["path"] for op in ops}
    assert (
        "/sections/page1/dc.title" in paths and "/sections/page2/dc.description.abstract" in paths
    )
    assert all(op["op"] == "add" for op in ops)


def test_figshare_licence_resolved_from_the_account_list():
    assert to_figshare(_record(), licences=LICENSES)["license"] == 1
    assert "license" not in to_figshare(_record(), licences=None)
