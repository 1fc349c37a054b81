"""More commands killed (``kill -9``) part way, then run again: nothing of the curator's is
lost, the re-run succeeds and ends as an uninterrupted run, and the log verifies.

The kill is the ``CURATED_CRASH_AT`` hook (:mod:`curated._crash`), in a subprocess.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from crash_helpers import copy_tree, run_killable

from curated._crash import EXIT_CODE
from curated.metadata import init_workspace
from curated.results import Result
from curated.segment import (
    annotate_from_truth,
    import_annotation,
    make_fibsem_sample,
    read_annotation_rois,
)
from curated.workspace import Workspace

_run = run_killable


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose sample image has a sparse annotation ``ann`` of one crop."""
    ws = tmp_path_factory.mktemp("killed") / "ws"
    init_workspace(ws, "Killed annotations")
    image = ws / "derived" / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 32, 32), chunks=8, shard=16, workspace=ws)
    annotate_from_truth(image, crops=1, size=6, seed=0, name="ann", workspace=ws)
    return ws


def _level0(ws: Path, name: str) -> np.ndarray:
    return np.asarray(zarr.open_array(ws / "derived" / "cell.ome.zarr" / "labels" / name / "0"))


def _actions(ws: Path, action: str) -> list[str]:
    return [e["status"] for e in Workspace(ws).log.entries() if e["action"] == action]


FROM_TRUTH = (
    "from curated.segment import annotate_from_truth\n"
    "annotate_from_truth({image!r}, crops=1, size=6, seed=1, name='ann', workspace={ws!r})\n"
)


def test_adding_crops_killed_mid_write_keeps_the_earlier_annotation(annotated, tmp_path):
    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    before = _level0(ws, "ann")
    rois_before = read_annotation_rois(image, "ann")
    r = _run(FROM_TRUTH.format(image=str(image), ws=str(ws)), "shard-written")
    assert r.returncode == EXIT_CODE, r.stderr
    # the same command again: the earlier crop is still there, the new one added once
    annotate_from_truth(image, crops=1, size=6, seed=1, name="ann", workspace=ws)
    clean = copy_tree(annotated, tmp_path / "clean")
    annotate_from_truth(
        clean / "derived" / "cell.ome.zarr", crops=1, size=6, seed=1, name="ann", workspace=clean
    )
    after = _level0(ws, "ann")
    assert np.array_equal(after, _level0(clean, "ann"))
    rois = read_annotation_rois(image, "ann")
    assert rois[: len(rois_before)] == rois_before and len(rois) == len(rois_before) + 1
    kept = before != 255
    assert np.array_equal(after[kept], before[kept])
    assert _actions(ws, "annotate-from-truth") == ["ok", "ok"]
    assert Workspace(ws).log.verify(files=True).ok
    assert not [p for p in image.parent.iterdir() if p.name.startswith(".")]


def test_an_import_killed_before_its_log_entry_is_not_added_twice(annotated, tmp_path):
    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    crop = np.zeros((4, 5, 5), dtype=np.uint8)
    crop[1:3, 1:4, 1:4] = 1
    np.save(tmp_path / "crop.npy", crop)
    code = (
        "from curated.segment import import_annotation\n"
        f"import_annotation({str(image)!r}, source_file={str(tmp_path / 'crop.npy')!r}, "
        f"offset=(10, 20, 20), name='mine', workspace={str(ws)!r})\n"
    )
    r = _run(code, "log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    import_annotation(
        image, source_file=tmp_path / "crop.npy", offset=(10, 20, 20), name="mine", workspace=ws
    )
    assert len(read_annotation_rois(image, "mine")) == 1
    assert _actions(ws, "annotate-import") == ["ok"]
    assert Workspace(ws).log.verify(files=True).ok


SAMPLE = (
    "from curated.segment import make_fibsem_sample\n"
    "make_fibsem_sample({dest!r}, shape=(16, 32, 32), chunks=8, shard=16, workspace={ws!r})\n"
)


@pytest.mark.parametrize("crash", ["shard-written", "log-append"])
def test_a_sample_killed_part_way_is_made_by_the_same_command_again(tmp_path, crash):
    from curated.errors import InputError
    from curated.provenance.digest import digest_tree

    ws = tmp_path / "ws"
    init_workspace(ws, "Killed sample")
    dest = ws / "derived" / "cell.ome.zarr"
    r = _run(SAMPLE.format(dest=str(dest), ws=str(ws)), crash)
    assert r.returncode == EXIT_CODE, r.stderr
    assert dest.exists()
    make_fibsem_sample(dest, shape=(16, 32, 32), chunks=8, shard=16, workspace=ws)
    clean = tmp_path / "clean.ome.zarr"
    make_fibsem_sample(clean, shape=(16, 32, 32), chunks=8, shard=16)
    assert digest_tree(dest).digest == digest_tree(clean).digest
    assert _actions(ws, "sample-fibsem") == ["ok"]
    assert Workspace(ws).log.verify(files=True).ok
    with pytest.raises(InputError, match="exists already"):  # a finished one stays
        make_fibsem_sample(dest, shape=(16, 32, 32), chunks=8, shard=16, workspace=ws)


def test_an_init_killed_before_its_log_entry_is_finished_by_the_same_command(tmp_path):
    from curated.errors import WorkspaceError

    ws = tmp_path / "ws"
    code = f"from curated.metadata import init_workspace; init_workspace({str(ws)!r}, 'A study')\n"
    r = _run(code, "log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    assert (ws / "curated.yaml").exists()
    init_workspace(ws, "A study")
    clean = init_workspace(tmp_path / "clean", "A study")
    assert (ws / "curated.yaml").read_bytes() == clean.metadata_path.read_bytes()
    assert _actions(ws, "init") == ["ok"]
    assert Workspace(ws).log.verify(files=True).ok
    with pytest.raises(WorkspaceError, match="already exists"):  # a logged one stays refused
        init_workspace(ws, "A study")
    other = tmp_path / "other"
    assert _run(code.replace(str(ws), str(other)), "log-append").returncode == EXIT_CODE
    with pytest.raises(
        WorkspaceError, match="already exists"
    ):  # another title is not the same init
        init_workspace(other, "Another study")


def test_an_ome_import_killed_before_its_log_entry_is_recorded_by_the_same_command(tmp_path):
    import tifffile

    from curated.metadata import import_ome

    ws = tmp_path / "ws"
    init_workspace(ws, "Imported")
    stack = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        stack,
        np.zeros((4, 8, 8), dtype=np.uint8),
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.005,
            "PhysicalSizeY": 0.005,
            "PhysicalSizeZ": 0.01,
        },
    )
    code = f"from curated.metadata import import_ome; import_ome({str(ws)!r}, {str(stack)!r})\n"
    r = _run(code, "log-append")
    assert r.returncode == EXIT_CODE, r.stderr
    assert not Workspace(ws).log.verify(files=True).ok  # curated.yaml written, not logged
    assert import_ome(ws, stack).status == "ok"
    assert _actions(ws, "import-ome") == ["ok"]
    assert Workspace(ws).log.verify(files=True).ok
    assert import_ome(ws, stack).status == "notneeded"


SUGGEST = (
    "import torch; torch.set_num_threads(1)\n"
    "from curated.segment import suggest_crops\n"
    "suggest_crops({image!r}, model={model!r}, pred='pred', labels='ann', n=1, crop_size=8, "
    "out={out!r}, device='cpu')\n"
)


def test_suggestions_killed_mid_write_are_replaced_by_the_same_command(annotated, tmp_path):
    from segment_helpers import one_torch_thread, train_tiny

    from curated.images import add_labels
    from curated.segment import suggest_crops

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    train_tiny(image, tmp_path / "model", labels="ann", label_value=2, depth=1)
    add_labels(
        image,
        "pred",
        (_level0(ws, "truth") == 2).astype(np.uint8),
        kind="prediction",
        ai_generated=True,
    )
    args = {"model": tmp_path / "model", "pred": "pred", "labels": "ann", "n": 1, "crop_size": 8}
    clean = tmp_path / "clean.ome.zarr"
    shutil.copytree(image, clean)
    code = SUGGEST.format(image=str(image), model=str(tmp_path / "model"), out=str(tmp_path / "o"))
    r = _run(code, "shard-written")
    assert r.returncode == EXIT_CODE, r.stderr
    with one_torch_thread():
        suggest_crops(image, out=tmp_path / "o", device="cpu", **args)
        suggest_crops(clean, out=tmp_path / "c", device="cpu", **args)
    assert np.array_equal(
        _level0(ws, "suggestions"),
        np.asarray(zarr.open_array(clean / "labels" / "suggestions" / "0")),
    )


MEASURE_KILLED_AT_RENAME = (
    "import os; real = os.replace\n"
    "def replace(src, dst, **kw):\n"
    "    if str(dst).endswith('.parquet'):\n"
    "        os._exit(137)  # as kill -9 between the table's write and its rename\n"
    "    return real(src, dst, **kw)\n"
    "os.replace = replace\n"
    "from curated.images import measure_labels\n"
    "measure_labels({image!r}, 'truth', workspace={ws!r})\n"
)


def test_a_measurement_killed_before_its_rename_leaves_only_a_temporary_name(annotated, tmp_path):
    from curated._io import is_temp_name
    from curated.images import measure_labels

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    r = _run(MEASURE_KILLED_AT_RENAME.format(image=str(image), ws=str(ws)))
    assert r.returncode == EXIT_CODE, r.stderr
    left = [p.name for p in image.parent.iterdir() if p.name.startswith(".")]
    assert left and all(is_temp_name(n) for n in left)  # bags leave these out
    result = measure_labels(image, "truth", workspace=ws)
    assert Path(result.path).stat().st_mode & 0o777 == 0o666 & ~_umask()
    # the killed writer is gone: the re-run's write of the same table removed its leftover
    assert not [p.name for p in image.parent.iterdir() if is_temp_name(p.name)]
    assert Workspace(ws).log.verify(files=True).ok


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


FINETUNE = (
    "import os, torch; torch.set_num_threads(1)\n"
    "import curated.segment.average as average\n"
    "{patch}"
    "from curated.segment import finetune\n"
    "finetune({parent!r}, {image!r}, labels='ann', out={out!r}, draws=2, iterations=2, "
    "patch=8, batch_size=1, device='cpu', workspace={ws!r})\n"
)
KILLED_AT_AVERAGE = "average.average_states = lambda states: os._exit(137)\n"


@pytest.fixture(scope="module")
def to_tune(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``annotated`` with a tiny parent model (``derived/parent``) and one crop it never saw."""
    from segment_helpers import train_tiny

    ws = copy_tree(annotated, tmp_path_factory.mktemp("tune") / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    train_tiny(image, ws / "derived" / "parent", labels="ann", label_value=2, depth=1)
    annotate_from_truth(image, crops=1, size=6, seed=1, name="ann", workspace=ws)
    return ws


def _finetune(ws: Path, crash: str, patch: str = "") -> tuple[Path, Result]:
    """Fine-tune into ``derived/tuned`` killed at ``crash``, then again: the second result."""
    from segment_helpers import one_torch_thread

    from curated.segment import finetune

    image, parent, out = (ws / "derived" / n for n in ("cell.ome.zarr", "parent", "tuned"))
    code = FINETUNE.format(
        patch=patch, parent=str(parent), image=str(image), out=str(out), ws=str(ws)
    )
    r = _run(code, crash)
    assert r.returncode == EXIT_CODE, r.stderr
    with one_torch_thread():
        again = finetune(
            parent, image, labels="ann", out=out, draws=2, iterations=2, patch=8,
            batch_size=1, device="cpu", workspace=ws,
        )  # fmt: skip
    return out, again


def test_an_average_killed_before_its_log_entry_is_recorded_by_the_same_command(to_tune, tmp_path):
    from curated.segment.average import draws_folder

    ws = copy_tree(to_tune, tmp_path / "ws")
    out, again = _finetune(ws, "log-append")
    assert again.status == "ok"  # it was finished, but not logged
    assert _actions(ws, "finetune") == ["ok"]
    assert Workspace(ws).log.verify(files=True).ok
    assert not draws_folder(out).exists()


def test_draws_left_by_a_killed_finetune_stay_out_of_a_bag(to_tune, tmp_path):
    from curated.package import make_bag
    from curated.segment.average import draws_folder

    ws = copy_tree(to_tune, tmp_path / "ws")
    image, parent, out = (ws / "derived" / n for n in ("cell.ome.zarr", "parent", "tuned"))
    code = FINETUNE.format(
        patch=KILLED_AT_AVERAGE, parent=str(parent), image=str(image), out=str(out), ws=str(ws)
    )
    assert _run(code, "none").returncode == EXIT_CODE
    assert (draws_folder(out) / "d0" / "model.json").is_file()  # finished draws, no average
    info = {"Source-Organization": "Lab", "Contact-Name": "A", "Contact-Email": "a@example.org"}
    info["External-Description"] = "killed fine-tuning"
    make_bag(ws, tmp_path / "bag", bag_info=info)
    manifest = (tmp_path / "bag" / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "model.json" in manifest and "/d0/" not in manifest


def test_what_a_killed_discard_left_goes_and_other_annotations_stay(annotated, tmp_path):
    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    trash = image.parent / ".cell.ome.zarr.k9x2ab7q.tmp"  # an old annotation, half removed
    (trash / "0").mkdir(parents=True)
    (trash / "0" / "zarr.json").write_text("{}", encoding="utf-8")
    other = image.parent / ".cell.ome.zarr.mine.previous.tmp"  # another name's, set aside
    other.mkdir()
    annotate_from_truth(image, crops=1, size=6, seed=1, name="ann", workspace=ws)
    assert not trash.exists() and other.is_dir()
