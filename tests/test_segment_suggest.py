"""``curated annotate suggest``: where to annotate next, on a shaded sample with a prediction wrong on one side."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from segment_helpers import train_tiny
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import CuratedError
from curated.images import add_labels
from curated.segment import _store
from curated.segment.annotate import UNANNOTATED, annotate_from_truth, read_annotation_rois
from curated.segment.modelio import load_model
from curated.segment.sample import make_fibsem_sample
from curated.segment.suggest import (
    QUICK_EDGE,
    SuggestionWeights,
    candidate_offsets,
    parse_crop_size,
    rank01,
    score_candidates,
    select_crops,
    suggest_crops,
)
from curated.workspace import Workspace

SHAPE = (24, 64, 64)
CROP = (12, 16, 16)
HALF = SHAPE[2] // 2


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A shaded sample, two annotated crops on the bright half, a tiny model, and a prediction
    that is right on the bright half and calls nearly everything 'mitochondrion' on the shaded half
    (the failure the issue reports)."""
    root = tmp_path_factory.mktemp("suggest")
    image = root / "cell.ome.zarr"
    make_fibsem_sample(image, shape=SHAPE, voxel_size=(8, 8, 8), shading=0.6, seed=0)
    annotate_from_truth(image, crops=2, size=12, seed=0, region="x<0.5")
    train_tiny(image, root / "model", labels="annotations", label_value=1, depth=1)
    truth = np.asarray(_store.label_level0(image, "truth"))
    raw = np.asarray(_store.image_level0(image))
    pred = np.where(truth == 1, 1, 0).astype(np.uint8)
    # as measured (benchmarks/suggest.py): about 90 % of the shaded half called mitochondrion
    shaded = raw[..., HALF:]
    pred[..., HALF:] = (shaded < np.percentile(shaded, 90)).astype(np.uint8)
    add_labels(image, "pred", pred, kind="prediction", ai_generated=True)
    # its probabilities: unsure only at object boundaries on the bright half (a decent model),
    # confidently wrong on the shaded half (the failure: entropy does not point there)
    prob = ndimage.gaussian_filter((truth == 1).astype(np.float32), 1.5)
    prob[..., HALF:] = np.where(pred[..., HALF:] == 1, 0.97, 0.03)
    add_labels(
        image,
        "pred-probability",
        np.round(prob * 255).astype(np.uint8),
        kind="prediction",
        ai_generated=True,
    )
    return image, root / "model", truth, pred


@pytest.fixture
def case(base, tmp_path):
    """A private copy of the image (each test writes label images into it)."""
    image, model, truth, pred = base
    copy = tmp_path / "cell.ome.zarr"
    shutil.copytree(image, copy)
    return copy, model, truth, pred


def _overlap(a, b) -> bool:
    return all(
        ao < bo + bs and bo < ao + as_
        for ao, as_, bo, bs in zip(a["offset"], a["shape"], b["offset"], b["shape"], strict=True)
    )


def _error(pred, truth, c) -> float:
    box = tuple(slice(o, o + s) for o, s in zip(c["offset"], c["shape"], strict=True))
    return float(np.mean((pred[box] == 1) != (truth[box] == 1)))


def test_suggestions_land_where_the_prediction_is_wrong_and_not_on_annotated_crops(case) -> None:
    image, model, truth, pred = case
    r = suggest_crops(image, model=model, pred="pred", n=3, crop_size=CROP, out=image.parent / "s")
    crops = r.details["crops"]
    assert [c["rank"] for c in crops] == [1, 2, 3]
    # every suggestion is on the shaded half, where the prediction is wrong
    assert all(c["offset"][2] >= HALF for c in crops)
    all_errors = [
        _error(pred, truth, {"offset": o, "shape": CROP}) for o in candidate_offsets(SHAPE, CROP)
    ]
    assert min(_error(pred, truth, c) for c in crops) > np.median(all_errors)
    annotated = read_annotation_rois(image, "annotations")
    for i, c in enumerate(crops):
        assert not any(_overlap(c, a) for a in annotated)
        assert not any(_overlap(c, d) for d in crops[i + 1 :])
    assert r.details["prior_foreground_fraction"] == pytest.approx(
        np.mean(
            [
                v == 1
                for a in annotated
                for v in truth[
                    tuple(slice(o, o + s) for o, s in zip(a["offset"], a["shape"], strict=True))
                ].ravel()
            ]
        )
    )


def test_the_label_image_table_and_figure_agree(case) -> None:
    image, model, _truth, _pred = case
    out = image.parent / "s"
    r = suggest_crops(image, model=model, pred="pred", n=2, crop_size=CROP, out=out)
    crops = r.details["crops"]
    lab = np.asarray(_store.label_level0(image, "suggestions"))
    assert lab.shape == SHAPE
    for c in crops:
        box = tuple(slice(o, o + s) for o, s in zip(c["offset"], c["shape"], strict=True))
        assert np.all(lab[box] == c["rank"])
    assert np.count_nonzero(lab) == sum(int(np.prod(c["shape"])) for c in crops)

    assert "another model" not in r.message  # 'pred' carries no model record

    attrs = _store.label_curated_attrs(image, "suggestions")
    assert attrs["kind"] == "prediction" and attrs["ai_generated"] is True
    assert attrs["model"]["sha256"] == r.details["model"]["sha256"]
    rec = attrs["suggestion"]
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    assert rec["weights"] == SuggestionWeights().normalised()
    group = _store.label_group(image, "suggestions")
    ome = dict(group.attrs).get("ome", dict(group.attrs))
    props = {p["label-value"]: p for p in ome["image-label"]["properties"]}
    assert props[1]["curated:rank"] == 1 and props[1]["curated:offset"] == crops[0]["offset"]
    assert props[2]["curated:score"] == pytest.approx(crops[1]["score"], abs=1e-6)

    rows = list(csv.DictReader((out / "suggestions.csv").open()))
    table = json.loads((out / "suggestions.json").read_text())
    assert len(rows) == len(table["table"]) == 2
    for row, c in zip(rows, crops, strict=True):
        assert int(row["rank"]) == c["rank"]
        assert [int(row[f"offset_{a}"]) for a in "zyx"] == c["offset"]
        assert [int(row[f"shape_{a}"]) for a in "zyx"] == c["shape"]
        assert float(row["score"]) == pytest.approx(c["score"], abs=1e-6)
        w = table["weights"]
        combined = sum(w[k] * float(row[f"{k}_rank"]) for k in w)
        assert combined == pytest.approx(float(row["score"]), abs=1e-5)
        for k in ("anomaly", "appearance", "uncertainty", "diversity"):
            assert 0.0 <= float(row[f"{k}_rank"]) <= 1.0
    with Image.open(out / "suggestions.png") as png:
        assert png.format == "PNG" and png.width > 100 and png.height > 100


def test_the_step_is_recorded_in_the_curator_log(case, tmp_path) -> None:
    image, model, _truth, _pred = case
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    r = suggest_crops(image, model=model, pred="pred", n=2, crop_size=CROP, workspace=ws)
    entry = ws.log.last()
    assert entry["action"] == "annotate-suggest" and entry["status"] == "ok"
    assert entry["params"]["n"] == 2 and entry["params"]["pred"] == "pred"
    assert entry["params"]["weights"] == {
        "anomaly": 0.4,
        "appearance": 0.1,
        "uncertainty": 0.3,
        "diversity": 0.2,
    }
    outputs = {o["path"] for o in entry["outputs"]}
    folder = ws.derived_dir / "suggestions" / "cell-suggestions"
    for f in ("suggestions.csv", "suggestions.json", "suggestions.png"):
        assert ws.relative(folder / f) in outputs
        assert r.details["files"][f.split(".")[1]] == str(folder / f)
    assert ws.relative(_store.label_path(image, "suggestions")) in outputs
    assert any(i["path"].endswith("weights.pt") for i in entry["inputs"])
    assert ws.log.verify(files=True).ok


def test_a_failed_suggestion_is_logged_as_an_error(case, tmp_path) -> None:
    image, model, _truth, _pred = case
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    with pytest.raises(CuratedError):
        suggest_crops(image, model=model, pred="nope", n=1, crop_size=CROP, workspace=ws)
    assert ws.log.last()["status"] == "error"


def _wrong_shape_prediction(image, tmp_path) -> None:
    other = tmp_path / "other.ome.zarr"
    make_fibsem_sample(other, shape=(16, 32, 32), seed=1)
    shutil.copytree(_store.label_path(other, "truth"), _store.label_path(image, "small"))


@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        (None, {"model": "missing"}, "not a model folder"),
        (None, {"n": 0}, "n must be a whole number ≥ 1"),
        (None, {"n": -2}, "n must be a whole number ≥ 1"),
        (None, {"crop_size": (30, 16, 16)}, "larger than the image"),
        (None, {"crop_size": (0, 16, 16)}, "three positive voxel counts"),
        (None, {"pred": "nope"}, "has no prediction label image 'nope'"),
        ("small", {"pred": "small"}, "has shape (16, 32, 32) but the image has (24, 64, 64)"),
        (None, {"labels": "nope"}, "has no annotation label image 'nope'"),
        (None, {"probability": "nope"}, "has no probability label image 'nope'"),
        (None, {"name": "truth"}, "does not hold suggestions"),
        (None, {"name": "pred"}, "one of the input label images"),
        (None, {"n": 60}, "fit outside the annotated crops"),
    ],
)
def test_bad_inputs_give_a_one_line_error_and_write_nothing(
    case, tmp_path, change, kwargs, expected
) -> None:
    image, model, _truth, _pred = case
    if change == "small":
        _wrong_shape_prediction(image, tmp_path)
    args = {"model": model, "pred": "pred", "n": 2, "crop_size": CROP, "out": tmp_path / "s"}
    args.update(kwargs)
    if args["model"] == "missing":
        args["model"] = tmp_path / "missing"
    with pytest.raises(CuratedError) as err:
        suggest_crops(image, **args)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert "suggestions" not in _store.label_names(image)
    assert not (tmp_path / "s").exists()


def test_a_probability_image_feeds_the_entropy_term(case) -> None:
    image, model, _truth, pred = case
    prob = np.where(pred == 1, 250, 5).astype(np.uint8)
    prob[:, :, :16] = 128  # maximal uncertainty on the far bright side
    add_labels(
        image, "pred-probability", prob, kind="prediction", ai_generated=True, overwrite=True
    )
    s = score_candidates(image, model=model, pred="pred", crop_size=CROP)
    assert "pred-probability" in s.uncertainty_source
    far = s.offsets[:, 2] == 0
    ok = s.eligible
    assert np.allclose(s.uncertainty[far & ok], 1.0, atol=1e-3)
    assert np.all(s.uncertainty[~far & ok] < 0.2)
    quick = score_candidates(image, model=model, pred="pred", crop_size=CROP, probability="")
    assert "quick prediction" in quick.uncertainty_source
    assert np.all(np.isfinite(quick.uncertainty[quick.eligible]))
    # weight only on uncertainty: the top crop is on the uncertain side
    r = suggest_crops(
        image,
        model=model,
        pred="pred",
        n=1,
        crop_size=CROP,
        weights=SuggestionWeights(anomaly=0, appearance=0, uncertainty=1, diversity=0),
        out=image.parent / "s",
    )
    assert r.details["crops"][0]["offset"][2] < HALF


def test_reading_is_bounded_by_the_crop_size(case, monkeypatch) -> None:
    """Raw, prediction and annotations are read one crop at a time, never whole."""
    image, model, _truth, _pred = case
    largest = []

    class Spy:
        def __init__(self, arr) -> None:
            self.arr, self.shape, self.dtype = arr, arr.shape, arr.dtype

        def __getitem__(self, region):
            block = self.arr[region]
            largest.append(int(np.asarray(block).size))
            return block

    add_labels(
        image, "pred-probability", np.full(SHAPE, 9, np.uint8), kind="prediction", overwrite=True
    )
    for fn in ("image_level0", "label_level0"):
        real = getattr(_store, fn)
        monkeypatch.setattr(_store, fn, lambda *a, _real=real, **k: Spy(_real(*a, **k)))
    s = score_candidates(image, model=model, pred="pred", crop_size=CROP)
    assert len(s) == len(candidate_offsets(SHAPE, CROP))
    assert max(largest) == int(np.prod(CROP))
    # quick predictions read one network input around a crop's centre, whatever the volume
    largest.clear()
    score_candidates(image, model=model, pred="pred", crop_size=CROP, probability="")
    m = load_model(model)
    out = m.geometry.valid_output(m.geometry.block_multiple([min(c, QUICK_EDGE) for c in CROP]))
    assert max(largest) <= int(np.prod([o + 2 * h for o, h in zip(out, m.halo, strict=True)]))


def test_annotations_from_another_tool_and_the_model_lineage_are_respected(case) -> None:
    """A label image without recorded crops is scanned for annotated voxels; the model's
    training crops on this image are avoided even when the labels do not hold them."""
    image, model, truth, _pred = case
    lab = np.full(SHAPE, UNANNOTATED, dtype=np.uint8)
    lab[0:12, 40:56, 36:52] = truth[0:12, 40:56, 36:52]  # a crop made in napari, on the shaded side
    add_labels(image, "napari", lab, kind="annotation")
    meta = json.loads((model / "model.json").read_text())
    m2 = image.parent / "model"
    shutil.copytree(model, m2)
    lineage = [{**r, "image": str(image.resolve())} for r in meta["lineage_rois"]]
    (m2 / "model.json").write_text(json.dumps({**meta, "lineage_rois": lineage}))
    r = suggest_crops(
        image, model=m2, pred="pred", labels="napari", n=4, crop_size=CROP, out=image.parent / "s"
    )
    sources = {a["source"].split(":")[0] for a in r.details["annotated_crops"]}
    assert sources == {"labels", "model-lineage"}
    napari_box = {"offset": [0, 40, 36], "shape": [12, 16, 16]}
    assert any(a["offset"] == napari_box["offset"] for a in r.details["annotated_crops"])
    for c in r.details["crops"]:
        assert not _overlap(c, napari_box)
        assert not any(_overlap(c, a) for a in lineage)


def test_running_again_replaces_the_earlier_suggestions(case) -> None:
    image, model, _truth, _pred = case
    out = image.parent / "s"
    suggest_crops(image, model=model, pred="pred", n=3, crop_size=CROP, out=out)
    r = suggest_crops(image, model=model, pred="pred", n=1, crop_size=CROP, out=out)
    lab = np.asarray(_store.label_level0(image, "suggestions"))
    assert set(np.unique(lab)) == {0, 1}
    assert len(json.loads((out / "suggestions.json").read_text())["table"]) == 1
    assert r.status == "ok"


def test_the_command_line(case) -> None:
    image, model, _truth, _pred = case
    runner = CliRunner()
    args = ["annotate", "suggest", str(image), "--model", str(model), "--pred", "pred"]
    out = image.parent / "cli"
    res = runner.invoke(
        app, [*args, "--n", "2", "--crop-size", "12,16,16", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "ok" and len(data["details"]["crops"]) == 2
    assert (out / "suggestions.png").is_file()
    weighted = runner.invoke(
        app,
        [
            *args,
            "--n",
            "1",
            "--crop-size",
            "12",
            "--weights",
            "diversity=1,anomaly=0",
            "--out",
            str(out),
        ],
    )
    assert weighted.exit_code == 0, weighted.output
    for bad, msg in (
        (["--n", "0"], "n must be a whole number"),
        (["--crop-size", "12,16"], "one or three numbers"),
        (["--crop-size", "a,b,c"], "is not like '32'"),
        (["--weights", "speed=2"], "is not like 'anomaly=0.5'"),
        (["--weights", "anomaly=-1"], "weights must be finite"),
    ):
        res = runner.invoke(app, [*args, *bad])
        assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output


def test_geometry_and_ranking_helpers() -> None:
    offs = candidate_offsets((10, 20, 25), (5, 8, 10))
    assert {tuple(o) for o in offs} >= {(0, 0, 0), (5, 12, 15)}  # edge crops end at the border
    assert offs[:, 1].max() == 12 and offs[:, 2].max() == 15
    assert len(offs) == 2 * 3 * 3
    assert list(rank01(np.array([3.0, 1.0, 2.0, 2.0]))) == [1.0, 0.0, 0.5, 0.5]
    assert list(rank01(np.array([7.0]))) == [0.5]
    assert parse_crop_size("32") == 32 and parse_crop_size("8, 16,16") == (8, 16, 16)
    assert SuggestionWeights.parse("anomaly=1,diversity=0").normalised()[
        "anomaly"
    ] == pytest.approx(1 / 1.4)  # appearance 0.1 + uncertainty 0.3 keep their defaults


@pytest.mark.parametrize(
    ("weights", "found"),
    [
        (SuggestionWeights(anomaly=1, appearance=0, uncertainty=0, diversity=0), True),
        (SuggestionWeights(anomaly=0), False),
    ],
)
def test_a_confident_error_on_the_bright_side_is_found_by_the_prior_anomaly(
    case, weights, found
) -> None:
    """The prediction is right everywhere except one bright-side crop, called all foreground:
    appearance, entropy and diversity do not point there; the prediction-vs-prior anomaly does."""
    image, model, truth, _pred = case
    pred = np.where(truth == 1, 1, 0).astype(np.uint8)
    bad = {"offset": [12, 48, 16], "shape": list(CROP)}
    pred[12:24, 48:64, 16:32] = 1
    add_labels(image, "pred2", pred, kind="prediction", ai_generated=True)
    assert not any(_overlap(bad, a) for a in read_annotation_rois(image, "annotations"))
    r = suggest_crops(
        image,
        model=model,
        pred="pred2",
        n=3,
        crop_size=CROP,
        weights=weights,
        out=image.parent / "s",
    )
    offsets = [c["offset"] for c in r.details["crops"]]
    assert (offsets[0] == bad["offset"]) is found
    assert (bad["offset"] in offsets) is found


def test_an_empty_region_predicted_empty_is_not_an_anomaly(case) -> None:
    """Annotated crops were chosen to hold objects, so the prior is high; a region with no
    object that the model rightly calls empty must not outrank one it over-calls."""
    image, model, truth, _pred = case
    pred = np.where(truth == 1, 1, 0).astype(np.uint8)
    pred[12:24, 48:64, 16:32] = 0
    add_labels(image, "pred3", pred, kind="prediction", ai_generated=True)
    s = score_candidates(image, model=model, pred="pred3", crop_size=CROP, probability="")
    i = [list(o) for o in s.offsets].index([12, 48, 16])
    assert s.foreground[i] == 0.0 and s.prior > 0
    assert s.anomaly == pytest.approx(s.foreground - s.prior)
    # the empty crop ranks last; every crop the model sees structure in ranks above it
    seen = s.eligible & (s.foreground > 0)
    assert seen.any()
    assert np.all(s.anomaly[seen] > s.anomaly[i])
    assert s.anomaly[i] == s.anomaly[s.eligible].min()


def test_below_the_prior_a_crop_with_structure_outranks_an_empty_one(case) -> None:
    """Once the model under-calls (every crop below the prior), the anomaly still prefers a
    crop with under-drawn objects over an empty one, which entropy and appearance may favour;
    a one-sided max(0, ·) tied them all at 0."""
    image, model, truth, _pred = case
    pred = np.zeros_like(truth, dtype=np.uint8)
    # the model sees only a sliver of each object: far below the annotated prior everywhere
    objects = np.argwhere(truth == 1)
    keep = objects[:: max(1, len(objects) // 200)]
    pred[tuple(keep.T)] = 1
    add_labels(image, "pred4", pred, kind="prediction", ai_generated=True)
    s = score_candidates(image, model=model, pred="pred4", crop_size=CROP, probability="")
    assert np.all(s.foreground[s.eligible] < s.prior)
    w = SuggestionWeights(anomaly=1, appearance=0, uncertainty=0, diversity=0)
    top = select_crops(s, 1, w)[0]
    i = [list(o) for o in s.offsets].index(top["offset"])
    assert s.foreground[i] == s.foreground[s.eligible].max() > 0


def test_a_prediction_from_another_model_is_named_in_the_message(case) -> None:
    image, model, _truth, pred = case
    add_labels(
        image,
        "pred-other",
        pred,
        kind="prediction",
        ai_generated=True,
        model={"id": "other@abc", "sha256": "f" * 64},
    )
    r = suggest_crops(
        image, model=model, pred="pred-other", n=1, crop_size=CROP, out=image.parent / "s"
    )
    assert "predicted by another model (weights ffffffffffff" in r.message


def test_quick_predictions_of_a_large_image_share_one_input_per_box(case, monkeypatch) -> None:
    """An image too large to pre-process whole is pre-processed once per box of candidates,
    not once per candidate, and the entropies equal those of the whole-image input."""
    import importlib

    # the package re-exports a function named `predict`; the module is wanted here
    predict_mod = importlib.import_module("curated.segment.predict")
    suggest_mod = importlib.import_module("curated.segment.suggest")

    image, model, _truth, _pred = case
    whole = score_candidates(image, model=model, pred="pred", crop_size=CROP, probability="")
    calls: list[int] = []  # bytes each pre-processing pass holds
    real = predict_mod._preprocessed

    def counting(model, raw, start, stop):
        box = [b - a for a, b in zip(start, stop, strict=True)]
        calls.append(predict_mod.input_bytes(model, raw.dtype.itemsize, box))
        return real(model, raw, start, stop)

    monkeypatch.setattr(predict_mod, "_preprocessed", counting)
    monkeypatch.setattr(predict_mod, "WHOLE_INPUT_VOXELS", 0)  # "too large to share"
    m = load_model(model)
    quick = suggest_mod._QuickPredictor(m, _store.image_level0(image), "cpu", image, CROP)
    out = m.geometry.valid_output(quick.size)
    pad = [o + 2 * h for o, h in zip(out, m.halo, strict=True)]
    # a budget of about half the image per axis: several boxes, each within the budget
    itemsize = _store.image_level0(image).dtype.itemsize
    cost = predict_mod.input_cost(m, itemsize)
    budget = cost([n // 2 + p for n, p in zip(SHAPE, pad, strict=True)])
    monkeypatch.setattr(predict_mod, "UNIT_INPUT_BYTES", budget)
    starts = [quick.start(o) for o in candidate_offsets(SHAPE, CROP)]
    # tiles that all start on one plane need no cut along z
    flat_axes = [[0], sorted({y for _z, y, _x in starts}), sorted({x for _z, _y, x in starts})]
    assert len(predict_mod.start_boxes(flat_axes, out, m.halo, budget, cost)[0]) == 1
    boxed = score_candidates(image, model=model, pred="pred", crop_size=CROP, probability="")
    assert max(calls) <= budget  # every box within the budget
    np.testing.assert_allclose(
        boxed.uncertainty, whole.uncertainty, rtol=0, atol=1e-6, equal_nan=True
    )
    n_quick = int(np.count_nonzero(boxed.eligible))
    assert 1 < len(calls) < n_quick
    # the default budget holds this small image in one box: one pre-processing pass
    calls.clear()
    monkeypatch.setattr(predict_mod, "UNIT_INPUT_BYTES", 160 * 2**20)
    again = score_candidates(image, model=model, pred="pred", crop_size=CROP, probability="")
    assert len(calls) == 1
    np.testing.assert_allclose(
        again.uncertainty, whole.uncertainty, rtol=0, atol=1e-6, equal_nan=True
    )


def test_the_cli_help_states_the_default_weights() -> None:
    """`--weights` help quotes the defaults; it once kept weights two releases old."""
    import typer

    suggest = typer.main.get_command(app).commands["annotate"].commands["suggest"]  # type: ignore[attr-defined]
    (option,) = [p for p in suggest.params if p.name == "weights"]
    stated = option.help.split("e.g. '", 1)[1].split("'", 1)[0]
    assert SuggestionWeights.parse(stated) == SuggestionWeights()
