"""`check` and `convert` on real microscope files (tests/data/real/, see SOURCES.md there), and
on synthetic files that reproduce, tag for tag, the real files that showed a defect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curated.curation import check
from curated.errors import InputError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.sources import open_source
from curated.metadata.ome import from_ome
from curated.workspace import Workspace

REAL = Path(__file__).parent / "data" / "real"


@pytest.fixture
def ws(tmp_path):
    record = {
        "schema_version": "1.0.0",
        "study": {"title": "t", "description": "d", "authors": [{"family_name": "Doe"}], "license": "CC-BY-4.0"},
    }  # fmt: skip
    return Workspace.create(tmp_path / "ws", record=record)


def _image(report, name):
    return next(f["image"] for f in report.to_dict()["files"] if f["path"].endswith(name))


# --------------------------------------------------------------- real files, as they are
def test_fei_teneo_slices_convert_cropped_with_the_header_pixel_size(tmp_path):
    """A Thermo Fisher Teneo SEM image (FEI_HELIOS tag, 1094 rows of which 1024 are image,
    ``DatabarHeight=0`` although a 70-row data bar is there): as slices of a stack."""
    folder = tmp_path / "slices"
    folder.mkdir()
    for i in range(2):
        shutil.copy(REAL / "fei_teneo_rbc.tif", folder / f"slice_{i:03d}.tif")
    with pytest.raises(InputError, match=r"y=7\.70833 x=7\.70833 nanometer but no z spacing"):
        convert_to_ome_zarr(folder, tmp_path / "no-z.ome.zarr")
    convert_to_ome_zarr(folder, tmp_path / "fei.ome.zarr", voxel_size=(10, 7.70833, 7.70833))
    img = open_image(tmp_path / "fei.ome.zarr")
    assert img.axes == ["z", "y", "x"] and img.shape == (2, 1024, 1536)
    assert img.voxel_size == (10.0, 7.70833, 7.70833) and img.unit == "nanometer"
    page = tifffile.imread(REAL / "fei_teneo_rbc.tif")
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img.read(0)[1], page[:1024])  # the data bar is cropped


def test_fei_teneo_check_states_pixel_size_and_flags_the_user_name(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(REAL / "fei_teneo_rbc.tif", raw / "rbc.tif")
    report = check(ws, [raw])
    image = _image(report, "rbc.tif")
    assert image["pixel_size"] == "pixel size y x = 7.70833 7.70833 nanometer"
    # the page is 1094 rows; check says which of them convert crops
    assert image["shape"] == [1094, 1536]
    assert image["data_bar"] == (
        "vendor data bar: rows 1024-1093 of each page are cropped (not image data)"
    )
    flagged = report.flags_by_code("personal-data")
    assert flagged and "fei:User@User" in flagged[0].message
    assert "boyin" not in flagged[0].message  # the name itself is not repeated


def test_fiji_stack_without_calibration_asks_for_the_voxel_size(tmp_path):
    """Saved by Fiji 1.53c with ``unit= `` (blank) and resolution 1/1 without a unit."""
    src = open_source(REAL / "fiji_blobs_3d_skeleton.tif")
    assert (src.kind, src.axes, src.shape, src.voxel_size) == ("imagej", "zyx", (30, 32, 32), None)
    with pytest.raises(InputError, match="no voxel size in the file's metadata"):
        convert_to_ome_zarr(REAL / "fiji_blobs_3d_skeleton.tif", tmp_path / "a.ome.zarr")
    convert_to_ome_zarr(
        REAL / "fiji_blobs_3d_skeleton.tif", tmp_path / "b.ome.zarr", voxel_size=(4, 2, 2)
    )
    img = open_image(tmp_path / "b.ome.zarr")
    assert img.voxel_size == (4.0, 2.0, 2.0)
    np.testing.assert_array_equal(img.read(0), tifffile.imread(REAL / "fiji_blobs_3d_skeleton.tif"))


def test_big_endian_uint16_reads_its_values(tmp_path):
    src = open_source(REAL / "chessboard_u16_bigendian.tif")
    assert src.dtype == ">u2"
    got = src.read((slice(0, 200), slice(0, 200)))
    assert got.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(got, tifffile.imread(REAL / "chessboard_u16_bigendian.tif"))


def test_two_channel_ome_tiff_is_a_2d_image_and_says_so(tmp_path):
    src = open_source(REAL / "ome_types_2ch.ome.tiff")
    assert (src.kind, src.axes, src.shape) == ("ome-tiff", "cyx", (2, 6, 6))
    with pytest.raises(Exception, match="2D image"):
        convert_to_ome_zarr(REAL / "ome_types_2ch.ome.tiff", tmp_path / "o.ome.zarr", voxel_size=1)


# ------------------------------------------- ImageJ: units per axis (yunit=, zunit=)
def imagej_file(path: Path, unit: str, *, spacing: float, yunit=None, zunit=None, res=0.2):
    """An ImageJ stack as ImageJ 1.x writes it: big-endian, its description in FileSaver's
    order, ``yunit``/``zunit`` only where they differ from ``unit``, resolution without a unit."""
    lines = ["ImageJ=1.54f", "images=3", "slices=3", f"unit={unit}"]
    lines += [f"yunit={yunit}"] * (yunit is not None) + [f"zunit={zunit}"] * (zunit is not None)
    lines += [f"spacing={spacing}", "loop=false", ""]
    data = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    tifffile.imwrite(
        path, data, byteorder=">", description="\n".join(lines), metadata=None,
        photometric="minisblack", resolution=(res, res), resolutionunit="NONE",
    )  # fmt: skip
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.byteorder == ">"
    return path


def test_imagej_zunit_is_the_unit_of_the_spacing(tmp_path):
    """x, y in nm and z in µm (a FIB-SEM stack opened through Bio-Formats and saved by ImageJ):
    the spacing is 0.01 µm = 10 nm, not 0.01 nm."""
    path = imagej_file(tmp_path / "ij.tif", "nm", spacing=0.01, zunit="micron")
    src = open_source(path)
    assert (src.voxel_size, src.unit) == ((10.0, 5.0, 5.0), "nanometer")
    assert not any("zunit" in n for n in src.not_carried)
    convert_to_ome_zarr(path, tmp_path / "ij.ome.zarr")
    img = open_image(tmp_path / "ij.ome.zarr")
    assert img.voxel_size == (10.0, 5.0, 5.0) and img.unit == "nanometer"
    np.testing.assert_array_equal(img.read(0), tifffile.imread(path))
    assert from_ome(path).images[0]["voxel_size_z"] == pytest.approx(10.0)


def test_imagej_yunit_is_the_unit_of_the_y_resolution(tmp_path):
    path = imagej_file(tmp_path / "ij.tif", "\\u00B5m", spacing=0.05, yunit="nm", res=0.2)
    src = open_source(path)
    # x: 5 µm per pixel; y: 5 nm per pixel, written in x's unit
    assert (src.voxel_size, src.unit) == ((0.05, 0.005, 5.0), "micrometer")
    image = from_ome(path).images[0]
    assert (image["voxel_size_x"], image["voxel_size_y"]) == (5000.0, 5.0)


def test_imagej_zunit_not_a_length_leaves_z_to_the_curator(tmp_path):
    path = imagej_file(tmp_path / "ij.tif", "nm", spacing=2.0, zunit="sec")
    src = open_source(path)
    assert src.voxel_size == (None, 5.0, 5.0)
    assert any("ImageJ z spacing 2.0 sec is not a length" in n for n in src.not_carried)
    with pytest.raises(InputError, match="no z spacing"):
        convert_to_ome_zarr(path, tmp_path / "ij.ome.zarr")
    assert "voxel_size_z" not in from_ome(path, require_metadata=False).images[0]


def test_check_states_the_imagej_z_spacing_to_the_digits_convert_writes(ws, tmp_path):
    """As HyperSpy's ``test_loading_image_saved_with_imageJ_stack.tif`` (ImageJ 1.51d, big-endian
    float32, ``unit=micron``, ``spacing=2.5``, XResolution 5928571/1000000 without a unit)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    desc = "ImageJ=1.51d\nimages=2\nslices=2\nunit=micron\nspacing=2.5\nloop=false\nmin=86.0\nmax=5040.0927734375\n"
    tifffile.imwrite(
        raw / "stack.tif", np.ones((2, 68, 68), np.float32), byteorder=">", description=desc,
        metadata=None, resolution=((5928571, 1000000), (5928571, 1000000)), resolutionunit="NONE",
    )  # fmt: skip
    report = check(ws, [raw])
    stated = _image(report, "stack.tif")["pixel_size"]
    assert stated == "pixel size z y x = 2.5 0.168674711 0.168674711 micrometer"


# ------------------------------------------- vendor headers: what the grid is, when it is not space
def test_digitalmicrograph_stack_in_seconds_says_why_z_is_asked(tmp_path):
    """As HyperSpy's ``test_loading_image_saved_with_DM_stack.tif``: DigitalMicrograph tags
    65003-65005 (units y, x, third axis) and 65009-65011 (scales), the third axis in seconds."""
    path = tmp_path / "dm_stack.tif"
    # the units are ASCII-typed tags holding latin-1 bytes (0xB5 for µ), as in the real file
    tags = [
        (65003, 2, 3, b"\xb5m\x00", False), (65004, 2, 3, b"\xb5m\x00", False),
        (65005, 2, 2, b"s\x00", False),
        (65009, "d", 1, 0.16867400705814362, False), (65010, "d", 1, 1.6867400407791138, False),
        (65011, "d", 1, 2.5, False),
    ]  # fmt: skip
    tifffile.imwrite(path, np.ones((2, 68, 68), np.float32), extratags=tags)
    src = open_source(path)
    assert src.voxel_size == (None, 168.674, 1686.74)
    assert (
        "pixel size z: DigitalMicrograph scale 2.5 's' is not a length; not imported"
        in src.not_carried
    )
    with pytest.raises(
        InputError, match=r"no z spacing \(pixel size z: DigitalMicrograph scale 2\.5 's'"
    ):
        convert_to_ome_zarr(path, tmp_path / "dm.ome.zarr")


# ------------------------------------------- Thermo Fisher Velox .emd (HDF5)
VELOX_IMAGE = "/Data/Image/26f60320a61d4f66a73efd8cde34ffa9"


def velox_emd(
    path: Path,
    data: np.ndarray | None = None,
    pixel: tuple[str, str] = ("8.1728831922978511e-12", "m"),
    images: tuple[str, ...] = (VELOX_IMAGE,),
    version: bytes = b'{\n    "version": "8",\n    "format": "Velox"\n}\n',
) -> str:
    """The layout of Thermo Fisher Velox's ``fei_example_tem_stack.emd`` (HyperSpy's test data,
    GPL: not copied; also seen in its ``velox_emd_version11.zip`` files): a root ``Version``
    dataset naming the format, ``/Data/Image/<id>/Data`` of (y, x, frame) beside ``Metadata``,
    a (60000, frames) uint8 array holding each frame's JSON document, zero-padded, whose
    ``BinaryResult`` states ``PixelSize`` width/height as text and ``PixelUnitX``/``Y``."""
    import h5py

    if data is None:  # 3 rows, 4 columns, 2 frames: a transposed read shows
        data = np.arange(24, dtype=np.int16).reshape(3, 4, 2)
    size, unit = pixel
    doc = {
        "Core": {"MetadataDefinitionVersion": "7.9"},
        "BinaryResult": {
            "AcquisitionUnit": "CameraImage",
            "Detector": "BM-Ceta",
            "PixelSize": {"width": size, "height": size},
            "PixelUnitX": unit,
            "PixelUnitY": unit,
            "Encoding": "Signed",
        },
    }
    column = np.zeros(60000, np.uint8)
    text = json.dumps(doc, indent=4).encode()
    column[: len(text)] = np.frombuffer(text, np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([version], dtype=object))
        for group in images:
            f.create_dataset(f"{group}/Data", data=data, chunks=data.shape)
            f[f"{group}/Metadata"] = np.repeat(column[:, None], data.shape[2], axis=1)
            f[f"{group}/FrameLookupTable"] = np.arange(data.shape[2], dtype=np.uint32)
    return f"{path}:{images[0]}/Data"


def test_velox_stack_is_read_frames_first_with_its_pixel_size(tmp_path):
    """A Velox stack was refused ("HDF5 under another name"); read as z y x it would have been
    transposed. Now: frames as z, y and x as stored, the pixel size from ``BinaryResult`` (m)
    in nanometres, and the z spacing asked for (the frame index is no depth)."""
    path = tmp_path / "stack.emd"
    velox_emd(path)
    stored = np.arange(24, dtype=np.int16).reshape(3, 4, 2)
    src = open_source(path)
    assert (src.axes, src.shape, src.unit) == ("zyx", (2, 3, 4), "nanometer")
    assert src.voxel_size == (None, 0.00817288319229785, 0.00817288319229785)
    assert src.voxel_source == "velox:BinaryResult/PixelSize (m)"
    np.testing.assert_array_equal(
        src.read((slice(1, 2), slice(1, 3), slice(0, 4))), np.moveaxis(stored, 2, 0)[1:2, 1:3]
    )
    with pytest.raises(
        InputError,
        match=r"y=0\.00817288 x=0\.00817288 nanometer but no z spacing \(Velox frame stack \(2 frames\): the z axis is the frame index",
    ):
        convert_to_ome_zarr(path, tmp_path / "no-z.ome.zarr")
    convert_to_ome_zarr(
        f"{path}:{VELOX_IMAGE}",
        tmp_path / "v.ome.zarr",
        voxel_size=(1, 0.00817288319229785, 0.00817288319229785),
    )
    img = open_image(tmp_path / "v.ome.zarr")
    assert img.axes == ["z", "y", "x"] and img.shape == (2, 3, 4) and img.unit == "nanometer"
    assert img.voxel_size[1:] == (0.00817288319229785, 0.00817288319229785)
    np.testing.assert_array_equal(img.read(0), np.moveaxis(stored, 2, 0))


def test_velox_check_states_pixel_size_and_where_it_came_from(ws, tmp_path):
    """`check` reported a Velox file's largest dataset, its (60000, 2) uint8 Metadata array,
    as the image, and flagged ``.emd`` as a misleading name for HDF5."""
    raw = tmp_path / "raw"
    raw.mkdir()
    velox_emd(raw / "stack.emd")
    report = check(ws, [raw])
    image = _image(report, "stack.emd")
    assert image["vendor"] == "Thermo Fisher Velox"
    assert (image["shape"], image["axes"], image["dtype"]) == ([2, 3, 4], "zyx", "int16")
    assert image["pixel_size"] == (
        "pixel size y x = 0.008172883192 0.008172883192 nanometer (velox:BinaryResult/PixelSize (m))"
    )
    assert image["pixel_size_not_used"] is None
    assert not report.flags_by_code("extension-mismatch")


def test_velox_pixel_size_in_inverse_metres_is_stated_and_not_used(ws, tmp_path):
    """A diffraction pattern or FFT states its pixel size in ``1/m`` (as HyperSpy's
    ``fei_example_complex_fft.emd``: ``98015829.063031346`` 1/m); it is no length."""
    raw = tmp_path / "raw"
    raw.mkdir()
    velox_emd(raw / "dp.emd", np.ones((4, 5, 1), np.float32), pixel=("98015829.063031346", "1/m"))
    image = _image(check(ws, [raw]), "dp.emd")
    assert image["pixel_size"] is None and (image["shape"], image["axes"]) == ([4, 5], "yx")
    assert image["pixel_size_not_used"] == (
        "velox:BinaryResult/PixelSize (1/m) = height 98015829.063031346 width 98015829.063031346: "
        "'1/m' is not a length (a diffraction pattern or an FFT); not used as the voxel size"
    )
    src = open_source(raw / "dp.emd")
    assert src.voxel_size is None and src.shape == (4, 5)
    assert any("'1/m' is not a length" in n for n in src.not_carried)
    np.testing.assert_array_equal(src.read((slice(0, 4), slice(0, 5))), np.ones((4, 5)))


def test_velox_frames_stating_other_pixel_sizes_are_not_given_one(tmp_path):
    """Each frame's ``Metadata`` column states its own pixel size: when the last differs from
    the first, neither is the stack's."""
    import h5py

    path = tmp_path / "drift.emd"
    velox_emd(path)
    with h5py.File(path, "r+") as f:
        meta = f[f"{VELOX_IMAGE}/Metadata"]
        column = meta[:, 1].tobytes().replace(b"8.1728831922978511e-12", b"9.1728831922978511e-12")
        meta[:, 1] = np.frombuffer(column, np.uint8)
    src = open_source(path)
    assert src.voxel_size is None and src.shape == (2, 3, 4)
    assert any(
        "the last frame states another pixel size than the first" in n for n in src.not_carried
    )


def test_velox_with_several_images_asks_which_and_other_emd_is_refused(tmp_path):
    second = "/Data/Image/f03a0d4a7c05495f95856e6708f94863"
    path = tmp_path / "si.emd"
    velox_emd(path, images=(VELOX_IMAGE, second))
    with pytest.raises(
        InputError,
        match=r"is a Velox file holding 2 images .*\(BM-Ceta\).*name one as si\.emd:/Data/Image/<id>",
    ):
        open_source(path)
    assert open_source(f"{path}:{second}").key == f"{second}/Data"
    with pytest.raises(InputError, match="is no Velox image"):
        open_source(f"{path}:/Data/Image/nothere")
    velox_emd(tmp_path / "berkeley.emd", version=b'{"format": "other"}')
    with pytest.raises(
        InputError, match="is an EMD file \\(HDF5\\) but no Thermo Fisher Velox file"
    ):
        open_source(tmp_path / "berkeley.emd")


def test_hdf5_under_another_name_is_named_as_hdf5_not_missing(tmp_path):
    keyed = velox_emd(tmp_path / "scan.nxs")
    for given in (keyed, tmp_path / "scan.nxs"):
        with pytest.raises(
            InputError, match=r"is an HDF5 file under another name \(\.nxs\)"
        ) as err:
            open_source(given)
        assert "does not exist" not in str(err.value) and "Velox" in str(err.value)
    (tmp_path / "plain.tif").write_bytes((REAL / "chessboard_u16_bigendian.tif").read_bytes())
    with pytest.raises(
        InputError, match="is no HDF5 file, Zarr or N5 store, so it holds no dataset /x"
    ):
        open_source(f"{tmp_path / 'plain.tif'}:/x")
    with pytest.raises(InputError, match="does not exist"):
        open_source(f"{tmp_path / 'gone.emd'}:/x")


# ------------------------------------------- a stack written a page at a time by tifffile
@pytest.mark.parametrize("pages", [10, 64])
def test_stack_written_page_by_page_is_one_stack(ws, tmp_path, pages):
    """``with TiffWriter(f) as w: for plane in stack: w.write(plane)``, how acquisition scripts
    write slices as they come: each call starts a series with its own ``{"shape": [y, x]}``.
    It was read as a 2D image (the first page), and from 64 pages on refused as lying."""
    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / "stack.tif"
    planes = np.arange(pages * 12 * 10, dtype=np.uint16).reshape(pages, 12, 10)
    with tifffile.TiffWriter(path) as w:
        for plane in planes:
            w.write(plane, photometric="minisblack", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        assert len(tif.series) == pages and tif.pages.first.description == '{"shape": [12, 10]}'
    src = open_source(path)
    assert (src.axes, src.shape) == ("zyx", (pages, 12, 10)) and not src.not_carried
    assert any("read as one stack" in w for w in src.warnings)
    convert_to_ome_zarr(path, tmp_path / "s.ome.zarr", voxel_size=(50, 5, 5))
    np.testing.assert_array_equal(open_image(tmp_path / "s.ome.zarr").read(0), planes)
    image = _image(check(ws, [raw]), "stack.tif")
    assert image["opens"] and image["problem"] is None
    assert image["shape"] == [pages, 12, 10]


def test_page_by_page_stack_imports_its_page_count(tmp_path):
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as w:
        for z in range(5):
            w.write(np.full((12, 10), z, np.uint8), photometric="minisblack")
    image = from_ome(path, require_metadata=False).images[0]
    assert (image["size_z"], image["size_y"], image["size_x"]) == (5, 12, 10)


def test_negative_imagej_spacing_is_named_not_a_bare_list(tmp_path):
    """ImageJ writes ``spacing=`` as its calibration holds it, negative too (a stack whose z
    order was reversed); that is no voxel size, and the message says where it came from."""
    path = imagej_file(tmp_path / "ij.tif", "nm", spacing=-10.0)
    with pytest.raises(
        InputError, match=r"ij\.tif.*\(imagej\) give z=-10 nanometer, which is no size"
    ):
        convert_to_ome_zarr(path, tmp_path / "ij.ome.zarr")
    convert_to_ome_zarr(path, tmp_path / "ok.ome.zarr", voxel_size=(10, 5, 5))


# ------------------------------------------- uncompressed tiled pages
@pytest.mark.parametrize("shape", [(37, 45), (32, 32)], ids=["edge-tiles", "whole-tiles"])
@pytest.mark.parametrize("folder", [False, True], ids=["stack", "slices"])
@pytest.mark.parametrize("byteorder", ["<", ">"], ids=["le", "be"])
def test_uncompressed_tiled_pages_read_tile_by_tile(tmp_path, shape, folder, byteorder):
    """Uncompressed tiles (GDAL ``TILED=YES``, ``tiffcp -t``, tifffile ``tile=``) lie back to back
    in the file but are not rows: read as one contiguous page, every value was scrambled."""
    data = np.arange(3 * shape[0] * shape[1], dtype=np.uint16).reshape(3, *shape)
    kw = {"tile": (16, 16), "photometric": "minisblack", "byteorder": byteorder}
    if folder:
        src_path = tmp_path / "slices"
        src_path.mkdir()
        for z, plane in enumerate(data):
            tifffile.imwrite(src_path / f"z{z:02d}.tif", plane, **kw)
    else:
        src_path = tmp_path / "tiled.tif"
        tifffile.imwrite(src_path, data, metadata={"axes": "ZYX"}, **kw)
    src = open_source(src_path)
    region = (slice(0, 3), slice(5, shape[0]), slice(3, shape[1] - 2))
    np.testing.assert_array_equal(src.read(region), data[region])
    convert_to_ome_zarr(src_path, tmp_path / "t.ome.zarr", voxel_size=(4, 2, 2))
    np.testing.assert_array_equal(open_image(tmp_path / "t.ome.zarr").read(0), data)
