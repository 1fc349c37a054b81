"""Convert straight into an S3-compatible object store (moto's server on 127.0.0.1):
the store reads back with zarr, validates, and holds the same bytes as a local conversion."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from s3_server import local_files, s3  # noqa: F401  (the fixture)

from curated.images import convert_to_ome_zarr, validate_ome_zarr

SHAPE = (24, 40, 36)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(18)
    vol = (rng.normal(120, 30, SHAPE)).clip(0, 255).astype(np.uint8)
    vol[:, :8, :] = 0  # a region of fill value: shards left out must match too
    path = tmp_path_factory.mktemp("src") / "stack.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    return path, vol


@pytest.fixture(scope="module")
def local_store(source, tmp_path_factory):
    dest = tmp_path_factory.mktemp("local") / "stack.ome.zarr"
    res = convert_to_ome_zarr(source[0], dest, voxel_size=(8, 4, 4), chunks=8, shard=16)
    return dest, res


def test_convert_to_s3_reads_back_valid_and_identical(s3, source, local_store, tmp_path):
    import zarr
    from ome_zarr_models import open_ome_zarr

    bucket = s3.make_bucket("images")
    url = "s3://images/run1/stack.ome.zarr"
    res = convert_to_ome_zarr(source[0], url, voxel_size=(8, 4, 4), chunks=8, shard=16)
    assert res.status == "ok"
    assert res.path == url
    # read back through zarr's own store layer, straight from the object store
    group = zarr.open_group(url, mode="r")
    np.testing.assert_array_equal(group["0"][:], source[1])
    open_ome_zarr(group, version="0.5")
    # byte for byte what a local conversion writes; no journal left behind
    objects = s3.objects(bucket, "run1/stack.ome.zarr")
    assert objects == local_files(local_store[0])
    assert not any(k.startswith(".curated-progress") for k in objects)
    assert res.details["store_digest"] == local_store[1].details["store_digest"]
    # the project's validator on a copy of the objects
    copy = s3.download(bucket, "run1/stack.ome.zarr", tmp_path / "copy.ome.zarr")
    assert validate_ome_zarr(copy) == []
