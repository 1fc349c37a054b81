"""A lab pipeline on curated's Python API: raw TIFF stack → documented, packaged deposit.

Run it on the demo's raw files (``curated demo demo-out`` makes them) or on your own::

    python examples/pipeline.py demo-out/raw/cell01_fibsem.ome.tif ws \
        --truth demo-out/raw/cell01_truth_labels.tif --repository repo

Every call below is recorded in ``ws/curation/log.jsonl`` (``workspace=ws``), so the
README, the FAIR checklist and the bag are written from what actually happened.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from curated import images, segment
from curated.curation import check
from curated.curation.request import request
from curated.deposit import deposit
from curated.document import fair_checklist, write_readme
from curated.metadata import import_ome, init_workspace, set_field, validate_record
from curated.package import make_bag, validate_bag
from curated.segment.evaluate import evaluate
from curated.segment.export import export_bioimageio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="OME-TIFF / TIFF stack / folder of slices")
    ap.add_argument("workspace", type=Path, help="new workspace folder")
    ap.add_argument("--title", default="FIB-SEM volume")
    ap.add_argument("--truth", type=Path, help="dense ground-truth labels (TIFF) for an honest evaluation")
    ap.add_argument("--repository", type=Path, help="local repository folder to deposit into")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--contact", default="Curator, Example", help="'Family, Given' of the contact author")
    ap.add_argument("--email", default="curator@example.org")
    ap.add_argument("--organisation", default="Example University", help="publisher / source organisation")
    args = ap.parse_args()

    # D, C — accession and check of what the depositor sent
    ws = init_workspace(args.workspace, args.title)
    report = check(ws, [args.source])
    print(f"check: {len(report.files)} files, {len(report.flags)} red flags")

    # U, A — header metadata, then what only the curator knows
    import_ome(ws, args.source)
    set_field(ws, "study.license", "CC-BY-4.0")
    set_field(ws, "study.description", "FIB-SEM volume curated with curated's example pipeline.")
    family, _, given = (part.strip() for part in args.contact.partition(","))
    set_field(ws, "study.authors[0]", {"family_name": family, "given_name": given or None,
                                       "email": args.email, "contact": True,
                                       "affiliation": {"name": args.organisation}})
    set_field(ws, "study.publisher", args.organisation)
    vr = validate_record(ws.metadata_path)
    print(f"metadata: {len(vr.errors)} errors, {len(vr.warnings)} warnings")

    # R — what to ask the depositor for (≤ 4 ranked asks)
    print(request(ws).message)

    # T — OME-Zarr, sharded and multiscale
    image = ws.derived_dir / f"{args.source.name.split('.')[0]}.ome.zarr"
    print(images.convert_to_ome_zarr(args.source, image, workspace=ws).message)

    if args.truth:
        images.add_labels(image, "truth", args.truth, kind="truth", workspace=ws)
        # A, T — emulated annotation of a few crops, one model for label 1
        segment.annotate_from_truth(image, truth="truth", crops=6, size=32, seed=0, name="annotations", workspace=ws)
        model = ws.models_dir / "label1-v1"
        kwargs = {} if args.iterations is None else {"iterations": args.iterations}
        segment.train(image, labels="annotations", label_value=1, out=model, workspace=ws, **kwargs)
        segment.predict(model, image, name="label1-pred", workspace=ws)
        # E — random held-out blocks, never touching a training crop
        ev = evaluate(image, pred="label1-pred", truth="truth", label_value=1, blocks=6, block_size=32,
                      seed=0, exclude_training=model, workspace=ws)
        per_factor = {f"{factor}={group}": round(scores["raw"]["dice"], 3)
                      for factor, groups in ev.factors().items() for group, scores in groups.items()}
        print(f"held-out Dice {ev.dice:.3f}; per factor: {per_factor}")
        export_bioimageio(model, ws.models_dir / "label1-v1.bioimageio.zip", workspace=ws, image=image)

    # D — README with pictures, FAIR checklist, bag, deposit
    print(write_readme(ws).message)
    print(fair_checklist(ws).summary["by_status"])
    bag = ws.package_dir / f"{args.workspace.name}-bag"
    make_bag(ws, bag)
    print(validate_bag(bag))
    if args.repository:
        receipt = deposit(bag, to="directory", url=str(args.repository), publish=True, workspace=ws)
        print(f"deposited: {receipt.record_url or receipt.record_id}")

    verdict = ws.log.verify(files=True)
    print(f"curator log: {verdict.entries} entries, {'verifies' if verdict.ok else verdict.problems}")


if __name__ == "__main__":
    main()
