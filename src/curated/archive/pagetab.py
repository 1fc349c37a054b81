"""The BioImage Archive submission as BioStudies PageTab JSON (``submission.pagetab.json``).

BioStudies takes a study as a PageTab document: a ``submission`` with its
attributes and one root ``Study`` section whose subsections are the REMBI
components. This module writes the components that :mod:`curated.archive.bia`
validated against the BIA's REMBI / MIFA models in that shape, with the section
types and attribute names the BIA's ingest (``bia-ingest``,
``biostudies/common/study.py`` and ``biostudies/v4/*.py``) reads:

- ``Study``: ``Description``, ``License``, ``Keywords``, ``Acknowledgements``,
  ``Funding statement``; subsections ``author`` (``Name``, ``E-mail``, ``ORCID``,
  ``Role``, and ``affiliation``: a reference attribute, ``"reference": true``, whose value
  is an ``organization`` section's accno, as BioStudies' JSON reader and the BIA's own
  PageTab files write it),
  ``organization`` (``Name``, ``RORID``, ``Address``), ``Publication`` (``Title``,
  ``Authors``, ``DOI``, ``Year``), ``Funding`` (``Agency``, ``grant_id``) and links
  (``url`` with ``Type`` and ``Description``);
- ``Biosample`` (``Title``, ``Biological entity``, ``Description``, the variables,
  and an ``Organism`` subsection: ``Scientific name``, ``Common name``, ``NCBI taxon ID``),
  ``Specimen`` (``Title``, ``Sample preparation protocol``, ``Growth protocol``),
  ``Image acquisition`` (``Title``, ``Imaging instrument``, ``Image acquisition
  parameters``, an ``Imaging method`` subsection: ``Ontology Value``, ``Ontology Term ID``);
- ``Annotations``, one per label image (``Title``, ``Annotation overview``,
  ``Annotation method``, ``Annotation criteria``, ``Annotation coverage``,
  ``Annotation confidence level``, ``Annotation Type``, ``File List``);
- ``Study Component`` (``Name``, ``Description``, ``File List``) with an
  ``Associations`` subsection naming its ``Biosample``, ``Specimen`` and
  ``Image acquisition`` by their ``Title``.

A new submission has no accession: BioStudies assigns one (``S-BIAD…``).
"""

from __future__ import annotations

from typing import Any

ATTACH_TO = "BioImages"
"""The BioStudies collection of the BioImage Archive (the submission's ``AttachTo``)."""


def _attrs(*pairs: tuple[str, Any]) -> list[dict[str, Any]]:
    """PageTab attributes from ``(name, value)`` pairs, leaving out empty values."""
    return [{"name": n, "value": str(v)} for n, v in pairs if v not in (None, "", [])]


def _section(kind: str, accno: str | None, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind}
    if accno:
        out["accno"] = accno
    out["attributes"] = attributes
    return out


def _people(study: dict[str, Any]) -> list[dict[str, Any]]:
    """``author`` sections, each referring to its ``organization`` section by accno."""
    orgs: dict[tuple[str, str, str], str] = {}
    authors = []
    for person in study.get("authors") or []:
        aff = person.get("affiliation") or {}
        key = (str(aff.get("name") or ""), str(aff.get("url") or ""), str(aff.get("address") or ""))
        accno = orgs.setdefault(key, f"o{len(orgs) + 1}")
        name = f"{person.get('first_name', '')} {person.get('last_name', '')}".strip()
        attributes = _attrs(
            ("Name", name),
            ("E-mail", person.get("email")),
            ("ORCID", person.get("orcid")),
            ("Role", person.get("role")),
        )
        attributes.append({"name": "affiliation", "value": accno, "reference": True})
        authors.append(_section("author", None, attributes))
    organisations = [
        _section("organization", accno, _attrs(("Name", n), ("RORID", u), ("Address", a)))
        for (n, u, a), accno in orgs.items()
    ]
    return authors + organisations


def _study_extras(study: dict[str, Any]) -> list[dict[str, Any]]:
    """``Publication`` and ``Funding`` sections of the study."""
    out = [
        _section(
            "Publication",
            None,
            _attrs(
                ("Title", p.get("title")),
                ("Authors", p.get("authors")),
                ("DOI", p.get("doi")),
                ("Year", p.get("year")),
            ),
        )
        for p in study.get("publications") or []
    ]
    for grant in (study.get("funding") or {}).get("grant_references") or []:
        attributes = _attrs(("Agency", grant.get("funder")), ("grant_id", grant.get("identifier")))
        out.append(_section("Funding", None, attributes))
    return out


def _unique_titles(components: dict[str, dict[str, Any]], base: str) -> dict[str, str]:
    """A distinct ``Title`` per component (the Associations name components by title)."""
    titles: dict[str, str] = {}
    for n, (key, value) in enumerate(components.items(), start=1):
        title = str(value.get(base) or key)[:200] if base else key
        titles[key] = title if title not in titles.values() else f"{title} ({n})"
    return titles


def _components(
    submission: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Biosample, Specimen and Image acquisition sections, and their titles by key."""
    samples = submission.get("biosamples") or {}
    specimens = submission.get("specimens") or {}
    acquisitions = submission.get("image_acquisitions") or {}
    titles = {
        "biosamples": _unique_titles(samples, "biological_entity"),
        "specimens": {k: f"Specimen {n}" for n, k in enumerate(specimens, start=1)},
        "image_acquisitions": _unique_titles(
            {
                k: {"m": (v.get("imaging_method") or {}).get("value")}
                for k, v in acquisitions.items()
            },
            "m",
        ),
    }
    out = []
    for n, (key, b) in enumerate(samples.items(), start=1):
        org = b.get("organism") or {}
        section = _section(
            "Biosample",
            f"Biosample-{n}",
            _attrs(
                ("Title", titles["biosamples"][key]),
                ("Biological entity", b.get("biological_entity")),
                ("Description", b.get("description")),
                *(("Intrinsic variable", v) for v in b.get("intrinsic_variables") or []),
                *(("Extrinsic variable", v) for v in b.get("extrinsic_variables") or []),
                *(("Experimental variable", v) for v in b.get("experimental_variables") or []),
            ),
        )
        organism = _attrs(
            ("Scientific name", org.get("scientific_name")),
            ("Common name", org.get("common_name")),
            ("NCBI taxon ID", org.get("ncbi_taxon")),
        )
        section["subsections"] = [_section("Organism", f"Organism-{n}", organism)]
        out.append(section)
    for n, (key, s) in enumerate(specimens.items(), start=1):
        attributes = _attrs(
            ("Title", titles["specimens"][key]),
            ("Sample preparation protocol", s.get("sample_preparation")),
            ("Growth protocol", s.get("growth_protocol")),
        )
        out.append(_section("Specimen", f"Specimen-{n}", attributes))
    for n, (key, a) in enumerate(acquisitions.items(), start=1):
        method = a.get("imaging_method") or {}
        section = _section(
            "Image acquisition",
            f"Image acquisition-{n}",
            _attrs(
                ("Title", titles["image_acquisitions"][key]),
                ("Imaging instrument", a.get("imaging_instrument")),
                ("Image acquisition parameters", a.get("image_acquisition_parameters")),
            ),
        )
        term = _attrs(
            ("Ontology Value", method.get("value")),
            ("Ontology Term ID", method.get("ontology_id")),
        )
        section["subsections"] = [_section("Imaging method", f"Imaging method-{n}", term)]
        out.append(section)
    return out, titles


def _annotations(submission: dict[str, Any]) -> list[dict[str, Any]]:
    lists = (submission.get("file_lists") or {}).get("annotations") or {}
    out = []
    for n, (key, a) in enumerate((submission.get("annotations") or {}).items(), start=1):
        types = sorted(
            {t for f in a.get("file_metadata") or [] for t in f.get("annotation_type") or []}
        )
        attributes = _attrs(
            ("Title", key),
            ("Annotation overview", a.get("annotation_overview")),
            ("Annotation method", a.get("annotation_method")),
            ("Annotation criteria", a.get("annotation_criteria")),
            ("Annotation coverage", a.get("annotation_coverage")),
            ("Annotation confidence level", a.get("annotation_confidence_level")),
            ("Annotation Type", ", ".join(types)),
            ("File List", (lists.get(key) or {}).get("json")),
        )
        out.append(_section("Annotations", f"Annotations-{n}", attributes))
    return out


def pagetab_submission(submission: dict[str, Any]) -> dict[str, Any]:
    """The PageTab JSON of a BIA submission planned by :func:`curated.archive.bia.plan_bia`."""
    study = submission.get("study") or {}
    component = submission.get("study_component") or {}
    lists = submission.get("file_lists") or {}
    licence = (study.get("license") or {}).get("name")
    root = _section(
        "Study",
        None,
        _attrs(
            ("Description", study.get("description")),
            ("License", licence),
            *(("Keywords", k) for k in study.get("keywords") or []),
            ("Acknowledgements", study.get("acknowledgements")),
            ("Funding statement", (study.get("funding") or {}).get("funding_statement")),
        ),
    )
    links = [
        {
            "url": link["link_url"],
            "attributes": _attrs(
                ("Type", link.get("link_type")), ("Description", link.get("link_description"))
            ),
        }
        for link in study.get("links") or []
    ]
    if links:
        root["links"] = links
    sections, titles = _components(submission)
    associations = []
    seen: set[tuple[str, str, str]] = set()
    for a in submission.get("associations") or []:
        triple = (
            titles["biosamples"].get(a.get("biosample"), ""),
            titles["specimens"].get(a.get("specimen"), ""),
            titles["image_acquisitions"].get(a.get("image_acquisition"), ""),
        )
        if triple not in seen:
            seen.add(triple)
            names = ("Biosample", "Specimen", "Image acquisition")
            associations.append(
                _section("Associations", None, _attrs(*zip(names, triple, strict=True)))
            )
    study_component = _section(
        "Study Component",
        "Study Component-1",
        _attrs(
            ("Name", component.get("name")),
            ("Description", component.get("description")),
            ("File List", (lists.get("study_component") or {}).get("json")),
        ),
    )
    study_component["subsections"] = associations
    root["subsections"] = [
        *_people(study),
        *_study_extras(study),
        *sections,
        *_annotations(submission),
        study_component,
    ]
    return {
        "type": "submission",
        "attributes": _attrs(
            ("Title", study.get("title")),
            ("ReleaseDate", study.get("private_until_date")),
            ("AttachTo", ATTACH_TO),
        ),
        "section": root,
    }


__all__ = ["ATTACH_TO", "pagetab_submission"]
