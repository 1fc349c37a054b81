"""``curated log --repair`` killed part way (``kill -9``), then run again: one copy of the
cut line is kept aside, the log ends at its last good entry, the chain verifies and
appends continue; another repair then has nothing to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_helpers import run_killable
from typer.testing import CliRunner

from curated._crash import EXIT_CODE
from curated.cli import app
from curated.metadata import init_workspace
from curated.provenance.log import CuratorLog
from curated.workspace import Workspace

CUT = b'{"seq":2,"step":"T","action":"train","par'  # a crash mid-append
REPAIR = (
    "from curated.provenance.log import CuratorLog\nCuratorLog({path!r}, root={root!r}).repair()\n"
)


def _cut_log(tmp_path: Path) -> tuple[CuratorLog, bytes]:
    """A log of two entries and a cut line after them; the bytes of the good part."""
    log = CuratorLog(tmp_path / "curation" / "log.jsonl", root=tmp_path)
    log.append("T", "step0")
    log.append("T", "step1")
    good = log.path.read_bytes()
    with open(log.path, "ab") as fh:
        fh.write(CUT)
    return log, good


def _asides(log: CuratorLog) -> list[bytes]:
    return [p.read_bytes() for p in sorted(log.path.parent.glob("log.jsonl.cut-*"))]


def _repaired(log: CuratorLog, good: bytes) -> None:
    """The log ends at its last good entry, verifies, and the next append chains on."""
    assert log.path.read_bytes() == good
    assert log.verify().ok
    entry = log.append("T", "step2")
    assert entry["seq"] == 2 and entry["prev"] == list(log)[1]["hash"]
    assert log.verify().ok
    assert log.repair() is None


AT_TRUNCATE = (  # killed as the log is opened to be shortened (no crash point needed)
    "import builtins, os\n"
    "real = builtins.open\n"
    "def killing(file, mode='r', *a, **kw):\n"
    "    if str(file).endswith('log.jsonl') and mode == 'r+b':\n"
    "        os._exit(137)\n"
    "    return real(file, mode, *a, **kw)\n"
    "builtins.open = killing\n"
)


@pytest.mark.parametrize("point", ["log-repair-set-aside", "at-truncate"])
def test_a_repair_killed_once_the_cut_line_is_aside_keeps_one_copy(tmp_path, point):
    log, good = _cut_log(tmp_path)
    code = REPAIR.format(path=str(log.path), root=str(tmp_path))
    at_truncate = point == "at-truncate"
    r = run_killable(AT_TRUNCATE + code) if at_truncate else run_killable(code, point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert _asides(log) == [CUT] and log.path.read_bytes() == good + CUT
    aside = log.repair()  # the same command again
    assert aside is not None and aside.read_bytes() == CUT
    assert _asides(log) == [CUT]
    _repaired(log, good)
    assert _asides(log) == [CUT]


def test_a_repair_killed_while_writing_the_copy_completes_that_copy(tmp_path):
    """What a kill during the copy's write leaves (a start of the cut line, or an empty
    file) is completed, not joined by a second copy."""
    for start in (b"", CUT[:11]):
        log, good = _cut_log(tmp_path / str(len(start)))
        begun = log.path.with_name("log.jsonl.cut-20260101T000000000000Z")
        begun.write_bytes(start)
        assert log.repair() == begun
        assert _asides(log) == [CUT]
        _repaired(log, good)


def test_an_earlier_repairs_copy_is_kept_and_a_new_cut_gets_its_own(tmp_path):
    log, good = _cut_log(tmp_path)
    first = log.repair()
    log.append("T", "step2")
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq":3,"st')
    second = log.repair()
    assert second is not None and second != first
    assert sorted(_asides(log)) == sorted([CUT, b'{"seq":3,"st'])
    assert log.verify().ok


def test_cli_repair_killed_then_run_again_says_where_the_one_copy_is(tmp_path):
    init_workspace(tmp_path, "Repair")
    log = Workspace(tmp_path).log
    good = log.path.read_bytes()
    with open(log.path, "ab") as fh:
        fh.write(CUT)
    code = (
        "import sys\nfrom curated.cli import app\n"
        f"sys.argv = ['curated', 'log', {str(tmp_path)!r}, '--repair']\napp()\n"
    )
    assert run_killable(code, "log-repair-set-aside").returncode == EXIT_CODE
    r = CliRunner().invoke(app, ["log", str(tmp_path), "--repair"])
    assert r.exit_code == 0, r.output
    (aside,) = log.path.parent.glob("log.jsonl.cut-*")
    assert aside.name in r.output and aside.read_bytes() == CUT
    assert log.path.read_bytes() == good and log.verify().ok
    r = CliRunner().invoke(app, ["log", str(tmp_path), "--repair"])
    assert "nothing to repair" in r.output
