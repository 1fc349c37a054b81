"""The Request step: an e-mail to the depositor with at most four ranked, easy-to-answer asks.

Following the Data Curation Network's advice, every ask is ranked
**Essential**, **Important** or **Supplemental**, can be answered with yes/no
or with one value, and asks permission before the curator changes anything.
Asks come from the metadata's gaps (``curated.metadata.validate_record``) and
from the Check step's red flags (``curation/check.json``); the four most
pressing go into ``curation/request.md``, the rest are kept in the log entry
for the next round.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from curated._io import atomic_write_text
from curated._text import render_template
from curated.errors import MetadataError, WorkspaceError
from curated.metadata.paths import get_at
from curated.results import Result
from curated.workspace import Workspace, as_workspace, recorder

REQUEST_FILE = "curation/request.md"
CHECK_FILE = "curation/check.json"
STEP = "R"
MAX_ASKS = 4
PRIORITIES = ("Essential", "Important", "Supplemental")


@dataclass(frozen=True)
class Ask:
    """One question for the depositor."""

    priority: str
    """``Essential``, ``Important`` or ``Supplemental``."""
    question: str
    """Answerable with yes/no or with one value."""
    answer: str
    """``yes/no``, ``value`` or ``file``: what kind of reply is expected."""
    why: str
    """One line on why we ask."""
    field: str | None = None
    """The metadata field the answer fills, when it fills one."""
    example: str | None = None
    """An example answer, for value questions."""
    rank: int = 50
    """Order within a priority (lower first): patient data and licence lead."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# field path (with [] for any index) -> (priority, question, why, example)
FIELD_ASKS: dict[str, tuple[str, str, str, str | None]] = {
    "study.license": (
        "Essential",
        "Under which licence may we publish the data?",
        "without a licence nobody may legally reuse the data",
        "CC-BY-4.0",
    ),
    "study.title": (
        "Essential",
        "What title should the dataset have in its citation?",
        "the title is mandatory for a DOI",
        None,
    ),
    "study.authors": (
        "Essential",
        "Who should be listed as authors, in citation order?",
        "authors are mandatory for a DOI and for credit",
        "Doe, Jane; Roe, Richard",
    ),
    "study.description": (
        "Essential",
        "In two or three sentences, what was imaged and why?",
        "the description is how others find and understand the data",
        None,
    ),
    "images[].voxel_size_x": (
        "Essential",
        "What is the voxel size (z, y, x, in nanometres)?",
        "without it no distance or volume in the images can be measured",
        "5 x 4 x 4",
    ),
    "images[].voxel_size_z": (
        "Essential",
        "What is the voxel size (z, y, x, in nanometres)?",
        "without it no distance or volume in the images can be measured",
        "5 x 4 x 4",
    ),
    "biosamples": (
        "Important",
        "Which organism (species) was imaged?",
        "the organism is needed to find and reuse the data",
        "Mus musculus",
    ),
    "biosamples[].organism": (
        "Important",
        "Which organism (species) was imaged?",
        "the organism is needed to find and reuse the data",
        "Mus musculus",
    ),
    "biosamples[].biological_entity": (
        "Important",
        "What tissue or cells were imaged?",
        "reusers need to know what the images show",
        "mouse cortex, layer 2/3",
    ),
    "acquisition_protocols": (
        "Important",
        "Which instrument (make and model) acquired the images?",
        "the instrument and its settings make the acquisition reproducible",
        "Zeiss Crossbeam 550",
    ),
    "acquisition_protocols[].imaging_instrument": (
        "Important",
        "Which instrument (make and model) acquired the images?",
        "the instrument and its settings make the acquisition reproducible",
        "Zeiss Crossbeam 550",
    ),
    "acquisition_protocols[].fibsem": (
        "Important",
        "What was the milling step (slice thickness) in nanometres?",
        "the slice thickness sets the z resolution",
        "8",
    ),
    "acquisition_protocols[].fibsem.milling_step_nm": (
        "Important",
        "What was the milling step (slice thickness) in nanometres?",
        "the slice thickness sets the z resolution",
        "8",
    ),
    "acquisition_protocols[].fibsem.sem_accelerating_voltage_kv": (
        "Supplemental",
        "What SEM accelerating voltage (kV) was used?",
        "acquisition settings make the images comparable",
        "1.5",
    ),
    "specimens": (
        "Important",
        "How was the sample prepared (fixation, staining, embedding)?",
        "preparation explains the contrast in the images",
        "high-pressure freezing, freeze substitution, Epon",
    ),
    "specimens[].sample_preparation": (
        "Important",
        "How was the sample prepared (fixation, staining, embedding)?",
        "preparation explains the contrast in the images",
        "high-pressure freezing, freeze substitution, Epon",
    ),
    "study.funding": (
        "Important",
        "Which funder and award ID should be credited (or 'none')?",
        "funders require their grants to be credited",
        "ERC 123456",
    ),
    "study.authors[].orcid": (
        "Supplemental",
        "What is the ORCID iD of {name}?",
        "ORCID iDs credit the right person unambiguously",
        "0000-0002-1825-0097",
    ),
    "study.authors[].affiliation": (
        "Supplemental",
        "What is the affiliation of {name}?",
        "affiliations credit institutions",
        "University of Somewhere",
    ),
    "study.keywords": (
        "Supplemental",
        "Which three to five keywords describe the data?",
        "keywords help people find the data",
        "FIB-SEM, mitochondria, mouse",
    ),
    "study.publications": (
        "Supplemental",
        "Is there an article that describes these data (its DOI)?",
        "linking the article lets readers find the data and vice versa",
        "10.1234/abcd",
    ),
}
"""Known metadata gaps and how to ask about them."""

_INDEX = re.compile(r"\[\d+\]")


def _generic(field: str) -> str:
    return _INDEX.sub("[]", field)


def _metadata_gaps(record: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """``[(field path, rule)]`` the record lacks or gets wrong, and which validator said so."""
    try:
        from curated.metadata.validate import validate_record
    except ImportError:  # metadata layer not available: check the essentials ourselves
        validate_record = None
    if validate_record is not None:
        report = validate_record(record)
        issues = list(report.errors) + [w for w in report.warnings if w.rule == "recommended"]
        return [(i.field, i.rule) for i in issues], "curated.metadata.validate_record"
    gaps: list[tuple[str, str]] = []
    for path in (
        "study.title",
        "study.description",
        "study.authors",
        "study.license",
        "study.funding",
        "study.keywords",
    ):
        if not get_at(record, path.split("."), None):
            gaps.append((path, "required"))
    for key in ("biosamples", "specimens", "acquisition_protocols"):
        if not record.get(key):
            gaps.append((key, "recommended"))
    return gaps, "built-in checks"


def _asks_from_metadata(record: dict[str, Any], gaps: list[tuple[str, str]]) -> list[Ask]:
    asks: list[Ask] = []
    for field, rule in gaps:
        generic = _generic(field)
        spec = FIELD_ASKS.get(generic)
        if spec is None:
            # a missing whole module shows up as one of its inner fields; ask at module level
            top = generic.split(".")[0].removesuffix("[]")
            spec = FIELD_ASKS.get(top)
            if spec is None:
                if rule in ("required",) or rule not in ("recommended",):
                    label = field.replace("_", " ")
                    verb = "is missing" if rule == "required" else f"looks wrong ({rule})"
                    asks.append(
                        Ask(
                            "Important",
                            f"What should {label} be? It {verb}.",
                            "value",
                            "the record is incomplete or invalid without it",
                            field,
                        )
                    )
                continue
            field = top
        priority, question, why, example = spec
        if "{name}" in question:
            m = re.match(r"study\.authors\[(\d+)\]", field)
            person = get_at(record, ("study", "authors", int(m.group(1))), None) if m else None
            name = (
                " ".join(
                    str(person.get(k))
                    for k in ("given_name", "family_name")
                    if isinstance(person, dict) and person.get(k)
                )
                if person
                else ""
            )
            question = question.format(name=name or "each author")
        if rule not in ("required", "recommended"):
            priority = "Essential" if rule in ("spdx", "orcid", "doi") else priority
            question = f"{question} (the value we have fails the {rule} check)"
        rank = {
            "study.license": 15,
            "study.title": 22,
            "study.authors": 24,
            "study.description": 35,
        }.get(field, 40 if "voxel" in field else 50)
        asks.append(Ask(priority, question, "value", why, field, example, rank))
    return asks


def _asks_from_check(check: dict[str, Any]) -> list[Ask]:
    asks: list[Ask] = []
    flags = check.get("flags") or []

    def paths(code: str) -> list[str]:
        out: list[str] = []
        for f in flags:
            if f.get("code") == code:
                out.extend(f.get("paths") or [])
        return out

    def eg(ps: list[str]) -> str:
        return f"{len(ps)} file{'s' if len(ps) != 1 else ''}" + (f" (e.g. {ps[0]})" if ps else "")

    if phi := paths("dicom-phi"):
        asks.append(
            Ask(
                "Essential",
                f"May we remove the patient identifiers in the DICOM headers of {eg(phi)} before publishing?",
                "yes/no",
                "protected health information must not be published",
                rank=10,
            )
        )
    broken = paths("truncated-image") + paths("corrupt-image") + paths("unreadable")
    if broken:
        asks.append(
            Ask(
                "Essential",
                f"Can you send intact copies of {eg(broken)} that are truncated or do not open?",
                "yes/no",
                "damaged files cannot be converted or reused",
                rank=20,
            )
        )
    if personal := sorted(set(paths("personal-data"))):
        asks.append(
            Ask(
                "Essential",
                f"May we remove the names or e-mail addresses found in the image headers of {eg(personal)}?",
                "yes/no",
                "personal data should not be published without consent",
                rank=30,
            )
        )
    if missing := paths("broken-symlink"):
        asks.append(
            Ask(
                "Important",
                f"Can you send the files that {eg(missing)} point to (the links are broken)?",
                "yes/no",
                "the data the links name are missing from the deposit",
            )
        )
    if series := [f for f in flags if f.get("code") == "slice-series"]:
        more = (
            f" ({len(series) - 1} more such finding(s) in the check report)" if series[1:] else ""
        )
        asks.append(
            Ask(
                "Important",
                f"Can you check these slices? {series[0].get('message', '')}{more}. Please tell "
                "us what happened, or send the files that are missing or in the wrong folder.",
                "value",
                "the slices of a folder become one volume in z: missing, extra or odd slices "
                "misplace everything after them",
            )
        )
    if any(f.get("code") == "no-documentation" for f in flags):
        asks.append(
            Ask(
                "Important",
                "Please send a short README (plain text) describing the files and how they were made.",
                "file",
                "a README is how others understand the data",
            )
        )
    if bad := paths("bad-name"):
        asks.append(
            Ask(
                "Important",
                f"May we rename {eg(bad)} whose names hold characters that break tools?",
                "yes/no",
                "such names break downloads, archives and scripts",
            )
        )
    if dup := paths("duplicate-content"):
        asks.append(
            Ask(
                "Supplemental",
                f"Are the {len(dup)} files with identical content intended (e.g. {dup[0]})?",
                "yes/no",
                "duplicates may be copies made by mistake",
            )
        )
    if empty := paths("empty-file"):
        asks.append(
            Ask(
                "Supplemental",
                f"Are the {eg(empty)} that are empty (0 bytes) meant to be empty?",
                "yes/no",
                "empty files usually mean a failed export",
            )
        )
    return asks


def rank_asks(asks: list[Ask], limit: int = MAX_ASKS) -> tuple[list[Ask], list[Ask]]:
    """Order asks Essential > Important > Supplemental (stable), drop repeats; return (asked, deferred)."""
    seen: set[str] = set()
    unique: list[Ask] = []
    for a in asks:
        key = a.question.split(" (")[0].lower()
        if key in seen:
            continue
        seen.add(key)
        unique.append(a)
    unique.sort(key=lambda a: (PRIORITIES.index(a.priority), a.rank))
    return unique[:limit], unique[limit:]


def _contact(record: dict[str, Any]) -> dict[str, str]:
    authors = get_at(record, ("study", "authors"), None) or []
    people = [a for a in authors if isinstance(a, dict)]
    person = next((a for a in people if a.get("contact")), people[0] if people else {})
    name = " ".join(str(person.get(k)) for k in ("given_name", "family_name") if person.get(k))
    return {"name": name, "email": str(person.get("email") or "")}


def render_request(
    record: dict[str, Any],
    asks: list[Ask],
    *,
    check_summary: dict[str, Any] | None = None,
    curator: str | None = None,
) -> str:
    """Render the request e-mail (Markdown) from ``templates/request.md.j2``."""
    return render_template(
        "request.md.j2",
        title=get_at(record, ("study", "title"), None) or "your dataset",
        contact=_contact(record),
        asks=[a.to_dict() for a in asks],
        summary=check_summary or {},
        curator=curator or os.environ.get("CURATED_AGENT_NAME") or "The data curation team",
        priorities=PRIORITIES,
    )


def request(workspace: Workspace | str | Path, *, limit: int = MAX_ASKS) -> Result:
    """Write ``curation/request.md``: an e-mail to the depositor with at most ``limit`` ranked asks.

    Parameters
    ----------
    workspace
        The dataset's workspace (its ``curated.yaml`` and, when present, the
        Check step's ``curation/check.json``).
    limit
        Most asks in one e-mail (4, as the DCN recommends).

    Returns
    -------
    Result
        ``ok`` with ``details["asks"]`` (those in the e-mail) and
        ``details["deferred"]`` (those held for a later round).

    Examples
    --------
    >>> request("my-dataset").details["asks"][0]["priority"]  # doctest: +SKIP
    'Essential'
    """
    ws = as_workspace(workspace)
    if ws is None:
        raise WorkspaceError(
            "request needs a workspace (it reads curated.yaml and writes curation/request.md)"
        )
    if not 1 <= limit <= MAX_ASKS:
        raise WorkspaceError(f"limit must be between 1 and {MAX_ASKS}, not {limit}")
    check_path = ws.root / CHECK_FILE
    inputs: list[Path] = [ws.metadata_path] + ([check_path] if check_path.is_file() else [])
    with recorder(
        ws, STEP, "request", inputs=inputs, params={"limit": limit}, libraries=("jinja2",)
    ) as step:
        record = ws.read_metadata()
        gaps, validator = _metadata_gaps(record)
        check: dict[str, Any] = {}
        if check_path.is_file():
            try:
                check = json.loads(check_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise MetadataError(
                    f"check report cannot be read ({exc}); run `curated check` again",
                    path=check_path,
                ) from None
        asks, deferred = rank_asks(
            _asks_from_check(check) + _asks_from_metadata(record, gaps), limit
        )
        text = render_request(record, asks, check_summary=check.get("summary"))
        out = ws.root / REQUEST_FILE
        atomic_write_text(out, text)
        step.add_output(out, role="request")
        note = "" if check else "; no check report yet (run `curated check` for file-based asks)"
        step.message = f"{len(asks)} asks, {len(deferred)} deferred{note}"
        step.details = {
            "asks": [a.to_dict() for a in asks],
            "deferred": [a.to_dict() for a in deferred],
            "validator": validator,
        }
    return Result(
        "request",
        "ok",
        ws.relative(out),
        step.message,
        {
            "asks": [a.to_dict() for a in asks],
            "deferred": [a.to_dict() for a in deferred],
            "validator": validator,
        },
    )
