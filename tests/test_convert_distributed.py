"""The shard tasks run on a dask.distributed cluster (2 worker processes on 127.0.0.1)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr


def test_conversion_on_a_local_cluster_matches_the_threaded_one(tmp_path):
    distributed = pytest.importorskip("distributed")
    vol = np.random.default_rng(5).integers(0, 4000, (20, 40, 36), dtype=np.uint16)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, vol, photometric="minisblack", compression="zlib", rowsperstrip=8)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        res = convert_to_ome_zarr(
            src,
            tmp_path / "d.ome.zarr",
            voxel_size=(8, 4, 4),
            chunks=8,
            shard=16,
            scheduler=cluster.scheduler_address,
        )
    assert res.status == "ok"
    np.testing.assert_array_equal(open_image(tmp_path / "d.ome.zarr").levels[0][:], vol)
    assert validate_ome_zarr(tmp_path / "d.ome.zarr") == []
    local = convert_to_ome_zarr(
        src, tmp_path / "l.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16
    )
    assert local.details["store_digest"] == res.details["store_digest"]


def test_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    from curated.errors import ConversionError
    from curated.images import shards

    monkeypatch.setattr(shards, "SCHEDULER_TIMEOUT", "1s")
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((4, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(ConversionError, match="dask scheduler"):
        convert_to_ome_zarr(
            tmp_path / "s.tif",
            tmp_path / "o.ome.zarr",
            voxel_size=(1, 1, 1),
            scheduler="tcp://127.0.0.1:1",
        )


def test_a_bounded_window_of_shard_tasks_is_in_flight_on_a_cluster(tmp_path, monkeypatch):
    """One future per shard of a level at once would hold millions of tasks for a terabyte
    image; tasks are submitted a window at a time, and every shard still gets written."""
    distributed = pytest.importorskip("distributed")
    from curated.images import shards

    monkeypatch.setattr(shards, "IN_FLIGHT_PER_THREAD", 1)
    submitted: list = []
    in_flight: list[int] = []
    real_submit = distributed.Client.submit

    def submit(self, *args, **kwargs):
        in_flight.append(sum(1 for f in submitted if not f.done()) + 1)
        fut = real_submit(self, *args, **kwargs)
        submitted.append(fut)
        return fut

    monkeypatch.setattr(distributed.Client, "submit", submit)
    vol = np.random.default_rng(6).integers(0, 255, (20, 40, 36), dtype=np.uint8)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, vol, photometric="minisblack")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        res = convert_to_ome_zarr(
            src,
            tmp_path / "d.ome.zarr",
            voxel_size=(8, 4, 4),
            chunks=8,
            shard=16,
            scheduler=cluster.scheduler_address,
        )
    assert res.status == "ok"
    assert len(submitted) == res.details["shards_written"] >= 18  # 2 x 3 x 3 at level 0
    assert max(in_flight) <= 2  # one per worker thread
    np.testing.assert_array_equal(open_image(tmp_path / "d.ome.zarr").levels[0][:], vol)
