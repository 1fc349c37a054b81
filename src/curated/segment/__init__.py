"""Segmentation with a human in the loop: sample, annotate, train, fine-tune, predict (and evaluate, export).

Public API::

    make_fibsem_sample(dest, ...)            synthetic FIB-SEM image + ``truth`` labels
    annotate_from_truth(image, ...)          emulate a curator annotating random crops
    import_annotation(image, source_file=..., offset=..., origin="human")   add a crop annotated elsewhere
    train(image, labels=..., label_value=..., out=...)      one-label 3D U-Net from sparse crops
    finetune(parent, image, labels=..., out=...)            continue from a parent model
    predict(model, image, name=...)          blockwise OME-Zarr prediction (dask)
    load_model(path) -> SegmentationModel    open and verify a model folder
    evaluate(image, pred=..., truth=..., label_value=...)  held-out blocks + whole volume (full truth)
    suggest_crops(image, model=..., pred=..., n=...)        where to annotate next
    export_bioimageio(model, dest)           bioimage.io package with a model card
    read_model_json(path) -> (folder, dict)  the one model.json reader (InputError when unreadable)
    resolve_device("auto")                   CUDA when available, else CPU
    Box, HeldOutBlocks, EvaluationReport     held-out geometry and what evaluate returns
    GENERIC_NAME                             class names that name nothing ("label 3", "class 1")

Shared pieces: :mod:`~curated.segment.geometry` (boxes), :mod:`~curated.segment.metrics`
(Dice, counts, bootstrap intervals), :mod:`~curated.segment.volume` (level 0 of an
OME-Zarr image), :mod:`~curated.segment.device` (where PyTorch runs) and
:mod:`~curated.segment.modeljson` (the one ``model.json`` reader).
"""

from __future__ import annotations

from curated.segment._store import GENERIC_NAME
from curated.segment.annotate import (
    BACKGROUND,
    UNANNOTATED,
    annotate_from_truth,
    import_annotation,
    read_annotation_rois,
)
from curated.segment.device import resolve_device
from curated.segment.evaluate import EvaluationReport, HeldOutBlocks, evaluate
from curated.segment.export import export_bioimageio
from curated.segment.geometry import Box
from curated.segment.modelio import MODEL_FORMAT, SegmentationModel, load_model
from curated.segment.modeljson import read_model_json
from curated.segment.predict import predict
from curated.segment.preprocess import Preprocessing
from curated.segment.sample import generate_fibsem, make_fibsem_sample
from curated.segment.suggest import SuggestionWeights, suggest_crops
from curated.segment.train import Augmentation, finetune, train
from curated.segment.unet import UNet3D, UNetConfig

__all__ = [
    "BACKGROUND",
    "GENERIC_NAME",
    "MODEL_FORMAT",
    "UNANNOTATED",
    "Augmentation",
    "Box",
    "EvaluationReport",
    "HeldOutBlocks",
    "Preprocessing",
    "SegmentationModel",
    "SuggestionWeights",
    "UNet3D",
    "UNetConfig",
    "annotate_from_truth",
    "evaluate",
    "export_bioimageio",
    "finetune",
    "generate_fibsem",
    "import_annotation",
    "load_model",
    "make_fibsem_sample",
    "predict",
    "read_annotation_rois",
    "read_model_json",
    "resolve_device",
    "suggest_crops",
    "train",
]
