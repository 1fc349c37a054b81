"""Object stores that misbehave: throttling, dropped connections, short bodies, redirects
to other hosts. A fault-injecting proxy on 127.0.0.1 (tests/s3_faults.py) stands between
curated and moto's server."""

from __future__ import annotations

import http.server
import os

import pytest
import s3_server
from s3_faults import PARAMS, Fault, converted_source, fault_proxy, serve
from s3_server import local_files

from curated.images import convert_to_ome_zarr, open_image
from curated.objstore import StoreAccessError, open_sink

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return converted_source(tmp_path_factory, seed=7)


def _shard(seen) -> bool:
    return "/0/c/" in seen.path


def test_throttling_and_dropped_connections_are_retried(s3, source):
    """503 SlowDown, 500 InternalError, a reset connection on PUT and GET, a body shorter
    than its Content-Length: the conversion retries and ends identical to a local one."""
    bucket = s3.make_bucket("flaky")
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.method == "PUT" and _shard(s), "status", times=2))
        proxy.add(
            Fault(
                lambda s: s.method == "PUT" and "zarr.json" in s.path,
                "status",
                status=500,
                code="InternalError",
            )
        )
        proxy.add(Fault(lambda s: s.method == "PUT" and _shard(s), "reset"))
        proxy.add(Fault(lambda s: s.method == "GET" and ".npy" in s.path, "reset"))
        proxy.add(Fault(lambda s: s.method == "GET" and "zarr.json" in s.path, "truncate"))
        res = convert_to_ome_zarr(source[0], f"s3://{bucket}/stack.ome.zarr", **PARAMS)
        assert all(f.hits == f.times for f in proxy.faults), [
            (f.action, f.hits) for f in proxy.faults
        ]
    assert res.status == "ok"
    assert s3.objects(bucket, "stack.ome.zarr") == local_files(source[1])
    assert res.details["store_digest"] == source[2].details["store_digest"]


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another host: answers every request with an empty 200 and remembers its headers."""

    got: list[dict[str, str]] = []

    def _answer(self) -> None:
        Recorder.got.append(dict(self.headers.items()))
        self.close_connection = True  # the body is left unread (it may wait on 100-continue)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [307, 301])
def test_a_redirect_to_another_host_is_never_followed(s3, source, status):
    """Neither the body, nor the session token, nor trust in the answer goes to another host."""
    bucket = s3.make_bucket(f"redirect-{status}")
    url = f"s3://{bucket}/stack.ome.zarr"
    convert_to_ome_zarr(source[0], url, **PARAMS)
    Recorder.got = []
    token = "session-token-" + "x" * 40
    with serve(Recorder) as other, fault_proxy(s3) as proxy:
        os.environ["AWS_SESSION_TOKEN"] = token
        elsewhere = other.replace("127.0.0.1", "localhost")  # another origin
        proxy.add(
            Fault(
                lambda s: s.method == "PUT", "redirect", status=status, location=elsewhere, times=99
            )
        )
        with pytest.raises(StoreAccessError, match="redirect") as err:
            open_sink(url).put("note.txt", b"hello")
        # zarr's own s3fs (opened by URL, not through curated's sink) follows none either
        proxy.add(
            Fault(
                lambda s: s.method == "GET" and s.path.endswith("/0/zarr.json"),
                "redirect",
                status=status,
                location=elsewhere,
                times=99,
            )
        )
        with pytest.raises(Exception) as zerr:
            open_image(url).levels[0][:]
    assert Recorder.got == []
    assert token not in str(err.value) and token not in str(zerr.value)
    assert "AWS_ENDPOINT_URL" in str(err.value) and url in str(err.value)
    assert "note.txt" not in s3.objects(bucket, "stack.ome.zarr")


def test_a_resumed_conversion_writes_only_missing_shards_and_aborts_stale_uploads(s3, source):
    """Killed mid-way with a multipart upload open (as a worker killed while uploading a big
    shard leaves one), the re-run uploads only the shards not yet done, aborts the stale
    upload (billed for and never seen otherwise) and ends identical to a local store."""
    from s3_faults import killed_conversion

    bucket = s3.make_bucket("resume-mpu")
    url = f"s3://{bucket}/stack.ome.zarr"
    assert killed_conversion(source[0], url, PARAMS, abort_after=3) in (75, 137)
    client = s3.client()
    mpu = client.create_multipart_upload(Bucket=bucket, Key="stack.ome.zarr/0/c/0/1/1")
    client.upload_part(
        Bucket=bucket, Key=mpu["Key"], UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    done = [k.split("/", 2)[2] for k in s3.objects(bucket, "stack.ome.zarr") if "/done/" in k]
    assert done
    with fault_proxy(s3) as proxy:
        res = convert_to_ome_zarr(source[0], url, **PARAMS)
        written = {s.key.split("/", 2)[2] for s in proxy.ops("put")}
    assert res.status == "ok"
    for marker in done:  # "L/z.y.x" marks shard "L/c/z/y/x" written
        level, index = marker.split("/")
        assert f"{level}/c/{index.replace('.', '/')}" not in written
    assert any("/c/" in k for k in written)  # the shards not done were written
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.objects(bucket, "stack.ome.zarr") == local_files(source[1])


def test_asking_whether_a_store_exists_lists_one_key_not_all(s3):
    """Over 1000 keys (more than one LIST page): one LIST of one key answers whether a
    store root or folder exists; a whole listing would grow with the store."""
    from curated.objstore import StorePath

    bucket = s3.make_bucket("many-keys")
    s3.put_many(bucket, {f"big.ome.zarr/0/c/{i}": b"x" for i in range(1001)})
    with fault_proxy(s3) as proxy:
        assert open_sink(f"s3://{bucket}/big.ome.zarr").root_exists()
        assert StorePath(f"s3://{bucket}/big.ome.zarr/0").is_dir()
        assert not StorePath(f"s3://{bucket}/big.ome.zarr/1").is_dir()
        lists = proxy.ops("list")
    assert len(lists) == 3, [s.query for s in lists]
    assert all(s.query.get("max-keys") == ["1"] for s in lists)


def test_walking_a_store_streams_folder_by_folder_in_path_order(s3, tmp_path):
    """Over a thousand keys in one folder (several LIST pages), names that sort differently
    as keys and as paths ("a.b" before "a/x" as keys, after as paths), a folder marker:
    the walk yields what a folder walk yields, holding one folder at a time, and the
    digest equals the local copy's; deleting a prefix removes every page of it."""
    from curated.objstore import url_digest
    from curated.provenance.digest import digest_tree

    bucket = s3.make_bucket("walk")
    big = {f"0/c/{i}": b"x" for i in range(1200)}
    tricky = {"a.b": b"1", "a/x": b"2", "a/y.z": b"3", "a/y/w": b"4", "zarr.json": b"{}"}
    s3.put_many(bucket, {f"s.zarr/{k}": v for k, v in {**big, **tricky}.items()})
    s3.put_many(bucket, {"s.zarr/.curated-progress/plan.json": b"{}", "s.zarr/b/": b""})
    s3.put_many(bucket, {f"t.zarr/{k}": v for k, v in tricky.items()})
    url = f"s3://{bucket}/s.zarr"
    with fault_proxy(s3) as proxy:
        walk = open_sink(url).files()
        assert next(walk) == ("0/c/0", 1)
        listed = {s.query["prefix"][0] for s in proxy.ops("list")}
        assert listed == {"s.zarr/", "s.zarr/0/", "s.zarr/0/c/"}  # nothing else yet
        rest = [rel for rel, _ in walk]
    assert ["0/c/0", *rest] == sorted({**big, **tricky}, key=lambda r: tuple(r.split("/")))
    local = tmp_path / "t.zarr"
    for rel, data in tricky.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    assert url_digest(f"s3://{bucket}/t.zarr") == digest_tree(local).digest
    open_sink(url).delete_prefix("0")
    left = s3.client().list_objects_v2(Bucket=bucket, Prefix="s.zarr/")["Contents"]
    assert {o["Key"][len("s.zarr/") :] for o in left} == {
        ".curated-progress/plan.json",
        "b/",
        *tricky,
    }


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault(lambda s: s.method == "PUT", "status", times=99), "kept throttling"),
        (Fault(lambda s: s.method == "GET", "corrupt", times=99), "do not match their checksum"),
    ],
    ids=["throttled", "corrupted"],
)
def test_a_store_that_keeps_failing_gets_a_message_saying_how(s3, fault, words):
    """Retries exhausted (503 SlowDown on every PUT), or bytes that fail their checksum on
    every GET: one line naming the store and what happened, never a credential."""
    bucket = s3.make_bucket(f"failing-{fault.action}")
    url = f"s3://{bucket}/x"
    open_sink(url).put("obj", b"some bytes")  # with its checksum, as curated writes
    with fault_proxy(s3, AWS_MAX_ATTEMPTS="1") as proxy:
        proxy.add(fault)
        with pytest.raises(StoreAccessError) as err:
            sink = open_sink(url)
            sink.put("new", b"data") if fault.action == "status" else sink.get("obj")
    text = str(err.value)
    assert words in text and url in text and "\n" not in text
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in text


def test_a_shard_staged_by_a_killed_process_is_removed_by_the_next_run(s3, tmp_path, monkeypatch):
    """kill -9 while a shard is staged locally for its upload leaves the file (no finally
    runs); a later run removes it once stale, and never a running process's file."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from curated import objstore

    code = (
        "import os, signal; from curated.objstore import open_sink\n"
        "with open_sink('s3://any-bucket/x').staging('0/c/0/0/0') as fh:\n"
        "    fh.write(b'x' * 100000); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    run = subprocess.run([sys.executable, "-c", code], env=env, timeout=60)
    assert run.returncode == -signal.SIGKILL
    (left,) = tmp_path.glob("curated-shard-*")
    assert left.stat().st_size == 100000
    recent = tmp_path / f"curated-shard-{left.name.split('-')[2]}-recent"
    recent.write_bytes(b"y")  # a dead process's, but written a moment ago: kept for now
    mine = tmp_path / f"curated-shard-{os.getpid()}-mine"
    mine.write_bytes(b"z")  # a running process's: kept
    old = time.time() - objstore.STALE_AFTER - 60
    for path in (left, mine):
        os.utime(path, (old, old))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    objstore.drop_stale_staging.cache_clear()
    bucket = s3.make_bucket("staging")
    with open_sink(f"s3://{bucket}/x").staging("0/c/0/0/0") as fh:
        fh.write(b"shard")
    assert sorted(p.name for p in tmp_path.glob("curated-shard-*")) == sorted(
        [recent.name, mine.name]
    )
    assert s3.objects(bucket, "x") == {"0/c/0/0/0": b"shard"}


def test_a_listing_that_omits_a_written_shard_fails_the_conversion(s3, source):
    """A LIST that leaves out a key this run wrote (a lying or lagging store) would give a
    store digest over objects that are not all there: the conversion fails instead."""
    import re

    from curated.errors import ConversionError

    def drop_shard(body: bytes) -> bytes:
        return re.sub(rb"<Contents><Key>[^<]*/0/c/0/1/1</Key>.*?</Contents>", b"", body)

    bucket = s3.make_bucket("lying-list")
    url = f"s3://{bucket}/stack.ome.zarr"
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.op == "list", "rewrite", rewrite=drop_shard, times=10**6))
        with pytest.raises(ConversionError, match=r"listing lacks 1 object.*0/c/0/1/1") as err:
            convert_to_ome_zarr(source[0], url, **PARAMS)
    assert url in str(err.value)
    assert "0/c/0/1/1" in s3.objects(bucket, "stack.ome.zarr")  # it was written


def test_a_source_in_an_object_store_is_refused_by_its_url(s3, source, tmp_path):
    from curated.errors import InputError

    bucket = s3.make_bucket("as-source")
    url = f"s3://{bucket}/stack.ome.zarr"
    convert_to_ome_zarr(source[0], url, **PARAMS)
    with pytest.raises(InputError, match="is in an object store") as err:
        convert_to_ome_zarr(url, tmp_path / "copy.ome.zarr", **PARAMS)
    assert str(err.value).startswith(url)  # the URL as given, not folded into "s3:/…"
    assert not (tmp_path / "copy.ome.zarr").exists()


def test_a_listing_that_hands_back_the_same_token_is_an_error_not_a_loop(s3):
    """A store answering every page "truncated, continue from T" with the same T would be
    listed forever; after five such pages the proxy lets moto answer (which refuses the
    token), so a walk that does not notice fails with another message."""
    from curated.objstore import url_digest

    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Name>same-token</Name><Prefix>s.zarr/</Prefix><KeyCount>1</KeyCount>"
        b"<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
        b"<NextContinuationToken>T</NextContinuationToken>"
        b"<Contents><Key>s.zarr/zarr.json</Key><Size>2</Size></Contents>"
        b"</ListBucketResult>"
    )
    bucket = s3.make_bucket("same-token")
    s3.put_many(bucket, {"s.zarr/zarr.json": b"{}"})
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.op == "list", "answer", rewrite=lambda _: page, times=5))
        with pytest.raises(StoreAccessError, match="repeats itself"):
            url_digest(f"s3://{bucket}/s.zarr")


def test_an_oversized_zarr_json_in_a_store_is_refused_without_reading_it_whole(s3, monkeypatch):
    """A store's metadata document larger than any Zarr metadata is refused as it is in a
    folder, and only the limit's worth of it is fetched."""
    from curated.images import store

    monkeypatch.setattr(store, "MAX_METADATA_BYTES", 1000)
    bucket = s3.make_bucket("huge-meta")
    doc = b'{"zarr_format": 3, "node_type": "group", "attributes": {"pad": "' + b"x" * 5000 + b'"}}'
    s3.put_many(bucket, {"s.ome.zarr/zarr.json": doc})
    with fault_proxy(s3) as proxy:
        with pytest.raises(ValueError, match="larger than 1000 bytes"):
            store.read_group_attrs(f"s3://{bucket}/s.ome.zarr")
        gets = proxy.ops("get")
    assert [s.headers.get("Range") for s in gets] == ["bytes=0-1000"]


def test_a_user_who_may_list_only_their_prefix_can_convert(s3, source):
    """Institutional buckets often let each user list only their own prefix (an ``s3:prefix``
    condition): HEAD bucket and a LIST outside the prefix are refused (403), the store's
    own prefix is not. The conversion needs nothing more."""
    bucket = s3.make_bucket("shared-institutional")
    mine = "users/alice/"

    def outside(seen) -> bool:
        if seen.method == "HEAD" and seen.key == bucket:  # HEAD bucket
            return True
        prefix = seen.query.get("prefix", [""])[0]
        return seen.op in ("list", "list-uploads") and not prefix.startswith(mine)

    url = f"s3://{bucket}/{mine}stack.ome.zarr"
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(outside, "status", status=403, code="AccessDenied", times=10**6))
        res = convert_to_ome_zarr(source[0], url, **PARAMS)
        refused = proxy.faults[0].hits
    assert res.status == "ok" and refused == 0
    assert s3.objects(bucket, f"{mine}stack.ome.zarr") == local_files(source[1])


def test_a_whole_bucket_is_never_a_store_to_overwrite(s3, source):
    """``convert … s3://BUCKET --overwrite`` emptied the bucket, other people's data with it."""
    from curated.errors import InputError
    from curated.objstore import remove_tree

    bucket = s3.make_bucket("whole-bucket")
    s3.put_many(bucket, {"precious/thesis.pdf": b"years of work"})
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is a whole bucket"):
            convert_to_ome_zarr(source[0], f"s3://{bucket}", overwrite=overwrite, **PARAMS)
    with pytest.raises(InputError, match="every object in the bucket"):
        remove_tree(f"s3://{bucket}/")
    assert s3.objects(bucket, "precious") == {"thesis.pdf": b"years of work"}


def test_a_server_echoing_the_credentials_in_its_error_is_scrubbed(s3):
    """What a store says goes into the one-line error; credentials it echoes do not."""
    key, secret = s3.env["AWS_ACCESS_KEY_ID"], s3.env["AWS_SECRET_ACCESS_KEY"]
    bucket = s3.make_bucket("echo")
    with fault_proxy(s3) as proxy:
        proxy.add(
            Fault(
                lambda s: s.method == "PUT",
                "status",
                status=400,
                code="InvalidArgument",
                message=f"bad request signed by {key} with {secret}",
            )
        )
        with pytest.raises(StoreAccessError, match="bad request signed by") as err:
            open_sink(f"s3://{bucket}/x").put("k", b"v")
    assert key not in str(err.value) and secret not in str(err.value)


def test_a_bucket_in_another_region_is_still_reached(s3):
    """Refusing redirects keeps botocore's region handling: a ``301 PermanentRedirect``
    naming the bucket's region is answered by signing for that region and asking the
    configured endpoint again (never the Location of the answer)."""
    bucket = s3.make_bucket("elsewhere")
    with fault_proxy(s3) as proxy:
        proxy.add(
            Fault(
                lambda s: s.method == "PUT",
                "status",
                status=301,
                code="PermanentRedirect",
                headers=(("x-amz-bucket-region", "eu-west-1"),),
            )
        )
        open_sink(f"s3://{bucket}/x").put("k", b"v")
        puts = proxy.ops("put")
    assert "/us-east-1/s3/" in puts[0].headers["Authorization"]
    assert "/eu-west-1/s3/" in puts[-1].headers["Authorization"]
    assert s3.objects(bucket, "x") == {"k": b"v"}
