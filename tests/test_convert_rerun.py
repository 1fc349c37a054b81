"""Running the same `curated convert` again after it finished: nothing to do, nothing rewritten;
a changed source or other parameters are still refused without touching the store."""

from __future__ import annotations

import os

import numpy as np
import pytest
import s3_server
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError
from curated.images import convert_to_ome_zarr
from curated.provenance.digest import digest_tree

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1
PARAMS = {"voxel_size": (8, 4, 4), "chunks": 8, "shard": 16, "workers": 1}


@pytest.fixture
def source(tmp_path):
    vol = np.random.default_rng(5).integers(0, 255, (12, 24, 24), dtype=np.uint8)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, vol, photometric="minisblack")
    return src


def _state(dest):
    """Every file of the store with its bytes and modification time."""
    return {
        p.relative_to(dest).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(dest.rglob("*"))
        if p.is_file()
    }


def test_same_command_again_is_notneeded_and_writes_nothing(tmp_path, source):
    dest = tmp_path / "o.ome.zarr"
    first = CliRunner().invoke(
        app, ["convert", str(source), str(dest), "--voxel-size", "8", "4", "4", "--chunks", "8"]
    )
    assert first.exit_code == 0, first.output
    before = _state(dest)
    again = CliRunner().invoke(
        app, ["convert", str(source), str(dest), "--voxel-size", "8", "4", "4", "--chunks", "8"]
    )
    assert again.exit_code == 0, again.output
    assert "notneeded" in again.output and "already converted" in again.output
    assert _state(dest) == before


@pytest.mark.parametrize("change", ["voxel", "touched", "rewritten"])
def test_other_parameters_or_a_changed_source_are_refused(tmp_path, source, change):
    dest = tmp_path / "o.ome.zarr"
    convert_to_ome_zarr(source, dest, **PARAMS)
    before = _state(dest)
    params = dict(PARAMS)
    if change == "voxel":
        params["voxel_size"] = (8, 4, 3)
    elif change == "touched":
        st = source.stat()
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:
        tifffile.imwrite(source, np.zeros((12, 24, 24), np.uint8), photometric="minisblack")
    with pytest.raises(InputError, match="finished conversion of another source") as err:
        convert_to_ome_zarr(source, dest, **params)
    assert "--overwrite" in str(err.value)
    assert _state(dest) == before


def test_in_a_workspace_the_rerun_is_logged_as_notneeded(tmp_path, source):
    from curated.metadata import init_workspace

    ws = init_workspace(tmp_path / "ws", "rerun")
    dest = ws.root / "derived" / "o.ome.zarr"
    first = convert_to_ome_zarr(source, dest, workspace=ws, **PARAMS)
    again = convert_to_ome_zarr(source, dest, workspace=ws, **PARAMS)
    assert (first.status, again.status) == ("ok", "notneeded")
    assert again.details["store_digest"] == first.details["store_digest"]
    converts = [e for e in ws.log.entries() if e.get("action") == "convert"]
    assert [e["status"] for e in converts] == ["ok", "notneeded"]
    assert not converts[1].get("outputs")  # the store is recorded once


def test_a_store_converted_outside_the_workspace_is_hashed_and_recorded(tmp_path, source):
    from curated.metadata import init_workspace

    ws = init_workspace(tmp_path / "ws", "rerun")
    dest = ws.root / "derived" / "o.ome.zarr"
    first = convert_to_ome_zarr(source, dest, **PARAMS)  # no workspace: not logged
    before = _state(dest)
    again = convert_to_ome_zarr(source, dest, workspace=ws, **PARAMS)
    assert again.status == "ok" and "recorded a finished conversion" in again.message
    assert _state(dest) == before
    recorded = ws.log.recorded_output(dest)
    assert recorded is not None
    assert recorded.digest == first.details["store_digest"] == digest_tree(dest).digest


def test_in_memory_arrays_are_never_taken_for_finished(tmp_path):
    """Their fingerprint is a shape, not the content: writing again must not be skipped."""
    from curated.images import write_ome_zarr

    dest = tmp_path / "a.ome.zarr"
    write_ome_zarr(np.zeros((8, 16, 16), np.uint8), dest, voxel_size=(8, 4, 4))
    with pytest.raises(InputError, match="already exists"):
        write_ome_zarr(np.ones((8, 16, 16), np.uint8), dest, voxel_size=(8, 4, 4))


def test_the_same_conversion_into_s3_again_is_notneeded(s3, source):
    """A scripted deposit into an object store re-run from the top: nothing rewritten."""
    bucket = s3.make_bucket("rerun")
    url = f"s3://{bucket}/o.ome.zarr"
    first = convert_to_ome_zarr(source, url, **PARAMS)
    before = s3.objects(bucket, "o.ome.zarr")
    again = convert_to_ome_zarr(source, url, **PARAMS)
    assert (first.status, again.status) == ("ok", "notneeded")
    assert s3.objects(bucket, "o.ome.zarr") == before
    with pytest.raises(InputError, match="finished conversion of another source"):
        convert_to_ome_zarr(source, url, **{**PARAMS, "voxel_size": (8, 4, 3)})
