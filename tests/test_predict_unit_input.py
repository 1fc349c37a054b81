"""Images larger than one shared input: each write unit pre-processes its padded region once.

The per-unit input (split into groups of whole tiles when it exceeds its budget) must give
exactly the values of the whole-image shared input and of per-tile pre-processing, while
filtering each unit's halo once instead of once per tile.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from segment_helpers import PREDICT_SHAPE as SHAPE
from segment_helpers import one_torch_thread, sample_with_tiny_model

from curated.segment import _store, load_model, predict
from curated.segment.preprocess import Preprocessing

predict_module = importlib.import_module("curated.segment.predict")

BLOCK = (8, 8, 12)  # several tiles per write unit (16³ shards), tiles straddling units


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return sample_with_tiny_model(
        tmp_path_factory.mktemp("unit-input"), seed=1, iterations=2, local_contrast_sigma=1.5
    )


class _CountingApply:
    """Counts pre-processing calls and the raw voxels they filter."""

    def __init__(self, monkeypatch) -> None:
        self.calls, self.voxels = 0, 0
        real = Preprocessing.apply

        def counted(pre, raw):
            self.calls += 1
            self.voxels += int(np.prod(raw.shape))
            return real(pre, raw)

        monkeypatch.setattr(Preprocessing, "apply", counted)


def _predict(model, image, name: str) -> tuple[np.ndarray, np.ndarray]:
    with one_torch_thread():
        predict(model, image, name=name, block=BLOCK, probabilities=True, device="cpu", workers=2)
    return (
        _store.label_level0(image, name)[...],
        _store.label_level0(image, f"{name}-probability")[...],
    )


def test_per_unit_input_equals_the_shared_input(trained, monkeypatch) -> None:
    image, model = trained
    shared = _predict(model, image, "shared")
    monkeypatch.setattr(predict_module, "WHOLE_INPUT_VOXELS", 1)  # the image is "too large"
    count = _CountingApply(monkeypatch)
    unit = _predict(model, image, "unit")
    units = 3 * 3  # 16 x 40 x 44 in 16³ write units: 1 x 3 x 3
    # the nine units' padded region fits one task's budget: one pass for all of them
    assert count.calls == 1
    for a, b in zip(shared, unit, strict=True):
        assert np.array_equal(a, b)

    # just under what a 2 x 2 x 2-tile unit's input holds: units split into groups; one byte:
    # one tile each
    m = load_model(model)
    itemsize = _store.image_level0(image).dtype.itemsize
    box = [2 * t + 2 * h for t, h in zip(BLOCK, m.halo, strict=True)]
    eight = predict_module.input_bytes(m, itemsize, box)
    for budget, name in ((eight - 1, "groups"), (1, "tiles")):
        monkeypatch.setattr(predict_module, "UNIT_INPUT_BYTES", budget)
        count = _CountingApply(monkeypatch)
        got = _predict(model, image, name)
        for a, b in zip(shared, got, strict=True):
            assert np.array_equal(a, b)
        plan = predict_module.plan_blocks(m, SHAPE, (16, 16, 16), BLOCK)
        tiles = sum(len(plan.tiles(*plan.unit_region(u))) for u in plan.units())
        if name == "tiles":
            assert count.calls == tiles
        else:
            assert units < count.calls < tiles


def test_every_source_gives_the_same_floats(trained) -> None:
    """Float probabilities (not only their uint8 rounding) agree tile by tile."""
    image, model = trained
    m = load_model(model)
    raw = _store.image_level0(image)
    plan = predict_module.plan_blocks(m, SHAPE, (16, 16, 16), BLOCK)
    shared = predict_module._shared_input(m, str(image), plan)
    predict_module.release_shared_input()
    assert shared is not None
    import torch

    dev = torch.device("cpu")
    with one_torch_thread():
        for idx in plan.units():
            lo, hi = plan.unit_region(idx)
            tiles = plan.tiles(lo, hi)
            unit = predict_module.region_input(m, raw, tiles, plan.tile)
            for t in tiles:
                ref = predict_module.predict_tile(m, raw, t, plan.tile, dev, shared)
                assert np.array_equal(
                    ref, predict_module.predict_tile(m, raw, t, plan.tile, dev, unit)
                )
                assert np.array_equal(ref, predict_module.predict_tile(m, raw, t, plan.tile, dev))


def test_tile_groups_cover_the_unit_once_within_the_budget(trained) -> None:
    _, model = trained
    m = load_model(model)
    plan = predict_module.plan_blocks(m, (40, 300, 500), (32, 256, 256), (8, 32, 32))
    out = m.geometry.valid_output(plan.tile)
    for idx in plan.units():
        lo, hi = plan.unit_region(idx)
        tiles = sorted(plan.tiles(lo, hi))
        whole = predict_module.tile_groups(m, plan, lo, hi, budget=10**12)
        assert [sorted(g) for g in whole] == [tiles]
        one = [o + 2 * h for o, h in zip(out, m.halo, strict=True)]
        per_tile = len(tiles) * int(np.prod(one))
        # what the smallest box of two tiles holds (two along one axis, where the unit has two)
        counts = [len({t[i] for t in tiles}) for i in range(3)]
        pair = min(
            predict_module.input_bytes(
                m, 1, [n + plan.tile[i] * (j == i) for j, n in enumerate(one)]
            )
            for i in range(3)
            if counts[i] > 1
        )
        assert pair <= 4_000_000  # the largest budget lets boxes grow
        for budget in (1, 400_000, 4_000_000):
            groups = predict_module.tile_groups(m, plan, lo, hi, budget=budget)
            assert sorted(t for g in groups for t in g) == tiles  # each tile exactly once
            filtered = 0
            for g in groups:
                first = [min(t[i] for t in g) for i in range(3)]
                last = [max(t[i] for t in g) for i in range(3)]
                box = [
                    b - a + o + 2 * h for a, b, o, h in zip(first, last, out, m.halo, strict=True)
                ]
                # a box of whole tiles (a full product of its axes' offsets) within the budget
                assert len(g) == int(np.prod([len({t[i] for t in g}) for i in range(3)]))
                assert predict_module.input_bytes(m, 1, box) <= budget or len(g) == 1
                filtered += int(np.prod(box))
            # never more pre-processing than tile by tile; less as soon as boxes can grow
            assert filtered <= per_tile and (budget < pair or filtered < per_tile)


def test_unit_tasks_block_the_units_within_the_budget(trained, monkeypatch) -> None:
    """Write units are grouped into blocks pre-processed together: every unit in exactly one
    task, blocks within the budget (a single unit may exceed it), the same blocks when
    resuming, and one unit per task when the image fits one shared input."""
    _, model = trained
    m = load_model(model)
    plan = predict_module.plan_blocks(m, (40, 300, 500), (16, 64, 64), (8, 32, 32))
    units = plan.units()
    unit_box = [u + 2 * h for u, h in zip(plan.unit, m.halo, strict=True)]
    unit_padded = predict_module.input_bytes(m, 1, unit_box)
    small = predict_module.plan_blocks(m, SHAPE, (16, 16, 16), BLOCK)
    # an image that fits one shared input: one unit per task (more tasks for the workers)
    assert predict_module._fits_whole(m, predict_module._shared_extent(m, small))
    assert predict_module.unit_tasks(m, small, small.units()) == [[u] for u in small.units()]
    monkeypatch.setattr(predict_module, "WHOLE_INPUT_VOXELS", 1)  # the image is "too large"
    for budget in (1, 4 * unit_padded, 10**12):
        tasks = predict_module.unit_tasks(m, plan, units, budget=budget)
        assert sorted(u for t in tasks for u in t) == sorted(units)  # each unit exactly once
        for t in tasks:
            lo = [min(u[i] for u in t) * plan.unit[i] for i in range(3)]
            hi = [(max(u[i] for u in t) + 1) * plan.unit[i] for i in range(3)]
            span = [b - a for a, b in zip(lo, hi, strict=True)]
            # a block: every unit of its bounding box is in it
            assert len(t) == int(np.prod([s // u for s, u in zip(span, plan.unit, strict=True)]))
            padded = [n + 2 * h for n, h in zip(span, m.halo, strict=True)]
            assert len(t) == 1 or predict_module.input_bytes(m, 1, padded) <= budget
        if budget == 1:
            assert len(tasks) == len(units)
        if budget == 10**12:
            assert len(tasks) == 1
        # resuming: the units left keep their blocks
        left = units[::3]
        resumed = predict_module.unit_tasks(m, plan, left, budget=budget)
        assert resumed == [kept for t in tasks if (kept := [u for u in t if u in left])]
    assert len(predict_module.unit_tasks(m, plan, units, budget=4 * unit_padded)) < len(units)


def test_a_block_interrupted_between_its_units_resumes_identical(trained, monkeypatch) -> None:
    """A task computes a block of write units and marks each as it is written: stopped after
    its first unit, a re-run computes only the others and the result is the same."""
    image, model = trained
    reference = _predict(model, image, "block-ref")
    monkeypatch.setattr(predict_module, "WHOLE_INPUT_VOXELS", 1)  # the image is "too large"
    m = load_model(model)
    plan = predict_module.plan_blocks(m, SHAPE, (16, 16, 16), BLOCK)
    assert len(predict_module.unit_tasks(m, plan, plan.units())) == 1  # all nine in one block
    real = predict_module._mark_done
    calls = {"n": 0}

    def flaky(marker, files):
        calls["n"] += 1
        if calls["n"] == 2:  # stopped after the first unit's marker, before the second's
            raise KeyboardInterrupt
        return real(marker, files)

    monkeypatch.setattr(predict_module, "_mark_done", flaky)
    with pytest.raises(KeyboardInterrupt), one_torch_thread():
        predict(
            model, image, name="block", block=BLOCK, probabilities=True, device="cpu", workers=1
        )
    monkeypatch.setattr(predict_module, "_mark_done", real)
    with one_torch_thread():
        r = predict(
            model, image, name="block", block=BLOCK, probabilities=True, device="cpu", workers=1
        )
    assert r.details["units_skipped"] == 1 and r.details["units_computed"] == 8
    got = (
        _store.label_level0(image, "block")[...],
        _store.label_level0(image, "block-probability")[...],
    )
    for a, b in zip(reference, got, strict=True):
        assert np.array_equal(a, b)


def _input_read(plan, model) -> int:
    """Network input voxels a plan computes: every tile once per write unit it touches."""
    total = 0
    for idx in plan.units():
        lo, hi = plan.unit_region(idx)
        for _ in plan.tiles(lo, hi):
            total += int(np.prod(model.geometry.input_for(model.geometry.valid_output(plan.tile))))
    return total


def test_the_planned_tile_does_not_straddle_write_units(trained) -> None:
    """96-voxel shards with the 64-voxel default tile computed every second z tile twice
    (once per unit it touched); the planned tile divides the unit where that reads less."""
    image, model = trained
    m = load_model(model)
    step = m.geometry.step[0]
    shape, unit = (12 * step, 40, 44), (6 * step, 16, 16)
    fixed = predict_module.plan_blocks(m, shape, unit, (4 * step, 64, 64))
    planned = predict_module.plan_blocks(m, shape, unit)
    assert unit[0] % planned.tile[0] == 0  # whole tiles per unit along z
    assert fixed.tile[0] == 4 * step and unit[0] % fixed.tile[0] != 0  # the old cut straddled
    assert _input_read(planned, m) < _input_read(fixed, m)
    # planned lengths stay within the default tile, on the pooling grid
    for t, cap, st in zip(planned.tile, predict_module.DEFAULT_BLOCK, m.geometry.step, strict=True):
        assert t % st == 0 and t <= -(-cap // st) * st
    # and the prediction is the same, voxel for voxel, whatever the tile
    with one_torch_thread():
        predict(model, image, name="planned", probabilities=True, device="cpu", workers=2)
    explicit = _predict(model, image, "explicit")
    for a, b in zip(
        explicit,
        (
            _store.label_level0(image, "planned")[...],
            _store.label_level0(image, "planned-probability")[...],
        ),
        strict=True,
    ):
        assert np.array_equal(a, b)
