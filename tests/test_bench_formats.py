"""`bench formats`: every format reads back the volume; bounded reads; clear errors; report, plot, log."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from curated.bench import FORMATS, bench_formats
from curated.bench.storage import Layout, Volume, formats
from curated.cli import app
from curated.errors import InputError
from curated.images import add_labels, write_ome_zarr
from curated.images.sources import open_source
from curated.metadata.edit import init_workspace
from curated.provenance.digest import digest_tree

SHAPE = (13, 37, 29)  # no edge is a multiple of a chunk, tile or shard
SMALL = Layout(chunk=8, shard=16, tile=16)


def _volume() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 60000, SHAPE, dtype=np.uint16)


def _source(arr: np.ndarray, log: list | None = None) -> Volume:
    def read(region):
        if log is not None:
            log.append(int(np.prod([s.stop - s.start for s in region])))
        return arr[region]

    return Volume(read, arr.shape, arr.dtype)


@pytest.mark.parametrize("fmt", formats(SMALL), ids=lambda f: f.name)
def test_each_format_reads_back_the_volume(fmt, tmp_path):
    arr = _volume()
    path = tmp_path / f"v{fmt.suffix}"
    seconds = fmt.write(_source(arr), path, SMALL)
    assert seconds >= 0
    reader = fmt.open(path)
    try:
        assert np.array_equal(reader.read((slice(0, 13), slice(0, 37), slice(0, 29))), arr)
        region = (slice(3, 11), slice(5, 36), slice(17, 18))
        assert np.array_equal(reader.read(region), arr[region])
    finally:
        reader.close()


def test_the_n5_copy_opens_with_curateds_own_n5_reader(tmp_path):
    arr = _volume()
    (n5,) = [f for f in formats(SMALL) if f.name == "n5"]
    n5.write(_source(arr), tmp_path / "v.n5", SMALL)
    src = open_source(f"{tmp_path / 'v.n5'}:/")
    assert tuple(src.shape) == SHAPE
    assert np.array_equal(src.read((slice(0, 13), slice(0, 37), slice(0, 29))), arr)


@pytest.mark.parametrize("fmt", formats(SMALL), ids=lambda f: f.name)
def test_writers_never_read_more_than_a_slab_or_a_cube(fmt, tmp_path, monkeypatch):
    import curated.bench.storage as storage

    monkeypatch.setattr(storage, "SLAB_BYTES", 4 * SHAPE[1] * SHAPE[2] * 2)  # four planes
    sizes: list[int] = []
    fmt.write(_source(_volume(), sizes), tmp_path / f"v{fmt.suffix}", SMALL)
    assert max(sizes) <= max(4 * SHAPE[1] * SHAPE[2], SMALL.shard**3)
    assert sum(sizes) == np.prod(SHAPE)  # each voxel read once


@pytest.fixture
def image(tmp_path):
    arr = _volume()
    write_ome_zarr(arr, tmp_path / "img.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16)
    lab = np.zeros(SHAPE, np.uint16)
    lab[2:9, 3:30, 4:20] = 4
    lab[10:13, 0:5, 0:5] = 2
    add_labels(tmp_path / "img.ome.zarr", "cells", lab, kind="truth")
    return tmp_path / "img.ome.zarr"


def test_bench_formats_reports_every_format_with_plot_json_and_tables(image, tmp_path):
    before = digest_tree(image).digest
    out = tmp_path / "bench"
    res = bench_formats(image, out, blocks=1)
    d = res.details
    assert [r["format"] for r in d["formats"]] == list(FORMATS)
    for row in d["formats"]:
        assert row["disk_bytes"] > 0 and row["files"] >= 1
        for key in ("block64_cold_ms", "block256_warm_ms", "xz_cold_ms", "yz_warm_ms", "scan_mb_s"):
            assert row[key] > 0, (row["format"], key)
    assert d["plan"]["blocks"]["256"]["shape"] == list(SHAPE)  # clipped to the volume
    assert json.loads((out / "bench-formats.json").read_text())["formats"] == d["formats"]
    with Image.open(out / "bench-formats.png") as png:
        assert png.format == "PNG" and png.size[0] > 400
    assert d["tables"]["labels"] == "cells" and d["tables"]["rows"] == 2
    assert d["tables"]["parquet"]["units_kept"] and not d["tables"]["csv"]["units_kept"]
    assert not (out / "copies").exists()  # the copies are deleted unless --keep
    assert digest_tree(image).digest == before  # the source is never written


def test_bench_formats_on_a_tiff_source_skips_the_table_and_says_why(tmp_path):
    tifffile.imwrite(tmp_path / "v.tif", _volume(), metadata={"axes": "ZYX"})
    res = bench_formats(tmp_path / "v.tif", tmp_path / "b", formats_=["hdf5", "zarr-v2"], blocks=1)
    assert [r["format"] for r in res.details["formats"]] == ["hdf5", "zarr-v2"]
    assert "no label image" in res.details["tables"]["skipped"]


def test_bench_formats_is_recorded_in_the_log(image, tmp_path):
    ws = init_workspace(tmp_path / "ws", "bench")
    bench_formats(image, tmp_path / "ws" / "derived" / "bench", formats_=["n5"], workspace=ws)
    entry = list(ws.log.entries())[-1]
    assert entry["action"] == "bench-formats" and entry["status"] == "ok"
    assert {o["path"] for o in entry["outputs"]} == {
        "derived/bench/bench-formats.json",
        "derived/bench/bench-formats.png",
    }
    assert all(o["digest"] for o in entry["outputs"])
    assert entry["details"]["formats"][0]["format"] == "n5"


def _cli(*args):
    return CliRunner().invoke(app, ["bench", "formats", *map(str, args)])


def test_cli_prints_the_table(image, tmp_path):
    r = _cli(image, "--out", tmp_path / "b", "--format", "tiff-contiguous", "--blocks", "1")
    assert r.exit_code == 0, r.output
    assert "tiff-contiguous" in r.output and "scan MB/s" in r.output and "Parquet" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "jpeg"], "unknown format(s) jpeg"),
        (["--out", "{image}/bench"], "lies inside the image"),
    ],
)
def test_cli_bad_options_are_one_line_errors(image, tmp_path, args, message):
    before = digest_tree(image).digest
    args = [a.format(image=image) for a in args]
    r = _cli(image, *args)
    assert r.exit_code == 1 and message in r.output
    assert len(r.output.strip().splitlines()) <= 3
    assert digest_tree(image).digest == before


def test_an_existing_foreign_copies_folder_is_never_deleted(image, tmp_path):
    mine = tmp_path / "b" / "copies" / "precious.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep me")
    with pytest.raises(InputError, match="not made by `curated bench formats`"):
        bench_formats(image, tmp_path / "b")
    assert mine.read_text() == "keep me"


def test_missing_and_two_dimensional_sources_are_clear_errors(tmp_path):
    r = _cli(tmp_path / "nothing.tif", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "does not exist" in r.output
    tifffile.imwrite(tmp_path / "plane.tif", np.zeros((20, 30), np.uint8))
    r = _cli(tmp_path / "plane.tif", "--out", tmp_path / "b")
    assert r.exit_code == 1 and "needs a 3-D z,y,x volume" in r.output


def test_a_failure_midway_leaves_no_copies_and_is_logged_as_failed(image, tmp_path, monkeypatch):
    import curated.bench.formats as bench

    real = bench._measure_format
    calls = []

    def fail_second(fmt, path, *args):
        calls.append(fmt.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        return real(fmt, path, *args)

    monkeypatch.setattr(bench, "_measure_format", fail_second)
    ws = init_workspace(tmp_path / "ws", "bench")
    with pytest.raises(OSError, match="No space left"):
        bench_formats(image, tmp_path / "b", formats_=["hdf5", "zarr-v2"], workspace=ws)
    assert not (tmp_path / "b" / "copies").exists()
    assert not (tmp_path / "b" / "bench-formats.json").exists()  # no report that looks complete
    entry = list(ws.log.entries())[-1]
    assert entry["action"] == "bench-formats" and entry["status"] == "error"
    assert "No space left" in entry["message"]


@pytest.mark.skipif(shutil.which("fincore") is None, reason="needs util-linux fincore")
def test_cold_reads_start_with_the_files_out_of_the_page_cache(tmp_path):
    from curated.bench.storage import evict, sync

    fs = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", str(tmp_path)], capture_output=True, text=True
    ).stdout.strip()
    if fs in ("tmpfs", "ramfs", ""):
        pytest.skip(
            f"the test folder is on {fs or 'an unknown file system'}: no page cache to evict"
        )
    f = tmp_path / "d" / "chunk"
    f.parent.mkdir()
    f.write_bytes(np.random.default_rng(0).bytes(4 << 20))
    sync(f.parent)
    f.read_bytes()

    def resident() -> int:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(f)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.split()[0])

    assert resident() > 0
    evict(f.parent)
    assert resident() == 0
