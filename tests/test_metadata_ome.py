"""Header import: OME-XML, ImageJ and TIFF resolution tags, normalised to nanometres, never reading pixels."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile

from curated.errors import MetadataError
from curated.metadata import from_ome, import_ome, init_workspace, set_field, validate_record

STACK = np.zeros((5, 8, 8), np.uint16)

OME_WITH_INSTRUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Instrument ID="Instrument:0">
    <Microscope Manufacturer="Example Instruments" Model="Crossbeam 550"/>
    <Detector ID="Detector:0" Manufacturer="Example" Model="EsB" Type="Other"/>
  </Instrument>
  <Image ID="Image:0" Name="cortex">
    <AcquisitionDate>2026-03-12T09:30:00</AcquisitionDate>
    <InstrumentRef ID="Instrument:0"/>
    <Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="{sx}" SizeY="{sy}" SizeZ="{sz}" SizeC="1" SizeT="1"
            PhysicalSizeX="0.008" PhysicalSizeXUnit="µm" PhysicalSizeY="0.008" PhysicalSizeYUnit="µm"
            PhysicalSizeZ="80" PhysicalSizeZUnit="Å">
      <TiffData IFD="0" PlaneCount="1"/>
    </Pixels>
  </Image>
</OME>"""


def ome_tiff(path, *, sx=8, sy=8, sz=1, xml=None):
    """A one-page TIFF whose ImageDescription is the given OME-XML (declared sizes may be huge)."""
    tifffile.imwrite(
        path,
        np.zeros((8, 8), np.uint8),
        description=(xml or OME_WITH_INSTRUMENT.format(sx=sx, sy=sy, sz=sz)).encode(),
        metadata=None,
    )
    return path


def test_ome_xml_values_are_normalised_to_nanometres_with_sources(tmp_path):
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path,
        STACK,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.008,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 8,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 1e-8,
            "PhysicalSizeZUnit": "m",
        },
    )
    imp = from_ome(path)
    (image,) = imp.images
    assert imp.kind == "ome-xml"
    assert image["image_format"] == "OME-TIFF" and image["dtype"] == "uint16"
    assert (image["size_x"], image["size_y"], image["size_z"]) == (8, 8, 5)
    assert (image["voxel_size_x"], image["voxel_size_y"], image["voxel_size_z"]) == (8.0, 8.0, 10.0)
    assert image["voxel_size_unit"] == "nanometer"
    src = imp.source_for("images[0].voxel_size_x")
    assert src["source_path"] == "ome:Pixels@PhysicalSizeX" and src["source_value"] == "0.008 µm"
    assert imp.source_for("images[0].voxel_size_z")["source_value"] == "1e-08 m"


def test_ome_instrument_detector_and_date_fill_the_acquisition_protocol(tmp_path):
    imp = from_ome(ome_tiff(tmp_path / "a.ome.tif"))
    assert imp.acquisition == {
        "instrument_manufacturer": "Example Instruments",
        "instrument_model": "Crossbeam 550",
        "imaging_instrument": "Example Instruments Crossbeam 550",
        "detector_description": "Example EsB (Other)",
        "acquisition_date": "2026-03-12T09:30:00",
    }
    assert imp.images[0]["name"] == "cortex"
    assert imp.images[0]["voxel_size_z"] == 8.0  # 80 Å
    assert (
        imp.source_for("acquisition.instrument_model")["source_path"]
        == "ome:Instrument/Microscope@Model"
    )


def test_a_huge_declared_image_imports_without_reading_pixels(tmp_path, monkeypatch):
    path = ome_tiff(
        tmp_path / "huge.ome.tif", sx=40_000, sy=30_000, sz=20_000
    )  # 24 TB if it were read

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixel data was read")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", no_pixels)
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_pixels)
    t0 = time.perf_counter()
    imp = from_ome(path)
    assert time.perf_counter() - t0 < 2.0
    assert (imp.images[0]["size_x"], imp.images[0]["size_z"]) == (40_000, 20_000)


def test_imagej_spacing_and_unit_when_there_is_no_ome_xml(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        STACK,
        imagej=True,
        resolution=(1 / 0.008, 1 / 0.008),
        metadata={"spacing": 0.01, "unit": "micron", "axes": "ZYX"},
    )
    imp = from_ome(path)
    image = imp.images[0]
    assert imp.kind == "imagej" and image["image_format"] == "ImageJ TIFF"
    assert (
        image["voxel_size_x"],
        image["voxel_size_y"],
        image["voxel_size_z"],
        image["voxel_size_unit"],
    ) == (8.0, 8.0, 10.0, "nanometer")
    assert image["size_z"] == 5
    assert imp.source_for("images[0].voxel_size_z")["source_path"] == "imagej:spacing"
    assert imp.source_for("images[0].voxel_size_x")["source_path"] == "tiff:XResolution"


@pytest.mark.parametrize(
    ("unit", "spacing", "nm"),
    [
        ("micron", 0.01, 10.0),
        ("\\u00B5m", 0.05, 50.0),  # ImageJ writes µ as an escape in its ASCII description
        ("nm", 4.6, 4.6),
        ("\\u00C5", 46, 4.6),
        ("dm", 1e-7, 10.0),
        ("in", 1e-6, 25.4),
        ("thou", 0.001, 25.4),  # OME UnitsLength only: no UDUNITS-2 name
    ],
)
def test_imagej_unit_spellings_land_in_nanometres(tmp_path, unit, spacing, nm):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, STACK, imagej=True, metadata={"spacing": spacing, "unit": unit, "axes": "ZYX"}
    )
    assert from_ome(path).images[0]["voxel_size_z"] == pytest.approx(nm, rel=1e-9)


def test_imagej_spacing_in_a_unit_that_is_not_a_length_is_not_imported(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, STACK, imagej=True, metadata={"spacing": 2.0, "unit": "second", "axes": "ZYX"}
    )
    imp = from_ome(path, require_metadata=False)
    assert "voxel_size_z" not in imp.images[0]


def test_plain_tiff_resolution_tags_with_unit(tmp_path):
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, STACK, resolution=(1e7 / 5, 1e7 / 5), resolutionunit="CENTIMETER")
    imp = from_ome(path)
    image = imp.images[0]
    assert imp.kind == "tiff"
    assert (image["voxel_size_x"], image["voxel_size_y"]) == (
        5.0,
        5.0,
    ) and "voxel_size_z" not in image
    assert imp.source_for("images[0].voxel_size_x")["source_path"] == "tiff:XResolution"


def test_tiff_without_metadata_gets_a_clear_error(tmp_path):
    path = tmp_path / "bare.tif"
    tifffile.imwrite(path, STACK)
    with pytest.raises(MetadataError) as info:
        from_ome(path)
    assert info.value.path == str(path) and "no physical metadata" in info.value.message
    imp = from_ome(path, require_metadata=False)
    assert imp.images[0]["size_z"] == 5 and "voxel_size_x" not in imp.images[0]
    assert any("no physical metadata" in w for w in imp.warnings)


def test_display_dpi_is_not_taken_for_a_pixel_size(tmp_path):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, STACK, resolution=(72, 72), resolutionunit="INCH")
    with pytest.raises(MetadataError, match="no physical metadata"):
        from_ome(path)


def test_broken_ome_xml_names_the_file(tmp_path):
    broken = OME_WITH_INSTRUMENT.format(sx=8, sy=8, sz=1).replace("</Pixels>", "")
    path = ome_tiff(tmp_path / "broken.ome.tif", xml=broken)
    with pytest.raises(MetadataError) as info:
        from_ome(path)
    assert info.value.path == str(path) and info.value.field == "OME-XML"
    assert "OME-XML in this file is broken" in info.value.message


def test_not_a_tiff_and_missing_file(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff at all")
    with pytest.raises(MetadataError, match="not a readable TIFF"):
        from_ome(junk)
    with pytest.raises(MetadataError, match="image not found"):
        from_ome(tmp_path / "absent.tif")


def test_ome_xml_companion_file(tmp_path):
    path = tmp_path / "scan.ome.xml"
    path.write_text(OME_WITH_INSTRUMENT.format(sx=100, sy=90, sz=80), encoding="utf-8")
    imp = from_ome(path)
    assert imp.images[0]["size_y"] == 90 and imp.acquisition["instrument_model"] == "Crossbeam 550"


# ---------------------------------------------------------------- merging
@pytest.fixture
def ws(tmp_path):
    return init_workspace(tmp_path / "ws", "FIB-SEM of mouse cortex")


def test_import_fills_the_record_and_logs_old_and_new_values(ws, tmp_path):
    image = ome_tiff(tmp_path / "cortex.ome.tif", sz=2000)
    result = import_ome(ws, image)
    assert result.status == "ok"
    record = ws.read_metadata()
    assert record["images"][0]["voxel_size_x"] == 8.0 and record["images"][0]["size_z"] == 2000
    assert record["acquisition_protocols"][0]["instrument_model"] == "Crossbeam 550"
    assert record["acquisition_protocols"][0]["title"] == "Acquisition of cortex.ome.tif"
    sources = {s["field"]: s for s in record["sources"]}
    assert sources["images[0].voxel_size_x"]["source_path"] == "ome:Pixels@PhysicalSizeX"
    assert sources["acquisition_protocols[0].instrument_model"]["source_kind"] == "ome_xml"
    report = validate_record(ws.root)
    assert report.structurally_valid  # only missing required fields remain
    assert "acquisition_protocols[0].fbbi_id" in [e.field for e in report.missing_required]
    entry = list(ws.log)[-1]
    assert (entry["step"], entry["action"], entry["status"]) == ("A", "import-ome", "ok")
    changes = {c["field"]: c for c in entry["details"]["changes"]}
    assert changes["images[0].voxel_size_x"] == {
        "field": "images[0].voxel_size_x",
        "old": None,
        "new": 8.0,
    }
    assert entry["inputs"][0]["digest"] is None  # the image is not hashed (terabytes)
    again = import_ome(ws, image)
    assert again.status == "notneeded"


def test_curator_values_are_kept_unless_forced(ws, tmp_path):
    image = ome_tiff(tmp_path / "cortex.ome.tif")
    import_ome(ws, image)
    set_field(ws, "images[0].voxel_size_x", "0.01")
    set_field(ws, "images[0].voxel_size_unit", "micrometer")
    set_field(ws, "acquisition_protocols[0].instrument_model", "Crossbeam 540")
    result = import_ome(ws, image)
    kept = {k["field"] for k in result.details["kept"]}
    assert {
        "images[0].voxel_size_x",
        "images[0].voxel_size_unit",
        "acquisition_protocols[0].instrument_model",
    } <= kept
    record = ws.read_metadata()
    # sizes and unit move together: the curator's micrometres are not mixed with imported nanometres
    assert (
        record["images"][0]["voxel_size_x"] == 0.01
        and record["images"][0]["voxel_size_unit"] == "micrometer"
    )
    assert (
        record["images"][0]["voxel_size_y"] == 8.0
        and record["acquisition_protocols"][0]["instrument_model"] == "Crossbeam 540"
    )
    assert "use --force" in result.message
    forced = import_ome(ws, image, force=True)
    record = ws.read_metadata()
    assert (
        record["images"][0]["voxel_size_x"] == 8.0
        and record["images"][0]["voxel_size_unit"] == "nanometer"
    )
    assert record["acquisition_protocols"][0]["instrument_model"] == "Crossbeam 550"
    changed = {c["field"]: c for c in forced.details["changes"]}
    assert changed["acquisition_protocols[0].instrument_model"]["old"] == "Crossbeam 540"


def test_a_second_image_is_appended_and_the_same_file_updates_in_place(ws, tmp_path):
    a = ome_tiff(tmp_path / "a.ome.tif")
    b = tmp_path / "b.tif"
    tifffile.imwrite(b, STACK, resolution=(1e7 / 5, 1e7 / 5), resolutionunit="CENTIMETER")
    import_ome(ws, a)
    import_ome(ws, b)
    names = [i["name"] for i in ws.read_metadata()["images"]]
    assert names == ["cortex", "b"]
    import_ome(ws, b)
    assert len(ws.read_metadata()["images"]) == 2


def test_failed_import_leaves_curated_yaml_untouched_and_is_logged(ws, tmp_path):
    before = ws.metadata_path.read_bytes()
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, STACK)
    with pytest.raises(MetadataError):
        import_ome(ws, bare)
    assert ws.metadata_path.read_bytes() == before
    last = list(ws.log)[-1]
    assert (last["action"], last["status"]) == ("import-ome", "error")


FEI_HEADER = (
    "[User]\r\nDate=03/12/2026\r\n[System]\r\nType=DualBeam\r\nSystemType=Helios G4 CX\r\n"
    "[EBeam]\r\nHV=2000\r\nBeamCurrent=4e-10\r\nWD=0.004\r\n[IBeam]\r\nHV=30000\r\nBeamCurrent=7.9e-10\r\n"
    "[Scan]\r\nPixelWidth=5e-09\r\nPixelHeight=5e-09\r\nDwelltime=3e-06\r\n[Detectors]\r\nName=TLD\r\nMode=BSE\r\n"
)


def fei_tiff(path):
    tifffile.imwrite(
        path, np.zeros((8, 8), np.uint8), extratags=[(34682, "s", 0, FEI_HEADER, True)]
    )
    return path


def test_fei_header_fills_pixel_size_and_fibsem_beam_parameters(tmp_path):
    imp = from_ome(fei_tiff(tmp_path / "slice_0001.tif"))
    assert imp.kind == "fei"
    assert (imp.images[0]["voxel_size_x"], imp.images[0]["voxel_size_unit"]) == (5.0, "nanometer")
    assert imp.acquisition["instrument_model"] == "Helios G4 CX"
    assert imp.acquisition["fibsem"] == {
        "sem_accelerating_voltage_kv": 2.0,
        "sem_beam_current_na": 0.4,
        "fib_accelerating_voltage_kv": 30.0,
        "fib_beam_current_na": 0.79,
        "dwell_time_us": 3.0,
        "working_distance_mm": 4.0,
        "detector": ["BSE"],
    }
    src = imp.source_for("acquisition.fibsem.dwell_time_us")
    assert (src["source_path"], src["source_value"]) == ("fei:Scan@Dwelltime", "3e-06 s")


def test_fibsem_parameters_merge_field_by_field(ws, tmp_path):
    set_field(ws, "acquisition_protocols[0].title", "run 1")
    set_field(ws, "acquisition_protocols[0].fibsem.milling_step_nm", "8")
    set_field(ws, "acquisition_protocols[0].fibsem.dwell_time_us", "2.5")
    result = import_ome(ws, fei_tiff(tmp_path / "slice.tif"))
    fibsem = ws.read_metadata()["acquisition_protocols"][0]["fibsem"]
    assert (
        fibsem["milling_step_nm"] == 8 and fibsem["dwell_time_us"] == 2.5
    )  # curator's values stay
    assert fibsem["sem_accelerating_voltage_kv"] == 2.0
    assert [k["field"] for k in result.details["kept"]] == [
        "acquisition_protocols[0].fibsem.dwell_time_us"
    ]
    assert validate_record(ws.root).structurally_valid


def test_convert_and_import_ome_read_the_same_voxel_size_from_resolution_tags(tmp_path):
    """One answer per file: pixels per centimetre are a pixel size for both readers,
    dots per inch for neither (the converter then asks for --voxel-size)."""
    from curated.images.sources import open_source

    cm = tmp_path / "cm.tif"
    tifffile.imwrite(cm, STACK, resolution=(1e7 / 5, 1e7 / 5), resolutionunit="CENTIMETER")
    imp = from_ome(cm).images[0]
    src = open_source(cm)
    assert src.voxel_size == (None, imp["voxel_size_y"], imp["voxel_size_x"]) == (None, 5.0, 5.0)
    assert src.unit == "nanometer" and "centimeter" in src.voxel_source
    dpi = tmp_path / "dpi.tif"
    tifffile.imwrite(dpi, STACK, resolution=(72, 72), resolutionunit="INCH")
    assert open_source(dpi).voxel_size in (None, (None, None, None))
