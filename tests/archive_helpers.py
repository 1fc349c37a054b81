"""A small workspace ready for the EMPIAR and BioImage Archive exports (tiny volumes, seconds)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import yaml

from curated.images import add_labels
from curated.images.convert import write_ome_zarr
from curated.segment import annotate_from_truth
from curated.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "metadata" / "fibsem.yaml"


def archive_record(raw: Path) -> dict[str, Any]:
    """The example FIB-SEM record, pointed at a small raw stack, with what the archives need."""
    record = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    record = copy.deepcopy(record)
    record["study"]["authors"][0]["role"] = ["ProjectLeader", "ContactPerson"]
    record["images"] = [
        {
            "name": "raw",
            "image_format": "OME-TIFF",
            "path": str(raw),
            "dtype": "uint16",
            "size_x": 24,
            "size_y": 20,
            "size_z": 12,
            "voxel_size_x": 8.0,
            "voxel_size_y": 8.0,
            "voxel_size_z": 10.0,
            "voxel_size_unit": "nanometer",
            "role": "raw",
        }
    ]
    record["annotations"] = [
        {
            "name": "truth",
            "annotation_overview": "Dense mitochondria ground truth drawn by two annotators.",
            "annotation_type": ["segmentation_mask"],
            "annotation_method": "Drawn slice by slice in napari and reviewed by a second person.",
            "annotation_coverage": "The whole volume.",
            "ai_generated": False,
        }
    ]
    record.pop("sources", None)
    return record


def build_archive_workspace(root: Path) -> Workspace:
    """``root/raw/stack.ome.tif`` (the original) and ``root/ws`` with an OME-Zarr image and labels."""
    rng = np.random.default_rng(1)
    raw_dir = root / "raw"
    raw_dir.mkdir(parents=True)
    stack = rng.integers(0, 4000, size=(12, 20, 24), dtype=np.uint16)
    raw = raw_dir / "stack.ome.tif"
    tifffile.imwrite(
        raw,
        stack,
        photometric="minisblack",
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.008,
            "PhysicalSizeY": 0.008,
            "PhysicalSizeZ": 0.01,
        },
    )
    ws = Workspace.create(root / "ws", record=archive_record(raw))
    image = ws.derived_dir / "cell.ome.zarr"
    write_ome_zarr(stack, image, voxel_size=(10.0, 8.0, 8.0), chunks=8, shard=None, workspace=ws)
    truth = (stack > 2000).astype(np.uint8)
    add_labels(image, "truth", truth, kind="truth", workspace=ws)
    annotate_from_truth(
        image, truth="truth", crops=1, size=8, seed=0, name="annotations", workspace=ws
    )
    return ws
