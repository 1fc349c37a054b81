"""Chunked sources that claim far more than they store (issue: a Zarr/HDF5/N5 array of
100000^3 voxels with one chunk written made `convert` read fill values for days).

`convert` leaves the regions where no chunk is stored unread and unwritten (the fill value),
so its time follows the data present, and writes the same store as reading them would;
it refuses up front an array whose empty shards would still take hours; `check` says
what the array claims against what it stores."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
import zarr

from curated.curation import check
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.sources import open_source
from curated.images.stored import StoredArraySource

BLOB = (np.arange(16 * 16 * 16) % 200 + 1).astype(np.uint8).reshape(16, 16, 16)


def _zarr(path, shape, fmt=3):
    arr = zarr.create_array(path, shape=shape, chunks=(16, 16, 16), dtype="uint8", zarr_format=fmt)
    arr[16:32, 32:48, 0:16] = BLOB  # one chunk written
    return path


def _hdf5(path, shape):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("raw", shape=shape, chunks=(16, 16, 16), dtype="uint8")
        d[16:32, 32:48, 0:16] = BLOB
    return f"{path}:/raw"


def _n5(path, shape):
    """An N5 array (TensorStore writes it in N5's x y z order) with one block written."""
    import json

    import tensorstore as ts

    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(path / "raw")},
        "metadata": {
            "dimensions": list(shape[::-1]),
            "blockSize": [16, 16, 16],
            "dataType": "uint8",
            "compression": {"type": "gzip"},
        },
        "create": True,
    }
    arr = ts.open(spec).result()
    arr[0:16, 32:48, 16:32] = BLOB.T  # z 16-32, y 32-48, x 0-16 as the others
    (path / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    return f"{path}:/raw"


def _counting(monkeypatch):
    """Record every region the converter reads from a stored source."""
    read: list[tuple[slice, ...]] = []
    real = StoredArraySource._read

    def spy(self, region):
        read.append(region)
        return real(self, region)

    monkeypatch.setattr(StoredArraySource, "_read", spy)
    return read


@pytest.mark.parametrize(
    "make", [_zarr, lambda p, s: _zarr(p, s, 2), _hdf5, _n5], ids=["v3", "v2", "h5", "n5"]
)
def test_absent_regions_are_neither_read_nor_written_and_the_store_is_the_same(
    tmp_path, monkeypatch, make
):
    suffix = {_hdf5: "h5", _n5: "n5"}.get(make, "zarr")
    src = make(tmp_path / f"sparse.{suffix}", (64, 128, 64))
    read = _counting(monkeypatch)
    kw = {"voxel_size": (8, 4, 4), "chunks": 16, "shard": 32, "workers": 1}
    res = convert_to_ome_zarr(src, tmp_path / "skip.ome.zarr", **kw)
    assert read and all(r[0].start < 32 and r[0].stop > 16 for r in read), read  # z 16-32 only
    want = np.zeros((64, 128, 64), np.uint8)
    want[16:32, 32:48, 0:16] = BLOB
    np.testing.assert_array_equal(open_image(tmp_path / "skip.ome.zarr").levels[0][:], want)
    # the same store as reading every region (the index of stored chunks told apart)
    monkeypatch.setattr(StoredArraySource, "absent", lambda self, region: False)
    full = convert_to_ome_zarr(src, tmp_path / "full.ome.zarr", **kw)
    assert res.details["store_digest"] == full.details["store_digest"]
    assert res.details["bytes_in"] == full.details["bytes_in"]
    omero = [
        zarr.open_group(tmp_path / n).attrs["ome"]["omero"]
        for n in ("skip.ome.zarr", "full.ome.zarr")
    ]
    assert omero[0] == omero[1]


@pytest.mark.parametrize("make", [_zarr, _hdf5, _n5], ids=["zarr", "h5", "n5"])
def test_an_absurd_claim_is_refused_at_once_and_check_says_so(tmp_path, make):
    raw = tmp_path / "raw"
    raw.mkdir()
    suffix = {_hdf5: "h5", _n5: "n5"}.get(make, "zarr")
    src = make(raw / f"big.{suffix}", (100_000,) * 3)
    t0 = time.perf_counter()
    with pytest.raises(
        ConversionError, match=r"claims 100000 x 100000 x 100000 voxels .* stores only 1 of"
    ) as err:
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=(8, 4, 4))
    assert time.perf_counter() - t0 < 20
    assert "shards that hold nothing but the fill value" in str(err.value)
    assert not (tmp_path / "o.ome.zarr").exists()
    report = check(None, [raw], write=False, processes=1)
    said = report.flags_by_code("sparse-array") + report.flags_by_code("sparse-image")
    assert len(said) == 1 and said[0].severity == "error", [f.message for f in report.flags]
    assert "stores 1 of its 244140625000 chunks" in said[0].message
    assert "`curated convert` refuses it" in said[0].message


def test_a_merely_sparse_array_is_a_warning_in_check_and_converts(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _zarr(raw / "mid.zarr", (64, 128, 64))
    report = check(None, [raw], write=False, processes=1)
    said = report.flags_by_code("sparse-array")
    assert [f.severity for f in said] == ["warning"] and "stores 1 of its 128 chunks" in said[
        0
    ].message
    src = open_source(raw / "mid.zarr")
    assert src.stored is not None and (src.stored.stored, src.stored.expected) == (1, 128)
    assert src.absent((slice(0, 16), slice(0, 128), slice(0, 64)))
    assert not src.absent((slice(30, 31), slice(47, 48), slice(15, 16)))
