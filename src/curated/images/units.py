"""Length and time unit names: UDUNITS-2 names as OME-Zarr wants them, and common aliases."""

from __future__ import annotations

import re
from typing import Any

from curated.errors import InputError

LENGTH_UNITS: dict[str, float] = {
    "angstrom": 1e-10,
    "attometer": 1e-18,
    "centimeter": 1e-2,
    "decimeter": 1e-1,
    "exameter": 1e18,
    "femtometer": 1e-15,
    "foot": 0.3048,
    "gigameter": 1e9,
    "hectometer": 1e2,
    "inch": 0.0254,
    "kilometer": 1e3,
    "megameter": 1e6,
    "meter": 1.0,
    "micrometer": 1e-6,
    "mile": 1609.344,
    "millimeter": 1e-3,
    "nanometer": 1e-9,
    "parsec": 3.0856775814913673e16,
    "petameter": 1e15,
    "picometer": 1e-12,
    "terameter": 1e12,
    "yard": 0.9144,
    "yoctometer": 1e-24,
    "yottameter": 1e24,
    "zeptometer": 1e-21,
    "zettameter": 1e21,
}
"""The space units OME-Zarr allows (UDUNITS-2 names) and their size in meters."""

TIME_UNITS: frozenset[str] = frozenset(
    {
        "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
        "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute",
        "nanosecond", "petasecond", "picosecond", "second", "terasecond", "yoctosecond", "yottasecond",
        "zeptosecond", "zettasecond",
    }
)  # fmt: skip

_ALIASES: dict[str, str] = {
    "nm": "nanometer",
    "nanometre": "nanometer",
    "nanometers": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometre": "micrometer",
    "micrometers": "micrometer",
    "\\u00b5m": "micrometer",
    "mm": "millimeter",
    "millimetre": "millimeter",
    "cm": "centimeter",
    "centimetre": "centimeter",
    "dm": "decimeter",
    "in": "inch",
    "m": "meter",
    "metre": "meter",
    "pm": "picometer",
    "picometre": "picometer",
    "å": "angstrom",
    "a": "angstrom",
    "ångström": "angstrom",
}


def length_unit(name: str | None, *, field: str = "unit") -> str:
    """Return the UDUNITS-2 name of a length unit, accepting common aliases (``nm``, ``µm``, ``micron``).

    Raises
    ------
    InputError
        When ``name`` is not a length (``second``, ``pixel``, ``""``...).
    """
    raw = (name or "").strip()
    key = raw.lower()
    if key in LENGTH_UNITS:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    msg = (
        f"{raw!r} is not a unit of length; give a UDUNITS-2 length name such as "
        "'nanometer', 'micrometer' or 'angstrom'"
    )
    raise InputError(msg, field=field)


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def imagej_units(meta: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The (z, y, x) units of an ImageJ description, as written, ``\\uXXXX`` escapes decoded.

    ImageJ writes ``unit=`` (x, and every axis unless told otherwise) and, when an axis's unit
    differs from it, ``yunit=`` and ``zunit=`` (``FileSaver.getDescriptionString``; Bio-Formats
    sets them from an OME-TIFF whose PhysicalSizeZUnit differs from PhysicalSizeXUnit).
    Non-ASCII characters are written as ``\\u`` escapes: ``unit=\\u00B5m`` is micrometres.
    """

    def text(key: str) -> str | None:
        value = meta.get(key)
        if value is None:
            return None
        return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), str(value)).strip()

    x = text("unit")
    return text("zunit") or x, text("yunit") or x, x


def to_unit(value: float, from_unit: str, to: str) -> float:
    """Convert a length between two UDUNITS length names."""
    return value * LENGTH_UNITS[from_unit] / LENGTH_UNITS[to]


def significant_digits(value: float | str) -> int:
    """How many significant digits a value states: ``"12.33"`` → 4, ``2.465245e-08`` → 7.

    Floats count the digits of their shortest round-trip form (what the source wrote,
    for values parsed from text). Used to round a converted value back to the
    precision of its source, so ``0.0025 mm`` becomes ``2500 nm``, not ``2499.9999999999995``.
    """
    text = value if isinstance(value, str) else repr(float(value))
    mantissa = text.strip().lower().split("e")[0].lstrip("+-").replace(".", "")
    digits = mantissa.lstrip("0")
    return max(1, min(17, len(digits))) if digits else 1


def round_to(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits."""
    return float(f"{value:.{max(1, digits)}g}")


def convert_length(value: float, from_unit: str, to: str, *, digits: int | None = None) -> float:
    """Convert a length and round it to the precision of the source value (or ``digits``)."""
    return round_to(to_unit(value, from_unit, to), digits or significant_digits(value))
