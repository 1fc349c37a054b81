"""A workspace moved or copied to another path (another disk, a colleague's account, a
restored backup) keeps working: its log verifies, finished steps re-run as ``notneeded``,
and nothing it records names the old absolute path."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from crash_helpers import copy_tree
from segment_helpers import annotated_workspace, logged_statuses, one_torch_thread, train_tiny

import curated.segment.average as average
from curated.images import measure_labels
from curated.segment import annotate_from_truth, finetune, predict
from curated.segment.evaluate import evaluate
from curated.segment.suggest import suggest_crops
from curated.workspace import Workspace

FINETUNE = {"draws": 2, "iterations": 2, "patch": 8, "batch_size": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a tiny parent (``derived/parent``), a model fine-tuned from it with
    two draws (``derived/tuned``), its prediction and an evaluation of it, and a tiny model
    trained on all the crops (``derived/plain``), all logged."""
    ws = annotated_workspace(tmp_path_factory.mktemp("moved") / "ws", "Moved workspace")
    image = ws / "derived" / "cell.ome.zarr"
    train_tiny(image, ws / "derived" / "parent", depth=1, workspace=ws)
    annotate_from_truth(image, crops=1, size=6, seed=1, name="ann", workspace=ws)
    train_tiny(image, ws / "derived" / "plain", depth=1, workspace=ws)
    assert _finetune(ws).status == "ok"
    with one_torch_thread():
        predict(ws / "derived" / "tuned", image, name="pred", device="cpu", workspace=ws)
    evaluate(
        image,
        pred="pred",
        truth="truth",
        label_value=2,
        blocks=1,
        block_size=2,
        exclude_training=ws / "derived" / "tuned",
        whole_volume=False,
        workspace=ws,
    )
    return ws


def _finetune(ws: Path, out: str = "tuned", **settings: object) -> object:
    d = ws / "derived"
    with one_torch_thread():
        return finetune(
            d / "parent",
            d / "cell.ome.zarr",
            labels="ann",
            out=d / out,
            workspace=ws,
            **{**FINETUNE, **settings},
        )


def _weights(ws: Path, out: str) -> str:
    meta = json.loads((ws / "derived" / out / "model.json").read_text(encoding="utf-8"))
    return str(meta["weights"]["sha256"])


@pytest.fixture(params=["copytree", "rename"])
def moved(request: pytest.FixtureRequest, built: Path, tmp_path: Path) -> Path:
    """``built`` copied to another path, or a copy of it renamed to yet another."""
    ws = copy_tree(built, tmp_path / "copy")
    if request.param == "rename":
        os.rename(ws, tmp_path / "renamed")
        ws = tmp_path / "renamed"
    return ws


def test_a_moved_workspace_finds_its_finetuned_model_done(moved):
    report = Workspace(moved).log.verify(files=True)
    assert report.ok, report.problems
    again = _finetune(moved)
    assert again.status == "notneeded", again.message
    assert logged_statuses(moved, "finetune") == ["ok"]


def test_a_moved_workspace_finds_its_trained_model_done(moved):
    image = moved / "derived" / "cell.ome.zarr"
    again = train_tiny(image, moved / "derived" / "plain", depth=1, workspace=moved)
    assert again.status == "notneeded", again.message


def test_nothing_the_workspace_records_names_its_absolute_path(built):
    """The model, the evaluation and the log name paths relative to the workspace."""
    root = str(built.resolve())
    files = [
        built / "derived" / "tuned" / "model.json",
        *sorted((built / "derived" / "evaluations").glob("*.json")),
        *sorted((built / "derived" / "evaluations").glob("*.md")),
        built / "curation" / "log.jsonl",
    ]
    found = [f.relative_to(built) for f in files if root in f.read_text(encoding="utf-8")]
    assert found == []


def test_paths_given_relative_to_another_folder_are_logged_relative_to_the_workspace(
    built, tmp_path, monkeypatch
):
    ws = copy_tree(built, tmp_path / "a" / "ws")
    monkeypatch.chdir(tmp_path)  # the workspace is a/ws from here
    image = Path("a/ws/derived/cell.ome.zarr")
    train_tiny(image, Path("a/ws/derived/other"), depth=1, workspace=Path("a/ws"))
    with one_torch_thread():
        suggest_crops(image, model=Path("a/ws/derived/tuned"), pred="pred", labels="ann",
                      n=1, crop_size=4, device="cpu", workspace=Path("a/ws"))  # fmt: skip
    measure_labels(image, "truth", csv=Path("a/ws/derived/truth.csv"), workspace=Path("a/ws"))
    params = {e["action"]: e["params"] for e in Workspace(ws).log.entries()}
    assert params["train"]["out"] == "derived/other"
    assert params["annotate-suggest"]["model"] == "derived/tuned"
    assert params["labels-measure"]["csv"] == "derived/truth.csv"


def test_a_killed_finetunes_draws_of_other_iterations_are_not_averaged(built, tmp_path):
    """Draws a killed run finished with 3 iterations are not this run's with 2."""
    clean = copy_tree(built, tmp_path / "clean")
    assert _finetune(clean, "again").status == "ok"
    ws = copy_tree(built, tmp_path / "ws")

    def killed(states: object) -> object:
        raise KeyboardInterrupt  # every draw trained, stopped before their average

    keep = average.average_states
    average.average_states = killed  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            _finetune(ws, "again", iterations=3)
    finally:
        average.average_states = keep
    assert average.draws_folder(ws / "derived" / "again").is_dir()
    assert _finetune(ws, "again").status == "ok"
    assert _weights(ws, "again") == _weights(clean, "again")


def test_an_exported_model_and_the_fair_checklist_name_no_absolute_path(built, tmp_path):
    from curated.document import fair_checklist
    from curated.segment.export import export_bioimageio

    ws = copy_tree(built, tmp_path / "ws")
    export_bioimageio(ws / "derived" / "tuned", ws / "derived" / "tuned.zip", workspace=ws)
    entry = list(Workspace(ws).log.entries())[-1]
    assert entry["params"]["dest"] == "derived/tuned.zip"
    assert entry["details"]["linked_label_images"] == ["derived/cell.ome.zarr/labels/pred"]
    fair_checklist(ws)
    fair = json.loads((ws / "curation" / "fair.json").read_text(encoding="utf-8"))
    assert fair["workspace"] == "ws"


def test_models_an_earlier_release_made_in_place_are_still_found_done(built, tmp_path, monkeypatch):
    """Earlier releases named the image by its absolute path in a run's settings."""
    train_module = sys.modules["curated.segment.train"]  # the module, not its function
    ws = copy_tree(built, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    with monkeypatch.context() as m:
        for module in (train_module, average):
            m.setattr(module, "image_key", lambda image, out: str(image.resolve()))
        assert train_tiny(image, ws / "derived" / "old", depth=1, workspace=ws).status == "ok"
        assert _finetune(ws, "old-tuned").status == "ok"
    again = train_tiny(image, ws / "derived" / "old", depth=1, workspace=ws)
    assert again.status == "notneeded", again.message
    assert _finetune(ws, "old-tuned").status == "notneeded"


def _tiff(path: Path) -> Path:
    import numpy as np
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.arange(8 * 16 * 16, dtype=np.uint16).reshape(8, 16, 16)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def _convert(source: Path, ws: Path) -> str:
    from curated.images import convert_to_ome_zarr

    dest = ws / "derived" / "stack.ome.zarr"
    r = convert_to_ome_zarr(source, dest, workspace=ws, chunks=8, shard=16, voxel_size=(8, 8, 8))
    return r.status


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_a_moved_workspace_finds_its_conversions_done(where, tmp_path):
    """A source inside the workspace moves with it; one outside stays where it is."""
    from curated.metadata import init_workspace

    ws = tmp_path / "ws"
    init_workspace(ws, "Moved conversions")
    source = _tiff(ws / "raw" / "stack.tif" if where == "inside" else tmp_path / "stack.tif")
    assert _convert(source, ws) == "ok"
    os.rename(ws, tmp_path / "moved")
    ws = tmp_path / "moved"
    source = ws / "raw" / "stack.tif" if where == "inside" else source
    assert _convert(source, ws) == "notneeded"
    report = Workspace(ws).log.verify(files=True)
    assert report.ok, report.problems


def test_a_conversion_an_earlier_release_made_in_place_is_still_found_done(tmp_path, monkeypatch):
    """Earlier releases named the source by its absolute path in the conversion's plan."""
    import curated.images.convert as convert_module
    from curated.metadata import init_workspace

    ws = tmp_path / "ws"
    init_workspace(ws, "Old conversion")
    source = _tiff(ws / "raw" / "stack.tif")
    with monkeypatch.context() as m:
        m.setattr(convert_module, "portable_path", lambda p, base: str(Path(p).resolve()))
        assert _convert(source, ws) == "ok"
    assert _convert(source, ws) == "notneeded"


def test_check_and_import_ome_name_the_sources_relative_to_the_workspace(tmp_path, monkeypatch):
    """Sources given by an absolute path, or relative to another current folder."""
    import tifffile

    from curated.curation import check
    from curated.metadata import import_ome, init_workspace

    ws = tmp_path / "ws"
    init_workspace(ws, "Sources")
    raw = tmp_path / "raw"
    raw.mkdir()
    source = raw / "stack.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": 8, "PhysicalSizeXUnit": "nm"}
    tifffile.imwrite(source, np.zeros((2, 8, 8), np.uint8), ome=True, metadata=meta)
    check(ws, [raw])
    monkeypatch.chdir(raw)  # the workspace is ../ws from here
    assert import_ome(Path("../ws"), Path("stack.ome.tif")).status == "ok"
    entries = list(Workspace(ws).log.entries())
    assert entries[-2]["params"]["sources"] == ["../raw"]
    checked = json.loads((ws / "curation" / "check.json").read_text(encoding="utf-8"))
    assert checked["sources"] == ["../raw"]
    record = Workspace(ws).read_metadata()
    assert {s["source_file"] for s in record["sources"]} == {"../raw/stack.ome.tif"}
    assert import_ome(Path("../ws"), Path("stack.ome.tif")).status == "notneeded"


def test_a_prediction_copied_within_a_moved_workspace_is_not_taken_for_another_images(
    built, tmp_path
):
    from curated.images import add_labels

    ws = copy_tree(built, tmp_path / "ws")
    image = ws / "derived" / "cell.ome.zarr"
    add_labels(image, "copy", image / "labels" / "pred", workspace=ws)
    group = json.loads((image / "labels" / "copy" / "zarr.json").read_text(encoding="utf-8"))
    copied = group["attributes"]["curated"]["copied_from"]
    assert copied == {"label_image": "../pred", "image": "../.."}
    os.rename(ws, tmp_path / "moved")
    image = tmp_path / "moved" / "derived" / "cell.ome.zarr"
    rep = evaluate(image, pred="copy", truth="truth", label_value=2, blocks=1, block_size=8)
    assert not any("copied from" in w for w in rep.warnings), rep.warnings
