"""A synthetic FIB-SEM-like sample with ground truth, for tests, the demo and benchmarks.

The volume imitates a block of cell imaged by FIB-SEM (contrast as in EM: dark
membranes on grey cytoplasm):

- label 1, **mitochondria**: random ellipsoids with a dark double-membrane rim,
  a darker matrix and dark cristae sheets across their long axis;
- label 2, **nucleus**: a large irregular body at one side (y) of the volume whose
  envelope is a double membrane interrupted by **nuclear pores**, with
  heterochromatin along its inner side;
- unlabelled distractors that defeat a grey-level threshold: small vesicles with
  dark rims, **lipid droplets** (round, homogeneous, darker than any
  mitochondrion), thin dark **ER** sheets, and cytoplasm texture.

The image is blurred (σ 8 nm), optionally **shaded**, then given Poisson (≈80
counts at white) and Gaussian noise, and stored as uint8. Shading follows the
usual FIB-SEM artifact model (charging, re-deposition, a detector that sees one
side of the trench less): a smooth gain field ``g`` that falls along x to about
``1 - shading`` on the far side, with random low-frequency undulations on top,
and a loss of contrast toward a backlight level ``b`` (``I = g·S + (1-g)·b``,
where S is the unshaded signal); each z slice also gets a small random
brightness drift (milling and beam-current drift). With shading 0.6 the
cytoplasm on the far side is darker than mitochondria are on the near side. Shapes are drawn in physical units, so an anisotropic voxel size
(z larger than y, x) samples the same kind of cell more coarsely along z.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments
give the same bytes. The volume is generated in memory (about 24 bytes per voxel
at peak), so :data:`MAX_VOXELS` bounds it; for bigger test data, tile the sample.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from curated.errors import InputError
from curated.images.ngff import read_ngff
from curated.images.store import JOURNAL, drop_journal, read_group_attrs
from curated.provenance.digest import digest_tree
from curated.results import Result
from curated.workspace import Workspace, recorder

DEFAULT_SHAPE = (64, 192, 192)
DEFAULT_VOXEL_SIZE = (8.0, 8.0, 8.0)
MAX_VOXELS = 64 * 1024**2
"""In-memory generation limit (64 Mi voxels, about 1.5 GiB at peak)."""

MITOCHONDRION = 1
NUCLEUS = 2
TRUTH_PROPERTIES = [
    {"label-value": MITOCHONDRION, "name": "mitochondrion"},
    {"label-value": NUCLEUS, "name": "nucleus"},
]

# grey values (0 black, 1 white) of each compartment before blur, shading and noise
_CYTOPLASM = 0.66
_MEMBRANE = 0.24
_MATRIX = 0.45
_CRISTA = 0.30
_NUCLEOPLASM = 0.58
_HETEROCHROMATIN = 0.42
_ENVELOPE_LUMEN = 0.64
_PORE = 0.50
_VESICLE_LUMEN = 0.72
_LIPID = 0.16
_ER = 0.40
_BACKLIGHT = 0.30
"""Grey level the shaded side's contrast collapses toward (``b`` in ``I = g·S + (1-g)·b``)."""
_Z_DRIFT = 0.03
"""Standard deviation of the per-slice brightness drift, as a fraction, times ``shading``."""
_PHOTONS = 80.0
_READ_NOISE = 0.02


@dataclass(frozen=True)
class FibsemSample:
    """The arrays of a synthetic sample (z, y, x), before they are written."""

    image: np.ndarray
    truth: np.ndarray
    voxel_size: tuple[float, float, float]
    n_mitochondria: int
    n_pores: int


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]
) -> np.ndarray:
    """Zero-mean, unit-std smooth random field."""
    f = ndimage.gaussian_filter(
        rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap"
    )
    return (f - f.mean()) / max(float(f.std()), 1e-6)


def shading_gain(
    shape: tuple[int, ...], voxel_size: np.ndarray, shading: float, rng: np.random.Generator
) -> np.ndarray:
    """The smooth gain field ``g`` (1 = unshaded) of :func:`generate_fibsem`'s shading model.

    ``g`` falls linearly along x from 1 to ``1 - shading`` and carries random
    undulations of ±0.15·shading with a correlation length of about a third of
    the field of view (in y and x; slowly varying in z), clipped to [0.05, 1].
    """
    ramp = np.linspace(0.0, 1.0, shape[2], dtype=np.float32)[None, None, :]
    extent = np.asarray(shape) * voxel_size
    corr = np.maximum(extent / 3.0, voxel_size) / voxel_size
    corr[0] = max(corr[0], shape[0] / 2.0)
    undulation = _smooth_noise(rng, tuple(shape), tuple(corr))
    g = 1.0 - shading * (ramp + np.float32(0.15) * undulation)
    return np.clip(g, 0.05, 1.0).astype(np.float32)


def _shade(
    img: np.ndarray, shading: float, voxel_size: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Apply the shading model: ``I = drift(z) · (g·S + (1-g)·b)``."""
    g = shading_gain(img.shape, voxel_size, shading, rng)
    out = g * img + (np.float32(1.0) - g) * np.float32(_BACKLIGHT)
    drift = 1.0 + shading * _Z_DRIFT * np.cumsum(rng.standard_normal(img.shape[0])) / np.sqrt(
        max(img.shape[0], 1)
    )
    return (out * drift.astype(np.float32)[:, None, None]).astype(np.float32)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


@dataclass
class _Canvas:
    """The volume being drawn: image and truth arrays, the random stream and the coordinates (nm)."""

    shape: tuple[int, int, int]
    vs: np.ndarray
    rng: np.random.Generator
    img: np.ndarray
    truth: np.ndarray
    zz: np.ndarray
    yy: np.ndarray
    xx: np.ndarray

    @property
    def extent(self) -> np.ndarray:
        return np.asarray(self.shape) * self.vs

    def grids(
        self, box: tuple[slice, ...], c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates (nm) of the voxels of ``box`` relative to the point ``c``."""
        return np.meshgrid(
            self.zz[box[0]] - c[0], self.yy[box[1]] - c[1], self.xx[box[2]] - c[2], indexing="ij"
        )


def _checked_geometry(
    shape: tuple[int, int, int], voxel_size: tuple[float, float, float], shading: float
) -> tuple[tuple[int, int, int], np.ndarray]:
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    vs = np.asarray([float(v) for v in voxel_size])
    if len(shape) != 3 or min(shape) < 8:
        msg = f"shape must be three sizes of at least 8 voxels (z y x), not {shape}"
        raise InputError(msg, field="shape")
    if int(np.prod(shape)) > MAX_VOXELS:
        msg = f"{np.prod(shape)} voxels is above the in-memory limit of {MAX_VOXELS}; use a smaller --shape"
        raise InputError(msg, field="shape")
    if len(vs) != 3 or np.any(vs <= 0):
        msg = f"voxel size must be three positive numbers, not {voxel_size}"
        raise InputError(msg, field="voxel_size")
    if not 0.0 <= shading < 1.0:
        msg = f"shading must be in [0, 1), not {shading}"
        raise InputError(msg, field="shading")
    return shape, vs


def generate_fibsem(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    voxel_size: tuple[float, float, float] = DEFAULT_VOXEL_SIZE,
    *,
    shading: float = 0.0,
    seed: int = 0,
) -> FibsemSample:
    """Draw a synthetic sample in memory (the arrays :func:`make_fibsem_sample` writes).

    The structures are drawn in a fixed order from one random stream (``seed``), so the
    same arguments always give the same bytes.
    """
    shape, vs = _checked_geometry(shape, voxel_size, shading)
    rng = np.random.default_rng(seed)
    zz, yy, xx = (
        np.arange(n, dtype=np.float32) * np.float32(v) for n, v in zip(shape, vs, strict=True)
    )
    img = np.full(shape, _CYTOPLASM, dtype=np.float32)
    img += np.float32(0.03) * _smooth_noise(rng, shape, tuple(30.0 / vs))
    cv = _Canvas(shape, vs, rng, img, np.zeros(shape, dtype=np.uint8), zz, yy, xx)
    nucleus, n_pores = _draw_nucleus(cv)
    _draw_er(cv, nucleus)
    blocked = ndimage.binary_dilation(nucleus, iterations=2)
    n_mito = _draw_mitochondria(cv, blocked)
    _draw_lipid_droplets(cv, blocked)
    _draw_vesicles(cv, blocked)
    return FibsemSample(
        image=_image_formation(cv, shading),
        truth=cv.truth,
        voxel_size=(float(vs[0]), float(vs[1]), float(vs[2])),
        n_mitochondria=n_mito,
        n_pores=n_pores,
    )


def _draw_nucleus(cv: _Canvas) -> tuple[np.ndarray, int]:
    """An irregular body centred beyond the far y side, with envelope and pores; returns
    the nucleus mask and the number of pores."""
    img, rng, vs, shape, extent = cv.img, cv.rng, cv.vs, cv.shape, cv.extent
    zz, yy, xx = cv.zz, cv.yy, cv.xx
    centre = np.array([extent[0] * 0.5, extent[1] * 1.02, extent[2] * 0.5])
    radii = np.array([max(extent[0], extent[1]) * 0.75, extent[1] * 0.42, extent[2] * 0.45])
    q = (
        ((zz[:, None, None] - centre[0]) / radii[0]) ** 2
        + ((yy[None, :, None] - centre[1]) / radii[1]) ** 2
        + ((xx[None, None, :] - centre[2]) / radii[2]) ** 2
    )
    q = q + np.float32(0.06) * _smooth_noise(rng, shape, tuple(200.0 / vs))
    inside = q <= 1.0
    del q
    if not inside.any():
        return inside, 0
    d_in = ndimage.distance_transform_edt(inside, sampling=vs).astype(np.float32)
    d_out = ndimage.distance_transform_edt(~inside, sampling=vs).astype(np.float32)
    nucleus = inside | (d_out <= 14.0)
    img[nucleus] = _NUCLEOPLASM
    chrom = inside & (d_in < 110.0) & (_smooth_noise(rng, shape, tuple(40.0 / vs)) > -0.3)
    img[chrom] = _HETEROCHROMATIN
    inner = inside & (d_in <= 8.0)
    lumen = ~inside & (d_out <= 6.0)
    outer = ~inside & (d_out > 6.0) & (d_out <= 14.0)
    img[lumen] = _ENVELOPE_LUMEN
    img[inner | outer] = _MEMBRANE
    # pores: discs of 45 nm radius where the envelope is interrupted, one per ~0.04 µm² of surface
    surface = np.argwhere(inside & (d_in <= 8.0))
    area_um2 = len(surface) * float(np.prod(vs)) / 8.0 / 1e6
    n_pores = int(min(len(surface), max(1, round(area_um2 / 0.04)))) if len(surface) else 0
    env_idx = np.argwhere(inner | lumen | outer)
    for p in surface[rng.choice(len(surface), size=n_pores, replace=False)] if n_pores else []:
        d = np.sqrt((((env_idx - p) * vs) ** 2).sum(axis=1))
        hit = env_idx[d <= 45.0]
        img[hit[:, 0], hit[:, 1], hit[:, 2]] = _PORE
    cv.truth[nucleus] = NUCLEUS
    return nucleus, n_pores


def _draw_er(cv: _Canvas, nucleus: np.ndarray) -> None:
    """ER: thin dark sheets through the cytoplasm (a smooth field's zero set, ~20 nm thick)."""
    rng, vs, shape = cv.rng, cv.vs, cv.shape
    er_field = _smooth_noise(rng, shape, tuple(60.0 / vs))
    grad = np.sqrt(sum(g * g for g in np.gradient(er_field, *vs)))
    er = (np.abs(er_field) < 10.0 * np.maximum(grad, 1e-6)) & ~nucleus
    er &= _smooth_noise(rng, shape, tuple(150.0 / vs)) > 0.3  # patches, not everywhere
    cv.img[er] = _ER


def _draw_mitochondria(cv: _Canvas, blocked: np.ndarray) -> int:
    """Rotated ellipsoids with rim and cristae, not touching the nucleus or each other;
    returns how many were placed (``blocked`` grows by each)."""
    rng, vs, shape, extent = cv.rng, cv.vs, cv.shape, cv.extent
    volume_um3 = float(np.prod(extent)) / 1e9
    target = max(2, int(round(volume_um3 * 18)))
    n_mito = 0
    for _ in range(target * 12):
        if n_mito >= target:
            break
        short = rng.uniform(70.0, 110.0)
        long = short * rng.uniform(1.5, 3.0)
        rot = _random_rotation(rng)
        c = rng.uniform([0, 0, 0], extent)
        reach = np.ceil((long + 20.0) / vs).astype(int)
        centre_vox = np.floor(c / vs).astype(int)
        lo = np.maximum(centre_vox - reach, 0)
        hi = np.minimum(centre_vox + reach + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        gz, gy, gx = cv.grids(box, c)
        local = np.stack([gz, gy, gx], axis=-1) @ rot  # coordinates along the ellipsoid's axes
        r = np.sqrt(
            (local[..., 0] / long) ** 2
            + (local[..., 1] / short) ** 2
            + (local[..., 2] / short) ** 2
        )
        body = r <= 1.0
        if body.sum() < 8 or np.any(blocked[box][r <= 1.15]):
            continue
        depth = (1.0 - r) * short  # approximate distance to the surface in nm
        sub = cv.img[box]
        sub[body] = _MATRIX
        cristae = body & (np.abs(np.sin(np.pi * local[..., 0] / 55.0)) < 0.3) & (depth > 20.0)
        sub[cristae] = _CRISTA
        sub[body & (depth <= 16.0)] = _MEMBRANE
        sub[body & (depth > 6.0) & (depth <= 10.0)] = (
            _MATRIX + 0.08
        )  # the gap between the two membranes
        cv.truth[box][body] = MITOCHONDRION
        blocked[box] |= r <= 1.15
        n_mito += 1
    return n_mito


def _random_sphere(cv: _Canvas, rad: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """A random centre's bounding box (clipped to the volume) and distances from it, in nm."""
    c = cv.rng.uniform([0, 0, 0], cv.extent)
    centre_vox = np.floor(c / cv.vs).astype(int)
    reach = np.ceil((rad + 10) / cv.vs).astype(int)
    lo = np.maximum(centre_vox - reach, 0)
    hi = np.minimum(centre_vox + reach + 1, cv.shape)
    if np.any(hi <= lo):
        return None
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    gz, gy, gx = cv.grids(box, c)
    return box, np.sqrt(gz**2 + gy**2 + gx**2)


def _draw_lipid_droplets(cv: _Canvas, blocked: np.ndarray) -> None:
    """Round, homogeneous and darker than mitochondria (unlabelled)."""
    volume_um3 = float(np.prod(cv.extent)) / 1e9
    n_lipid_target = max(2, int(round(volume_um3 * 6)))
    n_lipid = 0
    for _ in range(n_lipid_target * 10):
        if n_lipid >= n_lipid_target:
            break
        rad = cv.rng.uniform(50.0, 110.0)
        placed = _random_sphere(cv, rad)
        if placed is None:
            continue
        box, d = placed
        if np.any(blocked[box][d <= rad + 8]):
            continue
        cv.img[box][d <= rad] = _LIPID
        blocked[box] |= d <= rad + 8
        n_lipid += 1


def _draw_vesicles(cv: _Canvas, blocked: np.ndarray) -> None:
    """Unlabelled distractors with a dark rim."""
    volume_um3 = float(np.prod(cv.extent)) / 1e9
    for _ in range(max(3, int(volume_um3 * 40))):
        rad = cv.rng.uniform(20.0, 40.0)
        placed = _random_sphere(cv, rad)
        if placed is None:
            continue
        box, d = placed
        if np.any(blocked[box][d <= rad + 8]):
            continue
        sub = cv.img[box]
        sub[d <= rad] = _VESICLE_LUMEN
        sub[(d <= rad) & (d > rad - 10)] = _MEMBRANE


def _image_formation(cv: _Canvas, shading: float) -> np.ndarray:
    """Optics: blur, shading, shot and read noise; the 8-bit image."""
    rng, vs = cv.rng, cv.vs
    img = ndimage.gaussian_filter(cv.img, tuple(8.0 / vs), mode="nearest")
    if shading > 0:
        img = _shade(img, shading, vs, rng)
    img = rng.poisson(np.clip(img, 0, None) * _PHOTONS).astype(np.float32) / np.float32(_PHOTONS)
    img += rng.normal(0.0, _READ_NOISE, size=cv.shape).astype(np.float32)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def make_fibsem_sample(
    dest: str | Path,
    *,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    voxel_size: tuple[float, float, float] = DEFAULT_VOXEL_SIZE,
    shading: float = 0.0,
    seed: int = 0,
    chunks: int = 32,
    shard: int = 96,
    overwrite: bool = False,
    workspace: Workspace | str | Path | None = None,
) -> Result:
    """Write a synthetic FIB-SEM sample as OME-Zarr with a ``truth`` label image.

    Parameters
    ----------
    dest
        Where the ``.ome.zarr`` goes; refused if it exists unless ``overwrite``.
    shape
        Size in voxels (z, y, x). The default, 64×192×192, trains and predicts in a
        few minutes on 2 CPU cores and leaves room for held-out evaluation blocks.
    voxel_size
        Voxel size in nanometres (z, y, x); z larger than y, x makes it anisotropic.
    shading
        Strength S in [0, 1) of the shading model (see the module notes): the gain
        falls along x to about ``1 - S`` with the contrast collapsing toward a
        backlight level, plus smooth undulations and a per-slice drift in z.
        0.3, 0.6 and 0.8 are mild, strong and severe.
    seed
        Seed of every random draw; the same arguments give identical bytes.
    chunks, shard
        Storage layout; shards are the write units of blockwise prediction, so
        small shards (96) let even the small default sample be predicted in parallel.

    Returns
    -------
    Result
        ``path`` is the image; ``details`` has counts and label values.

    Examples
    --------
    >>> make_fibsem_sample("/tmp/cell.ome.zarr", shape=(32, 64, 64))  # doctest: +SKIP
    """
    from curated.images import add_labels, write_ome_zarr

    dest = Path(dest)
    params = {
        "shape": list(shape),
        "voxel_size": list(voxel_size),
        "shading": shading,
        "seed": seed,
    }
    with recorder(
        workspace, "T", "sample-fibsem", params=params, libraries=("numpy", "scipy", "zarr")
    ) as step:
        if dest.exists() and not overwrite and _logged_sample(dest, step.log, params):
            # killed once logged, before the truth's journal went: done, and on record
            drop_journal(dest / "labels" / "truth")
            step.status = "notneeded"
            step.message = "the sample is already made (on record; the run that made it was interrupted before it tidied up)"
            return Result("sample-fibsem", "notneeded", str(dest), step.message, {"seed": seed})
        if dest.exists() and not overwrite:
            if not _unfinished_sample(dest):
                msg = "exists already; choose another destination or pass --overwrite"
                raise InputError(msg, path=dest)
            overwrite = True  # what a killed run left: never content, and made again at once
        sample = generate_fibsem(shape, voxel_size, shading=shading, seed=seed)
        write_ome_zarr(
            sample.image,
            dest,
            voxel_size=sample.voxel_size,
            unit="nanometer",
            name=SAMPLE_NAME,
            chunks=chunks,
            shard=shard,
            overwrite=overwrite,
        )
        add_labels(
            dest,
            "truth",
            sample.truth,
            kind="truth",
            ai_generated=False,
            origin="simulated",
            properties=TRUTH_PROPERTIES,
            keep_journal=True,
        )
        # The image and its truth labels are recorded apart, so that later label images
        # (annotate, predict) written beside the truth never look like a changed image.
        image_only = digest_tree(dest, exclude={"labels"})
        step.add_output(dest, digest=image_only.digest, size=image_only.bytes)
        step.add_output(dest / "labels" / "truth")
        details = {
            "shape": list(sample.image.shape),
            "voxel_size": list(sample.voxel_size),
            "labels": {"truth": {p["name"]: p["label-value"] for p in TRUTH_PROPERTIES}},
            "mitochondria": sample.n_mitochondria,
            "nuclear_pores": sample.n_pores,
            "shading": shading,
            "seed": seed,
        }
        step.details.update(details)
        result = Result(
            "sample-fibsem",
            "ok",
            str(dest),
            f"{sample.n_mitochondria} mitochondria, a nucleus with {sample.n_pores} pores",
            details,
        )
    # once logged: killed before, the truth's journal marks the sample unfinished (and a
    # re-run makes it again)
    drop_journal(dest / "labels" / "truth")
    return result


SAMPLE_NAME = "synthetic FIB-SEM"
"""The image name of a sample (what tells a killed sample's leftovers from other images)."""


def _logged_sample(dest: Path, log: Any, params: dict[str, Any]) -> bool:
    """Whether ``dest`` is a sample made with ``params`` whose entry the curator log holds,
    as it is now, but whose truth labels still hold their journal (a run killed after its
    entry, before it tidied up): its re-run would make it, and record it, a second time."""
    truth = dest / "labels" / "truth"
    if log is None or not (truth / JOURNAL).exists():
        return False
    image, labels = log.recorded_output(dest), log.recorded_output(truth)
    if image is None or labels is None or image.recorded_seq != labels.recorded_seq:
        return False
    entry = next((e for e in log.entries() if e.get("seq") == image.recorded_seq), None)
    if entry is None or entry.get("action") != "sample-fibsem":
        return False
    if (entry.get("params") or {}) != json.loads(json.dumps(params)):
        return False
    return (
        image.digest == digest_tree(dest, exclude={"labels"}).digest
        and labels.digest == digest_tree(truth).digest
    )


def _unfinished_sample(dest: Path) -> bool:
    """Whether ``dest`` is what a killed :func:`make_fibsem_sample` left: a sample image
    not yet finished, or finished without its truth labels finished and logged."""
    try:
        plan = json.loads((dest / JOURNAL / "plan.json").read_bytes())
    except FileNotFoundError:
        plan = None
    except (OSError, ValueError):
        return False
    if isinstance(plan, dict):
        return isinstance(plan.get("plan"), dict) and plan["plan"].get("name") == SAMPLE_NAME
    try:
        got = read_group_attrs(dest)
    except (OSError, ValueError):
        return False
    if got is None:  # killed before the plan was written: nothing but the journal
        return dest.is_dir() and set(os.listdir(dest)) <= {JOURNAL}
    truth = dest / "labels" / "truth"
    name = read_ngff(dest, tolerant=True).name
    return name == SAMPLE_NAME and (not truth.exists() or (truth / JOURNAL).exists())
