"""REMBI metadata: the schema's generated model, validation, OME/TIFF header import, edits.

``schemas/curated.yaml`` (LinkML) is the source of truth; :mod:`curated.metadata.model`
is generated from it (``python -m curated.metadata.generate``).

Public API
----------
validate_record, load_record, ValidationReport, Issue
    Check a record (dict, file or workspace) and say what is wrong, field by field.
skeleton_record, init_workspace
    Start a workspace with a ``curated.yaml`` skeleton.
from_ome, import_ome, OmeImport
    Read an image's header metadata; merge it into a workspace's record.
set_field
    Change one field of a workspace's record.
record_view, RecordView
    Read a record (valid or not) through typed, tolerant objects with the schema's names.
"""

from __future__ import annotations

from curated.metadata.crosswalk import to_datacite
from curated.metadata.edit import init_workspace, set_field, skeleton_record
from curated.metadata.io import load_record_dict
from curated.metadata.model import CuratedRecord
from curated.metadata.ome import OmeImport, from_ome, import_ome
from curated.metadata.validate import (
    REMBI_MODULES,
    SCHEMA_VERSION,
    Issue,
    ModuleCompleteness,
    ValidationReport,
    load_record,
    validate_record,
)
from curated.metadata.view import RecordView, record_view


def schema_path():
    """The LinkML schema shipped inside the package (a copy of ``schemas/curated.yaml``)."""
    from importlib import resources

    return resources.files("curated").joinpath("data/curated.yaml")


__all__ = [
    "REMBI_MODULES",
    "SCHEMA_VERSION",
    "CuratedRecord",
    "Issue",
    "ModuleCompleteness",
    "OmeImport",
    "RecordView",
    "ValidationReport",
    "from_ome",
    "import_ome",
    "init_workspace",
    "load_record",
    "load_record_dict",
    "record_view",
    "schema_path",
    "set_field",
    "skeleton_record",
    "to_datacite",
    "validate_record",
]
