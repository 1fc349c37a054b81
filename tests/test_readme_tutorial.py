"""The README's tutorial runs as written: every command of its bash block, in order.

Stand-ins replace what only a user has: the demo's raw files (generated small here),
``my_crop.tif`` (a crop cut from the truth labels) and ``REPOSITORY`` (a folder under
tmp). Training runs a few iterations instead of the default, to keep the suite fast;
nothing else in the commands is changed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
FAST = ["--iterations", "3"]
TRAIN_FAST = [*FAST, "--local-contrast", "16"]
"""Training also normalises over 128 nm instead of the default 400 nm: the wider halo costs
this small test minutes of CPU, and what the tutorial checks is the commands, not the model."""


def tutorial_commands(text: str) -> list[str]:
    """The logical lines (continuations joined) of the first bash block under the tutorial heading."""
    section = text.split("## Tutorial", 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    lines: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        try:
            shlex.split(line, comments=True)
        except ValueError:  # a quoted argument goes on to the next line, as bash allows
            pending = line + " "
            continue
        pending = ""
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _expand(token: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: env[m.group(1)], token)


def _make_stand_ins(root: Path) -> None:
    from curated.segment import generate_fibsem

    raw = root / "demo-out" / "raw"
    raw.mkdir(parents=True)
    sample = generate_fibsem((64, 192, 192), (8.0, 8.0, 8.0), seed=0)
    image, truth = np.asarray(sample.image), np.asarray(sample.truth)
    um = {"PhysicalSizeX": 0.008, "PhysicalSizeY": 0.008, "PhysicalSizeZ": 0.008}
    units = {f"{k}Unit": "µm" for k in um}
    tifffile.imwrite(
        raw / "cell01_fibsem.ome.tif",
        image,
        bigtiff=True,
        photometric="minisblack",
        metadata={"axes": "ZYX", **um, **units},
    )
    tifffile.imwrite(raw / "cell01_truth_labels.tif", truth, photometric="minisblack")
    (raw / "NOTES.txt").write_text("Synthetic FIB-SEM stack. truth: 1 mitochondria, 2 nucleus.\n")
    # the user's own crop at the README's offset 16 72 8 (clear of the held-out blocks)
    crop = (truth[16:32, 72:104, 8:40] == 1).astype(np.uint8)
    tifffile.imwrite(root / "my_crop.tif", crop)


def _run(line: str, env: dict[str, str], runner: CliRunner) -> str:
    args = [_expand(t, env) for t in shlex.split(line, comments=True)]
    assert args[0] == "curated", f"not a curated command: {line}"
    args = args[1:]
    if args[:2] == ["segment", "train"]:
        args += TRAIN_FAST
    elif args[:2] == ["segment", "finetune"]:
        args += FAST
    if "--url" in args:  # never deposit outside the test's folder
        assert args[args.index("--url") + 1].startswith(env["REPOSITORY"]), line
    r = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 0, f"`{line}` exited {r.exit_code}:\n{r.output}\n{r.exception!r}"
    return r.stdout


def test_tutorial_has_no_unflagged_placeholders():
    text = README.read_text(encoding="utf-8")
    block = text.split("## Tutorial", 1)[1].split("\n```\n", 1)[0]
    for placeholder in ("my_crop.tif", "REPOSITORY=/srv/repository"):
        before = block.split(placeholder, 1)[0].splitlines()[-3:]
        assert any("placeholder" in ln for ln in before), f"{placeholder} is not flagged"
    assert "/srv/repository" not in block.split("REPOSITORY=/srv/repository", 1)[1]
    assert "SEQ:sha256:...'" not in block  # no literal head to paste


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~25 s of CPU; the margin is for a shared, loaded machine
def test_readme_tutorial_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _make_stand_ins(tmp_path)
    stand_in = tmp_path / "repository"
    env = {"REPOSITORY": str(stand_in)}
    runner = CliRunner()
    commands = tutorial_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 25
    for line in commands:
        assign = re.fullmatch(r"(\w+)=(.*?)(\s+#.*)?", line)
        if assign and assign.group(2).startswith("$("):
            env[assign.group(1)] = _run(assign.group(2)[2:-1], env, runner).strip()
        elif assign:
            # a placeholder the README sets (REPOSITORY=/srv/...) keeps its stand-in here
            env.setdefault(assign.group(1), shlex.split(assign.group(2))[0])
        else:
            _run(line, env, runner)
    ws = tmp_path / "ws"
    assert (ws / "derived" / "models" / "mito-v2.bioimageio.zip").is_file()
    assert re.fullmatch(r"\d+:sha256:[0-9a-f]{64}", env["HEAD"])
    request = (ws / "curation" / "request.md").read_text()
    assert "README" not in request  # NOTES.txt counts as documentation
    shipped = json.loads(
        (ws / "package" / "cell01-bag" / "data" / "curation" / "fair.json").read_text()
    )
    status = {m["id"]: m["status"] for m in shipped["metrics"]}
    assert status["FsF-I1-01M"] == "pass" and status["FsF-R1-01MD"] == "pass"
    assert any(stand_in.iterdir())
    receipt = json.loads((ws / "package" / "receipt.json").read_text())
    # the receipt names the repository relative to the workspace: no local folder leaks
    assert (ws / receipt["url"]).resolve() == stand_in.resolve()
    assert str(tmp_path) not in json.dumps(receipt)
