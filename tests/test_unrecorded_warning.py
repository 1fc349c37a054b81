"""A command that changes an image inside a workspace without --workspace says so: the
curator log does not record it, and verifying the log's files will report the image changed."""

from __future__ import annotations

import numpy as np
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.images import convert_to_ome_zarr
from curated.metadata import init_workspace
from curated.workspace import Workspace, enclosing_workspace


def _labels_add(image, labels, *extra):
    return CliRunner().invoke(
        app, ["labels", "add", str(image), "--name", "cells", "--from", str(labels), *extra]
    )


def test_labels_added_inside_a_workspace_without_it_are_warned_about(tmp_path):
    ws = init_workspace(tmp_path / "ws", "unrecorded")
    vol = np.random.default_rng(0).integers(0, 255, (4, 16, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    image = ws.root / "derived" / "s.ome.zarr"
    convert_to_ome_zarr(tmp_path / "s.tif", image, voxel_size=(8, 4, 4), workspace=ws)
    tifffile.imwrite(tmp_path / "l.tif", (vol > 128).astype(np.uint8), photometric="minisblack")
    assert enclosing_workspace(image) == ws.root.resolve()

    out = _labels_add(image, tmp_path / "l.tif")
    assert out.exit_code == 0, out.output
    said = " ".join(out.output.split())
    assert "not in its curator log" in said and f"--workspace {ws.root.resolve()}" in said
    assert not Workspace(ws.root).log.verify(files=True).ok  # what the warning foretells

    again = _labels_add(image, tmp_path / "l.tif", "--overwrite", "--workspace", str(ws.root))
    assert again.exit_code == 0, again.output
    assert "not in its curator log" not in " ".join(again.output.split())
    assert Workspace(ws.root).log.verify(files=True).ok


def test_images_outside_any_workspace_get_no_warning(tmp_path):
    vol = np.zeros((4, 16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", vol, photometric="minisblack")
    image = tmp_path / "s.ome.zarr"
    convert_to_ome_zarr(tmp_path / "s.tif", image, voxel_size=(8, 4, 4))
    tifffile.imwrite(tmp_path / "l.tif", vol, photometric="minisblack")
    assert enclosing_workspace(image) is None
    out = _labels_add(image, tmp_path / "l.tif")
    assert out.exit_code == 0, out.output
    assert "curator log" not in out.output
