"""curated record → DataCite Metadata Schema 4.5, in the JSON shape of the DataCite REST API.

The output is the ``attributes`` object DataCite's REST API takes (and that the
``datacite`` package's ``schema45`` validator checks): top-level ``doi`` (never
``identifiers``), ``publisher`` as an object, ``schemaVersion`` set to the kernel-4
namespace. The field-by-field mapping is in ``docs/datacite-mapping.md``.

Nothing is invented. When a mandatory DataCite property has no source in the
record (and was not passed as an argument), :func:`to_datacite` raises
:class:`~curated.errors.MetadataError` whose ``details["missing"]`` lists the
curated field paths to fill and whose ``details["partial"]`` holds everything
that could be mapped; ``strict=False`` returns that partial dict instead.
"""

from __future__ import annotations

from typing import Any

from curated.errors import MetadataError
from curated.metadata.crosswalk.common import (
    ORCID_URL,
    ROR_URL,
    SPDX_LIST_URL,
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
    person_name,
    spdx_id,
)

SCHEMA_VERSION = "http://datacite.org/schema/kernel-4"
"""Value of ``schemaVersion`` (the kernel-4 namespace; the JSON validators pin the minor version)."""

DATACITE_VERSION = "4.5"
"""The newest DataCite schema the installed ``datacite`` package validates (``datacite.schema45``)."""

NCBI_TAXONOMY = "https://www.ncbi.nlm.nih.gov/taxonomy"
OBO_PURL = "http://purl.obolibrary.org/obo/"

MANDATORY_SOURCES: dict[str, str] = {
    "creators": "study.authors",
    "titles": "study.title",
    "publisher": "study.publisher",
    "publicationYear": "study.publication_year",
}
"""DataCite's mandatory properties (other than the DOI, which deposit assigns) and the curated field each comes from."""

_CONTRIBUTOR_TYPES = {
    "ContactPerson",
    "DataCollector",
    "DataCurator",
    "DataManager",
    "ProjectLeader",
    "Researcher",
    "Supervisor",
    "Other",
}


def to_datacite(
    record: Any,
    *,
    doi: str | None = None,
    publisher: str | None = None,
    publication_year: int | str | None = None,
    version: str | None = None,
    url: str | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Map a curated record to DataCite 4.5 JSON (REST API ``attributes`` shape).

    Parameters
    ----------
    record
        A ``curated.yaml`` dict or a :class:`curated.metadata.model.CuratedRecord`.
    doi, publisher, publication_year
        Override (or supply) ``study.doi``, ``study.publisher`` and
        ``study.publication_year``; deposit knows them when the record does not.
    version
        The dataset's version string, if it has one.
    url
        The landing page, once deposit knows it.
    strict
        Raise :class:`MetadataError` when a mandatory property has no source
        (default). With ``False`` the partial mapping is returned as is.

    Returns
    -------
    dict
        DataCite JSON; valid against ``datacite.schema45`` when nothing was missing.

    Raises
    ------
    MetadataError
        With ``details["missing"]`` (curated field paths) and ``details["partial"]``.

    Examples
    --------
    >>> rec = {"study": {"title": "Mitochondria in HeLa", "authors": [{"family_name": "Doe"}],
    ...                  "publisher": "Zenodo", "publication_year": 2026}}
    >>> to_datacite(rec)["titles"]
    [{'title': 'Mitochondria in HeLa'}]
    """
    rec = as_dict(record)
    study = rec.get("study") if isinstance(rec.get("study"), dict) else {}
    out: dict[str, Any] = {}

    the_doi = normalise_doi(doi or study.get("doi"))
    if (doi or study.get("doi")) and the_doi is None:
        msg = f"{doi or study.get('doi')!r} is not a DOI (expected 10.NNNN/suffix or https://doi.org/10.NNNN/suffix)"
        raise MetadataError(msg, field="study.doi")
    if the_doi:
        out["doi"] = the_doi
    if url:
        out["url"] = url

    creators = [
        _creator(a) for a in _dicts(study.get("authors")) if isinstance(a, dict) and person_name(a)
    ]
    if creators:
        out["creators"] = creators
    if study.get("title"):
        out["titles"] = [{"title": str(study["title"])}]
    pub = publisher or study.get("publisher")
    if pub:
        out["publisher"] = {"name": str(pub)}
    year = publication_year if publication_year is not None else study.get("publication_year")
    if year is not None and str(year).strip():
        out["publicationYear"] = str(year).strip()
    out["types"] = {"resourceTypeGeneral": "Dataset", "resourceType": _resource_type(rec)}
    out["schemaVersion"] = SCHEMA_VERSION

    _put(out, "subjects", _subjects(rec))
    _put(out, "contributors", _contributors(study))
    _put(out, "dates", _dates(rec))
    _put(out, "relatedIdentifiers", _related(study))
    _put(out, "sizes", _sizes(rec))
    _put(
        out,
        "formats",
        _unique(str(i["image_format"]) for i in _dicts(rec.get("images")) if i.get("image_format")),
    )
    if version:
        out["version"] = str(version)
    _put(out, "rightsList", _rights(study.get("license")))
    _put(out, "descriptions", _descriptions(rec))
    _put(out, "fundingReferences", _funding(study))

    missing = missing_mandatory(out)
    if missing and strict:
        msg = (
            "DataCite needs " + ", ".join(missing) + "; fill them with "
            "`curated metadata set WORKSPACE FIELD VALUE` (or pass them to to_datacite)"
        )
        raise MetadataError(msg, field=missing[0], details={"missing": missing, "partial": out})
    return out


def missing_mandatory(datacite: dict[str, Any]) -> list[str]:
    """The curated field paths whose absence left a mandatory DataCite property empty."""
    return [src for prop, src in MANDATORY_SOURCES.items() if not datacite.get(prop)]


def validate_datacite(datacite: dict[str, Any]) -> list[str]:
    """Check DataCite JSON against the 4.5 JSON Schema of the ``datacite`` package.

    Returns one message per problem (empty when valid). Needs the ``datacite``
    package (a development dependency); raises :class:`MetadataError` without it.
    """
    try:
        from datacite import schema45
    except ImportError:  # pragma: no cover - exercised only without the dev extra
        msg = "validating DataCite JSON needs the `datacite` package: pip install datacite"
        raise MetadataError(msg) from None
    errors = sorted(schema45.validator.iter_errors(datacite), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


# ------------------------------------------------------------------ parts
def _dicts(value: Any) -> list[dict[str, Any]]:
    """The mapping entries of a list from the record (a malformed entry is skipped, never a crash)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _put(out: dict[str, Any], key: str, value: list[Any]) -> None:
    if value:
        out[key] = value


def _unique(items: Any) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _creator(person: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": person_name(person), "nameType": "Personal"}
    if person.get("given_name"):
        c["givenName"] = str(person["given_name"])
    if person.get("family_name"):
        c["familyName"] = str(person["family_name"])
    orcid = normalise_orcid(person.get("orcid"))
    if orcid:
        c["nameIdentifiers"] = [
            {
                "nameIdentifier": orcid,
                "nameIdentifierScheme": "ORCID",
                "schemeUri": ORCID_URL.rstrip("/"),
            }
        ]
    aff = person.get("affiliation") or {}
    if isinstance(aff, dict) and aff.get("name"):
        a: dict[str, Any] = {"name": str(aff["name"])}
        ror = normalise_ror(aff.get("ror"))
        if ror:
            a.update(
                affiliationIdentifier=ror,
                affiliationIdentifierScheme="ROR",
                schemeUri=ROR_URL.rstrip("/"),
            )
        c["affiliation"] = [a]
    return c


def _contributors(study: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for person in _dicts(study.get("authors")):
        if not isinstance(person, dict) or not person_name(person):
            continue
        roles = [str(r) for r in person.get("role") or []]
        if person.get("contact") and "ContactPerson" not in roles:
            roles.insert(0, "ContactPerson")
        for role in roles:
            if role in _CONTRIBUTOR_TYPES:
                c = _creator(person)
                c["contributorType"] = role
                out.append(c)
    return out


def _resource_type(rec: dict[str, Any]) -> str:
    method = (rec.get("dataset") or {}).get("imaging_method_name")
    if not method:
        protocols = _dicts(rec.get("acquisition_protocols"))
        method = (
            protocols[0].get("imaging_method_name")
            if protocols and isinstance(protocols[0], dict)
            else None
        )
    return f"{method} image data" if method else "Image data"


def _subjects(rec: dict[str, Any]) -> list[dict[str, Any]]:
    study = rec.get("study") if isinstance(rec.get("study"), dict) else {}
    keywords = study.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [keywords]
    subjects: list[dict[str, Any]] = [{"subject": str(k)} for k in keywords if k]
    for sample in _dicts(rec.get("biosamples")):
        org = sample.get("organism") if isinstance(sample.get("organism"), dict) else {}
        name = org.get("scientific_name")
        if not name:
            continue
        s: dict[str, Any] = {
            "subject": str(name),
            "subjectScheme": "NCBI Taxonomy",
            "schemeUri": NCBI_TAXONOMY,
        }
        taxon = str(org.get("ncbi_taxon_id") or "").removeprefix("NCBITaxon:")
        if taxon.isdigit():
            s["valueUri"] = f"{OBO_PURL}NCBITaxon_{taxon}"
        subjects.append(s)
    for proto in _dicts(rec.get("acquisition_protocols")):
        name = (proto or {}).get("imaging_method_name")
        if not name:
            continue
        s = {"subject": str(name), "subjectScheme": "FBbi", "schemeUri": f"{OBO_PURL}fbbi.owl"}
        fbbi = str(proto.get("fbbi_id") or "")
        if fbbi.startswith("FBbi:"):
            s["valueUri"] = f"{OBO_PURL}FBbi_{fbbi.removeprefix('FBbi:')}"
        subjects.append(s)
    return _unique(subjects)


def _dates(rec: dict[str, Any]) -> list[dict[str, Any]]:
    dates = []
    for proto in _dicts(rec.get("acquisition_protocols")):
        when = (proto or {}).get("acquisition_date")
        if when:
            dates.append({"date": str(when)[:10], "dateType": "Collected"})
    release = (rec.get("study") if isinstance(rec.get("study"), dict) else {}).get("release_date")
    if release:
        dates.append({"date": str(release)[:10], "dateType": "Available"})
    return _unique(dates)


def _related(study: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in _dicts(study.get("related_identifiers")):
        if (
            isinstance(r, dict)
            and r.get("identifier")
            and r.get("identifier_type")
            and r.get("relation_type")
        ):
            ident = str(r["identifier"])
            if r["identifier_type"] == "DOI":
                ident = normalise_doi(ident) or ident
            out.append(
                {
                    "relatedIdentifier": ident,
                    "relatedIdentifierType": str(r["identifier_type"]),
                    "relationType": str(r["relation_type"]),
                }
            )
    for pub in _dicts(study.get("publications")):
        doi = normalise_doi((pub or {}).get("doi"))
        if doi:
            out.append(
                {
                    "relatedIdentifier": doi,
                    "relatedIdentifierType": "DOI",
                    "relationType": "IsDescribedBy",
                }
            )
    return _unique(out)


def _sizes(rec: dict[str, Any]) -> list[str]:
    images = [i for i in _dicts(rec.get("images")) if isinstance(i, dict)]
    sizes = []
    if images:
        sizes.append(f"{len(images)} image{'s' if len(images) != 1 else ''}")
    total = sum(
        int(i["total_size_in_bytes"])
        for i in images
        if isinstance(i.get("total_size_in_bytes"), int)
    )
    if total:
        sizes.append(f"{total} bytes")
    return sizes


def _rights(spdx: str | None) -> list[dict[str, Any]]:
    if not spdx:
        return []
    lic = licence(spdx)
    if lic is None:
        proper = spdx_id(spdx)
        if proper is None:
            return [{"rights": str(spdx)}]
        return [
            {
                "rights": proper,
                "rightsUri": f"{SPDX_LIST_URL}{proper}.html",
                "rightsIdentifier": proper,
                "rightsIdentifierScheme": "SPDX",
                "schemeUri": SPDX_LIST_URL,
            }
        ]
    return [
        {
            "rights": lic.name,
            "rightsUri": lic.url,
            "rightsIdentifier": lic.spdx_id,
            "rightsIdentifierScheme": "SPDX",
            "schemeUri": SPDX_LIST_URL,
        }
    ]


def _descriptions(rec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    study = rec.get("study") if isinstance(rec.get("study"), dict) else {}
    if study.get("description"):
        out.append({"description": str(study["description"]), "descriptionType": "Abstract"})
    methods = []
    for spec in _dicts(rec.get("specimens")):
        if (spec or {}).get("sample_preparation"):
            methods.append(f"Sample preparation: {spec['sample_preparation']}")
    for proto in _dicts(rec.get("acquisition_protocols")):
        proto = proto or {}
        bits = [proto.get("imaging_method_name"), proto.get("imaging_instrument")]
        text = "; ".join(str(b) for b in bits if b)
        if proto.get("image_acquisition_parameters"):
            text = (
                f"{text}. {proto['image_acquisition_parameters']}"
                if text
                else str(proto["image_acquisition_parameters"])
            )
        if text:
            methods.append(f"Image acquisition: {text}")
    for img in _dicts(rec.get("images")):
        if (img or {}).get("processing"):
            methods.append(f"Processing of {img.get('name', 'image')}: {img['processing']}")
    if methods:
        out.append({"description": "\n".join(methods), "descriptionType": "Methods"})
    tech = []
    for img in _dicts(rec.get("images")):
        img = img or {}
        dims = " × ".join(str(img[k]) for k in ("size_x", "size_y", "size_z") if img.get(k))
        vox = " × ".join(
            str(img[k])
            for k in ("voxel_size_x", "voxel_size_y", "voxel_size_z")
            if img.get(k) is not None
        )
        parts = [str(img.get("name") or "image"), str(img.get("image_format") or "")]
        if dims:
            parts.append(f"{dims} voxels (x × y × z)")
        if vox:
            parts.append(f"voxel size {vox} {img.get('voxel_size_unit') or ''}".rstrip())
        if img.get("dtype"):
            parts.append(str(img["dtype"]))
        tech.append(", ".join(p for p in parts if p))
    if tech:
        out.append({"description": "\n".join(tech), "descriptionType": "TechnicalInfo"})
    if study.get("acknowledgements"):
        out.append({"description": str(study["acknowledgements"]), "descriptionType": "Other"})
    return out


def _funding(study: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for g in _dicts(study.get("funding")):
        if not isinstance(g, dict) or not g.get("funder"):
            continue
        f: dict[str, Any] = {"funderName": str(g["funder"])}
        ror = normalise_ror(g.get("funder_ror"))
        if ror:
            f.update(funderIdentifier=ror, funderIdentifierType="ROR")
        if g.get("award_id"):
            f["awardNumber"] = str(g["award_id"])
        if g.get("award_title"):
            f["awardTitle"] = str(g["award_title"])
        out.append(f)
    return _unique(out)
