"""Whole-volume scoring, class-stratified blocks, foreground warnings and the confusion summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_segment_evaluate import SHAPE, _model, _truth, _write_image
from typer.testing import CliRunner

from curated.cli import app
from curated.segment.confusion import DISTANCE_BINS, count_confusion
from curated.segment.evaluate import Box, HeldOutBlocks, evaluate
from curated.segment.volume import Volume
from curated.segment.wholevolume import tile_bootstrap_ci, tiles, x_bin_edges


def _pred(truth: np.ndarray) -> np.ndarray:
    pred = (truth == 1).astype(np.uint8)
    pred[:, :, 32:] = 0  # misses the high-x half
    pred[:, 58:62, :] = 1  # and calls a band around the nucleus edge (y = 60) mitochondrion
    return pred


@pytest.fixture
def cell(tmp_path: Path) -> Path:
    truth = _truth()
    return _write_image(tmp_path / "cell.ome.zarr", truth, _pred(truth))


def test_whole_volume_counts_every_voxel_outside_grown_training_regions(cell, tmp_path):
    roi = {"offset": [0, 0, 0], "shape": [8, 16, 16]}
    model = _model(tmp_path / "m", [roi], context=(2, 3, 3))
    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
        exclude_training=model, tile=16,
    )  # fmt: skip
    truth, pred = _truth(), _pred(_truth())
    keep = np.ones(SHAPE, bool)
    keep[0:10, 0:19, 0:19] = False  # the ROI grown by the context (2, 3, 3), clipped at 0
    t, p = (truth == 1) & keep, (pred == 1) & keep
    wv = rep.to_dict()["whole_volume"]
    raw = wv["overall"]["raw"]
    assert (raw["tp"], raw["fp"], raw["fn"]) == (
        int((t & p).sum()),
        int((p & ~t).sum()),
        int((t & ~p).sum()),
    )
    assert wv["overall"]["scored_voxels"] == int(keep.sum())
    assert wv["excluded_training_voxels"] == int((~keep).sum())
    # the curve along x: the missed half scores recall 0, the other half recall 1
    curve = wv["x_curve"]
    assert [(b["x_start"], b["x_stop"]) for b in curve] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert [b["raw"]["recall"] for b in curve] == [1.0, 1.0, 0.0, 0.0]
    lo, hi = wv["overall"]["ci95"]["dice"]
    assert lo <= raw["dice"] <= hi
    assert "whole volume" in rep.result().message


def test_whole_volume_reads_tile_by_tile_never_the_whole_volume(cell, monkeypatch):
    seen: list[int] = []
    real = Volume.read

    def read(self, box):
        seen.append(box.size)
        return real(self, box)

    monkeypatch.setattr(Volume, "read", read)
    evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=1, block_size=8, tile=8,
        stratify=False,
    )  # fmt: skip
    # a tile of 8³ plus the confusion halo of 4 voxels per side, never the 24×64×64 volume
    assert max(seen) <= (8 + 2 * max(DISTANCE_BINS)) ** 3 < int(np.prod(SHAPE))


def test_sparse_truth_gets_blocks_only_unless_asked_and_then_annotated_voxels_only(cell):
    from curated.segment import annotate_from_truth

    annotate_from_truth(cell, truth="truth", crops=2, size=12, seed=0, name="ann")
    auto = evaluate(cell, pred="pred", truth="ann", label_value=1, blocks=2, block_size=8)
    assert auto.whole is None and auto.to_dict()["truth"]["complete"] is False
    forced = evaluate(
        cell, pred="pred", truth="ann", label_value=1, blocks=2, block_size=8, whole_volume=True
    )
    wv = forced.to_dict()["whole_volume"]
    assert wv["overall"]["scored_voxels"] == 2 * 12**3
    assert wv["ignored_unannotated_voxels"] == int(np.prod(SHAPE)) - 2 * 12**3
    # unannotated voxels are not negatives in the blocks either
    for c in forced.counts:
        assert c.tp + c.fp + c.fn + c.tn <= 8**3


def test_the_report_names_the_classes_and_what_is_confused(cell, tmp_path):
    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=3, block_size=12,
        out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text())
    assert data["label_name"] == "mitochondrion"
    assert data["truth"]["classes"] == {"1": "mitochondrion", "2": "nucleus"}
    assert data["truth"]["origin"] == "human" and data["pred"]["origin"] == "model-prediction"
    conf = data["confusion"]["whole_volume"]
    shares = {r["truth_value"]: r["share"] for r in conf["by_truth_class"]}
    # the band y 58..61 outside mitochondria: y 58-59 is background, y 60-61 nucleus
    assert shares[2] == pytest.approx(0.5) and shares[0] == pytest.approx(0.5)
    nucleus = next(n for n in conf["near_boundary"] if n["class_value"] == 2)
    assert nucleus["within"]["2"]["share"] == pytest.approx(1.0)
    md = (tmp_path / "ev.md").read_text()
    assert "What the model gets wrong" in md
    assert "50% of false-positive voxels are nucleus (label 2)" in md
    assert "within 2 voxels of the boundary of nucleus (label 2)" in md
    assert "mitochondrion" in rep.result().message


def test_the_confusion_says_what_fixing_each_confusion_is_worth(cell, tmp_path):
    evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=3, block_size=12,
        out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text())
    conf = data["confusion"]["whole_volume"]
    truth, pred = _truth(), _pred(_truth()) == 1
    t = truth == 1

    def dice(p):
        return 2 * (p & t).sum() / (2 * (p & t).sum() + (p & ~t).sum() + (~p & t).sum())

    row = next(r for r in conf["by_truth_class"] if r["truth_value"] == 2)
    # the Dice of the same prediction with its false positives in the nucleus taken away
    assert row["dice_without"] == pytest.approx(dice(pred & (truth != 2)))
    assert conf["errors"]["dice"] == pytest.approx(dice(pred))
    assert row["dice_without"] > conf["errors"]["dice"]
    missed = int((~pred & t).sum())
    assert conf["errors"]["missed_voxels"] == missed
    assert conf["errors"]["missed_share"] == pytest.approx(missed / (missed + (pred & ~t).sum()))
    md = (tmp_path / "ev.md").read_text()
    assert f"without them Dice would be {row['dice_without']:.3f}" in md
    assert "of all wrong voxels" in md.lower() and "mitochondrion voxels the model missed" in md
    # background is no single confusion: no "without them" for it
    assert not any("background" in x and "without them" in x for x in conf["sentences"])


def test_blocks_are_stratified_so_a_rare_class_is_covered(tmp_path):
    truth = np.zeros(SHAPE, np.uint8)
    truth[:, 4:20, 4:20] = 1
    truth[16:24, 56:64, 56:64] = 2  # a small nucleus corner
    img = _write_image(tmp_path / "c.ome.zarr", truth, (truth == 1).astype(np.uint8))
    plain = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=3, block_size=8, seed=3,
        stratify=False, whole_volume=False,
    )  # fmt: skip
    assert plain.block_class_voxels.get(2, 0) == 0  # uniform blocks miss it
    assert any("nucleus (label 2" in w for w in plain.warnings)
    rep = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=3, block_size=8, seed=3,
        whole_volume=False, out=tmp_path / "s.json",
    )  # fmt: skip
    assert rep.block_class_voxels.get(2, 0) > 0
    assert [s["class_value"] for s in rep.held_out.strata] == [2]
    assert len(rep.held_out.blocks) == 3
    assert "stratified by truth class" in rep.to_dict()["protocol"]["sampling"]
    # the same blocks, strata included, are scored again from the JSON
    again = HeldOutBlocks.load(tmp_path / "s.json")
    assert again.blocks == rep.held_out.blocks and again.strata == rep.held_out.strata
    model = _model(tmp_path / "m", [{"offset": [0, 0, 0], "shape": [2, 2, 2]}], context=(0, 0, 0))
    rescored = evaluate(
        img, pred="pred", truth="truth", label_value=1, blocks=tmp_path / "s.json",
        exclude_training=model, whole_volume=False,
    )  # fmt: skip
    assert rescored.held_out.strata == rep.held_out.strata


def test_too_little_foreground_in_the_blocks_is_warned(tmp_path):
    truth = np.zeros(SHAPE, np.uint8)
    truth[10:12, 30:32, 30:32] = 1  # 8 voxels of mitochondrion in the whole volume
    img = _write_image(tmp_path / "c.ome.zarr", truth, (truth == 1).astype(np.uint8))
    rep = evaluate(img, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8)
    text = " ".join(rep.warnings)
    assert "voxels of mitochondrion (label 1, the scored class)" in text
    assert "whole volume" in text
    assert "Warning" in rep.to_markdown()


def test_count_confusion_distances_are_exact():
    truth = np.zeros((1, 1, 12), np.uint8)
    truth[..., 6:] = 2  # boundary between x = 5 and x = 6
    pred = np.zeros(truth.shape, bool)
    pred[..., [1, 4, 5, 6, 8]] = True
    c = count_confusion(pred, truth, (slice(None),) * 3, target=1)
    assert c.fp == 5 and c.by_truth == {0: 3, 2: 2}
    # distances to the class-2 boundary: x=1 → 5, x=4 → 2, x=5 → 1, x=6 → 1, x=8 → 3
    assert c.near[2] == [2, 3, 4]
    s = c.summary(1, {2: "nucleus"})
    assert (
        s["sentences"][0] == "60% of false-positive voxels are background (label 0) in the truth."
    )


def test_tiles_split_at_the_x_bins_and_cover_the_volume():
    edges = x_bin_edges(50, 4)
    assert edges == [0, 12, 25, 38, 50]
    boxes = list(tiles((5, 7, 50), (4, 4, 16), edges))
    assert sum(b.size for b in boxes) == 5 * 7 * 50
    assert all(
        any(e <= b.offset[2] and b.stop[2] <= f for e, f in zip(edges, edges[1:], strict=False))
        for b in boxes
    )
    assert Box((0, 0, 0), (2, 3, 4)).size == 24


def test_tile_bootstrap_is_seeded_and_memory_batched():
    rng = np.random.default_rng(0)
    rows = np.zeros((200, 9), np.int64)
    rows[:, 0] = rng.integers(0, 50, 200)
    rows[:, 1] = rng.integers(0, 10, 200)
    rows[:, 2] = rng.integers(0, 10, 200)
    rows[:, 8] = 100
    a = tile_bootstrap_ci(rows, seed=1)
    b = tile_bootstrap_ci(rows, seed=1, batch_cells=500)
    tp, fp, fn = rows[:, :3].sum(axis=0)
    dice = 2 * tp / (2 * tp + fp + fn)
    assert a["dice"][0] <= dice <= a["dice"][1]
    assert b["dice"][0] <= dice <= b["dice"][1]
    assert tile_bootstrap_ci(rows[:1])["dice"] is None


def test_cli_whole_volume_switch_and_warnings(cell, tmp_path):
    from curated.cli import app

    runner = CliRunner()
    args = ["segment", "evaluate", str(cell), "--pred", "pred", "--truth", "truth"]
    args += ["--label-value", "1", "--blocks", "2", "--block-size", "8", "--tile", "16"]
    res = runner.invoke(app, [*args, "--blocks-only", "--json", "--out", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["whole_volume"] is None
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    # no model given: nothing says the training regions were left out
    assert "whole volume (training regions not left out)" in res.output
    assert "outside training regions" not in res.output and "held-out" not in res.output
    assert "Warning: no model was given" in res.output
    assert "what it gets wrong" in res.output


def test_cropped_confusion_equals_the_full_distance_transform():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    ctx = ndimage.median_filter(rng.integers(0, 3, (20, 22, 24)).astype(np.uint8), 5)
    inner = (slice(4, 16), slice(4, 18), slice(4, 20))
    pred = np.zeros((12, 14, 16), bool)
    pred[3:5, 2:9, 5:7] = True
    pred[10, 12, 14] = True
    c = count_confusion(pred, ctx, inner, target=1)
    fp = pred & (ctx[inner] != 1)
    for v in (1, 2):
        inside = ctx == v
        dist = np.where(
            inside,
            ndimage.distance_transform_edt(inside),
            ndimage.distance_transform_edt(~inside),
        )[inner][fp]
        assert c.near.get(v, [0, 0, 0]) == [int((dist <= d).sum()) for d in DISTANCE_BINS]


def test_a_threshold_tuned_on_the_crops_is_scored_beside_the_model(cell, tmp_path):
    """The evaluation says how a grey-level threshold tuned on the training crops' truth does
    on the same held-out voxels, and by how much the model leads it, tile size aside."""
    from scipy import ndimage

    from curated.segment import _store
    from curated.segment.baseline import smoothing_sigma

    roi = {"offset": [0, 0, 0], "shape": [8, 16, 16]}
    model = _model(tmp_path / "m", [roi], context=(2, 3, 3))
    reps = [
        evaluate(
            cell, pred="pred", truth="truth", label_value=1, blocks=1, block_size=8,
            exclude_training=model, tile=tile, out=tmp_path / f"e{tile}.json",
        ).to_dict()["whole_volume"]
        for tile in (16, 9)
    ]  # fmt: skip
    base = reps[0]["threshold_baseline"]
    assert base["polarity"] == "brighter than the level"  # the cubes are brighter here
    assert base["tuned_dice"] > 0.8 and base["tuned_voxels"] == 8 * 16 * 16
    # the same counts as thresholding the whole smoothed image at once, outside the grown ROI
    raw = _store.image_level0(cell)[...].astype(np.float32)
    sm = ndimage.gaussian_filter(raw, smoothing_sigma(_store.voxel_size(cell)), mode="nearest")
    keep = np.ones(SHAPE, bool)
    keep[0:10, 0:19, 0:19] = False
    t, b = (_truth() == 1) & keep, (sm > base["level"]) & keep
    want = (int((b & t).sum()), int((b & ~t).sum()), int((~b & t).sum()))
    for wv in reps:  # and with other tiles
        got = wv["threshold_baseline"]
        assert (got["tp"], got["fp"], got["fn"]) == want
    lead = base["model_minus_baseline"]
    assert lead["dice"] == pytest.approx(reps[0]["overall"]["raw"]["dice"] - base["dice"])
    lo, hi = lead["ci95"]
    assert lo <= lead["dice"] <= hi
    # the CLI prints it
    r = CliRunner().invoke(
        app,
        ["segment", "evaluate", str(cell), "--pred", "pred", "--truth", "truth"]
        + [
            "--label-value",
            "1",
            "--exclude-training",
            str(model),
            "--out",
            str(tmp_path / "c.json"),
            "--blocks",
            "1",
            "--block-size",
            "8",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "grey-level threshold tuned on the training crops" in r.output


def test_no_threshold_without_crops_to_tune_it_on(cell, tmp_path):
    from curated.segment.baseline import paired_dice_ci, tune_threshold
    from curated.segment.volume import open_level0

    img = open_level0(cell, "image")
    truth = open_level0(cell / "labels" / "truth", "truth")
    empty = Box((0, 0, 20), (2, 2, 2))  # background only: nothing to tune on
    assert (
        tune_threshold(img, truth, [empty], label_value=1, unannotated=(), voxel_size=(1, 1, 1))
        is None
    )
    assert (
        tune_threshold(img, truth, [], label_value=1, unannotated=(), voxel_size=(1, 1, 1)) is None
    )
    # without a model (no training regions) the evaluation has no threshold row
    rep = evaluate(cell, pred="pred", truth="truth", label_value=1, blocks=1, block_size=8)
    assert rep.to_dict()["whole_volume"]["threshold_baseline"] is None
    rows = np.array([[5, 1, 2], [3, 0, 1], [0, 2, 0]])
    ci = paired_dice_ci(rows, rows)
    assert ci["difference"] == [0.0, 0.0]


def test_stray_truth_values_do_not_make_zero_percent_sentences():
    """A real label folder held a few anti-aliased values (53, 223) beside 0/255; the summary
    said "0% of false-positive voxels are class 53" twice. Rows keep them; sentences do not."""
    from curated.segment.confusion import Confusion

    c = Confusion(fp=10_000, by_truth={0: 9_990, 53: 7, 223: 3}, near={})
    s = c.summary(1, {1: "mitochondrion"}, tp=5_000, fn=1_000)
    assert [r["truth_value"] for r in s["by_truth_class"]] == [0, 53, 223]
    assert not any("class 53" in t or "class 223" in t for t in s["sentences"])
    assert s["sentences"][0].startswith("100% of false-positive voxels are background")


def test_a_binary_truth_says_it_cannot_name_the_confusion():
    """With a truth of background and one class, "100% of false-positive voxels are
    background" was printed for every model: true and empty. It now says what a second
    class would show."""
    from curated.segment.confusion import Confusion

    s = Confusion(fp=4_000, by_truth={0: 4_000}, near={}).summary(
        1, {1: "mitochondrion"}, tp=5_000, fn=300
    )
    assert s["by_truth_class"][0]["share"] == 1.0  # the JSON keeps the row
    assert not any(t.startswith("100% of false-positive") for t in s["sentences"])
    assert s["sentences"][0].startswith("Every false-positive voxel lies in background")
    assert "mitochondrion" in s["sentences"][0]
    assert any(t.startswith("Of all wrong voxels, 7% are mitochondrion") for t in s["sentences"])


def test_the_threshold_tunes_on_float_images_with_nan_padding():
    """Aligned FIB-SEM stacks are often float32 with NaN where no data was acquired."""
    from curated.segment.baseline import tune_threshold

    truth = np.zeros((8, 16, 16), np.uint8)
    truth[2:6, 4:12, 4:12] = 1
    raw = np.where(truth == 1, 40.0, 200.0).astype(np.float32)
    raw[:, :, :2] = np.nan
    vol, tv = (Volume(Path("x"), a, {}, (0, 1, 2), ()) for a in (raw, truth))
    base = tune_threshold(
        vol, tv, [Box((0, 0, 0), (8, 16, 16))], label_value=1, unannotated=(), voxel_size=(1, 1, 1)
    )
    assert base is not None and base.dark and 40 < base.level < 200
    all_nan = Volume(Path("x"), np.full((8, 16, 16), np.nan, np.float32), {}, (0, 1, 2), ())
    assert (
        tune_threshold(
            all_nan,
            tv,
            [Box((0, 0, 0), (8, 16, 16))],
            label_value=1,
            unannotated=(),
            voxel_size=(1, 1, 1),
        )
        is None
    )


# ------------------------------------------------------------ the whole-volume picture
def test_the_whole_volume_picture_shows_the_worst_slice_and_dice_per_column(cell, tmp_path):
    from PIL import Image

    from curated.segment import wholefigure

    roi = {"offset": [0, 0, 0], "shape": [8, 16, 16]}
    model = _model(tmp_path / "m", [roi], context=(2, 3, 3))
    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
        exclude_training=model, tile=16, out=tmp_path / "ev.json",
    )  # fmt: skip
    data = json.loads((tmp_path / "ev.json").read_text())
    assert data["files"]["whole_png"] == "ev-whole.png"
    md = (tmp_path / "ev.md").read_text()
    assert "](ev-whole.png)" in md
    # the CIs speak for this one volume and this one model: not for other regions of the
    # sample, nor for another training of the same crops
    assert "not what the model scores elsewhere" in md
    assert "They also cover this one model" in md
    png = Image.open(tmp_path / "ev-whole.png").convert("RGB")
    colours = {tuple(int(v) for v in c) for c in np.asarray(png).reshape(-1, 3)}
    # the band called mitochondrion and the missed high-x half are painted over the image
    assert any(r > 200 and g < 150 and b > 200 for r, g, b in colours)  # magenta-ish
    assert any(g > 100 and r < 120 and b < 120 for r, g, b in colours)  # green-ish

    panel = wholefigure.whole_volume_panel(
        cell, rep.whole, pred="pred", truth="truth", label_value=1, pred_value=1,
        exclusion=training_exclusion_boxes(model),
    )  # fmt: skip
    truth, pred = _truth(), _pred(_truth())
    # the slice is the middle of the z layer of tiles with the most wrong voxels outside the
    # (grown) training region
    layers = {}
    keep = np.ones(SHAPE, bool)
    keep[0:10, 0:19, 0:19] = False
    for z0 in (0, 16):
        t, p, k = (truth == 1)[z0 : z0 + 16], (pred == 1)[z0 : z0 + 16], keep[z0 : z0 + 16]
        layers[z0] = int(((t ^ p) & k).sum())
    z0 = max(layers, key=layers.get)
    assert panel.z == (z0 + min(z0 + 16, SHAPE[0]) - 1) // 2
    assert panel.level == 0 and panel.raw.shape == SHAPE[1:]
    assert np.array_equal(panel.truth, truth[panel.z] == 1)
    assert np.array_equal(panel.pred, pred[panel.z] == 1)
    # the column of tiles y 16-32, x 32-48 (all z): the prediction misses everything there
    t, p = (truth == 1)[:, 16:32, 32:48], (pred == 1)[:, 16:32, 32:48]
    assert panel.dice_map[20, 40] == pytest.approx(2 * (t & p).sum() / (t.sum() + p.sum()))
    assert panel.dice_map[20, 40] == 0.0
    # y 0-16, x 0-16 lies wholly inside the grown training region in z 0-10, but z 10-24 is scored
    assert not np.isnan(panel.dice_map[5, 5])
    # the truth's other class (the nucleus slab, y ≥ 60) is outlined and named, nothing else
    assert panel.other_names == ("nucleus",)
    slab = truth[panel.z] == 2
    assert panel.others is not None and panel.others[60].all() and not panel.others[:60].any()
    assert not (panel.others & ~slab).any()
    # the training region is drawn only where the slice cuts it
    assert panel.excluded == ([(0.0, 0.0, 19.0, 19.0)] if panel.z < 10 else [])


def training_exclusion_boxes(model):
    from curated.segment.evaluate import training_exclusion

    return training_exclusion(model).boxes


def test_the_whole_volume_picture_reads_one_plane_at_a_coarse_level(cell, monkeypatch):
    import zarr

    from curated.segment import wholefigure

    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=1, block_size=8, tile=16,
        stratify=False,
    )  # fmt: skip
    monkeypatch.setattr(wholefigure, "MAX_EDGE", 32)
    reads: list[tuple[int, ...]] = []
    real = zarr.Array.__getitem__

    def getitem(self, sel):
        out = real(self, sel)
        reads.append(np.shape(out))
        return out

    monkeypatch.setattr(zarr.Array, "__getitem__", getitem)
    panel = wholefigure.whole_volume_panel(
        cell, rep.whole, pred="pred", truth="truth", label_value=1, pred_value=1
    )
    assert panel is not None and panel.level == 1
    assert panel.raw.shape == (32, 32) and panel.downsample == (2.0, 2.0)
    assert reads == [(32, 32)] * 3  # one plane of the image, the truth and the prediction
    assert panel.dice_map.shape == (32, 32)


def test_no_whole_volume_picture_without_a_shared_level():
    from curated.document.ngff import LevelInfo
    from curated.segment.wholefigure import _shared_level

    img = [LevelInfo("0", (8, 64, 64), (1, 1, 1)), LevelInfo("1", (8, 32, 32), (1, 2, 2))]
    lab = [LevelInfo("0", (8, 60, 60), (1, 1, 1))]
    assert _shared_level(img, lab, lab) is None
    assert _shared_level(img, img, img[1:])[0] == 1
    # a large image whose label images have no pyramid: no picture rather than a huge plane
    big = [
        LevelInfo("0", (64, 40000, 40000), (1, 1, 1)),
        LevelInfo("1", (64, 20000, 20000), (1, 2, 2)),
    ]
    assert _shared_level(big, big[:1], big[:1]) is None
    assert (
        _shared_level(big[:1] + [LevelInfo("1", (64, 2000, 2000), (1, 20, 20))], big, big) is None
    )
    # no level as small as MAX_EDGE: the coarsest shared one, within LIMIT_EDGE
    mid = [LevelInfo("0", (8, 3000, 3000), (1, 1, 1)), LevelInfo("1", (8, 1500, 1500), (1, 2, 2))]
    assert _shared_level(mid, mid, mid)[0] == 1


def _volume(arr: np.ndarray) -> Volume:
    return Volume(path=Path("mem"), array=arr, attrs={}, spatial=(0, 1, 2), lead=())


def _clustered(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground everywhere; the prediction misses it in whole 32 × 32 regions (8 × 8 tiles)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((4, 128, 128), np.uint8)
    truth[:, ::3, :] = 1
    pred = truth.copy()
    for y in range(0, 128, 32):
        for x in range(0, 128, 32):
            if rng.random() < 0.5:
                pred[:, y : y + 32, x : x + 32] = 0
    return truth, pred


def test_whole_volume_interval_resamples_blocks_when_errors_cluster():
    from curated.segment.metrics import MIN_BOOTSTRAP_BLOCKS
    from curated.segment.wholevolume import score_whole_volume

    truth, pred = _clustered(3)
    wv = score_whole_volume(
        _volume(pred), _volume(truth), label_value=1, pred_value=1, tile=4, seed=0
    )
    single = tile_bootstrap_ci(wv.counts, seed=0)["dice"]
    chosen = wv.overall["ci95"]["dice"]
    info = wv.bootstrap_blocks
    # errors come in regions 8 tiles wide: resampling single tiles (1,024 of them) pretends
    # they are independent and gives an interval a fraction of the honest one
    assert info["tiles_per_side"] >= 4
    assert info["blocks"] >= MIN_BOOTSTRAP_BLOCKS
    assert chosen[1] - chosen[0] >= 2.0 * (single[1] - single[0])
    assert chosen[0] <= wv.overall["raw"]["dice"] <= chosen[1]
    assert [t["tiles_per_side"] for t in info["tried"]][:2] == [1, 2]
    assert wv.to_dict()["bootstrap_blocks"]["edge_voxels"] == [4 * info["tiles_per_side"]] * 3
    # each x-bin keeps at least MIN_BOOTSTRAP_BLOCKS blocks, or falls back to single tiles
    for b in wv.x_curve():
        assert b["bootstrap_blocks"] >= MIN_BOOTSTRAP_BLOCKS or b["bootstrap_block_tiles"] == 1


def test_whole_volume_interval_stays_near_the_tile_interval_when_errors_are_independent():
    from curated.segment.wholevolume import score_whole_volume

    rng = np.random.default_rng(0)
    truth = np.zeros((4, 128, 128), np.uint8)
    truth[:, ::3, :] = 1
    pred = np.where(rng.random(truth.shape) < 0.1, 1 - truth, truth).astype(np.uint8)
    wv = score_whole_volume(
        _volume(pred), _volume(truth), label_value=1, pred_value=1, tile=4, seed=0
    )
    single = tile_bootstrap_ci(wv.counts, seed=0)["dice"]
    chosen = wv.overall["ci95"]["dice"]
    assert chosen[1] - chosen[0] <= 1.6 * (single[1] - single[0])


def test_the_report_says_what_the_whole_volume_bootstrap_resampled(cell):
    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8, tile=4,
    )  # fmt: skip
    wv = rep.to_dict()["whole_volume"]
    md = rep.to_markdown()
    edge = " × ".join(str(v) for v in wv["bootstrap_blocks"]["edge_voxels"])
    assert f"resample {wv['overall']['bootstrap_blocks']} blocks of {edge} voxels" in md
    assert "spatial blocks" in rep.to_dict()["protocol"]["whole_volume"]


def test_a_small_image_gets_tiles_small_enough_for_blocks_of_several():
    from curated.segment.wholevolume import auto_tile

    assert auto_tile((64, 192, 192)) == 32  # the demo's sample: 18 tiles of 64³, 96 of 32³
    assert auto_tile((20, 1024, 1024)) == 64  # real ssTEM: 256 columns of 64²
    assert auto_tile((8, 8, 8)) == 16  # never below 16


def test_x_bins_resting_on_a_few_tiles_are_flagged(cell):
    rep = evaluate(
        cell, pred="pred", truth="truth", label_value=1, blocks=2, block_size=8,
        tile=(24, 16, 16),
    )  # fmt: skip
    wv = rep.to_dict()["whole_volume"]
    assert [b["bootstrap_blocks"] for b in wv["x_curve"]] == [4, 4, 4, 4]
    assert any("intervals along x rest on fewer than 8 tiles" in w for w in rep.warnings)
    md = rep.to_markdown()
    assert "too few for blocks of several tiles" in md and "likely too narrow" in md


def test_overlapping_crops_count_each_voxel_once_in_the_threshold():
    """A suggested crop drawn next to a training crop can overlap it; the tuned threshold
    counted the shared voxels twice (``tuned_voxels`` 1.5x the crops' union, and the level
    pulled towards them). It now tunes on the union, as on the same voxels split apart."""
    from curated.segment.baseline import tune_threshold

    rng = np.random.default_rng(3)
    truth = np.zeros((8, 24, 24), np.uint8)
    truth[2:6, 4:20, 3:9] = 1
    raw = (np.where(truth == 1, 90.0, 140.0) + rng.normal(0, 30, truth.shape)).astype(np.float32)
    raw[:, :, 10:16] -= 45  # a darker band that only the overlap holds much of
    vol, tv = (Volume(Path("x"), a, {}, (0, 1, 2), ()) for a in (raw, truth))

    def tune(rois):
        return tune_threshold(vol, tv, rois, label_value=1, unannotated=(), voxel_size=(1, 1, 1))

    a, b = Box((0, 0, 0), (8, 24, 16)), Box((0, 0, 8), (8, 24, 16))  # share x 8..16
    split = [a, Box((0, 0, 16), (8, 24, 8))]  # the same union, no voxel twice
    got, want = tune([a, b]), tune(split)
    assert got is not None and want is not None
    assert got.tuned_voxels == 8 * 24 * 24 == want.tuned_voxels
    assert (got.level, got.tuned_dice) == (want.level, want.tuned_dice)
    # a crop listed twice is the same crop
    assert tune([a, a]) == tune([a])
