"""HDF5, MRC, Zarr v2/v3, N5 and OME-Zarr 0.4 sources: pixels identical, voxel sizes only where stated, bad input named."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys

import h5py
import mrcfile
import numpy as np
import pytest
import tensorstore as ts
import zarr

from curated.errors import ConversionError, InputError, MetadataError
from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr
from curated.images.shards import ABORT_ENV
from curated.images.sources import open_source
from curated.metadata import from_ome, import_ome, init_workspace

VOL = np.random.default_rng(7).integers(0, 60000, (20, 33, 41), dtype=np.uint16)
SMALL = {"chunks": 16, "shard": 32, "workers": 1}


def h5(path, **attrs):
    with h5py.File(path, "w") as f:
        d = f.create_dataset("/volumes/raw", data=VOL, chunks=(8, 16, 16), compression="gzip")
        d.attrs.update(attrs)
        f.create_dataset("/volumes/labels", data=VOL.astype(np.uint8))
    return path


def mrc(path, voxel=(4.0, 4.0, 8.5)):
    with mrcfile.new(path) as m:
        m.set_data(VOL.astype(np.int16))
        m.voxel_size = voxel
    return path


def n5(root):
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(root / "raw")},
        "metadata": {
            "dimensions": list(VOL.shape[::-1]),
            "blockSize": [16, 16, 8],
            "dataType": "uint16",
            "compression": {"type": "gzip"},
        },  # fmt: skip
        "create": True,
    }
    arr = ts.open(spec).result()
    arr[...] = VOL.T  # N5 order is x y z
    meta = root / "raw" / "attributes.json"
    attrs = json.loads(meta.read_text())
    attrs["pixelResolution"] = {"dimensions": [4, 4, 8], "unit": "nm"}
    meta.write_text(json.dumps(attrs))
    (root / "attributes.json").write_text(json.dumps({"n5": "2.0.0"}))
    return root


def zarr_array(path, fmt, **attrs):
    z = zarr.create_array(
        str(path), shape=VOL.shape, chunks=(8, 16, 16), dtype=VOL.dtype, zarr_format=fmt
    )
    z[:] = VOL
    z.attrs.update(attrs)
    return path


# -------------------------------------------------------- pixels and voxels
def test_hdf5_dataset_converts_identically_with_element_size(tmp_path):
    src = h5(tmp_path / "v.h5", element_size_um=[0.008, 0.004, 0.004])
    res = convert_to_ome_zarr(f"{src}:/volumes/raw", tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["voxel_size"] == [8.0, 4.0, 4.0]
    assert res.details["source_kind"] == "hdf5" and res.details["source_key"] == "/volumes/raw"
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL)
    assert validate_ome_zarr(tmp_path / "o.ome.zarr") == []


def test_hdf5_resolution_without_unit_is_not_a_voxel_size(tmp_path):
    src = h5(tmp_path / "v.h5", resolution=[8, 4, 4])
    # the refusal shows what the file states, so the curator can pass it with its unit
    with pytest.raises(InputError, match=r"@resolution = \[8, 4, 4\] states no unit.*--voxel-size"):
        convert_to_ome_zarr(f"{src}:/volumes/raw", tmp_path / "o.ome.zarr", **SMALL)
    with pytest.raises(MetadataError, match=r"@resolution = \[8, 4, 4\] states no unit"):
        from_ome(f"{src}:/volumes/raw")


def test_mrc_converts_identically_with_the_header_voxel_size(tmp_path):
    src = mrc(tmp_path / "tomo.mrc")
    res = convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["voxel_size"] == [0.85, 0.4, 0.4]  # 8.5 and 4 angstrom
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL.astype(np.int16))
    imp = from_ome(src)
    assert imp.images[0]["voxel_size_z"] == 0.85 and imp.images[0]["image_format"] == "MRC"
    assert imp.source_for("images[0].voxel_size_z")["source_value"] == "8.5 angstrom"


def test_mrc_without_cell_size_asks_for_the_voxel_size(tmp_path):
    src = mrc(tmp_path / "tomo.mrc", voxel=(0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="--voxel-size"):
        convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", **SMALL)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_arrays_convert_identically(tmp_path, fmt):
    attrs = {"transform": {"axes": ["z", "y", "x"], "scale": [8, 4, 4], "units": ["nm"] * 3}}
    src = zarr_array(tmp_path / "a.zarr", fmt, **attrs)
    res = convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["voxel_size"] == [8.0, 4.0, 4.0] and res.details["source_kind"] == "zarr"
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL)


def test_n5_array_converts_identically_in_z_y_x_order(tmp_path):
    root = n5(tmp_path / "v.n5")
    res = convert_to_ome_zarr(f"{root}:/raw", tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["shape"] == [20, 33, 41] and res.details["voxel_size"] == [8.0, 4.0, 4.0]
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL)
    with pytest.raises(InputError, match="N5 group.*/raw"):
        open_source(root)


def test_ome_zarr_04_is_re_encoded_as_05(tmp_path):
    old = tmp_path / "old.ome.zarr"
    convert_to_ome_zarr(zarr_array(tmp_path / "a.zarr", 2), old, voxel_size=(8, 4, 4), ngff_version="0.4", **SMALL)  # fmt: skip
    res = convert_to_ome_zarr(old, tmp_path / "new.ome.zarr", **SMALL)
    new = open_image(tmp_path / "new.ome.zarr")
    assert new.ngff_version == "0.5" and new.voxel_size == (8.0, 4.0, 4.0)
    np.testing.assert_array_equal(new.read(0), VOL)
    assert validate_ome_zarr(tmp_path / "new.ome.zarr") == []
    assert res.details["source_kind"] == "ome-zarr"


def test_a_bioformats2raw_container_of_one_series_converts_its_image(tmp_path):
    """bioformats2raw writes each series of a vendor file as an OME-Zarr image ``0/``, ``1/``,
    ... inside a plain group marked ``bioformats2raw.layout``; with one series that image is
    what the curator means; with several they are named, images rather than their arrays."""
    scan = tmp_path / "scan.zarr"
    zarr.open_group(str(scan), mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    convert_to_ome_zarr(zarr_array(tmp_path / "a.zarr", 2), scan / "0", voxel_size=(8, 4, 4), ngff_version="0.4", **SMALL)  # fmt: skip
    src = open_source(scan)
    assert src.kind == "ome-zarr" and src.shape == VOL.shape and src.voxel_size == (8.0, 4.0, 4.0)
    res = convert_to_ome_zarr(scan, tmp_path / "o.ome.zarr", **SMALL)
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL)
    assert res.details["source_kind"] == "ome-zarr"
    convert_to_ome_zarr(zarr_array(tmp_path / "b.zarr", 2), scan / "1", voxel_size=(8, 4, 4), ngff_version="0.4", **SMALL)  # fmt: skip
    with pytest.raises(
        InputError, match=r"OME-Zarr images in it: /0, /1; name one as scan\.zarr:/path"
    ):
        open_source(scan)
    assert open_source(f"{scan}:/1").shape == VOL.shape


# --------------------------------------------------------------- bad input
def test_hdf5_file_with_several_datasets_names_them(tmp_path):
    src = h5(tmp_path / "v.h5")
    with pytest.raises(
        InputError,
        match=r"holds 2 datasets \(/volumes/labels, /volumes/raw\); name one as v\.h5:/path",
    ):
        open_source(src)
    with pytest.raises(InputError, match="/volumes is a group, not a dataset"):
        open_source(f"{src}:/volumes")
    with pytest.raises(InputError, match="/nope is no such dataset"):
        open_source(f"{src}:/nope")


def test_truncated_hdf5_and_mrc_get_a_clear_error_and_nothing_is_written(tmp_path):
    good = h5(tmp_path / "v.h5")
    (tmp_path / "cut.h5").write_bytes(good.read_bytes()[:3000])
    with pytest.raises(ConversionError, match="HDF5.*copy it again"):
        convert_to_ome_zarr(
            f"{tmp_path / 'cut.h5'}:/volumes/raw", tmp_path / "o.ome.zarr", voxel_size=1
        )
    cut = mrc(tmp_path / "t.mrc")
    (tmp_path / "cut.mrc").write_bytes(cut.read_bytes()[:5000])
    with pytest.raises(ConversionError, match="MRC.*copy it again"):
        convert_to_ome_zarr(tmp_path / "cut.mrc", tmp_path / "o.ome.zarr", voxel_size=1)
    assert not (tmp_path / "o.ome.zarr").exists()


def test_unsupported_pixel_type_is_refused(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("x", data=np.zeros((4, 4, 4), np.complex64))
    with pytest.raises(ConversionError, match="pixel type complex64 is not supported"):
        open_source(f"{tmp_path / 'c.h5'}:/x")


def test_destination_inside_the_source_store_is_refused(tmp_path):
    src = zarr_array(tmp_path / "a.zarr", 3)
    with pytest.raises(InputError, match="inside the source store"):
        convert_to_ome_zarr(src, src / "out.ome.zarr", voxel_size=1, **SMALL)
    assert not (src / "out.ome.zarr").exists()


def test_stored_sources_pickle_for_distributed_workers(tmp_path):
    src = open_source(f"{h5(tmp_path / 'v.h5', element_size_um=[1, 1, 1])}:/volumes/raw")
    again = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(
        again.read((slice(2, 5), slice(0, 9), slice(3, 40))), VOL[2:5, 0:9, 3:40]
    )


def test_interrupted_hdf5_conversion_resumes_bit_identical(tmp_path):
    src = f"{h5(tmp_path / 'v.h5', element_size_um=[0.008, 0.004, 0.004])}:/volumes/raw"
    params = {"chunks": 8, "shard": 16, "workers": 1}
    code = (
        "import sys; from curated.images import convert_to_ome_zarr; "
        f"convert_to_ome_zarr(sys.argv[1], sys.argv[2], **{params!r})"
    )
    env = {**os.environ, ABORT_ENV: "3"}
    dest = tmp_path / "killed.ome.zarr"
    run = subprocess.run(
        [sys.executable, "-c", code, src, str(dest)], env=env, check=False, timeout=120
    )
    assert run.returncode == 75
    res = convert_to_ome_zarr(src, dest, **params)
    ref = convert_to_ome_zarr(src, tmp_path / "whole.ome.zarr", **params)
    assert res.details["resumed"] is True
    assert res.details["shards_written"] == ref.details["shards_written"] - 3
    assert res.details["store_digest"] == ref.details["store_digest"]


def test_import_ome_reads_hdf5_and_records_the_source(tmp_path):
    src = h5(tmp_path / "v.h5", element_size_um=[0.008, 0.004, 0.004])
    ws = init_workspace(tmp_path / "ws", "HDF5 volume")
    res = import_ome(ws, f"{src}:/volumes/raw")
    assert res.status == "ok"
    record = ws.read_metadata()
    image = record["images"][0]
    assert (image["size_z"], image["voxel_size_z"], image["image_format"]) == (20, 8.0, "HDF5")
    sources = {s["field"]: s for s in record["sources"]}
    assert sources["images[0].voxel_size_x"]["source_kind"] == "file_header"
    assert sources["images[0].voxel_size_x"]["source_path"] == "hdf5:@element_size_um"


def test_sources_are_never_modified(tmp_path):
    src = h5(tmp_path / "v.h5", element_size_um=[1, 1, 1])
    m = mrc(tmp_path / "t.mrc")
    before = (src.read_bytes(), m.read_bytes())
    convert_to_ome_zarr(f"{src}:/volumes/raw", tmp_path / "a.ome.zarr", **SMALL)
    convert_to_ome_zarr(m, tmp_path / "b.ome.zarr", **SMALL)
    assert (src.read_bytes(), m.read_bytes()) == before


def test_cli_converts_an_hdf5_dataset_and_imports_its_header(tmp_path):
    from typer.testing import CliRunner

    from curated.cli import app

    src = h5(tmp_path / "v.h5", element_size_um=[0.008, 0.004, 0.004])
    run = CliRunner().invoke(app, ["convert", f"{src}:/volumes/raw", str(tmp_path / "o.ome.zarr"), "--chunks", "16", "--shard", "32"])  # fmt: skip
    assert run.exit_code == 0, run.output
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL)
    init_workspace(tmp_path / "ws", "HDF5")
    run = CliRunner().invoke(app, ["metadata", "import-ome", str(tmp_path / "ws"), f"{src}:/volumes/labels"])  # fmt: skip
    assert run.exit_code == 1 and "no voxel size with a unit" in run.output


def test_absent_chunks_are_named_not_silently_zero(tmp_path):
    src = zarr_array(tmp_path / "a.zarr", 2)
    full = open_source(src)
    assert not any("not stored" in n for n in full.not_carried)
    (src / "1.0.0").unlink()  # one chunk lost, as in a partial copy
    res = convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", voxel_size=1, **SMALL)
    notes = res.details["decision"]["not_carried_over"]
    assert any("1 of 27 chunks are not stored" in n for n in notes)
    root = n5(tmp_path / "v.n5")
    assert not any("not stored" in n for n in open_source(f"{root}:/raw").not_carried)
    next(
        p for p in (root / "raw").rglob("*") if p.is_file() and p.name != "attributes.json"
    ).unlink()
    assert any("1 of 27 chunks" in n for n in open_source(f"{root}:/raw").not_carried)


def test_hdf5_filter_that_is_not_installed_is_named_at_open(tmp_path):
    with h5py.File(tmp_path / "b.h5", "w") as f:  # 32001 is Blosc's HDF5 filter id
        f.create_dataset("x", shape=(4, 4, 4), dtype="u1", chunks=(4, 4, 4), compression=32001, allow_unknown_filter=True)  # fmt: skip
    with pytest.raises(ConversionError, match="HDF5 filter 32001.*not installed.*hdf5plugin"):
        open_source(f"{tmp_path / 'b.h5'}:/x")


def test_zarr_array_inside_a_group_is_named_with_a_key(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    arr = group.create_array("volumes/raw", shape=VOL.shape, chunks=(8, 16, 16), dtype=VOL.dtype)
    arr[:] = VOL
    with pytest.raises(InputError, match="is a Zarr group.*name one as g.zarr:/path"):
        open_source(tmp_path / "g.zarr")
    src = open_source(f"{tmp_path / 'g.zarr'}:/volumes/raw")
    assert src.kind == "zarr" and src.shape == VOL.shape and src.name == "g-volumes-raw"
    np.testing.assert_array_equal(src.read((slice(0, 20), slice(0, 33), slice(0, 41))), VOL)


def test_mrc_image_stack_gets_no_z_spacing(tmp_path):
    with mrcfile.new(tmp_path / "stack.mrcs") as m:
        m.set_data(VOL.astype(np.int16))
        m.set_image_stack()
        m.voxel_size = 4.0
    src = open_source(tmp_path / "stack.mrcs")
    assert src.voxel_size == (None, 4.0, 4.0)
    with pytest.raises(InputError, match="no z spacing.*--voxel-size"):
        convert_to_ome_zarr(tmp_path / "stack.mrcs", tmp_path / "o.ome.zarr", **SMALL)


def test_a_slice_folder_named_like_an_mrc_file_is_still_a_slice_folder(tmp_path):
    import tifffile

    folder = tmp_path / "run.rec"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"s{i}.tif", VOL[i])
    src = open_source(folder)
    assert src.kind == "slices" and src.shape == (3, 33, 41)


# ------------------------------------------------ MRC headers as real software writes them
def _patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_imod_mode0_file_keeps_its_unsigned_bytes(tmp_path):
    """IMOD and SerialEM write mode 0 as unsigned bytes (imodStamp set, imodFlags bit 1 clear):
    200 stays 200, not -56, and the downsampled levels average the real values."""
    u8 = (VOL % 256).astype(np.uint8)
    with mrcfile.new(tmp_path / "tomo.rec") as m:
        m.set_data(u8.view(np.int8))
        m.voxel_size = 10.0
    _patch(tmp_path / "tomo.rec", 152, struct.pack("<ii", 1146047817, 0))  # imodStamp, imodFlags
    src = open_source(tmp_path / "tomo.rec")
    assert np.dtype(src.dtype) == np.uint8
    res = convert_to_ome_zarr(tmp_path / "tomo.rec", tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["dtype"] == "u1"
    img = open_image(tmp_path / "o.ome.zarr")
    np.testing.assert_array_equal(img.read(0), u8)
    assert from_ome(tmp_path / "tomo.rec").images[0]["dtype"] == "uint8"
    # the signed-bytes flag set, or no IMOD stamp at all (MRC2014): signed, as the file says
    _patch(tmp_path / "tomo.rec", 156, struct.pack("<i", 1))
    assert np.dtype(open_source(tmp_path / "tomo.rec").dtype) == np.int8
    _patch(tmp_path / "tomo.rec", 152, struct.pack("<ii", 0, 0))
    assert np.dtype(open_source(tmp_path / "tomo.rec").dtype) == np.int8


@pytest.mark.filterwarnings("ignore:Unrecognised machine stamp:RuntimeWarning")  # mrcfile, per read
def test_mrc_with_an_unusual_machine_stamp_is_read_not_called_damaged(tmp_path):
    """Some exporters write the machine stamp 0x44 0x20 0x20 0x20 (mrcfile issue 47): the file
    is whole; it converts, with the quirk noted, instead of 'truncated or damaged, copy it again'."""
    src = mrc(tmp_path / "t.mrc")
    _patch(src, 212, bytes([0x44, 0x20, 0x20, 0x20]))
    opened = open_source(src)
    assert any("machine stamp" in n for n in opened.not_carried)
    convert_to_ome_zarr(src, tmp_path / "o.ome.zarr", **SMALL)
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), VOL.astype(np.int16))


def test_mrc_map_with_z_in_its_columns_is_read_as_zyx(tmp_path):
    """EMDB maps may store their axes in another order (EMD-3001: mapc/mapr/maps = 3, 1, 2):
    the converted image is z, y, x with each axis's own spacing, not the file's order relabelled."""
    zyx = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)  # z=5, y=6, x=7
    with mrcfile.new(tmp_path / "emd.map") as m:
        m.set_data(np.ascontiguousarray(zyx.transpose(1, 2, 0)))  # sections y, rows x, columns z
        m.header.mapc, m.header.mapr, m.header.maps = 3, 1, 2
        m.header.mx, m.header.my, m.header.mz = 7, 6, 5
        m.header.cella = (7 * 2.0, 6 * 3.0, 5 * 4.0)  # x 2, y 3, z 4 angstrom
    src = open_source(tmp_path / "emd.map")
    assert src.axes == "zyx" and src.shape == (5, 6, 7)
    assert src.voxel_size == (4.0, 3.0, 2.0)
    np.testing.assert_array_equal(
        src.read((slice(1, 4), slice(0, 6), slice(2, 5))), zyx[1:4, :, 2:5]
    )
    res = convert_to_ome_zarr(tmp_path / "emd.map", tmp_path / "o.ome.zarr", **SMALL)
    assert res.details["voxel_size"] == [0.4, 0.3, 0.2]
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").read(0), zyx)


def test_hdf5_in_plane_deep_chunks_decodes_each_chunk_once_not_once_per_shard(
    tmp_path, monkeypatch
):
    """A stack written slice by slice (``chunks=(1, Y, X)``, gzip) was read a shard region at a
    time, and HDF5 decodes a whole chunk for any part of it: every shard across a plane decoded
    all of it (64 times per 4096² plane with 512² shards; 193 s instead of 7 s for 32 of them).
    Chunks used in part now go through the decoded-segment cache: each is decoded once."""
    from curated.images import stored

    monkeypatch.setattr(stored, "PLANE_CHUNK_BYTES", 1, raising=False)  # engage for tiny chunks
    vol = np.random.default_rng(3).integers(0, 4000, (6, 64, 48), dtype=np.uint16)
    path = tmp_path / "slices.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=vol, chunks=(1, 64, 48), compression="gzip")
    reads: list[tuple] = []
    real = h5py.Dataset.__getitem__

    def counting(self, key):
        reads.append(key)
        return real(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    dest = tmp_path / "out.ome.zarr"
    res = convert_to_ome_zarr(
        f"{path}:/raw", dest, voxel_size=(8, 4, 4), chunks=8, shard=16, workers=2
    )
    assert res.status == "ok"
    monkeypatch.setattr(h5py.Dataset, "__getitem__", real)
    np.testing.assert_array_equal(open_image(dest).levels[0][:], vol)
    # 6 chunk reads, one per plane (before: 12 reads, one per 16 x 16 shard, each decoding
    # the chunks of all 6 planes: 72 decodes)
    assert len(reads) == 6


def test_hdf5_in_plane_deep_chunks_reads_big_endian_and_damage_as_before(tmp_path, monkeypatch):
    from curated.images import stored

    monkeypatch.setattr(stored, "PLANE_CHUNK_BYTES", 1, raising=False)
    vol = np.random.default_rng(4).integers(0, 4000, (3, 32, 32), dtype=np.uint16)
    path = tmp_path / "be.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=vol.astype(">u2"), chunks=(1, 32, 32), compression="gzip")
    src = open_source(f"{path}:/raw")
    region = (slice(0, 3), slice(5, 20), slice(7, 31))
    got = src.read(region)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, vol[region])
    with h5py.File(path, "r") as f:
        offset = f["raw"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:  # garbage in plane 1's gzip stream
        fh.seek(offset + 10)
        fh.write(bytes(range(200)))
    from curated.images.sources import close_cached_files

    close_cached_files()  # the file changed: nothing kept from before
    with pytest.raises(ConversionError, match="cannot be read"):
        open_source(f"{path}:/raw").read((slice(1, 2), slice(0, 16), slice(0, 16)))
