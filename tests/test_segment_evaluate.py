"""Honest evaluation on seeded random held-out blocks: metrics, leakage guard, reports, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from curated.errors import InputError, SegmentationError
from curated.segment.evaluate import (
    HeldOutBlocks,
    draw_held_out_blocks,
    evaluate,
    training_exclusion,
)
from curated.segment.geometry import Box
from curated.segment.metrics import (
    BlockCounts,
    bootstrap_ci,
    boundary_band_mask,
    count_block,
    instance_counts,
    ratio_scores,
)
from curated.workspace import Workspace, recorder

SHAPE = (24, 64, 64)


# ------------------------------------------------------------------ fixtures
def _write_image(
    path: Path,
    truth: np.ndarray,
    pred: np.ndarray | None,
    *,
    pred_name: str = "pred",
    shading: float = 0.5,
) -> Path:
    from curated.images import add_labels, write_ome_zarr

    rng = np.random.default_rng(0)
    ramp = 1.0 - shading * np.linspace(0.0, 1.0, truth.shape[2])  # darker towards high x
    image = (
        ((100 + 80 * (truth == 1)) * ramp + rng.normal(0, 5, truth.shape))
        .clip(0, 255)
        .astype(np.uint8)
    )
    write_ome_zarr(image, path, voxel_size=(8.0, 8.0, 8.0), chunks=16)
    add_labels(
        path,
        "truth",
        truth,
        kind="truth",
        properties=[
            {"label-value": 1, "name": "mitochondrion"},
            {"label-value": 2, "name": "nucleus"},
        ],
    )
    if pred is not None:
        add_labels(
            path,
            pred_name,
            pred,
            kind="prediction",
            ai_generated=True,
            model={"id": "m", "sha256": "0" * 64, "card": None},
        )
    return path


def _truth() -> np.ndarray:
    """Cubes of label 1 spread over the volume, one slab of label 2."""
    t = np.zeros(SHAPE, np.uint8)
    for z0 in (2, 13):
        for y0 in range(2, 60, 12):
            for x0 in range(2, 60, 12):
                t[z0 : z0 + 8, y0 : y0 + 8, x0 : x0 + 8] = 1
    t[:, 60:, :] = 2
    return t


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    truth = _truth()
    pred = (truth == 1).astype(np.uint8)
    pred[:, :, 32:] = 0  # the prediction misses everything on the high-x ("shaded") half
    return _write_image(tmp_path / "cell.ome.zarr", truth, pred)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws", record={"study": {"title": "Zelle Ω"}})


def _model(
    folder: Path, rois: list[dict], lineage: list[dict] | None = None, context=(2, 2, 2)
) -> Path:
    folder.mkdir(parents=True)
    meta = {
        "format": "curated-unet/1",
        "id": folder.name,
        "name": folder.name,
        "architecture": {"context": list(context)},
        "label": {"labels": "annotations", "label_value": 1},
        "training": {"rois": rois},
        "parent": None,
        "lineage_rois": lineage if lineage is not None else rois,
        "weights": {"file": "weights.pt", "sha256": "0" * 64},
        "evaluations": [],
    }
    (folder / "model.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return folder


# ------------------------------------------------------------------- metrics
def test_ratio_scores_known_values_and_both_empty():
    s = ratio_scores(tp=6, fp=2, fn=2)
    assert s["dice"] == pytest.approx(12 / 16)
    assert s["iou"] == pytest.approx(6 / 10)
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.75)
    both_empty = ratio_scores(0, 0, 0)
    assert both_empty["dice"] == 1.0 and both_empty["precision"] is None
    only_fp = ratio_scores(0, 5, 0)
    assert only_fp["dice"] == 0.0 and only_fp["recall"] is None


def test_boundary_band_covers_both_sides_of_the_edge():
    t = np.zeros((9, 9, 9), bool)
    t[3:6, 3:6, 3:6] = True
    band = boundary_band_mask(t, 1)
    assert band[4, 4, 4] == np.False_  # centre of the cube: interior, kept
    assert band[3, 4, 4] and band[2, 4, 4]  # inner and outer voxel at the face
    assert not band[0, 0, 0]  # far background
    assert boundary_band_mask(t, 0).sum() == 0


def test_instance_matching_is_one_to_one_at_iou_half():
    truth = np.zeros((10, 20, 20), bool)
    truth[2:6, 2:6, 2:6] = True  # A
    truth[2:6, 10:14, 10:14] = True  # B
    pred = np.zeros_like(truth)
    pred[2:6, 2:6, 2:6] = True  # A exactly
    pred[2:6, 10:14, 12:16] = True  # B shifted by 2 in x: IoU 32/96 < 0.5
    pred[8:10, 17:20, 17:20] = True  # a false positive
    assert instance_counts(pred, truth) == (1, 2, 1)
    assert instance_counts(pred, truth, iou_threshold=0.3) == (2, 1, 0)
    # one big prediction covering both truth objects matches at most one of them
    merged = np.zeros_like(truth)
    merged[2:6, 2:14, 2:14] = True
    tp, fp, fn = instance_counts(merged, truth, iou_threshold=0.1)
    assert (tp, fp, fn) == (1, 0, 1)


def test_count_block_sums_and_band():
    truth = np.zeros((8, 8, 8), bool)
    truth[2:6, 2:6, 2:6] = True
    pred = truth.copy()
    pred[2:6, 2:6, 6] = True  # one extra layer right at the edge: inside the band
    c = count_block(pred, truth, boundary_band=1)
    assert (c.tp, c.fp, c.fn) == (64, 16, 0)
    assert c.band_fp == 0  # the error is on the boundary, so it is excluded there
    assert c.tp + c.fp + c.fn + c.tn == truth.size
    with pytest.raises(SegmentationError):
        count_block(pred[:4], truth)


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    counts = [
        BlockCounts(
            tp=int(rng.integers(50, 100)), fp=int(rng.integers(0, 30)), fn=int(rng.integers(0, 30))
        )
        for _ in range(10)
    ]
    a = bootstrap_ci(counts, seed=1)
    b = bootstrap_ci(counts, seed=1)
    assert a == b
    total = sum(counts, BlockCounts())
    dice = ratio_scores(total.tp, total.fp, total.fn)["dice"]
    lo, hi = a["dice"]
    assert lo <= dice <= hi and hi - lo > 0
    assert bootstrap_ci(counts[:1])["dice"] is None


# ---------------------------------------------------------- held-out blocks
def test_a_grown_box_starting_below_zero_indexes_its_overlap_not_the_far_end():
    # a training crop at the volume's edge grown by the network's context starts at -2:
    # masking it out must remove planes 0-21, not the last two planes (Python's -2)
    held = np.ones((20, 8, 8), dtype=bool)
    grown = Box((0, 0, 0), (20, 4, 4)).grow((2, 2, 2))
    assert grown.offset == (-2, -2, -2)
    held[grown.slices] = False
    assert not held[:, :6, :6].any()
    assert held[:, 6:, :].all() and held[:, :, 6:].all()
    assert Box((-5, 0, 0), (3, 2, 2)).slices[0] == slice(0, 0)


def test_blocks_are_seeded_inside_and_non_overlapping():
    a = draw_held_out_blocks(SHAPE, 6, 12, seed=5)
    b = draw_held_out_blocks(SHAPE, 6, 12, seed=5)
    c = draw_held_out_blocks(SHAPE, 6, 12, seed=6)
    assert a.blocks == b.blocks and a.blocks != c.blocks
    for i, box in enumerate(a.blocks):
        assert all(
            o >= 0 and o + s <= n for o, s, n in zip(box.offset, box.shape, SHAPE, strict=True)
        )
        assert not any(box.intersects(other) for other in a.blocks[i + 1 :])
    assert HeldOutBlocks.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_blocks_touching_grown_training_rois_are_redrawn(tmp_path: Path):
    roi = {"offset": [0, 0, 0], "shape": [24, 32, 20]}
    ancestor_roi = {"offset": [0, 40, 40], "shape": [24, 10, 10]}
    model = _model(tmp_path / "modèle", [roi], lineage=[roi, ancestor_roi], context=(3, 4, 4))
    ex = training_exclusion(model)
    assert ex.margin == (3, 4, 4)
    assert Box((-3, 36, 36), (30, 18, 18)) in ex.boxes  # the ancestor's ROI, grown by the context
    held = draw_held_out_blocks(SHAPE, 4, 8, seed=0, exclude=ex.boxes)
    assert held.rejected_training > 0
    for box in held.blocks:
        assert not any(box.intersects(e) for e in ex.boxes)


def test_no_block_possible_outside_training_rois_is_a_clear_error():
    everything = [Box((0, 0, 0), SHAPE)]
    with pytest.raises(SegmentationError, match="every block position touches a training ROI"):
        draw_held_out_blocks(SHAPE, 2, 8, seed=0, exclude=everything)
    with pytest.raises(SegmentationError, match="too small for that many non-overlapping"):
        draw_held_out_blocks(SHAPE, 50, 16, seed=0)


# ------------------------------------------------------------------ evaluate
def test_evaluate_reports_drop_on_the_shaded_side(
    sample: Path, workspace: Workspace, tmp_path: Path
):
    model = _model(tmp_path / "m1", [{"offset": [0, 0, 0], "shape": [8, 8, 8]}])
    report = evaluate(
        sample,
        pred="pred",
        truth="truth",
        label_value=1,
        blocks=6,
        block_size=(16, 16, 16),
        seed=2,
        exclude_training=model,
        workspace=workspace,
        name="eval-1",
    )
    d = report.to_dict()
    groups = d["factors"]["shading_side"]
    assert set(groups) == {"bright", "shaded"}, "the seed must put blocks on both halves"
    assert groups["shaded"]["raw"]["recall"] in (0.0, None)
    assert groups["bright"]["raw"]["dice"] > 0.9
    raw = d["overall"]["raw"]
    assert raw["tp"] == sum(b["counts"]["tp"] for b in d["blocks"])  # summed over blocks
    assert d["ci95"]["dice"][0] <= raw["dice"] <= d["ci95"]["dice"][1]
    # outputs in the workspace, logged as an E step, linked from the model
    ev_dir = workspace.evaluations_dir
    for suffix in (".json", ".md", ".png"):
        assert (ev_dir / f"eval-1{suffix}").is_file()
    assert (ev_dir / "eval-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (ev_dir / "eval-1.md").read_text(encoding="utf-8")
    assert "## By factor: shading_side" in md and "| shaded |" in md
    assert "the high-x half is called shaded" in md
    entries = list(workspace.log.entries())
    assert (
        entries[-1]["step"] == "E"
        and entries[-1]["action"] == "evaluate"
        and entries[-1]["status"] == "ok"
    )
    assert {o["path"] for o in entries[-1]["outputs"]} >= {"derived/evaluations/eval-1.json"}
    meta = json.loads((model / "model.json").read_text(encoding="utf-8"))
    assert len(meta["evaluations"]) == 1
    assert (model / meta["evaluations"][0]).resolve() == (ev_dir / "eval-1.json").resolve()
    assert workspace.log.verify().ok


def test_model_json_update_keeps_the_log_verifiable(sample: Path, workspace: Workspace):
    model = _model(workspace.models_dir / "m", [{"offset": [0, 0, 0], "shape": [8, 8, 8]}])
    with recorder(
        workspace, "T", "train"
    ) as step:  # as `curated segment train` records its model.json
        step.add_output(model / "model.json")
    evaluate(
        sample,
        pred="pred",
        truth="truth",
        label_value=1,
        blocks=2,
        block_size=12,
        exclude_training=model,
        workspace=workspace,
    )
    assert workspace.log.verify(files=True).ok


def test_unshaded_image_has_no_shaded_half(tmp_path: Path):
    truth = _truth()
    path = _write_image(tmp_path / "flat.ome.zarr", truth, truth, shading=0.0)
    report = evaluate(
        path, pred="pred", truth="truth", label_value=1, blocks=4, block_size=12, seed=1
    )
    d = report.to_dict()
    assert set(d["factors"]["shading_side"]) <= {"low x", "high x"}
    assert d["factor_info"]["shading"]["dark_side"] is None


def _perfect(image: Path) -> str:
    """A prediction equal to the truth (the truth itself is refused as --pred)."""
    from curated.images import add_labels

    add_labels(image, "perfect", _truth(), kind="prediction", ai_generated=True, model="m")
    return "perfect"


def test_same_blocks_are_scored_again_from_the_json(sample: Path, tmp_path: Path):
    first = evaluate(
        sample,
        pred="pred",
        truth="truth",
        label_value=1,
        blocks=4,
        block_size=12,
        seed=9,
        out=tmp_path / "a.json",
    )
    again = evaluate(
        sample,
        pred=_perfect(sample),
        truth="truth",
        label_value=1,
        blocks=tmp_path / "a.json",
        out=tmp_path / "b.json",
    )
    assert again.held_out.blocks == first.held_out.blocks
    assert again.dice == 1.0
    # a model whose lineage now covers one of those blocks cannot be scored on them
    box = first.held_out.blocks[0]
    model = _model(tmp_path / "tuned", [box.to_dict()])
    with pytest.raises(SegmentationError, match="touch a training ROI"):
        evaluate(
            sample,
            pred="pred",
            truth="truth",
            label_value=1,
            blocks=first.held_out,
            exclude_training=model,
        )


def test_evaluate_refuses_to_overwrite_an_evaluation(sample: Path, tmp_path: Path):
    out = tmp_path / "e.json"
    evaluate(sample, pred="pred", truth="truth", label_value=1, blocks=2, block_size=12, out=out)
    before = out.read_bytes()
    perfect = _perfect(sample)
    with pytest.raises(InputError, match="exists"):
        evaluate(
            sample, pred=perfect, truth="truth", label_value=1, blocks=2, block_size=12, out=out
        )
    assert out.read_bytes() == before
    evaluate(
        sample,
        pred=perfect,
        truth="truth",
        label_value=1,
        blocks=2,
        block_size=12,
        out=out,
        overwrite=True,
    )
    assert json.loads(out.read_text(encoding="utf-8"))["overall"]["raw"]["dice"] == 1.0


def test_label_value_absent_is_a_clear_error(sample: Path, tmp_path: Path):
    with pytest.raises(SegmentationError, match="label value 7 is not among"):
        evaluate(sample, pred="pred", truth="truth", label_value=7, blocks=2, block_size=12)
    # a truth written by another tool, without declared values: found by scanning
    g = zarr.open_group(str(sample / "labels" / "truth"), mode="r+")
    ome = dict(g.attrs["ome"])
    ome["image-label"] = {"version": "0.5"}
    g.attrs["ome"] = ome
    with pytest.raises(SegmentationError, match="does not occur in the truth"):
        evaluate(sample, pred="pred", truth="truth", label_value=7, blocks=2, block_size=12)
    assert not any(tmp_path.glob("*.json"))


def test_shape_mismatch_and_missing_label_image(sample: Path):
    # a label image of the wrong shape, as another tool might write it
    src = zarr.open_group(str(sample / "labels" / "truth"), mode="r")
    g = zarr.open_group(str(sample / "labels" / "small"), mode="w", zarr_format=3)
    g.attrs.update(dict(src.attrs))
    g.create_array("0", data=np.zeros((24, 64, 32), np.uint8), chunks=(16, 16, 16))
    with pytest.raises(SegmentationError, match="shape"):
        evaluate(sample, pred="small", truth="truth", label_value=1, blocks=1, block_size=8)
    with pytest.raises(InputError, match="no label image 'nope'"):
        evaluate(sample, pred="nope", truth="truth", label_value=1)


def test_non_ascii_names_everywhere(tmp_path: Path):
    truth = _truth()
    path = _write_image(
        tmp_path / "Zelle-ß.ome.zarr",
        truth,
        (truth == 1).astype(np.uint8),
        pred_name="Vorhersage-µ",
    )
    ws = Workspace.create(
        tmp_path / "Arbeitsbereich-ø", record={"study": {"title": "Mitochondrien"}}
    )
    model = _model(tmp_path / "Modell-é", [{"offset": [0, 0, 0], "shape": [4, 4, 4]}])
    report = evaluate(
        path,
        pred="Vorhersage-µ",
        truth="truth",
        label_value=1,
        blocks=3,
        block_size=12,
        exclude_training=model,
        workspace=ws,
        name="Bewertung/ä",
    )
    assert report.name == "Bewertung-ä"
    data = json.loads((ws.evaluations_dir / "Bewertung-ä.json").read_text(encoding="utf-8"))
    assert data["pred"]["name"] == "Vorhersage-µ"
    assert data["overall"]["raw"]["dice"] == 1.0
    assert "Vorhersage-µ" in (ws.evaluations_dir / "Bewertung-ä.md").read_text(encoding="utf-8")


def test_cli_evaluate_prints_tables(sample: Path, tmp_path: Path):
    from curated.cli import app

    args = [
        "segment",
        "evaluate",
        str(sample),
        "--pred",
        "pred",
        "--truth",
        "truth",
        "--label-value",
        "1",
    ]
    res = CliRunner().invoke(
        app, [*args, "--blocks", "3", "--block-size", "12", "--out", str(tmp_path / "cli.json")]
    )
    assert res.exit_code == 0, res.output
    assert "Dice" in res.output and "shading_side" in res.output
    assert (tmp_path / "cli.md").is_file()
    again = CliRunner().invoke(
        app,
        [
            *args,
            "--same-blocks",
            str(tmp_path / "cli.json"),
            "--out",
            str(tmp_path / "cli2.json"),
            "--json",
        ],
    )
    assert again.exit_code == 0, again.output
    first = json.loads((tmp_path / "cli.json").read_text(encoding="utf-8"))
    assert json.loads(again.output)["held_out"]["blocks"] == first["held_out"]["blocks"]
    bad = CliRunner().invoke(app, [*args[:-1], "9", "--blocks", "1", "--block-size", "8"])
    assert bad.exit_code == 1 and "label value 9" in bad.output


def test_a_group_without_the_class_is_marked_empty_not_scored(tmp_path: Path):
    from curated.cli import app

    truth = np.zeros(SHAPE, np.uint8)
    truth[4:20, 8:30, 40:60] = 1  # the class only in the high-x half
    path = _write_image(tmp_path / "half.ome.zarr", truth, truth)
    out = tmp_path / "half.json"
    res = CliRunner().invoke(
        app,
        ["segment", "evaluate", str(path), "--pred", "pred", "--truth", "truth",
         "--label-value", "1", "--blocks", "6", "--block-size", "12", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    groups = json.loads(out.read_text(encoding="utf-8"))["factors"]["shading_side"]
    empty = [g for g, s in groups.items() if s["raw"]["tp"] + s["raw"]["fp"] + s["raw"]["fn"] == 0]
    assert empty, groups  # the seeded draw puts some block into the empty half
    flat = " ".join(res.output.split())
    assert "(empty)" in flat and "they have no Dice (n/a): nothing was measured there" in flat
    assert all(groups[g]["raw"]["dice"] is None for g in empty)
    md = (tmp_path / "half.md").read_text(encoding="utf-8")
    assert f"| {empty[0]} |" in md and "(empty: no voxel of the class" in md
