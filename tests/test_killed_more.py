"""Round 4 of kill -9 at awkward moments: steps killed (``CURATED_CRASH_AT`` or ``os._exit``
patched into a child, :func:`crash_helpers.run_killable`) and run again. The re-run ends ok
(or refuses saying what to do), ``log verify --files`` passes, nothing is on record that is
not on disk, and no step is recorded twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crash_helpers import copy_tree, log_verifies, run_killable
from segment_helpers import annotated_workspace, logged_statuses

from curated._crash import EXIT_CODE
from curated.errors import InputError
from curated.metadata import init_workspace
from curated.segment import annotate_from_truth, make_fibsem_sample
from curated.workspace import Workspace

_run = run_killable


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose sample image has a sparse annotation ``ann`` of three crops."""
    return annotated_workspace(tmp_path_factory.mktemp("killed-more") / "ws", "Killed again")


@pytest.fixture(scope="module")
def tiny_model(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segment_helpers import train_tiny

    model = tmp_path_factory.mktemp("tiny-model") / "model"
    train_tiny(annotated / "derived" / "cell.ome.zarr", model, depth=1)
    return model


# ------------------------------------------------------------------ predict --overwrite
PREDICT = (
    "import torch; torch.set_num_threads(1)\n"
    "from curated.segment import predict\n"
    "predict({model!r}, {image!r}, name='pred', workers=1, device='cpu', block=(8, 8, 8), "
    "overwrite=True, workspace={ws!r})\n"
)


@pytest.mark.parametrize(
    ("point", "rerun"),
    [("log-append", "ok"), ("predict-logged", "notneeded")],
)
def test_a_killed_predict_overwrite_is_finished_not_notneeded(
    annotated, tiny_model, tmp_path, point, rerun
):
    """Killed before its entry, the finished replacement is recorded by the re-run (the
    earlier run's entry is not its own); killed once recorded, the re-run has nothing to do."""
    from segment_helpers import one_torch_thread

    from curated.provenance.digest import digest_tree
    from curated.segment import predict

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    args = {"name": "pred", "workers": 1, "device": "cpu", "workspace": ws}
    with one_torch_thread():
        assert predict(tiny_model, image, **args).status == "ok"
    r = _run(PREDICT.format(model=str(tiny_model), image=str(image), ws=str(ws)), point)
    assert r.returncode == EXIT_CODE, r.stderr
    with one_torch_thread():
        again = predict(tiny_model, image, block=(8, 8, 8), **args)  # without overwrite
    assert again.status == rerun, again.message
    log_verifies(ws)
    pred = image / "labels" / "pred"
    assert not (pred / ".curated-predict").exists()
    recorded = Workspace(ws).log.recorded_output(pred)
    assert recorded is not None and recorded.digest == digest_tree(pred).digest
    with one_torch_thread():
        assert predict(tiny_model, image, block=(8, 8, 8), **args).status == "notneeded"
    # one entry per run that finished: the killed one has its own only when killed after it
    extra = ["notneeded"] if rerun == "notneeded" else []
    assert logged_statuses(ws, "predict") == ["ok", "ok", "notneeded", *extra]


# ------------------------------------------------------------------ train --overwrite
TRAIN = (
    "from tests.segment_helpers import train_tiny\n"
    "train_tiny({image!r}, {out!r}, workspace={ws!r}, **{settings!r})\n"
)
RESUMABLE = {"iterations": 2, "checkpoint_every": 1, "validate_every": 1, "validation": True}


def _train(ws: Path, out: str, **settings: object):
    from segment_helpers import train_tiny

    return train_tiny(
        ws / "derived" / "cell.ome.zarr", ws / "derived" / out, workspace=ws, **settings
    )


def test_a_killed_train_overwrite_resumes_from_its_checkpoint(annotated, tmp_path):
    ws = copy_tree(annotated, tmp_path / "ws")
    old = {**RESUMABLE, "iterations": 1, "seed": 1}
    assert _train(ws, "model", **old).status == "ok"  # the model it replaces
    settings = {**RESUMABLE, "seed": 0, "overwrite": True}
    image, out = ws / "derived" / "cell.ome.zarr", ws / "derived" / "model"
    code = TRAIN.format(image=str(image), out=str(out), ws=str(ws), settings=settings)
    r = _run(code, "train-checkpointed")  # killed at iteration 1 of 2
    assert r.returncode == EXIT_CODE, r.stderr
    again = _train(ws, "model", **settings)
    assert again.status == "ok", again.message
    assert again.details["resumed_from"] == 1  # not from scratch
    assert _train(ws, "clean", **{**RESUMABLE, "seed": 0}).status == "ok"
    got, want = (
        json.loads((ws / "derived" / n / "model.json").read_text(encoding="utf-8"))
        for n in ("model", "clean")
    )
    assert got["weights"]["sha256"] == want["weights"]["sha256"]
    assert got["training"]["history"] == want["training"]["history"]
    assert got["lineage_rois"] == want["lineage_rois"]
    log_verifies(ws)
    assert logged_statuses(ws, "train") == ["ok", "ok", "ok"]
    # once finished, a deliberate --overwrite trains again from the start
    assert _train(ws, "model", **settings).details["resumed_from"] == 0
    assert _train(ws, "model", **{**RESUMABLE, "seed": 0}).status == "notneeded"
    log_verifies(ws)


# ------------------------------------------------------------------ annotate, killed once logged
FROM_TRUTH = (
    "from curated.segment import annotate_from_truth\n"
    "annotate_from_truth({image!r}, crops=2, size=4, seed=5, name={name!r}, workspace={ws!r})\n"
)


def test_annotate_from_truth_killed_after_its_entry_is_not_done_twice(annotated, tmp_path):
    name = "ann"  # added to an annotation (a new one is the same case, with no crops before)
    from curated.segment import read_annotation_rois

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    before = len(read_annotation_rois(image, name))
    r = _run(FROM_TRUTH.format(image=str(image), name=name, ws=str(ws)), "annotate-logged")
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"crops": 2, "size": 4, "seed": 5, "name": name, "workspace": ws}
    again = annotate_from_truth(image, **args)  # the same command: its work is on record
    assert again.status == "notneeded", again.message
    rois = read_annotation_rois(image, name)
    assert len(rois) == before + 2
    assert len({(tuple(q["offset"]), tuple(q["shape"])) for q in rois}) == len(rois)
    log_verifies(ws)
    assert not [p for p in image.parent.iterdir() if p.name.startswith(".")]
    # a deliberate second run, once the first is settled, adds two crops as documented
    assert annotate_from_truth(image, **args).status == "ok"
    assert len(read_annotation_rois(image, name)) == before + 4
    log_verifies(ws)
    assert logged_statuses(ws, "annotate-from-truth")[-3:] == ["ok", "notneeded", "ok"]


IMPORT = (
    "from curated.segment import import_annotation\n"
    "import_annotation({image!r}, source_file={src!r}, offset=(2, 2, 2), name='ann', "
    "workspace={ws!r})\n"
)


def test_annotate_import_killed_after_its_entry_is_not_done_twice(annotated, tmp_path):
    import numpy as np

    from curated.segment import import_annotation, read_annotation_rois

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    crop = np.zeros((3, 4, 4), dtype=np.uint8)
    crop[1, 1:3, 1:3] = 1
    np.save(tmp_path / "a.npy", crop)
    before = len(read_annotation_rois(image, "ann"))
    r = _run(
        IMPORT.format(image=str(image), src=str(tmp_path / "a.npy"), ws=str(ws)), "annotate-logged"
    )
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"source_file": tmp_path / "a.npy", "offset": (2, 2, 2), "name": "ann", "workspace": ws}
    assert import_annotation(image, **args).status == "notneeded"
    assert len(read_annotation_rois(image, "ann")) == before + 1
    log_verifies(ws)
    np.save(tmp_path / "a.npy", crop * 2)  # another crop in the same file: imported again
    assert import_annotation(image, **args).status == "ok"
    assert len(read_annotation_rois(image, "ann")) == before + 2
    log_verifies(ws)


# ------------------------------------------------------------------ labels add
AFTER_ITS_ENTRY = (
    "import os\n"
    "from curated.provenance.log import CuratorLog\n"
    "real = CuratorLog.append\n"
    "def append(self, *a, **kw):\n"
    "    entry = real(self, *a, **kw)\n"
    "    os._exit(137)  # as kill -9 once the step's entry is written\n"
    "CuratorLog.append = append\n"
)
LABELS_ADD = (
    "from curated.images import add_labels\n"
    "add_labels({image!r}, 'hand', {src!r}, workspace={ws!r})\n"
)


@pytest.mark.parametrize(
    "point",
    [
        "store-planned",
        "store-group-written",
        "store-level-created",
        "shard-written",
        "log-append",
        "after-its-entry",
    ],
)
def test_labels_add_killed_then_the_same_command_finishes_once(annotated, tmp_path, point):
    import numpy as np

    from curated.images import add_labels, open_image
    from curated.images.store import JOURNAL
    from curated.provenance.digest import digest_tree

    hand = np.zeros((16, 24, 24), dtype=np.uint8)
    hand[4:12, 6:18, 6:18] = 3
    np.save(tmp_path / "hand.npy", hand)
    digests = []
    for i, killed in enumerate((True, False)):
        ws = copy_tree(annotated, tmp_path / f"ws{i}")
        image = ws / "derived" / "cell.ome.zarr"
        if killed:
            code = LABELS_ADD.format(image=str(image), src=str(tmp_path / "hand.npy"), ws=str(ws))
            after = point == "after-its-entry"
            r = _run(AFTER_ITS_ENTRY + code) if after else _run(code, point)
            assert r.returncode == EXIT_CODE, r.stderr
        again = add_labels(image, "hand", tmp_path / "hand.npy", workspace=ws)
        store = image / "labels" / "hand"
        want = "notneeded" if killed and point == "after-its-entry" else "ok"
        assert again.status == want, again.message
        assert logged_statuses(ws, "labels-add") == ["ok"] + (["notneeded"] if want != "ok" else [])
        assert "hand" in open_image(image).label_names()
        assert not (store / JOURNAL).exists()
        log_verifies(ws)
        digests.append(digest_tree(store).digest)
    assert digests[0] == digests[1]


# ------------------------------------------------------------------ sample fibsem
SAMPLE = (
    "from curated.segment import make_fibsem_sample\n"
    "make_fibsem_sample({dest!r}, shape=(8, 16, 16), chunks=8, shard=8, workspace={ws!r})\n"
)


@pytest.mark.parametrize("point", ["shard-written", "after"])
def test_a_killed_sample_is_made_and_recorded_once(tmp_path, point):
    from curated.images.store import JOURNAL

    ws = tmp_path / "ws"
    init_workspace(ws, "Killed sample")
    dest = ws / "derived" / "s.ome.zarr"
    code = SAMPLE.format(dest=str(dest), ws=str(ws))
    r = _run(AFTER_ITS_ENTRY + code) if point == "after" else _run(code, point)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"shape": (8, 16, 16), "chunks": 8, "shard": 8, "workspace": ws}
    again = make_fibsem_sample(dest, **args)
    assert again.status == ("notneeded" if point == "after" else "ok"), again.message
    assert logged_statuses(ws, "sample-fibsem") == ["ok"] + (
        ["notneeded"] if point == "after" else []
    )
    assert not (dest / "labels" / "truth" / JOURNAL).exists()
    log_verifies(ws)
    with pytest.raises(InputError, match="exists already"):  # as after an uninterrupted run
        make_fibsem_sample(dest, **args)


# ------------------------------------------------------------------ convert, killed once logged
CONVERT = (
    "from curated.images import convert_to_ome_zarr\n"
    "convert_to_ome_zarr({src!r}, {dest!r}, voxel_size=(8, 8, 8), chunks=8, shard=16, "
    "workers=1, workspace={ws!r})\n"
)


@pytest.mark.parametrize("point", ["convert-finished", "log-append", "convert-logged"])
def test_a_killed_conversion_is_recorded_once(tmp_path, point):
    import numpy as np
    import tifffile

    from curated.images import convert_to_ome_zarr
    from curated.images.store import JOURNAL

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.random.default_rng(1).integers(0, 255, (8, 16, 16), np.uint8))
    ws = tmp_path / "ws"
    init_workspace(ws, "Killed conversion")
    dest = ws / "derived" / "stack.ome.zarr"
    r = _run(CONVERT.format(src=str(stack), dest=str(dest), ws=str(ws)), point)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"voxel_size": (8, 8, 8), "chunks": 8, "shard": 16, "workers": 1, "workspace": ws}
    again = convert_to_ome_zarr(stack, dest, **args)
    logged = point == "convert-logged"  # killed after its entry: nothing left to do
    assert again.status == ("notneeded" if logged else "ok"), again.message
    assert logged_statuses(ws, "convert") == ["ok"] + (["notneeded"] if logged else [])
    assert not (dest / JOURNAL).exists()
    log_verifies(ws)
    assert convert_to_ome_zarr(stack, dest, **args).status == "notneeded"
