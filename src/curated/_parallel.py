"""Ordered, bounded fan-out of work to forked worker processes, with no helper threads.

Inventorying or bagging a million small files is bound by system calls and
per-file Python work, not by bytes, so one process cannot keep up with
``sha256sum``-class tools. :func:`map_batches` hands units of work (a batch of
files, one folder) to worker processes and gives the results back in
submission order, with at most :data:`WINDOW_PER_PROCESS` units per worker in
flight, so memory stays bounded by the unit size whatever the number of files.

Why not :class:`multiprocessing.pool.Pool`: it moves tasks and results with
three helper *threads* in this process. Whenever the main thread releases the
GIL (a folder listing, hashing a large buffer) it must win the GIL back from
them, and at hundreds of small tasks a second those threads used as much CPU as
the main thread itself: a 2-process ``check`` of 100,000 files ran 1.8x
*slower* than one process, and the bag's main process needed twice the CPU.
Here the calling thread alone writes tasks to and reads results from pipes.
Task frames are written without blocking (kept pending while a pipe is full,
flushed while waiting for results), so the main process never waits on a worker
that is itself waiting for the main process to read.

``fork`` is used where the platform has it: workers inherit the imported
modules, so a pool starts in milliseconds and pays off even for ten thousand
files. Workers only run the functions they are handed (system calls, hashlib,
header parsing), never logging, printing or the progress bar, so locks held by
other threads at fork time cannot bite them, and they leave with ``os._exit``.
Elsewhere (no ``fork``), with ``processes <= 1``, or for input that fits in one
unit, the work runs in the calling process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import select
import signal
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WINDOW_PER_PROCESS = 4
"""Units of work in flight per worker: enough to keep it busy, few enough to bound memory."""


def default_processes() -> int:
    """Worker processes to use when the caller does not say: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class WorkerDied(RuntimeError):
    """A worker process ended without answering (killed, or out of memory)."""


def map_batches(
    fn: Callable[..., R],
    batches: Iterable[T],
    *,
    processes: int,
    args: tuple[Any, ...] = (),
    local_args: tuple[Any, ...] = (),
) -> Iterator[tuple[T, R, bool]]:
    """Yield ``(batch, fn(batch, *args, ...), ran_here)`` for every batch, in the order given.

    ``fn`` must be a module-level function (it runs in forked workers, as
    ``fn(batch, *args)``). With ``processes <= 1``, without ``fork``, or when
    ``batches`` holds a single batch, everything runs here (``ran_here`` is
    true), ``fn`` is called as ``fn(batch, *args, *local_args)`` (e.g. with a
    progress callback, which cannot cross to a worker) and no process is
    started. An exception raised by ``fn`` in a worker is re-raised here (one
    that does not pickle as a ``RuntimeError`` describing it) after every
    worker is stopped; a worker that dies raises :class:`WorkerDied`.
    """
    it = iter(batches)
    first = next(it, _END)
    if first is _END:
        return
    second = next(it, _END)
    if processes <= 1 or second is _END or not can_fork():
        yield first, fn(first, *args, *local_args), True  # type: ignore[misc]
        if second is not _END:
            yield second, fn(second, *args, *local_args), True  # type: ignore[misc]
            for batch in it:
                yield batch, fn(batch, *args, *local_args), True
        return
    pool = WorkerPool(fn, processes, args)
    window: deque[tuple[T, int]] = deque()
    limit = WINDOW_PER_PROCESS * processes
    try:
        for batch in _chain(first, second, it):  # type: ignore[arg-type]
            window.append((batch, pool.submit(batch)))
            while len(window) >= limit:
                done, w = window.popleft()
                yield done, pool.result(w), False
        while window:
            done, w = window.popleft()
            yield done, pool.result(w), False
    finally:
        pool.close()


_END: Any = object()


def _chain(first: T, second: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    yield second
    yield from rest


class _Crash(NamedTuple):
    """An exception raised in a worker, sent back to be re-raised in the main process."""

    error: BaseException


_HEADER = struct.Struct("<Q")


def _read_exactly(fd: int, n: int) -> bytes:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 22))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _worker_loop(
    fn: Callable[..., Any], task_fd: int, result_fd: int, args: tuple[Any, ...]
) -> None:
    """A forked worker: read a task, run it, send its result; until the task pipe closes."""
    while True:
        try:
            head = _read_exactly(task_fd, _HEADER.size)
        except EOFError:
            return
        task = pickle.loads(_read_exactly(task_fd, _HEADER.unpack(head)[0]))
        try:
            result: Any = fn(task, *args)
        except BaseException as exc:  # sent back whole where it pickles, else described
            result = _Crash(exc)
        try:
            blob = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            what = result.error if isinstance(result, _Crash) else result
            blob = pickle.dumps(_Crash(RuntimeError(f"{type(what).__name__}: {what!r}")))
        _write_all(result_fd, _HEADER.pack(len(blob)) + blob)


class WorkerPool:
    """Forked processes that run ``fn(task, *args)`` on tasks fed through pipes.

    Tasks go to the worker with the fewest in flight (:meth:`submit` returns
    which); each worker answers in the order it was given tasks, so reading
    :meth:`result` of the workers in submission order gives results in
    submission order. :meth:`close` stops every worker at once (work still
    queued is dropped) and reaps it.
    """

    def __init__(self, fn: Callable[..., Any], processes: int, args: tuple[Any, ...] = ()) -> None:
        self.pids: list[int] = []
        self.task_fds: list[int] = []
        self.result_fds: list[int] = []
        self.pending: list[bytearray] = []
        self.in_flight: list[int] = []
        try:
            for _ in range(processes):
                tr, tw = os.pipe()
                rr, rw = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the worker (coverage does not follow forks)
                    code = 0
                    try:
                        # siblings' pipe ends too: a sibling holding a task pipe's write
                        # end would keep that worker from ever seeing the end of its input
                        for fd in (tw, rr, *self.task_fds, *self.result_fds):
                            os.close(fd)
                        _worker_loop(fn, tr, rw, args)
                    except BaseException:
                        code = 1
                    finally:
                        os._exit(code)
                os.close(tr)
                os.close(rw)
                os.set_blocking(tw, False)
                self.pids.append(pid)
                self.task_fds.append(tw)
                self.result_fds.append(rr)
                self.pending.append(bytearray())
                self.in_flight.append(0)
        except BaseException:
            self.close()
            raise

    def submit(self, task: Any) -> int:
        """Queue ``task``; returns the worker that will answer it."""
        w = min(range(len(self.pids)), key=self.in_flight.__getitem__)
        blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        self.pending[w] += _HEADER.pack(len(blob)) + blob
        self.in_flight[w] += 1
        self._flush(w)
        return w

    def _flush(self, w: int) -> None:
        buf = self.pending[w]
        while buf:
            try:
                n = os.write(self.task_fds[w], buf)
            except BlockingIOError:
                return
            except BrokenPipeError:  # the worker died: reading its next result says so
                buf.clear()
                return
            del buf[:n]

    def result(self, w: int) -> Any:
        """The next result of worker ``w`` (its oldest unanswered task); re-raises its exception."""
        fd = self.result_fds[w]
        while any(self.pending):  # keep feeding while waiting, so nobody waits on us
            writers = [self.task_fds[i] for i, b in enumerate(self.pending) if b]
            readable, writable, _ = select.select([fd], writers, [])
            for wfd in writable:
                self._flush(self.task_fds.index(wfd))
            if readable:
                break
        try:
            head = _read_exactly(fd, _HEADER.size)
            blob = _read_exactly(fd, _HEADER.unpack(head)[0])
        except (EOFError, ConnectionResetError):
            msg = f"worker process {self.pids[w]} died (killed, or out of memory?)"
            raise WorkerDied(msg) from None
        self.in_flight[w] -= 1
        result = pickle.loads(blob)
        if isinstance(result, _Crash):
            raise result.error
        return result

    def close(self) -> None:
        """Stop every worker (at once: work still queued is dropped) and reap it."""
        for fd in self.task_fds + self.result_fds:
            os.close(fd)
        self.task_fds, self.result_fds = [], []
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids = []
