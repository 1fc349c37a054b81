"""What a bag ships holds as written: its FAIR checklist describes the bag, no training state, readable files."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest
from document_workspaces import make_complete_workspace

from curated.document import bag_fair_report, fair_checklist
from curated.document.fair import _combine
from curated.errors import CuratedError
from curated.package import make_bag
from curated.workspace import Workspace, recorder


def _statuses(report: dict) -> dict[str, tuple[str, float]]:
    return {m["id"]: (m["status"], m["score"]) for m in report["metrics"]}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_complete_workspace(tmp_path / "ws")


def test_fair_run_before_bag_is_re_evaluated_on_what_the_bag_packages(ws, tmp_path):
    # the demo and the tutorial run `fair` before `bag`: that checklist cannot see the crate,
    # and says the bag will carry it (pending), not that something is to fix
    before = fair_checklist(ws)
    assert before.metric("FsF-I1-01M").status == "pending-deposit"
    assert "no bag yet" in (ws.root / "curation" / "fair.md").read_text()
    bag = Path(make_bag(ws, tmp_path / "bag").path)
    shipped = json.loads((bag / "data" / "curation" / "fair.json").read_text())
    md = (bag / "data" / "curation" / "fair.md").read_text()
    assert "no bag yet" not in md and "no PROV-O export" not in md
    assert dict(_statuses(shipped))["FsF-I1-01M"][0] == "pass"
    # pack, then re-check: the bag's checklist agrees with one made from the bag alone
    again = bag_fair_report(bag)
    assert _statuses(again.to_dict()) == _statuses(shipped)
    # the workspace's own checklist is left as it was (the workspace is only read)
    assert "no bag yet" in (ws.root / "curation" / "fair.md").read_text()


def test_bag_without_a_workspace_checklist_still_ships_one(ws, tmp_path):
    assert not (ws.root / "curation" / "fair.json").exists()
    bag = Path(make_bag(ws, tmp_path / "bag").path)
    assert (bag / "data" / "curation" / "fair.md").is_file()
    manifest = (bag / "manifest-sha512.txt").read_text()
    assert "data/curation/fair.json" in manifest and "data/curation/fair.md" in manifest


def test_bag_fair_report_of_something_that_is_not_a_bag_is_one_clear_error(tmp_path):
    with pytest.raises(CuratedError, match="not an unpacked bag"):
        bag_fair_report(tmp_path)


def test_bag_leaves_out_training_checkpoints_but_keeps_the_model(ws, tmp_path):
    mdir = ws.root / "derived" / "models" / "mito-v1"
    (mdir / "checkpoint.pt").write_bytes(b"resume state")
    (mdir / "checkpoint.json").write_text("{}")
    # a file of that name that is not beside a model.json is data, and stays
    (ws.root / "derived" / "checkpoint.json").write_text("{}")
    bag = Path(make_bag(ws, tmp_path / "bag").path)
    shipped = bag / "data" / "derived" / "models" / "mito-v1"
    assert (shipped / "model.json").is_file() and (shipped / "weights.pt").is_file()
    assert not (shipped / "checkpoint.pt").exists()
    assert not (shipped / "checkpoint.json").exists()
    assert (bag / "data" / "derived" / "checkpoint.json").is_file()
    assert "checkpoint.pt" not in (bag / "manifest-sha512.txt").read_text()
    assert (mdir / "checkpoint.pt").read_bytes() == b"resume state"  # the workspace keeps it


def test_image_converted_from_the_described_source_matches_its_store(ws):
    # import-ome records the source file's path, not the store's; convert's log entry links them
    source = ws.root.parent / "raw" / "cell01.ome.tif"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"II*\0")
    record = ws.read_metadata()
    record["images"][0]["path"] = str(source)
    record["images"][0]["name"] = "Image0"
    ws.write_metadata(record)
    before = fair_checklist(ws, write=False).metric("FsF-R1-01MD")
    assert before.status == "fail" and "matches an OME-Zarr store" in before.message
    with recorder(ws, "T", "convert", params={}) as step:
        step.add_input(source)
        step.add_output(ws.root / "derived" / "cell.ome.zarr", role="image")
    after = fair_checklist(ws, write=False).metric("FsF-R1-01MD")
    assert after.status == "pass", after.message


def test_cumulative_metric_that_earns_its_whole_score_passes():
    defn = {"scoring": "cumulative", "total_score": 1}

    class T:
        def __init__(self, status, score):
            self.status, self.score, self.maturity = status, score, 1

    status, score, _ = _combine(defn, [T("pass", 1.0), T("fail", 0.0)])
    assert (status, score) == ("pass", 1.0)
    status, score, _ = _combine(
        {"scoring": "cumulative", "total_score": 4}, [T("pass", 1.0), T("fail", 0.0)]
    )
    assert (status, score) == ("fail", 1.0)


def test_no_metric_reports_fail_with_a_full_score(ws):
    record = ws.read_metadata()
    record["study"]["funding"] = [{"funder_name": "A foundation"}]  # named, no identifier
    ws.write_metadata(record)
    for m in fair_checklist(ws, write=False).metrics:
        if m.status == "fail":
            assert m.score < m.total_score, f"{m.id} fails with {m.score}/{m.total_score}"


def test_bioimageio_zip_members_unpack_readable_by_others(tmp_path):
    from curated.segment.export import _write_package

    dest = tmp_path / "m.bioimageio.zip"
    _write_package({"rdf.yaml": b"x: 1\n", "doc/README.md": b"# m\n"}, dest, overwrite=False)
    assert stat.S_IMODE(dest.stat().st_mode) & 0o044 == 0o044
    with zipfile.ZipFile(dest) as zf:
        for info in zf.infolist():
            assert stat.S_IMODE(info.external_attr >> 16) == 0o644, info.filename
        zf.extractall(tmp_path / "out")
    folder = tmp_path / "pkg"
    _write_package({"rdf.yaml": b"x: 1\n"}, folder, overwrite=False)
    assert stat.S_IMODE(folder.stat().st_mode) & 0o055 == 0o055


@pytest.mark.parametrize("kind", ["archive", "holey"])
def test_bags_without_store_folders_still_match_images_to_stores(ws, tmp_path, kind):
    options = {"zarr": "archive"} if kind == "archive" else {"fetch_base": "https://x.org/ws/"}
    bag = Path(make_bag(ws, tmp_path / "bag", **options).path)
    shipped = json.loads((bag / "data" / "curation" / "fair.json").read_text())
    assert _statuses(shipped)["FsF-R1-01MD"][0] == "pass"
