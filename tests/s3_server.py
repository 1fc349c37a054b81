"""An S3-compatible server on 127.0.0.1 for the tests (moto's server mode), with the
standard AWS variables pointing at it for the duration of a test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "curated-test-key",
    "AWS_SECRET_ACCESS_KEY": "curated-test-secret-value",
    "AWS_REGION": "us-east-1",
    "AWS_MAX_ATTEMPTS": "2",
}
CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_PROFILE")


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put_many(self, bucket: str, objects: dict[str, bytes]) -> None:
        """Store many objects at once, straight into moto's backend (the server runs in this
        process): thousands of keys in milliseconds, where one PUT each takes seconds."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, data in objects.items():
            backend.put_object(bucket, key, data)

    def objects(self, bucket: str, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix`` (keys relative to it) with its bytes."""
        c = self.client()
        out = {}
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) + 1 :]
                out[rel] = c.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out

    def download(self, bucket: str, prefix: str, dest: Path) -> Path:
        for rel, data in self.objects(bucket, prefix).items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        return dest


def forget_connections() -> None:
    """Drop cached sinks and s3fs instances (they hold the endpoint and credentials they were made with)."""
    import s3fs

    from curated import objstore

    objstore._cached_sink.cache_clear()
    s3fs.S3FileSystem.clear_instance_cache()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in (*values, *CLEARED)}
    for k in CLEARED:
        os.environ.pop(k, None)
    os.environ.update(values)
    forget_connections()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        forget_connections()


def local_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A fresh moto S3 server on 127.0.0.1 with AWS_* variables pointing at it."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    try:
        with environment(env):
            yield S3Server(endpoint=env["AWS_ENDPOINT_URL"], env=env)
    finally:
        server.stop()
