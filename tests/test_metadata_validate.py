"""Validation names the field and the rule; recommendations are graded; identifiers are checked offline."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from curated.errors import MetadataError
from curated.metadata import CuratedRecord, load_record, load_record_dict, validate_record
from curated.metadata import identifiers as ids

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "metadata" / "fibsem.yaml"
BAD = REPO / "tests" / "data" / "metadata"


@pytest.fixture(scope="module")
def example() -> dict:
    return load_record_dict(EXAMPLE)


def test_the_fibsem_example_is_valid_and_complete(example):
    report = validate_record(EXAMPLE)
    assert report.valid, [str(e) for e in report.errors]
    assert report.warnings == []
    for module in (
        "study",
        "dataset",
        "biosample",
        "specimen",
        "acquisition",
        "image_data",
        "annotation",
    ):
        assert report.completeness[module].fraction == 1.0, module
    assert not report.completeness["correlation"].present
    record = load_record(EXAMPLE)
    assert isinstance(record, CuratedRecord)
    assert record.acquisition_protocols[0].fbbi_id == "FBbi:00050000"


@pytest.mark.parametrize(
    ("name", "field", "rule"),
    [
        ("bad_orcid.yaml", "study.authors[1].orcid", "orcid"),
        ("bad_ror.yaml", "study.authors[0].affiliation.ror", "ror"),
        ("bad_doi.yaml", "study.publications[0].doi", "doi"),
        ("bad_spdx.yaml", "study.license", "spdx"),
        ("unknown_field.yaml", "study.licence", "unknown-field"),
        ("wrong_type.yaml", "images[0].size_x", "type"),
        ("missing_required.yaml", "study.authors", "required"),
        ("bad_taxon.yaml", "biosamples[0].organism.ncbi_taxon_id", "ncbi-taxon"),
        ("bad_fbbi.yaml", "acquisition_protocols[0].fbbi_id", "fbbi"),
        ("bad_enum.json", "images[0].dtype", "enum"),
    ],
)
def test_each_invalid_record_fails_with_its_field_path(name, field, rule):
    report = validate_record(BAD / name)
    assert not report.valid
    assert [(e.field, e.rule) for e in report.errors] == [(field, rule)]
    with pytest.raises(MetadataError) as info:
        load_record(BAD / name)
    assert info.value.field == field
    assert info.value.path == str(BAD / name)
    assert name in str(info.value) and field in str(info.value)


def test_yaml_syntax_error_names_file_and_line():
    with pytest.raises(MetadataError) as info:
        validate_record(BAD / "syntax_error.yaml")
    assert "syntax_error.yaml" in str(info.value)
    assert "YAML syntax error at line" in str(info.value)


def test_messages_say_what_is_wrong():
    orcid = validate_record(BAD / "bad_orcid.yaml").errors[0]
    assert "checksum digit does not match" in orcid.message and "should be 9" in orcid.message
    unknown = validate_record(BAD / "unknown_field.yaml").errors[0]
    assert "did you mean license?" in unknown.message
    assert str(unknown) == f"study.licence: {unknown.message} (rule: unknown-field)"


def test_missing_recommended_fields_are_graded_warnings_not_errors(example):
    record = copy.deepcopy(example)
    del record["study"]["license"]
    del record["study"]["keywords"]
    del record["study"]["authors"][0]["orcid"]
    report = validate_record(record)
    assert report.valid
    levels = {w.field: w.severity for w in report.warnings}
    assert levels == {
        "study.license": "alert",
        "study.keywords": "warning",
        "study.authors[0].orcid": "warning",
    }
    assert [w.field for w in report.warnings][0] == "study.license"  # most severe first
    assert report.completeness["study"].fraction == pytest.approx(25 / 28)


def test_completeness_counts_nested_slots_per_module(example):
    record = copy.deepcopy(example)
    del record["images"][0]["voxel_size_x"]
    record["biosamples"] = []
    report = validate_record(record)
    image_data = report.completeness["image_data"]
    assert (image_data.filled, image_data.expected) == (21, 22)
    assert (
        not report.completeness["biosample"].present
        and report.completeness["biosample"].fraction == 0.0
    )


def test_schema_checks_beyond_pydantic(example):
    record = copy.deepcopy(example)
    record["images"][1]["name"] = "raw"
    record["annotations"][1].pop("model")
    record["study"]["description"] = "Too short."
    record["study"]["license"] = "GPL-2.0"  # deprecated SPDX id
    report = validate_record(record)
    assert [(e.field, e.rule) for e in report.errors] == [("images[1].name", "unique")]
    rules = {(w.field, w.rule, w.severity) for w in report.warnings}
    assert ("annotations[1].model", "ai-model", "warning") in rules
    assert ("study.description", "description-length", "info") in rules
    assert ("study.license", "spdx", "warning") in rules


def test_unquoted_taxon_number_gets_a_hint(example):
    record = copy.deepcopy(example)
    record["biosamples"][0]["organism"]["ncbi_taxon_id"] = 10090
    (err,) = validate_record(record).errors
    assert err.field == "biosamples[0].organism.ncbi_taxon_id" and "in quotes" in err.message


def test_a_workspace_folder_validates_its_curated_yaml(tmp_path, example):
    with pytest.raises(MetadataError, match="not a curated workspace"):
        validate_record(tmp_path)
    (tmp_path / "curated.yaml").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert validate_record(tmp_path).valid
    assert validate_record(CuratedRecord.model_validate(example)).valid


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0000-0002-1825-0097", True),
        ("https://orcid.org/0000-0002-1825-0097", True),
        ("0000-0002-1694-233X", True),
        ("0000-0002-1825-0098", False),
        ("0000-0002-1825-009", False),
    ],
)
def test_orcid_checksum(value, ok):
    assert (ids.check_orcid(value) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("03mstc592", True),  # EMBL
        ("https://ror.org/013meh722", True),  # University of Cambridge
        ("042nb2s44", True),  # MIT
        ("03mstc593", False),
        ("03mstc5", False),
        ("13mstc592", False),
        ("03mstu592", False),  # u is not in Crockford base 32
    ],
)
def test_ror_checksum(value, ok):
    assert (ids.check_ror(value) is None) is ok


def test_other_identifier_syntax():
    assert ids.check_doi("10.1038/s41592-021-01166-8") is None
    assert ids.check_doi("https://doi.org/10.1234/x") is None
    assert ids.check_doi("10.12/x") is not None
    assert ids.check_ncbi_taxon("NCBITaxon:9606") is None and ids.check_ncbi_taxon(10090) is None
    assert ids.check_ncbi_taxon("human") is not None
    assert ids.check_fbbi("FBbi:00050000") is None and ids.check_fbbi("FBbi_00050000") is not None
    assert ids.check_spdx("CC-BY-4.0") is None
    assert "case-sensitive: write CC-BY-4.0" in ids.check_spdx("cc-by-4.0")
    assert ids.check_spdx("CC-BY") is not None
