"""Where PyTorch runs: the ``--device`` choice and mixed precision, shared by training and prediction."""

from __future__ import annotations

import torch

from curated.errors import InputError, SegmentationError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in DEVICES:
        msg = f"device must be one of {', '.join(DEVICES)}, not {device!r}"
        raise InputError(msg, field="device")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            msg = "--device cuda was asked for but no CUDA GPU is available to PyTorch; use --device cpu or auto"
            raise SegmentationError(msg, field="device")
        return torch.device("cuda")
    return torch.device("cpu")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA (bf16 where supported, else fp16); ``None`` on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
