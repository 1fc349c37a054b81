"""Each command's result details match the types the CLI reads them through (curated.results)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from pydantic import TypeAdapter, ValidationError

from curated.curation.request import request
from curated.document import write_readme
from curated.images import convert_to_ome_zarr
from curated.metadata import import_ome, init_workspace, set_field
from curated.results import (
    ConvertDetails,
    ImportOmeDetails,
    ReadmeDetails,
    RequestDetails,
    Result,
    SetFieldDetails,
    details_as,
)
from curated.workspace import Workspace
from tests.document_workspaces import complete_record


def conforms(result: Result, kind: type) -> None:
    """``result.details`` holds every key of ``kind`` with a value of the declared type."""
    TypeAdapter(kind).validate_python(result.details, strict=False)
    assert details_as(result, kind) is result.details


def test_the_check_itself_catches_a_producer_that_drifted():
    drifted = Result("request", "ok", details={"asks": [{"priority": "Essential"}], "deferred": []})
    with pytest.raises(ValidationError):
        conforms(drifted, RequestDetails)


def test_request_details(tmp_path):
    ws = init_workspace(tmp_path / "ws", "A sparse record")
    conforms(request(ws), RequestDetails)


def test_set_field_details_written_and_already_set(tmp_path):
    ws = init_workspace(tmp_path / "ws", "t")
    written = set_field(ws, "study.license", "CC-BY-4.0")
    conforms(written, SetFieldDetails)
    assert "still_missing" in written.details
    conforms(set_field(ws, "study.license", "CC-BY-4.0"), SetFieldDetails)


def test_import_ome_details(tmp_path):
    ws = init_workspace(tmp_path / "ws", "t")
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        np.zeros((2, 8, 8), np.uint8),
        imagej=True,
        resolution=(1 / 0.008, 1 / 0.008),
        metadata={"spacing": 0.01, "unit": "micron", "axes": "ZYX"},
    )
    conforms(import_ome(ws, path), ImportOmeDetails)


def test_convert_details(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record={"study": {"title": "t", "authors": []}})
    src = tmp_path / "v.tif"
    volume = np.arange(4 * 16 * 16, dtype=np.uint16).reshape(4, 16, 16)
    tifffile.imwrite(src, volume, photometric="minisblack")
    res = convert_to_ome_zarr(
        src, ws.derived_dir / "v.ome.zarr", voxel_size=(8, 4, 4), workspace=ws
    )
    conforms(res, ConvertDetails)
    assert details_as(res, ConvertDetails)["decision"]["not_carried_over"] == []


def test_readme_details(tmp_path):
    ws = Workspace.create(tmp_path / "ws", record=complete_record())
    conforms(write_readme(ws, figures=False, compute_digests=False), ReadmeDetails)
