"""Who acted is recorded: asked once by `curated init --curator`, kept in the user's config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.metadata.edit import set_field
from curated.workspace import Workspace

ORCID = "0000-0002-1825-0097"


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("CURATED_AGENT_NAME", raising=False)
    monkeypatch.delenv("CURATED_AGENT_ORCID", raising=False)
    path = tmp_path / "config" / "curated.yaml"
    monkeypatch.setenv("CURATED_CONFIG", str(path))
    return path


def test_init_asks_once_and_every_later_entry_names_the_curator(tmp_path, config):
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["init", str(tmp_path / "a"), "--title", "A", "--curator", "Ada Curator", "--orcid", ORCID],
    )
    assert res.exit_code == 0, res.output
    assert config.is_file()
    res = runner.invoke(app, ["init", str(tmp_path / "b"), "--title", "B"])
    assert res.exit_code == 0, res.output
    assert "nobody is recorded" not in res.output
    set_field(tmp_path / "b", "study.title", "Bee")
    for ws in ("a", "b"):
        for entry in Workspace(tmp_path / ws).log:
            assert entry["agent"] == {"name": "Ada Curator", "orcid": ORCID}


def test_init_without_a_curator_says_how_to_record_one(tmp_path, config):
    res = CliRunner().invoke(app, ["init", str(tmp_path / "a"), "--title", "A"])
    assert res.exit_code == 0
    assert "nobody is recorded as the curator" in res.output


def test_environment_overrides_the_config(tmp_path, config, monkeypatch):
    CliRunner().invoke(app, ["init", str(tmp_path / "a"), "--title", "A", "--curator", "Ada"])
    monkeypatch.setenv("CURATED_AGENT_NAME", "CI job")
    set_field(tmp_path / "a", "study.title", "X")
    assert Workspace(tmp_path / "a").log.last()["agent"]["name"] == "CI job"


def test_a_wrong_orcid_is_one_clear_error(tmp_path, config):
    res = CliRunner().invoke(
        app,
        [
            "init",
            str(tmp_path / "a"),
            "--title",
            "A",
            "--curator",
            "Ada",
            "--orcid",
            "0000-0002-1825-0098",
        ],
    )
    assert res.exit_code == 1
    assert "checksum" in res.output and "Traceback" not in res.output
    assert not config.exists()
