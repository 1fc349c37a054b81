"""Round 4 of kill -9 at awkward moments: steps killed (``CURATED_CRASH_AT`` or ``os._exit``
patched into a child, :func:`crash_helpers.run_killable`) and run again. The re-run ends ok
(or refuses saying what to do), ``log verify --files`` passes, nothing is on record that is
not on disk, and no step is recorded twice.
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
    ws = tmp_path_factory.mktemp("killed-more") / "ws"
    init_workspace(ws, "Killed again")
    image = ws / "derived" / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 24, 24), chunks=8, shard=16, workspace=ws)
    annotate_from_truth(image, crops=3, size=8, seed=0, name="ann", workspace=ws)
    return ws


@pytest.fixture(scope="module")
def tiny_model(annotated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segment_helpers import train_tiny

    model = tmp_path_factory.mktemp("tiny-model") / "model"
    train_tiny(annotated / "derived" / "cell.ome.zarr", model, depth=1)
    return model


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _statuses(ws: Path, action: str) -> list[str]:
    return [e["status"] for e in Workspace(ws).log.entries() if e["action"] == action]


def _verifies(ws: Path) -> None:
    report = Workspace(ws).log.verify(files=True)
    assert report.ok, report.problems


# ------------------------------------------------------------------ predict --overwrite
PREDICT = (
    "import torch; torch.set_num_threads(1)\n"
    "from curated.segment import predict\n"
    "predict({model!r}, {image!r}, name='pred', workers=1, device='cpu', block=(8, 8, 8), "
    "overwrite=True, workspace={ws!r})\n"
)


@pytest.mark.parametrize(
    ("point", "rerun"),
    [("predict-finalized", "ok"), ("log-append", "ok"), ("predict-logged", "notneeded")],
)
def test_a_killed_predict_overwrite_is_finished_not_notneeded(
    annotated, tiny_model, tmp_path, point, rerun
):
    """Killed before its entry, the finished replacement is recorded by the re-run (the
    earlier run's entry is not its own); killed once recorded, the re-run has nothing to do."""
    from segment_helpers import one_torch_thread

    from curated.provenance.digest import digest_tree
    from curated.segment import predict

    ws = _copy(annotated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    args = {"name": "pred", "workers": 1, "device": "cpu", "workspace": ws}
    with one_torch_thread():
        assert predict(tiny_model, image, **args).status == "ok"
    r = _run(PREDICT.format(model=str(tiny_model), image=str(image), ws=str(ws)), point)
    assert r.returncode == EXIT_CODE, r.stderr
    with one_torch_thread():
        again = predict(tiny_model, image, block=(8, 8, 8), **args)  # without overwrite
    assert again.status == rerun, again.message
    _verifies(ws)
    pred = image / "labels" / "pred"
    assert not (pred / ".curated-predict").exists()
    recorded = Workspace(ws).log.recorded_output(pred)
    assert recorded is not None and recorded.digest == digest_tree(pred).digest
    with one_torch_thread():
        assert predict(tiny_model, image, block=(8, 8, 8), **args).status == "notneeded"
    # one entry per run that finished: the killed one has its own only when killed after it
    extra = ["notneeded"] if rerun == "notneeded" else []
    assert _statuses(ws, "predict") == ["ok", "ok", "notneeded", *extra]


# ------------------------------------------------------------------ train --overwrite
TRAIN = (
    "from tests.segment_helpers import train_tiny\n"
    "train_tiny({image!r}, {out!r}, workspace={ws!r}, **{settings!r})\n"
)
RESUMABLE = {"iterations": 4, "checkpoint_every": 2, "validate_every": 2, "validation": True}


def _train(ws: Path, out: str, **settings: object):
    from segment_helpers import train_tiny

    return train_tiny(
        ws / "derived" / "cell.ome.zarr", ws / "derived" / out, workspace=ws, **settings
    )


def test_a_killed_train_overwrite_resumes_from_its_checkpoint(annotated, tmp_path):
    ws = _copy(annotated, tmp_path / "ws")
    assert _train(ws, "model", seed=1, **RESUMABLE).status == "ok"  # the model it replaces
    settings = {**RESUMABLE, "seed": 0, "overwrite": True}
    image, out = ws / "derived" / "cell.ome.zarr", ws / "derived" / "model"
    code = TRAIN.format(image=str(image), out=str(out), ws=str(ws), settings=settings)
    r = _run(code, "train-checkpointed")  # killed at iteration 2 of 4
    assert r.returncode == EXIT_CODE, r.stderr
    again = _train(ws, "model", **settings)
    assert again.status == "ok", again.message
    assert again.details["resumed_from"] == 2  # not from scratch
    assert _train(ws, "clean", **{**RESUMABLE, "seed": 0}).status == "ok"
    got, want = (
        json.loads((ws / "derived" / n / "model.json").read_text(encoding="utf-8"))
        for n in ("model", "clean")
    )
    assert got["weights"]["sha256"] == want["weights"]["sha256"]
    assert got["training"]["history"] == want["training"]["history"]
    assert got["lineage_rois"] == want["lineage_rois"]
    _verifies(ws)
    assert _statuses(ws, "train") == ["ok", "ok", "ok"]
    # once finished, a deliberate --overwrite trains again from the start
    assert _train(ws, "model", **settings).details["resumed_from"] == 0
    assert _train(ws, "model", **{**RESUMABLE, "seed": 0}).status == "notneeded"
    _verifies(ws)
