"""The README tells who made each label image, names the classes and shows whole-volume scores."""

from __future__ import annotations

import numpy as np
import pytest

from curated.document import todo_fields, write_readme
from curated.images import add_labels
from curated.segment import _store, annotate_from_truth, make_fibsem_sample
from curated.segment.evaluate import evaluate
from curated.workspace import Workspace

SHAPE = (16, 48, 48)


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "Zelle"}})
    image = ws.derived_dir / "cell.ome.zarr"
    make_fibsem_sample(image, shape=SHAPE, voxel_size=(16, 8, 8), seed=0)
    annotate_from_truth(image, crops=2, size=8, seed=1, name="annotations")
    truth = np.asarray(_store.label_level0(image, "truth")[...])
    pred = (truth == 1).astype(np.uint8)
    pred[(truth == 2) & (np.roll(truth, 2, axis=1) != 2)] = (
        1  # the nucleus edge, called mitochondrion
    )
    add_labels(image, "mito-pred", pred, kind="prediction", model={"id": "m-1"})
    add_labels(image, "old", np.zeros(SHAPE, np.uint8), kind="truth")
    g = _store.label_group(image, "old", mode="r+")
    block = dict(g.attrs["curated"])
    block.pop("origin")  # written before origins were recorded
    g.attrs["curated"] = block
    evaluate(
        image, pred="mito-pred", truth="truth", label_value=1, blocks=2, block_size=8,
        workspace=ws, name="mito",
    )  # fmt: skip
    return ws


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_readme_marks_every_label_images_origin_and_names_classes(ws):
    write_readme(ws, figures=True)
    text = (ws.root / "README.md").read_text(encoding="utf-8")
    truth = _line(text, "- **cell / truth**")
    assert "origin: simulated" in truth and "**simulated**" in truth
    assert "Classes: 1 = mitochondrion, 2 = nucleus." in truth
    ann = _line(text, "- **cell / annotations**")
    assert "origin: derived-from-truth" in ann and "**derived from truth**" in ann
    assert "Classes: 1 = mitochondrion" in ann and "class 1" not in ann
    pred = _line(text, "- **cell / mito-pred**")
    assert "origin: model-prediction" in pred and "**AI-generated** by model `m-1`" in pred
    assert "made by people" not in text
    # an older label image without an origin is a gap to fill, never "made by people"
    assert any(f.startswith("labels old: origin") for f in todo_fields(text))
    # data-specific section and the figure captions say it too
    assert "**Label image `truth`:** truth (origin: simulated)" in text
    assert "label image annotations (derived from truth, not an independent annotation)" in text


def test_readme_shows_whole_volume_next_to_blocks_and_what_goes_wrong(ws):
    write_readme(ws, figures=False)
    text = (ws.root / "README.md").read_text(encoding="utf-8")
    assert "Scores for mitochondrion (derived/evaluations/mito.json)" in text
    assert "(origin: simulated)" in text
    # no model was given to this evaluation: nothing may claim training regions were left out
    assert "whole volume (training regions not left out: no model given) Dice" in text
    assert "outside training regions" not in text
    assert "held-out blocks Dice" in text and "Along x (whole volume): x 0–12 Dice" in text
    wrong = _line(text, "    - What the model gets wrong:")
    assert "nucleus (label 2)" in wrong
    # the whole-volume picture is shown beside the scores, from where the README lies
    picture = "derived/evaluations/mito-whole.png"
    assert (ws.root / picture).is_file() and f"]({picture})" in text
