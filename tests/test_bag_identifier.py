"""``bag_identifier``: the External-Identifier of a bag folder or a serialized bag, which the
curator log's file check and ``curated bag``'s crash recovery compare with the log."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from curated.provenance.log import BAG_INFO_SCAN_MEMBERS, bag_identifier

INFO = b"Bagging-Date: 2026-12-07\nExternal-Identifier: urn:uuid:1234\nPayload-Oxum: 1.1\n"


def _folder(root: Path, info: bytes = INFO) -> Path:
    bag = root / "bag"
    (bag / "data").mkdir(parents=True)
    (bag / "bagit.txt").write_bytes(b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    (bag / "bag-info.txt").write_bytes(info)
    (bag / "data" / "a.txt").write_bytes(b"a")
    return bag


def _tar(bag: Path, out: Path, *, first: int = 0) -> Path:
    with tarfile.open(out, "w") as tf:
        for i in range(first):  # members before bag-info.txt, as a foreign tool might order them
            data = b"x"
            ti = tarfile.TarInfo(f"bag/data/filler-{i:04d}.txt")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        tf.add(bag, arcname="bag")
    return out


def test_folder_tar_and_zip_give_the_same_identifier(tmp_path):
    bag = _folder(tmp_path)
    assert bag_identifier(bag) == "urn:uuid:1234"
    assert bag_identifier(_tar(bag, tmp_path / "bag.tar")) == "urn:uuid:1234"
    with zipfile.ZipFile(tmp_path / "bag.zip", "w") as zf:
        for p in sorted(bag.rglob("*")):
            zf.write(p, "bag/" + p.relative_to(bag).as_posix())
    assert bag_identifier(tmp_path / "bag.zip") == "urn:uuid:1234"


def test_a_bag_made_by_curated_is_read_from_its_archive(tmp_path):
    from test_bag_helpers import build_workspace

    from curated.package import make_bag

    ws = build_workspace(tmp_path / "ws")
    r = make_bag(ws, ws.package_dir / "bag", serialize="tar")
    assert bag_identifier(r.path) == r.details["external_identifier"]


@pytest.mark.parametrize(
    "damage",
    ["missing", "truncated", "garbage", "no identifier", "nested deeper", "hidden late", "empty"],
)
def test_what_is_not_a_readable_bag_has_no_identifier(tmp_path, damage):
    bag = _folder(tmp_path, info=b"Payload-Oxum: 1.1\n" if damage == "no identifier" else INFO)
    out = tmp_path / "bag.tar"
    if damage == "missing":
        out = tmp_path / "absent.tar"
    elif damage == "truncated":
        data = _tar(bag, tmp_path / "whole.tar").read_bytes()
        out.write_bytes(data[:700])  # cut inside the first members
    elif damage == "garbage":
        out.write_bytes(b"\x00\x01not an archive" * 100)
    elif damage == "nested deeper":
        with tarfile.open(out, "w") as tf:
            tf.add(bag, arcname="outer/bag")  # bag-info.txt is not the top folder's
    elif damage == "hidden late":
        _tar(bag, out, first=BAG_INFO_SCAN_MEMBERS + 1)
    elif damage == "empty":
        out.write_bytes(b"")
    else:
        _tar(bag, out)
    assert bag_identifier(out) is None
