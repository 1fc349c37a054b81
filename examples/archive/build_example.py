"""Rebuild the golden EMPIAR / BioImage Archive / PREMIS examples in this folder from the demo.

Run from the repository root::

    python examples/archive/build_example.py [--keep DIR]

It runs ``curated demo`` on the synthetic FIB-SEM sample (a reduced size, so it
takes about a minute on 2 CPU cores), which exports both archive submissions,
then writes the curator log as PREMIS 3 and copies here everything but the
image data:

- ``empiar/deposition.json`` and ``empiar/checklist.md`` (the ``data/`` image sets are left out),
- ``bia/submission.json``, ``bia/submission.pagetab.json`` (BioStudies PageTab), ``bia/file_list.tsv`` / ``.json`` (the study component),
  ``bia/file_list_annotations_N.tsv`` / ``.json`` (one per annotation) and ``bia/checklist.md``
  (the ``files/`` OME-Zarr images are left out),
- ``premis.xml``, the whole curator log as PREMIS 3.0 events, objects and agents.

``tests/test_archive_examples.py`` checks that these files validate against the
archives' schemas and the PREMIS 3.0 schema.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from curated.archive import write_premis
from curated.demo import run_demo
from curated.workspace import Workspace

HERE = Path(__file__).resolve().parent
EMPIAR_FILES = ("deposition.json", "checklist.md")
BIA_FILES = (
    "submission.json",
    "submission.pagetab.json",
    "file_list.tsv",
    "file_list.json",
    "checklist.md",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run the demo in this folder and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dest = args.keep or Path(tmp) / "demo"
        report = run_demo(
            dest,
            shape=(40, 144, 144),
            iterations=200,
            crops=4,
            crop_size=24,
            eval_blocks=4,
            eval_block_size=24,
            overwrite=True,
        )
        if not report.ok:
            failed = [f"{s.name}: {s.message}" for s in report.stages if s.status == "error"]
            raise SystemExit("the demo failed: " + "; ".join(failed))
        package = report.workspace / "package"
        for sub, names in (("empiar", EMPIAR_FILES), ("bia", BIA_FILES)):
            (HERE / sub).mkdir(exist_ok=True)
            extra = sorted(p.name for p in (package / sub).glob("file_list_annotations_*"))
            for name in (*names, *extra) if sub == "bia" else names:
                shutil.copyfile(package / sub / name, HERE / sub / name)
        write_premis(Workspace(report.workspace).log, HERE / "premis.xml")
    print(f"examples written to {HERE}")


if __name__ == "__main__":
    main()
