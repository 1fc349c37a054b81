"""Training and prediction killed (``kill -9``) at awkward moments, then run again: the
re-run finishes what the killed one started, ends as an uninterrupted run would, and the
curator log records what is there.

The kill is the ``CURATED_CRASH_AT`` hook (:mod:`curated._crash`) or ``os._exit`` patched
into the child, in a subprocess (:func:`crash_helpers.run_killable`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from crash_helpers import run_killable

from curated._crash import EXIT_CODE
from curated.metadata import init_workspace
from curated.segment import annotate_from_truth, make_fibsem_sample
from curated.workspace import Workspace

_run = run_killable


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose sample image has a sparse annotation ``ann`` of three crops."""
    ws = tmp_path_factory.mktemp("killed-segment") / "ws"
    init_workspace(ws, "Killed segmentation")
    image = ws / "derived" / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 24, 24), chunks=8, shard=16, workspace=ws)
    annotate_from_truth(image, crops=3, size=8, seed=0, name="ann", workspace=ws)
    return ws


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _statuses(ws: Path, action: str) -> list[str]:
    return [e["status"] for e in Workspace(ws).log.entries() if e["action"] == action]


TRAIN = (
    "from tests.segment_helpers import train_tiny\n"
    "r = train_tiny({image!r}, {out!r}, iterations=4, checkpoint_every=2, validate_every=2, "
    "validation=True, workspace={ws!r})\n"
)


def _train(ws: Path, out: str, crash: str | None = None) -> str:
    """Train into ``derived/out``: in a child killed at ``crash``, or here to the end."""
    from segment_helpers import train_tiny

    image, dest = ws / "derived" / "cell.ome.zarr", ws / "derived" / out
    if crash is None:
        settings = {"checkpoint_every": 2, "validate_every": 2, "validation": True}
        return train_tiny(image, dest, iterations=4, workspace=ws, **settings).status
    r = _run(TRAIN.format(image=str(image), out=str(dest), ws=str(ws)), crash)
    assert r.returncode == EXIT_CODE, r.stderr
    return ""


def test_a_training_killed_before_its_log_entry_is_recorded_by_the_same_command(
    annotated, tmp_path
):
    ws = _copy(annotated, tmp_path / "ws")
    _train(ws, "model", "log-append")  # the model is written, its entry is not
    assert _train(ws, "model") == "ok"  # recorded now, not "notneeded" with nothing on record
    log = Workspace(ws).log
    assert log.recorded_output(ws / "derived" / "model" / "model.json") is not None
    assert log.recorded_output(ws / "derived" / "model" / "weights.pt") is not None
    assert log.verify(files=True).ok
    assert _train(ws, "model") == "notneeded"  # and once on record, it is done
    assert _statuses(ws, "train") == ["ok", "notneeded"]


def test_a_training_killed_after_a_checkpoint_resumes_to_the_uninterrupted_model(
    annotated, tmp_path
):
    ws = _copy(annotated, tmp_path / "ws")
    _train(ws, "model", "train-checkpointed")  # killed at iteration 2 of 4
    assert (ws / "derived" / "model" / "checkpoint.pt").is_file()
    assert _train(ws, "model") == "ok"
    _train(ws, "clean")
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


def test_a_prediction_killed_between_its_two_label_images_finishes_both(annotated, tmp_path):
    from segment_helpers import one_torch_thread, train_tiny

    from curated.images import open_image
    from curated.images.store import is_incomplete
    from curated.provenance.digest import digest_tree
    from curated.segment import predict

    model = tmp_path / "model"
    train_tiny(annotated / "derived" / "cell.ome.zarr", model, depth=1)
    digests = []
    for i, killed in enumerate((True, False)):
        ws = _copy(annotated, tmp_path / f"ws{i}")
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
