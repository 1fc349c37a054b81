"""``convert --axes``: files whose metadata names the axes wrongly (an ImageJ stack saved without axes)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import ConversionError, InputError
from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr
from curated.workspace import Workspace


def _stack(shape=(6, 20, 24)) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 255, shape, dtype=np.uint8)


def _imagej_without_axes(path, vol):
    # tifffile's default for a 3D array with imagej=True: the leading axis becomes channels
    tifffile.imwrite(path, vol, imagej=True, metadata={"spacing": 0.05, "unit": "um"})
    with tifffile.TiffFile(path) as tf:
        assert tf.series[0].axes == "CYX"


def test_imagej_stack_saved_as_channels_is_refused_with_a_pointer_to_axes(tmp_path):
    src = tmp_path / "ij.tif"
    _imagej_without_axes(src, _stack())
    with pytest.raises(ConversionError, match=r"axes cyx.*--axes \(e.g. zyx\)"):
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=(50, 5, 5))
    assert not (tmp_path / "o.ome.zarr").exists()


def test_axes_zyx_reads_the_channels_as_slices_and_records_it(tmp_path):
    vol = _stack()
    src = tmp_path / "ij.tif"
    _imagej_without_axes(src, vol)
    before = src.read_bytes()
    res = convert_to_ome_zarr(
        src, tmp_path / "o.ome.zarr", voxel_size=(50, 5, 5), axes="zyx", chunks=8, shard=16
    )
    img = open_image(tmp_path / "o.ome.zarr")
    assert img.axes == ["z", "y", "x"]
    np.testing.assert_array_equal(img.levels[0][:], vol)
    assert validate_ome_zarr(img.path) == []
    assert any(
        "axes zyx given by the curator" in n for n in res.details["decision"]["not_carried_over"]
    )
    assert src.read_bytes() == before


def test_axes_from_the_cli_is_logged(tmp_path):
    vol = _stack()
    src = tmp_path / "ij.tif"
    _imagej_without_axes(src, vol)
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    out = CliRunner().invoke(
        app,
        ["convert", str(src), str(tmp_path / "o.ome.zarr"), "--axes", "ZYX", "--voxel-size", "50", "5", "5",
         "--chunks", "8", "--shard", "16", "--workspace", str(ws.root)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "given by the curator" in out.output
    (entry,) = list(ws.log.entries())
    assert entry["params"]["axes"] == "ZYX"
    assert any(
        "given by the curator" in n for n in entry["details"]["decision"]["not_carried_over"]
    )
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").levels[0][:], vol)


def test_axes_cannot_split_one_file_axis_into_two(tmp_path):
    src = tmp_path / "t.tif"
    tifffile.imwrite(src, _stack((12, 20, 24)), imagej=True, metadata={"axes": "TYX"})
    # the 12 frames are really 2 channels x 6 slices, but a TIFF's planes cannot be split by --axes
    with pytest.raises(InputError, match="name 2 axes before yx, but the file has 1"):
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=(8, 4, 4), axes="czyx")


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ("zzyx", "at most once"),
        ("zyq", "at most once"),
        ("yxz", "ending in yx"),
        ("czyx", "name 2 axes"),
    ],
)
def test_bad_axes_are_refused_before_anything_is_written(tmp_path, axes, match):
    src = tmp_path / "ij.tif"
    _imagej_without_axes(src, _stack())
    with pytest.raises(InputError, match=match):
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=(50, 5, 5), axes=axes)
    assert not (tmp_path / "o.ome.zarr").exists()


def test_ome_tiff_axes_are_not_renamed(tmp_path):
    src = tmp_path / "o.ome.tif"
    tifffile.imwrite(src, _stack(), ome=True, metadata={"axes": "ZYX"})
    with pytest.raises(InputError, match="states its axes"):
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=(50, 5, 5), axes="tyx")


def test_hdf5_time_series_named_tzyx_instead_of_czyx(tmp_path):
    vol = np.random.default_rng(2).integers(0, 255, (3, 6, 20, 24), dtype=np.uint8)
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["data"] = vol
    convert_to_ome_zarr(
        f"{tmp_path / 't.h5'}:/data", tmp_path / "o.ome.zarr", voxel_size=(8, 4, 4),
        axes="tzyx", chunks=8, shard=16,
    )  # fmt: skip
    img = open_image(tmp_path / "o.ome.zarr")
    assert img.axes == ["t", "z", "y", "x"]
    np.testing.assert_array_equal(img.levels[0][:], vol)
    with pytest.raises(InputError, match="in t c z y x order"):
        convert_to_ome_zarr(
            f"{tmp_path / 't.h5'}:/data", tmp_path / "p.ome.zarr", voxel_size=(8, 4, 4), axes="ztyx"
        )


def test_axes_are_named_in_the_files_order_and_put_into_ome_order(tmp_path):
    vol = np.random.default_rng(6).integers(0, 255, (6, 2, 20, 24), dtype=np.uint8)  # file: T C Y X
    src = tmp_path / "tc.tif"
    tifffile.imwrite(src, vol, imagej=True, metadata={"axes": "TCYX"})  # frames that are slices
    convert_to_ome_zarr(
        src, tmp_path / "o.ome.zarr", voxel_size=(8, 4, 4), axes="zcyx", chunks=8, shard=16
    )
    img = open_image(tmp_path / "o.ome.zarr")
    assert img.axes == ["c", "z", "y", "x"]
    np.testing.assert_array_equal(img.levels[0][:], vol.transpose(1, 0, 2, 3))
