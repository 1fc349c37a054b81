"""Exports of the curator log: PROV-JSON read back by ``prov``, Process Run Crate checked offline."""

from __future__ import annotations

import json

import prov
import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import LogError
from curated.provenance import CuratorLog
from curated.provenance.export import (
    PROCESS_RUN_CRATE,
    action_ids,
    ro_crate_action_entities,
    to_prov_document,
    write_prov_json,
    write_ro_crate,
)
from curated.provenance.rocrate_check import validate_crate
from curated.workspace import Workspace, recorder


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    ws.log.agent = {"name": "Ada Curator", "orcid": "0000-0002-1825-0097"}
    raw = tmp_path / "raw.tif"
    raw.write_bytes(b"II*\x00rawdata")
    with recorder(ws, "C", "check", inputs=[raw], params={"sources": [str(raw)]}) as step:
        report = ws.curation_dir / "check.json"
        report.write_text("{}")
        step.add_output(report)
    with recorder(
        ws, "T", "convert", inputs=[raw], params={"chunks": 64}, libraries=("zarr",)
    ) as step:
        store = ws.derived_dir / "img.ome.zarr"
        (store / "0").mkdir(parents=True)
        (store / "zarr.json").write_text("{}")
        (store / "0" / "c").write_bytes(b"\x00" * 8)
        step.add_output(store)
    with pytest.raises(ValueError), recorder(ws, "E", "evaluate"):
        raise ValueError("no truth labels")
    with recorder(ws, "C", "check") as step:  # check.json rewritten: a second version
        (ws.curation_dir / "check.json").write_text('{"v": 2}')
        step.add_output(ws.curation_dir / "check.json")
    return ws


def test_prov_json_reads_back_with_prov(ws, tmp_path):
    out = write_prov_json(ws.log, tmp_path / "log.prov.json")
    doc = prov.read(str(out))
    activities = list(doc.get_records(prov.model.ProvActivity))
    assert len(activities) == 4
    labels = {str(a.get_attribute("curated:action").pop()) for a in activities}
    assert labels == {"check", "convert", "evaluate"}
    statuses = sorted(str(a.get_attribute("curated:status").pop()) for a in activities)
    assert statuses == ["error", "ok", "ok", "ok"]
    entities = list(doc.get_records(prov.model.ProvEntity))
    digests = {
        str(next(iter(e.get_attribute("curated:digest"))))
        for e in entities
        if e.get_attribute("curated:digest")
    }
    assert any(d.startswith("sha256-tree:") for d in digests)
    # the two versions of check.json are two entities
    assert sum(1 for e in entities if "check.json" in str(e.identifier)) == 2
    assert doc == to_prov_document(ws.log)
    agents = {str(a.identifier) for a in doc.get_records(prov.model.ProvAgent)}
    assert "orcid:0000-0002-1825-0097" in agents
    assert doc.get_records(prov.model.ProvUsage) and doc.get_records(prov.model.ProvGeneration)


def test_process_run_crate_validates_offline(ws, tmp_path):
    meta = write_ro_crate(ws.log, tmp_path / "crate")
    assert validate_crate(meta.parent) == []
    doc = json.loads(meta.read_text())
    graph = {e["@id"]: e for e in doc["@graph"]}
    root = graph["./"]
    assert root["conformsTo"] == {"@id": PROCESS_RUN_CRATE}
    actions = [e for e in doc["@graph"] if e["@type"] == "CreateAction"]
    assert len(actions) == 4
    assert {m["@id"] for m in root["mentions"]} == {a["@id"] for a in actions}
    for a in actions:
        inst = graph[a["instrument"]["@id"]]
        assert inst["@type"] == "SoftwareApplication" and inst["softwareVersion"]
        assert a["startTime"].endswith("+00:00") and a["endTime"] >= a["startTime"]
        assert a["agent"] == {"@id": "https://orcid.org/0000-0002-1825-0097"}
    failed = [a for a in actions if a["actionStatus"].endswith("FailedActionStatus")]
    assert len(failed) == 1 and "no truth labels" in failed[0]["error"]
    files = [e for e in doc["@graph"] if e["@type"] == "File"]
    assert files and all(len(f["sha256"]) == 64 and int(f["contentSize"]) >= 0 for f in files)
    store = [e for e in doc["@graph"] if e["@type"] == "Dataset" and e["@id"] != "./"]
    assert store and store[0]["identifier"].startswith("sha256-tree:")


def test_rocrate_validator_really_runs_and_catches_problems(ws, tmp_path):
    meta = write_ro_crate(ws.log, tmp_path / "crate")
    doc = json.loads(meta.read_text())
    for e in doc["@graph"]:
        if e["@id"] == "./":
            del e["conformsTo"]
            e["mentions"] = e["mentions"][:1]
            del e["license"]
        if e.get("@type") == "CreateAction":
            e["instrument"] = {"@id": "ro-crate-metadata.json"}
    meta.write_text(json.dumps(doc))
    problems = validate_crate(meta.parent, profile="process-run-crate-0.5")
    text = "\n".join(problems)
    assert "conform" in text and "mentions" in text
    assert (
        "REQUIRED" in text
    )  # from roc-validator itself (the missing licence, the wrong instrument)


def test_action_entities_for_a_bag_point_at_the_payload(ws):
    ents = ro_crate_action_entities(ws.log, payload=True, path_prefix="data/")
    ids = {e["@id"] for e in ents}
    assert "data/derived/img.ome.zarr/" in ids
    assert "data/curation/check.json" in ids
    # the older version of check.json is not the payload file
    assert sum(1 for i in ids if "check.json" in i) == 2
    assert len(action_ids(ents)) == 4


def test_export_of_a_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(LogError, match="no curator log"):
        write_prov_json(CuratorLog(tmp_path / "curation" / "log.jsonl"), tmp_path / "x.json")


def test_cli_exports(ws, tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "log",
            str(ws.root),
            "--prov",
            str(tmp_path / "p.json"),
            "--ro-crate",
            str(tmp_path / "c"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert prov.read(str(tmp_path / "p.json"))
    assert (tmp_path / "c" / "ro-crate-metadata.json").is_file()
