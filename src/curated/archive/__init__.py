"""Submissions to the field's image archives: EMPIAR and the BioImage Archive, and PREMIS events.

Each export is a logged ``D`` step over the same ``curated.yaml`` and OME-Zarr
images the repository deposits use; it refuses, naming every missing field at
once, before it writes anything, and never modifies the workspace's sources.
"""

from curated.archive.bia import export_bia, plan_bia
from curated.archive.empiar import export_empiar, plan_empiar, validate_deposition
from curated.archive.pagetab import pagetab_submission
from curated.archive.premis import premis_document, validate_premis, write_premis

__all__ = [
    "export_bia",
    "export_empiar",
    "pagetab_submission",
    "plan_bia",
    "plan_empiar",
    "premis_document",
    "validate_deposition",
    "validate_premis",
    "write_premis",
]
