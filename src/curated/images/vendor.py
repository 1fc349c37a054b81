"""Microscope vendors' TIFF headers, read through tifffile's parsers, as values with their sources.

One reading of each header serves both ``metadata import-ome`` (record fields) and
``convert`` (pixel size, data bar): Zeiss SmartSEM (``CZ_SEM``, tag 34118, via
``TiffFile.sem_metadata``), FEI / Thermo Fisher (tags 34680/34682, via
``TiffFile.fei_metadata``), JEOL SightX (``TemReporter`` XML in the
ImageDescription), TVIPS (tag 37706, via ``TiffFile.tvips_metadata``) and Gatan
DigitalMicrograph exports (private tags 65003-65011, as RosettaSciIO reads them).

Every value keeps the header key it came from (``zeiss:ap_image_pixel_size``,
``fei:Scan@PixelWidth``) and the raw value with its unit. Converted values are
rounded to the precision the header states. Names of people (operator, user,
user folders in paths) are never imported into the record: they are returned as
``personal`` findings so that the curator decides.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from curated.images.units import round_to, significant_digits

_NM = {"m": 1e9, "mm": 1e6, "µm": 1e3, "μm": 1e3, "um": 1e3, "nm": 1.0, "pm": 1e-3, "Å": 0.1}
_KV = {"V": 1e-3, "kV": 1.0, "MV": 1e3}
_NA = {"A": 1e9, "mA": 1e6, "µA": 1e3, "μA": 1e3, "uA": 1e3, "nA": 1.0, "pA": 1e-3, "fA": 1e-6}
_US = {"s": 1e6, "ms": 1e3, "µs": 1.0, "μs": 1.0, "us": 1.0, "ns": 1e-3}
_MM = {"m": 1e3, "mm": 1.0, "µm": 1e-3, "μm": 1e-3, "um": 1e-3, "nm": 1e-6}

_NOT_A_PERSON = {"", "user", "supervisor", "admin", "administrator", "idle", "guest", "default"}
_USER_FOLDER = re.compile(r"(?i)[\\/](?:users|home|documents and settings)[\\/]([^\\/]+)")


@dataclass
class VendorValue:
    """One value read from a vendor header."""

    where: str
    """Field relative to an import: ``images[0].voxel_size_x``, ``acquisition.fibsem.dwell_time_us``."""
    value: Any
    source_path: str
    """Header key, e.g. ``zeiss:ap_wd`` or ``fei:EBeam@HV``."""
    raw: str | None = None
    """The value as the header states it, with its unit."""
    kind: str = "tiff_tag"
    """``tiff_tag`` (read) or ``curated_inference`` (derived from a read value)."""


@dataclass
class VendorHeader:
    """What a vendor header says, ready for an import or a conversion."""

    vendor: str
    """``zeiss``, ``fei``, ``jeol``, ``tvips`` or ``digitalmicrograph``."""
    values: list[VendorValue] = field(default_factory=list)
    pixel_size_nm: tuple[float, float] | None = None
    """(y, x) pixel size in nanometres, when the header gives one."""
    pixel_source: str = ""
    image_rows: int | None = None
    """Rows of image data when the page also holds a data bar below them (FEI)."""
    personal: list[dict[str, str]] = field(default_factory=list)
    """People named in the header: ``{"what", "source_path"}`` (the value itself is not repeated)."""
    warnings: list[str] = field(default_factory=list)
    entries: int = 0
    """How many entries the header holds (most have no field in the record)."""

    @property
    def not_imported(self) -> str | None:
        """A warning naming how many header entries are left in the file, or ``None``."""
        used = len({v.source_path for v in self.values if v.kind == "tiff_tag"})
        left = self.entries - used
        if left <= 0:
            return None
        return (
            f"{self.vendor} header: {left} of its {self.entries} entries (stage, optics, scan and "
            "vacuum settings...) have no field in the record and are not imported; they stay in the original file"
        )

    def add(
        self, where: str, value: Any, source_path: str, raw: Any = None, kind: str = "tiff_tag"
    ) -> None:
        self.values.append(
            VendorValue(where, value, source_path, None if raw is None else str(raw), kind)
        )

    def person(self, what: str, value: Any, source_path: str) -> None:
        text = str(value or "").strip()
        if text.lower() not in _NOT_A_PERSON and any(c.isalpha() for c in text):
            self.personal.append({"what": what, "source_path": source_path})


def read_vendor_header(tif: Any) -> VendorHeader | None:
    """The vendor header of an open ``tifffile.TiffFile``, or ``None`` when it has none we read."""
    if getattr(tif, "is_sem", False) and tif.sem_metadata:
        return _zeiss(tif.sem_metadata, int(getattr(tif.pages.first, "imagewidth", 0) or 0))
    if getattr(tif, "is_fei", False) and tif.fei_metadata:
        return _fei(tif.fei_metadata, tif.pages.first)
    if getattr(tif, "is_tvips", False) and tif.tvips_metadata:
        return _tvips(tif.tvips_metadata)
    page = tif.pages.first
    if 65009 in page.tags and 65003 in page.tags:
        return _digital_micrograph(page)
    make = page.tags.get("Make")
    if (
        make is not None
        and str(make.value).strip().startswith("JEOL")
        and "<TemReporter" in (page.description or "")
    ):
        return _jeol_sightx(page)
    return None


def _scaled(value: Any, unit: str, table: dict[str, float]) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        return None
    factor = table.get(unit)
    return None if factor is None else round_to(value * factor, significant_digits(value))


# ------------------------------------------------------------------ Zeiss
_ZEISS_DETECTORS = {"INLENS": "InLens", "ESB": "EsB", "SE2": "SE", "HE-SE2": "SE", "SESI": "SE", "BSD": "BSE", "AsB": "BSE", "ASB": "BSE", "CZ BSD": "BSE"}  # fmt: skip


def _zeiss_scan_pixel(nm: float, raw: str, width: tuple[Any, str], columns: int) -> str | None:
    """Why SmartSEM's ``ap_pixel_size`` (the pixel size of the scan) is not the saved image's,
    else ``None``: its ``ap_width`` (the field of view) over the image's columns disagrees (an
    image saved at 512 columns from a 1024-column scan has pixels twice as large)."""
    field_nm = _scaled(width[0], width[1], _NM)
    if field_nm is None or columns <= 0:
        return None
    per_column = field_nm / columns
    if abs(nm - per_column) <= 0.01 * per_column:
        return None
    return (
        f"images[0].voxel_size_y x: Zeiss ap_pixel_size = {raw} is the scan's pixel size, not the "
        f"saved image's: ap_width {width[0]} {width[1]} over the image's {columns} columns is "
        f"{round_to(per_column, 4):g} nm; not used as the voxel size (pass --voxel-size)"
    )


def _zeiss(meta: dict[str, Any], columns: int = 0) -> VendorHeader:
    """Zeiss SmartSEM: entries are ``(label, value[, unit])`` tuples keyed ``ap_*``/``dp_*``/``sv_*``.

    ``columns``: the image's width, to tell ``ap_pixel_size`` (the scan's) from the image's."""
    head = VendorHeader("zeiss", entries=sum(1 for k in meta if k))

    def entry(key: str) -> tuple[Any, str]:
        item = meta.get(key)
        if not isinstance(item, tuple) or len(item) < 2:
            return None, ""
        return item[1], (str(item[2]) if len(item) > 2 else "")

    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        value, unit = entry(key)
        nm = _scaled(value, unit, _NM)
        why = None
        if nm is not None and key == "ap_pixel_size":
            why = _zeiss_scan_pixel(nm, f"{value} {unit}", entry("ap_width"), columns)
        if why is not None:
            head.warnings.append(why)
            break
        if nm is not None:
            head.pixel_size_nm = (nm, nm)
            head.pixel_source = f"zeiss:{key}"
            for axis in "xy":
                head.add(f"images[0].voxel_size_{axis}", nm, f"zeiss:{key}", f"{value} {unit}")
            head.add(
                "images[0].voxel_size_unit", "nanometer", f"zeiss:{key}", unit, "curated_inference"
            )
            break
    model, _ = entry("dp_sem")
    if isinstance(model, str) and model.strip():
        head.add(
            "acquisition.instrument_manufacturer",
            "Carl Zeiss",
            "zeiss:CZ_SEM",
            None,
            "curated_inference",
        )
        head.add("acquisition.instrument_model", model.strip(), "zeiss:dp_sem")
        head.add("acquisition.imaging_instrument", f"Zeiss {model.strip()}", "zeiss:dp_sem")
    detector, _ = entry("dp_detector_channel")
    if not (isinstance(detector, str) and detector.strip()):
        detector, _ = entry("dp_detector_type")
    if isinstance(detector, str) and detector.strip():
        head.add("acquisition.detector_description", detector.strip(), "zeiss:dp_detector_channel")
        kind = _ZEISS_DETECTORS.get(detector.strip().upper())
        if kind:
            head.add(
                "acquisition.fibsem.detector",
                [kind],
                "zeiss:dp_detector_channel",
                detector,
                "curated_inference",
            )
    slots = (
        ("ap_actualkv", "sem_accelerating_voltage_kv", _KV),
        ("ap_iprobe", "sem_beam_current_na", _NA),
        ("dp_dwell_time", "dwell_time_us", _US),
        ("ap_wd", "working_distance_mm", _MM),
    )
    fib = entry("dp_fib_present")[0] is True
    if fib:
        slots += (
            ("ap_fib_eht_actual", "fib_accelerating_voltage_kv", _KV),
            ("ap_fib_probe_current_actual", "fib_beam_current_na", _NA),
        )
    for key, slot, table in slots:
        value, unit = entry(key)
        converted = _scaled(value, unit, table)
        if converted is not None:
            head.add(f"acquisition.fibsem.{slot}", converted, f"zeiss:{key}", f"{value} {unit}")
        elif value not in (None, 0, 0.0):
            head.warnings.append(
                f"acquisition.fibsem.{slot}: Zeiss {key} = {value!r} {unit} has no known unit; not imported"
            )
    date, _ = entry("ap_date")
    time, _ = entry("ap_time")
    if isinstance(date, str) and date.strip():
        text = f"{date.strip()} {time.strip() if isinstance(time, str) else ''}".strip()
        when = _parse_date(text, ("%d %b %Y %H:%M:%S", "%d %b %Y"))
        if when is None:
            head.warnings.append(
                f"acquisition.acquisition_date: Zeiss date {text!r} is not 'DD Mon YYYY HH:MM:SS'; not imported"
            )
        else:
            head.add("acquisition.acquisition_date", when, "zeiss:ap_date+ap_time", text)
    for key, what in (("sv_user_name", "user name"), ("sv_operator", "operator")):
        head.person(what, entry(key)[0], f"zeiss:{key}")
    for key in ("sv_image_path", "sv_file_name"):
        value = entry(key)[0]
        if isinstance(value, str) and _USER_FOLDER.search(value):
            head.person(
                "user folder in a path", _USER_FOLDER.search(value).group(1), f"zeiss:{key}"
            )  # type: ignore[union-attr]
    return head


# -------------------------------------------------------------------- FEI
_FEI_DETECTORS = {"TLD": "InLens", "ETD": "SE", "CBS": "BSE", "ABS": "BSE", "BSED": "BSE", "ICE": "SE", "ICD": "BSE", "T1": "BSE", "T2": "InLens", "T3": "InLens"}  # fmt: skip
"""FEI detector names -> FibsemDetector, used when the header's detector Mode is not SE/BSE."""


def _fei(meta: dict[str, Any], page: Any) -> VendorHeader:
    """FEI / Thermo Fisher (Helios, Scios, PFIB...): ``[Section] Key=value`` text parsed by tifffile."""
    head = VendorHeader("fei", entries=sum(len(d) for d in meta.values() if isinstance(d, dict)))

    def number(section: str, key: str) -> float | None:
        value = (meta.get(section) or {}).get(key)
        return (
            float(value)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            else None
        )

    sizes = {}
    for axis, key in (("x", "PixelWidth"), ("y", "PixelHeight")):
        metres = number("Scan", key)
        if metres is not None:
            nm = round_to(metres * 1e9, significant_digits(metres))
            sizes[axis] = nm
            head.add(f"images[0].voxel_size_{axis}", nm, f"fei:Scan@{key}", f"{metres} m")
    if len(sizes) == 2:
        head.pixel_size_nm = (sizes["y"], sizes["x"])
        head.pixel_source = "fei:Scan@PixelWidth/PixelHeight"
        head.add("images[0].voxel_size_unit", "nanometer", "fei:Scan", "m", "curated_inference")
    rows = (meta.get("Image") or {}).get("ResolutionY")
    height = int(page.shape[-2]) if len(page.shape) >= 2 else None
    if isinstance(rows, int) and height is not None and 0 < rows < height:
        head.image_rows = rows
        bar = (meta.get("PrivateFei") or {}).get("DatabarHeight")
        head.warnings.append(
            f"images[0].size_y: rows {rows}-{height - 1} of the page are the FEI data bar "
            f"({height - rows} rows{'' if bar is None else f', DatabarHeight={bar}'}), not image data; "
            f"the image is {rows} rows (fei:Image@ResolutionY)"
        )
    system = (meta.get("System") or {}).get("SystemType")
    if isinstance(system, str) and system.strip():
        model = system.strip().replace('"', "")
        head.add(
            "acquisition.instrument_manufacturer",
            "Thermo Fisher Scientific (FEI)",
            "fei:header",
            None,
            "curated_inference",
        )
        head.add("acquisition.instrument_model", model, "fei:System@SystemType", system)
        head.add(
            "acquisition.imaging_instrument",
            f"FEI/Thermo Fisher {model}",
            "fei:System@SystemType",
            system,
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
        value = number(section, key)
        if value is not None:
            head.add(
                f"acquisition.fibsem.{slot}",
                round_to(value * factor, significant_digits(value)),
                f"fei:{section}@{key}",
                f"{value} {unit}",
            )
    detector = (meta.get("Detectors") or {}).get("Name")
    if isinstance(detector, str) and detector.strip():
        mode = (meta.get("Detectors") or {}).get("Mode")
        mode = None if not isinstance(mode, str) or mode.strip().lower() in ("", "none") else mode
        label = (
            f"{detector.strip()} ({mode})"
            if isinstance(mode, str) and mode.strip()
            else detector.strip()
        )
        head.add("acquisition.detector_description", label, "fei:Detectors@Name")
        kind = (
            mode.strip().upper()
            if isinstance(mode, str) and mode.strip().upper() in ("SE", "BSE")
            else None
        )
        kind = kind or _FEI_DETECTORS.get(detector.strip().upper())
        if kind:
            head.add(
                "acquisition.fibsem.detector",
                [kind],
                "fei:Detectors@Name",
                detector,
                "curated_inference",
            )
    user = meta.get("User") or {}
    date, time = user.get("Date"), user.get("Time")
    if isinstance(date, str) and date.strip():
        text = f"{date.strip()} {time.strip() if isinstance(time, str) else ''}".strip()
        when = _parse_date(text, ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y"))
        if when is None:
            head.warnings.append(
                f"acquisition.acquisition_date: FEI date {text!r} is not MM/DD/YYYY hh:mm:ss AM/PM; not imported"
            )
        else:
            head.add("acquisition.acquisition_date", when, "fei:User@Date+Time", text)
    head.person("user name", user.get("User"), "fei:User@User")
    return head


# ------------------------------------------------------------------ JEOL
def _jeol_sightx(page: Any) -> VendorHeader:
    """JEOL SightX TEM: a ``TemReporter`` XML; the resolution tags are the print DPI at the magnification."""
    head = VendorHeader("jeol")
    try:
        root = ET.fromstring(page.description.strip(" \r\n\t\x00\x01"))
    except ET.ParseError as exc:
        head.warnings.append(
            f"JEOL TemReporter XML cannot be parsed ({exc}); nothing imported from it"
        )
        return head

    head.entries = sum(1 for el in root.iter() if len(el) == 0)

    def text(path: str) -> str | None:
        el = root.find(path)
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    make, model = text("Manufacturer"), text("Instruments")
    if make:
        head.add("acquisition.instrument_manufacturer", make, "jeol:TemReporter/Manufacturer")
    if model:
        head.add("acquisition.instrument_model", model, "jeol:TemReporter/Instruments")
        head.add(
            "acquisition.imaging_instrument",
            " ".join(x for x in (make, model) if x),
            "jeol:TemReporter/Instruments",
        )
    when = text("DateTime")
    if when:
        try:
            head.add(
                "acquisition.acquisition_date",
                datetime.fromisoformat(_trim_fraction(when)).isoformat(),
                "jeol:TemReporter/DateTime",
                when,
            )
        except ValueError:
            head.warnings.append(
                f"acquisition.acquisition_date: JEOL DateTime {when!r} is not ISO 8601; not imported"
            )
    head.person("operator", text("Operator"), "jeol:TemReporter/Operator")
    kv = text("ElectronGun/AccelerationVoltage")
    if kv:
        head.add(
            "acquisition.image_acquisition_parameters",
            f"TEM accelerating voltage {float(kv) / 1000:g} kV",
            "jeol:ElectronGun/AccelerationVoltage",
            f"{kv} V",
        )
    mode, mag = text("ImageFormingSystem/ModeString"), text("ImageFormingSystem/SelectorValue")
    eos = text("Eos/EosMode")
    xres, runit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if eos == "eosTEM" and mode == "MAG" and mag and xres is not None:
        num, den = xres.value
        per_m = {2: 1 / 0.0254, 3: 100.0}.get(int(runit.value) if runit is not None else 2)
        if num and den and per_m and float(mag) > 0:
            # the resolution tag is the print resolution at this magnification, an integer
            # number of dots per inch: the pixel size is known to about 1 %, hence 3 digits
            nm = round_to(1e9 / (num / den * per_m) / float(mag), 3)
            head.pixel_size_nm = (nm, nm)
            head.pixel_source = "jeol:XResolution/SelectorValue"
            raw = f"{num / den:g} dots per {'inch' if per_m < 100 else 'cm'} at magnification {mag}"
            for axis in "xy":
                head.add(
                    f"images[0].voxel_size_{axis}",
                    nm,
                    "jeol:XResolution/ImageFormingSystem/SelectorValue",
                    raw,
                    "curated_inference",
                )
            head.add(
                "images[0].voxel_size_unit",
                "nanometer",
                "jeol:ImageFormingSystem",
                None,
                "curated_inference",
            )
    elif mode and mode != "MAG":
        head.warnings.append(
            f"images[0].voxel_size_*: JEOL image in {mode} mode (not real space); no pixel size imported"
        )
    return head


def _trim_fraction(text: str) -> str:
    """Python before 3.11 parses at most 6 fraction digits; JEOL writes 7."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


# ------------------------------------------------------------------ TVIPS
def _tvips(meta: dict[str, Any]) -> VendorHeader:
    """TVIPS camera header: pixel size in nanometres (a float32), camera and TEM type."""
    head = VendorHeader("tvips", entries=len(meta))
    sx, sy = meta.get("PixelSizeX"), meta.get("PixelSizeY")
    if isinstance(sx, float) and isinstance(sy, float) and sx > 0 and sy > 0:
        # stored as float32: 7 significant digits
        x, y = round_to(sx, 7), round_to(sy, 7)
        head.pixel_size_nm = (y, x)
        head.pixel_source = "tvips:PixelSizeX/PixelSizeY"
        head.add("images[0].voxel_size_x", x, "tvips:PixelSizeX", f"{sx} nm")
        head.add("images[0].voxel_size_y", y, "tvips:PixelSizeY", f"{sy} nm")
        head.add(
            "images[0].voxel_size_unit", "nanometer", "tvips:PixelSizeX", "nm", "curated_inference"
        )
    camera = meta.get("CameraType")
    if isinstance(camera, str) and camera.strip():
        head.add("acquisition.detector_description", f"TVIPS {camera.strip()}", "tvips:CameraType")
    tem = meta.get("TemType")
    if isinstance(tem, str) and tem.strip():
        head.add("acquisition.instrument_model", tem.strip(), "tvips:TemType")
    hv = meta.get("TemHighTension")
    if isinstance(hv, float) and hv > 0:
        head.add(
            "acquisition.image_acquisition_parameters",
            f"TEM high tension {hv / 1000:g} kV",
            "tvips:TemHighTension",
            f"{hv} V",
        )
    return head


# ------------------------------------------------------- DigitalMicrograph
def _digital_micrograph(page: Any) -> VendorHeader:
    """Gatan DigitalMicrograph TIFF export: private tags 65003-65011 hold axis units and scales.

    65003/65009 are y (DM's first axis), 65004/65010 x, 65005/65011 z; the scales are stored
    as float32, hence 7 significant digits.
    """
    head = VendorHeader(
        "digitalmicrograph", entries=sum(1 for t in page.tags.values() if 65000 < t.code < 65100)
    )
    nm: dict[str, float] = {}
    for axis, unit_tag, scale_tag in (
        ("y", 65003, 65009),
        ("x", 65004, 65010),
        ("z", 65005, 65011),
    ):
        unit = page.tags.get(unit_tag)
        scale = page.tags.get(scale_tag)
        if unit is None or scale is None:
            continue
        try:
            value = float(scale.value)
        except (TypeError, ValueError):
            continue
        factor = _NM.get(str(unit.value).strip())
        if factor is None or value <= 0:
            head.warnings.append(
                f"images[0].voxel_size_{axis}: DigitalMicrograph scale {scale.value!r} {unit.value!r} is not a length; not imported"
            )
            continue
        nm[axis] = round_to(value * factor, 7)
        head.add(
            f"images[0].voxel_size_{axis}",
            nm[axis],
            f"dm:tag{scale_tag}",
            f"{scale.value} {unit.value}",
        )
    if "x" in nm and "y" in nm:
        head.pixel_size_nm = (nm["y"], nm["x"])
        head.pixel_source = "dm:tags 65009/65010"
        head.add("images[0].voxel_size_unit", "nanometer", "dm:tag65003", None, "curated_inference")
    return head


def _parse_date(text: str, formats: tuple[str, ...]) -> str | None:
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return None


def personal_data_in_vendor_header(tif: Any) -> list[str]:
    """Kinds of personal data in a TIFF's vendor header (``"person field 'user name' (zeiss:sv_user_name)"``)."""
    try:
        head = read_vendor_header(tif)
    except Exception:  # a damaged vendor header is reported elsewhere; it holds no finding here
        return []
    if head is None:
        return []
    return sorted({f"person field '{p['what']}' ({p['source_path']})" for p in head.personal})


__all__ = ["VendorHeader", "VendorValue", "personal_data_in_vendor_header", "read_vendor_header"]
