"""The codec of each pyramid level, and TIFF pages read straight into the task's slab.

By default an intensity image stores level 0 with blosc-zstd level 3 and levels 1 and up with
blosc-zstd level 1 (``PYRAMID_CODEC``); ``same_codec`` keeps level 0's codec everywhere. Either
way the store is valid OME-Zarr 0.5, every array's ``zarr.json`` names its own codec, and the
voxels are the same (the codecs are lossless).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image, validate_ome_zarr, write_ome_zarr
from curated.images.layout import (
    INTENSITY_CODEC,
    PYRAMID_CODEC,
    StoreLayout,
    make_axes,
    make_layout,
)
from curated.images.sources import open_source


def _volume(shape=(40, 48, 44), dtype="uint8", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    a = 120 + 50 * np.sin(x / 6.0 + z / 4.0) * np.cos(y / 7.0) + rng.normal(0, 8, shape)
    return np.clip(a, 0, np.iinfo(dtype).max).astype(dtype)


def _paths(root: Path) -> list[str]:
    return [lv.path for lv in open_image(root).metadata.levels]


def _blosc_level(root: Path, path: str) -> int:
    """The blosc clevel named in one array's ``zarr.json`` (inside the sharding codec)."""
    meta = json.loads((root / path / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    (blosc,) = [c for c in inner if c["name"] == "blosc"]
    assert blosc["configuration"]["cname"] == "zstd"
    return int(blosc["configuration"]["clevel"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("codecs")
    vol = _volume()
    src = tmp / "s.tif"
    tifffile.imwrite(src, vol, photometric="minisblack")
    default = tmp / "default.ome.zarr"
    same = tmp / "same.ome.zarr"
    res = convert_to_ome_zarr(src, default, voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2)
    assert res.details["codec"] == INTENSITY_CODEC
    assert res.details["pyramid_codec"] == PYRAMID_CODEC
    res = convert_to_ome_zarr(
        src, same, voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2, same_codec=True
    )
    assert res.details["pyramid_codec"] == INTENSITY_CODEC
    return default, same, vol


def test_default_stores_levels_above_zero_with_the_pyramid_codec(stores):
    default, same, _ = stores
    levels = _paths(default)
    assert len(levels) == 4
    assert _blosc_level(default, levels[0]) == INTENSITY_CODEC["clevel"] == 3
    assert [_blosc_level(default, p) for p in levels[1:]] == [PYRAMID_CODEC["clevel"]] * 3
    assert [_blosc_level(same, p) for p in levels] == [3, 3, 3, 3]
    # level 0 is byte for byte the same file either way; the levels above differ in bytes only
    shard0 = sorted((default / "0").rglob("c/*/*/*"))
    assert shard0 and [p.read_bytes() for p in shard0] == [
        (same / p.relative_to(default)).read_bytes() for p in shard0
    ]
    shard1 = sorted((default / "1").rglob("c/*/*/*"))
    assert any(p.read_bytes() != (same / p.relative_to(default)).read_bytes() for p in shard1)


def test_both_stores_are_valid_and_hold_the_same_voxels(stores):
    default, same, vol = stores
    assert validate_ome_zarr(default) == []
    assert validate_ome_zarr(same) == []
    a, b = open_image(default), open_image(same)
    np.testing.assert_array_equal(a.levels[0][:], vol)
    for k in range(len(a.levels)):
        # zarr-python reads each array with the codec its own zarr.json names
        got = zarr.open_array(str(default / _paths(default)[k]), mode="r")[:]
        np.testing.assert_array_equal(got, b.levels[k][:])
    meta = json.loads((default / "zarr.json").read_text())["attributes"]["ome"]
    assert meta["version"] == "0.5"


def test_labels_and_explicit_codecs_keep_one_codec_everywhere():
    axes = make_axes("zyx", "nanometer")
    labels = make_layout((64, 64, 64), "uint32", axes, (4, 4, 4), chunks=16, method="mode")
    assert labels.pyramid_codec is None
    assert all(labels.level_codec(k) == labels.codec for k in range(len(labels.levels)))
    mine = {"id": "zstd", "level": 9}
    explicit = make_layout((64, 64, 64), "uint8", axes, (4, 4, 4), chunks=16, codec=mine)
    assert explicit.pyramid_codec is None and explicit.level_codec(2) == mine
    single = make_layout((8, 8, 8), "uint8", axes, (4, 4, 4), chunks=8)
    assert len(single.levels) == 1 and single.pyramid_codec is None


def test_layout_round_trips_and_reads_plans_without_a_pyramid_codec():
    axes = make_axes("zyx", "nanometer")
    lay = make_layout((64, 64, 64), "uint8", axes, (4, 4, 4), chunks=16)
    assert lay.pyramid_codec == PYRAMID_CODEC
    assert StoreLayout.from_dict(lay.to_dict()) == lay
    old = lay.to_dict()
    del old["pyramid_codec"]  # a plan written before levels had their own codec
    assert StoreLayout.from_dict(old).level_codec(1) == INTENSITY_CODEC
    # ... is the plan of the same image with one codec everywhere: such a store resumes
    same = make_layout((64, 64, 64), "uint8", axes, (4, 4, 4), chunks=16, same_codec=True)
    assert same.to_dict() == old


def test_an_unfinished_store_is_not_resumed_with_the_other_codec_choice(tmp_path, monkeypatch):
    """Changing ``--same-codec`` between runs is a different plan: refused, nothing mixed."""
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, _volume((24, 32, 32)), photometric="minisblack")
    dest = tmp_path / "d.ome.zarr"
    monkeypatch.setattr("curated.images.convert._store.drop_journal", lambda root: None)
    monkeypatch.setattr(
        "curated.images.convert._store.finish", lambda *a, **k: None
    )  # leaves the store unfinished, as a kill would
    convert_to_ome_zarr(src, dest, voxel_size=(4, 4, 4), chunks=8, shard=16)
    monkeypatch.undo()
    with pytest.raises(Exception, match="different inputs or parameters"):
        convert_to_ome_zarr(src, dest, voxel_size=(4, 4, 4), chunks=8, shard=16, same_codec=True)


def test_cli_same_codec(tmp_path):
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, _volume((24, 32, 32)), photometric="minisblack")
    dest = tmp_path / "cli.ome.zarr"
    res = CliRunner().invoke(
        app,
        ["convert", str(src), str(dest), "--voxel-size", "4", "4", "4", "--chunks", "8"]
        + ["--same-codec", "--json"],
    )
    assert res.exit_code == 0, res.output
    assert {_blosc_level(dest, p) for p in _paths(dest)} == {3}


def test_write_ome_zarr_uses_the_same_default(tmp_path):
    dest = tmp_path / "a.ome.zarr"
    write_ome_zarr(_volume((24, 32, 32)), dest, voxel_size=(4, 4, 4), chunks=8, shard=16)
    levels = _paths(dest)
    assert len(levels) > 1
    assert [_blosc_level(dest, p) for p in levels] == [3] + [1] * (len(levels) - 1)


# ------------------------------------------------------------------ TIFF pages into the slab


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_contiguous_pages_read_into_the_slab_exactly(tmp_path, byteorder, dtype):
    """Whole-width windows (read straight into the slab), part-width ones (through one buffer
    of whole rows) and narrow ones (row by row) all give tifffile's voxels, native byte order."""
    vol = _volume((6, 20, 64), "uint16", 3).astype(dtype)
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, vol, photometric="minisblack", byteorder=byteorder, contiguous=True)
    source = open_source(src)
    assert int(source.page_offset[0]) >= 0  # the uncompressed contiguous path
    for xs in (slice(0, 64), slice(8, 40), slice(60, 64), slice(5, 9)):
        region = (slice(1, 5), slice(3, 17), xs)
        got = source.read(region)
        assert got.dtype.isnative and got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, vol[region])


def test_truncated_page_read_into_the_slab_is_a_clear_error(tmp_path):
    vol = _volume((6, 20, 64))
    src = tmp_path / "t.tif"
    tifffile.imwrite(src, vol, photometric="minisblack", contiguous=True, metadata=None)
    source = open_source(src)
    end = int(source.page_offset[5]) + 10 * 64  # page 5 keeps ten of its twenty rows
    with open(src, "r+b") as fh:
        fh.truncate(end)
    with pytest.raises(ConversionError, match="page 5 is truncated"):
        source.read((slice(0, 6), slice(0, 20), slice(0, 64)))
    with pytest.raises(ConversionError, match="page 5 is truncated"):
        source.read((slice(5, 6), slice(0, 20), slice(0, 40)))


def test_one_worker_compresses_off_the_main_thread(tmp_path, monkeypatch):
    """numcodecs' blosc uses its own thread pool (all cores) when called from the main thread:
    ``workers=1`` must mean one core, so even a single worker's tasks run in a pool thread."""
    import threading

    from curated.images import shards

    seen: list[bool] = []
    real = shards.write_shard

    def spy(*args, **kwargs):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(shards, "write_shard", spy)
    src = tmp_path / "s.tif"
    tifffile.imwrite(src, _volume((24, 32, 32)), photometric="minisblack")
    convert_to_ome_zarr(src, tmp_path / "d.ome.zarr", voxel_size=(4, 4, 4), chunks=8, workers=1)
    assert seen and not any(seen)
