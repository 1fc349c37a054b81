"""Crosswalk: curated record → DSpace 7 JSON Patch operations on a workspace item.

DSpace's submission form is configured per installation: metadata lives in
*sections* whose ids (``traditionalpageone``, ``traditionalpagetwo`` by default)
may differ; pass ``sections`` to match the target (its ids are listed at
``GET /server/api/config/submissionforms``). Values are Dublin Core (``dc.*``).
"""

from __future__ import annotations

from typing import Any

from curated.metadata.crosswalk.common import (
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    person_name,
)
from curated.metadata.crosswalk.invenio import publication_date

DEFAULT_SECTIONS = ("traditionalpageone", "traditionalpagetwo")


def dublin_core(record: Any, *, today: str | None = None) -> dict[str, list[str]]:
    """The record as ``dc.*`` field → list of values (order kept)."""
    rec = as_dict(record)
    study = rec.get("study") or {}
    dc: dict[str, list[str]] = {}

    def put(key: str, *values: Any) -> None:
        vals = [str(v) for v in values if v not in (None, "")]
        if vals:
            dc.setdefault(key, []).extend(v for v in vals if v not in dc.get(key, []))

    put("dc.title", study.get("title"))
    for a in study.get("authors") or []:
        if isinstance(a, dict):
            put("dc.contributor.author", person_name(a))
    put("dc.date.issued", publication_date(study, today))
    put("dc.type", "Dataset")
    put("dc.publisher", study.get("publisher"))
    put("dc.description.abstract", study.get("description"))
    put("dc.subject", *[k for k in study.get("keywords") or [] if k])
    for sample in rec.get("biosamples") or []:
        put("dc.subject", ((sample or {}).get("organism") or {}).get("scientific_name"))
    for g in study.get("funding") or []:
        if isinstance(g, dict) and g.get("funder"):
            award = f" {g['award_id']}" if g.get("award_id") else ""
            put("dc.description.sponsorship", f"{g['funder']}{award}")
    lic = licence(study.get("license"))
    if lic:
        put("dc.rights", lic.name)
        put("dc.rights.uri", lic.url)
    elif study.get("license"):
        put("dc.rights", study["license"])
    for pub in study.get("publications") or []:
        doi = normalise_doi((pub or {}).get("doi"))
        if doi:
            put("dc.relation.isreferencedby", f"https://doi.org/{doi}")
    for r in study.get("related_identifiers") or []:
        if isinstance(r, dict) and r.get("identifier"):
            put("dc.relation.uri", r["identifier"])
    orcids = [
        normalise_orcid(a.get("orcid")) for a in study.get("authors") or [] if isinstance(a, dict)
    ]
    put("dc.identifier.orcid", *[o for o in orcids if o])
    return dc


PAGE_ONE = (
    "dc.title",
    "dc.contributor.author",
    "dc.date.issued",
    "dc.type",
    "dc.publisher",
    "dc.identifier.orcid",
)


def to_dspace_patch(
    record: Any, *, today: str | None = None, sections: tuple[str, str] = DEFAULT_SECTIONS
) -> list[dict[str, Any]]:
    """JSON Patch ``add`` operations filling the submission form's metadata sections.

    ``dc.title``, authors, issue date, type and publisher go to the first section, the
    rest (abstract, subjects, sponsorship, rights, relations) to the second, as in
    DSpace's default ``submission-forms.xml``.
    """
    ops = []
    for key, values in dublin_core(record, today=today).items():
        section = sections[0] if key in PAGE_ONE else sections[1]
        ops.append(
            {
                "op": "add",
                "path": f"/sections/{section}/{key}",
                "value": [
                    {"value": v, "language": None, "authority": None, "confidence": -1}
                    for v in values
                ],
            }
        )
    return ops


def missing_required(record: Any) -> list[str]:
    """Record fields DSpace's default form requires that are empty."""
    study = as_dict(record).get("study") or {}
    missing = []
    if not study.get("title"):
        missing.append("study.title")
    if not study.get("authors"):
        missing.append("study.authors")
    return missing
