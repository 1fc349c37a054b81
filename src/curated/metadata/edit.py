"""Change a workspace's ``curated.yaml``: create the skeleton, set one field, write atomically.

Every write goes to a temporary file that is renamed over ``curated.yaml``, so the
file is always the old record or the new one. The file opens with a comment that
lists what is still missing, refreshed on every write made here.
"""

from __future__ import annotations

import contextlib
import io
import os
import textwrap
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from curated._crash import crash_point
from curated._io import atomic_write_bytes, atomic_write_text, load_mapping, parse_yaml
from curated.errors import LogError, MetadataError
from curated.metadata.paths import (
    MISSING,
    format_path,
    get_at,
    parse_path,
    resolve_field,
    scalar_types,
    set_at,
)
from curated.metadata.validate import SCHEMA_VERSION, Issue, ValidationReport, validate_record
from curated.results import Result
from curated.workspace import Workspace, as_workspace, dump_yaml, recorder


# ------------------------------------------------------------------- writing
def render_record(record: dict[str, Any], report: ValidationReport | None = None) -> str:
    """``curated.yaml`` text: a header comment listing what is missing, then the record as YAML."""
    return _header(record, report) + "\n" + dump_yaml(in_model_order(record))


def _header(record: dict[str, Any], report: ValidationReport | None) -> str:
    """The generated comment block at the top of ``curated.yaml`` (no final newline)."""
    report = report if report is not None else validate_record(record)
    missing = [e.field for e in report.missing_required]
    recommended = [
        w.field
        for w in report.warnings
        if w.rule == "recommended" and w.severity in ("alert", "warning")
    ]
    lines = [
        f"# curated.yaml: REMBI metadata of this dataset (curated schema {SCHEMA_VERSION}).",
        "# Check: `curated metadata validate .`   Change a field: `curated metadata set . FIELD VALUE`",
    ]

    def listing(title: str, fields: list[str]) -> None:
        if not fields:
            return
        body = textwrap.wrap(", ".join(fields), width=92, break_on_hyphens=False)
        lines.append(f"# {title}:")
        lines.extend(f"#   {line}" for line in body)

    listing("Still missing (required)", missing)
    listing("Still missing (recommended)", recommended)
    if not missing and not recommended:
        lines.append("# Complete: every required and recommended field is filled.")
    return "\n".join(lines)


def write_record(
    path: str | Path, record: dict[str, Any], report: ValidationReport | None = None
) -> Path:
    """Atomically write ``record`` (with its header) to ``path``, keeping the file's permissions."""
    path = Path(path)
    try:
        mode: int | None = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = None
    text = _render_keeping_comments(path, record, report) or render_record(record, report)
    atomic_write_text(path, text)
    with contextlib.suppress(OSError):
        os.chmod(path, default_mode() if mode is None else mode)
    return path


def _render_keeping_comments(
    path: Path, record: dict[str, Any], report: ValidationReport | None
) -> str | None:
    """``record`` written into the file's existing YAML so the curator's comments stay.

    The leading comment block is the generated header and is rewritten; every
    other comment (beside or above a field) is kept by a round-trip YAML
    parser (ruamel.yaml), changed values are replaced in place and new fields
    are inserted where the schema's order puts them. ``None`` when the file
    holds no comment of the curator's (the plain renderer then gives the
    canonical layout) or cannot be read as a mapping. The result is parsed back
    and must equal ``record``; if it does not, ``None`` again (never a wrong file).
    """
    try:
        old = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = old.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    body = "".join(lines[start:])
    if "#" not in body:
        return None
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    rt = YAML(typ="rt")
    rt.width = 100
    rt.indent(mapping=2, sequence=2, offset=0)
    rt.allow_unicode = True
    try:
        doc = rt.load(body)
    except Exception:  # a syntax ruamel rejects: fall back to the plain renderer
        return None
    if not isinstance(doc, CommentedMap):
        return None
    wanted = in_model_order(record)
    _merge_map(doc, wanted)
    buf = io.StringIO()
    rt.dump(doc, buf)
    text = _header(record, report) + "\n" + buf.getvalue()
    try:
        if parse_yaml(text) != wanted:
            return None
    except yaml.YAMLError:
        return None
    return text


def _merge_map(doc: Any, new: dict[str, Any]) -> None:
    for key in [k for k in doc if k not in new]:
        del doc[key]
    previous: list[str] = []
    for key, value in new.items():
        if key in doc:
            doc[key] = _merged(doc[key], value)
        else:
            before = [k for k in previous if k in doc]
            pos = list(doc.keys()).index(before[-1]) + 1 if before else 0
            doc.insert(pos, key, value)
        previous.append(key)


def _merged(old: Any, value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(old, CommentedMap) and isinstance(value, dict):
        _merge_map(old, value)
        return old
    if isinstance(old, CommentedSeq) and isinstance(value, list):
        for i, item in enumerate(value):
            if i < len(old):
                old[i] = _merged(old[i], item)
            else:
                old.append(item)
        del old[len(value) :]
        return old
    if type(old) is type(value) and old == value:
        return old  # unchanged: keep the scalar as written (its quoting, its style)
    return value


def default_mode() -> int:
    """``0o666`` less the umask: what ``open()`` would give (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def in_model_order(value: Any, cls: Any = None) -> Any:
    """A copy of ``value`` with mapping keys in the schema's slot order (unknown keys last)."""
    from curated.metadata.model import CuratedRecord
    from curated.metadata.paths import model_of

    cls = CuratedRecord if cls is None else cls
    if isinstance(value, list):
        return [in_model_order(v, cls) for v in value]
    if not isinstance(value, dict) or cls is None:
        return value
    fields = cls.model_fields
    keys = [k for k in fields if k in value] + [k for k in value if k not in fields]
    return {
        k: in_model_order(value[k], model_of(fields[k].annotation) if k in fields else None)
        for k in keys
    }


def new_error_issues(before: dict[str, Any], after: dict[str, Any]) -> list[Issue]:
    """Errors ``after`` has that ``before`` had not, ignoring missing required fields.

    A missing required field is incompleteness, not damage: the curator fills
    records a field at a time.
    """
    old = {(e.field, e.rule) for e in validate_record(before).errors}
    return [
        e
        for e in validate_record(after).errors
        if (e.field, e.rule) not in old and e.rule != "required"
    ]


# ------------------------------------------------------------------ skeleton
def skeleton_record(title: str) -> dict[str, Any]:
    """The smallest record a new workspace starts with: schema version and study title.

    It is structurally valid; validating it lists the required fields still
    missing (``study.description``, ``study.authors``) as errors and the
    recommended ones as warnings.
    """
    title = title.strip()
    if not title:
        raise MetadataError(
            "the title is empty; give the dataset's title (as it should appear in a citation)",
            field="study.title",
        )
    return {"schema_version": SCHEMA_VERSION, "study": {"title": title, "rembi_version": "1.5"}}


def init_workspace(
    directory: str | Path,
    title: str,
    *,
    exist_ok: bool = False,
    curator: str | None = None,
    orcid: str | None = None,
) -> Workspace:
    """Create a workspace with a ``curated.yaml`` skeleton and log it (step D, action ``init``).

    Parameters
    ----------
    directory
        The folder to create (or an empty/unrelated existing folder).
    title
        The study title.
    exist_ok
        Return an existing workspace unchanged instead of refusing.
    curator, orcid
        Who is curating: remembered in the user's config file
        (:func:`curated.provenance.agent.save_agent`), so that every later log entry,
        in any workspace, names them. Asked once; environment variables override it.

    Raises
    ------
    WorkspaceError
        When ``directory`` already holds a workspace (and not ``exist_ok``) or is a file.
    """
    if curator:
        from curated.provenance.agent import save_agent

        save_agent(curator, orcid)
    record = skeleton_record(title)
    directory = Path(directory)
    existed = (directory / "curated.yaml").exists() and not _interrupted_init(directory, record)
    ws = Workspace.create(directory, record=record, exist_ok=exist_ok or not existed)
    if existed:
        return ws
    report = validate_record(record)
    with recorder(ws, "D", "init", params={"title": title}) as step:
        write_record(ws.metadata_path, record, report)
        with contextlib.suppress(OSError):
            os.chmod(ws.metadata_path, default_mode())
        step.add_output(ws.metadata_path)
        step.details = {"missing_required": [e.field for e in report.missing_required]}
        step.message = (
            f"workspace created; {len(report.missing_required)} required field(s) still missing"
        )
    return ws


def _interrupted_init(directory: Path, record: dict[str, Any]) -> bool:
    """Whether ``directory`` is what an ``init`` with the same title left when it was killed
    before its log entry: the untouched skeleton and a log without an entry. The same
    command then finishes it instead of refusing an "existing workspace"."""
    try:
        if load_mapping(directory / "curated.yaml") != record:
            return False
        return next(iter(Workspace(directory).log.entries()), None) is None
    except (MetadataError, LogError, OSError):
        return False


# ---------------------------------------------------------------- set_field
_NULLS = {"null", "~", "Null", "NULL"}


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def parse_value(text: Any, annotation: Any = str) -> Any:
    """Turn a command-line value into what the field holds.

    The text is read as YAML (so ``8.0``, ``true``, ``[a, b]``, ``{family_name: X}`` and
    JSON all work); where the field holds text, a number-looking value stays the text
    as typed (``"1.0"`` stays ``"1.0"``). ``null`` removes the field (returns ``MISSING``).
    """
    if not isinstance(text, str):
        return text
    if text.strip() in _NULLS:
        return MISSING
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    leaf = scalar_types(annotation)
    wants_text = any(isinstance(t, type) and issubclass(t, str) for t in leaf)
    if wants_text and not isinstance(value, str | list | dict) and value is not None:
        return text
    if value is None:
        return text
    return _json_safe(value)


def set_field(
    workspace: Workspace | str | Path, field: str, value: Any, *, parse: bool = True
) -> Result:
    """Set one field of the workspace's record, atomically, and log it (step A, action ``set``).

    Parameters
    ----------
    workspace
        The workspace (or its folder).
    field
        Dotted/indexed path, e.g. ``study.license`` or ``study.authors[0].orcid``;
        ``[N]`` one past the end appends a list item.
    value
        The new value; a string is parsed by :func:`parse_value` (``null`` removes the field).
    parse
        ``False`` stores a string exactly as given (no YAML reading): for text that
        comes from a program, where ``"None: x"`` must stay a string, not become a
        mapping. ``MISSING``-style removal is then only possible with ``value=None``.

    Returns
    -------
    Result
        ``ok`` or ``notneeded`` (same value); ``details`` has ``field``, ``old``, ``new``
        and ``still_missing`` (required fields yet to fill).

    Raises
    ------
    MetadataError
        Unknown field (with a suggestion), or a value that would make the record
        invalid in a new way (wrong type, bad identifier...); the file is unchanged.
    """
    ws = as_workspace(workspace)
    if ws is None:
        raise MetadataError("set needs a workspace")
    parts = parse_path(field)
    _, _, annotation, item = resolve_field(parts)
    if item:
        from curated.metadata.paths import model_of

        annotation = model_of(annotation) or annotation
    label = format_path(parts)
    if parse:
        new_value = parse_value(value, annotation)
    else:
        new_value = MISSING if value is None else _json_safe(value)
    # Read, change, write and log under the workspace lock: parallel `metadata set`
    # runs neither lose an update nor log them out of order.
    with ws.locked():
        return _set_locked(ws, parts, label, new_value)


def _set_locked(ws: Workspace, parts: Any, label: str, new_value: Any) -> Result:
    before = ws.metadata_path.read_bytes()
    wrote = False
    try:
        with recorder(
            ws,
            "A",
            "set",
            params={
                "field": label,
                "value": _json_safe(new_value) if new_value is not MISSING else None,
            },
        ) as step:
            record = ws.read_metadata()
            old = get_at(record, parts)
            old_out = None if old is MISSING else _json_safe(old)
            new_out = None if new_value is MISSING else new_value
            details: dict[str, Any] = {"field": label, "old": old_out, "new": new_out}
            if (old is MISSING and new_value is MISSING) or old == new_value:
                if unrecorded_metadata_change(ws):
                    # an interrupted run wrote this value but never logged it: record it now
                    step.add_output(ws.metadata_path)
                    step.details = details
                    step.message = f"{label}: {old_out!r} (recorded after an interrupted run)"
                    return Result("set", "ok", str(ws.metadata_path), step.message, details)
                step.status, step.message = "notneeded", f"{label} already has this value"
                step.details = details
                return Result("set", "notneeded", str(ws.metadata_path), step.message, details)
            updated = _copy(record)
            set_at(updated, parts, new_value)
            added = new_error_issues(record, updated)
            if added:
                first = added[0]
                more = "; ".join(str(e) for e in added[1:])
                msg = (
                    f"refused, the record would become invalid: {first.message} (rule: {first.rule})"
                    + (f"; also {more}" if more else "")
                )
                raise MetadataError(
                    msg,
                    path=ws.metadata_path,
                    field=first.field,
                    details={"errors": [e.to_dict() for e in added]},
                )
            report = validate_record(updated)
            _drop_source(updated, label)
            wrote = True
            write_record(ws.metadata_path, updated, report)
            crash_point("metadata-set-written")
            step.add_output(ws.metadata_path)
            details["still_missing"] = [e.field for e in report.missing_required]
            step.details = details
            step.message = f"{label}: {old_out!r} -> {new_out!r}"
    except LogError as exc:
        if wrote:
            # the change and its record go together: unrecorded, the change is undone
            atomic_write_bytes(ws.metadata_path, before)
            msg = f"{exc.message}; curated.yaml was left unchanged"
            raise LogError(msg, path=exc.path, details=exc.details) from None
        raise
    return Result("set", "ok", str(ws.metadata_path), step.message, details)


def unrecorded_metadata_change(ws: Workspace) -> bool:
    """Whether ``curated.yaml`` differs from what the log last recorded of it (a run
    killed after writing it, before its log entry)."""
    from curated.provenance.digest import digest_path

    recorded = ws.log.recorded_output(ws.metadata_path)
    return recorded is not None and digest_path(ws.metadata_path)[0] != recorded.digest


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(record)


def _drop_source(record: dict[str, Any], label: str) -> None:
    """A value the curator sets is theirs: forget the import source recorded for it."""
    sources = record.get("sources")
    if isinstance(sources, list):
        kept = [s for s in sources if not (isinstance(s, dict) and s.get("field") == label)]
        if kept:
            record["sources"] = kept
        else:
            record.pop("sources", None)


__all__ = [
    "init_workspace",
    "new_error_issues",
    "parse_value",
    "render_record",
    "set_field",
    "skeleton_record",
    "unrecorded_metadata_change",
    "write_record",
]
