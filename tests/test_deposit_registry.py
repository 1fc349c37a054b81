"""The registry of deposit targets: every ``--to`` value has exactly one entry, and the
entry alone decides the adapter, credential, crosswalk and limits profile."""

from __future__ import annotations

import re

import pytest
import typer

from curated.cli import app
from curated.deposit import DEFAULT_TOKEN_ENV, LIMITS, TARGETS, make_repository
from curated.deposit.core import DSPACE_USER_ENV
from curated.deposit.targets import REGISTRY, get_target
from curated.errors import InputError
from tests.fakes import bags


def _cli_targets() -> list[str]:
    """The ``--to`` choices ``curated deposit --help`` offers."""
    command = typer.main.get_command(app).commands["deposit"]  # type: ignore[attr-defined]
    to = next(p for p in command.params if p.name == "to")
    return re.findall(r"[a-z]+", to.help)


def test_every_cli_target_is_registered_and_nothing_else():
    cli = _cli_targets()
    assert cli and set(cli) == set(REGISTRY) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_entry_makes_its_adapter(name, tmp_path):
    spec = get_target(name)
    url = str(tmp_path / "repo") if spec.local else "https://repo.example.org/api"
    repo = make_repository(
        name, url, token=None if spec.local else "t0ken-xyz", token_env=spec.token_env, target=None
    )
    try:
        assert repo.kind == name or (name == "zenodo" and repo.kind == "zenodo")
        assert isinstance(repo, spec.adapter_class())
        assert repo.keeps_folders == spec.keeps_folders()
    finally:
        repo.close()
    assert spec.limits in LIMITS
    assert (spec.token_env is None) == spec.local
    if spec.token_env:
        assert DEFAULT_TOKEN_ENV[name] == spec.token_env


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_entry_shapes_the_record(name):
    record = bags.record()
    spec = get_target(name)
    assert spec.missing(record) == []
    shaped = spec.metadata(record, None, today="2026-11-23")
    if spec.crosswalk is None:
        assert shaped is record
    else:
        assert shaped != record and shaped
        assert spec.missing({"study": {}})  # the crosswalk names what a record lacks


def test_zenodo_is_an_invenio_instance_named_zenodo():
    repo = make_repository(
        "zenodo", "https://zenodo.org", token="t0ken-xyz", token_env="ZENODO_TOKEN", target=None
    )
    assert repo.kind == "zenodo" and repo.name == "Zenodo"  # type: ignore[attr-defined]
    repo.close()


def test_dspace_account_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(DSPACE_USER_ENV, "someone@example.org")
    repo = make_repository(
        "dspace", "https://repo.example.org/server", token="pw-123456", token_env="X", target="c"
    )
    assert repo.user == "someone@example.org"  # type: ignore[attr-defined]
    repo.close()
    repo = make_repository(
        "dspace",
        "https://repo.example.org/server",
        token="pw-123456",
        token_env="X",
        target="c",
        options={"user": "other@example.org"},
    )
    assert repo.user == "other@example.org"  # type: ignore[attr-defined]
    repo.close()


def test_unknown_target_is_one_clear_error():
    with pytest.raises(
        InputError, match="unknown deposit target 'ftp'; choose one of invenio, zenodo"
    ):
        get_target("ftp")
