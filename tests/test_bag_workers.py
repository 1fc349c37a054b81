"""The folder-task worker path of `curated bag`: order, change detection, refusals mid-walk, zips."""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

import pytest
from test_bag_helpers import RECORD, assert_untouched, assert_valid_everywhere, snapshot

from curated._io import temps_of
from curated.errors import PackageError
from curated.package import FileChangedError, hashing, make_bag, zarr_archive
from curated.package.zarr_archive import ZipEntry, ZipPiece, ZipWriter, _local_header
from curated.workspace import Workspace

STORE = "derived/chunks.ome.zarr"
MADE_WHILE_BAGGING = 3
"""ro-crate-metadata.json and curation/fair.json + fair.md: written into the bag, not read from the workspace."""


def _workspace(root: Path, folders: int = 5, per_folder: int = 30) -> Workspace:
    """A workspace whose payload is mostly one Zarr-like store of small chunk files."""
    ws = Workspace.create(root, record=RECORD)
    store = root / STORE
    for f in range(folders):
        d = store / "0" / "c" / str(f)
        d.mkdir(parents=True)
        for i in range(per_folder):
            (d / str(i)).write_bytes(f"{f}-{i}\n".encode() * (i + 1))
    (store / "zarr.json").write_text('{"zarr_format": 3}\n')
    (store / "odd names").mkdir()
    (store / "odd names" / "100%").write_bytes(b"percent")
    (store / "odd names" / "two\nlines").write_bytes(b"newline")
    (store / "odd names" / "caf\u00e9").write_bytes(b"accent")
    (root / "README.md").write_text("# chunks\n")
    return ws


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _workspace(tmp_path / "ws")


def _manifest_paths(bag: Path, alg: str = "sha512") -> list[str]:
    lines = (bag / f"manifest-{alg}.txt").read_text(encoding="utf-8").splitlines()
    return [ln.split("  ", 1)[1] for ln in lines]


def test_manifests_come_in_the_same_order_on_every_run(ws: Workspace, tmp_path: Path) -> None:
    runs = {}
    for name, processes in (("one", 1), ("two", 2), ("two-again", 2)):
        make_bag(ws, tmp_path / name, processes=processes)
        lines = (tmp_path / name / "manifest-sha512.txt").read_text(encoding="utf-8")
        runs[name] = [
            ln
            for ln in lines.splitlines()
            if "ro-crate" not in ln and "data/curation/fair." not in ln  # made per bag
        ]
    assert runs["one"] == runs["two"] == runs["two-again"]
    paths = [ln.split("  ", 1)[1] for ln in runs["one"]]
    # depth first: a folder's files in name order, then its sub-folders in name order
    chunk = [f"data/{STORE}/0/c/3/{i}" for i in sorted(str(i) for i in range(30))]
    start = paths.index(chunk[0])
    assert paths[start : start + 30] == chunk
    folders = [p.rsplit("/", 1)[0] for p in paths if "/0/c/" in p]
    assert folders == sorted(folders)
    assert paths.index(f"data/{STORE}/zarr.json") < paths.index(f"data/{STORE}/0/c/0/0")
    # names that need percent-encoding were encoded in the worker
    assert f"data/{STORE}/odd names/100%25" in paths
    assert f"data/{STORE}/odd names/two%0Alines" in paths
    assert f"data/{STORE}/odd names/caf\u00e9" in paths
    assert_valid_everywhere(tmp_path / "two")
    digests = dict(
        reversed(ln.split("  ", 1))
        for ln in (tmp_path / "two" / "manifest-sha256.txt").read_text().splitlines()
    )
    chunk_file = ws.root / STORE / "0" / "c" / "4" / "29"
    expected = hashlib.sha256(chunk_file.read_bytes()).hexdigest()
    assert digests[f"data/{STORE}/0/c/4/29"] == expected


@pytest.mark.parametrize("processes", [1, 2])
def test_a_chunk_changing_while_a_worker_hashes_it_fails_clearly(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    target = ws.root / STORE / "0" / "c" / "2" / "7"
    before = snapshot(ws.root)
    real_read = hashing._read_exact

    def read_then_edit(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        if os.fstat(fd).st_ino == target.stat().st_ino:
            with open(target, "ab") as fh:  # someone writes to the chunk mid-bagging
                fh.write(b"edited\n")
        return data

    # the pool forks after this, so the workers read through the same hook
    monkeypatch.setattr(hashing, "_read_exact", read_then_edit)
    dest = tmp_path / "bag"
    with pytest.raises(FileChangedError, match="changed while it was being bagged") as exc:
        make_bag(ws, dest, processes=processes)
    assert exc.value.path == str(target)  # rebuilt whole from the worker: path and details kept
    assert exc.value.details["file"] == f"{STORE}/0/c/2/7"
    assert not dest.exists() and not temps_of(dest)
    after = snapshot(ws.root)
    changed = {k for k in before["files"] if before["files"][k] != after["files"].get(k)}
    assert changed == {f"{STORE}/0/c/2/7"}
    last = ws.log.last()
    assert last is not None and last["action"] == "bag" and last["status"] == "error"


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("bad", ["link", "fifo", "nfc"])
def test_a_refusal_found_mid_walk_leaves_no_partial_and_no_change(
    ws: Workspace, tmp_path: Path, processes: int, bad: str
) -> None:
    last_folder = ws.root / STORE / "0" / "c" / "4"  # walked after every other chunk folder
    if bad == "link":
        (last_folder / "zz-link").symlink_to(last_folder / "0")
        match = "symbolic link .*zz-link"
    elif bad == "fifo":
        os.mkfifo(last_folder / "zz-pipe")
        match = "not a regular file or folder"
    else:
        (last_folder / "\u00e9").write_bytes(b"nfc")
        (last_folder / "e\u0301").write_bytes(b"nfd")
        match = "differ only in Unicode normalisation"
    before = snapshot(ws.root) if bad != "fifo" else None
    dest = tmp_path / "bag"
    with pytest.raises(PackageError, match=match):
        make_bag(ws, dest, processes=processes)
    assert not dest.exists() and not temps_of(dest)
    assert list(tmp_path.iterdir()) == [ws.root]  # no lock file, no partial, nothing else
    if before is not None:
        assert_untouched(before, ws.root)


def test_followed_links_are_read_from_their_target_in_the_worker(
    ws: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"the target's bytes\n")
    (ws.root / STORE / "0" / "c" / "1" / "linked").symlink_to(outside)
    bag = tmp_path / "bag"
    make_bag(ws, bag, processes=2, follow_symlinks=True)
    placed = bag / "data" / STORE / "0" / "c" / "1" / "linked"
    assert not placed.is_symlink() and placed.read_bytes() == outside.read_bytes()
    assert f"data/{STORE}/0/c/1/linked" in _manifest_paths(bag)
    assert_valid_everywhere(bag)


def test_large_files_are_read_in_pieces_with_fractional_progress(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashing, "BUFFER_SIZE", 64)  # every chunk over 64 bytes is "large"
    monkeypatch.setattr(hashing, "_buffer", bytearray(64))
    advanced: list[float] = []
    totals: list[float | None] = []

    class Recorder:
        def start(self, description: str, total: float | None, unit: str = "") -> None:
            totals.append(total)

        def advance(self, amount: float = 1, **info: object) -> None:
            advanced.append(amount)

        def finish(self) -> None:
            pass

    bag = tmp_path / "bag"
    result = make_bag(ws, bag, link=False, progress=Recorder())
    assert any(0 < a < 1 for a in advanced)  # pieces of a file
    made = MADE_WHILE_BAGGING
    assert sum(advanced) == pytest.approx(totals[0]) and totals[0] == result.details["files"] - made
    assert result.details["copied"] == result.details["files"] - made
    big = ws.root / STORE / "0" / "c" / "0" / "29"
    assert big.stat().st_size > 64
    assert (bag / "data" / STORE / "0" / "c" / "0" / "29").read_bytes() == big.read_bytes()
    assert_valid_everywhere(bag)


def test_hash_only_bag_lists_every_file_in_fetch(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    base = "https://store.example.org/ws"
    result = make_bag(ws, bag, processes=2, fetch_base=base + "/", fetch_min_size=0)
    fetch = (bag / "fetch.txt").read_text(encoding="utf-8").splitlines()
    assert result.details["fetch"] == len(fetch) == result.details["files"] - MADE_WHILE_BAGGING
    assert f"{base}/{STORE}/odd%20names/100%25 7 data/{STORE}/odd names/100%25" in fetch
    assert not any((bag / "data" / STORE).rglob("*.json"))  # nothing placed, folders only
    manifest = set(_manifest_paths(bag))
    assert {ln.split(" ", 2)[2] for ln in fetch} <= manifest


@pytest.mark.parametrize("processes", [1, 2])
def test_archive_mode_zip_with_large_chunks_and_empty_folders(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    monkeypatch.setattr(zarr_archive, "BUFFER_SIZE", 64)  # large chunks: copied by the main process
    (ws.root / STORE / "0" / "empty").mkdir()
    before = snapshot(ws.root)
    bag = tmp_path / "bag"
    seen: list[tuple[float | None, str]] = []
    advanced: list[float] = []

    class Recorder:
        def start(self, description: str, total: float | None, unit: str = "") -> None:
            seen.append((total, unit))

        def advance(self, amount: float = 1, **info: object) -> None:
            advanced.append(amount)

        def finish(self) -> None:
            pass

    result = make_bag(ws, bag, zarr="archive", processes=processes, progress=Recorder())
    assert_untouched(before, ws.root)
    n_chunks = sum(1 for p in (ws.root / STORE).rglob("*") if p.is_file())
    # every file of the workspace (chunks included, each read once for the zip) plus the zip
    assert seen == [(result.details["files"] - MADE_WHILE_BAGGING + n_chunks, "files")]
    assert sum(advanced) == seen[0][0]
    assert_valid_everywhere(bag)
    store = ws.root / STORE
    with zipfile.ZipFile(bag / "data" / f"{STORE}.zip") as zf:
        assert zf.testzip() is None  # every CRC right
        names = zf.namelist()
        assert "0/empty/" in names
        files = sorted(p for p in store.rglob("*") if p.is_file())
        assert sorted(n for n in names if not n.endswith("/")) == sorted(
            p.relative_to(store).as_posix() for p in files
        )
        for p in files:
            assert zf.read(p.relative_to(store).as_posix()) == p.read_bytes()
    inventory = (bag / "metadata" / "zarr-inventory" / f"{STORE}.tsv").read_text().splitlines()
    rows = {r.split("\t")[0]: r.split("\t")[1:] for r in inventory[1:]}
    assert rows["odd names/two%0Alines"] == ["7", hashlib.sha256(b"newline").hexdigest()]
    assert result.details["empty_directories"] == 1
    assert not list((bag / "data" / "derived").glob("*.central"))  # the spool is gone


def test_a_large_chunk_changing_before_the_main_process_copies_it(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zarr_archive, "BUFFER_SIZE", 64)
    target = ws.root / STORE / "0" / "c" / "3" / "29"
    real_piece = ZipWriter.add_piece

    def edit_then_add(self: ZipWriter, piece: ZipPiece) -> None:
        if any(e.src == str(target) for e in piece.entries):
            with open(target, "ab") as fh:
                fh.write(b"late edit\n")
        real_piece(self, piece)

    monkeypatch.setattr(ZipWriter, "add_piece", edit_then_add)
    dest = tmp_path / "bag"
    with pytest.raises(FileChangedError, match="changed while it was being archived"):
        make_bag(ws, dest, zarr="archive")
    assert not dest.exists() and not temps_of(dest)


def test_zip_writer_switches_to_zip64_past_65535_entries(tmp_path: Path) -> None:
    n = 70_000
    heads = []
    entries = []
    offset = 0
    for i in range(n):
        name = f"c/{i}".encode()
        head = _local_header(name, 0, 0, 0, 33)
        entries.append(ZipEntry(name, 0, 0, 0, 33, offset, "", 0))
        heads.append(head)
        offset += len(head)
    writer = ZipWriter(str(tmp_path / "big.zip"), str(tmp_path / "inv" / "big.tsv"))
    writer.add_piece(ZipPiece(b"".join(heads), tuple(entries), "", n, 0))
    writer.close()
    raw = (tmp_path / "big.zip").read_bytes()
    assert struct.unpack("<H", raw[-12:-10])[0] == 0xFFFF  # the classic record says "see ZIP64"
    assert b"PK\x06\x06" in raw[-100:]
    with zipfile.ZipFile(tmp_path / "big.zip") as zf:
        infos = zf.infolist()
        assert len(infos) == n and infos[-1].filename == f"c/{n - 1}"
        assert zf.read("c/12345") == b""
    assert not (tmp_path / "big.zip.central").exists()


def test_zip_piece_records_read_back_for_the_zip64_path(tmp_path: Path) -> None:
    from curated.package.hashing import ZIP, FolderTask
    from curated.package.zarr_archive import _entries, zip_folder

    folder = tmp_path / "s.zarr" / "c"
    folder.mkdir(parents=True)
    for name, data in (("a", b"x" * 10), ("caf\u00e9", b"y"), ("z", b"")):
        (folder / name).write_bytes(data)
    task = FolderTask(str(folder), None, "s.zarr/c/", ("a", "caf\u00e9", "z"), ZIP, "s.zarr")
    piece = zip_folder(task)
    assert piece.entries == () and len(piece.fixups) == 3
    entries = _entries(piece.central)
    assert [e.name.decode() for e in entries] == ["c/a", "c/caf\u00e9", "c/z"]
    assert [e.size for e in entries] == [10, 1, 0]
    assert entries[0].offset == 0 and entries[1].offset == 30 + 3 + 10
    assert piece.blob[entries[1].offset : entries[1].offset + 4] == b"PK\x03\x04"
    import zlib

    assert entries[0].crc == zlib.crc32(b"x" * 10)


def test_big_tasks_and_results_through_full_pipes_keep_their_order(tmp_path: Path) -> None:
    """Task and result frames far larger than a pipe's buffer: nobody waits on anybody forever."""
    import signal

    from curated.package.hashing import READ, FolderTask, hash_folders

    folder = tmp_path / "f"
    folder.mkdir()
    names = tuple(sorted(f"{i:04d}-" + "n" * 200 for i in range(300)))
    for n in names:
        (folder / n).write_bytes(n.encode())
    tasks = [FolderTask(str(folder), None, f"t{k}/", names, READ, "s") for k in range(24)]
    signal.alarm(60)  # a deadlock fails the test instead of hanging the run
    try:
        out = list(hash_folders(iter(tasks), ("sha512", "sha256"), 2, processes=2))
    finally:
        signal.alarm(0)
    assert [t.prefix for t, _r in out] == [t.prefix for t in tasks]
    first = out[5][1].lines[1].decode().splitlines()
    assert len(first) == 300 and first[0].endswith(f"  data/t5/{names[0]}")
    assert first[0].split()[0] == hashlib.sha256(names[0].encode()).hexdigest()


@pytest.mark.parametrize("how", ["killed", "oserror"])
def test_a_worker_that_dies_or_fails_stops_the_bag_cleanly(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    target = ws.root / STORE / "0" / "c" / "3" / "5"
    real_read = hashing._read_exact
    main_pid = os.getpid()

    def failing_read(fd: int, size: int) -> bytes:
        if os.getpid() != main_pid and os.fstat(fd).st_ino == target.stat().st_ino:
            if how == "killed":
                os._exit(9)  # as if the OOM killer took the worker
            raise OSError(5, "Input/output error")
        return real_read(fd, size)

    monkeypatch.setattr(hashing, "_read_exact", failing_read)
    before = snapshot(ws.root)
    dest = tmp_path / "bag"
    expected = (
        (PackageError, "hashing process ended") if how == "killed" else (OSError, "Input/output")
    )
    with pytest.raises(expected[0], match=expected[1]):
        make_bag(ws, dest, processes=2)
    assert not dest.exists() and not temps_of(dest)
    assert_untouched(before, ws.root)
