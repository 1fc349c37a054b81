"""One tiny, reproducible model for the tests that need *a* model, not a good one (seconds)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from curated.results import Result
from curated.segment import train

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
