"""Palette (indexed) PNG slices: read as their indices, as a palette TIFF is, and said so.

ImageJ saves an image shown with a LUT as a palette PNG whose indices are the data; a
grey-ramp palette is plain grey, a white-to-black one shows as MinIsWhite does. `curated
check` names each slice's grey as `convert` reads it."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image

from curated.curation import check
from curated.curation.formats import inspect_png
from curated.errors import ConversionError
from curated.images import convert_to_ome_zarr
from curated.images.sources import open_source

VOL = (np.arange(3 * 12 * 10) % 13).astype(np.uint8).reshape(3, 12, 10)
GLASBEY = [(i * 37) % 256 for i in range(768)]
RAMP = [v for i in range(256) for v in (i, i, i)]
RAMP_DOWN = [v for i in range(255, -1, -1) for v in (i, i, i)]


def _save(path, plane, palette, **kw):
    im = Image.fromarray(plane)
    im.putpalette(palette)  # mode L -> P, the pixels kept as indices
    im.save(path, **kw)
    assert Image.open(path).mode == "P"


def _folder(tmp_path, palette, **kw):
    folder = tmp_path / "png"
    folder.mkdir(parents=True)
    for i, plane in enumerate(VOL):
        _save(folder / f"s{i}.png", plane, palette, **kw)
    return folder


@pytest.mark.parametrize("bits", [8, 4])
def test_colour_palette_pngs_convert_as_their_indices_with_a_note(tmp_path, bits):
    folder = _folder(tmp_path, GLASBEY[: 3 * (1 << bits)], bits=bits)
    assert (folder / "s0.png").read_bytes()[24:26] == bytes([bits, 3])
    src = open_source(folder)
    assert np.dtype(src.dtype) == np.uint8 and not src.inverted
    np.testing.assert_array_equal(src.read((slice(0, 3), slice(0, 12), slice(0, 10))), VOL)
    assert any("palette PNG" in n for n in src.not_carried)
    res = convert_to_ome_zarr(folder, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "o.ome.zarr" / "0")[:], VOL)
    assert any("palette PNG" in n for n in res.details["decision"]["not_carried_over"])
    assert inspect_png(folder / "s1.png", 0)["photometric"] == "palette"


def test_a_grey_ramp_palette_is_grey_and_a_reversed_one_is_inverted(tmp_path):
    up = _folder(tmp_path / "a", RAMP)
    ramp = open_source(up)
    assert not ramp.inverted and not any("PLTE" in n for n in ramp.not_carried)
    down = _folder(tmp_path / "b", RAMP_DOWN)
    src = open_source(down)
    assert src.inverted and any("white-to-black" in n for n in src.not_carried)
    convert_to_ome_zarr(down, tmp_path / "o.ome.zarr", voxel_size=(30, 4, 4))
    omero = zarr.open_group(tmp_path / "o.ome.zarr").attrs["ome"]["omero"]
    assert omero["channels"][0]["inverted"] is True
    assert inspect_png(down / "s0.png", 0)["photometric"] == "MinIsWhite"
    assert inspect_png(up / "s0.png", 0)["photometric"] == "MinIsBlack"


def test_check_and_convert_agree_on_a_slice_with_another_palette(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i, plane in enumerate(VOL):
        Image.fromarray(plane).save(raw / f"s{i}.png")  # grey
    _save(raw / "s3.png", VOL[0], RAMP)  # a grey ramp: no odd slice
    _save(raw / "s4.png", VOL[1], RAMP_DOWN)  # white to black: one
    src = open_source(raw)
    assert src.shape == (5, 12, 10) and not src.inverted
    assert len(src.warnings) == 1 and "s4.png (MinIsWhite)" in src.warnings[0]
    report = check(None, [raw], write=False)
    odd = [f for f in report.flags_by_code("slice-series") if "differ" in f.message]
    assert len(odd) == 1 and odd[0].paths == ["raw/s4.png"], [f.message for f in odd]
    assert "MinIsWhite" in odd[0].message


@pytest.mark.parametrize(("mode", "match"), [("RGB", "RGB PNG"), ("RGBA", "RGBA PNG")])
def test_colour_pngs_are_still_refused_and_check_names_them(tmp_path, mode, match):
    folder = _folder(tmp_path, GLASBEY)
    Image.fromarray(VOL[1]).convert(mode).save(folder / "s1.png")
    with pytest.raises(ConversionError, match=match):
        open_source(folder)
    assert inspect_png(folder / "s1.png", 0)["photometric"] == mode
