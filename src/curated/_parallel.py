"""Ordered, bounded fan-out of batches to worker processes (used for per-file work over many files).

Hashing a million small files is bound by system calls and per-file Python work,
not by bytes, so one process cannot keep up with ``sha256sum``-class tools. The
helpers here hand *batches* of work items to a pool of forked processes and give
the results back in submission order, with at most ``window_per_process`` batches
per worker in flight, so memory stays bounded by the batch size whatever the
number of files.

``fork`` is used where the platform has it: workers inherit the imported modules,
so a pool starts in milliseconds and pays off even for ten thousand files. The
workers only run the pure functions they are handed (system calls, hashlib,
header parsing), never logging, printing or the progress bar, so locks held by
other threads at fork time cannot bite them, and they leave with ``os._exit``. Elsewhere (no ``fork``), or with
``processes <= 1``, or for inputs smaller than one batch, the work runs in the
calling process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_processes() -> int:
    """Worker processes to use when the caller does not say: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


MAX_TASK_BYTES = 16 * 1024
"""A batch handed to a worker pickles to at most about this much."""

WINDOW_PER_PROCESS = 3
"""Batches in flight per worker: ``WINDOW_PER_PROCESS * MAX_TASK_BYTES`` stays below the
smallest pipe buffer Linux gives (64 KiB), so sending a batch never blocks (no deadlock
with a worker blocked on sending a large result)."""


def map_batches(
    fn: Callable[..., list[R]],
    batches: Iterable[list[T]],
    *,
    processes: int,
    local_args: tuple[Any, ...] = (),
) -> Iterator[tuple[list[T], list[R], bool]]:
    """Yield ``(batch, fn(batch, ...), ran_here)`` for every batch, in the order given.

    ``fn`` must be a module-level function (it runs in forked workers). With
    ``processes <= 1``, without ``fork``, or when ``batches`` holds a single
    batch, everything runs here (``ran_here`` is true), ``fn`` is called as
    ``fn(batch, *local_args)`` (e.g. with a progress callback, which cannot
    cross to a worker) and no process is started. In workers it is called as
    ``fn(batch)``. An exception raised by ``fn`` in a worker is re-raised here
    after the workers are stopped.

    Batches must pickle to at most :data:`MAX_TASK_BYTES` (the caller sizes them).

    The pool is hand-made rather than :class:`multiprocessing.pool.Pool`: that
    pool moves tasks and results with helper *threads* in this process, and
    whenever the main thread releases the GIL (a folder listing, hashing a
    large buffer) it waits for those threads to hand it back, which made a
    2-process inventory of 100,000 files 1.8x *slower* than one process. Here
    the calling thread alone writes tasks to and reads results from pipes.
    """
    it = iter(batches)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if processes <= 1 or second is None or not can_fork():
        yield first, fn(first, *local_args), True
        if second is not None:
            yield second, fn(second, *local_args), True
            for batch in it:
                yield batch, fn(batch, *local_args), True
        return
    workers: list[_Worker] = []
    for _ in range(processes):
        # each child closes its siblings' pipe ends, or a sibling holding a task pipe's
        # write end would keep that worker from ever seeing the end of its input
        workers.append(_Worker(fn, [fd for w in workers for fd in w.fds()]))
    inflight: deque[tuple[list[T], _Worker]] = deque()
    limit = WINDOW_PER_PROCESS * processes
    ok = False
    try:
        for i, batch in enumerate(_chain(first, second, it)):
            while len(inflight) >= limit:
                done, w = inflight.popleft()
                yield done, w.result(), False
            w = workers[i % processes]
            w.send(batch)
            inflight.append((batch, w))
        while inflight:
            done, w = inflight.popleft()
            yield done, w.result(), False
        ok = True
    finally:
        for w in workers:
            w.stop(kill=not ok)


class _Worker:
    """One forked process that runs ``fn`` on the batches it reads from a pipe, in order."""

    def __init__(self, fn: Callable[..., Any], siblings: list[int]) -> None:
        task_r, task_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child (coverage does not follow forks)
            code = 0
            try:
                for fd in (task_w, res_r, *siblings):
                    os.close(fd)
                _serve(fn, Connection(task_r, writable=False), Connection(res_w, readable=False))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(res_w)
        self.pid = pid
        self.tasks = Connection(task_w, readable=False)
        self.results = Connection(res_r, writable=False)

    def fds(self) -> tuple[int, int]:
        return self.tasks.fileno(), self.results.fileno()

    def send(self, batch: list[Any]) -> None:
        try:
            self.tasks.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, ConnectionResetError):
            raise self._died() from None

    def result(self) -> Any:
        try:
            status, value = pickle.loads(self.results.recv_bytes())
        except (EOFError, ConnectionResetError):
            raise self._died() from None
        if status == "error":
            raise value
        return value

    def _died(self) -> RuntimeError:
        return RuntimeError(f"worker process {self.pid} died (killed, or out of memory)")

    def stop(self, *, kill: bool) -> None:
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.tasks.close()
        self.results.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(fn: Callable[..., Any], tasks: Connection, results: Connection) -> None:  # pragma: no cover - child
    while True:
        try:
            data = tasks.recv_bytes()
        except EOFError:
            return  # the parent closed the pipe: no more work
        try:
            reply: tuple[str, Any] = ("ok", fn(pickle.loads(data)))
        except Exception as exc:  # handed back and re-raised by the parent
            reply = ("error", exc)
        try:
            out = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle
            out = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {reply[1]!r}")))
        results.send_bytes(out)


def _chain(first: T, second: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    yield second
    yield from rest
