"""RO-Crate ``File`` entities formatted by the hashing workers are those the main process writes.

The workers tell each file's format from the bytes they hold (or the bag's settled fido
answer) and send the entity text back; the main process only appends it. These tests hold
that text to what :func:`curated.package.crate.file_entity` and ``_dump_at`` (the main
process's way, and the old one for every file) make of the same file, on single entities
and on whole bags made with and without worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from test_bag_helpers import assert_valid_everywhere

from curated._json_outline import json_outline
from curated.curation.formats import FormatId
from curated.package import crate as crate_mod
from curated.package import make_bag
from curated.package.crate import (
    OUTLINE_FIND,
    PRONOM_KEY,
    CrateWriter,
    EntityRun,
    EntitySpec,
    FormatMemo,
    _dump_at,
    build_crate,
    entity_runs,
    file_entity,
)
from curated.workspace import Workspace, recorder

RECORD = {
    "study": {
        "title": "Entities",
        "description": "Worker-made crate entities.",
        "publisher": "Lab",
        "authors": [
            {"family_name": "Doe", "given_name": "Jo", "email": "jo@example.org", "contact": True}
        ],
    }
}

FIDO_BIN = FormatId(None, "unknown binary", None, "no PRONOM signature matched (test)")
FIDO_PNG = FormatId("fmt/11", "Portable Network Graphics", "image/png", "fido (test)")


def _settled_memo(*answers: tuple[str, str, FormatId]) -> FormatMemo:
    """A memo where three folders agreed on each ``(sniffed format, extension)``."""
    memo = FormatMemo()
    for fmt, ext, fid in answers:
        for k in range(FormatMemo.AGREEING_FOLDERS):
            memo[(f"/elsewhere/{k}", fmt, ext)] = fid
    return memo


def _files(folder: Path) -> list[tuple[str, bytes]]:
    tif = folder / "t.tif"
    tifffile.imwrite(tif, np.zeros((2, 4, 4), np.uint8))
    ome = folder / "t.ome.tif"
    tifffile.imwrite(ome, np.zeros((2, 4, 4), np.uint8), ome=True)
    return [
        ("plain/0001.bin", os.urandom(40) + b"\x00"),  # fido decides: settled answer
        ("plain/odd name & % # ?.bin", b"\x00\x01binary"),  # quoted @id
        ("plain/ünï cödé.json", b'{"a": 1}'),  # PRONOM list value, non-ASCII name
        ("plain/notes.txt", b"hello\n"),  # text -> x-fmt/111
        ("plain/readme", b"some words\n"),  # text, no extension: fido decides (not settled)
        ("plain/archive.tar.gz", b"\x1f\x8b\x08\x00rest"),  # gzip, MIME from PRONOM
        ("plain/.hidden.bin", b"\x00\x02"),  # a dot file: MIME not shared by suffix
        ("plain/a.b.c.bin", b"\x00\x03"),
        ("plain/empty.dat", b""),  # empty file
        ("plain/12", b"\x00\x04chunk"),  # chunk-like name: codec output
        ("plain/pic.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 16),  # fido decides: settled PNG
        ("plain/page.md", b"# title\n"),
        ("plain/t.tif", tif.read_bytes()[:512]),
        ("plain/t.ome.tif", ome.read_bytes()[:512]),
        ("plain/CreateAction.yaml", b"a: 1\n"),
    ]


@pytest.mark.parametrize("fetch_base", [None, "https://store.example.org/ws"])
def test_worker_entity_text_is_what_the_main_process_writes(
    tmp_path: Path, fetch_base: str | None
) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    files = _files(folder)
    for rel, head in files:
        if not rel.endswith(".tif"):
            (tmp_path / rel).write_bytes(head)
    memo = _settled_memo(("unknown binary", "bin", FIDO_BIN), ("PNG", "png", FIDO_PNG))
    settled = memo.settled()
    assert set(settled) == {("unknown binary", "bin"), ("PNG", "png")}
    wanted = frozenset({"plain/notes.txt", "plain/odd%20name%20%26%20%25%20%23%20%3F.bin"})
    rows = []
    for i, (rel, head) in enumerate(files):
        sha = hashlib.sha256(head).hexdigest()
        fetched = i % 2 == 0
        rows.append((rel, len(head) * 1000 + i, sha, fetched, head, rel.rpartition("/")[2]))
    out = entity_runs(rows, EntitySpec(fetch_base, wanted), settled, str(folder))

    # "readme" (text fido must name, no settled answer) comes back raw, in its place
    raw = [x for x in out if type(x) is not EntityRun]
    assert [x[0] for x in raw] == ["plain/readme"]
    assert all(len(x) == 5 for x in raw)
    runs = [x for x in out if type(x) is EntityRun]
    assert len(runs) == 2 and sum(r.entities for r in runs) == len(files) - 1

    expected_parts, expected_tops, expected_formats = [], [], {}
    for (rel, size, sha, fetched, head, _name), item in zip(rows, _expand(out), strict=True):
        if item is None:
            continue
        ent = file_entity(rel, size, sha, path=tmp_path / rel, memo=memo, head=head)
        if fetched and fetch_base:
            ent["url"] = f"{fetch_base}/{ent['@id']}"
        expected_formats.update(ent.pop(PRONOM_KEY, None) or {})
        expected_parts.append(_dump_at(ent, 4))
        expected_tops.append(_dump_at({"@id": ent["@id"]}, 8))
    assert b",\n".join(r.parts for r in runs).decode() == ",\n".join(expected_parts)
    assert b",\n".join(r.tops for r in runs).decode() == ",\n".join(expected_tops)
    assert {k: v for r in runs for k, v in r.formats.items()} == expected_formats
    assert sorted(m for r in runs for m in r.met) == sorted(wanted)
    assert [f for r in runs for f in r.found] == ["CreateAction"]
    # every text is valid JSON of the same entity
    for text in expected_parts:
        assert json.loads(text)["@type"] == "File"
    ome = json.loads(next(p for p in expected_parts if '"t.ome.tif"' in p))
    assert ome["conformsTo"] == {"@id": crate_mod.OME_TIFF}


def _expand(out: tuple[Any, ...]) -> list[Any]:
    """One item per file: ``"run"`` for files inside a run, ``None`` for raw ones."""
    items: list[Any] = []
    for x in out:
        if type(x) is EntityRun:
            items.extend(["run"] * x.entities)
        else:
            items.append(None)
    return items


def test_a_format_that_needs_fido_comes_back_raw_until_settled(tmp_path: Path) -> None:
    rows = [("p/x.bin", 3, "0" * 64, False, b"\x00\x01\x02", "x.bin")]
    (tmp_path / "x.bin").write_bytes(b"\x00\x01\x02")
    assert entity_runs(rows, EntitySpec(None, frozenset()), {}, str(tmp_path)) == (rows[0][:5],)
    memo = _settled_memo(("unknown binary", "bin", FIDO_BIN))
    (run,) = entity_runs(rows, EntitySpec(None, frozenset()), memo.settled(), str(tmp_path))
    assert type(run) is EntityRun and run.entities == 1


def test_settled_answers_need_three_agreeing_folders() -> None:
    memo = FormatMemo()
    memo[("/a", "unknown binary", "bin")] = FIDO_BIN
    memo[("/b", "unknown binary", "bin")] = FIDO_BIN
    assert memo.settled() == {}
    memo[("/c", "unknown binary", "bin")] = FIDO_BIN
    assert memo.settled() == {("unknown binary", "bin"): FIDO_BIN}
    other = FormatMemo()
    for k, fid in enumerate((FIDO_BIN, FIDO_PNG, FIDO_BIN)):
        other[(f"/{k}", "unknown binary", "bin")] = fid
    assert other.settled() == {}  # folders disagree: fido stays per folder


def _workspace(root: Path) -> Workspace:
    """More folders of one kind than tasks in flight, so settled answers reach the workers."""
    ws = Workspace.create(root, record=RECORD)
    plain = ws.root / "derived" / "plain"
    for k in range(14):
        d = plain / f"{k:02d}"
        d.mkdir(parents=True)
        for i in range(3):
            (d / f"{i}.bin").write_bytes(bytes([k, i]) + os.urandom(30) + b"\x00")
        (d / "meta.json").write_text(json.dumps({"k": k}) + "\n")
        (d / "notes.txt").write_text(f"folder {k}\n")
    misc = ws.root / "derived" / "misc"
    misc.mkdir()
    tifffile.imwrite(misc / "vol.ome.tif", np.zeros((2, 8, 8), np.uint8), ome=True)
    (misc / "name with space & %.md").write_text("# x\n")
    (misc / "CreateAction.txt").write_text("a file named like an action\n")
    (ws.root / "README.md").write_text("# entities\n")
    with recorder(ws, "D", "note", inputs=[]) as step:  # the log's view of one plain file
        step.add_output(plain / "03" / "meta.json", role="example")
    return ws


def _crate(bag: Path) -> tuple[bytes, dict[str, Any]]:
    raw = (bag / "data" / "ro-crate-metadata.json").read_bytes()
    return raw, json.loads(raw)


def test_bags_with_and_without_workers_have_the_main_process_entities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(tmp_path / "ws")
    runs: list[int] = []
    add_run = CrateWriter.add_run

    def counting(self: CrateWriter, run: EntityRun) -> None:
        runs.append(run.entities)
        add_run(self, run)

    monkeypatch.setattr(CrateWriter, "add_run", counting)
    crates = {}
    for processes in (1, 2):
        runs.clear()
        bag = tmp_path / f"bag-{processes}"
        make_bag(ws, bag, processes=processes)
        assert_valid_everywhere(bag)
        assert sum(runs) > 30  # most entities were formatted by the workers
        raw, doc = _crate(bag)
        # byte for byte what write_json makes of the document
        assert raw.decode() == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        files = [
            e
            for e in doc["@graph"]
            if e.get("@type") == "File" and "sha256" in e and not e["@id"].startswith("#")
        ]
        ids = [e["@id"] for e in files]
        assert len(ids) == len(set(ids))
        assert any(e["@id"].startswith("#file:derived/plain/03/meta.json") for e in doc["@graph"])
        assert _main_process_entities(ws, bag) == [
            e for e in files if e["@id"] != "ro-crate-metadata.json"
        ]
        root = next(e for e in doc["@graph"] if e["@id"] == "./")
        formats = [e for e in doc["@graph"] if e.get("@type") == "WebSite"]
        crates[processes] = (files, root["hasPart"], formats)
    # (the second bag's crate also lists the first bag's log entry: only the payload compares)
    assert crates[1] == crates[2]


def _main_process_entities(ws: Workspace, bag: Path) -> list[dict[str, Any]]:
    """Every payload file's entity as the main process makes it, in manifest order."""
    memo = FormatMemo()
    out = []
    for line in (bag / "manifest-sha256.txt").read_text().splitlines():
        sha, _, path = line.partition("  ")
        rel = path.removeprefix("data/").replace("%25", "%")
        if rel.startswith(("curation/", "ro-crate")):
            continue
        src = ws.root / rel
        ent = file_entity(rel, src.stat().st_size, sha, path=src, memo=memo)
        ent.pop(PRONOM_KEY, None)
        out.append(ent)
    return out


@pytest.mark.parametrize("named", [False, True])
def test_crate_writer_outline_is_what_json_outline_reads(tmp_path: Path, named: bool) -> None:
    parts = [
        {"@id": "a.txt", "@type": "File", "name": "a.txt"},
        {"@id": "CreateAction.txt" if named else "b.txt", "@type": "File", "name": "b"},
    ]
    actions = [{"@id": "#run-1", "@type": "CreateAction", "name": "x"}] if named else []
    path = tmp_path / "crate.json"
    with CrateWriter(action_ids=[a["@id"] for a in actions]) as writer, open(path, "wb") as out:
        for p in parts:
            writer.add(p)
        writer.write(out, {}, identifier="urn:uuid:x", date="2026-01-01", actions=actions)
    read = json_outline(path, keep=("@context",), find=OUTLINE_FIND)
    assert writer.outline == read
    assert ("CreateAction" in read.found) is named
    assert build_crate({}, identifier="i", date="d", parts=parts, actions=actions)["@graph"]


def test_threaded_hash_of_one_file_is_hash_folder_s(tmp_path: Path) -> None:
    from curated.package import hashing
    from curated.package.tasks import FolderTask

    big = tmp_path / "crate 100%.json"
    big.write_bytes(os.urandom(3 * hashing.BUFFER_SIZE + 17))
    task = FolderTask(str(tmp_path), None, "", (big.name,), hashing.READ)
    algs = ("sha512", "sha256", "md5")
    threaded = hashing.hash_file_threaded(task, algs, 2)
    plain = hashing.hash_folder(task, algs, 2)
    assert threaded._replace(entities=()) == plain._replace(entities=())
    assert threaded.lines[0].decode().endswith("  data/crate 100%25.json\n")
    with pytest.raises(ValueError, match="one file"):
        hashing.hash_file_threaded(task._replace(names=("a", "b")), algs, 2)


def test_a_crate_changing_while_it_is_hashed_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curated.package import hashing
    from curated.package.tasks import FolderTask

    big = tmp_path / "crate.json"
    big.write_bytes(os.urandom(2 * hashing.BUFFER_SIZE))
    real = os.preadv

    def preadv_then_edit(fd: int, bufs: list[bytearray], offset: int) -> int:
        n = real(fd, bufs, offset)
        with open(big, "ab") as fh:  # something writes to the file meanwhile
            fh.write(b"x")
        return n

    monkeypatch.setattr(hashing.os, "preadv", preadv_then_edit)
    task = FolderTask(str(tmp_path), None, "", (big.name,), hashing.READ)
    with pytest.raises(hashing.FileChangedError, match="changed while it was being bagged"):
        hashing.hash_file_threaded(task, ("sha512", "sha256"), 2)
