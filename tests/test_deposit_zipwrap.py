"""The zip curated wraps a zip in before Dataverse's /add (which unpacks one level)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib

import pytest

from curated.deposit.dataverse import unpacked_on_add
from curated.deposit.http import FileSlice, MultipartBody
from curated.deposit.zipwrap import crc32_of, wrapper


@pytest.mark.parametrize("zip64", [None, True])
def test_the_wrapper_holds_the_file_byte_for_byte(tmp_path, zip64):
    data = os.urandom(70_000)
    f = tmp_path / "store.ome.zarr.zip"
    f.write_bytes(data)
    assert crc32_of(f) == zlib.crc32(data)
    head, tail = wrapper("Übersicht.zip", len(data), crc32_of(f), zip64=zip64)
    with zipfile.ZipFile(io.BytesIO(head + data + tail)) as zf:
        assert zf.testzip() is None  # the CRC recorded is the bytes'
        (info,) = zf.infolist()
        assert info.filename == "Übersicht.zip"
        assert info.compress_type == zipfile.ZIP_STORED
        assert zf.read(info) == data
    if zip64:
        assert b"PK\x06\x06" in tail and b"PK\x06\x07" in tail  # the ZIP64 end records
    else:
        assert b"PK\x06\x06" not in tail


def test_large_files_get_zip64_records_by_themselves():
    head, tail = wrapper("big.zip", 5 * 2**30, 0)
    assert head[4:6] == (45).to_bytes(2, "little")  # version needed: ZIP64
    assert b"PK\x06\x06" in tail
    head, tail = wrapper("small.zip", 10, 0)
    assert head[4:6] == (20).to_bytes(2, "little") and b"PK\x06\x06" not in tail


def test_a_wrapped_multipart_body_hashes_the_file_alone(tmp_path):
    data = os.urandom(3000)
    f = tmp_path / "a.zip"
    f.write_bytes(data)
    head, tail = wrapper("a.zip", len(data), crc32_of(f))
    body = MultipartBody({"jsonData": "{}"}, "file", "a.zip", FileSlice(f), wrap=(head, tail))
    declared = len(body)
    sent = b""
    while chunk := body.read(1024):
        sent += chunk
    assert len(sent) == declared
    assert head + data + tail in sent
    assert body.hashes.result()["md5"] == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(
    ("label", "unpacked"),
    [("a.zip", True), ("A.ZIP", True), ("a.Zip", False), ("a.zip.txt", False), ("zip", False)],
)
def test_which_names_dataverse_unpacks(label, unpacked):
    # jakarta.mime.types lists the extensions "zip ZIP" for application/zip
    assert unpacked_on_add(label) is unpacked
