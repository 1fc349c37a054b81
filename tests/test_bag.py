"""Bagging a workspace: the bag validates everywhere, describes itself, and leaves the workspace alone."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path

import bagit
import numpy as np
import pytest
import zarr
from test_bag_helpers import (
    assert_untouched,
    assert_valid_everywhere,
    build_workspace,
    copy_workspace,
    snapshot,
)

from curated._io import is_temp_name
from curated.curation.formats import PRONOM_BASE
from curated.package import BAGIT_TXT, make_bag, validate_bag
from curated.package.profiles import list_profiles, load_profile
from curated.provenance.log import CuratorLog
from curated.provenance.rocrate_check import validate_crate
from curated.workspace import Workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bag-template") / "ws"
    build_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Workspace:
    return copy_workspace(template, tmp_path / "ws")


def _manifest(bag: Path, alg: str) -> dict[str, str]:
    out = {}
    for line in (bag / f"manifest-{alg}.txt").read_text(encoding="utf-8").splitlines():
        digest, _, rel = line.partition("  ")
        out[rel] = digest
    return out


def _info(bag: Path) -> dict[str, str]:
    return dict(
        line.split(": ", 1)
        for line in (bag / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    )


def test_bag_of_a_workspace_validates_and_leaves_it_untouched(
    ws: Workspace, tmp_path: Path
) -> None:
    before = snapshot(ws.root)
    bag = tmp_path / "bag"
    result = make_bag(ws, bag)
    assert result.ok and result.path == str(bag)
    assert_untouched(before, ws.root)
    assert_valid_everywhere(bag)
    assert (
        (bag / "bagit.txt").read_bytes()
        == BAGIT_TXT.encode()
        == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    )
    for name in (
        "manifest-sha512.txt",
        "manifest-sha256.txt",
        "tagmanifest-sha512.txt",
        "tagmanifest-sha256.txt",
    ):
        assert (bag / name).is_file()
    for name in ("curated.yaml", "curator-log.jsonl", "prov.json", "datacite.json", "check.json"):
        assert (bag / "metadata" / name).is_file(), name
    for rel in (
        "README.md",
        "figures/overview.png",
        "curation/fair.json",
        "curation/fair.md",
        "derived/models/unet-1/weights.pt",
        "derived/models/unet-1.bioimageio.zip",
        "derived/cell.ome.zarr/zarr.json",
        "derived/cell.ome.zarr/labels/mito/zarr.json",
        "ro-crate-metadata.json",
    ):
        assert (bag / "data" / rel).is_file(), rel
    assert not (bag / "data" / "curated.yaml").exists() and not (bag / "data" / "package").exists()
    info = _info(bag)
    assert info["Source-Organization"] == "Example University"
    assert info["Contact-Name"] == "Jane Doe" and info["Contact-Email"] == "jane.doe@example.org"
    assert info["External-Description"].startswith("Mitochondria of HeLa cells by FIB-SEM")
    assert info["External-Identifier"].startswith("urn:uuid:")
    assert info["BagIt-Profile-Identifier"] == load_profile("curated").identifier
    nbytes, nfiles = (int(x) for x in info["Payload-Oxum"].split("."))
    assert (
        nfiles
        == result.details["files"]
        == len(_manifest(bag, "sha256"))
        == len(_manifest(bag, "sha512"))
    )
    assert nbytes == result.details["bytes"]
    assert "Bag-Size" in info and "Bagging-Date" in info
    # payload files are hard links of the workspace's files (same file system), tag files are new files
    assert os.stat(bag / "data" / "README.md").st_ino == os.stat(ws.root / "README.md").st_ino
    assert os.stat(bag / "metadata" / "curated.yaml").st_ino != os.stat(ws.metadata_path).st_ino
    assert result.details["linked"] > 0


def test_copy_mode_gives_independent_files(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    result = make_bag(ws, bag, link=False, processes=2)
    assert result.details["linked"] == 0
    assert os.stat(bag / "data" / "README.md").st_ino != os.stat(ws.root / "README.md").st_ino
    assert_valid_everywhere(bag)


def test_the_bag_carries_the_log_up_to_its_own_entry(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    result = make_bag(ws, bag)
    copy = CuratorLog(bag / "metadata" / "curator-log.jsonl", root=ws.root)
    assert copy.verify().ok
    last = copy.last()
    assert (
        last is not None
        and last["step"] == "D"
        and last["action"] == "bag"
        and last["status"] == "ok"
    )
    assert last == ws.log.last() and last["seq"] == result.details["log_seq"]
    assert last["details"]["external_identifier"] == _info(bag)["External-Identifier"]
    # every earlier entry of the workspace log is in the copy, unchanged
    assert (bag / "metadata" / "curator-log.jsonl").read_bytes() == ws.log.path.read_bytes()
    prov = json.loads((bag / "metadata" / "prov.json").read_text())
    assert "activity" in prov and len(prov["activity"]) == len(copy)
    # the log copy is covered by the tag manifests
    tag = (bag / "tagmanifest-sha256.txt").read_text()
    tagged = [line.split("  ", 1)[1] for line in tag.splitlines()]
    assert "metadata/curator-log.jsonl" in tagged and "manifest-sha256.txt" in tagged
    assert not [p for p in tagged if p.startswith("data/")]


def test_ro_crate_describes_each_zarr_store_as_one_dataset(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    make_bag(ws, bag)
    crate = json.loads((bag / "data" / "ro-crate-metadata.json").read_text())
    assert crate["@context"] == "https://w3id.org/ro/crate/1.2/context"
    graph = {e["@id"]: e for e in crate["@graph"]}
    root = graph["./"]
    assert root["name"] == "Mitochondria of HeLa cells by FIB-SEM"
    assert root["identifier"] == _info(bag)["External-Identifier"]
    store = graph["derived/cell.ome.zarr/"]
    assert store["@type"] == "Dataset" and int(store["contentSize"]) > 0
    # never one entity per chunk: only the store's metadata documents (JSON, PRONOM fmt/817)
    inside = [
        i for i in graph if i.startswith("derived/cell.ome.zarr/") and i != "derived/cell.ome.zarr/"
    ]
    assert inside and all(
        i.rsplit("/", 1)[-1] in ("zarr.json", ".zattrs", ".zgroup", ".zarray") for i in inside
    )
    assert all(graph[i]["encodingFormat"][1] == {"@id": PRONOM_BASE + "fmt/817"} for i in inside)
    for i in inside:
        assert {"@id": i} in store["hasPart"] and {"@id": i} not in root["hasPart"]
    sha = _manifest(bag, "sha256")
    weights = graph["derived/models/unet-1/weights.pt"]
    assert weights["sha256"] == sha["data/derived/models/unet-1/weights.pt"]
    assert weights["contentSize"] == "4096"
    assert {"@id": "derived/cell.ome.zarr/"} in root["hasPart"]
    actions = [e for e in crate["@graph"] if e.get("@type") == "CreateAction"]
    assert any("write-image" in a["name"] for a in actions)
    # the full roc-validator, offline, against the RO-Crate 1.2 profile (slow: once here)
    assert validate_crate(bag / "data", profile="ro-crate-1.2") == []


@pytest.mark.parametrize("profile", ["curated", "btr", "chronopolis-like", "aptrust"])
def test_every_packaged_profile_gives_a_bag_it_accepts(
    ws: Workspace, tmp_path: Path, profile: str
) -> None:
    assert profile in list_profiles()
    serialize = "tar" if profile == "aptrust" else "none"
    result = make_bag(ws, tmp_path / "bag", profile=profile, serialize=serialize)
    path = Path(result.path)
    report = validate_bag(path, profile=profile)
    assert report.ok, report.problems
    assert report.profile == profile
    if profile == "aptrust":
        assert path.name == "bag.tar"
        with tarfile.open(path) as tf:
            tf.extractall(tmp_path / "x", filter="data")
        bag = tmp_path / "x" / "bag"
        assert sorted(p.name for p in bag.glob("manifest-*.txt")) == [
            "manifest-md5.txt",
            "manifest-sha256.txt",
        ]
        assert "Access: Institution" in (bag / "aptrust-info.txt").read_text()
    else:
        bag = path
    assert_valid_everywhere(bag, profile=profile)
    if profile == "chronopolis-like":
        assert (bag / "tagmanifest-sha256.txt").is_file()


def test_profile_rules_are_enforced_before_building(ws: Workspace, tmp_path: Path) -> None:
    from curated.errors import PackageError

    before = snapshot(ws.root)
    with pytest.raises(PackageError, match="requires a serialized bag"):
        make_bag(ws, tmp_path / "a", profile="aptrust")
    with pytest.raises(PackageError, match="does not allow fetch.txt"):
        make_bag(ws, tmp_path / "b", profile="btr", fetch_base="https://store.example.org/ws")
    with pytest.raises(PackageError, match="unknown BagIt profile"):
        make_bag(ws, tmp_path / "c", profile="nope")
    assert not list(tmp_path.glob("[abc]*"))
    assert_untouched(before, ws.root)


@pytest.mark.parametrize("serialize", ["tar", "zip"])
def test_serialized_bag_has_one_top_level_folder(
    ws: Workspace, tmp_path: Path, serialize: str
) -> None:
    result = make_bag(ws, tmp_path / "my-bag", serialize=serialize)
    archive = Path(result.path)
    assert archive.name == f"my-bag.{serialize}" and archive.is_file()
    assert not (tmp_path / "my-bag").exists() and not [
        p for p in tmp_path.iterdir() if is_temp_name(p.name)
    ]
    if serialize == "tar":
        with tarfile.open(archive) as tf:
            names = tf.getnames()
            tf.extractall(tmp_path / "out", filter="data")
    else:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            zf.extractall(tmp_path / "out")
    assert {n.split("/")[0] for n in names} == {"my-bag"}
    assert validate_bag(archive).ok
    assert_valid_everywhere(tmp_path / "out" / "my-bag")


def test_zarr_archive_mode_packs_each_store_as_one_readable_zip(
    ws: Workspace, tmp_path: Path
) -> None:
    bag = tmp_path / "bag"
    make_bag(ws, bag, zarr="archive")
    assert_valid_everywhere(bag)
    archive = bag / "data" / "derived" / "cell.ome.zarr.zip"
    assert archive.is_file() and not (bag / "data" / "derived" / "cell.ome.zarr").exists()
    with zipfile.ZipFile(archive) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    original = zarr.open_group(str(ws.derived_dir / "cell.ome.zarr"), mode="r")
    store = zarr.storage.ZipStore(str(archive), mode="r")
    packed = zarr.open_group(store, mode="r")
    np.testing.assert_array_equal(packed["0"][:], original["0"][:])
    np.testing.assert_array_equal(packed["labels/mito/0"][:], original["labels/mito/0"][:])
    store.close()
    inventory = (
        (bag / "metadata" / "zarr-inventory" / "derived" / "cell.ome.zarr.tsv")
        .read_text()
        .splitlines()
    )
    assert inventory[0] == "path\tsize\tsha256"
    import hashlib

    src = ws.derived_dir / "cell.ome.zarr"
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    rows = {r.split("\t")[0]: r.split("\t") for r in inventory[1:]}
    assert sorted(rows) == files
    for rel, (_, size, digest) in rows.items():
        assert int(size) == (src / rel).stat().st_size
        assert digest == hashlib.sha256((src / rel).read_bytes()).hexdigest()
    crate = json.loads((bag / "data" / "ro-crate-metadata.json").read_text())
    entity = next(e for e in crate["@graph"] if e["@id"] == "derived/cell.ome.zarr.zip")
    assert entity["@type"] == "File" and "zarr-inventory" in entity["description"]


def test_holey_bag_lists_large_files_in_fetch_and_every_manifest(
    ws: Workspace, tmp_path: Path
) -> None:
    bag = tmp_path / "bag"
    base = "https://storage.example.org/datasets/hela"
    result = make_bag(ws, bag, fetch_base=base, fetch_min_size=4096)
    assert result.details["fetch"] >= 1
    lines = (bag / "fetch.txt").read_text().splitlines()
    entry = next(line for line in lines if line.endswith("data/derived/models/unet-1/weights.pt"))
    assert (
        entry
        == f"{base}/derived/models/unet-1/weights.pt 4096 data/derived/models/unet-1/weights.pt"
    )
    assert not (bag / "data" / "derived" / "models" / "unet-1" / "weights.pt").exists()
    for alg in ("sha256", "sha512"):
        assert "data/derived/models/unet-1/weights.pt" in _manifest(bag, alg)
    crate = json.loads((bag / "data" / "ro-crate-metadata.json").read_text())
    weights = next(e for e in crate["@graph"] if e["@id"] == "derived/models/unet-1/weights.pt")
    assert weights["url"] == f"{base}/derived/models/unet-1/weights.pt"
    strict = validate_bag(bag)
    assert not strict.ok and any("fetch.txt" in p for p in strict.problems)
    holey = validate_bag(bag, allow_holes=True)
    assert holey.ok, holey.problems
    assert holey.to_fetch == result.details["fetch"]
    assert validate_bag(bag, allow_holes=True, fast=True).ok
    b = bagit.Bag(str(bag))
    assert [e[2] for e in b.fetch_entries()] and b.validate_fetch() is None
    # "fetch" the files (from the institutional copy, here the workspace) and the bag is complete
    for line in lines:
        url, _size, rel = line.split(" ", 2)
        src = ws.root / url.removeprefix(base + "/")
        (bag / rel).write_bytes(src.read_bytes())
    assert_valid_everywhere(bag)


def test_empty_directories_are_kept_and_listed(ws: Workspace, tmp_path: Path) -> None:
    (ws.derived_dir / "cell.ome.zarr" / "0" / "empty-chunks").mkdir()
    (ws.root / "figures" / "drafts").mkdir()
    bag = tmp_path / "bag"
    result = make_bag(ws, bag)
    assert (bag / "data" / "derived" / "cell.ome.zarr" / "0" / "empty-chunks").is_dir()
    listed = (bag / "metadata" / "empty-directories.txt").read_text().splitlines()
    assert listed == ["data/figures/drafts", "data/derived/cell.ome.zarr/0/empty-chunks"] or sorted(
        listed
    ) == sorted(["data/figures/drafts", "data/derived/cell.ome.zarr/0/empty-chunks"])
    assert result.details["empty_directories"] == 2
    assert_valid_everywhere(bag)
    make_bag(ws, tmp_path / "zbag", zarr="archive", serialize="zip")
    with zipfile.ZipFile(tmp_path / "zbag.zip") as zf:
        assert "zbag/data/figures/drafts/" in zf.namelist()
    with zipfile.ZipFile(tmp_path / "zbag.zip") as zf:
        zf.extract("zbag/data/derived/cell.ome.zarr.zip", tmp_path / "z")
    with zipfile.ZipFile(
        tmp_path / "z" / "zbag" / "data" / "derived" / "cell.ome.zarr.zip"
    ) as inner:
        assert "0/empty-chunks/" in inner.namelist()


def test_manifest_order_is_stable_across_process_counts(ws: Workspace, tmp_path: Path) -> None:
    make_bag(ws, tmp_path / "one", processes=1)
    make_bag(ws, tmp_path / "two", processes=2)
    a = [
        ln
        for ln in (tmp_path / "one" / "manifest-sha512.txt").read_text().splitlines()
        if "ro-crate" not in ln and "data/curation/fair." not in ln  # made per bag
    ]
    b = [
        ln
        for ln in (tmp_path / "two" / "manifest-sha512.txt").read_text().splitlines()
        if "ro-crate" not in ln and "data/curation/fair." not in ln
    ]
    assert a == b and len(a) > 10


@pytest.mark.parametrize("processes", [1, 2])
def test_progress_reports_files_and_bytes_while_hashing(
    ws: Workspace, tmp_path: Path, processes: int
) -> None:
    seen: list[tuple[str, float | None, str]] = []
    advanced: list[float] = []
    nbytes: list[int] = []

    class Recorder:
        def start(self, description: str, total: float | None, unit: str = "") -> None:
            seen.append((description, total, unit))

        def advance(self, amount: float = 1, **info: object) -> None:
            advanced.append(amount)
            nbytes.append(int(info["bytes"]))  # type: ignore[call-overload]

        def finish(self) -> None:
            pass

    result = make_bag(ws, tmp_path / "bag", progress=Recorder(), processes=processes)
    # the crate and fair.json/fair.md are made while bagging, after the counted payload
    assert seen == [("hashing payload", result.details["files"] - 3, "files")]
    data = tmp_path / "bag" / "data"
    made = ("ro-crate-metadata.json", "curation/fair.json", "curation/fair.md")
    made_size = sum((data / name).stat().st_size for name in made)
    assert sum(advanced) == seen[0][1]
    assert sum(nbytes) == result.details["bytes"] - made_size


def test_validate_finds_tampering(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    make_bag(ws, bag, link=False)
    target = bag / "data" / "figures" / "overview.png"
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))
    report = validate_bag(bag)
    assert not report.ok and any(
        "overview.png: sha512 checksum mismatch" in p for p in report.problems
    )
    assert validate_bag(bag, fast=True).ok  # same size: only checksums can tell
    (bag / "data" / "stray.txt").write_text("x")
    fast = validate_bag(bag, fast=True)
    assert not fast.ok and "Payload-Oxum" in fast.problems[0]
    assert any("stray.txt is in data/ but in no manifest" in p for p in validate_bag(bag).problems)
    (bag / "bag-info.txt").write_text((bag / "bag-info.txt").read_text() + "Extra: tag\n")
    assert any("bag-info.txt: sha" in p for p in validate_bag(bag).problems)


def test_validate_applies_rfc_rules_bagit_python_misses(ws: Workspace, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    make_bag(ws, bag, link=False)
    (bag / "bagit.txt").write_text("BagIt-version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    problems = validate_bag(bag, fast=True).problems
    assert any("this casing" in p for p in problems)
    (bag / "bagit.txt").write_bytes(BAGIT_TXT.encode())
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text(manifest.read_text().replace("data/README.md", "data/READ%ME.md"))
    problems = validate_bag(bag).problems
    assert any("'%' in 'data/READ%ME.md' is not percent-encoded" in p for p in problems)
