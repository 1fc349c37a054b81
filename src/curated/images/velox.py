"""Thermo Fisher Velox ``.emd`` files (HDF5) as converter sources.

A Velox file names its format in its root ``Version`` dataset (JSON, ``"format": "Velox"``)
and keeps each image under ``/Data/Image/<id>/``: ``Data`` holds the pixels as
(y, x, frame), frames last, and ``Metadata`` one column of bytes per frame holding a JSON
document. Its ``BinaryResult`` states the pixel size as text without a unit
(``PixelSize: {"width": "8.17e-12", "height": ...}``) and the unit beside it
(``PixelUnitX``, ``PixelUnitY``: ``m``; ``1/m`` for a diffraction pattern or an FFT).

The image is read with its axes put right: a single frame as ``y x``; several frames as
``z y x``, the frame index as z, whose spacing the file does not state.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

from curated.errors import InputError
from curated.images.units import length_unit, round_to, significant_digits, to_unit

VELOX_SUFFIX = ".emd"
IMAGES = "/Data/Image"


class VeloxPixel(NamedTuple):
    """What a Velox image's ``BinaryResult`` says of its pixel size."""

    yx: tuple[float, float] | None
    """(y, x) in nanometres, when stated in a length unit; else ``None``."""
    source: str
    """Where it was read: ``velox:BinaryResult/PixelSize (m)``."""
    note: str | None = None
    """Why a stated pixel size is not used (``None`` when used, or when none is stated)."""


def is_velox(f: Any) -> bool:
    """Whether an open ``h5py.File`` is a Velox file (its ``Version`` names the format)."""
    version = f.get("Version")
    if version is None or getattr(version, "shape", None) is None:
        return False
    try:
        raw = version[()]
        text = raw[0] if getattr(raw, "ndim", 0) else raw
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return json.loads(str(text)).get("format") == "Velox"
    except (ValueError, TypeError, AttributeError, IndexError):
        return False


def velox_images(f: Any) -> list[str]:
    """The image datasets of an open Velox file: ``/Data/Image/<id>/Data``."""
    group = f.get(IMAGES)
    if group is None:
        return []
    return [f"{IMAGES}/{k}/Data" for k in group if "Data" in group[k]]


def velox_key(f: Any, key: str, file: Path) -> str:
    """The image dataset a key names (``/Data/Image/<id>`` or ``.../Data``), or the only one."""
    names = velox_images(f)
    if not key:
        if len(names) == 1:
            return names[0]
        listed = ", ".join(f"{n} ({velox_detector(f, n) or 'no detector named'})" for n in names)
        msg = (
            f"is a Velox file holding {len(names)} images ({listed or 'none'}); "
            f"name one as {file.name}:{IMAGES}/<id>"
        )
        raise InputError(msg, path=file)
    full = key.rstrip("/")
    full = full if full.endswith("/Data") else f"{full}/Data"
    if full not in names:
        msg = f"{key} is no Velox image; images in the file: {', '.join(names) or 'none'}"
        raise InputError(msg, path=file)
    return full


def _metadata(f: Any, dataset: str, column: int = 0) -> dict[str, Any]:
    """The JSON document of one frame (a column of the ``Metadata`` byte array)."""
    meta = f.get(dataset.rpartition("/")[0] + "/Metadata")
    if meta is None or meta.ndim != 2 or column >= meta.shape[1]:
        return {}
    raw = bytes(meta[:, column].tobytes()).split(b"\0", 1)[0]
    try:
        doc = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def velox_detector(f: Any, dataset: str) -> str | None:
    result = _metadata(f, dataset).get("BinaryResult")
    found = result.get("Detector") if isinstance(result, dict) else None
    return str(found) if found else None


def _frame_pixel(doc: dict[str, Any]) -> tuple[str, str, str, str] | None:
    result = doc.get("BinaryResult")
    if not isinstance(result, dict):
        return None
    size = result.get("PixelSize")
    if not isinstance(size, dict) or "width" not in size or "height" not in size:
        return None
    unit_x, unit_y = result.get("PixelUnitX", ""), result.get("PixelUnitY", "")
    return str(size["height"]), str(size["width"]), str(unit_y), str(unit_x)


def velox_pixel(f: Any, dataset: str, frames: int) -> VeloxPixel:
    """The (y, x) pixel size a Velox image states, in nanometres, with where it was read,
    or why a stated one is not used (a unit that is no length, frames that disagree)."""
    first = _frame_pixel(_metadata(f, dataset))
    if first is None:
        return VeloxPixel(None, "none")
    height, width, unit_y, unit_x = first
    source = f"velox:BinaryResult/PixelSize ({unit_x})"
    stated = f"{source} = height {height} width {width}"
    if unit_x != unit_y:
        why = f"x in {unit_x!r}, y in {unit_y!r}"
        return VeloxPixel(None, "none", f"{stated}: {why}; not used as the voxel size")
    try:
        unit = length_unit(unit_x)
    except InputError:
        why = f"{unit_x!r} is not a length (a diffraction pattern or an FFT)"
        return VeloxPixel(None, "none", f"{stated}: {why}; not used as the voxel size")
    try:
        values = (float(height), float(width))
    except ValueError:
        values = (0.0, 0.0)
    if not all(math.isfinite(v) and v > 0 for v in values):
        return VeloxPixel(None, "none", f"{stated}: not a size; not used as the voxel size")
    last = _frame_pixel(_metadata(f, dataset, frames - 1)) if frames > 1 else None
    if last is not None and last != first:
        why = "the last frame states another pixel size than the first"
        return VeloxPixel(None, "none", f"{stated}: {why}; not used as the voxel size")
    yx = tuple(
        round_to(to_unit(v, unit, "nanometer"), significant_digits(text))
        for v, text in zip(values, (height, width), strict=True)
    )
    return VeloxPixel((yx[0], yx[1]), source)


def velox_summary(path: str | Path) -> dict[str, Any] | None:
    """For `check`: a Velox file's first image as `convert` reads it (``shape`` in z y x or
    y x order, ``dtype``, ``axes``, ``pixel_size`` in words with its source, or why the
    stated one is not used), ``images`` (how many); ``None`` when the file is no Velox file."""
    import h5py

    with h5py.File(path, "r") as f:
        if not is_velox(f):
            return None
        names = velox_images(f)
        if not names:
            return {"images": 0}
        data = f[names[0]]
        if data.ndim != 3:
            return {
                "images": len(names),
                "velox": f"{names[0]} has shape {data.shape}, not (y, x, frame)",
            }
        y, x, frames = (int(n) for n in data.shape)
        dtype = str(data.dtype)
        pixel = velox_pixel(f, names[0], frames)
    words = None
    if pixel.yx is not None:
        words = f"pixel size y x = {pixel.yx[0]:.10g} {pixel.yx[1]:.10g} nanometer ({pixel.source})"
    return {
        "images": len(names),
        "image": names[0],
        "shape": [frames, y, x] if frames > 1 else [y, x],
        "axes": "zyx" if frames > 1 else "yx",
        "dtype": dtype,
        "pixel_size": words,
        "pixel_size_not_used": pixel.note,
    }
