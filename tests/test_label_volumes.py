"""Label volumes as EM challenges hand them over: uint64 ids in HDF5 (CREMI), 1-bit TIFF masks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from curated.errors import ConversionError
from curated.images import add_labels, convert_to_ome_zarr
from curated.segment._store import label_level0

RAW = np.random.default_rng(2).integers(0, 255, (6, 32, 32), dtype=np.uint8)


@pytest.fixture
def cremi(tmp_path):
    ids = np.random.default_rng(3).integers(0, 2**40, RAW.shape, dtype=np.uint64)
    ids[:, :4] = np.uint64(0xFFFFFFFFFFFFFFFF)  # CREMI's "no label" in clefts and ids
    path = tmp_path / "sample_A.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=RAW, chunks=(2, 16, 16), compression="gzip")
        f.create_dataset("volumes/labels/neuron_ids", data=ids)
    image = tmp_path / "a.ome.zarr"
    convert_to_ome_zarr(f"{path}:/volumes/raw", image, voxel_size=(40, 4, 4))
    return path, image, ids


def test_uint64_neuron_ids_from_hdf5_are_added_exactly(cremi):
    path, image, ids = cremi
    add_labels(image, "neuron_ids", f"{path}:/volumes/labels/neuron_ids", kind="truth")
    got = label_level0(image, "neuron_ids")
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got[...], ids)


def test_a_uint64_image_is_still_refused_by_convert_pointing_at_labels(cremi, tmp_path):
    path, _, _ = cremi
    with pytest.raises(ConversionError, match="uint64 .*labels add"):
        convert_to_ome_zarr(
            f"{path}:/volumes/labels/neuron_ids", tmp_path / "o.ome.zarr", voxel_size=(40, 4, 4)
        )
    assert not (tmp_path / "o.ome.zarr").exists()


def test_one_bit_tiff_mask_slices_are_added_as_0_and_1(cremi, tmp_path):
    _, image, _ = cremi
    masks = tmp_path / "mito"
    masks.mkdir()
    truth = RAW > 128
    for z, plane in enumerate(truth):
        tifffile.imwrite(masks / f"m{z:02d}.tif", plane)  # 1 bit per sample
    add_labels(image, "mito", masks, kind="truth")
    np.testing.assert_array_equal(label_level0(image, "mito")[...], truth.astype(np.uint8))


def test_check_says_a_uint64_volume_can_be_labels(tmp_path):
    from curated.curation import check

    tifffile.imwrite(tmp_path / "ids.tif", np.zeros((3, 8, 8), np.uint64))
    (flag,) = check(None, [tmp_path / "ids.tif"], write=False).flags_by_code(
        "unsupported-pixel-type"
    )
    assert "uint64" in flag.message and "curated labels add" in flag.message
