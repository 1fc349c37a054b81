"""Folders of per-slice PNGs (how public EM label sets and some image stacks are shared)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from curated.errors import ConversionError, InputError
from curated.images import add_labels, convert_to_ome_zarr, open_image, validate_ome_zarr
from curated.images.sources import open_source
from curated.segment._store import label_level0


def _write(folder, vol, *, bits1=()):
    folder.mkdir()
    for i, plane in enumerate(vol):
        if i in bits1:
            Image.fromarray(plane.astype(bool)).save(folder / f"s{i}.png")  # a 1-bit mask
        else:
            Image.fromarray(plane).save(folder / f"s{i}.png")
    return folder


def test_8_bit_png_slices_convert_losslessly_in_natural_order(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, (12, 30, 20), dtype=np.uint8)
    folder = _write(tmp_path / "png", vol)  # s10 sorts after s9
    with pytest.raises(InputError, match="voxel"):
        convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr")  # PNG states no spacing: asked for
    res = convert_to_ome_zarr(
        folder, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4), chunks=8, shard=16
    )
    img = open_image(tmp_path / "o.ome.zarr")
    np.testing.assert_array_equal(img.levels[0][:], vol)
    assert res.details["source_kind"] == "png-slices" and res.details["source_files"] == 12
    assert validate_ome_zarr(img.path) == []


def test_16_bit_png_slices_keep_their_values(tmp_path):
    vol = np.random.default_rng(1).integers(0, 65535, (4, 16, 24), dtype=np.uint16)
    src = open_source(_write(tmp_path / "png16", vol))
    assert src.shape == (4, 16, 24) and np.dtype(src.dtype) == np.uint16
    np.testing.assert_array_equal(src.read((slice(0, 4), slice(3, 15), slice(0, 24))), vol[:, 3:15])


def test_1_bit_masks_beside_8_bit_slices_read_as_their_samples_not_scaled(tmp_path):
    # the public Drosophila VNC mitochondria labels mix 1-bit and 8-bit PNGs in one folder
    vol = np.zeros((3, 16, 16), np.uint8)
    vol[:, 4:9, 4:9] = 1
    vol[0, 10:12, 10:12] = 7
    folder = _write(tmp_path / "labels", vol, bits1={1, 2})
    assert Image.open(folder / "s1.png").mode == "1"
    image = tmp_path / "img.ome.zarr"
    convert_to_ome_zarr(_write(tmp_path / "raw", vol * 20), image, voxel_size=(50, 5, 5))
    add_labels(image, "truth", folder, kind="truth")
    got = label_level0(image, "truth")[...]
    np.testing.assert_array_equal(got, vol)  # a 1-bit 1 is 1, not 255


@pytest.mark.parametrize(("mode", "match"), [("RGB", "8-bit RGB PNG"), ("LA", "grey \\+ alpha")])
def test_colour_and_alpha_pngs_are_refused(tmp_path, mode, match):
    vol = np.random.default_rng(2).integers(0, 255, (3, 8, 8), dtype=np.uint8)
    folder = _write(tmp_path / "png", vol)
    Image.fromarray(vol[1]).convert(mode).save(folder / "s1.png")
    with pytest.raises(ConversionError, match=match) as err:
        convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4))
    assert err.value.details["slice"] == 1
    assert not (tmp_path / "o.ome.zarr").exists()


def test_a_truncated_png_is_refused_before_anything_is_written(tmp_path):
    vol = np.random.default_rng(3).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    folder = _write(tmp_path / "png", vol)
    whole = (folder / "s2.png").read_bytes()
    (folder / "s2.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConversionError, match="truncated") as err:
        convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4))
    assert err.value.details["slice"] == 2
    assert not (tmp_path / "o.ome.zarr").exists()
    assert (folder / "s2.png").read_bytes() == whole[: len(whole) // 2]  # source untouched


def test_a_damaged_png_body_is_a_clear_error_naming_the_slice(tmp_path):
    vol = np.random.default_rng(4).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    folder = _write(tmp_path / "png", vol)
    data = bytearray((folder / "s1.png").read_bytes())
    data[60:90] = b"\xff" * 30  # inside the image data, the end chunk intact
    (folder / "s1.png").write_bytes(bytes(data))
    with pytest.raises(ConversionError, match="slice 1 cannot be decoded"):
        convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4))


def test_slices_of_different_size_and_non_png_files(tmp_path):
    vol = np.random.default_rng(5).integers(0, 255, (3, 8, 8), dtype=np.uint8)
    folder = _write(tmp_path / "png", vol)
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(folder / "s2.png")
    with pytest.raises(ConversionError, match="slice 2 has shape \\(8, 9\\)"):
        open_source(folder)
    (folder / "s2.png").write_bytes(b"not a png at all, just text")
    with pytest.raises(ConversionError, match="is not a PNG image"):
        open_source(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no TIFF slices .* or PNG slices"):
        open_source(empty)
