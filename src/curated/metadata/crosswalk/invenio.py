"""Crosswalk: curated record → InvenioRDM (and Zenodo) draft JSON.

The draft body ``PUT /api/records/{id}/draft`` takes replaces the whole record, so
this builds all of it: ``metadata`` (resource type, creators, title, publication date
are required by InvenioRDM), ``access`` (public, or embargoed until ``study.release_date``)
and ``files`` (enabled).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlparse

from curated.metadata.crosswalk.common import (
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
    text_to_html,
)
from curated.metadata.view import Person, RecordView, Study, record_view

_RELATED_SCHEMES = {
    "DOI": "doi",
    "URL": "url",
    "ARK": "ark",
    "Handle": "handle",
    "PMID": "pmid",
    "arXiv": "arxiv",
    "URN": "urn",
}


# What InvenioRDM checks a related identifier against, per scheme (idutils validators.py
# and utils.py, through marshmallow-utils IdentifierSchema): one that fails makes the
# draft invalid and its publication refused. arXiv ids are left to the instance.
_DOI = re.compile(r"(doi:\s*|(?:https?://)?(?:dx\.)?doi\.org/)?(10\.\d+(\.\d+)*/.+)$", re.I)
_HANDLE = re.compile(r"(hdl:\s*|(?:https?://)?hdl\.handle\.net/)?([^/.]+(\.[^/.]+)*/.*)$", re.I)
_PMID = re.compile(r"(pmid:|https?://pubmed.ncbi.nlm.nih.gov/)?(\d+)/?$", re.I)
_ARK = re.compile(r"ark:/?[0-9bcdfghjkmnpqrstvwxz]+/.+$")


def identifier_ok(scheme: str, identifier: str) -> bool:
    """Whether InvenioRDM takes ``identifier`` as an identifier of ``scheme``."""
    value = identifier.strip()
    if scheme == "url":
        parts = urlparse(value)
        return bool(parts.scheme and parts.netloc)
    if scheme == "urn":
        parts = urlparse(value)
        return parts.scheme == "urn" and not parts.netloc and bool(parts.path)
    if scheme == "ark":
        path = urlparse(value).path[1:] if value.startswith("http") else value
        return bool(_ARK.match(path))
    pattern = {"doi": _DOI, "handle": _HANDLE, "pmid": _PMID}.get(scheme)
    return bool(pattern.match(value)) if pattern is not None else True


def _today() -> str:
    return dt.date.today().isoformat()


def publication_date(study: Study, today: str | None = None) -> str:
    """The date to publish under: the release date if set, else ``today``."""
    release = study.release_date
    return release.isoformat() if release else (today or _today())


def _creator(person: Person) -> dict[str, Any] | None:
    # A personal creator must have a family name (invenio-rdm-records
    # services/schemas/metadata.py, PersonOrOrganizationSchema): a person known by one
    # name gets it there; a person with no name at all is left out (and reported).
    family = (person.family_name or "").strip()
    given = (person.given_name or "").strip()
    if not family and not given:
        return None
    por: dict[str, Any] = {"type": "personal", "family_name": family or given}
    if family and given:
        por["given_name"] = given
    orcid = normalise_orcid(person.orcid)
    if orcid:
        por["identifiers"] = [{"scheme": "orcid", "identifier": orcid.rsplit("/", 1)[-1]}]
    out: dict[str, Any] = {"person_or_org": por}
    aff = person.affiliation
    if aff.name:
        entry: dict[str, Any] = {"name": aff.name}
        ror = normalise_ror(aff.ror)
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
    rec = record_view(as_dict(record))
    study = rec.study
    md: dict[str, Any] = {
        "resource_type": {"id": "dataset"},
        "title": study.title or "",
        "publication_date": publication_date(study, today),
        "creators": [c for p in study.authors if (c := _creator(p))],
    }
    if study.description and study.description.strip():
        # read as HTML and sanitized (invenio-rdm-records SanitizedHTML): sent as HTML
        md["description"] = text_to_html(study.description)
    if study.publisher:
        md["publisher"] = study.publisher
    subjects = [{"subject": k} for k in study.keywords if k]
    for sample in rec.biosamples:
        name = sample.organism.scientific_name
        if name and {"subject": name} not in subjects:
            subjects.append({"subject": name})
    if subjects:
        md["subjects"] = subjects
    lic = licence(study.license)
    if lic:
        md["rights"] = [{"id": lic.spdx_id.lower()}]
    elif study.license:
        md["rights"] = [{"title": {"en": study.license}}]
    for key, value in (
        ("funding", _funding(study)),
        ("related_identifiers", _related(study)),
        ("dates", _dates(rec)),
    ):
        if value:
            md[key] = value
    return {"metadata": md, "access": _access(study, today), "files": {"enabled": True}}


def _funding(study: Study) -> list[dict[str, Any]]:
    funding = []
    for g in study.funding:
        if not g.funder:
            continue
        f: dict[str, Any] = {"funder": {"name": g.funder}}
        ror = normalise_ror(g.funder_ror)
        if ror:
            f["funder"]["id"] = ror.rsplit("/", 1)[-1]
        # An award is an ``id`` from the awards vocabulary, or a ``title`` with a ``number``
        # (invenio-vocabularies contrib/awards/schema.py, AwardRelationSchema); a number
        # alone is refused, so it waits for the deposit to look it up (see award_id()).
        if g.award_id and g.award_title:
            f["award"] = {"title": {"en": g.award_title}, "number": g.award_id}
        funding.append(f)
    return funding


def _related(study: Study) -> list[dict[str, Any]]:
    related = []
    for r in study.related_identifiers:
        if r.identifier and r.relation_type:
            scheme = _RELATED_SCHEMES.get(str(r.identifier_type), "url")
            ident = normalise_doi(r.identifier) if scheme == "doi" else r.identifier
            related.append(
                {
                    "identifier": ident or r.identifier,
                    "scheme": scheme,
                    "relation_type": {"id": r.relation_type.lower()},
                }
            )
    for pub in study.publications:
        doi = normalise_doi(pub.doi)
        if doi:
            related.append(
                {
                    "identifier": doi,
                    "scheme": "doi",
                    "relation_type": {"id": "isdescribedby"},
                    "resource_type": {"id": "publication-article"},
                }
            )
    return related


def _dates(rec: RecordView) -> list[dict[str, Any]]:
    return [
        {
            "date": proto.acquisition_date.date().isoformat(),
            "type": {"id": "collected"},
            "description": "image acquisition",
        }
        for proto in rec.acquisition_protocols
        if proto.acquisition_date
    ]


def _access(study: Study, today: str | None) -> dict[str, Any]:
    """Public, or files embargoed until ``study.release_date`` when it is still ahead."""
    release = study.release_date.isoformat() if study.release_date else None
    if release and release > (today or _today()):
        return {
            "record": "public",
            "files": "restricted",
            "embargo": {
                "active": True,
                "until": release,
                "reason": "embargoed until the release date",
            },
        }
    return {"record": "public", "files": "public"}


def award_id(funder_id: str | None, number: str | None) -> str | None:
    """The awards-vocabulary id InvenioRDM gives an award: ``<funder ROR id>::<number>``."""
    if not funder_id or not number:
        return None
    return f"{funder_id}::{number}"


def missing_required(record: Any) -> list[str]:
    """Record fields InvenioRDM needs that are empty (it rejects publishing without them)."""
    study = record_view(as_dict(record)).study
    missing = []
    if len((study.title or "").strip()) < 3:
        missing.append("study.title (at least 3 characters)")
    if not [a for a in study.authors if a.family_name or a.given_name]:
        missing.append("study.authors[].family_name")
    return missing
