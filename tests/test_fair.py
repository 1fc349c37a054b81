"""FAIR checklist: metrics as data with real F-UJI / RDA ids, offline outcomes with evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from document_workspaces import bare_record, complete_record, make_complete_workspace
from typer.testing import CliRunner

from curated.cli import app
from curated.document import fair_checklist, load_metrics, write_readme
from curated.document.fair import CHECKS, OUTCOMES
from curated.workspace import Workspace

# FAIRsFAIR metrics v0.5 as F-UJI's metrics_v0.5.yaml defines them
FUJI_V05 = {
    "FsF-F1-01D", "FsF-F1-02D", "FsF-F2-01M", "FsF-F3-01M", "FsF-F4-01M",
    "FsF-A1-01M", "FsF-A1-02M", "FsF-A1-03D", "FsF-A2-01M",
    "FsF-I1-01M", "FsF-I2-01M", "FsF-I3-01M",
    "FsF-R1-01MD", "FsF-R1.1-01M", "FsF-R1.2-01M", "FsF-R1.3-01M", "FsF-R1.3-02D",
}  # fmt: skip
# the 41 indicators of the RDA FAIR Data Maturity Model
RDA = {
    "RDA-F1-01M", "RDA-F1-01D", "RDA-F1-02M", "RDA-F1-02D", "RDA-F2-01M", "RDA-F3-01M", "RDA-F4-01M",
    "RDA-A1-01M", "RDA-A1-02M", "RDA-A1-02D", "RDA-A1-03M", "RDA-A1-03D", "RDA-A1-04M", "RDA-A1-04D",
    "RDA-A1-05D", "RDA-A1.1-01M", "RDA-A1.1-01D", "RDA-A1.2-01D", "RDA-A2-01M",
    "RDA-I1-01M", "RDA-I1-01D", "RDA-I1-02M", "RDA-I1-02D", "RDA-I2-01M", "RDA-I2-01D",
    "RDA-I3-01M", "RDA-I3-01D", "RDA-I3-02M", "RDA-I3-02D", "RDA-I3-03M", "RDA-I3-04M",
    "RDA-R1-01M", "RDA-R1.1-01M", "RDA-R1.1-02M", "RDA-R1.1-03M", "RDA-R1.2-01M", "RDA-R1.2-02M",
    "RDA-R1.3-01M", "RDA-R1.3-01D", "RDA-R1.3-02M", "RDA-R1.3-02D",
}  # fmt: skip


def _bag(ws: Workspace) -> Path:
    """A minimal bag in package/ with an RO-Crate that mentions curation actions."""
    bag = ws.root / "package" / "bag-1"
    (bag / "data").mkdir(parents=True)
    (bag / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    (bag / "bag-info.txt").write_text(
        "External-Identifier: urn:uuid:0b5b2c7e-9f0e-4c55-9d44-3f1f3a0c1e11\n", encoding="utf-8"
    )
    crate = {
        "@context": "https://w3id.org/ro/crate/1.1/context",
        "@graph": [
            {"@id": "ro-crate-metadata.json", "@type": "CreativeWork", "about": {"@id": "./"}},
            {"@id": "./", "@type": "Dataset", "name": "x", "mentions": [{"@id": "#convert"}]},
            {"@id": "#convert", "@type": "CreateAction", "name": "convert"},
        ],
    }
    (bag / "data" / "ro-crate-metadata.json").write_text(json.dumps(crate), encoding="utf-8")
    return bag


@pytest.fixture
def complete(tmp_path: Path) -> Workspace:
    ws = make_complete_workspace(tmp_path / "ws")
    write_readme(ws)
    return ws


def _status(report, metric_id):
    return report.metric(metric_id).status


def test_metrics_are_data_with_real_fuji_and_rda_ids():
    metrics = load_metrics()
    fuji = {m["fuji"] for m in metrics if m["fuji"]}
    assert fuji == FUJI_V05
    for m in metrics:
        assert set(m["rda"]) <= RDA, m["id"]
        assert len(set(m["rda"])) == len(m["rda"]), m["id"]
        assert m["scoring"] in ("alternative", "cumulative")
        if m["fuji"]:
            assert m["id"] == m["fuji"]
            assert all(t["id"].startswith(m["fuji"] + "-") for t in m["tests"])
        for t in m["tests"]:
            assert t["check"] in CHECKS
            assert 0 <= t["maturity"] <= 3
    # every RDA indicator cited at most once per metric, and the Essential F/A/R ones are covered
    cited = {i for m in metrics for i in m["rda"]}
    assert {"RDA-F1-01D", "RDA-F2-01M", "RDA-R1.1-01M", "RDA-R1.2-01M", "RDA-R1.3-01M"} <= cited
    shipped = yaml.safe_load(
        Path(__file__)
        .parents[1]
        .joinpath("src/curated/data/fair_metrics.yaml")
        .read_text(encoding="utf-8")
    )
    assert len(shipped["metrics"]) == len(metrics)


def test_complete_workspace_passes_what_it_can_and_waits_for_deposit(complete):
    _bag(complete)
    from curated.provenance.export import write_prov_json

    write_prov_json(complete.log, complete.root / "curation" / "prov.json")
    report = fair_checklist(complete)
    for mid in ("FsF-F2-01M", "FsF-F3-01M", "FsF-A1-01M", "FsF-I1-01M", "FsF-I2-01M", "FsF-I3-01M", "FsF-R1-01MD",
                "FsF-R1.1-01M", "FsF-R1.2-01M", "FsF-R1.3-01M", "FsF-R1.3-02D", "curated-E-contact", "curated-R1-ai-marking",
                "curated-R1.3-ngff-valid"):  # fmt: skip
        assert _status(report, mid) == "pass", (mid, report.metric(mid).message)
    for mid in ("FsF-F1-02D", "FsF-F4-01M", "FsF-A1-02M", "FsF-A1-03D", "FsF-A2-01M"):
        assert _status(report, mid) == "pending-deposit", mid
    for mid in ("curated-H-consent", "curated-H-disclosure", "curated-H-care"):
        assert _status(report, mid) == "needs-human"
    assert "human origin" in report.metric("curated-H-consent").message
    r11 = report.metric("FsF-R1.1-01M")
    assert r11.score == 2 and r11.maturity == 3
    assert [(e.file, e.field, e.value) for e in r11.evidence] == [
        ("curated.yaml", "study.license", "CC-BY-4.0")
    ] * 2
    r12 = report.metric("FsF-R1.2-01M")
    assert r12.score == 2 and r12.tests[1].evidence[0].file == "curation/prov.json"
    i1 = report.metric("FsF-I1-01M")
    assert (
        i1.tests[1].status == "pass"
        and i1.tests[1].evidence[0].file == "package/bag-1/data/ro-crate-metadata.json"
    )
    r1 = report.metric("FsF-R1-01MD")
    assert r1.score == 4 and any(e.file == "derived/cell.ome.zarr" for e in r1.evidence)
    # F1-01D: the store's digest in the log is a hash identifier; resolving waits for deposit
    f1 = report.metric("FsF-F1-01D")
    assert f1.score == 0.5 and [t.status for t in f1.tests] == ["pending-deposit", "pass"]
    assert any(
        e.file == "curation/log.jsonl" and e.value.startswith("sha256-tree:") for e in f1.evidence
    )
    # README complete except for the DOI deposit assigns
    assert report.metric("curated-E-readme").tests[1].status == "pending-deposit"


def test_fair_writes_json_markdown_and_an_e_entry(complete):
    report = fair_checklist(complete)
    data = json.loads((complete.root / "curation/fair.json").read_text(encoding="utf-8"))
    assert data["format"] == "curated-fair/1"
    assert len(data["metrics"]) == len(load_metrics())
    assert sum(data["summary"]["by_status"].values()) == len(data["metrics"])
    assert set(data["summary"]["by_status"]) == set(OUTCOMES)
    for m in data["metrics"]:
        assert m["status"] in OUTCOMES
        for t in m["tests"]:
            assert t["evidence"], (m["id"], t["id"])
            assert all(e["file"] for e in t["evidence"])
    md = (complete.root / "curation/fair.md").read_text(encoding="utf-8")
    assert (
        "| FsF-R1.1-01M | RDA-R1.1-01M, RDA-R1.1-02M, RDA-R1.1-03M | R1.1 | **pass** | 2 / 2 | 3 |"
        in md
    )
    assert "evidence: `curated.yaml` → `study.license` = CC-BY-4.0" in md
    last = list(complete.log.entries())[-1]
    assert last["step"] == "E" and last["action"] == "fair"
    assert {o["path"] for o in last["outputs"]} == {"curation/fair.json", "curation/fair.md"}
    assert last["details"]["summary"] == report.summary
    assert complete.log.verify(files=True).ok


def test_bare_workspace_mostly_fails_with_evidence_naming_the_fields(tmp_path):
    ws = Workspace.create(tmp_path / "bare", record=bare_record())
    report = fair_checklist(ws)
    s = report.summary["by_status"]
    assert s["fail"] >= 12 and s["pass"] <= 3
    f2 = report.metric("FsF-F2-01M")
    assert f2.status == "fail"
    fields = {e.field for e in f2.evidence}
    assert {
        "study.title",
        "study.authors",
        "study.publisher",
        "study.publication_year",
        "study.description",
        "study.keywords",
    } <= fields
    assert report.metric("FsF-R1.1-01M").status == "fail"
    assert report.metric("FsF-R1.1-01M").score == 0
    assert report.metric("curated-E-readme").status == "fail"
    assert "curated readme" in report.metric("curated-E-readme").message
    r13 = report.metric("FsF-R1.3-01M")
    assert r13.status == "fail" and "study.authors" in {e.field for e in r13.evidence}
    assert report.metric("FsF-F1-02D").status == "pending-deposit"


def test_licence_in_the_wrong_case_is_not_an_spdx_id(tmp_path):
    rec = complete_record()
    rec["study"]["license"] = "cc-by-4.0"
    ws = Workspace.create(tmp_path / "ws", record=rec)
    t = report_test(fair_checklist(ws, write=False), "FsF-R1.1-01M", "FsF-R1.1-01M-2")
    assert t.status == "fail" and "write CC-BY-4.0" in t.message


def report_test(report, metric_id, test_id):
    return next(t for t in report.metric(metric_id).tests if t.id == test_id)


def test_metadata_that_disagrees_with_the_store_fails_r1_with_both_values(tmp_path):
    ws = make_complete_workspace(tmp_path / "ws")
    rec = ws.read_metadata()
    rec["images"][0]["size_x"] = 57
    rec["images"][0]["voxel_size_z"] = 0.02
    rec["images"][0]["voxel_size_unit"] = "micrometer"  # 0.02 µm = 20 nm: same size, other unit
    ws.write_metadata(rec)
    report = fair_checklist(ws, write=False)
    t3 = report_test(report, "FsF-R1-01MD", "FsF-R1-01MD-3")
    assert (
        t3.status == "fail"
        and "images[0].size_x is 57 but derived/cell.ome.zarr has 56" in t3.message
    )
    t4 = report_test(report, "FsF-R1-01MD", "FsF-R1-01MD-4")
    # x/y are 5 micrometres in the record but 5 nm in the store; z (0.02 µm = 20 nm) agrees
    assert t4.status == "fail" and "voxel_size_x" in t4.message and "voxel_size_z" not in t4.message


def test_stores_the_validators_reject_fail_the_ngff_check_naming_store_and_problem(tmp_path):
    """A deposit must not carry an OME-Zarr image that readers misread, however well its
    metadata parse: here chunks written where the key encoding cannot name them (what
    curated before 2026-12-07 wrote into unsharded stores, read back as all zero) and a
    label image whose pyramid disagrees with its image's."""
    import zarr

    ws = make_complete_workspace(tmp_path / "ws")
    ok = fair_checklist(ws, write=False).metric("curated-R1.3-ngff-valid")
    assert ok.status == "pass" and ok.evidence[0].file == "derived/cell.ome.zarr"
    level0 = ws.root / "derived/cell.ome.zarr/labels/mito-truth/0"
    for chunk_dir in (level0 / "c").iterdir():  # the layout the old writer left
        chunk_dir.rename(level0 / chunk_dir.name)
    (level0 / "c").rmdir()
    pred = zarr.open_group(str(ws.root / "derived/cell.ome.zarr/labels/mito-pred"), mode="r+")
    ome = dict(pred.attrs["ome"])
    ms = [dict(m) for m in ome["multiscales"]]
    ms[0]["datasets"] = ms[0]["datasets"][:1]  # one level where the image has two
    ome["multiscales"] = ms
    pred.attrs["ome"] = ome
    before = {p: p.read_bytes() for p in (ws.root / "derived").rglob("*") if p.is_file()}
    m = fair_checklist(ws, write=False).metric("curated-R1.3-ngff-valid")
    assert m.status == "fail" and m.score == 0
    assert m.message.startswith("derived/cell.ome.zarr: ")
    found = " ".join(str(e.value) for e in m.evidence)
    assert "labels/mito-truth: level 0: chunk objects outside c/" in found
    assert "mito-pred" in found
    assert all(e.file == "derived/cell.ome.zarr" for e in m.evidence)
    assert str(tmp_path) not in m.message + found  # no local paths in a report bags ship
    # the check reads; it never repairs or rewrites the store
    assert before == {p: p.read_bytes() for p in (ws.root / "derived").rglob("*") if p.is_file()}


def test_unmarked_ai_labels_and_undocumented_models_fail(tmp_path):
    ws = make_complete_workspace(tmp_path / "ws")
    import zarr

    g = zarr.open_group(str(ws.root / "derived/cell.ome.zarr/labels/mito-pred"), mode="r+")
    g.attrs["curated"] = {"kind": "prediction"}
    (ws.root / "derived/models/mito-v1.bioimageio.zip").unlink()
    report = fair_checklist(ws, write=False)
    t1, t2 = report.metric("curated-R1-ai-marking").tests
    assert t1.status == "fail" and "mito-pred does not say whether it is AI-generated" in t1.message
    assert t2.status == "fail" and "no exported model card" in t2.message


def test_a_tampered_log_fails_provenance(complete):
    path = complete.root / "curation/log.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"convert"', '"konvert"')
    path.write_text("".join(lines), encoding="utf-8")
    report = fair_checklist(complete, write=False)
    r12 = report.metric("FsF-R1.2-01M")
    assert r12.tests[0].status == "fail" and "does not verify" in r12.tests[0].message
    assert r12.tests[0].evidence[0].field == "seq 0"


def test_non_ascii_workspace_writes_utf8_json_and_markdown(tmp_path):
    ws = make_complete_workspace(tmp_path / "Datensatz α", non_ascii=True)
    fair_checklist(ws)
    raw = (ws.root / "curation/fair.json").read_bytes().decode("utf-8")
    data = json.loads(raw)
    assert "Université de Genève · Yareta" in raw  # kept as is, not \u-escaped
    assert data["metrics"]
    md = (ws.root / "curation/fair.md").read_text(encoding="utf-8")
    assert "Université de Genève · Yareta" in md


def test_cli_fair_prints_the_checklist(complete):
    result = CliRunner().invoke(app, ["fair", str(complete.root)])
    assert result.exit_code == 0, result.output
    assert "FsF-R1.1-01M" in result.output and "pending-deposit" in result.output
    assert re.search(r"score [\d.]+/[\d.]+", result.output)
    assert (complete.root / "curation/fair.json").is_file()


def test_cli_fair_on_a_missing_workspace_exits_1(tmp_path):
    result = CliRunner().invoke(app, ["fair", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "not a curated workspace" in result.output


def test_oddly_shaped_record_is_assessed_not_crashed_on(tmp_path):
    rec = complete_record()
    rec["biosamples"] = "HeLa, see the paper"
    rec["study"]["authors"] = "Doe J, Roe R"
    rec["images"] = [42]
    ws = Workspace.create(tmp_path / "ws", record=rec)
    report = fair_checklist(ws)
    f2 = report.metric("FsF-F2-01M")
    # cumulative: the failing citation part fails the metric, the descriptive part still scores
    assert f2.status == "fail" and f2.score == 1
    assert "study.authors must be a list" in f2.message
    assert report.metric("FsF-R1.3-01M").status == "fail"
    assert report.metric("FsF-R1.1-01M").status == "pass"
    assert (ws.root / "curation/fair.json").is_file()


def _test(report, test_id: str):
    metric = report.metric(test_id.rsplit("-", 1)[0])
    return next(t for t in metric.tests if t.id == test_id)


def test_before_bagging_the_crate_and_prov_tests_wait_for_the_bag(tmp_path):
    """A workspace not yet bagged has nothing to fix for JSON-LD and PROV-O: `curated bag`
    writes both (and its own checklist checks them); a bag without its RO-Crate fails."""
    ws = Workspace.create(tmp_path / "ws", record=complete_record())
    report = fair_checklist(ws)
    for test_id in ("FsF-I1-01M-2", "FsF-R1.2-01M-2"):
        t = _test(report, test_id)
        assert t.status == "pending-deposit" and "curated bag" in t.message, (test_id, t)
    crate = _bag(ws) / "data" / "ro-crate-metadata.json"
    assert _test(fair_checklist(ws), "FsF-I1-01M-2").status == "pass"
    crate.unlink()
    bagged = fair_checklist(ws)
    assert _test(bagged, "FsF-I1-01M-2").status == "fail"
    assert _test(bagged, "FsF-R1.2-01M-2").status == "fail"
