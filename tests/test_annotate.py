"""Sparse annotations: emulated curator crops, imported crops, the 255 = unannotated convention."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, SegmentationError
from curated.segment import (
    UNANNOTATED,
    _store,
    annotate_from_truth,
    import_annotation,
    make_fibsem_sample,
    read_annotation_rois,
)
from curated.segment.annotate import parse_region

SHAPE = (16, 48, 48)


@pytest.fixture
def image(tmp_path):
    dest = tmp_path / "cell.ome.zarr"
    make_fibsem_sample(dest, shape=SHAPE, voxel_size=(16, 8, 8), seed=0)
    return dest


def test_curator_crops_copy_truth_and_leave_the_rest_unannotated(image) -> None:
    r = annotate_from_truth(image, crops=3, size=8, seed=1, name="ann")
    truth = _store.label_level0(image, "truth")[...]
    ann = _store.label_level0(image, "ann")[...]
    rois = read_annotation_rois(image, "ann")
    assert len(rois) == 3 and r.details["annotated_voxels"] == 3 * 8**3
    mask = np.zeros(SHAPE, bool)
    for roi in rois:
        sl = tuple(slice(o, o + s) for o, s in zip(roi["offset"], roi["shape"], strict=True))
        mask[sl] = True
    assert np.array_equal(ann[mask], truth[mask])
    assert np.all(ann[~mask] == UNANNOTATED)
    attrs = _store.label_curated_attrs(image, "ann")
    assert attrs["kind"] == "annotation" and attrs["annotation"]["unannotated"] == UNANNOTATED
    props = _store.label_group(image, "ann").attrs["ome"]["image-label"]["properties"]
    assert {"label-value": 255, "name": "unannotated", "curated:unannotated": True} in props


def test_viewers_see_through_the_unannotated_voxels(image) -> None:
    """napari and vizarr paint a label image by its ``colors``: the "not drawn" value must be
    transparent (it fills most of the volume), the classes opaque, and the store valid."""
    from curated.images import validate_ome_zarr

    annotate_from_truth(image, crops=2, size=8, seed=1, name="ann")
    colors = _store.label_group(image, "ann").attrs["ome"]["image-label"]["colors"]
    alpha = {c["label-value"]: c["rgba"][3] for c in colors}
    assert alpha[UNANNOTATED] == 0 and alpha[0] == 0
    assert all(a == 255 for v, a in alpha.items() if v not in (0, UNANNOTATED))
    assert set(alpha) >= {0, 1, UNANNOTATED}
    truth = _store.label_group(image, "truth").attrs["ome"]["image-label"]["colors"]
    assert all(c["rgba"][3] == 255 for c in truth if c["label-value"] != 0)
    assert validate_ome_zarr(image) == []


def test_crops_can_be_restricted_to_one_side_and_added_later(image) -> None:
    annotate_from_truth(image, crops=2, size=8, seed=1, name="ann", region="x<0.5")
    assert all(r["offset"][2] + r["shape"][2] <= 24 for r in read_annotation_rois(image, "ann"))
    annotate_from_truth(image, crops=2, size=8, seed=2, name="ann", region="x>=0.5")
    rois = read_annotation_rois(image, "ann")
    assert len(rois) == 4 and sum(r["offset"][2] >= 24 for r in rois) == 2
    assert np.count_nonzero(_store.label_level0(image, "ann")[...] != UNANNOTATED) == 4 * 8**3


def test_parse_region() -> None:
    assert parse_region("x<0.5", (10, 20, 40)) == ((0, 0, 0), (10, 20, 20))
    assert parse_region("x>=0.5,z<0.5", (10, 20, 40)) == ((0, 0, 20), (5, 20, 40))
    with pytest.raises(InputError):
        parse_region("w<0.5", (10, 20, 40))
    with pytest.raises(InputError):
        parse_region("x<0", (10, 20, 40))


def test_truth_is_never_turned_into_annotations(image) -> None:
    before = _store.label_level0(image, "truth")[...]
    with pytest.raises(SegmentationError):
        annotate_from_truth(image, crops=1, size=8, name="truth")
    assert np.array_equal(_store.label_level0(image, "truth")[...], before)


def test_too_many_crops_are_refused(image) -> None:
    with pytest.raises(SegmentationError):
        annotate_from_truth(image, crops=50, size=16, name="ann")
    assert "ann" not in _store.label_names(image)


@pytest.mark.parametrize("suffix", [".npy", ".tif"])
def test_import_crop_from_another_tool(image, tmp_path, suffix) -> None:
    crop = np.full((4, 6, 8), UNANNOTATED, np.uint8)
    crop[:, :3] = 0
    crop[:, 3:, :4] = 1
    f = tmp_path / f"crop{suffix}"
    np.save(f, crop) if suffix == ".npy" else tifffile.imwrite(f, crop, photometric="minisblack")
    annotate_from_truth(image, crops=1, size=8, seed=3, name="ann")
    r = import_annotation(image, source_file=f, offset=(2, 30, 30), name="ann")
    ann = _store.label_level0(image, "ann")[...]
    assert np.array_equal(ann[2:6, 30:36, 30:38], crop)
    rois = read_annotation_rois(image, "ann")
    assert (
        len(rois) == 2
        and rois[-1]["offset"] == [2, 30, 30]
        and r.details["annotated_voxels"] == int((crop != 255).sum())
    )


def test_bad_imports_change_nothing(image, tmp_path) -> None:
    annotate_from_truth(image, crops=1, size=8, seed=3, name="ann")
    before = _store.label_level0(image, "ann")[...]
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(InputError, match="does not fit"):
        import_annotation(image, source_file=big, offset=(14, 0, 0), name="ann")
    floats = tmp_path / "f.npy"
    np.save(floats, np.full((4, 4, 4), 0.5, np.float32))  # a probability map
    with pytest.raises(InputError, match="whole numbers"):
        import_annotation(image, source_file=floats, offset=(0, 0, 0), name="ann")
    with pytest.raises(InputError):
        import_annotation(image, source_file=tmp_path / "missing.npy", offset=(0, 0, 0), name="ann")
    with pytest.raises(SegmentationError):
        import_annotation(image, source_file=big, offset=(0, 0, 0), name="truth")
    assert np.array_equal(_store.label_level0(image, "ann")[...], before)


def test_cli_annotate_commands(image, tmp_path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "annotate",
            "from-truth",
            str(image),
            "--truth",
            "truth",
            "--crops",
            "2",
            "--size",
            "8",
            "--seed",
            "4",
            "--name",
            "cur",
        ],
    )
    assert res.exit_code == 0, res.output
    f = tmp_path / "c.npy"
    np.save(f, np.ones((2, 2, 2), np.uint8))
    res = runner.invoke(
        app,
        [
            "annotate",
            "import",
            str(image),
            "--from",
            str(f),
            "--offset",
            "0",
            "0",
            "0",
            "--name",
            "cur",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(read_annotation_rois(image, "cur")) == 3
    res = runner.invoke(
        app,
        [
            "annotate",
            "import",
            str(image),
            "--from",
            str(f),
            "--offset",
            "0",
            "0",
            "99",
            "--name",
            "cur",
        ],
    )
    assert res.exit_code == 1


def test_crops_can_be_required_to_hold_a_structure(image) -> None:
    annotate_from_truth(
        image, crops=2, size=8, seed=5, name="ann", require_label=2, min_fraction=0.3
    )
    truth = _store.label_level0(image, "truth")[...]
    for roi in read_annotation_rois(image, "ann"):
        sl = tuple(slice(o, o + s) for o, s in zip(roi["offset"], roi["shape"], strict=True))
        assert (truth[sl] == 2).mean() >= 0.3


class _ReadGuard:
    """A label array that refuses reads larger than ``limit`` voxels (a stand-in for a terabyte volume)."""

    def __init__(self, array, limit: int) -> None:
        self.array, self.limit = array, limit
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, region):
        block = self.array[region]
        assert np.asarray(block).size <= self.limit, f"read {np.asarray(block).shape} at once"
        return block


def test_annotating_reads_only_the_crops_never_the_whole_volume(image, monkeypatch) -> None:
    real = _store.label_level0
    monkeypatch.setattr(_store, "label_level0", lambda img, name: _ReadGuard(real(img, name), 8**3))
    annotate_from_truth(image, crops=2, size=8, seed=1, name="ann")
    annotate_from_truth(image, crops=1, size=8, seed=5, name="ann")  # adds to the existing crops
    monkeypatch.setattr(_store, "label_level0", real)
    truth = real(image, "truth")[...]
    ann = real(image, "ann")[...]
    rois = read_annotation_rois(image, "ann")
    assert len(rois) == 3
    mask = np.zeros(SHAPE, bool)
    for roi in rois:
        mask[tuple(slice(o, o + s) for o, s in zip(roi["offset"], roi["shape"], strict=True))] = (
            True
        )
    assert np.array_equal(ann[mask], truth[mask]) and np.all(ann[~mask] == UNANNOTATED)


def test_an_overlapping_import_merges_and_counts_voxels_once(image, tmp_path) -> None:
    first = np.zeros((4, 4, 4), np.uint8)
    second = np.full((4, 4, 4), UNANNOTATED, np.uint8)
    second[:2, :2, :2] = 1  # inside the first crop: relabels 8 of its voxels
    second[2:, 2:, 2:] = 1  # outside it: 8 new voxels; the other 255s keep the first's labels
    for i, crop in enumerate((first, second)):
        np.save(tmp_path / f"c{i}.npy", crop)
    import_annotation(image, source_file=tmp_path / "c0.npy", offset=(0, 0, 0), name="ann")
    r = import_annotation(image, source_file=tmp_path / "c1.npy", offset=(2, 2, 2), name="ann")
    ann = _store.label_level0(image, "ann")[...]
    assert np.all(ann[:2, :4, :4] == 0) and np.all(ann[2:4, 2:4, 2:4] == 1)
    assert ann[2, 0, 0] == 0 and np.all(ann[4:6, 4:6, 4:6] == 1) and ann[4, 4, 2] == UNANNOTATED
    assert r.details["annotated_voxels"] == 16
    assert np.count_nonzero(ann != UNANNOTATED) == 64 + 8
    more = annotate_from_truth(image, crops=1, size=8, seed=3, name="ann")
    assert more.details["annotated_voxels"] == 64 + 8 + 8**3  # overlapping crops counted once


def test_the_recorded_digest_is_the_finished_label_store(image, tmp_path) -> None:
    """The digest taken while writing already covers the annotation's crops in the attributes."""
    from curated.provenance.digest import digest_tree
    from curated.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    annotate_from_truth(image, crops=1, size=8, seed=1, name="ann", workspace=ws)
    out = ws.log.last()["outputs"][0]
    assert out["digest"] == digest_tree(_store.label_path(image, "ann")).digest
    assert read_annotation_rois(image, "ann")  # the crops are in the finished store
    assert ws.log.verify(files=True).ok


def test_the_log_records_the_class_names_an_import_gave(image, tmp_path) -> None:
    """`annotate import --class-name 1=mitochondrion` named the class in the label image but
    not in the curator log, so the log could not say where a class name came from, and a
    re-run naming other classes looked like the same step."""
    from curated.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t"}})
    crop = np.zeros((4, 4, 4), np.uint8)
    crop[1:3, 1:3, 1:3] = 1
    np.save(tmp_path / "c.npy", crop)
    import_annotation(
        image,
        source_file=tmp_path / "c.npy",
        offset=(0, 0, 0),
        name="named",
        class_names={1: "mitochondrion"},
        workspace=ws,
    )
    assert ws.log.last()["params"]["class_names"] == {"1": "mitochondrion"}
    import_annotation(
        image, source_file=tmp_path / "c.npy", offset=(4, 4, 4), name="named", workspace=ws
    )
    assert "class_names" not in ws.log.last()["params"]  # none given: the params as before
