"""Inputs made by others, hostile or broken: a clear error (no traceback), memory and time
bounded, nothing read outside the input, and the input left as it was."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curated.cli import app

runner = CliRunner()


def _clean_failure(result) -> None:
    """Exit code 1 with a message, not a Python exception."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ------------------------------------------------------------------ BagIt bags
def _bag(root: Path, *, info: bytes = b"", manifest_extra: bytes = b"") -> Path:
    """A small valid bag written by hand (as another tool would), then spoiled by the test."""
    payload = b"hello\n"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.txt").write_bytes(payload)
    (root / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (root / "bag-info.txt").write_bytes(f"Payload-Oxum: {len(payload)}.1\n".encode() + info)
    line = f"{hashlib.sha512(payload).hexdigest()} data/a.txt\n".encode()
    (root / "manifest-sha512.txt").write_bytes(line + manifest_extra)
    return root


@pytest.mark.parametrize(
    ("where", "spoil"),
    [
        ("bag-info.txt", {"info": b"Title: caf\xe9 in Latin-1\n"}),
        ("manifest-sha512.txt", {"manifest_extra": b"00 data/caf\xe9.txt\n"}),
    ],
)
def test_tag_file_that_is_not_utf8_is_a_clear_error(tmp_path, where, spoil):
    bag = _bag(tmp_path / "bag", **spoil)
    before = _tree(bag)
    result = runner.invoke(app, ["bag", "validate", str(bag)])
    _clean_failure(result)
    assert where in result.output and "UTF-8" in result.output
    assert _tree(bag) == before


def test_fetch_txt_that_is_not_utf8_is_a_clear_error(tmp_path):
    bag = _bag(tmp_path / "bag")
    (bag / "fetch.txt").write_bytes(b"http://127.0.0.1:9/x 5 data/caf\xe9.txt\n")
    result = runner.invoke(app, ["bag", "validate", str(bag)])
    _clean_failure(result)
    assert "fetch.txt" in result.output and "UTF-8" in result.output


def test_huge_tag_line_is_neither_held_whole_nor_echoed(tmp_path):
    from curated.package.profiles import MAX_TAG_LINE

    bag = _bag(tmp_path / "bag", info=b"Title: " + b"x" * (MAX_TAG_LINE + 10) + b"\n")
    result = runner.invoke(app, ["bag", "validate", str(bag)])
    _clean_failure(result)
    assert "longer than" in result.output

    bag2 = _bag(tmp_path / "bag2", info=b"y" * 500_000 + b"\n")  # no colon: named, not echoed
    result = runner.invoke(app, ["bag", "validate", str(bag2)])
    _clean_failure(result)
    assert "not 'Label: value'" in result.output
    assert len(result.output) < 2_000


def test_duplicate_manifest_entry_is_named(tmp_path):
    payload_digest = hashlib.sha512(b"hello\n").hexdigest()
    bag = _bag(tmp_path / "bag", manifest_extra=f"{payload_digest} data/a.txt\n".encode())
    from curated.package import validate_bag

    report = validate_bag(bag)
    assert any("more than once" in p for p in report.problems)


def test_a_manifest_of_many_missing_files_prints_a_bounded_list(tmp_path):
    """A million-line manifest took minutes to print problem by problem; the list is cut short."""
    from curated.cli.bag import SHOWN_PROBLEMS

    lines = "".join(f"{'0' * 128} data/f{i}.txt\n" for i in range(SHOWN_PROBLEMS + 50))
    bag = _bag(tmp_path / "bag", manifest_extra=lines.encode())
    result = runner.invoke(app, ["bag", "validate", str(bag)])
    assert result.exit_code == 1
    shown = [ln for ln in result.output.splitlines() if ln.startswith("problem:")]
    assert len(shown) == SHOWN_PROBLEMS + 1
    assert "50 more" in shown[-1]


def test_zip_bag_with_a_link_member_is_refused_like_a_tar_one(tmp_path):
    """unzip makes a link of a member whose mode says so; the bag must not validate as regular files."""
    import zipfile

    from curated.errors import PackageError
    from curated.package import validate_bag

    target = b"/etc/passwd"
    link_line = f"{hashlib.sha512(target).hexdigest()} data/link\n".encode()
    bag = _bag(tmp_path / "bag", manifest_extra=link_line)
    (bag / "bag-info.txt").write_text(f"Payload-Oxum: {6 + len(target)}.2\n")
    archive = tmp_path / "bag.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(bag.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tmp_path).as_posix())
        link = zipfile.ZipInfo("bag/data/link")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, target)
    with pytest.raises(PackageError, match="is a link"):
        validate_bag(archive)


def test_zip_bag_whose_members_clash_is_a_clear_error(tmp_path):
    import zipfile

    archive = tmp_path / "bag.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bag/data/a", "x")
        zf.writestr("bag/data/a/b", "y")
    result = runner.invoke(app, ["bag", "validate", str(archive)])
    _clean_failure(result)
    assert "bag.zip" in result.output and "cannot be unpacked" in result.output


@pytest.mark.parametrize(
    "crate",
    [b"[" * 100_000 + b"]" * 100_000, b"[1, 2]", b'{"@graph": {"@id": "./"}}'],
    ids=["nested-too-deep", "a-list", "graph-not-a-list"],
)
def test_malformed_ro_crate_in_a_bag_is_a_problem_not_a_crash(tmp_path, crate):
    from curated.package import validate_bag

    payload = b"hello\n"
    bag = _bag(tmp_path / "bag")
    (bag / "data" / "ro-crate-metadata.json").write_bytes(crate)
    lines = [
        f"{hashlib.sha512(payload).hexdigest()} data/a.txt",
        f"{hashlib.sha512(crate).hexdigest()} data/ro-crate-metadata.json",
    ]
    (bag / "manifest-sha512.txt").write_text("\n".join(lines) + "\n")
    (bag / "bag-info.txt").write_text(f"Payload-Oxum: {len(payload) + len(crate)}.2\n")
    report = validate_bag(bag)
    assert any(p.startswith("RO-Crate:") for p in report.problems), report.problems


def test_ro_crate_with_odd_ids_and_types_is_checked_without_crashing(tmp_path):
    from curated.provenance.rocrate_check import validate_crate

    doc = {
        "@context": "https://w3id.org/ro/crate/1.1/context",
        "@graph": [
            {"@id": "ro-crate-metadata.json", "about": "./"},
            {"@id": ["./"], "@type": "Dataset"},
            {"@id": "#a", "@type": [{"x": 1}, "CreateAction"], "instrument": {"@id": ["x"]}},
        ],
    }
    (tmp_path / "ro-crate-metadata.json").write_text(json.dumps(doc))
    problems = validate_crate(tmp_path, validator=False)
    assert problems  # reported, not raised


# ------------------------------------------------------------------ Zarr stores
def _zarr_group(root: Path, raw: bytes) -> Path:
    root.mkdir(parents=True)
    (root / "zarr.json").write_bytes(raw)
    return root


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b"[1, 2]"],
    ids=["nested-too-deep", "a-list"],
)
@pytest.mark.parametrize("command", ["validate", "check"])
def test_zarr_json_that_is_no_object_is_a_clear_error(tmp_path, raw, command):
    store = _zarr_group(tmp_path / "x.zarr", raw)
    if command == "validate":
        result = runner.invoke(app, ["metadata", "validate", str(store)])
        _clean_failure(result)
        assert "zarr.json" in result.output
    else:
        ws = tmp_path / "ws"
        assert runner.invoke(app, ["init", str(ws), "--title", "t"]).exit_code == 0
        result = runner.invoke(app, ["check", str(ws), str(store)])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
    assert (store / "zarr.json").read_bytes() == raw


def test_read_group_attrs_refuses_metadata_too_large_to_be_zarr(tmp_path, monkeypatch):
    from curated.images import store as store_mod

    monkeypatch.setattr(store_mod, "MAX_METADATA_BYTES", 1000)
    root = _zarr_group(
        tmp_path / "big.zarr",
        json.dumps(
            {"zarr_format": 3, "node_type": "group", "attributes": {"a": "x" * 2000}}
        ).encode(),
    )
    with pytest.raises(ValueError, match="larger than"):
        store_mod.read_group_attrs(root)


def _ome_zarr(root: Path, *, shape: list[int], chunks: list[int]) -> Path:
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    ms = {
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
        ],
    }
    attrs = {"ome": {"version": "0.5", "multiscales": [ms]}}
    root.mkdir(parents=True)
    (root / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs})
    )
    (root / "0").mkdir()
    (root / "0" / "zarr.json").write_text(
        json.dumps(
            {
                "zarr_format": 3,
                "node_type": "array",
                "shape": shape,
                "data_type": "uint8",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": 0,
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
                "dimension_names": ["z", "y", "x"],
            }
        )
    )
    return root


def test_zero_chunk_extent_is_a_clear_error(tmp_path):
    src = _ome_zarr(tmp_path / "z.zarr", shape=[4, 4, 4], chunks=[0, 2, 2])
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.zarr")])
    _clean_failure(result)
    assert "chunk shape" in result.output


def _refused_unread(src, dest):
    """`curated convert` refuses the store, naming the link, and the linked bytes are nowhere."""
    result = runner.invoke(app, ["convert", str(src), str(dest), "--voxel-size", "1", "1", "1"])
    _clean_failure(result)
    assert "symbolic link" in result.output
    assert not dest.exists() or b"SSSS" not in b"".join(
        p.read_bytes() for p in dest.rglob("*") if p.is_file()
    )


def test_chunk_that_is_a_link_out_of_the_store_is_never_read(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"S" * 8)  # exactly one chunk's size: it would convert silently
    src = _ome_zarr(tmp_path / "z.zarr", shape=[2, 2, 2], chunks=[2, 2, 2])
    (src / "0" / "c" / "0" / "0").mkdir(parents=True)
    os.symlink(secret, src / "0" / "c" / "0" / "0" / "0")
    _refused_unread(src, tmp_path / "out.zarr")


def test_level_that_is_a_link_out_of_the_store_is_never_read(tmp_path):
    elsewhere = _ome_zarr(tmp_path / "elsewhere.zarr", shape=[2, 2, 2], chunks=[2, 2, 2])
    (elsewhere / "0" / "c" / "0" / "0").mkdir(parents=True)
    (elsewhere / "0" / "c" / "0" / "0" / "0").write_bytes(b"S" * 8)
    src = _ome_zarr(tmp_path / "z.zarr", shape=[2, 2, 2], chunks=[2, 2, 2])
    for p in sorted((src / "0").rglob("*"), reverse=True):
        p.unlink()
    (src / "0").rmdir()
    os.symlink(elsewhere / "0", src / "0")
    _refused_unread(src, tmp_path / "out.zarr")


def test_a_store_claiming_a_vast_shape_opens_at_once(tmp_path):
    """zarr's count of stored chunks visits every key of the grid: 10^14 keys here."""
    import time

    from curated.images.stored import open_stored

    src = _ome_zarr(tmp_path / "z.zarr", shape=[10**5] * 3, chunks=[2, 2, 2])
    t0 = time.monotonic()
    opened = open_stored(src)
    assert time.monotonic() - t0 < 20
    assert any("not stored" in n for n in opened.not_carried)


# ------------------------------------------------------------------ metadata files
def _alias_bomb(levels: int = 9) -> str:
    lines = ["_anchors:", '  - &k0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  - &k{i} [" + ",".join([f"*k{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), "--title", "t"]).exit_code == 0
    meta = ws / "curated.yaml"
    text = meta.read_text().replace("study:\n", "study:\n  keywords: *k8\n", 1)
    meta.write_text(_alias_bomb() + text)
    before = meta.read_bytes()
    result = runner.invoke(app, ["metadata", "validate", str(ws)])
    _clean_failure(result)
    assert "aliases" in result.output
    assert meta.read_bytes() == before


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "title: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("loop.yaml", "a: &a [*a]\n"),
    ],
)
def test_metadata_nested_without_end_is_a_clear_error(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    result = runner.invoke(app, ["metadata", "validate", str(p)])
    _clean_failure(result)
    assert "nested" in result.output


def test_metadata_file_far_too_large_is_refused_unread(tmp_path, monkeypatch):
    from curated import _io

    monkeypatch.setattr(_io, "MAX_MAPPING_BYTES", 100)
    p = tmp_path / "curated.yaml"
    p.write_text("title: " + "x" * 200 + "\n")
    from curated.errors import MetadataError

    with pytest.raises(MetadataError, match="larger than"):
        _io.load_mapping(p)


BINARY_ONLY = (
    '<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<BinaryOnly MetadataFile="c.companion.ome" UUID="urn:uuid:1"/></OME>'
)


def _binary_only_tiff(folder: Path) -> Path:
    import numpy as np
    import tifffile

    tif = folder / "bo.ome.tif"
    tifffile.imwrite(tif, np.zeros((4, 4), np.uint8), description=BINARY_ONLY, metadata=None)
    return tif


def test_companion_that_is_a_link_elsewhere_is_not_read(tmp_path):
    secret = tmp_path / "private" / "notes.txt"
    secret.parent.mkdir()
    secret.write_text("PRIVATE-NOTES\n")
    data = tmp_path / "data"
    data.mkdir()
    tif = _binary_only_tiff(data)
    os.symlink(secret, data / "c.companion.ome")
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), "--title", "t"]).exit_code == 0
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(tif)])
    _clean_failure(result)
    assert "symbolic link" in result.output
    assert "PRIVATE-NOTES" not in result.output
    assert not any(b"PRIVATE-NOTES" in p.read_bytes() for p in ws.rglob("*") if p.is_file())


def test_broken_companion_is_named_without_echoing_its_content(tmp_path):
    tif = _binary_only_tiff(tmp_path)
    (tmp_path / "c.companion.ome").write_text("PRIVATE-NOTES, not XML\n")
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["init", str(ws), "--title", "t"]).exit_code == 0
    result = runner.invoke(app, ["metadata", "import-ome", str(ws), str(tif)])
    _clean_failure(result)
    assert "broken" in result.output
    assert "PRIVATE-NOTES" not in result.output


def test_shard_tasks_in_flight_are_bounded_not_one_per_shard(monkeypatch):
    """A source claiming a vast shape has millions of shards: they are not all submitted at once."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from curated.images import shards

    lock = threading.Lock()
    count = {"submitted": 0, "finished": 0, "most": 0}
    real_submit = ThreadPoolExecutor.submit

    def submit(self, fn, *args, **kwargs):
        with lock:
            count["submitted"] += 1
            count["most"] = max(count["most"], count["submitted"] - count["finished"])
        return real_submit(self, fn, *args, **kwargs)

    def fake_write_shard(job, level, idx, inner):
        time.sleep(0.001)
        with lock:
            count["finished"] += 1
        return {"bytes": 0, "level": level}

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit)
    monkeypatch.setattr(shards, "write_shard", fake_write_shard)
    seen: list[dict] = []
    todo = [(i, 0, 0) for i in range(1500)]
    shards._run_local(None, 0, todo, 1, 2, seen.append)  # type: ignore[arg-type]
    assert len(seen) == len(todo)
    assert count["most"] <= shards.IN_FLIGHT_PER_THREAD * 2


def test_pending_shards_of_a_vast_level_are_never_listed_whole():
    """The shards of a level were listed in memory first: by the billion for a claimed 10^15 voxels."""
    import tracemalloc
    from types import SimpleNamespace

    from curated.images.shards import pending_shards

    level = SimpleNamespace(shape=(64 * 64,) * 3)
    layout = SimpleNamespace(levels=[level], block=(64,) * 3, chunks=(64,) * 3)
    job = SimpleNamespace(layout=layout, sink=SimpleNamespace(listdir=lambda _prefix: []))
    tracemalloc.start()
    try:
        first = next(iter(pending_shards(job, 0)))  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first == (0, 0, 0)
    assert peak < 2_000_000  # 262,144 shard indices listed take over 20 MB


def test_object_dtype_zarr_source_is_a_clear_error(tmp_path):
    src = tmp_path / "v2.zarr"
    (src / "0").mkdir(parents=True)
    (src / ".zgroup").write_text('{"zarr_format": 2}')
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1, 1, 1]}]
    ms = {
        "version": "0.4",
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    (src / ".zattrs").write_text(json.dumps({"multiscales": [ms]}))
    zarray = {
        "zarr_format": 2,
        "shape": [4, 4, 4],
        "chunks": [2, 2, 2],
        "dtype": "|O",
        "compressor": None,
        "filters": [{"id": "vlen-utf8"}],
        "fill_value": 0,
        "order": "C",
    }
    (src / "0" / ".zarray").write_text(json.dumps(zarray))
    result = runner.invoke(app, ["convert", str(src), str(tmp_path / "out.zarr")])
    _clean_failure(result)
    assert "pixel type" in result.output
