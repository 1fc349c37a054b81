"""``curated deposit`` on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from curated.cli import app
from tests.fakes import bags
from tests.fakes.figshare import TOKEN, FakeFigshare

runner = CliRunner()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    ws = bags.make_workspace(tmp_path_factory.mktemp("clitpl") / "ws", big=5000)
    bags.bag_workspace(ws)
    return ws


@pytest.fixture
def ws(template, tmp_path):
    return bags.copy_workspace(template, tmp_path / "ws")


def test_dry_run_prints_the_plan_and_sends_nothing(ws):
    with FakeFigshare() as fake:
        res = runner.invoke(
            app,
            [
                "deposit",
                str(ws / "package" / "bag"),
                "--to",
                "figshare",
                "--url",
                fake.url + "/v2",
                "--dry-run",
                "--publish",
            ],
        )
        assert res.exit_code == 0, res.output
        assert (
            "dry run" in res.output
            and "/account/articles" in res.output
            and "publish" in res.output
        )
        assert '"defined_type": "dataset"' in res.output
        assert fake.calls == []
    assert not (ws / "package" / "bag.zip").exists()


def test_deposit_to_a_folder_repository(ws, tmp_path):
    repo = tmp_path / "repo"
    res = runner.invoke(
        app,
        [
            "deposit",
            str(ws / "package" / "bag"),
            "--to",
            "directory",
            "--url",
            str(repo),
            "--publish",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    assert receipt["status"] == "published"
    index = json.loads((repo / "index.json").read_text())
    rec = index["records"][receipt["record_id"]]
    assert rec["versions"][0]["status"] == "published"
    copied = repo / rec["versions"][0]["path"] / "bag" / "bagit.txt"
    assert copied.read_bytes() == (ws / "package" / "bag" / "bagit.txt").read_bytes()
    assert not (repo / ".drafts" / f"{receipt['record_id']}-v1").exists()


def test_missing_credential_names_the_variable(ws, monkeypatch):
    monkeypatch.delenv("FIGSHARE_TOKEN", raising=False)
    res = runner.invoke(
        app,
        [
            "deposit",
            str(ws / "package" / "bag"),
            "--to",
            "figshare",
            "--url",
            "https://127.0.0.1:9/v2",
        ],
    )
    assert res.exit_code == 1
    assert "FIGSHARE_TOKEN" in res.output


def test_wrong_token_message_has_no_token(ws, monkeypatch):
    monkeypatch.setenv("MY_FS", "not-the-right-token-42")
    with FakeFigshare() as fake:
        res = runner.invoke(
            app,
            [
                "deposit",
                str(ws / "package" / "bag"),
                "--to",
                "figshare",
                "--url",
                fake.url + "/v2",
                "--token-env",
                "MY_FS",
            ],
        )
    assert res.exit_code == 1
    assert "$MY_FS" in res.output and "not-the-right-token-42" not in res.output
    assert TOKEN not in res.output


def test_unknown_target_is_a_usage_error(ws):
    res = runner.invoke(
        app, ["deposit", str(ws / "package" / "bag"), "--to", "sword", "--url", "x"]
    )
    assert res.exit_code == 2


def test_folder_repository_given_as_a_relative_path(ws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(
        app,
        ["deposit", str(ws / "package" / "bag"), "--to", "directory", "--url", "repo", "--publish"],
    )
    assert res.exit_code == 0, res.output
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    # recorded relative to the workspace: no absolute path of the curator's machine
    assert not receipt["record_url"].startswith(("/", "file:"))
    assert (ws / receipt["record_url"]).is_dir()
    assert (tmp_path / "repo" / "index.json").is_file()
