"""Validate a metadata record: errors with field paths, graded warnings, completeness per REMBI module.

Three layers, each naming the field and the rule it broke:

1. **Structure and types** (pydantic, from the generated model): unknown fields,
   wrong types, values outside an enum or range, missing ``required`` slots.
2. **Identifiers**, offline: ORCID checksum, ROR checksum, DOI syntax, SPDX licence
   id, NCBI taxon id and FBbi id syntax (:mod:`curated.metadata.identifiers`).
3. **Recommendations**: a missing ``recommended: true`` slot is a warning whose
   level (``info`` < ``warning`` < ``alert``) comes from the slot's
   ``warning_level`` annotation in the schema; never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from curated._io import written_numbers
from curated.errors import MetadataError
from curated.metadata import identifiers as ids
from curated.metadata import model
from curated.metadata.io import load_record_dict
from curated.metadata.paths import Part, format_path, model_of, suggest
from curated.results import Result

SEVERITIES: tuple[str, ...] = ("info", "warning", "alert", "error")
"""Issue levels, least to most severe (after bioimageio.spec's graded warnings)."""

REMBI_MODULES: dict[str, tuple[str, ...]] = {
    "study": ("study",),
    "dataset": ("dataset",),
    "biosample": ("biosamples",),
    "specimen": ("specimens",),
    "acquisition": ("acquisition_protocols",),
    "image_data": ("images",),
    "correlation": ("image_correlations",),
    "annotation": ("annotations", "analyses"),
}
"""REMBI module -> the top-level record slots that hold it."""

SCHEMA_VERSION: str = model.version
"""The schema version this build of curated writes and expects (``schema_version``)."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a record."""

    field: str
    """Field path, e.g. ``study.authors[1].orcid`` (``""`` for the record as a whole)."""
    message: str
    """What is wrong and, where it helps, what to write instead."""
    rule: str
    """The rule broken: ``required``, ``unknown-field``, ``type``, ``enum``, ``range``,
    ``pattern``, ``orcid``, ``ror``, ``doi``, ``spdx``, ``ncbi-taxon``, ``fbbi``,
    ``unique``, ``recommended``, ..."""
    severity: str = "error"
    """``error``, ``alert``, ``warning`` or ``info``."""

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message} (rule: {self.rule})"

    def to_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "message": self.message,
            "rule": self.rule,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class ModuleCompleteness:
    """How much of one REMBI module's required and recommended slots is filled."""

    module: str
    filled: int
    expected: int
    present: bool
    """Whether the record has this module at all."""

    @property
    def fraction(self) -> float:
        return self.filled / self.expected if self.expected else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "filled": self.filled,
            "expected": self.expected,
            "present": self.present,
            "fraction": round(self.fraction, 4),
        }


@dataclass
class ValidationReport:
    """What :func:`validate_record` found."""

    path: str | None = None
    """The file validated, when it came from one."""
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    """Graded (``alert``/``warning``/``info``); they never make a record invalid."""
    completeness: dict[str, ModuleCompleteness] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def missing_required(self) -> list[Issue]:
        return [e for e in self.errors if e.rule == "required"]

    @property
    def structurally_valid(self) -> bool:
        """No errors other than missing required fields (what a fresh skeleton satisfies)."""
        return all(e.rule == "required" for e in self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "valid": self.valid,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "completeness": {k: v.to_dict() for k, v in self.completeness.items()},
        }

    def to_result(self) -> Result:
        """The report as a result record (``ok``, or ``error`` when invalid)."""
        n_err, n_warn = len(self.errors), len(self.warnings)
        if self.valid:
            message = f"valid, {n_warn} warning(s)"
        else:
            message = f"{n_err} error(s), {n_warn} warning(s); first: {self.errors[0]}"
        return Result(
            "validate", "ok" if self.valid else "error", self.path, message, self.to_dict()
        )


# ------------------------------------------------------------------ schema facts
def _linkml_meta(cls: type[BaseModel], name: str) -> Mapping[str, Any]:
    extra = cls.model_fields[name].json_schema_extra
    if isinstance(extra, dict):
        meta = extra.get("linkml_meta")
        if isinstance(meta, dict):
            return meta
    return {}


def is_recommended(cls: type[BaseModel], name: str) -> bool:
    """Whether the schema marks ``cls.name`` ``recommended: true``."""
    return bool(_linkml_meta(cls, name).get("recommended"))


def warning_level(cls: type[BaseModel], name: str) -> str:
    """The level a missing recommended slot is reported at (schema annotation ``warning_level``)."""
    ann = _linkml_meta(cls, name).get("annotations") or {}
    level = (
        ann.get("warning_level", {}).get("value")
        if isinstance(ann.get("warning_level"), dict)
        else None
    )
    return level if level in SEVERITIES[:-1] else "warning"


def expected_fields(cls: type[BaseModel]) -> list[str]:
    """The slots of ``cls`` that count for completeness: required and recommended ones."""
    return [n for n, f in cls.model_fields.items() if f.is_required() or is_recommended(cls, n)]


def _filled(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def walk(
    cls: type[BaseModel], data: Any, path: tuple[Part, ...] = ()
) -> Iterator[tuple[type[BaseModel], dict[str, Any], tuple[Part, ...]]]:
    """Yield ``(class, mapping, path)`` for every object in ``data`` shaped like ``cls`` (recursively).

    Values of the wrong shape are skipped (pydantic reports them).
    """
    if not isinstance(data, dict):
        return
    yield cls, data, path
    for name, info in cls.model_fields.items():
        sub = model_of(info.annotation)
        value = data.get(name)
        if sub is None or value is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from walk(sub, item, (*path, name, i))
        else:
            yield from walk(sub, value, (*path, name))


# ------------------------------------------------------------------ the layers
def _class_at(loc: tuple[Part, ...]) -> type[BaseModel] | None:
    cls: type[BaseModel] | None = model.CuratedRecord
    for p in loc:
        if cls is None:
            return None
        if isinstance(p, int):
            continue
        info = cls.model_fields.get(p)
        if info is None:
            return None
        cls = model_of(info.annotation)
    return cls


def _pydantic_issues(
    exc: ValidationError, written: Mapping[tuple[Part, ...], str] | None = None
) -> list[Issue]:
    """Pydantic's errors as issues; ``written``: the text of numbers as the file wrote them."""
    out: list[Issue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        path = format_path(loc)
        kind = err["type"]
        got = err.get("input")
        if kind == "missing":
            owner = _class_at(loc[:-1])
            desc = (
                owner.model_fields[str(loc[-1])].description
                if owner and loc and loc[-1] in owner.model_fields
                else None
            )
            out.append(
                Issue(
                    path, "required field is missing" + (f" ({desc})" if desc else ""), "required"
                )
            )
        elif kind == "extra_forbidden":
            owner = _class_at(loc[:-1])
            allowed = list(owner.model_fields) if owner else []
            hint = suggest(str(loc[-1]), allowed) or (
                f"; {owner.__name__} allows: {', '.join(allowed)}" if owner else ""
            )
            out.append(Issue(path, f"unknown field{hint}", "unknown-field"))
        elif kind == "enum":
            out.append(Issue(path, f"{err['msg']}, not {got!r}", "enum"))
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            out.append(Issue(path, f"{err['msg']}, not {got!r}", "range"))
        elif kind == "value_error":
            out.append(Issue(path, f"{got!r} does not match the required pattern", "pattern"))
        else:
            hint = ""
            if kind == "string_type" and isinstance(got, int | float) and not isinstance(got, bool):
                text = (written or {}).get(loc, str(got))
                hint = f"; write it in quotes ('{text}') so YAML reads it as text"
            out.append(
                Issue(path, f"{err['msg']}, not {got!r} ({type(got).__name__}){hint}", "type")
            )
    return out


IdentifierCheck = Callable[[Any], "str | None"]
IDENTIFIER_CHECKS: dict[tuple[str, str], tuple[str, IdentifierCheck]] = {
    ("Person", "orcid"): ("orcid", ids.check_orcid),
    ("Organisation", "ror"): ("ror", ids.check_ror),
    ("Grant", "funder_ror"): ("ror", ids.check_ror),
    ("Study", "doi"): ("doi", ids.check_doi),
    ("Publication", "doi"): ("doi", ids.check_doi),
    ("Study", "license"): ("spdx", ids.check_spdx),
    ("Taxon", "ncbi_taxon_id"): ("ncbi-taxon", ids.check_ncbi_taxon),
    ("ImageAcquisitionProtocol", "fbbi_id"): ("fbbi", ids.check_fbbi),
}
"""(class, slot) -> (rule name, check) for the identifiers checked offline."""


def _identifier_issues(data: dict[str, Any]) -> tuple[list[Issue], list[Issue]]:
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for cls, obj, path in walk(model.CuratedRecord, data):
        for name, value in obj.items():
            spec = IDENTIFIER_CHECKS.get((cls.__name__, name))
            if spec is None or not isinstance(value, (str, int)) or isinstance(value, bool):
                continue
            rule, check = spec
            problem = check(value)
            where = format_path((*path, name))
            if problem:
                errors.append(Issue(where, problem, rule))
            elif rule == "spdx" and ids.spdx_deprecated(str(value)):
                warnings.append(
                    Issue(
                        where,
                        f"SPDX has deprecated the licence id {value}; use its current id",
                        rule,
                        "warning",
                    )
                )
        if (
            cls is model.RelatedIdentifier
            and obj.get("identifier_type") == "DOI"
            and isinstance(obj.get("identifier"), str)
        ):
            problem = ids.check_doi(obj["identifier"])
            if problem:
                errors.append(Issue(format_path((*path, "identifier")), problem, "doi"))
    return errors, warnings


def _recommendation_issues(data: dict[str, Any]) -> list[Issue]:
    out: list[Issue] = []
    for cls, obj, path in walk(model.CuratedRecord, data):
        for name in cls.model_fields:
            if is_recommended(cls, name) and not _filled(obj.get(name)):
                desc = cls.model_fields[name].description
                msg = "recommended field is missing" + (f" ({desc})" if desc else "")
                out.append(
                    Issue(format_path((*path, name)), msg, "recommended", warning_level(cls, name))
                )
    return out


def _consistency_issues(data: dict[str, Any]) -> tuple[list[Issue], list[Issue]]:
    errors: list[Issue] = []
    warnings: list[Issue] = []
    version = data.get("schema_version")
    if isinstance(version, str) and version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        errors.append(
            Issue(
                "schema_version",
                f"record follows schema {version}; this curated reads {SCHEMA_VERSION}",
                "schema-version",
            )
        )
    study = data.get("study")
    if (
        isinstance(study, dict)
        and isinstance(study.get("description"), str)
        and 0 < len(study["description"].strip()) < 25
    ):
        warnings.append(
            Issue(
                "study.description",
                "shorter than 25 characters; say what was studied and why",
                "description-length",
                "info",
            )
        )
    for slot in ("images", "annotations"):
        items = data.get(slot)
        if not isinstance(items, list):
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                if name in seen:
                    errors.append(
                        Issue(
                            f"{slot}[{i}].name",
                            f"name {name!r} is already used by {slot}[{seen[name]}]",
                            "unique",
                        )
                    )
                seen.setdefault(name, i)
    for i, ann in enumerate(data.get("annotations") or []):
        if isinstance(ann, dict) and ann.get("ai_generated") is True and not ann.get("model"):
            warnings.append(
                Issue(
                    f"annotations[{i}].model",
                    "AI-generated annotations should name the model that made them",
                    "ai-model",
                    "warning",
                )
            )
    return errors, warnings


def completeness(data: dict[str, Any]) -> dict[str, ModuleCompleteness]:
    """Fraction of required + recommended slots filled, per REMBI module.

    Nested objects count their own slots (each author's ORCID, each affiliation's ROR);
    an absent module counts its top-level slots as all missing.
    """
    out: dict[str, ModuleCompleteness] = {}
    for module, slots in REMBI_MODULES.items():
        filled = expected = 0
        present = False
        for slot in slots:
            cls = model_of(model.CuratedRecord.model_fields[slot].annotation)
            assert cls is not None
            value = data.get(slot)
            items = value if isinstance(value, list) else [value]
            items = [v for v in items if isinstance(v, dict)]
            if not items:
                if slot == slots[0]:
                    expected += len(expected_fields(cls))
                continue
            present = True
            for item in items:
                for sub_cls, obj, _ in walk(cls, item):
                    names = expected_fields(sub_cls)
                    expected += len(names)
                    filled += sum(1 for n in names if _filled(obj.get(n)))
        out[module] = ModuleCompleteness(module, filled, expected, present)
    return out


# ------------------------------------------------------------------ public API
def _as_data(
    data_or_path: Mapping[str, Any] | BaseModel | str | Path,
) -> tuple[dict[str, Any], str | None]:
    if isinstance(data_or_path, BaseModel):
        return data_or_path.model_dump(mode="json", exclude_none=True), None
    if isinstance(data_or_path, Mapping):
        return dict(data_or_path), None
    path = Path(data_or_path)
    if path.is_dir():
        path = path / "curated.yaml"
        if not path.is_file():
            raise MetadataError(
                "not a curated workspace (no curated.yaml); create one with `curated init`",
                path=path.parent,
            )
    return load_record_dict(path), str(path)


def validate_record(data_or_path: Mapping[str, Any] | BaseModel | str | Path) -> ValidationReport:
    """Validate a record given as a dict, a model, a YAML/JSON file or a workspace folder.

    Parameters
    ----------
    data_or_path
        The record, or where to read it from.

    Returns
    -------
    ValidationReport
        ``errors`` (the record is invalid when there is any), graded ``warnings``
        and ``completeness`` per REMBI module.

    Raises
    ------
    MetadataError
        When the file cannot be read or parsed (syntax error, not a mapping).

    Examples
    --------
    >>> report = validate_record({"schema_version": "1.0.0", "study": {"title": "x"}})
    >>> [e.field for e in report.errors]
    ['study.description', 'study.authors']
    """
    data, source = _as_data(data_or_path)
    return _validate(data, source)


def _written_numbers(source: str | None) -> dict[tuple[Part, ...], str]:
    """The numbers of the YAML file ``source`` as written (``0123``, ``1.10``); ``{}`` for JSON or none."""
    if source is None or Path(source).suffix.lower() == ".json":
        return {}
    try:
        return written_numbers(Path(source).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return {}


def _validate(data: dict[str, Any], source: str | None) -> ValidationReport:
    report = ValidationReport(path=source)
    errors: list[Issue] = []
    try:
        model.CuratedRecord.model_validate(data)
    except ValidationError as exc:
        errors.extend(_pydantic_issues(exc, _written_numbers(source)))
    id_errors, id_warnings = _identifier_issues(data)
    # an identifier check says more than a bare pattern failure at the same place
    checked = {e.field for e in id_errors}
    errors = [e for e in errors if not (e.rule == "pattern" and e.field in checked)] + id_errors
    cons_errors, cons_warnings = _consistency_issues(data)
    errors += cons_errors
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    report.errors = errors
    report.warnings = sorted(
        _recommendation_issues(data) + id_warnings + cons_warnings, key=lambda w: order[w.severity]
    )
    report.completeness = completeness(data)
    return report


def load_record(path: str | Path) -> model.CuratedRecord:
    """Read and validate a record file (or a workspace's ``curated.yaml``) into a :class:`CuratedRecord`.

    Raises
    ------
    MetadataError
        Naming the file and the first invalid field; ``details["errors"]`` lists all.
    """
    data, source = _as_data(path)
    report = _validate(data, source)
    if report.errors:
        first = report.errors[0]
        more = (
            f" (and {len(report.errors) - 1} more; run `curated metadata validate {source}`)"
            if len(report.errors) > 1
            else ""
        )
        raise MetadataError(
            f"{first.message} (rule: {first.rule}){more}",
            path=source,
            field=first.field,
            details={"errors": [e.to_dict() for e in report.errors]},
        )
    return model.CuratedRecord.model_validate(data)
