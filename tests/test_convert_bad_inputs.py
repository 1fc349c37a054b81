"""Bad inputs get a clear message, exit code 1, and never a store that looks finished."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.images import validate_ome_zarr
from curated.images.store import is_incomplete

runner = CliRunner()


def _convert(*args: str):
    return runner.invoke(app, ["convert", *args])


def _no_finished_store(dest):
    assert not dest.exists() or is_incomplete(dest)


@pytest.fixture
def vol():
    return np.random.default_rng(0).integers(0, 255, (20, 32, 32), dtype=np.uint8)


@pytest.mark.parametrize("kw", [{}, {"compression": "zlib", "rowsperstrip": 8}])
def test_truncated_tiff_names_the_page(tmp_path, vol, kw):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, vol, photometric="minisblack", bigtiff=True, **kw)
    data = good.read_bytes()
    bad = tmp_path / "cut.tif"
    bad.write_bytes(data[: len(data) * 2 // 3])
    dest = tmp_path / "cut.ome.zarr"
    result = _convert(str(bad), str(dest), "--voxel-size", "8", "4", "4")
    assert result.exit_code == 1
    assert "cut.tif" in result.output and "page " in result.output and "truncated" in result.output
    _no_finished_store(dest)


def test_truncated_page_data_found_when_ifds_are_intact(tmp_path, vol):
    # IFDs first, pixel data after them: cutting the file leaves every IFD readable
    src = tmp_path / "s.tif"
    tifffile.imwrite(
        src, vol, photometric="minisblack", compression="zlib", rowsperstrip=8, metadata=None
    )
    from curated.images.sources import open_source

    with tifffile.TiffFile(src) as tf:
        last = tf.pages[-1]
        cut = int(last.dataoffsets[-1]) + 1
    if cut >= src.stat().st_size:
        pytest.skip("this tifffile writes IFDs after the data")
    (tmp_path / "c.tif").write_bytes(src.read_bytes()[:cut])
    with pytest.raises(Exception, match="page"):
        open_source(tmp_path / "c.tif")


def test_slices_of_different_shape_name_the_file(tmp_path, vol):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol[:5]):
        tifffile.imwrite(folder / f"s{i:02d}.tif", plane)
    tifffile.imwrite(folder / "s03.tif", vol[3, :30])
    result = _convert(str(folder), str(tmp_path / "o.ome.zarr"), "--voxel-size", "8", "4", "4")
    assert result.exit_code == 1
    assert "s03.tif" in result.output and "shape" in result.output
    _no_finished_store(tmp_path / "o.ome.zarr")


def test_slices_of_different_dtype_name_the_file(tmp_path, vol):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol[:4]):
        tifffile.imwrite(folder / f"s{i}.tif", plane)
    tifffile.imwrite(folder / "s2.tif", vol[2].astype(np.uint16))
    result = _convert(str(folder), str(tmp_path / "o.ome.zarr"), "--voxel-size", "8", "4", "4")
    assert result.exit_code == 1
    assert "s2.tif" in result.output and "uint16" in result.output


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _convert(
        str(tmp_path / "empty"), str(tmp_path / "o.ome.zarr"), "--voxel-size", "8", "4", "4"
    )
    assert result.exit_code == 1
    assert "no TIFF slices" in result.output
    assert not (tmp_path / "o.ome.zarr").exists()


def test_2d_image_is_refused(tmp_path, vol):
    tifffile.imwrite(tmp_path / "plane.tif", vol[0])
    result = _convert(
        str(tmp_path / "plane.tif"), str(tmp_path / "o.ome.zarr"), "--voxel-size", "8", "4", "4"
    )
    assert result.exit_code == 1
    assert "2D image" in result.output
    assert not (tmp_path / "o.ome.zarr").exists()


def test_existing_destination_is_kept_without_overwrite(tmp_path, vol):
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    dest = tmp_path / "o.ome.zarr"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    result = _convert(str(tmp_path / "s.tif"), str(dest), "--voxel-size", "8", "4", "4")
    assert result.exit_code == 1
    assert "already exists" in result.output and "--overwrite" in result.output
    assert (dest / "precious.txt").read_text() == "keep me"
    # --overwrite replaces a Zarr store, never a folder of other files (`~/Documents`)
    refused = _convert(
        str(tmp_path / "s.tif"), str(dest), "--voxel-size", "8", "4", "4", "--overwrite"
    )
    assert refused.exit_code == 1 and "not a Zarr store" in refused.output
    assert (dest / "precious.txt").read_text() == "keep me"
    store = tmp_path / "store.ome.zarr"
    assert (
        _convert(str(tmp_path / "s.tif"), str(store), "--voxel-size", "8", "4", "4").exit_code == 0
    )
    ok = _convert(str(tmp_path / "s.tif"), str(store), "--voxel-size", "8", "4", "3", "--overwrite")
    assert ok.exit_code == 0, ok.output
    assert validate_ome_zarr(store) == []


@pytest.mark.parametrize("voxel", [("0", "4", "4"), ("8", "-4", "4")])
def test_non_positive_voxel_size(tmp_path, vol, voxel):
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    result = _convert(str(tmp_path / "s.tif"), str(tmp_path / "o.ome.zarr"), "--voxel-size", *voxel)
    assert result.exit_code == 1
    assert "voxel size must be positive" in result.output
    assert not (tmp_path / "o.ome.zarr").exists()


@pytest.mark.parametrize("unit", ["second", "pixel", "nm2"])
def test_unit_that_is_not_a_length(tmp_path, vol, unit):
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    result = _convert(
        str(tmp_path / "s.tif"),
        str(tmp_path / "o.ome.zarr"),
        "--voxel-size",
        "8",
        "4",
        "4",
        "--unit",
        unit,
    )
    assert result.exit_code == 1
    assert "not a unit of length" in result.output
    assert not (tmp_path / "o.ome.zarr").exists()


def test_unit_alias_is_written_as_udunits_name(tmp_path, vol):
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    result = _convert(
        str(tmp_path / "s.tif"),
        str(tmp_path / "o.ome.zarr"),
        "--voxel-size",
        "8",
        "4",
        "4",
        "--unit",
        "nm",
    )
    assert result.exit_code == 0, result.output
    from curated.images import open_image

    assert open_image(tmp_path / "o.ome.zarr").unit == "nanometer"


def test_missing_voxel_size_without_metadata(tmp_path, vol):
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    result = _convert(str(tmp_path / "s.tif"), str(tmp_path / "o.ome.zarr"))
    assert result.exit_code == 1
    assert "--voxel-size" in result.output


def test_destination_inside_source_folder_is_refused(tmp_path, vol):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol[:3]):
        tifffile.imwrite(folder / f"s{i}.tif", plane)
    result = _convert(str(folder), str(folder), "--voxel-size", "8", "4", "4", "--overwrite")
    assert result.exit_code == 1
    assert len(list(folder.glob("*.tif"))) == 3
