"""TIFFs whose headers lie (issue 14): ``curated convert`` and ``curated check`` name the
file and what lies in one line; no traceback, no misleading message ("is a 2D image"),
nothing written. Honest files of the same kinds still convert."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.curation.formats import inspect_tiff
from curated.errors import ConversionError
from curated.images.sources import open_source
from tests.fakes import tiffs

runner = CliRunner()


@pytest.fixture(params=sorted(tiffs.HOSTILE))
def hostile(request, tmp_path):
    make, pattern = tiffs.HOSTILE[request.param]
    name = f"{request.param}.ome.tif" if request.param.startswith("ome") else f"{request.param}.tif"
    path = make(tmp_path / name)
    return path, pattern


def test_open_says_what_lies(hostile):
    path, pattern = hostile
    before = path.read_bytes()
    with pytest.raises(ConversionError) as err:
        open_source(path)
    text = str(err.value)
    assert re.search(pattern, text), text
    assert "\n" not in text and "2D image" not in text
    assert path.name in text  # the message names the file
    assert path.read_bytes() == before  # the source is never touched


def test_convert_gives_one_line_and_writes_nothing(hostile, tmp_path):
    path, pattern = hostile
    dest = tmp_path / "out.ome.zarr"
    result = runner.invoke(app, ["convert", str(path), str(dest), "--voxel-size", "8", "4", "4"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "2D image" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip().startswith("error")]
    assert len(lines) == 1 and path.name in lines[0], result.output
    assert re.search(pattern, " ".join(result.output.split())), result.output
    assert not dest.exists()


def test_check_flags_what_lies(hostile):
    path, pattern = hostile
    info = inspect_tiff(path, path.stat().st_size)
    assert info["opens"] is False
    assert info["problem"] and "\n" not in info["problem"]
    if "cut-" not in path.name:
        assert re.search(pattern, info["problem"]), info["problem"]


# ------------------------------------------------------------------ honest files still open
def _imagej_one_ifd(path):
    """An ImageJ stack over 4 GB keeps one IFD and its planes back to back: honest."""
    tiffs.write(path, imagej=True, metadata={"axes": "ZYX"})
    tiffs.set_next_ifd(path, 0, -1)
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: tiffs.write(p, photometric="minisblack"),
        lambda p: tiffs.write(p),
        lambda p: tiffs.write(p, imagej=True, metadata={"axes": "ZYX"}),
        lambda p: tiffs.write(p, metadata={"axes": "ZYX"}),
        lambda p: tiffs.write(p, compression="zlib", rowsperstrip=4),
        lambda p: tiffs.write(p, tile=(16, 16)),
        _imagej_one_ifd,
    ],
    ids=["plain", "shaped", "imagej", "ome", "zlib-strips", "tiled", "imagej-one-ifd"],
)
def test_honest_tiffs_still_open(tmp_path, make):
    path = make(tmp_path / "honest.ome.tif")
    src = open_source(path)
    assert src.shape == (tiffs.PAGES, tiffs.SIDE, tiffs.SIDE)
    full = src.read((slice(0, tiffs.PAGES), slice(0, tiffs.SIDE), slice(0, tiffs.SIDE)))
    np.testing.assert_array_equal(full, tiffs.DATA)
    info = inspect_tiff(path, path.stat().st_size)
    assert info["opens"], info["problem"]


def test_multi_series_shaped_file_is_not_called_a_lie(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(tiffs.DATA)
        tw.write(tiffs.DATA[:2])
    src = open_source(path)
    assert src.shape == (tiffs.PAGES, tiffs.SIDE, tiffs.SIDE)
    assert any("more image" in n for n in src.not_carried)
