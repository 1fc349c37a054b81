"""Training and fine-tuning: model folder, resuming, lineage, and clear errors on bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from scipy import ndimage
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, IntegrityError, SegmentationError
from curated.images import add_labels
from curated.segment import annotate_from_truth, finetune, load_model, make_fibsem_sample, train
from curated.segment.defaults import DEFAULT_FINETUNE_DRAWS, DEFAULT_NEW_CROP_FRACTION
from curated.segment.preprocess import Preprocessing
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


def _annotate_free_crop(sample, tmp_path, want, name, size=10) -> tuple[int, int, int]:
    """Copy the truth of the first not yet annotated ``size``³ crop (grid step 2) whose
    nucleus share passes ``want`` into the ``ann`` labels, as a curator adding a crop would;
    its offset."""
    from curated.segment import _store
    from curated.segment.annotate import import_annotation

    ann = np.asarray(_store.label_level0(sample, "ann")[...])
    truth = np.asarray(_store.label_level0(sample, "truth")[...])
    for z in range(0, SHAPE[0] - size + 1, 2):
        for y in range(0, SHAPE[1] - size + 1, 2):
            for x in range(0, SHAPE[2] - size + 1, 2):
                sl = (slice(z, z + size), slice(y, y + size), slice(x, x + size))
                if (ann[sl] == 255).all() and want(float(np.mean(truth[sl] == 2))):
                    np.save(tmp_path / f"{name}.npy", truth[sl].astype(np.uint8))
                    import_annotation(
                        sample, source_file=tmp_path / f"{name}.npy", offset=(z, y, x), name="ann"
                    )
                    return (z, y, x)
    raise AssertionError("no such crop in the sample")


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


def test_fine_isotropic_voxels_get_a_pointwise_top_level_and_keep_the_field_of_view() -> None:
    from curated.segment.defaults import FIELD_OF_VIEW_NM
    from curated.segment.train import network_config

    fib = network_config((5.0, 5.0, 5.0), None, 8, "batch")  # isotropic FIB-SEM at 5 nm
    assert fib.kernels[0] == (1, 1, 1) and set(fib.kernels[1:]) == {(3, 3, 3)}
    assert fib.base_features == 4 and fib.depth == 3
    ctx = fib.geometry.context
    assert (2 * ctx[1] + 1) * 5.0 >= FIELD_OF_VIEW_NM  # 81 voxels, 405 nm
    # 8 nm data and ssTEM (coarse z) are planned as before
    eight = network_config((8.0, 8.0, 8.0), None, 8, "batch")
    assert eight.kernels[0] == (3, 3, 3) and eight.base_features == 8 and eight.depth == 2
    sstem = network_config((50.0, 4.6, 4.6), None, 8, "batch")
    assert sstem.kernels[0] == (1, 3, 3) and sstem.base_features == 8 and sstem.depth == 3
    # two tiles one step apart agree, bit for bit, where they overlap (blockwise prediction)
    small = network_config((5.0, 5.0, 5.0), 2, 4, "batch")
    assert small.kernels[0] == (1, 1, 1) and small.base_features == 2
    torch.manual_seed(0)
    net = UNet3D(small).eval()
    g = small.geometry
    out = g.valid_output((2 * g.step[0], 2 * g.step[1], 2 * g.step[2]))
    size = g.input_for(out)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=[n + s for n, s in zip(size, g.step, strict=True)]))
    x = x.float()[None, None]
    a, b = ((slice(o, o + n) for o, n in zip(off, size, strict=True)) for off in ((0,) * 3, g.step))
    with torch.no_grad():
        first = net(x[(..., *a)])[0, 0]
        second = net(x[(..., *b)])[0, 0]
    z, y, w = g.step
    assert torch.equal(first[z:, y:, w:], second[:-z, :-y, :-w])


def _relabel_units(image, unit: str, factor: float) -> None:
    """Rewrite an OME-Zarr's spatial unit and scales (the same voxels, in another unit)."""
    meta_file = image / "zarr.json"
    meta = json.loads(meta_file.read_text())
    ms = meta["attributes"]["ome"]["multiscales"][0]
    for axis in ms["axes"]:
        axis["unit"] = unit
    for ds in ms["datasets"]:
        for t in ds["coordinateTransformations"]:
            key = t["type"]
            t[key] = [v * factor for v in t[key]]
    meta_file.write_text(json.dumps(meta))


def test_voxel_sizes_in_micrometres_plan_the_same_network_as_in_nanometres(
    sample, tmp_path
) -> None:
    from curated.segment import _store
    from curated.segment.train import network_config

    um = tmp_path / "um.ome.zarr"
    shutil.copytree(sample, um)
    _relabel_units(um, "micrometer", 1e-3)  # as Fiji and bioformats2raw write them
    assert _store.voxel_size(um) == pytest.approx(_store.voxel_size(sample))
    assert network_config(_store.voxel_size(um), None, 8, "batch") == network_config(
        _store.voxel_size(sample), None, 8, "batch"
    )
    timed = tmp_path / "s.ome.zarr"
    shutil.copytree(sample, timed)
    _relabel_units(timed, "second", 1.0)
    with pytest.raises(SegmentationError, match="needs a length unit"):
        train(timed, labels="ann", label_value=2, out=tmp_path / "m", **TINY)
    assert not (tmp_path / "m" / "weights.pt").exists()


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
    # by default every annotated crop trains and the last iteration is kept
    assert len(t["rois"]) == 4 and t["validation_rois"] == []
    assert t["checkpoint_selection"]["iteration"] == 4
    assert t["checkpoint_selection"]["rule"].startswith("last iteration (every crop trains")
    assert r.details["best_validation_dice"] is None and "validation" not in r.message
    assert len(meta["lineage_rois"]) == 4 and "torch" in meta["software"]
    assert load_model(out).sha256 == meta["weights"]["sha256"]
    again = train(sample, labels="ann", label_value=2, out=out, **TINY)
    assert again.status == "notneeded"
    actions = [e["action"] for e in ws.log.entries()]
    assert actions.count("train") == 1
    # the log says whether a crop was held out (the default changed in this release)
    step = next(e for e in ws.log.entries() if e["action"] == "train")
    assert step["params"]["validation"] is False


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_interrupted_training_resumes_to_the_same_weights(sample, tmp_path, precision) -> None:
    # bf16 mixed precision runs on any CPU (emulated where AVX512-BF16/AMX are missing)
    tiny = {**TINY, "iterations": 6, "precision": precision}
    whole = train(sample, labels="ann", label_value=2, out=tmp_path / "whole", **tiny)
    used = json.loads((tmp_path / "whole" / "model.json").read_text())["training"]
    assert used["precision"] == {"asked": precision, "used": precision}
    assert used["amp"] == ("bfloat16" if precision == "bf16" else None)

    class Stop(Exception):
        pass

    class StopAfterFive:
        """Interrupts the run during iteration 5 (the checkpoint of iteration 4 is on disk)."""

        n = 0

        def start(self, description, total, unit=""):
            return None

        def advance(self, amount=1, **info):
            self.n += 1
            if self.n == 5:
                raise Stop

        def finish(self):
            return None

    with pytest.raises(Stop):
        train(
            sample, labels="ann", label_value=2, out=tmp_path / "part",
            progress=StopAfterFive(), **tiny,
        )  # fmt: skip
    assert not (tmp_path / "part" / "model.json").exists()
    resumed = train(sample, labels="ann", label_value=2, out=tmp_path / "part", **tiny)
    assert resumed.details["resumed_from"] == 4
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
    for bad_patch in ((8, 8), (0, 8, 8)):
        with pytest.raises(InputError, match="patch must be"):
            train(
                sample,
                labels="ann",
                label_value=2,
                out=tmp_path / "p",
                **{**TINY, "patch": bad_patch},
            )
    assert not (tmp_path / "p" / "model.json").exists()
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
    assert cm["parent"] == {
        "sha256": pm["weights"]["sha256"],
        "id": pm["id"],
        "voxel_size": [16.0, 8.0, 8.0],
    }
    assert "warnings" not in r.details  # the same voxels as the parent's
    assert cm["label"]["label_value"] == 2 and cm["preprocessing"] == pm["preprocessing"]
    assert cm["lineage_rois"][: len(pm["lineage_rois"])] == pm["lineage_rois"]
    assert len(cm["lineage_rois"]) == len(pm["lineage_rois"]) + 2


def test_cli_train_and_finetune(sample, tmp_path) -> None:
    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")
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

    def train_args(out: str, *options: str) -> list[str]:
        return ["segment", "train", str(sample), "--labels", "ann", "--label-value", "2",
                "--out", str(tmp_path / out), *options]  # fmt: skip

    res = runner.invoke(app, train_args("m", "--iterations", "2", *common))
    assert res.exit_code == 0, res.output
    assert (
        json.loads((tmp_path / "m" / "model.json").read_text())["training"]["validation_rois"] == []
    )
    # --validation holds one crop out and keeps the iteration that scored best on it
    res = runner.invoke(app, train_args("v", "--iterations", "2", "--validation", *common))
    assert res.exit_code == 0, res.output
    held = json.loads((tmp_path / "v" / "model.json").read_text())["training"]
    assert len(held["validation_rois"]) == 1 and len(held["rois"]) == 3
    assert held["checkpoint_selection"]["rule"].startswith("lowest validation loss")
    annotate_from_truth(sample, crops=1, size=10, seed=5, name="ann")  # the curator adds a crop
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
            "--precision",
            "bf16",
            "--patch",
            "8",
            "--batch-size",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    child = json.loads((tmp_path / "c" / "model.json").read_text())["training"]
    assert child["precision"] == {"asked": "bf16", "used": "bf16"}
    res = runner.invoke(app, train_args("y", "--precision", "fp16", *common))
    assert res.exit_code != 0 and "precision must be one of auto, fp32, bf16" in res.output
    assert not (tmp_path / "y").exists()
    res = runner.invoke(
        app, train_args("x", "--device", "cuda" if not torch.cuda.is_available() else "tpu")
    )
    assert res.exit_code != 0


def test_elastic_augmentation_moves_raw_and_labels_together() -> None:
    from curated.segment.train import Augmentation, _augment

    aug = Augmentation(
        elastic=True, elastic_sigma=2.0, elastic_grid=8, intensity_scale=0, intensity_shift=0,
        flips=False, transposes=False, gamma_p=0, brightness_p=0, contrast_p=0, noise_p=0,
        blur_p=0, low_resolution_p=0, gain_field_p=0, gamma_inverted_p=0,
    )  # fmt: skip
    mz, my, mx = aug.margin
    assert mz == 0 and my == mx == 7  # in-plane only: z, the cutting axis, is never displaced
    ctx = 6
    shape = (20 + 2 * ctx, 20 + 2 * ctx + 2 * my, 20 + 2 * ctx + 2 * mx)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    raw = np.sin(z / 3.0) + np.cos(y / 4.0) + np.sin(x / 5.0)
    lab = (raw[ctx:-ctx, ctx:-ctx, ctx:-ctx] > 0.5).astype(np.uint8)
    new_raw, new_lab = _augment(raw, lab, aug, (0, 1, 2), np.random.default_rng(0))
    assert new_raw.shape == (20 + 2 * ctx,) * 3 and new_lab.shape == (20,) * 3
    centre = new_raw[ctx:-ctx, ctx:-ctx, ctx:-ctx] > 0.5
    assert np.mean(centre == (new_lab == 1)) > 0.97
    inner = raw[:, my:-my, mx:-mx]
    assert not np.array_equal(new_raw, inner)
    # the same in-plane field in every slice: the z profile of each column is the source's
    # (raw varies along z as sin(z / 3) only, so differences between slices are unchanged)
    assert np.allclose(np.diff(new_raw, axis=0), np.diff(inner, axis=0), atol=1e-5)


def test_elastic_share_leaves_the_other_patches_unwarped() -> None:
    from curated.segment.train import Augmentation, _augment

    aug = Augmentation(
        elastic=True, elastic_p=0.0, intensity_scale=0, intensity_shift=0,
        flips=False, transposes=False, gamma_p=0, brightness_p=0, contrast_p=0, noise_p=0,
        blur_p=0, low_resolution_p=0, gain_field_p=0, gamma_inverted_p=0,
    )  # fmt: skip
    _, m, _ = aug.margin
    rng = np.random.default_rng(1)
    raw = rng.random((8, 24 + 2 * m, 24 + 2 * m)).astype(np.float32)
    lab = rng.integers(0, 2, (4, 12 + 2 * m, 12 + 2 * m)).astype(np.uint8)
    new_raw, new_lab = _augment(raw, lab, aug, (1, 2), rng)
    assert np.array_equal(new_raw, raw[:, m:-m, m:-m])
    assert np.array_equal(new_lab, lab[:, m:-m, m:-m])


def test_training_with_elastic_augmentation_and_all_preprocessing(sample, tmp_path) -> None:
    pre = {"denoise_sigma": 0.5, "shading_sigma": 2.0, "local_contrast_sigma": 1.0}
    r = train(
        sample,
        labels="ann",
        label_value=2,
        out=tmp_path / "m",
        augmentation={"elastic": True},  # a dict works as well as an Augmentation
        preprocessing=pre,
        **TINY,
    )
    with pytest.raises(InputError, match="unknown augmentation option.*elastik"):
        train(
            sample, labels="ann", label_value=2, out=tmp_path / "typo",
            augmentation={"elastik": True}, **TINY,
        )  # fmt: skip
    assert not (tmp_path / "typo").exists()
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


# ---------------------------------------------------------------- issue 13: trust
def test_default_preprocessing_is_local_contrast_at_400_nm(sample, tmp_path) -> None:
    """No pre-processing given: local contrast normalisation of 400 nm (50 voxels at 8 nm) is fitted and recorded."""
    from curated.segment.preprocess import default_preprocessing

    assert default_preprocessing((8.0, 8.0, 8.0)).local_contrast_sigma == 50.0
    assert default_preprocessing((50.0, 4.6, 4.6)).local_contrast_sigma == 87.0  # real ssTEM
    assert default_preprocessing((50.0, 2.0, 2.0)).local_contrast_sigma == 128.0  # kept ≤ 128
    assert default_preprocessing((8.0, 500.0, 500.0)).local_contrast_sigma == 2.0  # kept ≥ 2 voxels
    train(sample, labels="ann", label_value=2, out=tmp_path / "m", **TINY)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    pre = meta["preprocessing"]
    assert pre["local_contrast_sigma"] == 50.0  # voxel size (16, 8, 8): y/x decide
    assert pre["local_contrast_mean"] is not None and pre["local_contrast_std"] > 0
    assert pre["local_contrast_kernel"] == "box3"  # uint8 sample: exact running sums
    assert (
        meta["training"]["loss"] == "balanced-bce+dice" and meta["training"]["schedule"] == "cosine"
    )
    # a σ given without a kernel (`--local-contrast 20`) gets the image's default kernel too;
    # a kernel given is kept
    for given, kernel in (({}, "box3"), ({"local_contrast_kernel": "gaussian"}, "gaussian")):
        out = tmp_path / f"m-{kernel}"
        pre_in = {"local_contrast_sigma": 20.0, **given}
        assert train(sample, labels="ann", label_value=2, out=out, preprocessing=pre_in, **TINY).ok
        got = json.loads((out / "model.json").read_text())["preprocessing"]
        assert (got["local_contrast_sigma"], got["local_contrast_kernel"]) == (20.0, kernel)


def test_local_contrast_makes_the_input_independent_of_gain_and_offset() -> None:
    """I = g·S + o with a slow g and o: after the default pre-processing the block is (nearly) unchanged."""
    from curated.segment.preprocess import default_preprocessing

    rng = np.random.default_rng(0)
    n = 480  # the 400 nm normalisation reads 150 voxels around a block at 8 nm
    s = ndimage.gaussian_filter(rng.normal(100, 30, (4, n, n)), (0, 2, 2)).astype(np.float32)
    x = np.linspace(0, 1, n, dtype=np.float32)[None, None, :]
    shaded = (1.0 - 0.6 * x) * s + 0.6 * x * 40.0
    pre = default_preprocessing((8, 8, 8)).fit([s])
    h = pre.halo[1]
    inner = (slice(None), slice(h, -h), slice(h, -h))
    a, b = pre.apply(s)[inner[0], : n - 2 * h, : n - 2 * h], pre.apply(shaded)
    assert a.shape == b.shape == (4, n - 2 * h, n - 2 * h)
    lcn_change = float(np.abs(a - b).mean())
    assert lcn_change < 0.15  # of a [-1, 1] range; the gain falls by 60 % across the field
    # without normalisation the same shading moves the values by far more
    raw_pre = Preprocessing().fit([s])
    raw_change = float(np.abs(raw_pre.apply(s) - raw_pre.apply(shaded)).mean())
    assert raw_change > 3 * lcn_change


def test_cosine_learning_rate_is_a_pure_function_of_the_iteration() -> None:
    from curated.segment.train import TrainingSettings, learning_rate_at

    st = TrainingSettings(iterations=101, learning_rate=1e-3)
    assert learning_rate_at(st, 1) == pytest.approx(1e-3)
    assert learning_rate_at(st, 51) == pytest.approx(0.51e-3)
    assert learning_rate_at(st, 101) == pytest.approx(0.02e-3)
    lrs = [learning_rate_at(st, i) for i in range(1, 102)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    const = TrainingSettings(iterations=10, learning_rate=5e-4, schedule="constant")
    assert {learning_rate_at(const, i) for i in (1, 5, 10)} == {5e-4}


def test_intensity_augmentation_keeps_shape_and_is_off_when_asked() -> None:
    from curated.segment.train import Augmentation, _augment, _augment_intensity

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (12, 20, 20)).astype(np.float32)
    every = Augmentation(
        brightness_p=1, contrast_p=1, gamma_p=1, gamma_inverted_p=1, noise_p=1,
        blur_p=1, low_resolution_p=1, gain_field_p=1,
    )  # fmt: skip
    for _ in range(20):
        y = _augment_intensity(x, every, (1, 2), rng)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert not np.array_equal(y, x)
    off = Augmentation.spatial_only()
    off = Augmentation(**{**off.__dict__, "intensity_scale": 0.0, "intensity_shift": 0.0,
                          "flips": False, "transposes": False})  # fmt: skip
    lab = np.zeros((4, 4, 4), np.uint8)
    y, _ = _augment(x, lab, off, (1, 2), rng)
    assert np.array_equal(y, x)
    # a gain field lowers the contrast of one side more than the other, never raising values above the max
    g = _augment_intensity(
        x,
        Augmentation(**{**off.__dict__, "gain_field_p": 1.0, "gain_field_strength": 0.9}),
        (1, 2),
        rng,
    )
    assert g.max() <= x.max() + 1e-6 and float(g.std()) < float(x.std())


def test_gain_field_interpolation_is_scipys_linear_zoom() -> None:
    from scipy import ndimage

    from curated.segment.train import _linear_upsample

    rng = np.random.default_rng(3)
    for grid, shape in (
        ((2, 3, 3), (104, 104, 104)),
        ((2, 3, 3), (7, 31, 1)),
        ((1, 2, 4), (5, 9, 13)),
    ):
        coarse = rng.uniform(0, 1, grid)
        want = ndimage.zoom(coarse, [s / c for s, c in zip(shape, grid, strict=True)], order=1)
        got = _linear_upsample(coarse, shape)
        assert got.shape == shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_simulated_low_resolution_is_linear_between_nearest_samples() -> None:
    """Down by nearest, up by linear interpolation (nnU-Net v2): no overshoot past the patch's range."""
    from curated.segment.train import Augmentation, _augment_intensity

    rng = np.random.default_rng(0)
    x = np.zeros((16, 24, 24), np.float32)
    x[:, :, 12:] = 1.0  # a step edge: a cubic spline rings on both sides of it
    only = Augmentation(**{**Augmentation.spatial_only().__dict__, "low_resolution_p": 1.0})
    for _ in range(10):
        y = _augment_intensity(x, only, (0, 1, 2), rng)
        assert y.shape == x.shape and y.dtype == np.float32
        assert y.min() >= 0.0 and y.max() <= 1.0
        assert np.array_equal(y[:, :, :4], x[:, :, :4]) and np.array_equal(
            y[:, :, -4:], x[:, :, -4:]
        )


def test_finetune_oversamples_new_crops_never_holds_them_out_and_keeps_the_last_iteration(
    sample, tmp_path
) -> None:
    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")  # crops are added below
    parent = tmp_path / "p"
    # a parent that held a crop out (training's default until this release)
    train(sample, labels="ann", label_value=2, out=parent, validation=True, **TINY)
    pm = json.loads((parent / "model.json").read_text())
    # the same crops again: nothing new to learn from, refused with a pointer to what to do
    with pytest.raises(SegmentationError, match="annotate new crops"):
        finetune(parent, sample, labels="ann", out=tmp_path / "same", **TINY)
    assert not (tmp_path / "same" / "model.json").exists()
    # the curator adds two crops to the same label image
    annotate_from_truth(sample, crops=2, size=10, seed=11, name="ann")
    r = finetune(parent, sample, labels="ann", out=tmp_path / "c", **TINY)
    assert r.ok
    cm = json.loads((tmp_path / "c" / "model.json").read_text())
    t = cm["training"]
    old = {(tuple(x["offset"]), tuple(x["shape"])) for x in pm["lineage_rois"]}
    new = {(tuple(x["offset"]), tuple(x["shape"])) for x in t["new_rois"]}
    assert len(new) == 2 and not (new & old)
    # by default every crop trains, the one the parent held out for validation included
    assert t["validation_rois"] == [] and pm["training"]["validation_rois"][0] in t["rois"]
    assert t["checkpoint_selection"]["validation_dice"] is None
    # asked to validate, it holds out one of the parent's crops, never a new one
    v = finetune(parent, sample, labels="ann", out=tmp_path / "v", validation=True, draws=1, **TINY)
    assert "none of the 2 new crops holds a voxel of label 2" in v.message
    tv = json.loads((tmp_path / "v" / "model.json").read_text())["training"]
    held = {(tuple(x["offset"]), tuple(x["shape"])) for x in tv["validation_rois"]}
    assert len(held) == 1 and held <= old and "validation Dice" in v.message
    assert tv["checkpoint_selection"]["validation_dice"] is not None
    assert t["new_crop_fraction"] == DEFAULT_NEW_CROP_FRACTION == 0.5
    assert t["checkpoint_selection"]["iteration"] == TINY["iterations"]
    assert "last iteration" in t["checkpoint_selection"]["rule"]
    # the lineage lists each crop once: the parent's, then the two new ones
    assert cm["lineage_rois"][: len(pm["lineage_rois"])] == pm["lineage_rois"]
    assert len(cm["lineage_rois"]) == len(pm["lineage_rois"]) + 2


def test_the_new_crops_share_of_a_finetune_is_the_users_to_set(sample, tmp_path) -> None:
    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")  # a crop is added below
    parent = tmp_path / "p"
    train(sample, labels="ann", label_value=2, out=parent, **TINY)
    _annotate_free_crop(sample, tmp_path, lambda f: f > 0.0, "new")  # holds the structure
    shares = {}
    for f in (0.7, 0.35):
        out = tmp_path / f"c{f}"
        assert finetune(parent, sample, labels="ann", out=out, new_crop_fraction=f, **TINY).ok
        t = json.loads((out / "model.json").read_text())["training"]
        assert t["new_crop_fraction"] == f
        shares[f] = t["new_crop_share"]
    assert shares == {0.7: pytest.approx(0.7), 0.35: pytest.approx(0.35)}
    r = CliRunner().invoke(
        app,
        [
            "segment", "finetune", str(parent), str(sample), "--labels", "ann",
            "--out", str(tmp_path / "cli"), "--iterations", "2", "--patch", "8",
            "--batch-size", "1", "--device", "cpu", "--new-crop-fraction", "0.5",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    t = json.loads((tmp_path / "cli" / "model.json").read_text())["training"]
    assert t["new_crop_fraction"] == 0.5
    with pytest.raises(InputError, match="new_crop_fraction must be between 0 and 1"):
        finetune(parent, sample, labels="ann", out=tmp_path / "bad", new_crop_fraction=1.5, **TINY)
    assert not (tmp_path / "bad").exists()


def test_balanced_and_dice_losses_mask_unannotated_voxels() -> None:
    from curated.segment.train import segmentation_loss

    logits = torch.tensor([[5.0, -5.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    for kind in ("balanced-bce+dice", "bce+dice", "balanced-bce"):
        a = segmentation_loss(logits, target, mask, kind)
        b = segmentation_loss(torch.tensor([[5.0, -5.0, -9.0]]), target, mask, kind)
        assert float(a) == pytest.approx(float(b), abs=1e-6)  # the unannotated voxel does not count
        assert float(a) < 0.1
    with pytest.raises(InputError, match="loss must be one of"):
        train("x.ome.zarr", labels="a", label_value=1, out="m", loss="focal")


def test_class_weights_span_unweighted_to_equal_total_weight() -> None:
    from curated.segment.train import class_weights

    f = 0.05
    for b in (0.0, 0.25, 0.5, 1.0):
        w_fg, w_bg = class_weights(f, b)
        assert f * w_fg + (1 - f) * w_bg == pytest.approx(1.0)  # mean weight 1: same loss scale
        assert w_fg / w_bg == pytest.approx(((1 - f) / f) ** b)
    assert class_weights(f, 0.0) == (1.0, 1.0)
    w_fg, w_bg = class_weights(f, 1.0)
    assert f * w_fg == pytest.approx((1 - f) * w_bg)  # b = 1: each class the same total weight
    with pytest.raises(InputError, match="class_balance must be between 0 and 1"):
        train("x.ome.zarr", labels="a", label_value=1, out="m", class_balance=2.0)


def test_class_balance_warms_up_from_equal_weight_to_the_target() -> None:
    from curated.segment.train import TrainingSettings, class_balance_at

    s = TrainingSettings(iterations=200, class_balance=0.25, class_balance_warmup=0.5)
    b = [class_balance_at(s, i) for i in range(1, 201)]
    assert b[0] == 1.0  # starts at equal total weight per class
    assert all(x >= y for x, y in zip(b, b[1:], strict=False))  # never rises again
    assert b[100] == pytest.approx(0.25) and b[-1] == pytest.approx(0.25)
    assert b[50] == pytest.approx(1.0 - 0.75 * 50 / 100)
    # no warm-up, or nothing to warm up to: the target throughout
    assert (
        class_balance_at(TrainingSettings(class_balance=0.25, class_balance_warmup=0.0), 1) == 0.25
    )
    assert class_balance_at(TrainingSettings(class_balance=1.0, class_balance_warmup=0.5), 1) == 1.0
    with pytest.raises(InputError, match="class_balance_warmup must be between 0 and 1"):
        train("x.ome.zarr", labels="a", label_value=1, out="m", class_balance_warmup=1.5)


def test_the_training_loss_uses_the_warmed_up_weights(sample, tmp_path, monkeypatch) -> None:
    import importlib

    tr = importlib.import_module("curated.segment.train")  # the package re-exports train()
    seen: list[tuple[float, float]] = []
    real = tr.segmentation_loss

    def spy(logits, target, mask, kind, weights=(1.0, 1.0)):
        if logits.requires_grad:
            seen.append(tuple(weights))
        return real(logits, target, mask, kind, weights)

    monkeypatch.setattr(tr, "segmentation_loss", spy)
    kw = {**TINY, "iterations": 4}
    assert train(
        sample, labels="ann", label_value=2, out=tmp_path / "m", class_balance=0.0,
        class_balance_warmup=0.5, **kw,
    ).ok  # fmt: skip
    ratios = [fg / bg for fg, bg in seen]
    assert ratios[0] > ratios[1] > 1.0 and ratios[2] == ratios[3] == pytest.approx(1.0)
    m = json.loads((tmp_path / "m" / "model.json").read_text())
    assert m["training"]["class_balance_warmup"] == 0.5
    assert m["training"]["class_weights"] == {"foreground": 1.0, "background": 1.0}


def test_class_balance_is_recorded_and_a_finetune_keeps_the_parents(sample, tmp_path) -> None:
    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")  # a crop is added below
    parent = tmp_path / "p"
    assert train(sample, labels="ann", label_value=2, out=parent, class_balance=0.5, **TINY).ok
    pm = json.loads((parent / "model.json").read_text())
    assert pm["training"]["class_balance"] == 0.5
    w = pm["training"]["class_weights"]
    assert w["foreground"] > w["background"]
    annotate_from_truth(sample, crops=1, size=10, seed=21, name="ann")
    assert finetune(parent, sample, labels="ann", out=tmp_path / "c", **TINY).ok
    cm = json.loads((tmp_path / "c" / "model.json").read_text())
    assert cm["training"]["class_balance"] == 0.5


def test_batch_normalisation_is_fixed_at_prediction_so_tiles_equal_one_pass() -> None:
    cfg = UNetConfig.for_voxel_size((8, 8, 8), depth=2, base_features=2, norm="batch")
    net = UNet3D(cfg)
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) == 10
    torch.manual_seed(0)
    for m in net.modules():  # statistics as training would have left them, far from 0/1
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    net.eval()
    g = cfg.geometry
    x = torch.randn(1, 1, *g.input_for((16, 16, 16)))
    with torch.no_grad():
        whole = net(x)
        # the 8³ tile whose output starts one step in: its input starts one step in too
        s, n = g.step, g.input_for((8, 8, 8))
        tile_in = x[..., s[0] : s[0] + n[0], s[1] : s[1] + n[1], s[2] : s[2] + n[2]]
        tile = net(tile_in)
    assert torch.equal(tile, whole[..., s[0] : s[0] + 8, s[1] : s[1] + 8, s[2] : s[2] + 8])
    net.train()  # batch statistics while training: the same tile then differs
    with torch.no_grad():
        assert not torch.allclose(net(tile_in), tile)


def test_unknown_normalisation_is_a_clear_error_and_old_models_load_without_one(
    sample, tmp_path
) -> None:
    with pytest.raises(InputError, match="norm must be one of batch, none"):
        train(sample, labels="ann", label_value=2, out=tmp_path / "a", norm="group", **TINY)
    assert not (tmp_path / "a" / "weights.pt").exists()
    old = UNetConfig.for_voxel_size((8, 8, 8), depth=1).to_dict()
    del old["norm"]  # model.json written before the option existed
    assert UNetConfig.from_dict(old).norm == "none"


def test_depth_is_planned_from_the_voxel_size_for_the_field_of_view(sample, tmp_path) -> None:
    from curated.segment.defaults import FIELD_OF_VIEW_NM
    from curated.segment.unet import depth_for_voxel_size

    assert depth_for_voxel_size((8, 8, 8), FIELD_OF_VIEW_NM) == 2  # 41 voxels, 328 nm
    assert depth_for_voxel_size((50, 4.6, 4.6), FIELD_OF_VIEW_NM) == 3  # 89 voxels, 409 nm
    assert depth_for_voxel_size((50, 4.6, 4.6), 10_000, max_depth=4) == 4  # capped
    assert depth_for_voxel_size((8, 8, 8), 10) == 1
    # the sample fixture is 16 x 8 x 8 nm: depth 2 is the smallest reaching 320 nm
    out = tmp_path / "auto"
    train(sample, labels="ann", label_value=2, out=out, **{**TINY, "depth": None, "norm": "batch"})
    arch = json.loads((out / "model.json").read_text())["architecture"]
    assert arch["depth"] == 2 and arch["norm"] == "batch"
    assert arch["normalisation_layers"].startswith("batch normalisation")


def test_the_saved_bias_removes_the_class_weighting_prior_and_a_finetune_undoes_it_first(
    sample, tmp_path
) -> None:
    """Weighted cross-entropy moves every boundary outwards by log(w_fg / w_bg); the saved
    weights carry -log(w_fg / w_bg) in the output bias (the checkpoint keeps the raw one),
    and a fine-tune trains on the parent's raw logits, not on the adjusted ones."""
    import math

    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")
    parent = tmp_path / "p"
    assert train(sample, labels="ann", label_value=2, out=parent, class_balance=0.5, **TINY).ok
    pm = json.loads((parent / "model.json").read_text())["training"]
    w = pm["class_weights"]
    assert pm["logit_adjustment"] == pytest.approx(-math.log(w["foreground"] / w["background"]))
    assert pm["logit_adjustment"] < -0.1

    def head_bias(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        return float(state.get("model", state)["head.bias"][0])

    annotate_from_truth(sample, crops=1, size=10, seed=21, name="ann")
    child = tmp_path / "c"
    # a learning rate of ~0 leaves the bias where the fine-tune started
    assert finetune(
        parent, sample, labels="ann", out=child, learning_rate=1e-12, draws=1, **TINY
    ).ok
    cm = json.loads((child / "model.json").read_text())["training"]
    raw_parent = head_bias(parent / "weights.pt") - pm["logit_adjustment"]
    assert head_bias(child / "checkpoint.pt") == pytest.approx(raw_parent, abs=1e-6)
    assert head_bias(child / "weights.pt") == pytest.approx(
        raw_parent + cm["logit_adjustment"], abs=1e-6
    )
    # an unweighted loss has no prior to remove
    plain = tmp_path / "u"
    assert train(sample, labels="ann", label_value=2, out=plain, loss="bce+dice", **TINY).ok
    assert json.loads((plain / "model.json").read_text())["training"]["logit_adjustment"] == 0.0


def test_a_finetune_oversamples_only_new_crops_holding_the_structure_and_keeps_the_prior(
    sample, tmp_path
):
    """Fine-tuning shows new crops half of the time (the default share). A new crop without
    the structure is drawn by size instead (at 70 % it taught a model to find nothing); a new crop with
    less of it than annotated overall shifts the prior the network sees, and the saved
    bias adds logit(f_annotated) - logit(f_shown). Plain training adds nothing."""
    import math

    from curated.segment import _store

    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")
    parent = tmp_path / "p"
    assert train(sample, labels="ann", label_value=2, out=parent, **TINY).ok
    pm = json.loads((parent / "model.json").read_text())["training"]
    assert pm["sampling_prior_shift"] == 0.0 and pm["new_rois_without_structure"] is None
    ann = np.asarray(_store.label_level0(sample, "ann")[...])
    annotated = float(np.mean(ann[ann != 255] == 2))

    empty = _annotate_free_crop(sample, tmp_path, lambda f: f == 0.0, "empty")
    child = tmp_path / "c"
    res = finetune(parent, sample, labels="ann", out=child, **TINY)
    # by default the average of three fine-tunings, and it passes on what its draws warn
    assert res.ok and res.details["draws"] == DEFAULT_FINETUNE_DRAWS == 3
    # the curator hears that a crop without the structure can cost it elsewhere
    assert len(res.details["warnings"]) == 1
    assert "the new crop holds no voxel of label 2" in res.details["warnings"][0]
    assert "Warning:" in res.message and "annotate a crop that holds it" in res.message
    # a re-run that finds the work done says it again: the average, and a single fine-tuning
    # (what each draw of an average interrupted before its averaging finds)
    again = finetune(parent, sample, labels="ann", out=child, **TINY)
    assert again.status == "notneeded" and again.details["warnings"] == res.details["warnings"]
    one = finetune(parent, sample, labels="ann", out=tmp_path / "one", draws=1, **TINY)
    redo = finetune(parent, sample, labels="ann", out=tmp_path / "one", draws=1, **TINY)
    assert redo.status == "notneeded" and redo.details["warnings"] == one.details["warnings"]
    assert "Warning:" in redo.message
    cm = json.loads((child / "model.json").read_text())["training"]
    box = {"offset": list(empty), "shape": [10, 10, 10]}
    assert cm["new_rois"] == [box] and cm["new_rois_without_structure"] == [box]
    assert cm["sampling_prior_shift"] == 0.0  # drawn by size: the prior is the annotated one

    _annotate_free_crop(sample, tmp_path, lambda f: 0.0 < f < annotated / 3, "sparse")
    grandchild = tmp_path / "g"
    res = finetune(child, sample, labels="ann", out=grandchild, **TINY)
    assert res.ok and "warnings" not in res.details  # this new crop holds the structure
    gm = json.loads((grandchild / "model.json").read_text())["training"]
    assert gm["new_rois_without_structure"] == []
    assert gm["sampling_prior_shift"] > 0.3  # it showed less foreground than was annotated
    w = gm["class_weights"]
    assert gm["logit_adjustment"] == pytest.approx(
        -math.log(w["foreground"] / w["background"]) + gm["sampling_prior_shift"]
    )
    assert cm["new_crop_share"] == 0.0
    assert gm["new_crop_share"] == pytest.approx(DEFAULT_NEW_CROP_FRACTION)


def test_a_new_crop_without_the_structure_does_not_pass_its_share_to_the_others(sample, tmp_path):
    """Two new crops, one holding the structure: that one gets the share times its half of
    the new voxels, not the whole share (one small crop shown 70 % of the time, with a prior shift
    to match, made a fine-tuned model find almost nothing, benchmarks/hitl.py)."""
    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")
    parent = tmp_path / "p"
    assert train(sample, labels="ann", label_value=2, out=parent, **TINY).ok
    _annotate_free_crop(sample, tmp_path, lambda f: f == 0.0, "empty", size=8)
    _annotate_free_crop(sample, tmp_path, lambda f: f > 0.2, "dense", size=8)
    child = tmp_path / "c"
    res = finetune(parent, sample, labels="ann", out=child, **TINY)
    # one of the two new crops holds the structure: nothing to warn about
    assert res.ok and "warnings" not in res.details and "Warning" not in res.message
    cm = json.loads((child / "model.json").read_text())["training"]
    assert len(cm["new_rois"]) == 2 and len(cm["new_rois_without_structure"]) == 1
    assert cm["new_crop_share"] == pytest.approx(DEFAULT_NEW_CROP_FRACTION / 2)


def test_the_default_patch_is_planned_from_the_crops_and_recorded(sample, tmp_path) -> None:
    from curated.segment.train import planned_patch
    from curated.segment.unet import UNetConfig

    # 8 nm, depth 2: the shaded benchmark's 24 x 48 x 48 crops get a patch that covers one
    # (64 x 88 x 88 input, within the budget); 5 nm's depth 3 keeps the 24-voxel cube, whose
    # 104³ input is over it already; a patch reaches past the largest crop only by rounding
    geom8 = UNetConfig().geometry
    assert planned_patch(geom8, [(24, 48, 48)]) == (24, 48, 48)
    assert planned_patch(geom8, [(10, 10, 10), (12, 6, 6)]) == (12, 12, 12)
    geom5 = UNetConfig(
        depth=3,
        pools=((2, 2, 2),) * 3,
        kernels=((1, 1, 1), (3, 3, 3), (3, 3, 3), (3, 3, 3)),
    ).geometry
    assert planned_patch(geom5, [(64, 64, 64)]) == (24, 24, 24)
    # train() without a patch: the sample's 10³ crops (depth 1: outputs step by 2) give 10³
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    out = tmp_path / "m"
    r = train(sample, labels="ann", label_value=2, out=out, workspace=ws, **{**TINY, "patch": None})
    assert r.details["output_patch"] == [10, 10, 10]
    assert json.loads((out / "model.json").read_text())["training"]["output_patch"] == [10, 10, 10]
    logged = next(e for e in ws.log.entries() if e["action"] == "train")
    assert logged["details"]["output_patch"] == [10, 10, 10]
    # the same call again is the same run (the plan is part of what it was)
    again = train(sample, labels="ann", label_value=2, out=out, **{**TINY, "patch": None})
    assert again.status == "notneeded"


def test_a_finetune_with_draws_keeps_the_average_of_their_weights(sample, tmp_path) -> None:
    """``draws=2``: two fine-tunings (seeds s and s + 100) averaged into one model folder that
    loads and predicts like any other, one curator-log step whose files verify, the draws'
    folder removed, a re-run reports ``notneeded``, and a draw already finished before an
    interruption is not trained again."""
    from curated.segment.average import DRAW_SEED_STRIDE, draws_folder
    from curated.segment.modelio import load_state

    sample = shutil.copytree(sample, tmp_path / "cell.ome.zarr")
    parent = tmp_path / "p"
    assert train(sample, labels="ann", label_value=2, out=parent, **TINY).ok
    _annotate_free_crop(sample, tmp_path, lambda f: f > 0.0, "new")
    singles = []
    for s in (3, 3 + DRAW_SEED_STRIDE):
        out = tmp_path / f"single{s}"
        assert finetune(parent, sample, labels="ann", out=out, draws=1, **{**TINY, "seed": s}).ok
        singles.append(load_state(out / "weights.pt", None))
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    avg = tmp_path / "avg"
    r = finetune(
        parent, sample, labels="ann", out=avg, draws=2, workspace=ws, **{**TINY, "seed": 3}
    )
    assert r.ok and r.details["seeds"] == [3, 3 + DRAW_SEED_STRIDE]
    m = load_model(avg)  # sha256 checked
    state = load_state(avg / "weights.pt", m.sha256)
    for k, v in state.items():
        if v.is_floating_point():
            want = (singles[0][k].double() + singles[1][k].double()) / 2
            assert torch.allclose(v.double(), want, atol=1e-6), k
    meta = json.loads((avg / "model.json").read_text())
    assert meta["parent"]["sha256"] == load_model(parent).sha256
    assert meta["training"]["weight_average"]["seeds"] == [3, 3 + DRAW_SEED_STRIDE]
    assert len(meta["training"]["weight_average"]["members_sha256"]) == 2
    assert meta["id"] == f"avg@{m.sha256[:12]}" and meta["name"] == "avg"
    assert not draws_folder(avg).exists()
    steps = [e for e in ws.log.entries() if e["action"] == "finetune"]
    assert len(steps) == 1 and steps[0]["params"]["draws"] == 2
    assert ws.log.verify(files=True).ok
    again = finetune(
        parent, sample, labels="ann", out=avg, draws=2, workspace=ws, **{**TINY, "seed": 3}
    )
    assert again.status == "notneeded"
    for other in (3, 1):  # three draws, or draw 0 alone, is another model
        with pytest.raises(SegmentationError, match="a different model is already here"):
            finetune(parent, sample, labels="ann", out=avg, draws=other, **{**TINY, "seed": 3})
    # interrupted after its first draw: that draw is kept, the second is trained
    resumed = tmp_path / "resumed"
    first = draws_folder(resumed) / "d0"
    assert finetune(
        parent, sample, labels="ann", out=first, name="resumed", draws=1, **{**TINY, "seed": 3}
    ).ok
    r2 = finetune(parent, sample, labels="ann", out=resumed, draws=2, **{**TINY, "seed": 3})
    assert r2.ok and r2.details["draw_status"] == ["notneeded", "ok"]
    assert not draws_folder(resumed).exists()
    # the same draws give the same average as the uninterrupted run (deterministic on a CPU)
    assert load_model(resumed).sha256 == m.sha256
    cli = CliRunner().invoke(
        app,
        [
            "segment", "finetune", str(parent), str(sample), "--labels", "ann",
            "--out", str(tmp_path / "cli"), "--iterations", "2", "--patch", "8",
            "--batch-size", "1", "--device", "cpu", "--draws", "2",
        ],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    wa = json.loads((tmp_path / "cli" / "model.json").read_text())["training"]["weight_average"]
    assert wa["seeds"] == [0, DRAW_SEED_STRIDE]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="draws must be a whole number"):
            finetune(parent, sample, labels="ann", out=tmp_path / "bad", draws=bad, **TINY)
    assert not (tmp_path / "bad").exists()


def _striped_patches(tmp_path, swap_z: bool, voxel=(8.0, 8.0, 8.0)) -> list:
    """Patches a short training run draws from a volume striped along z (every plane uniform)."""
    from curated.images import write_ome_zarr
    from curated.segment.train import _TrainingLoop

    z = np.arange(24)
    stripes = np.where((z // 3) % 2 == 1, 220, 30).astype(np.uint8)
    raw = np.ascontiguousarray(np.broadcast_to(stripes[:, None, None], (24, 48, 48)))
    image = tmp_path / f"stripes-{swap_z}.ome.zarr"
    write_ome_zarr(raw, image, voxel_size=voxel, chunks=16)
    ann = np.full(raw.shape, 255, np.uint8)
    ann[8:16, 8:40, 8:40] = np.where(raw[8:16, 8:40, 8:40] > 100, 2, 1)
    add_labels(image, "ann", ann, kind="annotation")
    seen: list = []
    real = _TrainingLoop.sample

    def recording(self):
        raw_p, lab_p = real(self)
        seen.append((raw_p.copy(), lab_p.copy()))
        return raw_p, lab_p

    off = dict.fromkeys(
        ("gamma_p", "brightness_p", "contrast_p", "noise_p", "blur_p", "low_resolution_p",
         "gain_field_p", "intensity_scale", "intensity_shift"), 0,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_TrainingLoop, "sample", recording)
        train(
            image, labels="ann", label_value=2, out=tmp_path / f"m-{swap_z}",
            **{**TINY, "patch": (6, 12, 12), "iterations": 16},
            preprocessing={"local_contrast_sigma": 0.0},
            augmentation={**off, "flips": False, "swap_z": swap_z},
        )  # fmt: skip
    return seen


def test_isotropic_training_turns_structures_along_z_into_the_plane(tmp_path) -> None:
    from curated.segment.train import Augmentation, z_swap_axes

    seen = _striped_patches(tmp_path, swap_z=True)
    in_shape, out_shape = seen[0][0].shape, seen[0][1].shape
    assert out_shape == (6, 12, 12) and in_shape[0] < in_shape[1] == in_shape[2]
    ctx = (in_shape[0] - out_shape[0]) // 2
    turned = 0
    for raw_p, lab_p in seen:
        # every patch has the shapes the network takes, whichever way it was read
        assert raw_p.shape == in_shape and lab_p.shape == out_shape
        # raw and labels turned together: each annotated voxel's label is its own grey level's
        centre = raw_p[ctx:-ctx, ctx:-ctx, ctx:-ctx]
        annotated = lab_p != 255
        assert annotated.sum() > 0
        assert np.array_equal((lab_p == 2)[annotated], (centre > 0)[annotated])
        varies = [bool(np.ptp(raw_p, axis=a).max() > 0) for a in range(3)]
        turned += not varies[0]  # the stripes now run across an in-plane axis, not z
    assert 0 < turned < len(seen)  # z stays z for about a third of the patches
    # off, or where z is the coarse axis, every patch keeps z along z
    for raw_p, _ in _striped_patches(tmp_path, swap_z=False):
        assert np.ptp(raw_p, axis=0).max() > 0
    on = Augmentation(swap_z=True)
    assert z_swap_axes((8, 8, 8), (46, 52, 52), on) == (0, 1, 2)
    assert z_swap_axes((50, 4.6, 4.6), (26, 52, 52), on) == ()
    assert z_swap_axes((8, 8, 8), (52, 52, 52), on) == ()  # transposes do it already
    assert z_swap_axes((8, 8, 8), (46, 52, 52), Augmentation(transposes=False, swap_z=True)) == ()
    assert z_swap_axes((8, 8, 8), (46, 52, 52), Augmentation()) == ()  # off by default


def test_pointwise_convolutions_are_matrix_products_with_conv3d_parameters() -> None:
    """1×1×1 convolutions run as a channel matrix product (oneDNN was slower on two threads
    than on one for them) yet keep nn.Conv3d's parameters: weights saved before load, and
    the output equals the convolution's."""
    from curated.segment.train import network_config
    from curated.segment.unet import PointwiseConv3d

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(4, 3, 1)
    pw = PointwiseConv3d(4, 3)
    pw.load_state_dict(conv.state_dict())  # the same keys and shapes
    x = torch.randn(2, 4, 5, 6, 7)
    assert torch.allclose(pw(x), conv(x), atol=1e-6)
    no_bias = PointwiseConv3d(4, 3, bias=False)
    assert no_bias.bias is None and "bias" not in no_bias.state_dict()
    # a 5 nm plan's pointwise top level uses it; gradients flow as through a convolution
    net = UNet3D(network_config((5.0, 5.0, 5.0), None, 8, "batch"))
    kinds = {type(m).__name__ for m in net.modules() if isinstance(m, torch.nn.Conv3d)}
    assert kinds == {"Conv3d", "PointwiseConv3d"}
    y = pw(x.requires_grad_(True)).sum()
    y.backward()
    assert (
        x.grad is not None
        and pw.weight.grad is not None
        and pw.weight.grad.shape == (3, 4, 1, 1, 1)
    )


def test_a_finetune_on_other_voxels_than_the_parents_is_warned_about(sample, tmp_path) -> None:
    """Fine-tuning keeps the parent's network and normalisation, planned for its voxels; on
    an image 2.5x coarser in x it trained without a word. It now warns, in the result and in
    the model's record (so a re-run that finds it done says the same)."""
    parent = tmp_path / "p"
    train(sample, labels="ann", label_value=2, out=parent, **TINY)
    other = tmp_path / "other.ome.zarr"
    make_fibsem_sample(other, shape=SHAPE, voxel_size=(16, 8, 20), seed=3)
    annotate_from_truth(other, crops=2, size=10, seed=1, name="ann")
    r = finetune(parent, other, labels="ann", out=tmp_path / "c", draws=1, **TINY)
    assert r.ok
    (w,) = r.details["warnings"]
    assert w.startswith("the parent model was trained on 16 × 8 × 8 nm voxels")
    assert "2.5× coarser along x" in w and "Warning: the parent model" in r.message
    again = finetune(parent, other, labels="ann", out=tmp_path / "c", draws=1, **TINY)
    assert again.status == "notneeded" and again.details["warnings"] == [w]
