"""Bad input for `curated bag`: a clear error naming the problem, nothing in the workspace touched, no bag left."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import bagit
import pytest
from swap_helpers import assert_only_bystanders_left, leave_killed_swap, remove_bystanders
from test_bag_helpers import (
    assert_untouched,
    assert_valid_everywhere,
    build_workspace,
    copy_workspace,
    snapshot,
)

from curated._io import BUILDING_MARKER, aside_of, temps_of
from curated.errors import PackageError
from curated.package import FileChangedError, decode_path, encode_path, make_bag
from curated.package.compat import rfc_path_decoding
from curated.workspace import Workspace


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bag-bad-template") / "ws"
    build_workspace(root)
    return root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Workspace:
    return copy_workspace(template, tmp_path / "ws")


def _no_bag_left(dest: Path) -> None:
    assert not dest.exists()
    assert not temps_of(dest) and not aside_of(dest).exists()


def test_manifest_paths_are_percent_encoded_both_ways() -> None:
    assert encode_path("a%b\nc\rd") == "a%25b%0Ac%0Dd"
    assert decode_path("a%25b%0Ac%0Dd") == "a%b\nc\rd"
    assert decode_path(encode_path("x%0Ay")) == "x%0Ay"  # a literal '%0A' in a name survives
    assert decode_path("lower%0a%0d") == "lower\n\r"


def test_percent_and_newline_in_names_make_a_valid_bag(ws: Workspace, tmp_path: Path) -> None:
    figs = ws.root / "figures"
    (figs / "100%.png").write_bytes(b"a")
    (figs / "x%0Ay.png").write_bytes(b"b")
    (figs / "two\nlines.png").write_bytes(b"c")
    (figs / "cr\rname.png").write_bytes(b"d")
    before = snapshot(ws.root)
    bag = tmp_path / "bag"
    make_bag(ws, bag)
    assert_untouched(before, ws.root)
    manifest = (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    for encoded in (
        "data/figures/100%25.png",
        "data/figures/x%250Ay.png",
        "data/figures/two%0Alines.png",
        "data/figures/cr%0Dname.png",
    ):
        assert encoded in manifest.splitlines()[0] or any(
            line.endswith("  " + encoded) for line in manifest.splitlines()
        )
    assert_valid_everywhere(bag)


def test_bagit_python_misreads_percent_encoded_names_without_our_workaround(
    ws: Workspace, tmp_path: Path
) -> None:
    """bagit-python 1.9 never decodes %25 (its issue 157); curated.package.compat fixes that while reading."""
    (ws.root / "figures" / "100%.png").write_bytes(b"a")
    bag = tmp_path / "bag"
    make_bag(ws, bag)
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag)).validate()
    with rfc_path_decoding():
        bagit.Bag(str(bag)).validate()
    assert bagit._decode_filename("a%25b") == "a%25b"  # patch undone


def test_non_utf8_file_name_is_refused(ws: Workspace, tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(ws.root / "figures"), b"caf\xe9.png")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    before = snapshot(ws.root)
    dest = tmp_path / "bag"
    with pytest.raises(PackageError, match=r"caf\\xe9.png' is not valid UTF-8") as exc:
        make_bag(ws, dest)
    assert "figures" in str(exc.value)
    _no_bag_left(dest)
    assert_untouched(before, ws.root)


def test_names_equal_after_nfc_are_refused(ws: Workspace, tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café.png")
    nfd = unicodedata.normalize("NFD", "café.png")
    assert nfc != nfd
    (ws.root / "figures" / nfc).write_bytes(b"1")
    (ws.root / "figures" / nfd).write_bytes(b"2")
    before = snapshot(ws.root)
    dest = tmp_path / "bag"
    with pytest.raises(PackageError, match="differ only in Unicode normalisation"):
        make_bag(ws, dest)
    _no_bag_left(dest)
    assert_untouched(before, ws.root)


def test_symlink_pointing_outside_is_refused_by_name(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"outside the workspace")
    (ws.root / "figures" / "linked.png").symlink_to(outside)
    before = snapshot(ws.root)
    dest = tmp_path / "bag"
    with pytest.raises(
        PackageError,
        match=r"symbolic link 'figures/linked.png' -> .*elsewhere.png.*--follow-symlinks",
    ):
        make_bag(ws, dest)
    _no_bag_left(dest)
    assert_untouched(before, ws.root)
    # followed on request: the bag stores what the link points to
    make_bag(ws, dest, follow_symlinks=True)
    assert (dest / "data" / "figures" / "linked.png").read_bytes() == b"outside the workspace"
    assert not (dest / "data" / "figures" / "linked.png").is_symlink()
    assert_untouched(before, ws.root)
    assert_valid_everywhere(dest)


def test_symlinked_folder_is_refused_not_skipped(ws: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "more-figures"
    other.mkdir()
    (other / "a.png").write_bytes(b"a")
    (ws.root / "figures" / "more").symlink_to(other, target_is_directory=True)
    with pytest.raises(PackageError, match="symbolic link 'figures/more'"):
        make_bag(ws, tmp_path / "bag")
    make_bag(ws, tmp_path / "bag2", follow_symlinks=True)
    assert (tmp_path / "bag2" / "data" / "figures" / "more" / "a.png").read_bytes() == b"a"
    assert_valid_everywhere(tmp_path / "bag2")


def test_symlink_loop_is_refused_when_following(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "figures" / "loop").symlink_to(ws.root / "figures", target_is_directory=True)
    with pytest.raises(PackageError, match="loop"):
        make_bag(ws, tmp_path / "bag", follow_symlinks=True)
    _no_bag_left(tmp_path / "bag")


def test_broken_symlink_is_refused_even_when_following(ws: Workspace, tmp_path: Path) -> None:
    (ws.root / "figures" / "gone.png").symlink_to(tmp_path / "does-not-exist.png")
    before = snapshot(ws.root)
    for follow in (False, True):
        dest = tmp_path / f"bag-{follow}"
        with pytest.raises(PackageError, match="broken symbolic link 'figures/gone.png'"):
            make_bag(ws, dest, follow_symlinks=follow)
        _no_bag_left(dest)
    assert_untouched(before, ws.root)


def test_destination_inside_the_workspace_is_refused(ws: Workspace) -> None:
    before = snapshot(ws.root)
    for dest in (ws.root / "bag", ws.derived_dir / "bag", ws.root):
        with pytest.raises(PackageError, match="inside the workspace|already exists"):
            make_bag(ws, dest)
    assert not (ws.root / "bag").exists() and not (ws.derived_dir / "bag").exists()
    assert_untouched(before, ws.root)


def test_destination_under_package_is_allowed_and_never_payload(ws: Workspace) -> None:
    dest = ws.package_dir / "bag-1"
    make_bag(ws, dest)
    assert_valid_everywhere(dest)
    second = make_bag(ws, ws.package_dir / "bag-2")
    manifest = (Path(second.path) / "manifest-sha256.txt").read_text()
    assert "package/" not in manifest


def test_existing_destination_is_refused_unless_overwrite(ws: Workspace, tmp_path: Path) -> None:
    dest = tmp_path / "bag"
    make_bag(ws, dest)
    old_id = (dest / "bag-info.txt").read_text()
    before = snapshot(ws.root)
    with pytest.raises(PackageError, match="already exists.*overwrite"):
        make_bag(ws, dest)
    assert (dest / "bag-info.txt").read_text() == old_id
    assert_untouched(before, ws.root)
    make_bag(ws, dest, overwrite=True)
    assert (dest / "bag-info.txt").read_text() != old_id
    assert_valid_everywhere(dest)
    folder = tmp_path / "not-a-bag"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(PackageError, match="not a bag"):
        make_bag(ws, folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "precious"


def test_a_file_changing_while_hashed_fails_clearly(ws: Workspace, tmp_path: Path) -> None:
    target = ws.root / "README.md"  # the first payload file hashed
    before = snapshot(ws.root)

    class Meddler:
        def start(self, description: str, total: float | None, unit: str = "") -> None:
            pass

        def advance(self, amount: float = 1, **info: object) -> None:
            if target.read_bytes().endswith(b"edited\n"):
                return
            with open(target, "ab") as fh:  # someone edits the README mid-bagging
                fh.write(b"edited\n")

        def finish(self) -> None:
            pass

    dest = tmp_path / "bag"
    with pytest.raises(FileChangedError, match="changed while it was being bagged") as exc:
        make_bag(ws, dest, progress=Meddler())
    assert "README.md" in str(exc.value)
    _no_bag_left(dest)
    after = snapshot(ws.root)
    changed = {k for k in before["files"] if before["files"][k] != after["files"].get(k)}
    assert changed == {"README.md"}  # only the file the test itself edited
    last = ws.log.last()
    assert last is not None and last["action"] == "bag" and last["status"] == "error"


def test_interrupted_run_leaves_a_partial_that_the_next_run_cleans(
    ws: Workspace, tmp_path: Path
) -> None:
    dest = tmp_path / "bag"
    partial = tmp_path / ".bag.k1lled00.tmp"
    (partial / "data").mkdir(parents=True)
    (partial / BUILDING_MARKER).write_text("killed\n")
    (partial / "data" / "half.bin").write_bytes(b"half")
    make_bag(ws, dest)
    assert not partial.exists()
    assert_valid_everywhere(dest)


def test_foreign_partial_folder_is_not_removed(ws: Workspace, tmp_path: Path) -> None:
    partial = tmp_path / ".bag.s0meone_.tmp"
    partial.mkdir()
    (partial / "mine.txt").write_text("someone else's")
    with pytest.raises(PackageError, match="was not made by `curated bag`"):
        make_bag(ws, tmp_path / "bag")
    assert (partial / "mine.txt").read_text() == "someone else's"


def test_missing_required_bag_info_names_the_tag(ws: Workspace, tmp_path: Path) -> None:
    rec = ws.read_metadata()
    rec["study"].pop("publisher")
    rec["study"]["authors"][0].pop("affiliation")
    ws.write_metadata(rec)
    with pytest.raises(PackageError, match="requires bag-info tag 'Source-Organization'"):
        make_bag(ws, tmp_path / "bag")
    result = make_bag(ws, tmp_path / "bag", bag_info={"Source-Organization": "Imaging Core"})
    assert "Source-Organization: Imaging Core" in (Path(result.path) / "bag-info.txt").read_text()


def test_split_bag_carries_group_and_count(ws: Workspace, tmp_path: Path) -> None:
    result = make_bag(ws, tmp_path / "bag", bag_group=("urn:uuid:0b0c", 2, 3))
    info = (Path(result.path) / "bag-info.txt").read_text()
    assert "Bag-Group-Identifier: urn:uuid:0b0c" in info and "Bag-Count: 2 of 3" in info
    assert_valid_everywhere(Path(result.path))


def test_two_runs_never_build_the_same_bag_at_once(ws: Workspace, tmp_path: Path) -> None:
    import fcntl

    dest = tmp_path / "bag"
    with open(tmp_path / ".bag.curated-bag.lock", "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(PackageError, match="another `curated bag` run"):
            make_bag(ws, dest)
    _no_bag_left(dest)
    make_bag(ws, dest)
    assert not (tmp_path / ".bag.curated-bag.lock").exists()


def test_computed_bag_info_tags_cannot_be_given(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="Payload-Oxum.*computed"):
        make_bag(ws, tmp_path / "bag", bag_info={"Payload-Oxum": "1.1"})
    _no_bag_left(tmp_path / "bag")


def test_a_kill_between_the_two_renames_loses_nothing_and_the_next_run_clears_it(
    ws: Workspace, tmp_path: Path
) -> None:
    dest = tmp_path / "bag"
    make_bag(ws, dest)
    info = (dest / "bag-info.txt").read_text()
    leave_killed_swap(dest)
    with pytest.raises(PackageError, match="already exists"):  # the old bag is back in place
        make_bag(ws, dest)
    assert (dest / "bag-info.txt").read_text() == info
    assert_only_bystanders_left(dest)
    leave_killed_swap(dest)
    make_bag(ws, dest, overwrite=True)
    assert (dest / "bag-info.txt").read_text() != info
    assert_only_bystanders_left(dest)
    remove_bystanders(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "ws"]
    assert_valid_everywhere(dest)


def test_a_bag_leaves_out_what_a_killed_swap_set_aside(ws: Workspace, tmp_path: Path) -> None:
    aside = (
        ws.root / "derived" / ".model.bioimageio.old.tmp"
    )  # as a kill between the renames left it
    aside.mkdir()
    (aside / "rdf.yaml").write_text("old package\n")
    dest = tmp_path / "bag"
    make_bag(ws, dest)
    assert "model.bioimageio" not in (dest / "manifest-sha256.txt").read_text()
    assert not (dest / "data" / "derived" / aside.name).exists()


SERIALIZED_KILLED_AT_RENAME = """
import os, sys
real = os.replace
def replace(src, dst, **kw):
    if str(dst).endswith("bag.tar"):
        os._exit(137)  # as kill -9 just before the archive's rename
    return real(src, dst, **kw)
os.replace = replace
from curated.package import make_bag
make_bag(sys.argv[1], sys.argv[2], serialize="tar", overwrite=True)
"""


def test_a_serialized_bag_killed_before_its_rename_keeps_the_old_archive(
    ws: Workspace, tmp_path: Path
) -> None:
    import subprocess
    import sys

    archive = Path(make_bag(ws, tmp_path / "bag", serialize="tar").path)
    old = archive.read_bytes()
    src = str(Path(__file__).resolve().parents[1] / "src")
    r = subprocess.run(
        [sys.executable, "-c", SERIALIZED_KILLED_AT_RENAME, str(ws.root), str(tmp_path / "bag")],
        env={**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 137, r.stderr
    with pytest.raises(PackageError, match="already exists"):
        make_bag(ws, tmp_path / "bag", serialize="tar")
    assert archive.is_file() and archive.read_bytes() == old  # never a folder named bag.tar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag.tar", "ws"]
