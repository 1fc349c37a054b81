"""Round 5 of kill -9: ``finetune --overwrite`` (weight-averaged draws) killed part way over
a finetuned model, then run again with and without ``overwrite``.

Re-run with ``overwrite``, it ends as an uninterrupted fine-tuning with the same settings
(the same weights); re-run without, it finishes what is finished or refuses naming
``overwrite``, and the model it was replacing is whole until the new one takes its place:
never the new weights under the old ``model.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crash_helpers import copy_tree, log_verifies, run_killable
from segment_helpers import annotated_workspace, logged_statuses, one_torch_thread, train_tiny

from curated._crash import EXIT_CODE
from curated.errors import SegmentationError
from curated.results import Result
from curated.segment import annotate_from_truth, finetune
from curated.segment.average import draws_folder
from curated.segment.modelio import load_model

SETTINGS = {
    "draws": 2,
    "iterations": 2,
    "checkpoint_every": 1,
    "patch": 8,
    "batch_size": 1,
    "device": "cpu",
}
OLD = {**SETTINGS, "seed": 1}  # the finetuned model that is replaced
NEW = {**SETTINGS, "seed": 0}
FINETUNE = (
    "import os, torch; torch.set_num_threads(1)\n"
    "import curated.segment.average as average\n"
    "{patch}"
    "from curated.segment import finetune\n"
    "finetune({parent!r}, {image!r}, labels='ann', out={out!r}, overwrite=True, "
    "workspace={ws!r}, **{settings!r})\n"
)
PATCHES = {
    # every draw trained, killed before their average
    "averaging": "average.average_states = lambda states: os._exit(137)\n",
    # the average's weights written, killed before its model.json
    "weights-written": "average.write_model_json = lambda *a, **kw: os._exit(137)\n",
    # one fine-tuning (``draws=1``, as ``train``): its weights written, not its model.json
    "one-weights-written": (
        "import sys, curated.segment.train\n"  # the module, not the function of its name
        "sys.modules['curated.segment.train'].write_model_json = lambda *a, **kw: os._exit(137)\n"
    ),
}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tiny parent (``derived/parent``), a crop it never saw, and a
    model fine-tuned from it with :data:`OLD` (``derived/tuned``), all logged."""
    ws = annotated_workspace(tmp_path_factory.mktemp("killed-finetune") / "ws", "Killed finetune")
    image = ws / "derived" / "cell.ome.zarr"
    train_tiny(image, ws / "derived" / "parent", depth=1, workspace=ws)
    annotate_from_truth(image, crops=1, size=6, seed=1, name="ann", workspace=ws)
    assert _finetune(ws, "tuned", **OLD).status == "ok"
    return ws


def _finetune(ws: Path, out: str, **settings: object) -> Result:
    image, parent = ws / "derived" / "cell.ome.zarr", ws / "derived" / "parent"
    with one_torch_thread():
        return finetune(
            parent, image, labels="ann", out=ws / "derived" / out, workspace=ws, **settings
        )


def _killed(ws: Path, point: str, settings: dict[str, object] = NEW) -> None:
    """``finetune --overwrite`` with ``settings`` into ``derived/tuned``, killed at ``point``
    (a crash point, or one of :data:`PATCHES`)."""
    d = ws / "derived"
    code = FINETUNE.format(
        patch=PATCHES.get(point, ""),
        parent=str(d / "parent"),
        image=str(d / "cell.ome.zarr"),
        out=str(d / "tuned"),
        ws=str(ws),
        settings=settings,
    )
    r = run_killable(code, None if point in PATCHES else point)
    assert r.returncode == EXIT_CODE, r.stderr


def _weights(ws: Path, out: str) -> str:
    meta = json.loads((ws / "derived" / out / "model.json").read_text(encoding="utf-8"))
    return str(meta["weights"]["sha256"])


POINTS = ["train-checkpointed", "averaging", "weights-written", "log-append"]


@pytest.fixture(scope="module")
def clean(tuned: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The weights' sha256 of an uninterrupted fine-tuning with :data:`NEW`."""
    ws = copy_tree(tuned, tmp_path_factory.mktemp("clean") / "ws")
    assert _finetune(ws, "clean", **NEW).status == "ok"
    return _weights(ws, "clean")


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_finetune_overwrite_run_again_with_overwrite_ends_as_an_uninterrupted_one(
    tuned, clean, tmp_path, point
):
    ws = copy_tree(tuned, tmp_path / "ws")
    _killed(ws, point)
    again = _finetune(ws, "tuned", overwrite=True, **NEW)
    assert again.status == "ok", again.message
    assert _weights(ws, "tuned") == clean
    load_model(ws / "derived" / "tuned")  # the weights are model.json's
    assert not draws_folder(ws / "derived" / "tuned").exists()
    log_verifies(ws)
    assert logged_statuses(ws, "finetune") == ["ok", "ok"]
    assert _finetune(ws, "tuned", **NEW).status == "notneeded"


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_finetune_overwrite_run_again_without_it_never_mixes_old_and_new(
    tuned, clean, tmp_path, point
):
    ws = copy_tree(tuned, tmp_path / "ws")
    old = _weights(ws, "tuned")
    _killed(ws, point)
    if point in ("weights-written", "log-append"):  # the old model was already replaced
        again = _finetune(ws, "tuned", **NEW)  # finished (or, in place, recorded) now
        assert again.status == "ok", again.message
        logged = "recorded after an interrupted run" in again.message
        assert logged == (point == "log-append")
        assert _weights(ws, "tuned") == clean
        assert logged_statuses(ws, "finetune") == ["ok", "ok"]
    else:  # the old model is still the one there, whole: refused, naming overwrite
        with pytest.raises(SegmentationError, match="overwrite"):
            _finetune(ws, "tuned", **NEW)
        assert load_model(ws / "derived" / "tuned").sha256 == old
        assert logged_statuses(ws, "finetune") == ["ok"]
    load_model(ws / "derived" / "tuned")
    log_verifies(ws)


def test_finished_draws_of_a_killed_finetune_overwrite_are_not_trained_again(
    tuned, clean, tmp_path
):
    """Killed once every draw was trained, the re-run with ``overwrite`` averages them as
    they are (an ``overwrite`` is of the model, not of the draws of its own interrupted run)."""
    ws = copy_tree(tuned, tmp_path / "ws")
    _killed(ws, "averaging")
    again = _finetune(ws, "tuned", overwrite=True, **NEW)
    assert again.details["draw_status"] == ["notneeded", "notneeded"], again.details
    assert _weights(ws, "tuned") == clean


def test_draws_of_a_killed_finetune_on_other_crops_are_trained_again_with_overwrite(
    tuned, tmp_path
):
    """The draws left are of other crops than the re-run's (a crop annotated since):
    refused without ``overwrite`` as before, trained again with it."""
    ws = copy_tree(tuned, tmp_path / "ws")
    _killed(ws, "averaging")
    image = ws / "derived" / "cell.ome.zarr"
    annotate_from_truth(image, crops=1, size=6, seed=2, name="ann", workspace=ws)
    with pytest.raises(SegmentationError, match="overwrite"):
        _finetune(ws, "tuned", **NEW)
    again = _finetune(ws, "tuned", overwrite=True, **NEW)
    assert again.status == "ok", again.message
    assert again.details["draw_status"] == ["ok", "ok"]
    assert not draws_folder(ws / "derived" / "tuned").exists()
    log_verifies(ws)


ONE = {**NEW, "draws": 1}


@pytest.mark.parametrize("rerun_overwrite", [True, False])
def test_one_finetuning_overwrite_killed_between_its_weights_and_model_json(
    tuned, tmp_path, rerun_overwrite
):
    """``draws=1`` (a plain training from the parent): killed once its weights replaced
    the old ones, the re-run resumes from its last checkpoint and writes the model; the
    old ``model.json`` is never left over the new weights."""
    ws = copy_tree(tuned, tmp_path / "ws")
    _killed(ws, "one-weights-written", ONE)
    out = ws / "derived" / "tuned"
    assert not (out / "model.json").exists()  # no model, rather than a mixed one
    again = _finetune(ws, "tuned", overwrite=rerun_overwrite, **ONE)
    assert again.status == "ok", again.message
    assert again.details["resumed_from"] == ONE["iterations"]  # nothing trained again
    assert _finetune(ws, "clean", **ONE).status == "ok"
    assert _weights(ws, "tuned") == _weights(ws, "clean")
    load_model(out)
    log_verifies(ws)
    assert logged_statuses(ws, "finetune") == ["ok", "ok", "ok"]


def test_draws_of_a_killed_finetune_with_other_iterations_are_not_kept_by_overwrite(
    tuned, tmp_path
):
    """Draws left by a run of 2 iterations are no draws of a run of 1 (the draws' own
    signature leaves iterations out, so that more of them resume): trained again."""
    ws = copy_tree(tuned, tmp_path / "ws")
    _killed(ws, "averaging")
    fewer = {**NEW, "iterations": 1}
    again = _finetune(ws, "tuned", overwrite=True, **fewer)
    assert again.status == "ok", again.message
    assert again.details["draw_status"] == ["ok", "ok"]
    assert _finetune(ws, "clean", **fewer).status == "ok"
    assert _weights(ws, "tuned") == _weights(ws, "clean")
    log_verifies(ws)
