"""The curator log: hash chain, concurrent appends, tamper detection, cut lines, step recording."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import LogError
from curated.provenance import CuratorLog, entry_hash, redact
from curated.provenance.log import StepRecorder
from curated.workspace import Workspace, recorder


def _log(tmp_path: Path, **kw) -> CuratorLog:
    return CuratorLog(tmp_path / "curation" / "log.jsonl", root=tmp_path, **kw)


def _fill(log: CuratorLog, n: int) -> None:
    for i in range(n):
        log.append("T", f"step{i}", params={"i": i})


def _lines(log: CuratorLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: CuratorLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


# ------------------------------------------------------------------ chain
def test_entries_are_chained_and_verify(tmp_path):
    log = _log(tmp_path)
    _fill(log, 3)
    entries = list(log)
    assert [e["seq"] for e in entries] == [0, 1, 2]
    assert entries[0]["prev"] is None
    assert entries[1]["prev"] == entries[0]["hash"]
    assert all(e["hash"] == entry_hash(e) for e in entries)
    for key in (
        "id",
        "step",
        "action",
        "time",
        "agent",
        "tool",
        "software",
        "params",
        "inputs",
        "outputs",
        "status",
        "message",
        "duration",
    ):
        assert key in entries[0]
    report = log.verify()
    assert report.ok and report.entries == 3 and report.first_bad_seq is None
    assert report.to_dict() == {
        "entries": 3,
        "ok": True,
        "first_bad_seq": None,
        "cut_tail": False,
        "problems": [],
    }


def test_appended_entry_equals_what_is_read_back(tmp_path):
    log = _log(tmp_path)
    entry = log.append("T", "convert", params={"shape": (1, 2), "path": Path("a/b")})
    assert entry == list(log)[0]
    assert entry["params"] == {"shape": [1, 2], "path": "a/b"}


def test_undecodable_file_names_do_not_break_an_append(tmp_path):
    log = _log(tmp_path)
    odd = tmp_path / os.fsdecode(b"caf\xe9.tif")
    odd.write_bytes(b"x")
    with pytest.raises(OSError), recorder(log, "C", "check", inputs=[odd]):
        raise OSError(f"cannot read {odd}")
    e = log.last()
    assert e["inputs"][0]["path"] == "caf\\xe9.tif"
    assert "caf\\xe9.tif" in e["message"]
    assert log.verify().ok


def test_bad_step_or_status_is_refused(tmp_path):
    log = _log(tmp_path)
    with pytest.raises(LogError, match="step must be one of"):
        log.append("X", "nothing")
    with pytest.raises(LogError, match="status must be one of"):
        log.append("C", "check", status="fine")
    assert not log.exists()


def _append_many(args: tuple[str, int, int]) -> None:
    path, worker, n = args
    log = CuratorLog(path)
    for i in range(n):
        log.append("T", f"w{worker}-{i}")


def test_concurrent_appends_from_processes_keep_the_chain(tmp_path):
    path = str(tmp_path / "curation" / "log.jsonl")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        pool.map(_append_many, [(path, w, 25) for w in range(3)])
    log = CuratorLog(path)
    report = log.verify()
    assert report.ok, report.problems
    assert report.entries == 75
    actions = sorted(e["action"] for e in log)
    assert actions == sorted(f"w{w}-{i}" for w in range(3) for i in range(25))


# ---------------------------------------------------------------- tamper
def test_tampered_log_entry_is_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    entry = json.loads(lines[2])
    entry["params"]["i"] = 99
    lines[2] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    _write(log, lines)
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 2
    assert "edited" in report.problems[0]


def test_entry_rewritten_with_a_new_hash_is_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["message"] = "nothing to see"
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    _write(log, lines)
    report = log.verify()
    assert report.first_bad_seq == 1
    assert "rewritten" in report.problems[0]


def test_deleted_entry_is_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    report = log.verify()
    assert report.first_bad_seq == 3
    assert "removed" in report.problems[0]


def test_reordered_entries_are_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 5)
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log, lines)
    report = log.verify()
    assert report.first_bad_seq == 1
    assert "reordered" in report.problems[0]


def test_garbage_line_is_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 3)
    lines = _lines(log)
    lines[1] = "{not json\n"
    _write(log, lines)
    assert log.verify().first_bad_seq == 1
    with pytest.raises(LogError, match="line 2"):
        list(log)


def test_append_refuses_an_edited_last_entry(tmp_path):
    log = _log(tmp_path)
    _fill(log, 2)
    lines = _lines(log)
    entry = json.loads(lines[-1])
    entry["status"] = "error"
    lines[-1] = json.dumps(entry) + "\n"
    _write(log, lines)
    before = log.path.read_bytes()
    with pytest.raises(LogError, match="edited"):
        log.append("C", "check")
    assert log.path.read_bytes() == before


# --------------------------------------------------------------- cut line
def test_cut_last_line_is_reported_kept_and_repaired_on_request(tmp_path):
    log = _log(tmp_path)
    _fill(log, 3)
    good = log.path.read_bytes()
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq":3,"step":"T","acti')  # a crash mid-write
    report = log.verify()
    assert report.cut_tail and not report.ok
    assert report.first_bad_seq == 3
    assert report.entries == 3
    assert [e["seq"] for e in log] == [0, 1, 2]  # good entries still readable
    with pytest.raises(LogError, match="cut"):
        list(log.entries(strict=True))
    # no silent continuation
    with pytest.raises(LogError, match="--repair"):
        log.append("C", "check")
    assert log.path.read_bytes() == good + b'{"seq":3,"step":"T","acti'
    aside = log.repair()
    assert aside is not None and aside.read_bytes() == b'{"seq":3,"step":"T","acti'
    assert log.path.read_bytes() == good
    entry = log.append("C", "check")
    assert entry["seq"] == 3 and entry["prev"] == list(log)[2]["hash"]
    assert log.verify().ok
    assert log.repair() is None


def test_a_log_that_is_only_a_cut_line_repairs_to_empty(tmp_path):
    log = _log(tmp_path)
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b'{"seq":0')
    assert log.verify().cut_tail
    log.repair()
    assert log.append("C", "check")["seq"] == 0


def test_step_recorder_fails_fast_on_a_cut_log(tmp_path):
    log = _log(tmp_path)
    _fill(log, 1)
    with open(log.path, "ab") as fh:
        fh.write(b"{")
    ran = []
    with pytest.raises(LogError), recorder(log, "T", "convert"):
        ran.append(1)
    assert ran == []


# ---------------------------------------------------------------- files
def test_verify_files_detects_changed_and_missing_outputs(tmp_path):
    log = _log(tmp_path)
    out = tmp_path / "derived" / "a.txt"
    out.parent.mkdir()
    out.write_text("one")
    store = tmp_path / "derived" / "img.zarr"
    (store / "0").mkdir(parents=True)
    (store / "0" / "c").write_bytes(b"\x00" * 10)
    with recorder(log, "T", "make") as step:
        step.add_output(out)
        step.add_output(store)
    assert log.verify(files=True).ok
    (store / "0" / "c").write_bytes(b"\x01" * 10)
    report = log.verify(files=True)
    assert not report.ok and report.first_bad_seq == 0
    assert "derived/img.zarr changed" in report.problems[0]
    out.unlink()
    report = log.verify(files=True)
    assert any("derived/a.txt is missing" in p for p in report.problems)
    assert log.verify().ok  # the chain itself is fine


def test_latest_output_digest_is_the_one_verified(tmp_path):
    log = _log(tmp_path)
    out = tmp_path / "check.json"
    out.write_text("v1")
    with recorder(log, "C", "check") as step:
        step.add_output(out)
    out.write_text("v2")
    with recorder(log, "C", "check") as step:
        step.add_output(out)
    assert log.verify(files=True).ok


# ----------------------------------------------------------- step recorder
def test_step_recorder_records_outputs_inputs_and_duration(tmp_path):
    log = _log(tmp_path)
    src = tmp_path / "raw.tif"
    src.write_bytes(b"abc")
    with recorder(
        log, "T", "convert", inputs=[src], params={"chunks": 64}, libraries=("tifffile",)
    ) as step:
        dest = tmp_path / "derived" / "x.bin"
        dest.parent.mkdir()
        dest.write_bytes(b"xyz")
        step.add_output(dest, digest="sha256:" + "0" * 64, size=3)
    e = step.entry
    assert e["inputs"][0]["path"] == "raw.tif"
    assert e["inputs"][0]["digest"].startswith("sha256:ba7816bf")
    assert e["outputs"][0] == {"path": "derived/x.bin", "bytes": 3, "digest": "sha256:" + "0" * 64}
    assert e["params"] == {"chunks": 64}
    assert "tifffile" in e["software"] and "python" in e["software"]
    assert e["duration"] >= 0


def test_exception_is_recorded_as_error_and_reraised(tmp_path):
    log = _log(tmp_path)
    with pytest.raises(ValueError, match="boom"), recorder(log, "T", "convert"):
        raise ValueError("boom")
    e = log.last()
    assert e["status"] == "error" and "ValueError: boom" in e["message"]


def test_status_set_in_block_is_recorded(tmp_path):
    log = _log(tmp_path)
    with recorder(log, "T", "convert") as step:
        step.status, step.message = "notneeded", "already converted"
    assert log.last()["status"] == "notneeded"


def test_recorder_without_log_records_nothing(tmp_path):
    with StepRecorder(None, "T", "convert", inputs=["x"]) as step:
        step.add_output(tmp_path / "y")
    assert step.entry is None
    with recorder(None, "T", "convert", inputs=["x"]) as step:
        step.add_output(tmp_path / "y")
    assert step.entry is None


def test_recorder_is_the_one_way_to_open_a_step(tmp_path):
    """A workspace, its path or a bare log: the same entry; the old methods warn and still record."""
    import curated

    assert curated.recorder is recorder and "recorder" in curated.__all__
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    with recorder(ws.root, "C", "check", params={"n": 1}):
        pass
    with pytest.warns(DeprecationWarning, match="curated.recorder"), ws.step("U", "old"):
        pass
    with pytest.warns(DeprecationWarning, match="curated.recorder"), ws.log.step("R", "older"):
        pass
    entries = list(ws.log.entries())
    assert [(e["step"], e["action"]) for e in entries] == [
        ("C", "check"),
        ("U", "old"),
        ("R", "older"),
    ]
    assert entries[0]["params"] == {"n": 1}
    assert ws.log.verify().ok
    with pytest.raises(LogError, match="step must be one of"):
        recorder(ws, "Z", "nonsense")


def test_workspace_step_appends_to_its_log(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    with recorder(ws, "D", "readme"):
        pass
    assert ws.log.last()["step"] == "D"


# ---------------------------------------------------------------- privacy
def test_one_redact_with_one_contract(tmp_path):
    """The log, receipts and the provenance API share curated._secrets.redact; scrub stays value-only."""
    import curated.deposit.http
    import curated.provenance
    import curated.provenance.log
    from curated._secrets import REDACTED, forget_secrets, register_secret, scrub
    from curated._secrets import redact as the_redact

    assert curated.provenance.redact is the_redact is curated.provenance.log.redact
    assert not hasattr(curated.deposit.http, "redact")
    register_secret("registered-secret-1")
    try:
        value = {
            "note": "echo registered-secret-1 back",
            "upload_token": "t0k3n-value",
            "token_env": "ZENODO_TOKEN",
            "links": ("https://u:pw@h.org/a?access_token=zz&x=1", "Bearer abcdefghij"),
            "n": 3,
        }
        assert redact(value) == {
            "note": f"echo {REDACTED} back",
            "upload_token": REDACTED,
            "token_env": "ZENODO_TOKEN",
            "links": [
                f"https://{REDACTED}@h.org/a?access_token={REDACTED}&x=1",
                f"Bearer {REDACTED}",
            ],
            "n": 3,
        }
        # scrub only replaces what was registered: a reply's upload token stays usable
        assert scrub(value)["upload_token"] == "t0k3n-value"
        assert scrub(value)["note"] == f"echo {REDACTED} back"
    finally:
        forget_secrets()


def test_host_details_only_when_opted_in(tmp_path, monkeypatch):
    monkeypatch.delenv("CURATED_RECORD_HOST", raising=False)
    log = _log(tmp_path)
    assert "host" not in log.append("C", "check")
    assert '"host"' not in log.path.read_text()
    opted = _log(tmp_path, record_host=True)
    assert set(opted.append("C", "check")["host"]) == {"hostname", "user", "platform"}
    monkeypatch.setenv("CURATED_RECORD_HOST", "1")
    assert "host" in _log(tmp_path).append("C", "check")
    assert _log(tmp_path).verify().ok


def test_secrets_never_reach_the_log(tmp_path):
    log = _log(tmp_path)
    log.append(
        "D",
        "deposit",
        params={
            "token": "s3cr3t-token-value",
            "token_env": "ZENODO_TOKEN",
            "url": "https://user:hunter2@example.org/api?access_token=abcdef123&x=1",
            "headers": {"Authorization": "Bearer abcdefghijklmnop"},
        },
        message="failed with Bearer abcdefghijklmnop",
    )
    text = log.path.read_text()
    for secret in ("s3cr3t-token-value", "hunter2", "abcdef123", "abcdefghijklmnop"):
        assert secret not in text
    e = log.last()
    assert e["params"]["token_env"] == "ZENODO_TOKEN"
    assert e["params"]["url"].endswith("access_token=<redacted>&x=1")
    assert redact({"password": None}) == {"password": None}


def test_agent_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATED_AGENT_NAME", "Ada Curator")
    monkeypatch.setenv("CURATED_AGENT_ORCID", "0000-0002-1825-0097")
    assert _log(tmp_path).append("C", "check")["agent"] == {
        "name": "Ada Curator",
        "orcid": "0000-0002-1825-0097",
    }


def test_paths_outside_the_workspace_are_relative_never_absolute(tmp_path, monkeypatch):
    log = CuratorLog(tmp_path / "ws" / "curation" / "log.jsonl")
    outside = tmp_path / "raw.bin"
    outside.write_bytes(b"1")
    assert log.relative(outside) == "../raw.bin"
    assert log.relative(tmp_path / "ws" / "derived" / "a") == "derived/a"
    monkeypatch.chdir(tmp_path)
    assert log.relative("missing.tif") == "../missing.tif"  # relative to where it was given


# -------------------------------------------------------------------- CLI
def _ws(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    for i in range(3):
        ws.log.append("T", f"s{i}")
    return ws


def test_cli_log_shows_and_verifies(tmp_path):
    ws = _ws(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["log", str(ws.root)])
    assert r.exit_code == 0, r.output
    assert "s2" in r.output
    r = runner.invoke(app, ["log", str(ws.root), "--verify"])
    assert r.exit_code == 0 and "3 entries" in r.output


def test_cli_verify_exits_1_naming_the_first_bad_seq(tmp_path):
    ws = _ws(tmp_path)
    lines = ws.log.path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"s1"', '"sX"')
    ws.log.path.write_text("".join(lines))
    r = CliRunner().invoke(app, ["log", str(ws.root), "--verify"])
    assert r.exit_code == 1
    assert "first bad seq 1" in r.output


def test_cli_repair_sets_cut_line_aside(tmp_path):
    ws = _ws(tmp_path)
    with open(ws.log.path, "ab") as fh:
        fh.write(b'{"cut')
    runner = CliRunner()
    r = runner.invoke(app, ["log", str(ws.root)])
    assert r.exit_code == 0 and "--repair" in r.output
    r = runner.invoke(app, ["log", str(ws.root), "--verify"])
    assert r.exit_code == 1 and "first bad seq 3" in r.output
    r = runner.invoke(app, ["log", str(ws.root), "--repair"])
    assert r.exit_code == 0 and "set aside" in r.output
    assert runner.invoke(app, ["log", str(ws.root), "--verify"]).exit_code == 0
    assert len(list(ws.root.glob("curation/log.jsonl.cut-*"))) == 1


def test_cli_files_needs_verify(tmp_path):
    ws = _ws(tmp_path)
    assert CliRunner().invoke(app, ["log", str(ws.root), "--files"]).exit_code == 2


# ------------------------------------------------------------------ anchors
def test_entries_cut_from_the_end_are_found_with_an_anchor(tmp_path):
    log = _log(tmp_path)
    _fill(log, 5)
    mark = log.anchor()
    assert mark is not None and mark.startswith("4:sha256:")
    assert log.verify(anchor=mark).ok
    lines = _lines(log)
    _write(log, lines[:3])  # the last two entries removed: still a valid chain on its own
    assert log.verify().ok
    report = log.verify(anchor=mark)
    assert not report.ok and report.first_bad_seq == 3
    assert "ends at seq 2 but the anchor names seq 4: 2 entries were removed" in report.problems[0]
    # an older anchor still verifies: the entries it vouches for are intact
    _write(log, lines)
    assert log.verify(anchor=f"2:{json.loads(lines[2])['hash']}").ok


def test_a_log_rewritten_from_the_anchor_on_is_named(tmp_path):
    log = _log(tmp_path)
    _fill(log, 3)
    mark = log.anchor()
    lines = _lines(log)
    _write(log, lines[:2])
    log.append("T", "a different step 2")  # a new valid chain, different from the anchored one
    report = log.verify(anchor=mark)
    assert report.first_bad_seq == 2 and "does not match the anchor" in report.problems[0]


@pytest.mark.parametrize("bad", ["", "4", "x:sha256:" + "0" * 64, "4:md5:abc", "4:sha256:12"])
def test_a_malformed_anchor_is_a_clear_error(tmp_path, bad):
    log = _log(tmp_path)
    _fill(log, 1)
    with pytest.raises(LogError, match="an anchor is SEQ:HASH"):
        log.verify(anchor=bad)


def test_an_empty_log_has_no_anchor(tmp_path):
    assert _log(tmp_path).anchor() is None


def test_cli_head_and_anchor(tmp_path):
    ws = _ws(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["log", str(ws.root), "--head"])
    assert r.exit_code == 0, r.output
    mark = r.output.strip()
    assert mark == ws.log.anchor()
    r = runner.invoke(app, ["log", str(ws.root), "--verify", "--anchor", mark])
    assert r.exit_code == 0 and "anchor seq 2" in r.output
    lines = ws.log.path.read_text().splitlines(keepends=True)
    ws.log.path.write_text("".join(lines[:-1]))
    r = runner.invoke(app, ["log", str(ws.root), "--verify", "--anchor", mark])
    assert r.exit_code == 1 and "1 entry was removed from its end" in " ".join(r.output.split())
    r = runner.invoke(app, ["log", str(ws.root), "--anchor", mark])
    assert r.exit_code == 2
    r = runner.invoke(app, ["log", str(ws.root), "--verify", "--anchor", "nonsense"])
    assert r.exit_code == 1 and "an anchor is SEQ:HASH" in r.output


def test_a_bag_s_log_copy_is_an_anchor(tmp_path):
    from curated.provenance.log import anchor_from

    ws = _ws(tmp_path)
    bag = tmp_path / "bag"
    (bag / "metadata").mkdir(parents=True)
    (bag / "metadata" / "curator-log.jsonl").write_bytes(
        ws.log.path.read_bytes()
    )  # as a bag holds it
    assert anchor_from(bag) == ws.log.anchor()
    ws.log.append("D", "deposit")  # later work keeps the anchor valid
    runner = CliRunner()
    r = runner.invoke(app, ["log", str(ws.root), "--verify", "--anchor", str(bag)])
    assert r.exit_code == 0, r.output
    lines = ws.log.path.read_text().splitlines(keepends=True)
    ws.log.path.write_text("".join(lines[:2]))  # cut back to before what the bag recorded
    r = runner.invoke(app, ["log", str(ws.root), "--verify", "--anchor", str(bag)])
    assert r.exit_code == 1 and "removed from its end" in " ".join(r.output.split())
    with pytest.raises(LogError, match="no curator log here"):
        anchor_from(tmp_path / "nowhere")
