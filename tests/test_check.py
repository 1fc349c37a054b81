"""The Check step: inventory, DCN checklist, red flags, and bad input that must not crash it."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import struct

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.curation import check
from curated.curation.formats import dicom_phi_tags, personal_data_in_text, sniff_format
from curated.errors import InputError
from curated.workspace import Workspace

RECORD = {
    "schema_version": "1.0.0",
    "study": {
        "title": "Mouse cortex FIB-SEM",
        "description": "d",
        "authors": [{"family_name": "Doe", "given_name": "Jane"}],
        "license": "CC-BY-4.0",
    },
}


@pytest.fixture
def ws(tmp_path):
    return Workspace.create(tmp_path / "ws", record=json.loads(json.dumps(RECORD)))


def _stack(folder, n=4, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        tifffile.imwrite(folder / f"slice_{i:03d}.tif", np.full((16, 16), i, np.uint8), **kw)


def _flags(report, code):
    return [p for f in report.flags_by_code(code) for p in f.paths]


def test_clean_stack_inventory_and_checklist(ws, tmp_path):
    raw = tmp_path / "raw"
    _stack(raw)
    (raw / "README.md").write_text("# Mouse cortex\n")
    report = check(ws, [raw])
    tiffs = [f for f in report.files if f.format == "TIFF"]
    assert len(tiffs) == 4
    f0 = next(f for f in tiffs if f.path == "raw/slice_000.tif")
    assert f0.sha256 == hashlib.sha256((raw / "slice_000.tif").read_bytes()).hexdigest()
    assert f0.size == (raw / "slice_000.tif").stat().st_size
    assert (
        f0.image["shape"] == [16, 16]
        and f0.image["dtype"] == "uint8"
        and f0.image["pages"] == 1
        and f0.image["opens"]
    )
    answers = {a.id: a.answer for a in report.checklist}
    assert answers == {
        "C1": "yes",
        "C2": "na",
        "C3": "yes",
        "C4": "yes",
        "C5": "needs-human",
        "C6": "no",
        "C7": "needs-human",
        "C8": "yes",
    }
    assert report.ok
    assert not [f for f in report.flags if f.severity != "info"]
    # written atomically, and logged as a C entry with the source's digest
    saved = json.loads((ws.root / "curation" / "check.json").read_text())
    assert saved["summary"]["files"] == 5
    entry = ws.log.last()
    assert entry["step"] == "C" and entry["action"] == "check"
    assert entry["inputs"][0]["digest"].startswith("sha256-tree:")
    assert entry["outputs"][0]["path"] == "curation/check.json"
    assert ws.log.verify(files=True).ok


def test_source_tree_digest_equals_digest_tree(ws, tmp_path):
    from curated.provenance import digest_tree

    raw = tmp_path / "raw"
    _stack(raw)
    (raw / "sub").mkdir()
    (raw / "sub" / "notes.txt").write_text("n")
    report = check(ws, [raw])
    # recorded relative to the workspace, never as the curator's absolute path
    key = ws.relative(raw)
    assert not key.startswith("/")
    assert report.source_digests[key] == digest_tree(raw).digest


def test_format_comes_from_content_not_extension(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "image.png", np.zeros((4, 4), np.uint8))
    (raw / "data.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (raw / "notes.bin").write_text("plain words\n")
    report = check(ws, [raw])
    fmt = {f.path.split("/")[-1]: f.format for f in report.files}
    assert fmt == {"image.png": "TIFF", "data.tif": "PNG", "notes.bin": "text"}
    assert sorted(_flags(report, "extension-mismatch")) == ["raw/data.tif", "raw/image.png"]


def test_ome_tiff_and_bigtiff_are_named(tmp_path):
    tifffile.imwrite(
        tmp_path / "a.ome.tif", np.zeros((2, 8, 8), np.uint16), ome=True, metadata={"axes": "ZYX"}
    )
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((8, 8), np.uint8), bigtiff=True)
    report = check(None, [tmp_path])
    fmt = {f.path.split("/")[-1]: f for f in report.files}
    assert fmt["a.ome.tif"].format == "OME-TIFF" and fmt["a.ome.tif"].image["shape"] == [2, 8, 8]
    assert fmt["b.tif"].format == "BigTIFF"


def test_truncated_and_corrupt_tiffs_are_flagged(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(
        raw / "stack.tif",
        np.random.default_rng(0).integers(0, 255, (6, 32, 32), dtype=np.uint8),
        photometric="minisblack",
    )
    data = (raw / "stack.tif").read_bytes()
    (raw / "cut_in_data.tif").write_bytes(data[: len(data) - 100])
    with tifffile.TiffFile(raw / "stack.tif") as tif:
        ifd4 = tif.pages[4].offset
    (raw / "cut_between_pages.tif").write_bytes(data[:ifd4])
    (raw / "garbage.tif").write_bytes(b"II*\x00" + b"\xff" * 60)
    tifffile.imwrite(
        raw / "lzw.tif",
        np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8),
        compression="zlib",
    )
    z = bytearray((raw / "lzw.tif").read_bytes())
    with tifffile.TiffFile(raw / "lzw.tif") as tif:
        off = tif.pages[0].dataoffsets[0]
    z[off : off + 16] = b"\x00" * 16  # breaks the zlib stream, file length unchanged
    (raw / "lzw.tif").write_bytes(bytes(z))
    report = check(ws, [raw])
    truncated = set(_flags(report, "truncated-image"))
    assert {"raw/cut_in_data.tif", "raw/cut_between_pages.tif"} <= truncated
    assert "raw/stack.tif" not in truncated | set(_flags(report, "corrupt-image"))
    assert {"raw/garbage.tif", "raw/lzw.tif"} <= truncated | set(_flags(report, "corrupt-image"))
    assert report.answer("C1").answer == "no"
    assert not report.ok


def test_png_slices_open_and_truncated_ones_are_flagged(ws, tmp_path):
    from PIL import Image

    raw = tmp_path / "labels"
    raw.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 24), i, np.uint8)).save(raw / f"s{i}.png")
    report = check(ws, [raw])
    assert (
        report.answer("C1").answer == "yes" and "3 image files open" in report.answer("C1").evidence
    )
    whole = (raw / "s1.png").read_bytes()
    (raw / "s1.png").write_bytes(whole[: len(whole) - 20])  # a copy cut short
    report = check(ws, [raw])
    assert _flags(report, "truncated-image") == ["labels/s1.png"]
    assert report.answer("C1").answer == "no" and not report.ok


def test_truncation_check_reads_headers_not_pixels(tmp_path, monkeypatch):
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.zeros((40, 256, 256), np.uint16), photometric="minisblack")
    calls = []
    real = tifffile.TiffPage.asarray

    def spy(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", spy)
    report = check(None, [big])
    assert report.files[0].image["pages"] == 40 and report.files[0].image["opens"]
    assert calls == []


def test_bad_names_empty_files_and_duplicates(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "new\nline.txt").write_text("a")
    (raw / "50%.txt").write_text("b")
    (raw / "bell\x07.txt").write_text("c")
    (raw / os.fsdecode(b"caf\xe9.txt")).write_text("d")
    (raw / "trailing .txt").write_text("e")
    (raw / "trailing ").write_text("f")
    (raw / "empty.tif").write_bytes(b"")
    (raw / "copy1.dat").write_bytes(b"same bytes")
    (raw / "copy2.dat").write_bytes(b"same bytes")
    report = check(ws, [raw])
    bad = {p: f.message for f in report.flags_by_code("bad-name") for p in f.paths}
    assert "raw/new\nline.txt" in bad and "newline" in bad["raw/new\nline.txt"]
    assert "'%'" in bad["raw/50%.txt"]
    assert "control" in bad["raw/bell\x07.txt"]
    assert "not UTF-8" in bad["raw/caf\\xe9.txt"]
    assert "trailing" in bad["raw/trailing "]
    assert "raw/trailing .txt" not in bad
    assert _flags(report, "empty-file") == ["raw/empty.tif"]
    assert _flags(report, "duplicate-content") == ["raw/copy1.dat", "raw/copy2.dat"]
    assert report.answer("C6").answer == "yes" and report.answer("C6").ok is False
    # the report is valid UTF-8 JSON despite the undecodable name
    json.loads((ws.root / "curation" / "check.json").read_bytes().decode("utf-8"))


def test_personal_data_in_tiff_headers(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(
        raw / "a.tif", np.zeros((4, 4), np.uint8), description="Operator: Jane Doe\nkV=1.5"
    )
    tifffile.imwrite(
        raw / "b.tif", np.zeros((4, 4), np.uint8), extratags=[(315, "s", 0, "John Smith", True)]
    )
    tifffile.imwrite(
        raw / "c.tif",
        np.zeros((4, 4), np.uint8),
        description="contact jane.doe@uni.example for details",
    )
    tifffile.imwrite(
        raw / "d.tif", np.zeros((4, 4), np.uint8), description="User: n/a\nDetector: InLens"
    )
    report = check(ws, [raw])
    flagged = set(_flags(report, "personal-data"))
    assert flagged == {"raw/a.tif", "raw/b.tif", "raw/c.tif"}
    # values never leak into the report
    text = (ws.root / "curation" / "check.json").read_text()
    assert "Jane Doe" not in text and "John Smith" not in text and "jane.doe@" not in text


def test_ome_experimenter_is_personal_data():
    ome = '<OME><Experimenter ID="Experimenter:0" FirstName="Ada" LastName="Lovelace" Email="ada@x.org"/></OME>'
    kinds = personal_data_in_text(ome)
    assert "OME Experimenter FirstName" in kinds and "e-mail address" in kinds


def _dicom(tmp_path, name, patient: bytes, explicit=True):
    def element(group, elem, vr, value):
        if explicit:
            return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value
        return struct.pack("<HHI", group, elem, len(value)) + value

    body = (
        element(0x0008, 0x0060, b"CS", b"MR")
        + element(0x0010, 0x0010, b"PN", patient)
        + element(0x0010, 0x0020, b"LO", b"")
    )
    p = tmp_path / name
    p.write_bytes(b"\x00" * 128 + b"DICM" + body)
    return p


def test_dicom_phi_is_found_without_pydicom(ws, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _dicom(raw, "img0001", b"Doe^John")
    _dicom(raw, "img0002.dcm", b"Roe^Richard", explicit=False)
    _dicom(raw, "anon.dcm", b"  ")
    assert dicom_phi_tags(raw / "img0001") == ["PatientName"]
    assert dicom_phi_tags(raw / "anon.dcm") == []
    report = check(ws, [raw])
    assert {f.format for f in report.files} == {"DICOM"}
    assert sorted(_flags(report, "dicom-phi")) == ["raw/img0001", "raw/img0002.dcm"]
    assert report.answer("C5").answer == "yes"
    assert "Doe^John" not in (ws.root / "curation" / "check.json").read_text()


def test_missing_readme_and_licence_are_flagged(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    raw = tmp_path / "raw"
    _stack(raw, 3)
    report = check(ws, [raw])
    assert report.flags_by_code("no-documentation") and report.flags_by_code("no-licence")
    assert report.answer("C3").answer == "no" and "authors" in report.answer("C3").evidence
    (raw / "LICENSE").write_text("CC0")
    (raw / "README.txt").write_text("about")
    report = check(ws, [raw])
    assert not report.flags_by_code("no-documentation") and not report.flags_by_code("no-licence")


def test_unpadded_numbers_break_the_naming_convention(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(12):
        tifffile.imwrite(raw / f"slice_{i}.tif", np.zeros((2, 2), np.uint8))
    report = check(None, [raw])
    assert report.answer("C8").answer == "no" and "zero-padded" in report.answer("C8").evidence


def test_code_files_make_c2_a_human_question(tmp_path):
    (tmp_path / "align.py").write_text("print(1)\n")
    assert check(None, [tmp_path]).answer("C2").answer == "needs-human"


# ----------------------------------------------------------------- bad input
def test_broken_symlinks_and_loops_do_not_crash(ws, tmp_path):
    raw = tmp_path / "raw"
    _stack(raw, 2)
    os.symlink(raw / "gone.tif", raw / "broken.tif")
    os.symlink("loop", raw / "loop")
    os.symlink(raw, raw / "self")  # a folder link back to its parent
    os.symlink(raw / "slice_000.tif", raw / "alias.tif")
    os.mkfifo(raw / "pipe")
    report = check(ws, [raw])
    assert _flags(report, "broken-symlink") == ["raw/broken.tif"]
    assert _flags(report, "symlink-loop") == ["raw/loop"]
    assert _flags(report, "symlinked-folder") == ["raw/self"]
    assert _flags(report, "special-file") == ["raw/pipe"]
    alias = next(f for f in report.files if f.path == "raw/alias.tif")
    assert alias.symlink and alias.format == "TIFF"
    assert len(report.files) == 3


def test_unreadable_file_is_a_red_flag_not_a_crash(ws, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    _stack(raw, 3)
    locked = str(raw / "slice_001.tif")
    real_open, real_os_open = builtins.open, os.open

    def guarded(file, *args, **kwargs):
        if os.fspath(file) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(file, *args, **kwargs)

    def guarded_os(file, *args, **kwargs):
        # files are opened by full path or by name inside their open folder (dir_fd)
        if os.fspath(file) == locked or (
            kwargs.get("dir_fd") is not None and os.fspath(file) == "slice_001.tif"
        ):
            raise PermissionError(13, "Permission denied", locked)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(os, "open", guarded_os)
    report = check(ws, [raw])
    rec = next(f for f in report.files if f.path == "raw/slice_001.tif")
    assert rec.sha256 is None and "Permission denied" in rec.error
    assert _flags(report, "unreadable") == ["raw/slice_001.tif"]
    assert report.answer("C1").answer == "no"
    # the source digest is not claimed when a file could not be read
    assert ws.log.last()["inputs"][0]["digest"] is None
    assert len(report.files) == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_by_permissions(ws, tmp_path):
    raw = tmp_path / "raw"
    _stack(raw, 2)
    (raw / "slice_000.tif").chmod(0)
    sub = raw / "locked"
    sub.mkdir()
    sub.chmod(0)
    try:
        report = check(ws, [raw])
    finally:
        sub.chmod(0o755)
    assert set(_flags(report, "unreadable")) == {"raw/slice_000.tif", "raw/locked"}


def test_many_small_files(tmp_path):
    raw = tmp_path / "many"
    for d in range(3):
        sub = raw / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"f{i:04d}.bin").write_bytes(i.to_bytes(2, "little") + bytes([d]))
    report = check(None, [raw])
    assert len(report.files) == 3000
    assert not report.flags_by_code("duplicate-content")


def test_sources_default_to_images_in_curated_yaml(tmp_path):
    raw = tmp_path / "raw"
    _stack(raw, 2)
    record = json.loads(json.dumps(RECORD))
    record["images"] = [
        {"name": "em", "path": str(raw / "slice_000.tif")},
        {"name": "em2", "path": str(raw / "slice_001.tif")},
    ]
    ws = Workspace.create(tmp_path / "ws", record=record)
    report = check(ws)
    assert sorted(f.path for f in report.files) == ["slice_000.tif", "slice_001.tif"]


def test_no_sources_anywhere_is_a_clear_error(ws):
    with pytest.raises(InputError, match="no SOURCE given and curated.yaml lists no images"):
        check(ws)
    assert not (ws.root / "curation" / "check.json").exists()


def test_missing_source_is_a_clear_error(ws, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        check(ws, [tmp_path / "nope"])
    assert not ws.log.exists()


def test_workspace_own_folders_are_not_checked(ws):
    (ws.root / "data.txt").write_text("x")
    check(ws, [ws.root])
    report = check(ws, [ws.root])  # the second run must not see the first's check.json or log
    assert sorted(f.path for f in report.files) == ["curated.yaml", "data.txt"]


def test_sniff_format_basics():
    assert sniff_format(b"") == "empty"
    assert sniff_format(b"\x00" * 128 + b"DICM") == "DICOM"
    assert sniff_format(b"# Title\n", "README.md") == "Markdown"
    assert sniff_format(b"\x00\x01\x02") == "unknown binary"


# ------------------------------------------------------------------------ CLI
def test_cli_check_shows_tables_and_writes_report(ws, tmp_path):
    raw = tmp_path / "raw"
    _stack(raw, 2)
    (raw / "empty.tif").write_bytes(b"")
    r = CliRunner().invoke(app, ["check", str(ws.root), str(raw)])
    assert r.exit_code == 0, r.output
    assert "C1" in r.output and "empty-file" in r.output
    assert (ws.root / "curation" / "check.json").is_file()


def test_cli_check_missing_source_exits_1(ws, tmp_path):
    r = CliRunner().invoke(app, ["check", str(ws.root), str(tmp_path / "nope")])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_worker_processes_give_the_same_report_as_one_process(tmp_path):
    """Large inventories are examined by worker processes; the report must not change."""
    raw = tmp_path / "raw"
    _stack(raw / "stack", 3)
    for d in range(3):
        sub = raw / "chunks" / str(d)
        sub.mkdir(parents=True)
        for i in range(150):  # more than one run of files per folder
            (sub / str(i)).write_bytes(
                bytes([d, i % 7]) * (i % 5)
            )  # zero-byte files and duplicates
    (raw / "chunks" / "odd%name .bin").write_bytes(b"x" * 10)
    os.symlink(raw / "stack" / "slice_000.tif", raw / "alias.tif")
    (raw / "README.md").write_text("# about\n")
    one = check(None, [raw], processes=1)
    two = check(None, [raw], processes=2)
    assert len(one.files) == 3 + 450 + 1 + 1 + 1
    assert one.to_dict() == two.to_dict()
    assert one.source_digests == two.source_digests
    from curated.provenance.digest import digest_tree

    assert one.source_digests[str(raw)] == digest_tree(raw).digest
    codes = {f.code for f in one.flags}
    assert {"empty-file", "duplicate-content", "bad-name"} <= codes
    assert [f.path for f in one.files][:3] == ["raw/README.md", "raw/alias.tif", "raw/chunks/0/0"]


def test_cli_check_takes_a_process_count(ws, tmp_path):
    raw = tmp_path / "raw"
    _stack(raw, 2)
    result = CliRunner().invoke(app, ["check", str(ws.root), str(raw), "--processes", "2"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["check", str(ws.root), str(raw), "--processes", "0"])
    assert bad.exit_code == 2


def test_a_large_inventory_waits_on_disk_and_reports_the_same(tmp_path, monkeypatch):
    """Past INVENTORY_IN_MEMORY records the inventory spills to disk; nothing in the report changes."""
    import importlib

    check_module = importlib.import_module("curated.curation.check")
    raw = tmp_path / "raw"
    for d in range(3):
        sub = raw / f"d{d}"
        sub.mkdir(parents=True)
        for i in range(40):
            (sub / f"f{i:03d}.bin").write_bytes(bytes([i % 9]) * (1 + i % 3))  # duplicates
    ws = Workspace.create(tmp_path / "ws", record=RECORD)
    small = check(ws, [raw], processes=1)
    expected = json.loads((ws.root / "curation" / "check.json").read_text())
    monkeypatch.setattr(check_module, "INVENTORY_IN_MEMORY", 7)
    monkeypatch.setattr(check_module, "_SPILL_CHUNK", 5)
    big = check(ws, [raw], processes=2)
    assert isinstance(big.files, check_module.FileInventory) and big.files._chunks  # it spilled
    assert len(big.files) == 120 and big.files == small.files
    assert big.files[-1] == small.files[-1] and big.files[60] == small.files[60]
    assert big.files[3:6] == small.files[3:6]
    written = json.loads((ws.root / "curation" / "check.json").read_text())
    assert written == expected == big.to_dict()
    assert big.flags_by_code("duplicate-content") == small.flags_by_code("duplicate-content")
    assert big.flags_by_code("duplicate-content")  # the on-disk index found them


@pytest.mark.parametrize(
    "doc", ["NOTES.txt", "notes.md", "read_me.txt", "00_README.md", "ReadMe-2024.txt", "INFO.txt"]
)
def test_common_documentation_names_count_as_documentation(tmp_path, doc):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    raw = tmp_path / "raw"
    _stack(raw, 3)
    (raw / doc).write_text("how the stack was made")
    report = check(ws, [raw])
    assert not report.flags_by_code("no-documentation")
    assert report.answer("C4").answer == "yes"


@pytest.mark.parametrize("name", ["notebook.ipynb", "information_theory.tif", "readmeh.bin"])
def test_names_that_only_start_like_documentation_are_not_documentation(tmp_path, name):
    from curated.curation.check import DOC_NAMES

    assert not DOC_NAMES.match(name)


def test_ome_zarr_images_handed_in_are_validated(ws, tmp_path):
    import zarr

    from curated.images import write_ome_zarr

    raw = tmp_path / "raw"
    vol = np.random.default_rng(0).integers(0, 255, (8, 32, 32), dtype=np.uint8)
    write_ome_zarr(vol, raw / "good.ome.zarr", voxel_size=(8, 4, 4), chunks=16)
    write_ome_zarr(vol, raw / "bad.ome.zarr", voxel_size=(8, 4, 4), chunks=16)
    meta = json.loads((raw / "bad.ome.zarr" / "zarr.json").read_text())
    for a in meta["attributes"]["ome"]["multiscales"][0]["axes"]:
        a["unit"] = "nm"  # not a UDUNITS-2 name: viewers cannot read the voxel size
    (raw / "bad.ome.zarr" / "zarr.json").write_text(json.dumps(meta))
    zarr.open_group(str(raw / "plain.zarr"), mode="w", zarr_format=3)  # no NGFF: not judged
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    report = check(ws, [raw])
    flags = report.flags_by_code("invalid-ome-zarr")
    assert len(flags) == 1 and flags[0].paths[0].endswith("raw/bad.ome.zarr")
    assert flags[0].severity == "warning"
    assert "UDUNITS" in flags[0].message and "curated metadata validate" in flags[0].message
    assert str(tmp_path) not in flags[0].message
    # a store given as the source itself is judged too; sources are never modified
    alone = check(ws, [raw / "bad.ome.zarr"])
    assert [f.paths[0] for f in alone.flags_by_code("invalid-ome-zarr")] == [flags[0].paths[0]]
    assert check(ws, [raw / "good.ome.zarr"]).flags_by_code("invalid-ome-zarr") == []
    assert before == {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}


def test_ome_zarr_images_nested_anywhere_in_a_source_are_validated(ws, tmp_path):
    """Stores deep in a source tree, and images inside a container group (bioformats2raw's
    layout), are judged too; the groups inside a store are not taken for stores of their own."""
    import zarr

    from curated.images import write_ome_zarr

    raw = tmp_path / "raw"
    vol = np.random.default_rng(0).integers(0, 255, (8, 32, 32), dtype=np.uint8)
    deep = raw / "2024" / "grid3" / "cell.ome.zarr"
    write_ome_zarr(vol, deep, voxel_size=(8, 4, 4), chunks=16)
    container = raw / "scan.zarr"
    zarr.open_group(str(container), mode="w", zarr_format=3).attrs["bioformats2raw.layout"] = 3
    write_ome_zarr(vol, container / "0", voxel_size=(8, 4, 4), chunks=16)
    write_ome_zarr(vol, container / "1", voxel_size=(8, 4, 4), chunks=16)
    zarr.open_array(str(raw / "flat.zarr"), mode="w", shape=(4, 4), chunks=(2, 2), dtype="u1")[
        :
    ] = 1
    assert check(ws, [raw]).flags_by_code("invalid-ome-zarr") == []
    for bad in (deep, container / "1"):
        meta = json.loads((bad / "zarr.json").read_text())
        for a in meta["attributes"]["ome"]["multiscales"][0]["axes"]:
            a["unit"] = "nm"
        (bad / "zarr.json").write_text(json.dumps(meta))
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    flagged = sorted(f.paths[0] for f in check(ws, [raw]).flags_by_code("invalid-ome-zarr"))
    assert [p.rsplit("raw/", 1)[1] for p in flagged] == ["2024/grid3/cell.ome.zarr", "scan.zarr/1"]
    assert before == {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
