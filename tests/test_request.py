"""The Request step: an e-mail with at most four ranked asks, each answerable yes/no or with one value."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.curation import check
from curated.curation.request import MAX_ASKS, PRIORITIES, Ask, rank_asks, render_request, request
from curated.errors import MetadataError, WorkspaceError
from curated.workspace import Workspace

COMPLETE = {
    "schema_version": "1.0.0",
    "study": {
        "title": "Mouse cortex FIB-SEM",
        "description": "FIB-SEM volume of mouse cortex layer 2/3 to map mitochondria.",
        "authors": [
            {
                "family_name": "Doe",
                "given_name": "Jane",
                "email": "jane@uni.example",
                "contact": True,
            }
        ],
        "license": "CC-BY-4.0",
    },
}


def _ws(tmp_path, record):
    return Workspace.create(tmp_path / "ws", record=json.loads(json.dumps(record)))


def test_sparse_record_gives_at_most_four_ranked_asks(tmp_path):
    ws = _ws(tmp_path, {"schema_version": "1.0.0", "study": {"title": "t"}})
    result = request(ws)
    asks = result.details["asks"]
    assert result.status == "ok" and result.path == "curation/request.md"
    assert 1 <= len(asks) <= MAX_ASKS
    assert result.details["deferred"], "a sparse record has more gaps than one e-mail asks"
    order = [PRIORITIES.index(a["priority"]) for a in asks]
    assert order == sorted(order)
    assert all(a["answer"] in ("yes/no", "value") for a in asks)
    assert asks[0]["field"] == "study.license"  # the licence leads the essentials
    text = (ws.root / "curation" / "request.md").read_text()
    assert text.count("**Essential**") + text.count("**Important**") + text.count(
        "**Supplemental**"
    ) == len(asks)
    for i, a in enumerate(asks, start=1):
        assert f"{i}. **{a['priority']}**: {a['question']}" in text


def test_check_findings_become_permission_asks(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", np.zeros((8, 8), np.uint8), description="Operator: Jane Doe")
    data = (raw / "a.tif").read_bytes()
    (raw / "b.tif").write_bytes(data[:-20])
    check(ws, [raw])
    asks = request(ws).details["asks"]
    questions = " ".join(a["question"] for a in asks)
    assert "intact copies" in questions and "raw/b.tif" in questions
    assert "May we remove the names or e-mail addresses" in questions
    essentials = [a for a in asks if a["priority"] == "Essential"]
    assert essentials and all(a["answer"] == "yes/no" for a in essentials)


def test_email_is_addressed_to_the_contact_and_signed(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATED_AGENT_NAME", "Ada Curator")
    record = json.loads(json.dumps(COMPLETE))
    del record["study"]["license"]
    ws = _ws(tmp_path, record)
    request(ws)
    text = (ws.root / "curation" / "request.md").read_text()
    assert text.startswith("To: Jane Doe <jane@uni.example>")
    assert "Subject: " in text and "Mouse cortex FIB-SEM" in text
    assert "Under which licence may we publish the data?" in text
    assert "for example: CC-BY-4.0" in text
    assert text.rstrip().endswith("Ada Curator")


def test_request_is_logged_as_r_with_inputs_and_output(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    (tmp_path / "README.md").write_text("x")
    check(ws, [tmp_path / "README.md"])
    request(ws)
    e = ws.log.last()
    assert e["step"] == "R" and e["action"] == "request"
    assert [i["path"] for i in e["inputs"]] == ["curated.yaml", "curation/check.json"]
    assert e["outputs"][0]["path"] == "curation/request.md"
    assert len(e["details"]["asks"]) <= 4
    assert e["details"]["validator"] == "curated.metadata.validate_record"
    assert ws.log.verify(files=True).ok


def test_without_check_report_the_message_says_so(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    result = request(ws)
    assert "run `curated check`" in result.message


def test_broken_check_report_is_a_clear_error_and_keeps_old_email(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    request(ws)
    old = (ws.root / "curation" / "request.md").read_text()
    (ws.root / "curation" / "check.json").write_text("{broken")
    with pytest.raises(MetadataError, match="check report cannot be read"):
        request(ws)
    assert (ws.root / "curation" / "request.md").read_text() == old
    assert ws.log.last()["status"] == "error"


def test_not_a_workspace_is_refused(tmp_path):
    with pytest.raises(WorkspaceError):
        request(tmp_path)


def test_rank_asks_orders_deduplicates_and_caps():
    asks = [
        Ask("Supplemental", "Keywords?", "value", "w"),
        Ask("Essential", "Licence?", "value", "w", rank=15),
        Ask("Important", "Funder?", "value", "w"),
        Ask("Essential", "Licence?", "value", "w"),
        Ask("Essential", "PHI?", "yes/no", "w", rank=10),
        Ask("Important", "README?", "yes/no", "w"),
    ]
    asked, deferred = rank_asks(asks)
    assert [a.question for a in asked] == ["PHI?", "Licence?", "Funder?", "README?"]
    assert [a.question for a in deferred] == ["Keywords?"]


def test_no_asks_renders_a_thank_you():
    text = render_request(COMPLETE, [], curator="C")
    assert "no questions" in text.lower()


def test_metadata_fallback_without_the_metadata_layer(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "curated.metadata.validate", None)
    ws = _ws(tmp_path, {"schema_version": "1.0.0", "study": {"title": "t"}})
    result = request(ws)
    assert result.details["validator"] == "built-in checks"
    assert any(a["field"] == "study.license" for a in result.details["asks"])


def test_cli_request(tmp_path):
    ws = _ws(tmp_path, {"schema_version": "1.0.0", "study": {"title": "t"}})
    r = CliRunner().invoke(app, ["request", str(ws.root), "--show"])
    assert r.exit_code == 0, r.output
    assert "Essential" in r.output and "Subject:" in r.output


def test_a_missing_readme_is_asked_for_as_a_file_not_yes_or_no(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", np.zeros((8, 8), np.uint8))
    check(ws, [raw])
    asks = [a for a in request(ws).details["asks"] if "README" in a["question"]]
    assert [a["answer"] for a in asks] == ["file"]
    text = (ws.root / "curation" / "request.md").read_text()
    readme_item = text.split("README", 1)[1].split("Why we ask", 1)[0]
    assert "Please attach it to your reply." in readme_item
    assert "yes or no" not in readme_item


def test_notes_txt_is_documentation_so_no_readme_is_asked(tmp_path):
    ws = _ws(tmp_path, COMPLETE)
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", np.zeros((8, 8), np.uint8))
    (raw / "NOTES.txt").write_text("Imaged on a Crossbeam 550 at 1.5 kV.")
    check(ws, [raw])
    assert not any("README" in a["question"] for a in request(ws).details["asks"])


def test_cli_request_json(tmp_path):
    ws = _ws(tmp_path, {"schema_version": "1.0.0", "study": {"title": "t"}})
    r = CliRunner().invoke(app, ["request", str(ws.root), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["action"] == "request" and data["details"]["asks"]
