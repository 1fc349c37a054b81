"""validate_ome_zarr: both validators plus the checks they leave out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curated.images import add_labels, open_image, validate_ome_zarr, write_ome_zarr


@pytest.fixture
def store(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, (20, 40, 40), dtype=np.uint8)
    write_ome_zarr(vol, tmp_path / "i.ome.zarr", voxel_size=(8, 4, 4), chunks=16, shard=32)
    return tmp_path / "i.ome.zarr"


def _edit(store, fn):
    meta = json.loads((store / "zarr.json").read_text())
    fn(meta["attributes"]["ome"]["multiscales"][0])
    (store / "zarr.json").write_text(json.dumps(meta))


def test_written_image_is_valid_and_has_what_the_spec_asks(store):
    assert validate_ome_zarr(store) == []
    img = open_image(store)
    assert img.ngff_version == "0.5"
    assert [a["name"] for a in img.ome["multiscales"][0]["axes"]] == ["z", "y", "x"]
    assert all(list(lv.metadata.dimension_names) == ["z", "y", "x"] for lv in img.levels)
    ch = img.ome["omero"]["channels"][0]
    assert ch["window"]["min"] == 0 and ch["window"]["max"] == 255
    assert 0 <= ch["window"]["start"] < ch["window"]["end"] <= 255
    assert img.levels[0].shards is not None


def test_unit_abbreviation_is_caught(store):
    _edit(store, lambda ms: [a.update(unit="nm") for a in ms["axes"]])
    assert any("UDUNITS" in p for p in validate_ome_zarr(store))


def test_wrong_translation_is_caught(store):
    def shift(ms):
        ms["datasets"][1]["coordinateTransformations"][1]["translation"] = [0.0, 0.0, 0.0]

    _edit(store, shift)
    assert any("translation" in p for p in validate_ome_zarr(store))
    # curated's windowed-mean convention, not the spec's: other writers' stores pass without it
    assert validate_ome_zarr(store, conventions=False) == []
    _edit(store, lambda ms: [a.update(unit="nm") for a in ms["axes"]])
    assert any("UDUNITS" in p for p in validate_ome_zarr(store, conventions=False))


def test_non_integer_scale_ratio_is_caught(store):
    def scale(ms):
        ms["datasets"][1]["coordinateTransformations"][0]["scale"] = [8.0, 6.0, 6.0]

    _edit(store, scale)
    assert any("integer multiple" in p for p in validate_ome_zarr(store))


def test_label_with_wrong_shape_or_levels_is_caught(store):
    img = open_image(store)
    add_labels(img, "seg", np.ones(img.shape, np.uint8))
    meta_path = store / "labels" / "seg" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"] = meta["attributes"]["ome"][
        "multiscales"
    ][0]["datasets"][:-1]
    meta_path.write_text(json.dumps(meta))
    problems = validate_ome_zarr(store)
    assert problems and any("levels" in p or "label" in p for p in problems)


def test_missing_level_array_is_caught(store):
    import shutil

    shutil.rmtree(store / "1")
    assert validate_ome_zarr(store)
