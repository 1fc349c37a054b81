"""One symlink policy for bags: building, validating and depositing never read through a link."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from test_bag_helpers import build_workspace, copy_workspace

from curated.deposit import deposit
from curated.errors import DepositError, PackageError
from curated.package import make_bag, validate_bag
from curated.workspace import Workspace

OUTSIDE = b"the curator's private notes, never to be deposited\n"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bag-links") / "ws"
    build_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Workspace:
    return copy_workspace(template, tmp_path / "ws")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_bytes(OUTSIDE)
    return p


@pytest.fixture
def bag(ws: Workspace) -> Path:
    return Path(make_bag(ws, ws.package_dir / "bag").path)


def _a_payload_file(bag: Path) -> Path:
    return next(p for p in sorted((bag / "data").rglob("*")) if p.is_file() and p.stat().st_size)


def test_bag_holding_a_link_to_a_same_content_outside_file_is_invalid(bag, tmp_path):
    victim = _a_payload_file(bag)
    copy = tmp_path / "same-bytes"
    copy.write_bytes(victim.read_bytes())
    victim.unlink()
    victim.symlink_to(copy)  # every checksum still matches
    report = validate_bag(bag)
    assert not report.ok
    assert any("symbolic link" in p for p in report.problems)


def test_bag_holding_a_link_to_an_outside_folder_is_invalid(bag, outside):
    (bag / "data" / "notes").symlink_to(outside.parent)
    report = validate_bag(bag)
    assert not report.ok
    assert any("data/notes" in p and "symbolic link" in p for p in report.problems)


def test_untracked_tag_file_makes_the_bag_invalid(bag, outside):
    (bag / "metadata" / "extra.txt").write_bytes(OUTSIDE)
    report = validate_bag(bag)
    assert any("metadata/extra.txt is a tag file in no tag manifest" in p for p in report.problems)


def test_directory_deposit_never_copies_an_outside_file(ws, bag, outside, tmp_path):
    (bag / "metadata" / "leak.txt").symlink_to(outside)
    repo = tmp_path / "repository"
    with pytest.raises((DepositError, PackageError), match="does not validate"):
        deposit(bag, to="directory", url=str(repo))
    found = (
        [p for p in repo.rglob("*") if p.is_file() and p.read_bytes() == OUTSIDE]
        if repo.exists()
        else []
    )
    assert found == []


def test_tar_with_a_link_member_is_refused(tmp_path):
    tar = tmp_path / "bag.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("bag/data/x")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(PackageError, match="link or special file"):
        validate_bag(tar)


def test_tar_with_a_dotdot_member_is_one_clear_error(tmp_path):
    tar = tmp_path / "bag.tar"
    with tarfile.open(tar, "w") as tf:
        data = b"x"
        info = tarfile.TarInfo("bag/../../escaped.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(PackageError, match="unsafe member"):
        validate_bag(tar)
    assert not (tmp_path.parent / "escaped.txt").exists()


@pytest.mark.parametrize("rel", ["curation/check.json", "curated.yaml", "curation/log.jsonl"])
def test_bag_does_not_follow_a_linked_tag_file(ws, outside, tmp_path, rel):
    src = ws.root / rel
    if src.exists():
        outside.write_bytes(
            src.read_bytes() + (b"\n# " + OUTSIDE if rel == "curated.yaml" else b"")
        )
        src.unlink()
    src.parent.mkdir(parents=True, exist_ok=True)
    src.symlink_to(outside)
    dest = tmp_path / "bag"
    with pytest.raises(PackageError, match="symbolic link"):
        make_bag(ws, dest)
    assert not dest.exists()


def test_linked_tag_file_is_stored_with_follow_symlinks(ws, outside, tmp_path):
    check = ws.root / "curation" / "check.json"
    outside.write_text('{"findings": []}\n')
    check.unlink(missing_ok=True)
    check.symlink_to(outside)
    res = make_bag(ws, tmp_path / "bag", follow_symlinks=True)
    assert (Path(res.path) / "metadata" / "check.json").read_text() == '{"findings": []}\n'
    assert not os.path.islink(Path(res.path) / "metadata" / "check.json")


# ------------------------------------------------------------------ unfinished stores
def test_interrupted_store_is_not_bagged(ws, tmp_path):
    store = ws.derived_dir / "cell.ome.zarr"
    (store / ".curated-progress").mkdir()
    (store / ".curated-progress" / "plan.json").write_text("{}")
    with pytest.raises(PackageError, match="unfinished write"):
        make_bag(ws, tmp_path / "bag")
    with pytest.raises(PackageError, match="unfinished write"):
        make_bag(ws, tmp_path / "bag2", zarr="archive")
    assert not (tmp_path / "bag").exists()


def test_store_marked_incomplete_is_not_bagged(ws, tmp_path):
    store = ws.derived_dir / "cell.ome.zarr"
    meta = store / "zarr.json"
    import json

    doc = json.loads(meta.read_text())
    doc.setdefault("attributes", {})["curated-incomplete"] = "interrupted"
    meta.write_text(json.dumps(doc))
    with pytest.raises(PackageError, match="unfinished write"):
        make_bag(ws, tmp_path / "bag")


def test_bag_holding_an_interrupted_store_does_not_validate(bag):
    store = next(p for p in (bag / "data").rglob("*.zarr") if p.is_dir())
    (store / ".curated-progress").mkdir()
    report = validate_bag(bag)
    assert any("unfinished write" in p for p in report.problems)


def test_manifest_paths_leaving_the_bag_are_refused_unread(bag, tmp_path, monkeypatch):
    import hashlib

    outside = tmp_path / "outside.txt"
    outside.write_bytes(OUTSIDE)
    digest = hashlib.sha256(OUTSIDE).hexdigest()
    rel = os.path.relpath(outside, bag)
    with open(bag / "tagmanifest-sha256.txt", "a") as fh:
        fh.write(f"{digest}  {rel}\n")
    with open(bag / "manifest-sha256.txt", "a") as fh:
        fh.write(f"{digest}  data/../{rel}\n")
    import builtins

    real_open = builtins.open
    opened: list[str] = []

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy)
    report = validate_bag(bag)
    monkeypatch.undo()
    assert not report.ok
    assert any("outside the bag" in p for p in report.problems)
    assert any("data/../" in p for p in report.problems)
    assert not any(os.path.realpath(o) == str(outside.resolve()) for o in opened)
