"""The FAIR checklist: metrics defined as data, evaluated offline on a workspace (and its bag).

The metrics live in ``curated/data/fair_metrics.yaml`` with their F-UJI metric
and test identifiers, the RDA maturity-model indicators they cover, scores and
maturity levels. Each test names a *check* in :data:`CHECKS`; a check looks at the
workspace only (no network) and answers ``pass``, ``fail``, ``pending-deposit``
(only the PID or landing page that deposit creates can show it) or
``needs-human`` (consent, disclosure review, CARE), always with evidence: the
file and the field it looked at.

:func:`fair_checklist` writes ``curation/fair.json`` and ``curation/fair.md`` and
records an E (Evaluate) entry in the curator log.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from curated._io import atomic_write_text, write_json
from curated._json_outline import Outline, json_outline
from curated._text import render_template
from curated._version import __version__
from curated.document.ngff import ImageInfo
from curated.document.readme import todo_fields
from curated.document.survey import README_FILE, WorkspaceSurvey, survey_workspace
from curated.errors import CuratedError, MetadataError
from curated.metadata.crosswalk.common import (
    get_path,
    licence,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
    spdx_id,
)
from curated.metadata.crosswalk.datacite import missing_mandatory, to_datacite
from curated.results import Result
from curated.workspace import METADATA_FILE, Workspace, as_workspace, recorder

PASS = "pass"
FAIL = "fail"
PENDING = "pending-deposit"
HUMAN = "needs-human"
OUTCOMES = (PASS, FAIL, PENDING, HUMAN)

FAIR_JSON = "curation/fair.json"
FAIR_MD = "curation/fair.md"
LOG = "curation/log.jsonl"

COMMUNITY_FORMATS: dict[str, str] = {
    "ome-zarr": "OME-Zarr (OME-NGFF), the community's cloud-ready format for bioimages",
    "ome-ngff": "OME-NGFF",
    "ome-tiff": "OME-TIFF, open with OME-XML metadata",
    "tiff": "TIFF, an open long-term raster format",
    "hdf5": "HDF5, an open scientific container",
    "n5": "N5, an open chunked format used in volume EM",
    "mrc": "MRC, the electron microscopy community format",
    "png": "PNG, open lossless raster",
}
"""Image formats counted as open / long-term / community formats (matched on the start of ``image_format``)."""

_FBBI_RE = re.compile(r"^FBbi:\d{8}$")
_TAXON_RE = re.compile(r"^(?:NCBITaxon:)?[1-9]\d{0,7}$")
_UNIT_NM = {
    "angstrom": 0.1,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
}


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Evidence:
    """Where a check looked: a workspace-relative file and, inside it, a field (or section)."""

    file: str
    field: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"file": self.file, "field": self.field}
        if self.value is not None:
            d["value"] = self.value
        return d


@dataclass
class Outcome:
    """What one check found."""

    status: str
    message: str
    evidence: list[Evidence] = field(default_factory=list)


@dataclass
class TestResult:
    """One metric test, as evaluated."""

    id: str
    name: str
    status: str
    score: float
    """Score earned (the test's score when it passed, else 0)."""
    max_score: float
    maturity: int
    message: str
    evidence: list[Evidence] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["evidence"] = [e.to_dict() for e in self.evidence]
        return d


@dataclass
class MetricResult:
    """One FAIR metric: its identifiers, its tests and the combined outcome."""

    id: str
    fuji: str | None
    rda: list[str]
    priority: str
    principle: str
    name: str
    scoring: str
    status: str
    score: float
    total_score: float
    maturity: int
    tests: list[TestResult]

    @property
    def evidence(self) -> list[Evidence]:
        return [e for t in self.tests for e in t.evidence]

    @property
    def message(self) -> str:
        relevant = [t for t in self.tests if t.status == self.status] or self.tests
        return "; ".join(dict.fromkeys(t.message for t in relevant if t.message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fuji": self.fuji,
            "rda": self.rda,
            "priority": self.priority,
            "principle": self.principle,
            "name": self.name,
            "scoring": self.scoring,
            "status": self.status,
            "score": self.score,
            "total_score": self.total_score,
            "maturity": self.maturity,
            "message": self.message,
            "tests": [t.to_dict() for t in self.tests],
        }


@dataclass
class FairReport:
    """The whole checklist for one workspace."""

    workspace: str
    metrics: list[MetricResult]
    created: str
    bag: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def metric(self, metric_id: str) -> MetricResult:
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    @property
    def summary(self) -> dict[str, Any]:
        by_status = {s: sum(1 for m in self.metrics if m.status == s) for s in OUTCOMES}
        by_principle: dict[str, dict[str, float]] = {}
        for m in self.metrics:
            letter = m.principle[0]
            agg = by_principle.setdefault(letter, {"score": 0.0, "total_score": 0.0})
            agg["score"] += m.score
            agg["total_score"] += m.total_score
        return {
            "metrics": len(self.metrics),
            "by_status": by_status,
            "score": round(sum(m.score for m in self.metrics), 3),
            "total_score": round(sum(m.total_score for m in self.metrics), 3),
            "by_principle": {
                k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in by_principle.items()
            },
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "curated-fair/1",
            "workspace": self.workspace,
            "created": self.created,
            "software": {"curated": __version__},
            "metrics_source": "curated/data/fair_metrics.yaml",
            "bag": self.bag,
            "summary": self.summary,
            "metrics": [m.to_dict() for m in self.metrics],
        }

    def to_markdown(self) -> str:
        return render_template("fair.md.j2", report=self, summary=self.summary)

    def result(self) -> Result:
        s = self.summary
        counts = ", ".join(f"{n} {k}" for k, n in s["by_status"].items() if n)
        return Result(
            action="fair",
            status="ok",
            path=self.files.get("json"),
            message=f"score {s['score']:g}/{s['total_score']:g}; {counts}",
            details={"summary": s, "files": dict(self.files)},
        )


# --------------------------------------------------------------------------- metric definitions
@functools.cache
def load_metrics() -> tuple[dict[str, Any], ...]:
    """The metric definitions shipped in ``curated/data/fair_metrics.yaml``."""
    text = resources.files("curated").joinpath("data/fair_metrics.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    metrics = tuple(data["metrics"])
    for m in metrics:
        for t in m["tests"]:
            if t["check"] not in CHECKS:
                msg = (
                    f"metric test {t['id']} names check {t['check']!r}, which curated does not have"
                )
                raise CuratedError(
                    msg, path="curated/data/fair_metrics.yaml", field=f"metrics[{m['id']}].tests"
                )
    return metrics


# --------------------------------------------------------------------------- context for checks
@dataclass
class FairContext:
    """What the checks read: the survey, plus a few things computed once."""

    survey: WorkspaceSurvey
    readme_text: str | None = None
    crate: dict[str, Any] | None = None
    """The crate's outline: ``@context`` as written, ``@graph`` an empty list if it is a list."""
    crate_path: str | None = None
    crate_actions: bool = False
    """Whether the crate names a ``CreateAction``."""

    @property
    def record(self) -> dict[str, Any]:
        return self.survey.record

    def get(self, path: str) -> Any:
        return get_path(self.record, path)


def _ev(path: str, value: Any = None) -> Evidence:
    return Evidence(METADATA_FILE, path, value)


def _filled(v: Any) -> bool:
    return v not in (None, "", [], {})


Check = Callable[[FairContext], Outcome]
CHECKS: dict[str, Check] = {}


def check(fn: Check) -> Check:
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


@check
def check_identifier_resolvable(ctx: FairContext) -> Outcome:
    doi = ctx.get("study.doi")
    ev = [_ev("study.doi", doi)] if doi else [_ev("study.doi")]
    return Outcome(
        PENDING,
        "resolving the identifier needs the published DOI and a network; assess the landing page after deposit",
        ev,
    )


@check
def check_data_hash_identifiers(ctx: FairContext) -> Outcome:
    recorded = ctx.survey.outputs_by_path()
    stores = [img for img in ctx.survey.images]
    ev = []
    missing = []
    for img in stores:
        rel = ctx.survey.rel(img.path)
        if rel in recorded and recorded[rel][1].get("digest"):
            seq, art = recorded[rel]
            ev.append(Evidence(LOG, f"seq {seq} outputs[{rel}].digest", art["digest"]))
        else:
            missing.append(rel)
    for bag in ctx.survey.bags:
        ext = bag.info.get("External-Identifier")
        if ext:
            ev.append(Evidence(f"{bag.path}/bag-info.txt", "External-Identifier", ext))
    if not stores:
        return Outcome(
            FAIL,
            "no image in derived/ carries a recorded digest; convert with --workspace so the log records one",
            [Evidence("derived", None)],
        )
    if missing:
        return Outcome(
            FAIL,
            f"no recorded digest for {', '.join(missing)}; re-run the step that wrote them with --workspace",
            ev,
        )
    return Outcome(PASS, "every image has a sha256 digest recorded in the curator log", ev)


@check
def check_doi_syntax(ctx: FairContext) -> Outcome:
    doi = ctx.get("study.doi")
    if not doi:
        return Outcome(PENDING, "no DOI yet; deposit assigns one", [_ev("study.doi")])
    if normalise_doi(doi) is None:
        return Outcome(FAIL, f"{doi!r} is not a DOI", [_ev("study.doi", doi)])
    return Outcome(PASS, "DOI syntax is valid", [_ev("study.doi", doi)])


@check
def check_landing_page(ctx: FairContext) -> Outcome:
    return Outcome(
        PENDING,
        "needs the repository's landing page, which deposit creates",
        [_ev("study.doi", ctx.get("study.doi"))],
    )


@check
def check_download_location(ctx: FairContext) -> Outcome:
    return Outcome(
        PENDING,
        "the download location is the repository record deposit creates",
        [_ev("study.doi", ctx.get("study.doi"))],
    )


@check
def check_datacite_registration(ctx: FairContext) -> Outcome:
    return Outcome(
        PENDING,
        "DataCite registration happens when the repository mints the DOI",
        [_ev("study.doi", ctx.get("study.doi"))],
    )


@check
def check_repository_registry(ctx: FairContext) -> Outcome:
    return Outcome(
        PENDING,
        "the repository's re3data record is known once the deposit target is",
        [_ev("study.publisher", ctx.get("study.publisher"))],
    )


def _required_fields(ctx: FairContext, fields: list[str], what: str) -> Outcome:
    ev, missing = [], []
    for f in fields:
        v = ctx.get(f)
        ev.append(_ev(f, v if not isinstance(v, list | dict) else None))
        if not _filled(v):
            missing.append(f)
    if missing:
        return Outcome(
            FAIL,
            f"{what} incomplete: fill {', '.join(missing)}",
            [e for e in ev if e.field in missing],
        )
    return Outcome(PASS, f"{what} present", ev)


@check
def check_core_citation_metadata(ctx: FairContext) -> Outcome:
    out = _required_fields(
        ctx,
        ["study.title", "study.authors", "study.publisher", "study.publication_year"],
        "citation metadata (title, creators, publisher, year)",
    )
    authors = ctx.get("study.authors") or []
    if not isinstance(authors, list):
        return Outcome(
            FAIL,
            "study.authors must be a list of people (family_name, given_name, ...)",
            [_ev("study.authors", str(authors))],
        )
    nameless = [
        f"study.authors[{i}].family_name"
        for i, a in enumerate(authors)
        if not isinstance(a, dict) or not a.get("family_name")
    ]
    if out.status == PASS and nameless:
        return Outcome(
            FAIL,
            f"author without a family name: fill {', '.join(nameless)}",
            [_ev(n) for n in nameless],
        )
    return out


@check
def check_core_descriptive_metadata(ctx: FairContext) -> Outcome:
    out = _required_fields(ctx, ["study.description", "study.keywords"], "summary and keywords")
    desc = str(ctx.get("study.description") or "")
    if out.status == PASS and len(desc) < 25:
        return Outcome(
            FAIL,
            "study.description is shorter than 25 characters; say what was studied and why",
            [_ev("study.description", desc)],
        )
    return out


def _image_entries(ctx: FairContext) -> list[tuple[int, dict[str, Any]]]:
    return [(i, im) for i, im in enumerate(ctx.get("images") or []) if isinstance(im, dict)]


@check
def check_data_content_info(ctx: FairContext) -> Outcome:
    entries = _image_entries(ctx)
    if not entries:
        return Outcome(FAIL, "no images described in curated.yaml (images[])", [_ev("images")])
    ev, missing = [], []
    for i, im in entries:
        for key in ("name", "image_format", "path", "size_x", "size_y", "dtype"):
            if _filled(im.get(key)):
                ev.append(_ev(f"images[{i}].{key}", im.get(key)))
            else:
                missing.append(f"images[{i}].{key}")
    if missing:
        return Outcome(
            FAIL, f"image descriptions lack {', '.join(missing)}", [_ev(m) for m in missing]
        )
    return Outcome(PASS, "each image has a name, path, format, dimensions and data type", ev)


@check
def check_data_content_minimal(ctx: FairContext) -> Outcome:
    entries = _image_entries(ctx)
    if entries:
        return Outcome(
            PASS,
            f"{len(entries)} image(s) described; resource type Dataset",
            [_ev(f"images[{i}].name", im.get("name")) for i, im in entries],
        )
    return Outcome(
        FAIL,
        "curated.yaml describes no image (images[]); run `curated metadata import-ome`",
        [_ev("images")],
    )


def _norm(root: Path, path: str) -> str:
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(root, path))


def _converted(ctx: FairContext) -> dict[str, set[str]]:
    """Source file (normalised) -> the stores the curator log says were converted from it."""
    out: dict[str, set[str]] = {}
    for e in ctx.survey.entries:
        if e.get("action") != "convert" or e.get("status", "ok") != "ok":
            continue
        stores = [o.get("path") for o in e.get("outputs") or [] if isinstance(o, dict)]
        for src in e.get("inputs") or []:
            if isinstance(src, dict) and src.get("path"):
                key = _norm(ctx.survey.root, str(src["path"]))
                out.setdefault(key, set()).update(str(s).rstrip("/") for s in stores if s)
    return out


def _store_for(ctx: FairContext, i: int, im: dict[str, Any]) -> ImageInfo | None:
    path = str(im.get("path") or "").rstrip("/")
    for img in ctx.survey.images:
        if path and path == ctx.survey.rel(img.path):
            return img
    # images[].path usually names the source file; convert's log entry links it to its store
    made = _converted(ctx).get(_norm(ctx.survey.root, path), set()) if path else set()
    for img in ctx.survey.images:
        if ctx.survey.rel(img.path) in made:
            return img
    for img in ctx.survey.images:
        if im.get("name") and im.get("name") == img.name:
            return img
    return None


def _compared(ctx: FairContext) -> list[tuple[int, dict[str, Any], ImageInfo]]:
    out = []
    for i, im in _image_entries(ctx):
        store = _store_for(ctx, i, im)
        if store is not None and not store.problem and store.levels:
            out.append((i, im, store))
    return out


@check
def check_data_matches_metadata(ctx: FairContext) -> Outcome:
    pairs = _compared(ctx)
    if not pairs:
        return Outcome(
            FAIL,
            "no image in curated.yaml matches an OME-Zarr store in derived/ (by path or name)",
            [_ev("images")],
        )
    ev, wrong = [], []
    for i, im, store in pairs:
        rel = ctx.survey.rel(store.path)
        for axis in ("x", "y", "z"):
            want = im.get(f"size_{axis}")
            have = store.shape.get(axis)
            if want is None or have is None:
                continue
            ev.append(Evidence(rel, f"level 0 size {axis}", have))
            if int(want) != int(have):
                wrong.append(f"images[{i}].size_{axis} is {want} but {rel} has {have}")
        if im.get("dtype") and store.dtype and str(im["dtype"]) != store.dtype:
            wrong.append(f"images[{i}].dtype is {im['dtype']} but {rel} is {store.dtype}")
    if wrong:
        return Outcome(FAIL, "; ".join(wrong), ev)
    return Outcome(PASS, "dimensions and data type in curated.yaml match the stored images", ev)


@check
def check_voxel_size_matches_metadata(ctx: FairContext) -> Outcome:
    pairs = _compared(ctx)
    if not pairs:
        return Outcome(
            FAIL, "no image in curated.yaml matches an OME-Zarr store in derived/", [_ev("images")]
        )
    ev, wrong, missing = [], [], []
    for i, im, store in pairs:
        rel = ctx.survey.rel(store.path)
        unit = im.get("voxel_size_unit")
        if unit not in _UNIT_NM or store.unit not in _UNIT_NM:
            missing.append(f"images[{i}].voxel_size_unit")
            continue
        for axis in ("x", "y", "z"):
            want = im.get(f"voxel_size_{axis}")
            have = store.voxel_size.get(axis)
            if want is None:
                missing.append(f"images[{i}].voxel_size_{axis}")
                continue
            if have is None:
                continue
            ev.append(Evidence(rel, f"level 0 scale {axis}", have))
            a, b = float(want) * _UNIT_NM[unit], float(have) * _UNIT_NM[store.unit]
            if not math.isclose(a, b, rel_tol=1e-6):
                wrong.append(
                    f"images[{i}].voxel_size_{axis} is {want} {unit} but {rel} says {have} {store.unit}"
                )
    if wrong or missing:
        msgs = wrong + ([f"fill {', '.join(missing)}"] if missing else [])
        return Outcome(FAIL, "; ".join(msgs), ev + [_ev(m) for m in missing])
    return Outcome(PASS, "voxel sizes and units in curated.yaml match the stored images", ev)


@check
def check_access_rights_present(ctx: FairContext) -> Outcome:
    lic, release = ctx.get("study.license"), ctx.get("study.release_date")
    if lic or release:
        return Outcome(
            PASS,
            "licence or release date given",
            [
                e
                for e in (
                    _ev("study.license", lic) if lic else None,
                    _ev("study.release_date", str(release)) if release else None,
                )
                if e
            ],
        )
    return Outcome(
        FAIL, "no licence or access conditions; fill study.license", [_ev("study.license")]
    )


@check
def check_access_standard_terms(ctx: FairContext) -> Outcome:
    lic = ctx.get("study.license")
    known = licence(lic)
    if known:
        return Outcome(PASS, f"standard licence {known.name}", [_ev("study.license", lic)])
    return Outcome(
        FAIL, "licence missing or not a licence curated knows by name", [_ev("study.license", lic)]
    )


@check
def check_access_machine_readable(ctx: FairContext) -> Outcome:
    lic = ctx.get("study.license")
    proper = spdx_id(lic)
    if proper and proper == str(lic).strip():
        return Outcome(
            PASS, f"SPDX id {proper} (DataCite rightsIdentifier)", [_ev("study.license", lic)]
        )
    return Outcome(FAIL, "access terms are not an SPDX licence id", [_ev("study.license", lic)])


@check
def check_licence_present(ctx: FairContext) -> Outcome:
    lic = ctx.get("study.license")
    if lic:
        return Outcome(PASS, "licence given", [_ev("study.license", lic)])
    return Outcome(
        FAIL,
        "no licence: fill study.license with an SPDX id (e.g. CC-BY-4.0)",
        [_ev("study.license")],
    )


@check
def check_licence_spdx(ctx: FairContext) -> Outcome:
    lic = ctx.get("study.license")
    if not lic:
        return Outcome(FAIL, "no licence", [_ev("study.license")])
    proper = spdx_id(lic)
    if proper is None:
        return Outcome(FAIL, f"{lic!r} is not an SPDX licence id", [_ev("study.license", lic)])
    if proper != str(lic).strip():
        return Outcome(
            FAIL, f"SPDX ids are case-sensitive: write {proper}", [_ev("study.license", lic)]
        )
    return Outcome(PASS, f"{proper} is on the SPDX licence list", [_ev("study.license", lic)])


@check
def check_vocabulary_terms(ctx: FairContext) -> Outcome:
    found = _semantic_terms(ctx)
    if found:
        return Outcome(PASS, "identifiers from vocabularies are used", found)
    return Outcome(
        FAIL,
        "no ontology term or registry identifier in the metadata",
        [_ev("acquisition_protocols[].fbbi_id")],
    )


def _semantic_terms(ctx: FairContext) -> list[Evidence]:
    ev = []
    for i, p in enumerate(ctx.get("acquisition_protocols") or []):
        if isinstance(p, dict) and _FBBI_RE.match(str(p.get("fbbi_id") or "")):
            ev.append(_ev(f"acquisition_protocols[{i}].fbbi_id", p["fbbi_id"]))
    for i, b in enumerate(ctx.get("biosamples") or []):
        taxon = get_path(b, "organism.ncbi_taxon_id")
        if taxon and _TAXON_RE.match(str(taxon)):
            ev.append(_ev(f"biosamples[{i}].organism.ncbi_taxon_id", taxon))
    for i, a in enumerate(ctx.get("study.authors") or []):
        if isinstance(a, dict) and normalise_orcid(a.get("orcid")):
            ev.append(_ev(f"study.authors[{i}].orcid", a["orcid"]))
        if isinstance(a, dict) and normalise_ror(get_path(a, "affiliation.ror")):
            ev.append(_ev(f"study.authors[{i}].affiliation.ror", get_path(a, "affiliation.ror")))
    return ev


@check
def check_known_semantic_resources(ctx: FairContext) -> Outcome:
    ev = [
        e
        for e in _semantic_terms(ctx)
        if e.field and ("fbbi_id" in e.field or "ncbi_taxon_id" in e.field)
    ]
    if ev:
        return Outcome(
            PASS, "FBbi (imaging method) and/or NCBI Taxonomy (organism) terms are used", ev
        )
    return Outcome(
        FAIL,
        "use FBbi for the imaging method and NCBITaxon for the organism",
        [_ev("acquisition_protocols[0].fbbi_id"), _ev("biosamples[0].organism.ncbi_taxon_id")],
    )


@check
def check_related_resources(ctx: FairContext) -> Outcome:
    ev = []
    for key in ("study.publications", "study.related_identifiers", "study.funding"):
        for i, _ in enumerate(ctx.get(key) or []):
            ev.append(_ev(f"{key}[{i}]"))
    if ev:
        return Outcome(PASS, "publications, related resources or grants are named", ev)
    return Outcome(
        FAIL,
        "no related publication, resource or grant; fill study.publications / study.related_identifiers / study.funding",
        [_ev("study.related_identifiers")],
    )


@check
def check_related_identifiers(ctx: FairContext) -> Outcome:
    ev = []
    for i, p in enumerate(ctx.get("study.publications") or []):
        if isinstance(p, dict) and normalise_doi(p.get("doi")):
            ev.append(_ev(f"study.publications[{i}].doi", p["doi"]))
    for i, r in enumerate(ctx.get("study.related_identifiers") or []):
        if isinstance(r, dict) and r.get("identifier") and r.get("relation_type"):
            ev.append(
                _ev(
                    f"study.related_identifiers[{i}]",
                    f"{r.get('relation_type')} {r.get('identifier')}",
                )
            )
    for i, g in enumerate(ctx.get("study.funding") or []):
        if isinstance(g, dict) and normalise_ror(g.get("funder_ror")):
            ev.append(_ev(f"study.funding[{i}].funder_ror", g["funder_ror"]))
    people = [e for e in _semantic_terms(ctx) if e.field and e.field.startswith("study.authors")]
    if ev or people:
        return Outcome(
            PASS,
            "related entities carry identifiers (DOI, URL, ORCID, ROR); whether they resolve is checked after deposit",
            ev + people,
        )
    return Outcome(
        FAIL,
        "no related entity has a persistent identifier",
        [_ev("study.publications[].doi"), _ev("study.related_identifiers")],
    )


@check
def check_jsonld_metadata(ctx: FairContext) -> Outcome:
    if ctx.crate is not None and ctx.crate_path:
        if "@context" in ctx.crate and isinstance(ctx.crate.get("@graph"), list):
            return Outcome(
                PASS,
                "the bag carries RO-Crate JSON-LD metadata",
                [Evidence(ctx.crate_path, "@context", ctx.crate.get("@context"))],
            )
        return Outcome(
            FAIL,
            "ro-crate-metadata.json lacks @context or @graph",
            [Evidence(ctx.crate_path, "@context")],
        )
    if not _bagged(ctx):
        # nothing to fix before bagging: every bag carries one, and the bag's own checklist
        # (data/curation/fair.json, written by `curated bag`) decides this test
        return Outcome(
            PENDING,
            "no bag yet; `curated bag WORKSPACE DEST` writes RO-Crate JSON-LD metadata into it "
            "(its own checklist, data/curation/fair.json, checks it)",
            [Evidence("package", "*/data/ro-crate-metadata.json")],
        )
    return Outcome(
        FAIL,
        "the bag carries no RO-Crate (data/ro-crate-metadata.json); build it again with `curated bag`",
        [Evidence("package", "*/data/ro-crate-metadata.json")],
    )


def _bagged(ctx: FairContext) -> bool:
    """Whether the workspace (or the bag being evaluated) holds a bag in ``package/``."""
    package = ctx.survey.root / "package"
    return ctx.crate is not None or (
        package.is_dir() and any((p / "bagit.txt").is_file() for p in package.iterdir())
    )


@check
def check_provenance_elements(ctx: FairContext) -> Outcome:
    s = ctx.survey
    if not s.entries:
        return Outcome(FAIL, s.log_problem or "the curator log is empty", [Evidence(LOG)])
    report = Workspace(s.root, must_exist=False).log.verify()
    if not report.ok:
        return Outcome(
            FAIL,
            f"the curator log does not verify: {report.problems[0]}",
            [Evidence(LOG, f"seq {report.first_bad_seq}")],
        )
    ev = [Evidence(LOG, "entries", report.entries)]
    if ctx.get("study.authors"):
        ev.append(_ev("study.authors"))
    return Outcome(
        PASS,
        f"hash-chained curator log with {report.entries} entries (steps, agents, inputs, outputs, times) verifies",
        ev,
    )


@check
def check_provenance_prov_o(ctx: FairContext) -> Outcome:
    cur = ctx.survey.root / "curation"
    candidates = []
    if cur.is_dir():
        for p in sorted(cur.iterdir()):
            if p.is_file() and (
                "prov" in p.name.lower()
                and p.suffix in (".json", ".provn", ".ttl", ".jsonld", ".xml")
            ):
                candidates.append(p)
    for p in candidates:
        try:
            head = p.read_text(encoding="utf-8")[:200_000]
        except (OSError, UnicodeDecodeError):
            continue
        if "prov" in head:
            return Outcome(
                PASS,
                "a W3C PROV export of the curator log is present",
                [Evidence(ctx.survey.rel(p), None)],
            )
    if ctx.crate is not None and ctx.crate_path and ctx.crate_actions:
        return Outcome(
            PASS,
            "the bag's RO-Crate describes the curation steps as actions (Process Run Crate)",
            [Evidence(ctx.crate_path, "@graph[CreateAction]")],
        )
    if not _bagged(ctx):  # before bagging: the bag's crate describes the steps as actions
        return Outcome(
            PENDING,
            "no PROV-O export yet; `curated bag` describes the curation steps as actions in the "
            "bag's RO-Crate (or run `curated log WORKSPACE --prov curation/prov.json` now)",
            [Evidence("curation", "prov.*")],
        )
    return Outcome(
        FAIL,
        "no PROV-O export; run `curated log WORKSPACE --prov curation/prov.json` (or build the bag)",
        [Evidence("curation", "prov.*")],
    )


@check
def check_community_metadata_standard(ctx: FairContext) -> Outcome:
    if ctx.survey.record_problem:
        return Outcome(FAIL, ctx.survey.record_problem, [Evidence(METADATA_FILE)])
    from curated.metadata.validate import validate_record

    try:
        report = validate_record(ctx.record)
    except CuratedError as exc:
        return Outcome(FAIL, str(exc), [Evidence(METADATA_FILE)])
    if not report.valid:
        first = report.errors[:5]
        return Outcome(
            FAIL,
            f"curated.yaml does not validate against the REMBI-aligned schema ({len(report.errors)} error(s))",
            [_ev(str(getattr(e, "field", "") or "(record)")) for e in first],
        )
    ev = [_ev("schema_version", ctx.get("schema_version"))]
    ev += [
        Evidence(ctx.survey.rel(i.path), "zarr.json attributes.ome.multiscales", i.ngff_version)
        for i in ctx.survey.images
        if not i.problem
    ]
    return Outcome(
        PASS,
        "metadata validate against curated's REMBI-aligned LinkML schema; images carry OME-NGFF metadata",
        ev,
    )


@check
def check_datacite_complete(ctx: FairContext) -> Outcome:
    try:
        dc = to_datacite(ctx.record, strict=False)
    except MetadataError as exc:
        return Outcome(FAIL, str(exc), [_ev(exc.field or "(record)")])
    missing = missing_mandatory(dc)
    if missing:
        return Outcome(
            FAIL,
            f"DataCite mandatory properties lack {', '.join(missing)}",
            [_ev(m) for m in missing],
        )
    return Outcome(
        PASS,
        "a complete DataCite 4.5 record can be made (the DOI comes at deposit)",
        [_ev("study")],
    )


@check
def check_community_file_format(ctx: FairContext) -> Outcome:
    ev, unknown = [], []
    for i, im in _image_entries(ctx):
        fmt = str(im.get("image_format") or "")
        key = next(
            (k for k in COMMUNITY_FORMATS if fmt.lower().replace(" ", "-").startswith(k)), None
        )
        if key:
            ev.append(_ev(f"images[{i}].image_format", fmt))
        else:
            unknown.append((i, fmt))
    for img in ctx.survey.images:
        if not img.problem:
            ev.append(
                Evidence(
                    ctx.survey.rel(img.path),
                    "attributes.ome.multiscales",
                    f"OME-Zarr {img.ngff_version or ''}".strip(),
                )
            )
    if unknown:
        return Outcome(
            FAIL,
            "; ".join(
                f"images[{i}].image_format {f!r} is not a known open community format"
                for i, f in unknown
            ),
            [_ev(f"images[{i}].image_format", f) for i, f in unknown],
        )
    if not ev:
        return Outcome(
            FAIL,
            "no data files with a known format (no images[] and no OME-Zarr in derived/)",
            [_ev("images")],
        )
    return Outcome(PASS, "data are in open community formats (OME-Zarr / OME-NGFF)", ev)


@check
def check_ome_zarr_valid(ctx: FairContext) -> Outcome:
    """Every OME-Zarr image (and its label images) passes the NGFF validators.

    The survey only parses the metadata; here ``ome-zarr-models``, ``yaozarrs`` and
    curated's own checks (:func:`curated.images.validate_ome_zarr`) run, so a store that a
    viewer would misread (wrong scales, a label image whose shape differs from its image,
    chunks its key encoding cannot name) fails before it is deposited."""
    from curated.images.validate import store_problems

    images = ctx.survey.images
    if not images:
        return Outcome(
            PASS, "no OME-Zarr images in derived/, so none to validate", [Evidence("derived")]
        )
    ev, bad = [], []
    for img in images:
        where = ctx.survey.rel(img.path)
        problems = store_problems(img.path, conventions=False)  # named by `where`, not locally
        if problems:
            bad.append(
                f"{where}: {problems[0]}"
                + (f" (+{len(problems) - 1} more)" if problems[1:] else "")
            )
            ev += [Evidence(where, "OME-NGFF", p) for p in problems[:5]]
        else:
            ev.append(Evidence(where, "OME-NGFF", f"valid {img.ngff_version or ''}".strip()))
    if bad:
        return Outcome(FAIL, "; ".join(bad), ev)
    return Outcome(
        PASS,
        f"{len(images)} OME-Zarr image(s) pass ome-zarr-models, yaozarrs and curated's own checks",
        ev,
    )


@check
def check_contact_person(ctx: FairContext) -> Outcome:
    for i, a in enumerate(ctx.get("study.authors") or []):
        if isinstance(a, dict) and (a.get("contact") or "ContactPerson" in (a.get("role") or [])):
            if a.get("email"):
                return Outcome(
                    PASS,
                    "contact person with email",
                    [
                        _ev(f"study.authors[{i}].contact", True),
                        _ev(f"study.authors[{i}].email", a["email"]),
                    ],
                )
            return Outcome(
                FAIL,
                f"the contact has no email: fill study.authors[{i}].email",
                [_ev(f"study.authors[{i}].email")],
            )
    return Outcome(
        FAIL,
        "no author is marked as contact: set study.authors[N].contact to true and give an email",
        [_ev("study.authors[].contact")],
    )


@check
def check_readme_present(ctx: FairContext) -> Outcome:
    if ctx.readme_text is None:
        return Outcome(
            FAIL, "no README.md; run `curated readme WORKSPACE`", [Evidence(README_FILE)]
        )
    return Outcome(PASS, "README.md present", [Evidence(README_FILE)])


@check
def check_readme_complete(ctx: FairContext) -> Outcome:
    if ctx.readme_text is None:
        return Outcome(
            FAIL, "no README.md; run `curated readme WORKSPACE`", [Evidence(README_FILE)]
        )
    fields = todo_fields(ctx.readme_text)
    # the DOI is assigned at deposit: its marker alone does not count against the README
    open_fields = [f for f in dict.fromkeys(fields) if not f.startswith("study.doi")]
    if open_fields:
        return Outcome(
            FAIL,
            f"README.md has {len(fields)} TODO marker(s), e.g. {', '.join(open_fields[:3])}",
            [Evidence(README_FILE, f) for f in open_fields[:10]],
        )
    if fields:
        return Outcome(
            PENDING,
            "README.md is complete except for the DOI deposit assigns; re-run `curated readme` after deposit",
            [Evidence(README_FILE, "study.doi")],
        )
    return Outcome(PASS, "README.md has no TODO markers", [Evidence(README_FILE)])


@check
def check_ai_labels_marked(ctx: FairContext) -> Outcome:
    ev, bad = [], []
    labels = [(img, lab) for img in ctx.survey.images for lab in img.labels]
    if not labels:
        return Outcome(
            PASS, "no label images, so nothing to mark", [Evidence("derived", "*.ome.zarr/labels")]
        )
    for _img, lab in labels:
        where = ctx.survey.rel(lab.path)
        if lab.ai_generated is None:
            bad.append(f"{where} does not say whether it is AI-generated")
            ev.append(Evidence(where, "attributes.curated.ai_generated"))
        elif lab.ai_generated and not (lab.model or {}).get("id"):
            bad.append(f"{where} is AI-generated but names no model")
            ev.append(Evidence(where, "attributes.curated.model.id"))
        else:
            ev.append(Evidence(where, "attributes.curated.ai_generated", lab.ai_generated))
    if bad:
        return Outcome(FAIL, "; ".join(bad), ev)
    return Outcome(
        PASS,
        "every label image says whether it is AI-generated; AI-generated ones name their model",
        ev,
    )


@check
def check_models_documented(ctx: FairContext) -> Outcome:
    s = ctx.survey
    producing = {}
    for img in s.images:
        for lab in img.labels:
            if lab.ai_generated and lab.model:
                producing[(lab.model.get("id") or lab.model.get("sha256"))] = (
                    lab,
                    s.model_for(lab.model),
                )
    models = {m.name: m for m in s.models}
    for _, m in producing.values():
        if m is not None:
            models[m.name] = m
    ev, bad = [], []
    for key, (lab, m) in producing.items():
        if m is None:
            bad.append(f"model {key} of label {lab.name} is not in derived/models/")
            ev.append(Evidence(s.rel(lab.path), "attributes.curated.model"))
    for m in models.values():
        if m.package or m.card:
            ev.append(Evidence(m.package or m.card or m.path, None))
        else:
            bad.append(f"model {m.name} has no exported model card (`curated segment export`)")
            ev.append(Evidence(m.path, "bioimageio.zip"))
        if m.evaluations:
            for e in m.evaluations:
                # the whole-volume figure is the one to quote when it exists: first, beside the blocks'
                if e.whole_volume_dice is not None:
                    ev.append(
                        Evidence(e.path, "whole_volume.overall.raw.dice", e.whole_volume_dice)
                    )
                ev.append(Evidence(e.path, "overall.raw.dice", e.dice))
        else:
            bad.append(f"model {m.name} has no held-out evaluation (`curated segment evaluate`)")
            ev.append(Evidence(f"{m.path}/model.json", "evaluations"))
    if not producing and not models:
        return Outcome(PASS, "no models in this workspace", [Evidence("derived/models")])
    if bad:
        return Outcome(FAIL, "; ".join(bad), ev)
    return Outcome(PASS, "every model has a model card and a held-out evaluation", ev)


def _organisms(ctx: FairContext) -> list[Evidence]:
    return [
        _ev(f"biosamples[{i}].organism.scientific_name", get_path(b, "organism.scientific_name"))
        for i, b in enumerate(ctx.get("biosamples") or [])
        if isinstance(b, dict)
    ] or [_ev("biosamples")]


def _is_human(ctx: FairContext) -> bool:
    for b in ctx.get("biosamples") or []:
        taxon = str(get_path(b, "organism.ncbi_taxon_id") or "").removeprefix("NCBITaxon:")
        name = str(get_path(b, "organism.scientific_name") or "").lower()
        if taxon == "9606" or name == "homo sapiens":
            return True
    return False


@check
def check_human_consent(ctx: FairContext) -> Outcome:
    why = "material is of human origin: " if _is_human(ctx) else ""
    return Outcome(
        HUMAN,
        f"{why}a person must confirm consent, data-use agreements and permission to redistribute",
        _organisms(ctx),
    )


@check
def check_human_disclosure_review(ctx: FairContext) -> Outcome:
    return Outcome(
        HUMAN,
        "a person must review images, file names and metadata for identifying information",
        _organisms(ctx),
    )


@check
def check_human_care(ctx: FairContext) -> Outcome:
    return Outcome(
        HUMAN,
        "a person must decide whether Indigenous data or TK labels apply and whether repository and access terms fit",
        _organisms(ctx),
    )


# --------------------------------------------------------------------------- evaluation
def _combine(defn: dict[str, Any], tests: list[TestResult]) -> tuple[str, float, int]:
    passed = [t for t in tests if t.status == PASS]
    cumulative = defn.get("scoring", "alternative") == "cumulative"
    earned = sum(t.score for t in passed) if cumulative else 0.0
    full = float(defn.get("total_score", math.inf))
    # cumulative metrics need every part: one failing test the curator can fix fails the
    # metric, unless the passing tests already earn its whole score (then it passes)
    if cumulative and any(t.status == FAIL for t in tests) and earned < full:
        status = FAIL
    elif passed:
        status = PASS
    elif any(t.status == FAIL for t in tests):
        status = FAIL
    elif any(t.status == PENDING for t in tests):
        status = PENDING
    else:
        status = HUMAN
    if cumulative:
        score = sum(t.score for t in passed)
    else:
        score = max((t.score for t in passed), default=0.0)
    score = min(float(defn.get("total_score", score)), score)
    maturity = max((t.maturity for t in passed), default=0)
    return status, round(score, 3), maturity


def evaluate(ctx: FairContext) -> list[MetricResult]:
    """Run every metric of ``fair_metrics.yaml`` on ``ctx``."""
    results = []
    for defn in load_metrics():
        tests = []
        for t in defn["tests"]:
            outcome = CHECKS[t["check"]](ctx)
            if outcome.status not in OUTCOMES:
                msg = f"check {t['check']} returned {outcome.status!r}"
                raise CuratedError(msg)
            tests.append(
                TestResult(
                    id=t["id"],
                    name=t["name"],
                    status=outcome.status,
                    score=float(t["score"]) if outcome.status == PASS else 0.0,
                    max_score=float(t["score"]),
                    maturity=int(t.get("maturity", 0)),
                    message=outcome.message,
                    evidence=outcome.evidence,
                )
            )
        status, score, maturity = _combine(defn, tests)
        results.append(
            MetricResult(
                id=defn["id"],
                fuji=defn.get("fuji"),
                rda=list(defn.get("rda") or []),
                priority=defn.get("priority", ""),
                principle=defn["principle"],
                name=defn["name"],
                scoring=defn.get("scoring", "alternative"),
                status=status,
                score=score,
                total_score=float(defn.get("total_score", 0)),
                maturity=maturity,
                tests=tests,
            )
        )
    return results


def _context(survey: WorkspaceSurvey, crate_outline: Outline | None = None) -> FairContext:
    """What the checks read; ``crate_outline`` stands for reading the (first) bag's crate."""
    ctx = FairContext(survey=survey)
    readme = survey.root / README_FILE
    if readme.is_file():
        try:
            ctx.readme_text = readme.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            ctx.readme_text = None
    for bag in survey.bags:
        if bag.crate:
            # read as a stream: a bag's crate lists every payload file (hundreds of MB at 1M files)
            data: dict[str, Any] = {}
            try:
                outline = crate_outline or json_outline(
                    survey.root / bag.crate, keep=("@context",), find=("CreateAction",)
                )
            except (OSError, ValueError):
                outline = None
            if outline is not None and outline.kind == "object":
                data = dict(outline.values)
                if outline.keys.get("@graph") == "array":
                    data["@graph"] = []
                ctx.crate_actions = "CreateAction" in outline.found
            ctx.crate, ctx.crate_path = data, bag.crate
            break
    return ctx


def fair_checklist(workspace: Workspace | str | Path, *, write: bool = True) -> FairReport:
    """Evaluate the FAIR checklist on a workspace (and the first bag in its ``package/``).

    Parameters
    ----------
    workspace
        The workspace to assess. Nothing is fetched from the network.
    write
        Write ``curation/fair.json`` and ``curation/fair.md`` and record an E entry
        in the curator log (default). With ``False`` only the report is returned.

    Returns
    -------
    FairReport
        One :class:`MetricResult` per metric, each test with its evidence.

    Examples
    --------
    >>> report = fair_checklist("my-dataset")  # doctest: +SKIP
    >>> report.metric("FsF-R1.1-01M").status  # doctest: +SKIP
    'pass'
    """
    ws = as_workspace(workspace)
    assert ws is not None
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not write:
        survey = survey_workspace(ws, files=False)
        ctx = _context(survey)
        return FairReport(
            workspace=_folder_name(ws), metrics=evaluate(ctx), created=created, bag=ctx.crate_path
        )
    with recorder(
        ws, "E", "fair", inputs=[ws.metadata_path], libraries=("pyyaml", "jinja2")
    ) as step:
        survey = survey_workspace(ws, files=False)
        ctx = _context(survey)
        report = FairReport(
            workspace=_folder_name(ws), metrics=evaluate(ctx), created=created, bag=ctx.crate_path
        )
        json_path, md_path = ws.root / FAIR_JSON, ws.root / FAIR_MD
        report.files = {"json": str(json_path), "md": str(md_path)}
        write_json(json_path, report.to_dict())
        atomic_write_text(md_path, report.to_markdown())
        step.add_output(json_path, role="fair-checklist")
        step.add_output(md_path, role="fair-checklist")
        res = report.result()
        step.message = res.message
        step.details = {"summary": report.summary}
    return report


def _folder_name(ws: Workspace) -> str:
    """The workspace as ``fair.json`` names it: its folder's name, as a bag's checklist does
    (an absolute path is the curator's own and wrong once the workspace is moved)."""
    return Path(os.path.abspath(ws.root)).name


# --------------------------------------------------------------------------- inside a bag
BAG_FAIR_FILES = ("fair.json", "fair.md")
"""What :func:`write_bag_fair` writes into a bag's ``data/curation/``."""


def _bag_view(
    bag: Path, view: Path, record: Path, log: Path, derived: Path | None, name: str
) -> Path:
    """A workspace-shaped folder of links to what ``bag`` packages, for the checks to read.

    ``record`` and ``log`` are the curated.yaml and curator log the bag carries (or,
    while it is being built, will carry) under ``metadata/``.
    """
    (view / "curation").mkdir(parents=True)
    (view / "package").mkdir()
    os.symlink(record.resolve(), view / METADATA_FILE)
    if log.is_file():
        os.symlink(log.resolve(), view / LOG)
    prov = bag / "metadata" / "prov.json"
    if prov.is_file():
        os.symlink(prov.resolve(), view / "curation" / "prov.json")
    for name in (README_FILE, "figures", "derived"):
        if name == "derived" and derived is not None:
            os.symlink(derived.resolve(), view / name)
        elif (bag / "data" / name).exists():
            os.symlink((bag / "data" / name).resolve(), view / name)
    os.symlink(bag.resolve(), view / "package" / name)
    return view


def bag_fair_report(
    bag: str | Path,
    *,
    record: str | Path | None = None,
    log: str | Path | None = None,
    derived: str | Path | None = None,
    crate_outline: Outline | None = None,
    name: str | None = None,
) -> FairReport:
    """Evaluate the FAIR checklist on what an unpacked bag packages (offline, writes nothing).

    The checks read the bag's own README, figures, derived data, RO-Crate, PROV
    export, curated.yaml and curator log, not the workspace it was made from, so the
    result describes the deposit. ``record`` and ``log`` replace
    ``metadata/curated.yaml`` and ``metadata/curator-log.jsonl`` while the bag is
    being built (they are written after the payload); ``derived`` replaces
    ``data/derived`` for bags whose Zarr stores are zip archives or fetched (holey
    bags): the checks read stores, which those bags hold unchanged or by reference.
    ``crate_outline`` is what ``json_outline`` finds in the bag's RO-Crate
    (``keep=("@context",)``, ``find=("CreateAction",)``) when its writer already knows
    (:attr:`curated.package.crate.CrateWriter.outline`): the crate is not read again.
    ``name`` is the bag's name where the report names it (default: its folder's name; a bag
    being built in a temporary folder is named as it will be once in place).

    Examples
    --------
    >>> bag_fair_report("ws/package/cell01-bag").metric("FsF-I1-01M").status  # doctest: +SKIP
    'pass'
    """
    bag = Path(bag)
    if not (bag / "bagit.txt").is_file():
        raise CuratedError(f"{bag}: not an unpacked bag (no bagit.txt)")
    record = Path(record) if record else bag / "metadata" / "curated.yaml"
    log = Path(log) if log else bag / "metadata" / "curator-log.jsonl"
    with tempfile.TemporaryDirectory(prefix="curated-fair-") as tmp:
        name = name or bag.name
        view = _bag_view(
            bag, Path(tmp) / "ws", record, log, Path(derived) if derived else None, name
        )
        ctx = _context(survey_workspace(view, files=False), crate_outline)
        metrics = evaluate(ctx)
    crate = bag / "data" / "ro-crate-metadata.json"
    return FairReport(
        workspace=name,
        metrics=metrics,
        # the day, as the bag's crate dates it: a bag rebuilt after an interruption the same
        # day is byte-identical to one built in one go
        created=datetime.now(UTC).date().isoformat(),
        bag=f"{name}/data/ro-crate-metadata.json" if crate.is_file() else None,
    )


def write_bag_fair(
    bag: str | Path,
    *,
    record: str | Path,
    log: str | Path,
    derived: str | Path | None = None,
    crate_outline: Outline | None = None,
    name: str | None = None,
) -> tuple[str, ...]:
    """Write ``data/curation/fair.json`` and ``fair.md`` into a bag being built; return their names.

    Called by :func:`curated.package.make_bag` once the payload and its RO-Crate are
    in place, so the checklist a deposit ships agrees with what it holds (a
    checklist run in the workspace before bagging cannot see the RO-Crate or PROV
    export that bagging makes). New files are written; a hard link to the
    workspace's own fair.* would be replaced, never written through.
    """
    bag = Path(bag)
    report = bag_fair_report(
        bag, record=record, log=log, derived=derived, crate_outline=crate_outline, name=name
    )
    folder = bag / "data" / "curation"
    folder.mkdir(exist_ok=True)
    for name in BAG_FAIR_FILES:
        (folder / name).unlink(missing_ok=True)
    write_json(folder / "fair.json", report.to_dict())
    atomic_write_text(folder / "fair.md", report.to_markdown())
    return BAG_FAIR_FILES
