"""Round 5 of kill -9: steps with ``overwrite`` killed while replacing their earlier output,
then run again with and without ``overwrite``.

Either the re-run finishes (the old output was already being replaced, never half of it
kept as if whole) or it refuses saying what to do; ``log verify --files`` passes once the
step is run as the refusal says.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from crash_helpers import copy_tree, log_verifies, run_killable
from segment_helpers import logged_statuses

from curated._crash import EXIT_CODE
from curated.errors import InputError
from curated.workspace import Workspace

# ------------------------------------------------------------------ evaluate --overwrite
EVALUATE = (
    "import os\n"
    "import curated.segment.evaluate\n"
    "{patch}"
    "from curated.segment import evaluate\n"
    "evaluate({image!r}, seed=1, overwrite=True, workspace={ws!r}, **{same!r})\n"
)
SAME = {"pred": "pred", "truth": "truth", "label_value": 1, "blocks": 2, "block_size": 8}
BEFORE_JSON = (  # the Markdown and pictures written, killed before the JSON
    "import sys\n"
    "sys.modules['curated.segment.evaluate'].write_json = lambda *a, **kw: os._exit(137)\n"
)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose image has a truth and a prediction, evaluated as ``e1`` (seed 0)."""
    from curated.images import add_labels, write_ome_zarr
    from curated.segment import evaluate

    ws = Workspace.create(
        tmp_path_factory.mktemp("killed-overwrite") / "ws", record={"study": {"title": "Kill"}}
    )
    image = ws.derived_dir / "cell.ome.zarr"
    truth = np.zeros((16, 24, 24), np.uint8)
    truth[2:10, 4:14, 4:14] = 1
    pred = np.roll(truth, 2, axis=2)
    write_ome_zarr((truth * 90 + 40).astype(np.uint8), image, voxel_size=(8.0, 8.0, 8.0), chunks=8)
    add_labels(image, "truth", truth, kind="truth")
    model = {"id": "m", "sha256": "0" * 64, "card": None}
    add_labels(image, "pred", pred, kind="prediction", ai_generated=True, model=model)
    evaluate(image, **SAME, seed=0, name="e1", workspace=ws)
    return ws.root


def _evaluation(ws: Path) -> dict[str, bytes]:
    folder = Workspace(ws).evaluations_dir
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("e1")}


def _seeds(ws: Path) -> int:
    report = json.loads((Workspace(ws).evaluations_dir / "e1.json").read_bytes())
    return int(report["held_out"]["seed"])


@pytest.mark.parametrize("point", ["before-json", "log-append"])
def test_an_evaluation_overwrite_killed_part_way_is_never_kept_half_old(evaluated, tmp_path, point):
    from curated.segment import evaluate

    ws = copy_tree(evaluated, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    patch = BEFORE_JSON if point == "before-json" else ""
    code = EVALUATE.format(patch=patch, image=str(image), ws=str(ws), same={**SAME, "name": "e1"})
    r = run_killable(code, None if patch else point)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {**SAME, "seed": 1, "name": "e1", "workspace": ws}
    if point == "before-json":  # the old evaluation was no longer whole: made again now
        assert not (Workspace(ws).evaluations_dir / "e1.json").exists()  # not the old one
        evaluate(image, **args)
    else:  # a whole evaluation the log does not record: refused, saying what to do
        with pytest.raises(InputError, match="not as the curator log records.*--overwrite"):
            evaluate(image, **args)
        evaluate(image, **args, overwrite=True)
    log_verifies(ws)
    assert _seeds(ws) == 1
    assert logged_statuses(ws, "evaluate") == ["ok", "ok"]
    clean = copy_tree(evaluated, tmp_path / "clean")
    evaluate(clean / "derived" / "cell.ome.zarr", **{**args, "workspace": clean}, overwrite=True)
    got, want = _evaluation(ws), _evaluation(clean)
    assert got.keys() == want.keys()
    assert json.loads(got["e1.json"])["overall"] == json.loads(want["e1.json"])["overall"]


# ------------------------------------------------------------------ export --overwrite
EXPORT = (
    "from curated.segment.export import export_bioimageio\n"
    "export_bioimageio({model!r}, {dest!r}, license='CC0-1.0', overwrite=True, "
    "workspace={ws!r})\n"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tiny model exported as a folder package ``derived/pkg`` (MIT)."""
    from segment_helpers import annotated_workspace, train_tiny

    from curated.segment.export import export_bioimageio

    ws = annotated_workspace(tmp_path_factory.mktemp("killed-export") / "ws", "Killed export")
    model = ws / "derived" / "model"
    train_tiny(ws / "derived" / "cell.ome.zarr", model, depth=1, workspace=ws)
    assert export_bioimageio(model, ws / "derived" / "pkg", license="MIT", workspace=ws).ok
    return ws


@pytest.mark.parametrize("point", ["export-built", "export-swap-aside", "log-append"])
def test_an_export_overwrite_killed_part_way_keeps_a_whole_package(exported, tmp_path, point):
    from curated.provenance.digest import digest_tree
    from curated.segment.export import export_bioimageio

    ws = copy_tree(exported, tmp_path / "ws")
    model, dest = ws / "derived" / "model", ws / "derived" / "pkg"
    old = digest_tree(dest).digest
    r = run_killable(EXPORT.format(model=str(model), dest=str(dest), ws=str(ws)), point)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"license": "CC0-1.0", "workspace": ws}
    if point == "log-append":  # the new package, whole, not on record: refused, saying why
        with pytest.raises(InputError, match="not as the curator log records.*overwrite"):
            export_bioimageio(model, dest, **args)
    else:  # the old package put back, whole and on record: refused as after any export
        with pytest.raises(InputError, match="exists already.*pass --overwrite"):
            export_bioimageio(model, dest, **args)
        assert digest_tree(dest).digest == old
        log_verifies(ws)
    assert export_bioimageio(model, dest, overwrite=True, **args).ok
    assert "CC0-1.0" in (dest / "rdf.yaml").read_text(encoding="utf-8")
    assert not [p.name for p in dest.parent.iterdir() if p.name.startswith(".pkg")]
    log_verifies(ws)
    assert logged_statuses(ws, "export-bioimageio") == ["ok", "ok"]


# ------------------------------------------------------------------ labels add --overwrite
LABELS_ADD = (
    "from curated.images import add_labels\n"
    "add_labels({image!r}, 'hand', {src!r}, overwrite=True, workspace={ws!r})\n"
)


def _hand(tmp_path: Path, value: int, shift: int) -> Path:
    hand = np.zeros((16, 24, 24), dtype=np.uint8)
    hand[4:12, 6 + shift : 18, 6:18] = value
    path = tmp_path / f"hand{value}.npy"
    np.save(path, hand)
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose image has a hand label image ``hand`` (value 3), logged."""
    from segment_helpers import annotated_workspace

    from curated.images import add_labels

    root = tmp_path_factory.mktemp("killed-labels")
    ws = annotated_workspace(root / "ws", "Killed labels")
    assert add_labels(ws / "derived" / "cell.ome.zarr", "hand", _hand(root, 3, 0), workspace=ws).ok
    return ws


@pytest.mark.parametrize("point", ["store-group-written", "shard-written", "log-append"])
@pytest.mark.parametrize("rerun", ["same", "other", "same-overwrite"])
def test_labels_add_overwrite_killed_part_way_never_mixes_two_sources(
    labelled, tmp_path, point, rerun
):
    """Killed while replacing ``hand`` with source B, run again with B (with or without
    ``overwrite``) or with another source C: the label image is all of one source."""
    import zarr

    from curated.images import add_labels

    ws = copy_tree(labelled, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    b, c = _hand(tmp_path, 5, 2), _hand(tmp_path, 7, 4)
    r = run_killable(LABELS_ADD.format(image=str(image), src=str(b), ws=str(ws)), point)
    assert r.returncode == EXIT_CODE, r.stderr
    src = c if rerun == "other" else b
    if rerun == "other":  # the killed run's half is of B: never finished with C's
        with pytest.raises(InputError, match="same ones to finish it, or pass --overwrite"):
            add_labels(image, "hand", src, workspace=ws)
    overwrite = rerun != "same"
    again = add_labels(image, "hand", src, overwrite=overwrite, workspace=ws)
    assert again.ok, again.message
    got = np.asarray(zarr.open_array(image / "labels" / "hand" / "0"))
    assert np.array_equal(got, np.load(src))
    log_verifies(ws)


# ------------------------------------------------------------------ annotate suggest (replaces)
SUGGEST = (
    "import os, sys, torch; torch.set_num_threads(1)\n"
    "import curated.segment.suggest\n"
    "{patch}"
    "from curated.segment import suggest_crops\n"
    "suggest_crops({image!r}, model={model!r}, pred='pred', labels='ann', n=2, crop_size=8, "
    "device='cpu', workspace={ws!r})\n"
)
AFTER_LABELS = (  # the new suggestions' label image written, killed before their table
    "sys.modules['curated.segment.suggest'].atomic_write_text = lambda *a: os._exit(137)\n"
)


@pytest.fixture(scope="module")
def suggested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tiny model, a prediction ``pred`` and one logged suggestion."""
    import zarr
    from segment_helpers import annotated_workspace, one_torch_thread, train_tiny

    from curated.images import add_labels
    from curated.segment import suggest_crops

    ws = annotated_workspace(tmp_path_factory.mktemp("killed-suggest") / "ws", "Killed suggest")
    image = ws / "derived" / "cell.ome.zarr"
    train_tiny(image, ws / "derived" / "model", depth=1, workspace=ws)
    truth = np.asarray(zarr.open_array(image / "labels" / "truth" / "0"))
    add_labels(image, "pred", (truth == 2).astype(np.uint8), kind="prediction", workspace=ws)
    args = {"pred": "pred", "labels": "ann", "n": 1, "crop_size": 8, "device": "cpu"}
    with one_torch_thread():
        assert suggest_crops(image, model=ws / "derived" / "model", workspace=ws, **args).ok
    return ws


@pytest.mark.parametrize("point", ["shard-written", "after-labels", "log-append"])
def test_suggestions_replaced_by_a_killed_run_are_made_whole_by_the_next(
    suggested, tmp_path, point
):
    import zarr
    from segment_helpers import one_torch_thread

    from curated.segment import suggest_crops

    ws = copy_tree(suggested, tmp_path / "ws")
    image, model = ws / "derived" / "cell.ome.zarr", ws / "derived" / "model"
    patch = AFTER_LABELS if point == "after-labels" else ""
    code = SUGGEST.format(patch=patch, image=str(image), model=str(model), ws=str(ws))
    r = run_killable(code, None if patch else point)
    assert r.returncode == EXIT_CODE, r.stderr
    args = {"pred": "pred", "labels": "ann", "n": 2, "crop_size": 8, "device": "cpu"}
    with one_torch_thread():
        again = suggest_crops(image, model=model, workspace=ws, **args)
    assert again.ok, again.message
    table = json.loads(Path(again.details["files"]["json"]).read_bytes())["table"]
    values = np.unique(np.asarray(zarr.open_array(image / "labels" / "suggestions" / "0")))
    assert len(table) == 2 and len(values[values > 0]) == 2  # the table is the labels'
    log_verifies(ws)
    assert logged_statuses(ws, "annotate-suggest") == ["ok", "ok"]
