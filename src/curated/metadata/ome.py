"""Read image metadata from a TIFF's header (OME-XML, ImageJ, resolution tags) and merge it into a record.

Only headers are read: the first IFD's tags (OME-XML and ImageJ metadata live in
its ImageDescription) and, for plain stacks, the IFD chain that counts the pages.
Pixel data is never touched, so a multi-terabyte FIB-SEM stack imports in
milliseconds. Lengths are normalised to one UDUNITS-2 unit (:data:`TARGET_UNIT`),
and every value carries where it came from (``ome:Pixels@PhysicalSizeX``,
``tiff:XResolution``, ``imagej:spacing``...).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curated.errors import MetadataError
from curated.metadata.paths import MISSING, format_path, get_at, parse_path, set_at
from curated.results import Result

if TYPE_CHECKING:
    from curated.workspace import Workspace

TARGET_UNIT = "nanometer"
"""The UDUNITS-2 unit every imported voxel size is expressed in."""

# length of one unit in nanometres; keys are OME UnitsLength symbols and ImageJ spellings
_NM_PER_UNIT: dict[str, float] = {
    "m": 1e9, "meter": 1e9, "metre": 1e9,
    "dm": 1e8,
    "cm": 1e7, "centimeter": 1e7, "centimetre": 1e7,
    "mm": 1e6, "millimeter": 1e6, "millimetre": 1e6,
    "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometre": 1e3,
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "pm": 1e-3, "picometer": 1e-3,
    "Å": 0.1, "å": 0.1, "a": 0.1, "angstrom": 0.1,
    "in": 2.54e7, "inch": 2.54e7,
    "thou": 2.54e4,
}  # fmt: skip

_RESUNIT_NM = {2: 2.54e7, 3: 1e7}  # TIFF ResolutionUnit: 2 inch, 3 centimetre (1 = none)
_DISPLAY_DPI = {72.0, 96.0, 150.0, 300.0}  # written by image editors, not microscopes

_OME_DTYPES = {"float": "float32", "double": "float64"}
_PIXEL_TYPES = {"uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"}

IMPORT_KINDS = {"ome_xml", "tiff_tag", "imagej"}
"""``sources[].source_kind`` values written by an import (re-imports may replace them)."""


@dataclass
class OmeImport:
    """What an image file's header says, ready to merge into a record."""

    path: str
    """The file read."""
    kind: str
    """``ome-xml``, ``imagej``, ``fei`` or ``tiff``: where the physical metadata came from."""
    images: list[dict[str, Any]] = field(default_factory=list)
    """ImageRepresentation fields, one dict per image in the file."""
    acquisition: dict[str, Any] = field(default_factory=dict)
    """ImageAcquisitionProtocol fields found (instrument, detector, date); may be empty."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """FieldSource entries; ``field`` is relative to this import (``images[0].voxel_size_x``,
    ``acquisition.instrument_model``)."""
    warnings: list[str] = field(default_factory=list)

    def _set(self, where: str, value: Any, kind: str, source_path: str, raw: Any = None) -> None:
        set_at(self.__dict__, parse_path(where), value)
        entry = {
            "field": where,
            "source_kind": kind,
            "source_path": source_path,
            "source_file": self.path,
        }
        if raw is not None:
            entry["source_value"] = str(raw)
        self.sources.append(entry)

    def source_for(self, where: str) -> dict[str, Any] | None:
        return next((s for s in self.sources if s["field"] == where), None)


def _clean(x: float) -> float:
    return float(f"{x:.10g}")


def _to_nm(value: float, unit: str) -> float | None:
    factor = _NM_PER_UNIT.get(unit) or _NM_PER_UNIT.get(unit.lower())
    return None if factor is None else _clean(value * factor)


# --------------------------------------------------------------------- OME-XML
def _from_ome_xml(imp: OmeImport, xml: str) -> None:
    import ome_types

    try:
        ome = ome_types.from_xml(xml, validate=False)
    except Exception as exc:  # ome-types raises several kinds (XML syntax, pydantic, ValueError)
        msg = f"the OME-XML in this file is broken ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); fix or strip the ImageDescription, or set the fields by hand with `curated metadata set`"
        raise MetadataError(msg, path=imp.path, field="OME-XML") from None
    if not ome.images:
        raise MetadataError("the OME-XML describes no Image", path=imp.path, field="OME-XML")
    stem = Path(imp.path).name.split(".")[0]
    names: set[str] = set()
    for i, image in enumerate(ome.images):
        px = image.pixels
        prefix = "ome:" if i == 0 else f"ome:Image[{i}]/"
        where = f"images[{i}]"
        name = (
            image.name
            if image.name and image.name not in names
            else (stem if i == 0 else f"{stem}-{i}")
        )
        names.add(name)
        imp._set(
            f"{where}.name", name, "ome_xml", f"{prefix}Image@Name" if image.name else "file name"
        )
        imp._set(f"{where}.image_format", "OME-TIFF", "ome_xml", "ome:OME")
        ptype = getattr(px.type, "value", str(px.type))
        dtype = _OME_DTYPES.get(ptype, ptype)
        if dtype in _PIXEL_TYPES:
            imp._set(f"{where}.dtype", dtype, "ome_xml", f"{prefix}Pixels@Type", ptype)
        else:
            imp.warnings.append(
                f"{where}.dtype: OME pixel type {ptype!r} has no equivalent in the schema; not imported"
            )
        for axis in "xyzct":
            size = getattr(px, f"size_{axis}")
            if size is not None:
                imp._set(
                    f"{where}.size_{axis}",
                    int(size),
                    "ome_xml",
                    f"{prefix}Pixels@Size{axis.upper()}",
                )
        unit_set = False
        for axis in "xyz":
            value = getattr(px, f"physical_size_{axis}")
            if value is None:
                continue
            unit = getattr(getattr(px, f"physical_size_{axis}_unit"), "value", "µm")
            nm = _to_nm(float(value), unit)
            if nm is None:
                imp.warnings.append(
                    f"{where}.voxel_size_{axis}: OME unit {unit!r} is not a physical length; not imported"
                )
                continue
            imp._set(
                f"{where}.voxel_size_{axis}",
                nm,
                "ome_xml",
                f"{prefix}Pixels@PhysicalSize{axis.upper()}",
                f"{value} {unit}",
            )
            if not unit_set:
                imp._set(
                    f"{where}.voxel_size_unit",
                    TARGET_UNIT,
                    "curated_inference",
                    f"{prefix}Pixels@PhysicalSize{axis.upper()}Unit",
                    unit,
                )
                unit_set = True
        imp._set(f"{where}.path", imp.path, "ome_xml", "file")
        if i == 0:
            _ome_acquisition(imp, ome, image)


def _ome_acquisition(imp: OmeImport, ome: Any, image: Any) -> None:
    instrument = None
    ref = getattr(image.instrument_ref, "id", None) if image.instrument_ref else None
    for inst in ome.instruments:
        if inst.id == ref or (ref is None and len(ome.instruments) == 1):
            instrument = inst
    if instrument is not None and instrument.microscope is not None:
        mic = instrument.microscope
        if mic.manufacturer:
            imp._set(
                "acquisition.instrument_manufacturer",
                mic.manufacturer,
                "ome_xml",
                "ome:Instrument/Microscope@Manufacturer",
            )
        if mic.model:
            imp._set(
                "acquisition.instrument_model",
                mic.model,
                "ome_xml",
                "ome:Instrument/Microscope@Model",
            )
        text = " ".join(x for x in (mic.manufacturer, mic.model) if x)
        if text:
            imp._set("acquisition.imaging_instrument", text, "ome_xml", "ome:Instrument/Microscope")
    if instrument is not None and instrument.detectors:
        parts = []
        for det in instrument.detectors:
            kind = getattr(det.type, "value", None)
            label = " ".join(x for x in (det.manufacturer, det.model) if x) or "detector"
            parts.append(f"{label} ({kind})" if kind else label)
        imp._set(
            "acquisition.detector_description",
            "; ".join(parts),
            "ome_xml",
            "ome:Instrument/Detector",
        )
    if image.acquisition_date is not None:
        imp._set(
            "acquisition.acquisition_date",
            image.acquisition_date.isoformat(),
            "ome_xml",
            "ome:Image/AcquisitionDate",
        )


# --------------------------------------------------------- ImageJ / plain TIFF
def _tiff_sizes(imp: OmeImport, tif: Any, kind: str) -> None:
    series = tif.series[0]
    axes, shape = series.axes, series.shape
    source_kind = "imagej" if kind == "imagej" else "tiff_tag"
    src = "imagej:images" if kind == "imagej" else "tiff:ImageWidth/ImageLength/pages"
    sizes: dict[str, int] = {}
    for ax, n in zip(axes, shape, strict=True):
        key = {"X": "x", "Y": "y", "Z": "z", "C": "c", "T": "t", "S": "c", "I": "z", "Q": "z"}.get(
            ax
        )
        if key is None:
            imp.warnings.append(
                f"images[0]: axis {ax!r} (size {n}) has no place in the schema; not imported"
            )
            continue
        if ax in "IQ":
            imp.warnings.append(
                f"images[0].size_z: the file does not say what its {n} pages are; read them as Z slices"
            )
        sizes[key] = sizes.get(key, 1) * int(n)
    imp._set("images[0].name", Path(imp.path).name.split(".")[0], source_kind, "file name")
    imp._set(
        "images[0].image_format",
        "ImageJ TIFF" if kind == "imagej" else "TIFF",
        source_kind,
        "tiff:header",
    )
    dtype = str(series.dtype)
    if dtype in _PIXEL_TYPES:
        imp._set("images[0].dtype", dtype, source_kind, "tiff:BitsPerSample/SampleFormat")
    else:
        imp.warnings.append(
            f"images[0].dtype: pixel type {dtype} has no equivalent in the schema; not imported"
        )
    for key in "xyzct":
        if key in sizes:
            imp._set(f"images[0].size_{key}", sizes[key], source_kind, src)
    imp._set("images[0].path", imp.path, source_kind, "file")


def _resolution(page: Any, name: str) -> float | None:
    tag = page.tags.get(name)
    if tag is None:
        return None
    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
    return num / den if den and num else None


def _tiff_tags(imp: OmeImport, tif: Any, unit: str | None) -> bool:
    """Voxel sizes from X/YResolution (+ ResolutionUnit, or ImageJ's unit); True when found."""
    page = tif.pages.first
    found = False
    runit_tag = page.tags.get("ResolutionUnit")
    runit = int(runit_tag.value) if runit_tag is not None else 2
    for axis in "xy":
        res = _resolution(page, f"{axis.upper()}Resolution")
        if res is None:
            continue
        if unit is not None:  # ImageJ: resolution is pixels per `unit`
            nm = _to_nm(1.0 / res, unit)
            raw = f"{res} pixels per {unit}"
        elif runit in _RESUNIT_NM:
            if runit == 2 and res in _DISPLAY_DPI:
                imp.warnings.append(
                    f"images[0].voxel_size_{axis}: {res:g} dpi is a display default, not a pixel size; not imported"
                )
                continue
            nm = _clean(_RESUNIT_NM[runit] / res)
            raw = f"{res} pixels per {'inch' if runit == 2 else 'centimeter'}"
        else:
            continue  # ResolutionUnit NONE: a ratio without a length
        if nm is None:
            continue
        imp._set(
            f"images[0].voxel_size_{axis}", nm, "tiff_tag", f"tiff:{axis.upper()}Resolution", raw
        )
        found = True
    return found


def _tiff_header(imp: OmeImport, tif: Any) -> None:
    page = tif.pages.first
    make, model_tag, dt = page.tags.get("Make"), page.tags.get("Model"), page.tags.get("DateTime")
    if make is not None and str(make.value).strip():
        imp._set(
            "acquisition.instrument_manufacturer", str(make.value).strip(), "tiff_tag", "tiff:Make"
        )
    if model_tag is not None and str(model_tag.value).strip():
        imp._set(
            "acquisition.instrument_model", str(model_tag.value).strip(), "tiff_tag", "tiff:Model"
        )
    if dt is not None:
        try:
            when = datetime.strptime(str(dt.value).strip(), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            imp.warnings.append(
                f"acquisition.acquisition_date: TIFF DateTime {dt.value!r} is not YYYY:MM:DD HH:MM:SS; not imported"
            )
        else:
            imp._set(
                "acquisition.acquisition_date",
                when.isoformat(),
                "tiff_tag",
                "tiff:DateTime",
                dt.value,
            )


_FEI_DETECTORS = {"TLD": "InLens", "ETD": "SE", "CBS": "BSE", "ABS": "BSE", "BSED": "BSE"}
"""FEI detector names -> FibsemDetector, used when the header's detector Mode is not SE/BSE."""


def _fei_number(meta: dict[str, Any], section: str, key: str) -> float | None:
    value = (meta.get(section) or {}).get(key)
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        else None
    )


def _from_fei(imp: OmeImport, meta: dict[str, Any]) -> bool:
    """FEI / Thermo Fisher SEM header (tag 34682/34680): pixel size, beams, dwell time, detector."""
    found = False
    for axis, key in (("x", "PixelWidth"), ("y", "PixelHeight")):
        metres = _fei_number(meta, "Scan", key)
        if metres is not None:
            imp._set(
                f"images[0].voxel_size_{axis}",
                _clean(metres * 1e9),
                "tiff_tag",
                f"fei:Scan@{key}",
                f"{metres} m",
            )
            found = True
    if found:
        imp._set("images[0].voxel_size_unit", TARGET_UNIT, "curated_inference", "fei:Scan", "m")
    system = (meta.get("System") or {}).get("SystemType")
    if isinstance(system, str) and system.strip():
        imp._set(
            "acquisition.instrument_manufacturer",
            "Thermo Fisher Scientific (FEI)",
            "curated_inference",
            "fei:header",
        )
        imp._set(
            "acquisition.instrument_model", system.strip(), "tiff_tag", "fei:System@SystemType"
        )
        imp._set(
            "acquisition.imaging_instrument",
            f"FEI/Thermo Fisher {system.strip()}",
            "tiff_tag",
            "fei:System@SystemType",
        )
    scaled = (
        ("EBeam", "HV", "sem_accelerating_voltage_kv", 1e-3, "V"),
        ("EBeam", "BeamCurrent", "sem_beam_current_na", 1e9, "A"),
        ("IBeam", "HV", "fib_accelerating_voltage_kv", 1e-3, "V"),
        ("IBeam", "BeamCurrent", "fib_beam_current_na", 1e9, "A"),
        ("Scan", "Dwelltime", "dwell_time_us", 1e6, "s"),
        ("EBeam", "WD", "working_distance_mm", 1e3, "m"),
    )
    for section, key, slot, factor, unit in scaled:
        value = _fei_number(meta, section, key)
        if value is not None:
            imp._set(
                f"acquisition.fibsem.{slot}",
                _clean(value * factor),
                "tiff_tag",
                f"fei:{section}@{key}",
                f"{value} {unit}",
            )
    detector = (meta.get("Detectors") or {}).get("Name")
    if isinstance(detector, str) and detector.strip():
        mode = (meta.get("Detectors") or {}).get("Mode")
        label = (
            f"{detector.strip()} ({mode})"
            if isinstance(mode, str) and mode.strip()
            else detector.strip()
        )
        imp._set("acquisition.detector_description", label, "tiff_tag", "fei:Detectors@Name")
        kind = (
            mode.strip().upper()
            if isinstance(mode, str) and mode.strip().upper() in ("SE", "BSE")
            else None
        )
        kind = kind or _FEI_DETECTORS.get(detector.strip().upper())
        if kind:
            imp._set(
                "acquisition.fibsem.detector",
                [kind],
                "curated_inference",
                "fei:Detectors@Name",
                detector,
            )
    return found


def _from_tiff(imp: OmeImport, tif: Any, require_metadata: bool) -> None:
    ij = tif.imagej_metadata if tif.is_imagej else None
    fei = tif.fei_metadata if tif.is_fei else None
    if fei:
        imp.kind = "fei"
        _tiff_sizes(imp, tif, "tiff")
        _from_fei(imp, fei)
    elif ij:
        imp.kind = "imagej"
        _tiff_sizes(imp, tif, "imagej")
        unit = ij.get("unit")
        unit = (
            unit.encode().decode("unicode_escape")
            if isinstance(unit, str) and "\\u" in unit
            else unit
        )
        usable = isinstance(unit, str) and _to_nm(1.0, unit) is not None
        found = False
        if usable:
            found = _tiff_tags(imp, tif, unit)
            if "spacing" in ij:
                nm = _to_nm(float(ij["spacing"]), unit)
                imp._set(
                    "images[0].voxel_size_z",
                    nm,
                    "imagej",
                    "imagej:spacing",
                    f"{ij['spacing']} {unit}",
                )
                found = True
        elif unit is not None:
            imp.warnings.append(
                f"images[0].voxel_size_*: ImageJ unit {unit!r} is not a physical length; sizes not imported"
            )
        if found:
            imp._set(
                "images[0].voxel_size_unit", TARGET_UNIT, "curated_inference", "imagej:unit", unit
            )
    else:
        imp.kind = "tiff"
        _tiff_sizes(imp, tif, "tiff")
        if _tiff_tags(imp, tif, None):
            imp._set(
                "images[0].voxel_size_unit", TARGET_UNIT, "curated_inference", "tiff:ResolutionUnit"
            )
    if not fei:
        _tiff_header(imp, tif)
    has_physical = any(s["field"].startswith("images[0].voxel_size_") for s in imp.sources)
    if not has_physical:
        msg = (
            "no physical metadata in this TIFF (no OME-XML, no ImageJ spacing/unit, no resolution tags with a unit): "
            "voxel sizes are unknown; set them with `curated metadata set WORKSPACE images[N].voxel_size_x VALUE` "
            "(and _y, _z, voxel_size_unit)"
        )
        if require_metadata:
            raise MetadataError(msg, path=imp.path, field="images[].voxel_size_*")
        imp.warnings.append(msg)


def from_ome(path: str | Path, *, require_metadata: bool = True) -> OmeImport:
    """Read an image file's header metadata, without reading pixel data.

    Parameters
    ----------
    path
        An OME-TIFF, ImageJ TIFF or plain TIFF (``.tif``/``.tiff``/``.btf``), or an
        OME-XML file (``.ome.xml``/``.xml``).
    require_metadata
        Raise when the file has no physical metadata at all (a bare TIFF); with
        ``False`` the sizes and pixel type are still imported and a warning says
        what is missing.

    Returns
    -------
    OmeImport
        ImageRepresentation and ImageAcquisitionProtocol fields with their sources;
        voxel sizes are in :data:`TARGET_UNIT`.

    Raises
    ------
    MetadataError
        Naming the file: missing, not a TIFF, broken OME-XML, or (by default) no metadata.
    """
    import tifffile

    path = Path(path)
    imp = OmeImport(path=str(path), kind="")
    if not path.is_file():
        raise MetadataError("image not found", path=path)
    if path.name.lower().endswith(".xml"):
        imp.kind = "ome-xml"
        _from_ome_xml(imp, path.read_text(encoding="utf-8", errors="replace"))
        return imp
    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError) as exc:
        raise MetadataError(
            f"not a readable TIFF ({exc}); import-ome reads OME-TIFF, ImageJ TIFF, TIFF or OME-XML",
            path=path,
        ) from None
    with tif:
        description = tif.pages.first.description or ""
        # tifffile only flags well-formed OME-XML; a cut or damaged one must fail loudly, not pass as bare TIFF
        looks_ome = description.lstrip().startswith(("<?xml", "<OME")) and "<OME" in description
        xml = description if tif.is_ome or looks_ome else None
        if xml:
            imp.kind = "ome-xml"
            _from_ome_xml(imp, xml)
        else:
            _from_tiff(imp, tif, require_metadata)
    return imp


# ------------------------------------------------------------------- merging
def _is_curator_value(record: dict[str, Any], where: str) -> bool:
    for src in record.get("sources") or []:
        if isinstance(src, dict) and src.get("field") == where:
            return (
                src.get("source_kind") not in IMPORT_KINDS
                and src.get("source_kind") != "curated_inference"
            )
    return True


def _same_file(a: Any, b: str, root: Path | None) -> bool:
    if not isinstance(a, str):
        return False
    pa, pb = Path(a), Path(b)
    if root is not None:
        pa = pa if pa.is_absolute() else root / pa
        pb = pb if pb.is_absolute() else root / pb
    try:
        return pa.resolve() == pb.resolve()
    except OSError:
        return a == b


def merge_import(
    record: dict[str, Any],
    imp: OmeImport,
    *,
    force: bool = False,
    root: Path | None = None,
    image_path: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Merge an import into a copy of ``record``; return ``(new record, changes, kept)``.

    An image already in ``images`` (same ``path``, or same ``name``) is updated in
    place; otherwise the image is appended. A field the curator wrote (no import
    source recorded for it) is kept unless ``force``; an empty field or one an
    earlier import filled is (re)set. ``changes`` and ``kept`` hold
    ``{"field", "old", "new"}``.
    """
    out = copy.deepcopy(record)
    changes: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    remap: dict[str, str] = {}
    images = out.get("images") if isinstance(out.get("images"), list) else []
    for i, img in enumerate(imp.images):
        if image_path is not None:
            img = {**img, "path": image_path}
        target = next(
            (
                j
                for j, old in enumerate(images)
                if isinstance(old, dict) and _same_file(old.get("path"), img.get("path", ""), root)
            ),
            None,
        )
        if target is None:
            target = next(
                (
                    j
                    for j, old in enumerate(images)
                    if isinstance(old, dict) and old.get("name") == img.get("name")
                ),
                None,
            )
        if target is None:
            target = len(images)
        remap[f"images[{i}]"] = f"images[{target}]"
        # voxel sizes and their unit go together: never mix a kept curator size with an imported unit
        voxel_keys = [k for k in img if k.startswith("voxel_size_")]
        keep_voxels = not force and any(
            _would_keep(out, f"images[{target}].{k}", img[k]) for k in voxel_keys
        )
        for key, value in img.items():
            where = f"images[{target}].{key}"
            if keep_voxels and key in voxel_keys:
                old = get_at(out, parse_path(where), None)
                if old != value:
                    kept.append({"field": where, "old": old, "new": value})
                continue
            _merge_value(out, where, value, force, changes, kept)
        images = out.get("images") or []
    if imp.acquisition:
        protocols = out.get("acquisition_protocols")
        if not isinstance(protocols, list) or not protocols:
            _merge_value(
                out,
                "acquisition_protocols[0].title",
                f"Acquisition of {Path(imp.path).name}",
                False,
                changes,
                kept,
            )
        remap["acquisition"] = "acquisition_protocols[0]"
        for key, value in _leaves(imp.acquisition):
            _merge_value(out, f"acquisition_protocols[0].{key}", value, force, changes, kept)
    changed = {c["field"] for c in changes}
    sources = [
        s
        for s in (out.get("sources") or [])
        if not (isinstance(s, dict) and s.get("field") in changed)
    ]
    for src in imp.sources:
        head, _, tail = src["field"].partition(".")
        where = f"{remap.get(head, head)}.{tail}"
        if where in changed:
            sources.append({**src, "field": where})
    if sources:
        out["sources"] = sources
    return out, changes, kept


def _leaves(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for every non-mapping value of a nested mapping (lists are values)."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out.extend(_leaves(value, f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _would_keep(out: dict[str, Any], where: str, value: Any) -> bool:
    old = get_at(out, parse_path(where))
    return old not in (MISSING, None, "") and old != value and _is_curator_value(out, where)


def _merge_value(
    out: dict[str, Any], where: str, value: Any, force: bool, changes: list, kept: list
) -> None:
    parts = parse_path(where)
    old = get_at(out, parts)
    if old is MISSING or old is None or old == "":
        set_at(out, parts, value)
        changes.append({"field": where, "old": None, "new": value})
    elif old == value:
        return
    elif force or not _is_curator_value(out, where):
        set_at(out, parts, value)
        changes.append({"field": where, "old": old, "new": value})
    else:
        kept.append({"field": where, "old": old, "new": value})


def import_ome(
    workspace: Workspace | str | Path,
    image: str | Path,
    *,
    force: bool = False,
    require_metadata: bool = True,
) -> Result:
    """Merge an image's header metadata into the workspace's ``curated.yaml``.

    Parameters
    ----------
    workspace
        The workspace (or its folder).
    image
        The OME-TIFF / TIFF / OME-XML to read (header only).
    force
        Overwrite values the curator wrote; by default they are kept and listed.
    require_metadata
        See :func:`from_ome`.

    Returns
    -------
    Result
        ``ok`` (fields set), or ``notneeded`` (nothing new); ``details`` has
        ``changes`` and ``kept`` (``field``/``old``/``new``) and the import ``warnings``.
        One ``A`` entry is logged with the same details.
    """
    from curated.metadata.edit import new_error_issues, write_record
    from curated.metadata.validate import validate_record
    from curated.workspace import Workspace, as_workspace, recorder

    ws = as_workspace(workspace)
    if not isinstance(ws, Workspace):
        raise MetadataError("import-ome needs a workspace (a folder made by `curated init`)")
    image = Path(image)
    params = {"image": ws.relative(image), "force": force}
    # a read-modify-write of curated.yaml: under the workspace lock, like `metadata set`
    with (
        ws.locked(),
        recorder(
            ws,
            "A",
            "import-ome",
            inputs=[image],
            params=params,
            libraries=("ome-types", "tifffile"),
            hash_inputs=False,
        ) as step,
    ):
        imp = from_ome(image, require_metadata=require_metadata)
        record = ws.read_metadata()
        rel = ws.relative(image)
        new, changes, kept = merge_import(record, imp, force=force, root=ws.root, image_path=rel)
        added = new_error_issues(record, new)
        if added:
            msg = "; ".join(str(e) for e in added)
            raise MetadataError(
                f"importing would make the record invalid: {msg}", path=image, field=added[0].field
            )
        details = {"kind": imp.kind, "changes": changes, "kept": kept, "warnings": imp.warnings}
        step.details = details
        if changes:
            write_record(ws.metadata_path, new, validate_record(new))
            step.add_output(ws.metadata_path)
            status, message = "ok", f"set {len(changes)} field(s) from {imp.kind}"
        else:
            status, message = "notneeded", "nothing new in the header"
        if kept:
            message += f"; kept {len(kept)} curator value(s) (use --force to overwrite: {', '.join(k['field'] for k in kept)})"
        step.status, step.message = status, message
    return Result("import-ome", status, str(ws.metadata_path), message, details)


__all__ = ["TARGET_UNIT", "OmeImport", "format_path", "from_ome", "import_ome", "merge_import"]
