"""One-pass multi-algorithm hashing of payload files, placed into the bag as they are read.

Each file is read once, in :data:`BUFFER_SIZE` pieces, and fed to one hashlib
object per manifest algorithm. Placing it in the bag happens in the same step:
a hard link (no bytes copied; the bag's file *is* the workspace's file, so the
bag writer never opens it for writing), or, where the file system refuses links,
a copy written from the very buffers that are hashed. Work is handed out in
small batches; with ``processes > 1`` a process pool hashes them while at most
:data:`WINDOW_PER_PROCESS` batches per worker are in flight, so memory does not
grow with the number of files.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from curated.errors import PackageError

BUFFER_SIZE = 1 << 20
"""Read buffer (1 MiB): big enough for full hashing speed, small enough to stay cache-friendly."""

BATCH_FILES = 512
BATCH_BYTES = 64 << 20
BATCH_FILES_UNSIZED = 128
"""Files of unknown size (Zarr chunks listed without ``lstat``) per batch: small enough to share out large shards."""
WINDOW_PER_PROCESS = 4

SUPPORTED_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")

# Placement modes of one payload file.
LINK = "link"  # hard link into the bag, copy when the file system refuses
COPY = "copy"  # always copy (tests; file systems where links are unwanted)
READ = "read"  # hash only: the file is already in the bag (archives) or stays outside (fetch.txt)

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


class FileChangedError(PackageError):
    """A payload file changed (size or modification time) while it was being bagged."""


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
    buf = _get_buffer()
    view = memoryview(buf)
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
        read = 0
        # Read exactly the listed size (no extra read to meet end-of-file: a file that
        # grew or shrank shows in the fstat below).
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
            if on_bytes is not None:
                on_bytes(n)
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


def hash_batch(batch: list[HashTask], algorithms: tuple[str, ...]) -> list[HashResult]:
    """Worker entry point: hash a batch in order."""
    return [hash_one(t, algorithms) for t in batch]


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
    ctx = multiprocessing.get_context("fork")
    window: deque[multiprocessing.pool.AsyncResult[list[HashResult]]] = deque()
    limit = WINDOW_PER_PROCESS * processes
    with ctx.Pool(processes) as pool:
        try:
            for batch in batched(tasks):
                window.append(pool.apply_async(hash_batch, (batch, algorithms)))
                while len(window) >= limit:
                    yield from _drain(window.popleft().get(), on_bytes)
            while window:
                yield from _drain(window.popleft().get(), on_bytes)
        finally:
            pool.terminate()


def _drain(
    results: list[HashResult], on_bytes: Callable[[int], None] | None
) -> Iterator[HashResult]:
    for r in results:
        if on_bytes is not None:
            on_bytes(r.size)
        yield r
