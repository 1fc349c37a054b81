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

import numpy as np

from curated.errors import InputError, MetadataError
from curated.metadata.paths import MISSING, format_path, get_at, parse_path, set_at
from curated.results import Result, Status

if TYPE_CHECKING:
    from curated.workspace import Workspace

TARGET_UNIT = "nanometer"
"""The UDUNITS-2 unit every imported voxel size is expressed in."""

# OME UnitsLength symbols without a UDUNITS-2 name (the rest go through curated.images.units)
_OME_ONLY_NM: dict[str, float] = {"thou": 2.54e4}

_RESUNIT_NM = {2: 2.54e7, 3: 1e7}  # TIFF ResolutionUnit: 2 inch, 3 centimetre (1 = none)

_OME_DTYPES = {"float": "float32", "double": "float64"}
_PIXEL_TYPES = {"uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"}

IMPORT_KINDS = {"ome_xml", "tiff_tag", "imagej", "file_header"}
"""``sources[].source_kind`` values written by an import (re-imports may replace them)."""


@dataclass
class OmeImport:
    """What an image file's header says, ready to merge into a record."""

    path: str
    """The file read."""
    kind: str
    """Where the metadata came from: ``ome-xml``, ``imagej``, ``tiff``, a vendor (``zeiss``, ``fei``,
    ``jeol``, ``tvips``, ``digitalmicrograph``) or a stored array (``hdf5``, ``mrc``, ``zarr``, ``n5``,
    ``ome-zarr``)."""
    images: list[dict[str, Any]] = field(default_factory=list)
    """ImageRepresentation fields, one dict per image in the file."""
    acquisition: dict[str, Any] = field(default_factory=dict)
    """ImageAcquisitionProtocol fields found (instrument, detector, date); may be empty."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """FieldSource entries; ``field`` is relative to this import (``images[0].voxel_size_x``,
    ``acquisition.instrument_model``)."""
    warnings: list[str] = field(default_factory=list)
    personal_data: list[dict[str, str]] = field(default_factory=list)
    """People named in the header (``what``, ``source_path``, ``source_file``): flagged, never imported."""
    metadata_file: str | None = None
    """The OME companion file the values were read from, when it is not ``path`` (BinaryOnly OME-TIFF)."""
    data_files: dict[int, str] = field(default_factory=dict)
    """Image index → the TIFF file holding its planes, when the OME-XML names one (companion files)."""

    def _set(self, where: str, value: Any, kind: str, source_path: str, raw: Any = None) -> None:
        set_at(self.__dict__, parse_path(where), value)
        entry = {
            "field": where,
            "source_kind": kind,
            "source_path": source_path,
            "source_file": self.metadata_file or self.path,
        }
        if raw is not None:
            entry["source_value"] = str(raw)
        self.sources.append(entry)

    def source_for(self, where: str) -> dict[str, Any] | None:
        return next((s for s in self.sources if s["field"] == where), None)


def _clean(x: float) -> float:
    return float(f"{x:.10g}")


def _to_nm(value: float, unit: str) -> float | None:
    """``value`` in ``unit`` (an OME UnitsLength symbol or an ImageJ spelling) in nm; None if not a length."""
    from curated.images.units import length_unit, to_unit

    try:
        return _clean(to_unit(value, length_unit(unit), "nanometer"))
    except InputError:
        factor = _OME_ONLY_NM.get(unit.strip().lower())
        return None if factor is None else _clean(value * factor)


# --------------------------------------------------------------------- OME-XML
def _binary_only(xml: str) -> str | None:
    """``MetadataFile`` of a BinaryOnly OME-XML block (the OME-TIFF's metadata live in a companion file)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rpartition("}")[2] == "BinaryOnly":
            return el.get("MetadataFile") or ""
    return None


MAX_COMPANION_BYTES = 256 * 1024 * 1024
"""The largest companion ``*.companion.ome`` file read (OME-XML of many planes runs to megabytes)."""


def _follow_binary_only(imp: OmeImport, xml: str) -> str:
    """The OME-XML that describes the images: ``xml`` itself, or the companion file it points to."""
    companion = _binary_only(xml)
    if companion is None:
        return xml
    if not companion:
        msg = "is a BinaryOnly OME-TIFF whose MetadataFile is empty: its metadata are in a companion *.companion.ome file; import that file instead"
        raise MetadataError(msg, path=imp.path, field="OME-XML")
    target = Path(imp.path).parent / companion
    if Path(companion).is_absolute() or ".." in Path(companion).parts or not target.is_file():
        msg = f"is a BinaryOnly OME-TIFF: its metadata are in the companion file {companion!r}, which is not beside it; copy the companion next to the TIFF or import the companion file"
        raise MetadataError(msg, path=imp.path, field="OME-XML")
    if target.is_symlink() or target.resolve().parent != Path(imp.path).resolve().parent:
        msg = f"is a BinaryOnly OME-TIFF whose companion file {companion!r} is a symbolic link; only a regular file beside the TIFF is read: copy the companion next to it"
        raise MetadataError(msg, path=imp.path, field="OME-XML")
    if target.stat().st_size > MAX_COMPANION_BYTES:
        msg = f"is a BinaryOnly OME-TIFF whose companion file {companion!r} is larger than {MAX_COMPANION_BYTES // (1024 * 1024)} MiB; that is no OME-XML companion"
        raise MetadataError(msg, path=imp.path, field="OME-XML")
    imp.metadata_file = str(target)
    imp.warnings.append(f"BinaryOnly OME-TIFF: metadata read from its companion file {target.name}")
    return target.read_text(encoding="utf-8", errors="replace")


def _data_file(imp: OmeImport, image: Any) -> str | None:
    """The one TIFF file (beside the OME-XML) that holds all planes of ``image``, if the XML names one."""
    names = {
        td.uuid.file_name
        for td in image.pixels.tiff_data_blocks
        if td.uuid is not None and td.uuid.file_name
    }
    if len(names) != 1:
        return None
    name = names.pop()
    base = Path(imp.metadata_file or imp.path).parent
    if Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    return str(base / name)


def _from_ome_xml(imp: OmeImport, xml: str) -> None:
    import ome_types

    xml = _follow_binary_only(imp, xml)
    try:
        ome = ome_types.from_xml(xml, validate=False)
    except Exception as exc:  # ome-types raises several kinds (XML syntax, pydantic, ValueError)
        # "Could not parse XML from '<the text>'": name the parser's reason, never the text (a
        # companion may be anything; its content does not belong in an error or a log)
        why = exc.__cause__ if str(exc).startswith("Could not parse XML") and exc.__cause__ else exc
        msg = f"the OME-XML in this file is broken ({type(why).__name__}: {str(why).splitlines()[0][:200]}); fix or strip the ImageDescription, or set the fields by hand with `curated metadata set`"
        raise MetadataError(msg, path=imp.path, field="OME-XML") from None
    if not ome.images:
        raise MetadataError("the OME-XML describes no Image", path=imp.path, field="OME-XML")
    stem = Path(imp.path).name.split(".")[0]
    if len(ome.images) > 1:
        imp.warnings.append(
            f"the OME-XML describes {len(ome.images)} images; each is its own images[] entry"
        )
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
        data = (
            _data_file(imp, image)
            if Path(imp.path).suffix.lower() in (".ome", ".xml") or imp.metadata_file
            else None
        )
        if data is not None:
            imp.data_files[i] = data
            imp._set(f"{where}.path", data, "ome_xml", f"{prefix}Pixels/TiffData/UUID@FileName")
            if not Path(data).is_file():
                imp.warnings.append(
                    f"{where}.path: the OME-XML puts the pixels in {Path(data).name}, which is not there"
                )
        else:
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
def _tiff_sizes(imp: OmeImport, tif: Any, kind: str, rows: int | None = None) -> None:
    """Sizes and pixel type; ``rows`` is the image height when the page also holds a data bar."""
    from curated.images.sources import one_page_series

    series = tif.series[0]
    axes, shape = series.axes, tuple(series.shape)
    if one_page_series(tif):  # a page per tifffile write() call: one stack, as `convert` reads it
        axes, shape = "I" + axes, (len(tif.pages), *shape)
    if rows is not None and axes.endswith("YX"):
        shape = (*shape[:-2], rows, shape[-1])
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


def _imagej_spacing(imp: OmeImport, spacing: Any, zunit: str | None) -> bool:
    """ImageJ's z ``spacing``, in ``zunit`` (its ``unit`` unless it wrote a ``zunit``); True when imported."""
    try:
        nm = _to_nm(float(spacing), zunit or "")
    except (TypeError, ValueError):
        nm = None
    if nm is None:
        imp.warnings.append(
            f"images[0].voxel_size_z: ImageJ spacing {spacing!r} {zunit or ''} is not a length; not imported"
        )
        return False
    imp._set("images[0].voxel_size_z", nm, "imagej", "imagej:spacing", f"{spacing} {zunit}")
    return True


def _tiff_tags(imp: OmeImport, tif: Any, unit: str | None, yunit: str | None = None) -> bool:
    """Voxel sizes from X/YResolution (+ ResolutionUnit, or ImageJ's unit, and its ``yunit`` for
    y where it wrote one); True when found."""
    page = tif.pages.first
    found = False
    runit_tag = page.tags.get("ResolutionUnit")
    runit = int(runit_tag.value) if runit_tag is not None else 2
    for axis in "xy":
        res = _resolution(page, f"{axis.upper()}Resolution")
        if res is None:
            continue
        if unit is not None:  # ImageJ: resolution is pixels per `unit` (per `yunit` for y)
            per = (yunit or unit) if axis == "y" else unit
            nm = _to_nm(1.0 / res, per)
            raw = f"{res} pixels per {per}"
        elif runit == 3:
            nm = _clean(_RESUNIT_NM[runit] / res)
            raw = f"{res} pixels per centimeter"
        elif runit == 2:
            # dots per inch is how image editors and vendors' print settings size a page; without
            # a scientific source (OME, ImageJ, a vendor header) it is never a pixel size
            imp.warnings.append(
                f"images[0].voxel_size_{axis}: {res:g} dpi (ResolutionUnit inch) is a print/display resolution, "
                "not a pixel size; not imported"
            )
            continue
        else:
            continue  # ResolutionUnit NONE: a ratio without a length
        if nm is None:
            continue
        imp._set(
            f"images[0].voxel_size_{axis}", nm, "tiff_tag", f"tiff:{axis.upper()}Resolution", raw
        )
        found = True
    return found


def _dpi_warning(imp: OmeImport, tif: Any) -> None:
    """Name the resolution tags a vendor file carries but that are not its pixel size."""
    page = tif.pages.first
    runit = page.tags.get("ResolutionUnit")
    res = _resolution(page, "XResolution")
    if res is not None and (runit is None or int(runit.value) == 2):
        imp.warnings.append(
            f"images[0].voxel_size_*: {res:g} dpi (ResolutionUnit inch) is a print/display resolution, "
            "not a pixel size; not imported"
        )


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


def _from_vendor(imp: OmeImport, head: Any) -> None:
    """Values of a vendor header (Zeiss, FEI, JEOL, TVIPS); people named in it are flagged, not imported."""
    for v in head.values:
        imp._set(v.where, v.value, v.kind, v.source_path, v.raw)
    imp.warnings.extend(head.warnings)
    if head.not_imported:
        imp.warnings.append(head.not_imported)
    for p in head.personal:
        imp.personal_data.append({**p, "source_file": imp.path})
        imp.warnings.append(
            f"{p['source_path']}: the header names a person ({p['what']}); personal data, not imported "
            "(add the person as a contributor with their consent, or remove the name before publishing)"
        )


def _from_tiff(imp: OmeImport, tif: Any, require_metadata: bool) -> None:
    from curated.images.units import imagej_units
    from curated.images.vendor import read_vendor_header

    ij = tif.imagej_metadata if tif.is_imagej else None
    vendor = read_vendor_header(tif)
    if vendor is not None:
        imp.kind = vendor.vendor
        _tiff_sizes(imp, tif, "tiff", rows=vendor.image_rows)
        _from_vendor(imp, vendor)
        if vendor.pixel_size_nm is None:
            _dpi_warning(imp, tif)
    elif ij:
        imp.kind = "imagej"
        _tiff_sizes(imp, tif, "imagej")
        zunit, yunit, unit = imagej_units(ij)  # yunit/zunit where ImageJ wrote them
        usable = all(isinstance(u, str) and _to_nm(1.0, u) is not None for u in (unit, yunit))
        found = False
        if usable:
            found = _tiff_tags(imp, tif, unit, yunit)
            if "spacing" in ij:
                found = _imagej_spacing(imp, ij["spacing"], zunit) or found
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
    if vendor is None:
        _tiff_header(imp, tif)
    has_physical = any(s["field"].startswith("images[0].voxel_size_") for s in imp.sources)
    if not has_physical and vendor is not None:
        imp.warnings.append(
            f"images[0].voxel_size_*: the {vendor.vendor} header gives no pixel size; set the voxel sizes with "
            "`curated metadata set WORKSPACE images[N].voxel_size_x VALUE` (and _y, _z, voxel_size_unit)"
        )
    elif not has_physical:
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
        An OME-TIFF (a BinaryOnly one is followed to its companion file), a vendor
        TIFF (Zeiss SmartSEM, FEI/Thermo, JEOL SightX, TVIPS), an ImageJ TIFF, a plain
        TIFF (``.tif``/``.tiff``/``.btf``), an OME-XML file (``.ome.xml``/``.xml``) or
        an OME companion file (``.companion.ome``/``.ome``), or a folder of 2D TIFF slices
        (the first slice's header; the folder's slice count as ``size_z``).
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

    from curated.images.stored import is_stored

    if is_stored(path):
        return _from_stored(str(path), require_metadata)
    path = Path(path)
    if path.is_dir():
        return _from_folder(path, require_metadata)
    imp = OmeImport(path=str(path), kind="")
    if not path.is_file():
        raise MetadataError("image not found", path=path)
    if path.name.lower().endswith((".xml", ".ome")):  # OME-XML, companion (*.companion.ome)
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


def _from_folder(folder: Path, require_metadata: bool) -> OmeImport:
    """A folder of 2D TIFF slices, the one image ``curated convert`` makes of it: the first
    slice's header, the stack's sizes. A slice states its own pixel size, never the spacing
    between slices (only OME-XML's is taken, as the converter takes it)."""
    from curated.errors import CuratedError
    from curated.images.sources import TiffSource, open_source

    try:
        src = open_source(folder)
    except CuratedError as exc:
        where = "" if exc.path in (None, str(folder)) else f" ({Path(exc.path).name})"
        msg = f"is not one stack of slices{where}: {exc.message}"
        raise MetadataError(msg, path=folder) from None
    if not isinstance(src, TiffSource) or src.kind != "slices":
        msg = "holds PNG slices, which carry no acquisition metadata; set the image's fields with `curated metadata set`"
        raise MetadataError(msg, path=folder)
    first = Path(src.files[0])
    imp = from_ome(first, require_metadata=require_metadata)
    if imp.kind != "ome-xml":
        imp.sources = [s for s in imp.sources if s["field"] != "images[0].voxel_size_z"]
        imp.images[0].pop("voxel_size_z", None)
    imp.sources = [
        s for s in imp.sources if s["field"] not in ("images[0].size_z", "images[0].name")
    ]
    imp.path, imp.metadata_file = str(folder), None  # what is set from here on: the folder's
    n = int(src.shape[0])
    imp.warnings.append(
        f"images[0]: the header of {first.name}, the first of {n} slices, read for the folder "
        "(every slice's size, pixel type and pixel size agree; other header fields are not compared)"
    )
    imp._set("images[0].name", folder.name, "curated_inference", "folder name")
    imp._set("images[0].size_z", n, "curated_inference", "folder: number of slices")
    imp.warnings.extend(f"images[0].size_z: {w}" for w in src.warnings)
    return imp


# ------------------------------------------- HDF5 / MRC / Zarr / N5 / OME-Zarr
_STORED_FORMATS = {"hdf5": "HDF5", "mrc": "MRC", "zarr": "Zarr", "n5": "N5", "ome-zarr": "OME-Zarr"}


def _from_stored(shown: str, require_metadata: bool) -> OmeImport:
    """Sizes, pixel type and voxel sizes of an HDF5 dataset, MRC file, Zarr/N5 array or OME-Zarr image."""
    from curated.errors import CuratedError
    from curated.images.stored import open_stored
    from curated.images.units import convert_length

    try:
        src = open_stored(shown)
    except CuratedError as exc:
        raise MetadataError(exc.message, path=exc.path or shown, field=exc.field) from None
    imp = OmeImport(path=shown, kind=src.kind)
    kind = "file_header"
    imp._set("images[0].name", src.name, kind, "file name")
    imp._set("images[0].image_format", _STORED_FORMATS[src.kind], kind, f"{src.kind}:format")
    dtype = np.dtype(src.dtype).name
    if dtype in _PIXEL_TYPES:
        imp._set("images[0].dtype", dtype, kind, f"{src.kind}:dtype")
    for axis, n in zip(src.axes, src.shape, strict=True):
        imp._set(f"images[0].size_{axis}", int(n), kind, f"{src.kind}:shape")
    found = False
    if src.voxel_size is not None and src.unit is not None:
        for axis, value in zip("zyx", src.voxel_size, strict=True):
            if value is None:
                imp.warnings.append(
                    f"images[0].voxel_size_{axis}: {src.voxel_source} states no {axis} spacing; set it with `curated metadata set`"
                )
                continue
            nm = convert_length(value, src.unit, TARGET_UNIT)
            imp._set(
                f"images[0].voxel_size_{axis}", nm, kind, src.voxel_source, f"{value} {src.unit}"
            )
            found = True
    if found:
        imp._set(
            "images[0].voxel_size_unit",
            TARGET_UNIT,
            "curated_inference",
            src.voxel_source,
            src.unit,
        )
    imp._set("images[0].path", shown, kind, "file")
    imp.warnings.extend(f"not imported: {note}" for note in src.not_carried)
    if not found:
        msg = (
            f"no voxel size with a unit in this {_STORED_FORMATS[src.kind]} source; set them with "
            "`curated metadata set WORKSPACE images[N].voxel_size_x VALUE` (and _y, _z, voxel_size_unit)"
        )
        unusable = [n for n in src.not_carried if "voxel size" in n or "--voxel-size" in n]
        if unusable:
            msg += " (" + "; ".join(unusable) + ")"
        if require_metadata:
            raise MetadataError(msg, path=shown, field="images[].voxel_size_*")
        imp.warnings.append(msg)
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
    data_paths: dict[int, str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Merge an import into a copy of ``record``; return ``(new record, changes, kept)``.

    An image already in ``images`` (same ``path``, or same ``name``; same path *and*
    name when the file holds several images) is updated in place; otherwise the
    image is appended. Each image of a multi-image file gets its own entry.
    ``data_paths`` overrides ``path`` per image (companion files name the TIFF
    holding each image's planes). A field the curator wrote (no import
    source recorded for it) is kept unless ``force``; an empty field or one an
    earlier import filled is (re)set. ``changes`` and ``kept`` hold
    ``{"field", "old", "new"}``.
    """
    out = copy.deepcopy(record)
    changes: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    remap: dict[str, str] = {}
    found = out.get("images")
    images: list[Any] = found if isinstance(found, list) else []
    multi = len(imp.images) > 1
    taken: set[int] = set()
    for i, img in enumerate(imp.images):
        if data_paths and i in data_paths:
            img = {**img, "path": data_paths[i]}
        elif image_path is not None:
            img = {**img, "path": image_path}

        def free(j: int, old: Any) -> bool:
            return isinstance(old, dict) and j not in taken

        # one file may hold several images (OME multi-image): then path and name together pick the entry
        target = next(
            (
                j
                for j, old in enumerate(images)
                if free(j, old)
                and _same_file(old.get("path"), img.get("path", ""), root)
                and (not multi or old.get("name") == img.get("name"))
            ),
            None,
        )
        if target is None:
            target = next(
                (
                    j
                    for j, old in enumerate(images)
                    if free(j, old) and old.get("name") == img.get("name")
                ),
                None,
            )
        if target is None:
            target = max(len(images), max(taken, default=-1) + 1)
        taken.add(target)
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
    from curated.metadata.edit import new_error_issues, unrecorded_metadata_change, write_record
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
        for entry in (*imp.sources, *imp.personal_data):  # as the log names it: never absolute
            if isinstance(entry.get("source_file"), str):
                entry["source_file"] = ws.relative(entry["source_file"])
        record = ws.read_metadata()
        rel = ws.relative(image)
        data = {i: ws.relative(Path(p)) for i, p in imp.data_files.items()}
        new, changes, kept = merge_import(
            record, imp, force=force, root=ws.root, image_path=rel, data_paths=data
        )
        added = new_error_issues(record, new)
        if added:
            msg = "; ".join(str(e) for e in added)
            raise MetadataError(
                f"importing would make the record invalid: {msg}", path=image, field=added[0].field
            )
        details = {
            "kind": imp.kind,
            "changes": changes,
            "kept": kept,
            "warnings": imp.warnings,
            "personal_data": imp.personal_data,
        }
        step.details = details
        status: Status
        if changes:
            write_record(ws.metadata_path, new, validate_record(new))
            step.add_output(ws.metadata_path)
            status, message = "ok", f"set {len(changes)} field(s) from {imp.kind}"
        elif unrecorded_metadata_change(ws):
            # an interrupted run wrote these values but never logged them: record them now
            step.add_output(ws.metadata_path)
            status, message = "ok", "nothing new in the header (recorded after an interrupted run)"
        else:
            status, message = "notneeded", "nothing new in the header"
        if kept:
            message += f"; kept {len(kept)} curator value(s) (use --force to overwrite: {', '.join(k['field'] for k in kept)})"
        step.status, step.message = status, message
    return Result("import-ome", status, str(ws.metadata_path), message, details)


__all__ = ["TARGET_UNIT", "OmeImport", "format_path", "from_ome", "import_ome", "merge_import"]
