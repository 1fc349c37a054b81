"""Training and prediction killed (``kill -9``) at awkward moments, then run again: the
re-run finishes what the killed one started, ends as an uninterrupted run would, and the
curator log records what is there.

The kill is the ``CURATED_CRASH_AT`` hook (:mod:`curated._crash`) or ``os._exit`` patched
into the child, in a subprocess (:func:`crash_helpers.run_killable`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr
from crash_helpers import copy_tree, run_killable
from segment_helpers import annotated_workspace, logged_statuses

from curated._crash import EXIT_CODE
from curated.workspace import Workspace

_run = run_killable


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose sample image has a sparse annotation ``ann`` of three crops."""
    return annotated_workspace(
        tmp_path_factory.mktemp("killed-segment") / "ws", "Killed segmentation"
    )


@pytest.fixture(scope="module")
def tiny_model(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on ``annotated`` (outside the workspace)."""
    from segment_helpers import train_tiny

    model = tmp_path_factory.mktemp("tiny-model") / "model"
    train_tiny(annotated / "derived" / "cell.ome.zarr", model, depth=1)
    return model


TRAIN = (
    "from tests.segment_helpers import train_tiny\n"
    "r = train_tiny({image!r}, {out!r}, workspace={ws!r}, **{settings!r})\n"
)
RESUMABLE = {"iterations": 4, "checkpoint_every": 2, "validate_every": 2, "validation": True}
"""Checkpointed half way, validated (a learning curve in ``model.json``)."""


def _train(ws: Path, out: str, crash: str | None = None, **settings: object) -> str:
    """Train into ``derived/out``: in a child killed at ``crash``, or here to the end."""
    from segment_helpers import train_tiny

    image, dest = ws / "derived" / "cell.ome.zarr", ws / "derived" / out
    if crash is None:
        return train_tiny(image, dest, workspace=ws, **settings).status
    code = TRAIN.format(image=str(image), out=str(dest), ws=str(ws), settings=settings)
    r = _run(code, crash)
    assert r.returncode == EXIT_CODE, r.stderr
    return ""


def test_a_training_killed_before_its_log_entry_is_recorded_by_the_same_command(
    annotated, tmp_path
):
    ws = copy_tree(annotated, tmp_path / "ws")
    _train(ws, "model", "log-append")  # the model is written, its entry is not
    assert _train(ws, "model") == "ok"  # recorded now, not "notneeded" with nothing on record
    log = Workspace(ws).log
    assert log.recorded_output(ws / "derived" / "model" / "model.json") is not None
    assert log.recorded_output(ws / "derived" / "model" / "weights.pt") is not None
    assert log.verify(files=True).ok
    assert _train(ws, "model") == "notneeded"  # and once on record, it is done
    assert logged_statuses(ws, "train") == ["ok", "notneeded"]


def test_a_training_killed_after_a_checkpoint_resumes_to_the_uninterrupted_model(
    annotated, tmp_path
):
    ws = copy_tree(annotated, tmp_path / "ws")
    _train(ws, "model", "train-checkpointed", **RESUMABLE)  # killed at iteration 2 of 4
    assert (ws / "derived" / "model" / "checkpoint.pt").is_file()
    assert _train(ws, "model", **RESUMABLE) == "ok"
    _train(ws, "clean", **RESUMABLE)
    got, want = (
        json.loads((ws / "derived" / n / "model.json").read_text(encoding="utf-8"))
        for n in ("model", "clean")
    )
    assert got["weights"]["sha256"] == want["weights"]["sha256"]
    # the recorded learning curve too: the running loss goes on from the checkpoint
    assert got["training"]["history"] == want["training"]["history"]
    assert Workspace(ws).log.verify(files=True).ok


KILLED_BETWEEN_FINALIZES = (
    "import os, curated.images as ci\n"
    "real = ci.finalize_label_image\n"
    "def finalize(*a, **kw):\n"
    "    real(*a, **kw)\n"
    "    os._exit(137)  # as kill -9 once the first label image is finished\n"
    "ci.finalize_label_image = finalize\n"
)
PREDICT = (
    "import torch; torch.set_num_threads(1)\n"
    "from curated.segment import predict\n"
    "r = predict({model!r}, {image!r}, name='pred', probabilities=True, workers=1, "
    "device='cpu', workspace={ws!r})\n"
)


def test_a_prediction_killed_between_its_two_label_images_finishes_both(
    annotated, tiny_model, tmp_path
):
    from segment_helpers import one_torch_thread

    from curated.images import open_image
    from curated.images.store import is_incomplete
    from curated.provenance.digest import digest_tree
    from curated.segment import predict

    model = tiny_model
    digests = []
    for i, killed in enumerate((True, False)):
        ws = copy_tree(annotated, tmp_path / f"ws{i}")
        image = ws / "derived" / "cell.ome.zarr"
        code = PREDICT.format(model=str(model), image=str(image), ws=str(ws))
        if killed:
            r = _run(KILLED_BETWEEN_FINALIZES + code)
            assert r.returncode == EXIT_CODE, r.stderr
        with one_torch_thread():
            got = predict(
                model, image, name="pred", probabilities=True, workers=1, device="cpu",
                workspace=ws,
            )  # fmt: skip
        assert got.status == "ok"
        labels = image / "labels"
        assert {"pred", "pred-probability"} <= set(open_image(image).label_names())
        assert not is_incomplete(labels / "pred-probability")
        log = Workspace(ws).log
        assert log.recorded_output(labels / "pred-probability") is not None
        assert log.verify(files=True).ok
        digests.append([digest_tree(labels / n).digest for n in ("pred", "pred-probability")])
    assert digests[0] == digests[1]


IMPORT = (
    "from curated.segment import import_annotation\n"
    "import_annotation({image!r}, source_file={src!r}, offset=(2, 2, 2), name='ann', "
    "workspace={ws!r})\n"
)


@pytest.mark.parametrize("replace", [True, False])
def test_an_annotation_killed_after_its_log_entry_is_kept_by_the_next_one(
    annotated, tmp_path, replace
):
    """Killed once logged, before its journal went: the next annotate step keeps that
    crop (the log vouches for it) instead of taking it for a write that never finished."""
    import numpy as np

    from curated.segment import import_annotation, read_annotation_rois

    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    name = "ann" if replace else "mine"  # added to an annotation, or the first of its name
    crop = np.zeros((3, 4, 4), dtype=np.uint8)
    crop[1, 1:3, 1:3] = 1
    np.save(tmp_path / "a.npy", crop)
    np.save(tmp_path / "b.npy", crop * 2)
    code = IMPORT.format(image=str(image), src=str(tmp_path / "a.npy"), ws=str(ws))
    r = _run(code.replace("'ann'", repr(name)), "annotate-logged")
    assert r.returncode == EXIT_CODE, r.stderr
    assert logged_statuses(ws, "annotate-import") == [
        "ok"
    ]  # on record: crop a is in the annotation
    before = read_annotation_rois(image, name)
    import_annotation(
        image, source_file=tmp_path / "b.npy", offset=(10, 16, 16), name=name, workspace=ws
    )
    rois = read_annotation_rois(image, name)
    assert rois[: len(before)] == before and len(rois) == len(before) + 1
    assert [r["source"] for r in rois[-2:]] == ["a.npy", "b.npy"]
    level0 = np.asarray(zarr.open_array(image / "labels" / name / "0"))
    assert level0[3, 3, 3] == 1 and level0[11, 17, 17] == 2
    assert Workspace(ws).log.verify(files=True).ok
    assert not [p for p in image.parent.iterdir() if p.name.startswith(".")]


KILLED_IN_OVERWRITE = (
    "import os, shutil\n"
    "from pathlib import Path\n"
    "import numpy as np\n"
    "store = Path({image!r}) / 'labels' / 'hand'\n"
    "real = shutil.rmtree\n"
    "def rmtree(path, *a, **kw):\n"
    "    if Path(path) == store:  # the removal took the group's metadata first\n"
    "        (store / 'zarr.json').unlink()\n"
    "        os._exit(137)\n"
    "    return real(path, *a, **kw)\n"
    "shutil.rmtree = rmtree\n"
    "from curated.images import add_labels\n"
    "add_labels({image!r}, 'hand', np.load({src!r}), overwrite=True, workspace={ws!r})\n"
)


def test_labels_replaced_by_a_run_killed_while_removing_the_old_ones_are_replaced_again(
    annotated, tmp_path
):
    """``--overwrite`` removes the old label image in place; killed part way, what is left
    must still read as a store, or the same command refuses it as "not a Zarr store"."""
    import numpy as np

    from curated.images import add_labels
    from curated.provenance.digest import digest_tree

    labels = np.zeros((16, 24, 24), dtype=np.uint8)
    labels[4:12, 6:18, 6:18] = 3
    np.save(tmp_path / "new.npy", labels)
    digests = []
    for i in range(2):
        ws = copy_tree(annotated, tmp_path / f"ws{i}")
        image = ws / "derived" / "cell.ome.zarr"
        add_labels(image, "hand", labels // 3, workspace=ws)
        if i == 0:
            code = KILLED_IN_OVERWRITE.format(
                image=str(image), src=str(tmp_path / "new.npy"), ws=str(ws)
            )
            r = _run(code)
            assert r.returncode == EXIT_CODE, r.stderr
        add_labels(image, "hand", labels, overwrite=True, workspace=ws)
        assert Workspace(ws).log.verify(files=True).ok
        digests.append(digest_tree(image / "labels" / "hand").digest)
    assert digests[0] == digests[1]


KILLED_AFTER_ONE_UNIT = (
    "import os, sys, curated.segment.predict\n"
    "module = sys.modules['curated.segment.predict']\n"
    "real = module._predict_units\n"
    "def one(*a, **kw):\n"
    "    real(*a, **kw)\n"
    "    os._exit(137)  # as kill -9 once the first write unit is done\n"
    "module._predict_units = one\n"
    "import torch; torch.set_num_threads(1)\n"
    "from curated.segment import predict\n"
    "predict({model!r}, {image!r}, name='pred', workers=1, device='cpu', workspace={ws!r})\n"
)


def test_a_killed_prediction_is_not_resumed_with_another_threshold(annotated, tiny_model, tmp_path):
    """The units done before the kill were thresholded at 0.5: finishing them at 0.7 would
    give one label image of two thresholds, recorded as one."""
    import numpy as np
    from segment_helpers import one_torch_thread

    from curated.errors import SegmentationError
    from curated.segment import predict

    model = tiny_model
    ws = copy_tree(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    code = KILLED_AFTER_ONE_UNIT.format(model=str(model), image=str(image), ws=str(ws))
    r = _run(code)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"name": "pred", "workers": 1, "device": "cpu", "workspace": ws}
    with one_torch_thread():
        with pytest.raises(SegmentationError, match="threshold 0.5"):
            predict(model, image, threshold=0.7, **args)
        done = predict(model, image, **args)  # the same settings finish it
        assert done.status == "ok" and done.details["units_skipped"] >= 1
        clean = copy_tree(annotated, tmp_path / "clean") / "derived" / "cell.ome.zarr"
        predict(model, clean, **{**args, "workspace": clean.parents[1]})
    got, want = (zarr.open_array(i / "labels" / "pred" / "0")[...] for i in (image, clean))
    assert np.array_equal(got, want)
    assert Workspace(ws).log.verify(files=True).ok
