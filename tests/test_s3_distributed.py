"""dask.distributed at scale, into an object store: a LocalCluster (2 workers) converts a
sample into S3 (moto on 127.0.0.1) and predicts from it into it; the results equal the
local, threaded ones, and `labels add` writes into the S3 image too."""

from __future__ import annotations

import numpy as np
import pytest
import s3_server
from s3_server import local_files
from segment_helpers import train_tiny

from curated.images import add_labels, convert_to_ome_zarr, open_image, validate_ome_zarr
from curated.segment import annotate_from_truth, make_fibsem_sample, predict

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1
SHAPE = (16, 32, 32)
PARAMS = {"voxel_size": (8, 8, 8), "chunks": 8, "shard": 16}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A FIB-SEM-like sample with truth, and a tiny model trained on it (local files)."""
    root = tmp_path_factory.mktemp("sample")
    image = root / "cell.ome.zarr"
    make_fibsem_sample(image, shape=SHAPE, voxel_size=(8, 8, 8), seed=0, chunks=8, shard=16)
    annotate_from_truth(image, crops=2, size=10, seed=0, name="ann")
    train_tiny(image, root / "model")
    return image, root / "model"


def test_local_cluster_converts_and_predicts_into_s3(s3, sample, tmp_path):
    distributed = pytest.importorskip("distributed")
    image, model = sample
    bucket = s3.make_bucket("cluster")
    url = f"s3://{bucket}/cell.ome.zarr"
    local = tmp_path / "cell.ome.zarr"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        res = convert_to_ome_zarr(image, url, scheduler=cluster.scheduler_address, **PARAMS)
        assert res.status == "ok"
        pred = predict(model, url, name="pred", scheduler=cluster.scheduler_address, device="cpu")
        assert pred.status == "ok"
    # the same conversion and prediction on local threads, into a folder
    convert_to_ome_zarr(image, local, workers=2, **PARAMS)
    predict(model, local, name="pred", workers=2, device="cpu")
    assert s3.objects(bucket, "cell.ome.zarr") == local_files(local)
    remote = open_image(url)
    assert remote.label_names() == ["pred"]
    np.testing.assert_array_equal(
        remote.open_label("pred").levels[0][:], open_image(local).open_label("pred").levels[0][:]
    )
    copy = s3.download(bucket, "cell.ome.zarr", tmp_path / "copy.ome.zarr")
    assert validate_ome_zarr(copy) == []


def test_labels_add_writes_into_an_s3_image(s3, sample, tmp_path):
    image, _ = sample
    bucket = s3.make_bucket("labels")
    url = f"s3://{bucket}/cell.ome.zarr"
    convert_to_ome_zarr(image, url, **PARAMS)
    truth = open_image(image).open_label("truth").levels[0][:]
    np.save(tmp_path / "truth.npy", truth)
    res = add_labels(url, "copied", tmp_path / "truth.npy", kind="truth", origin="simulated")
    assert res.status == "ok" and res.path == f"{url}/labels/copied"
    got = open_image(url).open_label("copied")
    np.testing.assert_array_equal(got.levels[0][:], truth)
    assert len(got.levels) == len(open_image(url).levels)
    copy = s3.download(bucket, "cell.ome.zarr", tmp_path / "copy.ome.zarr")
    assert validate_ome_zarr(copy) == []
    assert not any(".curated-progress" in k for k in s3.objects(bucket, "cell.ome.zarr"))
