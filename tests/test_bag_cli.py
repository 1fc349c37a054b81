"""`curated bag WORKSPACE DEST` and `curated bag validate BAG` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from test_bag_helpers import assert_valid_everywhere, build_workspace
from typer.testing import CliRunner

from curated.cli import app

runner = CliRunner()


def test_bag_then_validate_from_the_command_line(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws")
    bag = tmp_path / "bag"
    res = runner.invoke(
        app,
        [
            "bag",
            str(ws.root),
            str(bag),
            "--processes",
            "2",
            "--info",
            "Organization-Address=1 Main St",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Organization-Address: 1 Main St" in (bag / "bag-info.txt").read_text()
    assert_valid_everywhere(bag)
    res = runner.invoke(app, ["bag", "validate", str(bag)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output
    res = runner.invoke(
        app, ["bag", "validate", str(bag), "--fast", "--profile", "curated", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["details"]["fast"] is True
    # the explicit subcommand name works too
    res = runner.invoke(
        app,
        [
            "bag",
            "create",
            str(ws.root),
            str(tmp_path / "bag2"),
            "--zarr",
            "archive",
            "--serialize",
            "zip",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bag2.zip").is_file()
    # a damaged bag exits 1 and says why
    (bag / "data" / "README.md").unlink()
    res = runner.invoke(app, ["bag", "validate", str(bag)])
    assert res.exit_code == 1
    assert "Payload-Oxum" in res.output or "missing" in res.output


def test_bag_cli_errors(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "bagit.txt").write_text("x")
    res = runner.invoke(app, ["bag", str(ws.root), str(tmp_path / "taken")])
    assert res.exit_code == 1 and "already exists" in res.output
    res = runner.invoke(app, ["bag", str(ws.root), str(ws.root / "inside")])
    assert res.exit_code == 1 and "inside the workspace" in res.output
    res = runner.invoke(app, ["bag", str(ws.root), str(tmp_path / "b"), "--zarr", "tarball"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["bag", "validate", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "no such bag" in res.output


def test_bag_help_shows_both_forms() -> None:
    res = runner.invoke(app, ["bag", "--help"])
    assert res.exit_code == 0
    assert "WORKSPACE DEST" in res.output and "validate BAG" in res.output
    res = runner.invoke(app, ["bag", "validate", "--help"])
    assert res.exit_code == 0 and "--fast" in res.output and "--profile" in res.output
    res = runner.invoke(app, ["bag", "create", "--help"])
    assert res.exit_code == 0 and "--fetch-base" in res.output and "--serialize" in res.output
