"""The dataset README: Cornell's sections, the DCN take-away block, pictures and history.

:func:`write_readme` writes ``<workspace>/README.md`` and ``<workspace>/figures/*.png``
from what the workspace already knows (``curated.yaml``, the curator log, the
OME-Zarr images and labels, models and evaluation reports). It never invents a
fact: every value it lacks is written as ``<TODO: field.path>`` and counted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curated._io import atomic_write_bytes, atomic_write_text
from curated._text import one_line_strings, render_template
from curated._version import __version__
from curated.document.figures import Figure, orthoviews
from curated.document.survey import (
    FIGURES_DIR,
    README_FILE,
    WorkspaceSurvey,
    inventory,
    survey_workspace,
)
from curated.errors import InputError
from curated.metadata.crosswalk.common import (
    DOI_URL,
    citation_authors,
    display_name,
    get_path,
    licence,
    normalise_doi,
    normalise_orcid,
    normalise_ror,
    spdx_id,
)
from curated.progress import ProgressReporter, ensure_progress
from curated.provenance.digest import sha256_file
from curated.provenance.log import STEPS
from curated.results import Result
from curated.workspace import Workspace, as_workspace, recorder

TODO_RE = re.compile(r"<TODO: ([^>]+)>")
"""A gap marker in a generated document; group 1 is the field (or question) that is missing."""


def todo(field: str) -> str:
    """The marker written where ``field`` has no value."""
    return f"<TODO: {field}>"


def todo_fields(text: str) -> list[str]:
    """Every marker's field in ``text``, in order (duplicates kept, so ``len`` counts markers)."""
    return TODO_RE.findall(text)


@dataclass
class ReadmeReport:
    """What :func:`write_readme` wrote."""

    path: Path
    figures: list[Figure] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)
    """The field of each ``<TODO: ...>`` marker, in document order."""

    @property
    def todo_count(self) -> int:
        return len(self.todos)

    def result(self) -> Result:
        missing = sorted(set(self.todos))
        msg = f"README with {len(self.figures)} figure(s) and {self.todo_count} TODO marker(s)"
        if missing:
            msg += f" ({len(missing)} distinct field(s) to fill)"
        return Result(
            action="readme",
            status="ok",
            path=str(self.path),
            message=msg,
            details={
                "todo_count": self.todo_count,
                "todo_fields": missing,
                "figures": [str(f.path) for f in self.figures],
            },
        )


class _RecordView:
    """Read the record by dotted path; a missing value becomes a TODO marker."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def get(self, path: str, default: Any = None) -> Any:
        return get_path(self.record, path, default)

    def items(self, path: str) -> list[dict[str, Any]]:
        """The entries of the list at ``path``; an entry that is not a mapping reads as empty (its fields become TODOs)."""
        value = self.get(path, [])
        return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []

    def need(self, path: str, label: str | None = None) -> str:
        value = self.get(path)
        if value in (None, "", [], {}):
            return todo(label or path)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)


def _people(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(get_path(record, "study.authors", []) or []):
        if not isinstance(a, dict):
            continue
        aff = a.get("affiliation") if isinstance(a.get("affiliation"), dict) else {}
        out.append(
            {
                "index": i,
                "name": display_name(a) or todo(f"study.authors[{i}].family_name"),
                "orcid": normalise_orcid(a.get("orcid")),
                "orcid_todo": todo(f"study.authors[{i}].orcid"),
                "affiliation": (aff or {}).get("name"),
                "affiliation_todo": todo(f"study.authors[{i}].affiliation.name"),
                "ror": normalise_ror((aff or {}).get("ror")),
                "email": a.get("email"),
                "roles": [str(r) for r in a.get("role") or []],
                "contact": bool(a.get("contact")),
            }
        )
    return out


def _contact(people: list[dict[str, Any]]) -> str:
    contacts = [p for p in people if p["contact"]] or [
        p for p in people if "ContactPerson" in p["roles"]
    ]
    if not contacts:
        return todo("study.authors[].contact (mark one author as contact, with an email)")
    p = contacts[0]
    email = p["email"] or todo(f"study.authors[{p['index']}].email")
    return f"{p['name']} ({email})"


def _citation(rv: _RecordView, people: list[dict[str, Any]], doi: str | None) -> str:
    authors = (
        citation_authors(get_path(rv.record, "study.authors", []) or [])
        if people
        else todo("study.authors")
    )
    year = rv.need("study.publication_year")
    title = rv.need("study.title")
    publisher = rv.need("study.publisher")
    ident = f"{DOI_URL}{doi}" if doi else todo("study.doi (assigned at deposit)")
    return f"{authors} ({year}). {title} [Data set]. {publisher}. {ident}"


def _licence_line(rv: _RecordView) -> str:
    raw = rv.get("study.license")
    if not raw:
        return todo("study.license")
    lic = licence(raw)
    if lic:
        return f"{lic.name} ([{lic.spdx_id}]({lic.url}))"
    proper = spdx_id(raw)
    if proper:
        return f"[{proper}](https://spdx.org/licenses/{proper}.html)"
    return f"{raw} {todo('study.license (not an SPDX licence id)')}"


def _short_param(value: Any) -> bool:
    """Parameters worth a table cell: scalars and short lists, not nested settings or absolute paths."""
    if value in (None, "", [], {}) or isinstance(value, dict):
        return False
    if isinstance(value, str) and (value.startswith("/") or len(value) > 80):
        return False
    return not (
        isinstance(value, list)
        and (len(value) > 6 or any(isinstance(v, dict | list) for v in value))
    )


def _transform_steps(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """T entries that succeeded, newest last, as the README's processing steps."""
    steps = []
    for e in entries:
        if e.get("step") != "T" or e.get("status") not in ("ok", "notneeded"):
            continue
        params = e.get("params") or {}
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if _short_param(v))
        steps.append(
            {
                "seq": e.get("seq"),
                "time": str(e.get("time") or "")[:19].replace("T", " "),
                "action": e.get("action"),
                "inputs": [i.get("path") for i in e.get("inputs") or [] if isinstance(i, dict)],
                "outputs": [o.get("path") for o in e.get("outputs") or [] if isinstance(o, dict)],
                "params": shown,
                "software": ", ".join(f"{k} {v}" for k, v in (e.get("software") or {}).items()),
                "message": e.get("message") or "",
            }
        )
    return steps


def _history(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        agent = e.get("agent") or {}
        who = agent.get("name") if isinstance(agent, dict) else None
        rows.append(
            {
                "seq": e.get("seq"),
                "date": str(e.get("time") or "")[:10],
                "step": f"{e.get('step', '?')} {STEPS.get(str(e.get('step')), '')}".strip(),
                "action": e.get("action") or "",
                "status": e.get("status") or "",
                "agent": who or "",
                "message": e.get("message") or "",
            }
        )
    return rows


def _labels(s: WorkspaceSurvey, rv: _RecordView) -> list[dict[str, Any]]:
    """Every label image with what produced it, AI marking and scores."""
    annotations = {
        a.get("name"): (i, a)
        for i, a in enumerate(rv.get("annotations", []) or [])
        if isinstance(a, dict)
    }
    out = []
    for img in s.images:
        for lab in img.labels:
            idx_ann = annotations.get(lab.name)
            ann = idx_ann[1] if idx_ann else {}
            ai = lab.ai_generated if lab.ai_generated is not None else ann.get("ai_generated")
            model = s.model_for(lab.model)
            model_ref = lab.model or {}
            card = model_ref.get("card") if isinstance(model_ref.get("card"), str) else None
            if model is not None:
                card = card or model.package or model.card
            if ai is None:
                method = todo(f"annotations[name={lab.name}].ai_generated")
            elif ai:
                mid = model_ref.get("id") or (model.id if model else None) or ann.get("model")
                method = (
                    f"**AI-generated** by model `{mid}`"
                    if mid
                    else f"**AI-generated** by {todo(f'annotations[name={lab.name}].model')}"
                )
                if card:
                    method += f" (model card: [{card}]({card}))"
                elif model is not None:
                    method += (
                        f" (model folder: [{model.path}]({model.path}); no exported model card yet)"
                    )
            else:
                method = _origin_text(lab, ann)
            evals = s.evaluations_of(img.name, lab.name)
            out.append(
                {
                    "image": img.name,
                    "name": lab.name,
                    "origin": lab.origin,
                    "classes": _class_list(lab),
                    "kind": lab.kind
                    or ", ".join(str(t) for t in ann.get("annotation_type") or [])
                    or todo(f"annotations[name={lab.name}].annotation_type"),
                    "ai": ai,
                    "method": method,
                    "coverage": ann.get("annotation_coverage"),
                    "evaluations": evals,
                    "problem": lab.problem,
                    "needs_eval": bool(ai),
                }
            )
    return out


ORIGIN_METHOD = {
    "human": "made by people",
    "derived-from-truth": (
        "**derived from truth**: crops copied from another label image, not an independent "
        "human annotation"
    ),
    "simulated": (
        "**simulated**: made by a simulator together with the image (exact by construction, "
        "not drawn by people)"
    ),
}


def _origin_text(lab: Any, ann: dict[str, Any]) -> str:
    """How a label image not made by a model came about, from its recorded origin."""
    origin = lab.origin
    if origin in ORIGIN_METHOD:
        text = ORIGIN_METHOD[origin]
        if origin == "human":
            text += f" ({lab.kind or 'annotation'})"
            if ann.get("annotation_method"):
                text += f": {ann['annotation_method']}"
        return text
    if origin == "mixed" and lab.origins:
        parts = ", ".join(f"{n} {o}" for o, n in sorted(lab.origins.items()))
        return f"crops of **mixed origin** ({parts})"
    if ann.get("annotation_method"):
        return str(ann["annotation_method"])
    return todo(
        f"labels {lab.name}: origin (human, derived-from-truth or simulated; "
        "add it with `curated labels add --origin`)"
    )


def _class_list(lab: Any) -> str:
    """``1 = mitochondrion, 2 = nucleus`` from the label image's properties (placeholders left out)."""
    from curated.segment import GENERIC_NAME

    names = [
        f"{v} = {n}"
        for v, n in sorted(lab.names.items())
        if v != 0 and v not in lab.unannotated and not GENERIC_NAME.match(n.strip())
    ]
    return ", ".join(names)


def _model_structures(s: WorkspaceSurvey) -> dict[str, str]:
    """Model name → the structure it segments, named by its training label image's properties."""
    from curated.segment import GENERIC_NAME

    out: dict[str, str] = {}
    for m in s.models:
        label = m.meta.get("label") if isinstance(m.meta.get("label"), dict) else {}
        if label.get("name") and not GENERIC_NAME.match(str(label["name"])):
            out[m.name] = str(label["name"])
            continue
        value = label.get("label_value")
        for img in s.images:
            for lab in img.labels:
                name = lab.names.get(value) if lab.name == label.get("labels") else None
                if name and not GENERIC_NAME.match(name):
                    out[m.name] = name
    return out


def _figure_link(fig: Figure, root: Path) -> str:
    return fig.path.relative_to(root).as_posix()


ARCHIVE_EXPORTS = {
    "export-empiar": ("EMPIAR", "export empiar", "deposition.json, the image sets under data/"),
    "export-bia": (
        "BioImage Archive",
        "export bia",
        "submission.json, file lists (images, one per annotation), files/",
    ),
}


def _archive_exports(survey: WorkspaceSurvey) -> list[dict[str, str]]:
    """The latest archive submission of each kind the log records, where its folder still exists."""
    latest: dict[str, str] = {}
    for e in survey.entries:
        if e.get("action") in ARCHIVE_EXPORTS and e.get("status") == "ok":
            for out in e.get("outputs") or []:
                if isinstance(out, dict) and out.get("path"):
                    latest[str(e["action"])] = str(out["path"])
    out = []
    for action, path in latest.items():
        if (survey.root / path).is_dir():
            archive, command, what = ARCHIVE_EXPORTS[action]
            out.append({"archive": archive, "command": command, "what": what, "path": path})
    return out


def render_readme(
    survey: WorkspaceSurvey, figures: list[Figure] | None = None, *, now: datetime | None = None
) -> str:
    """The README text for a surveyed workspace (no files written)."""
    figures = figures or []
    rec = one_line_strings(survey.record)  # a title's line break never starts a heading
    rv = _RecordView(rec)
    people = _people(rec)
    doi = normalise_doi(rv.get("study.doi"))
    fair_summary = None
    fair_path = survey.root / "curation" / "fair.json"
    if fair_path.is_file():
        import json

        try:
            fair_summary = json.loads(fair_path.read_text(encoding="utf-8")).get("summary")
        except (OSError, ValueError):
            fair_summary = None
    figs_by_image: dict[str, list[dict[str, Any]]] = {}
    for f in figures:
        figs_by_image.setdefault(f.image, []).append(
            {"link": _figure_link(f, survey.root), "caption": f.caption, "label": f.label}
        )
    ctx = {
        "r": rv,
        "todo": todo,
        "survey": survey,
        "people": people,
        "contact": _contact(people),
        "citation": _citation(rv, people, doi),
        "doi": doi,
        "doi_url": f"{DOI_URL}{doi}" if doi else None,
        "licence": _licence_line(rv),
        "transforms": _transform_steps(survey.entries),
        "history": _history(survey.entries),
        "labels": _labels(survey, rv),
        "archive_exports": _archive_exports(survey),
        "model_structures": _model_structures(survey),
        "figures": figs_by_image,
        "fair": fair_summary,
        "version": __version__,
        "generated": (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        "source_files": list(
            dict.fromkeys(
                # originals by name: the curator's local folders never reach a deposit
                Path(str(x["source_file"])).name
                for x in rv.items("sources")
                if x.get("source_file")
            )
        ),
    }
    # a record of an unexpected shape renders as blanks rather than crashing the README
    return render_template("readme.md.j2", strict=False, **ctx)


def write_readme(
    workspace: Workspace | str | Path,
    *,
    figures: bool = True,
    max_dim: int = 512,
    compute_digests: bool = True,
    force: bool = False,
    progress: ProgressReporter | None = None,
) -> Result:
    """Write ``README.md`` and its pictures (``figures/*.png``) for a workspace.

    Parameters
    ----------
    workspace
        The workspace to document.
    figures
        Draw orthogonal views of each image (with label overlays).
    max_dim
        Pictures use the finest pyramid level whose largest dimension is at most this.
    compute_digests
        Compute checksums the curator log has not recorded (see
        :func:`curated.document.survey.inventory`).
    force
        Replace a ``README.md`` that curated did not write (or that was edited
        since); a copy of it is kept as ``curation/README.before-<time>.md``.
        Without it such a README is refused (:class:`InputError`), never lost.
    progress
        Reports one step per image drawn.

    Returns
    -------
    Result
        ``details["todo_count"]`` markers left, ``details["todo_fields"]`` the
        distinct fields, ``details["figures"]`` the PNGs written.

    Raises
    ------
    InputError
        ``README.md`` exists and is not the one curated last wrote (unless ``force``).

    Examples
    --------
    >>> res = write_readme("my-dataset")  # doctest: +SKIP
    >>> res.details["todo_count"]  # doctest: +SKIP
    3
    """
    ws = as_workspace(workspace)
    assert ws is not None
    prog = ensure_progress(progress)
    readme = ws.root / README_FILE
    with recorder(
        ws,
        "D",
        "readme",
        inputs=[ws.metadata_path],
        params={"figures": figures, "max_dim": max_dim},
        libraries=("jinja2", "zarr", "pillow"),
    ) as step:
        survey = survey_workspace(ws, files=False)
        kept = _keep_foreign_readme(ws, survey, force)
        if kept is not None:
            step.add_output(kept, role="readme-before")
        written: list[Figure] = []
        if figures and survey.images:
            fig_dir = ws.root / FIGURES_DIR
            used: set[str] = set()
            prog.start("drawing figures", len(survey.images), "images")
            for img in survey.images:
                written.extend(orthoviews(img, fig_dir, max_dim=max_dim, used=used))
                prog.advance(1, image=img.name)
            prog.finish()
        _remove_stale_figures(ws, survey, written)
        # listed after the figures exist so that they are in the file list with their checksums
        survey.files = inventory(survey, compute_digests=compute_digests, exclude={README_FILE})
        text = render_readme(survey, written)
        # Say which README this run is about to put in place before replacing it: a kill
        # between the write and the log entry must not make the re-run take curated's own
        # README for a hand-written one (and refuse it).
        atomic_write_text(ws.curation_dir / README_WRITTEN, _text_digest(text) + "\n")
        atomic_write_text(readme, text)
        report = ReadmeReport(path=readme, figures=written, todos=todo_fields(text))
        step.add_output(readme, role="readme")
        for f in written:
            step.add_output(f.path, role="figure")
        res = report.result()
        step.message = res.message
        step.details = {"todo_count": report.todo_count, "todo_fields": res.details["todo_fields"]}
    return res


def _recorded_outputs(survey: WorkspaceSurvey, action: str) -> list[dict[str, Any]]:
    """Outputs of the last successful ``action`` entry in the log."""
    for e in reversed(survey.entries):
        if e.get("action") == action and e.get("status") == "ok":
            return [o for o in e.get("outputs") or [] if isinstance(o, dict)]
    return []


README_WRITTEN = ".readme-written"
"""In ``curation/``: the digest of the README the last ``readme`` run wrote (or was about to),
recorded just before it replaces ``README.md``, so that a run killed before its log entry
still knows the README as its own."""


def _text_digest(text: str) -> str:
    return f"sha256:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def _last_written(ws: Workspace) -> str | None:
    try:
        return (ws.curation_dir / README_WRITTEN).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _keep_foreign_readme(ws: Workspace, survey: WorkspaceSurvey, force: bool) -> Path | None:
    """Refuse to overwrite a README curated did not write; with ``force`` keep a copy first.

    curated's own README is the one the log last recorded, or the one a run killed before
    its log entry had just written (:data:`README_WRITTEN`), unedited.
    """
    readme = ws.root / README_FILE
    if not readme.is_file():
        return None
    recorded = {o.get("path"): o.get("digest") for o in _recorded_outputs(survey, "readme")}
    digest = f"sha256:{sha256_file(readme)}"
    if digest in (recorded.get(README_FILE), _last_written(ws)):
        return None
    if not force:
        msg = (
            "README.md was not written by curated, or was edited since; replacing it would lose that text. "
            "Move it aside (e.g. into docs/) or pass --force (a copy is kept in curation/)"
        )
        raise InputError(msg, path=readme)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    copy = ws.curation_dir / f"README.before-{stamp}.md"
    atomic_write_bytes(copy, readme.read_bytes())
    return copy


def _remove_stale_figures(ws: Workspace, survey: WorkspaceSurvey, written: list[Figure]) -> None:
    """Delete pictures an earlier ``readme`` wrote that this run did not (their image is gone)."""
    now = {f.path.resolve() for f in written}
    for out in _recorded_outputs(survey, "readme"):
        rel = str(out.get("path") or "")
        if out.get("role") != "figure" or not rel.startswith(f"{FIGURES_DIR}/"):
            continue
        p = ws.root / rel
        if p.is_file() and p.resolve() not in now:
            p.unlink()
