"""DataCite 4.5 crosswalk: valid against the `datacite` package's schema, nothing invented."""

from __future__ import annotations

import copy

import pytest
from datacite import schema45
from document_workspaces import bare_record, complete_record
from jsonschema import FormatChecker
from jsonschema.validators import validator_for

from curated.errors import MetadataError
from curated.metadata.crosswalk import missing_mandatory, to_datacite, validate_datacite
from curated.metadata.crosswalk.common import (
    citation_authors,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
    person_name,
    spdx_id,
)
from curated.metadata.model import CuratedRecord


def _strict_errors(data: dict) -> list[str]:
    """schema45 plus format checks (uri, ...), which the package's validator leaves out."""
    schema = schema45.validator.schema
    cls = validator_for(schema)
    v = cls(schema, format_checker=FormatChecker())
    return [e.message for e in v.iter_errors(data)]


def test_complete_record_is_valid_datacite_45_json_and_xml():
    dc = to_datacite(complete_record())
    assert schema45.validate(dc), validate_datacite(dc)
    assert validate_datacite(dc) == []
    assert _strict_errors(dc) == []
    xml = schema45.tostring(dc)
    assert "Mitochondria of HeLa cells by FIB-SEM" in xml
    assert dc["schemaVersion"] == "http://datacite.org/schema/kernel-4"
    assert dc["types"] == {"resourceTypeGeneral": "Dataset", "resourceType": "FIB-SEM image data"}


def test_creators_carry_orcid_and_ror_affiliation():
    dc = to_datacite(complete_record())
    jane = dc["creators"][0]
    assert jane["name"] == "Doe, Jane" and jane["nameType"] == "Personal"
    assert jane["nameIdentifiers"] == [
        {
            "nameIdentifier": "https://orcid.org/0000-0002-1825-0097",
            "nameIdentifierScheme": "ORCID",
            "schemeUri": "https://orcid.org",
        }
    ]
    assert jane["affiliation"][0]["affiliationIdentifier"] == "https://ror.org/03mstc592"
    assert jane["affiliation"][0]["affiliationIdentifierScheme"] == "ROR"
    # the second author's affiliation has no ROR: the name alone, no invented identifier
    assert dc["creators"][1]["affiliation"] == [{"name": "EMBL"}]
    contact = [c for c in dc["contributors"] if c["contributorType"] == "ContactPerson"]
    assert [c["name"] for c in contact] == ["Doe, Jane"]


def test_rights_funding_subjects_related_and_descriptions():
    dc = to_datacite(complete_record())
    assert dc["rightsList"] == [
        {
            "rights": "Creative Commons Attribution 4.0 International",
            "rightsUri": "https://creativecommons.org/licenses/by/4.0/legalcode",
            "rightsIdentifier": "CC-BY-4.0",
            "rightsIdentifierScheme": "SPDX",
            "schemeUri": "https://spdx.org/licenses/",
        }
    ]
    assert dc["fundingReferences"] == [
        {
            "funderName": "European Research Council",
            "funderIdentifier": "https://ror.org/0472cxd90",
            "funderIdentifierType": "ROR",
            "awardNumber": "ERC-2026-123456",
        }
    ]
    subjects = {s["subject"]: s for s in dc["subjects"]}
    assert {"FIB-SEM", "volume EM", "mitochondria"} <= set(subjects)
    assert subjects["Homo sapiens"]["valueUri"] == "http://purl.obolibrary.org/obo/NCBITaxon_9606"
    assert (
        subjects["focused ion beam scanning electron microscopy"]["valueUri"]
        == "http://purl.obolibrary.org/obo/FBbi_00050000"
    )
    related = {(r["relatedIdentifier"], r["relationType"]) for r in dc["relatedIdentifiers"]}
    assert ("10.1234/organelles.2026", "IsDescribedBy") in related
    assert ("https://github.com/example/analysis", "IsSupplementedBy") in related
    kinds = [d["descriptionType"] for d in dc["descriptions"]]
    assert kinds == ["Abstract", "Methods", "TechnicalInfo"]
    assert "Zeiss Crossbeam 550" in dc["descriptions"][1]["description"]
    assert dc["formats"] == ["OME-Zarr 0.5"]
    assert dc["sizes"] == ["1 image"]
    assert {"date": "2026-03-14", "dateType": "Collected"} in dc["dates"]


def test_pydantic_record_maps_like_its_dict():
    rec = complete_record()
    model = CuratedRecord.model_validate(rec)
    assert to_datacite(model) == to_datacite(rec)


def test_doi_publisher_year_and_version_arguments():
    rec = complete_record()
    del rec["study"]["publisher"], rec["study"]["publication_year"]
    dc = to_datacite(
        rec,
        doi="https://doi.org/10.5281/zenodo.123",
        publisher="Zenodo",
        publication_year=2027,
        version="1.0",
        url="https://zenodo.org/records/123",
    )
    assert dc["doi"] == "10.5281/zenodo.123"
    assert dc["publisher"] == {"name": "Zenodo"} and dc["publicationYear"] == "2027"
    assert dc["version"] == "1.0"
    assert validate_datacite(dc) == [] and _strict_errors(dc) == []


def test_malformed_doi_is_refused_with_its_field():
    with pytest.raises(MetadataError) as exc:
        to_datacite(complete_record(), doi="zenodo 123")
    assert exc.value.field == "study.doi"


def test_missing_mandatory_fields_raise_with_the_list_and_partial_mapping():
    with pytest.raises(MetadataError) as exc:
        to_datacite(bare_record())
    missing = exc.value.details["missing"]
    assert missing == ["study.authors", "study.title", "study.publisher", "study.publication_year"]
    assert "study.authors" in str(exc.value)
    partial = exc.value.details["partial"]
    assert partial["types"]["resourceTypeGeneral"] == "Dataset"
    # the partial mapping is reported, not silently "fixed"
    assert not schema45.validate(partial)


def test_non_strict_returns_partial_and_names_the_gaps():
    rec = complete_record()
    del rec["study"]["publisher"]
    dc = to_datacite(rec, strict=False)
    assert missing_mandatory(dc) == ["study.publisher"]
    assert any("publisher" in m for m in validate_datacite(dc))


def test_non_ascii_everywhere_stays_valid_and_intact():
    rec = complete_record(non_ascii=True)
    dc = to_datacite(rec)
    assert validate_datacite(dc) == [] and _strict_errors(dc) == []
    assert dc["creators"][0]["name"] == "Müller-Łukasiewicz, Zoë Ångström"
    assert dc["creators"][1]["name"] == "山田, 太郎"
    assert dc["titles"][0]["title"] == "Mitochondrien in Zellkernnähe — ミトコンドリア α/β"
    assert dc["publisher"]["name"] == "Université de Genève · Yareta"
    xml = schema45.tostring(dc)
    assert "Müller-Łukasiewicz" in xml and "ミトコンドリア" in xml


def test_licences_known_by_spdx_but_not_by_name_and_unknown_licences():
    rec = complete_record()
    rec["study"]["license"] = "GPL-2.0-or-later"
    rights = to_datacite(rec)["rightsList"][0]
    assert rights["rightsIdentifier"] == "GPL-2.0-or-later"
    assert rights["rightsUri"] == "https://spdx.org/licenses/GPL-2.0-or-later.html"
    rec["study"]["license"] = "All rights reserved by the lab"
    assert to_datacite(rec)["rightsList"] == [{"rights": "All rights reserved by the lab"}]


def test_invalid_orcid_and_ror_are_not_passed_on():
    rec = copy.deepcopy(complete_record())
    rec["study"]["authors"][0]["orcid"] = "0000-0002-1825-0098"  # wrong check digit
    rec["study"]["authors"][0]["affiliation"]["ror"] = "not-a-ror"
    jane = to_datacite(rec)["creators"][0]
    assert "nameIdentifiers" not in jane
    assert jane["affiliation"] == [{"name": "European Molecular Biology Laboratory"}]


def test_common_normalisers():
    assert (
        normalise_orcid("https://orcid.org/0000-0002-1825-0097")
        == "https://orcid.org/0000-0002-1825-0097"
    )
    assert normalise_orcid("0000-0001-5109-370X") is None  # check digit is 0
    assert normalise_ror("03MSTC592") == "https://ror.org/03mstc592"
    assert normalise_doi("doi:10.1000/XYZ") == "10.1000/XYZ"
    assert normalise_doi("10.1000") is None
    assert spdx_id("cc0-1.0") == "CC0-1.0" and spdx_id("not-a-licence") is None
    assert person_name({"family_name": "Doe"}) == "Doe"
    assert (
        citation_authors(
            [
                {"family_name": "Doe", "given_name": "Jane Ann"},
                {"family_name": "Roe", "given_name": "R."},
            ]
        )
        == "Doe, J. A. & Roe, R."
    )


def test_malformed_entries_are_skipped_not_crashed_on():
    rec = complete_record()
    rec["biosamples"] = ["HeLa", {"organism": "Homo sapiens"}]
    rec["study"]["keywords"] = "FIB-SEM"
    rec["study"]["funding"] = [None, {"funder": "DFG", "award_id": "1"}]
    rec["images"] = [42]
    dc = to_datacite(rec)
    assert validate_datacite(dc) == []
    assert dc["subjects"][0] == {"subject": "FIB-SEM"}
    assert dc["fundingReferences"] == [{"funderName": "DFG", "awardNumber": "1"}]
    assert "formats" not in dc and "sizes" not in dc
