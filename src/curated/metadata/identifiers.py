"""Offline checks of the persistent identifiers a record carries.

Each ``check_*`` function returns ``None`` when the value is fine, or a short
sentence saying what is wrong (the validator prefixes the field path). Nothing
here touches the network: checksums are computed, licence ids are looked up in
the SPDX list shipped in ``curated/data/spdx_licenses.json`` (refreshed from
PyPA's ``packaging`` with ``python -m curated.metadata.generate --spdx``).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

ORCID_RE = re.compile(r"^(?:https://orcid\.org/)?(\d{4})-(\d{4})-(\d{4})-(\d{3}[\dX])$")
ROR_RE = re.compile(r"^(?:https://ror\.org/)?(0[0-9a-hjkmnp-tv-z]{6})(\d{2})$")
DOI_RE = re.compile(r"^(?:https://doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
NCBI_TAXON_RE = re.compile(r"^(?:NCBITaxon:)?([1-9]\d{0,7})$")
FBBI_RE = re.compile(r"^FBbi:\d{8}$")

CROCKFORD32 = "0123456789abcdefghjkmnpqrstvwxyz"
"""Crockford's base-32 alphabet (no i, l, o, u), which ROR ids are written in."""


def invisible_character(value: str) -> str | None:
    """Why ``value`` cannot be an identifier as written, when it holds a character nobody sees.

    A zero-width space, a direction mark, a soft hyphen or a control character copied
    along with an ORCID iD or a DOI looks right on screen and in a pattern check that
    allows any non-space character, but repositories and resolvers refuse the identifier.
    """
    for i, ch in enumerate(value.strip()):
        if unicodedata.category(ch) in ("Cf", "Cc", "Zl", "Zp") or (ch.isspace() and ch != " "):
            name = unicodedata.name(ch, "a control character")
            return f"holds an invisible character, U+{ord(ch):04X} ({name}), at position {i + 1}; retype the identifier"
    return None


def orcid_check_character(base_digits: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 15 digits of an ORCID iD."""
    total = 0
    for ch in base_digits:
        total = (total + int(ch)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def check_orcid(value: str) -> str | None:
    """``None`` for a well-formed ORCID iD whose check character is right."""
    if invisible := invisible_character(value):
        return invisible
    m = ORCID_RE.match(value.strip())
    if not m:
        return "not an ORCID iD (expected 0000-0000-0000-000X, optionally after https://orcid.org/)"
    digits = "".join(m.groups())
    expected = orcid_check_character(digits[:15])
    if digits[15] != expected:
        return f"ORCID checksum digit does not match (ISO 7064 11,2: last character should be {expected}, is {digits[15]})"
    return None


def ror_checksum(base: str) -> str:
    """Two-digit ROR checksum (ISO 7064 MOD 97-10) of the 6 base-32 characters after the leading 0."""
    number = 0
    for ch in base:
        number = number * 32 + CROCKFORD32.index(ch)
    return f"{98 - (number * 100) % 97:02d}"


def check_ror(value: str) -> str | None:
    """``None`` for a ROR id (``0`` + 6 Crockford base-32 characters + 2 check digits) that checks out."""
    if invisible := invisible_character(value):
        return invisible
    m = ROR_RE.match(value.strip())
    if not m:
        return "not a ROR id (expected 0 + 6 characters from 0-9a-z without i, l, o, u + 2 digits, optionally after https://ror.org/)"
    body, check = m.groups()
    expected = ror_checksum(body[1:])
    if check != expected:
        return f"ROR checksum does not match (last two digits should be {expected}, are {check})"
    return None


def check_doi(value: str) -> str | None:
    """``None`` for a DOI (``10.<registrant>/<suffix>``, optionally as https://doi.org/ URL)."""
    if invisible := invisible_character(value):
        return invisible
    if not DOI_RE.match(value.strip()):
        return "not a DOI (expected 10.NNNN/suffix, optionally after https://doi.org/)"
    return None


def check_ncbi_taxon(value: str | int) -> str | None:
    """``None`` for an NCBI taxonomy id (``9606`` or ``NCBITaxon:9606``); syntax only."""
    if not NCBI_TAXON_RE.match(str(value).strip()):
        return "not an NCBI taxonomy id (expected digits, e.g. NCBITaxon:9606)"
    return None


def check_fbbi(value: str) -> str | None:
    """``None`` for an FBbi term id (``FBbi:`` + 8 digits); syntax only."""
    if invisible := invisible_character(value):
        return invisible
    if not FBBI_RE.match(value.strip()):
        return "not an FBbi term id (expected FBbi: and 8 digits, e.g. FBbi:00050000 for FIB-SEM)"
    return None


@functools.cache
def spdx_licenses() -> dict[str, bool]:
    """SPDX licence ids shipped with curated, mapped to whether SPDX deprecated them."""
    text = (
        resources.files("curated").joinpath("data/spdx_licenses.json").read_text(encoding="utf-8")
    )
    return dict(json.loads(text)["licenses"])


@functools.cache
def _spdx_by_lower() -> dict[str, str]:
    return {k.lower(): k for k in spdx_licenses()}


def check_spdx(value: str) -> str | None:
    """``None`` for an SPDX licence id (exact spelling); deprecated ids are reported by :func:`spdx_deprecated`."""
    if value in spdx_licenses():
        return None
    proper = _spdx_by_lower().get(value.strip().lower())
    if proper is not None:
        return f"SPDX licence ids are case-sensitive: write {proper}"
    return "not an SPDX licence id (see https://spdx.org/licenses/, e.g. CC-BY-4.0 or CC0-1.0)"


def spdx_deprecated(value: str) -> bool:
    """Whether ``value`` is an SPDX id that SPDX has deprecated."""
    return spdx_licenses().get(value, False)
