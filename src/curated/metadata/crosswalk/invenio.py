"""Crosswalk: curated record → InvenioRDM (and Zenodo) draft JSON.

The draft body ``PUT /api/records/{id}/draft`` takes replaces the whole record, so
this builds all of it: ``metadata`` (resource type, creators, title, publication date
are required by InvenioRDM), ``access`` (public, or embargoed until ``study.release_date``)
and ``files`` (enabled).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from curated.metadata.crosswalk.common import (
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
)

_RELATED_SCHEMES = {
    "DOI": "doi",
    "URL": "url",
    "ARK": "ark",
    "Handle": "handle",
    "PMID": "pmid",
    "arXiv": "arxiv",
    "URN": "urn",
}


def _today() -> str:
    return dt.date.today().isoformat()


def publication_date(study: dict[str, Any], today: str | None = None) -> str:
    """The date to publish under: the release date if set, else ``today``."""
    release = study.get("release_date")
    return str(release)[:10] if release else (today or _today())


def _creator(person: dict[str, Any]) -> dict[str, Any] | None:
    # A personal creator must have a family name (invenio-rdm-records
    # services/schemas/metadata.py, PersonOrOrganizationSchema): a person known by one
    # name gets it there; a person with no name at all is left out (and reported).
    family = str(person.get("family_name") or "").strip()
    given = str(person.get("given_name") or "").strip()
    if not family and not given:
        return None
    por: dict[str, Any] = {"type": "personal", "family_name": family or given}
    if family and given:
        por["given_name"] = given
    orcid = normalise_orcid(person.get("orcid"))
    if orcid:
        por["identifiers"] = [{"scheme": "orcid", "identifier": orcid.rsplit("/", 1)[-1]}]
    out: dict[str, Any] = {"person_or_org": por}
    aff = person.get("affiliation") or {}
    if isinstance(aff, dict) and aff.get("name"):
        entry: dict[str, Any] = {"name": str(aff["name"])}
        ror = normalise_ror(aff.get("ror"))
        if ror:
            # InvenioRDM's affiliations vocabulary is keyed by the bare ROR id.
            entry["id"] = ror.rsplit("/", 1)[-1]
        out["affiliations"] = [entry]
    return out


def to_invenio(
    record: Any, *, today: str | None = None, community: str | None = None
) -> dict[str, Any]:
    """The InvenioRDM draft JSON for ``record`` (a dict or ``CuratedRecord``).

    Parameters
    ----------
    record
        The curated record.
    today
        ISO date used when the record has no ``study.release_date`` (tests pin it).
    community
        Not part of the draft (InvenioRDM sets communities by review request); accepted
        and ignored so every crosswalk has the same call shape.
    """
    rec = as_dict(record)
    study = rec.get("study") or {}
    md: dict[str, Any] = {
        "resource_type": {"id": "dataset"},
        "title": str(study.get("title") or ""),
        "publication_date": publication_date(study, today),
        "creators": [
            c for p in study.get("authors") or [] if isinstance(p, dict) if (c := _creator(p))
        ],
    }
    if study.get("description"):
        md["description"] = str(study["description"])
    if study.get("publisher"):
        md["publisher"] = str(study["publisher"])
    subjects = [{"subject": str(k)} for k in study.get("keywords") or [] if k]
    for sample in rec.get("biosamples") or []:
        name = ((sample or {}).get("organism") or {}).get("scientific_name")
        if name and {"subject": str(name)} not in subjects:
            subjects.append({"subject": str(name)})
    if subjects:
        md["subjects"] = subjects
    lic = licence(study.get("license"))
    if lic:
        md["rights"] = [{"id": lic.spdx_id.lower()}]
    elif study.get("license"):
        md["rights"] = [{"title": {"en": str(study["license"])}}]
    funding = []
    for g in study.get("funding") or []:
        if not isinstance(g, dict) or not g.get("funder"):
            continue
        f: dict[str, Any] = {"funder": {"name": str(g["funder"])}}
        ror = normalise_ror(g.get("funder_ror"))
        if ror:
            f["funder"]["id"] = ror.rsplit("/", 1)[-1]
        # An award is an ``id`` from the awards vocabulary, or a ``title`` with a ``number``
        # (invenio-vocabularies contrib/awards/schema.py, AwardRelationSchema); a number
        # alone is refused, so it waits for the deposit to look it up (see award_id()).
        if g.get("award_id") and g.get("award_title"):
            f["award"] = {"title": {"en": str(g["award_title"])}, "number": str(g["award_id"])}
        funding.append(f)
    if funding:
        md["funding"] = funding
    related = []
    for r in study.get("related_identifiers") or []:
        if isinstance(r, dict) and r.get("identifier") and r.get("relation_type"):
            scheme = _RELATED_SCHEMES.get(str(r.get("identifier_type")), "url")
            ident = normalise_doi(r["identifier"]) if scheme == "doi" else str(r["identifier"])
            related.append(
                {
                    "identifier": ident or str(r["identifier"]),
                    "scheme": scheme,
                    "relation_type": {"id": str(r["relation_type"]).lower()},
                }
            )
    for pub in study.get("publications") or []:
        doi = normalise_doi((pub or {}).get("doi"))
        if doi:
            related.append(
                {
                    "identifier": doi,
                    "scheme": "doi",
                    "relation_type": {"id": "isdescribedby"},
                    "resource_type": {"id": "publication-article"},
                }
            )
    if related:
        md["related_identifiers"] = related
    dates = []
    for proto in rec.get("acquisition_protocols") or []:
        when = (proto or {}).get("acquisition_date")
        if when:
            dates.append(
                {
                    "date": str(when)[:10],
                    "type": {"id": "collected"},
                    "description": "image acquisition",
                }
            )
    if dates:
        md["dates"] = dates
    access: dict[str, Any] = {"record": "public", "files": "public"}
    release = study.get("release_date")
    if release and str(release)[:10] > (today or _today()):
        access = {
            "record": "public",
            "files": "restricted",
            "embargo": {
                "active": True,
                "until": str(release)[:10],
                "reason": "embargoed until the release date",
            },
        }
    return {"metadata": md, "access": access, "files": {"enabled": True}}


def award_id(funder_id: str | None, number: str | None) -> str | None:
    """The awards-vocabulary id InvenioRDM gives an award: ``<funder ROR id>::<number>``."""
    if not funder_id or not number:
        return None
    return f"{funder_id}::{number}"


def missing_required(record: Any) -> list[str]:
    """Record fields InvenioRDM needs that are empty (it rejects publishing without them)."""
    rec = as_dict(record)
    study = rec.get("study") or {}
    missing = []
    if len(str(study.get("title") or "").strip()) < 3:
        missing.append("study.title (at least 3 characters)")
    if not [
        a
        for a in study.get("authors") or []
        if isinstance(a, dict) and (a.get("family_name") or a.get("given_name"))
    ]:
        missing.append("study.authors[].family_name")
    return missing
