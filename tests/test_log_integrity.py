"""What the curator log records stays true: parallel edits, an unwritable log, a full disk."""

from __future__ import annotations

import errno
import multiprocessing as mp
import os
import stat
from pathlib import Path

import pytest
import yaml

from curated.errors import LogError
from curated.metadata.edit import init_workspace, set_field
from curated.provenance.log import CuratorLog
from curated.workspace import Workspace

FIELDS = {
    "study.title": "Title {i}",
    "study.description": "Description number {i} of a volume EM study.",
    "study.keywords": "[kw{i}]",
    "study.publication_year": "{year}",
}


def _edit_loop(root: str, field: str, pattern: str, n: int) -> None:
    for i in range(n):
        set_field(root, field, pattern.format(i=i, year=2000 + i))


def test_parallel_metadata_set_loses_no_update(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", "Parallel")
    n = 6
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=_edit_loop, args=(str(ws.root), f, p, n)) for f, p in FIELDS.items()
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    record = yaml.safe_load(ws.metadata_path.read_text())
    assert record["study"]["title"] == f"Title {n - 1}"
    assert record["study"]["description"] == f"Description number {n - 1} of a volume EM study."
    assert record["study"]["keywords"] == [f"kw{n - 1}"]
    assert record["study"]["publication_year"] == 2000 + n - 1
    sets = [e for e in ws.log if e["action"] == "set" and e["status"] == "ok"]
    assert len(sets) == n * len(FIELDS)
    report = ws.log.verify(files=True)
    assert report.ok, report.problems


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_set_with_an_unwritable_log_changes_nothing(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", "Read-only log")
    before = ws.metadata_path.read_bytes()
    ws.log.path.chmod(stat.S_IRUSR)
    try:
        with pytest.raises(LogError, match="cannot write the curator log"):
            set_field(ws, "study.title", "Changed")
    finally:
        ws.log.path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert ws.metadata_path.read_bytes() == before


def test_set_whose_log_append_fails_is_undone(tmp_path: Path, monkeypatch) -> None:
    ws = init_workspace(tmp_path / "ws", "Failing log")
    before = ws.metadata_path.read_bytes()
    n = len(ws.log)

    def no_space(self, line):
        raise LogError(
            "cannot write the curator log (No space left on device); nothing was recorded"
        )

    monkeypatch.setattr(CuratorLog, "_write_line", no_space)
    with pytest.raises(LogError, match="curated.yaml was left unchanged"):
        set_field(ws, "study.title", "Changed")
    monkeypatch.undo()
    assert ws.metadata_path.read_bytes() == before
    assert len(ws.log) == n
    assert ws.log.verify(files=True).ok


def test_full_disk_cuts_no_log_line(tmp_path: Path, monkeypatch) -> None:
    log = CuratorLog(tmp_path / "curation" / "log.jsonl", root=tmp_path)
    log.append("D", "init")
    size = log.path.stat().st_size
    real_write = os.write

    def half_then_enospc(fd, data):
        if len(data) > 10:
            real_write(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(LogError, match="No space left on device"):
        log.append("A", "set")
    monkeypatch.undo()
    assert log.path.stat().st_size == size
    report = log.verify()
    assert report.ok and not report.cut_tail


def test_repair_on_a_full_disk_leaves_no_empty_copy(tmp_path: Path, monkeypatch) -> None:
    log = CuratorLog(tmp_path / "curation" / "log.jsonl", root=tmp_path)
    log.append("D", "init")
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq": 1, "cut')
    data = log.path.read_bytes()
    import builtins

    real_open = builtins.open

    def full_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        if ".cut-" in str(file) and "x" in mode:

            class Full:
                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    fh.close()

                def write(self, b):
                    raise OSError(errno.ENOSPC, "No space left on device")

            return Full()
        return fh

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(LogError, match="cannot set the cut line aside"):
        log.repair()
    monkeypatch.undo()
    assert list(log.path.parent.glob("log.jsonl.cut-*")) == []
    assert log.path.read_bytes() == data


def test_cli_reports_a_read_only_workspace_in_one_line(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from curated.cli import app

    ws = init_workspace(tmp_path / "ws", "EROFS")

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(ws.metadata_path))

    monkeypatch.setattr("curated.metadata.edit.write_record", erofs)
    before = ws.metadata_path.read_bytes()
    res = CliRunner().invoke(app, ["metadata", "set", str(ws.root), "study.title", "X"])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "Read-only file system" in res.output and "curated.yaml" in res.output
    assert ws.metadata_path.read_bytes() == before
    assert Workspace(ws.root).log.verify(files=True).ok


def test_full_disk_while_writing_curated_yaml_names_it_and_leaves_it_whole(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from curated.cli import app

    ws = init_workspace(tmp_path / "ws", "ENOSPC")
    before = ws.metadata_path.read_bytes()
    real_fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    res = CliRunner().invoke(app, ["metadata", "set", str(ws.root), "study.title", "X"])
    monkeypatch.undo()
    assert res.exit_code == 1
    assert "No space left on device" in res.output and "curated.yaml" in res.output
    assert "Traceback" not in res.output
    assert ws.metadata_path.read_bytes() == before
    assert not list(ws.root.glob(".curated.yaml.*.tmp"))
    assert Workspace(ws.root).log.verify(files=True).ok


def test_verify_files_reports_a_recorded_bag_that_is_not_there(tmp_path):
    import shutil

    from tests.fakes import bags

    ws = Workspace(bags.make_workspace(tmp_path / "ws", big=1000))
    bag = bags.bag_workspace(ws.root)
    assert ws.log.verify(files=True).ok
    shutil.rmtree(bag)
    report = ws.log.verify(files=True)
    assert not report.ok
    assert "bag package/bag is missing" in report.problems[0]
