"""Small writes killed (``kill -9``) between their steps: what a re-run and a bag make of them.

A file written atomically goes to ``.NAME.XXXXXXXX.tmp`` next to its target and is then
renamed; a kill before the rename leaves the temporary file behind, and a kill after the
write but before the curator log entry leaves an unrecorded output. Neither may make a
re-run fail or put half-written bytes into a package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from document_workspaces import make_complete_workspace

from curated._crash import ENV, EXIT_CODE
from curated._io import is_temp_name
from curated.document import write_readme
from curated.errors import InputError
from curated.package import make_bag, validate_bag
from curated.workspace import Workspace

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(code: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(ENV, None)
    if crash:
        env[ENV] = crash
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def complete(tmp_path: Path) -> Workspace:
    return make_complete_workspace(tmp_path / "ws")


KILLED_AT_RENAME = (
    "import os; real = os.replace\n"
    "def replace(src, dst, **kw):\n"
    "    if str(dst).endswith({suffix!r}):\n"
    "        os._exit(137)  # as kill -9 between the temporary file's write and its rename\n"
    "    return real(src, dst, **kw)\n"
    "os.replace = replace\n"
    "from curated.document import write_readme; write_readme({ws!r})\n"
)


def test_a_figure_write_killed_before_its_rename_stays_out_of_the_bag(complete, tmp_path):
    r = _run(KILLED_AT_RENAME.format(suffix=".png", ws=str(complete.root)))
    assert r.returncode == EXIT_CODE, r.stderr
    left = [p for p in (complete.root / "figures").iterdir() if is_temp_name(p.name)]
    assert left  # what the kill left: a temporary file beside the figures
    assert write_readme(complete).status == "ok"
    dest = complete.package_dir / "bag"
    make_bag(complete, dest)
    manifest = (dest / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert ".tmp" not in manifest
    assert not [p for p in (dest / "data" / "figures").iterdir() if is_temp_name(p.name)]
    assert validate_bag(dest).ok


def test_temp_names_are_those_of_atomic_writes_only(tmp_path, monkeypatch):
    import tempfile

    from curated._io import atomic_write_text

    made: list[str] = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(Path(name).name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    atomic_write_text(tmp_path / "cell--mito pred.png", "x")
    assert made and all(is_temp_name(n) for n in made)
    for name in ("cell.png", ".zattrs", ".hidden", "notes.tmp", ".tmp", "a.b.tmp"):
        assert not is_temp_name(name), name


def test_readme_killed_before_its_log_entry_is_rerun_without_force(complete):
    code = f"from curated.document import write_readme; write_readme({str(complete.root)!r})"
    r = _run(code, crash="log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    assert (complete.root / "README.md").is_file()  # written, but not on record
    res = write_readme(complete)  # curated's own README: replaced, not taken for a hand-written one
    assert res.status == "ok"
    assert not list((complete.root / "curation").glob("README.before-*.md"))
    assert Workspace(complete.root).log.verify(files=True).ok
    # a hand edit after such a kill is still noticed
    r = _run(code, crash="log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    readme = complete.root / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nA note.\n", encoding="utf-8")
    with pytest.raises(InputError):
        write_readme(complete)


EVALUATE = (
    "from curated.segment import evaluate; "
    "evaluate({image!r}, pred='pred', truth='truth', label_value=1, blocks=2, block_size=8, "
    "seed=0, name='e1', workspace={ws!r})"
)


def test_evaluation_killed_before_its_log_entry_is_rerun(tmp_path):
    import numpy as np

    from curated.images import add_labels, write_ome_zarr
    from curated.segment import evaluate

    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "Kill"}})
    image = ws.derived_dir / "cell.ome.zarr"
    truth = np.zeros((16, 24, 24), np.uint8)
    truth[2:10, 4:14, 4:14] = 1
    write_ome_zarr((truth * 90 + 40).astype(np.uint8), image, voxel_size=(8.0, 8.0, 8.0), chunks=8)
    add_labels(image, "truth", truth, kind="truth")
    add_labels(
        image,
        "pred",
        truth,
        kind="prediction",
        ai_generated=True,
        model={"id": "m", "sha256": "0" * 64, "card": None},
    )
    r = _run(EVALUATE.format(image=str(image), ws=str(ws.root)), crash="log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    report = ws.evaluations_dir / "e1.json"
    assert report.is_file()  # written, but not on record
    evaluate(
        image,
        pred="pred",
        truth="truth",
        label_value=1,
        blocks=2,
        block_size=8,
        seed=0,
        name="e1",
        workspace=ws,
    )
    assert ws.log.recorded_output(report) is not None
    assert ws.log.verify(files=True).ok
    # a recorded evaluation is still never replaced without --overwrite
    with pytest.raises(InputError):
        evaluate(
            image,
            pred="pred",
            truth="truth",
            label_value=1,
            blocks=2,
            block_size=8,
            seed=0,
            name="e1",
            workspace=ws,
        )
