"""Validate an OME-Zarr image with ome-zarr-models and yaozarrs, plus the checks they leave out."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from curated.images.store import INCOMPLETE_KEY, read_group_attrs
from curated.images.units import LENGTH_UNITS, TIME_UNITS


def validate_ome_zarr(path: str | Path) -> list[str]:
    """Return the problems found in the OME-Zarr image at ``path`` (empty when valid).

    Runs ``ome-zarr-models`` (0.4 and 0.5) and ``yaozarrs`` (0.5 store check), then
    checks what they do not enforce: UDUNITS unit names, ``scale = voxel * factor``
    with integer factors, ``translation = (factor - 1) / 2 * voxel``, level shapes
    ``ceil(n / factor)``, and every label image's level count, shapes, scales and
    integer type against the image.
    """
    root = Path(path)
    got = read_group_attrs(root)
    if got is None:
        return [f"{root}: not a zarr group"]
    attrs, fmt = got
    if INCOMPLETE_KEY in attrs:
        return [f"{root}: unfinished conversion ({attrs[INCOMPLETE_KEY]})"]
    problems: list[str] = []
    version = "0.5" if fmt == 3 else "0.4"
    problems += _ome_zarr_models(root, version)
    if version == "0.5":
        problems += _yaozarrs(root)
    problems += _own_checks(root, attrs, fmt)
    return problems


def _ome_zarr_models(root: Path, version: str) -> list[str]:
    import zarr

    fmt = 3 if version == "0.5" else 2
    try:
        from ome_zarr_models import open_ome_zarr

        group = zarr.open_group(str(root), mode="r", zarr_format=fmt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            open_ome_zarr(group, version=version)  # type: ignore[arg-type]
    except Exception as exc:
        return [f"ome-zarr-models: {line}" for line in _precise_errors(root, version, fmt)] or [
            f"ome-zarr-models: {_first_line(exc)}"
        ]
    return []


def _precise_errors(root: Path, version: str, fmt: int) -> list[str]:
    """Validate the image and each label image on their own, to name what is wrong."""
    import importlib

    import zarr

    mod = importlib.import_module(f"ome_zarr_models.v0{version[-1]}")
    out = []
    targets = [(root, mod.Image)]
    labels = root / "labels"
    got = read_group_attrs(labels)
    if got is not None:
        names = (got[0].get("ome", {}) if fmt == 3 else got[0]).get("labels", [])
        targets += [(labels / n, mod.ImageLabel) for n in names]
    for path, cls in targets:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls.from_zarr(zarr.open_group(str(path), mode="r", zarr_format=fmt))
        except Exception as exc:
            lines = [
                ln.strip()
                for ln in str(exc).splitlines()
                if ln.strip() and "errors.pydantic.dev" not in ln
            ]
            out.append(f"{path.relative_to(root).as_posix() or '.'}: {' | '.join(lines[:4])}")
    return out


def _yaozarrs(root: Path) -> list[str]:
    try:
        import yaozarrs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SHOULD-level findings (units) are our own checks' job
            yaozarrs.validate_zarr_store(str(root))
    except Exception as exc:
        return [f"yaozarrs: {_first_line(exc, 6)}"]
    return []


def _first_line(exc: BaseException, n: int = 3) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " | ".join(line.strip() for line in text.splitlines()[:n] if line.strip())


def _array_shape(root: Path, fmt: int) -> tuple[tuple[int, ...], str, list[str] | None] | None:
    meta = root / ("zarr.json" if fmt == 3 else ".zarray")
    if not meta.is_file():
        return None
    m = json.loads(meta.read_text())
    if fmt == 3:
        return tuple(m["shape"]), str(m["data_type"]), m.get("dimension_names")
    return tuple(m["shape"]), str(m["dtype"]), None


def _levels(
    root: Path, attrs: dict[str, Any], fmt: int, where: str, problems: list[str]
) -> list[dict[str, Any]] | None:
    ome = attrs.get("ome", {}) if fmt == 3 else attrs
    ms = (ome.get("multiscales") or [None])[0]
    if ms is None:
        problems.append(f"{where}: no multiscales")
        return None
    axes = ms.get("axes", [])
    names = [a.get("name") for a in axes]
    for a in axes:
        unit = a.get("unit")
        if a.get("type") == "space" and unit not in LENGTH_UNITS:
            problems.append(
                f"{where}: axis {a.get('name')!r} unit {unit!r} is not a UDUNITS-2 length name"
            )
        if a.get("type") == "time" and unit is not None and unit not in TIME_UNITS:
            problems.append(
                f"{where}: axis {a.get('name')!r} unit {unit!r} is not a UDUNITS-2 time name"
            )
    out = []
    base_scale = base_tr = base_shape = None
    for k, ds in enumerate(ms.get("datasets", [])):
        sc = tr = None
        for t in ds.get("coordinateTransformations", []):
            if t.get("type") == "scale":
                sc = [float(v) for v in t["scale"]]
            elif t.get("type") == "translation":
                tr = [float(v) for v in t["translation"]]
        tr = tr or [0.0] * len(names)
        info = _array_shape(root / ds["path"], fmt)
        if info is None or sc is None:
            problems.append(f"{where}: level {ds.get('path')!r} has no array or no scale")
            return None
        shape, dtype, dims = info
        if dims is not None and list(dims) != names:
            problems.append(
                f"{where}: level {ds['path']} dimension_names {dims} differ from axes {names}"
            )
        if any(s <= 0 or not math.isfinite(s) for s in sc):
            problems.append(f"{where}: level {ds['path']} scale {sc} must be positive")
        if k == 0:
            base_scale, base_tr, base_shape = sc, tr, shape
        else:
            assert base_scale is not None and base_tr is not None and base_shape is not None
            for i, name in enumerate(names):
                f = sc[i] / base_scale[i]
                if abs(f - round(f)) > 1e-6 or round(f) < 1:
                    problems.append(
                        f"{where}: level {ds['path']} axis {name}: scale {sc[i]} is not an integer multiple of {base_scale[i]}"
                    )
                    continue
                f = round(f)
                want_tr = base_tr[i] + (f - 1) / 2 * base_scale[i]
                if abs(tr[i] - want_tr) > 1e-6 * max(1.0, abs(want_tr)):
                    problems.append(
                        f"{where}: level {ds['path']} axis {name}: translation {tr[i]} should be {want_tr} for a {f}x windowed downsampling"
                    )
                want_n = -(-base_shape[i] // f)
                if shape[i] != want_n:
                    problems.append(
                        f"{where}: level {ds['path']} axis {name}: {shape[i]} voxels, expected ceil({base_shape[i]}/{f}) = {want_n}"
                    )
        out.append(
            {"path": ds["path"], "shape": shape, "dtype": dtype, "scale": sc, "translation": tr}
        )
    return out


def _own_checks(root: Path, attrs: dict[str, Any], fmt: int) -> list[str]:
    problems: list[str] = []
    levels = _levels(root, attrs, fmt, str(root), problems)
    if levels is None:
        return problems
    labels_root = root / "labels"
    got = read_group_attrs(labels_root)
    if got is None:
        return problems
    lattrs, _ = got
    names = (lattrs.get("ome", {}) if fmt == 3 else lattrs).get("labels", [])
    for name in names:
        lroot = labels_root / name
        lgot = read_group_attrs(lroot)
        where = f"{root}: labels/{name}"
        if lgot is None:
            problems.append(f"{where}: listed but missing")
            continue
        la, _ = lgot
        if INCOMPLETE_KEY in la:
            problems.append(f"{where}: unfinished label image is listed")
            continue
        llevels = _levels(lroot, la, fmt, where, problems)
        if llevels is None:
            continue
        if len(llevels) != len(levels):
            problems.append(f"{where}: {len(llevels)} levels, the image has {len(levels)}")
        for lv, iv in zip(llevels, levels, strict=False):
            if tuple(lv["shape"]) != tuple(iv["shape"]):
                problems.append(
                    f"{where}: level {lv['path']} shape {lv['shape']} differs from the image's {iv['shape']}"
                )
            if any(
                abs(a - b) > 1e-9 * max(1.0, abs(b))
                for a, b in zip(lv["scale"], iv["scale"], strict=False)
            ):
                problems.append(
                    f"{where}: level {lv['path']} scale {lv['scale']} differs from the image's {iv['scale']}"
                )
            if not any(t in lv["dtype"] for t in ("int", "<i", "<u", "|u", "|i")):
                problems.append(
                    f"{where}: level {lv['path']} dtype {lv['dtype']} is not an integer type"
                )
        cur = la.get("curated")
        if cur is not None and (
            cur.get("kind") not in ("truth", "annotation", "prediction")
            or not isinstance(cur.get("ai_generated"), bool)
        ):
            problems.append(
                f"{where}: 'curated' block needs kind truth|annotation|prediction and a boolean ai_generated"
            )
    return problems
