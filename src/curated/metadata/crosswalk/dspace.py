"""Crosswalk: curated record → DSpace 7 JSON Patch operations on a workspace item.

DSpace's submission form is configured per installation: metadata lives in
*sections* whose ids (``traditionalpageone``, ``traditionalpagetwo`` by default)
may differ; pass ``sections`` to match the target (its ids are listed at
``GET /server/api/config/submissionforms``). Values are Dublin Core (``dc.*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curated.metadata.crosswalk.common import (
    as_dict,
    licence,
    normalise_doi,
    normalise_orcid,
    person_name,
)
from curated.metadata.crosswalk.invenio import publication_date
from curated.metadata.view import record_view

DEFAULT_SECTIONS = ("traditionalpageone", "traditionalpagetwo")


def dublin_core(record: Any, *, today: str | None = None) -> dict[str, list[str]]:
    """The record as ``dc.*`` field → list of values (order kept)."""
    rec = record_view(as_dict(record))
    study = rec.study
    dc: dict[str, list[str]] = {}

    def put(key: str, *values: Any) -> None:
        vals = [str(v) for v in values if v not in (None, "")]
        if vals:
            dc.setdefault(key, []).extend(v for v in vals if v not in dc.get(key, []))

    put("dc.title", study.title)
    for a in study.authors:
        put("dc.contributor.author", person_name(a))
    put("dc.date.issued", publication_date(study, today))
    put("dc.type", "Dataset")
    put("dc.publisher", study.publisher)
    put("dc.description.abstract", study.description)
    put("dc.subject", *[k for k in study.keywords if k])
    for sample in rec.biosamples:
        put("dc.subject", sample.organism.scientific_name)
    for g in study.funding:
        if g.funder:
            award = f" {g.award_id}" if g.award_id else ""
            put("dc.description.sponsorship", f"{g.funder}{award}")
    lic = licence(study.license)
    if lic:
        put("dc.rights", lic.name)
        put("dc.rights.uri", lic.url)
    elif study.license:
        put("dc.rights", study.license)
    for pub in study.publications:
        doi = normalise_doi(pub.doi)
        if doi:
            put("dc.relation.isreferencedby", f"https://doi.org/{doi}")
    for r in study.related_identifiers:
        if r.identifier:
            put("dc.relation.uri", r.identifier)
    orcids = [normalise_orcid(a.orcid) for a in study.authors]
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
    study = record_view(as_dict(record)).study
    missing = []
    if not study.title:
        missing.append("study.title")
    if not study.authors:
        missing.append("study.authors")
    return missing


@dataclass(frozen=True)
class FormField:
    """One metadata field a submission form offers."""

    key: str
    """``dc.title``; a field with several selectable keys (``qualdrop_value``) gives one each."""
    mandatory: bool = False
    repeatable: bool = True
    label: str = ""
    type_bind: tuple[str, ...] = ()
    """The ``dc.type`` values the field is for (``typeBind``); empty: every item.

    DSpace removes, without a word, the values of a field bound to other types than the
    item's, and requires a mandatory one only of the types it is bound to
    (``MetadataValidator``, ``DCInput.isAllowedFor``)."""

    def allowed_for(self, item_type: str | None) -> bool:
        return not self.type_bind or (item_type is not None and item_type in self.type_bind)


@dataclass
class SubmissionForm:
    """What a collection's submission definition accepts, section by section.

    DSpace refuses a JSON Patch that names a field outside the section's form (422)
    and refuses the whole PATCH for it, so every operation is checked against this
    before it is sent (``RestContract/workspaceitem-data-metadata.md``).
    """

    name: str
    sections: dict[str, dict[str, FormField]] = field(default_factory=dict)
    """Section id (``traditionalpageone``) → metadata key → field, for ``submission-form`` sections."""
    license_section: str | None = "license"
    upload_section: str | None = "upload"
    source: str = "DSpace's default submission-forms.xml"
    """Where the form came from: the repository, or the documented default when it could not be read."""

    def section_for(self, key: str) -> str | None:
        for sid, fields in self.sections.items():
            if key in fields:
                return sid
        return None

    def mandatory(self, item_type: str | None = None) -> list[tuple[str, FormField]]:
        """The fields an item of ``item_type`` (its ``dc.type``) must fill."""
        return [
            (sid, f)
            for sid, fields in self.sections.items()
            for f in fields.values()
            if f.mandatory and f.allowed_for(item_type)
        ]


def _fields(*specs: tuple[str, bool, bool, str]) -> dict[str, FormField]:
    return {k: FormField(k, m, r, label) for k, m, r, label in specs}


DEFAULT_FORM = SubmissionForm(
    "traditional",
    {
        # DSpace/DSpace dspace/config/submission-forms.xml, <form name="traditionalpageone">
        "traditionalpageone": _fields(
            ("dc.contributor.author", False, True, "Author"),
            ("dc.title", True, False, "Title"),
            ("dc.title.alternative", False, True, "Other Titles"),
            ("dc.date.issued", True, False, "Date of Issue"),
            ("dc.publisher", False, False, "Publisher"),
            ("dc.identifier.citation", False, False, "Citation"),
            ("dc.relation.ispartofseries", False, True, "Series/Report No."),
            ("dc.identifier.issn", False, True, "Identifiers"),
            ("dc.identifier.other", False, True, "Identifiers"),
            ("dc.identifier.ismn", False, True, "Identifiers"),
            ("dc.identifier.govdoc", False, True, "Identifiers"),
            ("dc.identifier.uri", False, True, "Identifiers"),
            ("dc.identifier.isbn", False, True, "Identifiers"),
            ("dc.type", False, True, "Type"),
            ("dc.language.iso", False, False, "Language"),
        ),
        # ... <form name="traditionalpagetwo">
        "traditionalpagetwo": _fields(
            ("dc.subject", False, True, "Subject Keywords"),
            ("dc.description.abstract", False, False, "Abstract"),
            ("dc.description.sponsorship", False, False, "Sponsors"),
            ("dc.description", False, False, "Description"),
        ),
    },
)
"""The ``traditional`` definition DSpace ships (used offline, and when a repository's form cannot be read)."""


def fit_to_form(
    ops: list[dict[str, Any]], form: SubmissionForm
) -> tuple[list[dict[str, Any]], list[str]]:
    """Route each ``add`` operation to the section whose form has its field.

    Returns the operations DSpace will accept and the ``dc.*`` keys the form has no
    field for (reported as not carried over, never sent: one unknown field would make
    DSpace refuse the whole PATCH). A non-repeatable field keeps its first value, the
    others are joined into it with ``; `` so that nothing is silently lost.
    """
    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    item_type = item_type_of(ops, form)
    for op in ops:
        key = op["path"].rstrip("/").rsplit("/", 1)[-1]
        section = form.section_for(key)
        if section is None:
            dropped.append(key)
            continue
        bound = form.sections[section][key]
        if not bound.allowed_for(item_type):
            dropped.append(f"{key} (only for {' and '.join(bound.type_bind)} items)")
            continue
        values = list(op.get("value") or [])
        if not form.sections[section][key].repeatable and len(values) > 1:
            joined = "; ".join(str(v.get("value")) for v in values)
            values = [{**values[0], "value": joined}]
        kept.append({**op, "path": f"/sections/{section}/{key}", "value": values})
    return kept, dropped


def item_type_of(ops: list[dict[str, Any]], form: SubmissionForm) -> str | None:
    """The ``dc.type`` the operations give the item, when its form has the field."""
    if form.section_for("dc.type") is None:
        return None
    for op in ops:
        if op["path"].rstrip("/").rsplit("/", 1)[-1] == "dc.type":
            values = op.get("value") or []
            if values and isinstance(values[0], dict):
                return str(values[0].get("value"))
    return None


def missing_from_form(ops: list[dict[str, Any]], form: SubmissionForm) -> list[str]:
    """Mandatory form fields the operations leave empty (DSpace refuses to submit without them)."""
    sent = {op["path"].rstrip("/").rsplit("/", 1)[-1] for op in ops}
    item_type = item_type_of(ops, form)
    return [
        f"{f.key} ({f.label or sid})" for sid, f in form.mandatory(item_type) if f.key not in sent
    ]
