"""Small writes killed (``kill -9``) between their steps: what a re-run and a bag make of them.

A file written atomically goes to ``.NAME.XXXXXXXX.tmp`` next to its target and is then
renamed; a kill before the rename leaves the temporary file behind, and a kill after the
write but before the curator log entry leaves an unrecorded output. Neither may make a
re-run fail or put half-written bytes into a package.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from crash_helpers import run_killable
from document_workspaces import make_complete_workspace

from curated._crash import EXIT_CODE
from curated._io import is_temp_name
from curated.document import write_readme
from curated.errors import InputError
from curated.package import make_bag, validate_bag
from curated.workspace import Workspace

_run = run_killable


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
    same = {"pred": "pred", "truth": "truth", "label_value": 1, "blocks": 2, "block_size": 8}
    evaluate(image, **same, seed=0, name="e1", workspace=ws)
    assert ws.log.recorded_output(report) is not None
    assert ws.log.verify(files=True).ok
    # a recorded evaluation is still never replaced without --overwrite
    with pytest.raises(InputError):
        evaluate(image, **same, seed=0, name="e1", workspace=ws)


LABELS_ADD = (
    "import numpy as np; from curated.images import add_labels; "
    "t = np.zeros((16, 24, 24), np.uint8); t[2:10, 4:14, 4:14] = 1; "
    "add_labels({image!r}, 'hand', t, kind='truth', workspace={ws!r})"
)


def _image_workspace(tmp_path: Path) -> tuple[Workspace, Path]:
    import numpy as np

    from curated.images import write_ome_zarr

    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "Kill"}})
    image = ws.derived_dir / "cell.ome.zarr"
    rng = np.random.default_rng(0)
    write_ome_zarr(
        rng.integers(0, 255, (16, 24, 24), dtype=np.uint8),
        image,
        voxel_size=(8.0, 8.0, 8.0),
        chunks=8,
    )
    return ws, image


def test_labels_add_killed_before_its_log_entry_is_resumed_and_logged(tmp_path):
    from curated.images.store import is_incomplete

    ws, image = _image_workspace(tmp_path)
    code = LABELS_ADD.format(image=str(image), ws=str(ws.root))
    r = _run(code, crash="log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    r = _run(code)  # resumed (nothing left to write) and logged, never "already exists"
    assert r.returncode == 0, r.stderr
    dest = image / "labels" / "hand"
    assert not is_incomplete(dest)
    assert ws.log.recorded_output(dest) is not None
    assert ws.log.verify(files=True).ok


KILLED_IN_JOURNAL_REMOVAL = (
    "import os, shutil\n"
    "from pathlib import Path\n"
    "real = shutil.rmtree\n"
    "def rmtree(path, *a, **kw):\n"
    "    if str(path).endswith('.curated-progress'):\n"
    "        Path(path, 'plan.json').unlink(missing_ok=True)  # the removal got that far\n"
    "        os._exit(137)\n"
    "    return real(path, *a, **kw)\n"
    "shutil.rmtree = rmtree\n"
    "from curated.images import convert_to_ome_zarr\n"
    "convert_to_ome_zarr({src!r}, {dest!r}, voxel_size=(8, 8, 8), chunks=8, shard=16, "
    "workers=1, workspace={ws!r})\n"
)


def test_convert_killed_while_removing_its_journal_leaves_a_usable_store(tmp_path):
    import numpy as np
    import tifffile

    from curated.images.store import is_incomplete
    from curated.provenance.digest import digest_tree

    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, np.random.default_rng(1).integers(0, 255, (16, 24, 24), np.uint8))
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "Kill"}})
    dest = ws.derived_dir / "stack.ome.zarr"
    code = KILLED_IN_JOURNAL_REMOVAL.format(src=str(src), dest=str(dest), ws=str(ws.root))
    r = _run(code)
    assert r.returncode == EXIT_CODE, r.stderr
    assert ws.log.verify(files=True).ok  # logged before the journal goes
    code = code.replace("shutil.rmtree = rmtree\n", "")
    _run(code)  # a finished conversion: the re-run only clears what the kill left
    assert not (dest / ".curated-progress").exists()
    assert not is_incomplete(dest)
    assert ws.log.verify(files=True).ok
    assert ws.log.recorded_output(dest).digest == digest_tree(dest).digest


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs (atomic_write cleans only its temp file)."""


def test_training_checkpoint_killed_between_its_two_files_resumes(tmp_path, monkeypatch):
    import torch

    from curated.segment import modelio

    folder = tmp_path / "model"
    folder.mkdir()
    modelio.save_checkpoint(folder, {"iteration": 10, "w": torch.zeros(3)}, "run-1")
    real = os.replace
    calls = []

    def replace(src, dst, **kw):
        calls.append(dst)
        if len(calls) == 2:  # the second of the checkpoint's two files
            raise _Killed
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        modelio.save_checkpoint(folder, {"iteration": 20, "w": torch.ones(3)}, "run-1")
    monkeypatch.setattr(os, "replace", real)
    got = modelio.load_checkpoint(folder, "run-1")  # never "corrupt": one of the two, whole
    assert got is not None and int(got["iteration"]) in (10, 20)
    assert torch.equal(got["w"], torch.zeros(3) if got["iteration"] == 10 else torch.ones(3))
    # a changed file is still refused
    (folder / modelio.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt"):
        modelio.load_checkpoint(folder, "run-1")


def test_first_training_checkpoint_killed_between_its_two_files_starts_over(tmp_path, monkeypatch):
    import torch

    from curated.segment import modelio

    folder = tmp_path / "model"
    folder.mkdir()
    real = os.replace
    calls = []

    def replace(src, dst, **kw):
        calls.append(dst)
        if len(calls) == 2:
            raise _Killed
        return real(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        modelio.save_checkpoint(folder, {"iteration": 10, "w": torch.zeros(3)}, "run-1")
    monkeypatch.setattr(os, "replace", real)
    got = modelio.load_checkpoint(folder, "run-1")
    assert got is None or int(got["iteration"]) == 10


def test_finished_label_image_keeps_no_partial_chunk_of_a_killed_writer(tmp_path):
    """zarr writes a shard to ``KEY.<uuid>.partial`` and renames it; a blockwise writer (a
    prediction) killed in between leaves that file. Finishing the label image removes it, so
    the finished store equals one written without the kill."""
    import numpy as np

    from curated.images import create_label_image, finalize_label_image
    from curated.provenance.digest import digest_tree

    digests = []
    for i, killed in enumerate((False, True)):
        _, image = _image_workspace(tmp_path / f"run{i}")
        arr = create_label_image(image, "pred", model={"id": "m", "sha256": "0" * 64})
        arr[:] = np.ones(arr.shape, dtype=arr.dtype)
        if killed:
            shard = next(
                p for p in (image / "labels" / "pred" / "0" / "c").rglob("*") if p.is_file()
            )
            (shard.parent / f"{shard.name}.{'ab' * 16}.partial").write_bytes(b"half a shard")
        finalize_label_image(image, "pred")
        pred = image / "labels" / "pred"
        assert not list(pred.rglob("*.partial"))
        digests.append(digest_tree(pred).digest)
    assert digests[0] == digests[1]


def test_a_full_disk_while_writing_a_shard_names_the_shard(tmp_path, monkeypatch):
    import errno

    from curated.objstore import LocalSink

    sink = LocalSink(tmp_path / "x.ome.zarr")
    (sink.root / ".curated-progress").mkdir(parents=True)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as exc:
        sink.put("0/c/0/0/0", b"shard")
    assert exc.value.errno == errno.ENOSPC
    assert exc.value.filename == str(sink.root / "0/c/0/0/0")
    assert not (sink.root / "0/c/0/0/0").exists()


def test_a_full_disk_while_bagging_names_the_bag_and_leaves_no_bag(complete, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file

    monkeypatch.setattr("curated.package.bag._write_metadata", full)
    dest = complete.package_dir / "bag"
    with pytest.raises(OSError) as exc:
        make_bag(complete, dest)
    assert exc.value.errno == errno.ENOSPC
    assert exc.value.filename is not None and "bag" in exc.value.filename
    assert not dest.exists()
    monkeypatch.undo()
    make_bag(complete, dest)
    assert validate_bag(dest).ok
