"""The conversion's fast path: level-0 tasks build the levels above them in memory, the chunk
coder, the cache-blocked mean and the local thread pool. The files must stay byte for byte
what the writer produced before (level ``k+1`` read back from the written level ``k``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from curated._crash import ENV as CRASH_ENV
from curated._crash import EXIT_CODE
from curated.errors import ConversionError
from curated.images import (
    convert_to_ome_zarr,
    downsample,
    open_image,
    validate_ome_zarr,
    write_ome_zarr,
)
from curated.images import shards as _shards
from curated.images.layout import make_axes, make_layout
from curated.images.shards import ABORT_ENV, subpyramid_depth
from curated.provenance.digest import digest_tree


def _volume(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape[-3:])
    base = 100 + 40 * np.sin(x / 7.0 + z / 5.0) * np.cos(y / 9.0)
    a = np.broadcast_to(base, shape) + rng.normal(0, 10, shape)
    a[..., : shape[-3] // 3, : shape[-2] // 2, :] = 0  # whole chunks equal to the fill value
    if np.dtype(dtype).kind == "f":
        return a.astype(dtype)
    return np.clip(a, 0, np.iinfo(dtype).max).astype(dtype)


def data_digest(root: Path) -> str:
    """sha256 over every data file (shards, chunks) of a store, metadata left out."""
    h = hashlib.sha256()
    meta = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and p.name not in meta and ".curated" not in str(p):
            h.update(
                f"{p.relative_to(root)}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n".encode()
            )
    return h.hexdigest()


# Data-file digests written by the writer before the fast path (commit 8c6842e, level k+1
# always read back from level k, one codec on every level). Same input, same bytes: with
# ``same_codec`` the writer still stores exactly those files (the pairwise mean included).
CASES = {
    "u8-odd-v3": ((77, 150, 133), "uint8", 16, 64, "0.5", (8, 4, 4)),
    "u16-aniso-v3": ((40, 130, 97), "uint16", 16, 32, "0.5", (30, 4, 4)),
    "u8-v2": ((45, 70, 66), "uint8", 16, 32, "0.4", (4, 4, 4)),
    "f32-v3": ((33, 64, 64), "float32", 16, 64, "0.5", (4, 4, 4)),
    "u8-chunk-clipped": ((10, 100, 90), "uint8", 32, 64, "0.5", (4, 4, 4)),
    "u8-noshard": ((40, 64, 80), "uint8", 16, None, "0.5", (4, 4, 4)),
}
GOLDEN = {
    "u8-odd-v3": "fac9bd2d5e51c8fb19e810c984818d5419e6809fa9aee0bf7f92a93ceba12d21",
    "u16-aniso-v3": "e79c7593450d97865b7bbc079ceb95d649e552c5bf322b0d477999975f88d063",
    "u8-v2": "ac98b36a7c8b2efb6a44a4eb45d57969fb459372cd942ff9545e22f8238933ad",
    "f32-v3": "9cd1ad1149b7846c0951977e3de250657f3cea1334cfa14f9753545342580308",
    "u8-chunk-clipped": "c5a9f6186573a3fd9b8e5427d6d06406ebc9fc165dff39be9349b394688cc0cd",
    # until 2026-12-07 an unsharded v3 store's chunks lay outside c/ and its pyramid, built by
    # reading level 0 back, came out empty: that store's golden digest (a53fb7b0…) held level 0's
    # 60 chunk files only. Now they sit under c/ with the same bytes, and levels 1-3 are written.
    "u8-noshard": "3ee541d9499c66d86d70c8f39ab3e1abc423049355ab160c797baa0ed00b7293",
    "czyx-array": "ec5868331a4342f2b251338f3ed4791831dfd57a26e35edcba2a77510d6728da",
}


@pytest.mark.parametrize("name", list(CASES))
def test_files_are_byte_identical_to_the_read_back_writer(tmp_path, name, monkeypatch):
    shape, dtype, chunks, shard, ngff, voxel = CASES[name]
    seed = list(CASES).index(name)
    src = tmp_path / f"{name}.tif"
    tifffile.imwrite(src, _volume(shape, dtype, seed))
    monkeypatch.setattr(downsample, "CACHE_BYTES", 4096)  # the cache-blocked mean, too
    dest = tmp_path / f"{name}.ome.zarr"
    convert_to_ome_zarr(
        src,
        dest,
        voxel_size=voxel,
        chunks=chunks,
        shard=shard,
        ngff_version=ngff,
        workers=2,
        same_codec=True,
    )
    assert data_digest(dest) == GOLDEN[name]


def test_channel_axis_array_is_byte_identical(tmp_path):
    vol = _volume((2, 36, 70, 50), "uint8", 9)
    dest = tmp_path / "c.ome.zarr"
    write_ome_zarr(
        vol,
        dest,
        voxel_size=(4, 4, 4),
        axes="czyx",
        chunks=16,
        shard=32,
        workers=2,
        same_codec=True,
    )
    assert data_digest(dest) == GOLDEN["czyx-array"]


def _layout(shape, voxel, chunks, shard, axes="zyx"):
    return make_layout(
        shape, "uint8", make_axes(axes, "nanometer"), voxel, chunks=chunks, shard=shard
    )


def test_subpyramid_depth_keeps_to_whole_chunks():
    assert subpyramid_depth(_layout((512, 1024, 1024), (4, 4, 4), 64, 512)) == 3  # 256, 128, 64
    # anisotropic: level 1 halves y and x only, level 2 all three
    lay = _layout((512, 1024, 1024), (8, 4, 4), 64, 512)
    assert [lv.factors for lv in lay.levels[:3]] == [(1, 1, 1), (1, 2, 2), (2, 4, 4)]
    assert subpyramid_depth(lay) == 3
    # a chunk clipped to an odd-sized axis: no level fits whole chunks
    assert subpyramid_depth(_layout((10, 100, 90), (4, 4, 4), 32, 64)) == 0
    # odd chunks would make slabs start on odd voxels
    assert subpyramid_depth(_layout((100, 100, 100), (4, 4, 4), 15, 60)) == 0
    # one level only
    assert subpyramid_depth(_layout((16, 16, 16), (4, 4, 4), 16, 16)) == 0


def test_level_one_is_not_read_back_from_level_zero(tmp_path, monkeypatch):
    """The levels the level-0 tasks computed are gathered, not decoded again from level 0."""
    src = tmp_path / "s.tif"
    vol = _volume((40, 64, 64), "uint8", 4)
    tifffile.imwrite(src, vol)
    opened: list[str] = []
    real = _shards.LevelFiles

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, path):
            opened.append(Path(path).name)
            super().__init__(path)

    monkeypatch.setattr(_shards, "LevelFiles", Spy)
    dest = tmp_path / "d.ome.zarr"
    convert_to_ome_zarr(src, dest, voxel_size=(4, 4, 4), chunks=16, shard=32, workers=1)
    layout = open_image(dest)
    assert len(layout.levels) == 3
    # level 1 (16^3 chunks of 32^3 shards halved: whole chunks) came from the level-0 tasks;
    # level 2 (8^3 per level-0 shard, less than a chunk) was read back from level 1
    assert opened == ["1"]
    for k in range(1, 3):
        np.testing.assert_array_equal(
            layout.levels[k][:], downsample.mean(layout.levels[k - 1][:], (2, 2, 2))
        )


def _run_convert(src: Path, dest: Path, env: dict[str, str]) -> int:
    code = (
        "import sys; from curated.images import convert_to_ome_zarr; "
        "convert_to_ome_zarr(sys.argv[1], sys.argv[2], voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(src), str(dest)],
        env={**os.environ, **env},
        check=False,
        timeout=120,
    ).returncode


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("fast-src") / "stack.tif"
    tifffile.imwrite(src, _volume((40, 48, 40), "uint8", 5))
    return src


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, stack: Path) -> Path:
    dest = tmp_path_factory.mktemp("fast-ref") / "whole.ome.zarr"
    assert _run_convert(stack, dest, {}) == 0
    return dest


def test_killed_between_parts_and_marker_resumes_identical(tmp_path, stack, reference):
    """kill -9 after a level-0 task published its shard and its parts, before its marker."""
    dest = tmp_path / "killed.ome.zarr"
    assert _run_convert(stack, dest, {CRASH_ENV: "shard-written"}) == EXIT_CODE
    assert list((dest / ".curated-progress" / "parts").rglob("*"))  # parts were left behind
    assert _run_convert(stack, dest, {}) == 0
    assert digest_tree(dest).digest == digest_tree(reference).digest


def test_journal_without_parts_falls_back_to_reading_the_level_below(tmp_path, stack, reference):
    """A journal whose level-0 tasks left no parts (an earlier version, parts deleted): same bytes."""
    dest = tmp_path / "old-journal.ome.zarr"
    n0 = 3 * 3 * 3  # level-0 shards of 40x48x40 in 16^3
    assert _run_convert(stack, dest, {ABORT_ENV: str(n0)}) == 75
    parts = dest / ".curated-progress" / "parts"
    assert parts.is_dir()
    shutil.rmtree(parts)
    assert _run_convert(stack, dest, {}) == 0
    assert digest_tree(dest).digest == digest_tree(reference).digest


def test_parts_are_removed_once_gathered(tmp_path, stack, monkeypatch):
    monkeypatch.setattr("curated.images.convert._store.drop_journal", lambda root: None)
    dest = tmp_path / "kept.ome.zarr"
    convert_to_ome_zarr(stack, dest, voxel_size=(4, 4, 4), chunks=8, shard=16, workers=1)
    journal = dest / ".curated-progress"
    assert (journal / "done").is_dir()
    assert not [p for p in (journal / "parts").rglob("*") if p.is_file()]


def test_store_digest_of_gathered_shards_matches_their_files(tmp_path, stack, monkeypatch):
    """Shards gathered from parts are hashed while written (beside the writes, in another
    thread): the digest logged must be that of the bytes on disk."""
    gathered: list[int] = []
    real = _shards._ShardFile.add_all

    def spy(self, items):
        gathered.append(len(items))
        real(self, items)

    monkeypatch.setattr(_shards._ShardFile, "add_all", spy)
    dest = tmp_path / "gathered.ome.zarr"
    res = convert_to_ome_zarr(stack, dest, voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2)
    assert gathered and max(gathered) > 1  # levels above 0 came from the parts
    assert res.details["store_digest"] == digest_tree(dest).digest


def test_truncated_part_is_a_clear_error(tmp_path, stack):
    dest = tmp_path / "bad.ome.zarr"
    assert _run_convert(stack, dest, {ABORT_ENV: "27"}) == 75
    part = next(p for p in (dest / ".curated-progress" / "parts").rglob("*") if p.is_file())
    part.write_bytes(b"x")
    with pytest.raises(ConversionError, match="truncated"):
        convert_to_ome_zarr(stack, dest, voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
@pytest.mark.parametrize("factors", [(1, 2, 2), (2, 2, 2), (2, 1, 2)])
def test_cache_blocked_mean_equals_the_whole_block_mean(dtype, factors, monkeypatch):
    a = _volume((37, 29, 31), dtype, 2)
    whole = downsample.mean(a, factors)
    monkeypatch.setattr(downsample, "CACHE_BYTES", 3000)
    blocked = downsample.mean(a, factors)
    assert blocked.dtype == whole.dtype
    np.testing.assert_array_equal(blocked, whole)


def test_a_failing_shard_task_stops_the_local_pool(tmp_path, stack, monkeypatch):
    calls: list[tuple[int, ...]] = []
    real = _shards.write_shard

    def failing(job, level, idx, inner=1):
        calls.append(idx)
        if len(calls) == 2:
            raise ConversionError("disk on fire", path=job.root)
        return real(job, level, idx, inner)

    monkeypatch.setattr(_shards, "write_shard", failing)
    with pytest.raises(ConversionError, match="disk on fire"):
        convert_to_ome_zarr(
            stack, tmp_path / "f.ome.zarr", voxel_size=(4, 4, 4), chunks=8, shard=16, workers=2
        )
    problems = validate_ome_zarr(tmp_path / "f.ome.zarr")
    assert problems and "unfinished" in problems[0]  # never looks finished
