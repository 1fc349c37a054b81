"""`curated bag --fetch-base s3://…`: a holey bag whose fetch.txt points into an object
store (moto on 127.0.0.1) holding a copy of the workspace; every listed object is there
with the size and digest the manifests give."""

from __future__ import annotations

import hashlib

import s3_server
from test_bag_helpers import build_workspace

from curated.objstore import open_sink
from curated.package import make_bag, validate_bag

s3 = s3_server.s3  # the fixture: an S3 server on 127.0.0.1


def test_fetch_urls_point_into_the_object_store(s3, tmp_path):
    ws = build_workspace(tmp_path / "ws")
    bucket = s3.make_bucket("institutional")
    base = f"s3://{bucket}/datasets/hela"
    mirror = open_sink(base)
    for path in sorted(ws.root.rglob("*")):  # the institution's copy of the workspace
        if path.is_file():
            mirror.put(path.relative_to(ws.root).as_posix(), path.read_bytes())
    bag = tmp_path / "bag"
    result = make_bag(ws, bag, fetch_base=base + "/", fetch_min_size=1024)
    assert result.details["fetch"] >= 1
    manifest = {
        rel: digest
        for digest, rel in (
            line.split(None, 1) for line in (bag / "manifest-sha256.txt").read_text().splitlines()
        )
    }
    for line in (bag / "fetch.txt").read_text().splitlines():
        url, size, rel = line.split(" ", 2)
        assert url.startswith(base + "/") and not (bag / rel).exists()
        data = open_sink(url.rsplit("/", 1)[0]).get(url.rsplit("/", 1)[1])
        assert len(data) == int(size)
        assert hashlib.sha256(data).hexdigest() == manifest[rel]
    assert validate_bag(bag, allow_holes=True).ok
