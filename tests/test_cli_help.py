"""Every ``--help`` holds as written: defaults shown, flags without a value type, help on every option."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from curated.cli import app


@pytest.fixture(autouse=True)
def _normal_verbosity():
    """--quiet / -v set process-wide state; leave it as other tests expect."""
    from curated.cli._common import set_verbosity

    yield
    set_verbosity(quiet=False, verbose=0)


# Commands that print no result record of their own, and why.
NO_RESULT = {}


def _commands() -> list[tuple[tuple[str, ...], object]]:
    root = typer.main.get_command(app)
    out = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            out.append((path, cmd))

    walk(root, ())
    return out


COMMANDS = _commands()
IDS = [" ".join(p) for p, _ in COMMANDS]


def _help(path: tuple[str, ...]) -> str:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    return re.sub(r"\s+", " ", r.output)


def _options(cmd: object) -> list:
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def test_the_cli_has_the_documented_commands():
    assert {"init", "check", "convert", "segment train", "bag validate", "deposit"} <= set(IDS)


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_option_has_help_and_shows_its_default(path, cmd):
    text = _help(path)
    assert "<bool>" not in text, "a flag takes no value, so help must not show a type"
    for opt in _options(cmd):
        assert opt.help, f"{' '.join(path)} {opt.opts[0]} has no help"
        for literal in re.findall(r"\[default: [^\]]*\]", opt.help):
            assert literal in text, f"{opt.opts[0]}: {literal} is lost from --help"
        if opt.is_flag or opt.default is None or opt.count or opt.required:
            continue
        default = opt.default
        shown = (
            ", ".join(str(d) for d in default)
            if isinstance(default, list | tuple)
            else str(getattr(default, "value", default))
        )
        assert f"[default: {shown}]" in text, f"{' '.join(path)} {opt.opts[0]} hides its default"


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_command_that_reports_a_result_takes_json(path, cmd):
    if " ".join(path) in NO_RESULT:
        pytest.skip(NO_RESULT[" ".join(path)])
    assert "--json" in {o for p in _options(cmd) for o in p.opts}, f"{' '.join(path)} lacks --json"


def test_training_iterations_default_is_readable():
    # Rich once read "[default: 600]" as markup and printed "Training iterations ."
    text = _help(("segment", "train"))
    assert "Training iterations ." not in text
    assert re.search(r"Training iterations \[default: \d+\]", text)


def test_global_quiet_prints_only_errors(tmp_path):
    r = CliRunner().invoke(app, ["--quiet", "init", str(tmp_path / "ws"), "--title", "T"])
    assert r.exit_code == 0
    assert r.stdout == ""
    r = CliRunner().invoke(app, ["-q", "metadata", "set", str(tmp_path / "ws"), "study.nope", "1"])
    assert r.exit_code == 1
    assert "error:" in r.stderr and r.stdout == ""


def test_global_quiet_keeps_json(tmp_path):
    r = CliRunner().invoke(app, ["-q", "init", str(tmp_path / "ws"), "--title", "T", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["action"] == "init" and "study.description" in data["details"]["still_missing"]


def test_verbose_logs_to_stderr_and_is_reset_between_runs(tmp_path):
    import logging

    r = CliRunner().invoke(app, ["-vv", "init", str(tmp_path / "ws"), "--title", "T"])
    assert r.exit_code == 0
    assert logging.getLogger("curated").level == logging.DEBUG
    r = CliRunner().invoke(app, ["init", str(tmp_path / "ws2"), "--title", "T"])
    assert logging.getLogger("curated").level == logging.WARNING
    assert "workspace created" in r.stdout


def test_metadata_set_json(tmp_path):
    CliRunner().invoke(app, ["init", str(tmp_path / "ws"), "--title", "T"])
    r = CliRunner().invoke(
        app, ["metadata", "set", str(tmp_path / "ws"), "study.license", "CC0-1.0", "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["action"] == "set" and data["status"] == "ok"


def test_demo_prints_wall_and_cpu_time_per_stage(tmp_path, monkeypatch):
    import curated.demo as demo_mod
    from curated.demo import DemoReport, DemoStage

    def fake_run_demo(dest, *, on_stage=None, **kwargs):
        report = DemoReport(dest=Path(dest))
        for name, wall, cpu in (("convert", 2.5, 4.75), ("train", 10.0, 19.5)):
            st = DemoStage(name=name, step="T", status="ok", seconds=wall, cpu_seconds=cpu)
            report.stages.append(st)
            on_stage(st)
        return report

    monkeypatch.setattr(demo_mod, "run_demo", fake_run_demo)
    r = CliRunner().invoke(app, ["demo", str(tmp_path / "d")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "convert  wall 2.5 s, CPU 4.8 s" in r.stdout
    assert "total: wall 12.5 s, CPU 24.2 s" in r.stdout
    r = CliRunner().invoke(app, ["demo", str(tmp_path / "d"), "--json"])
    data = json.loads(r.stdout)
    assert [s["cpu_seconds"] for s in data["stages"]] == [4.75, 19.5]
