"""Kill sweep of the build-and-swap outputs, sparse conversion and the Dataverse zip wrapper.

Each command is killed (``CURATED_CRASH_AT``, :mod:`curated._crash`: ``os._exit`` as
``kill -9``) at each of its write events, then run again as it was: the re-run succeeds
(never "exists" or "in the way" because of what the kill left), the output equals an
uninterrupted run's, the curator log verifies with its files, no temporary name is left
beside the output, and nothing else beside it was touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from archive_helpers import build_archive_workspace
from crash_helpers import run_killable

from curated._crash import EXIT_CODE
from curated._io import aside_of, is_temp_name, temps_of
from curated.workspace import Workspace

_run = run_killable


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _log_verifies(ws: Path) -> None:
    report = Workspace(ws).log.verify(files=True)
    assert report.ok, report.problems


def _no_leftovers(dest: Path) -> None:
    assert temps_of(dest) == [], temps_of(dest)
    assert not os.path.lexists(aside_of(dest))
    assert not [p for p in dest.parent.iterdir() if is_temp_name(p.name)]


# ---------------------------------------------------------------- EMPIAR / BIA exports
@pytest.fixture(scope="module")
def archive_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    build_archive_workspace(root)
    return root


def _archive_ws(template: Path, where: Path) -> Workspace:
    shutil.copytree(template, where, symlinks=True)
    ws = Workspace(where / "ws")
    record = ws.read_metadata()
    record["images"][0]["path"] = str(where / "raw" / "stack.ome.tif")
    ws.write_metadata(record)
    return ws


EXPORT = (
    "from curated.archive import export_{kind}; export_{kind}({ws!r}, {dest!r}, overwrite={ow})"
)


@pytest.mark.parametrize(
    ("kind", "point", "overwrite"),
    [
        ("empiar", "export-built", False),
        ("empiar", "export-swap-in", False),
        ("empiar", "log-append", False),
        ("empiar", "export-built", True),
        ("empiar", "export-swap-aside", True),
        ("empiar", "export-swap-in", True),
        ("empiar", "log-append", True),
        ("bia", "export-swap-in", False),
        ("bia", "export-swap-aside", True),
    ],
)
def test_export_killed_then_the_same_command_finishes(
    archive_template, tmp_path, kind, point, overwrite
):
    ws = _archive_ws(archive_template, tmp_path / "t")
    out = ws.root / "package"  # inside the workspace, where exports go by default
    out.mkdir(exist_ok=True)
    (out / "other.txt").write_text("not the export's")
    ref = out / "ref"
    dest = out / kind
    assert _run(EXPORT.format(kind=kind, ws=str(ws.root), dest=str(ref), ow=False)).returncode == 0
    if overwrite:
        assert (
            _run(EXPORT.format(kind=kind, ws=str(ws.root), dest=str(dest), ow=False)).returncode
            == 0
        )
    code = EXPORT.format(kind=kind, ws=str(ws.root), dest=str(dest), ow=overwrite)
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert Workspace(ws.root).log.verify().ok
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert _tree(dest) == _tree(ref)
    _log_verifies(ws.root)
    _no_leftovers(dest)
    assert sorted(p.name for p in out.iterdir()) == sorted(["other.txt", "ref", kind])
    assert (out / "other.txt").read_text() == "not the export's"


def test_an_unlogged_package_outside_the_workspace_still_needs_overwrite(
    archive_template, tmp_path
):
    # it may be another workspace's export, which this log cannot record either
    ws = _archive_ws(archive_template, tmp_path / "t")
    dest = tmp_path / "elsewhere" / "empiar"
    code = EXPORT.format(kind="empiar", ws=str(ws.root), dest=str(dest), ow=False)
    assert _run(code, crash="log-append").returncode == EXIT_CODE
    made = _tree(dest)
    assert made  # killed after its package was swapped in, before its log entry
    r = _run(code)
    assert r.returncode != 0 and "pass --overwrite" in r.stderr
    assert _tree(dest) == made  # left as it was
    ow = EXPORT.format(kind="empiar", ws=str(ws.root), dest=str(dest), ow=True)
    assert _run(ow).returncode == 0
    _log_verifies(ws.root)


# ---------------------------------------------------------------- Dataverse: wrapped zips
DV_DEPOSIT = (
    "from curated.deposit import deposit, RetryPolicy\n"
    "from tests.fakes.dataverse import FakeDataverse\n"
    "deposit({bag!r}, to='dataverse', url={url!r}, target='lab', publish=False, resume={resume},"
    " retry=RetryPolicy(attempts=2, backoff=0.001))\n"
)


def _a_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("scan/a.txt", "a" * 100)
        zf.writestr("b.txt", "b")
    return buf.getvalue()


@pytest.mark.parametrize("point", ["dataverse-added", "deposit-uploaded"])
def test_dataverse_wrapped_zip_killed_after_its_add_is_stored_once(tmp_path, point):
    from tests.fakes import bags
    from tests.fakes.dataverse import TOKEN, FakeDataverse

    Workspace.create(tmp_path / "ws", record=bags.record())
    content = _a_zip()
    (tmp_path / "ws" / "derived" / "store.ome.zarr.zip").write_bytes(content)
    bag = bags.bag_workspace(tmp_path / "ws")
    env = {"DATAVERSE_TOKEN": TOKEN}
    with FakeDataverse() as fake:
        r = _run(DV_DEPOSIT.format(bag=str(bag), url=fake.url, resume=False), point, env)
        assert r.returncode == EXIT_CODE, r.stderr
        _log_verifies(tmp_path / "ws")
        r = _run(DV_DEPOSIT.format(bag=str(bag), url=fake.url, resume=True), env=env)
        assert r.returncode == 0, r.stderr
        (dataset,) = fake.datasets.values()
        stored = dataset["files"]
    zips = {n: f for n, f in stored.items() if n.endswith(".zip")}
    assert list(zips) == ["data/derived/store.ome.zarr.zip"], list(stored)
    df = zips["data/derived/store.ome.zarr.zip"]["dataFile"]
    assert (df["filesize"], df["checksum"]["value"]) == (
        len(content),
        hashlib.md5(content).hexdigest(),
    )
    assert not any(n.endswith(("a.txt", "b.txt")) for n in stored)
    _log_verifies(tmp_path / "ws")


# ---------------------------------------------------------------- convert: sparse and single-strip sources
CONVERT = (
    "from curated.images import convert_to_ome_zarr\n"
    "convert_to_ome_zarr({src!r}, {dest!r}, voxel_size=(8, 8, 8), chunks=16, shard=32, "
    "workers=1, workspace={ws!r})\n"
)


def _sparse_zarr(path: Path) -> str:
    import numpy as np
    import zarr

    arr = zarr.create_array(path, shape=(64, 64, 48), chunks=(16, 16, 16), dtype="uint8")
    arr[16:32, 32:48, 0:16] = (np.arange(16**3) % 200 + 1).astype(np.uint8).reshape(16, 16, 16)
    return str(path)  # the first shard (0, 0, 0) holds no chunk: skipped, not read


def _one_strip_tiff(path: Path) -> str:
    import numpy as np
    import tifffile

    data = np.random.default_rng(3).integers(0, 255, size=(20, 40, 40), dtype=np.uint8)
    tifffile.imwrite(path, data, compression="zlib", rowsperstrip=40)  # one strip per page
    return str(path)


@pytest.mark.parametrize("source", ["sparse", "one-strip"])
@pytest.mark.parametrize(
    "point", ["store-level-created", "shard-written", "convert-finished", "log-append"]
)
def test_convert_killed_then_rerun_gives_the_same_store(tmp_path, source, point):
    from curated.metadata.edit import init_workspace
    from curated.provenance.digest import digest_tree

    make = _sparse_zarr if source == "sparse" else _one_strip_tiff
    src = make(tmp_path / ("sparse.zarr" if source == "sparse" else "stack.tif"))
    ref = init_workspace(tmp_path / "ref", "Ref")
    ref_dest = ref.derived_dir / "img.ome.zarr"
    r = _run(CONVERT.format(src=src, dest=str(ref_dest), ws=str(ref.root)))
    assert r.returncode == 0, r.stderr
    ws = init_workspace(tmp_path / "ws", "Crash")
    dest = ws.derived_dir / "img.ome.zarr"
    code = CONVERT.format(src=src, dest=str(dest), ws=str(ws.root))
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert Workspace(ws.root).log.verify().ok
    r = _run(code)
    assert r.returncode == 0, r.stderr
    _log_verifies(ws.root)
    assert digest_tree(dest).digest == digest_tree(ref_dest).digest
    assert not (dest / ".curated-progress").exists()
    assert sorted(p.name for p in ws.derived_dir.iterdir()) == ["img.ome.zarr"]
    assert not [p for p in dest.rglob("*") if is_temp_name(p.name)]


# ---------------------------------------------------------------- curated bag
BAG = (
    "from curated.package import make_bag\n"
    "make_bag({ws!r}, {dest!r}, overwrite={ow}, serialize={ser!r})\n"
)


@pytest.fixture(scope="module")
def bag_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_bag_helpers import build_workspace

    root = tmp_path_factory.mktemp("bagsweep") / "ws"
    build_workspace(root)
    return root


def _payload_manifest(bag: Path) -> list[str]:
    """The payload manifest less the files that describe the log's history (which, truthfully,
    includes the interrupted attempt)."""
    history = ("ro-crate-metadata.json", "data/curation/fair.json", "data/curation/fair.md")
    lines = (bag / "manifest-sha256.txt").read_text().splitlines()
    return [line for line in lines if not line.endswith(history) and "log.jsonl" not in line]


def _unpacked(final: Path, into: Path) -> Path:
    import tarfile

    with tarfile.open(final) as tf:
        tf.extractall(into, filter="data")
    (bag,) = into.iterdir()
    return bag


@pytest.mark.parametrize(
    ("ser", "point", "overwrite"),
    [
        ("none", "bag-swap-aside", True),
        ("none", "bag-tag-manifests", False),
        ("tar", "bag-entry-written", True),
        ("tar", "bag-tag-manifests", True),
        ("tar", "bag-serialized", True),
        ("tar", "bag-serialized", False),
    ],
)
def test_bag_killed_then_the_same_command_finishes(bag_template, tmp_path, ser, point, overwrite):
    from test_bag_helpers import copy_workspace

    from curated.package import validate_bag

    ref_ws = copy_workspace(bag_template, tmp_path / "ref")
    ref = ref_ws.package_dir / "bag"
    assert _run(BAG.format(ws=str(ref_ws.root), dest=str(ref), ow=False, ser=ser)).returncode == 0
    ws = copy_workspace(bag_template, tmp_path / "ws")
    dest = ws.package_dir / "bag"
    final = dest if ser == "none" else dest.with_name(f"bag.{ser}")
    code = BAG.format(ws=str(ws.root), dest=str(dest), ow=overwrite, ser=ser)
    if overwrite:
        assert _run(code).returncode == 0
    (ws.package_dir / "notes.txt").write_text("mine")
    r = _run(code, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert Workspace(ws.root).log.verify().ok
    r = _run(code)
    if point == "bag-serialized" and not overwrite:
        # the bag had landed, whole and recorded: the re-run clears the build folder and,
        # as for any finished bag, will not replace it without overwrite
        assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stderr
    _log_verifies(ws.root)
    _no_leftovers(final)
    assert sorted(p.name for p in ws.package_dir.iterdir()) == sorted([final.name, "notes.txt"])
    ref_final = ref if ser == "none" else ref.with_name(f"bag.{ser}")
    got = final if ser == "none" else _unpacked(final, tmp_path / "got")
    want = ref_final if ser == "none" else _unpacked(ref_final, tmp_path / "want")
    assert validate_bag(got).ok
    assert _payload_manifest(got) == _payload_manifest(want)
