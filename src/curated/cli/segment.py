"""``curated sample``, ``curated annotate`` and ``curated segment`` (train, finetune, predict; evaluate, export)."""

from __future__ import annotations

from pathlib import Path

import typer

from curated.cli._common import (
    JSON_OPTION,
    RichProgress,
    exit_for,
    handle_errors,
    local_image,
    print_results,
    warn_unrecorded,
)
from curated.cli.segment_eval import register_eval_commands
from curated.segment.defaults import (
    DEFAULT_CLASS_BALANCE,
    DEFAULT_CLASS_BALANCE_WARMUP,
    DEFAULT_DEPTH,
    DEFAULT_FEATURES,
    DEFAULT_FINETUNE_DRAWS,
    DEFAULT_FINETUNE_ITERATIONS,
    DEFAULT_FINETUNE_LEARNING_RATE,
    DEFAULT_ITERATIONS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_NEW_CROP_FRACTION,
    DEFAULT_NORM,
    FIELD_OF_VIEW_NM,
    MAX_DEPTH,
)

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
PRECISION = typer.Option(
    "auto",
    "--precision",
    help="auto (mixed precision on a GPU, float32 on a CPU) | fp32 | bf16 (bfloat16 mixed "
    "precision, on a CPU too: fast only with AVX512-BF16 or AMX)",
)


def _pre(denoise: float, shading: float, local_contrast: float | None) -> dict[str, float] | None:
    """The pre-processing asked for, or None for the library's default (local contrast σ 400 nm)."""
    if local_contrast is None and not denoise and not shading:
        return None
    return {
        "denoise_sigma": denoise,
        "shading_sigma": shading,
        "local_contrast_sigma": local_contrast or 0.0,
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
        0.0,
        "--shading",
        help="Shading strength S in [0, 1): gain falls along x to about 1-S with contrast lost "
        "toward a backlight level, plus z drift (0.3 mild, 0.6 strong, 0.8 severe).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
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
    exit_for(print_results([r], as_json=as_json))


@annotate_app.command("from-truth")
@handle_errors
def annotate_from_truth_cmd(
    image: Path = typer.Argument(
        ..., parser=local_image, help="OME-Zarr image with a truth label image."
    ),
    truth: str = typer.Option("truth", "--truth", help="Label image to copy from."),
    crops: int = typer.Option(4, "--crops", help="Number of crops."),
    size: int = typer.Option(32, "--size", help="Crop edge in voxels."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
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
    min_fraction: float = typer.Option(
        0.05, "--min-fraction", help="Least fraction of a crop --require-label must fill."
    ),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
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
    print_results([r], as_json=as_json)
    warn_unrecorded([r], image, workspace)
    exit_for([r])


@annotate_app.command("import")
@handle_errors
def annotate_import_cmd(
    image: Path = typer.Argument(
        ..., parser=local_image, help="OME-Zarr image the crop belongs to."
    ),
    source: Path = typer.Option(
        ..., "--from", help="Annotated crop: TIFF, .npy or (OME-)Zarr; 255 = unannotated."
    ),
    offset: Triple = typer.Option(
        ..., "--offset", help="Position of the crop in the image, Z Y X voxels."
    ),
    name: str = typer.Option(
        "annotations", "--name", help="Sparse label image to create or add to."
    ),
    origin: str | None = typer.Option(
        None,
        "--origin",
        help="Who made the crop: human, derived-from-truth, simulated or model-prediction "
        "(default: the source's own origin when it is a label image curated wrote, e.g. a "
        "model's prediction; else human).",
    ),
    class_name: list[str] | None = typer.Option(
        None,
        "--class-name",
        help="Name a label value, VALUE=NAME (e.g. 1=mitochondrion); repeatable.",
    ),
    value_map: list[str] | None = typer.Option(
        None,
        "--map",
        help="Rewrite a value as the crop is read, OLD=NEW (e.g. 255=1 for a 0/255 mask from "
        "Fiji, -1=255 for an 'ignore' label); repeatable.",
    ),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a crop annotated in another tool (napari, Fiji, Paintera ...) to a sparse label image."""
    from curated.images.labels import parse_class_names, parse_value_map
    from curated.segment.annotate import import_annotation

    names = {p["label-value"]: p["name"] for p in parse_class_names(class_name or [])}
    r = import_annotation(
        image,
        source_file=source,
        offset=offset,
        name=name,
        origin=origin,
        class_names=names,
        value_map=parse_value_map(value_map or []) or None,
        workspace=workspace,
    )
    print_results([r], as_json=as_json)
    warn_unrecorded([r], image, workspace)
    exit_for([r])


@annotate_app.command("suggest")
@handle_errors
def annotate_suggest_cmd(
    image: Path = typer.Argument(
        ..., parser=local_image, help="OME-Zarr image with a prediction and sparse annotations."
    ),
    model: Path = typer.Option(..., "--model", help="Model folder that made the prediction."),
    pred: str = typer.Option(..., "--pred", help="Prediction label image inside IMAGE."),
    n: int = typer.Option(3, "--n", help="How many crops to suggest."),
    crop_size: str | None = typer.Option(
        None,
        "--crop-size",
        help="Crop edge Z,Y,X (or one number) [default: median annotated crop, else 32].",
    ),
    labels: str = typer.Option(
        "annotations", "--labels", help="Sparse annotation label image (the crops already done)."
    ),
    probability: str | None = typer.Option(
        None,
        "--probability",
        help="Probability label image for the entropy term [default: PRED-probability if present, else quick predictions].",
    ),
    weights: str | None = typer.Option(
        None,
        "--weights",
        help="Score weights, e.g. 'anomaly=0.4,appearance=0.1,uncertainty=0.3,diversity=0.2' (the defaults).",
    ),
    name: str = typer.Option("suggestions", "--name", help="Label image to write inside IMAGE."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for suggestions.csv/.json/.png [default: beside IMAGE or in the workspace].",
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (quick predictions)."),
    as_json: bool = JSON_OPTION,
    workspace: Path | None = WORKSPACE,
) -> None:
    """Propose the next crops to annotate, where the model is most likely wrong (label image + table + PNG)."""
    from curated.segment.suggest import SuggestionWeights, parse_crop_size, suggest_crops

    with RichProgress(transient=True) as progress:
        r = suggest_crops(
            image,
            model=model,
            pred=pred,
            n=n,
            crop_size=parse_crop_size(crop_size) if crop_size else None,
            labels=labels,
            probability=probability,
            weights=SuggestionWeights.parse(weights) if weights else None,
            name=name,
            out=out,
            device=device,
            workspace=workspace,
            progress=progress,
        )
    print_results([r], as_json=as_json)
    warn_unrecorded([r], image, workspace)
    exit_for([r])


def _train_kwargs(
    iterations: int | None,
    device: str,
    precision: str,
    seed: int,
    batch_size: int,
    patch: int | None,
    elastic: bool,
    overwrite: bool,
    workspace: Path | None,
) -> dict[str, object]:
    from curated.segment.train import Augmentation

    kw: dict[str, object] = {
        "device": device,
        "precision": precision,
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
    image: Path = typer.Argument(..., parser=local_image, help="OME-Zarr image."),
    labels: str = typer.Option(..., "--labels", help="Sparse label image (255 = unannotated)."),
    label_value: int = typer.Option(..., "--label-value", help="The label K this model segments."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (model.json + weights.pt)."),
    iterations: int | None = typer.Option(
        None,
        "--iterations",
        help=f"Training iterations [default: {DEFAULT_ITERATIONS}]: a round within 10 min on two "
        "CPU cores. Twice as many scored higher on both benchmarks (whole-volume Dice +0.04 "
        "synthetic, +0.08 real ssTEM) at twice the time: use 2400 with more cores or a GPU.",
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = PRECISION,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    depth: int | None = typer.Option(
        DEFAULT_DEPTH,
        "--depth",
        min=1,
        max=MAX_DEPTH,
        help="U-Net down-sampling steps [default: the smallest whose in-plane field of view "
        f"reaches {FIELD_OF_VIEW_NM:.0f} nm: 2 at 8 nm, 3 at 4.6 nm].",
    ),
    norm: str = typer.Option(
        DEFAULT_NORM,
        "--norm",
        help="Normalisation inside the U-Net: batch (fixed at prediction, so blockwise "
        "prediction stays identical to one pass) or none.",
    ),
    features: int = typer.Option(
        DEFAULT_FEATURES,
        "--features",
        help="Feature maps at the top level (half of this when voxels finer than "
        "6 nm along every axis make the top level pointwise).",
    ),
    batch_size: int = typer.Option(2, "--batch-size", help="Patches per training step."),
    patch: int | None = typer.Option(
        None,
        "--patch",
        help="Output patch edge in voxels [default: planned from the crops, up to 48 an axis].",
    ),
    learning_rate: float = typer.Option(
        DEFAULT_LEARNING_RATE, "--lr", help="Adam learning rate (cosine-annealed to 2 %)."
    ),
    class_balance: float = typer.Option(
        DEFAULT_CLASS_BALANCE,
        "--class-balance",
        help="Exponent b of the cross-entropy's class weighting, 0-1: foreground weighs "
        "((1-f)/f)^b times background (f = annotated foreground fraction); 1 = equal total "
        "weight per class, 0 = unweighted. The saved weights remove the weighting's "
        "prior from the output bias, so predictions are not pushed outwards by it.",
    ),
    class_balance_warmup: float = typer.Option(
        DEFAULT_CLASS_BALANCE_WARMUP,
        "--class-balance-warmup",
        help="Share of the iterations over which b falls from 1 to --class-balance "
        "(starting at equal class weight keeps a weak weighting from settling on 'all background').",
    ),
    denoise: float = typer.Option(
        0.0, "--denoise", help="Gaussian denoising σ in voxels (0: off)."
    ),
    shading_correction: float = typer.Option(
        0.0, "--shading-correction", help="Shading correction blur σ in voxels (0: off)."
    ),
    local_contrast: float | None = typer.Option(
        None,
        "--local-contrast",
        help="Local contrast normalisation σ in voxels, y and x (0: off) [default: 400 nm in "
        "voxels, e.g. 50 at 8 nm, unless --denoise or --shading-correction is given]. On "
        "integer images of up to 16 bits it uses box3 running sums, whose cost does not grow with σ.",
    ),
    elastic: bool = typer.Option(False, "--elastic", help="Elastic deformation augmentation."),
    validation: bool = typer.Option(
        False,
        "--validation",
        help="Hold out one annotated crop and keep the iteration with the lowest loss on it "
        "[default: every crop trains and the last iteration is kept].",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start again even if OUT holds a model or checkpoint."
    ),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
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
            norm=norm,
            learning_rate=learning_rate,
            class_balance=class_balance,
            class_balance_warmup=class_balance_warmup,
            preprocessing=_pre(denoise, shading_correction, local_contrast),
            validation=validation,
            progress=progress,
            **_train_kwargs(
                iterations,
                device,
                precision,
                seed,
                batch_size,
                patch,
                elastic,
                overwrite,
                workspace,
            ),  # type: ignore[arg-type]
        )
    exit_for(print_results([r], as_json=as_json))


@segment_app.command("finetune")
@handle_errors
def finetune_cmd(
    parent: Path = typer.Argument(..., help="Model folder to start from."),
    image: Path = typer.Argument(..., parser=local_image, help="OME-Zarr image."),
    labels: str = typer.Option(
        ..., "--labels", help="Sparse label image with the new annotations."
    ),
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    label_value: int | None = typer.Option(
        None, "--label-value", help="The label K [default: the parent model's]."
    ),
    iterations: int | None = typer.Option(
        None, "--iterations", help=f"Iterations [default: {DEFAULT_FINETUNE_ITERATIONS}]."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = PRECISION,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same result)."),
    batch_size: int = typer.Option(2, "--batch-size", help="Patches per training step."),
    patch: int | None = typer.Option(
        None,
        "--patch",
        help="Output patch edge in voxels [default: planned from the crops, up to 48 an axis].",
    ),
    learning_rate: float = typer.Option(
        DEFAULT_FINETUNE_LEARNING_RATE, "--lr", help="Adam learning rate (cosine-annealed to 2 %)."
    ),
    class_balance: float | None = typer.Option(
        None,
        "--class-balance",
        help="Exponent of the class weighting (see `segment train`) [default: the parent's].",
    ),
    new_crop_fraction: float = typer.Option(
        DEFAULT_NEW_CROP_FRACTION,
        "--new-crop-fraction",
        help="Share of the training patches drawn from the new crops that hold the structure, "
        "0-1 (the parent's crops get the rest; a new crop without the structure is drawn by size).",
    ),
    draws: int = typer.Option(
        DEFAULT_FINETUNE_DRAWS,
        "--draws",
        help="Fine-tune this many times with other random draws and keep the average of the "
        "weights (3 scored +0.011 Dice over a single draw's mean on the shaded benchmark); "
        "1 is a single fine-tuning in a third of the time.",
    ),
    elastic: bool = typer.Option(False, "--elastic", help="Elastic deformation augmentation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
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
            class_balance=class_balance,
            new_crop_fraction=new_crop_fraction,
            draws=draws,
            progress=progress,
            **_train_kwargs(
                iterations,
                device,
                precision,
                seed,
                batch_size,
                patch,
                elastic,
                overwrite,
                workspace,
            ),  # type: ignore[arg-type]
        )
    exit_for(print_results([r], as_json=as_json))


@segment_app.command("predict")
@handle_errors
def predict_cmd(
    model: Path = typer.Argument(..., help="Model folder."),
    image: str = typer.Argument(
        ..., help="OME-Zarr image to segment (a folder or s3://BUCKET/PATH.ome.zarr)."
    ),
    name: str = typer.Option(..., "--name", help="Label image to write."),
    workers: int | None = typer.Option(
        None, "--workers", help="Local threads [default: all cores]."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="dask.distributed scheduler address."
    ),
    block: Triple | None = typer.Option(
        None,
        "--block",
        help="Tile Z Y X computed per network pass [default: planned within 64 128 128, "
        "not straddling write units].",
    ),
    probabilities: bool = typer.Option(
        False, "--probabilities", help="Also write NAME-probability (uint8)."
    ),
    threshold: float = typer.Option(
        0.5, "--threshold", help="Probability above which a voxel is labelled."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = PRECISION,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
    workspace: Path | None = WORKSPACE,
    as_json: bool = JSON_OPTION,
) -> None:
    """Segment IMAGE blockwise (identical to one whole-volume pass); resumable."""
    from curated.segment.predict import predict

    with RichProgress() as progress:
        r = predict(
            model,
            image,
            name=name,
            workers=workers,
            scheduler=scheduler,
            block=block,
            probabilities=probabilities,
            threshold=threshold,
            device=device,
            precision=precision,
            overwrite=overwrite,
            workspace=workspace,
            progress=progress,
        )
    print_results([r], as_json=as_json)
    warn_unrecorded([r], image, workspace)
    exit_for([r])


def register(app: typer.Typer) -> None:
    """Add ``sample``, ``annotate`` and ``segment`` to the app."""
    register_eval_commands(segment_app)
    app.add_typer(sample_app, name="sample")
    app.add_typer(annotate_app, name="annotate")
    app.add_typer(segment_app, name="segment")
