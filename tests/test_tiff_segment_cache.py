"""Compressed pages stored as one strip (or a few large strips / tiles) are decoded once per
conversion, not once per shard that touches them: the decoded segments are kept in a
byte-bounded, per-process cache (curated.images.segments) keyed by the file's identity."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
import tifffile.tifffile as tt

from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr, open_image
from curated.images.segments import SEGMENTS, SegmentCache
from curated.images.sources import close_cached_files, open_source

PAGES, SIDE = 4, 64


@pytest.fixture(autouse=True)
def _fresh_cache():
    cap, spill = SEGMENTS.max_bytes, SEGMENTS.spill_bytes
    close_cached_files()
    yield
    SEGMENTS.resize(cap)
    SEGMENTS.spill_bytes = spill
    close_cached_files()


@pytest.fixture
def decodes(monkeypatch):
    """Counts tifffile's segment decodes by (strip/tile byte count, segment index)."""
    counts: Counter[tuple[int, int]] = Counter()
    lock = threading.Lock()
    real = tt.TiffPage.decode.func  # a cached_property returning the decode function

    def counting(page):
        fn = real(page)

        def decode(data, index, **kwargs):
            with lock:
                counts[(len(data) if data is not None else -1, index)] += 1
            return fn(data, index, **kwargs)

        return decode

    monkeypatch.setattr(tt.TiffPage, "decode", property(counting))
    return counts


def _stack(seed: int = 0, pages: int = PAGES, side: int = SIDE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, (pages, side, side), dtype=np.uint16)


def _single_strip(path: Path, vol: np.ndarray, compression: str = "zlib") -> Path:
    tifffile.imwrite(
        path, vol, photometric="minisblack", compression=compression, rowsperstrip=vol.shape[-2]
    )
    with tifffile.TiffFile(path) as tf:
        assert all(len(p.dataoffsets) == 1 for p in tf.pages)  # one strip per page
    return path


def _convert(src: Path, dest: Path) -> np.ndarray:
    res = convert_to_ome_zarr(src, dest, voxel_size=(8, 4, 4), chunks=8, shard=16, workers=2)
    assert res.status == "ok"
    return open_image(dest).levels[0][:]


@pytest.mark.parametrize("compression", ["zlib", "lzw"])
def test_single_strip_pages_are_decoded_once_per_conversion(tmp_path, decodes, compression):
    vol = _stack()
    src = _single_strip(tmp_path / "stack.tif", vol, compression)
    # 16-voxel shards: 16 shards touch every 64 x 64 page (each decoded 16 times before)
    np.testing.assert_array_equal(_convert(src, tmp_path / "out.ome.zarr"), vol)
    assert sum(decodes.values()) == PAGES
    assert max(decodes.values()) == 1


def test_cached_and_uncached_conversions_are_bit_identical(tmp_path):
    vol = _stack(seed=3)
    src = _single_strip(tmp_path / "stack.tif", vol)
    cached = _convert(src, tmp_path / "cached.ome.zarr")
    assert SEGMENTS.decodes == 0  # counters are reset when a conversion closes its files
    SEGMENTS.resize(0)
    uncached = _convert(src, tmp_path / "uncached.ome.zarr")
    np.testing.assert_array_equal(cached, vol)
    np.testing.assert_array_equal(uncached, vol)
    for level in ("0", "1"):
        files = sorted(p.relative_to(tmp_path / "cached.ome.zarr" / level).as_posix()
                       for p in (tmp_path / "cached.ome.zarr" / level).rglob("*") if p.is_file())  # fmt: skip
        assert files
        for rel in files:
            a = (tmp_path / "cached.ome.zarr" / level / rel).read_bytes()
            b = (tmp_path / "uncached.ome.zarr" / level / rel).read_bytes()
            assert a == b, rel


def test_reads_keep_a_segment_used_in_part_and_share_it(tmp_path, decodes):
    vol = _stack(seed=1)
    src = open_source(_single_strip(tmp_path / "stack.tif", vol))
    for y in range(0, SIDE, 16):
        for x in range(0, SIDE, 16):
            region = (slice(1, 3), slice(y, y + 16), slice(x, x + 16))
            np.testing.assert_array_equal(src.read(region), vol[region])
    assert sum(decodes.values()) == 2  # pages 1 and 2, once each
    assert SEGMENTS.nbytes == 2 * SIDE * SIDE * 2
    # a whole page is read straight through: nothing more kept
    np.testing.assert_array_equal(src.read((slice(3, 4), slice(0, SIDE), slice(0, SIDE))), vol[3:4])
    assert SEGMENTS.nbytes == 2 * SIDE * SIDE * 2


def test_a_segment_larger_than_the_cap_is_read_but_not_kept(tmp_path, decodes):
    vol = _stack(seed=2)
    src = open_source(_single_strip(tmp_path / "stack.tif", vol))
    SEGMENTS.spill_bytes = 0  # memory only (spilling: the tests below)
    SEGMENTS.resize(SIDE * SIDE * 2 - 1)  # one decoded page is one byte too many
    window = (slice(0, 1), slice(10, 20), slice(5, 50))
    for _ in range(2):
        np.testing.assert_array_equal(src.read(window), vol[window])
    assert SEGMENTS.nbytes == 0
    assert sum(decodes.values()) == 2
    SEGMENTS.resize(SIDE * SIDE * 2)  # now it fits
    for _ in range(2):
        np.testing.assert_array_equal(src.read(window), vol[window])
    assert SEGMENTS.nbytes == SIDE * SIDE * 2
    assert sum(decodes.values()) == 3


def test_the_cache_never_holds_more_than_its_cap():
    cache = SegmentCache(max_bytes=1000)
    made = Counter[str]()

    def segment(name: str, n: int):
        def decode():
            made[name] += 1
            return np.zeros(n, np.uint8), name

        return decode

    for name, n in [("a", 400), ("b", 400), ("a", 400), ("c", 400), ("big", 1001), ("a", 400)]:
        arr, got = cache.get(name, segment(name, n), keep=True)
        assert got == name and arr.nbytes == n and not arr.flags.writeable
        assert cache.nbytes <= 1000
    # "c" pushed out the least recently used ("b"); "big" was never kept; "a" stayed
    assert made == Counter({"a": 1, "b": 1, "c": 1, "big": 1})
    cache.get("b", segment("b", 400), keep=True)
    assert made["b"] == 2 and cache.nbytes == 800
    cache.get("d", segment("d", 10), keep=False)  # read whole by its reader: not kept
    assert cache.nbytes == 800


def test_threads_wanting_one_segment_decode_it_once():
    cache = SegmentCache(max_bytes=1 << 20)
    started, release = threading.Event(), threading.Event()
    made = Counter[str]()

    def decode():
        made["x"] += 1
        started.set()
        release.wait(5)
        return np.ones(100, np.uint8), "x"

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", decode, keep=True)[1]))
        for _ in range(4)
    ]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert results == ["x"] * 4 and made["x"] == 1


def test_a_rewritten_file_is_never_served_stale(tmp_path):
    path = tmp_path / "stack.tif"
    window = (slice(0, 2), slice(8, 24), slice(8, 24))
    first = np.zeros((PAGES, SIDE, SIDE), np.uint16)
    src = open_source(_single_strip(path, first))
    np.testing.assert_array_equal(src.read(window), first[window])
    assert SEGMENTS.nbytes > 0
    second = _stack(seed=4)  # rewritten in place (same inode, another size)
    _single_strip(path, second)
    np.testing.assert_array_equal(src.read(window), second[window])
    third = _stack(seed=5)  # replaced by another file under the same name
    _single_strip(tmp_path / "new.tif", third)
    os.replace(tmp_path / "new.tif", path)
    np.testing.assert_array_equal(src.read(window), third[window])


def _strip(path: Path) -> tuple[int, int]:
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[1]
        return int(page.dataoffsets[0]), int(page.databytecounts[0])


def test_a_damaged_strip_names_file_and_page_and_is_not_kept(tmp_path):
    vol = _stack(seed=6)
    path = _single_strip(tmp_path / "stack.tif", vol)
    src = open_source(path)
    offset, count = _strip(path)
    with open(path, "r+b") as fh:  # garbage in the middle of page 1's zlib stream
        fh.seek(offset + count // 2)
        fh.write(bytes(range(256)) * 4)
    window = (slice(1, 2), slice(0, 16), slice(0, 16))
    for _ in range(2):  # the second read meets the same damage: nothing was kept from it
        with pytest.raises(ConversionError) as err:
            src.read(window)
        assert "page 1" in str(err.value) and str(path) in str(err.value)
        assert SEGMENTS.nbytes == 0
    np.testing.assert_array_equal(src.read((slice(0, 1), *window[1:])), vol[0:1, :16, :16])


def test_a_truncated_strip_names_file_and_page(tmp_path):
    vol = _stack(seed=7)
    path = _single_strip(tmp_path / "stack.tif", vol)
    src = open_source(path)
    offset, count = _strip(path)
    with open(path, "r+b") as fh:  # the file ends in the middle of page 1's strip
        fh.truncate(offset + count // 2)
    with pytest.raises(ConversionError, match="page 1 is truncated") as err:
        src.read((slice(1, 2), slice(0, 16), slice(0, 16)))
    assert str(path) in str(err.value)
    assert SEGMENTS.nbytes == 0


# ------------------------------------------------ slabs deeper than the memory cap: spilled


def _deep_convert(src: Path, dest: Path, pages: int) -> np.ndarray:
    """16 shards of 16 x 16 per 64 x 64 page, each as deep as the stack: every shard of the
    slab walks all its pages in the same order (the cyclic pattern)."""
    res = convert_to_ome_zarr(
        src, dest, voxel_size=(8, 4, 4), chunks=8, shard=(pages, 16, 16), workers=1
    )
    assert res.status == "ok"
    return open_image(dest).levels[0][:]


def test_a_slab_deeper_than_the_memory_cap_decodes_each_page_at_most_twice(tmp_path, decodes):
    pages = 16
    vol = _stack(seed=8, pages=pages)
    src = _single_strip(tmp_path / "stack.tif", vol)
    SEGMENTS.resize(2 * SIDE * SIDE * 2)  # two decoded pages of the slab's sixteen
    scratch = tmp_path / "out"
    np.testing.assert_array_equal(_deep_convert(src, scratch / "deep.ome.zarr", pages), vol)
    # the second shard finds the pages dropped: they are decoded again and spilled, and the
    # other 14 shards read them from disk (before: every shard decoded every page, 16 x 16)
    assert sum(decodes.values()) <= 2 * pages
    # the spill file had no name: nothing is left beside the output
    assert sorted(p.name for p in scratch.iterdir()) == ["deep.ome.zarr"]


def test_without_spilling_the_cyclic_pattern_decodes_every_page_per_shard(tmp_path, decodes):
    pages = 16
    vol = _stack(seed=8, pages=pages)
    src = _single_strip(tmp_path / "stack.tif", vol)
    SEGMENTS.resize(2 * SIDE * SIDE * 2)
    SEGMENTS.spill_bytes = 0  # CURATED_SEGMENT_SPILL_MB=0
    np.testing.assert_array_equal(_deep_convert(src, tmp_path / "deep.ome.zarr", pages), vol)
    assert sum(decodes.values()) >= 12 * pages  # what spilling saves


def _spilling_cache(tmp_path: Path, spill_bytes: int = 1 << 24) -> SegmentCache:
    cache = SegmentCache(max_bytes=0, spill_bytes=spill_bytes, spill_dir=tmp_path)
    return cache


def _origin_decoder(arr: np.ndarray, made: Counter[str], name: str):
    def decode():
        made[name] += 1
        return arr.copy(), (100, 7)

    return decode


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_spilled_windows_read_back_exactly(tmp_path, dtype):
    rng = np.random.default_rng(9)
    seg = (rng.random((300, 777)) * 250).astype(dtype)  # not a multiple of the 256 tiles
    cache = _spilling_cache(tmp_path)
    made = Counter[str]()
    decode = _origin_decoder(seg, made, "s")
    full = (slice(100, 400), slice(7, 784))
    cache.window("s", decode, True, *full)  # not kept in memory (cap 0): remembered as dropped
    cache.window("s", decode, True, *full)  # wanted again: decoded again and spilled
    assert made["s"] == 2 and cache.spills == 1 and cache.nbytes == 0
    for ys, xs in [
        (slice(0, 1000), slice(0, 1000)),  # more than the segment: clipped to it
        (slice(100, 101), slice(7, 8)),
        (slice(355, 399), slice(260, 520)),  # across tile boundaries
        (slice(120, 380), slice(500, 784)),
        (slice(399, 400), slice(783, 784)),
    ]:
        part, y, x = cache.window("s", decode, True, ys, xs)
        ya, xa = max(ys.start, 100), max(xs.start, 7)
        assert (y, x) == (ya, xa)
        want = seg[ya - 100 : min(ys.stop, 400) - 100, xa - 7 : min(xs.stop, 784) - 7]
        np.testing.assert_array_equal(part, want)
        assert part.dtype == seg.dtype
    part, _, _ = cache.window("s", decode, True, slice(0, 50), slice(0, 50))  # outside it
    assert part.size == 0
    arr, origin = cache.get("s", decode, True)  # whole, read back
    np.testing.assert_array_equal(arr, seg)
    assert origin == (100, 7) and made["s"] == 2 and cache.spill_hits >= 6
    cache.clear()


def test_the_spill_file_never_holds_more_than_its_budget(tmp_path):
    seg_bytes = 256 * 256  # one uint8 tile each
    cache = _spilling_cache(tmp_path, spill_bytes=3 * seg_bytes)
    made = Counter[str]()
    segs = {n: np.full((256, 256), i, np.uint8) for i, n in enumerate("abcde")}
    for _ in range(2):  # the second pass finds them dropped: spilling starts
        for n, arr in segs.items():
            cache.get(n, _origin_decoder(arr, made, n), True)
            assert cache.spilled_bytes <= 3 * seg_bytes
    assert cache.spills >= 3
    for n, arr in segs.items():  # each one right, spilled or decoded again
        got, _ = cache.get(n, _origin_decoder(arr, made, n), True)
        np.testing.assert_array_equal(got, arr)
    assert cache._spill is not None and cache._spill.end <= 3 * seg_bytes
    cache.clear()


def test_a_failing_spill_disk_turns_spilling_off_and_reads_go_on(tmp_path, monkeypatch, decodes):
    from curated.images import segments

    def full_disk(self, offset, arr):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(segments.SpillFile, "write", full_disk)
    pages = 16
    vol = _stack(seed=10, pages=pages)
    src = _single_strip(tmp_path / "stack.tif", vol)
    SEGMENTS.resize(2 * SIDE * SIDE * 2)
    np.testing.assert_array_equal(_deep_convert(src, tmp_path / "deep.ome.zarr", pages), vol)
    assert sum(decodes.values()) >= 12 * pages  # decoded again, as without spilling


def test_an_unwritable_spill_folder_turns_spilling_off(tmp_path):
    cache = SegmentCache(max_bytes=0, spill_bytes=1 << 20, spill_dir=tmp_path / "missing")
    made = Counter[str]()
    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    for _ in range(3):
        got, _ = cache.get("k", _origin_decoder(arr, made, "k"), True)
        np.testing.assert_array_equal(got, arr)
    assert made["k"] == 3 and cache.spills == 0
    assert cache.spill_error is not None and "FileNotFoundError" in cache.spill_error


def _slow_reader(
    monkeypatch, cache: SegmentCache, decode
) -> tuple[threading.Thread, list, threading.Event]:
    """A thread reading spilled segment ``"a"`` that stops in the middle of its read (the
    first spill-file read) until the returned event is set; what it read goes into the list."""
    from curated.images import segments

    real_read = segments.SpillFile.read
    reading, go_on = threading.Event(), threading.Event()

    def slow_read(self, at, rows, cols):
        if not reading.is_set():
            reading.set()
            go_on.wait(5)
        return real_read(self, at, rows, cols)

    monkeypatch.setattr(segments.SpillFile, "read", slow_read)
    got: list[np.ndarray] = []
    reader = threading.Thread(target=lambda: got.append(cache.get("a", decode, True)[0]))
    reader.start()
    assert reading.wait(5)
    return reader, got, go_on


def test_a_spilled_segment_being_read_is_never_overwritten(tmp_path, monkeypatch):
    """A slot is reused only once no reader holds it: a reader slowed down mid-read still
    gets its own segment while others spill over the budget's other slots."""

    cache = _spilling_cache(tmp_path, spill_bytes=2 * 256 * 256)
    made = Counter[str]()
    segs = {n: np.full((256, 256), i + 1, np.uint8) for i, n in enumerate("abc")}
    for _ in range(2):
        for n in "ab":
            cache.get(n, _origin_decoder(segs[n], made, n), True)
    assert cache.spills == 2
    reader, got, go_on = _slow_reader(monkeypatch, cache, _origin_decoder(segs["a"], made, "a"))
    for _ in range(2):  # "c" wants a slot: "a" is being read, so "b" gives up its own
        cache.get("c", _origin_decoder(segs["c"], made, "c"), True)
    go_on.set()
    reader.join(5)
    np.testing.assert_array_equal(got[0], segs["a"])
    assert "b" not in cache._spilled and "a" in cache._spilled
    cache.clear()


def test_a_killed_process_leaves_no_spill_file(tmp_path):
    """The scratch file never has a name: kill -9 while it holds spilled pages leaves nothing."""
    import subprocess
    import sys

    script = (
        "import os, signal, numpy as np\n"
        "from curated.images.segments import SegmentCache\n"
        f"cache = SegmentCache(max_bytes=0, spill_bytes=1 << 24, spill_dir={str(tmp_path)!r})\n"
        "arr = np.ones((512, 512), np.uint8)\n"
        "for _ in range(2):\n"
        "    cache.get('k', lambda: (arr.copy(), (0, 0)), True)\n"
        "assert cache.spills == 1 and cache.spilled_bytes > 0\n"
        "print('spilled', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9 and "spilled" in proc.stdout, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_reads_outside_a_conversion_never_spill(tmp_path, decodes):
    """Only a conversion (which clears the cache at its end) spills: a reader such as
    `check`'s samples in a long-lived lab pipeline keeps no scratch file open."""
    vol = _stack(seed=11)
    src = open_source(_single_strip(tmp_path / "stack.tif", vol))
    SEGMENTS.resize(SIDE * SIDE * 2)  # one page in memory
    for _ in range(3):
        for z in range(PAGES):  # the cyclic pattern
            window = (slice(z, z + 1), slice(8, 24), slice(8, 24))
            np.testing.assert_array_equal(src.read(window), vol[window])
    assert SEGMENTS.spills == 0 and SEGMENTS._spill is None
    assert sum(decodes.values()) == 3 * PAGES


def test_the_spill_file_gives_its_space_back_when_the_output_needs_the_disk(tmp_path, monkeypatch):
    """The scratch file shares the output's disk: it never grows past the free space left,
    and once the disk holds less free space than the file, spilling stops and the file is
    closed (its space returned), so that a conversion that fits the disk without spilling
    never fails for the spill's sake. Reads go on, decoding again."""
    from curated.images import segments

    free = {"bytes": 1 << 30}
    monkeypatch.setattr(segments.SpillFile, "free_space", lambda self: free["bytes"], raising=False)
    cache = _spilling_cache(tmp_path, spill_bytes=1 << 24)
    made = Counter[str]()
    segs = {n: np.full((256, 256), i, np.uint8) for i, n in enumerate("abcd")}
    for _ in range(2):  # the second pass finds them dropped: spilling starts
        for n, arr in segs.items():
            cache.get(n, _origin_decoder(arr, made, n), True)
    assert cache.spills == 4 and cache._spill is not None
    # room for the file to hold no more than what it holds: it stops growing, and reuses
    free["bytes"] = cache._spill.end + 256 * 256
    cache.get("e", _origin_decoder(np.full((256, 256), 9, np.uint8), made, "e"), True)
    cache.get("e", _origin_decoder(np.full((256, 256), 9, np.uint8), made, "e"), True)
    assert cache._spill is not None and cache._spill.end == 4 * 256 * 256
    # the output filled the disk past the file's size: spilling stops, the file is closed
    free["bytes"] = 256 * 256
    cache.get("f", _origin_decoder(np.full((256, 256), 7, np.uint8), made, "f"), True)
    cache.get("f", _origin_decoder(np.full((256, 256), 7, np.uint8), made, "f"), True)
    assert cache._spill is None and cache.spill_error and "filling up" in cache.spill_error
    for n, arr in segs.items():  # still right, decoded again
        got, _ = cache.get(n, _origin_decoder(arr, made, n), True)
        np.testing.assert_array_equal(got, arr)
    assert cache.spilled_bytes == 0


def test_a_spill_file_closed_while_a_segment_is_read_finishes_that_read(tmp_path, monkeypatch):
    """The file is closed only once no reader holds it: a reader slowed down mid-read while
    the disk fills still gets its own segment (a closed descriptor, reused by another file,
    would have given it another file's bytes)."""
    from curated.images import segments

    free = {"bytes": 1 << 30}
    monkeypatch.setattr(segments.SpillFile, "free_space", lambda self: free["bytes"], raising=False)
    cache = _spilling_cache(tmp_path, spill_bytes=1 << 24)
    made = Counter[str]()
    segs = {n: np.full((256, 256), i + 1, np.uint8) for i, n in enumerate("ab")}
    for _ in range(2):
        for n in "ab":
            cache.get(n, _origin_decoder(segs[n], made, n), True)
    reader, got, go_on = _slow_reader(monkeypatch, cache, _origin_decoder(segs["a"], made, "a"))
    free["bytes"] = 1  # the output filled the disk
    cache.get("c", _origin_decoder(np.zeros((256, 256), np.uint8), made, "c"), True)
    cache.get("c", _origin_decoder(np.zeros((256, 256), np.uint8), made, "c"), True)
    assert cache.spill_error is not None and cache._spill is not None  # still read from
    go_on.set()
    reader.join(5)
    np.testing.assert_array_equal(got[0], segs["a"])
    assert cache._spill is None  # closed once the reader was done
