"""Convert straight into an S3-compatible object store (moto's server on 127.0.0.1):
the store reads back with zarr, validates, and holds the same bytes as a local conversion."""

from __future__ import annotations

import numpy as np
import pytest
import s3_server
import tifffile
from s3_server import local_files

from curated.images import convert_to_ome_zarr, validate_ome_zarr

SHAPE = (24, 40, 36)
s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(18)
    vol = (rng.normal(120, 30, SHAPE)).clip(0, 255).astype(np.uint8)
    vol[:, :8, :] = 0  # a region of fill value: shards left out must match too
    path = tmp_path_factory.mktemp("src") / "stack.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    return path, vol


@pytest.fixture(scope="module")
def local_store(source, tmp_path_factory):
    dest = tmp_path_factory.mktemp("local") / "stack.ome.zarr"
    res = convert_to_ome_zarr(source[0], dest, voxel_size=(8, 4, 4), chunks=8, shard=16)
    return dest, res


def test_convert_to_s3_reads_back_valid_and_identical(s3, source, local_store, tmp_path):
    import zarr
    from ome_zarr_models import open_ome_zarr

    bucket = s3.make_bucket("images")
    url = "s3://images/run1/stack.ome.zarr"
    res = convert_to_ome_zarr(source[0], url, voxel_size=(8, 4, 4), chunks=8, shard=16)
    assert res.status == "ok"
    assert res.path == url
    # read back through zarr's own store layer, straight from the object store
    group = zarr.open_group(url, mode="r")
    np.testing.assert_array_equal(group["0"][:], source[1])
    open_ome_zarr(group, version="0.5")
    # byte for byte what a local conversion writes; no journal left behind
    objects = s3.objects(bucket, "run1/stack.ome.zarr")
    assert objects == local_files(local_store[0])
    assert not any(k.startswith(".curated-progress") for k in objects)
    assert res.details["store_digest"] == local_store[1].details["store_digest"]
    # the project's validator on a copy of the objects
    copy = s3.download(bucket, "run1/stack.ome.zarr", tmp_path / "copy.ome.zarr")
    assert validate_ome_zarr(copy) == []


PARAMS = {"voxel_size": (8, 4, 4), "chunks": 8, "shard": 16, "workers": 1}
CONVERT = ["--voxel-size", "8", "4", "4", "--chunks", "8", "--shard", "16", "--workers", "1"]


def _killable(src, url, workspace, crash=None, abort_after=None):
    """The conversion in a fresh process (so that it can be killed like ``kill -9``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from curated._crash import ENV
    from curated.images.shards import ABORT_ENV

    code = (
        "import sys; from curated.images import convert_to_ome_zarr; "
        f"convert_to_ome_zarr(sys.argv[1], sys.argv[2], workspace=sys.argv[3], **{PARAMS!r})"
    )
    env = {**os.environ}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    env.pop(ENV, None)
    env.pop(ABORT_ENV, None)
    if crash:
        env[ENV] = crash
    if abort_after:
        env[ABORT_ENV] = str(abort_after)
    return subprocess.run(
        [sys.executable, "-c", code, str(src), url, str(workspace)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli(args, env=None):
    """``curated ARGS`` in this process, with ``env`` (``""`` removes a variable) for its duration."""
    import os

    from s3_server import environment, forget_connections
    from typer.testing import CliRunner

    from curated.cli import app

    base = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    merged = {**base, **(env or {})}
    # a variable removed for the call comes back after it (the later tests need the credentials)
    gone = [k for k, v in (env or {}).items() if not v]
    removed = {k: os.environ[k] for k in gone if k in os.environ}
    try:
        with environment({k: v for k, v in merged.items() if v}):
            for k in gone:
                os.environ.pop(k, None)
            return CliRunner().invoke(app, args)
    finally:
        os.environ.update(removed)
        forget_connections()


@pytest.mark.parametrize(
    ("crash", "abort_after"),
    [(None, 3), ("shard-written", None), ("convert-finished", None), ("convert-logged", None)],
    ids=[
        "killed-mid-way",
        "killed-before-a-marker",
        "killed-after-metadata",
        "killed-after-logging",
    ],
)
def test_killed_conversion_into_s3_resumes_identical(
    s3, source, local_store, tmp_path, crash, abort_after
):
    import json

    from curated.images.store import INCOMPLETE_KEY, is_incomplete, read_group_attrs
    from curated.metadata import init_workspace
    from curated.workspace import Workspace

    bucket = s3.make_bucket(f"crash-{abort_after or crash}")
    url = f"s3://{bucket}/stack.ome.zarr"
    ws = init_workspace(tmp_path / "ws", "S3 crash")
    r = _killable(source[0], url, ws.root, crash=crash, abort_after=abort_after)
    assert r.returncode in (75, 137), r.stderr
    # an interrupted store never looks complete
    assert is_incomplete(url)
    if crash == "shard-written":  # a level-0 shard and its sub-pyramid parts, no marker yet
        keys = s3.objects(bucket, "stack.ome.zarr")
        assert any(k.startswith(".curated-progress/parts/") for k in keys)
        assert not any(k.startswith(".curated-progress/done/") for k in keys)
    if abort_after:
        attrs, _ = read_group_attrs(url)
        assert INCOMPLETE_KEY in attrs and "ome" not in attrs
        assert any(
            k.startswith(".curated-progress/done/") for k in s3.objects(bucket, "stack.ome.zarr")
        )
    assert Workspace(ws.root).log.verify().ok

    r = _killable(source[0], url, ws.root)
    assert r.returncode == 0, r.stderr
    assert s3.objects(bucket, "stack.ome.zarr") == local_files(local_store[0])
    assert not is_incomplete(url)
    log = Workspace(ws.root).log
    report = log.verify(files=True)
    assert report.ok, report.problems
    entries = [e for e in log if e["action"] == "convert"]
    # killed after its entry: the re-run finishes the store and records nothing twice
    want = "notneeded" if crash == "convert-logged" else "ok"
    assert [e["status"] for e in entries][-1] == want
    assert [e["status"] for e in entries].count("ok") == 1
    last = next(e for e in entries if e["status"] == "ok")
    assert last["outputs"][0]["path"] == url
    assert last["outputs"][0]["digest"] == local_store[1].details["store_digest"]
    # credentials reach neither the log nor the output
    text = (ws.root / "curation" / "log.jsonl").read_text()
    for secret in (s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]):
        assert secret not in text and secret not in r.stdout + r.stderr
    assert json.loads(text.splitlines()[-1])["status"] == want


def test_log_verify_sees_a_changed_object(s3, source, tmp_path):
    from curated.metadata import init_workspace
    from curated.workspace import Workspace

    bucket = s3.make_bucket("tamper")
    url = f"s3://{bucket}/stack.ome.zarr"
    ws = init_workspace(tmp_path / "ws", "S3 tamper")
    convert_to_ome_zarr(source[0], url, voxel_size=(8, 4, 4), chunks=8, shard=16, workspace=ws.root)
    assert Workspace(ws.root).log.verify(files=True).ok
    s3.client().put_object(Bucket=bucket, Key="stack.ome.zarr/0/c/0/1/1", Body=b"tampered")
    report = Workspace(ws.root).log.verify(files=True)
    assert not report.ok
    assert f"output {url} changed since it was recorded" in report.problems[0]


def _one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1, result.output
    return lines[0]


def test_missing_bucket_is_one_clear_line(s3, source):
    r = _cli(["convert", str(source[0]), "s3://no-such-bucket/x.ome.zarr", *CONVERT])
    line = _one_error_line(r)
    assert "bucket 'no-such-bucket' does not exist" in line and "create it first" in line


def test_bad_credentials_are_one_clear_line(s3, source):
    """moto checks signatures once its authentication is switched on (no IAM key exists)."""
    import moto.settings
    from moto.core.responses import ActionAuthenticatorMixin

    from curated.errors import InputError

    s3.make_bucket("locked")
    old = moto.settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        with pytest.raises(InputError, match="access to s3://locked was refused") as err:
            convert_to_ome_zarr(source[0], "s3://locked/x.ome.zarr", voxel_size=(8, 4, 4))
    finally:
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = old
    assert "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in str(err.value)
    assert "\n" not in str(err.value)


def test_unreachable_endpoint_is_one_clear_line(s3, source):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    r = _cli(
        ["convert", str(source[0]), "s3://images/x.ome.zarr", *CONVERT],
        env={"AWS_ENDPOINT_URL": endpoint},
    )
    line = _one_error_line(r)
    assert f"cannot reach the object store at {endpoint}" in line


def test_missing_credentials_are_one_clear_line(s3, source, tmp_path):
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    r = _cli(["convert", str(source[0]), "s3://images/x.ome.zarr", *CONVERT], env=env)
    line = _one_error_line(r)
    assert "no credentials for s3://images" in line


def test_credentials_in_the_url_are_refused(s3, source):
    r = _cli(["convert", str(source[0]), "s3://AKIAKEY:topsecret@images/x.ome.zarr", *CONVERT])
    line = _one_error_line(r)
    assert "credentials in the URL are refused" in line
    assert "topsecret" not in r.output


def test_without_the_s3_extra_the_error_names_it(source, monkeypatch):
    import sys

    from curated import objstore
    from curated.errors import InputError

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    objstore._cached_sink.cache_clear()
    with pytest.raises(InputError, match=r"pip install 'curated\[s3\]'"):
        convert_to_ome_zarr(source[0], "s3://images/x.ome.zarr", voxel_size=(8, 4, 4))
    objstore._cached_sink.cache_clear()


def test_ome_zarr_04_into_s3_equals_the_local_store(s3, source, tmp_path):
    """Zarr v2 (one object per chunk) goes through the same sink."""
    bucket = s3.make_bucket("zarr-v2")
    kw = {"voxel_size": (8, 4, 4), "chunks": 8, "ngff_version": "0.4"}
    local = convert_to_ome_zarr(source[0], tmp_path / "l.ome.zarr", **kw)
    remote = convert_to_ome_zarr(source[0], f"s3://{bucket}/v2.ome.zarr", **kw)
    assert s3.objects(bucket, "v2.ome.zarr") == local_files(tmp_path / "l.ome.zarr")
    assert remote.details["store_digest"] == local.details["store_digest"]


def test_the_secret_key_is_scrubbed_from_whatever_curated_writes(s3):
    from curated._secrets import scrub
    from curated.objstore import open_sink

    assert open_sink("s3://images/any").fs is not None  # opening it registers the secret
    secret = s3.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in scrub(f"server said: signature for {secret} does not match")
