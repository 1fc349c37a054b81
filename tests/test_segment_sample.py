"""The synthetic FIB-SEM sample: deterministic, two labelled structures, shading, OME-Zarr output."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError
from curated.images import open_image, validate_ome_zarr
from curated.segment import _store, generate_fibsem, make_fibsem_sample

SHAPE = (24, 64, 64)


def test_same_seed_gives_identical_bytes_and_another_seed_differs() -> None:
    a = generate_fibsem(SHAPE, seed=3)
    b = generate_fibsem(SHAPE, seed=3)
    c = generate_fibsem(SHAPE, seed=4)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.truth.tobytes() == b.truth.tobytes()
    assert a.image.tobytes() != c.image.tobytes()


def test_sample_holds_mitochondria_and_a_nucleus_with_em_contrast() -> None:
    s = generate_fibsem((32, 96, 96), seed=0)
    assert s.image.dtype == np.uint8
    assert set(np.unique(s.truth)) == {0, 1, 2}
    assert s.n_mitochondria >= 2 and s.n_pores >= 1
    cytoplasm = s.image[s.truth == 0].mean()
    mito = s.image[s.truth == 1].mean()
    assert mito < cytoplasm - 10  # dark organelles on grey cytoplasm


def test_shading_darkens_the_far_x_side_and_collapses_its_contrast() -> None:
    """I = g·S + (1-g)·b: the far side is darker and its organelles stand out less."""
    flat_s = generate_fibsem((24, 96, 128), seed=1, shading=0.0)
    shaded_s = generate_fibsem((24, 96, 128), seed=1, shading=0.6)
    flat, shaded, truth = flat_s.image.astype(float), shaded_s.image.astype(float), flat_s.truth
    assert np.array_equal(truth, shaded_s.truth)
    near, far = (
        (slice(None), slice(None), slice(0, 16)),
        (slice(None), slice(None), slice(-32, None)),
    )
    assert shaded[near].mean() == pytest.approx(flat[near].mean(), rel=0.1)
    assert shaded[far].mean() < 0.85 * flat[far].mean()

    def contrast(img, region):
        t = truth[region]
        return img[region][t == 0].mean() - img[region][t == 1].mean()

    assert contrast(shaded, far) < 0.6 * contrast(flat, far)
    # the far side's cytoplasm is about as dark as the near side's mitochondria: no global threshold works
    assert shaded[far][truth[far] == 0].mean() < shaded[near][truth[near] == 1].mean() + 15


def test_dark_distractors_defeat_a_grey_level_threshold() -> None:
    """Lipid droplets and ER are as dark as mitochondria or darker, and unlabelled."""
    s = generate_fibsem((32, 128, 128), seed=0)
    img, truth = s.image.astype(float), s.truth
    mito_median = np.median(img[truth == 1])
    dark = img <= mito_median
    assert (
        truth[dark] != 1
    ).mean() > 0.3  # most of what a threshold at the mitochondria's level finds is not one


def test_anisotropic_voxels_sample_the_same_cell_more_coarsely() -> None:
    iso = generate_fibsem((32, 48, 48), (8, 8, 8), seed=2)
    aniso = generate_fibsem((16, 48, 48), (16, 8, 8), seed=2)
    assert aniso.voxel_size == (16.0, 8.0, 8.0)
    assert abs((iso.truth == 2).mean() - (aniso.truth == 2).mean()) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shape": (4, 64, 64)}, "shape"),
        ({"shading": 1.0}, "shading"),
        ({"voxel_size": (0, 8, 8)}, "voxel_size"),
    ],
)
def test_bad_sample_arguments_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError) as exc:
        generate_fibsem(**{"shape": SHAPE, **kwargs})
    assert exc.value.field == field


def test_make_fibsem_sample_writes_valid_ome_zarr_with_truth(tmp_path) -> None:
    dest = tmp_path / "cell.ome.zarr"
    r = make_fibsem_sample(dest, shape=SHAPE, voxel_size=(16, 8, 8), shading=0.3, seed=5)
    assert r.ok and r.details["mitochondria"] >= 1
    img = open_image(dest)
    assert img.shape == SHAPE and tuple(img.voxel_size) == (16.0, 8.0, 8.0)
    assert "truth" in img.label_names()
    attrs = _store.label_curated_attrs(dest, "truth")
    assert attrs["kind"] == "truth" and attrs["ai_generated"] is False
    assert validate_ome_zarr(dest) == []
    expected = generate_fibsem(SHAPE, (16, 8, 8), shading=0.3, seed=5)
    assert np.array_equal(img.levels[0][...], expected.image)
    assert np.array_equal(_store.label_level0(dest, "truth")[...], expected.truth)
    with pytest.raises(InputError):
        make_fibsem_sample(dest, shape=SHAPE)


def test_cli_sample_fibsem(tmp_path) -> None:
    dest = tmp_path / "s.ome.zarr"
    res = CliRunner().invoke(
        app,
        [
            "sample",
            "fibsem",
            str(dest),
            "--shape",
            "16",
            "48",
            "48",
            "--shading",
            "0.5",
            "--seed",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert open_image(dest).shape == (16, 48, 48)
    res = CliRunner().invoke(app, ["sample", "fibsem", str(dest), "--shape", "16", "48", "48"])
    assert res.exit_code == 1
