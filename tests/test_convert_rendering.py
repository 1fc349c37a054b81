"""TIFFs meant to be shown inverted (MinIsWhite, ImageJ's inverting LUT; a white-to-black grey
palette) keep their values and mark the OME-Zarr's rendering inverted; colour palettes are named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.images import convert_to_ome_zarr, open_image

VOL = np.random.default_rng(2).integers(0, 256, (4, 16, 16), dtype=np.uint8)
RAMP = np.linspace(0, 65535, 256).astype(np.uint16)


def _omero_channel(store):
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]
    return attrs["omero"]["channels"][0]


@pytest.mark.parametrize(
    ("kind", "inverted", "note"),
    [
        ("minisblack", False, None),
        ("miniswhite", True, "rendering is marked inverted"),
        ("grey-palette", False, None),
        ("reversed-grey-palette", True, "rendering is marked inverted"),
        ("colour-palette", False, "ColorMap: a palette TIFF"),
    ],
)
def test_rendering_follows_the_tiff_and_values_stay(tmp_path, kind, inverted, note):
    src = tmp_path / f"{kind}.tif"
    if kind.endswith("palette"):
        cmap = {
            "grey-palette": np.stack([RAMP] * 3),
            "reversed-grey-palette": np.stack([RAMP[::-1]] * 3),
            "colour-palette": np.stack([RAMP, RAMP[::-1], np.full(256, 30000, np.uint16)]),
        }[kind]
        tifffile.imwrite(src, VOL, photometric="palette", colormap=cmap)
    else:
        tifffile.imwrite(src, VOL, photometric=kind)
    dest = tmp_path / "o.ome.zarr"
    res = convert_to_ome_zarr(src, dest, voxel_size=(8, 4, 4))
    np.testing.assert_array_equal(open_image(dest).levels[0][:], VOL)
    assert _omero_channel(dest)["inverted"] is inverted
    notes = [n for n in res.details["decision"]["not_carried_over"] if "TIFF tag" not in n]
    assert (notes == []) if note is None else any(note in n for n in notes), notes


def test_the_cli_says_why_an_image_is_rendered_inverted(tmp_path):
    src = tmp_path / "inv.tif"
    tifffile.imwrite(src, VOL, photometric="miniswhite")
    out = CliRunner().invoke(
        app, ["convert", str(src), str(tmp_path / "o.ome.zarr"), "--voxel-size", "8", "4", "4"]
    )
    assert out.exit_code == 0, out.output
    assert "MinIsWhite" in out.output and "marked inverted" in " ".join(out.output.split())
