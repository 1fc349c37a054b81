"""Submissions to the field's image archives: EMPIAR and the BioImage Archive, and PREMIS events.

Each export is a logged ``D`` step over the same ``curated.yaml`` and OME-Zarr
images the repository deposits use; it refuses, naming every missing field at
once, before it writes anything, and never modifies the workspace's sources.
"""
