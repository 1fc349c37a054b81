"""The one reader of OME-Zarr (NGFF) metadata: 0.4 and 0.5, Zarr v2 and v3.

Every part of ``curated`` that needs an image's axes, levels, voxel size, label
list or ``image-label`` block reads it here and gets a typed, read-only
:class:`NgffMetadata`; nothing else looks inside ``multiscales``. Writers build
the metadata elsewhere (:mod:`curated.images.layout`, :mod:`curated.images.convert`,
:mod:`curated.images.labels`).

Where the attributes live
    NGFF 0.5 keeps them under the group attribute ``ome``; 0.4 at the top level.
    The rule, the same for every reader: the ``ome`` object when the group has one,
    else the top level (whatever the Zarr format, so a v3 store written the 0.4 way
    still reads).

Two modes
    *Strict* (the default) is for computation: an interrupted or unfinished store
    is refused with :data:`curated.images.store.INCOMPLETE_MESSAGE`
    (:class:`~curated.errors.ConversionError`), anything malformed with a one-line
    :class:`~curated.errors.InputError` naming the field.
    *Tolerant* (``tolerant=True``) is for describing a store as it is (the README,
    ``validate``): it never raises, returns what it could read and lists the rest in
    ``problems``.

Voxel size
    A level's ``scale`` and ``translation`` are the *effective* ones: the dataset's
    own transformations followed by the multiscale-wide ``coordinateTransformations``,
    as the NGFF specification composes them. The voxel size is level 0's effective
    scale on the ``z``, ``y``, ``x`` axes.

Spec-conformance checks (ordering of levels, units, ``image-label`` schema) are
:func:`curated.images.validate.validate_ome_zarr`'s job, with ome-zarr-models; the
view here is deliberately plain dataclasses so that one type covers both versions
and a tolerant read can describe a store those models reject.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from curated.errors import ConversionError, InputError
from curated.images.store import INCOMPLETE_KEY, INCOMPLETE_MESSAGE, read_group_attrs
from curated.objstore import StorePath, as_path

# re-exported for readers of images: the one definition of a Zarr store is curated.walk's
from curated.walk import ZARR_METADATA as ZARR_METADATA
from curated.walk import is_zarr_store as is_zarr_store

SPATIAL = ("z", "y", "x")

NOT_A_STORE = (
    "is not an OME-Zarr image (no zarr.json or .zgroup); convert one with `curated convert`"
)
NO_MULTISCALES = "has no OME-Zarr multiscales metadata; it is not an OME-Zarr image"


# ------------------------------------------------------------------ the view
@dataclass(frozen=True)
class Axis:
    """One NGFF axis: ``name``, ``type`` (``space``, ``time``, ``channel`` ...) and ``unit``."""

    name: str
    type: str | None = None
    unit: str | None = None

    def to_dict(self) -> dict[str, str]:
        """The axis as NGFF writes it (absent fields left out)."""
        out = {"name": self.name}
        if self.type is not None:
            out["type"] = self.type
        if self.unit is not None:
            out["unit"] = self.unit
        return out


@dataclass(frozen=True)
class Level:
    """One pyramid level: its array path and effective scale/translation (in axis order)."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...]


@dataclass(frozen=True)
class ImageLabel:
    """The ``image-label`` block of a label image (entries that do not parse are left out)."""

    colors: Mapping[int, tuple[int, int, int, int]] = field(default_factory=dict)
    """Label value → RGBA."""
    properties: tuple[Mapping[str, Any], ...] = ()
    """Each property as stored; ``label-value`` is an ``int`` in every one kept."""
    source: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> dict[int, str]:
        """Label value → the ``name`` property, where one is given."""
        return {int(p["label-value"]): str(p["name"]) for p in self.properties if p.get("name")}

    @property
    def unannotated(self) -> frozenset[int]:
        """Values a sparse annotation marks ``curated:unannotated`` ("nobody looked here")."""
        return frozenset(
            int(p["label-value"]) for p in self.properties if p.get("curated:unannotated")
        )

    @property
    def values(self) -> frozenset[int]:
        """Every label value the block declares (colours or properties)."""
        return frozenset(self.colors) | frozenset(int(p["label-value"]) for p in self.properties)


@dataclass(frozen=True)
class NgffMetadata:
    """What an OME-Zarr image (or label image) says about itself, version-independent."""

    path: Path | StorePath | None
    zarr_format: int
    version: str | None
    axes: tuple[Axis, ...] = ()
    levels: tuple[Level, ...] = ()
    """Level 0 (full resolution) first."""
    name: str | None = None
    image_label: ImageLabel | None = None
    """Set for a label image."""
    curated: Mapping[str, Any] = field(default_factory=dict)
    """The ``curated`` block (top level, or inside ``ome``), ``{}`` when absent."""
    labels: tuple[str, ...] = ()
    """Names the ``labels`` group lists (finished label images), when read from a path."""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """The group's attributes as stored."""
    incomplete: bool = False
    """An interrupted or unfinished write (only a tolerant read returns one)."""
    problems: tuple[str, ...] = ()
    """What a tolerant read could not use, one line each. After a strict read only
    malformed ``image-label`` entries can be listed (they describe, they never stop a read)."""

    @property
    def ome(self) -> Mapping[str, Any]:
        """The NGFF attribute block: ``ome`` (0.5) or the top level (0.4)."""
        return ngff_block(self.attrs)

    @property
    def flat_attrs(self) -> dict[str, Any]:
        """The NGFF block and the group's other attributes in one mapping (the group's win)."""
        return {**self.ome, **{k: v for k, v in self.attrs.items() if k != "ome"}}

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def units(self) -> tuple[str | None, ...]:
        return tuple(a.unit for a in self.axes)

    @property
    def level_paths(self) -> list[str]:
        return [lv.path for lv in self.levels]

    @property
    def is_label(self) -> bool:
        return self.image_label is not None

    @property
    def spatial(self) -> tuple[int, ...]:
        """Indices of the ``z``, ``y``, ``x`` axes that exist, in axis order."""
        return tuple(i for i, a in enumerate(self.axes) if a.name.lower() in SPATIAL)

    def zyx(self) -> tuple[int, int, int]:
        """Indices of the ``z``, ``y`` and ``x`` axes; :class:`InputError` when one is missing."""
        names = [a.name.lower() for a in self.axes]
        try:
            return tuple(names.index(n) for n in SPATIAL)  # type: ignore[return-value]
        except ValueError:
            msg = f"must have z, y and x axes, has {list(self.axis_names)}"
            raise InputError(msg, path=self.path, field="multiscales[0].axes") from None

    @property
    def voxel_size(self) -> tuple[float, ...]:
        """Level 0's effective scale on the spatial axes (axis order)."""
        if not self.levels:
            return ()
        return tuple(self.levels[0].scale[i] for i in self.spatial)

    @property
    def unit(self) -> str | None:
        """The unit of the first spatial axis that has one."""
        return next((self.axes[i].unit for i in self.spatial if self.axes[i].unit), None)


def ngff_block(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The NGFF attributes of a group: its ``ome`` object (0.5) or, without one, the top level (0.4)."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, Mapping) else attrs


def declares_image(attrs: Mapping[str, Any]) -> bool:
    """Whether a group's attributes declare an OME-Zarr multiscale image (without checking it)."""
    return bool(ngff_block(attrs).get("multiscales"))


# ---------------------------------------------------------------- reading
def read_ngff(path: str | Path, *, tolerant: bool = False) -> NgffMetadata:
    """Read the NGFF metadata of the OME-Zarr image or label image at ``path``.

    Parameters
    ----------
    path
        The image's root folder (``cell.ome.zarr``) or a label image (``.../labels/mito``).
    tolerant
        Describe whatever is there instead of raising (see the module notes).

    Raises
    ------
    InputError
        (strict only) ``path`` is not a Zarr group, its metadata is not JSON, or its
        ``multiscales`` are missing or malformed; the message names the field.
    ConversionError
        (strict only) the store is being written or was interrupted.

    Examples
    --------
    >>> meta = read_ngff("derived/cell.ome.zarr")  # doctest: +SKIP
    >>> meta.voxel_size, meta.unit, meta.level_paths  # doctest: +SKIP
    ((8.0, 4.0, 4.0), 'nanometer', ['0', '1', '2'])
    """
    root = as_path(path)  # a folder, or an s3:// URL (curated.objstore)
    try:
        got = read_group_attrs(root)
    except (OSError, ValueError) as exc:  # unreadable / not JSON
        text = f"cannot read the store ({type(exc).__name__}: {exc})"
        if not tolerant:
            raise InputError(text.replace("\n", " "), path=root) from None
        return NgffMetadata(path=root, zarr_format=0, version=None, problems=(text,))
    if got is None:
        text = NOT_A_STORE if root.is_dir() else "does not exist (no OME-Zarr image here)"
        if not tolerant:
            raise InputError(text, path=root)
        return NgffMetadata(path=root, zarr_format=0, version=None, problems=(text,))
    attrs, fmt = got
    meta = from_attrs(attrs, zarr_format=fmt, path=root, tolerant=tolerant)
    labels = tuple(label_names(root))
    return meta if not labels else replace(meta, labels=labels)


def from_group(
    group: Any, *, path: str | Path | None = None, tolerant: bool = False
) -> NgffMetadata:
    """:func:`read_ngff` for an open ``zarr.Group`` (any store zarr can open)."""
    fmt = int(getattr(getattr(group, "metadata", None), "zarr_format", 3) or 3)
    where = Path(path) if path is not None else None
    return from_attrs(dict(group.attrs), zarr_format=fmt, path=where, tolerant=tolerant)


def label_names(path: str | Path) -> list[str]:
    """Names listed by the ``labels`` group of the image at ``path`` (``[]`` when none or unreadable)."""
    try:
        got = read_group_attrs(as_path(path) / "labels")
    except (OSError, ValueError):
        return []
    if got is None or not isinstance(got[0], Mapping):
        return []
    names = ngff_block(got[0]).get("labels")
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and _safe_name(n)]


def from_attrs(
    attrs: Mapping[str, Any],
    *,
    zarr_format: int,
    path: str | Path | None = None,
    tolerant: bool = False,
) -> NgffMetadata:
    """Parse a group's attributes (as stored) into :class:`NgffMetadata`; see :func:`read_ngff`."""
    where = Path(path) if path is not None else None
    found = _Findings(where, tolerant)
    if not isinstance(attrs, Mapping):
        found.fatal("", "the group attributes are not a JSON object")
        return NgffMetadata(path=where, zarr_format=zarr_format, version=None, problems=found.lines)
    incomplete = INCOMPLETE_KEY in attrs
    if incomplete:
        if not tolerant:
            raise ConversionError(INCOMPLETE_MESSAGE, path=where)
        found.note("", INCOMPLETE_MESSAGE)
    if "ome" in attrs and not isinstance(attrs["ome"], Mapping):
        found.fatal("ome", "must be a JSON object")
    block = ngff_block(attrs)
    base = NgffMetadata(
        path=where,
        zarr_format=zarr_format,
        version=_version(block, {}, zarr_format),
        attrs=attrs,
        incomplete=incomplete,
        curated=_curated(attrs, block),
        image_label=_image_label(block.get("image-label"), found),
    )
    ms_list = block.get("multiscales")
    if incomplete and not ms_list:
        return replace(base, problems=found.lines)
    if not isinstance(ms_list, list) or not ms_list or not isinstance(ms_list[0], Mapping):
        found.fatal("multiscales", NO_MULTISCALES)
        return replace(base, problems=found.lines)
    ms = ms_list[0]
    axes = _axes(ms.get("axes"), found)
    ndim = len(axes) if axes else None
    overall = _transforms(ms.get("coordinateTransformations"), ndim, "multiscales[0]", found)
    levels = _levels(ms.get("datasets"), ndim, overall, found)
    name = ms.get("name")
    return replace(
        base,
        version=_version(block, ms, zarr_format),
        axes=axes,
        levels=levels,
        name=name if isinstance(name, str) else None,
        problems=found.lines,
    )


# --------------------------------------------------------------- internals
class _Findings:
    """Problems met while parsing: raised at once (strict) or collected (tolerant)."""

    def __init__(self, path: Path | None, tolerant: bool) -> None:
        self.path = path
        self.tolerant = tolerant
        self.lines: tuple[str, ...] = ()

    def fatal(self, where: str, message: str) -> None:
        if not self.tolerant:
            raise InputError(message, path=self.path, field=where or None)
        self.note(where, message)

    def note(self, where: str, message: str) -> None:
        self.lines = (*self.lines, f"{where}: {message}" if where else message)


def _version(block: Mapping[str, Any], ms: Mapping[str, Any], zarr_format: int) -> str:
    v = block.get("version") or ms.get("version")
    if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v):
        return str(v)
    return "0.5" if zarr_format == 3 else "0.4"


def _curated(attrs: Mapping[str, Any], block: Mapping[str, Any]) -> Mapping[str, Any]:
    for holder in (attrs, block):
        cur = holder.get("curated")
        if isinstance(cur, Mapping):
            return cur
    return {}


def _axes(raw: Any, found: _Findings) -> tuple[Axis, ...]:
    where = "multiscales[0].axes"
    if not isinstance(raw, list) or not raw:
        found.fatal(where, "must be a non-empty list of axes")
        return ()
    out = []
    for i, a in enumerate(raw):
        if isinstance(a, str) and a:  # NGFF 0.3 wrote axes as plain names
            out.append(Axis(a))
            continue
        name = a.get("name") if isinstance(a, Mapping) else None
        if not isinstance(name, str) or not name:
            found.fatal(f"{where}[{i}]", "needs a name")
            return ()
        kind, unit = a.get("type"), a.get("unit")
        out.append(
            Axis(
                name,
                kind if isinstance(kind, str) else None,
                unit if isinstance(unit, str) else None,
            )
        )
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        found.fatal(where, f"names must be unique, got {names}")
        return ()
    return tuple(out)


def _vector(raw: Any, ndim: int | None, where: str, found: _Findings) -> tuple[float, ...] | None:
    if not isinstance(raw, list) or not raw or not all(_finite(v) for v in raw):
        found.fatal(where, f"must be a list of finite numbers, got {str(raw)[:80]}")
        return None
    if ndim is not None and len(raw) != ndim:
        found.fatal(where, f"has {len(raw)} values for {ndim} axes")
        return None
    return tuple(float(v) for v in raw)


def _finite(v: Any) -> bool:
    """A JSON number that is a finite float (a 400-digit integer is not)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _transforms(
    raw: Any, ndim: int | None, where: str, found: _Findings
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``(scale, translation)`` of a ``coordinateTransformations`` list (``None`` when absent)."""
    where = f"{where}.coordinateTransformations"
    if raw is None:
        return None, None
    if not isinstance(raw, list):
        found.fatal(where, "must be a list")
        return None, None
    scale = translation = None
    for i, t in enumerate(raw):
        kind = t.get("type") if isinstance(t, Mapping) else None
        if kind in ("scale", "translation") and kind not in t:
            found.fatal(
                f"{where}[{i}]", f"a {kind} kept in a file is not supported; give the {kind} inline"
            )
        elif kind == "scale":
            scale = _vector(t["scale"], ndim, f"{where}[{i}].scale", found)
        elif kind == "translation":
            translation = _vector(t["translation"], ndim, f"{where}[{i}].translation", found)
        elif kind != "identity":
            found.fatal(f"{where}[{i}]", f"unknown transformation {str(t)[:60]}")
    return scale, translation


def _safe_name(rel: str) -> bool:
    """A relative path inside the store: no absolute path, no ``..``, nothing empty."""
    parts = PurePosixPath(rel).parts
    return bool(parts) and not rel.startswith("/") and "\\" not in rel and ".." not in parts


def _levels(
    raw: Any,
    ndim: int | None,
    overall: tuple[tuple[float, ...] | None, tuple[float, ...] | None],
    found: _Findings,
) -> tuple[Level, ...]:
    where = "multiscales[0].datasets"
    if not isinstance(raw, list) or not raw:
        found.fatal(where, "must be a non-empty list of levels")
        return ()
    out = []
    for k, ds in enumerate(raw):
        here = f"{where}[{k}]"
        rel = ds.get("path") if isinstance(ds, Mapping) else None
        if not isinstance(rel, str) or not _safe_name(rel):
            found.fatal(f"{here}.path", f"must be a relative path inside the store, got {rel!r}")
            continue
        scale, translation = _transforms(ds.get("coordinateTransformations"), ndim, here, found)
        n = ndim or len(scale or translation or ())
        if scale is None:
            found.fatal(here, "has no scale transformation")
            scale = (1.0,) * n
        out.append(_compose(rel, scale, translation or (0.0,) * len(scale), overall))
    return tuple(out)


def _compose(
    rel: str,
    scale: tuple[float, ...],
    translation: tuple[float, ...],
    overall: tuple[tuple[float, ...] | None, tuple[float, ...] | None],
) -> Level:
    """The level's transformations followed by the multiscale-wide ones (NGFF order)."""
    g_scale, g_translation = overall
    if g_scale is not None and len(g_scale) == len(scale):
        scale = tuple(s * g for s, g in zip(scale, g_scale, strict=True))
        translation = tuple(t * g for t, g in zip(translation, g_scale, strict=True))
    if g_translation is not None and len(g_translation) == len(translation):
        translation = tuple(t + g for t, g in zip(translation, g_translation, strict=True))
    return Level(path=rel, scale=scale, translation=translation)


def _image_label(raw: Any, found: _Findings) -> ImageLabel | None:
    """The ``image-label`` block; malformed entries are noted and left out, never fatal."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        found.note("image-label", "must be a JSON object")
        return ImageLabel()
    colors: dict[int, tuple[int, int, int, int]] = {}
    for i, c in enumerate(raw.get("colors") or []):
        value = _label_value(c)
        rgba = c.get("rgba") if isinstance(c, Mapping) else None
        if value is None or not _rgba(rgba):
            found.note(
                f"image-label.colors[{i}]",
                "needs an integer label-value and four 0-255 rgba values",
            )
            continue
        colors[value] = tuple(int(v) for v in rgba)  # type: ignore[assignment, union-attr]
    props: list[Mapping[str, Any]] = []
    for i, p in enumerate(raw.get("properties") or []):
        value = _label_value(p)
        if value is None:
            found.note(f"image-label.properties[{i}]", "needs an integer label-value")
            continue
        props.append({**p, "label-value": value})
    source = raw.get("source")
    return ImageLabel(
        colors=colors,
        properties=tuple(props),
        source=source if isinstance(source, Mapping) else {},
    )


def _label_value(entry: Any) -> int | None:
    if not isinstance(entry, Mapping):
        return None
    v = entry.get("label-value")
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():  # tolerated: "1" for 1
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v  # exact, up to uint64 label values
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return None


def _rgba(raw: Any) -> bool:
    return (
        isinstance(raw, Sequence)
        and not isinstance(raw, str)
        and len(raw) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in raw)
    )
