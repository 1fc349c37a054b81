"""What every repository crosswalk needs: names, identifiers and licences in canonical form.

These helpers take the raw values a curator wrote in ``curated.yaml`` (which may be
bare ORCIDs, full ``https://orcid.org/...`` URLs, SPDX ids in odd case...) and give
the one form each target schema expects. They never invent a value: an input that
cannot be normalised is returned as ``None`` (or left as given where the target
accepts free text), and the caller reports the gap.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

ORCID_URL = "https://orcid.org/"
ROR_URL = "https://ror.org/"
DOI_URL = "https://doi.org/"
SPDX_LIST_URL = "https://spdx.org/licenses/"

_ORCID_RE = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$", re.IGNORECASE)
_ROR_RE = re.compile(r"^(?:https?://ror\.org/)?(0[a-hj-km-np-tv-z0-9]{6}[0-9]{2})$", re.IGNORECASE)
_DOI_RE = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Licence:
    """A licence curated knows by its SPDX identifier."""

    spdx_id: str
    name: str
    url: str
    """The licence text's canonical address (the legal code where there is one)."""
    open: bool = True
    """Lets anyone reuse the data (the Open Definition sense)."""

    @property
    def spdx_url(self) -> str:
        return f"{SPDX_LIST_URL}{self.spdx_id}.html"


_LICENCES: tuple[Licence, ...] = (
    Licence(
        "CC0-1.0",
        "Creative Commons Zero v1.0 Universal",
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    ),
    Licence(
        "CC-BY-4.0",
        "Creative Commons Attribution 4.0 International",
        "https://creativecommons.org/licenses/by/4.0/legalcode",
    ),
    Licence(
        "CC-BY-SA-4.0",
        "Creative Commons Attribution Share Alike 4.0 International",
        "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
    ),
    Licence(
        "CC-BY-NC-4.0",
        "Creative Commons Attribution Non Commercial 4.0 International",
        "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
        open=False,
    ),
    Licence(
        "CC-BY-NC-SA-4.0",
        "Creative Commons Attribution Non Commercial Share Alike 4.0 International",
        "https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode",
        open=False,
    ),
    Licence(
        "CC-BY-ND-4.0",
        "Creative Commons Attribution No Derivatives 4.0 International",
        "https://creativecommons.org/licenses/by-nd/4.0/legalcode",
        open=False,
    ),
    Licence(
        "CC-BY-NC-ND-4.0",
        "Creative Commons Attribution Non Commercial No Derivatives 4.0 International",
        "https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode",
        open=False,
    ),
    Licence(
        "CC-BY-3.0",
        "Creative Commons Attribution 3.0 Unported",
        "https://creativecommons.org/licenses/by/3.0/legalcode",
    ),
    Licence(
        "PDDL-1.0",
        "Open Data Commons Public Domain Dedication & License 1.0",
        "https://opendatacommons.org/licenses/pddl/1-0/",
    ),
    Licence(
        "ODC-By-1.0",
        "Open Data Commons Attribution License v1.0",
        "https://opendatacommons.org/licenses/by/1-0/",
    ),
    Licence(
        "ODbL-1.0",
        "Open Data Commons Open Database License v1.0",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
    Licence("MIT", "MIT License", "https://opensource.org/license/mit/"),
    Licence("Apache-2.0", "Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0"),
    Licence(
        "BSD-3-Clause",
        'BSD 3-Clause "New" or "Revised" License',
        "https://opensource.org/license/bsd-3-clause/",
    ),
    Licence(
        "GPL-3.0-only",
        "GNU General Public License v3.0 only",
        "https://www.gnu.org/licenses/gpl-3.0-standalone.html",
    ),
)
LICENCES: dict[str, Licence] = {lic.spdx_id.lower(): lic for lic in _LICENCES}
"""Licences curated recognises, by lower-case SPDX id (SPDX ids compare case-insensitively)."""


def licence(spdx_id: str | None) -> Licence | None:
    """The :class:`Licence` for an SPDX id (any case), or ``None`` when curated does not know it."""
    if not spdx_id:
        return None
    return LICENCES.get(str(spdx_id).strip().lower())


def spdx_id(value: str | None) -> str | None:
    """The properly spelled SPDX id for ``value`` (any case), or ``None`` when it is not one.

    Uses the full SPDX list shipped in ``curated/data/spdx_licenses.json`` when it is
    there, else the licences of :data:`LICENCES`.
    """
    if not value:
        return None
    text = str(value).strip()
    try:
        from curated.metadata.identifiers import spdx_licenses

        by_lower = {k.lower(): k for k in spdx_licenses()}
    except (ImportError, OSError, ValueError, KeyError):
        by_lower = {k: lic.spdx_id for k, lic in LICENCES.items()}
    return by_lower.get(text.lower())


def normalise_orcid(value: str | None) -> str | None:
    """``https://orcid.org/0000-0002-1825-0097`` from a bare or URL ORCID; ``None`` if malformed."""
    if not value:
        return None
    m = _ORCID_RE.match(str(value).strip())
    if not m or not orcid_checksum_ok(m.group(1)):
        return None
    return ORCID_URL + m.group(1).upper()


def orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 MOD 11-2 check of the ORCID's last character."""
    digits = orcid.replace("-", "")
    if len(digits) != 16:
        return False
    total = 0
    for ch in digits[:-1]:
        if not ch.isdigit():
            return False
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    expected = "X" if check == 10 else str(check)
    return digits[-1].upper() == expected


def normalise_ror(value: str | None) -> str | None:
    """``https://ror.org/05a28rw58`` from a bare or URL ROR id; ``None`` if malformed."""
    if not value:
        return None
    m = _ROR_RE.match(str(value).strip())
    return ROR_URL + m.group(1).lower() if m else None


def normalise_doi(value: str | None) -> str | None:
    """The bare DOI (``10.5281/zenodo.1``) from a bare, ``doi:`` or URL form; ``None`` if malformed."""
    if not value:
        return None
    m = _DOI_RE.match(str(value).strip())
    return m.group(1) if m else None


def text_to_html(text: str) -> str:
    """Plain text as HTML for a field a repository reads as HTML (and sanitizes).

    Characters are escaped (a ``<mito>`` in the text would otherwise be taken for a tag
    and stripped), blank lines separate ``<p>`` paragraphs and a single line break
    becomes ``<br>``. One paragraph without line breaks is only escaped.
    """
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    parts = [
        "<br>".join(html.escape(line.strip(), quote=False) for line in p.splitlines())
        for p in paragraphs
    ]
    if len(parts) == 1 and "\n" not in paragraphs[0]:
        return parts[0]
    return "".join(f"<p>{p}</p>" for p in parts)


def person_name(person: Any) -> str:
    """``Family, Given`` (the citation order DataCite and most repositories use); family alone if no given name.

    ``person`` is a record's mapping or a :class:`curated.metadata.view.Person`.
    """
    family = str(_field(person, "family_name") or "").strip()
    given = str(_field(person, "given_name") or "").strip()
    if family and given:
        return f"{family}, {given}"
    return family or given


def _field(obj: Any, name: str) -> Any:
    """A field of a record's mapping or of a typed view object."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def display_name(person: Any) -> str:
    """``Given Family`` for prose (READMEs, emails); a mapping or a view ``Person``."""
    family = str(_field(person, "family_name") or "").strip()
    given = str(_field(person, "given_name") or "").strip()
    return " ".join(p for p in (given, family) if p)


def citation_authors(authors: list[dict[str, Any]]) -> str:
    """Authors as a citation prints them: ``Family, G., Family, G. & Family, G.``."""
    names = []
    for a in authors:
        family = str(a.get("family_name") or "").strip()
        given = str(a.get("given_name") or "").strip()
        initials = " ".join(f"{part[0]}." for part in re.split(r"[\s-]+", given) if part)
        names.append(f"{family}, {initials}".strip(", ") if family else given)
    names = [n for n in names if n]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " & " + names[-1]


def as_dict(record: Any) -> dict[str, Any]:
    """A plain dict from a dict or a pydantic ``CuratedRecord`` (``None`` values dropped)."""
    if isinstance(record, dict):
        return record
    dump = getattr(record, "model_dump", None)
    if dump is None:
        msg = f"expected a dict or a CuratedRecord, not {type(record).__name__}"
        raise TypeError(msg)
    return dump(mode="json", exclude_none=True)


def get_path(data: Any, path: str, default: Any = None) -> Any:
    """Value at a dotted path with ``[i]`` indices (``study.authors[0].orcid``), or ``default``."""
    cur = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(cur, list) or idx >= len(cur):
                return default
            cur = cur[idx]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
    return default if cur is None else cur
