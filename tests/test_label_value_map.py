"""0/255 masks (ImageJ, EM challenge data): ``--map 255=1`` on ``labels add`` and ``annotate import``.

255 means "not annotated" to ``curated annotate`` and ``curated segment train``; a binary
mask saved as 0/255 must have its 255 rewritten on the way in, the source left untouched,
and a mask added without the map must say so instead of failing later.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.errors import InputError, SegmentationError
from curated.images import add_labels, open_image, validate_ome_zarr, write_ome_zarr
from curated.images.downsample import mode
from curated.images.labels import parse_value_map, remap_values
from curated.segment import UNANNOTATED, _store, annotate_from_truth, import_annotation

SHAPE = (16, 40, 40)


@pytest.fixture
def image(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8)
    write_ome_zarr(vol, tmp_path / "img.ome.zarr", voxel_size=(8, 4, 4), chunks=8, shard=16)
    return tmp_path / "img.ome.zarr"


def _mask() -> np.ndarray:
    """A 0/255 mask: one block of structure covering a third of the volume's x extent."""
    m = np.zeros(SHAPE, np.uint8)
    m[:, :, :14] = 255
    return m


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_0_255_mask_mapped_on_the_way_in_trains_from_its_crops(image, tmp_path) -> None:
    f = tmp_path / "mask.tif"
    tifffile.imwrite(f, _mask(), photometric="minisblack")
    before = _sha(f)
    args = ["labels", "add", str(image), "--name", "truth", "--from", str(f), "--kind", "truth"]
    r = CliRunner().invoke(app, [*args, "--map", "255=1", "--class-name", "1=mito", "--json"])
    assert r.exit_code == 0, r.output
    assert _sha(f) == before  # the source is only read
    lab = open_image(image).open_label("truth")
    np.testing.assert_array_equal(lab.levels[0][:], (_mask() == 255).astype(np.uint8))
    for k in range(1, len(lab.levels)):  # the pyramid is built from the mapped values
        f_k = tuple(round(a / b) for a, b in zip(lab.scale[k], lab.scale[k - 1], strict=True))
        np.testing.assert_array_equal(lab.levels[k][:], mode(lab.levels[k - 1][:], f_k))
    assert lab.attrs["curated"]["value_map"] == {"255": 1}
    assert "255→1" in r.output
    assert validate_ome_zarr(image) == []
    # the curator's crops now hold the structure as label 1, not as "unannotated"
    annotate_from_truth(image, crops=2, size=8, seed=0, name="ann", region="x<0.3")
    ann = _store.label_level0(image, "ann")[...]
    assert np.count_nonzero(ann == 1) == 2 * 8**3


def test_a_0_255_mask_without_the_map_says_how_to_fix_it(image, tmp_path) -> None:
    f = tmp_path / "mask.tif"
    tifffile.imwrite(f, _mask(), photometric="minisblack")
    r = add_labels(image, "truth", f, kind="truth")
    assert "--map 255=1" in r.message and "value_map" not in r.details["curated"]
    assert "values" not in r.details  # the value list stays out of the result
    # a model's output may use any value: no hint
    p = add_labels(image, "pred", f, kind="prediction", ai_generated=True)
    assert "--map" not in p.message
    # from-truth refuses a crop holding 255 and names the fix
    with pytest.raises(SegmentationError, match="--map 255=1"):
        annotate_from_truth(image, truth="truth", crops=1, size=8, seed=0, region="x<0.3")
    assert "annotations" not in _store.label_names(image)


def test_value_maps_swap_widen_and_refuse_nonsense(image) -> None:
    lab = np.zeros(SHAPE, np.uint8)
    lab[:4], lab[4:8] = 1, 2
    r = add_labels(image, "swapped", lab, value_map={1: 2, 2: 1})
    got = open_image(image).open_label("swapped").levels[0][:]
    assert np.all(got[:4] == 2) and np.all(got[4:8] == 1) and np.all(got[8:] == 0)
    assert r.details["curated"]["value_map"] == {"1": 2, "2": 1}
    wide = add_labels(image, "wide", lab, value_map={2: 1000})
    assert wide.details["dtype"] == "uint16"
    assert int(open_image(image).open_label("wide").levels[0][:].max()) == 1000
    assert parse_value_map(["255=1", " 255 = 1 "]) == {255: 1}
    for bad in (["255"], ["a=1"], ["-1=2"], ["1=-2"], ["255=1", "255=2"]):
        with pytest.raises(InputError):
            parse_value_map(bad)
    bad_cli = CliRunner().invoke(
        app, ["labels", "add", str(image), "--name", "x", "--from", "nowhere.tif", "--map", "2"]
    )
    assert bad_cli.exit_code != 0 and "OLD=NEW" in bad_cli.output
    assert "x" not in open_image(image).label_names()
    np.testing.assert_array_equal(
        remap_values(np.array([3, 255, 0]), {255: 1}, np.uint8), [3, 1, 0]
    )


def test_an_imported_0_255_crop_is_mapped_or_flagged(image, tmp_path) -> None:
    crop = np.zeros((4, 8, 8), np.uint8)
    crop[:, :4] = 255
    f = tmp_path / "fiji.tif"
    tifffile.imwrite(f, crop, photometric="minisblack")
    plain = import_annotation(image, source_file=f, offset=(0, 0, 0), name="a")
    assert "--map 255=1" in plain.message
    assert plain.details["annotated_voxels"] == int((crop == 0).sum())
    r = CliRunner().invoke(
        app,
        ["annotate", "import", str(image), "--from", str(f), "--offset", "0", "0", "0"]
        + ["--name", "b", "--map", "255=1", "--json"],
    )
    assert r.exit_code == 0, r.output
    b = _store.label_level0(image, "b")[...]
    assert np.all(b[:4, :4, :8] == 1) and np.all(b[:4, 4:8, :8] == 0)
    assert np.all(b[4:] == UNANNOTATED)
