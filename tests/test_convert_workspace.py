"""With a workspace, a conversion is one T entry with input and store digests and the decision."""

from __future__ import annotations

import numpy as np
import tifffile
from typer.testing import CliRunner

from curated.cli import app
from curated.provenance.digest import digest_tree, sha256_file
from curated.workspace import Workspace


def test_conversion_is_a_transform_entry_in_the_curator_log(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    vol = np.random.default_rng(0).integers(0, 255, (10, 24, 24), dtype=np.uint8)
    src = tmp_path / "raw.tif"
    tifffile.imwrite(
        src,
        vol,
        photometric="minisblack",
        software="VendorScope 1.2",
        extratags=[(65000, "s", 0, "beam=2kV", True)],
    )
    dest = ws.derived_dir / "raw.ome.zarr"
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(src),
            str(dest),
            "--voxel-size",
            "8",
            "4",
            "4",
            "--chunks",
            "8",
            "--shard",
            "16",
            "--workspace",
            str(ws.root),
        ],
    )
    assert result.exit_code == 0, result.output
    entries = list(ws.log.entries())
    assert len(entries) == 1
    e = entries[0]
    assert e["step"] == "T" and e["action"] == "convert" and e["status"] == "ok"
    assert e["inputs"][0]["digest"] == f"sha256:{sha256_file(src)}"
    assert e["outputs"][0]["path"] == "derived/raw.ome.zarr"
    assert e["outputs"][0]["digest"] == digest_tree(dest).digest
    decision = e["details"]["decision"]
    assert decision["lossless"] is True and decision["originals_retained"] is True
    assert any("65000" in item for item in decision["not_carried_over"])
    assert "zarr" in e["software"]
    assert ws.log.verify(files=True).ok


def test_folder_source_is_recorded_with_a_tree_digest_over_its_slices(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    folder = tmp_path / "slices"
    folder.mkdir()
    vol = np.random.default_rng(1).integers(0, 255, (4, 16, 16), dtype=np.uint8)
    for i, p in enumerate(vol):
        tifffile.imwrite(folder / f"z{i}.tif", p)
    from curated.images import convert_to_ome_zarr

    convert_to_ome_zarr(folder, ws.derived_dir / "f.ome.zarr", voxel_size=(8, 4, 4), workspace=ws)
    e = list(ws.log.entries())[-1]
    assert (
        e["inputs"][0]["digest"] == digest_tree(folder).digest
    )  # the folder holds only the slices
    assert e["inputs"][0]["bytes"] == sum(f.stat().st_size for f in folder.glob("*.tif"))


def test_failed_conversion_is_recorded_as_error(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    tifffile.imwrite(tmp_path / "plane.tif", np.zeros((8, 8), np.uint8))
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(tmp_path / "plane.tif"),
            str(ws.derived_dir / "p.ome.zarr"),
            "--voxel-size",
            "1",
            "1",
            "1",
            "--workspace",
            str(ws.root),
        ],
    )
    assert result.exit_code == 1
    e = list(ws.log.entries())[-1]
    assert e["status"] == "error" and "2D" in e["message"]
