"""Where PyTorch runs and at what precision: the ``--device`` and ``--precision`` choices,
shared by training and prediction."""

from __future__ import annotations

import torch

from curated.errors import InputError, SegmentationError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
"""``auto``: mixed precision on a CUDA GPU (bfloat16, or float16 with loss scaling on a GPU
without bfloat16), float32 on a CPU; ``fp32``: float32 throughout; ``bf16``: bfloat16 mixed
precision, on a CPU too (fast where it has AVX512-BF16 or AMX, emulated and slow elsewhere).

On a CPU ``auto`` stays float32: bfloat16 trained the 5 nm U-Net only 1.2× faster once
training kept its pages mapped, and on the real ssTEM stack its models scored lower
outside the crops than float32 ones from the same crops (benchmarks/RESULTS.md)."""


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


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; an :class:`InputError` otherwise."""
    if precision not in PRECISIONS:
        msg = f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"
        raise InputError(msg, field="precision")
    return precision


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype for ``precision`` on ``device``; ``None`` is float32 throughout.

    ``auto`` on CUDA: bf16 where supported, else fp16; on a CPU: ``None``.
    """
    check_precision(precision)
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if precision == "bf16":
            msg = "--precision bf16 was asked for but this GPU has no bfloat16; use --precision auto (float16) or fp32"
            raise SegmentationError(msg, field="precision")
        return torch.float16
    return torch.bfloat16 if precision == "bf16" else None


_NAMES: dict[torch.dtype | None, str] = {
    None: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


def precision_name(dtype: torch.dtype | None) -> str:
    """How a run's arithmetic is recorded: ``fp32``, ``bf16`` or ``fp16`` (mixed)."""
    return _NAMES[dtype]


def precision_dtype(name: str) -> torch.dtype | None:
    """The inverse of :func:`precision_name` (what a worker is told to compute at)."""
    for dtype, n in _NAMES.items():
        if n == name:
            return dtype
    msg = f"unknown precision {name!r}"
    raise InputError(msg, field="precision")
