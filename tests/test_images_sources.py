"""Every source kind converts to an OME-Zarr whose level 0 equals the source exactly."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr


def _volume(
    dtype: str = "uint8", shape: tuple[int, int, int] = (13, 40, 36), seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.normal(100, 20, shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(0, min(info.max, 5000), shape, dtype=dtype)


@pytest.mark.parametrize(
    ("kwargs", "dtype"),
    [
        ({"bigtiff": True}, "uint8"),  # contiguous BigTIFF
        (
            {"bigtiff": True, "compression": "zlib", "rowsperstrip": 7},
            "uint16",
        ),  # striped, compressed
        ({"compression": "zstd", "tile": (16, 16)}, "uint8"),  # tiled, compressed
        ({"compression": "zlib", "predictor": True, "rowsperstrip": 9}, "float32"),
        ({"byteorder": ">"}, "uint16"),  # big-endian
    ],
)
def test_multipage_tiff_converts_exactly(tmp_path, kwargs, dtype):
    vol = _volume(dtype)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, vol, photometric="minisblack", **kwargs)
    res = convert_to_ome_zarr(
        src, tmp_path / "out.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16
    )
    assert res.status == "ok"
    img = open_image(tmp_path / "out.ome.zarr")
    assert img.shape == vol.shape and img.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.levels[0][:], vol)
    assert validate_ome_zarr(tmp_path / "out.ome.zarr") == []
    # zarr-python reads the same bytes through its own sharding codec
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "out.ome.zarr" / "0"), mode="r")[:], vol
    )


def test_ome_tiff_voxel_size_comes_from_ome_xml(tmp_path):
    vol = _volume()
    src = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        src,
        vol,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.004,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.004,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": 10,
            "PhysicalSizeZUnit": "nm",
        },
    )
    res = convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", chunks=8, shard=16)
    img = open_image(tmp_path / "o.ome.zarr")
    assert img.voxel_size == pytest.approx((10.0, 4.0, 4.0))
    assert img.unit == "nanometer"
    assert res.details["decision"]["voxel_size_from"] == "ome-xml"
    assert res.details["source_kind"] == "ome-tiff"
    np.testing.assert_array_equal(img.levels[0][:], vol)
    assert validate_ome_zarr(img.path) == []


def test_imagej_hyperstack_voxel_size_and_micrometer_unit(tmp_path):
    vol = _volume("uint16")
    src = tmp_path / "ij.tif"
    tifffile.imwrite(
        src,
        vol,
        imagej=True,
        resolution=(1 / 0.004, 1 / 0.004),
        metadata={"spacing": 0.008, "unit": "micron", "axes": "ZYX"},
    )
    convert_to_ome_zarr(src, tmp_path / "ij.ome.zarr", chunks=8, shard=16)
    img = open_image(tmp_path / "ij.ome.zarr")
    assert img.voxel_size == pytest.approx((8.0, 4.0, 4.0))  # converted to the default nanometer
    np.testing.assert_array_equal(img.levels[0][:], vol)


def test_imagej_hyperstack_with_channels_keeps_c_axis(tmp_path):
    vol = np.random.default_rng(1).integers(0, 255, (6, 2, 20, 24), dtype=np.uint8)  # Z C Y X
    src = tmp_path / "zc.tif"
    tifffile.imwrite(src, vol, imagej=True, metadata={"axes": "ZCYX"})
    convert_to_ome_zarr(src, tmp_path / "zc.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16)
    img = open_image(tmp_path / "zc.ome.zarr")
    assert img.axes == ["c", "z", "y", "x"]
    np.testing.assert_array_equal(img.levels[0][:], vol.transpose(1, 0, 2, 3))
    assert all(lv.shape[0] == 2 for lv in img.levels)  # channels never downsampled
    assert validate_ome_zarr(img.path) == []


def test_folder_of_slices_in_natural_order(tmp_path):
    vol = _volume("uint16", (12, 30, 20))
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol):
        tifffile.imwrite(folder / f"slice_{i}.tif", plane)  # slice_10 sorts after slice_9
    (folder / "notes.txt").write_text("not a slice")
    res = convert_to_ome_zarr(
        folder, tmp_path / "f.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16
    )
    assert res.details["source_kind"] == "slices" and res.details["source_files"] == 12
    np.testing.assert_array_equal(open_image(tmp_path / "f.ome.zarr").levels[0][:], vol)


def test_version_04_writes_zarr_v2_chunks_without_shards(tmp_path):
    vol = _volume()
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, vol, photometric="minisblack")
    convert_to_ome_zarr(
        src, tmp_path / "v4.ome.zarr", voxel_size=(8, 4, 4), ngff_version="0.4", chunks=8
    )
    root = tmp_path / "v4.ome.zarr"
    assert (root / ".zattrs").is_file() and not (root / "zarr.json").exists()
    img = open_image(root)
    assert img.ngff_version == "0.4"
    np.testing.assert_array_equal(img.levels[0][:], vol)
    assert validate_ome_zarr(root) == []
    assert zarr.open_array(str(root / "0"), mode="r").shards is None


class _Recorder:
    def __init__(self) -> None:
        self.total = None
        self.done = 0.0

    def start(self, description, total, unit=""):
        self.total, self.unit = total, unit

    def advance(self, amount=1, **info):
        self.done += amount

    def finish(self):
        pass


def test_dask_and_zarr_arrays_are_written_exactly_with_progress(tmp_path):
    import dask.array as da

    from curated.images import write_ome_zarr

    vol = _volume("uint16", (20, 30, 26))
    rec = _Recorder()
    res = write_ome_zarr(
        da.from_array(vol, chunks=(7, 11, 13)),
        tmp_path / "d.ome.zarr",
        voxel_size=(8, 4, 4),
        chunks=8,
        shard=16,
        progress=rec,
    )
    assert rec.unit == "bytes" and rec.done == rec.total == sum(
        np.prod(lv["shape"]) * 2 for lv in res.details["levels"]
    )
    np.testing.assert_array_equal(open_image(tmp_path / "d.ome.zarr").levels[0][:], vol)
    z = zarr.open_array(str(tmp_path / "d.ome.zarr" / "0"), mode="r")
    write_ome_zarr(z, tmp_path / "z.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16)
    np.testing.assert_array_equal(open_image(tmp_path / "z.ome.zarr").levels[0][:], vol)
    assert validate_ome_zarr(tmp_path / "z.ome.zarr") == []


def test_imagej_time_series_keeps_t_and_c_axes_in_ome_order(tmp_path):
    vol = np.random.default_rng(4).integers(0, 255, (2, 6, 3, 20, 24), dtype=np.uint8)  # T Z C Y X
    tifffile.imwrite(tmp_path / "tzc.tif", vol, imagej=True, metadata={"axes": "TZCYX"})
    convert_to_ome_zarr(
        tmp_path / "tzc.tif", tmp_path / "t.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16
    )
    img = open_image(tmp_path / "t.ome.zarr")
    assert img.axes == ["t", "c", "z", "y", "x"]
    np.testing.assert_array_equal(img.levels[0][:], vol.transpose(0, 2, 1, 3, 4))
    assert validate_ome_zarr(img.path) == []
