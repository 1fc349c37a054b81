"""Rebuild the example README in this folder from a real (synthetic) workspace.

Run from the repository root::

    python examples/readme/build_example.py [--keep WORKSPACE_DIR]

It creates a workspace from ``examples/metadata/fibsem.yaml``, writes the synthetic
FIB-SEM sample (``curated.segment.make_fibsem_sample``), annotates six crops from its
truth, trains a 3D U-Net (the library's defaults, as ``curated demo`` does), predicts, evaluates on random held-out blocks,
exports the model card and the log as W3C PROV, then writes the README and the FAIR checklist and copies
``README.md``, ``figures/`` and ``curation/fair.md`` here (so the README's links work). Every step is in the
workspace's curator log. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import yaml

from curated.document import fair_checklist, write_readme
from curated.document.ngff import read_image_info
from curated.provenance.export import write_prov_json
from curated.segment import annotate_from_truth, make_fibsem_sample, predict, train
from curated.segment.evaluate import evaluate
from curated.segment.export import export_bioimageio
from curated.workspace import Workspace

HERE = Path(__file__).resolve().parent
RECORD = HERE.parent / "metadata" / "fibsem.yaml"


def describe_sample(record: dict, store: Path) -> dict:
    """Point the example record at the synthetic sample: its real size, voxel size and labels."""
    info = read_image_info(store)
    shape, voxel = info.shape, info.voxel_size
    record["study"]["title"] = (
        "Synthetic FIB-SEM volume with mitochondria and nuclei (curated example)"
    )
    record["study"]["description"] = (
        "A synthetic, anisotropically shaded FIB-SEM-like volume made by curated's sample generator, "
        "with its ground-truth labels, six annotated crops, and a 3D U-Net prediction evaluated on "
        "random held-out blocks. It shows what `curated readme` writes; the people, grants and "
        "identifiers are the examples of examples/metadata/fibsem.yaml."
    )
    record["images"] = [
        {
            "name": "cell",
            "image_format": "OME-Zarr 0.5",
            "path": "derived/cell.ome.zarr",
            "dtype": info.dtype,
            "size_x": shape["x"],
            "size_y": shape["y"],
            "size_z": shape["z"],
            "voxel_size_x": voxel["x"],
            "voxel_size_y": voxel["y"],
            "voxel_size_z": voxel["z"],
            "voxel_size_unit": info.unit,
            "processing": "synthetic (curated.segment.make_fibsem_sample, seed 0, shading 0.4)",
            "role": "derived",
        }
    ]
    record["annotations"] = [
        {
            "name": "truth",
            "annotation_type": ["segmentation_mask"],
            "annotation_method": "ground truth of the synthetic generator",
            "ai_generated": False,
            "source_image": "cell",
        },
        {
            "name": "annotations",
            "annotation_type": ["segmentation_mask"],
            "annotation_method": "four random crops copied from the truth (a curator's sparse annotation, emulated)",
            "annotation_coverage": "4 crops of 16×32×32 voxels",
            "ai_generated": False,
            "source_image": "cell",
        },
        {
            "name": "mito-pred",
            "annotation_type": ["segmentation_mask"],
            "annotation_method": "curated segment predict (3D U-Net)",
            "ai_generated": True,
            "model": "mito-unet",
            "source_image": "cell",
        },
    ]
    record.pop("sources", None)
    record.pop("analyses", None)
    return record


def build(root: Path) -> Workspace:
    record = yaml.safe_load(RECORD.read_text(encoding="utf-8"))
    ws = Workspace.create(root, record=record)
    store = ws.derived_dir / "cell.ome.zarr"
    make_fibsem_sample(store, shading=0.4, seed=0, workspace=ws)
    ws.write_metadata(describe_sample(ws.read_metadata(), store))
    annotate_from_truth(
        store, truth="truth", crops=6, size=32, seed=0, name="annotations", workspace=ws
    )
    model = ws.models_dir / "mito-unet"
    train(
        store,
        labels="annotations",
        label_value=1,
        out=model,
        device="cpu",
        seed=0,
        name="mito-unet",
        workspace=ws,
    )
    predict(model, store, name="mito-pred", device="cpu", workspace=ws)
    evaluate(
        store,
        pred="mito-pred",
        truth="truth",
        label_value=1,
        blocks=6,
        block_size=32,
        seed=0,
        exclude_training=model,
        name="mito-pred-vs-truth",
        workspace=ws,
    )
    export_bioimageio(model, ws.models_dir / "mito-unet.bioimageio.zip", workspace=ws, image=store)
    write_prov_json(ws.log, ws.curation_dir / "prov.json")
    write_readme(ws)
    fair_checklist(ws)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the workspace here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "example-workspace"
        ws = build(root)
        shutil.rmtree(HERE / "figures", ignore_errors=True)
        shutil.copytree(ws.root / "figures", HERE / "figures")
        shutil.copy2(ws.root / "README.md", HERE / "README.md")
        (HERE / "curation").mkdir(exist_ok=True)
        shutil.copy2(ws.root / "curation" / "fair.md", HERE / "curation" / "fair.md")
    print(f"wrote {HERE / 'README.md'}, {HERE / 'curation' / 'fair.md'} and {HERE / 'figures'}")


if __name__ == "__main__":
    main()
