"""Label images: same levels as the image, mode downsampling, integer type, image-label, curated mark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError
from curated.images import (
    add_labels,
    create_label_image,
    finalize_label_image,
    open_image,
    validate_ome_zarr,
    write_ome_zarr,
)
from curated.images.downsample import mode
from curated.provenance.digest import digest_tree


@pytest.fixture(params=["0.5", "0.4"])
def image(tmp_path, request):
    vol = np.random.default_rng(0).integers(0, 255, (18, 40, 34), dtype=np.uint8)
    write_ome_zarr(
        vol,
        tmp_path / "img.ome.zarr",
        voxel_size=(8, 4, 4),
        chunks=8,
        shard=16,
        ngff_version=request.param,
    )
    return open_image(tmp_path / "img.ome.zarr")


def _blobs(shape) -> np.ndarray:
    z, y, x = np.indices(shape)
    lab = np.zeros(shape, np.uint16)
    lab[((z - 9) ** 2 + (y - 12) ** 2 + (x - 10) ** 2) < 36] = 1
    lab[((z - 6) ** 2 + (y - 28) ** 2 + (x - 24) ** 2) < 25] = 7
    return lab


def test_labels_have_the_image_levels_and_mode_pyramid(image):
    lab = _blobs(image.shape)
    res = add_labels(image, "cells", lab, kind="truth")
    assert res.status == "ok"
    assert res.details["store_digest"] == digest_tree(image.path / "labels" / "cells").digest
    assert validate_ome_zarr(image.path) == []
    assert image.label_names() == ["cells"]
    labels = image.open_label("cells")
    assert [lv.shape for lv in labels.levels] == [lv.shape for lv in image.levels]
    assert labels.scale == image.scale and labels.translation == image.translation
    np.testing.assert_array_equal(labels.levels[0][:], lab)
    # level k = mode of level k-1 over the same windows as the image (never a mean: no new values)
    for k in range(1, len(labels.levels)):
        f = tuple(round(a / b) for a, b in zip(labels.scale[k], labels.scale[k - 1], strict=True))
        np.testing.assert_array_equal(labels.levels[k][:], mode(labels.levels[k - 1][:], f))
        assert set(np.unique(labels.levels[k][:])) <= {0, 1, 7}
    il = labels.ome["image-label"]
    assert il["source"]["image"] == "../../"
    assert {c["label-value"] for c in il["colors"]} == {0, 1, 7}
    assert labels.attrs["curated"] == {
        "kind": "truth",
        "origin": "human",
        "ai_generated": False,
        "model": None,
    }


def test_ai_generated_labels_carry_the_model(image):
    model = {
        "id": "unet-mito-v1",
        "sha256": "ab" * 32,
        "card": "derived/models/unet-mito-v1/model.json",
    }
    add_labels(
        image,
        "pred",
        _blobs(image.shape).astype(np.uint8),
        kind="prediction",
        ai_generated=True,
        model=model,
        properties=[{"label-value": 1, "class": "mitochondrion"}],
    )
    labels = image.open_label("pred")
    assert labels.attrs["curated"] == {
        "kind": "prediction",
        "origin": "model-prediction",
        "ai_generated": True,
        "model": model,
    }
    assert labels.ome["image-label"]["properties"] == [{"label-value": 1, "class": "mitochondrion"}]
    assert validate_ome_zarr(image.path) == []


def test_labels_from_files_via_cli(tmp_path, image):
    lab = _blobs(image.shape)
    np.save(tmp_path / "l.npy", lab)
    tifffile.imwrite(tmp_path / "l.tif", lab, photometric="minisblack")
    r1 = CliRunner().invoke(
        app, ["labels", "add", str(image.path), "--name", "a", "--from", str(tmp_path / "l.npy")]
    )
    r2 = CliRunner().invoke(
        app,
        [
            "labels",
            "add",
            str(image.path),
            "--name",
            "b",
            "--from",
            str(tmp_path / "l.tif"),
            "--ai-generated",
            "--model",
            "m-1",
        ],
    )
    assert r1.exit_code == 0, r1.output
    assert r2.exit_code == 0, r2.output
    assert image.label_names() == ["a", "b"]
    b = image.open_label("b")
    np.testing.assert_array_equal(b.levels[0][:], lab)
    assert b.attrs["curated"] == {
        "kind": "prediction",
        "origin": "model-prediction",
        "ai_generated": True,
        "model": {"id": "m-1", "sha256": None, "card": None},
    }
    again = CliRunner().invoke(
        app, ["labels", "add", str(image.path), "--name", "a", "--from", str(tmp_path / "l.npy")]
    )
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert validate_ome_zarr(image.path) == []


def test_label_shape_mismatch_and_fractional_labels_are_refused(image):
    with pytest.raises(InputError, match="must match"):
        add_labels(image, "x", np.zeros((3, 4, 5), np.uint8))
    with pytest.raises(InputError, match="not a whole number"):
        add_labels(image, "x", np.full(image.shape, 0.25, np.float32))
    assert image.label_names() == []
    assert not (image.path / "labels" / "x").exists()


def test_blockwise_labels_stay_unfinished_until_finalized(image):
    lab = _blobs(image.shape).astype(np.uint8)
    arr = create_label_image(
        image, "stream", dtype="uint8", kind="prediction", ai_generated=True, model="m"
    )
    block = arr.shards or arr.chunks
    assert tuple(arr.chunks) == tuple(image.levels[0].chunks)
    for z in range(0, lab.shape[0], block[0]):  # whole shards per write
        arr[z : z + block[0]] = lab[z : z + block[0]]
    assert "stream" not in image.label_names()
    assert validate_ome_zarr(image.path) == []  # an unfinished label image is not listed
    # the same call on an unfinished label image resumes it
    again = create_label_image(
        image, "stream", dtype="uint8", kind="prediction", ai_generated=True, model="m"
    )
    np.testing.assert_array_equal(again[:], lab)
    res = finalize_label_image(image, "stream")
    assert res.status == "ok"
    assert "stream" in image.label_names()
    labels = image.open_label("stream")
    np.testing.assert_array_equal(labels.levels[0][:], lab)
    assert len(labels.levels) == len(image.levels)
    assert labels.attrs["curated"]["ai_generated"] is True
    assert validate_ome_zarr(image.path) == []
    # the digest was combined from what the shard tasks hashed and what predict wrote itself
    assert res.details["store_digest"] == digest_tree(image.path / "labels" / "stream").digest
    assert finalize_label_image(image, "stream").status == "notneeded"


def test_labels_from_a_dataset_inside_an_hdf5_file(tmp_path, image):
    """CREMI / MitoEM style: labels are one dataset of an HDF5 file named FILE.h5:/key."""
    import h5py

    from curated.workspace import Workspace

    lab = _blobs(image.shape).astype(np.uint8)
    f = tmp_path / "sample.h5"
    with h5py.File(f, "w") as h5:
        h5["volumes/labels/mito"] = lab
        h5["volumes/raw"] = np.zeros(image.shape, np.uint8)
    ws = Workspace.create(tmp_path / "ws", record={})
    r = add_labels(image, "mito", f"{f}:/volumes/labels/mito", kind="truth", workspace=ws)
    assert r.status == "ok"
    np.testing.assert_array_equal(image.open_label("mito").levels[0][:], lab)
    step = list(ws.log.entries())[-1]
    # the container file is hashed as the input, the dataset named in the parameters
    assert [Path(i["path"]).name for i in step["inputs"]] == ["sample.h5"]
    assert step["inputs"][0]["digest"].startswith("sha256:")
    assert step["params"]["source_key"] == "/volumes/labels/mito"
    with pytest.raises(InputError, match="no such dataset"):
        add_labels(image, "x", f"{f}:/volumes/nope", kind="truth")
    with pytest.raises(InputError, match="names one|name one"):
        add_labels(image, "x", f, kind="truth")
    assert "x" not in image.label_names()


def test_labels_from_plain_zarr_arrays_and_groups(tmp_path, image):
    """A bare Zarr v3 or v2 array, or one array of a group: not mistaken for an OME-Zarr image."""
    import zarr

    lab = _blobs(image.shape).astype(np.uint8)
    for fmt in (3, 2):
        arr = zarr.create_array(
            tmp_path / f"v{fmt}.zarr",
            shape=lab.shape,
            dtype="u1",
            chunks=(8, 8, 8),
            zarr_format=fmt,
        )
        arr[:] = lab
        add_labels(image, f"v{fmt}", tmp_path / f"v{fmt}.zarr", kind="truth")
        np.testing.assert_array_equal(image.open_label(f"v{fmt}").levels[0][:], lab)
    grp = zarr.open_group(tmp_path / "g.zarr", mode="w")
    grp.create_array("volumes/labels/mito", shape=lab.shape, dtype="u1", chunks=(8, 8, 8))[:] = lab
    with pytest.raises(InputError, match="/volumes/labels/mito"):  # the nested array is named
        add_labels(image, "g", tmp_path / "g.zarr", kind="truth")
    add_labels(image, "g", f"{tmp_path / 'g.zarr'}:/volumes/labels/mito", kind="truth")
    np.testing.assert_array_equal(image.open_label("g").levels[0][:], lab)


def test_values_without_a_class_name_are_pointed_out(image):
    """A real label folder held a few anti-aliased values (53, 223) beside its mask: when the
    curator names the classes, the values left unnamed are listed in the result."""
    lab = np.zeros(image.shape, np.uint8)
    lab[..., :3] = 1
    lab.reshape(-1)[:2] = 53
    named = [{"label-value": 1, "name": "mitochondrion"}]
    r = add_labels(image, "t", lab, kind="truth", properties=named)
    assert r.message.endswith("values without a class name: 53")
    lab[lab == 53] = 0
    assert (
        "without a class name"
        not in add_labels(image, "u", lab, kind="truth", properties=named).message
    )
    assert (
        "without a class name" not in add_labels(image, "v", lab, kind="truth").message
    )  # none named


def _zarr_python_image(path: Path, vol: np.ndarray) -> None:
    """An OME-Zarr 0.5 image as zarr-python (and so ome-zarr-py) writes one by default: unsharded
    Zarr v3 arrays, chunk keys under ``c/``."""
    import zarr

    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.create_array("s0", data=vol, chunks=(8, 16, 16))
    root.create_array("s1", data=vol[::2, ::2, ::2], chunks=(8, 16, 16))
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    datasets = [
        {
            "path": p,
            "coordinateTransformations": [
                {"type": "scale", "scale": [8.0 * f] * 3},
                {"type": "translation", "translation": [4.0 * (f - 1)] * 3},
            ],
        }
        for p, f in (("s0", 1), ("s1", 2))
    ]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": datasets}]}


def test_unsharded_zarr_v3_is_readable_by_zarr_python(tmp_path) -> None:
    """Chunks of an unsharded v3 store sit under ``c/`` (the default key encoding): written
    without it, every reader saw the fill value; a label image added to an image another tool
    wrote (unsharded, as ome-zarr-py does) was all zero."""
    import zarr

    vol = np.random.default_rng(1).integers(1, 255, (18, 40, 34), dtype=np.uint8)
    out = tmp_path / "flat.ome.zarr"
    write_ome_zarr(vol, out, voxel_size=(8, 4, 4), chunks=8, shard=None)
    assert np.array_equal(zarr.open_array(out / "0", mode="r")[...], vol)
    img = open_image(out)
    assert img.levels[0].shards is None and np.array_equal(np.asarray(img.levels[0][...]), vol)
    assert np.array_equal(zarr.open_array(out / "1", mode="r")[...], np.asarray(img.levels[1]))
    assert np.asarray(img.levels[1][...]).any()

    other = tmp_path / "other.ome.zarr"
    _zarr_python_image(other, vol)
    ann = np.full(vol.shape, 255, np.uint8)
    ann[4:12, 8:30, 6:26] = _blobs((8, 22, 20))
    add_labels(other, "ann", ann, kind="annotation")
    assert np.array_equal(zarr.open_array(other / "labels" / "ann" / "s0", mode="r")[...], ann)
    back = open_image(other / "labels" / "ann")
    assert np.array_equal(np.asarray(back.levels[0][...]), ann)
    assert validate_ome_zarr(other / "labels" / "ann") == []
    # written block by block (as prediction does), the pyramid below level 0 is readable too
    pred = create_label_image(other, "pred", dtype="uint8")
    pred[...] = (vol > 128).astype(np.uint8)
    finalize_label_image(other, "pred")
    low = zarr.open_array(other / "labels" / "pred" / "s1", mode="r")[...]
    assert np.array_equal(low, np.asarray(open_image(other / "labels" / "pred").levels[1][...]))
    assert low.any()
    # a label image an earlier version wrote (chunks beside c/, not in it) is pointed out
    old = other / "labels" / "pred" / "s0"
    for f in sorted((old / "c").rglob("*")):
        if f.is_file():
            dest = old / f.relative_to(old / "c")
            dest.parent.mkdir(parents=True, exist_ok=True)
            f.rename(dest)
    problems = validate_ome_zarr(other)
    assert any("labels/pred: level s0: chunk objects outside c/" in p for p in problems), problems


def test_an_interrupted_label_image_is_named_as_such_not_as_a_conversion(image):
    # an unfinished label image (another writer's plan) under the name labels add asks for
    create_label_image(image, "cells", dtype="uint8")
    with pytest.raises(InputError) as err:
        add_labels(image, "cells", _blobs(image.shape).astype(np.uint8), kind="truth")
    msg = str(err.value)
    assert "unfinished label image (labels add)" in msg and "conversion" not in msg
    assert "--overwrite" in msg
