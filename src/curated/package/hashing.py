"""One-pass multi-algorithm hashing of payload files, placed into the bag as they are read.

Each file is read once, in :data:`BUFFER_SIZE` pieces, and fed to one hashlib
object per manifest algorithm. Placing it in the bag happens in the same step:
a hard link (no bytes copied; the bag's file *is* the workspace's file, so the
bag writer never opens it for writing), or, where the file system refuses links,
a copy written from the very buffers that are hashed. Work is handed out in
units (:class:`FolderTask`: up to :data:`FOLDER_CHUNK` files of one folder, the
manifest lines and the RO-Crate entities of files outside Zarr stores coming back
already formatted; :class:`HashTask` batches for
bag validation); with ``processes > 1`` the thread-free worker pool of
:mod:`curated._parallel` runs them with a bounded number of units in flight, so
memory does not grow with the number of files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NamedTuple
from urllib.parse import quote

from curated._parallel import WorkerDied, map_batches
from curated.errors import PackageError
from curated.package.crate import EntityRun, EntitySpec, RawEntity, entity_runs
from curated.package.names import encode_path
from curated.package.tasks import BUFFER_SIZE, FileChangedError, FolderTask
from curated.package.zarr_archive import zip_folder

BATCH_FILES = 512
BATCH_BYTES = 64 << 20
BATCH_FILES_UNSIZED = 128
"""Files of unknown size (Zarr chunks listed without ``lstat``) per batch: small enough to share out large shards."""

SUPPORTED_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")

ENTITY_HEAD = 512
"""Bytes of each file outside a store sent back for its format (``curated.curation.formats.HEAD_BYTES``)."""

# Placement modes of one payload file.
LINK = "link"  # hard link into the bag, copy when the file system refuses
COPY = "copy"  # always copy (tests; file systems where links are unwanted)
READ = "read"  # hash only: the file is already in the bag (archives) or stays outside (fetch.txt)
# Folder tasks of a Zarr store packed as one zip (see curated.package.zarr_archive).
ZIP = "zip"  # read a group of the store's files for the zip (worker)
ZIP_BEGIN = "zip-begin"  # the main process opens the store's zip
ZIP_DIR = "zip-dir"  # ... adds an empty folder entry
ZIP_END = "zip-end"  # ... writes the central directory
MAIN_ONLY = frozenset({ZIP_BEGIN, ZIP_DIR, ZIP_END})

_LINK_REFUSED = {
    errno.EXDEV,
    errno.EPERM,
    errno.EMLINK,
    errno.ENOTSUP,
    errno.EACCES,
    errno.EOPNOTSUPP,
}


class HashTask(NamedTuple):
    """One payload file to place and hash (a tuple: cheap to pickle to workers)."""

    rel: str
    """Path below ``data/`` (posix)."""
    src: str
    """Where the bytes are read from."""
    dest: str | None
    """Where they go in the bag (``None`` for :data:`READ`)."""
    size: int
    mtime_ns: int
    mode: str
    store: str | None = None
    """The Zarr store the file belongs to (passed through to the result)."""


class HashResult(NamedTuple):
    rel: str
    size: int
    digests: tuple[str, ...]
    """Hex digests in the order of the algorithms asked for."""
    linked: bool
    store: str | None = None


_buffer: bytearray | None = None
_CONSTRUCTORS = {a: getattr(hashlib, a) for a in SUPPORTED_ALGORITHMS}


def _get_buffer() -> bytearray:
    global _buffer
    if _buffer is None:
        _buffer = bytearray(BUFFER_SIZE)
    return _buffer


def _changed(task: HashTask, what: str) -> FileChangedError:
    msg = (
        f"changed while it was being bagged ({what}); a payload must be quiet during bagging: "
        "stop whatever writes to it and run the bag command again"
    )
    return FileChangedError(msg, path=task.src, details={"file": task.rel})


def hash_one(
    task: HashTask,
    algorithms: tuple[str, ...],
    on_bytes: Callable[[int], None] | None = None,
) -> HashResult:
    """Place ``task`` in the bag and hash it; refuse a file that changes meanwhile."""
    hashers = [_CONSTRUCTORS[a]() for a in algorithms]
    linked = False
    out = None
    fd = os.open(task.src, os.O_RDONLY)
    try:
        size, mtime_ns = task.size, task.mtime_ns
        if size < 0:  # not stat-ed when listed: the open file's state is the reference
            st0 = os.fstat(fd)
            size, mtime_ns = st0.st_size, st0.st_mtime_ns
        # One fstat after reading, compared with the stat taken when the payload was
        # listed, catches a change before or during the read.
        if task.mode == LINK:
            try:
                os.link(task.src, task.dest)  # type: ignore[arg-type]
                linked = True
            except OSError as exc:
                if exc.errno not in _LINK_REFUSED:
                    raise
        if task.mode == COPY or (task.mode == LINK and not linked):
            out = open(task.dest, "xb", buffering=0)  # type: ignore[arg-type]  # noqa: SIM115
        # Read exactly the listed size (no extra read to meet end-of-file: a file that
        # grew or shrank shows in the fstat below).
        read = _read_large(
            fd,
            size,
            hashers,
            out,
            None if on_bytes is None else (lambda _part, n: on_bytes(n)),
        )
        after = os.fstat(fd)
        if read != size or after.st_size != size or after.st_mtime_ns != mtime_ns:
            raise _changed(task, f"expected {size} bytes, read {read}, now {after.st_size}")
    finally:
        os.close(fd)
        if out is not None:
            out.close()
    if out is not None:
        os.utime(task.dest, ns=(after.st_atime_ns, after.st_mtime_ns))  # type: ignore[arg-type]
    return HashResult(task.rel, size, tuple(h.hexdigest() for h in hashers), linked, task.store)


def hash_batch(
    batch: list[HashTask],
    algorithms: tuple[str, ...],
    on_bytes: Callable[[int], None] | None = None,
) -> list[HashResult]:
    """Worker entry point: hash a batch in order."""
    return [hash_one(t, algorithms, on_bytes) for t in batch]


def batched(tasks: Iterable[HashTask]) -> Iterator[list[HashTask]]:
    """Group tasks into batches of at most :data:`BATCH_FILES` files / :data:`BATCH_BYTES` bytes."""
    batch: list[HashTask] = []
    nbytes = 0
    unknown = 0
    for t in tasks:
        if batch and (
            len(batch) >= BATCH_FILES
            or nbytes + t.size > BATCH_BYTES
            or unknown >= BATCH_FILES_UNSIZED
        ):
            yield batch
            batch, nbytes, unknown = [], 0, 0
        batch.append(t)
        if t.size < 0:
            unknown += 1
        else:
            nbytes += t.size
    if batch:
        yield batch


def hash_stream(
    tasks: Iterable[HashTask],
    algorithms: tuple[str, ...],
    *,
    processes: int = 1,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[HashResult]:
    """Hash ``tasks`` and yield results in the order given, with bounded memory.

    With ``processes <= 1`` everything runs here and ``on_bytes`` is called for
    every buffer read (fine-grained progress). With a pool, ``on_bytes`` is
    called once per finished file.
    """
    if processes <= 1:
        for t in tasks:
            yield hash_one(t, algorithms, on_bytes)
        return
    for _batch, results, here in map_batches(
        hash_batch,
        batched(tasks),
        processes=processes,
        args=(algorithms,),
        local_args=(on_bytes,),
    ):
        yield from (results if here else _drain(results, on_bytes))


def _drain(
    results: list[HashResult], on_bytes: Callable[[int], None] | None
) -> Iterator[HashResult]:
    for r in results:
        if on_bytes is not None:
            on_bytes(r.size)
        yield r


# ------------------------------------------------------------------ folder chunks
# For payloads of many small files (Zarr chunks) the cost is per file, not per
# byte: one task per file (pickled, sent, answered, then formatted into manifest
# lines here) left the workers idle behind the main process. A FolderTask carries
# up to FOLDER_CHUNK names of one folder; the worker opens, places, hashes and
# checks every file and sends back the manifest lines already formatted, one
# string per algorithm, so the main process only writes them. The same holds for
# the RO-Crate entities of plain files (one each: a million in a plain folder of a
# million files): the worker holds their first bytes, tells their format and sends
# back the entity text (curated.package.crate.entity_runs).

FOLDER_CHUNK = 1000
"""Names per :class:`FolderTask` (a Zarr chunk folder usually holds at most this many)."""

FOLDER_CHUNK_BYTES = 64 << 20
"""Bytes per :class:`FolderTask` where sizes are known (files outside Zarr stores)."""


class FetchSpec(NamedTuple):
    """With a holey bag: files of at least ``min_size`` bytes go to ``fetch.txt``."""

    base: str
    """Base URL without a trailing ``/``."""
    min_size: int


class FolderResult(NamedTuple):
    lines: tuple[bytes, ...]
    """Manifest lines (``<digest>  data/<encoded rel>\\n``, UTF-8), one blob per manifest algorithm."""
    fetch: bytes
    """``fetch.txt`` lines of the files left outside the bag (UTF-8)."""
    files: int
    bytes: int
    linked: int
    copied: int
    fetched: int
    entities: tuple[EntityRun | RawEntity, ...]
    """The RO-Crate entities of the files outside Zarr stores, in order: runs formatted by
    the worker (:func:`curated.package.crate.entity_runs`), and ``(rel, size, sha256,
    fetched, head)`` for each file whose format needs fido (``head``: its first
    :data:`ENTITY_HEAD` bytes, so that the main process reads no file again). Without an
    :class:`~curated.package.crate.EntitySpec`, every file comes back that way."""


class FolderFailure(NamedTuple):
    """A :class:`~curated.errors.PackageError` raised in a worker, sent back intact."""

    cls: type[PackageError]
    message: str
    path: str | None
    details: dict[str, object]

    def error(self) -> PackageError:
        return self.cls(self.message, path=self.path, details=self.details)


_URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch
"""Names that :func:`urllib.parse.quote` leaves as they are."""


def _read_exact(fd: int, size: int) -> bytes:
    """Read a small file (at most :data:`BUFFER_SIZE` bytes) in one call; a test hook point."""
    return os.read(fd, size)


def hash_folder(
    task: FolderTask,
    algorithms: tuple[str, ...],
    n_manifests: int,
    fetch: FetchSpec | None = None,
    on_bytes: Callable[[float, int], None] | None = None,
    entity_spec: EntitySpec | None = None,
) -> FolderResult:
    """Place and hash every file of ``task``; refuse a file that changes meanwhile.

    ``algorithms[:n_manifests]`` get manifest lines; ``sha256`` must be among
    ``algorithms`` when files outside stores are hashed (their RO-Crate entities).
    ``on_bytes(files, nbytes)`` is called as bytes are read (fractions of a file
    for large ones), before each file's final check. Files are opened and linked
    relative to their folder's descriptor (one path component to look up, not
    the whole path); the size and time read by ``fstat`` on opening are checked
    again after reading. With ``entity_spec``, the files' RO-Crate entities are
    formatted here too (:func:`curated.package.crate.entity_runs`, with the formats the
    task carries as settled).
    """
    constructors = [_CONSTRUCTORS[a] for a in algorithms]
    want_entities = task.store is None
    sha_i = algorithms.index("sha256") if want_entities else -1
    lines: list[list[str]] = [[] for _ in range(n_manifests)]
    fetch_lines: list[str] = []
    entities: list[tuple[str, int, str, bool, bytes, str]] = []
    nbytes = linked = copied = fetched = 0
    dest_dir, prefix, mode, srcs = task.dest_dir, task.prefix, task.mode, task.srcs
    url_prefix: str | None = None
    plain_prefix = not ("%" in prefix or "\r" in prefix or "\n" in prefix)
    tail_prefix = "  data/" + (prefix if plain_prefix else "")
    fstat, close, link, open_, rdonly = os.fstat, os.close, os.link, os.open, os.O_RDONLY
    read_exact = _read_exact
    small = BUFFER_SIZE
    fetch_min = fetch.min_size if fetch is not None and mode != READ else -1
    placing = mode != READ
    src_fd = open_(task.src_dir, rdonly | os.O_DIRECTORY)
    dest_fd = open_(dest_dir, rdonly | os.O_DIRECTORY) if placing else -1  # type: ignore[arg-type]
    try:
        for i, name in enumerate(task.names):
            # an absolute source (a followed link's target) ignores dir_fd
            src = name if srcs is None else srcs[i]
            fd = open_(src, rdonly, dir_fd=src_fd)
            out = None
            left_out = False
            try:
                st0 = fstat(fd)
                size = st0.st_size
                if placing:
                    if 0 <= fetch_min <= size:
                        left_out = True
                    elif mode == LINK:
                        try:
                            link(src, name, src_dir_fd=src_fd, dst_dir_fd=dest_fd)
                            linked += 1
                        except OSError as exc:
                            if exc.errno not in _LINK_REFUSED:
                                raise
                            out = _create(dest_dir, name)  # type: ignore[arg-type]
                    else:
                        out = _create(dest_dir, name)  # type: ignore[arg-type]
                if size <= small:
                    data = read_exact(fd, size)
                    read = len(data)
                    digests = [c(data).hexdigest() for c in constructors]
                    if out is not None:
                        out.write(data)
                    if on_bytes is not None:
                        on_bytes(1, read)
                else:
                    hashers = [c() for c in constructors]
                    read = _read_large(fd, size, hashers, out, on_bytes)
                    digests = [h.hexdigest() for h in hashers]
                    if want_entities:
                        data = os.pread(fd, ENTITY_HEAD, 0)
                after = fstat(fd)
                if read != size or after.st_size != size or after.st_mtime_ns != st0.st_mtime_ns:
                    raise _changed_file(
                        os.path.join(task.src_dir, src), prefix + name, size, read, after.st_size
                    )
            finally:
                close(fd)
                if out is not None:
                    out.close()
            if out is not None:
                copied += 1
                os.utime(name, ns=(after.st_atime_ns, after.st_mtime_ns), dir_fd=dest_fd)
            if plain_prefix and not ("%" in name or "\r" in name or "\n" in name):
                tail = tail_prefix + name + "\n"
            else:
                tail = "  data/" + encode_path(prefix + name) + "\n"
            for acc, digest in zip(lines, digests):  # noqa: B905  (lines: the first n_manifests)
                acc.append(digest + tail)
            nbytes += size
            if left_out:
                if url_prefix is None:
                    url_prefix = f"{fetch.base}/{quote(prefix, safe='/')}"  # type: ignore[union-attr]
                url = url_prefix + (name if _URL_SAFE(name) else quote(name, safe=""))
                fetch_lines.append(f"{url} {size}{tail[1:]}")
                fetched += 1
            if want_entities:
                entities.append(
                    (prefix + name, size, digests[sha_i], left_out, data[:ENTITY_HEAD], src)
                )
    finally:
        close(src_fd)
        if dest_fd >= 0:
            close(dest_fd)
    return FolderResult(
        tuple("".join(x).encode("utf-8") for x in lines),
        "".join(fetch_lines).encode("utf-8"),
        len(task.names),
        nbytes,
        linked,
        copied,
        fetched,
        _entities(task, entities, entity_spec),
    )


def _entities(
    task: FolderTask,
    files: list[tuple[str, int, str, bool, bytes, str]],
    spec: EntitySpec | None,
) -> tuple[EntityRun | RawEntity, ...]:
    if not files:
        return ()
    if spec is None:
        return tuple(f[:5] for f in files)  # type: ignore[misc]
    return entity_runs(files, spec, task.formats or {}, task.src_dir)


def hash_file_threaded(
    task: FolderTask, algorithms: tuple[str, ...], n_manifests: int
) -> FolderResult:
    """:func:`hash_folder` of a :data:`READ` task of one file, one thread per algorithm.

    For a large tag-like payload file made by the main process (the bag's RO-Crate,
    hundreds of MB at a million files) when no worker is left: hashlib lets go of the
    GIL while it hashes a buffer, so the algorithms run side by side on separate cores
    (each thread reading the file with ``pread``). The same checks as
    :func:`hash_folder`: the size and time taken on opening must hold after reading.
    No crate entity is returned.
    """
    from concurrent.futures import ThreadPoolExecutor

    if task.mode != READ or len(task.names) != 1:
        raise ValueError("hash_file_threaded takes a READ task of one file")
    name = task.names[0]
    src = os.path.join(task.src_dir, name if task.srcs is None else task.srcs[0])
    fd = os.open(src, os.O_RDONLY)
    try:
        st0 = os.fstat(fd)
        size = st0.st_size

        def digest(algorithm: str) -> tuple[str, int]:
            h = _CONSTRUCTORS[algorithm]()
            buf = bytearray(BUFFER_SIZE)
            view = memoryview(buf)
            read = 0
            while read < size:
                n = os.preadv(fd, [buf], read)
                if not n:
                    break
                h.update(view[:n])
                read += n
            return h.hexdigest(), read

        with ThreadPoolExecutor(len(algorithms)) as pool:
            done = list(pool.map(digest, algorithms))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    read = min(r for _d, r in done)
    if read != size or after.st_size != size or after.st_mtime_ns != st0.st_mtime_ns:
        raise _changed_file(src, task.prefix + name, size, read, after.st_size)
    tail = "  data/" + encode_path(task.prefix + name) + "\n"
    lines = tuple((d + tail).encode("utf-8") for d, _r in done[:n_manifests])
    return FolderResult(lines, b"", 1, size, 0, 0, 0, ())


def _create(dest_dir: str, name: str) -> IO[bytes]:
    return open(os.path.join(dest_dir, name), "xb", buffering=0)  # noqa: SIM115


def _read_large(
    fd: int,
    size: int,
    hashers: list[Any],
    out: IO[bytes] | None,
    on_bytes: Callable[[float, int], None] | None,
) -> int:
    buf = _get_buffer()
    view = memoryview(buf)
    read = 0
    done = 0.0
    while read < size:
        n = os.readv(fd, [buf])
        if not n:
            break
        chunk = view[:n]
        for h in hashers:
            h.update(chunk)
        if out is not None:
            out.write(chunk)
        read += n
        if on_bytes is not None:  # fractions of this file, adding up to exactly 1
            part = 1.0 - done if read >= size else n / size
            done += part
            on_bytes(part, n)
    return read


def _changed_file(src: str, rel: str, size: int, read: int, now: int) -> FileChangedError:
    msg = (
        f"changed while it was being bagged (expected {size} bytes, read {read}, now {now}); "
        "a payload must be quiet during bagging: stop whatever writes to it and run the bag command again"
    )
    return FileChangedError(msg, path=src, details={"file": rel})


def run_folder(
    task: FolderTask,
    algorithms: tuple[str, ...],
    n_manifests: int,
    fetch: FetchSpec | None = None,
    on_bytes: Callable[[float, int], None] | None = None,
    entity_spec: EntitySpec | None = None,
) -> Any:
    """One folder task: a :class:`FolderResult`, a zip piece, or ``None`` (main-process steps)."""
    if task.mode in MAIN_ONLY:
        return None
    if task.mode == ZIP:
        piece = zip_folder(task)
        if on_bytes is not None:
            on_bytes(piece.files, piece.bytes)
        return piece
    return hash_folder(task, algorithms, n_manifests, fetch, on_bytes, entity_spec)


def _folder_worker(
    task: FolderTask,
    algorithms: tuple[str, ...],
    n_manifests: int,
    fetch: FetchSpec | None,
    entity_spec: EntitySpec | None,
) -> Any:
    try:
        return run_folder(task, algorithms, n_manifests, fetch, None, entity_spec)
    except PackageError as exc:  # rebuilt whole in the main process (path, details kept)
        return FolderFailure(type(exc), exc.message, exc.path, exc.details)


def hash_folders(
    tasks: Iterable[FolderTask],
    algorithms: tuple[str, ...],
    n_manifests: int,
    *,
    fetch: FetchSpec | None = None,
    processes: int = 1,
    on_bytes: Callable[[float, int], None] | None = None,
    entity_spec: EntitySpec | None = None,
) -> Iterator[tuple[FolderTask, Any]]:
    """Run folder tasks; yield ``(task, result)`` in the order given, with bounded memory.

    Results are those of :func:`run_folder`.

    With ``processes <= 1`` everything runs here and ``on_bytes(files, nbytes)``
    follows every read; with worker processes (:func:`curated._parallel.map_batches`)
    it is called once per finished task, and at most a few tasks per
    worker are in flight. A refusal raised by ``tasks`` itself (the walk), or any
    error in a worker, stops every worker at once.
    """
    if processes <= 1:
        for t in tasks:
            yield t, run_folder(t, algorithms, n_manifests, fetch, on_bytes, entity_spec)
        return
    try:
        for task, r, _here in map_batches(
            _folder_worker,
            tasks,
            processes=processes,
            args=(algorithms, n_manifests, fetch, entity_spec),
        ):
            yield task, _unpack(r, on_bytes)
    except WorkerDied:
        msg = "a hashing process ended unexpectedly (killed, or out of memory?); bag again"
        raise PackageError(msg) from None


def _unpack(r: Any, on_bytes: Callable[[float, int], None] | None) -> Any:
    if isinstance(r, FolderFailure):
        raise r.error()
    if on_bytes is not None and r is not None:
        on_bytes(r.files, r.bytes)
    return r
