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
