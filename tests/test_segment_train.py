"""Training and fine-tuning: model folder, resuming, lineage, and clear errors on bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, IntegrityError, SegmentationError
from curated.images import add_labels
from curated.segment import annotate_from_truth, finetune, load_model, make_fibsem_sample, train
from curated.segment.unet import UNet3D, UNetConfig
from curated.workspace import Workspace

SHAPE = (16, 48, 48)
TINY = {
    "depth": 1,
    "base_features": 2,
    "patch": 8,
    "batch_size": 1,
    "iterations": 4,
    "checkpoint_every": 2,
    "validate_every": 2,
    "device": "cpu",
}
KEYS = {
    "format",
    "id",
    "name",
    "created",
    "architecture",
    "preprocessing",
    "label",
    "training",
    "parent",
    "lineage_rois",
    "weights",
    "evaluations",
    "software",
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    image = root / "cell.ome.zarr"
    make_fibsem_sample(image, shape=SHAPE, voxel_size=(16, 8, 8), seed=0)
    annotate_from_truth(image, crops=4, size=10, seed=0, name="ann")
    return image


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible CPU runs
    yield
    torch.set_num_threads(old)


def test_unet_geometry_rules() -> None:
    cfg = UNetConfig.for_voxel_size((8, 8, 8), depth=2)
    g = cfg.geometry
    assert g.context == (20, 20, 20) and g.step == (4, 4, 4)
    net = UNet3D(cfg)
    for out in (g.output_min, g.valid_output((13, 20, 9))):
        y = net(torch.zeros(1, 1, *g.input_for(out)))
        assert tuple(y.shape[2:]) == tuple(out)
    aniso = UNetConfig.for_voxel_size((30, 8, 8), depth=2)
    assert aniso.pools[0] == (1, 2, 2) and aniso.kernels[0] == (1, 3, 3)
    assert aniso.geometry.context[0] < aniso.geometry.context[1]
    assert not any(
        isinstance(m, torch.nn.modules.batchnorm._NormBase | torch.nn.GroupNorm)
        for m in net.modules()
    )


def test_train_writes_a_complete_model_folder_and_reruns_are_not_needed(sample, tmp_path) -> None:
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    out = tmp_path / "m"
    r = train(sample, labels="ann", label_value=2, out=out, workspace=ws, **TINY)
    assert r.status == "ok"
    meta = json.loads((out / "model.json").read_text())
    assert set(meta) >= KEYS
    assert meta["format"] == "curated-unet/1" and meta["parent"] is None
    assert meta["label"] == {"labels": "ann", "label_value": 2}
    assert len(meta["architecture"]["context"]) == 3 and meta["architecture"]["input_shape_min"]
    assert meta["preprocessing"]["low"] < meta["preprocessing"]["high"]
    t = meta["training"]
    assert t["image_digest"].startswith("sha256") and t["seed"] == 0 and t["iterations"] == 4
    assert len(t["rois"]) + len(t["validation_rois"]) == 4
    assert len(meta["lineage_rois"]) == 4 and "torch" in meta["software"]
    assert load_model(out).sha256 == meta["weights"]["sha256"]
    again = train(sample, labels="ann", label_value=2, out=out, **TINY)
    assert again.status == "notneeded"
    actions = [e["action"] for e in ws.log.entries()]
    assert actions.count("train") == 1


def test_interrupted_training_resumes_to_the_same_weights(sample, tmp_path) -> None:
    whole = train(
        sample, labels="ann", label_value=2, out=tmp_path / "whole", **{**TINY, "iterations": 6}
    )
    part = train(
        sample, labels="ann", label_value=2, out=tmp_path / "part", **{**TINY, "iterations": 4}
    )
    (tmp_path / "part" / "model.json").unlink()  # as if stopped after the checkpoint at 4
    resumed = train(
        sample, labels="ann", label_value=2, out=tmp_path / "part", **{**TINY, "iterations": 6}
    )
    assert part.ok and resumed.details["resumed_from"] == 4
    assert resumed.details["weights_sha256"] == whole.details["weights_sha256"]


def test_corrupt_checkpoint_is_refused_and_kept(sample, tmp_path) -> None:
    out = tmp_path / "m"
    train(sample, labels="ann", label_value=2, out=out, **TINY)
    (out / "model.json").unlink()
    ck = out / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:-10] + b"0123456789")
    damaged = ck.read_bytes()
    weights = (out / "weights.pt").read_bytes()
    with pytest.raises(IntegrityError):
        train(sample, labels="ann", label_value=2, out=out, **{**TINY, "iterations": 6})
    assert ck.read_bytes() == damaged and (out / "weights.pt").read_bytes() == weights


def test_corrupt_weights_and_other_architecture_versions_are_refused(sample, tmp_path) -> None:
    out = tmp_path / "m"
    train(sample, labels="ann", label_value=2, out=out, **TINY)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    meta = json.loads((other / "model.json").read_text())
    meta["format"] = "curated-unet/0"
    (other / "model.json").write_text(json.dumps(meta))
    with pytest.raises(SegmentationError, match="another architecture version"):
        load_model(other)
    w = out / "weights.pt"
    w.write_bytes(w.read_bytes() + b"x")
    with pytest.raises(IntegrityError):
        load_model(out)
    with pytest.raises(IntegrityError):
        finetune(out, sample, labels="ann", out=tmp_path / "child", **TINY)
    assert not (tmp_path / "child").exists()


def test_bad_training_inputs_are_clear_errors(sample, tmp_path) -> None:
    with pytest.raises(SegmentationError, match="does not occur"):
        train(sample, labels="ann", label_value=7, out=tmp_path / "a", **TINY)
    with pytest.raises(SegmentationError, match="no label image"):
        train(sample, labels="nothing", label_value=1, out=tmp_path / "b", **TINY)
    empty_img = tmp_path / "e.ome.zarr"
    make_fibsem_sample(empty_img, shape=(8, 16, 16), seed=1)
    add_labels(empty_img, "blank", np.full((8, 16, 16), 255, np.uint8), kind="annotation")
    with pytest.raises(SegmentationError, match="no annotated voxels"):
        train(empty_img, labels="blank", label_value=1, out=tmp_path / "c", **TINY)
    if not torch.cuda.is_available():
        with pytest.raises(SegmentationError, match="no CUDA GPU"):
            train(
                sample,
                labels="ann",
                label_value=2,
                out=tmp_path / "d",
                **{**TINY, "device": "cuda"},
            )
    with pytest.raises(InputError):
        train(sample, labels="ann", label_value=2, out=tmp_path / "f", **{**TINY, "device": "tpu"})
    out = tmp_path / "g"
    train(sample, labels="ann", label_value=2, out=out, **TINY)
    before = (out / "model.json").read_bytes()
    with pytest.raises(SegmentationError, match="different model"):
        train(sample, labels="ann", label_value=2, out=out, **{**TINY, "seed": 9})
    assert (out / "model.json").read_bytes() == before


def test_labels_with_another_shape_are_refused(tmp_path) -> None:
    a = tmp_path / "a.ome.zarr"
    make_fibsem_sample(a, shape=(8, 16, 16), seed=1)
    lab = a / "labels" / "ann"
    b = tmp_path / "b.ome.zarr"
    make_fibsem_sample(b, shape=(8, 16, 24), seed=1)
    annotate_from_truth(b, crops=1, size=8, name="ann")
    lab.parent.mkdir(exist_ok=True)
    shutil.copytree(b / "labels" / "ann", lab)
    with pytest.raises(SegmentationError, match="shape"):
        train(a, labels="ann", label_value=1, out=tmp_path / "m", **TINY)
    assert not (tmp_path / "m" / "model.json").exists()


def test_finetune_records_parent_and_lineage(sample, tmp_path) -> None:
    parent = tmp_path / "p"
    train(sample, labels="ann", label_value=2, out=parent, **TINY)
    annotate_from_truth(sample, crops=2, size=10, seed=7, name="more")
    r = finetune(parent, sample, labels="more", out=tmp_path / "c", **TINY)
    assert r.ok
    pm = json.loads((parent / "model.json").read_text())
    cm = json.loads((tmp_path / "c" / "model.json").read_text())
    assert cm["parent"] == {"sha256": pm["weights"]["sha256"], "id": pm["id"]}
    assert cm["label"]["label_value"] == 2 and cm["preprocessing"] == pm["preprocessing"]
    assert cm["lineage_rois"][: len(pm["lineage_rois"])] == pm["lineage_rois"]
    assert len(cm["lineage_rois"]) == len(pm["lineage_rois"]) + 2


def test_cli_train_and_finetune(sample, tmp_path) -> None:
    runner = CliRunner()
    common = [
        "--device",
        "cpu",
        "--depth",
        "1",
        "--features",
        "2",
        "--patch",
        "8",
        "--batch-size",
        "1",
    ]
    res = runner.invoke(
        app,
        [
            "segment",
            "train",
            str(sample),
            "--labels",
            "ann",
            "--label-value",
            "2",
            "--out",
            str(tmp_path / "m"),
            "--iterations",
            "2",
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "segment",
            "finetune",
            str(tmp_path / "m"),
            str(sample),
            "--labels",
            "ann",
            "--out",
            str(tmp_path / "c"),
            "--iterations",
            "2",
            "--device",
            "cpu",
            "--patch",
            "8",
            "--batch-size",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "segment",
            "train",
            str(sample),
            "--labels",
            "ann",
            "--label-value",
            "2",
            "--out",
            str(tmp_path / "x"),
            "--device",
            "cuda" if not torch.cuda.is_available() else "tpu",
        ],
    )
    assert res.exit_code != 0


def test_elastic_augmentation_moves_raw_and_labels_together() -> None:
    from curated.segment.train import Augmentation, _augment

    aug = Augmentation(
        elastic=True, elastic_sigma=2.0, elastic_grid=8, intensity_scale=0, intensity_shift=0
    )
    m, ctx = aug.margin, 6
    size_raw = 20 + 2 * ctx + 2 * m
    z, y, x = np.meshgrid(*[np.arange(size_raw, dtype=np.float32)] * 3, indexing="ij")
    raw = np.sin(z / 3.0) + np.cos(y / 4.0) + np.sin(x / 5.0)
    lab = (
        raw[ctx : ctx + 20 + 2 * m, ctx : ctx + 20 + 2 * m, ctx : ctx + 20 + 2 * m] > 0.5
    ).astype(np.uint8)
    new_raw, new_lab = _augment(raw, lab, aug, (0, 1, 2), np.random.default_rng(0))
    assert new_raw.shape == (20 + 2 * ctx,) * 3 and new_lab.shape == (20,) * 3
    centre = new_raw[ctx:-ctx, ctx:-ctx, ctx:-ctx] > 0.5
    assert np.mean(centre == (new_lab == 1)) > 0.97
    assert not np.array_equal(
        new_raw[ctx:-ctx, ctx:-ctx, ctx:-ctx],
        raw[ctx + m : -ctx - m, ctx + m : -ctx - m, ctx + m : -ctx - m],
    )


def test_training_with_elastic_augmentation_and_all_preprocessing(sample, tmp_path) -> None:
    from curated.segment.train import Augmentation

    pre = {"denoise_sigma": 0.5, "shading_sigma": 2.0, "local_contrast_sigma": 1.0}
    r = train(
        sample,
        labels="ann",
        label_value=2,
        out=tmp_path / "m",
        augmentation=Augmentation(elastic=True),
        preprocessing=pre,
        **TINY,
    )
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    p = meta["preprocessing"]
    assert r.ok and meta["training"]["augmentation"]["elastic"] is True
    assert p["shading_reference"] > 0 and p["local_contrast_std"] > 0 and p["low"] < p["high"]


def test_a_store_the_log_recorded_is_named_by_that_digest_not_rehashed(
    sample, tmp_path, monkeypatch
) -> None:
    import importlib

    from curated.provenance.digest import digest_tree
    from curated.provenance.log import Artifact

    train_module = importlib.import_module("curated.segment.train")

    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    recorded = digest_tree(sample)
    entry = ws.log.append(
        "T",
        "convert",
        outputs=[Artifact(ws.relative(sample), recorded.bytes, recorded.digest, role="image")],
    )

    def no_rehash(*_a, **_k):
        raise AssertionError("the recorded store was hashed again")

    monkeypatch.setattr(train_module, "digest_path", no_rehash)
    out = tmp_path / "m"
    train(sample, labels="ann", label_value=2, out=out, workspace=ws, **TINY)
    t = json.loads((out / "model.json").read_text())["training"]
    assert t["image_digest"] == recorded.digest
    assert f"seq {entry['seq']}" in t["image_digest_scope"]
