"""0/255 masks (ImageJ, EM challenge data): ``--map 255=1`` on ``labels add`` and ``annotate import``.

255 means "not annotated" to ``curated annotate`` and ``curated segment train``; a binary
mask saved as 0/255 must have its 255 rewritten on the way in, the source left untouched,
and a mask added without the map must say so instead of failing later.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, SegmentationError
from curated.images import add_labels, open_image, validate_ome_zarr, write_ome_zarr
from curated.images.downsample import mode
from curated.images.labels import parse_value_map, remap_values
from curated.segment import UNANNOTATED, _store, annotate_from_truth, import_annotation

SHAPE = (16, 40, 40)


@pytest.fixture
def image(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8)
    write_ome_zarr(vol, tmp_path / "img.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16)
    return tmp_path / "img.ome.zarr"


def _mask() -> np.ndarray:
    """A 0/255 mask: one block of structure covering a third of the volume's x extent."""
    m = np.zeros(SHAPE, np.uint8)
    m[:, :, :14] = 255
    return m


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_0_255_mask_mapped_on_the_way_in_trains_from_its_crops(image, tmp_path) -> None:
    f = tmp_path / "mask.tif"
    tifffile.imwrite(f, _mask(), photometric="minisblack")
    before = _sha(f)
    args = ["labels", "add", str(image), "--name", "truth", "--from", str(f), "--kind", "truth"]
    r = CliRunner().invoke(app, [*args, "--map", "255=1", "--class-name", "1=mito", "--json"])
    assert r.exit_code == 0, r.output
    assert _sha(f) == before  # the source is only read
    lab = open_image(image).open_label("truth")
    np.testing.assert_array_equal(lab.levels[0][:], (_mask() == 255).astype(np.uint8))
    for k in range(1, len(lab.levels)):  # the pyramid is built from the mapped values
        f_k = tuple(round(a / b) for a, b in zip(lab.scale[k], lab.scale[k - 1], strict=True))
        np.testing.assert_array_equal(lab.levels[k][:], mode(lab.levels[k - 1][:], f_k))
    assert lab.attrs["curated"]["value_map"] == {"255": 1}
    assert "255→1" in r.output
    assert validate_ome_zarr(image) == []
    # the curator's crops now hold the structure as label 1, not as "unannotated"
    annotate_from_truth(image, crops=2, size=8, seed=0, name="ann", region="x<0.3")
    ann = _store.label_level0(image, "ann")[...]
    assert np.count_nonzero(ann == 1) == 2 * 8**3


def test_a_0_255_mask_without_the_map_says_how_to_fix_it(image, tmp_path) -> None:
    f = tmp_path / "mask.tif"
    tifffile.imwrite(f, _mask(), photometric="minisblack")
    r = add_labels(image, "truth", f, kind="truth")
    assert "--map 255=1" in r.message and "value_map" not in r.details["curated"]
    assert "values" not in r.details  # the value list stays out of the result
    # a model's output may use any value: no hint
    p = add_labels(image, "pred", f, kind="prediction", ai_generated=True)
    assert "--map" not in p.message
    # from-truth refuses a crop holding 255 and names the fix
    with pytest.raises(SegmentationError, match="--map 255=1"):
        annotate_from_truth(image, truth="truth", crops=1, size=8, seed=0, region="x<0.3")
    assert "annotations" not in _store.label_names(image)


def test_value_maps_swap_widen_and_refuse_nonsense(image) -> None:
    lab = np.zeros(SHAPE, np.uint8)
    lab[:4], lab[4:8] = 1, 2
    r = add_labels(image, "swapped", lab, value_map={1: 2, 2: 1})
    got = open_image(image).open_label("swapped").levels[0][:]
    assert np.all(got[:4] == 2) and np.all(got[4:8] == 1) and np.all(got[8:] == 0)
    assert r.details["curated"]["value_map"] == {"1": 2, "2": 1}
    wide = add_labels(image, "wide", lab, value_map={2: 1000})
    assert wide.details["dtype"] == "uint16"
    assert int(open_image(image).open_label("wide").levels[0][:].max()) == 1000
    assert parse_value_map(["255=1", " 255 = 1 "]) == {255: 1}
    assert parse_value_map(["-1=255"]) == {-1: 255}  # an "ignore" label of -1
    for bad in (["255"], ["a=1"], ["1=-2"], ["255=1", "255=2"]):
        with pytest.raises(InputError):
            parse_value_map(bad)
    bad_cli = CliRunner().invoke(
        app, ["labels", "add", str(image), "--name", "x", "--from", "nowhere.tif", "--map", "2"]
    )
    assert bad_cli.exit_code != 0 and "OLD=NEW" in bad_cli.output
    assert "x" not in open_image(image).label_names()
    np.testing.assert_array_equal(
        remap_values(np.array([3, 255, 0]), {255: 1}, np.uint8), [3, 1, 0]
    )


def test_an_imported_0_255_crop_is_mapped_or_flagged(image, tmp_path) -> None:
    crop = np.zeros((4, 8, 8), np.uint8)
    crop[:, :4] = 255
    f = tmp_path / "fiji.tif"
    tifffile.imwrite(f, crop, photometric="minisblack")
    plain = import_annotation(image, source_file=f, offset=(0, 0, 0), name="a")
    assert "--map 255=1" in plain.message
    assert plain.details["annotated_voxels"] == int((crop == 0).sum())
    r = CliRunner().invoke(
        app,
        ["annotate", "import", str(image), "--from", str(f), "--offset", "0", "0", "0"]
        + ["--name", "b", "--map", "255=1", "--json"],
    )
    assert r.exit_code == 0, r.output
    b = _store.label_level0(image, "b")[...]
    assert np.all(b[:4, :4, :8] == 1) and np.all(b[:4, 4:8, :8] == 0)
    assert np.all(b[4:] == UNANNOTATED)


def test_an_instance_segmentation_becomes_one_class_and_is_never_wrapped(image, tmp_path) -> None:
    inst = np.zeros(SHAPE, np.uint16)
    for i in range(20):  # twenty objects with ids 300, 310, ... (beyond uint8)
        inst[2:12, 2 * i : 2 * i + 1, 2:30] = 300 + 10 * i
    f = tmp_path / "instances.tif"
    tifffile.imwrite(f, inst, photometric="minisblack")
    add_labels(image, "inst", f, kind="truth")
    # copying crops of ids above 254 into a uint8 annotation is refused, not wrapped (300 → 44)
    with pytest.raises(SegmentationError, match="nonzero=1"):
        annotate_from_truth(image, truth="inst", crops=1, size=8, seed=0, region="x<0.5", name="a")
    assert "a" not in _store.label_names(image)
    r = CliRunner().invoke(
        app,
        ["labels", "add", str(image), "--name", "inst", "--from", str(f), "--kind", "truth"]
        + ["--overwrite", "--map", "nonzero=1", "--map", "310=2"],
    )
    assert r.exit_code == 0, r.output
    got = open_image(image).open_label("inst").levels[0][:]
    want = np.where(inst == 310, 2, (inst > 0).astype(np.uint16))
    np.testing.assert_array_equal(got, want)
    assert open_image(image).open_label("inst").attrs["curated"]["value_map"] == {
        "310": 2,
        "nonzero": 1,
    }
    # ids below 255 copy fine, but twenty of them in the crops get a hint
    small = (inst // 10 - 29).astype(np.uint8) * (inst > 0)
    add_labels(image, "small", small, kind="truth")
    note = annotate_from_truth(image, truth="small", crops=1, size=(8, 40, 40), seed=0, name="b")
    assert "instance segmentation" in note.message and "nonzero=1" in note.message
    assert parse_value_map(["nonzero=1", "0=0"]) == {"nonzero": 1, 0: 0}


def test_training_on_instance_ids_is_refused_not_wrapped(image, tmp_path) -> None:
    from curated.segment import train

    inst = np.zeros(SHAPE, np.uint16)
    inst[4:12, 5:15, 5:15] = 1
    inst[4:12, 20:30, 20:30] = 257  # would wrap to 1, the label value, in uint8
    add_labels(image, "inst", inst, kind="truth")
    with pytest.raises(SegmentationError, match="nonzero=1"):
        train(image, labels="inst", label_value=1, out=tmp_path / "m", iterations=1)
    assert not (tmp_path / "m" / "weights.pt").exists()


def test_remapping_a_block_needs_no_wide_temporaries() -> None:
    """Label shards are up to 512³ voxels: a map must not build int64 indices per voxel (8×)."""
    import tracemalloc

    block = np.random.default_rng(0).integers(0, 3, (64, 256, 256), dtype=np.uint8)
    for vm in ({255: 1}, {"nonzero": 1, 2: 5}):
        tracemalloc.start()
        out = remap_values(block, vm, np.uint8)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1.5 * block.nbytes, (vm, peak)
        assert out.dtype == np.uint8


def test_float_masks_are_stored_as_integers_and_probability_maps_refused(image, tmp_path) -> None:
    """A float32 0.0/1.0 mask (what numpy and Fiji's 32-bit results give) is a label
    volume; a probability map, a NaN or a resampled (blurred) mask is not."""
    mask = np.zeros(SHAPE, np.float32)
    mask[:, :, :14] = 1.0
    f = tmp_path / "mask.tif"
    tifffile.imwrite(f, mask, photometric="minisblack")
    r = add_labels(image, "truth", f, kind="truth")
    assert r.details["dtype"] == "uint8" and r.details["curated"]["cast_from"] == "float32"
    assert "float32" in r.message
    np.testing.assert_array_equal(open_image(image).open_label("truth").levels[0][:], mask)
    big = mask * 300  # values beyond uint8 widen the stored type
    assert add_labels(image, "big", big, kind="truth").details["dtype"] == "uint16"
    for bad, shown in ((0.5, "0.5 at z,y,x 3, 7, 20"), (np.nan, "nan at z,y,x 3, 7, 20")):
        prob = mask.copy()
        prob[3, 7, 20] = bad
        with pytest.raises(
            InputError,
            match=f"1 voxel of these float32 labels is not a whole number \\(e.g. {shown}\\)",
        ):
            add_labels(image, "prob", prob, kind="truth")
        assert "prob" not in _store.label_names(image)
        assert not (image / "labels" / "prob").exists()


def test_negative_ignore_labels_must_be_mapped(image, tmp_path) -> None:
    """-1 is "ignore" in many training sets; stored label values are ≥ 0, so it is mapped
    (to 255, curated's "not annotated") instead of wrapping silently to 255 or 254."""
    lab = np.full(SHAPE, -1, np.int16)
    lab[:8] = 0
    lab[2:6, 10:20, 10:20] = 1
    lab[0, 0, 0] = -2
    f = tmp_path / "ignore.npy"
    np.save(f, lab)
    before = _sha(f)
    args = ["labels", "add", str(image), "--name", "ann", "--from", str(f)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0
    assert "-2 in 1 voxels, -1 in" in refused.output and "--map=-2=255" in refused.output
    assert "ann" not in _store.label_names(image)
    ok = CliRunner().invoke(app, [*args, "--map=-1=255", "--map", "-2=0", "--json"])
    assert ok.exit_code == 0, ok.output
    assert "not annotated' to annotate" not in ok.output  # 255 was asked for: no 0/255 hint
    got = open_image(image).open_label("ann")
    assert got.levels[0].dtype == np.uint8
    want = np.where(lab == -1, 255, np.where(lab == -2, 0, lab)).astype(np.uint8)
    np.testing.assert_array_equal(got.levels[0][:], want)
    assert got.attrs["curated"]["value_map"] == {"-1": 255, "-2": 0}
    assert got.attrs["curated"]["cast_from"] == "int16"
    assert _sha(f) == before
    # signed labels without negative values need no map and are stored unsigned
    assert add_labels(image, "pos", np.abs(lab), kind="truth").details["dtype"] == "uint8"


def test_training_refuses_negative_labels_instead_of_wrapping_them(image) -> None:
    """A label image written by another tool straight into the store can still be signed:
    -1 would be read as 255 ("not annotated") and -2 as 254, a class."""
    from curated.segment.train import _read_labels

    lab = np.zeros((4, 8, 8), np.int16)
    lab[0, 0, 0] = -2
    with pytest.raises(SegmentationError, match=r"negative values \(down to -2\).*--map=-1=255"):
        _read_labels(lab, (0, 0, 0), (4, 8, 8))
    np.testing.assert_array_equal(_read_labels(np.abs(lab), (0, 0, 0), (4, 8, 8)), np.abs(lab))


def test_imported_float_and_ignore_label_crops(image, tmp_path) -> None:
    """A crop saved as float32 0.0/1.0 imports as labels; -1 ("ignore") is refused with the
    map that fixes it, and imports as not annotated with that map."""
    crop = np.zeros((4, 8, 8), np.float32)
    crop[:, :4] = 1.0
    np.save(tmp_path / "f.npy", crop)
    import_annotation(image, source_file=tmp_path / "f.npy", offset=(0, 0, 0), name="a")
    np.testing.assert_array_equal(_store.label_level0(image, "a")[:4, :8, :8], crop)
    crop[0, 0, 0] = 0.5
    np.save(tmp_path / "p.npy", crop)
    with pytest.raises(InputError, match="1 voxels .* not whole numbers"):
        import_annotation(image, source_file=tmp_path / "p.npy", offset=(4, 0, 0), name="a")
    ign = np.ones((4, 8, 8), np.int16)
    ign[:, 4:] = -1
    np.save(tmp_path / "i.npy", ign)
    with pytest.raises(InputError, match="--map=-1=255"):
        import_annotation(image, source_file=tmp_path / "i.npy", offset=(4, 0, 0), name="a")
    import_annotation(
        image, source_file=tmp_path / "i.npy", offset=(4, 0, 0), name="a", value_map={-1: 255}
    )
    got = _store.label_level0(image, "a")[4:8, :8, :8]
    assert np.all(got[:, :4] == 1) and np.all(got[:, 4:] == UNANNOTATED)


def test_the_value_check_reads_bounded_regions(image, monkeypatch) -> None:
    """Checking a float or signed source reads it in regions of a bounded size (a 20k² plane
    is 1.6 GB of float32), and reports the offending voxel's position in the whole volume."""
    from curated.images import labels as labels_mod

    monkeypatch.setattr(labels_mod, "_SCAN_BYTES", 4096)
    src = labels_mod._labels_source(np.zeros(SHAPE, np.float32))
    sizes = []
    read = src.read
    monkeypatch.setattr(
        src, "read", lambda region: sizes.append(read(region).nbytes) or read(region)
    )
    src.array[11, 33, 27] = 2.5
    scan = labels_mod._source_values(src)
    assert max(sizes) <= 4096 and sum(sizes) == np.prod(SHAPE) * 4
    assert scan["bad"] == 1 and scan["example"] == (2.5, (11, 33, 27))
