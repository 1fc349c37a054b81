"""Run Python code in a subprocess that ``CURATED_CRASH_AT`` may kill at a named point.

One runner for the kill tests (``test_crash_points``, ``test_crash_sweep``,
``test_killed_writes``, ``test_killed_writes_more``): the child imports this checkout's
``src`` (and ``tests.fakes`` from the repository root), and is killed with ``os._exit``
(:data:`curated._crash.EXIT_CODE`, as ``kill -9``) at ``crash`` when one is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from curated._crash import ENV

ROOT = str(Path(__file__).resolve().parents[1])
SRC = str(Path(ROOT) / "src")


def run_killable(
    code: str, crash: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with ``env`` added, killed at ``crash`` (``None``: runs to the end)."""
    full = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, ROOT, os.environ.get("PYTHONPATH", "")]),
    }
    full.update(env or {})
    full.pop(ENV, None)
    if crash:
        full[ENV] = crash
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120
    )


def copy_tree(template: Path, dest: Path) -> Path:
    """A copy of a module's template workspace for one test (links kept as links)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def log_verifies(ws: Path) -> None:
    """The workspace's curator log verifies, every recorded file checked against it."""
    from curated.workspace import Workspace

    report = Workspace(ws).log.verify(files=True)
    assert report.ok, report.problems
