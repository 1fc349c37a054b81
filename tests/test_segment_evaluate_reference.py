"""The reported scores against an independent numpy reference on small awkward label images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_segment_evaluate import _model

from curated.segment.evaluate import evaluate
from curated.segment.metrics import count_block


def _image(path: Path, truth: np.ndarray, pred: np.ndarray, voxel=(8.0, 8.0, 8.0)) -> Path:
    from curated.images import add_labels, write_ome_zarr

    rng = np.random.default_rng(0)
    raw = (100 + 80 * (truth == 1) + rng.normal(0, 5, truth.shape)).clip(0, 255)
    write_ome_zarr(raw.astype(np.uint8), path, voxel_size=voxel, chunks=8)
    props = [{"label-value": 1, "name": "mitochondrion"}, {"label-value": 2, "name": "nucleus"}]
    add_labels(path, "truth", truth, kind="truth", properties=props)
    add_labels(path, "pred", pred, kind="prediction", ai_generated=True,
               model={"id": "m", "sha256": "0" * 64, "card": None})  # fmt: skip
    return path


def _kept(shape, rois, context) -> np.ndarray:
    """True outside every ROI grown by ``context`` (clipped at the image)."""
    keep = np.ones(shape, bool)
    for r in rois:
        keep[
            tuple(
                slice(max(0, o - c), max(0, o + s + c))
                for o, s, c in zip(r["offset"], r["shape"], context, strict=True)
            )
        ] = False
    return keep


def _reference(truth, pred, label_value, pred_value, keep) -> dict[str, float | int]:
    t, p = (truth == label_value) & keep, (pred == pred_value) & keep
    tp, fp, fn = int((t & p).sum()), int((p & ~t).sum()), int((t & ~p).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "dice": 2 * tp / (2 * tp + fp + fn)}


def test_whole_volume_and_x_bins_match_numpy_on_an_awkward_image(tmp_path):
    """Odd shape (no multiple of the tile), anisotropic voxels, another prediction value,
    two overlapping training ROIs, one at the image's edge."""
    rng = np.random.default_rng(1)
    shape = (13, 37, 29)
    truth = (rng.random(shape) < 0.2).astype(np.uint8)
    truth[:, 30:, :] = 2
    pred = np.zeros(shape, np.uint8)
    pred[rng.random(shape) < 0.25] = 3
    pred[(truth == 1) & (rng.random(shape) < 0.5)] = 3
    img = _image(tmp_path / "c.ome.zarr", truth, pred, voxel=(30.0, 4.0, 4.0))
    rois = [
        {"offset": [0, 0, 20], "shape": [5, 10, 9]},
        {"offset": [3, 5, 22], "shape": [6, 10, 7]},
    ]
    model = _model(tmp_path / "m", rois, context=(1, 2, 2))
    evaluate(
        img, pred="pred", truth="truth", label_value=1, pred_value=3, blocks=3,
        block_size=(4, 8, 8), exclude_training=model, tile=8, factors=None,
        out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    keep = _kept(shape, rois, (1, 2, 2))
    wv = data["whole_volume"]
    ref = _reference(truth, pred, 1, 3, keep)
    raw = wv["overall"]["raw"]
    assert {k: raw[k] for k in ref} == ref
    assert wv["overall"]["scored_voxels"] == int(keep.sum())
    assert wv["excluded_training_voxels"] == int((~keep).sum())
    lo, hi = wv["overall"]["ci95"]["dice"]
    assert lo <= raw["dice"] <= hi
    for b in wv["x_curve"]:
        part = keep.copy()
        part[:, :, : b["x_start"]] = False
        part[:, :, b["x_stop"] :] = False
        ref = _reference(truth, pred, 1, 3, part)
        assert {k: b["raw"][k] for k in ref} == ref
    for blk in data["blocks"]:
        where = tuple(slice(o, o + s) for o, s in zip(blk["offset"], blk["shape"], strict=True))
        ref = _reference(truth[where], pred[where], 1, 3, np.ones(truth[where].shape, bool))
        assert {k: blk["counts"][k] for k in ("tp", "fp", "fn")} == {
            k: ref[k] for k in ("tp", "fp", "fn")
        }
    # the confusion: every false positive is counted once, under the truth value it lies in
    rows = data["confusion"]["whole_volume"]["by_truth_class"]
    fp = (pred == 3) & (truth != 1) & keep
    assert {r["truth_value"]: r["voxels"] for r in rows} == {
        v: int((fp & (truth == v)).sum()) for v in (0, 2)
    }
    assert sum(r["share"] for r in rows) == 1.0 or abs(sum(r["share"] for r in rows) - 1) < 1e-12


def test_a_class_only_inside_the_training_regions_gets_no_dice_of_one(tmp_path):
    """Nothing of the class outside the training regions, nothing predicted there: the whole
    volume and the blocks measured nothing, yet Dice 1.000 (95% CI 1.000–1.000) headed the
    report and went into the JSON a model card quotes."""
    shape = (8, 24, 40)
    truth = np.zeros(shape, np.uint8)
    truth[2:6, 4:10, 4:10] = 1
    pred = np.zeros(shape, np.uint8)
    pred[2:6, 4:10, 5:10] = 1
    img = _image(tmp_path / "c.ome.zarr", truth, pred)
    model = _model(tmp_path / "m", [{"offset": [0, 0, 0], "shape": [8, 12, 12]}], context=(1, 1, 1))
    rep = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=4, block_size=(4, 6, 6),
        exclude_training=model, tile=8, factors=None, out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    whole = data["whole_volume"]["overall"]
    assert (whole["raw"]["tp"], whole["raw"]["fp"], whole["raw"]["fn"]) == (0, 0, 0)
    assert whole["raw"]["dice"] is None and whole["raw"]["iou"] is None
    assert whole["ci95"]["dice"] is None
    assert all(b["raw"]["dice"] is None for b in data["whole_volume"]["x_curve"])
    assert data["overall"]["raw"]["dice"] is None and data["ci95"]["dice"] is None
    assert data["overall"]["instance"]["f1"] is None
    assert data["whole_volume"]["threshold_baseline"]["dice"] is None
    md = (tmp_path / "ev.md").read_text(encoding="utf-8")
    assert "1.000–1.000" not in md
    assert "| Dice (= voxel F1) | n/a | n/a |" in md
    whole_row = next(row for row in md.splitlines() if row.startswith("| whole volume"))
    assert "1.000" not in whole_row
    # a single empty block keeps the convention, marked in every column
    assert "| 1.000 (empty) | 1.000 (empty) | 1.000 (empty) |" in md
    assert "Dice 1.000" not in rep.result().message


def test_an_x_bin_inside_the_training_regions_is_not_scored_one(tmp_path):
    rng = np.random.default_rng(3)
    shape = (12, 40, 40)
    truth = (rng.random(shape) < 0.5).astype(np.uint8)
    pred = truth.copy()
    pred[rng.random(shape) < 0.1] ^= 1
    img = _image(tmp_path / "c.ome.zarr", truth, pred)
    rois = [{"offset": [0, 0, 0], "shape": [12, 40, 30]}]
    model = _model(tmp_path / "m", rois, context=(1, 1, 1))
    rep = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=2, block_size=(4, 4, 4),
        exclude_training=model, factors=None, out=tmp_path / "ev.json",
    )  # fmt: skip
    curve = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))["whole_volume"][
        "x_curve"
    ]
    empty = [b for b in curve if b["scored_voxels"] == 0]
    assert empty and all(b["raw"]["dice"] is None for b in empty)
    md = (tmp_path / "ev.md").read_text(encoding="utf-8")
    assert "| 0–10 | 0 | 0 | 1.000 |" not in md
    # most of the image lies in training regions: the reader is told how little was scored
    assert any("of the image lies in the training regions" in w for w in rep.warnings)


def test_boundary_excluded_dice_is_not_one_when_every_truth_voxel_is_in_the_band(tmp_path):
    """Small objects lie wholly in the band around their edges; a model that found none of them
    scored 'Dice, boundary excluded 1.000 (95% CI 1.000–1.000)' beside a raw Dice of 0."""
    shape = (8, 24, 24)
    truth = np.zeros(shape, np.uint8)
    for z in (1, 5):
        for y in range(1, 22, 5):
            for x in range(1, 22, 5):
                truth[z : z + 2, y : y + 2, x : x + 2] = 1
    img = _image(tmp_path / "c.ome.zarr", truth, np.zeros(shape, np.uint8))
    evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=8, block_size=(4, 6, 6), tile=8,
        factors=None, out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    whole = data["whole_volume"]["overall"]
    assert whole["raw"]["dice"] == 0.0
    assert whole["boundary_excluded"]["dice"] is None
    assert whole["ci95"]["dice_boundary_excluded"] is None
    assert data["overall"]["boundary_excluded"]["dice"] is None
    assert data["ci95"]["dice_boundary_excluded"] is None
    md = (tmp_path / "ev.md").read_text(encoding="utf-8")
    assert "| Dice, boundary excluded | n/a | n/a |" in md
    assert all(not row.endswith("| 1.000 | 0.000 |") for row in md.splitlines())


def test_unannotated_voxels_are_no_true_negatives():
    truth = np.zeros((2, 4, 4), bool)
    truth[0, :2, :2] = True
    pred = np.zeros_like(truth)
    pred[0, :2, :3] = True
    valid = np.zeros_like(truth)
    valid[0] = True  # the second plane is unannotated
    c = count_block(pred, truth, valid=valid)
    assert (c.tp, c.fp, c.fn) == (4, 2, 0)
    assert c.tp + c.fp + c.fn + c.tn == int(valid.sum())


def test_no_dice_of_one_without_a_confusion_when_nothing_else_is_left():
    """No truth of the class, every false positive inside the nucleus: 'without them Dice would
    be 1.000 instead of 0.000' promised a perfect score for a model that found nothing."""
    from curated.segment.confusion import Confusion

    s = Confusion(fp=8, by_truth={2: 8}).summary(1, {1: "mito", 2: "nucleus"}, tp=0, fn=0)
    assert s["by_truth_class"][0]["dice_without"] is None
    assert s["errors"]["dice"] == 0.0
    assert not any("without them" in x for x in s["sentences"])
    assert any("100% of false-positive voxels are nucleus (label 2)" in x for x in s["sentences"])
    both_empty = Confusion().summary(1, tp=0, fn=0)
    assert both_empty["errors"]["dice"] is None


def test_blocks_without_annotated_voxels_do_not_count_as_blocks(tmp_path):
    """A sparse truth annotated in one corner: 7 of 8 random blocks held no annotated voxel,
    yet the report gave 'Dice 0.630 (95% CI 0.630–1.000) on 8 held-out blocks' with no
    too-few-blocks warning: the interval rested on one block (its upper end on resamples of
    empty blocks scoring 1)."""
    rng = np.random.default_rng(7)
    shape = (16, 48, 48)
    full = (rng.random(shape) < 0.3).astype(np.uint8)
    truth = np.full(shape, 255, np.uint8)
    truth[0:8, 0:12, 0:12] = full[0:8, 0:12, 0:12]
    pred = full.copy()
    pred[rng.random(shape) < 0.2] ^= 1
    img = _image(tmp_path / "c.ome.zarr", truth, pred)
    rep = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=8, block_size=(4, 8, 8),
        factors=["x_half"], out=tmp_path / "ev.json",
    )  # fmt: skip
    scored = [c for c in rep.counts if c.tp + c.fp + c.fn + c.tn > 0]
    assert len(scored) == 1 and len(rep.counts) == 8
    assert rep.ci95["dice"] is None  # one block with anything scored: no interval
    assert all(g["ci95"]["dice"] is None for g in rep.factors()["x_half"].values())
    assert any("only 1 of the 8 block(s) hold annotated voxels" in w for w in rep.warnings)
    msg = rep.result().message
    assert "95% CI" not in msg and "on 8 random blocks (1 with annotated voxels)" in msg
    data = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    assert data["overall"]["scored_blocks"] == 1
    # a block of unannotated voxels has no Dice, and does not make the median per-block Dice 1
    assert [b["dice"] is None for b in data["blocks"]].count(True) == 7
    assert data["per_block_dice"]["median"] == data["per_block_dice"]["max"] < 1
    assert "(not annotated)" in (tmp_path / "ev.md").read_text(encoding="utf-8")


def test_a_model_card_renders_an_evaluation_that_has_no_dice(tmp_path):
    """The card formatted every Dice with '%.3f': an evaluation with nothing of the class in a
    factor group or in the whole volume (Dice null) must read n/a, not stop the export."""
    from curated._text import render_template
    from curated.segment.export import ORIGIN_TEXT

    shape = (8, 24, 40)
    truth = np.zeros(shape, np.uint8)
    truth[2:6, 4:10, 4:10] = 1
    img = _image(tmp_path / "c.ome.zarr", truth, truth.copy())
    model = _model(tmp_path / "m", [{"offset": [0, 0, 0], "shape": [8, 12, 12]}], context=(1, 1, 1))
    rep = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=4, block_size=(4, 6, 6),
        exclude_training=model, tile=8, factors=["x_half"],
    )  # fmt: skip
    ev = rep.to_dict() | {"_current": True}
    card = render_template(
        "model_card.md.j2", strict=False, current=[ev], evaluations=[ev], origin_text=ORIGIN_TEXT,
        prep={"low": 0.0, "high": 1.0, "percentiles": [1, 99]},
    )  # fmt: skip
    assert "| whole volume outside training regions | 6328 | n/a | n/a |" in card
    assert "| Dice | n/a | n/a |" in card
