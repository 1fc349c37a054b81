"""A damaged chunk inside an HDF5 volume or a Zarr array: a clear error naming where, not a crash."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr

VOL = np.random.default_rng(11).integers(0, 255, (8, 32, 32), dtype=np.uint8)


def _spoil(path, offset):
    data = bytearray(path.read_bytes())
    data[offset + 8 : offset + 40] = bytes(32)  # zeros over the compressed stream
    path.write_bytes(bytes(data))


def _cremi_like(path):
    with h5py.File(path, "w") as f:  # CREMI's layout: /volumes/raw, gzip chunks
        f.create_dataset("volumes/raw", data=VOL, chunks=(4, 16, 16), compression="gzip")
    with h5py.File(path) as f:
        return f["volumes/raw"].id.get_chunk_info(3).byte_offset  # chunk z 0-4, y 16-32, x 16-32


def test_a_damaged_hdf5_chunk_names_the_file_dataset_and_region(tmp_path):
    src = tmp_path / "sample_A.hdf"
    _spoil(src, _cremi_like(src))
    with pytest.raises(ConversionError) as err:
        convert_to_ome_zarr(f"{src}:/volumes/raw", tmp_path / "o.ome.zarr", voxel_size=(40, 4, 4))
    assert err.value.path == str(src)
    assert "/volumes/raw" in err.value.message and "damaged" in err.value.message
    assert "z 0-8" in err.value.message  # the region read (the first shard)


def test_the_cli_exits_1_on_a_damaged_chunk(tmp_path):
    src = tmp_path / "sample_A.hdf"
    _spoil(src, _cremi_like(src))
    out = CliRunner().invoke(
        app,
        [
            "convert",
            f"{src}:/volumes/raw",
            str(tmp_path / "o.ome.zarr"),
            "--voxel-size",
            "40",
            "4",
            "4",
        ],
    )
    assert out.exit_code == 1, out.output
    assert "sample_A.hdf" in out.output and "damaged" in out.output


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_damaged_zarr_chunk_is_a_conversion_error(tmp_path, zarr_format):
    store = tmp_path / "raw.zarr"
    arr = zarr.create_array(
        store, shape=VOL.shape, chunks=(4, 16, 16), dtype="uint8", zarr_format=zarr_format
    )
    arr[:] = VOL
    chunk = store / ("1.0.1" if zarr_format == 2 else os.path.join("c", "1", "0", "1"))
    _spoil(chunk, 0)
    with pytest.raises(ConversionError, match="damaged") as err:
        convert_to_ome_zarr(store, tmp_path / "o.ome.zarr", voxel_size=(40, 4, 4))
    assert err.value.path == str(store)


@pytest.mark.parametrize("suffix", [".preali", ".ccp4", ".tomo"])
def test_mrc_stacks_under_imod_and_ccp4_names_convert(tmp_path, suffix):
    import mrcfile

    from curated.images import open_image

    src = tmp_path / f"stack{suffix}"
    with mrcfile.new(src) as m:
        m.set_data(VOL)
        m.voxel_size = (40.0, 40.0, 400.0)  # x y z in Å
    convert_to_ome_zarr(src, tmp_path / "o.ome.zarr")
    img = open_image(tmp_path / "o.ome.zarr")
    np.testing.assert_array_equal(img.levels[0][:], VOL)


def test_check_finds_truncated_hdf5_and_mrc_volumes(tmp_path):
    import mrcfile

    from curated.curation import check

    raw = tmp_path / "raw"
    raw.mkdir()
    _cremi_like(raw / "sample_A.hdf")
    with mrcfile.new(raw / "stack.mrc") as m:
        m.set_data(VOL)
    for name in ("sample_A.hdf", "stack.mrc"):  # copies cut short
        data = (raw / name).read_bytes()
        (raw / f"cut_{name}").write_bytes(data[: len(data) * 2 // 3])
    report = check(None, [raw], write=False)
    cut = sorted(p for f in report.flags_by_code("truncated-image") for p in f.paths)
    assert cut == ["raw/cut_sample_A.hdf", "raw/cut_stack.mrc"]
    whole = {
        f.path: f.image for f in report.files if f.path in ("raw/sample_A.hdf", "raw/stack.mrc")
    }
    assert whole["raw/stack.mrc"]["opens"] and whole["raw/stack.mrc"]["shape"] == [8, 32, 32]
    assert whole["raw/sample_A.hdf"]["opens"] and whole["raw/sample_A.hdf"]["datasets"] == 1
    assert report.answer("C1").answer == "no"
