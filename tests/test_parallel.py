"""The hand-made ordered process pool behind large inventories (curated._parallel)."""

from __future__ import annotations

import os
import signal

import pytest

from curated._parallel import map_batches


def _square(batch: list[int]) -> list[int]:
    return [x * x for x in batch]


def _pid_and_square(batch: list[int]) -> list[tuple[int, int]]:
    return [(os.getpid(), x * x) for x in batch]


def _fail_on_13(batch: list[int]) -> list[int]:
    if 13 in batch:
        msg = f"bad item 13 in batch starting at {batch[0]}"
        raise ValueError(msg)
    return batch


class _Unpicklable(Exception):
    def __reduce__(self):  # noqa: D105 - an exception that refuses to cross processes
        raise TypeError("cannot pickle")


def _fail_unpicklably(batch: list[int]) -> list[int]:
    raise _Unpicklable("lock held")


def _die(batch: list[int]) -> list[int]:
    if 7 in batch:
        os.kill(os.getpid(), signal.SIGKILL)
    return batch


def _batches(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


def _children() -> set[int]:
    """Live (not reaped) child processes of this process."""
    me = str(os.getpid())
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                out.add(int(pid))
    return out


def test_results_come_back_in_order_from_several_workers() -> None:
    before = _children()
    batches = _batches(5000, 7)
    got = list(map_batches(_pid_and_square, batches, processes=3))
    assert [b for b, _r, _here in got] == batches
    assert [x for _b, r, _ in got for _pid, x in r] == [x * x for x in range(5000)]
    assert not any(here for _b, _r, here in got)
    pids = {pid for _b, r, _ in got for pid, _x in r}
    assert len(pids) == 3 and os.getpid() not in pids
    assert _children() <= before  # every worker was reaped


def test_small_inputs_and_one_process_run_here_with_local_arguments() -> None:
    seen: list[int] = []

    def fn(batch, note):  # a closure: it could not even be sent to a worker
        note(len(batch))
        return _square(batch)

    one = list(map_batches(fn, [[1, 2, 3]], processes=4, local_args=(seen.append,)))
    assert one == [([1, 2, 3], [1, 4, 9], True)]
    many = list(map_batches(fn, _batches(50, 10), processes=1, local_args=(seen.append,)))
    assert all(here for *_x, here in many) and seen == [3, 10, 10, 10, 10, 10]
    assert list(map_batches(_square, [], processes=2)) == []


def test_a_worker_exception_is_raised_here_and_workers_are_stopped() -> None:
    before = _children()
    with pytest.raises(ValueError, match="bad item 13 in batch starting at 10"):
        for _ in map_batches(_fail_on_13, _batches(100, 5), processes=2):
            pass
    assert _children() <= before


def test_an_exception_that_does_not_pickle_still_arrives() -> None:
    before = _children()
    with pytest.raises(RuntimeError, match="_Unpicklable.*lock held"):
        list(map_batches(_fail_unpicklably, _batches(20, 5), processes=2))
    assert _children() <= before


def test_a_killed_worker_is_a_clear_error_not_a_hang() -> None:
    before = _children()
    with pytest.raises(RuntimeError, match="worker process .* died"):
        list(map_batches(_die, _batches(40, 2), processes=2))
    assert _children() <= before


def test_stopping_early_stops_the_workers() -> None:
    before = _children()
    gen = map_batches(_square, _batches(10_000, 10), processes=2)
    assert next(gen)[1] == [x * x for x in range(10)]
    gen.close()
    assert _children() <= before


def _echo_big(batch: bytes, factor: int) -> bytes:
    return batch * factor


def test_large_tasks_and_results_do_not_deadlock() -> None:
    """Units bigger than a pipe buffer both ways: the main process keeps feeding while it waits."""
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("deadlock")))
    signal.alarm(60)
    try:
        tasks = [bytes([i]) * (300 * 1024) for i in range(12)]
        got = list(map_batches(_echo_big, tasks, processes=2, args=(3,)))
    finally:
        signal.alarm(0)
    assert [r for _t, r, _h in got] == [t * 3 for t in tasks]
