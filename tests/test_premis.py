"""PREMIS 3 from the curator log: valid against the PREMIS 3.0 schema, faithful to the log."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from curated.archive.premis import (
    EVENT_TYPES,
    PREMIS_NS,
    premis_document,
    validate_premis,
    write_premis,
)
from curated.cli import app
from curated.errors import LogError
from curated.metadata import init_workspace, set_field
from curated.workspace import Workspace, recorder

NS = {"p": PREMIS_NS}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws", "A FIB-SEM volume for PREMIS")
    set_field(ws, "study.keywords", ["FIB-SEM"])
    (ws.derived_dir / "notes").mkdir()
    (ws.derived_dir / "notes" / "a.md").write_text("# notes\n")
    with recorder(ws, "T", "convert", params={"chunks": 8}) as step:
        step.add_output(ws.derived_dir / "notes")
    with recorder(ws, "E", "evaluate") as step:
        step.status, step.message = "error", "held-out blocks overlap the training crops"
    return ws


def test_premis_export_validates_and_mirrors_the_log(ws: Workspace, tmp_path: Path) -> None:
    out = write_premis(ws.log, tmp_path / "premis.xml")
    data = out.read_bytes()
    assert validate_premis(data) == []
    tree = etree.fromstring(data)
    entries = list(ws.log.entries())
    events = tree.findall("p:event", NS)
    assert len(events) == len(entries)
    assert [
        e.findtext("p:eventIdentifier/p:eventIdentifierValue", namespaces=NS) for e in events
    ] == [e["id"] for e in entries]
    types = [e.findtext("p:eventType", namespaces=NS) for e in events]
    assert types == ["creation", "metadata modification", "migration", "validation"]
    outcomes = [
        e.findtext("p:eventOutcomeInformation/p:eventOutcome", namespaces=NS) for e in events
    ]
    assert outcomes[-1] == "failure" and set(outcomes[:-1]) == {"success"}
    assert "overlap the training crops" in events[-1].findtext(
        "p:eventOutcomeInformation/p:eventOutcomeDetail/p:eventOutcomeDetailNote", namespaces=NS
    )
    # each recorded file version is an object with the log's SHA-256 as fixity and its PRONOM id
    yaml_outputs = [
        o for e in entries for o in e.get("outputs") or [] if o["path"] == "curated.yaml"
    ]
    objects = {
        o.findtext("p:objectIdentifier/p:objectIdentifierValue", namespaces=NS): o
        for o in tree.findall("p:object", NS)
    }
    for out_art in yaml_outputs:
        obj = objects[f"curated.yaml@{out_art['digest']}"]
        assert obj.findtext(
            "p:objectCharacteristics/p:fixity/p:messageDigest", namespaces=NS
        ) == out_art["digest"].removeprefix("sha256:")
        assert (
            obj.findtext(
                "p:objectCharacteristics/p:format/p:formatRegistry/p:formatRegistryKey",
                namespaces=NS,
            )
            == "fmt/818"
        )
    folder = objects[next(k for k in objects if k.startswith("derived/notes@"))]
    assert folder.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "premis:representation"
    # the software agent and the person (CURATED_AGENT_NAME) are agents linked from every event
    agents = {a.findtext("p:agentType", namespaces=NS) for a in tree.findall("p:agent", NS)}
    assert agents == {"software", "person"}
    assert all(len(e.findall("p:linkingAgentIdentifier", NS)) == 2 for e in events)


def test_validation_catches_a_broken_document(ws: Workspace) -> None:
    tree = etree.fromstring(premis_document(ws.log))
    event = tree.find("p:event", NS)
    event.remove(event.find("p:eventType", NS))
    problems = validate_premis(etree.tostring(tree))
    assert problems and "eventType" in problems[0]
    assert validate_premis(b"<premis")[0].startswith("not well-formed XML")


def test_an_entity_bomb_is_not_expanded() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<premis xmlns="http://www.loc.gov/premis/v3" version="3.0">&c;</premis>'
    )
    assert validate_premis(bomb) == [
        "has a DOCTYPE declaration: PREMIS documents have none, and entities are refused"
    ]


def test_an_empty_log_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    ws = Workspace.create(
        tmp_path / "empty", record={"schema_version": "1.0.0", "study": {"title": "x"}}
    )
    with pytest.raises(LogError, match="nothing for PREMIS to describe"):
        write_premis(ws.log, tmp_path / "p.xml")
    assert not (tmp_path / "p.xml").exists()


def test_log_premis_from_the_cli(ws: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "premis.xml"
    result = CliRunner().invoke(app, ["log", str(ws.root), "--premis", str(target)])
    assert result.exit_code == 0, result.output
    assert validate_premis(target) == []


def test_premis_carries_control_characters_of_odd_file_names(ws: Workspace, tmp_path: Path) -> None:
    # a file name may hold any byte but / and NUL; XML 1.0 cannot hold most control
    # characters, so they are written visibly instead of making the export crash
    odd = ws.derived_dir / "scan\x07\x1b[1m.tif"
    odd.write_bytes(b"II*\x00")
    with recorder(ws, "C", "check", inputs=[odd], params={"name": "bell\x07"}) as step:
        step.status, step.message = "error", f"cannot read {odd.name}"
    data = premis_document(ws.log)
    assert validate_premis(data) == []
    text = data.decode("utf-8")
    assert "scan\\x07\\x1b[1m.tif" in text and "bell\\x07" in text


def test_premis_escapes_of_odd_names_can_be_read_back(ws: Workspace) -> None:
    # "a\x01" written as \x01 must not read the same as a name holding a backslash, x, 0, 1
    lookalike = ws.derived_dir / "a\\x01.tif"
    control = ws.derived_dir / "a\x01.tif"
    for f in (lookalike, control):
        f.write_bytes(b"II*\x00")
    with recorder(ws, "C", "check", inputs=[lookalike, control]):
        pass
    data = premis_document(ws.log)
    assert validate_premis(data) == []
    tree = etree.fromstring(data)
    names = tree.findall(f".//{{{PREMIS_NS}}}originalName")
    odd = sorted(n.text for n in names if n.text.startswith("derived/a"))
    assert odd == ["derived/a\\\\x01.tif", "derived/a\\x01.tif"]
    assert sorted(codecs.decode(n, "unicode_escape") for n in odd) == sorted(
        ["derived/a\\x01.tif", "derived/a\x01.tif"]
    )


LOC_EVENT_TYPES = frozenset(
    {
        "accession", "appraisal", "capture", "compression", "compiling", "creation",
        "deaccession", "decompression", "deletion", "decryption", "digital signature validation",
        "dissemination", "digital signature generation", "displaying", "encryption", "execution",
        "exporting", "extraction", "forensic feature analysis", "filename change", "fixity check",
        "format identification", "imaging", "ingestion end", "ingestion", "ingestion start",
        "interpreting", "information package creation", "information package merging",
        "information package splitting", "metadata extraction", "metadata modification",
        "message digest calculation", "migration", "modification", "normalization", "packing",
        "policy assignment", "printing", "quarantine", "recovery", "redaction", "refreshment",
        "rendering", "replication", "transfer", "unpacking", "unquarantine", "validation",
        "virus check",
    }
)  # fmt: skip
"""The 50 labels of the Library of Congress PREMIS event type vocabulary
(id.loc.gov/vocabulary/preservation/eventType, revision of 2018-09-24)."""

RECORDED_ACTION = re.compile(r'recorder\(\s*\w+,\s*(?:"[A-Z]"|STEP),\s*"([a-z-]+)"')


def test_every_event_type_is_a_library_of_congress_term(tmp_path: Path) -> None:
    # eventType values come from the LoC vocabulary; an action outside the table used to be
    # written as "processing", which is no term of it
    ws = init_workspace(tmp_path / "ws", "A FIB-SEM volume for PREMIS")
    for action in ("write-image", "labels-finalize", "labels-measure", "a-future-action"):
        with recorder(ws, "T", action) as step:
            step.add_output(ws.metadata_path)
    tree = etree.fromstring(premis_document(ws.log))
    types = {e.findtext("p:eventType", namespaces=NS) for e in tree.findall("p:event", NS)}
    assert types <= LOC_EVENT_TYPES, types - LOC_EVENT_TYPES


def test_every_logged_action_has_its_own_event_type() -> None:
    # each action curated records is mapped by name, not left to the catch-all
    src = Path(__file__).resolve().parents[1] / "src" / "curated"
    actions = {
        m.group(1)
        for path in src.rglob("*.py")
        for m in RECORDED_ACTION.finditer(path.read_text(encoding="utf-8"))
    }
    assert len(actions) > 20
    assert sorted(actions - set(EVENT_TYPES)) == []
    assert set(EVENT_TYPES.values()) <= LOC_EVENT_TYPES
