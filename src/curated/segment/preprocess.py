"""Pre-processing recorded in a model, applied identically in training and blockwise prediction.

Every step is a fixed function of a voxel's neighbourhood, so a block read with
:meth:`Preprocessing.halo` extra voxels on each side gives exactly the values a
whole-volume pass would give. Nothing is estimated per block: the intensity
percentiles are computed once, on the training regions, and stored in
``model.json``.

Steps, in order (each optional except the last):

1. ``denoise_sigma``: Gaussian smoothing (σ in voxels, all axes).
2. ``shading_sigma``: shading correction in the yx plane: divide by a heavily
   blurred copy (σ in voxels along y and x) and multiply by ``shading_reference``
   (the training regions' mean), so slow brightness ramps such as a darkened side
   of the sample are flattened while structures keep their contrast.
3. ``local_contrast_sigma``: CLAHE-like local contrast equalisation: subtract a
   local mean and divide by a local standard deviation (σ in voxels, yx plane),
   then map back to the stored global mean and spread. Unlike skimage's CLAHE,
   whose tiles are anchored to the image it is given, this is translation-invariant,
   so it stays exact blockwise. ``local_contrast_kernel`` says how the local
   statistics are weighted: ``gaussian`` (truncated at 3 σ; a direct convolution
   whose cost grows with σ: 481 taps per axis at σ = 80, i.e. 400 nm at 5 nm, which
   made pre-processing 95 % of a training run on isotropic FIB-SEM) or ``box3``
   (three box filters per axis with the same variance, a near-Gaussian B-spline
   weighting computed with running sums: its cost does not depend on σ). On
   integer images of up to 16 bits the running sums are exact integer sums (split
   into base-256 digits so they cannot overflow; rows longer than
   :func:`exact_sums_fit` allows, over ~30,000 voxels at σ 128, use float64), so a voxel's value does not
   depend on where the block around it starts: bit-identical blockwise. On float
   images the sums are float64 and equal across blocks to about 1e-12.
4. Percentile normalisation: ``low``/``high`` (the ``percentiles`` of the
   training regions after steps 1-3) map to -1/+1; values are clipped to [-1, 1].

Volume borders are handled by reflecting the image (numpy ``reflect`` mode), in
training and prediction alike; see :func:`read_region`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from curated.segment.defaults import LOCAL_CONTRAST_NM

TRUNCATE = 3.0
"""Gaussian kernels are cut at 3 σ; halos follow from this."""


LOCAL_CONTRAST_KERNELS = ("gaussian", "box3")
BOX_PASSES = 3
"""Box filters per axis in the ``box3`` kernel (a quadratic B-spline weighting)."""


def gaussian_radius(sigma: float) -> int:
    """The radius scipy uses for a Gaussian of ``sigma`` truncated at :data:`TRUNCATE`."""
    return int(TRUNCATE * float(sigma) + 0.5) if sigma > 0 else 0


def box_width(sigma: float, passes: int = BOX_PASSES) -> int:
    """Odd width ``w`` of ``passes`` box filters whose cascade has about the variance σ² of a Gaussian.

    A box of width ``w`` has variance ``(w² − 1) / 12``; ``passes`` of them add up.
    """
    if sigma <= 0:
        return 1
    w = math.sqrt(12.0 * float(sigma) ** 2 / passes + 1.0)
    return 2 * max(1, round((w - 1.0) / 2.0)) + 1


def _box_valid(a: np.ndarray, w: int, passes: int) -> np.ndarray:
    """``passes`` valid (unpadded) box sums of width ``w`` along both axes of a 2D array.

    Each pass is one running sum and one subtraction written into the running sum's
    copy: the sum over ``[i, i + w)`` is ``c[i + w - 1] - c[i - 1]`` with ``c[-1] = 0``.
    """
    for axis in (0, 1):
        for _ in range(passes):
            c = np.cumsum(a, axis=axis, dtype=a.dtype)
            n = c.shape[axis]
            if axis == 0:
                a = c[w - 1 :].copy()
                a[1:] -= c[: n - w]
            else:
                a = c[:, w - 1 :].copy()
                a[:, 1:] -= c[:, : n - w]
    return a


def _digits(u: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` base-256 digits of a non-negative int64 array (least significant first)."""
    return [(u >> (8 * k)) & 255 for k in range(n)]


def sums_exactly(dtype: Any) -> bool:
    """Whether ``box3`` sums images of ``dtype`` exactly: integers of up to 16 bits."""
    dt = np.dtype(dtype)
    return dt.kind in "ui" and dt.itemsize <= 2


def default_kernel(dtype: Any = None) -> str:
    """The local contrast kernel for images of ``dtype``: ``box3`` where it sums exactly
    (integers of up to 16 bits), else ``gaussian`` (also when the type is unknown)."""
    return "box3" if dtype is not None and sums_exactly(dtype) else "gaussian"


def exact_sums_fit(w: int, passes: int, length: int, top: int = 255) -> bool:
    """Whether int64 running sums of values up to ``top`` cannot overflow for rows of ``length``.

    The last pass's cumulative sum adds up ``length`` window sums of ``2·passes − 1``
    earlier passes, each at most ``top · w^(2·passes − 1)``. ``top`` is 255 for one
    base-256 digit, the default.
    """
    return int(top) * int(w) ** (2 * passes - 1) * int(length) < 2**63


def _exact_box_sum(u: np.ndarray, top: int, w: int, passes: int) -> np.ndarray:
    """The box cascade of a non-negative int64 slice ``u`` (values up to ``top``), exact, as float64.

    One running-sum plane when its sums fit int64 and the result has the same bits as
    the base-256 digits of ``top``'s width summed apart, which is the fallback: either every sum
    stays below 2⁵³ (all exact in float64), or there are at most two digits whose sums
    are each below 2⁵³, so both ways round the same exact integer once. The choice
    depends on the slice's size, so identical bits keep blockwise results identical.
    One plane does a third of the work of an 8-bit image's squares.
    """
    weight = int(w) ** (2 * passes)
    digits = max(1, (int(top).bit_length() + 7) // 8)
    same_bits = top * weight < 2**53 or (digits <= 2 and 255 * weight < 2**53)
    if same_bits and exact_sums_fit(w, passes, max(u.shape), top):
        return _box_valid(u, w, passes).astype(np.float64)
    terms = (
        _box_valid(d, w, passes).astype(np.float64) * float(256**k)
        for k, d in enumerate(_digits(u, digits))
    )
    total = next(terms)
    for t in terms:  # in digit order, as the sums were always added
        total = total + t
    return total


def box_mean_var(
    raw: np.ndarray, w: int, passes: int = BOX_PASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance under a ``passes``-box cascade of width ``w`` in yx, slice by slice.

    Returns float32 arrays cropped by ``passes · (w − 1) / 2`` in y and x. Integer
    input of up to 16 bits is summed exactly (int64 sums of base-256 digits of ``x``
    and ``x²``, each below 2⁶³ for any ``w`` the pre-processing allows), so the result
    at a voxel is independent of the block it was computed in; other input is summed in
    float64. Memory: a few copies of one slice.
    """
    r = passes * (w - 1) // 2
    nz, ny, nx = raw.shape
    mean = np.empty((nz, ny - 2 * r, nx - 2 * r), dtype=np.float32)
    var = np.empty_like(mean)
    weight = float(w) ** (2 * passes)
    # rows too long for exact int64 sums (over ~30,000 voxels at σ 128) fall back to float64
    exact = sums_exactly(raw.dtype) and exact_sums_fit(w, passes, max(ny, nx))
    shift = int(np.iinfo(raw.dtype).min) if exact else 0
    nbytes = raw.dtype.itemsize
    for z in range(nz):
        if exact:
            u = raw[z].astype(np.int64) - shift  # non-negative, < 2**(8 * nbytes)
            top = 256**nbytes - 1
            s1 = _exact_box_sum(u, top, w, passes)
            s2 = _exact_box_sum(u * u, top * top, w, passes)
        else:
            f = raw[z].astype(np.float64)
            s1, s2 = _box_valid(f, w, passes), _box_valid(f * f, w, passes)
        m = s1 / weight
        var[z] = np.maximum(s2 / weight - m * m, 0.0)
        mean[z] = m + shift
    return mean, var


@dataclass(frozen=True)
class Preprocessing:
    """The pre-processing a model expects; stored under ``preprocessing`` in ``model.json``."""

    percentiles: tuple[float, float] = (0.5, 99.5)
    low: float | None = None
    """Intensity mapped to -1 (computed once on the training regions)."""
    high: float | None = None
    """Intensity mapped to +1."""
    denoise_sigma: float = 0.0
    shading_sigma: float = 0.0
    shading_reference: float | None = None
    local_contrast_sigma: float = 0.0
    local_contrast_mean: float | None = None
    local_contrast_std: float | None = None
    local_contrast_kernel: str = "gaussian"
    """``gaussian`` or ``box3`` (see the module notes); model.json files without it are ``gaussian``."""
    border: str = "reflect"

    def __post_init__(self) -> None:
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            msg = f"percentiles must satisfy 0 <= low < high <= 100, not {self.percentiles}"
            raise ValueError(msg)
        for name in ("denoise_sigma", "shading_sigma", "local_contrast_sigma"):
            if getattr(self, name) < 0:
                msg = f"{name} must be >= 0"
                raise ValueError(msg)
        if self.local_contrast_kernel not in LOCAL_CONTRAST_KERNELS:
            msg = f"local_contrast_kernel must be one of {', '.join(LOCAL_CONTRAST_KERNELS)}, not {self.local_contrast_kernel!r}"
            raise ValueError(msg)
        if self.border != "reflect":
            msg = f"only border='reflect' is supported, not {self.border!r}"
            raise ValueError(msg)

    # ----------------------------------------------------------------- geometry
    @property
    def halo(self) -> tuple[int, int, int]:
        """Extra input voxels per side the filters need (added to the network's context)."""
        d = gaussian_radius(self.denoise_sigma)
        s = gaussian_radius(self.shading_sigma)
        c = self._contrast_radius
        return (d, d + s + c, d + s + c)

    @property
    def _contrast_radius(self) -> int:
        if self.local_contrast_sigma <= 0:
            return 0
        if self.local_contrast_kernel == "box3":
            return BOX_PASSES * (box_width(self.local_contrast_sigma) - 1) // 2
        return gaussian_radius(self.local_contrast_sigma)

    @property
    def fitted(self) -> bool:
        return self.low is not None and self.high is not None

    # ------------------------------------------------------------------ applying
    def _filters(self, raw: np.ndarray) -> np.ndarray:
        """Steps 1-3 on a block with halo; returns the block cropped by the halo."""
        raw = np.asarray(raw)
        # float32 where a step needs it: the box3 statistics read the integers, so the
        # whole padded region (up to 25 times the inner block at 5 nm) is never copied
        x = raw
        d = gaussian_radius(self.denoise_sigma)
        s = gaussian_radius(self.shading_sigma)
        c = self._contrast_radius
        if self.denoise_sigma > 0:
            x = ndimage.gaussian_filter(
                _f32(x), self.denoise_sigma, truncate=TRUNCATE, mode="nearest"
            )
            x = x[d : x.shape[0] - d, d : x.shape[1] - d, d : x.shape[2] - d]
        if self.shading_sigma > 0:
            if self.shading_reference is None:
                msg = "shading correction is not fitted (no shading_reference)"
                raise ValueError(msg)
            x = _f32(x)
            blur = ndimage.gaussian_filter(
                x, (0.0, self.shading_sigma, self.shading_sigma), truncate=TRUNCATE, mode="nearest"
            )
            x = x / np.maximum(blur, 1e-3) * np.float32(self.shading_reference)
            x = x[:, s : x.shape[1] - s, s : x.shape[2] - s]
        if self.local_contrast_sigma > 0:
            if self.local_contrast_mean is None or self.local_contrast_std is None:
                msg = "local contrast equalisation is not fitted"
                raise ValueError(msg)
            if self.local_contrast_kernel == "box3":
                # the raw integers when nothing ran before (exact sums), else the float values
                src = raw if self.denoise_sigma == 0 and self.shading_sigma == 0 else x
                x = self._box_contrast(src, x, c)
            else:
                sig = (0.0, self.local_contrast_sigma, self.local_contrast_sigma)
                x = _f32(x)
                g_mean = ndimage.gaussian_filter(x, sig, truncate=TRUNCATE, mode="nearest")
                g_sq = ndimage.gaussian_filter(x * x, sig, truncate=TRUNCATE, mode="nearest")
                mean = g_mean[:, c : x.shape[1] - c, c : x.shape[2] - c]
                var = (g_sq - g_mean * g_mean)[:, c : x.shape[1] - c, c : x.shape[2] - c]
                inner = x[:, c : x.shape[1] - c, c : x.shape[2] - c]
                x = self._contrast(inner, mean, var)
        return _f32(x)

    def _contrast(self, inner: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """``inner`` with the local ``mean`` and ``var`` taken out, mapped to the stored mean and spread."""
        assert self.local_contrast_mean is not None and self.local_contrast_std is not None
        std = np.sqrt(np.maximum(var, 0.0)) + np.float32(1e-3 * max(self.local_contrast_std, 1.0))
        return (_f32(inner) - mean) / std * np.float32(self.local_contrast_std) + np.float32(
            self.local_contrast_mean
        )

    def _box_contrast(self, src: np.ndarray, x: np.ndarray, c: int) -> np.ndarray:
        """The ``box3`` local contrast step, one slice at a time into one float32 block.

        Memory: the output (4 bytes per inner voxel) and one slice's temporaries, not
        the five float32 copies of the block that whole-block arithmetic made (20 bytes
        per output voxel: 390 MB for a 144 x 848 x 848 region at 5 nm). Element-wise float32
        arithmetic does not depend on how the block is cut, so the values are the same.
        """
        w = box_width(self.local_contrast_sigma)
        out = np.empty((x.shape[0], x.shape[1] - 2 * c, x.shape[2] - 2 * c), dtype=np.float32)
        for z in range(x.shape[0]):
            mean, var = box_mean_var(src[z : z + 1], w)
            out[z] = self._contrast(x[z : z + 1, c : x.shape[1] - c, c : x.shape[2] - c], mean, var)
        return out

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Pre-process a block read with :attr:`halo` voxels on each side; returns the inner block in [-1, 1]."""
        if not self.fitted:
            msg = "pre-processing is not fitted (no intensity percentiles)"
            raise ValueError(msg)
        x = self._filters(raw)
        if np.may_share_memory(x, raw) or not x.flags.writeable:
            x = x.copy()  # never write into the caller's array
        lo, hi = np.float32(self.low), np.float32(self.high)
        # in place: the same float32 steps as ``(x - lo) * scale - 1`` without two temporaries
        x -= lo
        x *= np.float32(2.0) / max(hi - lo, np.float32(1e-6))
        x -= np.float32(1.0)
        return np.clip(x, -1.0, 1.0, out=x)

    def fit(self, regions: list[np.ndarray]) -> Preprocessing:
        """Compute the stored statistics once, from training regions read with :attr:`halo`."""
        fitted = self
        if self.shading_sigma > 0:
            ref = float(np.mean([np.mean(r, dtype=np.float64) for r in regions]))
            fitted = replace(fitted, shading_reference=ref)
        if self.local_contrast_sigma > 0:
            partial = replace(fitted, local_contrast_sigma=0.0)
            halo = partial.halo
            flat = [_crop_extra(r, self.halo, halo) for r in regions]
            vals = np.concatenate([partial._filters(r).ravel() for r in flat])
            fitted = replace(
                fitted, local_contrast_mean=float(vals.mean()), local_contrast_std=float(vals.std())
            )
        vals = np.concatenate([fitted._filters(r).ravel() for r in regions])
        lo, hi = np.percentile(vals, self.percentiles)
        if not hi > lo:
            hi = lo + 1.0
        return replace(fitted, low=float(lo), high=float(hi))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        d["order"] = [
            "denoise",
            "shading",
            "local_contrast",
            "percentile_normalisation",
            "clip[-1,1]",
        ]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "percentiles" in fields:
            fields["percentiles"] = tuple(fields["percentiles"])
        # written before the kernel was recorded: the Gaussian it then was
        fields.setdefault("local_contrast_kernel", "gaussian")
        return cls(**fields)


def default_preprocessing(
    voxel_size: tuple[float, float, float] | None, dtype: Any = None
) -> Preprocessing:
    """The pre-processing ``train`` uses when none is given: local contrast normalisation.

    Its σ is :data:`~curated.segment.defaults.LOCAL_CONTRAST_NM` (400 nm) in the yx
    plane, converted to voxels of ``voxel_size`` (nm; 50 voxels when unknown) and
    kept within 2–128 voxels: wider than a mitochondrion (200–1000 nm across),
    so organelles keep their contrast, narrow enough to remove the slow brightness
    and contrast changes of FIB-SEM shading (charging, detector shadowing, drift).
    The operation is translation-invariant (Gaussian local mean and spread), so
    blockwise prediction stays identical to a whole-volume pass, and it makes
    the input independent of slow gain and offset changes (``I = g·S + o``).

    The local statistics use the ``box3`` kernel (cost independent of σ, exact on
    integer images) when ``dtype`` is an integer type of up to 16 bits, else the
    Gaussian.
    """
    if voxel_size is None:
        sigma = 50.0
    else:
        yx = min(float(voxel_size[1]), float(voxel_size[2]))
        sigma = LOCAL_CONTRAST_NM / yx if yx > 0 else 50.0
    sigma = float(min(max(round(sigma, 1), 2.0), 128.0))
    return Preprocessing(local_contrast_sigma=sigma, local_contrast_kernel=default_kernel(dtype))


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32, copy=False)


def _crop_extra(region: np.ndarray, have: tuple[int, ...], want: tuple[int, ...]) -> np.ndarray:
    sl = tuple(
        slice(h - w, region.shape[i] - (h - w))
        for i, (h, w) in enumerate(zip(have, want, strict=True))
    )
    return region[sl]


# --------------------------------------------------------------------- reading
def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices ``start..stop-1`` of a virtual axis mirrored into ``0..n-1`` (numpy ``reflect``)."""
    idx = np.arange(start, stop)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def read_region(array: Any, start: tuple[int, ...], stop: tuple[int, ...]) -> np.ndarray:
    """Read ``[start, stop)`` of a 3D array-like (zarr, numpy), reflecting beyond its borders.

    Only the in-bounds bounding box is read from ``array``; the result is the same
    whatever size the request, so a block and a whole-volume pass see the same
    values at the same virtual coordinates.
    """
    shape = tuple(int(s) for s in array.shape)
    inside = all(a >= 0 and b <= n for a, b, n in zip(start, stop, shape, strict=True))
    if inside:
        return np.asarray(array[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))])
    idx = [reflect_indices(a, b, n) for a, b, n in zip(start, stop, shape, strict=True)]
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    box = np.asarray(array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])
    return box[np.ix_(*[i - a for i, a in zip(idx, lo, strict=True)])]
