"""Atomic writes: readers see the old file or the new one, with sensible permissions."""

from __future__ import annotations

import os
import stat

import pytest

from curated._io import atomic_write_text


def test_new_file_gets_umask_default_mode(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.yaml", "x: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_replaced_file_keeps_its_mode(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("old\n")
    p.chmod(0o640)
    atomic_write_text(p, "new\n")
    assert p.read_text() == "new\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_failed_write_leaves_old_content_and_no_temp_file(tmp_path, monkeypatch):
    p = tmp_path / "a.yaml"
    p.write_text("old\n")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new\n")
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == ["a.yaml"]


# ------------------------------------------------- leftovers of killed writers and builds
CONCURRENT_WRITER = """
import sys, time
from pathlib import Path
from curated._io import atomic_write_via
target, go = Path(sys.argv[1]), Path(sys.argv[2])

def write(name):
    Path(name).write_text("theirs")
    print("writing", flush=True)
    while not go.exists():  # a slow writer, still alive
        time.sleep(0.01)

atomic_write_via(target, write)
"""


def _dead_temp(path, text="half"):
    path.write_text(text)  # made by hand: no process holds its lock, as after a kill
    return path


def test_a_write_removes_its_targets_dead_temporary_files_only(tmp_path):
    from curated._io import is_temp_name

    target = tmp_path / "a.txt"
    dead = [_dead_temp(tmp_path / f".a.txt.d3ad000{i}.tmp") for i in range(2)]
    others = [
        _dead_temp(tmp_path / ".b.txt.d3ad0000.tmp"),  # another target's
        _dead_temp(tmp_path / ".a.txt.d3ad0000.tmp.bak"),  # a user's file
        _dead_temp(tmp_path / ".a.d3ad0000.tmp"),  # of `a`, not of `a.txt`
        _dead_temp(tmp_path / ".x.a.txt.d3ad0000.tmp"),
    ]
    folder = tmp_path / ".a.txt.f0lder00.tmp"  # a folder being built is no atomic write's
    folder.mkdir()
    assert all(is_temp_name(p.name) for p in dead)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert not any(p.exists() for p in dead)
    assert all(p.read_text() == "half" for p in others) and folder.is_dir()


def test_a_live_concurrent_writers_temporary_file_is_kept(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    target, go = tmp_path / "a.txt", tmp_path / "go"
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    other = subprocess.Popen(
        [sys.executable, "-c", CONCURRENT_WRITER, str(target), str(go)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "writing\n"
        theirs = [p for p in tmp_path.iterdir() if p.name.startswith(".a.txt.")]
        assert len(theirs) == 1
        atomic_write_text(target, "ours")  # finishes first, while the other still writes
        assert theirs[0].read_text() == "theirs"  # kept: its writer is alive
        go.touch()
        assert other.wait(timeout=60) == 0  # and its rename found its file
    finally:
        other.kill()
        other.wait()
    assert target.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".a.txt.")] == []


def _made(folder):
    return (folder / "made.txt").is_file()


def test_a_live_build_of_the_same_destination_is_left_alone(tmp_path):
    from curated._io import DirBuild, aside_of, building_dir, recover_swap

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "made.txt").write_text("old")
    live = DirBuild(dest)
    path = live.start()  # another run, building right now
    try:
        aside_of(dest).mkdir()  # and about to swap: its aside is not touched either
        (aside_of(dest) / "made.txt").write_text("older")
        left = recover_swap(dest, is_ours=_made)
        assert left.busy == [path] and path.is_dir() and aside_of(dest).is_dir()
        with pytest.raises(FileExistsError), building_dir(dest, is_ours=_made, overwrite=True):
            pass
    finally:
        live.release()  # the other run has ended (killed): now its folder is stale
    left = recover_swap(dest, is_ours=_made)
    assert left == ([], [], False)
    assert not path.exists() and not aside_of(dest).exists()  # DEST was there: old one dropped
    assert (dest / "made.txt").read_text() == "old"


def test_building_dir_replaces_only_its_own_kind_and_cleans_up_on_failure(tmp_path):
    from curated._io import building_dir, is_temp_name

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError), building_dir(dest, is_ours=_made, overwrite=True):
        pass
    (dest / "thesis.tex").unlink()
    (dest / "made.txt").write_text("old")
    with pytest.raises(RuntimeError), building_dir(dest, is_ours=_made, overwrite=True) as folder:
        (folder / "made.txt").write_text("half")
        raise RuntimeError("disk full")
    assert (dest / "made.txt").read_text() == "old"
    with building_dir(dest, is_ours=_made, overwrite=True) as folder:
        (folder / "made.txt").write_text("new")
    assert (dest / "made.txt").read_text() == "new"
    assert sorted(os.listdir(dest)) == ["made.txt"]  # the marker went before the swap
    assert not [n for n in os.listdir(tmp_path) if is_temp_name(n)]


def test_temp_names_cover_the_set_aside_output():
    from curated._io import is_temp_name

    assert is_temp_name(".pkg.bioimageio.old.tmp") and is_temp_name(".bag.k1lled00.tmp")
    for name in (".pkg.old", ".old.tmp", "pkg.old.tmp", ".pkg.older.tmp", ".pkg.partial"):
        assert not is_temp_name(name), name
