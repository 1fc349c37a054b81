"""Where a store's bytes go: a local folder or an S3-compatible object store, behind one small interface.

The shard writer, the store's life cycle (:mod:`curated.images.store`) and the
shard reader only ever ``put``/``get``/``list``/``delete`` keys (``/``-separated
paths relative to the store root) through a :class:`Sink`:

- :class:`LocalSink` keeps POSIX atomicity: every object is written to a temporary
  file in the store's progress journal and renamed into place (``os.replace``), so a
  kill leaves the old object or the new one, never half.
- :class:`S3Sink` writes ``s3://bucket/prefix`` through fsspec's ``s3fs`` (the store
  layer zarr-python itself uses for ``s3://`` URLs). An S3 ``PUT`` is atomic by
  itself: an object appears whole or not at all. Credentials, region and endpoint
  come only from the standard AWS variables and profiles (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
  ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``~/.aws``), resolved by botocore; curated
  never reads, stores or logs them, and refuses URLs that carry them.

Errors of the object store become one-line :class:`~curated.errors.StoreAccessError`
messages (missing bucket, access denied, no credentials, unreachable endpoint).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from curated._io import naming
from curated.errors import InputError

SCHEMES = ("s3://",)
"""URL schemes of object stores curated writes to."""
WORKING_FOLDERS = frozenset({".curated-progress", ".curated-predict"})
"""Top-level working folders no digest covers (see :mod:`curated.provenance.digest`)."""
JOURNAL = ".curated-progress"
"""A store's progress journal (plan, completion markers): working state inside the store."""
TMP = f"{JOURNAL}/tmp"
"""Where a local sink stages objects before renaming them into place."""
KEY_ID_MIN = 16
"""Shortest access key id registered as a secret (AWS's are 20 characters)."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for an object store's endpoint to accept a connection."""
PIECE = 4 << 20
"""Bytes read at once when an object is hashed (bounded memory for big shards)."""


STAGED = "curated-shard-"
"""Name prefix of the local files objects are staged in before their upload
(``curated-shard-<pid>-…`` in the temporary folder)."""
STALE_AFTER = 3600
"""Seconds after its last write that a staged file of a process no longer running is removed."""


class StoreAccessError(InputError):
    """The object store cannot be used (no bucket, no access, not reachable)."""


def is_url(dest: object) -> bool:
    """Whether ``dest`` names an object store (``s3://…``) rather than a local path."""
    return isinstance(dest, str) and dest.lower().startswith(SCHEMES)


class StorePath(str):
    """An ``s3://`` location with the few :class:`pathlib.Path` operations store code uses
    (``/``, ``name``, ``exists``, ``is_file``, ``read_text``, ``touch``, ``mkdir``), so that
    code written for folders also works on object stores. It is its URL as a string."""

    def __new__(cls, url: str) -> StorePath:
        guard_redirects()  # zarr may open this URL by itself
        return super().__new__(cls, url.rstrip("/"))

    def __truediv__(self, part: str | Path) -> StorePath:
        return StorePath(f"{self}/{str(part).strip('/')}")

    @property
    def name(self) -> str:
        return self.rsplit("/", 1)[-1]

    @property
    def parent(self) -> StorePath:
        return StorePath(self.rsplit("/", 1)[0])

    def _in_parent(self) -> tuple[S3Sink, str]:
        return _cached_sink(str(self.parent)), self.name

    def is_file(self) -> bool:
        sink, key = self._in_parent()
        return sink.size(key) is not None

    def is_dir(self) -> bool:
        return _cached_sink(str(self)).has_objects()

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def read_bytes(self) -> bytes:
        sink, key = self._in_parent()
        return sink.get(key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def touch(self) -> None:
        sink, key = self._in_parent()
        sink.put(key, b"")

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        """The object's bytes: ``text``, in one PUT (atomic on an object store)."""
        sink, key = self._in_parent()
        sink.put(key, text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        sink, key = self._in_parent()
        sink.delete(key)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object stores have no folders, only keys."""


def refuse_url_out(out: str | Path | None) -> None:
    """Refuse an ``s3://`` URL as the folder of files written with local-file writers (reports,
    tables, pictures): ``Path("s3://B/r")`` is the local folder ``./s3:/B/r``, so the files
    went there, never into the store, and were reported as written."""
    if is_url(out):
        msg = (
            "is an object store URL; these files are written to a local folder (or the "
            "workspace): give a local --out"
        )
        raise InputError(msg, path=str(out), field="out")


def local_only(location: str | Path) -> Path:
    """``location`` as a local :class:`~pathlib.Path`; an ``s3://`` URL is refused by name.

    For the steps that read an image with local-file readers: ``Path("s3://B/x")`` is the
    local ``./s3:/B/x``, which was then reported as "does not exist" under a name the user
    never gave."""
    if is_url(location):
        msg = (
            "is an object store URL; this step reads a local OME-Zarr image: copy it to a "
            "local folder first (e.g. `aws s3 sync URL FOLDER`). `curated convert`, "
            "`labels add` and `segment predict` read and write s3:// images"
        )
        raise InputError(msg, path=str(location), field="image")
    return Path(location)


def as_path(location: str | Path) -> Path | StorePath:
    """A :class:`StorePath` for an ``s3://`` URL, else a :class:`pathlib.Path`."""
    if isinstance(location, StorePath):
        return location
    return StorePath(str(location)) if is_url(location) else Path(location)


def remove_tree(location: str | Path) -> None:
    """Remove a folder, or every object under an ``s3://`` prefix (missing: nothing to do)."""
    if is_url(location):
        open_sink(str(location)).delete_prefix("")
    else:
        shutil.rmtree(location, ignore_errors=True)


def names_in(location: str | Path) -> set[str]:
    """The names directly inside a folder or an ``s3://`` prefix (none when it does not exist):
    one listing, where asking about each name would be one request per name on an object store."""
    if is_url(location):
        return set(open_sink(str(location)).listdir(""))
    try:
        return set(os.listdir(location))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def join(root: str | Path, *parts: str) -> str | Path:
    """``root/parts…`` for a local path (a :class:`Path`) or an object store URL (a ``str``)."""
    if is_url(root):
        return "/".join([str(root).rstrip("/"), *(p.strip("/") for p in parts if p)])
    return Path(root).joinpath(*parts)


def display(dest: str | Path) -> str:
    """How ``dest`` appears in messages and the curator log (never with credentials)."""
    return str(dest)


class Sink(Protocol):
    """Keyed bytes under one store root."""

    url: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_many(self, keys: list[str]) -> list[bytes]: ...
    def get_range(self, key: str, start: int, length: int) -> bytes: ...
    def size(self, key: str) -> int | None: ...
    def exists(self, key: str) -> bool: ...
    def listdir(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def root_exists(self) -> bool: ...
    def abort_uploads(self) -> int: ...
    def staging(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...
    def files(self) -> Iterator[tuple[str, int]]: ...
    def zarr_store(self) -> Any: ...


class LocalSink:
    """A store in a local folder; every object is written to a temporary file, then renamed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def _tmp(self) -> Path:
        tmp = self.root / TMP
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp / uuid.uuid4().hex

    def put(self, key: str, data: bytes) -> None:
        final = self._path(key)
        if not (self.root / JOURNAL).is_dir():
            # a finished store (e.g. its labels group gaining a name): no journal to stage in
            from curated._io import atomic_write_bytes

            atomic_write_bytes(final, data)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp()
        try:
            tmp.write_bytes(data)
            os.replace(tmp, final)  # a kill never leaves half an object
        except OSError as exc:
            raise naming(exc, final) from None
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def staging(self, key: str) -> Iterator[IO[bytes]]:
        """A file to write ``key``'s bytes into; it becomes ``key`` only when the block ends without error."""
        tmp = self._tmp()
        try:
            with open(tmp, "wb") as fh:
                yield fh
            final = self._path(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            raise naming(exc, self._path(key)) from None
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def get_many(self, keys: list[str]) -> list[bytes]:
        return [self.get(k) for k in keys]

    def get_range(self, key: str, start: int, length: int) -> bytes:
        fd = os.open(self._path(key), os.O_RDONLY)
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def listdir(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        return sorted(os.listdir(folder)) if folder.is_dir() else []

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=bool(prefix))
        elif path.exists() or path.is_symlink():
            path.unlink()

    def root_exists(self) -> bool:
        return self.root.exists() or self.root.is_symlink()

    def abort_uploads(self) -> int:
        """Nothing to do: a folder's staged files lie in the journal and go with it."""
        return 0

    def files(self) -> Iterator[tuple[str, int]]:
        from curated.provenance.digest import iter_tree

        for rel, path in iter_tree(self.root):
            yield rel, path.stat().st_size

    def zarr_store(self) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(str(self.root))


class S3Sink:
    """A store under ``s3://bucket/prefix`` in an S3-compatible object store (through s3fs)."""

    def __init__(self, url: str) -> None:
        # the key is everything after the bucket: "#" and "?" are characters of S3 keys,
        # not a fragment or a query (urlsplit would put a store "a#b" at "a")
        netloc, _, path = url.split("://", 1)[-1].partition("/")
        parts = urlsplit(f"s3://{netloc}")
        if parts.username or parts.password or "@" in netloc:
            msg = "credentials in the URL are refused: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead"
            raise InputError(msg, path=f"s3://{parts.hostname or ''}/{path}")
        self.bucket = netloc
        self.prefix = path.strip("/")
        if not self.bucket:
            msg = "names no bucket; write s3://BUCKET/PATH"
            raise InputError(msg, path=url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._fs: Any = None

    # Pickled to dask workers without the connection; each process opens its own.
    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _filesystem()
        return self._fs

    def _key(self, key: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError as exc:
            if _no_bucket(exc):
                raise _access_error(exc, self) from None
            raise
        except StoreAccessError:
            raise
        except Exception as exc:
            raise _access_error(exc, self) from None

    def check(self) -> None:
        """Fail with a one-line error unless the store's prefix can be listed with these
        credentials (a missing bucket, refused access): one LIST of one key under the prefix.

        Not ``HEAD bucket``: it needs the right to list the whole bucket, which a policy
        letting each user list only their own prefix (``s3:prefix`` conditions) refuses.
        """
        self.has_objects()

    def put(self, key: str, data: bytes) -> None:
        self._call(self.fs.pipe_file, self._key(key), bytes(data))

    @contextlib.contextmanager
    def staging(self, key: str) -> Iterator[IO[bytes]]:
        """A local temporary file uploaded as ``key`` (one atomic PUT, or multipart) when the block ends."""
        drop_stale_staging()
        fd, tmp = tempfile.mkstemp(prefix=f"{STAGED}{os.getpid()}-")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            self._call(self.fs.put_file, tmp, self._key(key))
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        return bytes(self._call(self.fs.cat_file, self._key(key)))

    def get_many(self, keys: list[str]) -> list[bytes]:
        """Several small objects at once (concurrent requests: one round trip's wait, not N)."""
        if not keys:
            return []
        got = self._call(self.fs.cat, [self._key(k) for k in keys], on_error="raise")
        return [bytes(got[self._key(k)]) for k in keys]

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return bytes(self._call(self.fs.cat_file, self._key(key), start=start, end=start + length))

    def size(self, key: str) -> int | None:
        """The size of the object ``key`` (``None``: no such object). One HEAD: never a
        "folder" of objects under ``key/`` (s3fs's ``info`` lists for one when the HEAD
        finds nothing, two more requests, and calls it a file of size 0)."""
        path = "/".join(p for p in (self.prefix, key) if p)
        try:
            got = self._call(self.fs.call_s3, "head_object", Bucket=self.bucket, Key=path)
        except FileNotFoundError:
            return None
        return int(got["ContentLength"])

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def listdir(self, prefix: str) -> list[str]:
        """The names directly under ``prefix``, every page of its listing (see :meth:`_pages`)."""
        base = self._in_bucket(prefix)
        names: set[str] = set()
        for page in self._pages(base, "/"):
            names.update(sub["Prefix"][len(base) : -1] for sub in page.get("CommonPrefixes") or [])
            names.update(obj["Key"][len(base) :] for obj in page.get("Contents") or [])
        names.discard("")  # a folder marker ("prefix/"), no object
        return sorted(names)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call(self.fs.rm_file, self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        """Delete the object ``prefix`` and every object under it, one LIST page at a time.

        Never a whole bucket: a store is a prefix in one, never the bucket itself."""
        if not self.prefix and not prefix.strip("/"):
            msg = "refusing to delete every object in the bucket; a store is a path in a bucket (s3://BUCKET/NAME)"
            raise InputError(msg, path=self.url)
        if prefix:
            self.delete(prefix)
        for page in self._pages(self._in_bucket(prefix)):
            keys = [f"{self.bucket}/{obj['Key']}" for obj in page.get("Contents") or []]
            if keys:
                self._call(self.fs.rm, keys)
        self.fs.invalidate_cache()

    def _pages(self, base: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        """The pages (up to 1000 keys each) of a LIST of the keys that start with ``base``.

        Continuation tokens are followed one page at a time; a store answering the same
        token again (it would list forever), or a truncated page without a token (the rest
        could not be asked for: a digest over what was listed would describe another
        store), is an error.
        """
        more: dict[str, str] = {"Delimiter": delimiter} if delimiter else {}
        seen: set[str] = set()
        while True:
            page = self._call(
                self.fs.call_s3, "list_objects_v2", Bucket=self.bucket, Prefix=base, **more
            )
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                msg = f"the object store's listing of {self.url} is truncated without a continuation token (the rest cannot be listed)"
                raise StoreAccessError(msg, path=self.url)
            self._advancing(token, seen)
            more["ContinuationToken"] = token

    def _advancing(self, token: object, seen: set[Any]) -> None:
        """Refuse a listing's next-page token seen before (the listing would never end)."""
        if token in seen:
            msg = f"the object store's listing of {self.url} repeats itself (continuation token seen before)"
            raise StoreAccessError(msg, path=self.url)
        seen.add(token)

    def _walk(self, base: str, skip: frozenset[str] = frozenset()) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object under ``base`` (a key prefix ending in ``/``), as a
        folder walk yields them: depth first, each "folder"'s names sorted, so the order is
        that of the keys split at ``/`` (as :func:`curated.provenance.digest.iter_tree`) while only one folder's names are held.
        Top-level names in ``skip`` are not walked."""
        entries: list[tuple[str, bool, str, int]] = []  # name, is folder, key or prefix, size
        for page in self._pages(base, "/"):
            for sub in page.get("CommonPrefixes") or []:
                name = sub["Prefix"][len(base) : -1]
                if name not in skip:
                    entries.append((name, True, sub["Prefix"], 0))
            for obj in page.get("Contents") or []:
                name = obj["Key"][len(base) :]
                if name and name not in skip:  # "" is a folder marker ("prefix/"), no object
                    entries.append((name, False, obj["Key"], int(obj.get("Size") or 0)))
        entries.sort(key=lambda e: (e[0], e[1]))
        for _, folder, key, size in entries:
            if folder:
                yield from self._walk(key)
            else:
                yield key, size

    def _in_bucket(self, prefix: str) -> str:
        """The key prefix (within the bucket) of everything under ``prefix``: ``…/`` or ``""``."""
        path = "/".join(p for p in (self.prefix, prefix.strip("/")) if p)
        return path + "/" if path else ""

    def has_objects(self, prefix: str = "") -> bool:
        """Whether at least one object lies under ``prefix``: one LIST of one key, however many there are."""
        got = self._call(
            self.fs.call_s3,
            "list_objects_v2",
            Bucket=self.bucket,
            Prefix=self._in_bucket(prefix),
            MaxKeys=1,
        )
        return bool(got.get("Contents"))

    def root_exists(self) -> bool:
        return self.has_objects()  # also the access check (see check())

    def abort_uploads(self) -> int:
        """Abort the multipart uploads left unfinished under the store; return how many.

        A writer killed part way through a large object's multipart upload leaves its parts
        on the store, invisible to listings and billed for until aborted. Called where no
        writer of this store can be running (a re-run or ``--overwrite`` starting, a run
        that finished). A store whose credentials may not list uploads is left as it is.
        """
        marker: dict[str, str] = {}
        seen: set[Any] = {("", "")}  # markers that would list the first page again
        aborted = 0
        while True:
            try:
                page = self.fs.call_s3(
                    "list_multipart_uploads",
                    Bucket=self.bucket,
                    Prefix=self._in_bucket(""),
                    **marker,
                )
            except PermissionError:  # no s3:ListBucketMultipartUploads: not ours to clean
                return aborted
            except Exception as exc:
                raise _access_error(exc, self) from None
            for upload in page.get("Uploads") or []:
                with contextlib.suppress(FileNotFoundError):  # aborted meanwhile
                    self._call(self.fs.abort_mpu, self.bucket, upload["Key"], upload["UploadId"])
                aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            marker = {
                "KeyMarker": page.get("NextKeyMarker") or "",
                "UploadIdMarker": page.get("NextUploadIdMarker") or "",
            }
            self._advancing((marker["KeyMarker"], marker["UploadIdMarker"]), seen)

    def files(self) -> Iterator[tuple[str, int]]:
        """Every object but the working folders', in path-part order, listed as it is walked."""
        base = self._in_bucket("")
        for key, size in self._walk(base, skip=WORKING_FOLDERS):
            yield key[len(base) :], size

    def zarr_store(self) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, storage_options=_storage_options(), read_only=False)


def _config_kwargs() -> dict[str, Any]:
    """botocore settings of every s3fs connection curated makes: a connect timeout, and an
    HTTP session that never follows a redirect (see :mod:`curated._s3session`)."""
    from curated._s3session import NoRedirectSession

    return {"connect_timeout": CONNECT_TIMEOUT, "http_session_cls": NoRedirectSession}


@functools.cache
def drop_stale_staging() -> int:
    """Remove the staged files that killed processes left (once per process); return how many.

    A process killed while it stages a shard (``kill -9``: no ``finally`` runs) leaves the
    file in the temporary folder, a shard's size each. A file is stale when the process in
    its name no longer runs and it was last written over :data:`STALE_AFTER` seconds ago
    (a process of another PID namespace sharing the folder may reuse the number).
    """
    removed = 0
    now = time.time()
    for path in Path(tempfile.gettempdir()).glob(f"{STAGED}*-*"):
        pid = path.name[len(STAGED) :].split("-", 1)[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_AFTER:
                path.unlink()
                removed += 1
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


def _storage_options() -> dict[str, Any]:
    """s3fs settings: timeouts and no redirects; credentials, region and endpoint are botocore's to find."""
    # no listings cache: several processes write one store, and a listing must show them all
    return {"config_kwargs": _config_kwargs(), "use_listings_cache": False}


@functools.cache
def guard_redirects() -> None:
    """Make every s3fs filesystem of this process refuse redirects, also those zarr opens
    for an ``s3://`` URL by itself (``zarr.open_array("s3://…")``).

    Through fsspec's configuration (``fsspec.config.conf``, its defaults for a protocol's
    options): settings a caller gave there are kept; only the HTTP session is added.
    """
    try:
        import fsspec.config
    except ImportError:  # pragma: no cover - fsspec comes with zarr
        return
    with contextlib.suppress(ImportError):  # without aiobotocore there is no s3fs to guard
        options = fsspec.config.conf.setdefault("s3", {})
        config = dict(options.get("config_kwargs") or {})
        for key, value in _config_kwargs().items():
            config.setdefault(key, value)
        options["config_kwargs"] = config


def _filesystem() -> Any:
    try:
        import s3fs
    except ImportError:
        msg = "writing to s3:// needs the s3 extra: pip install 'curated[s3]'"
        raise InputError(msg) from None
    from curated._secrets import register_secret

    # never written by curated; registered so that no server echo or error text carries them
    # into the curator log or a receipt
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        register_secret(os.environ.get(name))
    # the key id too (it names the account's key), when it cannot be an ordinary word: a
    # self-hosted store's "admin" would otherwise be redacted out of every path and message
    key_id = os.environ.get("AWS_ACCESS_KEY_ID") or ""
    if len(key_id) >= KEY_ID_MIN:
        register_secret(key_id)
    guard_redirects()
    return s3fs.S3FileSystem(**_storage_options())


def _no_bucket(exc: BaseException) -> bool:
    return "NoSuchBucket" in repr(exc) or "bucket does not exist" in str(exc).lower()


def _redirected(exc: BaseException, text: str) -> bool:
    """Whether the store answered with a redirect (s3fs turns a ``3xx`` into ``OSError(EREMCHG)``)."""
    code = getattr(errno, "EREMCHG", None)
    return "Redirect" in text or (code is not None and getattr(exc, "errno", None) == code)


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def _access_error(exc: BaseException, sink: S3Sink) -> StoreAccessError:
    """One line saying what is wrong with the object store and what to do (never a credential)."""
    text = f"{type(exc).__name__} {exc!r}"
    bucket = f"s3://{sink.bucket}"
    if _no_bucket(exc):
        msg = f"bucket {sink.bucket!r} does not exist at {_endpoint()}; create it first or correct the URL"
    elif "NoCredentials" in text or "Unable to locate credentials" in text:
        msg = f"no credentials for {bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    elif isinstance(exc, PermissionError) or any(
        code in text
        for code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden")
    ):
        msg = f"access to {bucket} was refused at {_endpoint()}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's permissions"
    elif getattr(exc, "errno", None) == errno.EBUSY or "SlowDown" in text:
        msg = f"the object store at {_endpoint()} kept throttling the requests for {sink.url} (SlowDown) after retries; re-run later (finished work is kept) or with fewer --workers"
    elif "ChecksumError" in text or "checksum" in text.lower() and "match" in text.lower():
        msg = f"the object store at {_endpoint()} sent bytes for {sink.url} that do not match their checksum (damaged on the way or on the store); re-run, and check the store if it recurs"
    elif _redirected(exc, text):
        msg = f"the object store at {_endpoint()} answered the request for {sink.url} with a redirect, which curated does not follow (credentials go only to the endpoint given): set AWS_ENDPOINT_URL (or AWS_REGION) to the bucket's own endpoint"
    elif any(
        word in text
        for word in ("EndpointConnectionError", "ConnectTimeout", "ClientConnector", "Connect")
    ) or isinstance(exc, ConnectionError | TimeoutError):
        msg = f"cannot reach the object store at {_endpoint()}: check AWS_ENDPOINT_URL and the network"
    else:
        msg = f"the object store refused the request for {sink.url} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    from curated._secrets import scrub

    return StoreAccessError(scrub(msg), path=sink.url)


@functools.lru_cache(maxsize=64)
def _cached_sink(url: str) -> S3Sink:
    return S3Sink(url)


def open_sink(root: str | Path) -> LocalSink | S3Sink:
    """The sink for a store root: an ``s3://`` URL or a local folder."""
    if is_url(root):
        return _cached_sink(str(root).rstrip("/"))
    return LocalSink(root)


def sha256_of(sink: LocalSink | S3Sink, key: str) -> str:
    """The hex sha256 of one object (read in one piece: used for small metadata documents)."""
    if isinstance(sink, LocalSink):
        from curated.provenance.digest import sha256_file

        return sha256_file(sink.root / key)
    return hashlib.sha256(sink.get(key)).hexdigest()


def url_digest(url: str, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The :func:`curated.provenance.digest.digest_tree` digest of the objects under ``url``
    (``None`` when there are none); top-level names in ``exclude`` are left out.

    Every object is read once, in pieces (bounded memory), as ``log --verify --files``
    re-reads a local store.
    """
    from curated.provenance.digest import TreeHasher

    sink = open_sink(url)
    hasher = TreeHasher()
    for rel, size in sink.files():
        if rel.split("/", 1)[0] in exclude:
            continue
        hasher.add(rel, size, _sha256_streamed(sink, rel, size))
    return hasher.result().digest if hasher.files else None


def _sha256_streamed(sink: LocalSink | S3Sink, key: str, size: int) -> str:
    """The sha256 of the ``size`` bytes the listing gave ``key``: no HEAD per object (one
    that answers another size, or none, hashed another object than the one listed), and a
    piece answered shorter or longer than asked is an error, not another digest."""
    if isinstance(sink, LocalSink):
        return sha256_of(sink, key)
    h = hashlib.sha256()
    for start in range(0, size, PIECE):
        want = min(PIECE, size - start)
        piece = sink.get_range(key, start, want)
        if len(piece) != want:
            msg = f"the object store answered {len(piece)} bytes of {key} where {want} were asked for (at byte {start} of the {size} listed)"
            raise StoreAccessError(msg, path=sink.url)
        h.update(piece)
    return h.hexdigest()


def url_output_problem(url: str, digest: str, exclude: set[str]) -> str | None:
    """What is wrong with an object-store output the log recorded (``None``: it still matches)."""
    try:
        got = url_digest(url, exclude)
    except StoreAccessError as exc:
        return f"cannot be read ({exc.message})"
    if got is None:
        return "is missing"
    return None if got == digest else "changed since it was recorded"
