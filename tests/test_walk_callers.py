"""The callers that used to walk folder trees themselves now walk through curated.walk (issue 19).

Each keeps its own link policy, stated explicitly: nothing follows a link out of
the tree, special files are never opened, and where a missing file would be
silently lost (exports, deposits) an unreadable folder is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from curated.archive._common import place
from curated.bench.storage import files_of
from curated.deposit.directory import DirectoryRepository
from curated.deposit.payload import _bag_files, _zarr_stores
from curated.document.survey import _walk as survey_walk
from curated.errors import DepositError, InputError
from curated.images.convert import _store_metadata_files
from curated.images.stored import _N5_METADATA, _chunk_files, n5_arrays


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = _tree(
        tmp_path / "outside", {"secret.txt": "s", "deep/attributes.json": '{"dimensions": [1]}'}
    )
    return d


def _unreadable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``folder`` cannot be listed (chmod 0 does not stop root, so the listing is refused)."""
    folder.mkdir(parents=True, exist_ok=True)
    scandir = os.scandir

    def refuse(path: str) -> object:
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)


# ------------------------------------------------------------------ archive exports
def test_export_places_files_in_walk_order_and_refuses_a_pipe(tmp_path: Path) -> None:
    src = _tree(tmp_path / "img", {"b.txt": "b", "a/z.txt": "z", "a.txt": "a", "c/x.txt": "x"})
    placed = [rel for _, rel in place(src, tmp_path / "out")]
    assert placed == ["a.txt", "b.txt", "a/z.txt", "c/x.txt"]  # a folder's files, then sub-folders
    os.mkfifo(src / "c" / "pipe")
    # before: a hard link to the pipe went into the export (``link`` mode)
    with pytest.raises(InputError, match="device, pipe or socket") as err:
        list(place(src, tmp_path / "out2"))
    assert "\n" not in str(err.value)


def test_export_refuses_a_link_to_a_folder_out_of_the_tree(tmp_path: Path, outside: Path) -> None:
    src = _tree(tmp_path / "img", {"a.txt": "a"})
    os.symlink(outside, src / "more")
    with pytest.raises(InputError, match="symbolic link"):
        list(place(src, tmp_path / "out"))
    assert not (tmp_path / "out" / "more").exists()


def test_export_refuses_an_unreadable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tree(tmp_path / "img", {"a.txt": "a", "hidden/b.txt": "b"})
    _unreadable(src / "hidden", monkeypatch)
    # before: os.walk passed over it and the export silently lacked its files
    with pytest.raises(InputError, match="cannot be read") as err:
        list(place(src, tmp_path / "out"))
    assert "hidden" in str(err.value)


# ------------------------------------------------------------------ deposits
def test_bag_files_refuse_links_and_name_a_link_to_a_folder(tmp_path: Path, outside: Path) -> None:
    bag = _tree(tmp_path / "bag", {"bagit.txt": "x", "data/b.txt": "b", "data/a/c.txt": "c"})
    assert [i.name for i in _bag_files(bag)] == ["bagit.txt", "data/b.txt", "data/a/c.txt"]
    os.symlink(outside, bag / "data" / "link")
    with pytest.raises(DepositError, match="data/link is a link to a folder"):
        _bag_files(bag)
    (bag / "data" / "link").unlink()
    os.symlink(outside / "secret.txt", bag / "data" / "s.txt")
    with pytest.raises(DepositError, match="data/s.txt is a link or special file"):
        _bag_files(bag)


def test_bag_files_refuse_an_unreadable_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = _tree(tmp_path / "bag", {"bagit.txt": "x", "data/b.txt": "b", "data/locked/c.txt": "c"})
    _unreadable(bag / "data" / "locked", monkeypatch)
    # before: os.walk passed over it and the deposit silently lacked its files
    with pytest.raises(DepositError, match="data/locked cannot be read"):
        _bag_files(bag)


def test_zarr_stores_are_named_not_entered(tmp_path: Path) -> None:
    bag = _tree(
        tmp_path / "bag",
        {
            "data/x/cell.zarr/zarr.json": "{}",
            "data/x/cell.zarr/inner.zarr/zarr.json": "{}",
            "data/a.zarr/z": "",
        },
    )
    assert _zarr_stores(bag) == ["data/a.zarr", "data/x/cell.zarr"]
    assert _zarr_stores(tmp_path / "nothing") == []


def test_directory_target_lists_regular_files_only(tmp_path: Path, outside: Path) -> None:
    target = DirectoryRepository(str(tmp_path / "repo"))
    state = {"id": "r1", "version": 1}
    base = _tree(
        target._draft_dir(state) / "bag",
        {"bagit.txt": "x", "data/a.txt": "aa", ".data.partial": "", "data/.b.txt.partial": ""},
    )
    os.symlink(outside / "secret.txt", base / "data" / "leak.txt")
    files = target.remote_files(state)
    assert sorted(files) == ["bagit.txt", "data/a.txt"]
    assert files["data/a.txt"].size == 2


# ------------------------------------------------------------------ workspace survey
def test_survey_lists_files_and_stores_without_links_hidden_or_locks(
    tmp_path: Path, outside: Path
) -> None:
    ws = _tree(
        tmp_path / "ws",
        {
            "b.txt": "b",
            "a/img.ome.zarr/zarr.json": "{}",
            "a/img.ome.zarr/0/c": "",
            "a/z.txt": "z",
            ".hidden/x": "",
            "x.lock": "",
            "package/bag.txt": "",
        },
    )
    os.symlink(outside, ws / "link")
    os.symlink(outside / "secret.txt", ws / "a" / "s.txt")
    got = [p.relative_to(ws).as_posix() for p in survey_walk(ws, {"package"})]
    assert got == ["a/img.ome.zarr", "a/z.txt", "b.txt"]


# ------------------------------------------------------------------ stored arrays
def test_n5_listings_do_not_follow_links(tmp_path: Path, outside: Path) -> None:
    n5 = _tree(
        tmp_path / "c.n5",
        {
            "attributes.json": '{"n5": "2.0.0"}',
            "g/arr/attributes.json": json.dumps({"dimensions": [4]}),
            "g/arr/0": "",
            "g/arr/1": "",
            "b/attributes.json": "{}",
        },
    )
    os.symlink(outside, n5 / "g" / "linked")
    os.symlink(outside / "secret.txt", n5 / "g" / "arr" / "2")
    assert n5_arrays(n5) == ["/g/arr"]
    # a chunk that is a link would be read through by the converter: refused, not counted
    with pytest.raises(InputError, match="symbolic link"):
        _chunk_files(n5 / "g" / "arr", _N5_METADATA)
    os.unlink(n5 / "g" / "arr" / "2")
    assert _chunk_files(n5 / "g" / "arr", _N5_METADATA) == 2
    assert [p.relative_to(n5).as_posix() for p in _store_metadata_files(n5)] == [
        "attributes.json",
        "b/attributes.json",
        "g/arr/attributes.json",
    ]


def test_bench_files_of_is_sorted_by_path_components(tmp_path: Path, outside: Path) -> None:
    store = _tree(tmp_path / "s.zarr", {"a-b": "", "a/c": "", "zarr.json": "{}"})
    os.symlink(outside / "secret.txt", store / "b")
    # by components: the folder "a" comes before "a-b" (a plain string sort puts "a-b" first)
    assert [p.relative_to(store).as_posix() for p in files_of(store)] == ["a/c", "a-b", "zarr.json"]
