"""``curated sample``, ``curated annotate`` and ``curated segment`` (train, finetune, predict; evaluate, export)."""

from __future__ import annotations

from pathlib import Path

import typer

from curated.cli._common import RichProgress, exit_for, handle_errors, print_results
from curated.cli.segment_eval import register_eval_commands

sample_app = typer.Typer(
    help="Synthetic samples with ground truth (tests, demo, benchmarks).", no_args_is_help=True
)
annotate_app = typer.Typer(help="A: sparse annotations (crops) for training.", no_args_is_help=True)
segment_app = typer.Typer(
    help="T/E: train, fine-tune, predict, evaluate and export segmentation models.",
    no_args_is_help=True,
)

Triple = tuple[int, int, int]
FTriple = tuple[float, float, float]
WORKSPACE = typer.Option(
    None, "--workspace", "-w", help="Record this step in the workspace's curator log."
)


def _pre(denoise: float, shading: float, local_contrast: float) -> dict[str, float]:
    return {
        "denoise_sigma": denoise,
        "shading_sigma": shading,
        "local_contrast_sigma": local_contrast,
    }


@sample_app.command("fibsem")
@handle_errors
def sample_fibsem(
    dest: Path = typer.Argument(..., help="The .ome.zarr to write."),
    shape: Triple | None = typer.Option(
        None, "--shape", help="Size in voxels Z Y X [default: 64 192 192]."
    ),
    voxel_size: FTriple | None = typer.Option(
        None, "--voxel-size", help="Voxel size in nm Z Y X [default: 8 8 8]."
    ),
    shading: float = typer.Option(
        0.0, "--shading", help="Darken the far x side: brightness falls to 1-S."
    ),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Write a synthetic FIB-SEM-like image with a `truth` label image (1 mitochondria, 2 nucleus)."""
    from curated.segment.sample import DEFAULT_SHAPE, DEFAULT_VOXEL_SIZE, make_fibsem_sample

    r = make_fibsem_sample(
        dest,
        shape=shape or DEFAULT_SHAPE,
        voxel_size=voxel_size or DEFAULT_VOXEL_SIZE,
        shading=shading,
        seed=seed,
        overwrite=overwrite,
        workspace=workspace,
    )
    exit_for(print_results([r]))


@annotate_app.command("from-truth")
@handle_errors
def annotate_from_truth_cmd(
    image: Path = typer.Argument(..., help="OME-Zarr image with a truth label image."),
    truth: str = typer.Option("truth", "--truth", help="Label image to copy from."),
    crops: int = typer.Option(4, "--crops", help="Number of crops."),
    size: int = typer.Option(32, "--size", help="Crop edge in voxels."),
    seed: int = typer.Option(0, "--seed"),
    name: str = typer.Option(
        "annotations", "--name", help="Sparse label image to create or add to."
    ),
    region: str | None = typer.Option(
        None, "--region", help="Only crops inside e.g. 'x<0.5' or 'x>=0.5,z<0.5'."
    ),
    require_label: int | None = typer.Option(
        None,
        "--require-label",
        help="Only crops holding at least --min-fraction of this label value.",
    ),
    min_fraction: float = typer.Option(0.05, "--min-fraction"),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Emulate a curator annotating random crops (255 = unannotated elsewhere)."""
    from curated.segment.annotate import annotate_from_truth

    r = annotate_from_truth(
        image,
        truth=truth,
        crops=crops,
        size=size,
        seed=seed,
        name=name,
        region=region,
        require_label=require_label,
        min_fraction=min_fraction,
        workspace=workspace,
    )
    exit_for(print_results([r]))


@annotate_app.command("import")
@handle_errors
def annotate_import_cmd(
    image: Path = typer.Argument(..., help="OME-Zarr image the crop belongs to."),
    source: Path = typer.Option(
        ..., "--from", help="Annotated crop: TIFF, .npy or (OME-)Zarr; 255 = unannotated."
    ),
    offset: Triple = typer.Option(
        ..., "--offset", help="Position of the crop in the image, Z Y X voxels."
    ),
    name: str = typer.Option(
        "annotations", "--name", help="Sparse label image to create or add to."
    ),
    origin: str = typer.Option(
        "human",
        "--origin",
        help="Who made the crop: human, derived-from-truth, simulated or model-prediction.",
    ),
    class_name: list[str] = typer.Option(
        [],
        "--class-name",
        help="Name a label value, VALUE=NAME (e.g. 1=mitochondrion); repeatable.",
    ),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Add a crop annotated in another tool (napari, Fiji, Paintera ...) to a sparse label image."""
    from curated.images.labels import parse_class_names
    from curated.segment.annotate import import_annotation

    names = {p["label-value"]: p["name"] for p in parse_class_names(class_name)}
    r = import_annotation(
        image,
        source_file=source,
        offset=offset,
        name=name,
        origin=origin,
        class_names=names,
        workspace=workspace,
    )
    exit_for(print_results([r]))


def _train_kwargs(
    iterations: int | None,
    device: str,
    seed: int,
    batch_size: int,
    patch: int,
    elastic: bool,
    overwrite: bool,
    workspace: Path | None,
) -> dict[str, object]:
    from curated.segment.train import Augmentation

    kw: dict[str, object] = {
        "device": device,
        "seed": seed,
        "batch_size": batch_size,
        "patch": patch,
        "augmentation": Augmentation(elastic=elastic),
        "overwrite": overwrite,
        "workspace": workspace,
    }
    if iterations is not None:
        kw["iterations"] = iterations
    return kw


@segment_app.command("train")
@handle_errors
def train_cmd(
    image: Path = typer.Argument(..., help="OME-Zarr image."),
    labels: str = typer.Option(..., "--labels", help="Sparse label image (255 = unannotated)."),
    label_value: int = typer.Option(..., "--label-value", help="The label K this model segments."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (model.json + weights.pt)."),
    iterations: int | None = typer.Option(
        None, "--iterations", help="Training iterations [default: 600]."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed"),
    depth: int = typer.Option(2, "--depth", help="U-Net down-sampling steps."),
    features: int = typer.Option(8, "--features", help="Feature maps at the top level."),
    batch_size: int = typer.Option(2, "--batch-size"),
    patch: int = typer.Option(24, "--patch", help="Output patch edge in voxels."),
    learning_rate: float = typer.Option(1e-3, "--lr"),
    denoise: float = typer.Option(
        0.0, "--denoise", help="Gaussian denoising σ in voxels (0: off)."
    ),
    shading_correction: float = typer.Option(
        0.0, "--shading-correction", help="Shading correction blur σ in voxels (0: off)."
    ),
    local_contrast: float = typer.Option(
        0.0, "--local-contrast", help="CLAHE-like local contrast σ in voxels (0: off)."
    ),
    elastic: bool = typer.Option(False, "--elastic", help="Elastic deformation augmentation."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start again even if OUT holds a model or checkpoint."
    ),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Train a one-label 3D U-Net from sparse annotations (resumes from OUT's last checkpoint)."""
    from curated.segment.train import train

    with RichProgress() as progress:
        r = train(
            image,
            labels=labels,
            label_value=label_value,
            out=out,
            depth=depth,
            base_features=features,
            learning_rate=learning_rate,
            preprocessing=_pre(denoise, shading_correction, local_contrast),
            progress=progress,
            **_train_kwargs(
                iterations, device, seed, batch_size, patch, elastic, overwrite, workspace
            ),  # type: ignore[arg-type]
        )
    exit_for(print_results([r]))


@segment_app.command("finetune")
@handle_errors
def finetune_cmd(
    parent: Path = typer.Argument(..., help="Model folder to start from."),
    image: Path = typer.Argument(..., help="OME-Zarr image."),
    labels: str = typer.Option(
        ..., "--labels", help="Sparse label image with the new annotations."
    ),
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    label_value: int | None = typer.Option(None, "--label-value", help="[default: the parent's]"),
    iterations: int | None = typer.Option(None, "--iterations", help="Iterations [default: 300]."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(2, "--batch-size"),
    patch: int = typer.Option(24, "--patch"),
    learning_rate: float = typer.Option(5e-4, "--lr"),
    elastic: bool = typer.Option(False, "--elastic"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Continue training PARENT on new annotations; the new model records PARENT's sha256 and lineage."""
    from curated.segment.train import finetune

    with RichProgress() as progress:
        r = finetune(
            parent,
            image,
            labels=labels,
            out=out,
            label_value=label_value,
            learning_rate=learning_rate,
            progress=progress,
            **_train_kwargs(
                iterations, device, seed, batch_size, patch, elastic, overwrite, workspace
            ),  # type: ignore[arg-type]
        )
    exit_for(print_results([r]))


@segment_app.command("predict")
@handle_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="Model folder."),
    image: Path = typer.Argument(..., help="OME-Zarr image to segment."),
    name: str = typer.Option(..., "--name", help="Label image to write."),
    workers: int | None = typer.Option(
        None, "--workers", help="Local threads [default: all cores]."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="dask.distributed scheduler address."
    ),
    block: Triple | None = typer.Option(
        None, "--block", help="Tile Z Y X computed per network pass [default: 64 128 128]."
    ),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also write NAME-probability (uint8)."
    ),
    threshold: float = typer.Option(0.5, "--threshold"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    workspace: Path | None = WORKSPACE,
) -> None:
    """Segment IMAGE blockwise (identical to one whole-volume pass); resumable."""
    from curated.segment.predict import DEFAULT_BLOCK, predict

    with RichProgress() as progress:
        r = predict(
            model,
            image,
            name=name,
            workers=workers,
            scheduler=scheduler,
            block=block or DEFAULT_BLOCK,
            probabilities=probabilities,
            threshold=threshold,
            device=device,
            overwrite=overwrite,
            workspace=workspace,
            progress=progress,
        )
    exit_for(print_results([r]))


def register(app: typer.Typer) -> None:
    """Add ``sample``, ``annotate`` and ``segment`` to the app."""
    register_eval_commands(segment_app)
    app.add_typer(sample_app, name="sample")
    app.add_typer(annotate_app, name="annotate")
    app.add_typer(segment_app, name="segment")
