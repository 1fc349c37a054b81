"""Blockwise prediction: identical to one whole-volume pass, resumable, on threads or dask.distributed."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from segment_helpers import sample_with_tiny_model
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, SegmentationError
from curated.images import open_image, validate_ome_zarr
from curated.segment import (
    _store,
    load_model,
    predict,
)

predict_module = importlib.import_module("curated.segment.predict")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return sample_with_tiny_model(
        tmp_path_factory.mktemp("predict"), seed=0, iterations=3, local_contrast_sigma=1.0
    )


def _whole_volume_probability(model_dir, image, dtype=None) -> np.ndarray:
    """One network pass over the whole (reflect-padded) volume, written out by hand
    (``dtype``: the mixed-precision dtype, ``None`` for float32)."""
    m = load_model(model_dir)
    raw = np.asarray(open_image(image).levels[0][...])
    out = m.geometry.valid_output(raw.shape)
    h = m.halo
    pad = [(hh, o - n + hh) for hh, o, n in zip(h, out, raw.shape, strict=True)]
    x = m.preprocessing.apply(np.pad(raw, pad, mode="reflect"))
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        logits = m.network("cpu")(torch.from_numpy(x)[None, None]).float()
    return torch.sigmoid(logits)[0, 0].numpy()[: raw.shape[0], : raw.shape[1], : raw.shape[2]]


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", None), ("bf16", torch.bfloat16)])
def test_blockwise_prediction_equals_one_whole_volume_pass(trained, precision, dtype) -> None:
    # bf16 runs on any CPU (emulated without AVX512-BF16/AMX): the same numbers as where native
    image, model = trained
    name = f"small-{precision}"
    r = predict(
        model,
        image,
        name=name,
        block=(8, 8, 12),
        probabilities=True,
        device="cpu",
        precision=precision,
        workers=2,
    )
    assert r.details["tile"] == [
        8,
        8,
        12,
    ]  # several tiles per write unit, partial ones at the edges
    assert r.details["precision"] == precision
    attrs = _store.label_curated_attrs(image, name)
    assert attrs["prediction"]["precision"] == precision
    ref = _whole_volume_probability(model, image, dtype)
    assert np.array_equal(
        np.rint(ref * 255).astype(np.uint8), _store.label_level0(image, f"{name}-probability")[...]
    )
    labels = _store.label_level0(image, name)[...]
    assert np.array_equal(labels, np.where(ref > 0.5, 2, 0).astype(np.uint8))


def test_precision_auto_is_float32_on_a_cpu(trained) -> None:
    image, model = trained
    r = predict(model, image, name="auto", device="cpu", overwrite=True)
    assert r.details["precision"] == "fp32"
    with pytest.raises(InputError, match="precision must be one of auto, fp32, bf16"):
        predict(model, image, name="bad", device="cpu", precision="fp8")


def test_prediction_is_an_ai_generated_label_image_and_reruns_are_not_needed(trained) -> None:
    image, model = trained
    r = predict(model, image, name="p", device="cpu")
    m = load_model(model)
    attrs = _store.label_curated_attrs(image, "p")
    assert attrs["kind"] == "prediction" and attrs["ai_generated"] is True
    assert attrs["origin"] == "model-prediction"
    # the predicted class is named after the structure, not after the training label image
    assert _store.label_properties(image, "p") == [{"label-value": 2, "name": "nucleus"}]
    assert attrs["model"]["id"] == m.id and attrs["model"]["sha256"] == m.sha256
    assert validate_ome_zarr(image) == []
    assert r.details["units"] == 3 * 3
    again = predict(model, image, name="p", device="cpu")
    assert again.status == "notneeded"


def test_interrupted_prediction_resumes(trained, monkeypatch) -> None:
    image, model = trained
    real = predict_module._predict_units
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(predict_module, "_predict_units", flaky)
    with pytest.raises(KeyboardInterrupt):
        predict(model, image, name="r", device="cpu", workers=1)
    monkeypatch.setattr(predict_module, "_predict_units", real)
    r = predict(model, image, name="r", device="cpu", workers=1)
    assert r.details["units_skipped"] == 3 and r.details["units_computed"] == 6
    predict(model, image, name="r2", device="cpu")
    assert np.array_equal(
        _store.label_level0(image, "r")[...], _store.label_level0(image, "r2")[...]
    )


def test_predictions_never_replace_truth_or_annotations(trained) -> None:
    image, model = trained
    before = _store.label_level0(image, "truth")[...]
    for name in ("truth", "ann"):
        with pytest.raises(SegmentationError):
            predict(model, image, name=name, device="cpu")
    assert np.array_equal(_store.label_level0(image, "truth")[...], before)


def test_prediction_on_a_dask_distributed_cluster(trained) -> None:
    distributed = pytest.importorskip("distributed")
    image, model = trained
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        r = predict(model, image, name="dist", scheduler=cluster.scheduler_address, device="cpu")
    assert r.ok
    local = predict(model, image, name="local", device="cpu")
    assert local.ok
    assert np.array_equal(
        _store.label_level0(image, "dist")[...], _store.label_level0(image, "local")[...]
    )


def test_cli_predict(trained) -> None:
    image, model = trained
    res = CliRunner().invoke(
        app,
        [
            "segment",
            "predict",
            str(model),
            str(image),
            "--name",
            "cli",
            "--workers",
            "2",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--block",
            "8",
            "16",
            "16",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "cli" in open_image(image).label_names()
    assert _store.label_curated_attrs(image, "cli")["prediction"]["precision"] == "fp32"
    res = CliRunner().invoke(
        app, ["segment", "predict", str(model), str(image), "--name", "truth", "--device", "cpu"]
    )
    assert res.exit_code == 1


def test_a_model_applied_at_another_voxel_size_is_warned_about(trained, tmp_path) -> None:
    """An 8 nm model applied to a 20 nm image answered "ok" and nothing else: the network
    sees voxels, so every structure looked 2.5x smaller than in training. The result, its
    log entry and a re-run now say so; matching voxels (and small differences) do not."""
    from curated.segment.geometry import voxel_size_mismatch
    from curated.segment.sample import make_fibsem_sample

    _, model = trained
    coarse = tmp_path / "coarse.ome.zarr"
    make_fibsem_sample(coarse, shape=(8, 24, 24), voxel_size=(20, 20, 20), seed=1, chunks=8)
    r = predict(model, coarse, name="p", device="cpu")
    assert r.status == "ok"
    (w,) = r.details["warnings"]
    assert "8 × 8 × 8 nm" in w and "20 × 20 × 20 nm" in w and "2.5× coarser" in w
    assert "Warning: the model was trained on" in r.message
    again = predict(model, coarse, name="p", device="cpu")
    assert again.status == "notneeded" and again.details["warnings"] == [w]
    same = predict(model, trained[0], name="p-same", device="cpu")
    assert "warnings" not in same.details and "Warning" not in same.message
    # where the line is drawn, and a model that never recorded its voxels
    assert voxel_size_mismatch((8, 8, 8), (10, 8, 6.4)) is None
    assert "finer along x" in voxel_size_mismatch((8, 8, 8), (8, 8, 6.3))
    assert "1.3× coarser along z" in voxel_size_mismatch((8, 8, 8), (10.4, 8, 8))
    assert voxel_size_mismatch(None, (8, 8, 8)) is None
    assert voxel_size_mismatch([0, 8, 8], (8, 8, 8)) is None


def test_the_log_entry_of_a_prediction_keeps_its_warning(trained, tmp_path) -> None:
    """The curator log is where a reviewer looks later: the warning is recorded there."""
    from curated.metadata import init_workspace
    from curated.provenance.log import CuratorLog
    from curated.segment.sample import make_fibsem_sample

    _, model = trained
    ws = tmp_path / "ws"
    init_workspace(ws, "Voxel size warning")
    image = ws / "derived" / "coarse.ome.zarr"
    make_fibsem_sample(image, shape=(8, 24, 24), voxel_size=(8, 8, 20), seed=1, workspace=ws)
    predict(model, image, name="p", device="cpu", workspace=ws)
    (entry,) = [
        e for e in CuratorLog(ws / "curation" / "log.jsonl").entries() if e["action"] == "predict"
    ]
    assert "2.5× coarser along x" in entry["details"]["warnings"][0]
    assert "Warning: the model was trained on" in entry["message"]
