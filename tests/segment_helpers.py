"""One tiny, reproducible model for the tests that need *a* model, not a good one (seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from curated.results import Result
from curated.segment import annotate_from_truth, make_fibsem_sample, train

TINY_MODEL = {
    "depth": 2,
    "base_features": 2,
    "patch": 8,
    "batch_size": 1,
    "iterations": 2,
    "device": "cpu",
}


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread (bitwise-reproducible CPU runs), restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train_tiny(
    image: Path, out: Path, *, labels: str = "ann", label_value: int = 2, **settings: Any
) -> Result:
    """:func:`curated.segment.train` with :data:`TINY_MODEL` (``settings`` override it), on one thread."""
    with one_torch_thread():
        return train(
            image, labels=labels, label_value=label_value, out=out, **{**TINY_MODEL, **settings}
        )


PREDICT_SHAPE = (16, 40, 44)
"""Not a multiple of the prediction tiles: edge tiles are partial."""


def sample_with_tiny_model(
    root: Path, *, seed: int, iterations: int, local_contrast_sigma: float
) -> tuple[Path, Path]:
    """A :data:`PREDICT_SHAPE` sample (8 nm, 8³ chunks in 16³ shards) with three annotated
    crops, and a tiny model trained on it with every pre-processing step switched on."""
    image = root / "cell.ome.zarr"
    make_fibsem_sample(
        image, shape=PREDICT_SHAPE, voxel_size=(8, 8, 8), seed=seed, chunks=8, shard=16
    )
    annotate_from_truth(image, crops=3, size=10, seed=0, name="ann")
    pre = {"denoise_sigma": 0.5, "shading_sigma": 1.0, "local_contrast_sigma": local_contrast_sigma}
    train_tiny(image, root / "model", iterations=iterations, preprocessing=pre)
    return image, root / "model"


def annotated_workspace(ws: Path, title: str) -> Path:
    """A workspace at ``ws`` whose 16 × 24 × 24 sample image (``derived/cell.ome.zarr``, 8³
    chunks in 16³ shards) has a sparse annotation ``ann`` of three 8³ crops, both logged."""
    from curated.metadata import init_workspace

    init_workspace(ws, title)
    image = ws / "derived" / "cell.ome.zarr"
    make_fibsem_sample(image, shape=(16, 24, 24), chunks=8, shard=16, workspace=ws)
    annotate_from_truth(image, crops=3, size=8, seed=0, name="ann", workspace=ws)
    return ws


def logged_statuses(ws: Path, action: str) -> list[str]:
    """The statuses of ``action``'s entries in the curator log of workspace ``ws``, in order."""
    from curated.workspace import Workspace

    return [e["status"] for e in Workspace(ws).log.entries() if e["action"] == action]
