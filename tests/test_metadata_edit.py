"""Starting a workspace and changing one field at a time, atomically and on the record."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from curated.errors import MetadataError, WorkspaceError
from curated.metadata import init_workspace, set_field, skeleton_record, validate_record
from curated.metadata.edit import parse_value, write_record
from curated.metadata.paths import MISSING, parse_path


@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws", "FIB-SEM of mouse cortex")


def test_skeleton_is_structurally_valid_and_lists_what_is_missing(ws):
    report = validate_record(ws.root)
    assert report.structurally_valid and not report.valid
    assert [e.field for e in report.missing_required] == ["study.description", "study.authors"]
    text = ws.metadata_path.read_text(encoding="utf-8")
    assert text.startswith("# curated.yaml")
    assert "# Still missing (required):\n#   study.description, study.authors" in text
    assert yaml.safe_load(text) == skeleton_record("FIB-SEM of mouse cortex")
    for sub in ("curation", "derived", "package"):
        assert (ws.root / sub).is_dir()
    assert stat.S_IMODE(os.stat(ws.metadata_path).st_mode) & 0o044  # readable by others, not 0600


def test_init_is_logged_as_a_document_step(ws):
    (entry,) = list(ws.log)
    assert (entry["step"], entry["action"], entry["status"]) == ("D", "init", "ok")
    assert entry["outputs"][0]["path"] == "curated.yaml" and entry["outputs"][0][
        "digest"
    ].startswith("sha256:")
    assert ws.log.verify().ok


def test_init_refuses_an_existing_workspace_and_an_empty_title(ws, tmp_path):
    before = ws.metadata_path.read_bytes()
    with pytest.raises(WorkspaceError, match="already exists"):
        init_workspace(ws.root, "Another title")
    assert ws.metadata_path.read_bytes() == before
    assert len(list(ws.log)) == 1
    with pytest.raises(MetadataError, match="title is empty"):
        init_workspace(tmp_path / "other", "  ")
    assert not (tmp_path / "other").exists()


def test_set_builds_the_record_field_by_field(ws):
    set_field(ws, "study.description", "Isotropic 8 nm FIB-SEM of mouse cortex layer 2/3.")
    result = set_field(ws, "study.authors[0].family_name", "Carberry")
    assert result.status == "ok" and result.details["still_missing"] == []
    set_field(ws, "study.authors[0].orcid", "0000-0002-1825-0097")
    set_field(ws, "study.publication_year", "2026")
    set_field(ws, "study.keywords", "[FIB-SEM, cortex]")
    set_field(ws, "study.keywords[2]", "mitochondria")
    set_field(ws, "schema_version", "1.0.0")
    record = ws.read_metadata()
    assert record["study"]["authors"] == [
        {"family_name": "Carberry", "orcid": "0000-0002-1825-0097"}
    ]
    assert record["study"]["publication_year"] == 2026
    assert record["study"]["keywords"] == ["FIB-SEM", "cortex", "mitochondria"]
    assert list(record["study"]) == [
        "title",
        "description",
        "keywords",
        "authors",
        "publication_year",
        "rembi_version",
    ]
    assert validate_record(ws.root).valid
    entries = list(ws.log)
    orcid = next(e for e in entries if e["params"].get("field") == "study.authors[0].orcid")
    assert orcid["details"]["old"] is None and orcid["details"]["new"] == "0000-0002-1825-0097"
    same = set_field(ws, "study.publication_year", "2026")
    assert same.status == "notneeded"
    assert ws.log.verify().ok


def test_set_records_old_and_new_values(ws):
    set_field(ws, "study.title", "Old")
    set_field(ws, "study.title", "New title")
    last = list(ws.log)[-1]
    assert (last["step"], last["action"]) == ("A", "set")
    assert last["details"]["old"] == "Old" and last["details"]["new"] == "New title"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("study.authors[0].orcid", "0000-0002-1825-0098", "ORCID checksum digit does not match"),
        ("study.license", "CC BY", "not an SPDX licence id"),
        ("study.publication_year", "soon", "valid integer"),
        ("study.licence", "CC-BY-4.0", "did you mean license"),
        ("study.authors[3].family_name", "X", "past the end"),
        ("study.title[0]", "X", "is not a list"),
        ("study..title", "X", "not a field path"),
    ],
)
def test_set_refuses_values_that_break_the_record_and_leaves_it_intact(ws, field, value, match):
    before = ws.metadata_path.read_bytes()
    with pytest.raises(MetadataError, match=match):
        set_field(ws, field, value)
    assert ws.metadata_path.read_bytes() == before


def test_null_removes_a_field(ws):
    set_field(ws, "study.license", "CC-BY-4.0")
    set_field(ws, "study.license", "null")
    assert "license" not in ws.read_metadata()["study"]


def test_values_are_read_as_yaml_but_text_fields_keep_the_text():
    from curated.metadata.model import ImageRepresentation, Study

    assert parse_value("8.0", ImageRepresentation.model_fields["voxel_size_x"].annotation) == 8.0
    assert parse_value("1.10", Study.model_fields["title"].annotation) == "1.10"
    assert parse_value("2026-01-31", Study.model_fields["release_date"].annotation) == "2026-01-31"
    assert parse_value('{"family_name": "X"}') == {"family_name": "X"}
    assert parse_value("~") is MISSING
    assert parse_path("images[12].voxel_size_x") == ["images", 12, "voxel_size_x"]


def test_a_failed_write_leaves_the_old_curated_yaml(ws, monkeypatch):
    before = ws.metadata_path.read_bytes()

    real_replace = os.replace

    def crash_on_rename(src, dst):  # the temporary file is complete, the rename fails
        if os.path.basename(dst) == "curated.yaml":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_rename)
    with pytest.raises(OSError, match="No space left"):
        set_field(ws, "study.description", "A description long enough to be useful here.")
    monkeypatch.undo()
    assert ws.metadata_path.read_bytes() == before
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".curated.yaml")] == []
    assert list(ws.log)[-1]["status"] == "error"


def test_write_record_keeps_the_file_mode(tmp_path):
    path = tmp_path / "curated.yaml"
    path.write_text("x: 1\n")
    os.chmod(path, 0o640)
    write_record(path, skeleton_record("t"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_parse_false_stores_program_text_exactly(ws):
    set_field(ws, "study.description", "None: x", parse=False)
    set_field(ws, "study.keywords", ["[not, a, list]", "null"], parse=False)
    study = ws.read_metadata()["study"]
    assert study["description"] == "None: x"
    assert study["keywords"] == ["[not, a, list]", "null"]
    set_field(ws, "study.description", None, parse=False)
    assert "description" not in ws.read_metadata()["study"]
    # the default (command-line values) reads YAML: the same text is a mapping, refused here
    before = ws.metadata_path.read_bytes()
    with pytest.raises(MetadataError):
        set_field(ws, "study.description", "None: x")
    assert ws.metadata_path.read_bytes() == before


def test_curator_comments_survive_edits(ws):
    """Comments a curator writes beside fields stay; the generated header is refreshed."""
    set_field(ws, "study.description", "First description.")
    text = ws.metadata_path.read_text()
    text = text.replace(
        "  description: First description.",
        "  # agreed with the depositor on 2026-11-20\n  description: First description.  # keep short",
    )
    ws.metadata_path.write_text(text + "# end of record: ask Ada before changing images\n")
    set_field(ws, "study.title", "A new title")  # another field
    set_field(ws, "study.license", "CC-BY-4.0")  # a field that did not exist yet
    set_field(ws, "study.description", "Second description.")  # the commented field itself
    after = ws.metadata_path.read_text()
    assert "# agreed with the depositor on 2026-11-20" in after
    line = next(ln for ln in after.splitlines() if "description: Second description." in ln)
    assert line.rstrip().endswith("# keep short")
    assert "# end of record: ask Ada before changing images" in after
    assert after.startswith("# curated.yaml: REMBI metadata")
    assert (
        after.count("# curated.yaml: REMBI metadata") == 1
    )  # the header is rewritten, not stacked
    study = ws.read_metadata()["study"]
    assert study["title"] == "A new title" and study["license"] == "CC-BY-4.0"
    keys = list(study)
    assert keys.index("license") > keys.index("title")  # inserted in schema order, not at the end
    set_field(ws, "study.description", "null")  # removing the commented field keeps the rest
    assert "description" not in ws.read_metadata()["study"]
    assert "# end of record" in ws.metadata_path.read_text()


def test_a_file_without_comments_keeps_the_canonical_layout(ws):
    from curated.metadata.edit import render_record

    set_field(ws, "study.title", "Plain")
    assert ws.metadata_path.read_text() == render_record(ws.read_metadata())
