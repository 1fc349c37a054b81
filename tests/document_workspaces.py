"""Workspaces for the README / FAIR / DataCite tests: a complete one, a bare one, a non-ASCII one.

The tiny OME-Zarr images are written with zarr-python directly (NGFF 0.5 layout),
so these tests depend only on the format, not on the converter.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from curated.provenance.digest import digest_path
from curated.workspace import Workspace, recorder

SHAPE = (12, 40, 56)
"""(z, y, x) of level 0; level 1 halves y and x."""
VOXEL = (20.0, 5.0, 5.0)
AXES = ("z", "y", "x")


def complete_record(*, non_ascii: bool = False) -> dict[str, Any]:
    """A record with every field the README and the FAIR checklist read."""
    rec: dict[str, Any] = {
        "schema_version": "1.0.0",
        "study": {
            "title": "Mitochondria of HeLa cells by FIB-SEM",
            "description": "A FIB-SEM volume of a HeLa cell with mitochondria segmented by a 3D U-Net and checked by hand.",
            "keywords": ["FIB-SEM", "volume EM", "mitochondria"],
            "license": "CC-BY-4.0",
            "authors": [
                {
                    "family_name": "Doe",
                    "given_name": "Jane",
                    "email": "jane.doe@example.org",
                    "orcid": "0000-0002-1825-0097",
                    "affiliation": {
                        "name": "European Molecular Biology Laboratory",
                        "ror": "https://ror.org/03mstc592",
                    },
                    "role": ["DataCollector"],
                    "contact": True,
                },
                {
                    "family_name": "Roe",
                    "given_name": "Richard",
                    "orcid": "0000-0001-5109-3700",
                    "affiliation": {"name": "EMBL"},
                },
            ],
            "funding": [
                {
                    "funder": "European Research Council",
                    "funder_ror": "https://ror.org/0472cxd90",
                    "award_id": "ERC-2026-123456",
                }
            ],
            "publications": [
                {
                    "title": "Organelles in 3D",
                    "authors": "Doe J, Roe R",
                    "year": 2026,
                    "doi": "10.1234/organelles.2026",
                }
            ],
            "related_identifiers": [
                {
                    "identifier": "https://github.com/example/analysis",
                    "identifier_type": "URL",
                    "relation_type": "IsSupplementedBy",
                }
            ],
            "publisher": "Zenodo",
            "publication_year": 2026,
        },
        "dataset": {
            "name": "HeLa FIB-SEM",
            "description": "One cell, 5 × 5 × 20 nm voxels.",
            "imaging_method_name": "FIB-SEM",
        },
        "biosamples": [
            {
                "title": "HeLa",
                "organism": {"scientific_name": "Homo sapiens", "ncbi_taxon_id": "NCBITaxon:9606"},
                "biological_entity": "HeLa cells",
            }
        ],
        "specimens": [
            {
                "title": "HPF HeLa",
                "sample_preparation": "High-pressure freezing, freeze substitution, Epon embedding",
            }
        ],
        "acquisition_protocols": [
            {
                "title": "Crossbeam acquisition",
                "imaging_method_name": "focused ion beam scanning electron microscopy",
                "fbbi_id": "FBbi:00050000",
                "imaging_instrument": "Zeiss Crossbeam 550",
                "acquisition_date": "2026-03-14T09:30:00",
                "fibsem": {
                    "sem_accelerating_voltage_kv": 1.5,
                    "sem_beam_current_na": 0.7,
                    "dwell_time_us": 3.0,
                    "milling_step_nm": 20.0,
                    "detector": ["InLens"],
                },
            }
        ],
        "images": [
            {
                "name": "cell",
                "image_format": "OME-Zarr 0.5",
                "path": "derived/cell.ome.zarr",
                "dtype": "uint8",
                "size_x": SHAPE[2],
                "size_y": SHAPE[1],
                "size_z": SHAPE[0],
                "voxel_size_x": VOXEL[2],
                "voxel_size_y": VOXEL[1],
                "voxel_size_z": VOXEL[0],
                "voxel_size_unit": "nanometer",
                "processing": "aligned with SIFT, cropped",
            }
        ],
        "annotations": [
            {
                "name": "mito-pred",
                "annotation_type": ["segmentation_mask"],
                "annotation_method": "3D U-Net prediction",
                "ai_generated": True,
                "model": "mito-v1",
            },
            {
                "name": "mito-truth",
                "annotation_type": ["segmentation_mask"],
                "annotation_method": "manual painting in napari",
                "ai_generated": False,
            },
        ],
    }
    if non_ascii:
        rec = copy.deepcopy(rec)
        rec["study"]["title"] = "Mitochondrien in Zellkernnähe — ミトコンドリア α/β"
        rec["study"]["description"] = (
            "Größere Mitochondrien nahe am Kern; données « propres » | mit Pipe; 线粒体。"
        )
        rec["study"]["keywords"] = ["Elektronenmikroskopie", "線粒体", "Zellbiologie"]
        rec["study"]["authors"][0].update(
            family_name="Müller-Łukasiewicz", given_name="Zoë Ångström"
        )
        rec["study"]["authors"][0]["affiliation"]["name"] = "Universität Zürich — Département"
        rec["study"]["authors"][1].update(family_name="山田", given_name="太郎")
        rec["study"]["funding"][0]["funder"] = "Deutsche Forschungsgemeinschaft (DFG) — Förderung"
        rec["study"]["publisher"] = "Université de Genève · Yareta"
        rec["biosamples"][0]["biological_entity"] = "HeLa-Zellen (menschlich)"
        rec["specimens"][0]["sample_preparation"] = (
            "Hochdruckgefrierung, Gefriersubstitution, Einbettung in Epon — 2 % OsO₄"
        )
        rec["images"][0]["processing"] = "ausgerichtet (SIFT), beschnitten; Δz korrigiert"
        rec["annotations"][0]["annotation_method"] = "3D-U-Net-Vorhersage «mito»"
    return rec


def bare_record() -> dict[str, Any]:
    """Almost nothing: what `curated init` writes before anyone fills it."""
    return {"schema_version": "1.0.0", "study": {"title": ""}}


def _ngff_attrs(
    name: str, shapes: list[tuple[int, ...]], voxel: tuple[float, ...]
) -> dict[str, Any]:
    datasets = []
    for k, shape in enumerate(shapes):
        factors = [b / s for b, s in zip(shapes[0], shape, strict=True)]
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [v * f for v, f in zip(voxel, factors, strict=True)]}
                ],
            }
        )
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
                "datasets": datasets,
            }
        ],
    }


def _levels(volume: np.ndarray) -> list[np.ndarray]:
    return [volume, volume[:, ::2, ::2]]


def write_tiny_ome_zarr(
    path: Path,
    *,
    labels: dict[str, tuple[np.ndarray, dict[str, Any]]] | None = None,
    seed: int = 0,
) -> Path:
    """An NGFF 0.5 image of :data:`SHAPE` (two levels) with optional label images.

    ``labels`` maps a name to ``(array, curated block)``.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]]
    volume = (
        (100 + 80 * np.sin(x / 6.0) * np.cos(y / 5.0) + rng.normal(0, 10, SHAPE))
        .clip(0, 255)
        .astype(np.uint8)
    )
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    levels = _levels(volume)
    for k, lv in enumerate(levels):
        arr = root.create_array(
            str(k), shape=lv.shape, dtype=lv.dtype, chunks=(4, 16, 16), dimension_names=AXES
        )
        arr[...] = lv
    root.attrs["ome"] = _ngff_attrs(path.name, [lv.shape for lv in levels], VOXEL)
    if labels:
        lg = root.create_group("labels")
        lg.attrs["ome"] = {"version": "0.5", "labels": list(labels)}
        for name, (lab, block) in labels.items():
            g = lg.create_group(name)
            llevels = _levels(lab)
            for k, lv in enumerate(llevels):
                a = g.create_array(
                    str(k), shape=lv.shape, dtype=lv.dtype, chunks=(4, 16, 16), dimension_names=AXES
                )
                a[...] = lv
            ome = _ngff_attrs(name, [lv.shape for lv in llevels], VOXEL)
            ome["image-label"] = {
                "version": "0.5",
                "colors": [{"label-value": 1, "rgba": [255, 0, 255, 255]}],
                "source": {"image": "../../"},
            }
            g.attrs["ome"] = ome
            g.attrs["curated"] = block
    return path


def sphere_mask() -> np.ndarray:
    z, y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]]
    d = ((z - 6) * 4) ** 2 + (y - 20) ** 2 + (x - 28) ** 2
    return (d < 14**2).astype(np.uint8)


def make_complete_workspace(
    root: Path, *, non_ascii: bool = False, with_model: bool = True
) -> Workspace:
    """A workspace with metadata, an image with truth + AI prediction, a model, an evaluation, log entries."""
    ws = Workspace.create(root, record=complete_record(non_ascii=non_ascii))
    store = root / "derived" / "cell.ome.zarr"
    truth = sphere_mask()
    pred = np.roll(truth, 2, axis=2)
    model_card = "derived/models/mito-v1.bioimageio.zip"
    with recorder(
        ws,
        "T",
        "convert",
        params={"voxel_size": list(VOXEL), "unit": "nanometer"},
        libraries=("zarr",),
    ) as step:
        write_tiny_ome_zarr(
            store,
            labels={
                "mito-truth": (truth, {"kind": "truth", "ai_generated": False, "model": None}),
                "mito-pred": (
                    pred,
                    {
                        "kind": "prediction",
                        "ai_generated": True,
                        "model": {
                            "id": "mito-v1",
                            "sha256": "ab" * 32,
                            "card": model_card if with_model else None,
                        },
                    },
                ),
            },
        )
        step.add_output(store, role="image")
    if with_model:
        mdir = root / "derived" / "models" / "mito-v1"
        mdir.mkdir(parents=True)
        (mdir / "weights.pt").write_bytes(b"not really weights")
        model = {
            "format": "curated-unet/1",
            "id": "mito-v1",
            "name": "mito-v1",
            "created": "2026-03-20T10:00:00Z",
            "architecture": {"context": [4, 8, 8]},
            "preprocessing": {},
            "label": {"labels": "mito-truth", "label_value": 1},
            "training": {
                "image": "derived/cell.ome.zarr",
                "rois": [{"offset": [0, 0, 0], "shape": [8, 16, 16]}],
                "iterations": 200,
                "seed": 1,
            },
            "parent": None,
            "lineage_rois": [{"offset": [0, 0, 0], "shape": [8, 16, 16]}],
            "weights": {"file": "weights.pt", "sha256": "ab" * 32},
            "evaluations": ["../../evaluations/mito-eval.json"],
            "software": {"torch": "2.13"},
        }
        (mdir / "model.json").write_text(json.dumps(model), encoding="utf-8")
        (root / model_card).write_bytes(b"PK\x05\x06" + b"\0" * 18)
        ev_dir = root / "derived" / "evaluations"
        ev_dir.mkdir(parents=True)
        evaluation = {
            "format": "curated-evaluation/1",
            "name": "mito-eval",
            "image": str(store),
            "pred": {"name": "mito-pred", "value": 1},
            "truth": {"name": "mito-truth"},
            "label_value": 1,
            "model": {"id": "mito-v1"},
            "overall": {
                "blocks": 8,
                "raw": {"dice": 0.8123, "iou": 0.684},
                "instance": {"f1": 0.75},
            },
            "ci95": {"dice": [0.77, 0.85]},
            "factors": {
                "shading": {
                    "bright": {"blocks": 4, "raw": {"dice": 0.86}},
                    "shaded": {"blocks": 4, "raw": {"dice": 0.74}},
                }
            },
        }
        with recorder(ws, "E", "evaluate") as step:
            (ev_dir / "mito-eval.json").write_text(json.dumps(evaluation), encoding="utf-8")
            step.add_output(ev_dir / "mito-eval.json")
    return ws


def recorded_digest(ws: Workspace, rel: str) -> str:
    return digest_path(ws.root / rel)[0]
