"""Check on real microscope files: JPEG-compressed TIFFs with shared tables, people named in vendor headers."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from curated.curation import check
from curated.workspace import Workspace

DATA = Path(__file__).parent / "data" / "vendor"


@pytest.fixture
def ws(tmp_path):
    record = {
        "schema_version": "1.0.0",
        "study": {"title": "t", "description": "d", "authors": [{"family_name": "Doe"}], "license": "CC-BY-4.0"},
    }  # fmt: skip
    return Workspace.create(tmp_path / "ws", record=record)


def _flags(report, code):
    return sorted(p for f in report.flags_by_code(code) for p in f.paths)


def jpeg_tiff(path: Path) -> Path:
    """A JPEG-compressed TIFF as libtiff writes it: tables in JPEGTables, abbreviated strips."""
    ramp = (np.add.outer(np.arange(64), np.arange(64)) % 251).astype(np.uint8)
    Image.fromarray(ramp).save(path, compression="jpeg")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.jpegtables  # the case that needs the tables to decode
    return path


def test_valid_jpeg_tiff_with_shared_tables_is_not_corrupt(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    jpeg_tiff(raw / "scan.tif")
    broken = bytearray((raw / "scan.tif").read_bytes())
    with tifffile.TiffFile(raw / "scan.tif") as tif:
        off, n = tif.pages.first.dataoffsets[0], tif.pages.first.databytecounts[0]
    broken[off : off + n] = b"\x00" * n  # the strip is no JPEG any more, the length is unchanged
    (raw / "broken.tif").write_bytes(bytes(broken))
    report = check(ws, [raw])
    bad = set(_flags(report, "corrupt-image")) | set(_flags(report, "truncated-image"))
    assert "raw/scan.tif" not in bad
    assert "raw/broken.tif" in bad


def test_people_in_vendor_headers_are_flagged_without_their_names(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("zeiss_auriga_fibsem.tif", "jeol_sightx_tem.tif", "fei_helios.tif"):
        shutil.copy(DATA / name, raw / name)
    report = check(ws, [raw])
    assert sorted(set(_flags(report, "personal-data"))) == [
        "raw/jeol_sightx_tem.tif",
        "raw/zeiss_auriga_fibsem.tif",
    ]
    text = (ws.root / "curation" / "check.json").read_text()
    assert "JDOE" not in text and "jdoe" not in text
    kinds = json.dumps([f.message for f in report.flags_by_code("personal-data")])
    assert "zeiss:sv_user_name" in kinds or "user name" in kinds


def test_pixel_types_convert_refuses_are_flagged_before_conversion(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(3):
        tifffile.imwrite(raw / f"f64_{i}.tif", np.zeros((5, 8, 8), np.float64))
    tifffile.imwrite(raw / "ok.tif", np.zeros((5, 8, 8), np.uint16))
    tifffile.imwrite(raw / "f32.tif", np.zeros((5, 8, 8), np.float32))
    report = check(ws, [raw])
    flags = report.flags_by_code("unsupported-pixel-type")
    assert len(flags) == 1 and "float64" in flags[0].message and flags[0].severity == "warning"
    assert [Path(p).name for p in flags[0].paths] == ["f64_0.tif", "f64_1.tif", "f64_2.tif"]


def test_samples_in_planes_of_their_own_are_not_called_a_lying_description(ws, tmp_path):
    """tifffile writes an array of 3 or 4 leading planes as one page of separate samples
    (PlanarConfiguration 2) and describes the whole shape: not a truncated file."""
    raw = tmp_path / "raw"
    raw.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile's note that 4 leading planes are samples
        tifffile.imwrite(raw / "four.tif", np.zeros((4, 8, 8), np.uint8))
    tifffile.imwrite(
        raw / "rgb.tif",
        np.zeros((2, 3, 8, 8), np.uint8),
        photometric="rgb",
        planarconfig="separate",
    )
    report = check(ws, [raw])
    assert _flags(report, "corrupt-image") == _flags(report, "truncated-image") == []
    # a description that does claim more planes than the file holds is still caught
    tifffile.imwrite(
        raw / "cut.tif",
        np.zeros((2, 3, 8, 8), np.uint8),
        photometric="rgb",
        planarconfig="separate",
    )
    data = (
        (raw / "cut.tif").read_bytes().replace(b'"shape": [2, 3, 8, 8]', b'"shape": [7, 3, 8, 8]')
    )
    (raw / "cut.tif").write_bytes(data)
    again = check(ws, [raw])
    bad = _flags(again, "corrupt-image") + _flags(again, "truncated-image")
    assert [Path(p).name for p in bad] == ["cut.tif"]
