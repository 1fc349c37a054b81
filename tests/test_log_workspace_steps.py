"""The log tells the truth across segmentation steps: sample, annotate, predict, a failed step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from segment_helpers import one_torch_thread, train_tiny

from curated.errors import InputError
from curated.package import make_bag, validate_bag
from curated.provenance.digest import digest_tree
from curated.segment import (
    annotate_from_truth,
    import_annotation,
    make_fibsem_sample,
    predict,
)
from curated.workspace import Workspace
from tests.fakes import bags

SHAPE = (16, 24, 24)


@pytest.fixture
def ws(tmp_path: Path):
    ws = Workspace.create(tmp_path / "ws", record=bags.record())
    make_fibsem_sample(
        ws.derived_dir / "cell.ome.zarr", shape=SHAPE, seed=0, chunks=8, shard=16, workspace=ws
    )
    return ws


def _verify(ws) -> None:
    report = ws.log.verify(files=True)
    assert report.ok, report.problems


def test_sample_then_annotate_import_is_no_false_alarm(ws, tmp_path):
    crop = tmp_path / "crop.npy"
    np.save(crop, np.full((4, 4, 4), 1, dtype=np.uint8))
    import_annotation(
        ws.derived_dir / "cell.ome.zarr",
        source_file=crop,
        offset=(0, 0, 0),
        name="ann",
        workspace=ws,
    )
    _verify(ws)


def test_a_failed_step_never_poisons_a_later_bag(ws, tmp_path):
    with pytest.raises(InputError, match="no such annotation file"):
        import_annotation(
            ws.derived_dir / "cell.ome.zarr",
            source_file=tmp_path / "missing.tif",
            offset=(0, 0, 0),
            name="ann",
            workspace=ws,
        )
    assert ws.log.last()["status"] == "error"
    _verify(ws)
    bag = Path(make_bag(ws, ws.package_dir / "bag").path)
    report = validate_bag(bag)
    assert report.ok, report.problems


def test_working_folders_are_not_part_of_a_store_digest(tmp_path):
    store = tmp_path / "x.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    before = digest_tree(store).digest
    (store / ".curated-predict").mkdir()
    (store / ".curated-predict" / "done-0-0-0").touch()
    assert digest_tree(store).digest == before


def test_log_verifies_after_predict_in_a_workspace(ws, tmp_path):
    image = ws.derived_dir / "cell.ome.zarr"
    annotate_from_truth(image, crops=2, size=8, seed=0, name="ann", workspace=ws)
    with one_torch_thread():
        train_tiny(image, tmp_path / "model")
        predict(tmp_path / "model", image, name="pred", workers=1, workspace=ws)
    assert not (image / "labels" / "pred" / ".curated-predict").exists()
    _verify(ws)


def test_no_absolute_local_path_reaches_a_deposit(ws, tmp_path, monkeypatch):
    """Paths are recorded relative to the workspace: README table, log, crate, receipt."""
    from curated.deposit import deposit
    from curated.document.readme import write_readme

    crop = tmp_path / "crop.npy"
    np.save(crop, np.full((4, 4, 4), 1, dtype=np.uint8))
    import_annotation(
        ws.derived_dir / "cell.ome.zarr",
        source_file=crop,
        offset=(0, 0, 0),
        name="ann",
        workspace=ws,
    )
    write_readme(ws)
    bag = Path(make_bag(ws, ws.package_dir / "bag").path)
    monkeypatch.chdir(tmp_path)
    deposit(bag, to="directory", url="repository")
    here = str(tmp_path)
    for p in [*bag.rglob("*"), ws.package_dir / "receipt.json"]:
        if p.is_file() and p.suffix in (".json", ".jsonl", ".md", ".txt", ".yaml"):
            assert here not in p.read_text(encoding="utf-8", errors="replace"), p
    import json

    receipt = json.loads((ws.package_dir / "receipt.json").read_text())
    assert receipt["url"] == "../repository"
