"""Paper-style pictures: every evaluation block shown, colours named, model-card cover readable."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from curated.document.figures import (
    FN_COLOUR,
    FP_COLOUR,
    TITLE_H,
    TP_COLOUR,
    BlockPanel,
    block_errors_png,
    model_cover_png,
    viridis,
)


def _panel(i: int, shift: int = 2) -> BlockPanel:
    yy, xx = np.mgrid[:32, :32]
    t = (yy - 16) ** 2 + (xx - 14) ** 2 < 60
    return BlockPanel(
        (i, 0, 0), np.random.default_rng(i).normal(size=(32, 32)), t, np.roll(t, shift, 1)
    )


def _img(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_every_block_is_drawn_however_many_there_are():
    """The old figure drew only the first 4 of 6 blocks."""
    heights = {}
    for n in (1, 6, 7, 20, 30):
        img = _img(block_errors_png([_panel(i) for i in range(n)], class_name="mitochondrion"))
        # each block contributes its own error tile: count the magenta (false positive) tiles
        fp = np.all(img == FP_COLOUR, axis=-1)
        rows_with_fp = np.flatnonzero(fp.any(axis=1))
        cols_with_fp = np.flatnonzero(fp.any(axis=0))
        assert rows_with_fp.size and cols_with_fp.size
        heights[n] = img.shape[0]
        # tiles: connected runs of columns holding magenta = one per layout column
        runs = 1 + int(np.sum(np.diff(cols_with_fp) > 1))
        expected_columns = 1 if n <= 6 else 2 if n <= 24 else 3
        assert runs >= expected_columns
    assert heights[6] > heights[1]


def test_error_colours_mark_true_and_false_positives_and_misses():
    img = _img(block_errors_png([_panel(0)], class_name="mitochondrion"))
    for colour in (TP_COLOUR, FP_COLOUR, FN_COLOUR):
        assert np.all(img == colour, axis=-1).any()


def test_a_perfect_prediction_has_no_error_colours_in_its_tiles():
    p = _panel(0, shift=0)
    img = _img(block_errors_png([p], class_name="x"))
    legend_top = TITLE_H + 20 + 20 + 128  # title, column names, block line, tile; then the legend
    assert not np.all(img[:legend_top] == FP_COLOUR, axis=-1).any()
    assert not np.all(img[:legend_top] == FN_COLOUR, axis=-1).any()


def test_cover_is_two_to_one_and_shows_the_probability_where_it_lies():
    raw = np.random.default_rng(0).normal(size=(64, 64))
    prob = np.zeros((32, 32))
    prob[:, 16:] = 1.0
    img = _img(model_cover_png(raw, prob, (16, 16), class_name="mitochondrion", side=256))
    assert img.shape[:2] == (256, 512)
    # the probability's right half is 1 (viridis yellow), its left half 0 (viridis purple)
    cy = 128
    assert tuple(img[cy, 256 + 4 * 44]) == tuple(viridis(np.array([1.0]))[0])
    assert tuple(img[cy, 256 + 4 * 20]) == tuple(viridis(np.array([0.0]))[0])


def test_viridis_runs_dark_to_bright():
    ramp = viridis(np.linspace(0, 1, 11)).astype(int).sum(axis=-1)
    assert ramp[0] < ramp[5] < ramp[10]
