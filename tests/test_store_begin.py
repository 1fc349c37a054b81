"""A store killed inside ``begin`` (after its plan, before its metadata) resumes whole.

``images.store.begin`` writes the plan, then the group marked unfinished, then each
level array's metadata. A kill can fall between any two of these; re-running the same
command must end byte-identical to an uninterrupted run (and never "resume" a store
whose metadata were never written). Kills are simulated in-process (the next step
raises) and for real (``CURATED_CRASH_AT``: ``os._exit`` like ``kill -9``), on a local
folder and in an S3-compatible object store (moto on 127.0.0.1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import s3_server
import tifffile
from s3_server import local_files

from curated._crash import ENV as CRASH_ENV
from curated._crash import EXIT_CODE
from curated.errors import InputError
from curated.images import (
    convert_to_ome_zarr,
    create_label_image,
    finalize_label_image,
    open_image,
    validate_ome_zarr,
)
from curated.images import store as _store
from curated.images.store import is_incomplete

SRC = str(Path(__file__).resolve().parents[1] / "src")
SHAPE = (20, 24, 28)
PARAMS = {"voxel_size": (8, 4, 4), "chunks": 8, "shard": 16, "workers": 1}
POINTS = ["store-planned", "store-group-written", "store-level-created"]
s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


class Killed(RuntimeError):
    """Stands for a kill at the step that raises it."""


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    vol = np.random.default_rng(18).integers(0, 255, SHAPE, dtype=np.uint8)
    path = tmp_path_factory.mktemp("src") / "stack.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    return path


@pytest.fixture(scope="module")
def references(source, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Uninterrupted conversions (OME-Zarr 0.5 sharded, 0.4 = Zarr v2): version -> bytes."""
    out = {}
    for version in ("0.5", "0.4"):
        dest = tmp_path_factory.mktemp("ref") / "whole.ome.zarr"
        convert_to_ome_zarr(source, dest, ngff_version=version, **PARAMS)
        out[version] = local_files(dest)
    return out


@pytest.fixture(params=["0.5", "0.4"])
def reference(request, references) -> tuple[str, dict[str, bytes]]:
    return request.param, references[request.param]


def _raise_once(monkeypatch, module, name):
    real = getattr(module, name)

    def failing(*args, **kwargs):
        monkeypatch.setattr(module, name, real)
        raise Killed(name)

    monkeypatch.setattr(module, name, failing)


@pytest.mark.parametrize("step", ["write_group_attrs", "create_level_arrays"])
def test_failure_right_after_the_plan_resumes_identical(
    tmp_path, source, reference, monkeypatch, step
):
    version, expected = reference
    dest = tmp_path / "s.ome.zarr"
    _raise_once(monkeypatch, _store, step)
    with pytest.raises(Killed):
        convert_to_ome_zarr(source, dest, ngff_version=version, **PARAMS)
    assert (dest / ".curated-progress" / "plan.json").is_file()
    assert is_incomplete(dest)  # the plan alone never looks like a store
    res = convert_to_ome_zarr(source, dest, ngff_version=version, **PARAMS)
    assert res.details["resumed"] is True
    assert local_files(dest) == expected
    assert validate_ome_zarr(dest) == []


def _run(code: str, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )


CONVERT = (
    "import sys; from curated.images import convert_to_ome_zarr; "
    f"convert_to_ome_zarr(sys.argv[1], sys.argv[2], ngff_version=sys.argv[3], **{PARAMS!r})"
)


@pytest.mark.parametrize("point", POINTS)
def test_killed_inside_begin_then_rerun_is_identical(tmp_path, source, reference, point):
    version, expected = reference
    dest = tmp_path / "k.ome.zarr"
    r = _run(CONVERT, str(source), str(dest), version, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert is_incomplete(dest)
    with pytest.raises(Exception, match="being written or was interrupted|not an OME-Zarr|no "):
        open_image(dest)
    r = _run(CONVERT, str(source), str(dest), version)
    assert r.returncode == 0, r.stderr
    assert local_files(dest) == expected
    assert validate_ome_zarr(dest) == []


def test_kill_while_the_plan_was_written_starts_afresh(tmp_path, source, reference):
    """Only the journal's staging area (or an empty folder) is there: nothing to lose, start over."""
    version, expected = reference
    dest = tmp_path / "p.ome.zarr"
    (dest / ".curated-progress").mkdir(parents=True)
    (dest / ".curated-progress" / ".plan.json.x1y2.tmp").write_bytes(b'{"dig')
    convert_to_ome_zarr(source, dest, ngff_version=version, **PARAMS)
    assert local_files(dest) == expected
    empty = tmp_path / "empty.ome.zarr"
    empty.mkdir()
    convert_to_ome_zarr(source, empty, ngff_version=version, **PARAMS)
    assert local_files(empty) == expected


def test_unreadable_plan_is_one_clear_line_and_nothing_is_removed(tmp_path, source):
    dest = tmp_path / "bad.ome.zarr"
    (dest / ".curated-progress").mkdir(parents=True)
    (dest / ".curated-progress" / "plan.json").write_bytes(b"\x00garbage")
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="unreadable progress journal") as err:
        convert_to_ome_zarr(source, dest, **PARAMS)
    assert "\n" not in str(err.value)
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / ".curated-progress" / "plan.json").read_bytes() == b"\x00garbage"


def test_foreign_folder_is_still_refused(tmp_path, source):
    dest = tmp_path / "other"
    dest.mkdir()
    (dest / ".curated-progress").mkdir()
    (dest / "data.bin").write_bytes(b"1")
    with pytest.raises(InputError, match="already exists"):
        convert_to_ome_zarr(source, dest, **PARAMS)
    assert (dest / "data.bin").read_bytes() == b"1"


# ------------------------------------------------------------------ label images
@pytest.fixture(scope="module")
def image(source, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("img") / "img.ome.zarr"
    convert_to_ome_zarr(source, dest, **PARAMS)
    return dest


def _label_image(image_path: Path, name: str) -> dict[str, bytes]:
    arr = create_label_image(image_path, name, dtype="uint8")
    arr[...] = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3).astype(np.uint8)
    finalize_label_image(image_path, name)
    return local_files(image_path / "labels" / name)


@pytest.mark.parametrize("step", ["write_group_attrs", "create_level_arrays"])
def test_label_image_killed_after_its_plan_resumes_identical(tmp_path, image, monkeypatch, step):
    import shutil

    ws = shutil.copytree(image, tmp_path / "img.ome.zarr")
    expected = _label_image(shutil.copytree(image, tmp_path / "ref.ome.zarr"), "pred")
    _raise_once(monkeypatch, _store, step)
    with pytest.raises(Killed):
        create_label_image(ws, "pred", dtype="uint8")
    assert _label_image(ws, "pred") == expected
    assert validate_ome_zarr(ws) == []


def test_label_finalize_completes_a_level_left_without_metadata(tmp_path, image):
    """A level's folder without its ``zarr.json`` (a kill mid-``begin``) is not taken as written."""
    import shutil

    ws = shutil.copytree(image, tmp_path / "img.ome.zarr")
    expected = _label_image(shutil.copytree(image, tmp_path / "ref.ome.zarr"), "pred")
    arr = create_label_image(ws, "pred", dtype="uint8")
    arr[...] = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3).astype(np.uint8)
    (ws / "labels" / "pred" / "1" / "zarr.json").unlink()  # the folder stays
    finalize_label_image(ws, "pred")
    assert local_files(ws / "labels" / "pred") == expected


# ------------------------------------------------------------------ object store
def test_killed_inside_begin_into_s3_then_rerun_is_identical(s3, source, references):
    version, point = "0.5", "store-level-created"
    expected = references[version]
    bucket = s3.make_bucket("begin-killed")
    url = f"s3://{bucket}/k.ome.zarr"
    r = _run(CONVERT, str(source), url, version, crash=point)
    assert r.returncode == EXIT_CODE, r.stderr
    assert is_incomplete(url)
    r = _run(CONVERT, str(source), url, version)
    assert r.returncode == 0, r.stderr
    assert s3.objects(bucket, "k.ome.zarr") == expected


@pytest.mark.parametrize("step", ["write_group_attrs", "create_level_arrays"])
def test_failure_after_the_plan_in_s3_resumes_identical(s3, source, reference, monkeypatch, step):
    version, expected = reference
    bucket = s3.make_bucket(f"begin-{step.replace('_', '-')}-{version.replace('.', '')}")
    url = f"s3://{bucket}/r.ome.zarr"
    _raise_once(monkeypatch, _store, step)
    with pytest.raises(Killed):
        convert_to_ome_zarr(source, url, ngff_version=version, **PARAMS)
    convert_to_ome_zarr(source, url, ngff_version=version, **PARAMS)
    assert s3.objects(bucket, "r.ome.zarr") == expected
