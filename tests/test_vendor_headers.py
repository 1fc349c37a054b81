"""Real microscope headers in, nothing invented: Zeiss, FEI, JEOL, TVIPS, ImageJ and OME multi-image files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curated.curation import check
from curated.errors import ConversionError, InputError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.sources import open_source
from curated.images.vendor import _tvips
from curated.metadata import from_ome, import_ome, init_workspace

DATA = Path(__file__).parent / "data" / "vendor"
ZEISS = DATA / "zeiss_auriga_fibsem.tif"
FEI = DATA / "fei_helios.tif"
JEOL = DATA / "jeol_sightx_tem.tif"


def fei_header(pixel: str = "5e-09", user: str = "supervisor", rows: int | None = None) -> str:
    image = "" if rows is None else f"[Image]\r\nResolutionX=16\r\nResolutionY={rows}\r\n"
    return (
        f"[User]\r\nDate=03/12/2026\r\nTime=02:15:07 PM\r\nUser={user}\r\n[System]\r\nSystemType=Helios 5 PFIB\r\n"
        f"[EBeam]\r\nHV=2000\r\n[Scan]\r\nPixelWidth={pixel}\r\nPixelHeight={pixel}\r\n{image}"
    )


def fei_slice(path: Path, header: str, shape=(12, 16), value: int = 0) -> Path:
    data = (np.arange(np.prod(shape)) % 200 + value).reshape(shape).astype(np.uint8)
    tifffile.imwrite(path, data, extratags=[(34682, "s", 0, header, True)])
    return path


# ------------------------------------------------------------------ Zeiss
def test_zeiss_smartsem_header_imports_pixel_size_beam_and_date_with_sources():
    imp = from_ome(ZEISS)
    assert imp.kind == "zeiss"
    image = imp.images[0]
    assert (image["voxel_size_x"], image["voxel_size_y"], image["voxel_size_unit"]) == (
        12.33,
        12.33,
        "nanometer",
    )
    assert "voxel_size_z" not in image and image["size_z"] == 2
    acq = imp.acquisition
    assert acq["instrument_model"] == "Auriga 60" and acq["detector_description"] == "InLens"
    assert acq["fibsem"] == {
        "detector": ["InLens"],
        "sem_accelerating_voltage_kv": 1.8,
        "sem_beam_current_na": 4.7,
        "dwell_time_us": 0.1,
        "working_distance_mm": 4.5,
        "fib_accelerating_voltage_kv": 29.97,
    }
    assert acq["acquisition_date"] == "2016-04-18T22:42:02"
    src = imp.source_for("images[0].voxel_size_x")
    assert src["source_path"] == "zeiss:ap_image_pixel_size" and src["source_value"] == "12.33 nm"
    assert imp.source_for("acquisition.fibsem.dwell_time_us")["source_value"] == "100 ns"


def test_zeiss_user_name_and_user_folder_are_flagged_never_imported(tmp_path):
    ws = init_workspace(tmp_path / "ws", "Zeiss FIB-SEM")
    result = import_ome(ws, ZEISS)
    found = {p["source_path"] for p in result.details["personal_data"]}
    assert found == {"zeiss:sv_user_name", "zeiss:sv_image_path"}
    text = (
        ws.metadata_path.read_text(encoding="utf-8")
        + (ws.root / "curation" / "log.jsonl").read_text()
    )
    assert "JDOE" not in text and "jdoe" not in text
    assert any("personal data" in w for w in result.details["warnings"])


def test_zeiss_stack_converts_with_its_pixel_size_and_asks_for_z(tmp_path):
    with pytest.raises(
        InputError, match=r"y=12\.33 x=12\.33 nanometer but no z spacing.*--voxel-size"
    ):
        convert_to_ome_zarr(ZEISS, tmp_path / "z.ome.zarr")
    assert not (tmp_path / "z.ome.zarr").exists()
    convert_to_ome_zarr(ZEISS, tmp_path / "z.ome.zarr", voxel_size=(50, 12.33, 12.33), chunks=16)
    img = open_image(tmp_path / "z.ome.zarr")
    np.testing.assert_array_equal(img.read(0), tifffile.imread(ZEISS))


# -------------------------------------------------------------------- FEI
def test_fei_acquisition_date_and_data_bar_rows_are_reported():
    imp = from_ome(FEI)
    assert imp.images[0]["size_y"] == 442  # 471 page rows, 29 of them the data bar
    assert any("data bar" in w and "442-470" in w for w in imp.warnings)
    assert imp.acquisition["acquisition_date"] == "2016-06-13T17:06:40"
    assert imp.images[0]["voxel_size_x"] == 3372.4
    assert imp.acquisition["fibsem"]["working_distance_mm"] == 4.03466
    assert not imp.personal_data  # User=supervisor is a role account, not a person


def test_fei_user_is_flagged_as_personal_data(tmp_path):
    imp = from_ome(fei_slice(tmp_path / "s.tif", fei_header(user="mrossi")))
    assert imp.personal_data == [
        {
            "what": "user name",
            "source_path": "fei:User@User",
            "source_file": str(tmp_path / "s.tif"),
        }
    ]
    assert imp.acquisition["acquisition_date"] == "2026-03-12T14:15:07"


def test_fei_slice_folder_converts_with_fei_pixel_sizes_and_crops_the_data_bar(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(3):
        fei_slice(folder / f"s{i:02d}.tif", fei_header("9.765625e-08", rows=10), value=i)
    src = open_source(folder)
    assert src.shape == (3, 10, 16) and src.voxel_size == (None, 97.65625, 97.65625)
    with pytest.raises(InputError, match="no z spacing.*--voxel-size"):
        convert_to_ome_zarr(folder, tmp_path / "a.ome.zarr")
    result = convert_to_ome_zarr(
        folder, tmp_path / "a.ome.zarr", voxel_size=(50, 97.65625, 97.65625)
    )
    img = open_image(tmp_path / "a.ome.zarr")
    expected = np.stack([tifffile.imread(f)[:10] for f in sorted(folder.iterdir())])
    np.testing.assert_array_equal(img.read(0), expected)
    assert any("data bar" in n for n in result.details["decision"]["not_carried_over"])


def test_a_voxel_size_that_contradicts_the_vendor_header_is_named(tmp_path):
    """--voxel-size 50 0.005 0.005 typed in micrometres (the unit is nanometer) is 1000 times
    off the FEI header's 5 nm: the result, the log and the CLI say so; the given size is used."""
    from typer.testing import CliRunner

    from curated.cli import app

    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(3):
        fei_slice(folder / f"s{i:02d}.tif", fei_header("5e-09"), value=i)
    slip = convert_to_ome_zarr(folder, tmp_path / "a.ome.zarr", voxel_size=(50, 0.005, 0.005))
    note = slip.details["decision"]["voxel_size_disagrees"]
    assert "y=0.005 x=0.005 nanometer" in note and "fei:Scan@PixelWidth" in note
    assert "y=5 x=5 nanometer" in note
    assert slip.details["voxel_size"] == [50.0, 0.005, 0.005]
    agree = convert_to_ome_zarr(folder, tmp_path / "b.ome.zarr", voxel_size=(50, 5, 5))
    assert "voxel_size_disagrees" not in agree.details["decision"]
    out = CliRunner().invoke(
        app,
        [
            "convert",
            str(folder),
            str(tmp_path / "c.ome.zarr"),
            "--voxel-size",
            "50",
            "5",
            "5",
            "--unit",
            "micrometer",
        ],
    )
    assert out.exit_code == 0 and "differs from the file's metadata" in " ".join(out.output.split())


def test_fei_slices_with_different_pixel_sizes_are_refused_naming_the_first(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    fei_slice(folder / "s01.tif", fei_header("9.77e-08"))
    fei_slice(folder / "s02.tif", fei_header("9.77e-08"))
    fei_slice(folder / "s03.tif", fei_header("2.604e-07"))
    fei_slice(folder / "s04.tif", fei_header("9.77e-08"))
    with pytest.raises(ConversionError, match=r"slice 2 has pixel size y x = 260\.4 260\.4") as err:
        open_source(folder)
    assert err.value.path.endswith("s03.tif")


def test_slice_folder_with_a_different_dtype_names_the_slice(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    tifffile.imwrite(folder / "a1.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(folder / "a2.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(ConversionError, match="slice 1 has shape") as err:
        open_source(folder)
    assert err.value.path.endswith("a2.tif")


# ------------------------------------------------------------- JEOL / DPI
def test_jeol_sightx_pixel_size_comes_from_magnification_not_dpi():
    imp = from_ome(JEOL)
    assert imp.kind == "jeol"
    assert imp.images[0]["voxel_size_x"] == 1.82  # not 273118 nm from the 93 dpi tag
    assert imp.acquisition["instrument_model"] == "JEM-ARM200F"
    assert imp.acquisition["acquisition_date"].startswith("2019-11-27T16:11:26")
    assert [p["source_path"] for p in imp.personal_data] == ["jeol:TemReporter/Operator"]


def test_dpi_without_a_scientific_source_is_never_a_voxel_size(tmp_path):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(93, 93), resolutionunit="INCH")
    imp = from_ome(path, require_metadata=False)
    assert "voxel_size_x" not in imp.images[0]
    assert any("93 dpi" in w and "not a pixel size" in w for w in imp.warnings)


# ------------------------------------------------------------------ TVIPS
def test_tvips_pixel_size_is_rounded_to_float32_precision():
    # values as tifffile parses them from TVIPS_bin4.tif (RosettaSciIO test data)
    head = _tvips({"PixelSizeX": 1.4208036661148071, "PixelSizeY": 1.4208036661148071, "CameraType": "F416", "TemHighTension": 99000.0})  # fmt: skip
    assert head.pixel_size_nm == (1.420804, 1.420804)
    assert {v.where: v.value for v in head.values}[
        "acquisition.detector_description"
    ] == "TVIPS F416"


# ----------------------------------------------------------------- ImageJ
def imagej_slice(path: Path, spacing: float | None = None) -> Path:
    meta = {"unit": "um"}
    if spacing is not None:
        meta["spacing"] = spacing
    tifffile.imwrite(
        path, np.zeros((6, 6), np.uint16), imagej=True, resolution=(0.4, 0.4), metadata=meta
    )
    return path


def test_imagej_slice_folder_asks_for_the_z_spacing_instead_of_inventing_it(tmp_path):
    folder = tmp_path / "ij"
    folder.mkdir()
    for i in range(3):
        imagej_slice(folder / f"z{i}.tif")
    with pytest.raises(
        InputError, match=r"y=2\.5 x=2\.5 micrometer but no z spacing.*--voxel-size"
    ):
        convert_to_ome_zarr(folder, tmp_path / "ij.ome.zarr")


def test_imagej_voxel_sizes_carry_no_float_noise(tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(
        stack,
        np.zeros((3, 6, 6), np.uint16),
        imagej=True,
        resolution=(0.4, 0.4),
        metadata={"unit": "um", "spacing": 2.5, "axes": "ZYX"},
    )
    result = convert_to_ome_zarr(stack, tmp_path / "s.ome.zarr")
    assert result.details["voxel_size"] == [2500.0, 2500.0, 2500.0]
    assert from_ome(stack).images[0]["voxel_size_x"] == 2500.0


def test_a_stack_without_imagej_spacing_gets_no_invented_z(tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(
        stack, np.zeros((3, 6, 6), np.uint16), imagej=True, resolution=(0.4, 0.4), metadata={"unit": "um", "axes": "ZYX"}
    )  # fmt: skip
    with pytest.raises(InputError, match="no z spacing"):
        convert_to_ome_zarr(stack, tmp_path / "s.ome.zarr")


# ------------------------------------------------------------ OME multi-image
MULTI = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
{images}
</OME>"""
IMAGE = """<Image ID="Image:{i}" Name="view{i}"><Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" Type="uint16"
 SizeX="{sx}" SizeY="8" SizeZ="4" SizeC="1" SizeT="1" PhysicalSizeX="0.{i}5" PhysicalSizeY="0.{i}5" PhysicalSizeZ="2">
 <TiffData IFD="{ifd}" PlaneCount="4"{uuid}/></Pixels></Image>"""


def multi_xml(n: int, uuid: str = "") -> str:
    return MULTI.format(
        images="\n".join(IMAGE.format(i=i, sx=8 + i, ifd=4 * i, uuid=uuid) for i in range(n))
    )


def test_each_ome_image_becomes_its_own_images_entry(tmp_path):
    path = tmp_path / "spim.ome.tif"
    tifffile.imwrite(
        path, np.zeros((16, 8, 8), np.uint16), description=multi_xml(4).encode(), metadata=None
    )
    ws = init_workspace(tmp_path / "ws", "SPIM")
    import_ome(ws, path)
    record = ws.read_metadata()
    assert [im["name"] for im in record["images"]] == ["view0", "view1", "view2", "view3"]
    assert [im["size_x"] for im in record["images"]] == [8, 9, 10, 11]
    assert record["images"][2]["voxel_size_x"] == 250.0
    fields = [s["field"] for s in record["sources"]]
    assert len(fields) == len(set(fields))  # each field's source listed once
    import_ome(ws, path)  # a re-import updates the same four entries
    assert len(ws.read_metadata()["images"]) == 4


def test_companion_file_is_followed_to_its_tiff(tmp_path):
    data = tmp_path / "scan.ome.tif"
    tifffile.imwrite(data, np.zeros((8, 8, 8), np.uint16), metadata=None)
    companion = tmp_path / "scan.companion.ome"
    uuid = '><UUID FileName="scan.ome.tif">urn:uuid:6f3c1c4e-4b0f-4b59-9a5e-0d1d8b8f0a11</UUID></TiffData'
    companion.write_text(multi_xml(1, uuid).replace("/></Pixels>", "></Pixels>"), encoding="utf-8")
    ws = init_workspace(tmp_path / "ws", "companion")
    import_ome(ws, companion)
    image = ws.read_metadata()["images"][0]
    assert image["path"].endswith("scan.ome.tif") and image["size_z"] == 4


BINARY_ONLY = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:6f3c1c4e-4b0f-4b59-9a5e-0d1d8b8f0a12">
<BinaryOnly MetadataFile="{name}" UUID="urn:uuid:6f3c1c4e-4b0f-4b59-9a5e-0d1d8b8f0a13"/></OME>"""


def test_binary_only_ome_tiff_reads_its_companion_or_names_it(tmp_path):
    tif = tmp_path / "part1.ome.tif"
    tifffile.imwrite(tif, np.zeros((8, 8), np.uint16), description=BINARY_ONLY.format(name="set.companion.ome").encode(), metadata=None)  # fmt: skip
    with pytest.raises(Exception, match=r"BinaryOnly.*'set\.companion\.ome'"):
        from_ome(tif)
    (tmp_path / "set.companion.ome").write_text(multi_xml(2), encoding="utf-8")
    imp = from_ome(tif)
    assert [im["name"] for im in imp.images] == ["view0", "view1"]
    assert imp.source_for("images[0].size_x")["source_file"].endswith("set.companion.ome")
    (tmp_path / "evil.ome.tif").write_bytes(
        tif.read_bytes().replace(b"set.companion.ome", b"../etc/passwd.ome")
    )
    with pytest.raises(Exception, match="not beside it"):
        from_ome(tmp_path / "evil.ome.tif")


def test_vendor_fixture_files_are_unchanged_by_import_and_convert(tmp_path):
    before = {p.name: p.read_bytes() for p in DATA.glob("*.tif")}
    copy = tmp_path / "fei.tif"
    shutil.copy(FEI, copy)
    from_ome(copy)
    assert {p.name: p.read_bytes() for p in DATA.glob("*.tif")} == before


COMPANION = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
<Image ID="Image:0" Name="cell"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="8" SizeY="8" SizeZ="4"
 SizeC="1" SizeT="1" PhysicalSizeX="0.01" PhysicalSizeY="0.01" PhysicalSizeZ="0.025">
<TiffData IFD="0" PlaneCount="4"><UUID FileName="part1.ome.tif">urn:uuid:6f3c1c4e-4b0f-4b59-9a5e-0d1d8b8f0a12</UUID></TiffData>
</Pixels></Image></OME>"""


def test_convert_follows_binary_only_tiffs_and_companion_files_to_their_sizes(tmp_path):
    vol = (np.arange(4 * 8 * 8) % 250).reshape(4, 8, 8).astype(np.uint16)
    tif = tmp_path / "part1.ome.tif"
    xml = BINARY_ONLY.format(name="set.companion.ome").encode()
    tifffile.imwrite(tif, vol, description=xml, metadata=None, photometric="minisblack")
    with pytest.raises(
        InputError, match=r"BinaryOnly.*'set\.companion\.ome' is not beside it.*--voxel-size"
    ):
        convert_to_ome_zarr(tif, tmp_path / "a.ome.zarr")
    assert not (tmp_path / "a.ome.zarr").exists()
    (tmp_path / "set.companion.ome").write_text(COMPANION, encoding="utf-8")
    res = convert_to_ome_zarr(tif, tmp_path / "a.ome.zarr")
    assert res.details["voxel_size"] == [25.0, 10.0, 10.0]
    assert res.details["decision"]["voxel_size_from"] == "ome-xml (set.companion.ome)"
    res = convert_to_ome_zarr(tmp_path / "set.companion.ome", tmp_path / "b.ome.zarr")
    assert res.details["voxel_size"] == [25.0, 10.0, 10.0]
    np.testing.assert_array_equal(open_image(tmp_path / "b.ome.zarr").read(0), vol)
    (tmp_path / "two.companion.ome").write_text(multi_xml(2), encoding="utf-8")
    with pytest.raises(InputError, match="describes 2 images"):
        convert_to_ome_zarr(tmp_path / "two.companion.ome", tmp_path / "c.ome.zarr")


def test_real_ome_spim_sample_keeps_its_four_images(tmp_path):
    sample = Path(__file__).parent / "data" / "ome" / "spim.ome.xml"
    ws = init_workspace(tmp_path / "ws", "SPIM sample")
    import_ome(ws, sample)
    images = ws.read_metadata()["images"]
    assert [im["name"] for im in images] == [
        "Spim Sample Tile 1 Angle 1",
        "Spim Sample Tile 2 Angle 1",
        "Spim Sample Tile 1 Angle 2",
        "Spim Sample Tile 2 Angle 2",
    ]


def test_digitalmicrograph_tiff_scales_are_the_pixel_size_not_its_72_dpi(tmp_path):
    # tags as in RosettaSciIO's test_loading_image_saved_with_DM.tif (float32 scales in µm)
    path = tmp_path / "dm.tif"
    tags = [(65003, "s", 0, b"\xb5m", True), (65004, "s", 0, b"\xb5m", True), (65009, "d", 1, 0.16867469251155853, True), (65010, "d", 1, 0.16867469251155853, True)]  # fmt: skip
    tifffile.imwrite(path, np.zeros((8, 8), np.int32), resolution=(72, 72), resolutionunit="INCH", extratags=tags)  # fmt: skip
    imp = from_ome(path)
    assert imp.kind == "digitalmicrograph"
    assert (imp.images[0]["voxel_size_x"], imp.images[0]["voxel_size_y"]) == (168.6747, 168.6747)
    assert imp.source_for("images[0].voxel_size_x")["source_path"] == "dm:tag65010"


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.0025, "millimeter", 2500.0),
        (2.465245e-08, "meter", 24.65245),
        (1e-05 * 1e3, "micrometer", 10.0),
        (0.3, "micrometer", 300.0),
    ],  # fmt: skip
)
def test_converted_lengths_carry_the_precision_of_their_source(value, unit, expected):
    from curated.images.units import convert_length

    assert convert_length(value, unit, "nanometer") == expected


def test_multi_image_ome_tiff_convert_names_the_images_it_leaves(tmp_path):
    path = tmp_path / "spim.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for i in range(3):
            tw.write(np.full((4, 8, 8), i, np.uint16), metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.2})  # fmt: skip
    res = convert_to_ome_zarr(path, tmp_path / "o.ome.zarr")
    assert any("2 more image(s)" in n for n in res.details["decision"]["not_carried_over"])
    assert len(from_ome(path).images) == 3


def test_vendor_entries_without_a_field_are_named_in_a_warning():
    imp = from_ome(ZEISS)
    assert any("zeiss header:" in w and "not imported" in w for w in imp.warnings)


def smartsem_slice(path: Path, entries: str, shape=(12, 16)) -> Path:
    """A TIFF with a SmartSEM ``CZ_SEM`` tag 34118 as the Zeiss software writes it: a block of
    numbers, then each entry as an upper-case key line and a ``Label = value unit`` line
    (CRLF, latin-1 ``µ``)."""
    header = ("0\r\n5.824988e-009\r\n5.000000e+004\r\n68\r\n" + entries).encode("latin-1")
    data = (np.arange(np.prod(shape)) % 200).reshape(shape).astype(np.uint8)
    tifffile.imwrite(path, data, extratags=[(34118, 2, len(header), header, True)])
    return path


def test_zeiss_scan_pixel_size_of_an_image_saved_smaller_is_not_used(tmp_path):
    """HyperSpy's ``test_tiff_Zeiss_SEM_512pix.tif`` (GPL, not copied) has no ``AP_IMAGE_PIXEL_SIZE``,
    only ``AP_PIXEL_SIZE`` 5.825 nm, and 512 columns over ``AP_WIDTH`` 5.965 µm: 11.65 nm a
    pixel (HyperSpy reads 11.649976 nm). ``ap_pixel_size`` is the scan's pixel size; it was
    used as the image's, half the true size. Now it is not used, and both say why."""
    entries = "AP_PIXEL_SIZE\r\nPixel Size = 5.825 nm\r\nAP_WIDTH\r\nWidth = 5.965 \xb5m\r\n"
    path = smartsem_slice(tmp_path / "z512.tif", entries, shape=(2, 12, 16))
    src = open_source(path)
    assert src.voxel_size is None
    why = (
        "pixel size y x: Zeiss ap_pixel_size = 5.825 nm is the scan's pixel size, not the saved "
        "image's: ap_width 5.965 µm over the image's 16 columns is 372.8 nm; not used as the "
        "voxel size (pass --voxel-size)"
    )
    assert why in src.not_carried
    with pytest.raises(
        InputError,
        match="no voxel size in the file's metadata \\(pixel size y x: Zeiss ap_pixel_size",
    ):
        convert_to_ome_zarr(path, tmp_path / "a.ome.zarr")
    assert "voxel_size_x" not in from_ome(path).images[0]
    ws = init_workspace(tmp_path / "ws", "Zeiss")
    image = next(f["image"] for f in check(ws, [path]).to_dict()["files"])
    assert image["pixel_size"] is None and image["pixel_size_not_used"] == why


def test_zeiss_scan_pixel_size_that_fits_the_image_is_used(tmp_path):
    """When ``AP_WIDTH`` over the columns agrees (within 1 %), ``ap_pixel_size`` is the image's."""
    entries = "AP_PIXEL_SIZE\r\nPixel Size = 5.825 nm\r\nAP_WIDTH\r\nWidth = 93.2 nm\r\n"
    src = open_source(smartsem_slice(tmp_path / "z.tif", entries, shape=(12, 16)))
    assert src.voxel_size == (None, 5.825, 5.825) and src.voxel_source == "zeiss:ap_pixel_size"
