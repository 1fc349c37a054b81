"""A small but complete workspace for the bag tests, and the checks every bag must pass."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import bagit
import numpy as np

from curated.images import add_labels, write_ome_zarr
from curated.package import load_profile, validate_bag
from curated.package.compat import rfc_path_decoding
from curated.package.profiles import check_profile
from curated.provenance.rocrate_check import validate_crate
from curated.workspace import Workspace

RECORD: dict[str, Any] = {
    "study": {
        "title": "Mitochondria of HeLa cells by FIB-SEM",
        "description": "A tiny FIB-SEM test volume with a mitochondria label image.",
        "keywords": ["FIB-SEM", "volume EM"],
        "license": "CC-BY-4.0",
        "publication_year": 2026,
        "publisher": "Example University",
        "authors": [
            {
                "family_name": "Doe",
                "given_name": "Jane",
                "email": "jane.doe@example.org",
                "contact": True,
                "orcid": "0000-0002-1825-0097",
                "affiliation": {"name": "Example University"},
            }
        ],
    }
}


def build_workspace(root: Path) -> Workspace:
    """Workspace with an OME-Zarr image + labels, a model folder and package, README, figures, FAIR, check."""
    ws = Workspace.create(root, record=RECORD)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(16, 16, 16), dtype=np.uint8)
    image = ws.derived_dir / "cell.ome.zarr"
    write_ome_zarr(img, image, voxel_size=(8.0, 8.0, 8.0), chunks=8, shard=None, workspace=ws)
    add_labels(image, "mito", (img > 128).astype(np.uint8), kind="truth", workspace=ws)
    model = ws.models_dir / "unet-1"
    model.mkdir(parents=True)
    (model / "model.json").write_text(
        json.dumps({"format": "curated-unet/1", "id": "unet-1"}) + "\n"
    )
    (model / "weights.pt").write_bytes(rng.bytes(4096))
    with zipfile.ZipFile(ws.models_dir / "unet-1.bioimageio.zip", "w") as zf:
        zf.writestr("rdf.yaml", "type: model\n")
    (ws.root / "README.md").write_text("# Mitochondria of HeLa cells\n", encoding="utf-8")
    (ws.root / "figures").mkdir()
    (ws.root / "figures" / "overview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(64))
    (ws.curation_dir / "fair.json").write_text('{"score": 1}\n')
    (ws.curation_dir / "fair.md").write_text("# FAIR\n")
    (ws.curation_dir / "check.json").write_text('{"flags": []}\n')
    return ws


def copy_workspace(template: Path, dest: Path) -> Workspace:
    shutil.copytree(template, dest, symlinks=True)
    return Workspace(dest)


LOG_FILES = ("curation/log.jsonl", "curation/log.jsonl.lock")


def snapshot(root: Path) -> dict[str, Any]:
    """Checksums of every file (links as their target text) and the log's bytes."""
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, os.fsencode(root)).decode("utf-8", "surrogateescape")
            if rel in LOG_FILES:
                continue
            if os.path.islink(full):
                files[rel] = "link:" + os.fsdecode(os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    files[rel] = hashlib.sha256(fh.read()).hexdigest()
        dirs = [os.path.relpath(os.path.join(dirpath, d), os.fsencode(root)) for d in dirnames]
        for d in dirs:
            files[d.decode("utf-8", "surrogateescape") + "/"] = "dir"
    log = root / "curation" / "log.jsonl"
    return {"files": files, "log": log.read_bytes() if log.exists() else b""}


def assert_untouched(before: dict[str, Any], root: Path) -> None:
    after = snapshot(root)
    assert after["files"] == before["files"]
    # the log only grows: earlier entries stay byte for byte
    assert after["log"].startswith(before["log"])


def assert_valid_everywhere(bag: Path, *, profile: str | None = None) -> None:
    """curated's validator, bagit-python, bagit_profile (offline) and the RO-Crate check."""
    report = validate_bag(bag, profile=profile)
    prof = load_profile(profile or "curated")
    problems = report.problems
    if (
        prof.serialization == "required"
    ):  # an unpacked copy of a serialized bag: the archive was checked
        problems = [p for p in problems if "serialization is required" not in p]
    assert not problems, problems
    # bagit-python cannot decode %25 in manifest paths (its issue 157): see curated.package.compat
    with rfc_path_decoding():
        bagit.Bag(str(bag)).validate()
    info = bagit.Bag(str(bag)).info if "%" not in "".join(os.listdir(bag)) else {}
    if profile is None:
        assert info.get("BagIt-Profile-Identifier") == prof.identifier
    assert [p for p in check_profile(bag, prof) if "serialization is required" not in p] == []
    # ro-crate-py read-back and our own checks; the full roc-validator run (25 s) is in test_bag.py
    problems = validate_crate(bag / "data", validator=False)
    assert problems == [], problems
