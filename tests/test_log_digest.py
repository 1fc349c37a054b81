"""File and directory digests: streaming, order-independent, flat memory, producer hand-in."""

from __future__ import annotations

import hashlib
import os

import pytest

from curated import walk as walk_mod
from curated.provenance import TreeHasher, digest_path, digest_tree, sha256_file
from curated.provenance import digest as digest_mod
from curated.provenance.digest import iter_tree, sha256_file_head


def _tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_sha256_file_matches_hashlib_across_buffer_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(digest_mod, "BUFFER_SIZE", 7)
    monkeypatch.setattr(digest_mod, "SMALL_FILE", 0)  # force the streaming path
    monkeypatch.setattr(digest_mod._local, "buf", bytearray(7), raising=False)
    monkeypatch.setattr(digest_mod._local, "view", memoryview(digest_mod._local.buf), raising=False)
    data = os.urandom(100)
    p = tmp_path / "f"
    p.write_bytes(data)
    seen = []
    assert sha256_file(p, progress=seen.append) == hashlib.sha256(data).hexdigest()
    assert sum(seen) == 100 and len(seen) == 15
    monkeypatch.setattr(digest_mod, "SMALL_FILE", 1 << 20)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
    hexd, head, size = sha256_file_head(p, 10)
    assert hexd == hashlib.sha256(data).hexdigest() and head == data[:10] and size == 100


def test_tree_digest_is_independent_of_creation_order(tmp_path):
    files = {"b/2": b"x", "a": b"yy", "b/10": b"z", "c/d/e": b""}
    _tree(tmp_path / "one", files)
    _tree(tmp_path / "two", dict(reversed(list(files.items()))))
    d1, d2 = digest_tree(tmp_path / "one"), digest_tree(tmp_path / "two")
    assert d1 == d2
    assert d1.files == 4 and d1.bytes == 4
    assert d1.digest.startswith("sha256-tree:")


def test_tree_digest_changes_with_content_name_or_move(tmp_path):
    _tree(tmp_path / "t", {"a/x": b"1", "b": b"2"})
    base = digest_tree(tmp_path / "t").digest
    (tmp_path / "t" / "b").write_bytes(b"3")
    changed = digest_tree(tmp_path / "t").digest
    assert changed != base
    os.rename(tmp_path / "t" / "b", tmp_path / "t" / "a" / "b")
    assert digest_tree(tmp_path / "t").digest not in (base, changed)


def test_producer_hand_in_equals_reading_the_tree(tmp_path):
    files = {
        "zarr.json": b"{}",
        "0/c/0/0": b"abc",
        "0/c/0/1": b"def",
        "0/c/1/0": b"g",
        "1/zarr.json": b"[]",
    }
    _tree(tmp_path, files)
    h = TreeHasher()
    for rel in sorted(files, key=lambda r: tuple(r.split("/"))):
        h.add(rel, len(files[rel]), hashlib.sha256(files[rel]).hexdigest())
    assert h.result() == digest_tree(tmp_path)


def test_tree_hasher_refuses_out_of_order_and_bad_paths():
    h = TreeHasher()
    h.add("b", 1, "0" * 64)
    with pytest.raises(ValueError, match="sorted order"):
        h.add("a", 1, "0" * 64)
    with pytest.raises(ValueError, match="relative"):
        h.add("/abs", 1, "0" * 64)
    with pytest.raises(ValueError, match="64 hex"):
        h.add("c", 1, "abc")


def test_names_with_newlines_tabs_and_non_utf8_bytes_hash(tmp_path):
    odd = os.fsdecode(b"bad\xff name")
    (tmp_path / odd).write_bytes(b"1")
    (tmp_path / "tab\tand\nnewline").write_bytes(b"2")
    td = digest_tree(tmp_path)
    assert td.files == 2
    # the record format cannot be confused by separators inside names
    (tmp_path / "tab\tand\nnewline").rename(tmp_path / "tab\tand\nnewlinf")
    assert digest_tree(tmp_path).digest != td.digest


def test_symlinks_and_special_files_are_not_part_of_a_tree(tmp_path):
    _tree(tmp_path, {"a": b"1"})
    base = digest_tree(tmp_path)
    os.symlink("a", tmp_path / "link")
    os.symlink("link-loop", tmp_path / "link-loop")
    os.mkfifo(tmp_path / "fifo")
    assert digest_tree(tmp_path) == base


def test_huge_folder_is_sorted_on_disk_with_the_same_result(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    tree.mkdir()
    names = [f"f{i}" for i in range(57)]
    for n in reversed(names):
        (tree / n).write_bytes(n.encode())
    expected = digest_tree(tree)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(digest_mod, "SPILL_THRESHOLD", 10)
    monkeypatch.setattr(walk_mod.tempfile, "tempdir", str(spill))
    runs = []
    real_spill = walk_mod._spill  # the one walker sorts on disk (curated.walk)
    monkeypatch.setattr(walk_mod, "_spill", lambda batch: runs.append(1) or real_spill(batch))
    assert digest_tree(tree) == expected
    assert len(runs) == 6  # 57 names in runs of 10 (5 full, 1 partial)
    assert [r for r, _ in iter_tree(tree)] == sorted(names)
    assert list(spill.iterdir()) == []  # sorted runs are removed


def test_digest_path_of_file_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"abc")
    assert digest_path(tmp_path / "d" / "x") == ("sha256:" + hashlib.sha256(b"abc").hexdigest(), 3)
    digest, size = digest_path(tmp_path / "d")
    assert digest.startswith("sha256-tree:") and size == 3
