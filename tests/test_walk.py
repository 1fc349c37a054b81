"""The one tree walker (curated.walk) and the three walks built on it: check, bag, digest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_bag_helpers import RECORD, assert_valid_everywhere

import curated.walk as walk_mod
from curated._json_outline import json_outline
from curated.curation.check import check
from curated.package import make_bag
from curated.package.crate import build_crate
from curated.provenance.digest import digest_tree
from curated.walk import Files, Folder, Listing, Special, is_zarr_store, walk
from curated.workspace import Workspace


def _events(root: Path, **kw: object) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for ev in walk(root, **kw):  # type: ignore[arg-type]
        if type(ev) is Files:
            out.extend(("file", ev.prefix + n) for n in ev.names)
        elif type(ev) is Folder:
            out.append(("folder", ev.rel))
        elif type(ev) is Special:
            out.append((ev.kind, ev.rel))
        else:
            out.append(("unreadable", ev.rel))
    return out


def _tree(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "b" / "x").write_bytes(b"x")
    (root / "a").write_bytes(b"a")
    (root / "c").write_bytes(b"c")
    return root


def test_orders_sorted_and_files_first(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    assert _events(root) == [
        ("folder", ""),
        ("file", "a"),
        ("folder", "b"),
        ("file", "b/x"),
        ("file", "c"),
    ]
    assert _events(root, order="files-first") == [
        ("folder", ""),
        ("file", "a"),
        ("file", "c"),
        ("folder", "b"),
        ("file", "b/x"),
    ]


def test_a_large_listing_is_sorted_on_disk_with_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    names = [f"n{i:03d}" for i in range(47)]
    for n in reversed(names):
        (folder / n).write_bytes(b"")
    (folder / "sub").mkdir()
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(walk_mod.tempfile, "tempdir", str(spill))
    with Listing(str(folder), spill_threshold=10) as listing:
        assert listing.spilled and len(listing) == 48
        first = list(listing)
        assert first == list(listing)  # iterable again (files, then folders)
        assert [n for n, _ in first] == sorted([*names, "sub"])
        assert len(list(spill.iterdir())) == 5
    assert list(spill.iterdir()) == []
    monkeypatch.setattr(walk_mod, "SPILL_THRESHOLD", 7)
    spilled = _events(folder, order="files-first", batch=4)
    monkeypatch.setattr(walk_mod, "SPILL_THRESHOLD", 50_000)
    assert spilled == _events(folder, order="files-first", batch=4)
    assert spilled[-1] == ("folder", "sub")


def test_links_are_reported_and_followed_only_when_asked(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"o")
    os.symlink(outside, root / "l-file")
    os.symlink(root / "b", root / "l-dir")
    os.symlink(root, root / "b" / "l-loop")
    os.symlink(tmp_path / "gone", root / "l-broken")
    os.mkfifo(root / "fifo")
    got = _events(root)
    assert ("link", "l-file") in got and ("link", "l-dir") in got
    assert ("link", "l-broken") in got and ("link", "b/l-loop") in got
    assert ("special", "fifo") in got
    assert not any(rel.startswith("l-dir/") for _, rel in got)  # never entered
    followed = _events(root, follow_symlinks=True)
    assert ("file", "l-file") in followed and ("file", "l-dir/x") in followed
    assert ("broken-link", "l-broken") in followed
    assert ("link-loop", "b/l-loop") in followed
    srcs = [ev.srcs for ev in walk(root, follow_symlinks=True) if type(ev) is Files and ev.srcs]
    assert [str(outside)] in [list(s) for s in srcs]


def test_an_unreadable_folder_raises_or_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "t")
    real = os.scandir

    def scandir(path: str):  # type: ignore[no-untyped-def]
        if str(path).endswith("/b"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk_mod.os, "scandir", scandir)
    with pytest.raises(PermissionError):
        list(walk(root))
    assert ("unreadable", "b") in _events(root, errors="report")
    assert ("file", "c") in _events(root, errors="report")  # the walk goes on


def test_is_zarr_store_means_zarr_metadata_not_a_name(tmp_path: Path) -> None:
    named = tmp_path / "looks.zarr"
    named.mkdir()
    plain = tmp_path / "image"
    plain.mkdir()
    (plain / "zarr.json").write_text("{}")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / ".zgroup").write_text("{}")
    assert not is_zarr_store(named)
    assert is_zarr_store(plain) and is_zarr_store(v2)
    assert not is_zarr_store(plain / "zarr.json")


# ------------------------------------------------------------------ the walks built on it
def _bag_workspace(root: Path) -> Workspace:
    ws = Workspace.create(root, record=RECORD)
    plain = ws.derived_dir / "tables"
    for i in range(23):
        sub = plain / f"part-{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"row-{i:02d}.csv").write_text(f"{i}\n")
    store = ws.derived_dir / "image"  # a Zarr store whatever its name
    (store / "c" / "0").mkdir(parents=True)
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    for i in range(12):
        (store / "c" / "0" / str(i)).write_bytes(bytes([i]) * 4)
    fake = ws.derived_dir / "notes.zarr"  # named like a store, holds no Zarr metadata
    fake.mkdir()
    (fake / "readme.txt").write_text("not a store\n")
    return ws


def test_bag_streams_its_walk_and_crate_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import uuid

    ws = _bag_workspace(tmp_path / "one" / "ws")
    shutil.copytree(ws.root, tmp_path / "two" / "ws", symlinks=True)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=7))
    make_bag(ws, tmp_path / "one" / "bag")
    monkeypatch.setattr(walk_mod, "SPILL_THRESHOLD", 2)  # every listing sorted on disk
    make_bag(tmp_path / "two" / "ws", tmp_path / "two" / "bag", processes=2)
    one, two = tmp_path / "one" / "bag", tmp_path / "two" / "bag"
    for name in ("manifest-sha512.txt", "manifest-sha256.txt", "data/ro-crate-metadata.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    # the bag's FAIR report names the bag as it is in place, not the folder it was built in
    fair = (one / "data" / "curation" / "fair.md").read_text()
    assert "`bag/data/ro-crate-metadata.json`" in fair and ".tmp" not in fair
    shutil.move(two, tmp_path / "bag2")
    assert_valid_everywhere(tmp_path / "bag2")
    crate = (tmp_path / "bag2" / "data" / "ro-crate-metadata.json").read_text()
    graph = {e["@id"]: e for e in json.loads(crate)["@graph"]}
    # one meaning of a Zarr store: the metadata decides, not the name
    assert graph["derived/image/"]["@type"] == "Dataset"
    assert not any(i.startswith("derived/image/c/") for i in graph)
    assert graph["derived/notes.zarr/readme.txt"]["@type"] == "File"
    assert "derived/notes.zarr/" not in graph
    lines = (tmp_path / "bag2" / "manifest-sha256.txt").read_text().splitlines()
    paths = [ln.split("  ", 1)[1] for ln in lines]
    assert "data/derived/tables/part-0/row-00.csv" in paths and len(paths) == len(set(paths))


def test_check_spills_large_folders_like_the_other_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    for i in range(30):
        (src / f"slice_{i:03d}.txt").write_text(f"{i}\n")
    before = check(None, [src], processes=1).to_dict_without_files()
    runs: list[int] = []
    real = walk_mod._spill
    monkeypatch.setattr(walk_mod, "_spill", lambda batch: runs.append(1) or real(batch))
    monkeypatch.setattr(walk_mod, "SPILL_THRESHOLD", 8)
    after = check(None, [src], processes=1)
    assert len(runs) == 4  # 30 names in runs of 8
    assert [f.path for f in after.files] == sorted(f.path for f in after.files)
    assert after.to_dict_without_files() == before
    assert list(after.source_digests.values()) == [digest_tree(src).digest]


def test_check_does_not_read_a_link_out_of_the_tree(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not part of the delivery\n")
    os.symlink(secret, src / "link-out.txt")
    os.symlink(src / "a.txt", src / "link-in.txt")
    report = check(None, [src], processes=1)
    shown = [f.path for f in report.files]
    assert any(p.endswith("link-in.txt") for p in shown)  # inside the tree: examined
    assert not any(p.endswith("link-out.txt") for p in shown)
    flags = [f for f in report.flags if f.code == "symlink-outside"]
    assert len(flags) == 1 and flags[0].paths[0].endswith("link-out.txt")


# ------------------------------------------------------------------ the crate as a stream
def test_crate_with_no_parts_and_store_members_after_their_store() -> None:
    empty = build_crate({}, identifier="urn:uuid:x", date="2026-01-01", parts=[], actions=[])
    assert empty["@graph"][1]["hasPart"] == []
    store = {"@id": "s.zarr/", "@type": "Dataset", "hasPart": [{"@id": "s.zarr/zarr.json"}]}
    member = {"@id": "s.zarr/zarr.json", "@type": "File"}
    crate = build_crate(
        {}, identifier="urn:uuid:x", date="2026-01-01", parts=[store, member], actions=[]
    )
    assert crate["@graph"][1]["hasPart"] == [{"@id": "s.zarr/"}]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"@context": "c", "@graph": [{"@type": "CreateAction"}]}', True),
        ('{"@context": {"a": [1, 2.5e3, null]}, "@graph": {}}', True),
        ('{"@context": "c", "@graph": [1,]}', False),
        ('{"@context": "c"} trailing', False),
        ('{"@context": "c", "@graph": [', False),
        ('{"a": 01}', False),
        ('{"@context": "c", "@graph": [{"k": [1 2]}, {"@type": "File"}]}', False),
        ('{"@context": "c", "@graph": [{"@type": "File", "name": "a long name"}, 2]}', True),
        ("", False),
    ],
)
def test_json_outline_reads_a_stream_and_refuses_what_json_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, ok: bool
) -> None:
    import curated._json_outline as jo

    monkeypatch.setattr(jo, "_READ", 5)  # values cut across reads
    monkeypatch.setattr(jo, "STEP_IN", 12)  # long values walked through, short ones decoded
    path = tmp_path / "doc.json"
    path.write_text(text)
    if not ok:
        with pytest.raises(ValueError):
            json.loads(text)
        with pytest.raises(ValueError):
            json_outline(path)
        return
    doc = json.loads(text)
    out = json_outline(path, keep=("@context",), find=("CreateAction",))
    assert out.kind == "object" and out.values["@context"] == doc["@context"]
    assert out.keys["@graph"] == ("array" if isinstance(doc["@graph"], list) else "object")
    assert ("CreateAction" in out.found) == ("CreateAction" in text)


def test_no_import_cycle_between_package_modules() -> None:
    """``package/hashing.py`` and ``package/zarr_archive.py`` imported each other (issue 19)."""
    import ast

    import curated

    src = Path(curated.__file__).parent
    edges: dict[str, set[str]] = {}
    for path in src.rglob("*.py"):
        mod = ".".join(path.relative_to(src.parent).with_suffix("").parts)
        mod = mod.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                edges.setdefault(mod, set()).add(node.module)
    package = sorted(m for m in edges if m.startswith("curated.package."))

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            m = todo.pop()
            if m == b:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(n for n in edges.get(m, ()) if n.startswith("curated.package"))
        return False

    cycles = [(a, b) for a in package for b in edges[a] if b in edges and reaches(b, a)]
    assert cycles == []


def test_fido_answers_serve_the_whole_bag_once_folders_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A million files in a thousand folders made a thousand fido calls (most of a second each)."""
    from curated.curation.formats import _Fido, identify_format
    from curated.package.crate import FormatMemo

    calls: list[str] = []
    real = _Fido.identify
    monkeypatch.setattr(_Fido, "identify", lambda p: calls.append(str(p)) or real(p))
    memo = FormatMemo()
    answers = []
    for k in range(6):
        folder = tmp_path / f"part-{k}"
        folder.mkdir()
        for i in range(2):
            (folder / f"row-{i}.bin").write_bytes(b"\x01\x02binary" * 4)
            answers.append(identify_format(folder / f"row-{i}.bin", memo=memo))
    assert len(calls) == FormatMemo.AGREEING_FOLDERS  # then the settled answer serves
    assert len(set(answers)) == 1


def test_workers_send_back_as_many_head_bytes_as_format_identification_reads() -> None:
    from curated.curation.formats import HEAD_BYTES
    from curated.package.hashing import ENTITY_HEAD

    assert ENTITY_HEAD == HEAD_BYTES
