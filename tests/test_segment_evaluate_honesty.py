"""Ways a score could flatter: another model's training regions, too few blocks, a warp's
reach, a label image on another voxel grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from test_segment_evaluate import _model, _truth, _write_image

from curated.errors import SegmentationError
from curated.segment.evaluate import evaluate, training_exclusion


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    truth = _truth()
    pred = (truth == 1).astype(np.uint8)
    return _write_image(tmp_path / "cell.ome.zarr", truth, pred)  # made by model "m", weights 0…0


def _set_weights(model: Path, sha: str, parent: str | None = None) -> Path:
    meta = json.loads((model / "model.json").read_text())
    meta["weights"]["sha256"] = sha
    meta["parent"] = {"sha256": parent, "id": "parent"} if parent else None
    (model / "model.json").write_text(json.dumps(meta))
    return model


ROI = [{"offset": [0, 0, 0], "shape": [8, 16, 16]}]


def test_exclusion_by_another_model_than_the_predictions_is_refused(sample, tmp_path):
    """The prediction's own training crops would be scored as held out, and the score filed
    in the other model's model.json."""
    other = _set_weights(_model(tmp_path / "other", ROI), "cd" * 32)
    child = _set_weights(_model(tmp_path / "child", ROI), "ef" * 32, parent="0" * 64)
    for m in (other, child):
        with pytest.raises(SegmentationError, match="made by model 'm'"):
            evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                     exclude_training=m)  # fmt: skip
        assert json.loads((m / "model.json").read_text())["evaluations"] == []
    own = _set_weights(_model(tmp_path / "own", ROI), "0" * 64)
    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   exclude_training=own, whole_volume=False)  # fmt: skip
    assert rep.model["path"] == str(own)


def test_a_model_card_never_quotes_another_models_prediction_as_current(tmp_path):
    """Evaluations filed before the check above: the card must not call them this model's."""
    from curated.segment.export import _read_evaluations

    folder = tmp_path / "m"
    folder.mkdir()
    for name, predicted_by in (("own", "ab" * 32), ("other", "cd" * 32), ("old", None)):
        ev = {"model": {"weights_sha256": "ab" * 32}, "pred": {"name": "p"}}
        if predicted_by:
            ev["pred"]["model"] = {"id": "x", "sha256": predicted_by}
        (folder / f"{name}.json").write_text(json.dumps(ev))
    meta = {"evaluations": ["own.json", "other.json", "old.json"]}
    got = {e["_rel"]: e["_current"] for e in _read_evaluations(folder, meta, None, "ab" * 32)}
    assert got == {"own.json": True, "other.json": False, "old.json": True}


def test_too_few_blocks_for_a_ci_are_said_in_warnings_and_message(sample):
    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   whole_volume=False)  # fmt: skip
    assert rep.ci95["dice"] is not None  # a CI is shown, but it is not to be trusted
    assert any("only 2 block(s)" in w for w in rep.warnings)
    assert "too few blocks or tiles to trust" in rep.result().message
    many = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                    whole_volume=False, name="many")  # fmt: skip
    assert not any("block(s): a bootstrap" in w for w in many.warnings)
    assert "too few blocks" not in many.result().message
    # the whole volume in 4 tiles (64³ tiles cut at 4 x-bins): its CI is as thin
    whole = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                     tile=64, name="whole")  # fmt: skip
    assert any("scored in only 4 tile(s)" in w for w in whole.warnings)
    assert "on the whole volume" in whole.result().message
    assert whole.result().message.count("too few blocks or tiles to trust") == 1
    fine = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                    tile=16, name="fine")  # fmt: skip
    assert not any("tile(s)" in w for w in fine.warnings)


def test_an_elastic_warps_reach_is_excluded_too(tmp_path):
    model = _model(tmp_path / "m", ROI, context=(2, 2, 2))
    plain = training_exclusion(model)
    meta = json.loads((model / "model.json").read_text())
    meta["training"]["augmentation"] = {"elastic": True, "elastic_sigma": 2.0, "transposes": True}
    (model / "model.json").write_text(json.dumps(meta))
    warped = training_exclusion(model)
    # the warp moves raw voxels and labels up to 3σ + 1 = 7 voxels in y and x
    assert plain.margin == (2, 2, 2) and warped.margin == (2, 9, 9)
    meta["training"]["augmentation"] = {"swap_z": True, "transposes": True}
    meta["architecture"]["context"] = [1, 4, 4]
    (model / "model.json").write_text(json.dumps(meta))
    assert training_exclusion(model).margin == (4, 4, 4)  # z read as y or x: their context


def _rescale(label: Path, scale: list[float], translation: list[float] | None = None) -> None:
    group = zarr.open_group(str(label), mode="r+")
    attrs = dict(group.attrs)
    ome = dict(attrs["ome"]) if "ome" in attrs else attrs
    ms = [dict(m) for m in ome["multiscales"]]
    ds = [dict(d) for d in ms[0]["datasets"]]
    tr = [dict(t) for t in ds[0]["coordinateTransformations"]]
    tr = [{"type": "scale", "scale": scale}] + (
        [{"type": "translation", "translation": translation}] if translation else []
    )
    ds[0]["coordinateTransformations"] = tr
    ms[0]["datasets"] = ds
    ome["multiscales"] = ms
    if "ome" in attrs:
        attrs["ome"] = ome
    group.attrs.update(attrs)


@pytest.mark.parametrize(
    ("scale", "translation"), [([16.0, 16.0, 16.0], None), ([8.0, 8.0, 8.0], [0.0, 80.0, 0.0])]
)
def test_a_label_image_on_another_voxel_grid_is_refused(sample, scale, translation):
    """Same shape, other voxels: a prediction made at another level or for another image."""
    _rescale(sample / "labels" / "pred", scale, translation)
    with pytest.raises(SegmentationError, match="another voxel grid"):
        evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8)


def test_a_declared_class_absent_from_the_truth_is_refused_not_scored_one(tmp_path):
    """Both-empty scores 1: 'nucleus: Dice 1.000 (95% CI 1.000–1.000)' for a class nobody drew."""
    truth = _truth()
    truth[truth == 2] = 0  # nucleus is declared in the truth's properties but drawn nowhere
    image = _write_image(tmp_path / "cell.ome.zarr", truth, (truth == 1).astype(np.uint8))
    with pytest.raises(SegmentationError, match="label value 2 does not occur in the truth"):
        evaluate(image, pred="pred", truth="truth", label_value=2, blocks=8, block_size=8)


def test_no_truth_of_the_class_in_the_scored_voxels_is_no_dice_of_one(tmp_path):
    truth = _truth()
    truth[truth == 2] = 0
    truth[:4, :4, :4] = 2  # the only nucleus voxels lie inside the model's training crop
    pred = (truth == 1).astype(np.uint8)
    pred[20:22, 30:32, 30:32] = 2  # and the model calls a few voxels elsewhere nucleus
    image = _write_image(tmp_path / "cell.ome.zarr", truth, pred)
    model = _model(tmp_path / "m", ROI)
    rep = evaluate(image, pred="pred", truth="truth", label_value=2, pred_value=2, blocks=8,
                   block_size=8, exclude_training=model, stratify=False)  # fmt: skip
    msg = rep.result().message
    assert "Dice 1.000" not in msg
    assert (
        "Dice undefined (no truth of the class there; 8 false-positive voxels) on the whole" in msg
    )


def test_blocks_only_on_a_complete_truth_says_the_whole_volume_figure_is_missing(sample):
    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                   whole_volume=False)  # fmt: skip
    assert rep.whole is None
    assert any("only the held-out blocks were scored" in w for w in rep.warnings)
    assert "only the held-out blocks were scored" in rep.to_markdown()
    whole = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                     name="whole")  # fmt: skip
    assert not any("only the held-out blocks were scored" in w for w in whole.warnings)


def test_the_demo_summary_names_the_class_and_gives_both_cis(sample):
    from curated.demo import _eval_figures

    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16)  # fmt: skip
    fig = _eval_figures(rep)
    assert fig["class"] == "mitochondrion"
    keys = list(fig)
    assert keys.index("whole-volume dice") < keys.index("blocks dice")  # the one to quote first
    lo, hi = fig["whole-volume dice 95% CI"]
    assert lo <= fig["whole-volume dice"] <= hi
    lo, hi = fig["blocks dice 95% CI"]
    assert lo <= fig["blocks dice"] <= hi


def test_inputs_that_would_score_without_meaning_are_refused(sample):
    from curated.images import add_labels

    with pytest.raises(SegmentationError, match="same label image"):
        evaluate(sample, pred="truth", truth="truth", label_value=1, blocks=2, block_size=8)
    # a model's probability image (probability × 255) taken for its labels
    prob = np.zeros((24, 64, 64), np.uint8)
    prob[:, :, :32] = 1
    add_labels(sample, "pred-probability", prob, kind="prediction", ai_generated=True,
               curated_extra={"prediction": {"values": "probability x 255"}})  # fmt: skip
    with pytest.raises(SegmentationError, match="probabilities"):
        evaluate(sample, pred="pred-probability", truth="truth", label_value=1, pred_value=1,
                 blocks=2, block_size=8)  # fmt: skip
    # a float label image written by another tool: NaN never equals a label value
    g = zarr.open_group(str(sample / "labels" / "pred"), mode="r+")
    old = g["0"]
    arr = g.create_array("0", shape=old.shape, chunks=old.chunks, dtype="f4", overwrite=True)
    arr[...] = np.where(_truth() == 1, 1.0, np.nan).astype("f4")
    with pytest.raises(SegmentationError, match="float32 values, not integer labels"):
        evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8)


def test_a_truth_with_crops_a_model_predicted_says_so(sample, tmp_path):
    from curated.segment import import_annotation

    crop = np.zeros((8, 8, 8), np.uint8)
    crop[2:6, 2:6, 2:6] = 1
    np.save(tmp_path / "crop.npy", crop)
    import_annotation(sample, source_file=tmp_path / "crop.npy", offset=(0, 0, 0), name="ann")
    import_annotation(sample, source_file=tmp_path / "crop.npy", offset=(8, 16, 16), name="ann",
                      origin="model-prediction")  # fmt: skip
    rep = evaluate(sample, pred="pred", truth="ann", label_value=1, blocks=2, block_size=8)
    assert rep.truth_origin == "mixed"
    assert any("1 crop(s) of the truth 'ann' are a model's prediction" in w for w in rep.warnings)


def test_training_regions_of_a_copied_image_stay_excluded(sample, tmp_path):
    """A copy or re-conversion under another name shares every voxel with the training image."""
    import shutil

    copy = tmp_path / "cell-v2.ome.zarr"
    shutil.copytree(sample, copy)
    roi = {"offset": [0, 0, 0], "shape": [8, 16, 16], "image": str(sample)}
    model = _set_weights(_model(tmp_path / "m", [roi]), "0" * 64)
    rep = evaluate(copy, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   exclude_training=model, stratify=False)  # fmt: skip
    assert rep.model["lineage_rois"] == [{"offset": [0, 0, 0], "shape": [8, 16, 16]}]
    assert all(not b.intersects(rep.held_out.exclusion[0]) for b in rep.held_out.blocks)
    # a re-conversion to another grey-value window shares them too
    import zarr as _zarr

    rescaled = tmp_path / "cell-8bit.ome.zarr"
    shutil.copytree(sample, rescaled)
    arr = _zarr.open_group(str(rescaled), mode="r+")["0"]
    arr[...] = (np.asarray(arr[...]) // 2 + 20).astype(arr.dtype)
    rep = evaluate(rescaled, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   exclude_training=model, stratify=False, name="rescaled")  # fmt: skip
    assert rep.model["lineage_rois"] == [{"offset": [0, 0, 0], "shape": [8, 16, 16]}]
    # another image (other voxels) shares none: its ROIs are left out, silently
    moved = np.roll(_truth(), (6, 6), axis=(1, 2))  # another cell: structures elsewhere
    other = _write_image(tmp_path / "other.ome.zarr", moved, moved, shading=0.1)
    rep = evaluate(other, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   exclude_training=model, name="other")  # fmt: skip
    assert rep.model["lineage_rois"] == [] and not any("not found" in w for w in rep.warnings)
    # a training image that cannot be found: left out, and the report says so
    shutil.rmtree(sample)
    rep = evaluate(copy, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
                   exclude_training=model, name="gone")  # fmt: skip
    assert rep.model["lineage_rois"] == []
    assert any("which was not found" in w for w in rep.warnings)


def test_an_undeclared_255_in_the_truth_is_not_scored_as_background(tmp_path):
    """Nobody looked at the high-x side (255): the model missing every mitochondrion there
    scored 'Dice 1.000 on the whole volume'."""
    truth = _truth()
    pred = (truth == 1).astype(np.uint8)
    truth[:, :, 40:] = 255
    pred[:, :, 40:] = 0
    image = _write_image(tmp_path / "cell.ome.zarr", truth, pred)
    rep = evaluate(image, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16)  # fmt: skip
    assert 255 in rep.unannotated and not rep.truth_complete
    assert rep.whole is None and "whole volume" not in rep.result().message
    assert any("holds value 255 without naming it" in w for w in rep.warnings)
    asked = evaluate(image, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                     tile=16, whole_volume=True, name="asked")  # fmt: skip
    assert asked.whole.overall["scored_voxels"] == 24 * 64 * 40


def test_without_a_model_nothing_claims_training_regions_were_left_out(sample, tmp_path):
    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16, out=tmp_path / "e.json")  # fmt: skip
    d = rep.to_dict()
    assert "NOT checked against training regions" in d["protocol"]["sampling"]
    assert "training regions included" in d["protocol"]["whole_volume"]
    assert d["protocol"]["dataset_role"] == "unchecked"
    assert any("the prediction records model 'm': pass its folder" in w for w in rep.warnings)
    msg = rep.result().message
    assert "outside training regions" not in msg and "held-out" not in msg
    assert "the whole volume, training regions not left out" in msg
    md = (tmp_path / "e.md").read_text(encoding="utf-8")
    assert "outside training regions" not in md and "(training regions not left out)" in md
    assert "held-out" not in md
    model = _model(tmp_path / "m", ROI)
    held = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                    tile=16, exclude_training=model, name="held")  # fmt: skip
    assert "rejected and redrawn" in held.to_dict()["protocol"]["sampling"]
    assert "on the whole volume outside training regions" in held.result().message


def test_fair_evidence_quotes_the_whole_volume_figure_beside_the_blocks(tmp_path):
    from document_workspaces import make_complete_workspace

    from curated.document.fair import fair_checklist

    ws = make_complete_workspace(tmp_path / "ws")
    path = ws.root / "derived/evaluations/mito-eval.json"
    ev = json.loads(path.read_text(encoding="utf-8"))
    ev["whole_volume"] = {"overall": {"raw": {"dice": 0.61}, "ci95": {"dice": [0.55, 0.66]}}}
    path.write_text(json.dumps(ev), encoding="utf-8")
    report = fair_checklist(ws, write=False)
    evidence = [
        (e.field, e.value)
        for e in report.metric("curated-R1-ai-marking").evidence
        if e.file.endswith("mito-eval.json")
    ]
    assert evidence == [("whole_volume.overall.raw.dice", 0.61), ("overall.raw.dice", 0.8123)]


def test_a_prediction_copied_from_another_image_is_flagged(sample, tmp_path):
    from curated.images import add_labels

    other = _write_image(tmp_path / "other.ome.zarr", _truth(), (_truth() == 1).astype(np.uint8))
    add_labels(sample, "foreign", other / "labels" / "pred")
    add_labels(sample, "local", sample / "labels" / "pred")
    assert _copied(sample, "foreign")["image"] == str(other.resolve())
    rep = evaluate(sample, pred="foreign", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16)  # fmt: skip
    assert any("copied from a label image of another image" in w for w in rep.warnings)
    rep = evaluate(sample, pred="local", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16)  # fmt: skip
    assert not any("copied from" in w for w in rep.warnings)


def _copied(image: Path, name: str) -> dict:
    from curated.segment import _store

    return _store.label_curated_attrs(image, name)["copied_from"]


def test_a_fine_tuned_model_without_lineage_says_its_ancestors_regions_are_unknown(tmp_path):
    model = _set_weights(_model(tmp_path / "child", ROI), "ef" * 32, parent="0" * 64)
    meta = json.loads((model / "model.json").read_text())
    del meta["lineage_rois"]  # written before lineages were recorded
    (model / "model.json").write_text(json.dumps(meta))
    ex = training_exclusion(model)
    assert len(ex.rois) == 1 and any("ancestors'" in n for n in ex.notes)
    assert not training_exclusion(_model(tmp_path / "plain", ROI)).notes


def test_the_hitl_table_shows_the_whole_volume_beside_the_blocks(sample):
    from curated.segment.hitl import HitlStory, format_table

    rep = evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=8, block_size=8,
                   tile=16)  # fmt: skip
    story = HitlStory(image=sample, held_out=rep.held_out)
    story.rounds.append({"name": "r1", "crops": 2, "annotated_fraction": 0.1, "evaluation": rep})
    row = story.table()[0]
    assert row["whole_dice"] == rep.whole.overall["raw"]["dice"]
    table = format_table([row])
    assert "whole" in table.splitlines()[1] and f"{row['whole_dice']:.3f}" in table.splitlines()[-1]


def test_the_readmes_model_line_names_the_class_and_gives_the_cis(tmp_path):
    from document_workspaces import make_complete_workspace

    from curated.document import write_readme

    ws = make_complete_workspace(tmp_path / "ws")
    path = ws.root / "derived/evaluations/mito-eval.json"
    ev = json.loads(path.read_text(encoding="utf-8"))
    ev["label_name"] = "mitochondrion"
    ev["whole_volume"] = {"overall": {"raw": {"dice": 0.61}, "ci95": {"dice": [0.55, 0.66]}}}
    ev["warnings"] = ["only 6 block(s): a bootstrap confidence interval ..."]
    path.write_text(json.dumps(ev), encoding="utf-8")
    write_readme(ws)
    text = (ws.root / "README.md").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("  - Evaluated in"))
    assert "for mitochondrion" in line
    assert "Dice 0.610 (95% CI 0.550–0.660) on the whole volume" in line
    assert "Dice 0.812 (95% CI 0.770–0.850) on 8 held-out blocks" in line
    assert "1 warning(s)" in line


def test_given_blocks_that_overlap_or_leave_the_image_are_refused(sample):
    """A hand-edited blocks JSON could count one easy region twice, or claim voxels it lacks."""
    from curated.segment.evaluate import HeldOutBlocks
    from curated.segment.geometry import Box

    def held(*boxes):
        return HeldOutBlocks((24, 64, 64), (8, 8, 8), 0, tuple(Box(b, (8, 8, 8)) for b in boxes))

    with pytest.raises(SegmentationError, match="overlap"):
        evaluate(sample, pred="pred", truth="truth", label_value=1,
                 blocks=held((0, 0, 0), (4, 4, 4), (16, 40, 40)))  # fmt: skip
    with pytest.raises(SegmentationError, match="do not lie inside the image"):
        evaluate(sample, pred="pred", truth="truth", label_value=1,
                 blocks=held((0, 0, 0), (20, 60, 60)))  # fmt: skip
    rep = evaluate(sample, pred="pred", truth="truth", label_value=1,
                   blocks=held((0, 0, 0), (16, 56, 56)))  # fmt: skip
    assert len(rep.counts) == 2
