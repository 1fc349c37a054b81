"""Folders of 2D slices as labs hand them over: names, gaps, strays, links, multi-page slices."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.sources import open_source

VOL = np.random.default_rng(7).integers(0, 255, (6, 8, 8), dtype=np.uint8)


def _folder(tmp_path, names, name="raw"):
    folder = tmp_path / name
    folder.mkdir()
    for i, n in enumerate(names):
        tifffile.imwrite(folder / n, VOL[i % len(VOL)])
    return folder


def test_the_same_slice_number_twice_is_refused_naming_both_files(tmp_path):
    # slice_1 and slice_01 sort as equals: their order would depend on the file system
    folder = _folder(tmp_path, ["slice_1.tif", "slice_01.tif", "slice_2.tif"])
    with pytest.raises(ConversionError, match=r"slice_01\.tif and slice_1\.tif .*number 1"):
        open_source(folder)


def test_two_series_in_one_folder_are_refused_not_concatenated(tmp_path):
    folder = _folder(tmp_path, ["a_0.tif", "a_1.tif", "a_2.tif", "b_0.tif", "b_1.tif"])
    with pytest.raises(ConversionError, match=r"a_#\.tif \(3 files.*b_#\.tif \(2 files"):
        open_source(folder)


def test_tiles_of_a_mosaic_are_not_stacked_in_z(tmp_path):
    # SBEM/ATLAS exports: one file per tile and slice, all in one folder
    names = [f"Tile_r1-c{c}_slice_{z:03d}.tif" for c in (1, 2) for z in range(3)]
    folder = _folder(tmp_path, names)
    with pytest.raises(
        ConversionError,
        match=r"Tile_r1-c1_slice_000\.tif and Tile_r1-c2_slice_000\.tif both carry slice number 0",
    ):
        open_source(folder)


def test_a_timestamp_beside_the_slice_number_is_no_problem(tmp_path):
    names = [f"run_{z:03d}_t{1000 + 7 * z + (z % 2) * 3}.tif" for z in range(5)]
    src = open_source(_folder(tmp_path, names))
    assert [os.path.basename(f) for f in src.files] == names
    assert src.warnings == []


def test_slices_named_by_decimal_z_position_sort_by_value(tmp_path):
    names = ["z_0.5um.tif", "z_1.0um.tif", "z_1.25um.tif", "z_1.5um.tif", "z_10.0um.tif"]
    src = open_source(_folder(tmp_path, names[::-1]))
    assert [os.path.basename(f) for f in src.files] == names and src.warnings == []


def test_a_gap_in_the_numbering_is_a_warning_in_the_result(tmp_path):
    folder = _folder(tmp_path, [f"slice_{z:03d}.tif" for z in (0, 1, 2, 4, 5)])
    src = open_source(folder)
    assert src.shape[0] == 5
    assert any("slice_002.tif" in w and "slice_004.tif" in w for w in src.warnings)
    res = convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(50, 4, 4))
    assert (
        "1 slice number(s) of 0-5 missing: 3 (between"
        in res.details["decision"]["source_warnings"][0]
    )


def test_a_broken_link_among_the_slices_is_an_error_naming_it(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s2.tif"])
    os.symlink(tmp_path / "gone.tif", folder / "s1.tif")
    with pytest.raises(ConversionError, match="broken symbolic link") as err:
        open_source(folder)
    assert err.value.path.endswith("s1.tif")


def test_slices_that_are_links_are_read(tmp_path):
    other = _folder(tmp_path, ["x0.tif", "x1.tif"], name="elsewhere")
    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(2):
        os.symlink(other / f"x{i}.tif", folder / f"s{i}.tif")
    src = open_source(folder)
    np.testing.assert_array_equal(src.read((slice(0, 2), slice(0, 8), slice(0, 8))), VOL[:2])


def test_a_slice_saved_as_png_among_tiff_slices_is_refused(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s2.tif"])
    Image.fromarray(VOL[1]).save(folder / "s1.png")
    with pytest.raises(ConversionError, match=r"s1\.png"):
        open_source(folder)


def test_png_previews_beside_each_tiff_slice_are_not_slices(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif", "s2.tif"])
    for i in range(3):
        Image.fromarray(VOL[i][::2, ::2]).save(folder / f"s{i:02d}.png")  # zero-padded, as tools do
    assert open_source(folder).shape == (3, 8, 8)


def test_hidden_macos_and_windows_files_and_strays_are_ignored(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif", "s2.tif"])
    (folder / "._s0.tif").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # AppleDouble
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "acquisition.log").write_text("FIB-SEM run 12")
    Image.fromarray(VOL[0]).save(folder / "overview.png")  # a preview, not a slice
    src = open_source(folder)
    assert src.shape == (3, 8, 8) and src.warnings == []


@pytest.mark.parametrize("imagej", [False, True])
def test_a_slice_holding_several_pages_is_refused_not_cut_to_its_first(tmp_path, imagej):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif", "s2.tif"])
    if imagej:
        tifffile.imwrite(folder / "s1.tif", VOL[:3], imagej=True)
    else:
        with tifffile.TiffWriter(folder / "s1.tif") as w:
            for k in range(3):
                w.write(VOL[k], metadata=None)  # three plain pages, no shape description
    with pytest.raises(ConversionError, match="3 pages") as err:
        open_source(folder)
    assert err.value.path.endswith("s1.tif")


def test_a_thumbnail_page_in_a_slice_is_not_a_second_plane(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif"])
    with tifffile.TiffWriter(folder / "s1.tif") as w:
        w.write(VOL[1])
        w.write(VOL[1][::2, ::2], subfiletype=1)  # reduced-resolution preview
    src = open_source(folder)
    np.testing.assert_array_equal(src.read((slice(0, 2), slice(0, 8), slice(0, 8))), VOL[:2])


def test_a_thumbnail_written_before_the_image_is_not_taken_for_the_slice(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(3):
        with tifffile.TiffWriter(folder / f"s{i}.tif") as w:
            w.write(VOL[i][::2, ::2], subfiletype=1, metadata=None)  # preview first (TIFF/EP)
            w.write(VOL[i], metadata=None)
    src = open_source(folder)
    assert src.shape == (3, 8, 8)
    np.testing.assert_array_equal(
        src.read((slice(0, 3), slice(0, 8), slice(2, 7))), VOL[:3, :, 2:7]
    )


def test_per_slice_ome_xml_that_disagrees_on_z_is_refused(tmp_path):
    folder = tmp_path / "ome"
    folder.mkdir()
    for i in range(3):
        meta = {
            "PhysicalSizeX": 0.004,
            "PhysicalSizeY": 0.004,
            "PhysicalSizeZ": 0.05 if i else 0.03,
        }
        tifffile.imwrite(folder / f"s{i}.ome.tif", VOL[i], metadata=meta)
    with pytest.raises(
        ConversionError, match="slice 1 has pixel size z y x = 0.05 0.004 0.004"
    ) as err:
        open_source(folder)
    assert err.value.path.endswith("s1.ome.tif")


def test_order_slices_is_natural_and_lists_no_more_than_names():
    from curated.images.sources import order_slices

    got = order_slices([f"s{i}.tif" for i in (10, 2, 1, 9)])
    assert got.names == ["s1.tif", "s2.tif", "s9.tif", "s10.tif"]
    assert got.problem is None and "s2.tif" in got.gaps and "s9.tif" in got.gaps


def test_the_real_ssTEM_numbering_converts_in_order(tmp_path):
    # the public Drosophila VNC stack names its sections 00.tif ... 19.tif
    names = [f"{i:02d}.tif" for i in range(6)]
    folder = _folder(tmp_path, names)
    convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(50, 4.6, 4.6))
    np.testing.assert_array_equal(open_image(tmp_path / "o.ome.zarr").levels[0][:], VOL)


def test_import_ome_reads_a_folder_of_slices_as_one_image(tmp_path):
    from curated.errors import MetadataError
    from curated.metadata import from_ome, import_ome, init_workspace

    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(6):  # ImageJ slices: a pixel size, and a spacing no single slice can know
        tifffile.imwrite(
            folder / f"s{i:03d}.tif",
            VOL[i],
            imagej=True,
            resolution=(1 / 0.005, 1 / 0.005),
            metadata={"unit": "um", "spacing": 0.04},
        )
    imp = from_ome(folder)
    image = imp.images[0]
    assert (image["size_z"], image["size_y"], image["size_x"]) == (6, 8, 8)
    assert image["voxel_size_x"] == 5.0 and "voxel_size_z" not in image
    assert imp.source_for("images[0].size_z")["source_file"] == str(folder)
    assert any("s000.tif" in w and "6 slices" in w for w in imp.warnings)
    ws = init_workspace(tmp_path / "ws", title="VNC")
    import_ome(ws, folder)
    record = ws.read_metadata()
    assert record["images"][0]["path"] == ws.relative(folder)
    assert record["images"][0]["size_z"] == 6
    tifffile.imwrite(
        folder / "s007.tif",
        VOL[0],
        imagej=True,
        resolution=(1 / 0.005, 1 / 0.005),
        metadata={"unit": "um"},
    )
    assert any("0-7 missing: 6 (between" in w for w in from_ome(folder).warnings)
    tifffile.imwrite(folder / "other_1.tif", VOL[0])
    tifffile.imwrite(folder / "other_2.tif", VOL[0])
    with pytest.raises(MetadataError, match="series of slice names") as err:
        from_ome(folder)
    assert err.value.path == str(folder)


def _grey_or(path, plane, photometric, colormap=None):
    tifffile.imwrite(path, plane, photometric=photometric, colormap=colormap)


def test_a_palette_slice_among_grey_ones_is_a_warning_and_a_palette_stack_a_note(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif", "s2.tif"])
    cmap = np.zeros((3, 256), np.uint16)
    cmap[0] = np.arange(256)[::-1] * 257  # a red ramp, reversed: shown colours are not the values
    _grey_or(folder / "s1.tif", VOL[1], "palette", cmap)
    src = open_source(folder)
    assert any("s1.tif (palette)" in w for w in src.warnings)
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 8), slice(0, 8))), VOL[:3])
    # ImageJ saves labels shown with a colour LUT (glasbey) as a palette TIFF: values are the data
    _grey_or(tmp_path / "stack.tif", VOL[:3], "palette", cmap)
    src = open_source(tmp_path / "stack.tif")
    assert any(n.startswith("ColorMap: a palette TIFF") for n in src.not_carried)
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 8), slice(0, 8))), VOL[:3])


def test_a_grey_ramp_palette_is_read_as_the_grey_values_it_is(tmp_path):
    ramp = np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1))
    _grey_or(tmp_path / "stack.tif", VOL[:3], "palette", ramp)
    src = open_source(tmp_path / "stack.tif")
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 8), slice(0, 8))), VOL[:3])
    assert not any(n.startswith("ColorMap: a palette TIFF") for n in src.not_carried)


def test_a_min_is_white_slice_among_min_is_black_ones_is_a_warning(tmp_path):
    folder = _folder(tmp_path, ["s0.tif", "s1.tif", "s2.tif"])
    _grey_or(folder / "s1.tif", VOL[1], "miniswhite")
    src = open_source(folder)
    assert any("s1.tif (MinIsWhite)" in w and "s0.tif (MinIsBlack)" in w for w in src.warnings)
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 8), slice(0, 8))), VOL[:3])


def test_a_min_is_white_stack_keeps_its_values_and_says_so(tmp_path):
    _grey_or(tmp_path / "inv.tif", VOL[:3], "miniswhite")  # ImageJ's inverting LUT
    src = open_source(tmp_path / "inv.tif")
    assert any("MinIsWhite" in n for n in src.not_carried)
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 8), slice(0, 8))), VOL[:3])


def test_a_folder_of_jpeg_slices_is_refused_saying_why(tmp_path):
    from curated.errors import InputError

    folder = tmp_path / "jpg"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(VOL[i]).save(folder / f"s{i}.jpg")
    with pytest.raises(InputError, match="3 JPEG") as err:
        open_source(folder)
    assert "lossy" in err.value.message


def test_a_stack_whose_first_page_is_a_preview_converts_its_planes(tmp_path):
    with tifffile.TiffWriter(tmp_path / "ep.tif") as w:
        w.write(VOL[0][::2, ::2], subfiletype=1, metadata=None)  # TIFF/EP: preview in IFD 0
        for k in range(4):
            w.write(VOL[k], metadata=None)
    src = open_source(tmp_path / "ep.tif")
    assert src.shape == (4, 8, 8)
    np.testing.assert_array_equal(src.read((slice(0, 4), slice(0, 8), slice(0, 8))), VOL[:4])
    assert any("(4, 4)" in n and "not converted" in n for n in src.not_carried)


def test_a_preview_in_ifd_0_does_not_supply_the_pixel_size(tmp_path):
    # TIFF/EP: the preview's resolution tags describe the preview's (coarser) pixels
    per_cm = 1e7 / 10.0  # 10 nm pixels
    with tifffile.TiffWriter(tmp_path / "ep.tif") as w:
        w.write(
            VOL[0][::2, ::2], subfiletype=1, metadata=None,
            resolution=(per_cm / 2, per_cm / 2), resolutionunit="CENTIMETER",
        )  # fmt: skip
        for k in range(4):
            w.write(VOL[k], metadata=None, resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    src = open_source(tmp_path / "ep.tif")
    assert src.shape == (4, 8, 8)
    assert src.voxel_size is not None and tuple(src.voxel_size)[1:] == (10.0, 10.0)
    assert src.unit == "nanometer"


def test_a_parent_folder_of_slice_folders_names_its_sub_folders(tmp_path):
    from curated.errors import InputError

    (tmp_path / "export").mkdir()  # a lab's export in two parts
    _folder(tmp_path / "export", ["s0.tif", "s1.tif"], name="part1")
    _folder(tmp_path / "export", ["s2.tif", "s3.tif"], name="part2")
    with pytest.raises(InputError, match=r"2 sub-folder\(s\) \(part1, part2\)"):
        open_source(tmp_path / "export")
