"""CLI: ``curated labels measure`` (per-object measurements of a label image, as Parquet)."""

from __future__ import annotations

from pathlib import Path

import typer

from curated.cli._common import RichProgress, console, handle_errors, print_results


@handle_errors
def labels_measure(
    image: Path = typer.Argument(..., help="The OME-Zarr image (its labels/NAME is measured)."),
    labels: str = typer.Option(..., "--labels", help="Name of the label image (labels/NAME)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Parquet file to write (default: IMAGE's folder, <image>.<NAME>.measurements.parquet).",
    ),
    csv: Path | None = typer.Option(
        None, "--csv", help="Also write the table as CSV here (default: no CSV)."
    ),
    block: int = typer.Option(
        128, "--block", min=1, help="Edge of the cubes read at a time, in voxels (bounds memory)."
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", help="Record the measurement in this workspace's curator log."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Measure each object of a label image (voxels, volume, surface, centroid, bbox, mean intensity) into Parquet."""
    from curated.images.measure import measure_labels

    with RichProgress() as bar:
        result = measure_labels(
            image, labels, out=out, csv=csv, block=block, workspace=workspace, progress=bar
        )
    print_results([result], as_json=as_json)
    if not as_json:
        d = result.details
        console.print(
            f"{d['rows']} objects in {d['seconds']:.2f} s; parquet sha256 "
            f"{d['outputs']['parquet']['sha256']}; surface: {d['surface_method']}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``labels measure`` to the ``labels`` group (created by :mod:`curated.cli.convert`)."""
    from curated.cli.convert import labels_app

    labels_app.command("measure")(labels_measure)
