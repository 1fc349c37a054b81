"""CLI: ``curated convert`` (TIFF stacks → OME-Zarr) and ``curated labels add``."""

from __future__ import annotations

from pathlib import Path

import typer

from curated.cli._common import (
    RichProgress,
    console,
    handle_errors,
    print_results,
    warn_unrecorded,
)
from curated.results import ConvertDetails, details_as

labels_app = typer.Typer(
    help="OME-Zarr label images (segmentations, annotations).", no_args_is_help=True
)


@handle_errors
def convert(
    source: Path = typer.Argument(
        ...,
        help="Multi-page TIFF/BigTIFF, OME-TIFF, ImageJ or vendor SEM stack, folder of per-slice 2D TIFFs or grey PNGs, "
        "HDF5 dataset (FILE.h5:/path), MRC file, Zarr/N5 array (STORE.n5:/path) or OME-Zarr 0.4/0.5 image.",
    ),
    dest: str = typer.Argument(
        ...,
        help="The .ome.zarr folder to write, or s3://BUCKET/PATH.ome.zarr in an S3-compatible "
        "object store (credentials and endpoint from the AWS_* environment variables or ~/.aws).",
    ),
    voxel_size: tuple[float, float, float] | None = typer.Option(
        None, "--voxel-size", help="Voxel size Z Y X (default: from the file's metadata)."
    ),
    unit: str = typer.Option(
        "nanometer", "--unit", help="Length unit of --voxel-size (UDUNITS-2 name, e.g. nanometer)."
    ),
    ngff_version: str = typer.Option(
        "0.5", "--ngff-version", help="0.5 (Zarr v3, sharded) or 0.4 (Zarr v2)."
    ),
    chunks: int = typer.Option(64, "--chunks", min=1, help="Inner chunk edge in voxels."),
    shard: int = typer.Option(512, "--shard", min=1, help="Shard edge in voxels (Zarr v3 only)."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Local threads (default: all cores)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="dask.distributed scheduler address (tcp://host:port)."
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", help="Record the conversion in this workspace's curator log."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it exists."),
    same_codec: bool = typer.Option(
        False,
        "--same-codec",
        help="Store every level with blosc-zstd level 3 (default: levels 1+ use blosc-zstd "
        "level 1, 4-6x faster to compress, ~1 % larger).",
    ),
    axes: str | None = typer.Option(
        None,
        "--axes",
        help="The source's axes when its metadata names them wrongly, e.g. zyx for an ImageJ "
        "TIFF that calls its slices channels (default: from the file).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Convert a TIFF stack, HDF5/MRC/Zarr/N5 array or OME-Zarr 0.4 image into a multiscale OME-Zarr image (out of core, resumable)."""
    from curated.images import convert_to_ome_zarr

    if ngff_version not in ("0.5", "0.4"):
        raise typer.BadParameter("must be 0.5 or 0.4", param_hint="--ngff-version")
    with RichProgress() as bar:
        result = convert_to_ome_zarr(
            source,
            dest,
            voxel_size=voxel_size,
            unit=unit,
            ngff_version=ngff_version,
            chunks=chunks,
            shard=shard,
            workers=workers,
            scheduler=scheduler,
            workspace=workspace,
            overwrite=overwrite,
            progress=bar,
            same_codec=same_codec,
            axes=axes,
        )
    print_results([result], as_json=as_json)
    if not as_json:
        d = details_as(result, ConvertDetails)
        secs = d.get("seconds") or 0
        rate = d.get("bytes_in", 0) / secs / 1e6 if secs else 0.0
        if d["files"] is not None and d["bytes"] is not None:
            console.print(
                f"{len(d['levels'])} levels, {d['bytes'] / 1e6:.1f} MB stored in {d['files']} files, "
                f"{rate:.0f} MB/s; store digest {d['store_digest']}",
                highlight=False,
            )
        elif d["store_digest"]:
            console.print(f"store digest {d['store_digest']} (as logged)", highlight=False)
        disagrees = d["decision"].get("voxel_size_disagrees")
        if disagrees:
            console.print("warning: " + disagrees, highlight=False)
        for warned in d["decision"].get("source_warnings", []):
            console.print("warning: " + warned, highlight=False)
        dropped = d["decision"]["not_carried_over"]
        if dropped:
            console.print("not carried over: " + "; ".join(dropped), highlight=False)


@handle_errors
def labels_add(
    image: str = typer.Argument(
        ..., help="The OME-Zarr image (a folder or s3://BUCKET/PATH.ome.zarr)."
    ),
    name: str = typer.Option(..., "--name", help="Name of the label image (labels/NAME)."),
    source: Path = typer.Option(
        ...,
        "--from",
        help="Label volume with the image's shape: .npy, TIFF, a folder of TIFF or PNG slices, HDF5 (FILE.h5:/dataset), MRC, a Zarr/N5 array or an OME-Zarr image.",
    ),
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="truth, annotation or prediction (default: prediction with --ai-generated, else annotation).",
    ),
    ai_generated: bool = typer.Option(
        False, "--ai-generated", help="A model produced these labels."
    ),
    model: str | None = typer.Option(None, "--model", help="Id of the model that produced them."),
    origin: str | None = typer.Option(
        None,
        "--origin",
        help="human, derived-from-truth, simulated or model-prediction (default: model-prediction "
        "with --ai-generated; the source's own origin when it is a label image curated wrote, "
        "e.g. a prediction copied from another image; else human).",
    ),
    class_name: list[str] | None = typer.Option(
        None,
        "--class-name",
        help="Name a label value, VALUE=NAME (e.g. 1=mitochondrion); repeatable.",
    ),
    value_map: list[str] | None = typer.Option(
        None,
        "--map",
        help="Rewrite a label value on the way in, OLD=NEW (e.g. 255=1 for a 0/255 mask: 255 "
        "means 'not annotated' to annotate and train; nonzero=1 makes one class of an instance "
        "segmentation; -1=255 for an 'ignore' label: stored values are ≥ 0); repeatable. "
        "The file is only read.",
    ),
    workspace: Path | None = typer.Option(
        None, "--workspace", help="Record this in the workspace's curator log."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing label image of that name."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add a label volume to an OME-Zarr image as labels/NAME (same pyramid, mode downsampling)."""
    from curated.images import add_labels
    from curated.images.labels import parse_class_names, parse_value_map

    properties = parse_class_names(class_name or []) or None
    mapping = parse_value_map(value_map or []) or None
    if (model or origin == "model-prediction") and not ai_generated:
        ai_generated = True
    if kind is None and ai_generated:
        kind = "prediction"
    with RichProgress() as bar:
        result = add_labels(
            image,
            name,
            source,
            kind=kind,  # None: the source's own (a label image curated wrote), else annotation
            # None unless flagged: a label image curated wrote then keeps its own origin
            ai_generated=True if ai_generated else None,
            model=model,
            origin=origin,
            properties=properties,
            value_map=mapping,
            workspace=workspace,
            overwrite=overwrite,
            progress=bar,
        )
    print_results([result], as_json=as_json)
    warn_unrecorded([result], image, workspace)


def register(app: typer.Typer) -> None:
    """Add ``convert`` and ``labels add`` to ``app``."""
    app.command("convert")(convert)
    labels_app.command("add")(labels_add)
    app.add_typer(labels_app, name="labels")
