"""The ``box3`` local contrast kernel: near-Gaussian, cost independent of σ, exact blockwise on integer images."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from segment_helpers import train_tiny

from curated.images import open_image
from curated.segment import _store, load_model, predict
from curated.segment.annotate import annotate_from_truth
from curated.segment.preprocess import (
    BOX_PASSES,
    Preprocessing,
    box_mean_var,
    box_width,
    default_preprocessing,
    exact_sums_fit,
    gaussian_radius,
)
from curated.segment.sample import make_fibsem_sample

predict_module = importlib.import_module("curated.segment.predict")
preprocess_module = importlib.import_module("curated.segment.preprocess")


def _brute_force(a: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The same cascade in float64 with scipy, cropped to the valid part."""
    k = np.ones(w) / w

    def cascade(f: np.ndarray) -> np.ndarray:
        for axis in (1, 2):
            for _ in range(BOX_PASSES):
                f = ndimage.convolve1d(f, k, axis=axis, mode="constant")
        return f

    r = BOX_PASSES * (w - 1) // 2
    f = a.astype(np.float64)
    m = cascade(f)[:, r:-r, r:-r]
    return m, cascade(f * f)[:, r:-r, r:-r] - m * m


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_box_statistics_equal_the_cascade_and_do_not_depend_on_the_block(dtype) -> None:
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        a = rng.normal(300.0, 80.0, (3, 50, 61)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, (3, 50, 61), endpoint=True).astype(dtype)
    w = 7
    mean, var = box_mean_var(a, w)
    ref_m, ref_v = _brute_force(a, w)
    scale = float(np.abs(a.astype(np.float64)).max())
    assert mean.shape == var.shape == (3, 50 - 18, 61 - 18)
    assert np.abs(mean - ref_m).max() <= 1e-6 * scale
    assert np.abs(var - ref_v).max() <= 1e-6 * float(ref_v.max())
    # the same voxels computed inside a smaller block
    m2, v2 = box_mean_var(a[:, 7:, 4:], w)
    if np.dtype(dtype).kind == "f":  # float64 running sums: equal to rounding
        np.testing.assert_allclose(m2, mean[:, 7:, 4:], rtol=1e-6)
    else:  # exact integer sums: bit-identical
        assert np.array_equal(m2, mean[:, 7:, 4:]) and np.array_equal(v2, var[:, 7:, 4:])


def test_the_widest_kernel_on_16_bit_extremes_does_not_overflow() -> None:
    """σ 128 voxels (the largest the defaults allow): w = 257, 3 passes per axis = 257⁶ weight."""
    w = box_width(128.0)
    r = BOX_PASSES * (w - 1) // 2
    full = np.full((1, 2 * r + 3, 2 * r + 3), 65535, dtype=np.uint16)
    mean, var = box_mean_var(full, w)
    assert mean.shape == (1, 3, 3) and np.all(mean == 65535.0) and np.all(var == 0.0)
    checker = (np.indices(full.shape[1:]).sum(axis=0) % 2 * 65535).astype(np.uint16)[None]
    mean, var = box_mean_var(checker, w)
    assert np.allclose(mean, 65535 / 2, rtol=1e-4)
    assert np.allclose(np.sqrt(var), 65535 / 2, rtol=1e-4)
    lo = np.full((1, 2 * r + 1, 2 * r + 1), -32768, dtype=np.int16)
    assert box_mean_var(lo, w)[0].item() == -32768.0


def test_exact_sums_are_only_used_where_int64_cannot_overflow() -> None:
    w = box_width(128.0)  # 257
    assert exact_sums_fit(w, BOX_PASSES, 5_000)  # any block a worker pre-processes in practice
    assert not exact_sums_fit(w, BOX_PASSES, 100_000)  # a 100,000-voxel row: float64 sums
    # the bound is tight: one more step of the digit sums would pass 2**63
    n = (2**63 - 1) // (255 * w ** (2 * BOX_PASSES - 1))
    assert exact_sums_fit(w, BOX_PASSES, n) and not exact_sums_fit(w, BOX_PASSES, n + 1)


@pytest.mark.parametrize(
    ("dtype", "sigma"), [(np.uint8, 80.0), (np.uint8, 50.0), (np.uint16, 50.0), (np.uint16, 16.0)]
)
def test_one_running_sum_plane_gives_the_digit_sums_bits(dtype, sigma, monkeypatch) -> None:
    """The single-plane shortcut (squares of 8-bit images at 4.6-8 nm) must not change a bit:
    which way a slice is summed depends on its size, i.e. on the block it lies in."""
    rng = np.random.default_rng(3)
    w = box_width(sigma)
    nbytes = np.dtype(dtype).itemsize
    top = 256**nbytes - 1
    side = 3 * w + 5
    u = rng.integers(0, top, (side, side + 3), endpoint=True).astype(np.int64)
    u[: w // 2, : w // 2] = top  # a saturated corner: the largest sums
    for values, vmax, n in ((u, top, nbytes), (u * u, top * top, 2 * nbytes)):
        digits = sum(
            preprocess_module._box_valid(d, w, BOX_PASSES).astype(np.float64) * float(256**k)
            for k, d in enumerate(preprocess_module._digits(values, n))
        )
        with monkeypatch.context() as m:
            if n <= 2:  # one or two digits: the shortcut must be taken at these sizes
                m.setattr(preprocess_module, "_digits", lambda *a: pytest.fail("digits used"))
            got = preprocess_module._exact_box_sum(values, vmax, w, BOX_PASSES)
        assert got.dtype == np.float64 and np.array_equal(got, digits)


def test_box_width_matches_the_gaussian_variance_and_halo() -> None:
    for sigma in (2.0, 16.0, 50.0, 80.0, 128.0):
        w = box_width(sigma)
        assert w % 2 == 1
        assert abs(np.sqrt(BOX_PASSES * (w * w - 1) / 12.0) - sigma) <= 1.0
        box = Preprocessing(local_contrast_sigma=sigma, local_contrast_kernel="box3")
        # about the Gaussian's 3 σ, so the network's input geometry barely changes
        assert abs(box.halo[1] - gaussian_radius(sigma)) <= 3


def test_box3_normalisation_is_close_to_the_gaussian_and_far_cheaper_per_sigma() -> None:
    rng = np.random.default_rng(0)
    s = ndimage.gaussian_filter(rng.normal(120, 30, (2, 200, 200)), (0, 2, 2))
    x = np.linspace(0, 1, 200)[None, None, :]
    raw = np.clip((1.0 - 0.5 * x) * s + 20 * x, 0, 255).astype(np.uint8)
    outs = []
    for kernel in ("gaussian", "box3"):
        pre = Preprocessing(local_contrast_sigma=12.0, local_contrast_kernel=kernel).fit([raw])
        outs.append(pre.apply(raw))
    g, b = outs
    h_g = Preprocessing(local_contrast_sigma=12.0).halo[1]
    h_b = Preprocessing(local_contrast_sigma=12.0, local_contrast_kernel="box3").halo[1]
    d = h_b - h_g  # crop the larger output to the smaller one's voxels
    if d > 0:
        g = g[:, d:-d, d:-d]
    elif d < 0:
        b = b[:, -d:d, -d:d]
    assert g.shape == b.shape
    assert float(np.abs(g - b).mean()) < 0.05  # of the [-1, 1] range


def test_kernel_choice_recording_and_bad_values() -> None:
    assert default_preprocessing((5.0, 5.0, 5.0), np.uint8).local_contrast_kernel == "box3"
    assert default_preprocessing((5.0, 5.0, 5.0), np.int16).local_contrast_kernel == "box3"
    assert default_preprocessing((5.0, 5.0, 5.0), np.float32).local_contrast_kernel == "gaussian"
    assert default_preprocessing((5.0, 5.0, 5.0), np.uint32).local_contrast_kernel == "gaussian"
    pre = Preprocessing(local_contrast_sigma=3.0, local_contrast_kernel="box3")
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    # a model.json written before the kernel was recorded keeps the Gaussian it was trained with
    old = {"local_contrast_sigma": 3.0, "low": 0.0, "high": 1.0}
    assert Preprocessing.from_dict(old).local_contrast_kernel == "gaussian"
    with pytest.raises(ValueError, match="local_contrast_kernel"):
        Preprocessing(local_contrast_sigma=3.0, local_contrast_kernel="median")


def test_blockwise_prediction_with_box3_equals_one_whole_volume_pass(tmp_path) -> None:
    image = tmp_path / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(12, 36, 40), voxel_size=(8, 8, 8), seed=2, chunks=8, shard=16)
    annotate_from_truth(image, crops=2, size=10, seed=0, name="ann")
    model = tmp_path / "model"
    train_tiny(image, model, iterations=2, preprocessing=None)  # the default: box3 on uint8
    meta = json.loads((model / "model.json").read_text())
    assert meta["preprocessing"]["local_contrast_kernel"] == "box3"
    m = load_model(model)
    raw = np.asarray(open_image(image).levels[0][...])
    out = m.geometry.valid_output(raw.shape)
    pad = [(h, o - n + h) for h, o, n in zip(m.halo, out, raw.shape, strict=True)]
    x = m.preprocessing.apply(np.pad(raw, pad, mode="reflect"))
    with torch.no_grad():
        ref = torch.sigmoid(m.network("cpu")(torch.from_numpy(x)[None, None]))[0, 0].numpy()
    ref = ref[: raw.shape[0], : raw.shape[1], : raw.shape[2]]
    # per-tile inputs (no shared whole-image input): each tile normalised in its own block
    predict_module.release_shared_input()
    old = predict_module.WHOLE_INPUT_VOXELS
    predict_module.WHOLE_INPUT_VOXELS = 0
    try:
        predict(
            model, image, name="p", block=(8, 8, 12), probabilities=True, device="cpu", workers=1
        )
    finally:
        predict_module.WHOLE_INPUT_VOXELS = old
    got = _store.label_level0(image, "p-probability")[...]
    assert np.array_equal(np.rint(ref * 255).astype(np.uint8), got)


def test_normalising_a_region_holds_its_output_and_one_slice_not_copies_of_the_region() -> None:
    """A worker's memory is budgeted as the raw region plus 4 bytes per output voxel
    (``predict.input_bytes``); whole-block float32 arithmetic held five copies of the
    output and a float32 copy of the raw region on top (25 bytes per voxel at 5 nm)."""
    import tracemalloc

    pre = Preprocessing(
        local_contrast_sigma=20.0,
        local_contrast_kernel="box3",
        local_contrast_mean=120.0,
        local_contrast_std=30.0,
        low=-50.0,
        high=300.0,
    )
    h = pre.halo
    raw = np.random.default_rng(0).integers(0, 256, (24, 2 * h[1] + 60, 2 * h[2] + 60), np.uint8)
    area = raw.shape[1] * raw.shape[2]
    tracemalloc.start()
    try:
        out = pre.apply(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (24, 60, 60) and out.dtype == np.float32
    slice_temporaries = 12 * 8 * area  # a dozen int64/float64 planes of one raw slice
    assert peak <= out.nbytes + slice_temporaries
    assert peak < raw.nbytes * 4  # no float32 copy of the padded region


def test_pre_processing_never_writes_into_the_callers_array() -> None:
    """The percentile step works in place; with no filter to run, its input is the caller's."""
    pre = Preprocessing(low=0.0, high=10.0)
    raw = np.linspace(0.0, 20.0, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    kept = raw.copy()
    out = pre.apply(raw)
    assert np.array_equal(raw, kept) and out.min() == -1.0 and out.max() == 1.0
    view = raw[:, 1:, :]  # a view into a larger array
    pre.apply(view)
    assert np.array_equal(raw, kept)
