"""Quirks of real S3-compatible servers (AWS S3, MinIO, Ceph RGW, Garage) and of lying
ones: a CompleteMultipartUpload answered ``200 OK`` with an ``<Error>`` body, listings
that say "truncated" and give nothing to continue from, keys that need URL encoding,
error bodies that are not XML or are huge. The fault proxy of tests/s3_faults.py
stands between curated and moto's server."""

from __future__ import annotations

import pytest
import s3_server
from s3_faults import PARAMS, Fault, converted_source, fault_proxy
from s3_server import local_files

from curated.images import convert_to_ome_zarr
from curated.objstore import StoreAccessError, open_sink

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


MIB = 1 << 20


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return converted_source(tmp_path_factory, seed=11)


def _page(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<{body.split(">")[0][1:]} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + body.split(">", 1)[1]
    ).encode()


def test_a_multipart_completion_answered_200_with_an_error_is_retried(s3, monkeypatch):
    """AWS may answer CompleteMultipartUpload ``200 OK`` and put an ``<Error>`` in the body
    (it documents that the body must be read): a failure, retried, never taken as done."""
    import s3fs.core

    monkeypatch.setattr(s3fs.core, "calculate_chunksize", lambda size, chunksize=None: 5 * MIB)
    bucket = s3.make_bucket("mpu-200-error")
    data = bytes(range(256)) * (11 * MIB // 256)
    error = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
        b"<Message>We encountered an internal error. Please try again.</Message></Error>"
    )
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.op == "complete-multipart", "answer", rewrite=lambda _: error))
        with open_sink(f"s3://{bucket}/x").staging("big") as fh:
            fh.write(data)
        completions = proxy.ops("complete-multipart")
    assert len(completions) == 2  # the 200-with-error, then the retry
    assert s3.objects(bucket, "x") == {"big": data}


def test_a_multipart_completion_that_always_fails_in_a_200_is_an_error(s3, monkeypatch):
    import s3fs.core

    monkeypatch.setattr(s3fs.core, "calculate_chunksize", lambda size, chunksize=None: 5 * MIB)
    bucket = s3.make_bucket("mpu-200-error-always")
    error = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
    with fault_proxy(s3) as proxy:
        proxy.add(
            Fault(
                lambda s: s.op == "complete-multipart", "answer", rewrite=lambda _: error, times=99
            )
        )
        with pytest.raises(StoreAccessError), open_sink(f"s3://{bucket}/x").staging("big") as fh:
            fh.write(b"x" * 11 * MIB)
    assert s3.objects(bucket, "x") == {}
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_listing_truncated_without_a_token_is_an_error_not_a_partial_walk(s3):
    """``IsTruncated`` true and no ``NextContinuationToken``: the rest of the listing cannot
    be asked for. A digest over the first page would describe a store that is not there."""
    from curated.objstore import url_digest

    page = _page(
        "<ListBucketResult><Name>no-token</Name><Prefix>s.zarr/</Prefix><KeyCount>1</KeyCount>"
        "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
        "<Contents><Key>s.zarr/a</Key><Size>1</Size></Contents></ListBucketResult>"
    )
    bucket = s3.make_bucket("no-token")
    s3.put_many(bucket, {"s.zarr/a": b"1", "s.zarr/b": b"2"})
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.op == "list", "answer", rewrite=lambda _: page))
        with pytest.raises(StoreAccessError, match="truncated"):
            url_digest(f"s3://{bucket}/s.zarr")


def test_a_folder_listing_truncated_without_a_token_is_an_error(s3):
    """The same for the listings of one "folder" (a journal's markers, a prediction's done
    units, the label values collected): a server answering ListObjectsV2 as V1 (truncated,
    a ``NextMarker``, no token) had the names past the first page silently left out."""
    from curated.objstore import names_in

    bucket = s3.make_bucket("no-token-folder")
    page = _page(
        f"<ListBucketResult><Name>{bucket}</Name><Prefix>s.zarr/f/</Prefix><KeyCount>1</KeyCount>"
        "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
        "<NextMarker>s.zarr/f/a</NextMarker>"
        "<Contents><Key>s.zarr/f/a</Key><Size>1</Size></Contents></ListBucketResult>"
    )
    s3.put_many(bucket, {"s.zarr/f/a": b"1", "s.zarr/f/b": b"2", "s.zarr/f/c/d": b"3"})
    url = f"s3://{bucket}/s.zarr"
    assert open_sink(url).listdir("f") == ["a", "b", "c"]
    assert names_in(f"{url}/f") == {"a", "b", "c"}
    assert open_sink(url).listdir("nothing") == []
    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lambda s: s.op == "list", "answer", rewrite=lambda _: page, times=2))
        with pytest.raises(StoreAccessError, match="truncated"):
            open_sink(url).listdir("f")
        with pytest.raises(StoreAccessError, match="truncated"):
            names_in(f"{url}/f")


@pytest.mark.parametrize(("marker", "asked"), [("", 1), ("s.zarr/k", 2)], ids=["none", "same"])
def test_a_multipart_upload_listing_that_never_advances_ends(s3, marker, asked):
    """A ListMultipartUploads page that says "truncated" and hands back no markers (the
    first page again) or the same ones each time was asked for again forever (a stuck
    re-run): the cleanup stops with an error instead."""
    bucket = s3.make_bucket(f"uploads-loop-{asked}")
    page = _page(
        f"<ListMultipartUploadsResult><Bucket>{bucket}</Bucket><KeyMarker></KeyMarker>"
        f"<UploadIdMarker></UploadIdMarker><NextKeyMarker>{marker}</NextKeyMarker>"
        f"<NextUploadIdMarker>{marker and 'u'}</NextUploadIdMarker><MaxUploads>1000</MaxUploads>"
        "<IsTruncated>true</IsTruncated></ListMultipartUploadsResult>"
    )
    with fault_proxy(s3) as proxy:
        proxy.add(
            Fault(lambda s: s.op == "list-uploads", "answer", rewrite=lambda _: page, times=5)
        )
        with pytest.raises(StoreAccessError, match="repeats itself"):
            open_sink(f"s3://{bucket}/s.zarr").abort_uploads()
        assert len(proxy.ops("list-uploads")) == asked


@pytest.mark.parametrize("name", ["my data+1 100%.ome.zarr", "ü ñ/é+%2F.ome.zarr"])
def test_a_store_whose_name_needs_url_encoding_converts_and_digests(s3, source, name):
    """Spaces, ``+``, ``%`` and non-ASCII in the store's key: botocore asks for listings with
    ``EncodingType=url`` and decodes them; the store holds the local store's bytes under
    exactly that name, and its digest is the local one."""
    from curated.objstore import url_digest

    bucket = s3.make_bucket(f"enc-{len(name)}")
    url = f"s3://{bucket}/{name}"
    with fault_proxy(s3) as proxy:
        res = convert_to_ome_zarr(source[0], url, **PARAMS)
        bad = [s.query for s in proxy.ops("list") if s.query.get("encoding-type") != ["url"]]
        assert not bad, bad
    assert res.status == "ok"
    assert s3.objects(bucket, name) == local_files(source[1])
    assert url_digest(url) == source[2].details["store_digest"]
    again = convert_to_ome_zarr(source[0], url, **PARAMS)  # recognised as done
    assert again.status == "notneeded"


@pytest.mark.parametrize(
    "body",
    [b"<html><body>502 Bad Gateway</body></html>", b"oops\n" * (4 * MIB // 5)],
    ids=["html", "huge"],
)
def test_an_error_body_that_is_not_xml_is_one_line(s3, body):
    bucket = s3.make_bucket(f"nonxml-{len(body)}")
    with fault_proxy(s3, AWS_MAX_ATTEMPTS="1") as proxy:
        proxy.add(Fault(lambda s: s.method == "PUT", "status", status=400, body=body, times=99))
        with pytest.raises(StoreAccessError) as err:
            open_sink(f"s3://{bucket}/x").put("k", b"v")
    text = str(err.value)
    assert "\n" not in text and len(text) < 1000


@pytest.mark.parametrize("lie", ["nothing", "shorter"])
def test_a_put_answered_200_but_not_stored_fails_and_the_rerun_repairs_it(s3, source, lie):
    """A store that answers a shard's PUT ``200 OK`` and keeps nothing (or fewer bytes than
    sent, its checksum ignored): the conversion fails, the store is never marked finished
    (zarr would read the hole as fill values), and a re-run writes the shard again."""
    from curated.errors import ConversionError
    from curated.images.store import is_incomplete

    bucket = s3.make_bucket(f"lying-put-{lie}")
    url = f"s3://{bucket}/stack.ome.zarr"
    client = s3.client()

    def lying(seen) -> bool:
        return seen.method == "PUT" and seen.key.endswith("/0/c/0/1/1")

    def store_short(_: bytes) -> bytes:
        if lie == "shorter":
            client.put_object(Bucket=bucket, Key="stack.ome.zarr/0/c/0/1/1", Body=b"short")
        return b""

    with fault_proxy(s3) as proxy:
        proxy.add(Fault(lying, "answer", rewrite=store_short))
        with pytest.raises(ConversionError, match=r"0/c/0/1/1.*did not keep") as err:
            convert_to_ome_zarr(source[0], url, **PARAMS)
        assert proxy.faults[0].hits == 1
    assert url in str(err.value)
    assert is_incomplete(url)
    res = convert_to_ome_zarr(source[0], url, **PARAMS)
    assert res.status == "ok" and res.details["resumed"]
    assert s3.objects(bucket, "stack.ome.zarr") == local_files(source[1])
    assert res.details["store_digest"] == source[2].details["store_digest"]


@pytest.mark.parametrize("lie", ["head-size", "short-piece"])
def test_a_store_digest_hashes_the_listed_object_or_fails(s3, lie):
    """``log --verify --files`` re-hashes a store's objects. A HEAD answering another size
    than the listing (a proxy dropping it gave 0) made it hash another object than the
    one listed: a false "changed"; a ranged GET answering fewer bytes than asked, under a
    Content-Length that agrees, gave a wrong digest. Now the listed size is read, and a
    piece of another length is an error."""
    from curated.objstore import url_digest

    bucket = s3.make_bucket(f"digest-{lie}")
    url = f"s3://{bucket}/s.zarr"
    s3.put_many(bucket, {"s.zarr/zarr.json": b"{}", "s.zarr/0/c/0": b"x" * 5000})
    right = url_digest(url)
    with fault_proxy(s3) as proxy:
        if lie == "head-size":
            proxy.add(Fault(lambda s: s.method == "HEAD", "rewrite", rewrite=bytes, times=99))
            assert url_digest(url) == right
        else:
            proxy.add(Fault(lambda s: s.op == "get", "rewrite", rewrite=lambda b: b[:-1], times=99))
            with pytest.raises(StoreAccessError, match="answered 4999 bytes"):
                url_digest(url)


def test_final_metadata_acknowledged_but_not_kept_fails_and_the_rerun_finishes(s3, source):
    """The store's final zarr.json (its completion mark) answered ``200 OK`` and not kept:
    the conversion reported ok with a digest over a store still marked unfinished, which
    every later run refused as "already exists". Now it fails, and a re-run finishes it."""
    from curated.errors import ConversionError
    from curated.images.store import is_incomplete

    bucket = s3.make_bucket("lying-meta")
    url = f"s3://{bucket}/stack.ome.zarr"
    puts = []

    def final_metadata(seen) -> bool:
        if seen.method == "PUT" and seen.key == f"{bucket}/stack.ome.zarr/zarr.json":
            puts.append(seen)
            return len(puts) == 2  # the first is the unfinished group's, in begin()
        return False

    with fault_proxy(s3) as proxy:
        proxy.add(Fault(final_metadata, "answer", rewrite=lambda _: b""))
        with pytest.raises(ConversionError, match="zarr.json") as err:
            convert_to_ome_zarr(source[0], url, **PARAMS)
        assert proxy.faults[0].hits == 1
    assert url in str(err.value)
    assert is_incomplete(url)
    res = convert_to_ome_zarr(source[0], url, **PARAMS)
    assert res.status == "ok"
    assert s3.objects(bucket, "stack.ome.zarr") == local_files(source[1])
    assert res.details["store_digest"] == source[2].details["store_digest"]


def test_a_prefix_is_no_object_and_asking_costs_one_request(s3):
    """An object store has no folders: ``…/labels`` with objects under ``labels/`` is no
    file (s3fs's ``info`` called it one, of size 0), and asking whether a key exists is
    one HEAD (it was a HEAD and two LISTs for every key not there)."""
    from curated.objstore import StorePath

    bucket = s3.make_bucket("no-folders")
    s3.put_many(bucket, {"s/labels/x/zarr.json": b"{}", "s/zarr.json": b"{}"})
    with fault_proxy(s3) as proxy:
        sink = open_sink(f"s3://{bucket}/s")
        assert sink.size("zarr.json") == 2
        assert sink.size("labels") is None and not sink.exists(".zgroup")
        assert not StorePath(f"s3://{bucket}/s/labels").is_file()
        assert StorePath(f"s3://{bucket}/s/labels").is_dir()
        assert [s.op for s in proxy.seen] == ["head", "head", "head", "head", "list"]


@pytest.mark.parametrize("name", ["scans#2.ome.zarr", "scans?v=2.ome.zarr"])
def test_a_store_name_with_hash_or_question_mark_is_written_under_that_name(s3, source, name):
    """``#`` and ``?`` are characters of S3 keys. Read as a URL's fragment or query, the
    store ``s3://B/scans#2.ome.zarr`` went to ``s3://B/scans``, another store's place
    (with ``--overwrite``, deleting it)."""
    bucket = s3.make_bucket(f"hash-{name.count('#')}")
    s3.put_many(bucket, {"scans/zarr.json": b"{}", "scans/notes.txt": b"someone else's"})
    url = f"s3://{bucket}/{name}"
    res = convert_to_ome_zarr(source[0], url, overwrite=True, **PARAMS)
    assert res.status == "ok" and res.path == url
    assert s3.objects(bucket, name) == local_files(source[1])
    assert s3.objects(bucket, "scans") == {"zarr.json": b"{}", "notes.txt": b"someone else's"}
