"""Crosswalk: curated record → Dataverse dataset JSON (citation metadata block).

``POST /api/dataverses/{alias}/datasets`` takes ``{"datasetVersion": {...}}``; a new
draft version takes the inner ``datasetVersion`` object. Dataverse requires title,
author, datasetContact (with e-mail), dsDescription and subject.
"""

from __future__ import annotations

import re
from typing import Any

from curated.metadata.crosswalk.common import (
    Licence,
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    person_name,
)
from curated.metadata.view import Person, Study, record_view

SUBJECT = "Medicine, Health and Life Sciences"
"""Dataverse's controlled subject for biomedical imaging."""

DEFAULT_LICENCES: list[dict[str, Any]] = [
    # What a Dataverse installation offers out of the box (IQSS/dataverse
    # scripts/api/data/licenses/licenseCC0-1.0.json and licenseCC-BY-4.0.json); note http://.
    {
        "name": "CC0 1.0",
        "uri": "http://creativecommons.org/publicdomain/zero/1.0",
        "active": True,
        "rightsIdentifier": "CC0-1.0",
    },
    {
        "name": "CC BY 4.0",
        "uri": "http://creativecommons.org/licenses/by/4.0",
        "active": True,
        "rightsIdentifier": "CC-BY-4.0",
    },
]


def _uri_key(uri: str) -> str:
    """A licence address with the variations installations use taken out.

    ``http``/``https``, ``www.``, a trailing ``/``, ``legalcode``/``deed.*`` pages and
    opensource.org's ``/licenses/`` vs ``/license/`` all name the same licence.
    """
    u = uri.strip().lower()
    u = re.sub(r"^https?://", "", u).removeprefix("www.")
    u = re.sub(r"/(legalcode|deed)(\.[a-z-]+)?/?$", "", u).rstrip("/")
    u = u.removesuffix(".html").removesuffix(".txt")
    return u.replace("opensource.org/licenses/", "opensource.org/license/")


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower()).removesuffix("international")


def match_licence(spdx: str | None, offered: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The installation's licence (from ``GET /api/licenses``) that is the SPDX licence ``spdx``.

    Dataverse finds a dataset's licence by its exact URI or name (``LicenseServiceBean
    .getByNameOrUri``), and installations spell them their own way ("CC BY-SA 4.0",
    "Apache-2.0", ``http://`` URIs). Matched in order: the licence's SPDX
    ``rightsIdentifier`` (Dataverse 6.2+), its URI, its name. Inactive licences never match.
    """
    if not spdx or not offered:
        return None
    lic: Licence | None = licence(spdx)
    active = [o for o in offered if o.get("active", True)]
    wanted = str(lic.spdx_id if lic else spdx).lower()
    for o in active:
        if str(o.get("rightsIdentifier") or "").lower() == wanted:
            return o
    if lic is not None:
        uris = {_uri_key(lic.url), _uri_key(lic.spdx_url)}
        for o in active:
            if o.get("uri") and _uri_key(str(o["uri"])) in uris:
                return o
    names = {_name_key(wanted)}
    if lic is not None:
        names.add(_name_key(lic.name))
    for o in active:
        if _name_key(str(o.get("name") or "")) in names:
            return o
    return None


def _p(name: str, value: Any, *, multiple: bool = False, cls: str = "primitive") -> dict[str, Any]:
    return {"typeName": name, "multiple": multiple, "typeClass": cls, "value": value}


def _author(person: Person) -> dict[str, Any]:
    out: dict[str, Any] = {"authorName": _p("authorName", person_name(person))}
    if person.affiliation.name:
        out["authorAffiliation"] = _p("authorAffiliation", person.affiliation.name)
    orcid = normalise_orcid(person.orcid)
    if orcid:
        out["authorIdentifierScheme"] = _p(
            "authorIdentifierScheme", "ORCID", cls="controlledVocabulary"
        )
        out["authorIdentifier"] = _p("authorIdentifier", orcid.rsplit("/", 1)[-1])
    return out


def _compound(name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    return _p(name, values, multiple=True, cls="compound")


def to_dataverse(
    record: Any, *, today: str | None = None, licences: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``{"datasetVersion": ...}`` body Dataverse's native API takes for ``record``.

    ``licences`` is the installation's list (``GET /api/licenses``); without it, the
    licences every installation starts with are assumed (:data:`DEFAULT_LICENCES`).
    A licence the installation does not offer is left out here: the deposit reports it
    (Dataverse would otherwise apply its default licence).
    """
    rec = record_view(as_dict(record))
    study = rec.study
    fields: list[dict[str, Any]] = [_p("title", study.title or "")]
    fields.append(_compound("author", [_author(a) for a in study.authors]))
    contacts = _contacts(study.authors)
    if contacts:
        fields.append(_compound("datasetContact", contacts))
    if study.description:
        value = _p("dsDescriptionValue", study.description)
        fields.append(_compound("dsDescription", [{"dsDescriptionValue": value}]))
    fields.append(_p("subject", [SUBJECT], multiple=True, cls="controlledVocabulary"))
    keywords = [k for k in study.keywords if k]
    for sample in rec.biosamples:
        name = sample.organism.scientific_name
        if name and name not in keywords:
            keywords.append(name)
    if keywords:
        fields.append(
            _compound("keyword", [{"keywordValue": _p("keywordValue", k)} for k in keywords])
        )
    grants = [
        {
            "grantNumberAgency": _p("grantNumberAgency", g.funder),
            "grantNumberValue": _p("grantNumberValue", g.award_id or ""),
        }
        for g in study.funding
        if g.funder
    ]
    if grants:
        fields.append(_compound("grantNumber", grants))
    pubs = _publications(study)
    if pubs:
        fields.append(_compound("publication", pubs))
    method = rec.dataset.imaging_method_name
    fields.append(
        _p("kindOfData", [f"{method} image data" if method else "Image data"], multiple=True)
    )
    dates = [
        p.acquisition_date.date().isoformat()
        for p in rec.acquisition_protocols
        if p.acquisition_date
    ]
    if dates:
        span = {
            "dateOfCollectionStart": _p("dateOfCollectionStart", min(dates)),
            "dateOfCollectionEnd": _p("dateOfCollectionEnd", max(dates)),
        }
        fields.append(_compound("dateOfCollection", [span]))
    version: dict[str, Any] = {
        "metadataBlocks": {"citation": {"displayName": "Citation Metadata", "fields": fields}}
    }
    found = match_licence(study.license, licences or DEFAULT_LICENCES)
    if found:
        version["license"] = {"name": str(found["name"]), "uri": str(found["uri"])}
    return {"datasetVersion": version}


def _contacts(authors: tuple[Person, ...]) -> list[dict[str, Any]]:
    """The contact authors with an e-mail, else the first author with one."""
    chosen = [a for a in authors if a.contact and a.email] or [a for a in authors if a.email][:1]
    return [
        {
            "datasetContactName": _p("datasetContactName", person_name(a)),
            "datasetContactEmail": _p("datasetContactEmail", a.email),
        }
        for a in chosen
    ]


def _publications(study: Study) -> list[dict[str, Any]]:
    pubs = []
    for pub in study.publications:
        if not pub.title:
            continue
        entry: dict[str, Any] = {"publicationCitation": _p("publicationCitation", pub.title)}
        doi = normalise_doi(pub.doi)
        if doi:
            entry["publicationIDType"] = _p("publicationIDType", "doi", cls="controlledVocabulary")
            entry["publicationIDNumber"] = _p("publicationIDNumber", doi)
            entry["publicationURL"] = _p("publicationURL", f"https://doi.org/{doi}")
        pubs.append(entry)
    return pubs


def missing_required(record: Any) -> list[str]:
    """Record fields Dataverse requires that are empty."""
    study = record_view(as_dict(record)).study
    missing = []
    if not study.title:
        missing.append("study.title")
    if not study.authors:
        missing.append("study.authors")
    if not any(a.email for a in study.authors):
        missing.append("study.authors[].email (Dataverse needs a dataset contact e-mail)")
    if not study.description:
        missing.append("study.description")
    return missing
