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
from curated.metadata.view import ImageRepresentation, Person, RecordView, Study, record_view

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
    rec = record_view(as_dict(record))
    study = rec.study
    out: dict[str, Any] = {}

    given_doi = doi or study.doi
    the_doi = normalise_doi(given_doi)
    if given_doi and the_doi is None:
        msg = f"{given_doi!r} is not a DOI (expected 10.NNNN/suffix or https://doi.org/10.NNNN/suffix)"
        raise MetadataError(msg, field="study.doi")
    if the_doi:
        out["doi"] = the_doi
    if url:
        out["url"] = url

    creators = [_creator(a) for a in study.authors if person_name(a)]
    if creators:
        out["creators"] = creators
    if study.title:
        out["titles"] = [{"title": study.title}]
    pub = publisher or study.publisher
    if pub:
        out["publisher"] = {"name": str(pub)}
    year = publication_year if publication_year is not None else study.publication_year
    if year is not None and str(year).strip():
        out["publicationYear"] = str(year).strip()
    out["types"] = {"resourceTypeGeneral": "Dataset", "resourceType": _resource_type(rec)}
    out["schemaVersion"] = SCHEMA_VERSION

    _put(out, "subjects", _subjects(rec))
    _put(out, "contributors", _contributors(study))
    _put(out, "dates", _dates(rec))
    _put(out, "relatedIdentifiers", _related(study))
    _put(out, "sizes", _sizes(rec))
    _put(out, "formats", _unique(i.image_format for i in rec.images if i.image_format))
    if version:
        out["version"] = str(version)
    _put(out, "rightsList", _rights(study.license))
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
def _put(out: dict[str, Any], key: str, value: list[Any]) -> None:
    if value:
        out[key] = value


def _unique(items: Any) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _creator(person: Person) -> dict[str, Any]:
    c: dict[str, Any] = {"name": person_name(person), "nameType": "Personal"}
    if person.given_name:
        c["givenName"] = person.given_name
    if person.family_name:
        c["familyName"] = person.family_name
    orcid = normalise_orcid(person.orcid)
    if orcid:
        c["nameIdentifiers"] = [
            {
                "nameIdentifier": orcid,
                "nameIdentifierScheme": "ORCID",
                "schemeUri": ORCID_URL.rstrip("/"),
            }
        ]
    aff = person.affiliation
    if aff.name:
        a: dict[str, Any] = {"name": aff.name}
        ror = normalise_ror(aff.ror)
        if ror:
            a.update(
                affiliationIdentifier=ror,
                affiliationIdentifierScheme="ROR",
                schemeUri=ROR_URL.rstrip("/"),
            )
        c["affiliation"] = [a]
    return c


def _contributors(study: Study) -> list[dict[str, Any]]:
    out = []
    for person in study.authors:
        if not person_name(person):
            continue
        roles = list(person.role)
        if person.contact and "ContactPerson" not in roles:
            roles.insert(0, "ContactPerson")
        for role in roles:
            if role in _CONTRIBUTOR_TYPES:
                c = _creator(person)
                c["contributorType"] = role
                out.append(c)
    return out


def _resource_type(rec: RecordView) -> str:
    method = rec.dataset.imaging_method_name
    if not method and rec.acquisition_protocols:
        method = rec.acquisition_protocols[0].imaging_method_name
    return f"{method} image data" if method else "Image data"


def _subjects(rec: RecordView) -> list[dict[str, Any]]:
    subjects: list[dict[str, Any]] = [{"subject": k} for k in rec.study.keywords if k]
    for sample in rec.biosamples:
        name = sample.organism.scientific_name
        if not name:
            continue
        s: dict[str, Any] = {
            "subject": name,
            "subjectScheme": "NCBI Taxonomy",
            "schemeUri": NCBI_TAXONOMY,
        }
        taxon = (sample.organism.ncbi_taxon_id or "").removeprefix("NCBITaxon:")
        if taxon.isdigit():
            s["valueUri"] = f"{OBO_PURL}NCBITaxon_{taxon}"
        subjects.append(s)
    for proto in rec.acquisition_protocols:
        if not proto.imaging_method_name:
            continue
        s = {
            "subject": proto.imaging_method_name,
            "subjectScheme": "FBbi",
            "schemeUri": f"{OBO_PURL}fbbi.owl",
        }
        fbbi = proto.fbbi_id or ""
        if fbbi.startswith("FBbi:"):
            s["valueUri"] = f"{OBO_PURL}FBbi_{fbbi.removeprefix('FBbi:')}"
        subjects.append(s)
    return _unique(subjects)


def _dates(rec: RecordView) -> list[dict[str, Any]]:
    dates = [
        {"date": proto.acquisition_date.date().isoformat(), "dateType": "Collected"}
        for proto in rec.acquisition_protocols
        if proto.acquisition_date
    ]
    if rec.study.release_date:
        dates.append({"date": rec.study.release_date.isoformat(), "dateType": "Available"})
    return _unique(dates)


def _related(study: Study) -> list[dict[str, Any]]:
    out = []
    for r in study.related_identifiers:
        if r.identifier and r.identifier_type and r.relation_type:
            ident = r.identifier
            if r.identifier_type == "DOI":
                ident = normalise_doi(ident) or ident
            out.append(
                {
                    "relatedIdentifier": ident,
                    "relatedIdentifierType": r.identifier_type,
                    "relationType": r.relation_type,
                }
            )
    for pub in study.publications:
        doi = normalise_doi(pub.doi)
        if doi:
            out.append(
                {
                    "relatedIdentifier": doi,
                    "relatedIdentifierType": "DOI",
                    "relationType": "IsDescribedBy",
                }
            )
    return _unique(out)


def _sizes(rec: RecordView) -> list[str]:
    images = rec.images
    sizes = []
    if images:
        sizes.append(f"{len(images)} image{'s' if len(images) != 1 else ''}")
    total = sum(i.total_size_in_bytes or 0 for i in images)
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


def _descriptions(rec: RecordView) -> list[dict[str, Any]]:
    study = rec.study
    out = []
    if study.description:
        out.append({"description": study.description, "descriptionType": "Abstract"})
    methods = _methods(rec)
    if methods:
        out.append({"description": "\n".join(methods), "descriptionType": "Methods"})
    tech = [_technical_info(img) for img in rec.images]
    if tech:
        out.append({"description": "\n".join(tech), "descriptionType": "TechnicalInfo"})
    if study.acknowledgements:
        out.append({"description": study.acknowledgements, "descriptionType": "Other"})
    return out


def _methods(rec: RecordView) -> list[str]:
    methods = [
        f"Sample preparation: {spec.sample_preparation}"
        for spec in rec.specimens
        if spec.sample_preparation
    ]
    for proto in rec.acquisition_protocols:
        bits = [proto.imaging_method_name, proto.imaging_instrument]
        text = "; ".join(b for b in bits if b)
        if proto.image_acquisition_parameters:
            params = proto.image_acquisition_parameters
            text = f"{text}. {params}" if text else params
        if text:
            methods.append(f"Image acquisition: {text}")
    methods += [
        f"Processing of {img.name or 'image'}: {img.processing}"
        for img in rec.images
        if img.processing
    ]
    return methods


def _technical_info(img: ImageRepresentation) -> str:
    dims = " × ".join(str(n) for n in (img.size_x, img.size_y, img.size_z) if n)
    vox = " × ".join(
        str(v) for v in (img.voxel_size_x, img.voxel_size_y, img.voxel_size_z) if v is not None
    )
    parts = [img.name or "image", img.image_format or ""]
    if dims:
        parts.append(f"{dims} voxels (x × y × z)")
    if vox:
        parts.append(f"voxel size {vox} {img.voxel_size_unit or ''}".rstrip())
    if img.dtype:
        parts.append(img.dtype)
    return ", ".join(p for p in parts if p)


def _funding(study: Study) -> list[dict[str, Any]]:
    out = []
    for g in study.funding:
        if not g.funder:
            continue
        f: dict[str, Any] = {"funderName": g.funder}
        ror = normalise_ror(g.funder_ror)
        if ror:
            f.update(funderIdentifier=ror, funderIdentifierType="ROR")
        if g.award_id:
            f["awardNumber"] = g.award_id
        if g.award_title:
            f["awardTitle"] = g.award_title
        out.append(f)
    return _unique(out)
