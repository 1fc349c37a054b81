"""Validate an OME-Zarr image with ome-zarr-models and yaozarrs, plus the checks they leave out."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

from curated.images.ngff import NgffMetadata, read_ngff
from curated.images.ngff import label_names as _label_names
from curated.images.units import LENGTH_UNITS, TIME_UNITS


def validate_ome_zarr(path: str | Path, *, conventions: bool = True) -> list[str]:
    """Return the problems found in the OME-Zarr image at ``path`` (empty when valid).

    Runs ``ome-zarr-models`` (0.4 and 0.5) and ``yaozarrs`` (0.5 store check), then
    checks what they do not enforce: UDUNITS unit names, ``scale = voxel * factor``
    with integer factors, ``translation = (factor - 1) / 2 * voxel``, level shapes
    ``ceil(n / factor)``, chunk objects the key encoding can name, and every label
    image's level count, shapes, scales and integer type against the image.

    ``conventions=False`` leaves out the one check that is curated's convention rather
    than the specification's: the half-voxel translation of a windowed-mean level (other
    writers, ome-zarr-py among them, give coarser levels no translation). The FAIR
    checklist judges other people's stores this way.
    """
    root = Path(path)
    meta = read_ngff(root, tolerant=True)
    if meta.zarr_format == 0:
        return [f"{root}: not a zarr group ({meta.problems[0]})"]
    if meta.incomplete:
        return [f"{root}: unfinished conversion ({meta.problems[0]})"]
    problems: list[str] = []
    version = "0.5" if meta.zarr_format == 3 else "0.4"
    problems += _ome_zarr_models(root, version)
    if version == "0.5":
        problems += _yaozarrs(root)
    problems += _own_checks(root, meta, conventions)
    return problems


def store_problems(path: str | Path, *, conventions: bool = True) -> list[str]:
    """:func:`validate_ome_zarr`'s problems with places named inside the store (``labels/x:
    level 0: ...``) rather than after the local path, for reports that travel (bags, logs)."""
    prefix = f"{Path(path)}: "
    return [p.removeprefix(prefix) for p in validate_ome_zarr(path, conventions=conventions)]


def _ome_zarr_models(root: Path, version: str) -> list[str]:
    import zarr

    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
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


def _precise_errors(root: Path, version: str, fmt: Literal[2, 3]) -> list[str]:
    """Validate the image and each label image on their own, to name what is wrong."""
    import importlib

    import zarr

    mod = importlib.import_module(f"ome_zarr_models.v0{version[-1]}")
    out = []
    targets = [(root, mod.Image)]
    labels = root / "labels"
    targets += [(labels / n, mod.ImageLabel) for n in _label_names(root)]
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


def _array_shape(
    root: Path, fmt: int
) -> tuple[tuple[int, ...], str, list[str] | None, str | None] | None:
    """Shape, data type, dimension names and (v3) chunk-key encoding of the array at ``root``."""
    meta = root / ("zarr.json" if fmt == 3 else ".zarray")
    if not meta.is_file():
        return None
    m = json.loads(meta.read_text())
    if fmt == 3:
        enc = m.get("chunk_key_encoding", {}).get("name", "default")
        return tuple(m["shape"]), str(m["data_type"]), m.get("dimension_names"), enc
    return tuple(m["shape"]), str(m["dtype"]), None, None


def _stray_chunks(array_dir: Path, encoding: str | None) -> str | None:
    """Chunk objects a Zarr v3 array's default key encoding cannot name (outside ``c/``).

    curated before 2026-12-07 wrote an unsharded v3 array's chunks there (``0/1/2`` instead of
    ``c/0/1/2``); every reader then saw the fill value."""
    if encoding != "default":
        return None
    try:
        stray = sorted(e.name for e in array_dir.iterdir() if e.name.isdigit())
    except OSError:
        return None
    if not stray:
        return None
    return (
        f"chunk objects outside c/ ({', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}): "
        "the array's default chunk-key encoding never reads them, so readers see the fill value "
        "(written by curated before 2026-12-07 into an unsharded store; write it again)"
    )


def _axis_units(meta: NgffMetadata, where: str) -> list[str]:
    problems = []
    for a in meta.axes:
        if a.type == "space" and a.unit not in LENGTH_UNITS:
            problems.append(
                f"{where}: axis {a.name!r} unit {a.unit!r} is not a UDUNITS-2 length name"
            )
        if a.type == "time" and a.unit is not None and a.unit not in TIME_UNITS:
            problems.append(
                f"{where}: axis {a.name!r} unit {a.unit!r} is not a UDUNITS-2 time name"
            )
    return problems


def _levels(
    root: Path, meta: NgffMetadata, where: str, problems: list[str], conventions: bool = True
) -> list[dict[str, Any]] | None:
    """Each level's path, shape, dtype and effective scale/translation, after the pyramid checks."""
    if meta.problems or not meta.levels:
        problems += [f"{where}: {p}" for p in meta.problems] or [f"{where}: no multiscales"]
        return None
    problems += _axis_units(meta, where)
    names = list(meta.axis_names)
    out: list[dict[str, Any]] = []
    for lv in meta.levels:
        info = _array_shape(root / lv.path, meta.zarr_format)
        if info is None:
            problems.append(f"{where}: level {lv.path!r} has no array")
            return None
        shape, dtype, dims, encoding = info
        stray = _stray_chunks(root / lv.path, encoding)
        if stray is not None:
            problems.append(f"{where}: level {lv.path}: {stray}")
        if dims is not None and list(dims) != names:
            problems.append(
                f"{where}: level {lv.path} dimension_names {dims} differ from axes {names}"
            )
        if any(s <= 0 for s in lv.scale):
            problems.append(f"{where}: level {lv.path} scale {list(lv.scale)} must be positive")
        level = {
            "path": lv.path,
            "shape": shape,
            "dtype": dtype,
            "scale": list(lv.scale),
            "translation": list(lv.translation),
        }
        if out:
            problems += _against_base(out[0], level, names, where, conventions)
        out.append(level)
    return out


def _against_base(
    base: dict[str, Any], level: dict[str, Any], names: list[str], where: str, conventions: bool
) -> list[str]:
    """A coarser level: integer factors, windowed-mean translation and ``ceil(n / factor)`` shapes."""
    problems = []
    sc, tr, shape, path = level["scale"], level["translation"], level["shape"], level["path"]
    for i, name in enumerate(names):
        f = sc[i] / base["scale"][i]
        if abs(f - round(f)) > 1e-6 or round(f) < 1:
            problems.append(
                f"{where}: level {path} axis {name}: scale {sc[i]} is not an integer multiple of {base['scale'][i]}"
            )
            continue
        f = round(f)
        want_tr = base["translation"][i] + (f - 1) / 2 * base["scale"][i]
        if conventions and abs(tr[i] - want_tr) > 1e-6 * max(1.0, abs(want_tr)):
            problems.append(
                f"{where}: level {path} axis {name}: translation {tr[i]} should be {want_tr} for a {f}x windowed downsampling"
            )
        want_n = -(-base["shape"][i] // f)
        if shape[i] != want_n:
            problems.append(
                f"{where}: level {path} axis {name}: {shape[i]} voxels, expected ceil({base['shape'][i]}/{f}) = {want_n}"
            )
    return problems


def _own_checks(root: Path, meta: NgffMetadata, conventions: bool = True) -> list[str]:
    problems: list[str] = []
    levels = _levels(root, meta, str(root), problems, conventions)
    if levels is None:
        return problems
    for name in meta.labels:
        lroot = root / "labels" / name
        where = f"{root}: labels/{name}"
        lmeta = read_ngff(lroot, tolerant=True)
        if lmeta.zarr_format == 0:
            problems.append(f"{where}: listed but missing")
            continue
        if lmeta.incomplete:
            problems.append(f"{where}: unfinished label image is listed")
            continue
        llevels = _levels(lroot, lmeta, where, problems, conventions)
        if llevels is not None:
            problems += _label_against_image(llevels, levels, where)
        cur = lmeta.attrs.get("curated")
        if cur is not None and (
            not isinstance(cur, dict)
            or cur.get("kind") not in ("truth", "annotation", "prediction")
            or not isinstance(cur.get("ai_generated"), bool)
        ):
            problems.append(
                f"{where}: 'curated' block needs kind truth|annotation|prediction and a boolean ai_generated"
            )
    return problems


def _label_against_image(
    llevels: list[dict[str, Any]], levels: list[dict[str, Any]], where: str
) -> list[str]:
    problems = []
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
    return problems
