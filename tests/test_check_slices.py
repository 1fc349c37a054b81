"""`curated check` on folders of slices: what would make `convert` refuse or mislead is found first."""

from __future__ import annotations

import numpy as np
import tifffile
from PIL import Image

from curated.curation import check

RNG = np.random.default_rng(3)


def _slice(path, shape=(8, 8), dtype=np.uint8):
    tifffile.imwrite(path, RNG.integers(0, 200, shape).astype(dtype))


def _series(report):
    return {f.message: f for f in report.flags if f.code == "slice-series"}


def test_a_gap_in_the_slice_numbers_is_flagged_naming_the_neighbours(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in (0, 1, 2, 4, 5):
        _slice(raw / f"slice_{z:03d}.tif")
    flags = _series(check(None, [raw], write=False))
    assert len(flags) == 1
    ((msg, flag),) = flags.items()
    assert "3 (between slice_002.tif and slice_004.tif)" in msg and flag.severity == "warning"
    assert flag.paths == ["raw/slice_002.tif", "raw/slice_004.tif"]


def test_a_slice_of_another_size_dtype_or_page_count_is_flagged(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in range(6):
        _slice(raw / f"s{z:02d}.tif")
    _slice(raw / "s06.tif", shape=(8, 9))
    _slice(raw / "s07.tif", dtype=np.uint16)
    with tifffile.TiffWriter(raw / "s08.tif") as w:
        for _ in range(3):
            w.write(np.zeros((8, 8), np.uint8), metadata=None)
    flags = _series(check(None, [raw], write=False))
    ((msg, flag),) = flags.items()
    assert flag.paths == ["raw/s06.tif", "raw/s07.tif", "raw/s08.tif"]
    assert "6 of 9" in msg and "8 x 8 uint8" in msg
    assert "8 x 9 uint8" in msg and "8 x 8 uint16" in msg and "3 x 8 x 8 uint8" in msg


def test_two_series_and_shared_numbers_are_flagged(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in range(4):
        _slice(raw / f"em_{z}.tif")
    for z in range(3):
        _slice(raw / f"mask_{z}.tif")
    _slice(raw / "em_01.tif")  # the same number as em_1.tif
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(raw / "overview.png")
    messages = " | ".join(_series(check(None, [raw], write=False)))
    assert "em_#.tif (5 files" in messages and "mask_#.tif (3 files" in messages
    assert "em_01.tif and em_1.tif" in messages
    assert "overview.png" not in messages  # a lone image beside the slices is no series


def test_a_folder_is_judged_whole_though_a_sub_folder_sorts_among_its_slices(tmp_path):
    src = tmp_path / "data"
    for sub in ("a", "a/s1_b", "c"):
        (src / sub).mkdir(parents=True)
    for z in (0, 1, 3, 4):  # a lacks s2; its sub-folder s1_b sorts between s1.tif and s3.tif
        _slice(src / "a" / f"s{z}.tif")
    for z in range(4):
        _slice(src / "a" / "s1_b" / f"s{z}.tif", shape=(4, 4))  # another volume, complete
        _slice(src / "c" / f"s{z + 10}.tif", shape=(6, 6))
    flags = list(_series(check(None, [src], write=False)).values())
    assert [f.paths for f in flags] == [["data/a/s1.tif", "data/a/s3.tif"]]


def test_slices_whose_pixel_size_or_grey_differs_are_flagged(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in range(5):
        size = 5 if z == 3 else 4  # one slice from another session
        tifffile.imwrite(
            raw / f"s{z}.tif",
            np.zeros((8, 8), np.uint8),
            resolution=(1e7 / size, 1e7 / size),
            resolutionunit="CENTIMETER",
            photometric="miniswhite" if z == 1 else "minisblack",
        )
    ((msg, flag),) = _series(check(None, [raw], write=False)).items()
    assert flag.paths == ["raw/s1.tif", "raw/s3.tif"]
    assert "pixel size y x = 5 5 nanometer" in msg and "MinIsWhite" in msg


def test_a_gap_becomes_a_question_for_the_depositor(tmp_path):
    from curated.curation.request import request
    from curated.workspace import Workspace

    ws = Workspace.create(
        tmp_path / "ws", record={"schema_version": "1.0.0", "study": {"title": "t"}}
    )
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in (0, 1, 2, 5, 6):
        _slice(raw / f"slice_{z:03d}.tif")
    check(ws, [raw])
    result = request(ws)
    asked = [
        a for a in result.details["asks"] + result.details["deferred"] if "slice" in a["question"]
    ]
    assert len(asked) == 1
    assert "slice_002.tif" in asked[0]["question"] and "3-4" in asked[0]["question"]


def test_macos_and_windows_system_files_are_one_flag(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in range(3):
        _slice(raw / f"s{z}.tif")
    (raw / "._s0.tif").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # AppleDouble from a Mac copy
    (raw / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(20))
    (raw / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(20))
    report = check(None, [raw], write=False)
    (flag,) = report.flags_by_code("system-files")
    assert flag.paths == ["raw/.DS_Store", "raw/._s0.tif", "raw/Thumbs.db"]
    assert "3 files" in flag.message and flag.severity == "warning"
    assert _series(report) == {}


def test_check_reads_a_slices_grey_palette_as_convert_does(tmp_path):
    """A grey-ramp palette shows its values as MinIsBlack slices do (convert reads both alike),
    so it is no odd slice; a white-to-black palette shows as MinIsWhite and is one."""
    ramp = (np.arange(256) * 257).astype(np.uint16)
    raw = tmp_path / "raw"
    raw.mkdir()
    for z in range(4):
        _slice(raw / f"s{z}.tif")
    data = RNG.integers(0, 200, (8, 8)).astype(np.uint8)
    tifffile.imwrite(raw / "s4.tif", data, photometric="palette", colormap=np.stack([ramp] * 3))
    assert _series(check(None, [raw], write=False)) == {}
    tifffile.imwrite(
        raw / "s4.tif", data, photometric="palette", colormap=np.stack([ramp[::-1]] * 3)
    )
    ((msg, flag),) = _series(check(None, [raw], write=False)).items()
    assert flag.paths == ["raw/s4.tif"] and "MinIsWhite" in msg
