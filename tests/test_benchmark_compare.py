"""`benchmarks/real_em.py --compare`: a setting's difference carries the spread of training draws."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_em():
    spec = importlib.util.spec_from_file_location(
        "real_em_bench", ROOT / "benchmarks" / "real_em.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_em_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["real_em_bench"]


def _counts(dice_per_tile: float, tiles: int = 40, fg: int = 1000, seed: int = 0) -> np.ndarray:
    """(tp, fp, fn) per tile scattered around one Dice (fp == fn, so Dice = tp / (tp + fp))."""
    rng = np.random.default_rng(seed)
    tp = np.round(fg * rng.uniform(0.8, 1.2, tiles) * dice_per_tile)
    err = np.round(tp * (1 - dice_per_tile) / dice_per_tile)
    return np.stack([tp, err, err], axis=1)


def _record(path: Path, seed: int, draw: int, counts: np.ndarray | None) -> None:
    unet = {"dice": 0.0} if counts is None else {"tile_counts": counts.astype(int).tolist()}
    path.write_text(json.dumps({"seed": seed, "train_seed": draw, "unet": unet}))


def test_a_setting_no_better_than_its_draws_gets_an_interval_over_zero(real_em):
    # reference: two draws per crop seed, 0.55 and 0.65; the other setting: one draw at 0.62.
    # Tiles alone would call +0.02 real; the draws' spread (SD ~0.07) must not.
    ref = {s: [_counts(0.55, seed=s), _counts(0.65, seed=s)] for s in range(3)}
    other = {s: [_counts(0.62, seed=s)] for s in range(3)}
    rows = real_em.compare_settings({"ref": ref, "other": other})
    assert rows[0]["mean"] == pytest.approx(0.60, abs=0.002)
    r = rows[1]
    assert r["diff"] == pytest.approx(0.02, abs=0.002)
    assert r["tile_ci"][0] > 0  # the tiles alone exclude 0 ...
    assert r["ci"][0] < 0 < r["ci"][1]  # ... the draws do not
    assert r["ci"][1] - r["ci"][0] > 3 * (r["tile_ci"][1] - r["tile_ci"][0])


def test_pooled_draw_variance(real_em):
    a = {0: [_counts(0.5), _counts(0.7)], 1: [_counts(0.6)]}
    b = {0: [_counts(0.4), _counts(0.6), _counts(0.5)]}
    var, df = real_em.draw_variance({"a": a, "b": b})
    # SS: (0.1² + 0.1²) + (0.1² + 0.1² + 0) over 1 + 2 degrees of freedom
    assert df == 3
    assert var == pytest.approx(0.04 / 3, rel=0.02)


def test_a_clear_gain_stays_clear(real_em):
    ref = {s: [_counts(0.55, seed=s), _counts(0.57, seed=s)] for s in range(3)}
    better = {s: [_counts(0.75, seed=s), _counts(0.77, seed=s)] for s in range(3)}
    r = real_em.compare_settings({"ref": ref, "better": better})[1]
    assert r["diff"] == pytest.approx(0.20, abs=0.003)
    assert 0.1 < r["ci"][0] < r["diff"] < r["ci"][1] < 0.3


def test_the_command_reads_records_and_refuses_old_ones(real_em, tmp_path, capsys):
    for s in range(2):
        for d, dice in enumerate((0.55, 0.65)):
            _record(tmp_path / f"ref-s{s}-d{d}.json", s, d, _counts(dice, seed=s))
        _record(tmp_path / f"new-s{s}-d0.json", s, 0, _counts(0.62, seed=s))
    assert real_em.main(["--compare", f"ref={tmp_path}/ref-*", f"new={tmp_path}/new-*"]) == 0
    out = capsys.readouterr().out
    assert "new − ref: +0.020" in out
    assert "pooled, 2 degrees of freedom" in out
    _record(tmp_path / "old-s0-d0.json", 0, 0, None)
    with pytest.raises(SystemExit, match="holds no tile counts"):
        real_em.main(["--compare", f"ref={tmp_path}/ref-*", f"old={tmp_path}/old-*"])
    with pytest.raises(SystemExit, match="nothing matches"):
        real_em.main(["--compare", f"ref={tmp_path}/none-*"])
    with pytest.raises(SystemExit, match="NAME=GLOB"):
        real_em.main(["--compare", f"{tmp_path}/ref-*"])


def test_runs_on_other_tiles_are_refused_and_single_draws_get_no_setting_interval(
    real_em, tmp_path, capsys
):
    _record(tmp_path / "ref-s0-d0.json", 0, 0, _counts(0.55))
    _record(tmp_path / "new-s0-d0.json", 0, 0, _counts(0.62))
    real_em.main(["--compare", f"ref={tmp_path}/ref-*", f"new={tmp_path}/new-*"])
    out = capsys.readouterr().out
    assert "the draw-to-draw spread is unknown" in out
    assert "one draw's interval, not the setting's" in out and "nan" not in out
    _record(tmp_path / "other-s0-d0.json", 0, 0, _counts(0.62, tiles=30))
    with pytest.raises(SystemExit, match="scored on different tiles"):
        real_em.main(["--compare", f"ref={tmp_path}/ref-*", f"other={tmp_path}/other-*"])


# ------------------------------------------------------------- benchmarks/hitl.py --compare


@pytest.fixture(scope="module")
def hitl():
    spec = importlib.util.spec_from_file_location("hitl_bench", ROOT / "benchmarks" / "hitl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["hitl_bench"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["hitl_bench"]


def _hitl_counts(bright: float, shaded: float, seed: int) -> np.ndarray:
    """Tile rows (tp, fp, fn, x-quarter) with one Dice on the bright and one on the shaded half."""
    rows = []
    for q in range(4):
        c = _counts(bright if q < 2 else shaded, tiles=10, seed=seed * 7 + q)
        rows.append(np.column_stack([c, np.full(len(c), q)]))
    return np.vstack(rows).astype(int)


def _hitl_run(folder: Path, seed: int, draw: int, bright: float, shaded: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trial = {
        "seed": seed,
        "train_seed": draw,
        "bright": _hitl_counts(bright, shaded, seed).tolist(),
        "strategies": {"random": {"curve": [_hitl_counts(bright, shaded, seed).tolist()]}},
    }
    (folder / "hitl.json").write_text(json.dumps({"trials": [trial]}))


def test_hitl_compare_counts_the_draws(hitl, tmp_path, capsys) -> None:
    # the default: two draws per seed that disagree by 0.10 on the bright half
    for s in range(4):
        for d, jitter in ((0, -0.05), (1, 0.05)):
            _hitl_run(tmp_path / f"base-s{s}-d{d}", s, d, 0.80 + jitter, 0.75)
    # "lucky": one draw per seed, as high as the default's better draw; "clear": +0.08 everywhere
    for s in range(4):
        _hitl_run(tmp_path / f"lucky-s{s}", s, 0, 0.85 + (0.05 if s % 2 else -0.05), 0.75)
        _hitl_run(tmp_path / f"clear-s{s}", s, 0, 0.88, 0.83)
    settings = {
        n: hitl.load_setting(str(tmp_path / f"{n}-*" / "hitl.json"))
        for n in ("base", "lucky", "clear")
    }
    res = hitl.compare_settings(settings)
    base = res["settings"]["base"]["bright half"]
    assert base["draw_sd"] == pytest.approx(0.10 / np.sqrt(2), abs=0.01) and base["draw_df"] == 4
    lucky = res["settings"]["lucky"]["bright half"]["vs_first"]
    assert (
        lucky["diff"] == pytest.approx(0.05, abs=0.01) and lucky["ci95"][0] < 0 < lucky["ci95"][1]
    )
    clear = res["settings"]["clear"]["shaded half"]["vs_first"]
    assert clear["ci95"][0] > 0.05 and clear["higher"] == clear["seeds"] == 4
    # a run without human rounds compares on the bright-only figures alone
    assert "+ random: whole" not in res["metrics"] and "bright-only whole" in res["metrics"]
    assert hitl.main(["--compare", f"base={tmp_path}/base-*/hitl.json",
                      f"clear={tmp_path}/clear-*/hitl.json"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "draw-to-draw SD" in out and "higher on 4 of 4 seeds" in out
    with pytest.raises(SystemExit, match="nothing matches"):
        hitl.main(["--compare", f"x={tmp_path}/none-*/hitl.json"])
    _hitl_run(tmp_path / "base-s0-again", 0, 0, 0.8, 0.8)
    with pytest.raises(SystemExit, match="seed 0 train seed 0 twice"):
        hitl.load_setting(str(tmp_path / "base-s0-*" / "hitl.json"))


def test_hitl_tile_counts_carry_blocks_and_the_paired_bootstrap_resamples_them(hitl):
    truth = np.zeros((32, 128, 128), bool)
    truth[:, ::4, :] = True
    pred = truth.copy()
    pred[:, 64:, 64:] = False  # one corner, four blocks of 2 × 2 × 2 tiles, missed whole
    c = hitl.tile_counts(pred, truth)
    assert c.shape == (2 * 4 * 4, 5)
    blocks = hitl.blocks_of(c)
    assert len(np.unique(blocks)) == 1 * 2 * 2  # 32 × 64 × 64 voxels each
    assert list(hitl.blocks_of(c[:, :4])) == list(range(len(c)))  # older records: single tiles
    # a model that misses clustered regions: the paired difference to a perfect one is known
    # less well when whole regions are resampled than when tiles are taken for independent
    rng = np.random.default_rng(0)
    truth = rng.random((64, 256, 256)) < 0.3
    ok, bad = truth.copy(), truth.copy()
    for y in range(0, 256, 64):
        for x in range(0, 256, 64):
            if rng.random() < 0.5:
                bad[:, y : y + 64, x : x + 64] = False
    a, b = hitl.tile_counts(ok, truth), hitl.tile_counts(bad, truth)
    every = lambda r: np.ones(len(r), bool)  # noqa: E731
    d_block, ci_block = hitl.paired_ci([a], [b], every, n=500)
    d_tile, ci_tile = hitl.paired_ci([a[:, :4]], [b[:, :4]], every, n=500)
    assert d_block == d_tile < 0
    assert ci_block[1] - ci_block[0] > 1.5 * (ci_tile[1] - ci_tile[0])


def test_real_em_intervals_resample_blocks_of_columns(real_em):
    rng = np.random.default_rng(1)
    truth = rng.random((4, 1024, 1024)) < 0.3
    pred = truth.copy()
    for y in range(0, 1024, 256):
        for x in range(0, 1024, 256):
            if rng.random() < 0.5:
                pred[:, y : y + 256, x : x + 256] = False  # errors in whole 256² regions
    held = np.ones(truth.shape, bool)
    held[:, :128, :128] = False  # a crop: its column is not scored, the order must still hold
    blocks = real_em.tile_blocks(held)
    c = real_em.tile_counts(pred, truth, held)
    assert len(blocks) == len(c) == 63 and len(np.unique(blocks)) == 16
    assert list(blocks[:8]) == [0, 1, 1, 2, 2, 3, 3, 0]  # y = 0: x = 128 … 896; then (128, 0)
    rec = real_em.tile_dice(pred, truth, held, n=500)
    assert rec["tile_blocks"] == blocks.tolist()
    lo, hi = rec["ci95"]
    single = real_em._weighted_dice(c, real_em.block_weights(None, len(c), 500, rng))
    assert hi - lo > 1.5 * (np.percentile(single, 97.5) - np.percentile(single, 2.5))
