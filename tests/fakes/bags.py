"""Test bags: a tiny workspace packed with the real ``curated.package.make_bag``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

RECORD = Path(__file__).resolve().parents[1] / "data" / "crosswalk" / "record.yaml"


def record() -> dict[str, Any]:
    return yaml.safe_load(RECORD.read_text(encoding="utf-8"))


def make_workspace(root: Path, *, big: int = 200_000) -> Path:
    """A workspace with a few derived files (one spanning several upload parts)."""
    from curated.workspace import Workspace

    ws = Workspace.create(root, record=record())
    (ws.derived_dir / "volume.bin").write_bytes(os.urandom(big))
    (ws.derived_dir / "evaluations").mkdir()
    (ws.derived_dir / "evaluations" / "eval.json").write_text('{"dice": 0.91}\n')
    return root


def bag_workspace(ws: Path, name: str = "bag", **kwargs: Any) -> Path:
    """Pack ``ws`` into ``ws/package/<name>`` (``.zip`` when ``serialize="zip"``)."""
    from curated.package import make_bag

    res = make_bag(ws, ws / "package" / name, **kwargs)
    assert res.ok, res.message
    return Path(res.path)


def copy_workspace(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def bagged_template(tmp_path_factory: Any, *, big: int) -> Path:
    """A workspace with one file of ``big`` bytes, bagged (``package/bag``), for a module's
    deposit tests to copy (:func:`copy_workspace`) instead of bagging again per test."""
    ws = make_workspace(tmp_path_factory.mktemp("tpl") / "ws", big=big)
    bag_workspace(ws)
    return ws
