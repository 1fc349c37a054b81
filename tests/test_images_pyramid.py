"""Pyramid planning and reducers: anisotropy-aware halving, exact scale/translation, mean and mode."""

from __future__ import annotations

import numpy as np
import pytest

from curated.images.downsample import mean, mode
from curated.images.layout import make_axes, make_layout, plan_levels


def _factors(shape, voxel, chunk=64):
    axes = make_axes("zyx", "nanometer")
    return [lv.factors for lv in plan_levels(shape, voxel, axes, (chunk,) * 3)]


def test_anisotropic_voxels_halve_only_the_finer_axes_first():
    # z 8 nm, xy 4 nm → 8/8/8 → 16/16/16 ...
    assert _factors((256, 1024, 1024), (8, 4, 4))[:3] == [(1, 1, 1), (1, 2, 2), (2, 4, 4)]
    # z 10, xy 4 → 10/8/8 → 20/16/16 (10 < 2*8, so z halves with xy)
    assert _factors((256, 1024, 1024), (10, 4, 4))[:3] == [(1, 1, 1), (1, 2, 2), (2, 4, 4)]
    # z 30, xy 4: xy halved alone while z >= 2x xy (30 vs 4, 8), then z joins (30 < 2*16)
    assert _factors((256, 2048, 2048), (30, 4, 4))[:4] == [
        (1, 1, 1),
        (1, 2, 2),
        (1, 4, 4),
        (2, 8, 8),
    ]


def test_levels_stop_when_the_largest_dimension_fits_one_chunk():
    axes = make_axes("zyx", "nanometer")
    levels = plan_levels((100, 300, 300), (4, 4, 4), axes, (64, 64, 64))
    assert max(levels[-1].shape) <= 64 and max(levels[-2].shape) > 64
    for lv in levels:
        assert lv.shape == tuple(
            -(-n // f) for n, f in zip((100, 300, 300), lv.factors, strict=True)
        )
        assert lv.scale == tuple(4.0 * f for f in lv.factors)
        assert lv.translation == tuple((f - 1) / 2 * 4.0 for f in lv.factors)


def test_channel_axis_is_never_downsampled():
    layout = make_layout(
        (3, 40, 200, 200),
        "uint8",
        make_axes("czyx", "nanometer"),
        (1.0, 8, 4, 4),
        chunks=32,
        shard=64,
    )
    assert all(lv.shape[0] == 3 for lv in layout.levels)
    assert layout.chunks[0] == 1


def test_mean_rounds_half_up_and_handles_odd_edges():
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    out = mean(a, (2, 2))
    # window 1: (1+2+4+5)/4 = 3; edge window: (3+6)/2 = 4.5 → 5
    np.testing.assert_array_equal(out, [[3, 5]])
    assert out.dtype == np.uint8
    f = mean(np.array([[1.0, 2.0, 4.0]], dtype=np.float32), (1, 2))
    np.testing.assert_allclose(f, [[1.5, 4.0]])
    big = np.full((2, 2), 65535, np.uint16)
    assert mean(big, (2, 2))[0, 0] == 65535  # no overflow


def test_mode_picks_the_most_frequent_label_and_breaks_ties_low():
    a = np.array([[[5, 5], [2, 9]], [[5, 2], [2, 5]]], dtype=np.uint32)
    assert mode(a, (2, 2, 2))[0, 0, 0] == 5
    assert mode(np.array([[3, 1], [1, 3]], np.uint8), (2, 2))[0, 0] == 1
    # an odd edge keeps its own labels (no invented values)
    b = np.array([[1, 1, 7]], np.uint16)
    np.testing.assert_array_equal(mode(b, (1, 2)), [[1, 7]])


def test_bad_chunk_and_shard_parameters():
    from curated.errors import InputError

    axes = make_axes("zyx", "nanometer")
    with pytest.raises(InputError, match="multiple of the chunk"):
        make_layout((100, 100, 100), "uint8", axes, (1, 1, 1), chunks=64, shard=100)
    with pytest.raises(InputError, match="ngff_version"):
        make_layout((100, 100, 100), "uint8", axes, (1, 1, 1), ngff_version="0.6")


def test_overwriting_a_store_with_another_layout_rebuilds_every_level(tmp_path):
    from curated.images import open_image, write_ome_zarr

    rng = np.random.default_rng(2)
    first = rng.integers(0, 255, (20, 36, 36), dtype=np.uint8)
    second = rng.integers(0, 255, (24, 40, 40), dtype=np.uint8)
    dest = tmp_path / "i.ome.zarr"
    write_ome_zarr(first, dest, voxel_size=(4, 4, 4), chunks=8, shard=16)
    write_ome_zarr(second, dest, voxel_size=(4, 4, 4), chunks=16, shard=32, overwrite=True)
    img = open_image(dest)
    np.testing.assert_array_equal(img.levels[0][:], second)
    np.testing.assert_array_equal(img.levels[1][:], mean(second, (2, 2, 2)))
