"""Training keeps its buffers' pages mapped from step to step (glibc), and so does prediction
within a write unit; between units prediction gives the pages back (flat memory)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from contextlib import contextmanager

import pytest

from curated.segment import _heap

pytestmark = pytest.mark.skipif(_heap._libc() is None, reason="glibc's mallopt is needed")

PRELUDE = """
import json, resource, sys
import numpy as np
from curated.segment._heap import prediction_heap, steady_heap, training_heap

def churn():
    # a training step, or the tiles of one write unit: the same large buffers allocated and
    # freed again and again
    for _ in range(4):
        a = [np.ones(40 << 20, dtype=np.uint8) for _ in range(3)]  # over glibc's 32 MiB mmap cap
        b = [np.ones(4 << 20, dtype=np.uint8) for _ in range(20)]
        del a, b

def faults(f):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
"""
"""The churn both subprocess scripts measure; each runs in a fresh interpreter, so that no
other allocation of the test process moves the counts."""

CHURN = """
before = faults(churn)
with training_heap() as ok:
    churn()  # the heap grows once
    inside = faults(churn)
after = faults(churn)
steady = steady_heap()
churn()
predicting = faults(churn)
print(json.dumps({"ok": ok, "before": before, "inside": inside, "after": after,
                  "steady": steady, "predicting": predicting}))
"""


def _measure(script: str) -> dict:
    """Run :data:`PRELUDE` + ``script`` in a fresh interpreter; the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", PRELUDE + script], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _spy(calls: list[str]):
    """A stand-in for a heap context manager that records entering and leaving it."""

    @contextmanager
    def spy():
        calls.append("enter")
        try:
            yield True
        finally:
            calls.append("exit")

    return spy


def test_training_heap_keeps_pages_mapped_and_restores_glibc_defaults() -> None:
    r = _measure(CHURN)
    assert r["ok"] is True
    # 4 rounds of 200 MiB mapped afresh each time: tens of thousands of page faults
    # (fewer than 4 KiB pages would give: numpy asks for huge pages on large arrays)
    assert r["before"] > 10_000
    assert r["inside"] < r["before"] // 20
    # after the training, large buffers are mapped (and returned) as before
    assert r["after"] > 10_000
    # prediction's setting: every buffer over 1 MiB is returned to the system (flat memory)
    assert r["steady"] is True and r["predicting"] > 10_000


def test_training_runs_its_steps_inside_the_training_heap(monkeypatch, tmp_path) -> None:
    from segment_helpers import sample_with_tiny_model

    train_module = importlib.import_module("curated.segment.train")
    calls: list[str] = []
    monkeypatch.setattr(train_module, "training_heap", _spy(calls))
    sample_with_tiny_model(tmp_path, seed=0, iterations=2, local_contrast_sigma=1.0)
    assert calls == ["enter", "exit"]


UNITS = """
def rss_mib():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) // 1024 for l in fh if l.startswith("VmRSS:"))

steady_heap()
base = rss_mib()
between = faults(churn)
with prediction_heap() as ok:
    churn()  # the first tile maps the heap
    inside = faults(churn)
    kept = rss_mib() - base  # the free pages stay mapped for the next tile
given_back = rss_mib() - base
# two units at once (two threads): the settings hold until the last one ends
first, second = prediction_heap(), prediction_heap()
first.__enter__(); second.__enter__()
churn()
first.__exit__(None, None, None)  # its end gave the free pages back: mapped once more
churn()
one_left = faults(churn)
second.__exit__(None, None, None)
none_left = faults(churn)
print(json.dumps({"ok": ok, "between": between, "inside": inside, "kept": kept,
                  "given_back": given_back, "one_left": one_left, "none_left": none_left}))
"""


def test_prediction_heap_keeps_a_units_pages_and_gives_them_back_after() -> None:
    r = _measure(UNITS)
    assert r["ok"] is True
    assert r["between"] > 10_000  # steady_heap: every large buffer mapped afresh
    assert r["inside"] < r["between"] // 20
    # inside a unit the heap keeps its ~200 MiB; when the unit ends they go back
    assert r["kept"] > 150
    assert r["given_back"] < 40
    # a unit ending while another runs leaves the other's settings in force
    assert r["one_left"] < r["between"] // 20
    assert r["none_left"] > 10_000


def test_prediction_computes_every_write_unit_inside_the_prediction_heap(
    monkeypatch, tmp_path
) -> None:
    from segment_helpers import sample_with_tiny_model

    from curated.segment import predict

    predict_module = importlib.import_module("curated.segment.predict")
    image, model = sample_with_tiny_model(tmp_path, seed=0, iterations=2, local_contrast_sigma=1.0)
    calls: list[str] = []
    monkeypatch.setattr(predict_module, "prediction_heap", _spy(calls))
    res = predict(model, image, name="heap", block=(8, 16, 16), workers=1)
    units = res.details["units_computed"]
    assert units > 1
    assert calls == ["enter", "exit"] * units
