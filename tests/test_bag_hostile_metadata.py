"""A hostile or mistaken curated.yaml gives one clear error or a clean bag-info.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_bag_helpers import build_workspace, copy_workspace
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import PackageError
from curated.package import make_bag, validate_bag


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bag-meta") / "ws"
    build_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path):
    return copy_workspace(template, tmp_path / "ws")


def _edit(ws, fn) -> None:
    rec = yaml.safe_load(ws.metadata_path.read_text())
    fn(rec)
    ws.metadata_path.write_text(yaml.safe_dump(rec, allow_unicode=True))


def test_study_of_the_wrong_shape_is_named(ws, tmp_path):
    _edit(ws, lambda r: r.__setitem__("study", 5))
    with pytest.raises(PackageError, match="study: Input should be a valid dictionary"):
        make_bag(ws, tmp_path / "bag")
    res = CliRunner().invoke(app, ["bag", str(ws.root), str(tmp_path / "bag")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert not (tmp_path / "bag").exists()


def test_control_and_bidi_characters_never_reach_bag_info(ws, tmp_path):
    def hostile(r):
        r["study"]["title"] = "Cells\x00 of \u202eevil\u202c HeLa"
        r["study"]["description"] = "A description\x1b[31m with an escape"

    _edit(ws, hostile)
    bag = Path(make_bag(ws, tmp_path / "bag").path)
    info = (bag / "bag-info.txt").read_bytes()
    for bad in (b"\x00", "\u202e".encode(), "\u202c".encode(), b"\x1b"):
        assert bad not in info
    assert "Cells of evil HeLa" in info.decode()
    assert validate_bag(bag).ok
