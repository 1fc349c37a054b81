"""A BioImage Archive submission: REMBI components, a file list and the OME-Zarr images.

The BioImage Archive (BIA) describes a study with REMBI: Study, Study Component,
Biosample, Specimen, Image Acquisition, and (MIFA) Annotations, each image tied
to its biosample, specimen and acquisition; a file list gives per-file
attributes. This module maps ``curated.yaml`` and the workspace's OME-Zarr
images onto those components and validates each one, offline, against the
archive's own models:

- REMBI 1.5: the JSON Schemas of BIA's ``bia-rembi-models`` 0.1.0 pydantic models
  (``data/archive/bia-rembi-1.5.schema.json``, generated from the PyPI package,
  Apache-2.0). The package itself pins pydantic < 2 and so cannot be installed
  beside curated; its schemas can.
- MIFA annotations: the JSON Schema published in ``BioImage-Archive/bia-mifa-models``
  (``project/jsonschema/bia_mifa_models.schema.json``, CC0-1.0).

The BIA's current ``bia-shared-datamodels`` is not published on PyPI; see
``data/archive/README.md``.

Layout::

    DEST/
      submission.json   REMBI components, MIFA annotations and the image associations
      submission.pagetab.json
                        the same as a BioStudies PageTab submission (sections Study, Biosample,
                        Specimen, Image acquisition, Annotations, Study Component), which the
                        BioStudies submission tool and API take (see curated.archive.pagetab)
      file_list.tsv     the study component's files (the images): Files, then the attributes
                        sha256, PRONOM, image type, annotation, source image
      file_list.json    the same rows and attribute names in BioStudies' file-list JSON shape
                        (path, size, type, attributes)
      file_list_annotations_N.tsv / .json
                        one file list per annotation (label image), with its source image: the
                        BIA asks for one file list per study component and per annotation section
      files/            the OME-Zarr images (hard links or copies), labels inside
      checklist.md      what a person must still supply
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.resources import files as resource_files
from pathlib import Path
from typing import Any

from curated._io import atomic_write_text, write_json
from curated.archive._common import (
    LINK,
    Missing,
    PackageKind,
    building,
    check_destination,
    check_mode,
    items,
    orcid_id,
    place,
    read_record,
    text,
    workspace_images,
)
from curated.archive.pagetab import pagetab_submission
from curated.curation.formats import HEAD_BYTES, identify_format
from curated.document.ngff import ImageInfo, LabelInfo
from curated.errors import InputError, MetadataError
from curated.provenance.digest import sha256_file_head
from curated.results import Result
from curated.workspace import Workspace, as_workspace, recorder

REMBI_VERSION = "1.5"
BIA_PACKAGE = PackageKind("BioImage Archive", ("submission.json", "checklist.md"))
LICENCES = {
    "CC0-1.0": {"name": "CC0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"},
    "CC-BY-4.0": {"name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
}
"""The licences the BioImage Archive publishes under (MIFA's LicenseType: CC0, CC_BY)."""

FBBI = "http://purl.obolibrary.org/obo/FBbi_"
FILE_ATTRIBUTES = ("sha256", "PRONOM", "image type", "annotation", "source image")
"""The attributes of each file-list row, named alike in the TSV and the JSON file list."""
FILE_COLUMNS = ("Files", *FILE_ATTRIBUTES)
"""File list TSV columns: ``Files`` (the path), then one column per attribute.

A BioStudies file list is an externalised Files Table (PageTab specification): each
column after ``Files`` is the name of a file attribute, so the TSV columns are the JSON
list's attribute names. The size is no attribute: BioStudies records each uploaded
file's size itself (the JSON list also gives it as ``size``).
"""


UNLISTABLE = re.compile('[\t\n\r"]')
UNLISTABLE_MSG = (
    "a file list cannot name this file: its path holds a tab, line break or double quote, "
    "which a tab-separated file list could only write quoted; rename it"
)
"""Characters a BioStudies file-list path cannot hold without quoting (tab, line breaks, ")."""


@functools.cache
def rembi_schemas() -> dict[str, Any]:
    """JSON Schemas of BIA's REMBI 1.5 models, by model name."""
    path = resource_files("curated") / "data" / "archive" / "bia-rembi-1.5.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))["models"]


@functools.cache
def mifa_schema() -> dict[str, Any]:
    """BIA's MIFA JSON Schema (``bia-mifa-models``)."""
    path = resource_files("curated") / "data" / "archive" / "bia-mifa-models.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


PERSON_FIELDS = {
    "last_name": "family_name",
    "first_name": "given_name",
    "author_last_name": "family_name",
    "author_first_name": "given_name",
    "email": "email",
    "orcid": "orcid",
    "orcid_id": "orcid",
    "affiliation": "affiliation.name",
    "organisation": "affiliation.name",
    "role": "role",
}
COMPONENT_FIELDS: dict[str, dict[str, str]] = {
    "study": {
        "title": "title",
        "description": "description",
        "keywords": "keywords",
        "license": "license",
        "private_until_date": "release_date",
        "publications": "publications",
        "links": "related_identifiers",
        "funding": "funding",
        "acknowledgements": "acknowledgements",
    },
    "study_component": {"name": "name", "description": "description"},
    "biosamples": {
        "organism": "organism",
        "biological_entity": "biological_entity",
        "description": "description",
        "intrinsic_variables": "intrinsic_variables",
        "extrinsic_variables": "extrinsic_variables",
        "experimental_variables": "experimental_variables",
    },
    "specimens": {"sample_preparation": "sample_preparation", "growth_protocol": "growth_protocol"},
    "image_acquisitions": {
        "imaging_method": "imaging_method_name",
        "imaging_instrument": "imaging_instrument",
        "image_acquisition_parameters": "image_acquisition_parameters",
    },
    "annotations": {
        "annotation_overview": "annotation_overview",
        "annotation_method": "annotation_method",
        "annotation_criteria": "annotation_criteria",
        "annotation_coverage": "annotation_coverage",
        "annotation_confidence_level": "annotation_confidence_level",
        "file_metadata": "annotation_type",
    },
}
"""Submission keys and the ``curated.yaml`` fields they are written from, by component group."""
RECORD_LISTS = {
    "biosamples": "biosamples",
    "specimens": "specimens",
    "image_acquisitions": "acquisition_protocols",
}


def _field(where: str, parts: list[str], annotation_fields: dict[str, str]) -> str:
    """The ``curated.yaml`` field a submission path (component ``where``, then ``parts``) came from."""
    group, _, key = where.partition("/")
    if parts[:1] == ["authors"] and len(parts) > 1:
        sub = PERSON_FIELDS.get(parts[2]) if len(parts) > 2 else None
        return f"study.authors[{parts[1]}]" + (f".{sub}" if sub else "")
    if group == "annotations":
        base = annotation_fields.get(key, key)
    elif group in RECORD_LISTS:
        base = f"{RECORD_LISTS[group]}[{int(key.rsplit('-', 1)[-1]) - 1}]"
    else:
        base = "dataset" if group == "study_component" else group
    sub = COMPONENT_FIELDS.get(group, {}).get(parts[0]) if parts else None
    return f"{base}.{sub}" if sub else base


def _validate(
    instance: Any, schema: dict[str, Any], where: str, annotation_fields: dict[str, str]
) -> list[dict[str, str]]:
    from jsonschema import Draft7Validator

    validator = Draft7Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        parts = [str(p) for p in err.absolute_path]
        out.append(
            {
                "where": "/".join([where, *parts]),
                "field": _field(where, parts, annotation_fields),
                "problem": str(err.message)[:200],
            }
        )
    return out


def submission_problems(
    submission: dict[str, Any], annotation_fields: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """Each place a submission breaks the BIA's REMBI / MIFA schemas: path, curated.yaml field, problem.

    ``annotation_fields`` names the ``annotations[i]`` entry each annotation key was written from.
    """
    fields = annotation_fields or {}
    models = rembi_schemas()
    problems = _validate(submission.get("study"), models["Study"], "study", fields)
    problems += _validate(
        submission.get("study_component"), models["StudyComponent"], "study_component", fields
    )
    for group, model in (
        ("biosamples", "Biosample"),
        ("specimens", "Specimen"),
        ("image_acquisitions", "ImageAcquisition"),
    ):
        for key, value in (submission.get(group) or {}).items():
            problems += _validate(value, models[model], f"{group}/{key}", fields)
    mifa = mifa_schema()
    annotations = {"$defs": mifa["$defs"], "$ref": "#/$defs/Annotations"}
    for key, value in (submission.get("annotations") or {}).items():
        problems += _validate(value, annotations, f"annotations/{key}", fields)
    return problems


def validate_submission(submission: dict[str, Any]) -> list[str]:
    """Problems of a submission under the BIA's REMBI and MIFA schemas (``[]`` when valid)."""
    return [f"{p['where']}: {p['problem']}" for p in submission_problems(submission)]


def _refuse_if_invalid(
    submission: dict[str, Any], annotation_fields: dict[str, str], metadata_path: Path
) -> None:
    """Refuse a submission the archive's schemas reject, naming the curated.yaml field of each problem."""
    problems = submission_problems(submission, annotation_fields)
    if not problems:
        return
    listed = "; ".join(f"{p['field']} ({p['where']}): {p['problem']}" for p in problems)
    n = len(problems)
    msg = (
        f"the BioImage Archive submission does not validate against the archive's REMBI/MIFA "
        f"schemas ({n} problem{'s' if n != 1 else ''}): {listed} "
        "(correct them with `curated metadata set`)"
    )
    raise MetadataError(msg, path=metadata_path, details={"schema_errors": problems})


@dataclass
class BiaPlan:
    """What :func:`plan_bia` worked out: the components, the images and the checklist."""

    submission: dict[str, Any]
    images: list[ImageInfo]
    checklist: list[str]


def _person(p: dict[str, Any], i: int, missing: Missing) -> dict[str, Any]:
    aff = p.get("affiliation") if isinstance(p.get("affiliation"), dict) else {}
    for key, value in (
        ("family_name", p.get("family_name")),
        ("given_name", p.get("given_name")),
        ("affiliation.name", aff.get("name")),
    ):
        if not text(value):
            missing.need(
                f"study.authors[{i}].{key}", "REMBI needs every author's name and affiliation"
            )
    ror = text(aff.get("ror"))
    org: dict[str, Any] = {"name": text(aff.get("name"))}
    if ror:
        org["url"] = ror if ror.startswith("http") else f"https://ror.org/{ror}"
    elif aff.get("country"):
        org["address"] = text(aff.get("country"))
    out: dict[str, Any] = {
        "last_name": text(p.get("family_name")),
        "first_name": text(p.get("given_name")),
        "affiliation": org,
    }
    if p.get("email"):
        out["email"] = text(p["email"])
    if orcid_id(p.get("orcid")):
        out["orcid"] = orcid_id(p.get("orcid"))
    if p.get("role"):
        out["role"] = ", ".join(str(r) for r in p["role"])
    return out


def _study(record: dict[str, Any], missing: Missing, checklist: list[str]) -> dict[str, Any]:
    study = record.get("study") or {}
    for key, why in (
        ("title", "REMBI's study title"),
        ("description", "REMBI's study description"),
    ):
        if not text(study.get(key)):
            missing.need(f"study.{key}", why)
    if text(study.get("description")) and len(text(study.get("description"))) < 25:
        missing.need("study.description", "the BioImage Archive asks for at least 25 characters")
    keywords = [text(k) for k in study.get("keywords") or [] if text(k)]
    if not keywords:
        missing.need("study.keywords", "REMBI needs at least one keyword")
    licence = text(study.get("license"))
    if licence not in LICENCES:
        missing.need(
            "study.license",
            f"the BioImage Archive publishes under CC0-1.0 or CC-BY-4.0, not {licence or 'nothing'}",
        )
    people = items(study, "authors")
    if not people:
        missing.need("study.authors", "REMBI needs at least one author")
    release = text(study.get("release_date"))
    try:
        private_until = date.fromisoformat(release[:10]).isoformat() if release else None
    except ValueError:
        missing.need("study.release_date", f"not a date (YYYY-MM-DD): {release!r}")
        private_until = None
    if private_until is None:
        private_until = datetime.now(UTC).date().isoformat()
        checklist.append(
            f"private_until_date is {private_until} (public as soon as the BIA releases it) because "
            "study.release_date is not set; set it to keep the study private until a date."
        )
    out: dict[str, Any] = {
        "title": text(study.get("title")),
        "description": text(study.get("description")),
        "private_until_date": private_until,
        "keywords": keywords,
        "authors": [_person(p, i, missing) for i, p in enumerate(people)],
        "rembi_version": REMBI_VERSION,
    }
    if licence in LICENCES:
        out["license"] = dict(LICENCES[licence])
    grants = [g for g in items(study, "funding") if text(g.get("funder"))]
    if grants:
        refs = [
            {"identifier": text(g.get("award_id")), "funder": text(g.get("funder"))}
            for g in grants
            if text(g.get("award_id"))
        ]
        out["funding"] = {
            "funding_statement": "Funded by "
            + "; ".join(
                text(g.get("funder"))
                + (f" ({text(g.get('award_id'))})" if g.get("award_id") else "")
                for g in grants
            )
            + ".",
            "grant_references": refs,
        }
    pubs = [
        {
            k: v
            for k, v in {
                "title": text(p.get("title")),
                "authors": text(p.get("authors")) or None,
                "doi": text(p.get("doi")) or None,
                "year": str(p["year"]) if p.get("year") else None,
            }.items()
            if v
        }
        for p in items(study, "publications")
        if text(p.get("title"))
    ]
    if pubs:
        out["publications"] = pubs
    links = [
        {
            k: v
            for k, v in {
                "link_url": link_url(text(r.get("identifier")), text(r.get("identifier_type"))),
                "link_type": text(r.get("relation_type")) or None,
                "link_description": text(r.get("description")) or None,
            }.items()
            if v
        }
        for r in items(study, "related_identifiers")
        if text(r.get("identifier"))
    ]
    if links:
        out["links"] = links
    if text(study.get("acknowledgements")):
        out["acknowledgements"] = text(study["acknowledgements"])
    return out


RESOLVERS = {
    "doi": "https://doi.org/",
    "pmid": "https://pubmed.ncbi.nlm.nih.gov/",
    "arxiv": "https://arxiv.org/abs/",
    "handle": "https://hdl.handle.net/",
}
"""Resolvers that turn a DataCite related identifier of these types into a link."""


def link_url(identifier: str, kind: str) -> str:
    """A related identifier as a resolvable URL (a bare DOI is no link a reader can follow)."""
    if identifier.lower().startswith(("http://", "https://")):
        return identifier
    resolver = RESOLVERS.get(kind.lower())
    if resolver is None:
        return identifier
    return resolver + identifier.removeprefix("doi:").removeprefix("DOI:")


def _biosamples(record: dict[str, Any], missing: Missing) -> dict[str, dict[str, Any]]:
    out = {}
    samples = items(record, "biosamples")
    if not samples:
        missing.need(
            "biosamples", "REMBI needs at least one biosample (organism, biological entity)"
        )
    for i, b in enumerate(samples):
        org = b.get("organism") if isinstance(b.get("organism"), dict) else {}
        for key, value in (
            ("organism.scientific_name", org.get("scientific_name")),
            ("organism.ncbi_taxon_id", org.get("ncbi_taxon_id")),
            ("biological_entity", b.get("biological_entity")),
        ):
            if not text(value):
                missing.need(f"biosamples[{i}].{key}", "REMBI's biosample needs it")
        organism = {
            "scientific_name": text(org.get("scientific_name")),
            "ncbi_taxon": text(org.get("ncbi_taxon_id")),
        }
        if org.get("common_name"):
            organism["common_name"] = text(org["common_name"])
        entry: dict[str, Any] = {
            "organism": organism,
            "biological_entity": text(b.get("biological_entity")),
        }
        if b.get("description"):
            entry["description"] = text(b["description"])
        for key in ("intrinsic_variables", "extrinsic_variables", "experimental_variables"):
            if b.get(key):
                entry[key] = [text(v) for v in b[key]]
        out[f"biosample-{i + 1}"] = entry
    return out


def _specimens(record: dict[str, Any], missing: Missing) -> dict[str, dict[str, Any]]:
    out = {}
    specimens = items(record, "specimens")
    if not specimens:
        missing.need("specimens", "REMBI needs at least one specimen (its sample preparation)")
    for i, s in enumerate(specimens):
        if not text(s.get("sample_preparation")):
            missing.need(f"specimens[{i}].sample_preparation", "REMBI's specimen needs it")
        entry = {"sample_preparation": text(s.get("sample_preparation"))}
        if s.get("growth_protocol"):
            entry["growth_protocol"] = text(s["growth_protocol"])
        out[f"specimen-{i + 1}"] = entry
    return out


def _fibsem_text(fib: dict[str, Any]) -> str:
    labels = {
        "sem_accelerating_voltage_kv": ("SEM accelerating voltage", "kV"),
        "sem_beam_current_na": ("SEM beam current", "nA"),
        "fib_accelerating_voltage_kv": ("FIB accelerating voltage", "kV"),
        "fib_beam_current_na": ("FIB beam current", "nA"),
        "dwell_time_us": ("dwell time", "µs"),
        "milling_step_nm": ("milling step", "nm"),
        "working_distance_mm": ("working distance", "mm"),
    }
    parts = [
        f"{label} {fib[k]} {unit}" for k, (label, unit) in labels.items() if fib.get(k) is not None
    ]
    if fib.get("detector"):
        parts.append("detector " + ", ".join(str(d) for d in fib["detector"]))
    if fib.get("sample_preparation_type"):
        parts.append(f"sample preparation {fib['sample_preparation_type']}")
    if fib.get("contrast_inverted") is not None:
        parts.append("contrast inverted" if fib["contrast_inverted"] else "contrast not inverted")
    return "; ".join(parts)


def _acquisitions(record: dict[str, Any], missing: Missing) -> dict[str, dict[str, Any]]:
    out = {}
    protocols = items(record, "acquisition_protocols")
    if not protocols:
        missing.need("acquisition_protocols", "REMBI needs at least one image acquisition protocol")
    for i, p in enumerate(protocols):
        fbbi = text(p.get("fbbi_id"))
        name = text(p.get("imaging_method_name"))
        if not name:
            missing.need(
                f"acquisition_protocols[{i}].imaging_method_name", "REMBI's imaging method"
            )
        if not fbbi:
            missing.need(f"acquisition_protocols[{i}].fbbi_id", "the imaging method's FBbi term")
        instrument = "; ".join(
            x
            for x in (
                text(p.get("imaging_instrument")),
                " ".join(
                    x
                    for x in (
                        text(p.get("instrument_manufacturer")),
                        text(p.get("instrument_model")),
                    )
                    if x
                ),
                text(p.get("detector_description")),
            )
            if x
        )
        if not instrument:
            missing.need(
                f"acquisition_protocols[{i}].imaging_instrument", "REMBI's imaging instrument"
            )
        fib = p.get("fibsem") if isinstance(p.get("fibsem"), dict) else {}
        params = "; ".join(
            x.rstrip(".")
            for x in (text(p.get("image_acquisition_parameters")), _fibsem_text(fib))
            if x
        )
        if not params:
            missing.need(
                f"acquisition_protocols[{i}].image_acquisition_parameters",
                "REMBI's image acquisition parameters",
            )
        out[f"acquisition-{i + 1}"] = {
            "imaging_method": {
                "value": name,
                "ontology_name": "Biological Imaging Methods Ontology (FBbi)",
                "ontology_id": FBBI + fbbi.split(":", 1)[-1] if fbbi else "",
            },
            "imaging_instrument": instrument,
            "image_acquisition_parameters": params,
        }
    return out


def _annotation(
    info: ImageInfo,
    label: LabelInfo,
    record: dict[str, Any],
    authors: list[dict[str, Any]],
    missing: Missing,
    checklist: list[str],
    annotation_fields: dict[str, str],
) -> dict[str, Any]:
    """MIFA Annotations for one label image: from ``annotations[]``, else from what the label records.

    ``annotation_fields`` learns which ``curated.yaml`` entry the annotation was written from.
    """
    index, given = next(
        (
            (i, a)
            for i, a in enumerate(items(record, "annotations"))
            if text(a.get("name")) == label.name
            and text(a.get("source_image")) in ("", info.name, info.path.name)
        ),
        (None, None),
    )
    types = ["segmentation_mask"]
    key = f"{info.path.name}/labels/{label.name}"
    annotation_fields[key] = f"annotations[{index}]" if given is not None else f"derived/{key}"
    if given is not None:
        overview = text(given.get("annotation_overview"))
        method = text(given.get("annotation_method"))
        types = [str(t) for t in given.get("annotation_type") or []] or types
        extra = {
            k: text(given.get(k))
            for k in ("annotation_criteria", "annotation_coverage", "annotation_confidence_level")
            if text(given.get(k))
        }
        if not method:
            missing.need(
                f"annotations[{index}].annotation_method",
                "MIFA needs how the annotations were made",
            )
    elif label.kind == "prediction" and label.model:
        overview = f"AI-generated segmentation of {info.name} by model {label.model.get('id')}"
        method = (
            f"Predicted by the 3D U-Net {label.model.get('id')} (weights sha256 "
            f"{str(label.model.get('sha256'))[:12]}...; model card {label.model.get('card')}); "
            "not corrected by a person"
        )
        extra = {}
        checklist.append(
            f"Annotation {info.name}/{label.name}: overview and method were written from the label's "
            "recorded model; add an annotations[] entry in curated.yaml to replace them."
        )
    elif label.kind == "annotation":
        overview = f"Sparse manual annotations of {info.name} (unannotated voxels: {sorted(label.unannotated)})"
        method = "Annotated crops recorded by `curated annotate`; the crops, their source and offsets are in the label's curated attributes"
        extra = {}
        checklist.append(
            f"Annotation {info.name}/{label.name}: overview and method were written from the label's "
            "recorded crops; say who annotated them and with which tool in annotations[]."
        )
    else:
        missing.need(
            "annotations[]",
            f"add an entry named {label.name!r} saying how that {label.kind or 'label'} image was made "
            "(annotation_overview, annotation_type, annotation_method, ai_generated)",
        )
        overview = method = ""
        extra = {}
    out: dict[str, Any] = {
        "annotation_overview": overview
        or f"{label.kind or 'label'} image {label.name} of {info.name}",
        "annotation_method": method,
        **extra,
        "file_metadata": [
            {
                "annotation_id": f"{info.path.name}/labels/{label.name}",
                "source_image_id": info.path.name,
                "annotation_type": types,
            }
        ],
    }
    if authors:
        out["authors"] = authors
    return out


def _mifa_authors(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in items(record.get("study") or {}, "authors"):
        if not (text(p.get("given_name")) and text(p.get("family_name"))):
            continue
        a: dict[str, Any] = {
            "author_first_name": text(p["given_name"]),
            "author_last_name": text(p["family_name"]),
        }
        if p.get("email"):
            a["email"] = text(p["email"])
        if orcid_id(p.get("orcid")):
            a["orcid_id"] = orcid_id(p.get("orcid"))
        aff = p.get("affiliation") if isinstance(p.get("affiliation"), dict) else {}
        if aff.get("name"):
            a["organisation"] = [{"organisation_name": text(aff["name"])}]
        out.append(a)
    return out


def plan_bia(workspace: Workspace | str | Path) -> BiaPlan:
    """Map a workspace onto a BIA submission, refusing when required fields are missing.

    Raises
    ------
    MetadataError
        Naming every missing field at once (field path first), or every place where a
        component breaks the archive's REMBI / MIFA schemas.
    """
    ws = as_workspace(workspace)
    assert ws is not None
    record = read_record(ws, "the BioImage Archive")
    missing = Missing("the BioImage Archive")
    checklist: list[str] = []
    study = _study(record, missing, checklist)
    dataset = record.get("dataset") or {}
    for key in ("name", "description"):
        if not text(dataset.get(key)):
            missing.need(f"dataset.{key}", "REMBI's study component needs it")
    component = {
        "name": text(dataset.get("name")),
        "description": text(dataset.get("description")),
        "rembi_version": REMBI_VERSION,
    }
    biosamples = _biosamples(record, missing)
    specimens = _specimens(record, missing)
    acquisitions = _acquisitions(record, missing)
    images = [i for i in workspace_images(ws.root)]
    if not images:
        missing.need("derived/", "no OME-Zarr image to submit: convert one with `curated convert`")
    for info in images:
        if info.problem:
            missing.need(
                ws.relative(info.path), f"the OME-Zarr image cannot be read ({info.problem})"
            )
    authors = _mifa_authors(record)
    annotation_fields: dict[str, str] = {}
    annotations = {
        f"{info.path.name}/labels/{label.name}": _annotation(
            info, label, record, authors, missing, checklist, annotation_fields
        )
        for info in images
        for label in info.labels
    }
    missing.raise_if_any(ws.metadata_path)
    for group, keys in (
        ("biosample", biosamples),
        ("specimen", specimens),
        ("acquisition", acquisitions),
    ):
        if len(keys) > 1:
            checklist.append(
                f"curated.yaml has {len(keys)} {group}s; each image is associated with the first: "
                "correct the associations in submission.json and submission.pagetab.json where that is wrong."
            )
    submission = {
        "format": "curated-bia-submission/1",
        "rembi_version": REMBI_VERSION,
        "study": study,
        "study_component": component,
        "biosamples": biosamples,
        "specimens": specimens,
        "image_acquisitions": acquisitions,
        "annotations": annotations,
        "associations": [
            {
                "image": f"files/{info.path.name}",
                "biosample": next(iter(biosamples)),
                "specimen": next(iter(specimens)),
                "image_acquisition": next(iter(acquisitions)),
                "annotations": [f"{info.path.name}/labels/{lab.name}" for lab in info.labels],
            }
            for info in images
        ],
        "file_lists": file_list_names(annotations),
    }
    _refuse_if_invalid(submission, annotation_fields, ws.metadata_path)
    checklist[:0] = [
        "A BioStudies / BioImage Archive account; upload the contents of files/ and the file lists "
        "(file_list.json and each file_list_annotations_N.json) to your BIA user space (FTP or "
        "Aspera), then submit submission.pagetab.json (BioStudies PageTab; its File List "
        "attributes name those lists, whose paths are relative to files/).",
        "Each OME-Zarr store is many files; if the archive asks for one file per image, zip each "
        "store uncompressed (`curated bag --zarr archive` makes such zips). Single files over 2 TB are refused.",
    ]
    return BiaPlan(submission, images, checklist)


def file_list_names(annotations: dict[str, Any]) -> dict[str, Any]:
    """The file lists' names: one for the study component, one per annotation (by its key)."""
    return {
        "study_component": {"tsv": "file_list.tsv", "json": "file_list.json"},
        "annotations": {
            key: {
                "tsv": f"file_list_annotations_{n}.tsv",
                "json": f"file_list_annotations_{n}.json",
            }
            for n, key in enumerate(annotations, start=1)
        },
    }


class _FileList:
    """Writes one TSV and JSON file list row by row (memory bounded by one row)."""

    def __init__(self, folder: Path, names: dict[str, str]) -> None:
        self.tsv = open(folder / names["tsv"], "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.json = open(folder / names["json"], "w", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.tsv, delimiter="\t", lineterminator="\n")
        self.writer.writerow(FILE_COLUMNS)
        self.json.write("[")
        self.rows = 0
        self.bytes = 0

    def add(
        self,
        rel: str,
        size: int,
        sha256: str,
        puid: str | None,
        kind: str,
        annotation: str,
        source: str,
    ) -> None:
        values = (sha256, puid or "", kind, annotation, source)
        self.writer.writerow([rel, *values])
        attrs = [{"name": n, "value": v} for n, v in zip(FILE_ATTRIBUTES, values, strict=True)]
        row = {
            "path": rel,
            "size": size,
            "type": "file",
            "attributes": [a for a in attrs if a["value"]],
        }
        self.json.write(("," if self.rows else "") + "\n  " + json.dumps(row, ensure_ascii=False))
        self.rows += 1
        self.bytes += size

    def close(self) -> None:
        self.json.write("\n]\n")
        self.tsv.close()
        self.json.close()


class _FileLists:
    """The study component's file list and one per annotation, with at most two of them open.

    A label's files are walked one after the other (depth first), so its list is
    opened at its first row and finished when the walk moves on: a workspace with
    hundreds of labels does not hold two open files per label.
    """

    def __init__(self, folder: Path, names: dict[str, Any]) -> None:
        self.folder = folder
        self.names: dict[str, dict[str, str]] = names["annotations"]
        self.images = _FileList(folder, names["study_component"])
        self.current: tuple[str, _FileList] | None = None
        self.done: set[str] = set()
        self.rows = self.bytes = 0

    def for_key(self, key: str) -> _FileList:
        """The list a row of annotation ``key`` goes to (the images' list for any other key)."""
        if key not in self.names:
            return self.images
        if self.current is not None and self.current[0] == key:
            return self.current[1]
        self._finish()
        if key in self.done:
            raise RuntimeError(f"files of {key} were not walked together")  # walk order changed
        self.current = (key, _FileList(self.folder, self.names[key]))
        return self.current[1]

    def _finish(self) -> None:
        if self.current is not None:
            key, listing = self.current
            listing.close()
            self.done.add(key)
            self.rows += listing.rows
            self.bytes += listing.bytes
            self.current = None

    def close(self) -> None:
        """Finish every list (one with no rows is written with its header only)."""
        self._finish()
        for key in self.names:
            if key not in self.done:
                self.for_key(key)
                self._finish()
        self.images.close()
        self.rows += self.images.rows
        self.bytes += self.images.bytes


def source_image_path(info: ImageInfo) -> str:
    """The file-list path that stands for an OME-Zarr image: its root metadata file.

    BIA's ingest links an annotation to its source image by looking the file list's
    ``source image`` value up among the listed paths, so the value must be one of them
    (the store's folder name is not a listed file).
    """
    root = next((n for n in ("zarr.json", ".zattrs", ".zgroup") if (info.path / n).is_file()), "")
    return f"{info.path.name}/{root}" if root else info.path.name


def _row_kind(rel_in_store: str, info: ImageInfo, source_path: str) -> tuple[str, str, str]:
    """(image type, linked annotation, source image) of a file inside an OME-Zarr store."""
    parts = rel_in_store.split("/")
    metadata = parts[-1] in ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")
    if len(parts) >= 2 and parts[0] == "labels":
        if len(parts) == 2:
            return "label group metadata", "", source_path
        kind = "label image metadata" if metadata else "label image"
        return kind, parts[1], source_path
    linked = ";".join(lab.name for lab in info.labels)
    return ("image metadata" if metadata else "image"), linked, ""


def export_bia(
    workspace: Workspace | str | Path,
    dest: str | Path,
    *,
    files: str = LINK,
    overwrite: bool = False,
) -> Result:
    """Write a BioImage Archive submission to ``dest`` (a logged ``D`` step).

    Parameters
    ----------
    workspace
        The dataset's workspace.
    dest
        A new folder (refused if it holds anything, unless ``overwrite``).
    files
        ``link`` (hard links, copies where refused) or ``copy`` for the OME-Zarr files.

    Raises
    ------
    MetadataError
        When required fields are missing (all named at once) or a component breaks the
        archive's schemas; nothing is written then.
    """
    ws = as_workspace(workspace)
    assert ws is not None
    dest = Path(dest)
    check_mode(files)
    plan = plan_bia(ws)
    sources = [info.path for info in plan.images]
    replace = check_destination(
        dest, [ws.metadata_path, *sources], overwrite=overwrite, kind=BIA_PACKAGE, ws=ws
    )
    params = {"dest": ws.relative(dest), "files": files}
    with recorder(
        ws,
        "D",
        "export-bia",
        inputs=[ws.metadata_path, *sources],
        params=params,
        libraries=("jsonschema",),
    ) as step:
        with building(dest, BIA_PACKAGE, overwrite=replace) as partial:
            lists = _FileLists(partial, plan.submission["file_lists"])
            try:
                for info in plan.images:
                    target = partial / "files" / info.path.name
                    source_path = source_image_path(info)
                    for placed, rel in place(info.path, target, mode=files):
                        digest, head, size = sha256_file_head(placed, HEAD_BYTES)
                        puid = identify_format(placed, head=head).puid
                        kind, annotation, source = _row_kind(rel, info, source_path)
                        into = lists.for_key(f"{info.path.name}/labels/{annotation}")
                        path = f"{info.path.name}/{rel}"
                        if UNLISTABLE.search(path):
                            raise InputError(
                                UNLISTABLE_MSG, path=info.path / rel if rel else info.path
                            )
                        into.add(path, size, digest, puid, kind, annotation, source)
            finally:
                lists.close()
            write_json(partial / "submission.json", plan.submission)
            write_json(partial / "submission.pagetab.json", pagetab_submission(plan.submission))
            atomic_write_text(partial / "checklist.md", render_checklist(plan))
        step.add_output(dest)
        rows, nbytes = lists.rows, lists.bytes
        step.details = {"images": len(plan.images), "files": rows, "bytes": nbytes}
        step.message = (
            f"{len(plan.images)} image(s), {len(plan.submission['annotations'])} annotation set(s), "
            f"{rows} files listed"
        )
    return Result(
        "export-bia",
        "ok",
        str(dest),
        step.message,
        {
            "submission": str(dest / "submission.json"),
            "pagetab": str(dest / "submission.pagetab.json"),
            "file_list": str(dest / "file_list.tsv"),
            "checklist": plan.checklist,
            "files": rows,
            "bytes": nbytes,
        },
    )


def render_checklist(plan: BiaPlan) -> str:
    """The checklist as Markdown."""
    lines = ["# BioImage Archive submission: what a person must still supply", ""]
    lines += [f"- [ ] {item}" for item in plan.checklist]
    return "\n".join(lines) + "\n"


def read_file_list(path: str | Path) -> list[dict[str, str]]:
    """The rows of a ``file_list.tsv`` as dicts (for tests and tools)."""
    text_ = Path(path).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text_), delimiter="\t"))
